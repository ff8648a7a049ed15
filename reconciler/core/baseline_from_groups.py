"""Live groups -> baseline policies and their YAML text (pure; ``sg-reconciler import``).

Each live rule is one EC2 rule (one peer); rules that differ only in their peer are merged
back into one entry with a ``from:`` (or ``to:``) list. Ports are never merged across
entries: an entry is one protocol, one port range (or ICMP type/code) and one description.
The YAML is written here, without a YAML library (the core cannot import one), with every
string that could be read as something else double-quoted.
"""

from __future__ import annotations

__all__ = [
    "ImportResult",
    "ImportedPolicy",
    "RuleEntry",
    "Selector",
    "import_baseline",
    "merge_rules",
    "policy_name",
    "render_baseline",
    "yaml_scalar",
]

import ipaddress
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from reconciler.core.rules import (
    ALL_PORTS,
    ICMP_PROTOCOLS,
    PORTED_PROTOCOLS,
    Direction,
    ObservedGroup,
    ObservedRule,
    peer_kind,
)

_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
_NAME_MAX = 128


@dataclass(frozen=True, slots=True, order=True)
class RuleEntry:
    """One policy rule entry: protocol, ports (or ICMP type/code), description, peers."""

    direction: Direction
    protocol: str
    from_port: int | None
    to_port: int | None
    description: str | None
    peers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Selector:
    """What a per-selector policy matches: tags (all must hold) or a VPC."""

    tags: tuple[tuple[str, str], ...] = ()
    vpc_id: str | None = None

    def holds_for(self, group: ObservedGroup) -> bool:
        """True when the live group is selected."""
        if self.vpc_id is not None and group.vpc_id != self.vpc_id:
            return False
        return all(group.tags.get(key) == value for key, value in self.tags)

    def describe(self) -> str:
        """``tag Role=web`` or ``vpc vpc-…`` for messages."""
        if self.tags:
            return "tag " + ", ".join(f"{k}={v}" for k, v in self.tags)
        return f"vpc {self.vpc_id}"

    def base_name(self) -> str:
        """The policy name this selector suggests: its tag values, or the VPC id."""
        if self.tags:
            return "-".join(value or key for key, value in self.tags)
        return self.vpc_id or "vpc"


@dataclass(frozen=True, slots=True)
class ImportedPolicy:
    """One policy to write: its name, selector, the groups it stands for, its rules."""

    name: str
    groups: tuple[tuple[str, str], ...]  # (group name, group id), for the comment lines
    ingress: tuple[RuleEntry, ...]
    egress: tuple[RuleEntry, ...] | None
    selector: Selector | None = None  # None: match the group ids

    @property
    def group_ids(self) -> tuple[str, ...]:
        """The ids of the groups this policy was made from."""
        return tuple(group_id for _, group_id in self.groups)


@dataclass(frozen=True, slots=True)
class ImportResult:
    """The policies to write and what a person should know about them (one line each)."""

    policies: tuple[ImportedPolicy, ...]
    notes: tuple[str, ...] = ()


_PROTOCOL_RANK = {"tcp": 0, "udp": 1, "icmp": 2, "icmpv6": 3, "all": 4}
_PEER_RANK = {"cidr4": 0, "cidr6": 1, "group": 2, "prefix_list": 3}


def _peer_order(peer: str) -> tuple[int, int, int, str]:
    kind = peer_kind(peer)
    if kind in ("cidr4", "cidr6"):
        network = ipaddress.ip_network(peer, strict=False)
        return (_PEER_RANK[kind], int(network.network_address), network.prefixlen, peer)
    return (_PEER_RANK[kind], 0, 0, peer)


def _entry_order(entry: RuleEntry) -> tuple[object, ...]:
    proto = entry.protocol
    rank = _PROTOCOL_RANK.get(proto, 5)
    number = int(proto) if proto.isdigit() else 0
    lo = -2 if entry.from_port is None else entry.from_port
    hi = -2 if entry.to_port is None else entry.to_port
    return (rank, number, lo, hi, entry.description or "", [_peer_order(p) for p in entry.peers])


def merge_rules(rules: Iterable[ObservedRule], direction: Direction) -> tuple[RuleEntry, ...]:
    """The live rules of one direction as policy entries, merged by peer, sorted.

    Rules with the same protocol, port range (or ICMP type and code) and description
    become one entry listing every peer; nothing else is merged.
    """
    peers: dict[tuple[str, int | None, int | None, str | None], set[str]] = defaultdict(set)
    for rule in rules:
        key = rule.key
        if key.direction is direction:
            peers[(key.protocol, key.from_port, key.to_port, rule.description)].add(key.peer)
    entries = [
        RuleEntry(direction, proto, lo, hi, description, tuple(sorted(found, key=_peer_order)))
        for (proto, lo, hi, description), found in peers.items()
    ]
    return tuple(sorted(entries, key=_entry_order))


