"""Builds live security-group state in moto for integration and end-to-end tests."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import boto3

from reconciler.adapters.ec2 import ip_permission, observed_rule
from reconciler.core.rules import Direction, RuleKey

REGION = "us-east-1"


def ingress(protocol: str, ports: tuple[int, int] | None, peer: str) -> RuleKey:
    """An ingress key; ``ports`` None for protocol all."""
    lo, hi = ports if ports else (None, None)
    return RuleKey(Direction.INGRESS, protocol, lo, hi, peer)


def egress(protocol: str, ports: tuple[int, int] | None, peer: str) -> RuleKey:
    """An egress key; ``ports`` None for protocol all."""
    lo, hi = ports if ports else (None, None)
    return RuleKey(Direction.EGRESS, protocol, lo, hi, peer)


@dataclass
class World:
    """A VPC in a moto account and helpers to add groups and rules to it."""

    ec2: Any
    vpc_id: str = ""
    groups: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, ec2: Any) -> World:
        """A new world with one VPC."""
        world = cls(ec2)
        world.vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        return world

    def group(
        self,
        name: str,
        tags: dict[str, str] | None = None,
        rules: list[tuple[RuleKey, str | None]] | list[RuleKey] | None = None,
    ) -> str:
        """Create a group with tags and rules (each a key or a (key, description) pair)."""
        kwargs: dict[str, Any] = {}
        if tags:
            kwargs["TagSpecifications"] = [
                {
                    "ResourceType": "security-group",
                    "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                }
            ]
        group_id: str = self.ec2.create_security_group(
            GroupName=name, Description=name, VpcId=self.vpc_id, **kwargs
        )["GroupId"]
        self.groups[name] = group_id
        for item in rules or []:
            key, description = item if isinstance(item, tuple) else (item, None)
            self.authorize(group_id, key, description)
        return group_id

    def authorize(self, group_id: str, key: RuleKey, description: str | None = None) -> None:
        """Add one rule."""
        perm = ip_permission(key, description)
        if key.direction is Direction.INGRESS:
            self.ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[perm])
        else:
            self.ec2.authorize_security_group_egress(GroupId=group_id, IpPermissions=[perm])

    def live(self, group_id: str) -> set[RuleKey]:
        """The rule keys live on a group, read straight from EC2."""
        items = self.ec2.describe_security_group_rules(
            Filters=[{"Name": "group-id", "Values": [group_id]}]
        )["SecurityGroupRules"]
        return {rule.key for item in items if (rule := observed_rule(item, None)) is not None}

    def descriptions(self, group_id: str) -> dict[RuleKey, str | None]:
        """Each live rule key with its description."""
        items = self.ec2.describe_security_group_rules(
            Filters=[{"Name": "group-id", "Values": [group_id]}]
        )["SecurityGroupRules"]
        return {
            rule.key: rule.description
            for item in items
            if (rule := observed_rule(item, None)) is not None
        }


DEFAULT_EGRESS = egress("all", None, "0.0.0.0/0")


class CallCounter:
    """Counts EC2 API calls made through a boto3 session (botocore before-call hook)."""

    def __init__(self, session: boto3.Session) -> None:
        self.calls: Counter[str] = Counter()
        session.events.register("before-call.ec2", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    def writes(self) -> int:
        """How many mutating calls were made."""
        return sum(n for name, n in self.calls.items() if not name.startswith("Describe"))
