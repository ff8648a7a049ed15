"""moto's security-group rule descriptions brought in line with AWS, for restore round trips.

On AWS, DescribeSecurityGroupRules returns the ``Description`` of every rule. moto (5.x)
differs in two ways, named here so that no test has to accept moto's behaviour as the
contract:

- a rule that references a security group keeps its description only in the group pair
  (DescribeSecurityGroups ``UserIdGroupPairs``); its DescribeSecurityGroupRules entry has none;
- a rule whose peer is a prefix list loses its description when it is authorized.

``aws_like_rule_descriptions`` keeps both and reports them as AWS does.
"""

from __future__ import annotations

__all__ = ["aws_like_rule_descriptions"]

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from moto.ec2.models.security_groups import SecurityGroupRule

_PREFIX_LIST_ARG = 7  # SecurityGroupRule(backend, protocol, group, from, to, ip, group_pair, pl)


@contextmanager
def aws_like_rule_descriptions() -> Iterator[None]:
    """Within the block, group-reference and prefix-list rules keep their descriptions."""
    init = SecurityGroupRule.__init__

    def init_keeping_description(self: SecurityGroupRule, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        prefix_list = (
            args[_PREFIX_LIST_ARG] if len(args) > _PREFIX_LIST_ARG else kwargs.get("prefix_list_id")
        )
        self.prefix_list_description = (prefix_list or {}).get("Description")  # type: ignore[attr-defined]

    def description(self: SecurityGroupRule) -> str | None:
        found: str | None = (
            self.ip_range.get("Description")
            or self.source_group.get("Description")
            or getattr(self, "prefix_list_description", None)
        )
        return found

    with (
        mock.patch.object(SecurityGroupRule, "__init__", init_keeping_description),
        mock.patch.object(SecurityGroupRule, "description", property(description)),
    ):
        yield
