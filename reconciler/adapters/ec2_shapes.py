"""EC2's wire shapes <-> our rules: DescribeSecurityGroupRules entries, revoke responses,
and the IpPermissions that create exactly one rule."""

from __future__ import annotations

__all__ = [
    "chunks",
    "error_code",
    "ip_permission",
    "observed_rule",
    "permission_rules",
    "revoked_rule",
]

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from reconciler.core.rules import Direction, ObservedRule, RuleKey

if TYPE_CHECKING:
    from mypy_boto3_ec2.type_defs import (
        RevokedSecurityGroupRuleTypeDef,
        SecurityGroupRuleTypeDef,
    )


def chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    """``items`` in lists of at most ``size``."""
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


def permission_rules(
    permissions: Sequence[Mapping[str, Any]], direction: Direction, owner_id: str | None
) -> tuple[ObservedRule, ...]:
    """One rule per peer of DescribeSecurityGroups' ``IpPermissions``, ids unknown (``""``).

    Enough to plan: a group with a change is read again with DescribeSecurityGroupRules for
    the rule ids its revokes need (the reader's ``with_rule_ids``).
    """
    out: list[ObservedRule] = []
    for perm in permissions:
        peers: list[tuple[str, str | None]] = [
            *(
                (r["CidrIp"], r.get("Description"))
                for r in perm.get("IpRanges", [])
                if "CidrIp" in r
            ),
            *(
                (r["CidrIpv6"], r.get("Description"))
                for r in perm.get("Ipv6Ranges", [])
                if "CidrIpv6" in r
            ),
            *(
                (r["PrefixListId"], r.get("Description"))
                for r in perm.get("PrefixListIds", [])
                if "PrefixListId" in r
            ),
        ]
        for pair in perm.get("UserIdGroupPairs", []):
            if "GroupId" not in pair:
                continue
            user = pair.get("UserId")
            foreign = user and owner_id and user != owner_id
            peers.append(
                (
                    f"{user}/{pair['GroupId']}" if foreign else pair["GroupId"],
                    pair.get("Description"),
                )
            )
        for peer, description in peers:
            key = RuleKey.from_ec2(
                direction=direction,
                protocol=str(perm.get("IpProtocol", "-1")),
                from_port=perm.get("FromPort"),
                to_port=perm.get("ToPort"),
                peer=peer,
            )
            out.append(ObservedRule(rule_id="", key=key, description=description or None))
    return tuple(out)


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
