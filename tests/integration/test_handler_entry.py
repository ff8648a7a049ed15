"""The Lambda entry point itself: configuration, notifications, failure, fuzzing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import structlog
from hypothesis import HealthCheck, given, settings

from reconciler.cli import main
from reconciler.lambda_handler import handler
from reconciler.runtime import ReconcileFailed, container
from tests.eventfiles import load_event
from tests.policyfiles import write_policies
from tests.strategies import JSON, mutated_fixtures
from tests.world import DEFAULT_EGRESS, REGION, World, ingress

pytestmark = pytest.mark.fake_ec2  # decisions: the in-memory EC2 of tests/fake_ec2.py

POLICY = """
groups:
  - name: web
    match: {tags: {team: web}}
    ingress:
      - {protocol: tcp, ports: 443, from: [10.0.0.0/8]}
"""
SSH = ingress("tcp", (22, 22), "0.0.0.0/0")
KEEP = ingress("tcp", (443, 443), "10.0.0.0/8")


class FakeContext:
    """The attributes of a Lambda context object the handler reads."""

    aws_request_id = "req-1234"
    function_name = "sg-reconciler"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:sg-reconciler"


@pytest.fixture
def lambda_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inbox: tuple[str, str]
) -> Iterator[dict[str, str]]:
    """Environment of a deployed function, with a fresh container per test."""
    policies = write_policies(tmp_path / "policies", POLICY)
    topic, queue = inbox
    env = {
        "SG_RECONCILER_POLICIES": str(policies),
        "SG_RECONCILER_REGIONS": REGION,
        "SG_RECONCILER_TOPIC_ARN": topic,
        "QUEUE_URL": queue,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    container.cache_clear()
    yield env
    container.cache_clear()


def _messages(queue: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name=REGION)
    raw = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in raw]


def _authorize_event(group: str) -> dict[str, Any]:
    event = load_event("AuthorizeSecurityGroupIngress__panther-analysis__1")
    text = json.dumps(event).replace("sg-0d921df5d84f7270a", group)
    return json.loads(text)


def test_scheduled_event_reconciles_everything_and_notifies_once(
    lambda_env: dict[str, str],
) -> None:
    """A schedule tick fixes every managed group and publishes one run summary."""
    world = World.create(boto3.client("ec2", region_name=REGION))
    groups = [world.group(f"web-{i}", {"team": "web"}, [KEEP, SSH]) for i in range(3)]
    summary = handler(load_event("synthetic__scheduled_event"), FakeContext())
    assert summary["trigger"] == "schedule"
    assert len(summary["revoked"]) == 3
    assert all(world.live(g) == {KEEP, DEFAULT_EGRESS} for g in groups)
    messages = _messages(lambda_env["QUEUE_URL"])
    assert [m["Subject"] for m in messages] == [
        "sg-reconciler SCHEDULED RUN: 3 revoked, 0 failed, 0 errors"
    ]
    again = handler(load_event("synthetic__scheduled_event"), FakeContext())
    assert again["revoked"] == []
    assert _messages(lambda_env["QUEUE_URL"]) == []


def test_event_notification_says_who_what_and_what_was_done(
    lambda_env: dict[str, str],
) -> None:
    """The SNS message names the group, the rule, the actor, source IP, agent, time and id."""
    world = World.create(boto3.client("ec2", region_name=REGION))
    group = world.group("web", {"team": "web"}, [KEEP, (SSH, "for a minute")])
    event = _authorize_event(group)
    record = event
    summary = handler(event, FakeContext())
    assert len(summary["revoked"]) == 1
    (message,) = _messages(lambda_env["QUEUE_URL"])
    assert message["Subject"] == (
        f"sg-reconciler AUTO-MITIGATED: revoked 1 rule(s) on {group} (web)"
    )
    body = message["Message"]
    for fact in (
        group,
        "ingress tcp 22 from 0.0.0.0/0",
        record["userIdentity"]["arn"],
        record["sourceIPAddress"],
        record["userAgent"],
        record["eventTime"],
        record["eventID"],
        "=> revoked",
    ):
        assert fact in body, fact
    facts = json.loads(body.split("As JSON:\n", 1)[1])
    assert facts["verdict"] == "AUTO-MITIGATED"
    assert facts["rules"][0]["rule_id"] == summary["revoked"][0]


def test_sns_unavailable_still_revokes_and_reports_the_failure(
    lambda_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the topic gone, the revoke still happens and the summary carries the error."""
    monkeypatch.setenv(
        "SG_RECONCILER_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:does-not-exist"
    )
    container.cache_clear()
    world = World.create(boto3.client("ec2", region_name=REGION))
    group = world.group("web", {"team": "web"}, [KEEP, SSH])
    summary = handler(_authorize_event(group), FakeContext())
    assert len(summary["revoked"]) == 1
    assert world.live(group) == {KEEP, DEFAULT_EGRESS}
    assert summary["errors"][0].startswith(
        "cannot publish to arn:aws:sns:us-east-1:123456789012:does-not-exist"
    )


