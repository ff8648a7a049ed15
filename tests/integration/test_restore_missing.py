"""restore_missing: absent baseline rules are authorized back, and the deploy scopes the grant.

The CLI and the Lambda restore on moto; the deploy side is the stack deployed to moto with and
without ``RestoreTagKey``, and ``sg-reconciler deploy`` deriving that parameter from the
policies. The function's own Authorize calls never trigger it again: its code ignores them and
the deployed event pattern drops them.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from reconciler.cli import main
from reconciler.cli.cmd_reconcile import ReconcileRequest, cmd_reconcile
from reconciler.cli.console import Console
from reconciler.cli.options import AwsOptions
from reconciler.deploy.stack import DeployOutcome, DeployRequest
from reconciler.runtime import build_responder, run_event
from tests.cfn_moto import aws_like_change_sets, ignore_unsupported_resources, role_policy
from tests.deploy_stacks import cloudtrail_record, deploy, stand_in_package
from tests.eventfiles import load_event
from tests.faults import SendFaults
from tests.moto_rules import aws_like_rule_descriptions
from tests.policyfiles import write_policies
from tests.world import DEFAULT_EGRESS, REGION, CallCounter, World, ingress

TAGS = {"team": "app", "sg-reconciler-restore": "true"}
POLICY = """
groups:
  - name: app
    match: {{tags: {{team: app, sg-reconciler-restore: "true"}}}}
    restore_missing: true
    on_drift: {on_drift}
    ingress:
      - {{protocol: tcp, ports: 443, from: [10.0.0.0/8, "::/0"], description: public https}}
      - {{protocol: tcp, ports: 5432, from: {source}, description: from the db tier}}
