"""deploy/template.yaml: lint, least-privilege role, event pattern and the declared resources."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file

from reconciler.adapters.ec2 import (
    PREFIX_LIST_PERMISSIONS,
    REQUIRED_PERMISSIONS,
    RESTORE_PERMISSIONS,
)
from reconciler.adapters.events import HANDLED_EVENT_NAMES
from reconciler.deploy.template import (
    TEMPLATE_BODY_LIMIT,
    load_template,
    policy_documents,
    template_ec2_actions,
)
from tests.cfn_resolve import StackContext, ec2_role_policies
from tests.deploy_stacks import REPO, TEMPLATE, handled_event_names

CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"
EC2_ACTIONS = {
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSecurityGroupRules",
    "ec2:RevokeSecurityGroupIngress",
    "ec2:RevokeSecurityGroupEgress",
    "ec2:GetManagedPrefixListEntries",
    "ec2:GetManagedPrefixListAssociations",
}
ENVIRONMENT = {
    "SG_RECONCILER_MODE",
    "SG_RECONCILER_REGIONS",
    "SG_RECONCILER_TOPIC_ARN",
    "SG_RECONCILER_IGNORE_PRINCIPALS",
    "SG_RECONCILER_ROLE_ARN",
    "SG_RECONCILER_POLICIES",
    "SG_RECONCILER_JOURNAL_BUCKET",
    "SG_RECONCILER_JOURNAL_PREFIX",
    "SG_RECONCILER_ACCOUNTS",  # a hub only: test_member_role_template.py
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    """The template, intrinsic functions in long form."""
    return load_template(TEMPLATE)


def resources_of(template: Mapping[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """Resources of one type, by logical id."""
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def role_statements(template: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(policy name, statement) for every statement of the role, in every condition branch."""
    role = template["Resources"]["ReconcilerRole"]["Properties"]
    for policy in role["Policies"]:
        for document in policy_documents(policy["PolicyDocument"]):
            for statement in document["Statement"]:
                yield policy["PolicyName"], statement


def actions(statement: Mapping[str, Any]) -> list[str]:
    """A statement's actions as a list."""
    value = statement["Action"]
    return value if isinstance(value, list) else [value]


def test_cfn_lint_reports_nothing() -> None:
    """cfn-lint finds no error, warning or informational match in the template."""
    matches = lint_file(TEMPLATE)
    assert [str(m) for m in matches] == []


def test_template_fits_inline_in_a_create_change_set() -> None:
    """The template is small enough to send as TemplateBody (no S3 template upload needed)."""
    assert len(TEMPLATE.read_bytes()) < TEMPLATE_BODY_LIMIT


def test_checkov_passes_with_every_skip_justified(template: dict[str, Any]) -> None:
    """checkov reports no failed check, and each skipped check carries a written reason."""
    skips = [
        (name, skip)
        for name, resource in template["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips, "expected the documented skips"
    for name, skip in skips:
        assert skip["id"].startswith("CKV"), name
        assert len(skip.get("comment", "")) > 40, f"{name} {skip['id']} needs a reason"
    if not CHECKOV.exists():
        pytest.skip("checkov is installed by `make lint-template` into .venv-checkov")
    done = subprocess.run(
        [
            str(CHECKOV),
            "-f",
            str(TEMPLATE),
            "--framework",
            "cloudformation",
            "--quiet",
            "--compact",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout


def test_role_allows_exactly_the_ec2_actions_the_reconciler_calls() -> None:
    """The role's ec2 actions are the reader's Describe calls and the writer's revokes."""
    assert template_ec2_actions(TEMPLATE) == EC2_ACTIONS
    assert template_ec2_actions(TEMPLATE) == REQUIRED_PERMISSIONS | PREFIX_LIST_PERMISSIONS


def test_role_has_no_wildcard_action_and_no_authorize_create_delete_or_modify(
    template: dict[str, Any],
) -> None:
    """No statement allows "*" actions, or any Authorize, Create, Delete or Modify call."""
    forbidden = ("Authorize", "Create", "Delete", "Modify")
    for name, statement in role_statements(template):
        for action in actions(statement):
            service, _, verb = action.partition(":")
            assert "*" not in action, f"{name}: {action}"
            assert not verb.startswith(forbidden) or action == "logs:CreateLogStream", (
                f"{name}: {action}"
            )
            assert service in {"ec2", "sns", "sqs", "logs", "kms", "s3"}, f"{name}: {action}"


def test_authorize_is_granted_only_when_restore_tag_key_is_set(template: dict[str, Any]) -> None:
    """By default no policy allows Authorize; with RestoreTagKey set, exactly the two Authorize
    actions are added, by one policy resource attached to the role under HasRestoreTag."""
    restore = {"RestoreTagKey": "sg-reconciler:restore", "RestoreTagValue": "true"}
    assert template["Parameters"]["RestoreTagKey"]["Default"] == ""
    assert template_ec2_actions(TEMPLATE) == REQUIRED_PERMISSIONS | PREFIX_LIST_PERMISSIONS
    assert template_ec2_actions(TEMPLATE, restore) == (
        REQUIRED_PERMISSIONS | PREFIX_LIST_PERMISSIONS | RESTORE_PERMISSIONS
    )
    granting = {
        name
        for name, resource in template["Resources"].items()
        if resource["Type"].startswith("AWS::IAM::") and "Authorize" in json.dumps(resource)
    }
    assert granting == {"RestoreMissingPolicy"}
    policy = template["Resources"]["RestoreMissingPolicy"]
    assert policy["Type"] == "AWS::IAM::Policy"
    assert policy["Condition"] == "HasRestoreTag"
    assert template["Conditions"]["HasRestoreTag"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "RestoreTagKey"}, ""]}]
    }
    assert policy["Properties"]["Roles"] == [{"Ref": "ReconcilerRole"}]


