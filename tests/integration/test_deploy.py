"""deploy_stack against moto: the live stack matches the template, and redeploys are idempotent."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from reconciler.deploy.bucket import package_key
from reconciler.deploy.cloudformation import failure_reasons
from reconciler.deploy.stack import DeployOutcome
from reconciler.deploy.template import load_template, template_ec2_actions
from tests.cfn_moto import aws_like_change_sets, ignore_unsupported_resources, role_policy
from tests.deploy_stacks import TEMPLATE, Deployed, deploy, stand_in_package

pytestmark = [ignore_unsupported_resources]

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account
STACK = "sg-reconciler"


@pytest.fixture
def session() -> Iterator[boto3.Session]:
    """A moto account in which executing a change set behaves as on AWS (see tests/cfn_moto)."""
    with mock_aws(), aws_like_change_sets():
        yield boto3.Session(region_name=REGION)


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A stand-in deployment package."""
    return stand_in_package(tmp_path / "package.zip")


@pytest.fixture
def created(session: boto3.Session, package: Path) -> Deployed:
    """The stack, created in report mode with an hourly schedule."""
    deployed = deploy(session, package, Mode="report", Schedule="rate(1 hour)")
    assert deployed.result.ok, deployed.printed
    return deployed


def stack_events(session: boto3.Session) -> list[str]:
    """Ids of the stack's events, newest first."""
    cfn = session.client("cloudformation")
    return [e["EventId"] for e in cfn.describe_stack_events(StackName=STACK)["StackEvents"]]


def function_config(session: boto3.Session, deployed: Deployed) -> dict[str, Any]:
    """The live function's configuration."""
    name = deployed.result.outputs["FunctionName"]
    config: dict[str, Any] = session.client("lambda").get_function(FunctionName=name)[
        "Configuration"
    ]
    return config


def role_policies(session: boto3.Session, role_arn: str) -> dict[str, dict[str, Any]]:
    """The live role's inline policies by name."""
    iam = session.client("iam")
    role = role_arn.rsplit("/", 1)[1]
    return {
        name: role_policy(iam, role, name)
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]
    }


def test_create_prints_the_change_set_and_the_outputs(created: Deployed, package: Path) -> None:
    """A first deploy uploads the package, creates the stack, and prints its outputs."""
    result = created.result
    key = package_key(package.read_bytes())
    assert result.outcome is DeployOutcome.CREATED
    assert result.stack_status == "CREATE_COMPLETE"
    assert result.uploaded is True
    assert result.bucket == f"sg-reconciler-{ACCOUNT}-{REGION}"
    assert result.key == key
    lines = created.printed.splitlines()
    assert lines[0] == f"Created bucket {result.bucket} (private, versioned)"
    assert lines[1] == f"Uploaded s3://{result.bucket}/{key}"
    assert lines[2].startswith("Change set sg-reconciler-")
    assert "  Add      ReconcilerFunction AWS::Lambda::Function" in lines
    assert f"Stack {STACK}: CREATE_COMPLETE" in lines
    for name in ("FunctionArn", "TopicArn", "CloudTrailEventRuleName", "ScheduleRuleName"):
        assert f"  {name} = {result.outputs[name]}" in lines


def test_created_bucket_is_versioned_and_private(session: boto3.Session, created: Deployed) -> None:
    """The package bucket deploy creates has versioning on and all public access blocked."""
    s3 = session.client("s3")
    bucket = created.result.bucket
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == REGION


