"""An in-memory EC2 for decision tests: groups, rules and rule ids, as EC2 documents them.

``FakeEC2`` is one account's regions; ``FakeEC2.client(region)`` answers the boto3 EC2 client
calls the reconciler and the tests make, with botocore's own parameter validation and
``before-call`` events (so the rate limiter and ``CallCounter`` see every call), in the
response shapes of the EC2 API Reference. What it honours, each from the EC2 API Reference:

- rule ids: every (permission x peer) authorized becomes one rule with an ``sgr-`` id that
  never changes; ``ModifySecurityGroupRules`` edits a rule in place and keeps its id
  (API_ModifySecurityGroupRules);
- ``InvalidPermission.Duplicate``: authorizing a rule that exists (same direction, protocol,
  ports and peer; descriptions do not count) fails the whole call, nothing is added
  (API_AuthorizeSecurityGroupIngress);
- revokes: by ``SecurityGroupRuleIds`` all or nothing, an id not in the group and direction
  is ``InvalidSecurityGroupRuleId.NotFound``; by ``IpPermissions`` the values must match
  exactly, and an unmatched one is ``InvalidPermission.NotFound`` in a non-default VPC, or
  listed in ``UnknownIpPermissions`` in the default VPC (API_RevokeSecurityGroupIngress);
  the response lists ``RevokedSecurityGroupRules`` (moto 5 does not: tests/moto_revoke.py);
- ``InvalidGroup.NotFound`` for a group that does not exist; a new VPC group has the one
  egress rule "all traffic to 0.0.0.0/0", and every VPC its ``default`` group
  (userguide: default-custom-security-groups);
- ``DescribeSecurityGroups``/``DescribeSecurityGroupRules`` filters (with ``*``/``?``
  wildcards), ``MaxResults`` 5-1000 and ``NextToken`` pages.

``tests/integration/test_fake_ec2.py`` plays the same script against moto and this fake and
compares what both answer; each difference from moto is an AWS behaviour moto lacks, named there.
"""

# ruff: noqa: N803 - the handlers take EC2's own parameter names (GroupId, IpPermissions, ...)
from __future__ import annotations

__all__ = ["FakeEC2", "FakeEC2Client", "serving"]

import copy
import fnmatch
import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import boto3.session
import botocore.session
from botocore import xform_name
from botocore.exceptions import ClientError
from botocore.hooks import HierarchicalEmitter
from botocore.validate import validate_parameters

ACCOUNT = "123456789012"  # moto's default account, so STS on moto agrees with the fake
_PROTOCOLS = {"6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6", "all": "-1"}
_PEERS = (
    ("IpRanges", "CidrIp", "CidrIpv4"),
    ("Ipv6Ranges", "CidrIpv6", "CidrIpv6"),
    ("PrefixListIds", "PrefixListId", "PrefixListId"),
)
_MODEL = botocore.session.get_session().get_service_model("ec2")
_OPERATIONS = {xform_name(op): op for op in _MODEL.operation_names}  # snake_case -> API name


def _error(operation: str, code: str, message: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}},
        operation,
    )


@dataclass
class _Rule:
    rule_id: str
    group_id: str
    egress: bool
    protocol: str
    from_port: int
    to_port: int
    peer: tuple[str, str]  # (response field, value); ("ReferencedGroupInfo", "user/sg-...")
    description: str | None = None

    def content(self) -> tuple[object, ...]:
        """What makes a rule a duplicate of another (not its description); FakeEC2.content too."""
        return (self.egress, self.protocol, self.from_port, self.to_port, self.peer)

    def described(self, owner: str) -> dict[str, Any]:
        item: dict[str, Any] = {
            "SecurityGroupRuleId": self.rule_id,
            "GroupId": self.group_id,
            "GroupOwnerId": owner,
            "IsEgress": self.egress,
            "IpProtocol": self.protocol,
            "FromPort": self.from_port,
            "ToPort": self.to_port,
            "Tags": [],
        }
        kind, value = self.peer
        if kind == "ReferencedGroupInfo":
            user, _, group = value.partition("/")
            item[kind] = {"GroupId": group, "UserId": user}
        else:
            item[kind] = value
        if self.description:
            item["Description"] = self.description
        return item

    def revoked(self) -> dict[str, Any]:
        item = self.described("")
        for key in ("GroupOwnerId", "Tags"):
            item.pop(key)
        if "ReferencedGroupInfo" in item:
            item["ReferencedGroupId"] = item.pop("ReferencedGroupInfo")["GroupId"]
        return item


