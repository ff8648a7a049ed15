"""EC2 reader (DescribeSecurityGroups + DescribeSecurityGroupRules) and writer (revoke by id).

Both declare the IAM actions they call; the deploy template's role is checked against
``REQUIRED_PERMISSIONS``.
"""

from __future__ import annotations

__all__ = [
    "READ_PERMISSIONS",
    "REQUIRED_PERMISSIONS",
    "RESTORE_PERMISSIONS",
    "REVOKE_CHUNK",
    "WRITE_PERMISSIONS",
    "AuthorizeOutcome",
    "AuthorizeResult",
    "RuleAuthorizer",
    "RuleRevoker",
    "SecurityGroupReader",
    "ip_permission",
    "observed_rule",
]

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, cast

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from reconciler.core.planner import matching_policies
from reconciler.core.policy import Baseline
from reconciler.core.rules import Direction, ObservedGroup, ObservedRule, RuleKey

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import (
        FilterTypeDef,
        RevokedSecurityGroupRuleTypeDef,
        SecurityGroupRuleTypeDef,
    )

READ_PERMISSIONS = frozenset({"ec2:DescribeSecurityGroups", "ec2:DescribeSecurityGroupRules"})
WRITE_PERMISSIONS = frozenset({"ec2:RevokeSecurityGroupIngress", "ec2:RevokeSecurityGroupEgress"})
REQUIRED_PERMISSIONS = READ_PERMISSIONS | WRITE_PERMISSIONS
# Only with restore_missing (RuleAuthorizer), and then only on the groups carrying its tag.
RESTORE_PERMISSIONS = frozenset(
    {"ec2:AuthorizeSecurityGroupIngress", "ec2:AuthorizeSecurityGroupEgress"}
)

PAGE_SIZE = 1000  # MaxResults ceiling of both Describe calls
FILTER_VALUES = 200  # EC2 accepts at most 200 values in one filter
REVOKE_CHUNK = 200  # rule ids per revoke call; a group rarely has more per direction

_RULE_GONE = frozenset({"InvalidPermission.NotFound", "InvalidSecurityGroupRuleId.NotFound"})
_GROUP_GONE = frozenset({"InvalidGroup.NotFound", "InvalidGroupId.NotFound"})
# Errors that hold for every rule of a batch alike: splitting it would only repeat them.
_WHOLE_BATCH = frozenset(
    {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "UnauthorizedOperation",
        "AccessDenied",
        "AuthFailure",
    }
)

log = structlog.get_logger("reconciler.ec2")


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def error_code(exc: ClientError) -> str:
    """The AWS error code of a ClientError."""
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def observed_rule(item: SecurityGroupRuleTypeDef, owner_id: str | None) -> ObservedRule | None:
    """Convert one DescribeSecurityGroupRules entry; None if it names no peer we know."""
    ref = item.get("ReferencedGroupInfo")
    peer: str | None
    if "CidrIpv4" in item:
        peer = item["CidrIpv4"]
    elif "CidrIpv6" in item:
        peer = item["CidrIpv6"]
    elif "PrefixListId" in item:
        peer = item["PrefixListId"]
    elif ref and "GroupId" in ref:
        user = ref.get("UserId")
        peer = (
            f"{user}/{ref['GroupId']}" if user and owner_id and user != owner_id else ref["GroupId"]
        )
    else:
        peer = None
    if peer is None:
        return None
    key = RuleKey.from_ec2(
        direction=Direction.EGRESS if item.get("IsEgress") else Direction.INGRESS,
        protocol=item.get("IpProtocol", "-1"),
        from_port=item.get("FromPort"),
        to_port=item.get("ToPort"),
        peer=peer,
    )
    return ObservedRule(
        rule_id=item["SecurityGroupRuleId"], key=key, description=item.get("Description") or None
    )