def test_live_function_matches_the_template(
    session: boto3.Session, created: Deployed, package: Path
) -> None:
    """Handler, runtime, sizing, role, code and environment of the live function are templated."""
    template = load_template(TEMPLATE)
    expected = template["Resources"]["ReconcilerFunction"]["Properties"]
    config = function_config(session, created)
    outputs = created.result.outputs
    assert config["Handler"] == expected["Handler"] == "reconciler.lambda_handler.handler"
    assert config["Runtime"] == expected["Runtime"] == "python3.12"
    assert config["MemorySize"] == template["Parameters"]["MemorySize"]["Default"]
    assert config["Timeout"] == template["Parameters"]["Timeout"]["Default"]
    assert config["Role"] == outputs["RoleArn"]
    assert config["FunctionArn"] == outputs["FunctionArn"]
    sha = base64.b64encode(hashlib.sha256(package.read_bytes()).digest()).decode()
    assert config["CodeSha256"] == sha
    assert config["Environment"]["Variables"] == {
        "SG_RECONCILER_MODE": "report",
        "SG_RECONCILER_REGIONS": REGION,
        "SG_RECONCILER_TOPIC_ARN": outputs["TopicArn"],
        "SG_RECONCILER_ROLE_ARN": outputs["RoleArn"],
        "SG_RECONCILER_JOURNAL_BUCKET": outputs["JournalBucketName"],
        "SG_RECONCILER_JOURNAL_PREFIX": "journal",
    }


def test_live_role_policy_matches_the_template(session: boto3.Session, created: Deployed) -> None:
    """The role allows the template's ec2 actions on this account's groups and its own resources."""
    outputs = created.result.outputs
    policies = role_policies(session, outputs["RoleArn"])
    assert set(policies) == {"read-security-groups", "revoke-drift", "notify-and-log"}
    statements = {s["Sid"]: s for p in policies.values() for s in p["Statement"]}
    live_ec2 = {
        a for s in statements.values() for a in s["Action"] if isinstance(s["Action"], list)
    } | {s["Action"] for s in statements.values() if isinstance(s["Action"], str)}
    assert {a for a in live_ec2 if a.startswith("ec2:")} == template_ec2_actions(TEMPLATE)
    assert statements["DescribeSecurityGroups"]["Resource"] == "*"
    revoke = statements["RevokeInAccountGroups"]
    assert revoke["Resource"] == [
        f"arn:aws:ec2:*:{ACCOUNT}:security-group/*",
        f"arn:aws:ec2:*:{ACCOUNT}:security-group-rule/*",
    ]
    assert revoke["Condition"] == {"StringEquals": {"aws:RequestedRegion": [REGION]}}
    queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{outputs['DeadLetterQueueUrl'].rsplit('/', 1)[1]}"
    assert statements["PublishNotifications"]["Resource"] == outputs["TopicArn"]
    assert statements["FailedInvocationsToDeadLetterQueue"]["Resource"] == queue_arn
    log_group = outputs["LogGroupName"]
    assert statements["WriteOwnLog"]["Resource"].startswith(
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{log_group}"
    )


def test_managed_tag_limits_revokes_to_tagged_groups(session: boto3.Session, package: Path) -> None:
    """With ManagedTagKey set, the live revoke statement requires that tag on the group."""
    deployed = deploy(
        session,
        package,
        ManagedTagKey="sg-reconciler:managed",
        ManagedTagValue="true",
        Regions="eu-west-1,us-east-1",
    )
    assert deployed.result.ok, deployed.printed
    statements = {
        s["Sid"]: s
        for s in role_policies(session, deployed.result.outputs["RoleArn"])["revoke-drift"][
            "Statement"
        ]
    }
    assert statements["RevokeInManagedGroups"]["Condition"] == {
        "StringEquals": {
            "aws:RequestedRegion": ["eu-west-1", "us-east-1"],
            "ec2:ResourceTag/sg-reconciler:managed": "true",
        }
    }
    assert statements["RevokeRulesById"]["Resource"] == (
        f"arn:aws:ec2:*:{ACCOUNT}:security-group-rule/*"
    )