"""
SSH = ingress("tcp", (22, 22), "0.0.0.0/0")


@pytest.fixture(autouse=True)
def _aws_like_descriptions() -> Iterator[None]:
    """Group-reference rules keep their descriptions in DescribeSecurityGroupRules, as on AWS."""
    with aws_like_rule_descriptions():
        yield


@dataclass(frozen=True)
class Scene:
    """A managed group missing every baseline rule (with one drifted rule), and its policies."""

    world: World
    group: str
    policies: Path
    baseline: dict[Any, str | None]


def scene(tmp_path: Path, world: World, on_drift: str = "revoke") -> Scene:
    """Build the group and write its policy (the source group's id is moto's)."""
    source = world.group("db")
    policies = write_policies(
        tmp_path / f"p-{on_drift}", POLICY.format(on_drift=on_drift, source=source)
    )
    group = world.group("app", TAGS, [SSH])
    baseline = {
        ingress("tcp", (443, 443), "10.0.0.0/8"): "public https",
        ingress("tcp", (443, 443), "::/0"): "public https",
        ingress("tcp", (5432, 5432), source): "from the db tier",
    }
    return Scene(world, group, policies, baseline)


def apply(scene: Scene, session: boto3.Session) -> tuple[int, dict[str, Any]]:
    """``sg-reconciler apply --output json`` in-process, with the given boto3 session."""
    out, err = io.StringIO(), io.StringIO()
    request = ReconcileRequest(
        scene.policies,
        AwsOptions(None, (REGION,), None),
        apply=True,
        output="json",
        session=session,
    )
    code = cmd_reconcile(request, Console(out, err))
    doc: dict[str, Any] = json.loads(out.getvalue())
    return code, doc


def test_apply_restores_absent_baseline_rules_with_their_descriptions(
    tmp_path: Path, world: World
) -> None:
    """apply authorizes every absent baseline rule with the baseline's description and revokes
    the drift; a second apply has nothing to do."""
    s = scene(tmp_path, world)
    code, doc = apply(s, boto3.Session(region_name=REGION))
    assert code == 0
    statuses = sorted((c["action"], c["status"]) for c in doc["changes"])
    assert statuses == [("restore", "restored")] * 3 + [("revoke", "revoked")]
    assert world.descriptions(s.group) == {**s.baseline, DEFAULT_EGRESS: None}

    code, doc = apply(s, boto3.Session(region_name=REGION))
    assert (code, doc["changes"]) == (0, [])


def test_a_rule_restored_by_someone_else_meanwhile_is_already_present(
    tmp_path: Path, world: World
) -> None:
    """A baseline rule added between the read and the Authorize call (InvalidPermission.Duplicate)
    is already_present, the rest are restored, and apply exits 0."""
    s = scene(tmp_path, world)
    # It sorts first in the batch: moto, unlike AWS, applies the permissions before a
    # duplicate, so a later duplicate would blur the statuses (tests/integration/test_restore.py).
    racer = ingress("tcp", (443, 443), "10.0.0.0/8")
    session = boto3.Session(region_name=REGION)
    faults = SendFaults().attach(session)
    raced: list[bool] = []

    def someone_restores(_params: object) -> None:
        if not raced:
            raced.append(True)
            world.authorize(s.group, racer, "added by hand")

    faults.on_send("AuthorizeSecurityGroupIngress", someone_restores)
    code, doc = apply(s, session)
    assert code == 0
    status = {(c["source"], c["from_port"]): c["status"] for c in doc["changes"]}
    assert status.pop(("10.0.0.0/8", 443)) == "already_present"
    assert set(status.values()) == {"restored", "revoked"}
    assert "error" not in json.dumps(doc["changes"])
    live = world.descriptions(s.group)
    assert live == {**s.baseline, racer: "added by hand", DEFAULT_EGRESS: None}


def test_report_mode_never_restores(tmp_path: Path, world: World) -> None:
    """With on_drift: report, restore_missing reports the rules missing and authorizes nothing."""
    s = scene(tmp_path, world, on_drift="report")
    session = boto3.Session(region_name=REGION)
    counter = CallCounter(session)
    code, doc = apply(s, session)
    assert code == 0
    assert sorted(c["action"] for c in doc["changes"]) == ["missing"] * 3 + ["revoke"]
    assert counter.writes() == 0
    assert world.live(s.group) == {SSH, DEFAULT_EGRESS}


# --- the Lambda ----------------------------------------------------------------------------------

OWN_ROLE = "arn:aws:iam::123456789012:role/service-role/sg-reconciler-fn"
OWN_SESSION = "arn:aws:sts::123456789012:assumed-role/sg-reconciler-fn/fn-session"


def own_authorize_event(group: str) -> dict[str, Any]:
    """A real Authorize record on ``group``, as made by the function's own role."""
    event = load_event("AuthorizeSecurityGroupIngress__panther-analysis__1")
    loaded: dict[str, Any] = json.loads(json.dumps(event).replace("sg-0d921df5d84f7270a", group))
    record = loaded.get("detail", loaded)
    record["userIdentity"]["arn"] = OWN_SESSION
    record["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] = OWN_ROLE
    return loaded


def test_the_lambda_restores_and_ignores_its_own_authorize_event(
    tmp_path: Path, world: World, session: boto3.Session
) -> None:
    """A scheduled run restores the baseline; the CloudTrail event of that Authorize, made by the
    function's own role, is ignored without any AWS call (no loop)."""
    s = scene(tmp_path, world)
    env = {"SG_RECONCILER_POLICIES": str(s.policies), "SG_RECONCILER_REGIONS": REGION}
    responder = build_responder(env, session=session)
    responder._own_arn = lambda: OWN_SESSION  # the Lambda's credentials: an assumed role
    summary, failed = run_event(load_event("synthetic__scheduled_event"), responder)
    assert not failed, summary
    assert world.descriptions(s.group) == {**s.baseline, DEFAULT_EGRESS: None}

    counter = CallCounter(session)
    summary, failed = run_event(own_authorize_event(s.group), responder)
    assert (summary["trigger"], summary["skipped_reason"], failed) == ("ignored", "own_call", False)
    assert counter.calls == {}


def test_the_lambda_in_report_mode_never_restores(
    tmp_path: Path, world: World, session: boto3.Session
) -> None:
    """SG_RECONCILER_MODE=report: a scheduled run makes no Authorize (nor any other write) call."""
    s = scene(tmp_path, world)
    env = {
        "SG_RECONCILER_POLICIES": str(s.policies),
        "SG_RECONCILER_REGIONS": REGION,
        "SG_RECONCILER_MODE": "report",
    }
    counter = CallCounter(session)
    summary, failed = run_event(
        load_event("synthetic__scheduled_event"), build_responder(env, session=session)
    )
    assert (summary["revoked"], failed) == ([], False)
    assert counter.writes() == 0
    assert world.live(s.group) == {SSH, DEFAULT_EGRESS}


# --- deploy --------------------------------------------------------------------------------------


@dataclass
class Captured:
    """What cmd_deploy handed to deploy_stack."""

    parameters: dict[str, str]


@pytest.fixture
def captured_deploy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Captured]:
    """cmd_deploy with packaging and the stack call replaced by recorders (no AWS call)."""
    calls: list[Captured] = []

    @dataclass
    class Built:
        path: Path
        compiled: int = 1  # as if it shipped bytecode: no note on stderr

    @dataclass
    class Result:
        ok: bool = True
        failures: tuple[str, ...] = ()

    def build_package(_policies: Path, output: Path, **_: object) -> Built:
        return Built(output)

    def deploy_stack(request: DeployRequest, **_: object) -> Result:
        calls.append(Captured(dict(request.parameters)))
        return Result()

    monkeypatch.setattr("reconciler.deploy.package.build_package", build_package)
    monkeypatch.setattr("reconciler.deploy.stack.deploy_stack", deploy_stack)
    return calls


