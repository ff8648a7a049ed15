"""The Lambda handler on every real CloudTrail sample, against live state in moto.

Each sample's group, region and referenced ids are retargeted to objects created in
moto (moto chooses its own ids); the event is otherwise exactly as AWS emitted it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from reconciler.adapters.events import ApiCall, parse_event
from reconciler.core.rules import Direction, RuleKey, canonical_peer
from reconciler.responder import Responder, is_same_principal
from reconciler.runtime import build_responder, run_event
from reconciler.settings import Settings
from tests.eventfiles import event_names, load_event
from tests.policyfiles import write_policies
from tests.world import DEFAULT_EGRESS, REGION, CallCounter, World, egress, ingress

pytestmark = pytest.mark.fake_ec2  # decisions: the in-memory EC2 of tests/fake_ec2.py

POLICY = """
groups:
  - name: web
    match: {tags: {team: web}}
    ingress:
      - {protocol: tcp, ports: 443, from: [10.0.0.0/8], description: internal https}
    egress:
      - {protocol: all, to: [0.0.0.0/0]}
"""
BASELINE = {ingress("tcp", (443, 443), "10.0.0.0/8"), DEFAULT_EGRESS}

SUCCESSFUL_AUTHORIZE = sorted(
    name
    for name in event_names()
    if name.startswith(("AuthorizeSecurityGroup", "synthetic__AuthorizeSecurityGroup"))
    and isinstance(parse_event(load_event(name))[0], ApiCall)
)
NO_ACTION = [
    "AuthorizeSecurityGroupIngress__panther-analysis__3",
    "RunInstances__stratus-red-team__1",
]


def _retarget(event: Any, mapping: dict[str, str]) -> Any:
    """Replace ids and regions throughout the event (strings only, structure untouched)."""
    if isinstance(event, dict):
        return {k: _retarget(v, mapping) for k, v in event.items()}
    if isinstance(event, list):
        return [_retarget(v, mapping) for v in event]
    if isinstance(event, str):
        return mapping.get(event, event)
    return event


def _with_region(event: Any) -> Any:
    """Set the record's (and envelope's) region to the moto region."""
    event = json.loads(json.dumps(event))
    record = event.get("detail", event)
    record["awsRegion"] = REGION
    if "detail" in event:
        event["region"] = REGION
    return event


@pytest.fixture
def responder(tmp_path: Path, session: boto3.Session) -> Responder:
    """A responder as a Lambda container would build it, on the moto account."""
    policies = write_policies(tmp_path / "policies", POLICY)
    env = {
        "SG_RECONCILER_POLICIES": str(policies),
        "SG_RECONCILER_REGIONS": REGION,
        "AWS_REGION": REGION,
    }
    return build_responder(env, session=session)


def _stage(world: World, name: str, group_name: str = "target") -> tuple[Any, str]:
    """Create the sample's group (managed, at baseline) plus the rules its call created."""
    raw = load_event(name)
    (call,) = parse_event(raw)
    assert isinstance(call, ApiCall)
    group = world.group(group_name, {"team": "web"}, [ingress("tcp", (443, 443), "10.0.0.0/8")])
    mapping = dict.fromkeys(call.group_ids, group)
    mapping.update(dict.fromkeys(call.group_names, group_name))
    for rule in call.requested:
        peer = rule.peer.rpartition("/")[2] if "/sg-" in rule.peer else rule.peer
        if peer.startswith("sg-") and peer not in mapping:
            mapping[peer] = world.group(f"source-{len(mapping)}")
        elif peer.startswith("pl-") and peer not in mapping:
            mapping[peer] = world.ec2.create_managed_prefix_list(
                PrefixListName=f"pl{len(mapping)}", MaxEntries=5, AddressFamily="IPv4"
            )["PrefixList"]["PrefixListId"]
        peer = mapping.get(peer, peer)
        if not peer.startswith(("sg-", "pl-")):
            peer = canonical_peer(peer, strict=False)
        key = RuleKey.from_ec2(
            direction=rule.direction or Direction.INGRESS,
            protocol=rule.protocol,
            from_port=rule.from_port,
            to_port=rule.to_port,
            peer=peer,
        )
        if key not in BASELINE:
            world.authorize(group, key, rule.description)
    return _with_region(_retarget(raw, mapping)), group


