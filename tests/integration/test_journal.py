"""The journal: every revoke recorded before its call and its outcome after (CLI and Lambda)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from structlog.testing import capture_logs

from reconciler.adapters.journal import FileJournal
from reconciler.adapters.policy_files import load_policies
from reconciler.cli import main
from reconciler.cli.options import AwsOptions
from reconciler.core.journal import JournalEntry, RunContext, parse_time
from reconciler.core.plan import Status
from reconciler.deploy.template import load_template, policy_documents
from reconciler.runtime import build_responder, run_event
from reconciler.service import Record, RunMode, RunOptions, Site, reconcile
from reconciler.settings import Settings
from reconciler.undo import UNDO_PERMISSIONS
from tests.deploy_stacks import TEMPLATE
from tests.eventfiles import load_event
from tests.faults import FaultyEC2
from tests.policyfiles import write_policies
from tests.world import DEFAULT_EGRESS, REGION, CallCounter, World, egress, ingress

pytestmark = pytest.mark.fake_ec2  # decisions: the in-memory EC2 of tests/fake_ec2.py

POLICY = """
groups:
  - name: web
    match: {tags: {team: web}}
    ingress:
      - {protocol: tcp, ports: 443, from: [10.0.0.0/8]}
    egress:
      - {protocol: all, to: [0.0.0.0/0]}
"""
KEEP = ingress("tcp", (443, 443), "10.0.0.0/8")
SSH = ingress("tcp", (22, 22), "0.0.0.0/0")
SMTP = egress("tcp", (25, 25), "0.0.0.0/0")
MOTO_CALLER = "arn:aws:sts::123456789012:user/moto"
BUCKET = "sg-reconciler-journal"


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    """The web baseline: https from 10/8 in, all traffic out."""
    return write_policies(tmp_path / "policies", POLICY)


@pytest.fixture
def cli_session(session: boto3.Session, monkeypatch: pytest.MonkeyPatch) -> boto3.Session:
    """The CLI runs on the test's session, so that its calls can be counted."""
    monkeypatch.setattr(AwsOptions, "session", lambda _self: session)
    return session


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _apply(policies: Path, *extra: str) -> int:
    return main(["apply", "--policies", str(policies), "--region", REGION, *extra])


# --- CLI ---------------------------------------------------------------------------------