def test_the_restore_branch_allows_authorize_only_on_tagged_groups_of_the_account(
    template: dict[str, Any],
) -> None:
    """Resolved as deployed, the restore statement carries exactly the tag and region condition."""
    context = StackContext(
        template,
        account_id="123456789012",
        region="eu-west-1",
        parameters={
            "RestoreTagKey": "sg-reconciler:restore",
            "RestoreTagValue": "true",
            "Regions": "eu-west-1,us-east-1",
        },
    )
    (statement,) = ec2_role_policies(context)["restore-missing"]["Statement"]
    assert statement == {
        "Sid": "RestoreInTaggedGroups",
        "Effect": "Allow",
        "Action": ["ec2:AuthorizeSecurityGroupIngress", "ec2:AuthorizeSecurityGroupEgress"],
        "Resource": "arn:aws:ec2:*:123456789012:security-group/*",
        "Condition": {
            "StringEquals": {
                "aws:RequestedRegion": ["eu-west-1", "us-east-1"],
                "ec2:ResourceTag/sg-reconciler:restore": "true",
            }
        },
    }
    default = StackContext(template, account_id="123456789012", region="eu-west-1")
    assert "restore-missing" not in ec2_role_policies(default)


def test_only_describe_calls_use_resource_star(template: dict[str, Any]) -> None:
    """Resource "*" appears only on the Describe statement; every other grant is scoped."""
    for name, statement in role_statements(template):
        if statement["Resource"] == "*":
            assert set(actions(statement)) == {
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeSecurityGroupRules",
            }, name


def test_revokes_are_limited_to_groups_of_this_account_and_reconciled_regions(
    template: dict[str, Any],
) -> None:
    """Both branches scope revokes to this account's groups and to aws:RequestedRegion."""
    revokes = [s for n, s in role_statements(template) if n == "revoke-drift"]
    assert len(revokes) == 3  # tagged branch: groups + rules; untagged branch: one statement
    for statement in revokes:
        resources = statement["Resource"]
        for resource in resources if isinstance(resources, list) else [resources]:
            text = resource["Fn::Sub"] if isinstance(resource, dict) else resource
            assert text.endswith(("security-group/*", "security-group-rule/*")), text
            assert ":ec2:*:" in text
            assert "AccountId" in text or ":x:" in text  # ${AWS::AccountId} (x once parsed)
        assert "aws:RequestedRegion" in statement["Condition"]["StringEquals"]
    tagged = [s for s in revokes if s.get("Sid") == "RevokeInManagedGroups"]
    assert list(tagged[0]["Condition"]["StringEquals"]) == [
        "aws:RequestedRegion",
        "ec2:ResourceTag/x",  # ${ManagedTagKey}, replaced by a placeholder when parsed
    ]