def deploy_cli(policies: Path) -> int:
    """``sg-reconciler deploy`` for one region."""
    return main(["deploy", "--stack-name", "s", "--policies", str(policies), "--region", REGION])


def test_deploy_sets_the_restore_tag_the_restoring_policies_share(
    tmp_path: Path, captured_deploy: list[Captured], world: World
) -> None:
    """With restore_missing, deploy passes the shared tag as RestoreTagKey/Value; without it,
    both are passed empty, so the role loses Authorize again."""
    s = scene(tmp_path, world)
    assert deploy_cli(s.policies) == 0
    plain = (s.policies / "policies.yaml").read_text().replace("restore_missing: true", "")
    assert deploy_cli(write_policies(tmp_path / "plain", plain)) == 0
    restoring, without = (c.parameters for c in captured_deploy)
    assert (restoring["RestoreTagKey"], restoring["RestoreTagValue"]) == (
        "sg-reconciler-restore",
        "true",
    )
    assert (without["RestoreTagKey"], without["RestoreTagValue"]) == ("", "")


UNSHARED = """
groups:
  - name: app
    match: {tags: {team: app}}
    restore_missing: true
    ingress: [{protocol: tcp, ports: 443, from: 10.0.0.0/8}]
  - name: db
    match: {tags: {team: db}}
    restore_missing: true
    ingress: [{protocol: tcp, ports: 5432, from: 10.0.0.0/8}]
  - name: by-id
    match: {group_ids: [sg-0123456789abcdef0]}
    ingress: [{protocol: tcp, ports: 443, from: 10.0.0.0/8}]
"""


def test_deploy_refuses_restoring_policies_without_one_shared_tag(
    tmp_path: Path, captured_deploy: list[Captured], capsys: pytest.CaptureFixture[str]
) -> None:
    """Restoring policies sharing no tag stop deploy with one line saying why; nothing deploys."""
    policies = write_policies(tmp_path / "p", UNSHARED)
    assert deploy_cli(policies) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: restore_missing: policies app, db share no tag in match.tags, and the function's"
        " role may authorize rules only in groups carrying one tag they all select by; add one"
        ' (e.g. sg-reconciler-restore: "true") to each of them and to their groups'
    ]
    assert captured_deploy == []


