"""A rule edited between the reconciler's read and its revoke (ModifySecurityGroupRules).

Rules are read, planned, then revoked by id; a paced run can take seconds between the two.
EC2's revoke response says what it removed (tests/moto_revoke.py gives moto AWS's response),
and that, not the plan, is what the journal records and the operator is told.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from structlog.testing import capture_logs

from reconciler.cli import main
from reconciler.cli.options import AwsOptions
from reconciler.runtime import build_responder, run_event
from tests.eventfiles import load_event
from tests.moto_revoke import aws_like_revoke_responses, edited_before_revoke
from tests.policyfiles import write_policies
from tests.world import DEFAULT_EGRESS, REGION, World, ingress

POLICY = """
groups:
  - name: web
    match: {tags: {team: web}}
    ingress:
      - {protocol: tcp, ports: 443, from: [10.0.0.0/8, 172.16.0.0/12]}
"""
KEEP = ingress("tcp", (443, 443), "10.0.0.0/8")
ALLOWED = ingress("tcp", (443, 443), "172.16.0.0/12")  # in the baseline, not live
SSH = ingress("tcp", (22, 22), "0.0.0.0/0")


@pytest.fixture
def cli_session(session: boto3.Session, monkeypatch: pytest.MonkeyPatch) -> boto3.Session:
    """The CLI runs on the test's session, whose revoke responses are AWS-like."""
    monkeypatch.setattr(AwsOptions, "session", lambda _self: session)
    return session


def _apply(policies: Path, journal: Path) -> int:
    return main(
        ["apply", "--policies", str(policies), "--region", REGION, "--journal", str(journal)]
    )


def _apply_edited(
    session: boto3.Session, group: str, rule_id: str, edit: dict[str, Any], policies: Path
) -> int:
    """``apply`` with AWS-like revoke responses, ``rule_id`` edited to ``edit`` before its revoke
    (protocol tcp, the rest of ``edit`` as ModifySecurityGroupRules fields)."""
    rule = {"IpProtocol": "tcp", **edit}
    with (
        aws_like_revoke_responses(session),
        edited_before_revoke(session, rule_id, group, rule),
    ):
        return _apply(policies, policies.parent / "journal.jsonl")


def _staged(world: World, tmp_path: Path, description: str) -> tuple[str, str, Path, Path]:
    """A managed group with ssh drift described ``description``: (group, the drift's rule
    id, policies, journal path)."""
    group = world.group("web", {"team": "web"}, [KEEP, (SSH, description)])
    rules = world.ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [group]}]
    )["SecurityGroupRules"]
    (rule_id,) = (r["SecurityGroupRuleId"] for r in rules if r.get("Description") == description)
    policies = write_policies(tmp_path / "policies", POLICY)
    return group, str(rule_id), policies, policies.parent / "journal.jsonl"


def test_a_rule_edited_after_the_read_is_journaled_as_removed_and_reported(
    tmp_path: Path,
    world: World,
    cli_session: boto3.Session,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Drift edited into a baseline rule before its revoke: exit 1 naming both rules, the
    journal holds the rule EC2 removed, and restore --rule-id brings that one back."""
    group, rule_id, policies, journal = _staged(world, tmp_path, "ssh for a minute")
    fixed = {
        "FromPort": 443,
        "ToPort": 443,
        "CidrIpv4": "172.16.0.0/12",
        "Description": "fixed by hand",
    }
    assert _apply_edited(cli_session, group, rule_id, fixed, policies) == 1
    out = capsys.readouterr().out
    assert (
        f"error: {group} {rule_id}: changed after it was read: planned ingress tcp 22 from"
        " 0.0.0.0/0, EC2 removed ingress tcp 443 from 172.16.0.0/12; if the baseline allows"
        f" that rule, put it back (sg-reconciler undo --rule-id {rule_id})"
    ) in out.splitlines()
    assert world.live(group) == {KEEP, DEFAULT_EGRESS}
    entries = [json.loads(line) for line in journal.read_text().splitlines()]
    intent, outcome = (e for e in entries if e["rule_id"] == rule_id)
    assert (intent["from_port"], intent["source"]) == (22, "0.0.0.0/0")
    assert (outcome["status"], outcome["from_port"], outcome["source"]) == (
        "revoked",
        443,
        "172.16.0.0/12",
    )
    assert outcome["description"] == "fixed by hand"

    assert main(["restore", "--journal", str(journal), "--rule-id", rule_id]) == 0
    assert world.live(group) == {KEEP, ALLOWED, DEFAULT_EGRESS}
    assert world.descriptions(group)[ALLOWED] == "fixed by hand"
    assert main(["plan", "--policies", str(policies), "--region", REGION]) == 0


def test_an_unchanged_rule_is_journaled_with_the_description_ec2_removed(
    tmp_path: Path,
    world: World,
    cli_session: boto3.Session,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Only the description edited since the read: no error, the journal keeps the new one."""
    group, rule_id, policies, journal = _staged(world, tmp_path, "before")
    relabelled = {"FromPort": 22, "ToPort": 22, "CidrIpv4": "0.0.0.0/0", "Description": "after"}
    assert _apply_edited(cli_session, group, rule_id, relabelled, policies) == 0
    assert "error:" not in capsys.readouterr().out
    outcome = [json.loads(line) for line in journal.read_text().splitlines()][-1]
    assert (outcome["status"], outcome["source"], outcome["description"]) == (
        "revoked",
        "0.0.0.0/0",
        "after",
    )


def test_the_lambda_reports_a_rule_edited_after_the_read(
    tmp_path: Path, world: World, session: boto3.Session
) -> None:
    """On the event path the summary's errors name the rule EC2 removed; the log journal
    records it."""
    group, rule_id, policies, _ = _staged(world, tmp_path, "ssh for a minute")
    event = json.loads(
        json.dumps(load_event("AuthorizeSecurityGroupIngress__panther-analysis__1")).replace(
            "sg-0d921df5d84f7270a", group
        )
    )
    responder = build_responder(
        {"SG_RECONCILER_POLICIES": str(policies), "SG_RECONCILER_REGIONS": REGION},
        session=session,
    )
    fixed = {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIpv4": "172.16.0.0/12"}
    with (
        aws_like_revoke_responses(session),
        edited_before_revoke(session, rule_id, group, fixed),
        capture_logs() as logs,
    ):
        summary, failed = run_event(event, responder)
    assert not failed  # the revoke happened; the error is for people, not a retry
    assert summary["revoked"] == [rule_id]
    assert summary["errors"] == [
        f"{group} {rule_id}: changed after it was read: planned ingress tcp 22 from 0.0.0.0/0,"
        " EC2 removed ingress tcp 443 from 172.16.0.0/12; if the baseline allows that rule,"
        f" put it back (sg-reconciler undo --rule-id {rule_id})"
    ]
    (outcome,) = [e for e in logs if e["event"] == "journal" and e["phase"] == "outcome"]
    assert (outcome["from_port"], outcome["source"]) == (443, "172.16.0.0/12")
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["revoked_rule_changed"]
