"""The deployed CloudTrail rule, exercised with real CloudTrail records through EventBridge.

The stack is deployed to moto; the rule's Lambda target is swapped for an SQS queue (moto would
need Docker to run the function), and each record is sent with PutEvents as EC2 would send it.
moto's pattern matcher implements ``$or``, ``anything-but`` and ``exists`` as AWS documents
them; it does not look inside arrays of objects as AWS does, which ``ruler_like_arrays``
(tests/eventbridge_moto.py) adds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.cfn_moto import aws_like_change_sets, ignore_unsupported_resources
from tests.deploy_stacks import (
    EVENTS,
    cloudtrail_record,
    deploy,
    session_issuer_arn,
    stand_in_package,
)
from tests.eventbridge_moto import ruler_like_arrays

pytestmark = [ignore_unsupported_resources]

REGION = "eu-west-1"

# Real Authorize records (EB-wrapped and raw). The two hand-edited panther fixtures are left
# out: __2 is Panther's normalised form, not CloudTrail; __3 is used below for errorCode.
REAL_AUTHORIZE = sorted(
    p.stem
    for p in EVENTS.glob("AuthorizeSecurityGroup*__*.json")
    if p.stem
    not in {
        "AuthorizeSecurityGroupIngress__panther-analysis__2",
        "AuthorizeSecurityGroupIngress__panther-analysis__3",
    }
)
OTHER_HANDLED = [
    "RevokeSecurityGroupIngress__unattributed-e__1",
    "CreateSecurityGroup__panther-analysis__1",
    "CreateSecurityGroup__unattributed-c__1",
    "synthetic__CreateTags__sg",
    "synthetic__DeleteTags__sg",
]
MODIFY = [
    "synthetic__ModifySecurityGroupRules__list",
    "synthetic__ModifySecurityGroupRules__object",
]
WITH_ERROR_CODE = [
    "AuthorizeSecurityGroupIngress__panther-analysis__3",
    "RunInstances__stratus-red-team__1",
]


@dataclass(frozen=True)
class Router:
    """Sends a CloudTrail record through the deployed rule; says whether it reached the target."""

    role_arn: str
    route: Callable[[dict[str, Any]], bool]


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Router]:
    """The stack deployed once; its CloudTrail rule now delivers to an SQS queue."""
    with mock_aws(), aws_like_change_sets(), ruler_like_arrays():
        session = boto3.Session(region_name=REGION)
        package = stand_in_package(Path(tmp_path_factory.mktemp("pkg")) / "package.zip")
        deployed = deploy(session, package).result
        assert deployed.ok, deployed.failures
        rule = deployed.outputs["CloudTrailEventRuleName"]
        events = session.client("events")
        sqs = session.client("sqs")
        queue_url = sqs.create_queue(QueueName="routed")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events.remove_targets(Rule=rule, Ids=["reconciler"])
        # moto also offers every PutEvents event to rules without a pattern (AWS fires a
        # schedule rule only on its schedule) and cannot invoke a Lambda target without Docker.
        events.remove_targets(Rule=deployed.outputs["ScheduleRuleName"], Ids=["reconciler"])
        events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": queue_arn}])

        def route(record: dict[str, Any]) -> bool:
            sent = events.put_events(
                Entries=[
                    {
                        "Source": "aws.ec2",
                        "DetailType": "AWS API Call via CloudTrail",
                        "Detail": json.dumps(record),
                    }
                ]
            )
            assert sent["FailedEntryCount"] == 0
            messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            for message in messages:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            assert len(messages) <= 1
            if messages:
                assert json.loads(messages[0]["Body"])["detail"] == record
            return bool(messages)

        yield Router(deployed.outputs["RoleArn"], route)


def test_real_authorize_samples_are_routed(router: Router) -> None:
    """Every real Authorize record, raw or EB-wrapped, IPv4/IPv6/SG-sourced, reaches the target."""
    assert len(REAL_AUTHORIZE) >= 15
    routed = {name: router.route(cloudtrail_record(name)) for name in REAL_AUTHORIZE}
    assert routed == dict.fromkeys(REAL_AUTHORIZE, True)


def test_other_handled_event_names_are_routed(router: Router) -> None:
    """Revoke, CreateSecurityGroup, and CreateTags/DeleteTags on a group reach the target."""
    routed = {name: router.route(cloudtrail_record(name)) for name in OTHER_HANDLED}
    assert routed == dict.fromkeys(OTHER_HANDLED, True)


def test_tag_calls_on_other_resources_are_dropped_and_on_a_security_group_routed(
    router: Router,
) -> None:
    """The real CreateTags on an instance is dropped; the same call also naming an sg- routes."""
    record = cloudtrail_record("CreateTags__unattributed-d__1")
    items = record["requestParameters"]["resourcesSet"]["items"]
    assert [item["resourceId"][:2] for item in items] == ["i-"]
    assert router.route(record) is False
    deleted = {**record, "eventName": "DeleteTags"}
    assert router.route(deleted) is False
    items.append({"resourceId": "sg-0123456789abcdef0"})
    assert router.route(record) is True
    assert router.route({**record, "eventName": "DeleteTags"}) is True
    # A security group *rule* (sgr-) carries tags too, and tagging one changes no rule.
    items[-1] = {"resourceId": "sgr-0123456789abcdef0"}
    assert router.route(record) is False


def test_modify_security_group_rules_is_routed(router: Router) -> None:
    """ModifySecurityGroupRules (one rule or a list of rules) reaches the target."""
    routed = {name: router.route(cloudtrail_record(name)) for name in MODIFY}
    assert routed == dict.fromkeys(MODIFY, True)


def test_failed_calls_are_dropped(router: Router) -> None:
    """Records carrying errorCode never reach the target, whatever their event name."""
    routed = {name: router.route(cloudtrail_record(name)) for name in WITH_ERROR_CODE}
    assert routed == dict.fromkeys(WITH_ERROR_CODE, False)


def test_a_real_record_with_an_error_code_added_is_dropped_and_without_it_routed(
    router: Router,
) -> None:
    """The errorCode condition alone decides: the same record routes once it is removed."""
    record = cloudtrail_record("AuthorizeSecurityGroupIngress__elastic-integrations__1")
    failed = {**record, "errorCode": "Client.UnauthorizedOperation", "errorMessage": "denied"}
    assert router.route(failed) is False
    assert router.route(record) is True


def test_calls_made_by_the_functions_own_role_are_dropped(router: Router) -> None:
    """A revoke by the function's role is dropped; the same call by another role is routed."""
    record = cloudtrail_record("AuthorizeSecurityGroupIngress__panther-analysis__1")
    record["eventName"] = "RevokeSecurityGroupIngress"
    assert session_issuer_arn(record) == "arn:aws:iam::112233445566:role/Operator"
    assert router.route(record) is True
    own = json.loads(json.dumps(record))
    own["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] = router.role_arn
    own["userIdentity"]["arn"] = (
        f"arn:aws:sts::123456789012:assumed-role/{router.role_arn.rsplit('/', 1)[1]}/reconciler"
    )
    assert router.route(own) is False


@pytest.mark.parametrize(
    ("name", "identity"),
    [
        ("AuthorizeSecurityGroupIngress__elastic-integrations__1", "IAMUser"),
        ("AuthorizeSecurityGroupIngress__stratus-red-team__1", "IAMUser"),
        ("AuthorizeSecurityGroupIngress__cloud-buddy__1", "Root"),
        ("CreateSecurityGroup__unattributed-c__1", "Root"),
    ],
)
def test_users_and_root_without_a_session_issuer_are_routed(
    router: Router, name: str, identity: str
) -> None:
    """IAM-user and root records have no session issuer, and still reach the target."""
    record = cloudtrail_record(name)
    assert record["userIdentity"]["type"] == identity
    assert session_issuer_arn(record) is None
    assert router.route(record) is True


def test_a_record_with_no_session_context_at_all_is_routed(router: Router) -> None:
    """An IAM-user record whose userIdentity lacks sessionContext entirely reaches the target."""
    record = cloudtrail_record("AuthorizeSecurityGroupIngress__elastic-integrations__1")
    assert "sessionContext" not in record["userIdentity"]
    assert router.route(record) is True


def test_ec2_calls_the_handler_does_not_act_on_are_dropped(router: Router) -> None:
    """A successful EC2 call outside the handled names (RunInstances) is dropped."""
    record = cloudtrail_record("RunInstances__stratus-red-team__1")
    del record["errorCode"]
    record.pop("errorMessage", None)
    assert router.route(record) is False
