"""Blast-radius limits, allow_empty and exceptions, end to end: the CLI and the Lambda on moto."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from reconciler.adapters.journal import read_entries
from reconciler.cli import main
from reconciler.core.rules import RuleKey
from reconciler.runtime import build_responder, run_event
from tests.eventfiles import load_event
from tests.policyfiles import write_policies
from tests.world import DEFAULT_EGRESS, REGION, World, ingress

pytestmark = pytest.mark.fake_ec2  # decisions: the in-memory EC2 of tests/fake_ec2.py

KEEP = ingress("tcp", (443, 443), "10.0.0.0/8")
POLICY = """
groups:
  - name: web
    match: {tags: {team: web}}
    ingress:
      - {protocol: tcp, ports: 443, from: 10.0.0.0/8, description: internal https}
"""
GROUP_LIMIT = "max_revocations_per_group=25 (30 revokes planned)"
HINT = (
    "error: 30 changes were blocked by blast-radius limits and not made; review them, then fix"
    " the baseline or rerun with --force"
)


def drift(count: int, first_port: int = 1000) -> list[RuleKey]:
    """``count`` ingress rules no baseline allows: tcp ports from ``first_port`` on, world-open."""
    return [ingress("tcp", (p, p), "0.0.0.0/0") for p in range(first_port, first_port + count)]


def cli(*args: str) -> int:
    """Run one sg-reconciler command in-process against moto's region."""
    return main([*args, "--region", REGION])


@pytest.fixture
def drifted(world: World) -> str:
    """A managed group with its baseline rule and 30 drifted rules (over the default 25)."""
    return world.group("web", {"team": "web"}, [KEEP, *drift(30)])


