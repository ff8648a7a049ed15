"""The role is sufficient and minimal: its EC2 statements, enforced by moto's IAM, run a reconcile.

A principal gets exactly the EC2 statements of the template's role (resolved for moto's account
and region by tests/cfn_resolve.py), moto enforces IAM for everything it does, and the
differences between moto's and AWS's policy evaluation are corrected in tests/iam_moto.py.
The world is built with moto's unchecked default credentials before enforcement starts.
(``template_ec2_actions(...) == REQUIRED_PERMISSIONS`` is tests/integration/test_template.py.)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from reconciler.adapters.aws import AwsClients
from reconciler.adapters.ec2 import PREFIX_LIST_PERMISSIONS, REQUIRED_PERMISSIONS, ip_permission
from reconciler.adapters.policy_files import load_policies
from reconciler.core.plan import Status
from reconciler.core.policy import Baseline
from reconciler.deploy.template import load_template
from reconciler.service import RunMode, RunOptions, RunResult, Site, reconcile
from tests.cfn_resolve import StackContext, ec2_role_policies
from tests.deploy_stacks import TEMPLATE
from tests.iam_moto import DENIED_CODES, ec2_resource_arns, iam_enforced, moto_evaluable
from tests.policyfiles import write_policies
from tests.world import DEFAULT_EGRESS, REGION, World, egress, ingress

ACCOUNT = "123456789012"  # moto's default account
USER = "sg-reconciler-role-stand-in"

POLICY = """\
groups:
  - name: web-prod
    match: {tags: {Name: prod-sg}}
    ingress:
      - {protocol: tcp, ports: 443, from: [0.0.0.0/0]}
    egress:
      - {protocol: all, to: [0.0.0.0/0]}
"""
KEEP = {ingress("tcp", (443, 443), "0.0.0.0/0"), DEFAULT_EGRESS}
INGRESS_DRIFT = {ingress("tcp", (22, 22), "0.0.0.0/0"), ingress("tcp", (3389, 3389), "::/0")}
EGRESS_DRIFT = {egress("tcp", (25, 25), "0.0.0.0/0")}
NEW_RULE = ingress("tcp", (5432, 5432), "0.0.0.0/0")


@pytest.fixture(autouse=True)
def _aws_like_ec2_authorization() -> Iterator[None]:
    """moto authorizes security-group calls against the group's ARN, as AWS does."""
    with ec2_resource_arns():
        yield


@pytest.fixture(scope="module")
def role_policies() -> dict[str, Any]:
    """The template role's EC2 policies (default parameters) as moto can evaluate them."""
    context = StackContext(load_template(TEMPLATE), account_id=ACCOUNT, region=REGION)
    return {
        name: moto_evaluable(document, REGION)
        for name, document in ec2_role_policies(context).items()
    }


@pytest.fixture
def baseline(tmp_path: Path) -> Baseline:
    """One policy managing both directions of the prod-sg groups."""
    return load_policies(write_policies(tmp_path / "policies", POLICY))


@dataclass(frozen=True)
class Drifted:
    """The world and its two groups with the same drift: one managed, one no policy matches."""

    world: World
    managed: str
    bystander: str


@pytest.fixture
def drifted(world: World) -> Drifted:
    """A managed group with ingress and egress drift, and an unmanaged one with the same rules."""
    rules = [*KEEP - {DEFAULT_EGRESS}, *INGRESS_DRIFT, *EGRESS_DRIFT]
    return Drifted(
        world,
        managed=world.group("web", {"Name": "prod-sg"}, rules),
        bystander=world.group("other", {"Name": "other"}, rules),
    )


def principal(session: boto3.Session, policies: Mapping[str, Any]) -> boto3.Session:
    """A session of a new IAM user holding exactly ``policies`` as inline policies."""
    iam = session.client("iam")
    iam.create_user(UserName=USER)
    for name, document in policies.items():
        iam.put_user_policy(UserName=USER, PolicyName=name, PolicyDocument=json.dumps(document))
    key = iam.create_access_key(UserName=USER)["AccessKey"]
    return boto3.Session(
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
        region_name=REGION,
    )


def without_action(policies: Mapping[str, Any], action: str) -> dict[str, Any]:
    """``policies`` with one action removed from every statement (empty statements dropped)."""
    trimmed: dict[str, Any] = {}
    for name, document in policies.items():
        statements = []
        for statement in document["Statement"]:
            kept = [a for a in statement["Action"] if a != action]
            if kept:
                statements.append({**statement, "Action": kept})
        if statements:
            trimmed[name] = {**document, "Statement": statements}
    return trimmed


def reconcile_as(as_principal: boto3.Session, baseline: Baseline) -> RunResult:
    """A full reconcile that applies, with the principal's credentials and IAM enforced."""
    clients = AwsClients(as_principal)
    site = Site.of(clients.ec2, [REGION])
    enforce = RunOptions(mode=RunMode.ENFORCE)
    return iam_enforced(lambda: reconcile(baseline, [site], options=enforce))


def error_code(call: Callable[[], object]) -> str:
    """The error code of a call that must fail, made with IAM enforced."""
    with pytest.raises(ClientError) as raised:
        iam_enforced(call)
    return str(raised.value.response["Error"]["Code"])