@dataclass
class _Group:
    group_id: str
    name: str
    description: str
    vpc_id: str
    tags: dict[str, str] = field(default_factory=dict)
    rules: dict[str, _Rule] = field(default_factory=dict)


@dataclass
class _Region:
    default_vpc: str
    vpcs: set[str] = field(default_factory=set)
    groups: dict[str, _Group] = field(default_factory=dict)


class FakeEC2:
    """One account's EC2 security groups, in every region, in memory; thread-safe."""

    def __init__(self, account_id: str = ACCOUNT) -> None:
        self.account_id = account_id
        self._regions: dict[str, _Region] = {}
        self._ids = itertools.count(1)
        self.lock = threading.RLock()

    def client(self, region: str, events: HierarchicalEmitter | None = None) -> FakeEC2Client:
        """A client of ``region``; ``events`` (a session's emitter) is copied as botocore does."""
        return FakeEC2Client(self, region, copy.copy(events) if events else HierarchicalEmitter())

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):017x}"

    def region(self, name: str) -> _Region:
        with self.lock:
            if name not in self._regions:
                vpc = self.new_id("vpc")
                self._regions[name] = _Region(default_vpc=vpc)
                self._add_vpc(self._regions[name], vpc)
            return self._regions[name]

    def _add_vpc(self, region: _Region, vpc: str) -> None:
        region.vpcs.add(vpc)
        default = self._add_group(region, "default", "default VPC security group", vpc)
        self._add_rule(default, False, ("-1", -1, -1), ("ReferencedGroupInfo", default.group_id))

    def _add_group(self, region: _Region, name: str, description: str, vpc: str) -> _Group:
        group = _Group(self.new_id("sg"), name, description, vpc)
        region.groups[group.group_id] = group
        if name != "default":
            self._add_rule(group, True, ("-1", -1, -1), ("CidrIpv4", "0.0.0.0/0"))
        return group

    def _add_rule(
        self,
        group: _Group,
        egress: bool,
        ports: tuple[str, int, int],
        peer: tuple[str, str],
        description: str | None = None,
    ) -> _Rule:
        rule = _Rule(
            self.new_id("sgr"), group.group_id, egress, *ports, self.qualified(peer), description
        )
        group.rules[rule.rule_id] = rule
        return rule

    def qualified(self, peer: tuple[str, str]) -> tuple[str, str]:
        """A referenced group without an owner is this account's."""
        if peer[0] == "ReferencedGroupInfo" and "/" not in peer[1]:
            return (peer[0], f"{self.account_id}/{peer[1]}")
        return peer

    def content(
        self, egress: bool, ports: tuple[str, int, int], peer: tuple[str, str]
    ) -> tuple[object, ...]:
        """What makes a requested rule the same as a live one (``_Rule.content``)."""
        return (egress, *ports, self.qualified(peer))