def test_plan_marks_every_revoke_of_a_group_over_its_limit_blocked(
    tmp_path: Path, world: World, drifted: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """30 drifted rules against the default limit of 25 are each shown blocked, in text and JSON."""
    policies = write_policies(tmp_path / "p", POLICY)
    assert cli("plan", "--policies", str(policies)) == 2
    lines = capsys.readouterr().out.splitlines()
    revokes = [line for line in lines if line.startswith("  - revoke ")]
    assert len(revokes) == 30
    assert all(line.endswith(f"  [blocked: {GROUP_LIMIT}]") for line in revokes)
    assert lines[-1] == "Plan: 0 to revoke, 0 missing, 0 excepted, 30 blocked in 1 groups."

    assert cli("plan", "--policies", str(policies), "--output", "json") == 2
    doc = json.loads(capsys.readouterr().out)
    assert [c["blocked"] for c in doc["changes"]] == [GROUP_LIMIT] * 30
    assert {c["group_id"] for c in doc["changes"]} == {drifted}
    assert (doc["summary"]["to_revoke"], doc["summary"]["blocked"]) == (0, 30)


def test_apply_over_the_group_limit_exits_1_with_the_hint_and_revokes_nothing(
    tmp_path: Path, world: World, drifted: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """apply refuses the blocked group: exit 1, the hint line, live rules and journal untouched."""
    policies = write_policies(tmp_path / "p", POLICY)
    before = world.live(drifted)
    journal = tmp_path / "journal.jsonl"
    code = cli("apply", "--policies", str(policies), "--journal", str(journal))
    err = capsys.readouterr().err.splitlines()
    assert code == 1
    assert HINT in err
    assert world.live(drifted) == before
    assert not journal.exists()  # nothing journaled, and no empty journal file left behind


def test_apply_force_overrides_the_group_limit(
    tmp_path: Path, world: World, drifted: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """apply --force revokes all 30, journals each, and leaves exactly the baseline."""
    policies = write_policies(tmp_path / "p", POLICY)
    journal = tmp_path / "journal.jsonl"
    code = cli(
        "apply",
        "--policies",
        str(policies),
        "--force",
        "--journal",
        str(journal),
        "--output",
        "json",
    )
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [c["status"] for c in doc["changes"]] == ["revoked"] * 30
    assert world.live(drifted) == {KEEP, DEFAULT_EGRESS}
    entries = read_entries(str(journal))
    assert sorted(e.phase for e in entries) == ["intent"] * 30 + ["outcome"] * 30
    assert {e.key for e in entries} == set(drift(30))


def test_a_group_exactly_at_its_limit_is_not_blocked(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """25 revokes against the default limit of 25 go through without --force."""
    policies = write_policies(tmp_path / "p", POLICY)
    group = world.group("web", {"team": "web"}, [KEEP, *drift(25)])
    assert cli("apply", "--policies", str(policies)) == 0
    assert world.live(group) == {KEEP, DEFAULT_EGRESS}


RUN_LIMITED = """
limits: {max_revocations_per_run: 5}
groups:
  - name: web-a
    match: {tags: {team: a}}
    ingress: [{protocol: tcp, ports: 443, from: 10.0.0.0/8}]
  - name: web-b
    match: {tags: {team: b}}
    ingress: [{protocol: tcp, ports: 443, from: 10.0.0.0/8}]
"""
UNLIMITED = """
groups:
  - name: web-c
    match: {tags: {team: c}}
    ingress: [{protocol: tcp, ports: 443, from: 10.0.0.0/8}]
"""


def test_the_run_limit_counts_across_the_groups_of_its_file_only(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """3 + 3 revokes over a file's max_revocations_per_run of 5 block both groups; another
    file's group is still fixed."""
    policies = write_policies(tmp_path / "p", RUN_LIMITED, "limited.yaml")
    write_policies(policies, UNLIMITED, "other.yaml")
    a = world.group("a", {"team": "a"}, [KEEP, *drift(3)])
    b = world.group("b", {"team": "b"}, [KEEP, *drift(3, 2000)])
    c = world.group("c", {"team": "c"}, [KEEP, *drift(3, 3000)])
    code = cli("apply", "--policies", str(policies), "--output", "json")
    out, err = capsys.readouterr()
    doc = json.loads(out)
    limit = f"max_revocations_per_run=5 (6 revokes planned for {policies / 'limited.yaml'})"
    assert code == 1
    assert {(c["group_id"], c.get("blocked"), c["status"]) for c in doc["changes"]} == {
        (a, limit, "blocked"),
        (b, limit, "blocked"),
        (c, None, "revoked"),
    }
    assert "error: 6 changes were blocked" in err
    assert world.live(a) == {KEEP, DEFAULT_EGRESS, *drift(3)}
    assert world.live(b) == {KEEP, DEFAULT_EGRESS, *drift(3, 2000)}
    assert world.live(c) == {KEEP, DEFAULT_EGRESS}


def test_a_group_whose_only_ingress_is_drift_is_not_emptied(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """When every live ingress rule is drift (the baseline rule is missing), nothing is revoked."""
    policies = write_policies(tmp_path / "p", POLICY)
    group = world.group("web", {"team": "web"}, drift(2))
    code = cli("apply", "--policies", str(policies), "--output", "json")
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    blocked = [c["blocked"] for c in doc["changes"] if c["action"] == "revoke"]
    assert (
        blocked
        == [
            "allow_empty: would leave the group with no ingress rules"
            " (its baseline rules are all missing)"
        ]
        * 2
    )
    assert world.live(group) == {*drift(2), DEFAULT_EGRESS}


EMPTY = """
groups:
  - name: locked
    match: {tags: {team: locked}}
    ingress: []
"""


def test_an_empty_baseline_empties_a_group_only_with_allow_empty(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """ingress: [] alone blocks emptying the group; with allow_empty: true it is emptied."""
    group = world.group("locked", {"team": "locked"}, drift(2))
    policies = write_policies(tmp_path / "p", EMPTY)
    assert cli("apply", "--policies", str(policies), "--output", "json") == 1
    doc = json.loads(capsys.readouterr().out)
    assert {c["blocked"] for c in doc["changes"]} == {
        "allow_empty: would leave the group with no ingress rules (set allow_empty: true)"
    }
    assert world.live(group) == {*drift(2), DEFAULT_EGRESS}

    allowed = write_policies(tmp_path / "q", EMPTY + "    allow_empty: true\n")
    assert cli("apply", "--policies", str(allowed)) == 0
    assert world.live(group) == {DEFAULT_EGRESS}


# --- the Lambda ----------------------------------------------------------------------------------


def messages(queue: str) -> list[dict[str, Any]]:
    """The SNS notifications delivered to the queue so far."""
    sqs = boto3.client("sqs", region_name=REGION)
    raw = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in raw]


def authorize_event(group: str) -> dict[str, Any]:
    """A real AuthorizeSecurityGroupIngress record, retargeted to ``group``."""
    event = load_event("AuthorizeSecurityGroupIngress__panther-analysis__1")
    loaded: dict[str, Any] = json.loads(json.dumps(event).replace("sg-0d921df5d84f7270a", group))
    return loaded


def test_the_lambda_never_overrides_limits_and_notifies_blocked_by_limit(
    tmp_path: Path,
    world: World,
    drifted: str,
    session: boto3.Session,
    inbox: tuple[str, str],
) -> None:
    """An event and a schedule tick on a group over its limit revoke nothing; the event's
    notification says BLOCKED BY LIMIT and names the limit."""
    topic, queue = inbox
    env = {
        "SG_RECONCILER_POLICIES": str(write_policies(tmp_path / "p", POLICY)),
        "SG_RECONCILER_REGIONS": REGION,
        "SG_RECONCILER_TOPIC_ARN": topic,
    }
    responder = build_responder(env, session=session)
    before = world.live(drifted)
    summary, failed = run_event(authorize_event(drifted), responder)
    # Blocked drift is drift left in place: the run fails (RulesBlocked, the alarm, the DLQ).
    assert (summary["revoked"], failed) == ([], True)
    assert world.live(drifted) == before
    (message,) = messages(queue)
    assert message["Subject"].startswith("sg-reconciler BLOCKED BY LIMIT: found 30 rule(s)")
    facts = json.loads(message["Message"].split("As JSON:\n", 1)[1])
    assert facts["verdict"] == "BLOCKED BY LIMIT"
    assert {r["status"] for r in facts["rules"]} == {"blocked"}
    assert {r["blocked"] for r in facts["rules"]} == {GROUP_LIMIT}

    scheduled, failed = run_event(load_event("synthetic__scheduled_event"), responder)
    assert (scheduled["revoked"], failed) == ([], True)
    assert world.live(drifted) == before
    (run,) = messages(queue)
    assert run["Message"].count("=> blocked") == 30


# --- exceptions ----------------------------------------------------------------------------------


def with_exceptions(*items: str) -> str:
    """The web policy with these exception entries (YAML flow mappings)."""
    return POLICY + "    exceptions:\n" + "".join(f"      - {item}\n" for item in items)


def validate_exceptions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], *items: str
) -> tuple[int, str, str, Path]:
    """``validate`` of the web policy with these exceptions: (exit code, stdout, stderr, file)."""
    policies = write_policies(tmp_path / "p", with_exceptions(*items))
    code = main(["validate", "--policies", str(policies)])
    out, err = capsys.readouterr()
    return code, out, err, policies / "policies.yaml"


def test_validate_refuses_an_exception_without_expires_or_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each missing field is one error line naming file, line and field; exit 1."""
    code, _, err, source = validate_exceptions(
        tmp_path,
        capsys,
        "{protocol: tcp, ports: 8080, from: 203.0.113.7/32, reason: vendor}",
        "{protocol: tcp, ports: 8081, from: 203.0.113.7/32, expires: 2099-01-01T00:00:00Z}",
    )
    assert code == 1
    assert err.splitlines() == [
        f"{source}:8: groups[0].exceptions[0].expires: required key 'expires' is missing",
        f"{source}:9: groups[0].exceptions[1].reason: required key 'reason' is missing",
        f"error: 2 problem(s) in {source.parent}; nothing was changed",
    ]


def test_validate_warns_about_an_exception_expiring_within_7_days(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An exception expiring in 3 days is one stderr warning; one in 30 days is not; exit 0."""
    soon = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    later = soon + timedelta(days=27)
    code, out, err, source = validate_exceptions(
        tmp_path,
        capsys,
        f"{{protocol: tcp, ports: 8080, from: 203.0.113.7/32, expires: {soon.isoformat()},"
        " reason: vendor debugging}",
        f"{{protocol: tcp, ports: 8081, from: 203.0.113.7/32, expires: {later.isoformat()},"
        " reason: migration}",
    )
    assert (code, out) == (0, "OK: 1 policies in 1 files\n")
    (warning,) = err.splitlines()
    pattern = (
        rf"warning: {re.escape(str(source))}:8: policy web exceptions\[0\]"
        rf" expires {re.escape(soon.isoformat())} \(in [23]\.\d days; the rule is revoked then\):"
        r" vendor debugging"
    )
    assert re.fullmatch(pattern, warning), warning


def test_validate_warns_about_an_egress_exception_on_a_policy_with_unmanaged_egress(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An egress exception where egress is unmanaged would do nothing: one warning, exit 0."""
    code, out, err, source = validate_exceptions(
        tmp_path,
        capsys,
        "{protocol: tcp, ports: 8080, from: 203.0.113.7/32, expires: 2099-01-01T00:00:00Z,"
        " reason: vendor}",
        "{protocol: tcp, ports: 9000, to: 198.51.100.0/24, expires: 2099-01-01T00:00:00Z,"
        " reason: backup target}",
    )
    assert (code, out) == (0, "OK: 1 policies in 1 files\n")
    assert err.splitlines() == [
        f"warning: {source}:9: policy web exceptions[1] is an egress"
        " exception (to:), but the policy leaves egress unmanaged, so it changes nothing; list"
        " the allowed egress rules under egress:, or remove it"
    ]


def test_an_unexpired_exception_keeps_its_rule_and_an_expired_one_is_revoked(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """apply keeps the rule of a live exception (excepted) and revokes the one whose
    exception expired, naming the expiry; only that one is journaled."""
    kept = ingress("tcp", (8080, 8080), "203.0.113.7/32")
    lapsed = ingress("tcp", (8081, 8081), "203.0.113.8/32")
    policies = write_policies(
        tmp_path / "p",
        with_exceptions(
            "{protocol: tcp, ports: 8080, from: 203.0.113.7/32, expires: 2099-01-01T00:00:00Z,"
            " reason: vendor}",
            "{protocol: tcp, ports: 8081, from: 203.0.113.8/32, expires: 2020-01-01T00:00:00Z,"
            " reason: old vendor}",
        ),
    )
    group = world.group("web", {"team": "web"}, [KEEP, kept, lapsed])
    journal = tmp_path / "journal.jsonl"
    code = cli("apply", "--policies", str(policies), "--journal", str(journal), "--output", "json")
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    by_port = {c["from_port"]: c for c in doc["changes"]}
    assert (by_port[8080]["action"], by_port[8080]["status"]) == ("excepted", "reported")
    assert by_port[8080]["reason"] == "excepted until 2099-01-01T00:00:00+00:00: vendor"
    assert (by_port[8081]["action"], by_port[8081]["status"]) == ("revoke", "revoked")
    assert by_port[8081]["reason"] == (
        "not in policy web; its exception expired 2020-01-01T00:00:00+00:00"
    )
    assert world.live(group) == {KEEP, kept, DEFAULT_EGRESS}
    assert {e.key for e in read_entries(str(journal))} == {lapsed}
