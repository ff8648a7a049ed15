"""Rule identity and normalisation: the same rule written two ways is one RuleKey."""

from __future__ import annotations

import re

import pytest

from reconciler.adapters.ec2 import revoked_rule
from reconciler.core.rules import (
    Direction,
    ObservedGroup,
    ObservedRule,
    RuleKey,
    canonical_peer,
    canonical_protocol,
    peer_kind,
)

INGRESS = Direction.INGRESS
EGRESS = Direction.EGRESS
SG = "sg-0123456789abcdef0"
PL = "pl-0123456789abcdef0"


def exactly(message: str) -> str:
    """A pytest.raises pattern matching the whole message and nothing else."""
    return f"^{re.escape(message)}$"


def wire(
    protocol: str,
    from_port: int | None,
    to_port: int | None,
    peer: str,
    direction: Direction = INGRESS,
) -> RuleKey:
    return RuleKey.from_ec2(
        direction=direction, protocol=protocol, from_port=from_port, to_port=to_port, peer=peer
    )


# --- protocols -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("-1", "all"),
        (-1, "all"),
        ("all", "all"),
        ("ALL", "all"),
        ("tcp", "tcp"),
        ("TCP", "tcp"),
        (" Tcp ", "tcp"),
        ("6", "tcp"),
        (6, "tcp"),
        ("udp", "udp"),
        ("17", "udp"),
        (17, "udp"),
        ("icmp", "icmp"),
        ("1", "icmp"),
        (1, "icmp"),
        ("icmpv6", "icmpv6"),
        ("ICMPv6", "icmpv6"),
        ("58", "icmpv6"),
        (58, "icmpv6"),
        ("0", "0"),
        ("47", "47"),
        (50, "50"),
        ("255", "255"),
    ],
)
def test_canonical_protocol_names_numbers_and_aliases(value: str | int, expected: str) -> None:
    """Protocol names, IANA numbers and EC2's -1 all map to the one name EC2 reports."""
    assert canonical_protocol(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("06", "tcp"),
        ("017", "udp"),
        ("001", "icmp"),
        ("058", "icmpv6"),
        ("047", "47"),
    ],
)
def test_canonical_protocol_zero_padded_numbers_name_the_same_protocol(
    value: str, expected: str
) -> None:
    """A zero-padded protocol number is the same protocol as the plain number ("06" is tcp)."""
    assert canonical_protocol(value) == expected


@pytest.mark.parametrize("value", ["gre", "256", "-2", "", "tcp/udp", "6.0", 300, "²"])
def test_canonical_protocol_rejects_unknown_protocols_with_the_fix(value: str | int) -> None:
    """An unknown protocol is an error that lists the accepted spellings."""
    message = f"unknown protocol {value!r} (use tcp, udp, icmp, icmpv6, all, or a number 0-255)"
    with pytest.raises(ValueError, match=exactly(message)):
        canonical_protocol(value)


# --- ports on the wire ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "from_port", "to_port", "expected"),
    [
        ("-1", -1, -1, ("all", None, None)),
        ("-1", None, None, ("all", None, None)),
        ("-1", 22, 22, ("all", None, None)),
        ("tcp", -1, -1, ("tcp", 0, 65535)),
        ("6", None, None, ("tcp", 0, 65535)),
        ("udp", -1, -1, ("udp", 0, 65535)),
        ("17", 0, 65535, ("udp", 0, 65535)),
        ("tcp", 22, 22, ("tcp", 22, 22)),
        ("tcp", 8000, 8100, ("tcp", 8000, 8100)),
        ("icmp", -1, -1, ("icmp", -1, -1)),
        ("1", None, None, ("icmp", -1, -1)),
        ("icmp", 8, -1, ("icmp", 8, -1)),
        ("icmp", 3, 4, ("icmp", 3, 4)),
        ("58", 128, 0, ("icmpv6", 128, 0)),
        ("47", -1, -1, ("47", None, None)),
    ],
)
def test_from_ec2_normalises_wire_ports(
    protocol: str,
    from_port: int | None,
    to_port: int | None,
    expected: tuple[str, int | None, int | None],
) -> None:
    """EC2's -1 ports mean all ports for tcp/udp, any for ICMP, and nothing for the rest."""
    key = wire(protocol, from_port, to_port, "10.0.0.0/8")
    assert (key.protocol, key.from_port, key.to_port) == expected