def revoked_rule(item: RevokedSecurityGroupRuleTypeDef) -> ObservedRule | None:
    """One ``RevokedSecurityGroupRules`` entry of a revoke response: the rule as EC2 removed it.

    The entry names a referenced group by ``ReferencedGroupId`` alone (no owner), so such a
    peer reads as the bare ``sg-`` id.
    """
    fields: dict[str, Any] = dict(item)
    if "ReferencedGroupId" in fields:
        fields["ReferencedGroupInfo"] = {"GroupId": fields.pop("ReferencedGroupId")}
    if "SecurityGroupRuleId" not in fields:
        return None
    try:
        return observed_rule(cast("SecurityGroupRuleTypeDef", fields), None)
    except ValueError:  # a shape we cannot read: the revoke stands as planned
        return None


@dataclass(frozen=True, slots=True)
class _GroupFacts:
    group_id: str
    name: str
    vpc_id: str | None
    owner_id: str | None
    tags: dict[str, str]


class SecurityGroupReader:
    """Reads managed groups and their rules (with rule ids) in one region, in batches."""

    def __init__(self, client: EC2Client, region: str, account_id: str | None = None) -> None:
        self._client = client
        self._region = region
        self._account_id = account_id

    def read_managed(self, baseline: Baseline) -> tuple[ObservedGroup, ...]:
        """Every group some policy matches, with all its rules: one sweep of the region."""
        facts = [
            f
            for f in self._describe_groups(_covering_filter(baseline))
            if matching_policies(baseline, self._observed(f, ()))
        ]
        return self._with_rules(facts)

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
        for chunk in _chunks(sorted(set(group_ids)), FILTER_VALUES):
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
                for chunk in _chunks(list(head.get("Values", [])), FILTER_VALUES)
            ]
        for batch in batches:
            kwargs: dict[str, Any] = {"PaginationConfig": {"PageSize": PAGE_SIZE}}
            if batch:
                kwargs["Filters"] = batch
            for page in paginator.paginate(**kwargs):
                for group in page.get("SecurityGroups", []):
                    yield _GroupFacts(
                        group_id=group["GroupId"],
                        name=group.get("GroupName", ""),
                        vpc_id=group.get("VpcId"),
                        owner_id=group.get("OwnerId"),
                        tags={t["Key"]: t["Value"] for t in group.get("Tags", [])},
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

    EC2 ORs the values of one filter, so one filter can cover every policy only when every
    policy constrains the same thing: all by id, all by tag key, or all by VPC. Otherwise
    the sweep is unfiltered (still paginated) and matching happens client-side.
    """
    policies = baseline.policies
    if policies and all(p.match.group_ids for p in policies):
        ids = sorted({gid for p in policies for gid in p.match.group_ids or ()})
        return [{"Name": "group-id", "Values": ids}]
    if policies and all(p.match.tags for p in policies):
        keys = sorted({min(p.match.tags or {}) for p in policies})
        return [{"Name": "tag-key", "Values": keys}]
    if policies and all(p.match.vpc_id for p in policies):
        vpcs = sorted({p.match.vpc_id for p in policies if p.match.vpc_id})
        return [{"Name": "vpc-id", "Values": vpcs}]
    return None


@dataclass(frozen=True, slots=True)
class RevokeResult:
    """What one group-and-direction revoke did: rule id -> (status word, error).

    ``removed`` holds the rules as EC2 says it removed them (``RevokedSecurityGroupRules``),
    for the revoked ids it reported; empty where the endpoint does not report them.
    """

    revoked: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()
    removed: tuple[ObservedRule, ...] = ()


class RuleRevoker:
    """Revokes rules by ``SecurityGroupRuleIds``, one call per group and direction.

    A rule already gone makes it re-read the group and revoke what is left; a batch EC2
    refuses for any other reason than throttling, access or a server error is split, so one
    bad rule fails alone.
    """

    def __init__(self, client: EC2Client, reader: SecurityGroupReader) -> None:
        self._client = client
        self._reader = reader

    def revoke(self, group_id: str, direction: Direction, rule_ids: Sequence[str]) -> RevokeResult:
        """Revoke these rules of one group; never raises for AWS errors, reports them."""
        revoked: list[str] = []
        absent: list[str] = []
        failed: list[tuple[str, str]] = []
        removed: list[ObservedRule] = []
        for chunk in _chunks(list(rule_ids), REVOKE_CHUNK):
            result = self._revoke_chunk(group_id, direction, chunk)
            revoked += result.revoked
            absent += result.absent
            failed += result.failed
            removed += result.removed
        return RevokeResult(tuple(revoked), tuple(absent), tuple(failed), tuple(removed))

    def _call(
        self, group_id: str, direction: Direction, rule_ids: list[str]
    ) -> tuple[ObservedRule, ...]:
        """Revoke; the rules EC2 reports it removed (what they were at that moment)."""
        if direction is Direction.INGRESS:
            response = self._client.revoke_security_group_ingress(
                GroupId=group_id, SecurityGroupRuleIds=rule_ids
            )
        else:
            response = self._client.revoke_security_group_egress(
                GroupId=group_id, SecurityGroupRuleIds=rule_ids
            )
        items = response.get("RevokedSecurityGroupRules", [])
        return tuple(rule for item in items if (rule := revoked_rule(item)) is not None)

    def _revoke_chunk(self, group_id: str, direction: Direction, ids: list[str]) -> RevokeResult:
        try:
            removed = self._call(group_id, direction, ids)
        except ClientError as exc:
            code = error_code(exc)
            if code in _GROUP_GONE:
                return RevokeResult(absent=tuple(ids))
            if code not in _RULE_GONE:
                if len(ids) == 1 or _whole_batch(exc):
                    return RevokeResult(failed=tuple((i, f"{code}: {exc}") for i in ids))
                return self._revoke_one_by_one(group_id, direction, ids, code)
        else:
            return RevokeResult(revoked=tuple(ids), removed=removed)
        # Some rule is already gone: re-read the group, then revoke what is still there.
        try:
            live = {r.rule_id for r in self._reader.rules_of([group_id]).get(group_id, [])}
        except ClientError as exc:
            return RevokeResult(failed=tuple((i, f"{error_code(exc)}: {exc}") for i in ids))
        present = [i for i in ids if i in live]
        gone = tuple(i for i in ids if i not in live)
        if not present:
            return RevokeResult(absent=gone)
        try:
            removed = self._call(group_id, direction, present)
        except ClientError as exc:
            code = error_code(exc)
            return RevokeResult(absent=gone, failed=tuple((i, f"{code}: {exc}") for i in present))
        return RevokeResult(revoked=tuple(present), absent=gone, removed=removed)

    def _revoke_one_by_one(
        self, group_id: str, direction: Direction, ids: list[str], code: str
    ) -> RevokeResult:
        """EC2 refused the batch (one bad rule fails it all): revoke each live rule alone."""
        log.warning("revoke_batch_split", group_id=group_id, rules=len(ids), error_code=code)
        try:
            live = {r.rule_id for r in self._reader.rules_of([group_id]).get(group_id, [])}
        except ClientError as exc:
            return RevokeResult(failed=tuple((i, f"{error_code(exc)}: {exc}") for i in ids))
        parts = [self._revoke_chunk(group_id, direction, [i]) for i in ids if i in live]
        return RevokeResult(
            revoked=tuple(i for part in parts for i in part.revoked),
            absent=(
                *(i for i in ids if i not in live),
                *(i for part in parts for i in part.absent),
            ),
            failed=tuple(f for part in parts for f in part.failed),
            removed=tuple(r for part in parts for r in part.removed),
        )


def _whole_batch(exc: ClientError) -> bool:
    """Throttled, denied or a server error: the same for each rule, so never split."""
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return error_code(exc) in _WHOLE_BATCH or int(status) >= 500


_DUPLICATE = "InvalidPermission.Duplicate"


AuthorizeOutcome = Literal["created", "present", "gone", "failed"]


@dataclass(frozen=True, slots=True)
class AuthorizeResult:
    """What one authorize batch did, per rule key."""

    created: tuple[RuleKey, ...] = ()
    present: tuple[RuleKey, ...] = ()
    gone: tuple[tuple[RuleKey, str], ...] = ()
    failed: tuple[tuple[RuleKey, str], ...] = ()

    def outcomes(self) -> dict[RuleKey, tuple[AuthorizeOutcome, str | None]]:
        """Each rule key -> what happened to it (``created`` ... ``failed``) and the error."""
        out: dict[RuleKey, tuple[AuthorizeOutcome, str | None]] = {}
        out.update((key, ("created", None)) for key in self.created)
        out.update((key, ("present", None)) for key in self.present)
        out.update((key, ("gone", error)) for key, error in self.gone)
        out.update((key, ("failed", error)) for key, error in self.failed)
        return out


class RuleAuthorizer:
    """Creates rules exactly (with descriptions): one call per group and direction.

    Needs ``ec2:AuthorizeSecurityGroupIngress``/``Egress``, which the Lambda's role only has
    when a policy opts in to ``restore_missing``; ``InvalidPermission.Duplicate`` means the
    rule is already there.
    """

    def __init__(self, client: EC2Client) -> None:
        self._client = client

    def authorize(
        self,
        group_id: str,
        direction: Direction,
        rules: Sequence[tuple[RuleKey, str | None]],
    ) -> AuthorizeResult:
        """Authorize ``rules``; never raises for AWS or connection errors, reports them.

        EC2 applies a batch all or nothing: a duplicate in it, or a missing group (which
        may be a referenced peer rather than this group), makes each rule go in on its own.
        """
        keys = tuple(key for key, _ in rules)
        try:
            self._call(group_id, direction, rules)
        except ClientError as exc:
            code = error_code(exc)
            if len(rules) > 1 and (code == _DUPLICATE or code in _GROUP_GONE):
                parts = [self.authorize(group_id, direction, [rule]) for rule in rules]
                return AuthorizeResult(
                    created=tuple(k for part in parts for k in part.created),
                    present=tuple(k for part in parts for k in part.present),
                    gone=tuple(g for part in parts for g in part.gone),
                    failed=tuple(f for part in parts for f in part.failed),
                )
            if code == _DUPLICATE:
                return AuthorizeResult(present=keys)
            message = exc.response.get("Error", {}).get("Message") or str(exc)
            why = tuple((k, f"{code}: {message}") for k in keys)
            return AuthorizeResult(gone=why) if code in _GROUP_GONE else AuthorizeResult(failed=why)
        except BotoCoreError as exc:
            return AuthorizeResult(failed=tuple((k, str(exc)) for k in keys))
        return AuthorizeResult(created=keys)

    def _call(
        self, group_id: str, direction: Direction, rules: Sequence[tuple[RuleKey, str | None]]
    ) -> None:
        perms: list[Any] = [ip_permission(key, description) for key, description in rules]
        if direction is Direction.INGRESS:
            self._client.authorize_security_group_ingress(GroupId=group_id, IpPermissions=perms)
        else:
            self._client.authorize_security_group_egress(GroupId=group_id, IpPermissions=perms)


def ip_permission(key: RuleKey, description: str | None = None) -> dict[str, Any]:
    """The IpPermissions entry that creates exactly the rule ``key`` (for restores and demos)."""
    perm: dict[str, Any] = {"IpProtocol": key.ec2_protocol}
    if key.from_port is not None:
        perm["FromPort"] = key.from_port
        perm["ToPort"] = key.to_port
    extra = {"Description": description} if description else {}
    kind = key.peer_kind
    if kind == "cidr4":
        perm["IpRanges"] = [{"CidrIp": key.peer, **extra}]
    elif kind == "cidr6":
        perm["Ipv6Ranges"] = [{"CidrIpv6": key.peer, **extra}]
    elif kind == "prefix_list":
        perm["PrefixListIds"] = [{"PrefixListId": key.peer, **extra}]
    else:
        account, _, group = key.peer.rpartition("/")
        pair: dict[str, str] = {"GroupId": group, **extra}
        if account:
            pair["UserId"] = account
        perm["UserIdGroupPairs"] = [pair]
    return perm