def test_live_rules_match_the_template(session: boto3.Session, created: Deployed) -> None:
    """Both rules exist as templated, target the function, and may invoke it."""
    template = load_template(TEMPLATE)
    outputs = created.result.outputs
    events = session.client("events")
    cloudtrail = events.describe_rule(Name=outputs["CloudTrailEventRuleName"])
    expected = json.loads(
        json.dumps(
            template["Resources"]["CloudTrailEventRule"]["Properties"]["EventPattern"]
        ).replace('{"Fn::GetAtt": ["ReconcilerRole", "Arn"]}', json.dumps(outputs["RoleArn"]))
    )
    assert json.loads(cloudtrail["EventPattern"]) == expected
    schedule = events.describe_rule(Name=outputs["ScheduleRuleName"])
    assert schedule["ScheduleExpression"] == "rate(1 hour)"
    for rule in (cloudtrail, schedule):
        (target,) = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        assert target["Arn"] == outputs["FunctionArn"]
    policy = json.loads(
        session.client("lambda").get_policy(FunctionName=outputs["FunctionName"])["Policy"]
    )
    sources = {s["Condition"]["ArnLike"]["AWS:SourceArn"] for s in policy["Statement"]}
    assert sources == {cloudtrail["Arn"], schedule["Arn"]}


def test_redeploy_without_change_changes_nothing(
    session: boto3.Session, created: Deployed, package: Path
) -> None:
    """The same package and parameters: no upload, no stack event, "no changes", no change set."""
    before = stack_events(session)
    again = deploy(session, package, Mode="report", Schedule="rate(1 hour)")
    assert again.result.outcome is DeployOutcome.UNCHANGED
    assert again.result.ok
    assert again.result.uploaded is False
    assert again.printed.splitlines() == [
        f"Package s3://{created.result.bucket}/{created.result.key} already uploaded",
        f"Stack {STACK}: no changes",
    ]
    assert again.result.outputs == created.result.outputs
    assert stack_events(session) == before
    cfn = session.client("cloudformation")
    assert cfn.list_change_sets(StackName=STACK)["Summaries"] == []


def test_parameters_not_given_keep_their_deployed_values(
    session: boto3.Session, created: Deployed, package: Path
) -> None:
    """An update that only sets Mode switches the function to enforce and keeps the schedule."""
    updated = deploy(session, package, Mode="enforce")
    assert updated.result.outcome is DeployOutcome.UPDATED, updated.printed
    assert f"Stack {STACK}: UPDATE_COMPLETE" in updated.printed.splitlines()
    env = function_config(session, updated)["Environment"]["Variables"]
    assert env["SG_RECONCILER_MODE"] == "enforce"
    cfn = session.client("cloudformation")
    params = {
        p["ParameterKey"]: p["ParameterValue"]
        for p in cfn.describe_stacks(StackName=STACK)["Stacks"][0]["Parameters"]
    }
    assert params["Schedule"] == "rate(1 hour)"
    assert params["Mode"] == "enforce"
    unchanged = deploy(session, package, Mode="enforce")
    assert unchanged.result.outcome is DeployOutcome.UNCHANGED


def test_a_new_package_is_uploaded_under_its_own_key_and_updates_the_code(
    session: boto3.Session, created: Deployed, tmp_path: Path
) -> None:
    """Changed bytes get a new content-addressed key, and the function runs the new code."""
    newer = stand_in_package(tmp_path / "newer.zip", marker="2")
    updated = deploy(session, newer, Mode="report", Schedule="rate(1 hour)")
    assert updated.result.outcome is DeployOutcome.UPDATED
    assert updated.result.uploaded is True
    assert updated.result.key != created.result.key
    sha = base64.b64encode(hashlib.sha256(newer.read_bytes()).digest()).decode()
    assert function_config(session, updated)["CodeSha256"] == sha


def test_dry_run_of_a_new_stack_creates_nothing(session: boto3.Session, package: Path) -> None:
    """A dry run prints the change set, then leaves no stack, bucket or object behind."""
    dry = deploy(session, package, dry_run=True)
    assert dry.result.outcome is DeployOutcome.DRY_RUN
    lines = dry.printed.splitlines()
    bucket = f"sg-reconciler-{ACCOUNT}-{REGION}"
    assert lines[0] == f"Would create bucket {bucket} and upload s3://{bucket}/{dry.result.key}"
    assert "  Add      CloudTrailEventRule AWS::Events::Rule" in lines
    assert lines[-1] == f"Stack {STACK}: dry run, change set deleted"
    with pytest.raises(ClientError, match="does not exist"):
        session.client("cloudformation").describe_stacks(StackName=STACK)
    assert session.client("s3").list_buckets()["Buckets"] == []


