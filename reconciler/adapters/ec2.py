"""EC2 adapters: the reader (DescribeSecurityGroups + DescribeSecurityGroupRules), and the
ports of a region (reader, revoker, authorizer) built once from its client.

The writers live in ``ec2_writers`` and the wire shapes in ``ec2_shapes``; both are
re-exported here. Each declares the IAM actions it calls; the deploy template's role is
checked against ``REQUIRED_PERMISSIONS``.
"""

from __future__ import annotations

__all__ = [
    "PREFIX_LIST_PERMISSIONS",
    "READ_PERMISSIONS",
    "REQUIRED_PERMISSIONS",
    "RESTORE_PERMISSIONS",
    "REVOKE_CHUNK",
    "WRITE_PERMISSIONS",
    "AuthorizeOutcome",
    "AuthorizeResult",
    "ClientFactory",
    "RevokeResult",
    "RuleAuthorizer",
    "RuleRevoker",
    "SecurityGroupReader",
    "ec2_ports",
    "error_code",
    "ip_permission",
    "observed_rule",
    "revoked_rule",
]

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from reconciler.adapters.ec2_shapes import (
    chunks,
    error_code,
    ip_permission,
    observed_rule,
    permission_rules,
    revoked_rule,
)
from reconciler.adapters.ec2_writers import REVOKE_CHUNK, RuleAuthorizer, RuleRevoker
from reconciler.core.planner import matching_policies
from reconciler.core.policy import Baseline
from reconciler.core.ports import AuthorizeOutcome, AuthorizeResult, RegionPorts, RevokeResult
from reconciler.core.rules import Direction, ObservedGroup, ObservedRule

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import FilterTypeDef

ClientFactory = Callable[[str], "EC2Client"]

READ_PERMISSIONS = frozenset({"ec2:DescribeSecurityGroups", "ec2:DescribeSecurityGroupRules"})
# Only with guardrails or `within:` rules naming prefix lists, and ModifyManagedPrefixList.
PREFIX_LIST_PERMISSIONS = frozenset(
    {"ec2:GetManagedPrefixListEntries", "ec2:GetManagedPrefixListAssociations"}
)
WRITE_PERMISSIONS = frozenset({"ec2:RevokeSecurityGroupIngress", "ec2:RevokeSecurityGroupEgress"})
REQUIRED_PERMISSIONS = READ_PERMISSIONS | WRITE_PERMISSIONS
# Only with restore_missing (RuleAuthorizer), and then only on the groups carrying its tag.
RESTORE_PERMISSIONS = frozenset(
    {"ec2:AuthorizeSecurityGroupIngress", "ec2:AuthorizeSecurityGroupEgress"}
)

PAGE_SIZE = 1000  # MaxResults ceiling of both Describe calls
FILTER_VALUES = 200  # EC2 accepts at most 200 values in one filter

log = structlog.get_logger("reconciler.ec2")


def ec2_ports(ec2: ClientFactory, account_id: str | None = None) -> Callable[[str], RegionPorts]:
    """The reader and writers of each region, built once per region from its EC2 client."""
    built: dict[str, RegionPorts] = {}
    lock = threading.Lock()  # regions and groups are worked on in parallel

    def ports(region: str) -> RegionPorts:
        with lock:
            if region not in built:
                client = ec2(region)
                reader = SecurityGroupReader(client, region, account_id)
                built[region] = RegionPorts(
                    reader, RuleRevoker(client, reader), RuleAuthorizer(client)
                )
            return built[region]

    return ports


@dataclass(frozen=True, slots=True)
class _GroupFacts:
    group_id: str
    name: str
    vpc_id: str | None
    owner_id: str | None
    tags: dict[str, str]
    rules: tuple[ObservedRule, ...] = ()  # from IpPermissions, ids unknown


