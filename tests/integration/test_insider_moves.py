"""The insider's cheap ways around enforcement, each ending with the rule revoked and a notice
published (read back from an SQS queue subscribed to the topic). moto's EC2: prefix lists and
tag calls are part of each move.

The CloudTrail records are built here in the shape of tests/events/synthetic__CreateTags__sg.json
(only the fields the handler reads); the live state decides, never the record.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse

from reconciler.responder import Responder
from reconciler.runtime import build_responder, run_event
from tests.eventfiles import load_event
from tests.policyfiles import write_policies
from tests.world import DEFAULT_EGRESS, REGION, World, ingress

INSIDER = "arn:aws:sts::123456789012:assumed-role/Developer/mallory"
WORLD_SSH = ingress("tcp", (22, 22), "0.0.0.0/0")
HTTPS_PRIVATE = ingress("tcp", (443, 443), "10.0.0.0/8")

POLICIES = """
peers:
  private: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16]
groups:
  - name: web-prod
    match: {tags: {Name: web-prod}}
    ingress:
      - {protocol: tcp, ports: 443, from: $private}
  - name: payments
    match: {tags: {team: payments}}
    ingress:
      - {protocol: tcp, ports: 443, from: $private}
guardrails:
  - name: no-internet-except-web
    description: only HTTP(S) may be reached from the internet
    deny:
      - {protocol: all, from: internet}
    allow:
      - {protocol: tcp, ports: [80, 443], from: internet}
      - {protocol: all, from: $private}
"""


def cloudtrail(name: str, params: dict[str, Any], response: dict[str, Any] | None = None) -> dict:
    """An EventBridge "AWS API Call via CloudTrail" envelope of one call by the insider."""
    return {
        "version": "0",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ec2",
        "account": "123456789012",
        "region": REGION,
        "detail": {
            "eventSource": "ec2.amazonaws.com",
            "eventName": name,
            "awsRegion": REGION,
            "recipientAccountId": "123456789012",
            "eventID": str(uuid.uuid4()),
            "eventTime": "2026-12-04T10:00:00Z",
            "userIdentity": {
                "type": "AssumedRole",
                "arn": INSIDER,
                "sessionContext": {
                    "sessionIssuer": {"arn": "arn:aws:iam::123456789012:role/Developer"}
                },
            },
            "requestParameters": params,
            "responseElements": response or {"_return": True},
        },
    }


def tags_event(name: str, group: str, tags: dict[str, str]) -> dict:
    items = [{"key": k, "value": v} for k, v in tags.items()]
    params = {"resourcesSet": {"items": [{"resourceId": group}]}, "tagSet": {"items": items}}
    return cloudtrail(name, params)


def authorize_event(group: str) -> dict:
    return cloudtrail("AuthorizeSecurityGroupIngress", {"groupId": group})


def published(queue: str) -> list[str]:
    """The body of each notice delivered to the queue since the last call, sorted."""
    sqs = boto3.client("sqs", region_name=REGION)
    raw = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    for message in raw:
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    return sorted(json.loads(m["Body"])["Message"] for m in raw)


def answer_associations_like_ec2(session: boto3.Session) -> None:
    """moto does not implement GetManagedPrefixListAssociations (NotImplementedError in
    process). Answer it as the EC2 API Reference (API_GetManagedPrefixListAssociations)
    documents: the security groups whose rules reference the list, from moto's own groups."""

    def remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["prefix_list_id"] = params["PrefixListId"]

    def answer(context: dict[str, Any], **_: Any) -> Any:
        ec2 = boto3.client("ec2", region_name=REGION)
        pl_id = context["prefix_list_id"]
        found = [
            {"ResourceId": g["GroupId"], "ResourceOwner": g["OwnerId"]}
            for g in ec2.describe_security_groups()["SecurityGroups"]
            for perm in (*g["IpPermissions"], *g["IpPermissionsEgress"])
            if any(p["PrefixListId"] == pl_id for p in perm.get("PrefixListIds", []))
        ]
        ok = AWSResponse(url="", status_code=200, headers={}, raw=None)
        return ok, {"PrefixListAssociations": found, "ResponseMetadata": {"HTTPStatusCode": 200}}

    name = "ec2.GetManagedPrefixListAssociations"
    session.events.register(f"before-parameter-build.{name}", remember)
    session.events.register(f"before-call.{name}", answer)


@pytest.fixture
def responder(tmp_path: Path, session: boto3.Session, inbox: tuple[str, str]) -> Responder:
    env = {
        "SG_RECONCILER_POLICIES": str(write_policies(tmp_path / "p", POLICIES)),
        "SG_RECONCILER_REGIONS": REGION,
        "SG_RECONCILER_TOPIC_ARN": inbox[0],
    }
    return build_responder(env, session=session)


