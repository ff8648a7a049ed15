"""The rules a CloudTrail-recorded EC2 call asked for, as ``RequestedRule``s (notices only)."""

from __future__ import annotations

__all__ = ["modified_rules", "requested_rules"]

from collections.abc import Iterable, Iterator
from dataclasses import replace

from reconciler.adapters.event_triggers import RequestedRule
from reconciler.adapters.event_wire import Wire
from reconciler.core.rules import Direction, canonical_protocol


def requested_rules(
    params: Wire,
    direction: Direction,
    account: str | None,
    response_rules: Iterable[Wire],
) -> Iterator[RequestedRule]:
    rule_id_of = {_response_key(rule): rule.text("securityGroupRuleId") for rule in response_rules}
    for perm in (*params.views("ipPermissions"), _flat_permission(params)):
        for peer, match_peer, description in _peers(perm, account):
            rule = _requested(
                direction,
                perm.text("ipProtocol"),
                ports=(perm.integer("fromPort"), perm.integer("toPort")),
                peer=peer,
                description=description,
            )
            if rule is not None:
                yield replace(rule, rule_id=rule_id_of.get(_key(rule, match_peer)))


def _flat_permission(params: Wire) -> Wire:
    """The flat request form (one rule outside ``ipPermissions``) in the nested shape."""
    return Wire(
        {
            "ipProtocol": params.raw("ipProtocol"),
            "fromPort": params.raw("fromPort"),
            "toPort": params.raw("toPort"),
            "ipRanges": [{"cidrIp": params.raw("cidrIp")}],
            "groups": [
                {
                    "groupName": params.raw("sourceSecurityGroupName"),
                    "userId": params.raw("sourceSecurityGroupOwnerId"),
                }
            ],
        }
    )


def _peers(perm: Wire, account: str | None) -> Iterator[tuple[str | None, str | None, str | None]]:
    """(peer as shown, peer as the response names it, description) for each peer."""
    for v4 in perm.views("ipRanges"):
        cidr = v4.text("cidrIp")
        yield cidr, cidr, v4.text("description")
    for v6 in perm.views("ipv6Ranges"):
        cidr = v6.text("cidrIpv6")
        yield cidr, cidr, v6.text("description")
    for pl in perm.views("prefixListIds"):
        prefix_list = pl.text("prefixListId")
        yield prefix_list, prefix_list, pl.text("description")
    for pair in perm.views("groups"):
        group = pair.text("groupId") or pair.text("groupName")
        yield _group_peer(group, pair.text("userId"), account), group, pair.text("description")


def _group_peer(group: str | None, owner: str | None, account: str | None) -> str | None:
    if group is None:
        return None
    if owner is not None and account is not None and owner != account:
        return owner + "/" + group
    return group


def modified_rules(updates: Iterable[Wire]) -> Iterator[RequestedRule]:
    """ModifySecurityGroupRules updates: each rule id with the rule it now holds."""
    for update in updates:
        values = update.view("SecurityGroupRule")
        if values is None:
            continue
        rule = _requested(
            None,
            values.text("IpProtocol"),
            ports=(values.integer("FromPort"), values.integer("ToPort")),
            peer=values.text("CidrIpv4")
            or values.text("CidrIpv6")
            or values.text("PrefixListId")
            or values.text("ReferencedGroupId"),
            description=values.text("Description"),
        )
        if rule is not None:
            yield replace(rule, rule_id=update.text("SecurityGroupRuleId"))


def _requested(
    direction: Direction | None,
    protocol_text: str | None,
    *,
    ports: tuple[int | None, int | None],
    peer: str | None,
    description: str | None,
) -> RequestedRule | None:
    protocol = _protocol(protocol_text)
    if protocol is None or peer is None:
        return None
    from_port, to_port = (None, None) if protocol == "all" else ports
    return RequestedRule(direction, protocol, from_port, to_port, peer, description)


_RuleMatch = tuple[str | None, int | None, int | None, str | None]


def _key(rule: RequestedRule, match_peer: str | None) -> _RuleMatch:
    return (rule.protocol, rule.from_port, rule.to_port, match_peer)


def _response_key(rule: Wire) -> _RuleMatch:
    """The match key of a rule in ``securityGroupRuleSet``, to find a requested rule's id."""
    protocol = _protocol(rule.text("ipProtocol"))
    referenced = rule.view("referencedGroupInfo")
    peer = (
        rule.text("cidrIpv4")
        or rule.text("cidrIpv6")
        or rule.text("prefixListId")
        or (referenced.text("groupId") if referenced is not None else None)
    )
    if protocol == "all":
        return (protocol, None, None, peer)
    return (protocol, rule.integer("fromPort"), rule.integer("toPort"), peer)


def _protocol(value: str | None) -> str | None:
    text = (value or "").strip().lower()
    if not text:
        return None
    try:
        return canonical_protocol(text)
    except ValueError:
        return text
