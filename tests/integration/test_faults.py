"""Faults during a run: throttling storms, races, partial failures, retries, SNS and S3 down.

Faults are injected two ways (tests/faults.py): ``SendFaults`` answers requests below
botocore's retries, so the clients built by ``AwsClients`` retry them with their real
configuration (standard mode, ``max_attempts`` 8); ``FaultyEC2`` wraps a client to stage
someone else's change, or a refusal, just before a call. Backoff delays are computed as
botocore computes them but not slept. After every fault: no baseline or excepted rule was
journaled for revoke or is missing, every outcome in the journal follows its intent, and once
the faults stop a second run leaves exactly the baseline (and the excepted rule).
"""

from __future__ import annotations

import io
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import structlog
from botocore.retries.standard import ExponentialBackoff
from structlog.testing import capture_logs

from reconciler.adapters.aws import AwsClients
from reconciler.adapters.journal import FileJournal, read_entries
from reconciler.adapters.policy_files import load_policies
from reconciler.core.journal import JournalEntry, RunContext
from reconciler.core.plan import Action, Status
from reconciler.log import configure_logging
from reconciler.responder import Responder
from reconciler.runtime import build_responder, run_event
from reconciler.service import Record, RunMode, RunOptions, RunResult, Site, reconcile
from tests.eventfiles import load_event
from tests.faults import FaultyEC2, SendFaults, before_first, reject_rule_id
from tests.policyfiles import write_policies
from tests.world import DEFAULT_EGRESS, REGION, World, ingress

POLICY = """
groups:
  - name: web
    match: {tags: {team: web}}
    ingress:
      - {protocol: tcp, ports: 443, from: 10.0.0.0/8, description: internal https}
    exceptions:
      - protocol: tcp
        ports: 8080
        from: 203.0.113.7/32
        expires: 2099-01-01T00:00:00Z
        reason: vendor debugging
"""
KEEP = ingress("tcp", (443, 443), "10.0.0.0/8")
EXCEPTED = ingress("tcp", (8080, 8080), "203.0.113.7/32")
DRIFT = [
    ingress("tcp", (22, 22), "0.0.0.0/0"),
    ingress("tcp", (23, 23), "0.0.0.0/0"),
    ingress("tcp", (3389, 3389), "::/0"),
]
END_STATE = {KEEP, EXCEPTED, DEFAULT_EGRESS}
BUCKET = "journal-bucket"
ATTEMPTS = 9  # one call and max_attempts=8 retries (AwsClients' standard retry mode)


@pytest.fixture(autouse=True)
def backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """botocore's backoff delays, computed as usual and recorded, but not slept."""
    delays: list[float] = []
    compute = ExponentialBackoff.delay_amount

    def record(self: ExponentialBackoff, context: Any) -> float:
        delays.append(compute(self, context))
        return 0.0

    monkeypatch.setattr(ExponentialBackoff, "delay_amount", record)
    return delays


@pytest.fixture
def info_logging() -> Iterator[None]:
    """Logging at INFO whatever an earlier test left (the demo sets WARNING); restored after."""
    saved = structlog.get_config()
    configure_logging(stream=io.StringIO(), json=True, level="INFO")
    yield
    structlog.configure(**saved)


@dataclass
class Scene:
    """Two managed groups, each with its baseline rule, an excepted rule and three drifted ones."""

    world: World
    groups: list[str]
    drift_ids: dict[str, str]  # rule id -> group id
    policies: Path
    journal: Path

    def rule_id(self, group: str, port: int) -> str:
        """The live rule id of a drifted rule of ``group`` by port."""
        items = self.world.ec2.describe_security_group_rules(
            Filters=[{"Name": "group-id", "Values": [group]}]
        )["SecurityGroupRules"]
        (found,) = [i["SecurityGroupRuleId"] for i in items if i.get("FromPort") == port]
        return str(found)

    def run(self, clients: Callable[[str], Any]) -> RunResult:
        """One apply, as the CLI runs it, journaled to the scene's file."""
        writer = FileJournal(self.journal)
        context = RunContext(
            run_id=uuid.uuid4().hex, trigger="cli-apply", time=datetime.now(UTC).isoformat()
        )
        try:
            return reconcile(
                load_policies(self.policies),
                [Site.of(clients, [REGION])],
                options=RunOptions(mode=RunMode.ENFORCE),
                record=Record(writer, context),
            )
        finally:
            writer.close()

    def entries(self) -> list[JournalEntry]:
        """Every journal entry of every run so far, in order."""
        return read_entries(str(self.journal)) if self.journal.exists() else []