def test_function_is_python312_with_the_handler_and_parameterised_sizing(
    template: dict[str, Any],
) -> None:
    """Runtime, handler, architecture, memory, timeout and concurrency are as the issue asks."""
    function = template["Resources"]["ReconcilerFunction"]["Properties"]
    params = template["Parameters"]
    assert function["Runtime"] == "python3.12"
    assert function["Handler"] == "reconciler.lambda_handler.handler"
    assert function["Architectures"] == [{"Ref": "Architecture"}]
    assert params["Architecture"]["Default"] == "arm64"
    assert function["MemorySize"] == {"Ref": "MemorySize"}
    assert function["Timeout"] == {"Ref": "Timeout"}
    assert params["MemorySize"]["Default"] == 256
    assert params["Timeout"]["Default"] == 120
    assert function["ReservedConcurrentExecutions"]["Fn::If"][1] == {"Ref": "ReservedConcurrency"}
    assert function["Code"] == {
        "S3Bucket": {"Ref": "CodeS3Bucket"},
        "S3Key": {"Ref": "CodeS3Key"},
    }
    assert set(function["Environment"]["Variables"]) == ENVIRONMENT
    assert function["DeadLetterConfig"] == {"TargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}}
    log_group = template["Resources"]["ReconcilerLogGroup"]["Properties"]
    assert function["LoggingConfig"]["LogGroup"] == {"Ref": "ReconcilerLogGroup"}
    assert log_group["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_event_rule_matches_exactly_the_handled_event_names(template: dict[str, Any]) -> None:
    """The CloudTrail rule lists each event name the handler acts on, once, and no other."""
    pattern = template["Resources"]["CloudTrailEventRule"]["Properties"]["EventPattern"]
    names = [name for branch in pattern["detail"]["$or"] for name in branch["eventName"]]
    assert len(names) == len(set(names))
    assert set(names) == HANDLED_EVENT_NAMES
    assert handled_event_names(pattern) == HANDLED_EVENT_NAMES


def test_event_rule_takes_tag_calls_only_on_security_groups(template: dict[str, Any]) -> None:
    """CreateTags/DeleteTags match only with an sg- resource; the other calls match by name."""
    pattern = template["Resources"]["CloudTrailEventRule"]["Properties"]["EventPattern"]
    calls, tags = pattern["detail"]["$or"]
    assert set(calls) == {"eventName"}
    assert tags == {
        "eventName": ["CreateTags", "DeleteTags"],
        "requestParameters": {"resourcesSet": {"items": {"resourceId": [{"prefix": "sg-"}]}}},
    }


def test_event_rule_drops_failed_calls_and_the_functions_own_role(
    template: dict[str, Any],
) -> None:
    """The pattern requires no errorCode and a session issuer absent or other than the role."""
    pattern = template["Resources"]["CloudTrailEventRule"]["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.ec2"]
    assert pattern["detail-type"] == ["AWS API Call via CloudTrail"]
    assert pattern["detail"]["eventSource"] == ["ec2.amazonaws.com"]
    assert pattern["detail"]["errorCode"] == [{"exists": False}]
    issuer = [
        b["sessionContext"]["sessionIssuer"]["arn"]
        for b in pattern["detail"]["userIdentity"]["$or"]
    ]
    assert issuer == [
        [{"exists": False}],
        [{"anything-but": [{"Fn::GetAtt": ["ReconcilerRole", "Arn"]}]}],
    ]


def test_both_rules_target_the_function_with_permission_and_a_dead_letter_queue(
    template: dict[str, Any],
) -> None:
    """Each rule invokes the function, may do so (Lambda permission), and has retries and a DLQ."""
    schedule = template["Resources"]["ScheduleRule"]["Properties"]
    assert schedule["ScheduleExpression"] == {"Ref": "Schedule"}
    assert template["Parameters"]["Schedule"]["Default"] == "rate(15 minutes)"
    permissions = resources_of(template, "AWS::Lambda::Permission").values()
    allowed = {p["Properties"]["SourceArn"]["Fn::GetAtt"][0] for p in permissions}
    assert allowed == {"CloudTrailEventRule", "ScheduleRule"}
    for rule in ("CloudTrailEventRule", "ScheduleRule"):
        (target,) = template["Resources"][rule]["Properties"]["Targets"]
        assert target["Arn"] == {"Fn::GetAtt": ["ReconcilerFunction", "Arn"]}
        assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}}
        assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    invoke = template["Resources"]["ReconcilerEventInvokeConfig"]["Properties"]
    assert invoke["MaximumRetryAttempts"] == 2


