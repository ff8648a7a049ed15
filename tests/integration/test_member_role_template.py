"""deploy/member-role.yaml (for StackSets) and the hub option of deploy/template.yaml."""

from __future__ import annotations

import copy
import subprocess
from typing import Any

import pytest
from cfnlint.api import lint_file

from reconciler.adapters.events import HANDLED_EVENT_NAMES
from reconciler.deploy.package import ACCOUNTS_ENTRY
from reconciler.deploy.template import TEMPLATE_BODY_LIMIT, load_template
from tests.cfn_resolve import StackContext, ec2_role_policies, resolve
from tests.deploy_stacks import TEMPLATE, handled_event_names

MEMBER_TEMPLATE = TEMPLATE.parent / "member-role.yaml"
CHECKOV = TEMPLATE.parent.parent / ".venv-checkov" / "bin" / "checkov"
MEMBER = "111111111111"
HUB = "123456789012"
HUB_ROLE_ARN = f"arn:aws:iam::{HUB}:role/sg-reconciler-ReconcilerRole-ABC"
MEMBER_PARAMETERS = {"HubAccountId": HUB, "HubRoleArn": HUB_ROLE_ARN}


@pytest.fixture(scope="module")
def member() -> dict[str, Any]:
    """The member template, intrinsic functions in long form."""
    return load_template(MEMBER_TEMPLATE)


@pytest.fixture(scope="module")
def hub() -> dict[str, Any]:
    """The hub (main) template, intrinsic functions in long form."""
    return load_template(TEMPLATE)


def test_cfn_lint_reports_nothing_for_the_member_template() -> None:
    """cfn-lint finds no error, warning or informational match in member-role.yaml."""
    assert [str(m) for m in lint_file(MEMBER_TEMPLATE)] == []
    assert len(MEMBER_TEMPLATE.read_bytes()) < TEMPLATE_BODY_LIMIT