def test_from_ec2_tcp_minus_one_equals_tcp_all_ports() -> None:
    """tcp with wire ports -1/-1 is the same rule as tcp 0-65535."""
    assert wire("tcp", -1, -1, "0.0.0.0/0") == RuleKey(INGRESS, "tcp", 0, 65535, "0.0.0.0/0")


def test_from_ec2_canonicalises_the_peer_without_strictness() -> None:
    """A live CIDR with host bits set is taken as its network, as EC2 itself treats it."""
    assert wire("tcp", 22, 22, "10.1.2.3/8").peer == "10.0.0.0/8"


def test_from_ec2_rejects_unknown_protocols() -> None:
    """A wire protocol that is not a protocol is an error, not a silent new rule."""
    with pytest.raises(
        ValueError,
        match=exactly(
            "unknown protocol 'xyz' (use tcp, udp, icmp, icmpv6, all, or a number 0-255)"
        ),
    ):
        wire("xyz", 1, 1, "10.0.0.0/8")


@pytest.mark.parametrize(
    ("key", "protocol"),
    [
        (RuleKey(INGRESS, "all", None, None, "10.0.0.0/8"), "-1"),
        (RuleKey(INGRESS, "tcp", 22, 22, "10.0.0.0/8"), "tcp"),
        (RuleKey(INGRESS, "icmpv6", -1, -1, "::/0"), "icmpv6"),
        (RuleKey(INGRESS, "47", None, None, "10.0.0.0/8"), "47"),
    ],
)
def test_ec2_protocol_is_minus_one_for_all(key: RuleKey, protocol: str) -> None:
    """The API spelling of protocol all is -1; every other protocol keeps its name."""
    assert key.ec2_protocol == protocol


# --- peers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.0.0.0/0", "0.0.0.0/0"),
        (" 10.0.0.0/8 ", "10.0.0.0/8"),
        ("192.168.1.7/32", "192.168.1.7/32"),
        ("::0/0", "::/0"),
        ("::/0", "::/0"),
        ("2001:DB8:0:0::/32", "2001:db8::/32"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001/128", "2001:db8::1/128"),
        ("FE80::/10", "fe80::/10"),
        (SG, SG),
        ("sg-0123abcd", "sg-0123abcd"),
        (PL, PL),
        ("pl-0123abcd", "pl-0123abcd"),
        (f"123456789012/{SG}", f"123456789012/{SG}"),
    ],
)
@pytest.mark.parametrize("strict", [True, False])
def test_canonical_peer_forms(value: str, expected: str, *, strict: bool) -> None:
    """Networks are compressed and lower-cased; sg-, pl- and account/sg- ids pass through."""
    assert canonical_peer(value, strict=strict) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.0.0.1/8", "10.0.0.0/8"),
        ("192.168.1.77/24", "192.168.1.0/24"),
        ("2001:db8::1/32", "2001:db8::/32"),
        ("fe80::1/64", "fe80::/64"),
    ],
)
def test_canonical_peer_non_strict_takes_the_network(value: str, expected: str) -> None:
    """Live (non-strict) CIDRs with host bits set are read as their network."""
    assert canonical_peer(value, strict=False) == expected


@pytest.mark.parametrize(
    ("value", "fixed"),
    [
        ("10.0.0.1/8", "10.0.0.0/8"),
        ("192.168.1.77/24", "192.168.1.0/24"),
        ("2001:db8::1/32", "2001:db8::/32"),
    ],
)
def test_canonical_peer_strict_rejects_host_bits_and_suggests_the_network(
    value: str, fixed: str
) -> None:
    """A policy CIDR with host bits set is an error that names the network the user meant."""
    message = f"{value!r} has host bits set (did you mean {fixed}?)"
    with pytest.raises(ValueError, match=exactly(message)):
        canonical_peer(value, strict=True)