@pytest.fixture
def scene(tmp_path: Path, world: World) -> Scene:
    """The groups, their policy and a journal path."""
    groups = [world.group(name, {"team": "web"}, [KEEP, EXCEPTED, *DRIFT]) for name in "ab"]
    s = Scene(world, groups, {}, write_policies(tmp_path / "p", POLICY), tmp_path / "j.jsonl")
    s.drift_ids = {s.rule_id(g, k.from_port or 0): g for g in groups for k in DRIFT}
    return s


def sut_clients() -> tuple[boto3.Session, AwsClients]:
    """A fresh session for the system under test (faults attach to it, not to the set-up)."""
    session = boto3.Session(region_name=REGION)
    return session, AwsClients(session)


def assert_safe(scene: Scene, entries: list[JournalEntry]) -> None:
    """Nothing protected was ever meant to go or is gone; each outcome follows its intent."""
    assert {e.key for e in entries}.isdisjoint({KEEP, EXCEPTED})
    assert {e.rule_id for e in entries} <= set(scene.drift_ids)
    for group in scene.groups:
        if group in existing_groups(scene):
            assert {KEEP, EXCEPTED} <= scene.world.live(group)
    seen: set[tuple[str, str | None]] = set()
    for entry in entries:
        if entry.phase == "intent":
            seen.add((entry.run_id, entry.rule_id))
        else:
            assert (entry.run_id, entry.rule_id) in seen, entry


def existing_groups(scene: Scene) -> set[str]:
    """The scene's groups that still exist."""
    found = scene.world.ec2.describe_security_groups(
        Filters=[{"Name": "group-id", "Values": scene.groups}]
    )["SecurityGroups"]
    return {g["GroupId"] for g in found}


def assert_converges(
    scene: Scene,
    *,
    gone_by_others: frozenset[str] = frozenset(),
    journaled: tuple[JournalEntry, ...] = (),
) -> None:
    """With the faults stopped, a second run leaves exactly the baseline and the excepted rule,
    and every drifted rule we removed was journaled revoked exactly once (in ``journaled``,
    the Lambda's, or the runs' file)."""
    result = scene.run(sut_clients()[1].ec2)
    assert not result.failed, result.error_messages()
    for group in existing_groups(scene):
        assert scene.world.live(group) == END_STATE
    entries = [*journaled, *scene.entries()]
    assert_safe(scene, entries)
    revoked = [e.rule_id for e in entries if e.status == Status.REVOKED.value]
    assert len(revoked) == len(set(revoked))
    present = {i for i, g in scene.drift_ids.items() if g in existing_groups(scene)}
    assert set(revoked) == present - gone_by_others
    assert {e.rule_id for e in entries if e.phase == "intent"} >= present


def statuses(result: RunResult) -> dict[str, str]:
    """Rule id -> status of every revoke of a run (the excepted rules are only reported)."""
    return {
        o.change.rule_id or "": o.status.value
        for o in result.outcomes
        if o.change.action is Action.REVOKE
    }


# --- the CLI's run ----------------------------------------------------------------------------


def test_a_throttling_storm_is_ridden_out_by_the_clients_retries(
    scene: Scene, backoff: list[float]
) -> None:
    """RequestLimitExceeded on reads and revokes (fewer than the retries) costs retries only:
    the run revokes all drift at once."""
    session, clients = sut_clients()
    faults = SendFaults().attach(session)
    faults.throttle("DescribeSecurityGroups", times=3)
    faults.throttle("DescribeSecurityGroupRules", times=3)
    faults.throttle("RevokeSecurityGroupIngress", times=5)
    result = scene.run(clients.ec2)
    assert not result.failed, result.error_messages()
    assert set(statuses(result).values()) == {"revoked"}
    assert sum(faults.injected.values()) == len(backoff) == 11
    assert faults.sent["RevokeSecurityGroupIngress"] == 2  # one batch per group, in the end
    assert_safe(scene, scene.entries())
    assert_converges(scene)