def test_the_roles_ec2_statements_are_exactly_the_required_permissions(
    role_policies: dict[str, Any],
) -> None:
    """The principal's policies are the template's read and revoke policies, nothing more."""
    assert set(role_policies) == {"read-security-groups", "revoke-drift"}
    granted = {a for d in role_policies.values() for s in d["Statement"] for a in s["Action"]}
    assert granted == REQUIRED_PERMISSIONS | PREFIX_LIST_PERMISSIONS
    revoke = role_policies["revoke-drift"]["Statement"]
    assert [s["Resource"] for s in revoke] == [
        [
            f"arn:aws:ec2:*:{ACCOUNT}:security-group/*",
            f"arn:aws:ec2:*:{ACCOUNT}:security-group-rule/*",
        ]
    ]


def test_the_role_suffices_for_a_full_reconcile_that_revokes_drift(
    session: boto3.Session,
    drifted: Drifted,
    baseline: Baseline,
    role_policies: dict[str, Any],
) -> None:
    """With only the role's EC2 statements, reconcile revokes all drift in both directions."""
    result = reconcile_as(principal(session, role_policies), baseline)

    assert not result.failed, result.error_messages()
    assert [o.status for o in result.outcomes] == [Status.REVOKED] * 3
    assert drifted.world.live(drifted.managed) == KEEP
    assert drifted.world.live(drifted.bystander) == KEEP | INGRESS_DRIFT | EGRESS_DRIFT


# The drift each action is needed for: without a Describe call nothing can be read.
NEEDED_FOR = {
    "ec2:DescribeSecurityGroups": INGRESS_DRIFT | EGRESS_DRIFT,
    "ec2:DescribeSecurityGroupRules": INGRESS_DRIFT | EGRESS_DRIFT,
    "ec2:RevokeSecurityGroupIngress": INGRESS_DRIFT,
    "ec2:RevokeSecurityGroupEgress": EGRESS_DRIFT,
}


def test_needed_for_covers_exactly_the_required_permissions() -> None:
    """Every action the reconciler declares is exercised by the minimality test below."""
    assert set(NEEDED_FOR) == REQUIRED_PERMISSIONS


@pytest.mark.parametrize("action", sorted(NEEDED_FOR))
def test_every_ec2_action_of_the_role_is_needed(
    session: boto3.Session,
    drifted: Drifted,
    baseline: Baseline,
    role_policies: dict[str, Any],
    action: str,
) -> None:
    """Without any one of the role's EC2 actions, the reconcile fails, denied, and drift stays."""
    result = reconcile_as(principal(session, without_action(role_policies, action)), baseline)

    assert result.failed
    messages = result.error_messages() + [o.error or "" for o in result.outcomes]
    assert any(code in m for m in messages for code in DENIED_CODES), messages
    remaining = drifted.world.live(drifted.managed) - KEEP
    assert remaining == NEEDED_FOR[action]


def test_the_role_cannot_authorize_delete_or_modify_security_groups(
    session: boto3.Session,
    drifted: Drifted,
    role_policies: dict[str, Any],
) -> None:
    """The same credentials are denied AuthorizeSecurityGroupIngress/Egress, Delete and Modify."""
    ec2 = principal(session, role_policies).client("ec2")
    world, group = drifted.world, drifted.managed
    rule_id = world.ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [group]}]
    )["SecurityGroupRules"][0]["SecurityGroupRuleId"]
    calls: dict[str, Callable[[], object]] = {
        "AuthorizeSecurityGroupIngress": lambda: ec2.authorize_security_group_ingress(
            GroupId=group, IpPermissions=[ip_permission(NEW_RULE, None)]
        ),
        "AuthorizeSecurityGroupEgress": lambda: ec2.authorize_security_group_egress(
            GroupId=group, IpPermissions=[ip_permission(NEW_RULE, None)]
        ),
        "DeleteSecurityGroup": lambda: ec2.delete_security_group(GroupId=group),
        "ModifySecurityGroupRules": lambda: ec2.modify_security_group_rules(
            GroupId=group,
            SecurityGroupRules=[
                {
                    "SecurityGroupRuleId": rule_id,
                    "SecurityGroupRule": {
                        "IpProtocol": "tcp",
                        "FromPort": 0,
                        "ToPort": 65535,
                        "CidrIpv4": "0.0.0.0/0",
                    },
                }
            ],
        ),
        "CreateSecurityGroup": lambda: ec2.create_security_group(
            GroupName="new", Description="new", VpcId=world.vpc_id
        ),
    }
    before = world.live(group)

    codes = {name: error_code(call) for name, call in calls.items()}

    assert all(code in DENIED_CODES for code in codes.values()), codes
    assert world.live(group) == before
    groups = world.ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [world.vpc_id]}]
    )
    assert {g["GroupName"] for g in groups["SecurityGroups"]} == {"default", "web", "other"}


def test_a_condition_moto_cannot_evaluate_is_refused_not_dropped() -> None:
    """The ManagedTagKey branch's ec2:ResourceTag condition makes moto_evaluable raise."""
    context = StackContext(
        load_template(TEMPLATE),
        account_id=ACCOUNT,
        region=REGION,
        parameters={"ManagedTagKey": "sg-reconciler:managed", "ManagedTagValue": "true"},
    )
    revoke = ec2_role_policies(context)["revoke-drift"]
    with pytest.raises(ValueError, match="moto cannot evaluate"):
        moto_evaluable(revoke, REGION)
