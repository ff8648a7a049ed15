"""Rendering plans for people (text) and programs (JSON)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from reconciler.core.plan import Action, Change, GroupProblem, Outcome, Plan, Status
from reconciler.core.planner import plan
from reconciler.core.policy import Baseline, GroupPolicy
from reconciler.core.rules import Direction, ObservedGroup, ObservedRule, RuleKey
from reconciler.render import Palette, render_json, render_text

NOW = datetime(2024, 5, 1, tzinfo=UTC)
REGION = "eu-west-1"
WEB = "sg-0aaaaaaaaaaaaaaa1"
DB = "sg-0aaaaaaaaaaaaaaa3"
SSH_ID = "sgr-0123456789abcdef0"
ESC = "\x1b["


def _policy(name: str, **fields: Any) -> GroupPolicy:
    data = {
        "name": name,
        "match": {"tags": {"Name": name}},
        "ingress": [{"protocol": "tcp", "ports": 443, "from": ["0.0.0.0/0", "::/0"]}],
    }
    return GroupPolicy.model_validate(data | fields)


def _rule(rule_id: str, protocol: str, ports: tuple[int, int], peer: str) -> ObservedRule:
    key = RuleKey.from_ec2(
        direction=Direction.INGRESS,
        protocol=protocol,
        from_port=ports[0],
        to_port=ports[1],
        peer=peer,
    )
    return ObservedRule(rule_id, key)


def _drifted_plan() -> Plan:
    """web-prod: one extra ssh rule and one missing v6 rule; db-prod: a report-only extra."""
    baseline = Baseline(policies=(_policy("web-prod"), _policy("db-prod", on_drift="report")))
    web = ObservedGroup.build(
        region=REGION,
        group_id=WEB,
        tags={"Name": "web-prod"},
        rules=(
            _rule("sgr-00000000000000443", "tcp", (443, 443), "0.0.0.0/0"),
            _rule(SSH_ID, "tcp", (22, 22), "0.0.0.0/0"),
        ),
    )
    db = ObservedGroup.build(
        region=REGION,
        group_id=DB,
        tags={"Name": "db-prod"},
        rules=(
            _rule("sgr-00000000000000444", "tcp", (443, 443), "0.0.0.0/0"),
            _rule("sgr-00000000000000445", "tcp", (443, 443), "::/0"),
            _rule("sgr-00000000000000999", "-1", (-1, -1), "10.0.0.0/8"),
        ),
    )
    return plan(baseline, [db, web], now=NOW)


def test_text_lists_changes_under_a_heading_per_group_then_a_summary() -> None:
    """Text output has a heading per group, one aligned line per change and a summary line."""
    assert render_text(_drifted_plan()).splitlines() == [
        f"{REGION} {WEB} (policy web-prod)",
        f"  - revoke   {SSH_ID}  ingress tcp 22 from 0.0.0.0/0  (not in policy web-prod)",
        f"  + missing  {'':<22} ingress tcp 443 from ::/0  (in policy web-prod but not live)",
        f"{REGION} {DB} (policy db-prod)",
        "  - revoke   sgr-00000000000000999  ingress all from 10.0.0.0/8"
        "  (not in policy db-prod (report only))",
        "Plan: 1 to revoke (1 report-only), 1 missing, 0 excepted, 0 blocked in 2 groups.",
    ]


def test_clean_plan_says_no_drift() -> None:
    """A plan without changes or errors says how many managed groups match the baseline."""
    assert render_text(Plan(changes=(), managed_groups=3)) == (
        "No drift: 3 managed groups match the baseline."
    )


def test_errors_are_listed_and_replace_no_drift() -> None:
    """Problems and extra errors print as 'error:' lines, and the plan is not called clean."""
    result = Plan(changes=(), problems=(GroupProblem(REGION, WEB, "matched by policies a, b"),))
    assert render_text(result, errors=["us-east-1: AccessDenied"]).splitlines() == [
        "error: us-east-1: AccessDenied",
        f"error: {REGION} {WEB}: matched by policies a, b",
        "Plan: 0 to revoke, 0 missing, 0 excepted, 0 blocked in 0 groups.",
    ]


def test_blocked_and_account_are_shown() -> None:
    """A blocked change says why; a change in another account names the account in its heading."""
    change = Change(
        action=Action.REVOKE,
        region=REGION,
        group_id=WEB,
        policy="web-prod",
        key=RuleKey(Direction.INGRESS, "tcp", 22, 22, "0.0.0.0/0"),
        rule_id=SSH_ID,
        description=None,
        reason="not in policy web-prod",
        blocked="more than 1 revoke in one group",
        account="123456789012",
    )
    assert render_text(Plan(changes=(change,), managed_groups=1)).splitlines() == [
        f"123456789012 {REGION} {WEB} (policy web-prod)",
        f"  - revoke   {SSH_ID}  ingress tcp 22 from 0.0.0.0/0  (not in policy web-prod)"
        "  [blocked: more than 1 revoke in one group]",
        "Plan: 0 to revoke, 0 missing, 0 excepted, 1 blocked in 1 groups.",
    ]


def test_apply_outcomes_show_each_status_and_an_apply_summary() -> None:
    """After apply each change shows its status and the summary counts what happened."""
    result = _drifted_plan()
    revoke, missing, report = result.changes
    outcomes = (
        Outcome(revoke, Status.REVOKED),
        Outcome(missing, Status.REPORTED),
        Outcome(report, Status.SKIPPED_REPORT_MODE),
    )
    lines = render_text(result, outcomes).splitlines()
    assert lines[1].endswith("(not in policy web-prod)  => revoked")
    assert lines[2].endswith("(in policy web-prod but not live)")
    assert lines[4].endswith("(not in policy db-prod (report only))  => skipped_report_mode")
    assert lines[-1] == (
        "Apply: 1 revoked, 0 already absent, 0 failed, 1 missing, 0 excepted, 0 blocked"
        " in 2 groups."
    )


@pytest.mark.parametrize("result", [_drifted_plan(), Plan(changes=(), managed_groups=1)])
def test_no_ansi_escapes_by_default(result: Plan) -> None:
    """Without an enabled palette (pipes, NO_COLOR) the text has no escape codes."""
    assert ESC not in render_text(result)
    assert ESC not in render_text(result, palette=Palette(enabled=False))


def test_palette_colours_lines_when_enabled() -> None:
    """An enabled palette wraps headings in bold and revokes in red, resetting after each."""
    lines = render_text(_drifted_plan(), palette=Palette(enabled=True)).splitlines()
    assert lines[0] == f"\x1b[1m{REGION} {WEB} (policy web-prod)\x1b[0m"
    assert lines[1].startswith("\x1b[31m  - revoke ")
    assert lines[1].endswith("\x1b[0m")
    assert lines[2].startswith("\x1b[33m  + missing ")
    assert (
        lines[-1]
        == "Plan: 1 to revoke (1 report-only), 1 missing, 0 excepted, 0 blocked in 2 groups."
    )


def test_json_document_shape() -> None:
    """JSON output parses and holds changes, errors and summary."""
    result = _drifted_plan()
    doc = json.loads(render_json(result, errors=["us-east-1: AccessDenied"]))
    assert set(doc) == {"changes", "errors", "summary"}
    assert doc["changes"] == [c.to_dict() for c in result.changes]
    assert doc["changes"][0] == {
        "action": "revoke",
        "region": REGION,
        "group_id": WEB,
        "policy": "web-prod",
        "guardrail": None,
        "rule_id": SSH_ID,
        "direction": "ingress",
        "protocol": "tcp",
        "from_port": 22,
        "to_port": 22,
        "source": "0.0.0.0/0",
        "description": None,
        "reason": "not in policy web-prod",
    }
    assert doc["errors"] == [{"message": "us-east-1: AccessDenied"}]
    assert doc["summary"] == {
        "to_revoke": 1,
        "to_restore": 0,
        "missing": 1,
        "excepted": 0,
        "blocked": 0,
        "report_only": 1,
        "drifted_groups": 2,
        "managed_groups": 2,
        "errors": 1,  # every entry of "errors" is counted, run-level ones too
        "guardrail_violations": 0,
        "unmanaged_groups": 0,
    }


def test_json_for_a_clean_plan() -> None:
    """A clean plan is valid JSON with no changes and no errors."""
    doc = json.loads(render_json(Plan(changes=(), managed_groups=2)))
    assert doc["changes"] == []
    assert doc["errors"] == []
    assert doc["summary"]["managed_groups"] == 2


def test_json_with_outcomes_adds_statuses() -> None:
    """After apply, JSON changes carry their status and the summary counts statuses."""
    result = _drifted_plan()
    revoke, missing, report = result.changes
    outcomes = (
        Outcome(revoke, Status.FAILED, error="UnauthorizedOperation"),
        Outcome(missing, Status.REPORTED),
        Outcome(report, Status.SKIPPED_REPORT_MODE),
    )
    doc = json.loads(render_json(result, outcomes))
    assert [(c["status"], c.get("error")) for c in doc["changes"]] == [
        ("failed", "UnauthorizedOperation"),
        ("reported", None),
        ("skipped_report_mode", None),
    ]
    assert doc["summary"]["statuses"] == {"failed": 1, "skipped_report_mode": 1, "reported": 1}