ID_HINT = (
    " is not a valid id (expected sg-/pl- followed by 8 or 17 hex digits,"
    " or 123456789012/sg-… for another account's group)"
)


@pytest.mark.parametrize(
    "value",
    [
        "sg-123",
        "sg-0123456789abcdef",  # 16 digits: neither 8 nor 17
        "sg-0123ABCD",
        "sg-xyzxyzxy",
        "pl-123",
        "pl-ABCDEF12",
        "12345/sg-0123abcd",
        "123456789012/sg-12",
    ],
)
@pytest.mark.parametrize("strict", [True, False])
def test_canonical_peer_rejects_bad_ids(value: str, *, strict: bool) -> None:
    """A malformed sg-/pl-/account id is an error that describes the accepted forms."""
    with pytest.raises(ValueError, match=exactly(f"{value!r}{ID_HINT}")):
        canonical_peer(value, strict=strict)


@pytest.mark.parametrize(
    ("value", "suggestion"),
    [("10.0.0.1", "10.0.0.1/32"), ("::1", "::1/128")],
)
def test_canonical_peer_without_prefix_length_suggests_a_host_route(
    value: str, suggestion: str
) -> None:
    """A bare address is refused, suggesting the single-host CIDR."""
    message = f"{value!r} is not a CIDR, sg-… or pl-… (did you mean {suggestion}?)"
    with pytest.raises(ValueError, match=exactly(message)):
        canonical_peer(value, strict=True)


@pytest.mark.parametrize("value", ["10.0.0.0/33", "banana/8", "::/129"])
def test_canonical_peer_rejects_invalid_networks(value: str) -> None:
    """A slash-separated value that is not a network is an error quoting the value."""
    message = (
        f"{value!r} is not a valid CIDR ({value!r} does not appear to be an IPv4 or IPv6 network)"
    )
    with pytest.raises(ValueError, match=exactly(message)):
        canonical_peer(value, strict=True)


@pytest.mark.parametrize(
    ("peer", "kind"),
    [
        ("10.0.0.0/8", "cidr4"),
        ("::/0", "cidr6"),
        (SG, "group"),
        (f"123456789012/{SG}", "group"),
        (PL, "prefix_list"),
    ],
)
def test_peer_kind(peer: str, kind: str) -> None:
    """Each canonical peer is classified as IPv4, IPv6, group or prefix list."""
    assert peer_kind(peer) == kind
    assert RuleKey(INGRESS, "all", None, None, peer).peer_kind == kind


# --- text for people -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "text"),
    [
        (RuleKey(INGRESS, "tcp", 22, 22, "0.0.0.0/0"), "ingress tcp 22 from 0.0.0.0/0"),
        (RuleKey(INGRESS, "all", None, None, "10.0.0.0/8"), "ingress all from 10.0.0.0/8"),
        (
            RuleKey(INGRESS, "tcp", 8000, 8100, "10.0.0.0/16"),
            "ingress tcp 8000-8100 from 10.0.0.0/16",
        ),
        (RuleKey(INGRESS, "udp", 0, 65535, "::/0"), "ingress udp all ports from ::/0"),
        (RuleKey(EGRESS, "tcp", 25, 25, "0.0.0.0/0"), "egress tcp 25 to 0.0.0.0/0"),
        (RuleKey(EGRESS, "all", None, None, "0.0.0.0/0"), "egress all to 0.0.0.0/0"),
        (RuleKey(INGRESS, "icmp", -1, -1, "10.0.0.0/8"), "ingress icmp all types from 10.0.0.0/8"),
        (
            RuleKey(INGRESS, "icmp", 8, -1, "10.0.0.0/8"),
            "ingress icmp type 8 code any from 10.0.0.0/8",
        ),
        (
            RuleKey(EGRESS, "icmpv6", 128, 0, "2001:db8::/32"),
            "egress icmpv6 type 128 code 0 to 2001:db8::/32",
        ),
        (RuleKey(INGRESS, "47", None, None, SG), f"ingress 47 from {SG}"),
        (RuleKey(INGRESS, "tcp", 443, 443, PL), f"ingress tcp 443 from {PL}"),
    ],
)
def test_describe(key: RuleKey, text: str) -> None:
    """Every rule reads as one line: direction, protocol, ports, from/to, peer."""
    assert key.describe() == text


