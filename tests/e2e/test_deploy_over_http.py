"""The installed CLI deploys the stack to moto_server over HTTP; the live stack is the template.

The server is ``aws_like_moto_server`` (tests/e2e/aws_like_moto_server.py): moto_server with the
CloudFormation differences of tests/cfn_moto.py corrected to AWS's documented behaviour. The
resources moto's CloudFormation cannot create (``MOTO_UNSUPPORTED``: alarms, the trail, queue
and bucket policies, the e-mail subscription, the invoke config) are skipped by the server with
a warning; tests/integration/test_template.py checks them in the template instead.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from reconciler.deploy.template import load_template, policy_documents
from tests.cfn_moto import role_policy
from tests.cfn_resolve import StackContext, resolve
from tests.deploy_stacks import REPO, TEMPLATE
from tests.e2e.conftest import cli
from tests.policyfiles import write_policies

pytestmark = pytest.mark.e2e

STACK = "sg-rec"
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
BUCKET = f"sg-reconciler-{ACCOUNT}-{REGION}"
OUTPUT_LINE = re.compile(r"^  (\w+) = (\S+)$")

BAD_POLICY = """\
groups:
  - name: web-prod
    match: {tags: {Name: prod-sg}}
    ingress:
      - protocol: tcp
        ports: 22
        from: 10.0.0.1/8
"""


def deploy(endpoint: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """`sg-reconciler deploy` of the shipped policies/ from the repository root."""
    args = ["--stack-name", STACK, "--region", REGION, "--endpoint-url", endpoint]
    return cli("deploy", *args, "--policies", "policies", *extra, cwd=REPO)


def client(endpoint: str, service: str) -> Any:
    """A boto3 client talking to the moto server over HTTP."""
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint)


def printed_outputs(stdout: str) -> dict[str, str]:
    """The `  Name = value` lines deploy prints after the stack status."""
    return {m[1]: m[2] for line in stdout.splitlines() if (m := OUTPUT_LINE.match(line))}


def stack(endpoint: str) -> dict[str, Any]:
    """The live stack, described over HTTP."""
    found: dict[str, Any] = client(endpoint, "cloudformation").describe_stacks(StackName=STACK)
    return found["Stacks"][0]


def stack_event_ids(endpoint: str) -> list[str]:
    """Ids of the stack's events, newest first."""
    events = client(endpoint, "cloudformation").describe_stack_events(StackName=STACK)
    return [e["EventId"] for e in events["StackEvents"]]


def template_actions_by_policy(template: Mapping[str, Any]) -> dict[str, set[str]]:
    """Each inline policy of the template's role and the actions it allows (all branches)."""
    role = template["Resources"]["ReconcilerRole"]["Properties"]
    by_policy: dict[str, set[str]] = {}
    for policy in role["Policies"]:
        actions = by_policy.setdefault(policy["PolicyName"], set())
        for document in policy_documents(policy["PolicyDocument"]):
            for statement in document["Statement"]:
                actions.update(as_list(statement["Action"]))
    return by_policy


def as_list(value: Any) -> list[Any]:
    """A policy element that may be a single value, as a list."""
    return value if isinstance(value, list) else [value]


def deployed(
    endpoint: str, template: Mapping[str, Any], outputs: Mapping[str, str]
) -> StackContext:
    """The live stack's values of Ref (physical ids) and of the attributes it outputs."""
    resources = client(endpoint, "cloudformation").describe_stack_resources(StackName=STACK)
    physical_ids = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in resources["StackResources"]
        if "LogicalResourceId" in r and "PhysicalResourceId" in r
    }
    attributes = {
        ".".join(spec["Value"]["Fn::GetAtt"]): outputs[name]
        for name, spec in template["Outputs"].items()
        if isinstance(spec["Value"], Mapping) and "Fn::GetAtt" in spec["Value"]
    }
    return StackContext(
        template,
        account_id=ACCOUNT,
        region=REGION,
        stack_name=STACK,
        physical_ids=physical_ids,
        attributes=attributes,
    )