def test_overwriting_the_managed_tag_then_opening_ssh(
    world: World, ec2: Any, responder: Responder, inbox: tuple[str, str]
) -> None:
    group = world.group("web", {"Name": "web-prod"}, [HTTPS_PRIVATE])
    ec2.create_tags(Resources=[group], Tags=[{"Key": "Name", "Value": "web-prod2"}])
    summary, failed = run_event(tags_event("CreateTags", group, {"Name": "web-prod2"}), responder)
    assert (summary["left_baseline"], failed) == ([group], False)
    (body,) = published(inbox[1])
    assert body.splitlines()[0] == (
        f"LEFT BASELINE: {group} (web) after CreateTags by {INSIDER}: policy web-prod no longer"
        " governs it."
    )
    world.authorize(group, WORLD_SSH)
    summary, failed = run_event(authorize_event(group), responder)
    assert (len(summary["revoked"]), failed) == (1, False)
    assert world.live(group) == {HTTPS_PRIVATE, DEFAULT_EGRESS}
    (body,) = published(inbox[1])
    assert body.startswith("AUTO-MITIGATED")
    assert "guardrail no-internet-except-web denies it (deny[0]: all from 0.0.0.0/0, ::/0)" in body


def test_deleting_the_managed_tag_is_published(
    world: World, ec2: Any, responder: Responder, inbox: tuple[str, str]
) -> None:
    group = world.group("pay", {"team": "payments"}, [HTTPS_PRIVATE, WORLD_SSH])
    ec2.delete_tags(Resources=[group], Tags=[{"Key": "team"}])
    summary, failed = run_event(tags_event("DeleteTags", group, {"team": "payments"}), responder)
    assert not failed
    assert summary["left_baseline"] == [group]
    assert world.live(group) == {HTTPS_PRIVATE, DEFAULT_EGRESS}  # the floor acted at once
    lines = [body.splitlines()[0] for body in published(inbox[1])]
    assert len(lines) == 2
    assert lines[1] == (
        f"LEFT BASELINE: {group} (pay) after DeleteTags by {INSIDER}: policy payments no longer"
        " governs it."
    )
    assert lines[0].startswith("AUTO-MITIGATED")


def test_a_new_untagged_group_open_to_the_world(
    world: World, responder: Responder, inbox: tuple[str, str]
) -> None:
    group = world.group("sneaky", None, [WORLD_SSH])
    summary, failed = run_event(authorize_event(group), responder)
    assert (len(summary["revoked"]), failed) == (1, False)
    assert world.live(group) == {DEFAULT_EGRESS}
    (body,) = published(inbox[1])
    assert body.startswith("AUTO-MITIGATED")
    assert "guardrail no-internet-except-web denies it (deny[0]: all from 0.0.0.0/0, ::/0)" in body


def test_junk_rules_do_not_shield_a_world_open_rule(
    world: World, responder: Responder, inbox: tuple[str, str]
) -> None:
    """30 private junk rules (over the group's limit of 25) and ssh from the world."""
    junk = [ingress("tcp", (1000 + i, 1000 + i), "10.9.0.0/16") for i in range(30)]
    group = world.group("web", {"Name": "web-prod"}, [HTTPS_PRIVATE, *junk, WORLD_SSH])
    summary, failed = run_event(authorize_event(group), responder)
    assert len(summary["revoked"]) == 1
    assert len(summary["blocked"]) == 30
    assert failed  # blocked drift fails the run: the RulesBlocked alarm, the DLQ
    assert world.live(group) == {HTTPS_PRIVATE, *junk, DEFAULT_EGRESS}
    (line,) = published(inbox[1])
    assert line.startswith("PARTLY MITIGATED")