class SecurityGroupReader:
    """Reads managed groups and their rules (with rule ids) in one region, in batches."""

    def __init__(self, client: EC2Client, region: str, account_id: str | None = None) -> None:
        self._client = client
        self._region = region
        self._account_id = account_id
        self._prefix_lists: dict[str, tuple[str, ...] | None] = {}

    def read_managed(self, baseline: Baseline) -> tuple[ObservedGroup, ...]:
        """Every group some policy or guardrail selects, with all its rules: one sweep.

        The rules come from DescribeSecurityGroups' permissions, without ids (``""``): a
        clean group costs no DescribeSecurityGroupRules call; ``with_rule_ids`` reads the
        ids of the groups that have changes.
        """
        out = []
        for facts in self._describe_groups(_covering_filter(baseline)):
            group = self._observed(facts, facts.rules)
            if matching_policies(baseline, group) or baseline.guardrails_for(group):
                out.append(group)
        return tuple(out)

    def with_rule_ids(self, groups: Sequence[ObservedGroup]) -> tuple[ObservedGroup, ...]:
        """The groups with their rules read again with ids (DescribeSecurityGroupRules)."""
        if not groups:
            return ()
        rules = self.rules_of(
            [g.group_id for g in groups], {g.group_id: g.owner_id for g in groups}
        )
        return tuple(replace(g, rules=tuple(rules.get(g.group_id, ()))) for g in groups)

    def prefix_list_entries(self, prefix_list_ids: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """The CIDRs each prefix list holds (GetManagedPrefixListEntries), read once per
        reader, i.e. per run; a list that cannot be read is left out (the planner then
        refuses to decide on it)."""
        out: dict[str, tuple[str, ...]] = {}
        for pl_id in sorted(set(prefix_list_ids)):
            if pl_id not in self._prefix_lists:
                self._prefix_lists[pl_id] = self._read_prefix_list(pl_id)
            entries = self._prefix_lists[pl_id]
            if entries is not None:
                out[pl_id] = entries
        return out

    def prefix_list_groups(self, pl_id: str) -> tuple[str, ...] | None:
        """The security groups whose rules reference the prefix list
        (GetManagedPrefixListAssociations); None when EC2 cannot say (the caller then reads
        every guarded group)."""
        try:
            paginator = self._client.get_paginator("get_managed_prefix_list_associations")
            return tuple(
                sorted(
                    {
                        item["ResourceId"]
                        for page in paginator.paginate(PrefixListId=pl_id)
                        for item in page.get("PrefixListAssociations", [])
                        if item.get("ResourceId", "").startswith("sg-")
                    }
                )
            )
        except (ClientError, BotoCoreError) as exc:
            log.warning("prefix_list_associations_unknown", prefix_list_id=pl_id, error=str(exc))
            return None

    def _read_prefix_list(self, pl_id: str) -> tuple[str, ...] | None:
        try:
            paginator = self._client.get_paginator("get_managed_prefix_list_entries")
            return tuple(
                entry["Cidr"]
                for page in paginator.paginate(PrefixListId=pl_id)
                for entry in page.get("Entries", [])
                if "Cidr" in entry
            )
        except (ClientError, BotoCoreError) as exc:
            log.error("prefix_list_unreadable", prefix_list_id=pl_id, error=str(exc))
            return None

    def read_groups(self, group_ids: Iterable[str]) -> tuple[ObservedGroup, ...]:
        """The given groups (those that still exist) with all their rules."""
        ids = sorted(set(group_ids))
        return self.read_where([{"Name": "group-id", "Values": ids}]) if ids else ()

    def describe(self, group_ids: Iterable[str]) -> tuple[ObservedGroup, ...]:
        """The given groups' facts (tags, VPC, owner) without their rules: one call."""
        ids = sorted(set(group_ids))
        if not ids:
            return ()
        facts = self._describe_groups([{"Name": "group-id", "Values": ids}])
        return tuple(self._observed(f, ()) for f in facts)

    def read_groups_by_name(self, names: Iterable[str]) -> tuple[ObservedGroup, ...]:
        """Groups found by name (calls made by groupName), with all their rules."""
        wanted = sorted(set(names))
        return self.read_where([{"Name": "group-name", "Values": wanted}]) if wanted else ()

    def read_where(self, *selections: list[FilterTypeDef]) -> tuple[ObservedGroup, ...]:
        """Groups matching any of the filter lists (each ANDed, as EC2 does), with their rules.

        One DescribeSecurityGroups sweep per list, one rules read for all the groups found.
        """
        found: dict[str, _GroupFacts] = {}
        for filters in selections:
            found.update((f.group_id, f) for f in self._describe_groups(filters))
        return self._with_rules([found[gid] for gid in sorted(found)])

    def rules_of(
        self, group_ids: Sequence[str], owners: dict[str, str | None] | None = None
    ) -> dict[str, list[ObservedRule]]:
        """Live rules of the given groups, keyed by group id (paginated, batched).

        ``owners`` (group id -> owner account) tells same-account from cross-account
        references when a rule entry lacks ``GroupOwnerId``.
        """
        out: dict[str, list[ObservedRule]] = {gid: [] for gid in group_ids}
        owner_of = owners or {}
        for chunk in chunks(sorted(set(group_ids)), FILTER_VALUES):
            paginator = self._client.get_paginator("describe_security_group_rules")
            pages = paginator.paginate(
                Filters=[{"Name": "group-id", "Values": chunk}],
                PaginationConfig={"PageSize": PAGE_SIZE},
            )
            for page in pages:
                for item in page.get("SecurityGroupRules", []):
                    gid = item.get("GroupId", "")
                    rule = observed_rule(item, item.get("GroupOwnerId") or owner_of.get(gid))
                    if rule is None:
                        log.warning(
                            "rule_unreadable", group_id=gid, rule_id=item.get("SecurityGroupRuleId")
                        )
                        continue
                    out.setdefault(gid, []).append(rule)
        return out

    def _describe_groups(self, filters: list[FilterTypeDef] | None) -> Iterator[_GroupFacts]:
        paginator = self._client.get_paginator("describe_security_groups")
        batches: list[list[FilterTypeDef]] = []
        if not filters:
            batches = [[]]
        else:
            # EC2 caps a filter at 200 values: split the one long filter, keep the rest whole.
            head, *rest = filters
            batches = [
                [{"Name": head["Name"], "Values": chunk}, *rest]
                for chunk in chunks(list(head.get("Values", [])), FILTER_VALUES)
            ]
        for batch in batches:
            kwargs: dict[str, Any] = {"PaginationConfig": {"PageSize": PAGE_SIZE}}
            if batch:
                kwargs["Filters"] = batch
            for page in paginator.paginate(**kwargs):
                for group in page.get("SecurityGroups", []):
                    owner = group.get("OwnerId")
                    yield _GroupFacts(
                        group_id=group["GroupId"],
                        name=group.get("GroupName", ""),
                        vpc_id=group.get("VpcId"),
                        owner_id=owner,
                        tags={t["Key"]: t["Value"] for t in group.get("Tags", [])},
                        rules=(
                            *permission_rules(
                                group.get("IpPermissions", []), Direction.INGRESS, owner
                            ),
                            *permission_rules(
                                group.get("IpPermissionsEgress", []), Direction.EGRESS, owner
                            ),
                        ),
                    )

    def _with_rules(self, facts: list[_GroupFacts]) -> tuple[ObservedGroup, ...]:
        if not facts:
            return ()
        rules = self.rules_of([f.group_id for f in facts], {f.group_id: f.owner_id for f in facts})
        return tuple(self._observed(f, tuple(rules.get(f.group_id, ()))) for f in facts)

    def _observed(self, facts: _GroupFacts, rules: tuple[ObservedRule, ...]) -> ObservedGroup:
        return ObservedGroup(
            region=self._region,
            group_id=facts.group_id,
            name=facts.name,
            vpc_id=facts.vpc_id,
            owner_id=facts.owner_id,
            tags=MappingProxyType(facts.tags),
            rules=rules,
            account_id=self._account_id,
        )


def _covering_filter(baseline: Baseline) -> list[FilterTypeDef] | None:
    """A server-side filter that returns a superset of the groups the baseline governs.

    EC2 ORs the values of one filter, so one filter can cover every policy and guardrail
    only when each constrains the same thing: all by id, all by tag key, or all by VPC.
    Otherwise (or with a guardrail without ``match``) the sweep is unfiltered, still
    paginated, and matching happens client-side.
    """
    if baseline.guards_every_group:
        return None
    selectors = [p.match for p in baseline.policies]
    selectors += [g.match for g in baseline.guardrails if g.match is not None]
    if not selectors:
        return None
    if all(m.group_ids for m in selectors):
        ids = sorted({gid for m in selectors for gid in m.group_ids or ()})
        return [{"Name": "group-id", "Values": ids}]
    if all(m.tags for m in selectors):
        return [{"Name": "tag-key", "Values": sorted({min(m.tags or {}) for m in selectors})}]
    if all(m.vpc_id for m in selectors):
        return [{"Name": "vpc-id", "Values": sorted({m.vpc_id for m in selectors if m.vpc_id})}]
    return None