@pytest.mark.parametrize("name", SUCCESSFUL_AUTHORIZE)
def test_successful_authorize_sample_is_reverted_to_baseline(
    name: str, world: World, session: boto3.Session, responder: Responder
) -> None:
    """After the handler runs on the sample, the group has exactly its baseline rules."""
    event, group = _stage(world, name)
    # panther-analysis egress re-adds the default allow-all egress, a baseline rule.
    added = world.live(group) - BASELINE
    counter = CallCounter(session)
    summary, failed = run_event(event, responder)
    assert not failed, summary
    assert world.live(group) == BASELINE
    assert summary["trigger"] == "cloudtrail"
    assert summary["group_ids"] == [group]
    assert len(summary["revoked"]) == len(added)
    assert sum(counter.calls.values()) <= 3, counter.calls


@pytest.mark.parametrize("name", NO_ACTION)
def test_failed_calls_are_ignored_without_any_aws_call(
    name: str, session: boto3.Session, responder: Responder
) -> None:
    """An event with errorCode makes no AWS call at all and says why it was skipped."""
    counter = CallCounter(session)
    summary, failed = run_event(_with_region(load_event(name)), responder)
    assert not failed
    assert summary["trigger"] == "ignored"
    assert summary["skipped_reason"].startswith("error_code:")
    assert sum(counter.calls.values()) == 0


def test_own_role_calls_are_ignored(tmp_path: Path, world: World, session: boto3.Session) -> None:
    """A call whose session issuer is the function's own role (path or not) is not acted on."""
    event, group = _stage(world, "AuthorizeSecurityGroupIngress__panther-analysis__1")
    event["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] = (
        "arn:aws:iam::123456789012:role/service-role/sg-reconciler-fn"
    )
    policies = write_policies(tmp_path / "own", POLICY)
    env = {"SG_RECONCILER_POLICIES": str(policies), "SG_RECONCILER_REGIONS": REGION}
    responder = build_responder(env, session=session)
    responder._own_arn = (  # the Lambda's credentials are an assumed-role session
        lambda: "arn:aws:sts::123456789012:assumed-role/sg-reconciler-fn/fn-session"
    )
    counter = CallCounter(session)
    summary, _ = run_event(event, responder)
    assert (summary["trigger"], summary["skipped_reason"]) == ("ignored", "own_call")
    assert counter.calls == {}
    assert world.live(group) != BASELINE


def test_the_role_arn_setting_identifies_own_calls_without_asking_sts(
    tmp_path: Path, world: World, session: boto3.Session
) -> None:
    """With SG_RECONCILER_ROLE_ARN (set by the template) no STS call is made on any event."""
    sts_calls: list[str] = []
    session.events.register("before-call.sts", lambda model, **_: sts_calls.append(model.name))
    policies = write_policies(tmp_path / "role", POLICY)
    env = {
        "SG_RECONCILER_POLICIES": str(policies),
        "SG_RECONCILER_REGIONS": REGION,
        "SG_RECONCILER_ROLE_ARN": "arn:aws:iam::123456789012:role/service-role/sg-reconciler-fn",
    }
    responder = build_responder(env, session=session)
    own, own_group = _stage(world, "AuthorizeSecurityGroupIngress__panther-analysis__1")
    own["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] = (
        "arn:aws:iam::123456789012:role/sg-reconciler-fn"
    )
    summary, _ = run_event(own, responder)
    assert summary["skipped_reason"] == "own_call"
    assert world.live(own_group) != BASELINE
    other, other_group = _stage(
        world, "AuthorizeSecurityGroupIngress__panther-analysis__1", group_name="other"
    )
    summary, failed = run_event(other, responder)
    assert not failed, summary
    assert summary["trigger"] == "cloudtrail"
    assert world.live(other_group) == BASELINE
    assert sts_calls == []


def test_a_role_arn_that_is_not_an_iam_role_is_a_configuration_error() -> None:
    """SG_RECONCILER_ROLE_ARN must be a role ARN; the one-line error names the variable."""
    with pytest.raises(ValueError, match=r"^SG_RECONCILER_ROLE_ARN: String should match"):
        Settings.from_env(
            {"AWS_REGION": REGION, "SG_RECONCILER_ROLE_ARN": "arn:aws:sts::1:assumed-role/x/y"}
        )


def test_ignore_principals_setting_is_honoured(
    tmp_path: Path, world: World, session: boto3.Session
) -> None:
    """SG_RECONCILER_IGNORE_PRINCIPALS lists callers whose changes are left alone."""
    event, group = _stage(world, "AuthorizeSecurityGroupIngress__panther-analysis__1")
    policies = write_policies(tmp_path / "ign", POLICY)
    env = {
        "SG_RECONCILER_POLICIES": str(policies),
        "SG_RECONCILER_REGIONS": REGION,
        "SG_RECONCILER_IGNORE_PRINCIPALS": (
            "arn:aws:iam::1:role/x, arn:aws:iam::112233445566:role/Operator"
        ),
    }
    counter = CallCounter(session)
    summary, _ = run_event(event, build_responder(env, session=session))
    assert summary["skipped_reason"] == "own_call"
    assert counter.writes() == 0
    assert world.live(group) != BASELINE


