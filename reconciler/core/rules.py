"""Rule value objects and normalisation: one peer per rule, the way EC2 stores rules.

Two rules are the same rule when their ``RuleKey`` is equal: direction, protocol, port
range and one peer, all in canonical form. Descriptions never take part in identity.
"""

from __future__ import annotations

__all__ = [
    "ALL_PORTS",
    "Direction",
    "GroupFacts",
    "ObservedGroup",
    "ObservedRule",
    "RuleKey",
    "canonical_peer",
    "canonical_protocol",
    "peer_kind",
]

import ipaddress
import re
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Literal, TypedDict, Unpack

ALL_PORTS = (0, 65535)

PeerKind = Literal["cidr4", "cidr6", "group", "prefix_list"]

_PROTOCOL_ALIASES: dict[str, str] = {
    "-1": "all",
    "all": "all",
    "tcp": "tcp",
    "6": "tcp",
    "udp": "udp",
    "17": "udp",
    "icmp": "icmp",
    "1": "icmp",
    "icmpv6": "icmpv6",
    "58": "icmpv6",
}
PORTED_PROTOCOLS = frozenset({"tcp", "udp"})
ICMP_PROTOCOLS = frozenset({"icmp", "icmpv6"})

_GROUP_ID = re.compile(r"^sg-[0-9a-f]{8}(?:[0-9a-f]{9})?$")
_CROSS_ACCOUNT_GROUP = re.compile(r"^\d{12}/sg-[0-9a-f]{8}(?:[0-9a-f]{9})?$")
_PREFIX_LIST = re.compile(r"^pl-[0-9a-f]{8}(?:[0-9a-f]{9})?$")


class Direction(StrEnum):
    """Which side of the group a rule guards."""

    INGRESS = "ingress"
    EGRESS = "egress"


def canonical_protocol(value: str | int) -> str:
    """Return the protocol as EC2 names it: tcp, udp, icmp, icmpv6, all, or a number string.

    Raises ValueError for anything that is not a protocol name or a number 0-255.
    """
    text = str(value).strip().lower()
    if text in _PROTOCOL_ALIASES:
        return _PROTOCOL_ALIASES[text]
    if text.isascii() and text.isdigit() and 0 <= int(text) <= 255:
        number = str(int(text))
        return _PROTOCOL_ALIASES.get(number, number)
    raise ValueError(
        f"unknown protocol {value!r} (use tcp, udp, icmp, icmpv6, all, or a number 0-255)"
    )


def peer_kind(peer: str) -> PeerKind:
    """Classify a canonical peer string."""
    if peer.startswith("sg-") or "/sg-" in peer:
        return "group"
    if peer.startswith("pl-"):
        return "prefix_list"
    return "cidr6" if ":" in peer else "cidr4"


def canonical_peer(value: str, *, strict: bool) -> str:
    """Return one peer in canonical form: a network, ``sg-…``, ``account/sg-…`` or ``pl-…``.

    With ``strict``, a CIDR with host bits set is an error (policies); without it the
    network is taken (live rules: EC2 accepted such a CIDR and treats it as the network).
    Raises ValueError with a message that says how to fix the value.
    """
    text = value.strip()
    if (
        _GROUP_ID.fullmatch(text)
        or _PREFIX_LIST.fullmatch(text)
        or _CROSS_ACCOUNT_GROUP.fullmatch(text)
    ):
        return text
    if text.startswith(("sg-", "pl-")) or "/sg-" in text:
        raise ValueError(
            f"{value!r} is not a valid id (expected sg-/pl- followed by 8 or 17 hex digits,"
            " or 123456789012/sg-… for another account's group)"
        )
    if "/" not in text:
        raise ValueError(
            f"{value!r} is not a CIDR, sg-… or pl-… (did you mean {text}/"
            f"{128 if ':' in text else 32}?)"
        )
    try:
        network = ipaddress.ip_network(text, strict=strict)
    except ValueError as exc:
        if strict and "host bits set" in str(exc):
            fixed = ipaddress.ip_network(text, strict=False)
            raise ValueError(f"{value!r} has host bits set (did you mean {fixed}?)") from None
        raise ValueError(f"{value!r} is not a valid CIDR ({exc})") from None
    return network.compressed