class FakeEC2Client:
    """The boto3 EC2 client calls of one region of a ``FakeEC2``."""

    def __init__(self, ec2: FakeEC2, region: str, events: HierarchicalEmitter) -> None:
        self._ec2 = ec2
        self._region_name = region
        self.meta = SimpleNamespace(events=events, region_name=region, service_model=_MODEL)

    def __getattr__(self, name: str) -> Callable[..., dict[str, Any]]:
        handler = None if name.startswith("_") else getattr(self, f"_{name}", None)
        if handler is None or name not in _OPERATIONS:
            raise AttributeError(f"the fake EC2 does not implement {name}")
        operation = _MODEL.operation_model(_OPERATIONS[name])

        def call(**params: Any) -> dict[str, Any]:
            validate_parameters(params, operation.input_shape)
            self.meta.events.emit(
                f"before-call.ec2.{operation.name}",
                model=operation,
                params=params,
                request_signer=None,
                context={},
            )
            with self._ec2.lock:
                response: dict[str, Any] = handler(operation.name, **params)
            return copy.deepcopy(response)

        return call

    def get_paginator(self, name: str) -> _Paginator:
        return _Paginator(getattr(self, name))

    @property
    def _r(self) -> _Region:
        return self._ec2.region(self._region_name)

    def _group(self, operation: str, group_id: str) -> _Group:
        group = self._r.groups.get(group_id)
        if group is None:
            raise _error(
                operation,
                "InvalidGroup.NotFound",
                f"The security group '{group_id}' does not exist",
            )
        return group

    # -- VPCs, groups, tags, prefix lists --------------------------------------------------

    def _create_vpc(self, _: str, CidrBlock: str, **__: Any) -> dict[str, Any]:
        vpc = self._ec2.new_id("vpc")
        self._ec2._add_vpc(self._r, vpc)
        return {"Vpc": {"VpcId": vpc, "CidrBlock": CidrBlock, "State": "available"}}

    def _create_security_group(
        self,
        operation: str,
        GroupName: str,
        Description: str,
        VpcId: str | None = None,
        TagSpecifications: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        region = self._r
        vpc = VpcId or region.default_vpc
        if vpc not in region.vpcs:
            raise _error(operation, "InvalidVpcID.NotFound", f"The vpc ID '{vpc}' does not exist")
        if any(g.name == GroupName and g.vpc_id == vpc for g in region.groups.values()):
            raise _error(
                operation,
                "InvalidGroup.Duplicate",
                f"The security group '{GroupName}' already exists for VPC '{vpc}'",
            )
        group = self._ec2._add_group(region, GroupName, Description, vpc)
        for spec in TagSpecifications or []:
            group.tags.update({t["Key"]: t.get("Value", "") for t in spec.get("Tags", [])})
        return {"GroupId": group.group_id}

    def _delete_security_group(self, operation: str, GroupId: str, **_: Any) -> dict[str, Any]:
        self._group(operation, GroupId)
        del self._r.groups[GroupId]
        return {"Return": True, "GroupId": GroupId}

    def _create_tags(
        self, operation: str, Resources: list[str], Tags: list[dict[str, str]], **_: Any
    ) -> dict[str, Any]:
        groups = [self._group(operation, gid) for gid in Resources]
        for group in groups:
            group.tags.update({t["Key"]: t.get("Value", "") for t in Tags})
        return {}

    def _delete_tags(
        self, operation: str, Resources: list[str], Tags: list[dict[str, str]] | None = None
    ) -> dict[str, Any]:
        for group in [self._group(operation, gid) for gid in Resources]:
            for tag in Tags or [{"Key": k} for k in list(group.tags)]:
                if "Value" not in tag or group.tags.get(tag["Key"]) == tag["Value"]:
                    group.tags.pop(tag["Key"], None)
        return {}

    def _create_managed_prefix_list(
        self, _: str, PrefixListName: str, MaxEntries: int, AddressFamily: str, **__: Any
    ) -> dict[str, Any]:
        pl = self._ec2.new_id("pl")  # entries are not kept: no decision test reads them
        return {"PrefixList": {"PrefixListId": pl, "PrefixListName": PrefixListName}}

    def _describe_security_groups(
        self,
        operation: str,
        GroupIds: list[str] | None = None,
        GroupNames: list[str] | None = None,
        Filters: list[dict[str, Any]] | None = None,
        MaxResults: int | None = None,
        NextToken: str | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        groups = [self._group(operation, gid) for gid in GroupIds or []] or list(
            self._r.groups.values()
        )
        if GroupNames:
            groups = [g for g in groups if g.name in GroupNames]
        groups = [
            g for g in groups if all(self._group_filter(operation, g, f) for f in Filters or [])
        ]
        page, token = _page(operation, groups, MaxResults, NextToken)
        out: dict[str, Any] = {"SecurityGroups": [self._group_shape(g) for g in page]}
        if token:
            out["NextToken"] = token
        return out

    def _group_filter(self, operation: str, group: _Group, spec: dict[str, Any]) -> bool:
        name, values = spec["Name"], spec.get("Values", [])
        if name.startswith("tag:"):
            key = name[4:]
            return key in group.tags and _any_match(values, [group.tags[key]])
        facts = {
            "group-id": [group.group_id],
            "group-name": [group.name],
            "vpc-id": [group.vpc_id],
            "owner-id": [self._ec2.account_id],
            "description": [group.description],
            "tag-key": list(group.tags),
        }
        if name not in facts:
            raise _error(operation, "InvalidParameterValue", f"The filter '{name}' is invalid")
        return _any_match(values, facts[name])

    def _group_shape(self, group: _Group) -> dict[str, Any]:
        def perms(egress: bool) -> list[dict[str, Any]]:
            out = []
            for rule in group.rules.values():
                if rule.egress is egress:
                    item = rule.described(self._ec2.account_id)
                    out.append(_permission(item))
            return out

        shape: dict[str, Any] = {
            "GroupId": group.group_id,
            "GroupName": group.name,
            "SecurityGroupArn": (
                f"arn:aws:ec2:{self._region_name}:{self._ec2.account_id}"
                f":security-group/{group.group_id}"
            ),
            "Description": group.description,
            "VpcId": group.vpc_id,
            "OwnerId": self._ec2.account_id,
            "IpPermissions": perms(False),
            "IpPermissionsEgress": perms(True),
        }
        if group.tags:
            shape["Tags"] = [{"Key": k, "Value": v} for k, v in group.tags.items()]
        return shape

    # -- rules -----------------------------------------------------------------------------

    def _describe_security_group_rules(
        self,
        operation: str,
        Filters: list[dict[str, Any]] | None = None,
        SecurityGroupRuleIds: list[str] | None = None,
        MaxResults: int | None = None,
        NextToken: str | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        rules = [r for g in self._r.groups.values() for r in g.rules.values()]
        if SecurityGroupRuleIds:
            rules = [r for r in rules if r.rule_id in SecurityGroupRuleIds]
        for spec in Filters or []:
            name, values = spec["Name"], spec.get("Values", [])
            fact = {"group-id": "group_id", "security-group-rule-id": "rule_id"}.get(name)
            if fact is None:
                raise _error(operation, "InvalidParameterValue", f"The filter '{name}' is invalid")
            rules = [r for r in rules if _any_match(values, [getattr(r, fact)])]
        page, token = _page(operation, rules, MaxResults, NextToken)
        out: dict[str, Any] = {
            "SecurityGroupRules": [r.described(self._ec2.account_id) for r in page]
        }
        if token:
            out["NextToken"] = token
        return out

    def _authorize_security_group_ingress(self, operation: str, **params: Any) -> dict[str, Any]:
        return self._authorize(operation, False, **params)

    def _authorize_security_group_egress(self, operation: str, **params: Any) -> dict[str, Any]:
        return self._authorize(operation, True, **params)

    def _authorize(
        self,
        operation: str,
        egress: bool,
        GroupId: str,
        IpPermissions: list[dict[str, Any]],
        **_: Any,
    ) -> dict[str, Any]:
        group = self._group(operation, GroupId)
        wanted = [rule for perm in IpPermissions for rule in self._expand(operation, perm)]
        live = {r.content() for r in group.rules.values()}
        seen: set[tuple[object, ...]] = set()
        for ports, peer, _description in wanted:
            content = self._ec2.content(egress, ports, peer)
            if content in live or content in seen:
                raise _error(
                    operation,
                    "InvalidPermission.Duplicate",
                    f'the specified rule "peer: {peer[1]}, {ports[0]}, from port: {ports[1]},'
                    f' to port: {ports[2]}, ALLOW" already exists',
                )
            seen.add(content)
        created = [
            self._ec2._add_rule(group, egress, ports, peer, description)
            for ports, peer, description in wanted
        ]
        return {
            "Return": True,
            "SecurityGroupRules": [r.described(self._ec2.account_id) for r in created],
        }

    def _expand(
        self, operation: str, perm: dict[str, Any]
    ) -> Iterator[tuple[tuple[str, int, int], tuple[str, str], str | None]]:
        """Each (ports, peer, description) one IpPermissions entry stands for."""
        ports = _ports(operation, perm)
        for field_name, key, kind in _PEERS:
            for entry in perm.get(field_name, []):
                yield ports, (kind, entry[key]), entry.get("Description")
        for pair in perm.get("UserIdGroupPairs", []):
            user = pair.get("UserId")
            value = f"{user}/{pair['GroupId']}" if user else pair["GroupId"]
            yield ports, ("ReferencedGroupInfo", value), pair.get("Description")

    def _revoke_security_group_ingress(self, operation: str, **params: Any) -> dict[str, Any]:
        return self._revoke(operation, False, **params)

    def _revoke_security_group_egress(self, operation: str, **params: Any) -> dict[str, Any]:
        return self._revoke(operation, True, **params)

    def _revoke(
        self,
        operation: str,
        egress: bool,
        GroupId: str,
        SecurityGroupRuleIds: list[str] | None = None,
        IpPermissions: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        group = self._group(operation, GroupId)
        unknown: list[dict[str, Any]] = []
        if SecurityGroupRuleIds:
            for rule_id in SecurityGroupRuleIds:
                rule = group.rules.get(rule_id)
                if rule is None or rule.egress is not egress:
                    raise _error(
                        operation,
                        "InvalidSecurityGroupRuleId.NotFound",
                        f"The security group rule ID '{rule_id}' does not exist",
                    )
            doomed = [group.rules[i] for i in SecurityGroupRuleIds]
        else:
            by_content = {r.content(): r for r in group.rules.values()}
            doomed = []
            for perm in IpPermissions or []:
                for ports, peer, _description in self._expand(operation, perm):
                    content = self._ec2.content(egress, ports, peer)
                    if content in by_content:
                        doomed.append(by_content[content])
                    elif group.vpc_id == self._r.default_vpc:
                        unknown.append(perm)
                    else:
                        raise _error(
                            operation,
                            "InvalidPermission.NotFound",
                            "The specified rule does not exist in this security group.",
                        )
        for rule in doomed:
            group.rules.pop(rule.rule_id, None)
        out: dict[str, Any] = {
            "Return": True,
            "RevokedSecurityGroupRules": [r.revoked() for r in doomed],
        }
        if unknown:
            out["UnknownIpPermissions"] = unknown
        return out

    def _modify_security_group_rules(
        self, operation: str, GroupId: str, SecurityGroupRules: list[dict[str, Any]], **_: Any
    ) -> dict[str, Any]:
        group = self._group(operation, GroupId)
        for update in SecurityGroupRules:
            rule = group.rules.get(update["SecurityGroupRuleId"])
            if rule is None:
                raise _error(
                    operation,
                    "InvalidSecurityGroupRuleId.NotFound",
                    f"The security group rule ID '{update['SecurityGroupRuleId']}' does not exist",
                )
            spec = update["SecurityGroupRule"]
            rule.protocol, rule.from_port, rule.to_port = _ports(operation, spec)
            for kind in ("CidrIpv4", "CidrIpv6", "PrefixListId"):  # SecurityGroupRuleRequest
                if kind in spec:
                    rule.peer = (kind, spec[kind])
            if "ReferencedGroupId" in spec:
                rule.peer = self._ec2.qualified(("ReferencedGroupInfo", spec["ReferencedGroupId"]))
            rule.description = spec.get("Description")
        return {"Return": True}


def _permission(item: dict[str, Any]) -> dict[str, Any]:
    """One DescribeSecurityGroupRules entry as a one-peer IpPermissions entry."""
    perm: dict[str, Any] = {"IpProtocol": item["IpProtocol"]}
    if item["IpProtocol"] != "-1":
        perm["FromPort"], perm["ToPort"] = item["FromPort"], item["ToPort"]
    extra = {"Description": item["Description"]} if "Description" in item else {}
    for field_name, key, kind in _PEERS:
        perm[field_name] = [{key: item[kind], **extra}] if kind in item else []
    ref = item.get("ReferencedGroupInfo")
    perm["UserIdGroupPairs"] = (
        [{"GroupId": ref["GroupId"], "UserId": ref["UserId"], **extra}] if ref else []
    )
    return perm


def _ports(operation: str, perm: dict[str, Any]) -> tuple[str, int, int]:
    """(protocol, from, to) of an IpPermissions or SecurityGroupRuleRequest entry, as EC2 keeps
    them: protocol numbers of named protocols by name, ports -1 where the protocol has none."""
    protocol = _PROTOCOLS.get(str(perm["IpProtocol"]).lower(), str(perm["IpProtocol"]).lower())
    if protocol not in {"tcp", "udp", "icmp", "icmpv6"}:
        return (protocol, -1, -1)
    if "FromPort" not in perm or "ToPort" not in perm:
        raise _error(operation, "MissingParameter", "FromPort and ToPort are required")
    return (protocol, int(perm["FromPort"]), int(perm["ToPort"]))


def _any_match(patterns: list[str], values: list[str]) -> bool:
    """EC2 filter values: any pattern (``*`` and ``?`` wildcards) matches any value."""
    return any(fnmatch.fnmatchcase(v, p) for p in patterns for v in values)


def _page(
    operation: str, items: list[Any], max_results: int | None, token: str | None
) -> tuple[list[Any], str | None]:
    if max_results is not None and not 5 <= max_results <= 1000:
        raise _error(
            operation, "InvalidParameterValue", f"MaxResults {max_results} is not within 5-1000"
        )
    start = int(token) if token else 0
    size = max_results or len(items) or 1
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


class _Paginator:
    """boto3's paginator over ``NextToken``/``MaxResults`` (``PaginationConfig.PageSize``)."""

    def __init__(self, call: Callable[..., dict[str, Any]]) -> None:
        self._call = call

    def paginate(self, **params: Any) -> Iterator[dict[str, Any]]:
        config = params.pop("PaginationConfig", {})
        if "PageSize" in config:
            params["MaxResults"] = config["PageSize"]
        while True:
            page = self._call(**params)
            yield page
            if not page.get("NextToken"):
                return
            params["NextToken"] = page["NextToken"]


@contextmanager
def serving(fake: FakeEC2) -> Iterator[FakeEC2]:
    """Within the block every boto3 session's EC2 client is ``fake``'s (other services as before).

    The reconciler builds its clients from a session (``AwsClients``): this is the one seam,
    so the CLI, the handler and the tests' ``World`` all see the same in-memory account.
    """
    original = boto3.session.Session.client

    def client(self: boto3.session.Session, service_name: str, *args: Any, **kwargs: Any) -> Any:
        if service_name != "ec2":
            return original(self, service_name, *args, **kwargs)
        region = kwargs.get("region_name") or (args[0] if args else None) or self.region_name
        return fake.client(region or "us-east-1", events=self.events)

    boto3.session.Session.client = client  # type: ignore[method-assign,assignment]
    try:
        yield fake
    finally:
        boto3.session.Session.client = original  # type: ignore[method-assign]
