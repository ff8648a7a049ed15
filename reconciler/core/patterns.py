"""Rule patterns: does a live rule *overlap* a pattern, is it *contained* in one. Pure.

A pattern is a guardrail's deny or allow entry, or a baseline rule with ``within: true``.

- Overlap: the protocols intersect (``all`` overlaps everything), the port ranges intersect
  (ICMP by type and code, -1 meaning any; protocol ``all`` covers every port), and the peers
  intersect (CIDRs overlap; a group only equals itself; a prefix list is its entries).
- Contained: the protocol is equal (or the pattern's is ``all``), the port range lies within
  one range of the pattern, and every address of the peer lies within one pattern peer (a
  prefix list: every entry within).

A prefix list whose entries are not known raises ``UnknownPrefixList``: the caller must not
guess either way.
"""

from __future__ import annotations

__all__ = ["PrefixEntries", "RulePattern", "UnknownPrefixList", "contains", "overlaps"]

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from reconciler.core.rules import ICMP_PROTOCOLS, PORTED_PROTOCOLS, Direction, RuleKey, peer_kind

PrefixEntries = Mapping[str, tuple[str, ...]]  # pl-… -> the CIDRs it holds now

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Atom = _Network | str  # a network, or a group id (groups only equal themselves)


class UnknownPrefixList(Exception):
    """A rule or pattern names a prefix list whose entries were not read."""

    def __init__(self, prefix_list_id: str) -> None:
        self.prefix_list_id = prefix_list_id
        super().__init__(prefix_list_id)


@dataclass(frozen=True, slots=True)
class RulePattern:
    """A set of rules: protocol, port ranges (None: every port), ICMP type/code, peers."""

    direction: Direction
    protocol: str
    ports: tuple[tuple[int, int], ...] | None
    icmp: tuple[int, int]
    peers: tuple[str, ...]

    def describe(self) -> str:
        """``tcp 80,443 from 0.0.0.0/0, ::/0`` for reasons."""
        word = "from" if self.direction is Direction.INGRESS else "to"
        parts = [self.protocol]
        if self.protocol in PORTED_PROTOCOLS and self.ports is not None:
            parts.append(",".join(str(a) if a == b else f"{a}-{b}" for a, b in self.ports))
        elif self.protocol in ICMP_PROTOCOLS and self.icmp[0] != -1:
            parts.append(f"type {self.icmp[0]}")
        peers = ", ".join(self.peers[:4]) + (" …" if len(self.peers) > 4 else "")
        return " ".join([*parts, word, peers])


@lru_cache(maxsize=4096)
def _network(peer: str) -> _Network:
    return ipaddress.ip_network(peer, strict=False)


def _atoms(peer: str, entries: PrefixEntries) -> tuple[_Atom, ...]:
    kind = peer_kind(peer)
    if kind == "group":
        return (peer.rpartition("/")[2],)
    if kind == "prefix_list":
        if peer not in entries:
            raise UnknownPrefixList(peer)
        return tuple(_network(cidr) for cidr in entries[peer])
    return (_network(peer),)


def _atoms_overlap(a: _Atom, b: _Atom) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return a.version == b.version and a.overlaps(b)


def _atom_within(a: _Atom, b: _Atom) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return a.version == b.version and a.subnet_of(b)  # type: ignore[arg-type]


def _port_range(rule: RuleKey) -> tuple[int, int]:
    return rule.from_port or 0, rule.to_port if rule.to_port is not None else 65535


def _ports_overlap(rule: RuleKey, pattern: RulePattern) -> bool:
    if "all" in (rule.protocol, pattern.protocol):
        return True
    if rule.protocol != pattern.protocol:
        return False
    if rule.protocol in PORTED_PROTOCOLS:
        if pattern.ports is None:
            return True
        lo, hi = _port_range(rule)
        return any(a <= hi and lo <= b for a, b in pattern.ports)
    if rule.protocol in ICMP_PROTOCOLS:
        rule_type, rule_code = rule.from_port, rule.to_port
        pattern_type, pattern_code = pattern.icmp
        if -1 in (rule_type, pattern_type):
            return True
        return rule_type == pattern_type and (
            -1 in (rule_code, pattern_code) or rule_code == pattern_code
        )
    return True


def _ports_within(rule: RuleKey, pattern: RulePattern) -> bool:
    if pattern.protocol == "all":
        return True
    if rule.protocol != pattern.protocol:
        return False
    if rule.protocol in PORTED_PROTOCOLS:
        if pattern.ports is None:
            return True
        lo, hi = _port_range(rule)
        return any(a <= lo and hi <= b for a, b in pattern.ports)
    if rule.protocol in ICMP_PROTOCOLS:
        pattern_type, pattern_code = pattern.icmp
        if pattern_type == -1:
            return True
        return rule.from_port == pattern_type and pattern_code in (-1, rule.to_port)
    return True


def overlaps(rule: RuleKey, pattern: RulePattern, entries: PrefixEntries) -> bool:
    """True when some traffic ``rule`` allows is also in ``pattern`` (same direction)."""
    if rule.direction is not pattern.direction or not _ports_overlap(rule, pattern):
        return False
    mine = _atoms(rule.peer, entries)
    return any(
        _atoms_overlap(a, b) for peer in pattern.peers for b in _atoms(peer, entries) for a in mine
    )


def contains(pattern: RulePattern, rule: RuleKey, entries: PrefixEntries) -> bool:
    """True when all traffic ``rule`` allows is in ``pattern`` (same direction)."""
    if rule.direction is not pattern.direction or not _ports_within(rule, pattern):
        return False
    if rule.peer in pattern.peers:
        return True
    theirs = [b for peer in pattern.peers for b in _atoms(peer, entries)]
    return all(any(_atom_within(a, b) for b in theirs) for a in _atoms(rule.peer, entries))