def policy_name(text: str, fallback: str) -> str:
    """``text`` made a valid policy name (letters, digits, ``._-``; at most 128)."""
    name = _NAME_CHARS.sub("-", text).strip("-_.")
    name = re.sub(r"-{2,}", "-", name)[:_NAME_MAX].rstrip("-_.")
    if not name:
        name = _NAME_CHARS.sub("-", fallback).strip("-_.")[:_NAME_MAX] or "imported"
    return name


def _unique(names: Sequence[str]) -> list[str]:
    """The names, each made unique by ``-2``, ``-3``… in order (first come keeps its name)."""
    taken: set[str] = set()
    out = []
    for name in names:
        candidate, number = name, 1
        while candidate in taken:
            number += 1
            suffix = f"-{number}"
            candidate = name[: _NAME_MAX - len(suffix)] + suffix
        taken.add(candidate)
        out.append(candidate)
    return out


def _rules_of(group: ObservedGroup, egress: bool) -> tuple[tuple[RuleEntry, ...], ...]:
    ingress = merge_rules(group.rules, Direction.INGRESS)
    return (ingress, merge_rules(group.rules, Direction.EGRESS)) if egress else (ingress,)


def import_baseline(
    groups: Iterable[ObservedGroup],
    *,
    name: str | None = None,
    egress: bool = False,
    selectors: Sequence[Selector] = (),
) -> ImportResult:
    """One policy per live group, or with ``selectors`` one per selector whose groups agree.

    A selector's groups agree when their rules (and descriptions) are identical in every
    managed direction, and no group is selected by another selector too. Otherwise the
    notes say why, and those groups get one policy each (matched by group id). ``name``
    is the policy name when one policy results, else the prefix of every name.
    """
    ordered = sorted(groups, key=lambda g: (g.name, g.group_id))
    notes: list[str] = []
    drafts: list[tuple[str, ImportedPolicy]] = []  # (base name, policy without its name)
    per_group = list(ordered)
    if selectors:
        chosen = _selector_policies(ordered, selectors, egress, notes)
        taken = {gid for policy in chosen for gid in policy.group_ids}
        per_group = [g for g in ordered if g.group_id not in taken]
        drafts += [(p.selector.base_name() if p.selector else "", p) for p in chosen]
    for group in per_group:
        rules = _rules_of(group, egress)
        drafts.append(
            (
                group.name or group.group_id,
                ImportedPolicy(
                    name="",
                    groups=((group.name, group.group_id),),
                    ingress=rules[0],
                    egress=rules[1] if egress else None,
                ),
            )
        )
    if name is not None and len(drafts) == 1:
        bases = [name]
    elif name is not None:
        bases = [f"{name}-{base}" for base, _ in drafts]
    else:
        bases = [base for base, _ in drafts]
    policies = [draft for _, draft in drafts]
    names = _unique([policy_name(b, p.group_ids[0]) for b, p in zip(bases, policies, strict=True)])
    named = (_named(p, n) for p, n in zip(policies, names, strict=True))
    return ImportResult(tuple(sorted(named, key=lambda p: p.name)), tuple(notes))


def _named(policy: ImportedPolicy, name: str) -> ImportedPolicy:
    return ImportedPolicy(name, policy.groups, policy.ingress, policy.egress, policy.selector)


def _selector_policies(
    groups: Sequence[ObservedGroup],
    selectors: Sequence[Selector],
    egress: bool,
    notes: list[str],
) -> list[ImportedPolicy]:
    """One policy per selector whose groups agree; a note for each one that does not."""
    members = {s: [g for g in groups if s.holds_for(g)] for s in selectors}
    selected_by: dict[str, list[Selector]] = defaultdict(list)
    for selector, found in members.items():
        for group in found:
            selected_by[group.group_id].append(selector)
    out: list[ImportedPolicy] = []
    for selector, found in members.items():
        if not found:
            continue
        shared = next((g for g in found if len(selected_by[g.group_id]) > 1), None)
        if shared is not None:
            others = ", ".join(s.describe() for s in selected_by[shared.group_id] if s != selector)
            notes.append(
                f"{selector.describe()}: group {shared.name} ({shared.group_id}) is also"
                f" selected by {others}; writing one policy per group instead"
            )
            continue
        first, rules = found[0], _rules_of(found[0], egress)
        differs = next((g for g in found[1:] if _rules_of(g, egress) != rules), None)
        if differs is not None:
            notes.append(
                f"{selector.describe()}: groups {first.name} ({first.group_id}) and"
                f" {differs.name} ({differs.group_id}) have different rules; writing one"
                " policy per group instead"
            )
            continue
        out.append(
            ImportedPolicy(
                name="",
                groups=tuple((g.name, g.group_id) for g in found),
                ingress=rules[0],
                egress=rules[1] if egress else None,
                selector=selector,
            )
        )
    return out