def test_apply_journals_each_revoke_with_everything_needed_to_recreate_it(
    tmp_path: Path, world: World, policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One intent and one outcome line per revoke: rule, group, ids, time, trigger, actor."""
    group = world.group("web", {"team": "web"}, [KEEP, (SSH, "temp ssh")])
    rule_id = next(
        r["SecurityGroupRuleId"]
        for r in world.ec2.describe_security_group_rules(
            Filters=[{"Name": "group-id", "Values": [group]}]
        )["SecurityGroupRules"]
        if r.get("FromPort") == 22
    )
    journal = tmp_path / "state" / "journal.jsonl"
    assert _apply(policies, "--journal", str(journal)) == 0
    intent, outcome = _lines(journal)
    rule = {
        "account": None,
        "region": REGION,
        "group_id": group,
        "policy": "web",
        "rule_id": rule_id,
        "direction": "ingress",
        "protocol": "tcp",
        "from_port": 22,
        "to_port": 22,
        "source": "0.0.0.0/0",
        "description": "temp ssh",
        "trigger": "cli-apply",
        "actor": MOTO_CALLER,
        "event_id": None,
        "guardrail": None,
    }
    assert intent == {
        **rule,
        "phase": "intent",
        "run_id": intent["run_id"],
        "time": intent["time"],
        "status": None,
        "error": None,
    }
    assert outcome == {
        **rule,
        "phase": "outcome",
        "run_id": intent["run_id"],
        "time": outcome["time"],
        "status": "revoked",
        "error": None,
    }
    assert re.fullmatch(r"[0-9a-f]{32}", intent["run_id"])
    assert parse_time(intent["time"]) <= parse_time(outcome["time"]) <= datetime.now(UTC)
    logs = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    (written,) = [r for r in logs if r["event"] == "journal_written"]
    assert (written["path"], written["entries"], written["run_id"], written["undo"]) == (
        str(journal),
        2,
        intent["run_id"],
        f"sg-reconciler undo --journal {journal} --since {intent['time']}",
    )


def test_apply_appends_to_the_default_journal(
    world: World, policies: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without --journal, apply appends to ./.sg-reconciler/journal.jsonl."""
    monkeypatch.delenv("SG_RECONCILER_JOURNAL")
    monkeypatch.chdir(tmp_path)
    world.group("web", {"team": "web"}, [KEEP, SSH])
    assert _apply(policies) == 0
    world.group("web2", {"team": "web"}, [KEEP, SMTP])
    assert _apply(policies) == 0
    lines = _lines(tmp_path / ".sg-reconciler" / "journal.jsonl")
    assert [(e["phase"], e["from_port"]) for e in lines] == [
        ("intent", 22),
        ("outcome", 22),
        ("intent", 25),
        ("outcome", 25),
    ]
    assert lines[0]["run_id"] != lines[2]["run_id"]


def test_dry_run_and_no_journal_write_no_journal(
    tmp_path: Path, world: World, policies: Path
) -> None:
    """--dry-run creates no journal; --no-journal revokes without one."""
    group = world.group("web", {"team": "web"}, [KEEP, SSH])
    journal = tmp_path / "journal.jsonl"
    assert _apply(policies, "--journal", str(journal), "--dry-run") == 0
    assert not journal.exists()
    assert _apply(policies, "--journal", str(journal), "--no-journal") == 0
    assert not journal.exists()
    assert world.live(group) == {KEEP, DEFAULT_EGRESS}


def test_an_unwritable_journal_stops_apply_before_any_call(
    tmp_path: Path,
    world: World,
    policies: Path,
    cli_session: boto3.Session,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A journal that cannot be opened: one error line, exit 1, no AWS call, group unchanged."""
    group = world.group("web", {"team": "web"}, [KEEP, SSH])
    blocker = tmp_path / "blocker"
    blocker.write_text("", encoding="utf-8")
    counter = CallCounter(cli_session)
    assert _apply(policies, "--journal", str(blocker / "journal.jsonl")) == 1
    captured = capsys.readouterr()
    assert captured.err == (
        f"error: cannot open journal {blocker}/journal.jsonl: {blocker} is not a directory;"
        " nothing was changed (choose a writable --journal PATH)\n"
    )
    assert captured.out == ""
    assert sum(counter.calls.values()) == 0
    assert world.live(group) == {KEEP, SSH, DEFAULT_EGRESS}


def test_a_journal_that_fails_mid_run_stops_every_revoke(
    world: World, policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """When the intent cannot be written (disk full), that revoke is not made: exit 1."""
    group = world.group("web", {"team": "web"}, [KEEP, SSH])
    assert _apply(policies, "--journal", "/dev/full", "--output", "json") == 1
    (change,) = json.loads(capsys.readouterr().out)["changes"]
    assert (change["status"], change["error"]) == ("failed", "journal unavailable: not revoked")
    assert world.live(group) == {KEEP, SSH, DEFAULT_EGRESS}


def test_the_intent_is_on_disk_before_the_revoke_call(
    tmp_path: Path, world: World, session: boto3.Session, policies: Path
) -> None:
    """At the moment EC2 is asked to revoke, the journal file already holds each intent."""
    group = world.group("web", {"team": "web"}, [KEEP, SSH, SMTP])
    path = tmp_path / "journal.jsonl"
    seen: list[tuple[set[str], set[str], set[str]]] = []

    def check_journal(name: str, kwargs: dict[str, Any]) -> str | None:
        if name.startswith("revoke_security_group_"):
            lines = _lines(path)
            intents = {e["rule_id"] for e in lines if e["phase"] == "intent"}
            outcomes = {e["rule_id"] for e in lines if e["phase"] == "outcome"}
            seen.append((set(kwargs["SecurityGroupRuleIds"]), intents, outcomes))
        return None  # never inject a fault: only look

    real = session.client("ec2")
    journal = FileJournal(path)
    context = RunContext(run_id="r1", trigger="test", time=datetime.now(UTC).isoformat())
    result = reconcile(
        load_policies(policies),
        [Site.of(lambda _region: FaultyEC2(real, check_journal), [REGION])],
        options=RunOptions(mode=RunMode.ENFORCE),
        record=Record(journal, context),
    )
    journal.close()
    assert [o.status for o in result.outcomes] == [Status.REVOKED, Status.REVOKED]
    assert len(seen) == 2  # one call per direction
    for ids, intents, outcomes in seen:
        assert ids <= intents
        assert not ids & outcomes
    assert world.live(group) == {KEEP, DEFAULT_EGRESS}
    assert sorted(e["phase"] for e in _lines(path)) == ["intent"] * 2 + ["outcome"] * 2


# --- Lambda ------------------------------------------------------------------------------


def _lambda_env(policies: Path, **extra: str) -> dict[str, str]:
    return {
        "SG_RECONCILER_POLICIES": str(policies),
        "SG_RECONCILER_REGIONS": REGION,
        "AWS_REGION": REGION,
        **extra,
    }


def _objects(s3: Any, bucket: str) -> dict[str, list[dict[str, Any]]]:
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    keys = [o["Key"] for o in listed if not o["Key"].startswith("state/")]  # the schedule's
    return {
        key: [
            json.loads(line)
            for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines()
        ]
        for key in keys
    }


def test_a_scheduled_run_writes_one_encrypted_object_with_intents_and_outcomes(
    world: World, session: boto3.Session, policies: Path
) -> None:
    """One object per run under prefix/YYYY/MM/DD/run.jsonl, SSE, every entry in it."""
    s3 = session.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    groups = [world.group(f"web{i}", {"team": "web"}, [KEEP, SSH, SMTP]) for i in range(2)]
    responder = build_responder(
        _lambda_env(policies, SG_RECONCILER_JOURNAL_BUCKET=BUCKET), session=session
    )
    summary, failed = run_event(load_event("synthetic__scheduled_event"), responder)
    assert not failed
    assert summary["errors"] == []
    ((key, entries),) = _objects(s3, BUCKET).items()
    run_id = entries[0]["run_id"]
    today = datetime.now(UTC)
    assert key == f"journal/{today:%Y/%m/%d}/{run_id}.jsonl"
    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ServerSideEncryption"] == "AES256"
    assert {e["run_id"] for e in entries} == {run_id}
    assert {e["trigger"] for e in entries} == {"schedule"}
    assert {(e["phase"], e["group_id"], e["from_port"]) for e in entries} == {
        (phase, group, port)
        for phase in ("intent", "outcome")
        for group in groups
        for port in (22, 25)
    }
    assert {e["status"] for e in entries if e["phase"] == "outcome"} == {"revoked"}
    assert all(JournalEntry.from_dict(e) for e in entries)

    again, _ = run_event(load_event("synthetic__scheduled_event"), responder)
    assert again["revoked"] == []
    assert len(_objects(s3, BUCKET)) == 1  # nothing revoked: no new object


def test_an_event_run_records_the_call_and_its_actor(
    world: World, session: boto3.Session, policies: Path
) -> None:
    """The journal of an event-driven revoke names the CloudTrail event, its id and actor."""
    s3 = session.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    group = world.group("web", {"team": "web"}, [KEEP, (SSH, "opened by hand")])
    event = json.loads(
        json.dumps(load_event("AuthorizeSecurityGroupIngress__panther-analysis__1")).replace(
            "sg-0d921df5d84f7270a", group
        )
    )
    responder = build_responder(
        _lambda_env(
            policies, SG_RECONCILER_JOURNAL_BUCKET=BUCKET, SG_RECONCILER_JOURNAL_PREFIX="/j/"
        ),
        session=session,
    )
    summary, failed = run_event(event, responder)
    assert not failed
    ((key, entries),) = _objects(s3, BUCKET).items()
    assert key.startswith("j/")
    assert [(e["phase"], e["status"]) for e in entries] == [
        ("intent", None),
        ("outcome", "revoked"),
    ]
    for entry in entries:
        assert entry["trigger"] == "cloudtrail:AuthorizeSecurityGroupIngress"
        assert entry["actor"] == "arn:aws:sts::112233445566:assumed-role/Operator/ryan@example.com"
        assert entry["event_id"] == "42155429-7e8e-43b5-9b5e-6953f80d51d5"
        assert entry["description"] == "opened by hand"
        assert entry["rule_id"] == summary["revoked"][0]


def test_with_the_bucket_gone_revokes_still_happen_are_logged_and_the_error_is_reported(
    world: World, session: boto3.Session, policies: Path
) -> None:
    """S3 unavailable: the rule is revoked, every entry is in the log, errors says why, and
    the operators get a notice naming the run whose entries are only in the log."""
    group = world.group("web", {"team": "web"}, [KEEP, SSH])
    sns, sqs = session.client("sns"), session.client("sqs")
    topic = sns.create_topic(Name="sg-reconciler")["TopicArn"]
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn["Attributes"]["QueueArn"])
    responder = build_responder(
        _lambda_env(
            policies,
            SG_RECONCILER_JOURNAL_BUCKET="no-such-journal-bucket",
            SG_RECONCILER_TOPIC_ARN=topic,
        ),
        session=session,
    )
    with capture_logs() as logs:
        summary, failed = run_event(load_event("synthetic__scheduled_event"), responder)
    assert not failed
    assert len(summary["revoked"]) == 1
    assert world.live(group) == {KEEP, DEFAULT_EGRESS}
    state, error = summary["errors"]  # the schedule's state object is in the same bucket
    assert state.startswith("state: cannot read s3://no-such-journal-bucket/state/managed.json:")
    assert error.startswith("journal: cannot write s3://no-such-journal-bucket/journal/")
    assert "NoSuchBucket" in error
    journaled = [e for e in logs if e["event"] == "journal"]
    assert [(e["phase"], e["rule_id"]) for e in journaled] == [
        ("intent", summary["revoked"][0]),
        ("outcome", summary["revoked"][0]),
    ]
    errors = [e["event"] for e in logs if e["log_level"] == "error"]
    assert errors == ["state_unreadable", "journal_unavailable"]
    received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    notices = {json.loads(m["Body"])["Subject"]: json.loads(m["Body"]) for m in received}
    run_id = journaled[0]["run_id"]
    notice = notices[f"sg-reconciler WARNING: journal of run {run_id} not in S3"]
    assert notice["Message"].startswith(
        f"The journal of run {run_id} (schedule, started {journaled[0]['time']}) could not be"
        f" written to S3: {error}"
    )
    assert f'"run_id": "{run_id}"' in notice["Message"]


def test_without_a_bucket_the_journal_is_the_log(
    world: World, session: boto3.Session, policies: Path
) -> None:
    """No bucket configured: each entry is a ``journal`` log line and S3 is never called."""
    world.group("web", {"team": "web"}, [KEEP, SSH])
    s3_calls: list[str] = []
    session.events.register("before-call.s3", lambda model, **_: s3_calls.append(model.name))
    responder = build_responder(_lambda_env(policies), session=session)
    with capture_logs() as logs:
        summary, _ = run_event(load_event("synthetic__scheduled_event"), responder)
    journaled = [e for e in logs if e["event"] == "journal"]
    assert [(e["phase"], e["trigger"]) for e in journaled] == [
        ("intent", "schedule"),
        ("outcome", "schedule"),
    ]
    assert JournalEntry.from_dict(
        {k: v for k, v in journaled[1].items() if k not in ("event", "log_level")}
    ).status == ("revoked")
    assert summary["errors"] == []
    assert s3_calls == []


def test_a_bad_journal_bucket_name_is_a_configuration_error() -> None:
    """SG_RECONCILER_JOURNAL_BUCKET must be a bucket name; the error names the variable."""
    with pytest.raises(ValueError, match=r"^SG_RECONCILER_JOURNAL_BUCKET: String should match"):
        Settings.from_env({"AWS_REGION": REGION, "SG_RECONCILER_JOURNAL_BUCKET": "s3://x/y"})
    settings = Settings.from_env({"AWS_REGION": REGION})
    assert (settings.journal_bucket, settings.journal_prefix) == (None, "journal")


# --- template ----------------------------------------------------------------------------


def test_the_stack_creates_a_private_versioned_encrypted_journal_bucket() -> None:
    """Versioned, SSE, public access blocked, TLS only, retained, named in the outputs."""
    template = load_template(TEMPLATE)
    bucket = template["Resources"]["JournalBucket"]
    props = bucket["Properties"]
    assert bucket["DeletionPolicy"] == "Retain"
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"
    ] == {"SSEAlgorithm": "AES256"}
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    (deny,) = template["Resources"]["JournalBucketPolicy"]["Properties"]["PolicyDocument"][
        "Statement"
    ]
    assert (deny["Effect"], deny["Principal"], deny["Action"]) == ("Deny", "*", "s3:*")
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert template["Outputs"]["JournalBucketName"]["Value"] == {"Ref": "JournalBucket"}
    env = template["Resources"]["ReconcilerFunction"]["Properties"]["Environment"]["Variables"]
    assert env["SG_RECONCILER_JOURNAL_BUCKET"] == {"Ref": "JournalBucket"}
    assert env["SG_RECONCILER_JOURNAL_PREFIX"] == "journal"


def test_the_role_may_only_put_journal_objects_and_never_authorize() -> None:
    """The role may only put journal objects (and read and rewrite the schedule's one state
    object under state/*); restore is not allowed."""
    template = load_template(TEMPLATE)
    statements = [
        statement
        for policy in template["Resources"]["ReconcilerRole"]["Properties"]["Policies"]
        for document in policy_documents(policy["PolicyDocument"])
        for statement in document["Statement"]
    ]
    actions = {
        action
        for s in statements
        for action in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }
    s3 = [s for s in statements if "s3:" in str(s["Action"])]
    assert [(s["Action"], s["Resource"]) for s in s3] == [
        ("s3:PutObject", {"Fn::Sub": "${JournalBucket.Arn}/journal/*"}),
        (["s3:GetObject", "s3:PutObject"], {"Fn::Sub": "${JournalBucket.Arn}/state/*"}),
    ]
    assert not actions & UNDO_PERMISSIONS