# --- identity ------------------------------------------------------------------------------


def test_descriptions_do_not_take_part_in_identity() -> None:
    """Two live rules differing only in description have the same key."""
    key = wire("tcp", 22, 22, "10.0.0.0/8")
    assert ObservedRule("sgr-1", key, "old").key == ObservedRule("sgr-2", key, "new").key


def test_rule_keys_are_ordered_and_hashable() -> None:
    """Keys sort field by field (direction, protocol, ports, peer) and hash for set differences."""
    keys = [
        RuleKey(EGRESS, "all", None, None, "0.0.0.0/0"),
        RuleKey(INGRESS, "tcp", 443, 443, "0.0.0.0/0"),
        RuleKey(INGRESS, "tcp", 22, 22, "0.0.0.0/0"),
    ]
    assert sorted(keys) == [keys[0], keys[2], keys[1]]
    assert len({*keys, wire("tcp", 22, 22, "0.0.0.0/0")}) == 3


def test_observed_group_build_copies_the_tags_read_only() -> None:
    """ObservedGroup.build takes a plain tag dict and keeps a read-only copy of it."""
    tags = {"Name": "web"}
    group = ObservedGroup.build(region="eu-west-1", group_id=SG, tags=tags)
    tags["Name"] = "changed"
    assert dict(group.tags) == {"Name": "web"}
    with pytest.raises(TypeError):
        group.tags["Name"] = "x"  # type: ignore[index]


def test_a_removed_rule_report_names_the_planned_rule_even_without_the_peer_owner() -> None:
    """A revoke response names a referenced group without its owner; nothing else is loose."""
    planned = RuleKey(Direction.INGRESS, "tcp", 5432, 5432, "111122223333/sg-0abc1234")
    assert planned.same_rule_as_removed(
        RuleKey(Direction.INGRESS, "tcp", 5432, 5432, "sg-0abc1234")
    )
    assert planned.same_rule_as_removed(planned)
    assert not planned.same_rule_as_removed(
        RuleKey(Direction.INGRESS, "tcp", 5433, 5433, "sg-0abc1234")
    )
    assert not planned.same_rule_as_removed(
        RuleKey(Direction.EGRESS, "tcp", 5432, 5432, "sg-0abc1234")
    )
    cidr = RuleKey(Direction.INGRESS, "tcp", 22, 22, "0.0.0.0/0")
    assert not cidr.same_rule_as_removed(RuleKey(Direction.INGRESS, "tcp", 22, 22, "10.0.0.0/8"))


def test_a_revoke_response_entry_reads_as_the_rule_it_removed() -> None:
    """RevokedSecurityGroupRules entries become observed rules (ReferencedGroupId as a peer)."""
    removed = revoked_rule(
        {
            "SecurityGroupRuleId": "sgr-1",
            "GroupId": "sg-1",
            "IsEgress": False,
            "IpProtocol": "6",
            "FromPort": 5432,
            "ToPort": 5432,
            "ReferencedGroupId": "sg-0abc1234",
            "Description": "db",
        }
    )
    assert removed == ObservedRule(
        "sgr-1", RuleKey(Direction.INGRESS, "tcp", 5432, 5432, "sg-0abc1234"), "db"
    )
    assert revoked_rule({"GroupId": "sg-1", "IpProtocol": "-1", "CidrIpv4": "1.2.3.4/32"}) is None
    assert revoked_rule({"SecurityGroupRuleId": "sgr-2", "ReferencedGroupId": "sg-x"}) is None