def test_a_storm_outlasting_the_retries_fails_each_batch_unsplit_then_the_next_run_fixes_it(
    scene: Scene,
) -> None:
    """Throttled past max_attempts, each group's batch fails whole (no per-rule retry storm),
    nothing is revoked, and the journal says failed; the next run revokes everything."""
    session, clients = sut_clients()
    faults = SendFaults().attach(session)
    faults.throttle("RevokeSecurityGroupIngress")
    result = scene.run(clients.ec2)
    assert result.failed
    assert set(statuses(result).values()) == {"failed"}
    revokes = [o for o in result.outcomes if o.change.action is Action.REVOKE]
    assert all("RequestLimitExceeded" in (o.error or "") for o in revokes)
    assert faults.injected["RevokeSecurityGroupIngress"] == 2 * ATTEMPTS
    for group in scene.groups:
        assert scene.world.live(group) == {*END_STATE, *DRIFT}
    entries = scene.entries()
    assert {e.status for e in entries if e.phase == "outcome"} == {"failed"}
    assert_safe(scene, entries)
    faults.stop()
    assert_converges(scene)


def test_a_group_deleted_mid_run_counts_as_already_absent(scene: Scene) -> None:
    """A group deleted just before its revoke is already_absent; the other group is fixed."""
    a, b = scene.groups
    _, clients = sut_clients()
    delete_b = before_first(
        "revoke_security_group_ingress",
        lambda: scene.world.ec2.delete_security_group(GroupId=b),
        group_id=b,
    )
    faulty = FaultyEC2(clients.ec2(REGION), delete_b)
    result = scene.run(lambda _region: faulty)
    assert not result.failed, result.error_messages()
    by_group: dict[str, set[str]] = {}
    for outcome in result.outcomes:
        if outcome.change.action is Action.REVOKE:
            by_group.setdefault(outcome.change.group_id, set()).add(outcome.status.value)
    assert by_group == {a: {"revoked"}, b: {"already_absent"}}
    assert existing_groups(scene) == {a}
    assert_safe(scene, scene.entries())
    assert_converges(scene)


def test_rules_revoked_by_someone_else_meanwhile_are_already_absent(scene: Scene) -> None:
    """A drifted rule someone else revokes between the read and our call is already_absent; the
    group is re-read and the rest revoked in a second call."""
    a, _ = scene.groups
    theirs = scene.rule_id(a, 22)
    _, clients = sut_clients()
    someone = before_first(
        "revoke_security_group_ingress",
        lambda: scene.world.ec2.revoke_security_group_ingress(
            GroupId=a, SecurityGroupRuleIds=[theirs]
        ),
        group_id=a,
    )
    faulty = FaultyEC2(clients.ec2(REGION), someone)
    result = scene.run(lambda _region: faulty)
    assert not result.failed, result.error_messages()
    status = statuses(result)
    assert status.pop(theirs) == "already_absent"
    assert set(status.values()) == {"revoked"}
    revokes_of_a = [k for n, k in faulty.calls if n.startswith("revoke_") and k["GroupId"] == a]
    assert len(revokes_of_a) == 2
    assert_safe(scene, scene.entries())
    assert_converges(scene, gone_by_others=frozenset({theirs}))


def test_one_rule_rejected_in_a_batch_fails_alone_and_the_rest_are_revoked(scene: Scene) -> None:
    """EC2 refusing one id fails the whole batch call; the revoker re-reads the group and
    revokes each rule alone, so only that rule fails, and the next run revokes it."""
    a, b = scene.groups
    bad = scene.rule_id(a, 23)
    _, clients = sut_clients()
    rejecting = reject_rule_id(bad, "InvalidParameterValue")
    faulty = FaultyEC2(clients.ec2(REGION), rejecting)
    result = scene.run(lambda _region: faulty)
    assert result.failed
    status = statuses(result)
    assert status.pop(bad) == "failed"
    assert set(status.values()) == {"revoked"}
    (failed,) = [o for o in result.outcomes if o.status is Status.FAILED]
    assert (failed.error or "").startswith("InvalidParameterValue: ")
    revokes_of_a = [k for n, k in faulty.calls if n.startswith("revoke_") and k["GroupId"] == a]
    assert [len(k["SecurityGroupRuleIds"]) for k in revokes_of_a] == [3, 1, 1, 1]
    assert scene.world.live(a) == {*END_STATE, ingress("tcp", (23, 23), "0.0.0.0/0")}
    assert scene.world.live(b) == END_STATE
    assert_safe(scene, scene.entries())
    assert_converges(scene)