@dataclass(frozen=True)
class Stacks:
    """Two stacks deployed to moto, with and without RestoreTagKey, and a router for events."""

    session: boto3.Session
    restoring: dict[str, str]
    plain: dict[str, str]
    route: Any


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stacks]:
    """Both stacks; the restoring stack's CloudTrail rule delivers to an SQS queue."""
    with mock_aws(), aws_like_change_sets():
        session = boto3.Session(region_name="eu-west-1")
        package = stand_in_package(tmp_path_factory.mktemp("pkg") / "package.zip")
        restoring = deploy(
            session,
            package,
            stack_name="restoring",
            RestoreTagKey="sg-reconciler-restore",
            RestoreTagValue="true",
        ).result
        plain = deploy(session, package, stack_name="plain").result
        assert restoring.outcome is plain.outcome is DeployOutcome.CREATED
        events, sqs = session.client("events"), session.client("sqs")
        queue = sqs.create_queue(QueueName="routed")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        for stack in (restoring, plain):
            events.remove_targets(Rule=stack.outputs["CloudTrailEventRuleName"], Ids=["reconciler"])
            events.remove_targets(Rule=stack.outputs["ScheduleRuleName"], Ids=["reconciler"])
        rule = restoring.outputs["CloudTrailEventRuleName"]
        events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": arn}])

        def route(record: dict[str, Any]) -> bool:
            detail = json.dumps(record)
            entry = {"Source": "aws.ec2", "DetailType": "AWS API Call via CloudTrail"}
            sent = events.put_events(Entries=[{**entry, "Detail": detail}])
            assert sent["FailedEntryCount"] == 0
            got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
            for message in got:
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
            return bool(got)

        yield Stacks(session, dict(restoring.outputs), dict(plain.outputs), route)


def live_role_policies(stacks: Stacks, role_arn: str) -> dict[str, dict[str, Any]]:
    """The deployed role's inline policies by name."""
    iam = stacks.session.client("iam")
    role = role_arn.rsplit("/", 1)[1]
    names = iam.list_role_policies(RoleName=role)["PolicyNames"]
    return {name: role_policy(iam, role, name) for name in names}


@ignore_unsupported_resources
def test_only_the_restoring_stack_may_authorize_and_only_on_tagged_groups(stacks: Stacks) -> None:
    """The default stack's role has no Authorize; with RestoreTagKey, one statement allows it on
    this account's groups carrying the tag, in the stack's region."""
    plain = live_role_policies(stacks, stacks.plain["RoleArn"])
    assert "Authorize" not in json.dumps(plain)
    restoring = live_role_policies(stacks, stacks.restoring["RoleArn"])
    assert set(restoring) == set(plain) | {"restore-missing"}
    (statement,) = restoring["restore-missing"]["Statement"]
    assert statement["Action"] == [
        "ec2:AuthorizeSecurityGroupIngress",
        "ec2:AuthorizeSecurityGroupEgress",
    ]
    assert statement["Resource"] == "arn:aws:ec2:*:123456789012:security-group/*"
    assert statement["Condition"] == {
        "StringEquals": {
            "aws:RequestedRegion": ["eu-west-1"],
            "ec2:ResourceTag/sg-reconciler-restore": "true",
        }
    }


@ignore_unsupported_resources
def test_the_deployed_pattern_drops_authorize_events_of_the_functions_own_role(
    stacks: Stacks,
) -> None:
    """An AuthorizeSecurityGroupIngress by the function's role (a restore) never reaches it; the
    same call by another role does."""
    record = cloudtrail_record("AuthorizeSecurityGroupIngress__panther-analysis__1")
    assert stacks.route(record) is True
    role_arn = stacks.restoring["RoleArn"]
    own = json.loads(json.dumps(record))
    own["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] = role_arn
    own["userIdentity"]["arn"] = (
        f"arn:aws:sts::123456789012:assumed-role/{role_arn.rsplit('/', 1)[1]}/restore"
    )
    assert stacks.route(own) is False