def test_dry_run_of_an_update_leaves_the_stack_as_it_was(
    session: boto3.Session, created: Deployed, package: Path
) -> None:
    """A dry run with a new mode changes nothing live and leaves no change set."""
    before = stack_events(session)
    dry = deploy(session, package, Mode="enforce", dry_run=True)
    assert dry.result.outcome is DeployOutcome.DRY_RUN
    assert function_config(session, created)["Environment"]["Variables"]["SG_RECONCILER_MODE"] == (
        "report"
    )
    assert stack_events(session) == before
    cfn = session.client("cloudformation")
    assert cfn.list_change_sets(StackName=STACK)["Summaries"] == []


def test_a_missing_named_bucket_fails_with_the_fix(session: boto3.Session, package: Path) -> None:
    """A --bucket that does not exist is reported, and nothing is created."""
    failed = deploy(session, package, bucket="no-such-bucket-here")
    assert failed.result.outcome is DeployOutcome.FAILED
    assert failed.result.failures == (
        "bucket no-such-bucket-here does not exist (omit --bucket to create one)",
    )
    assert failed.printed.splitlines() == [
        f"Stack {STACK}: deploy failed",
        "  bucket no-such-bucket-here does not exist (omit --bucket to create one)",
    ]


def test_an_invalid_stack_fails_with_cloudformations_reason(
    session: boto3.Session, package: Path, tmp_path: Path
) -> None:
    """A template CloudFormation rejects gives a failing result carrying its message."""
    template = tmp_path / "template.yaml"
    template.write_text(
        TEMPLATE.read_text(encoding="utf-8").replace(
            "Parameters:\n", "Parameters:\n  Required:\n    Type: String\n", 1
        ),
        encoding="utf-8",
    )
    failed = deploy(session, package, template_path=template)
    assert failed.result.outcome is DeployOutcome.FAILED
    assert not failed.result.ok
    (reason,) = failed.result.failures
    assert "ValidationError" in reason
    assert "Required" in reason  # the parameter CloudFormation says is missing
    assert failed.printed.splitlines()[-2:] == [f"Stack {STACK}: deploy failed", f"  {reason}"]


def test_failure_reasons_lists_failed_resources_oldest_first() -> None:
    """Only *_FAILED events with a reason are kept, as `LogicalId (Type) STATUS: reason`."""
    at = datetime(2025, 3, 4, tzinfo=UTC)
    events: list[Any] = [  # describe_stack_events order: newest first
        {
            "StackId": "s",
            "EventId": "4",
            "StackName": STACK,
            "Timestamp": at,
            "LogicalResourceId": STACK,
            "ResourceType": "AWS::CloudFormation::Stack",
            "ResourceStatus": "ROLLBACK_COMPLETE",
        },
        {
            "StackId": "s",
            "EventId": "3",
            "StackName": STACK,
            "Timestamp": at,
            "LogicalResourceId": "ScheduleRule",
            "ResourceType": "AWS::Events::Rule",
            "ResourceStatus": "CREATE_FAILED",
            "ResourceStatusReason": "Resource creation cancelled",
        },
        {
            "StackId": "s",
            "EventId": "2",
            "StackName": STACK,
            "Timestamp": at,
            "LogicalResourceId": "ReconcilerFunction",
            "ResourceType": "AWS::Lambda::Function",
            "ResourceStatus": "CREATE_FAILED",
            "ResourceStatusReason": "Error occurred while GetObject. S3 Error Code: NoSuchKey.",
        },
        {
            "StackId": "s",
            "EventId": "1",
            "StackName": STACK,
            "Timestamp": at,
            "LogicalResourceId": "ReconcilerRole",
            "ResourceType": "AWS::IAM::Role",
            "ResourceStatus": "CREATE_COMPLETE",
        },
    ]
    assert failure_reasons(events) == (
        "ReconcilerFunction (AWS::Lambda::Function) CREATE_FAILED:"
        " Error occurred while GetObject. S3 Error Code: NoSuchKey.",
        "ScheduleRule (AWS::Events::Rule) CREATE_FAILED: Resource creation cancelled",
    )
