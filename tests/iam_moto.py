"""moto's IAM enforcement brought in line with AWS's for the EC2 calls the reconciler makes.

moto (5.x) enforces identity policies once ``INITIAL_NO_AUTH_ACTION_COUNT`` requests have been
made ("IAM-like Access Control" in moto's docs), but differs from AWS in three ways that matter
here. Each is isolated below, with what AWS does, so that no test accepts moto's behaviour:

- moto authorizes every EC2 call against Resource ``"*"``: it does not know which security group
  a call acts on, so a statement scoped to security-group ARNs never matches and the call is
  denied. AWS authorizes the security-group calls against the group's ARN,
  ``arn:${Partition}:ec2:${Region}:${Account}:security-group/${GroupId}`` (Service Authorization
  Reference, Amazon EC2: resource type ``security-group``, required for these actions); Describe
  calls have no resource-level permissions and are authorized against ``"*"``.
  ``ec2_resource_arns`` tells moto the group's ARN. AWS also authorizes a revoke by rule id
  against each ``security-group-rule`` ARN; moto checks a single resource per call, so only the
  group's ARN is checked (the template grants both in the same statement).
- moto supplies no request context keys when it evaluates an identity policy: every Condition
  fails, and moto then treats the statement as an explicit deny. AWS sets ``aws:RequestedRegion``
  to the region the request is sent to (IAM global condition context keys), and ``StringEquals``
  with a list of values matches when the key equals any of them. ``moto_evaluable`` evaluates
  that one key for the test's region the way AWS would, and removes it (or the whole statement,
  when it can never match); any other condition key raises, so none is dropped unseen. In
  particular ``ec2:ResourceTag/...`` (the ManagedTagKey branch) depends on the group a call
  touches and cannot be evaluated here.
- EC2 answers a call the caller may not make with ``UnauthorizedOperation`` (EC2 API error
  codes); moto answers ``AccessDenied``. ``DENIED_CODES`` holds both.
"""

from __future__ import annotations

__all__ = ["DENIED_CODES", "ec2_resource_arns", "iam_enforced", "moto_evaluable"]

import copy
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar
from unittest import mock

from moto.core import set_initial_no_auth_action_count
from moto.ec2.responses import EC2Response
from moto.utilities.utils import get_partition

T = TypeVar("T")

DENIED_CODES = frozenset({"UnauthorizedOperation", "AccessDenied"})  # AWS EC2, moto

# EC2 actions that act on one security group, named by the GroupId parameter.
_SECURITY_GROUP_ACTIONS = frozenset(
    {
        "AuthorizeSecurityGroupEgress",
        "AuthorizeSecurityGroupIngress",
        "DeleteSecurityGroup",
        "ModifySecurityGroupRules",
        "RevokeSecurityGroupEgress",
        "RevokeSecurityGroupIngress",
        "UpdateSecurityGroupRuleDescriptionsEgress",
        "UpdateSecurityGroupRuleDescriptionsIngress",
    }
)

# The one condition key moto_evaluable evaluates the way AWS does.
_REQUESTED_REGION = "aws:RequestedRegion"


def _security_group_arn(response: EC2Response) -> str:
    """The resource AWS authorizes this EC2 request against."""
    group_id = response._get_param("GroupId")
    if response._get_action() not in _SECURITY_GROUP_ACTIONS or not group_id:
        return "*"
    region = response.region
    arn = f"arn:{get_partition(region)}:ec2:{region}:{response.current_account}"
    return f"{arn}:security-group/{group_id}"


@contextmanager
def ec2_resource_arns() -> Iterator[None]:
    """Within the block, moto authorizes security-group calls against the group's ARN."""
    with mock.patch.object(EC2Response, "_determine_resource", _security_group_arn, create=True):
        yield


def iam_enforced(call: Callable[[], T]) -> T:
    """Run ``call`` with moto enforcing IAM from its first request; restore it afterwards."""
    return set_initial_no_auth_action_count(0)(call)()


def moto_evaluable(document: Mapping[str, Any], region: str) -> dict[str, Any]:
    """A policy document that moto evaluates, for requests to ``region``, as AWS would.

    Only ``StringEquals`` on ``aws:RequestedRegion`` is evaluated (and removed); a statement it
    excludes for ``region`` is left out, since AWS would never apply it there.
    """
    statements = []
    for statement in document["Statement"]:
        condition = statement.get("Condition")
        if condition is None:
            statements.append(copy.deepcopy(statement))
            continue
        if set(condition) != {"StringEquals"} or set(condition["StringEquals"]) != {
            _REQUESTED_REGION
        }:
            raise ValueError(
                f"statement {statement.get('Sid')}: moto cannot evaluate {condition};"
                " teach tests/iam_moto.py how AWS evaluates it"
            )
        regions = condition["StringEquals"][_REQUESTED_REGION]
        if region in (regions if isinstance(regions, list) else [regions]):
            statements.append({k: v for k, v in statement.items() if k != "Condition"})
    return {**document, "Statement": statements}