def test_deploy_creates_the_stack_the_template_declares(aws_like_endpoint: str) -> None:
    """deploy exits 0, prints the outputs, and the live function, role and rules are templated."""
    done = deploy(aws_like_endpoint)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert f"Stack {STACK}: CREATE_COMPLETE" in lines
    live = stack(aws_like_endpoint)
    assert live["StackStatus"] == "CREATE_COMPLETE"
    outputs = {o["OutputKey"]: o["OutputValue"] for o in live["Outputs"]}
    assert printed_outputs(done.stdout) == outputs
    for name in ("FunctionArn", "TopicArn", "CloudTrailEventRuleName", "ScheduleRuleName"):
        assert f"  {name} = {outputs[name]}" in lines

    template = load_template(TEMPLATE)
    function = template["Resources"]["ReconcilerFunction"]["Properties"]
    config = client(aws_like_endpoint, "lambda").get_function(FunctionName=outputs["FunctionArn"])[
        "Configuration"
    ]
    assert config["FunctionArn"] == outputs["FunctionArn"]
    assert config["Handler"] == function["Handler"] == "reconciler.lambda_handler.handler"
    assert config["Runtime"] == function["Runtime"] == "python3.12"
    assert config["Role"] == outputs["RoleArn"]
    stack_values = deployed(aws_like_endpoint, template, outputs)
    environment = config["Environment"]["Variables"]
    assert environment == resolve(function["Environment"]["Variables"], stack_values)
    assert environment["SG_RECONCILER_MODE"] == "report"  # the default: a first deploy reports
    assert environment["SG_RECONCILER_REGIONS"] == REGION
    assert environment["SG_RECONCILER_TOPIC_ARN"] == outputs["TopicArn"]
    assert environment["SG_RECONCILER_ROLE_ARN"] == outputs["RoleArn"]
    assert "SG_RECONCILER_IGNORE_PRINCIPALS" not in environment  # none given
    code_key = next(p for p in live["Parameters"] if p["ParameterKey"] == "CodeS3Key")
    sha256_hex = code_key["ParameterValue"].removeprefix("sg-reconciler/").removesuffix(".zip")
    assert config["CodeSha256"] == base64.b64encode(bytes.fromhex(sha256_hex)).decode()
    assert f"Uploaded s3://{BUCKET}/{code_key['ParameterValue']}" in lines

    iam = client(aws_like_endpoint, "iam")
    role_name = outputs["RoleArn"].rsplit("/", 1)[1]
    live_actions = {
        name: {
            action
            for statement in role_policy(iam, role_name, name)["Statement"]
            for action in as_list(statement["Action"])
        }
        for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]
    }
    assert live_actions == template_actions_by_policy(template)

    events = client(aws_like_endpoint, "events")
    cloudtrail_rule = events.describe_rule(Name=outputs["CloudTrailEventRuleName"])
    assert cloudtrail_rule["State"] == "ENABLED"
    pattern = template["Resources"]["CloudTrailEventRule"]["Properties"]["EventPattern"]
    assert json.loads(cloudtrail_rule["EventPattern"]) == resolve(pattern, stack_values)
    schedule_rule = events.describe_rule(Name=outputs["ScheduleRuleName"])
    assert schedule_rule["State"] == "ENABLED"
    assert schedule_rule["ScheduleExpression"] == template["Parameters"]["Schedule"]["Default"]
    for rule in (cloudtrail_rule, schedule_rule):
        (target,) = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        assert target["Arn"] == outputs["FunctionArn"]


def test_deploying_the_same_again_changes_nothing(aws_like_endpoint: str) -> None:
    """A second identical deploy exits 0, says "no changes", and adds no stack event or code."""
    first = deploy(aws_like_endpoint)
    assert first.returncode == 0, first.stdout + first.stderr
    before = stack(aws_like_endpoint)
    events_before = stack_event_ids(aws_like_endpoint)
    objects_before = client(aws_like_endpoint, "s3").list_object_versions(Bucket=BUCKET)

    again = deploy(aws_like_endpoint)

    assert again.returncode == 0, again.stdout + again.stderr
    code_key = next(
        p["ParameterValue"] for p in before["Parameters"] if p["ParameterKey"] == "CodeS3Key"
    )
    assert again.stdout.splitlines() == [
        f"Package s3://{BUCKET}/{code_key} already uploaded",
        f"Stack {STACK}: no changes",
    ]
    assert stack_event_ids(aws_like_endpoint) == events_before
    after = stack(aws_like_endpoint)
    assert after["Parameters"] == before["Parameters"]
    assert after.get("LastUpdatedTime") == before.get("LastUpdatedTime")
    objects_after = client(aws_like_endpoint, "s3").list_object_versions(Bucket=BUCKET)
    assert objects_after["Versions"] == objects_before["Versions"]
    assert (
        client(aws_like_endpoint, "cloudformation").list_change_sets(StackName=STACK)["Summaries"]
        == []
    )


def test_dry_run_prints_the_change_set_and_leaves_no_stack(aws_like_endpoint: str) -> None:
    """deploy --dry-run lists what it would add, then leaves no stack, bucket or package."""
    done = deploy(aws_like_endpoint, "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"Would create bucket {BUCKET} and upload s3://{BUCKET}/")
    assert lines[1].startswith("Change set sg-reconciler-")
    assert "  Add      ReconcilerFunction AWS::Lambda::Function" in lines
    assert "  Add      ReconcilerRole AWS::IAM::Role" in lines
    assert lines[-1] == f"Stack {STACK}: dry run, change set deleted"
    with pytest.raises(ClientError, match="does not exist"):
        stack(aws_like_endpoint)
    assert client(aws_like_endpoint, "s3").list_buckets()["Buckets"] == []


def test_invalid_policies_stop_the_deploy_before_any_aws_call(
    aws_like_endpoint: str, tmp_path: Path
) -> None:
    """A baseline with an error exits 1 with file:line on stderr and creates nothing."""
    policies = write_policies(tmp_path / "policies", BAD_POLICY, "web.yaml")
    args = ["--stack-name", STACK, "--region", REGION, "--endpoint-url", aws_like_endpoint]
    done = cli("deploy", *args, "--policies", str(policies), cwd=REPO)
    assert done.returncode == 1
    assert done.stdout == ""
    assert f"{policies / 'web.yaml'}:7: groups[0].ingress[0].from" in done.stderr
    assert "has host bits set (did you mean 10.0.0.0/8?)" in done.stderr
    cfn = client(aws_like_endpoint, "cloudformation")
    assert cfn.list_stacks()["StackSummaries"] == []
    assert client(aws_like_endpoint, "s3").list_buckets()["Buckets"] == []