@dataclass(frozen=True, slots=True, order=True)
class RuleKey:
    """The identity of one rule: direction, protocol, ports and exactly one peer.

    ``from_port``/``to_port`` are None for protocol ``all`` and for protocols without
    ports; for ICMP they are the type and code, -1 meaning any.
    """

    direction: Direction
    protocol: str
    from_port: int | None
    to_port: int | None
    peer: str

    @classmethod
    def from_ec2(
        cls,
        *,
        direction: Direction,
        protocol: str,
        from_port: int | None,
        to_port: int | None,
        peer: str,
    ) -> RuleKey:
        """Build a key from EC2's wire values (protocol ``-1`` or numbers, ports -1)."""
        proto = canonical_protocol(protocol)
        if proto in PORTED_PROTOCOLS:
            lo = 0 if from_port is None or from_port < 0 else from_port
            hi = 65535 if to_port is None or to_port < 0 else to_port
            ports: tuple[int | None, int | None] = (lo, hi)
        elif proto in ICMP_PROTOCOLS:
            ports = (
                -1 if from_port is None else from_port,
                -1 if to_port is None else to_port,
            )
        else:
            ports = (None, None)
        return cls(direction, proto, ports[0], ports[1], canonical_peer(peer, strict=False))

    @property
    def peer_kind(self) -> PeerKind:
        """What kind of peer this rule names."""
        return peer_kind(self.peer)

    @property
    def ec2_protocol(self) -> str:
        """The protocol as EC2's API takes it (``-1`` for all)."""
        return "-1" if self.protocol == "all" else self.protocol

    def ports_text(self) -> str:
        """Ports for people: ``22``, ``8000-8100``, ``all``, ``type 8 code any``."""
        if self.protocol in ICMP_PROTOCOLS:
            if self.from_port == -1:
                return "all types"
            code = "any" if self.to_port == -1 else str(self.to_port)
            return f"type {self.from_port} code {code}"
        if self.from_port is None:
            return ""
        if (self.from_port, self.to_port) == ALL_PORTS:
            return "all ports"
        if self.from_port == self.to_port:
            return str(self.from_port)
        return f"{self.from_port}-{self.to_port}"

    def describe(self) -> str:
        """One line for people: ``ingress tcp 22 from 0.0.0.0/0``."""
        word = "from" if self.direction is Direction.INGRESS else "to"
        parts = [self.direction.value, self.protocol]
        ports = self.ports_text()
        if ports:
            parts.append(ports)
        parts += [word, self.peer]
        return " ".join(parts)

    def same_rule_as_removed(self, removed: RuleKey) -> bool:
        """Whether EC2's report of a removed rule (a revoke response) names this rule.

        The report names a referenced group without its owner, so ``acct/sg-…`` here and
        ``sg-…`` there are the same peer.
        """
        if self == removed:
            return True
        return (
            removed.peer.startswith("sg-")
            and self.peer.rpartition("/")[2] == removed.peer
            and (self.direction, self.protocol, self.from_port, self.to_port)
            == (removed.direction, removed.protocol, removed.from_port, removed.to_port)
        )


@dataclass(frozen=True, slots=True)
class ObservedRule:
    """A live rule as read from EC2, with its id."""

    rule_id: str
    key: RuleKey
    description: str | None = None


@dataclass(frozen=True, slots=True)
class ObservedGroup:
    """A live security group and all of its rules, as one reader sweep saw it."""

    region: str
    group_id: str
    name: str = ""
    vpc_id: str | None = None
    owner_id: str | None = None
    tags: MappingProxyType[str, str] = field(default_factory=lambda: MappingProxyType({}))
    rules: tuple[ObservedRule, ...] = ()
    account_id: str | None = None

    @classmethod
    def build(
        cls,
        *,
        region: str,
        group_id: str,
        tags: dict[str, str] | None = None,
        **facts: Unpack[GroupFacts],
    ) -> ObservedGroup:
        """Convenience constructor taking a plain dict of tags."""
        return cls(
            region=region, group_id=group_id, tags=MappingProxyType(dict(tags or {})), **facts
        )


class GroupFacts(TypedDict, total=False):
    """The optional facts of an ObservedGroup, as keywords of ``ObservedGroup.build``."""

    rules: tuple[ObservedRule, ...]
    name: str
    vpc_id: str | None
    owner_id: str | None
    account_id: str | None