def test_unmanaged_group_is_never_written(
    world: World, session: boto3.Session, responder: Responder
) -> None:
    """An Authorize on a group no policy matches is read and left alone."""
    raw = load_event("AuthorizeSecurityGroupIngress__panther-analysis__1")
    (call,) = parse_event(raw)
    assert isinstance(call, ApiCall)
    group = world.group("stray", {"team": "data"}, [ingress("tcp", (22, 22), "0.0.0.0/0")])
    event = _with_region(_retarget(raw, {call.group_ids[0]: group}))
    counter = CallCounter(session)
    summary, failed = run_event(event, responder)
    assert not failed
    assert summary["skipped_reason"] == "unmanaged_group"
    assert counter.writes() == 0
    assert ingress("tcp", (22, 22), "0.0.0.0/0") in world.live(group)


def test_duplicate_delivery_and_late_events_are_harmless(
    world: World, session: boto3.Session, responder: Responder
) -> None:
    """The same event twice, or after the schedule fixed the group, revokes nothing more."""
    event, group = _stage(world, "AuthorizeSecurityGroupIngress__unattributed-b__1")
    first, _ = run_event(event, responder)
    assert len(first["revoked"]) == 2
    counter = CallCounter(session)
    second, failed = run_event(event, responder)
    assert not failed
    assert second["revoked"] == []
    assert counter.writes() == 0
    assert world.live(group) == BASELINE

    event, group = _stage(world, "AuthorizeSecurityGroupIngress__panther-analysis__1", "later")
    scheduled, _ = run_event(load_event("synthetic__scheduled_event"), responder)
    assert scheduled["trigger"] == "schedule"
    assert len(scheduled["revoked"]) == 1
    counter = CallCounter(session)
    late, _ = run_event(event, responder)
    assert late["revoked"] == []
    assert counter.writes() == 0


def test_a_baseline_rule_named_by_the_event_is_never_revoked(
    world: World, responder: Responder
) -> None:
    """An event whose request re-adds a baseline rule (e.g. a Duplicate) revokes nothing."""
    raw = load_event("AuthorizeSecurityGroupIngress__panther-analysis__1")
    (call,) = parse_event(raw)
    assert isinstance(call, ApiCall)
    group = world.group(
        "target",
        {"team": "web"},
        [ingress("tcp", (443, 443), "10.0.0.0/8"), ingress("tcp", (22, 22), "0.0.0.0/0")],
    )
    policy_allows_ssh = responder.baseline
    assert policy_allows_ssh is not None
    event = _with_region(_retarget(raw, {call.group_ids[0]: group}))
    summary, _ = run_event(event, responder)
    # tcp 22 from the world is not in this baseline, so it goes; 443 stays.
    assert ingress("tcp", (443, 443), "10.0.0.0/8") in world.live(group)
    assert len(summary["revoked"]) == 1


def test_modify_security_group_rules_is_reverted(
    world: World, session: boto3.Session, responder: Responder
) -> None:
    """A console edit (ModifySecurityGroupRules) that widened a rule is reverted."""
    raw = load_event("synthetic__ModifySecurityGroupRules__object")
    (call,) = parse_event(raw)
    assert isinstance(call, ApiCall)
    group = world.group("target", {"team": "web"}, [ingress("tcp", (443, 443), "10.0.0.0/8")])
    world.authorize(group, ingress("tcp", (443, 443), "10.20.0.0/16"))
    widened = next(
        r["SecurityGroupRuleId"]
        for r in world.ec2.describe_security_group_rules(
            Filters=[{"Name": "group-id", "Values": [group]}]
        )["SecurityGroupRules"]
        if r.get("CidrIpv4") == "10.20.0.0/16"
    )
    event = _with_region(_retarget(raw, {call.group_ids[0]: group, call.rule_ids[0]: widened}))
    counter = CallCounter(session)
    summary, failed = run_event(event, responder)
    assert not failed
    assert summary["revoked"] == [widened]
    assert world.live(group) == BASELINE
    assert dict(counter.calls) == {
        "DescribeSecurityGroups": 1,
        "DescribeSecurityGroupRules": 1,
        "RevokeSecurityGroupIngress": 1,
    }