def test_report_mode_never_writes(
    lambda_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SG_RECONCILER_MODE=report lists what it would revoke and makes no write."""
    monkeypatch.setenv("SG_RECONCILER_MODE", "report")
    container.cache_clear()
    world = World.create(boto3.client("ec2", region_name=REGION))
    group = world.group("web", {"team": "web"}, [KEEP, SSH])
    summary = handler(_authorize_event(group), FakeContext())
    assert summary["revoked"] == []
    assert len(summary["would_revoke"]) == 1
    assert SSH in world.live(group)
    (message,) = _messages(lambda_env["QUEUE_URL"])
    assert message["Subject"].startswith("sg-reconciler DRIFT REPORTED: found 1 rule(s)")


def test_invalid_policies_raise_so_the_alarm_fires(
    lambda_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broken baseline makes a scheduled run raise ReconcileFailed after revoking nothing."""
    broken = write_policies(tmp_path / "broken", "groups: [")
    monkeypatch.setenv("SG_RECONCILER_POLICIES", str(broken))
    container.cache_clear()
    world = World.create(boto3.client("ec2", region_name=REGION))
    group = world.group("web", {"team": "web"}, [KEEP, SSH])
    with pytest.raises(ReconcileFailed) as raised:
        handler(load_event("synthetic__scheduled_event"), FakeContext())
    summary = json.loads(str(raised.value))
    assert summary["skipped_reason"] == "policies_invalid"
    assert "YAML syntax error" in summary["errors"][0]
    assert SSH in world.live(group)


def test_log_context_is_cleared_between_invocations(
    lambda_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A warm container does not carry one invocation's log context into the next."""
    handler({"unrelated": True}, FakeContext())
    capsys.readouterr()
    structlog.contextvars.bind_contextvars(leaked="yes")
    handler({"unrelated": True}, FakeContext())
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    (summary,) = [line for line in lines if line["event"] == "event_summary"]
    assert summary["skipped_reason"] == "malformed:unrecognised_shape"
    assert summary["request_id"] == "req-1234"
    assert "leaked" not in summary


def test_container_is_built_once(lambda_env: dict[str, str]) -> None:
    """Policies and clients are loaded once per container, not per event."""
    handler({"unrelated": True}, FakeContext())
    first = container()
    handler({"unrelated": True}, FakeContext())
    assert container() is first


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(event=JSON | mutated_fixtures())
def test_handler_never_raises_on_malformed_or_unrelated_input(
    lambda_env: dict[str, str], event: object
) -> None:
    """Arbitrary JSON and mutated real samples give a summary, never an exception."""
    summary = handler(event, FakeContext())
    assert summary["trigger"] in {"cloudtrail", "schedule", "ignored"}
    json.dumps(summary)


def test_handle_event_replays_a_file_locally(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sg-reconciler handle-event FILE` runs the handler and prints its summary."""
    group = world.group("web", {"team": "web"}, [KEEP, SSH])
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(_authorize_event(group)))
    policies = write_policies(tmp_path / "p", POLICY)
    code = main(["handle-event", str(event_file), "--policies", str(policies)])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert summary["group_ids"] == [group]
    assert len(summary["revoked"]) == 1
    assert world.live(group) == {KEEP, DEFAULT_EGRESS}


def test_handle_event_rejects_an_unreadable_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file that is not JSON is a one-line error and exit 1."""
    bad = tmp_path / "event.json"
    bad.write_text("{not json")
    assert main(["handle-event", str(bad), "--policies", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith(f"error: cannot read event {bad}: ")


# --- metrics: one Embedded Metric Format line per invocation, on stdout ------------------


def _emf_lines(out: str) -> list[dict[str, Any]]:
    """The stdout lines that are EMF documents, parsed."""
    docs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [d for d in docs if "_aws" in d]


def test_a_scheduled_run_prints_one_metric_line_with_its_counts(
    lambda_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Three groups with one extra rule each: one line, 3 drifted groups, 3 rules revoked."""
    world = World.create(boto3.client("ec2", region_name=REGION))
    for i in range(3):
        world.group(f"web-{i}", {"team": "web"}, [KEEP, SSH])
    capsys.readouterr()
    handler(load_event("synthetic__scheduled_event"), FakeContext())
    (line,) = _emf_lines(capsys.readouterr().out)
    assert line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "SgReconciler"
    assert (line["Trigger"], line["Mode"]) == ("schedule", "enforce")
    assert (line["DriftedGroups"], line["RulesRevoked"], line["Errors"]) == (3, 3, 0)
    assert line["Duration"] > 0


def test_an_ignored_event_is_counted_without_building_the_container(
    lambda_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A failed call (errorCode) gives a metric line with Trigger=ignored and no drift."""
    capsys.readouterr()
    handler(load_event("AuthorizeSecurityGroupIngress__panther-analysis__3"), FakeContext())
    (line,) = _emf_lines(capsys.readouterr().out)
    assert line["Trigger"] == "ignored"
    assert line["RulesRevoked"] == 0


def test_a_failed_run_is_counted_before_it_raises(
    lambda_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Invalid policies fail the invocation, and its metric line (Errors > 0) is still written."""
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "p.yaml").write_text("groups: [{name: x}]\n", encoding="utf-8")
    monkeypatch.setenv("SG_RECONCILER_POLICIES", str(bad))
    capsys.readouterr()
    with pytest.raises(ReconcileFailed):
        handler(load_event("synthetic__scheduled_event"), FakeContext())
    (line,) = _emf_lines(capsys.readouterr().out)
    assert line["Trigger"] == "schedule"
    assert line["Errors"] > 0