def test_widening_the_only_baseline_rule_in_place(
    world: World, ec2: Any, responder: Responder, inbox: tuple[str, str]
) -> None:
    group = world.group("web", {"Name": "web-prod"}, [HTTPS_PRIVATE])
    (rule,) = [
        r
        for r in ec2.describe_security_group_rules(
            Filters=[{"Name": "group-id", "Values": [group]}]
        )["SecurityGroupRules"]
        if not r["IsEgress"]
    ]
    rule_id = rule["SecurityGroupRuleId"]
    wide = {"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535, "CidrIpv4": "0.0.0.0/0"}
    ec2.modify_security_group_rules(
        GroupId=group,
        SecurityGroupRules=[{"SecurityGroupRuleId": rule_id, "SecurityGroupRule": wide}],
    )
    params = {
        "ModifySecurityGroupRulesRequest": {
            "GroupId": group,
            "SecurityGroupRule": {"SecurityGroupRuleId": rule_id, "SecurityGroupRule": wide},
        }
    }
    summary, failed = run_event(cloudtrail("ModifySecurityGroupRules", params), responder)
    assert (summary["revoked"], failed) == ([rule_id], False)
    assert world.live(group) == {DEFAULT_EGRESS}  # left empty: better than open to the world
    (line,) = published(inbox[1])
    assert line.startswith("AUTO-MITIGATED")


def test_editing_a_prefix_list_a_rule_references(
    world: World, ec2: Any, session: boto3.Session, responder: Responder, inbox: tuple[str, str]
) -> None:
    answer_associations_like_ec2(session)
    made = ec2.create_managed_prefix_list(
        PrefixListName="partners",
        Entries=[{"Cidr": "10.1.0.0/16"}],
        MaxEntries=5,
        AddressFamily="IPv4",
    )["PrefixList"]
    pl_id = made["PrefixListId"]
    via_list = ingress("tcp", (22, 22), pl_id)
    group = world.group("web", {"Name": "web-prod"}, [HTTPS_PRIVATE])
    world.authorize(group, via_list)
    ec2.modify_managed_prefix_list(
        PrefixListId=pl_id,
        CurrentVersion=made.get("Version", 1),
        AddEntries=[{"Cidr": "0.0.0.0/0"}],
    )
    params = {"ModifyManagedPrefixListRequest": {"PrefixListId": pl_id}}
    summary, failed = run_event(cloudtrail("ModifyManagedPrefixList", params), responder)
    assert (len(summary["revoked"]), failed) == (1, False)
    assert world.live(group) == {HTTPS_PRIVATE, DEFAULT_EGRESS}
    (line,) = published(inbox[1])
    assert line.startswith("AUTO-MITIGATED")


def test_tagging_a_group_into_a_second_policy(
    world: World, ec2: Any, responder: Responder, inbox: tuple[str, str]
) -> None:
    group = world.group("web", {"Name": "web-prod"}, [HTTPS_PRIVATE, WORLD_SSH])
    ec2.create_tags(Resources=[group], Tags=[{"Key": "team", "Value": "payments"}])
    summary, failed = run_event(tags_event("CreateTags", group, {"team": "payments"}), responder)
    assert failed
    assert "matched by policies web-prod, payments" in summary["errors"][0]
    assert world.live(group) == {HTTPS_PRIVATE, DEFAULT_EGRESS}  # the floor still holds
    lines = [body.splitlines()[0] for body in published(inbox[1])]
    assert any(line.startswith("CreateTags by " + INSIDER + " left groups") for line in lines)
    assert any(line.startswith("AUTO-MITIGATED") for line in lines)


def test_an_automation_that_keeps_re_creating_a_rule_is_a_published_fight(
    world: World, responder: Responder, inbox: tuple[str, str]
) -> None:
    """Third re-creation within the hour: FIGHTING, once; every time the rule is revoked."""
    group = world.group("lb", None, [])
    bodies = []
    for _ in range(4):
        world.authorize(group, WORLD_SSH)
        summary, failed = run_event(authorize_event(group), responder)
        assert (len(summary["revoked"]), failed) == (1, False)
        assert WORLD_SSH not in world.live(group)
        bodies += [b.splitlines()[0] for b in published(inbox[1])]
    fights = [b for b in bodies if b.startswith("FIGHTING")]
    assert fights == [
        f"FIGHTING: {INSIDER} keeps re-creating ingress tcp 22 from 0.0.0.0/0 in {group}:"
        " revoked 3 times within the hour, and revoked again."
    ]


def test_the_schedule_reports_groups_that_left_since_its_last_run(
    tmp_path: Path, world: World, ec2: Any, session: boto3.Session, inbox: tuple[str, str]
) -> None:
    """However a group left (here a tag change no event reported), the next scheduled run
    names it, once, and counts it (GroupsLeftBaseline)."""
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="journal-bucket")
    env = {
        "SG_RECONCILER_POLICIES": str(write_policies(tmp_path / "p", POLICIES)),
        "SG_RECONCILER_REGIONS": REGION,
        "SG_RECONCILER_TOPIC_ARN": inbox[0],
        "SG_RECONCILER_JOURNAL_BUCKET": "journal-bucket",
    }
    responder = build_responder(env, session=session)
    group = world.group("pay", {"team": "payments"}, [HTTPS_PRIVATE])
    tick = load_event("synthetic__scheduled_event")
    first, failed = run_event(tick, responder)
    assert (first["left_baseline"], failed) == ([], False)
    ec2.delete_tags(Resources=[group], Tags=[{"Key": "team"}])
    second, _ = run_event(tick, responder)
    assert second["left_baseline"] == [group]
    (body,) = published(inbox[1])
    assert body.splitlines()[:2] == [
        "LEFT BASELINE since the last scheduled run: 1 group(s), whoever did it and however"
        " (tag change, deletion, policy edit):",
        f"- {group} (-/{REGION}/{group}): left policy payments; now under no policy"
        " (guardrails only, if any)",
    ]
    third, _ = run_event(tick, responder)
    assert third["left_baseline"] == []  # said once
    s3.put_object(Bucket="journal-bucket", Key="state/managed.json", Body=b"[not json")
    fourth, _ = run_event(tick, responder)
    assert fourth["errors"] == [
        "state: s3://journal-bucket/state/managed.json is not a state object;"
        " rewritten from this run"
    ]
    assert run_event(tick, responder)[0]["errors"] == []  # rewritten
