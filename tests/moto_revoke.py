"""moto's revoke responses brought in line with AWS's, and a rule edited mid-run.

On AWS, RevokeSecurityGroupIngress/Egress answer with ``RevokedSecurityGroupRules``: every
removed rule as it was when it was removed (id, group, direction, protocol, ports, peer,
description). moto (5.x) answers only ``Return``. ``aws_like_revoke_responses(session)`` adds
the list to the responses of ``session``'s clients, from the group's rules read just before
each call (with a client of its own, on the same moto backend, so no counted call is added).

``edited_before_revoke`` plays the race the list exists for: someone changes a rule with
ModifySecurityGroupRules after the reconciler read it and before its revoke.
"""

from __future__ import annotations

__all__ = ["aws_like_revoke_responses", "edited_before_revoke"]

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3

_REVOKES = ("RevokeSecurityGroupIngress", "RevokeSecurityGroupEgress")
_FIELDS = (
    "SecurityGroupRuleId",
    "GroupId",
    "IsEgress",
    "IpProtocol",
    "FromPort",
    "ToPort",
    "Description",
    "CidrIpv4",
    "CidrIpv6",
    "PrefixListId",
)


def _as_revoked(rule: dict[str, Any]) -> dict[str, Any]:
    """A DescribeSecurityGroupRules entry in the shape of a RevokedSecurityGroupRules one."""
    out = {key: rule[key] for key in _FIELDS if key in rule}
    referenced = rule.get("ReferencedGroupInfo") or {}
    if "GroupId" in referenced:
        out["ReferencedGroupId"] = referenced["GroupId"]
    return out


@contextmanager
def aws_like_revoke_responses(session: boto3.Session) -> Iterator[None]:
    """Within the block, ``session``'s revoke responses list the rules they removed."""
    raw = boto3.client("ec2", region_name=session.region_name)
    pending = threading.local()  # revokes of different groups run in parallel threads

    def before(params: dict[str, Any], **_: Any) -> None:
        ids = set(params.get("SecurityGroupRuleIds", []))
        rules = raw.describe_security_group_rules(
            Filters=[{"Name": "group-id", "Values": [params["GroupId"]]}]
        )["SecurityGroupRules"]
        pending.removed = [_as_revoked(r) for r in rules if r["SecurityGroupRuleId"] in ids]

    def after(parsed: dict[str, Any], **_: Any) -> None:
        if "Error" not in parsed:
            parsed["RevokedSecurityGroupRules"] = pending.removed

    with (
        _on_revokes(session, "before-parameter-build", before),
        _on_revokes(session, "after-call", after),
    ):
        yield


@contextmanager
def edited_before_revoke(
    session: boto3.Session, rule_id: str, group_id: str, rule: dict[str, Any]
) -> Iterator[None]:
    """The first revoke naming ``rule_id`` finds it changed to ``rule`` (ModifySecurityGroupRules
    ``SecurityGroupRule`` fields), as if edited in the console between read and revoke."""
    raw = boto3.client("ec2", region_name=session.region_name)
    done = threading.Event()

    def edit(params: dict[str, Any], **_: Any) -> None:
        if rule_id in params.get("SecurityGroupRuleIds", []) and not done.is_set():
            done.set()
            raw.modify_security_group_rules(
                GroupId=group_id,
                SecurityGroupRules=[{"SecurityGroupRuleId": rule_id, "SecurityGroupRule": rule}],
            )

    # First, so that aws_like_revoke_responses reads the group after the edit.
    with _on_revokes(session, "before-parameter-build", edit, first=True):
        yield


@contextmanager
def _on_revokes(
    session: boto3.Session, stage: str, handler: Callable[..., None], *, first: bool = False
) -> Iterator[None]:
    """``handler`` on ``stage`` of both revoke operations of ``session``'s EC2 clients."""
    register = session.events.register_first if first else session.events.register
    events = [f"{stage}.ec2.{name}" for name in _REVOKES]
    for event in events:
        register(event, handler)
    try:
        yield
    finally:
        for event in events:
            session.events.unregister(event, handler)