@pytest.mark.parametrize("code", ["RequestLimitExceeded", "UnauthorizedOperation"])
def test_a_batch_refused_for_every_rule_alike_is_not_split(scene: Scene, code: str) -> None:
    """Throttled (past the retries) or denied, a batch fails whole in one call per group."""
    _, clients = sut_clients()
    faulty = FaultyEC2(
        clients.ec2(REGION), lambda name, _kwargs: code if name.startswith("revoke_") else None
    )
    result = scene.run(lambda _region: faulty)
    assert set(statuses(result).values()) == {"failed"}
    assert len([n for n, _ in faulty.calls if n.startswith("revoke_")]) == 2
    assert_safe(scene, scene.entries())
    assert_converges(scene)


# --- the Lambda ---------------------------------------------------------------------------------


def lambda_env(scene: Scene, **extra: str) -> dict[str, str]:
    """A deployed function's environment with a journal bucket."""
    return {
        "SG_RECONCILER_POLICIES": str(scene.policies),
        "SG_RECONCILER_REGIONS": REGION,
        "SG_RECONCILER_JOURNAL_BUCKET": BUCKET,
        **extra,
    }


def authorize_event(group: str) -> dict[str, Any]:
    """A real AuthorizeSecurityGroupIngress record, retargeted to ``group``."""
    event = load_event("AuthorizeSecurityGroupIngress__panther-analysis__1")
    loaded: dict[str, Any] = json.loads(json.dumps(event).replace("sg-0d921df5d84f7270a", group))
    return loaded


def s3_entries(session: boto3.Session) -> list[JournalEntry]:
    """Every entry of every run object in the journal bucket."""
    return read_entries(f"s3://{BUCKET}/journal", s3=session.client("s3"))


@pytest.fixture
def bucket(session: boto3.Session) -> str:
    """The Lambda's journal bucket."""
    session.client("s3").create_bucket(Bucket=BUCKET)
    return BUCKET


def test_lambda_retrying_the_same_event_finishes_the_job_once(
    scene: Scene, session: boto3.Session, bucket: str
) -> None:
    """An invocation that failed (throttled past its retries) is retried with the same event:
    the retry revokes, a duplicate delivery changes nothing, and both runs are journaled."""
    a, _ = scene.groups
    sut, _ = sut_clients()
    faults = SendFaults().attach(sut)
    faults.throttle("RevokeSecurityGroupIngress", times=ATTEMPTS)
    responder = build_responder(lambda_env(scene), session=sut)
    event = authorize_event(a)

    first, failed = run_event(event, responder)
    assert failed  # the handler raises: Lambda retries the event
    assert first["revoked"] == []
    assert scene.world.live(a) == {*END_STATE, *DRIFT}

    retry, failed = run_event(event, responder)
    assert not failed, retry
    assert sorted(retry["revoked"]) == sorted(i for i, g in scene.drift_ids.items() if g == a)
    assert scene.world.live(a) == END_STATE

    sent = faults.sent["RevokeSecurityGroupIngress"]
    again, failed = run_event(event, responder)
    assert (again["revoked"], failed) == ([], False)
    assert faults.sent["RevokeSecurityGroupIngress"] == sent

    entries = s3_entries(session)
    assert [(e.phase, e.status) for e in entries].count(("outcome", "failed")) == 3
    assert [(e.phase, e.status) for e in entries].count(("outcome", "revoked")) == 3
    assert_safe(scene, entries)
    assert_converges(scene, journaled=tuple(entries))  # b: the event path only looked at a