def test_create_tags_brings_a_group_under_the_baseline_now(
    world: World, responder: Responder
) -> None:
    """A group that gains the managed tag is reconciled at once."""
    raw = load_event("synthetic__CreateTags__sg")
    (call,) = parse_event(raw)
    assert isinstance(call, ApiCall)
    group = world.group(
        "target",
        {"team": "web"},
        [ingress("tcp", (443, 443), "10.0.0.0/8"), ingress("tcp", (22, 22), "0.0.0.0/0")],
    )
    world.authorize(group, egress("tcp", (25, 25), "0.0.0.0/0"))
    summary, _ = run_event(_with_region(_retarget(raw, {call.group_ids[0]: group})), responder)
    assert len(summary["revoked"]) == 2
    assert world.live(group) == BASELINE


def test_delete_tags_warns_and_does_not_revert(
    tmp_path: Path, world: World, session: boto3.Session
) -> None:
    """A group losing its managed tag is reported as having left the baseline; nothing changes."""
    policies = write_policies(
        tmp_path / "pay",
        """
groups:
  - name: payments
    match: {tags: {team: payments}}
    ingress: []
""",
    )
    env = {"SG_RECONCILER_POLICIES": str(policies), "SG_RECONCILER_REGIONS": REGION}
    responder = build_responder(env, session=session)
    raw = load_event("synthetic__DeleteTags__sg")
    (call,) = parse_event(raw)
    assert isinstance(call, ApiCall)
    group = world.group("target", {"env": "prod"}, [ingress("tcp", (22, 22), "0.0.0.0/0")])
    counter = CallCounter(session)
    summary, failed = run_event(_with_region(_retarget(raw, {call.group_ids[0]: group})), responder)
    assert not failed
    assert summary["skipped_reason"] == "left_baseline"
    assert summary["left_baseline"] == [group]
    assert counter.writes() == 0
    assert ingress("tcp", (22, 22), "0.0.0.0/0") in world.live(group)


def test_revoke_event_reports_missing_baseline_rules(
    world: World, session: boto3.Session, responder: Responder
) -> None:
    """After someone revokes a baseline rule, the event reports it missing and writes nothing."""
    raw = load_event("RevokeSecurityGroupIngress__unattributed-e__1")
    (call,) = parse_event(raw)
    assert isinstance(call, ApiCall)
    group = world.group("target", {"team": "web"})
    counter = CallCounter(session)
    summary, failed = run_event(_with_region(_retarget(raw, {call.group_ids[0]: group})), responder)
    assert not failed
    assert [(m["protocol"], m["from_port"], m["source"]) for m in summary["missing"]] == [
        ("tcp", 443, "10.0.0.0/8")
    ]
    assert counter.writes() == 0


def test_events_from_unconfigured_regions_are_ignored(
    session: boto3.Session, responder: Responder
) -> None:
    """A record from a region the function does not manage makes no call."""
    counter = CallCounter(session)
    summary, _ = run_event(
        load_event("AuthorizeSecurityGroupIngress__stratus-red-team__1"), responder
    )
    assert summary["skipped_reason"] == "region_not_managed:us-northeast-1r"
    assert counter.calls == {}


def test_invalid_policies_fail_closed(tmp_path: Path, world: World, session: boto3.Session) -> None:
    """With a broken policy file the handler revokes nothing and reports every error."""
    policies = write_policies(tmp_path / "bad", POLICY.replace("10.0.0.0/8", "10.0.0.1/8"))
    env = {"SG_RECONCILER_POLICIES": str(policies), "SG_RECONCILER_REGIONS": REGION}
    responder = build_responder(env, session=session)
    event, group = _stage(world, "AuthorizeSecurityGroupIngress__panther-analysis__1")
    counter = CallCounter(session)
    summary, failed = run_event(event, responder)
    assert failed
    assert summary["skipped_reason"] == "policies_invalid"
    assert "has host bits set (did you mean 10.0.0.0/8?)" in summary["errors"][0]
    assert counter.calls == {}
    assert world.live(group) != BASELINE


@pytest.mark.parametrize(
    ("candidate", "principal", "same"),
    [
        ("arn:aws:iam::1:role/x", "arn:aws:iam::1:role/x", True),
        (
            "arn:aws:iam::123456789012:role/service-role/fn",
            "arn:aws:sts::123456789012:assumed-role/fn/session",
            True,
        ),
        (
            "arn:aws:iam::123456789012:role/fn",
            "arn:aws:sts::210987654321:assumed-role/fn/session",
            False,
        ),
        ("arn:aws:iam::123456789012:role/fn2", "arn:aws:iam::123456789012:role/fn", False),
        (None, "arn:aws:iam::123456789012:role/fn", False),
    ],
)
def test_principal_comparison(candidate: str | None, principal: str, same: bool) -> None:
    """Roles compare by account and name, whatever their path or session."""
    assert is_same_principal(candidate, principal) is same