def test_checkov_passes_on_the_member_template() -> None:
    """checkov reports no failed check on member-role.yaml."""
    if not CHECKOV.exists():
        pytest.skip("checkov is installed by `make lint-template` into .venv-checkov")
    done = subprocess.run(
        [
            str(CHECKOV),
            "-f",
            str(MEMBER_TEMPLATE),
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


@pytest.mark.parametrize("external_id", ["", "shared-secret"])
def test_member_role_trusts_only_the_hub_functions_role(
    member: dict[str, Any], external_id: str
) -> None:
    """The trust names the hub account, narrowed to the hub role (and the external id if set)."""
    context = StackContext(
        member,
        account_id=MEMBER,
        region="us-east-1",
        parameters={**MEMBER_PARAMETERS, "ExternalId": external_id},
    )
    role = member["Resources"]["MemberRole"]["Properties"]
    assert role["RoleName"] == {"Ref": "MemberRoleName"}
    assert member["Parameters"]["MemberRoleName"]["Default"] == "sg-reconciler-member"
    (statement,) = resolve(role["AssumeRolePolicyDocument"], context)["Statement"]
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{HUB}:root"}
    assert statement["Action"] == "sts:AssumeRole"
    expected: dict[str, Any] = {"ArnEquals": {"aws:PrincipalArn": HUB_ROLE_ARN}}
    if external_id:
        expected["StringEquals"] = {"sts:ExternalId": external_id}
    assert statement["Condition"] == expected


@pytest.mark.parametrize(
    "parameters",
    [
        {},
        {"Regions": "eu-west-1,us-east-1"},
        {"ManagedTagKey": "team", "ManagedTagValue": "web"},
        {"RestoreTagKey": "sg-reconciler-restore", "RestoreTagValue": "true"},
    ],
)
def test_member_role_has_exactly_the_hub_roles_ec2_statements(
    member: dict[str, Any], hub: dict[str, Any], parameters: dict[str, str]
) -> None:
    """Resolved for the same account and parameters, the EC2 policies are identical."""
    ours = StackContext(
        member,
        account_id=MEMBER,
        region="eu-west-1",
        parameters={**MEMBER_PARAMETERS, **parameters},
    )
    theirs = StackContext(hub, account_id=MEMBER, region="eu-west-1", parameters=parameters)
    assert ec2_role_policies(ours, role="MemberRole") == ec2_role_policies(theirs)


def test_member_forwards_the_hubs_event_pattern_to_the_hub_bus(
    member: dict[str, Any], hub: dict[str, Any]
) -> None:
    """Same events as the hub's rule, the member role's own calls left out, sent to the hub."""
    rule = member["Resources"]["ForwardEventsRule"]
    assert rule["Condition"] == "ShouldForwardEvents"
    pattern = copy.deepcopy(rule["Properties"]["EventPattern"])
    hub_pattern = copy.deepcopy(
        hub["Resources"]["CloudTrailEventRule"]["Properties"]["EventPattern"]
    )
    assert handled_event_names(pattern) == HANDLED_EVENT_NAMES
    own = [{"anything-but": [{"Fn::GetAtt": ["MemberRole", "Arn"]}]}]
    assert (
        pattern["detail"]["userIdentity"]["$or"][1]["sessionContext"]["sessionIssuer"]["arn"] == own
    )
    for each in (pattern, hub_pattern):
        del each["detail"]["userIdentity"]["$or"][1]["sessionContext"]["sessionIssuer"]["arn"]
    assert pattern == hub_pattern
    context = StackContext(
        member, account_id=MEMBER, region="eu-west-1", parameters=MEMBER_PARAMETERS
    )
    (target,) = resolve(rule["Properties"]["Targets"], context)
    bus = f"arn:aws:events:eu-west-1:{HUB}:event-bus/default"
    assert target["Arn"] == bus
    assert target["RoleArn"] == "<ForwardEventsRole.Arn>"
    forward = resolve(member["Resources"]["ForwardEventsRole"]["Properties"], context)
    (grant,) = forward["Policies"]
    assert grant["PolicyDocument"]["Statement"] == [
        {
            "Sid": "PutEventsOnHubBus",
            "Effect": "Allow",
            "Action": "events:PutEvents",
            "Resource": bus,
        }
    ]
    (trust,) = forward["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": MEMBER}}


def test_hub_may_assume_only_the_member_role_and_only_when_it_is_a_hub(hub: dict[str, Any]) -> None:
    """MemberRoleName empty adds nothing; set, the role may assume that role name only."""
    assert hub["Parameters"]["MemberRoleName"]["Default"] == ""
    assert hub["Conditions"]["IsHub"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "MemberRoleName"}, ""]}]
    }
    grant = hub["Resources"]["AssumeMemberRolePolicy"]
    assert grant["Condition"] == "IsHub"
    assert grant["Properties"]["RoleName"] == {"Ref": "ReconcilerRole"}
    context = StackContext(
        hub,
        account_id=HUB,
        region="eu-west-1",
        parameters={"MemberRoleName": "sg-reconciler-member"},
    )
    assert resolve(grant["Properties"]["PolicyDocument"], context)["Statement"] == [
        {
            "Sid": "AssumeMemberRole",
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Resource": "arn:aws:iam::*:role/sg-reconciler-member",
        }
    ]
    environment = hub["Resources"]["ReconcilerFunction"]["Properties"]["Environment"]["Variables"]
    assert environment["SG_RECONCILER_ACCOUNTS"] == {
        "Fn::If": ["IsHub", f"/var/task/{ACCOUNTS_ENTRY}", {"Ref": "AWS::NoValue"}]
    }


def test_hub_bus_accepts_events_from_its_organization_only_when_given(hub: dict[str, Any]) -> None:
    """OrganizationId adds a bus policy letting that organization's accounts put events."""
    assert hub["Parameters"]["OrganizationId"]["Default"] == ""
    policy = hub["Resources"]["MemberEventsBusPolicy"]
    assert policy["Condition"] == "HasOrganization"
    context = StackContext(
        hub, account_id=HUB, region="eu-west-1", parameters={"OrganizationId": "o-abcdefghij"}
    )
    statement = resolve(policy["Properties"], context)["Statement"]
    assert statement == {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "events:PutEvents",
        "Resource": f"arn:aws:events:eu-west-1:{HUB}:event-bus/default",
        "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-abcdefghij"}},
    }