def test_alarms_on_errors_throttles_and_dead_letters_notify_the_encrypted_topic(
    template: dict[str, Any],
) -> None:
    """Four alarms publish to the topic; the topic has its own KMS key, the queue SSE-SQS."""
    alarms = resources_of(template, "AWS::CloudWatch::Alarm").values()
    metrics = {
        (m["MetricStat"]["Metric"]["Namespace"], m["MetricStat"]["Metric"]["MetricName"])
        if "Metrics" in a["Properties"]
        else (a["Properties"]["Namespace"], a["Properties"]["MetricName"])
        for a in alarms
        for m in a["Properties"].get("Metrics", [{}])
        if "Expression" not in m
    }
    assert metrics == {
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("SgReconciler", "RulesBlocked"),  # both triggers, summed
    }
    for alarm in alarms:
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "NotificationTopic"}]
    topic = template["Resources"]["NotificationTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Ref": "NotificationKey"}
    key_policy = template["Resources"]["NotificationKey"]["Properties"]["KeyPolicy"]
    cloudwatch = [
        s
        for s in key_policy["Statement"]
        if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert cloudwatch[0]["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    queue = template["Resources"]["DeadLetterQueue"]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    subscription = template["Resources"]["NotificationEmailSubscription"]
    assert subscription["Condition"] == "HasNotifyEmail"


def test_trail_and_its_private_encrypted_bucket_exist_only_when_asked(
    template: dict[str, Any],
) -> None:
    """CreateTrail (default false) adds a trail and a bucket only CloudTrail may write to."""
    assert template["Parameters"]["CreateTrail"]["Default"] == "false"
    trail_resources = {"TrailBucket", "TrailBucketPolicy", "ManagementEventsTrail"}
    for name in trail_resources:
        assert template["Resources"][name]["Condition"] == "ShouldCreateTrail"
    conditional = {
        k for k, v in template["Resources"].items() if v.get("Condition") == "ShouldCreateTrail"
    }
    assert conditional == trail_resources
    bucket = template["Resources"]["TrailBucket"]["Properties"]
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"
    ] == {"SSEAlgorithm": "AES256"}
    statements = template["Resources"]["TrailBucketPolicy"]["Properties"]["PolicyDocument"][
        "Statement"
    ]
    writers = {s["Sid"]: s for s in statements}
    assert writers["CloudTrailWrite"]["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
    assert writers["CloudTrailWrite"]["Condition"]["StringEquals"]["s3:x-amz-acl"] == (
        "bucket-owner-full-control"
    )
    assert writers["DenyInsecureTransport"]["Effect"] == "Deny"
    trail = template["Resources"]["ManagementEventsTrail"]["Properties"]
    assert trail["IsMultiRegionTrail"] is True
    assert trail["EventSelectors"] == [
        {"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True}
    ]


def test_parameters_and_outputs_the_cli_relies_on(template: dict[str, Any]) -> None:
    """The deploy command's options map to parameters, and the outputs it prints exist."""
    assert {
        "Mode",
        "Regions",
        "Schedule",
        "IgnorePrincipals",
        "NotifyEmail",
        "CodeS3Bucket",
        "CodeS3Key",
        "ManagedTagKey",
        "ManagedTagValue",
        "CreateTrail",
        "PoliciesPath",
        "RestoreTagKey",
        "RestoreTagValue",
    } <= set(template["Parameters"])
    assert template["Parameters"]["Mode"]["AllowedValues"] == ["enforce", "report"]
    assert {"FunctionArn", "TopicArn", "CloudTrailEventRuleName", "ScheduleRuleName"} <= set(
        template["Outputs"]
    )


def test_load_template_refuses_a_file_that_is_not_a_template(tmp_path: Path) -> None:
    """A YAML file without Resources is reported by path, not parsed into nonsense."""
    not_a_template = tmp_path / "x.yaml"
    not_a_template.write_text("just: text\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"x\.yaml: not a CloudFormation template"):
        load_template(not_a_template)