def test_the_schedule_and_an_event_acting_on_one_group_at_once_revoke_each_rule_once(
    scene: Scene, session: boto3.Session, bucket: str
) -> None:
    """Two containers (a schedule tick and an event) plan the same group and revoke it at the
    same moment: each drifted rule is revoked once, the other run finds it already absent."""
    a, b = scene.groups
    sut, _ = sut_clients()
    faults = SendFaults().attach(sut)
    barrier = threading.Barrier(2, timeout=20)
    met: list[str] = []
    lock = threading.Lock()

    def meet(params: dict[str, list[str]]) -> None:
        with lock:
            first_two = params.get("GroupId") == [a] and len(met) < 2
            if first_two:
                met.append(a)
        if first_two:
            barrier.wait()  # both runs have read the group; now both revoke

    faults.on_send("RevokeSecurityGroupIngress", meet)
    containers = [build_responder(lambda_env(scene), session=sut) for _ in range(2)]
    triggers = [load_event("synthetic__scheduled_event"), authorize_event(a)]
    summaries: list[tuple[dict[str, Any], bool]] = [({}, True), ({}, True)]

    def invoke(index: int, responder: Responder) -> None:
        summaries[index] = run_event(triggers[index], responder)

    threads = [threading.Thread(target=invoke, args=pair) for pair in enumerate(containers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    (scheduled, s_failed), (evented, e_failed) = summaries
    assert met == [a, a]
    assert not s_failed, scheduled
    assert not e_failed, evented
    revoked = [*scheduled["revoked"], *evented["revoked"]]
    assert sorted(revoked) == sorted(scene.drift_ids)  # a's rules once, b's by the schedule
    assert scene.world.live(a) == scene.world.live(b) == END_STATE
    entries = s3_entries(session)
    a_rules = {i for i, g in scene.drift_ids.items() if g == a}
    intents = [e.rule_id for e in entries if e.phase == "intent" and e.rule_id in a_rules]
    assert sorted(intents) == sorted([*a_rules, *a_rules])  # both runs meant to, and said so
    absent = {e.rule_id for e in entries if e.status == Status.ALREADY_ABSENT.value}
    assert absent == a_rules
    assert_safe(scene, entries)
    assert_converges(scene, journaled=tuple(entries))


@pytest.mark.usefixtures("info_logging")
def test_with_sns_and_s3_down_revokes_still_happen_are_logged_and_reported(
    scene: Scene, session: boto3.Session, bucket: str
) -> None:
    """SNS and S3 answering 503 past the retries: every drifted rule is still revoked, each
    journal entry is in the log, and the summary's errors name both failures."""
    topic = session.client("sns").create_topic(Name="sg-reconciler")["TopicArn"]
    sut, _ = sut_clients()
    faults = SendFaults().attach(sut)
    faults.fail("Publish", "ServiceUnavailable", status=503)
    faults.fail("PutObject", "ServiceUnavailable", status=503)
    responder = build_responder(lambda_env(scene, SG_RECONCILER_TOPIC_ARN=topic), session=sut)
    with capture_logs() as logs:
        summary, failed = run_event(load_event("synthetic__scheduled_event"), responder)
    assert not failed
    assert sorted(summary["revoked"]) == sorted(scene.drift_ids)
    # Two notices (the run's, then the one saying its journal is only in the log) and two
    # objects (the journal, then the schedule's state object).
    assert faults.injected == {"Publish": 2 * ATTEMPTS, "PutObject": 2 * ATTEMPTS}
    notify, notify_journal, journal, state = sorted(summary["errors"])
    assert state.startswith(f"state: cannot write s3://{BUCKET}/state/managed.json")
    assert journal.startswith(f"journal: cannot write s3://{BUCKET}/journal/")
    assert notify.startswith(f"cannot publish to {topic}")
    assert notify_journal == notify
    assert "ServiceUnavailable" in journal
    assert "ServiceUnavailable" in notify
    logged = [
        JournalEntry.from_dict({k: v for k, v in e.items() if k not in ("event", "log_level")})
        for e in logs
        if e["event"] == "journal"
    ]
    assert sorted(e.rule_id or "" for e in logged if e.status == "revoked") == sorted(
        scene.drift_ids
    )
    assert s3_entries(session) == []
    assert_safe(scene, logged)
    for group in scene.groups:
        assert scene.world.live(group) == END_STATE

    faults.stop()
    again, failed = run_event(load_event("synthetic__scheduled_event"), responder)
    assert (again["revoked"], again["errors"], failed) == ([], [], False)
    assert_converges(scene, journaled=tuple(logged))