# --- YAML text ------------------------------------------------------------------------------

# Letters first, single inner spaces: no indicator (`: `, ` #`, `,`, brackets) can appear.
_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_./()-]*(?: [A-Za-z0-9_./()-]+)*")
_PLAIN_CIDR4 = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}/[0-9]{1,2}")
_PLAIN_ACCOUNT_GROUP = re.compile(r"[0-9]{12}/sg-[0-9a-f]+")
# Words YAML 1.1 (PyYAML) or 1.2 (editors) read as booleans or null.
_RESERVED = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}


def _printable(char: str) -> bool:
    """Characters YAML lets stand for themselves inside double quotes (no line breaks)."""
    code = ord(char)
    return (
        0x20 <= code <= 0x7E
        or 0xA0 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    ) and char not in "\u2028\u2029\ufeff"


def _escape(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    if _printable(char):
        return char
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def yaml_scalar(value: str | int) -> str:
    """A YAML scalar that reads back as exactly ``value`` (plain when unambiguous)."""
    if isinstance(value, int):
        return str(value)
    # fullmatch, not match + "$": "$" also matches before a trailing newline.
    plain = (
        (_PLAIN.fullmatch(value) and value.lower() not in _RESERVED)
        or _PLAIN_CIDR4.fullmatch(value)
        or _PLAIN_ACCOUNT_GROUP.fullmatch(value)
    )
    if plain:
        return value
    return '"' + "".join(_escape(c) for c in value) + '"'


def _comment(text: str) -> str:
    """Text safe on one comment line."""
    return "".join(c if _printable(c) else " " for c in text)


def _ports(entry: RuleEntry) -> list[str]:
    if entry.protocol in PORTED_PROTOCOLS and entry.from_port is not None:
        lo, hi = entry.from_port, entry.to_port
        if (lo, hi) == ALL_PORTS:
            return ["ports: all"]
        return [f"ports: {lo}" if lo == hi else f'ports: "{lo}-{hi}"']
    if entry.protocol in ICMP_PROTOCOLS and entry.from_port not in (None, -1):
        lines = [f"icmp_type: {entry.from_port}"]
        if entry.to_port not in (None, -1):
            lines.append(f"icmp_code: {entry.to_port}")
        return lines
    return []


def _protocol(protocol: str) -> str:
    # Numbers as strings: the JSON schema (and editors) expect a protocol name or string.
    return f'"{protocol}"' if protocol.isdigit() else protocol


def _entry_lines(entry: RuleEntry) -> list[str]:
    word = "from" if entry.direction is Direction.INGRESS else "to"
    body = [
        f"protocol: {_protocol(entry.protocol)}",
        *_ports(entry),
        f"{word}: [{', '.join(yaml_scalar(p) for p in entry.peers)}]",
    ]
    if entry.description is not None:
        body.append(f"description: {yaml_scalar(entry.description)}")
    return [f"      - {body[0]}", *(f"        {line}" for line in body[1:])]


def _rules_block(word: str, entries: tuple[RuleEntry, ...]) -> list[str]:
    if not entries:
        return [f"    {word}: []"]
    return [f"    {word}:", *(line for entry in entries for line in _entry_lines(entry))]


def _match_lines(policy: ImportedPolicy) -> list[str]:
    selector = policy.selector
    if selector is None:
        return [f"      group_ids: [{', '.join(policy.group_ids)}]"]
    if selector.tags:
        pairs = ", ".join(f"{yaml_scalar(k)}: {yaml_scalar(v)}" for k, v in selector.tags)
        return [f"      tags: {{{pairs}}}"]
    return [f"      vpc_id: {selector.vpc_id}"]


def render_baseline(result: ImportResult, *, header: Sequence[str] = ()) -> str:
    """The policy file text: header comments, then each policy under a comment naming its
    groups (``# name (sg-…)``), blank lines between policies."""
    lines = [f"# {_comment(line)}" for line in header]
    lines.append("groups:")
    for index, policy in enumerate(result.policies):
        if index:
            lines.append("")
        lines += [f"  # {_comment(name or '(no name)')} ({gid})" for name, gid in policy.groups]
        lines += [f"  - name: {yaml_scalar(policy.name)}", "    match:", *_match_lines(policy)]
        lines += _rules_block("ingress", policy.ingress)
        if policy.egress is not None:
            lines += _rules_block("egress", policy.egress)
    return "\n".join(lines) + "\n"
