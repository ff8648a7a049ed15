"""Frozen policy models: the baseline as data.

A policy file declares, per security group (selected by tags, ids and/or VPC), the exact
rules that may exist. Anything live that the baseline does not allow is drift::

    groups:
      - name: web-prod
        match:
          tags: {Name: prod-sg}
        ingress:
          - protocol: tcp
            ports: 443
            from: [0.0.0.0/0, "::/0"]
            description: public HTTPS
          - protocol: icmp
            icmp_type: 8            # echo request; omit for every type
            from: [10.0.0.0/8]
        egress: unmanaged           # default; or a list of rules with `to:`
        on_drift: revoke            # or report
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_MAX_REVOCATIONS_PER_GROUP",
    "Baseline",
    "EgressRule",
    "FileLimits",
    "GroupLimits",
    "GroupPolicy",
    "IngressRule",
    "Match",
    "PolicyFile",
    "RuleException",
]

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, ClassVar, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from reconciler.core.rules import (
    ICMP_PROTOCOLS,
    PORTED_PROTOCOLS,
    Direction,
    RuleKey,
    canonical_peer,
    canonical_protocol,
)

_FROZEN = ConfigDict(frozen=True, extra="forbid", populate_by_name=False)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_GROUP_ID = re.compile(r"^sg-[0-9a-f]{8}(?:[0-9a-f]{9})?$")
_VPC_ID = re.compile(r"^vpc-[0-9a-f]{8}(?:[0-9a-f]{9})?$")


def _check_port(value: int, text: object) -> int:
    if not 0 <= value <= 65535:
        raise ValueError(f"port {text!r} is out of range (0-65535)")
    return value


def _parse_port_item(item: object) -> tuple[int, int]:
    if isinstance(item, bool):
        raise ValueError(f'{item!r} is not a port (use 443, "8000-8100" or all)')
    if isinstance(item, int):
        port = _check_port(item, item)
        return (port, port)
    if isinstance(item, str):
        text = item.strip().lower()
        if not text.isascii():
            raise ValueError(f'{item!r} is not a port (use 443, "8000-8100" or all)')
        if text == "all":
            return (0, 65535)
        if text.isdigit():
            port = _check_port(int(text), item)
            return (port, port)
        low, sep, high = text.partition("-")
        if sep and low.strip().isdigit() and high.strip().isdigit():
            lo = _check_port(int(low), low.strip())
            hi = _check_port(int(high), high.strip())
            if lo > hi:
                raise ValueError(f"port range {item!r} is reversed (did you mean {hi}-{lo}?)")
            return (lo, hi)
    raise ValueError(f'{item!r} is not a port (use 443, "8000-8100" or all)')


def _parse_ports(value: object) -> tuple[tuple[int, int], ...] | None:
    """Accept 443, "8000-8100", all, or a list of those; return sorted unique ranges."""
    if value is None:
        return None
    items = value if isinstance(value, list | tuple) else [value]
    if not items:
        raise ValueError("ports is an empty list (give at least one port, or all)")
    return tuple(sorted({_parse_port_item(item) for item in items}))


def _as_list(value: object) -> object:
    """Let a single peer be written without brackets."""
    return [value] if isinstance(value, str) else value


def _check_peer(value: str) -> str:
    return canonical_peer(value, strict=True)


# What a person may write (the JSON schema: `sg-reconciler schema`); validators normalise it.
_PEER_INPUT = str | Annotated[list[str], Field(min_length=1)]
_PORT_INPUT = (
    Annotated[int, Field(ge=0, le=65535)]
    | Annotated[str, Field(pattern=r"^\s*(?:[Aa][Ll][Ll]|[0-9]+(?:\s*-\s*[0-9]+)?)\s*$")]
)
_PROTOCOL_INPUT = (
    Annotated[
        str,
        Field(
            pattern=r"^\s*(?:"
            + "|".join(
                "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in name)
                for name in ("tcp", "udp", "icmpv6", "icmp", "all")
            )
            + r"|-1|[0-9]+)\s*$",
            examples=["tcp", "udp", "icmp", "icmpv6", "all"],
        ),
    ]
    | Annotated[int, Field(ge=-1, le=255)]
)

Peer = Annotated[str, AfterValidator(_check_peer)]
Peers = Annotated[
    tuple[Peer, ...],
    BeforeValidator(_as_list, json_schema_input_type=_PEER_INPUT),
    Field(min_length=1),
]
PortRanges = Annotated[
    tuple[tuple[int, int], ...] | None,
    BeforeValidator(
        _parse_ports,
        json_schema_input_type=_PORT_INPUT | Annotated[list[_PORT_INPUT], Field(min_length=1)],
    ),
]


class _RuleSpec(BaseModel):
    """Fields shared by ingress and egress rules."""

    model_config = _FROZEN

    protocol: Annotated[
        str, BeforeValidator(canonical_protocol, json_schema_input_type=_PROTOCOL_INPUT)
    ]
    ports: PortRanges = None
    icmp_type: Annotated[int, Field(ge=-1, le=255)] | None = None
    icmp_code: Annotated[int, Field(ge=-1, le=255)] | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _ports_fit_protocol(self) -> _RuleSpec:
        proto = self.protocol
        if proto in PORTED_PROTOCOLS and self.ports is None:
            raise ValueError(f'protocol {proto} needs ports (443, "8000-8100" or all)')
        if proto not in PORTED_PROTOCOLS and self.ports is not None:
            hint = (
                "use icmp_type/icmp_code"
                if proto in ICMP_PROTOCOLS
                else f"protocol {proto} covers every port; remove ports"
            )
            raise ValueError(f"ports is not allowed with protocol {proto} ({hint})")
        if proto not in ICMP_PROTOCOLS and (self.icmp_type, self.icmp_code) != (None, None):
            raise ValueError(
                f"icmp_type/icmp_code are only allowed with icmp or icmpv6, not {proto}"
            )
        if self.icmp_code is not None and self.icmp_code != -1 and self.icmp_type in (None, -1):
            raise ValueError("icmp_code needs an icmp_type (a code belongs to one type)")
        return self

    def _port_pairs(self) -> Iterator[tuple[int | None, int | None]]:
        if self.protocol in PORTED_PROTOCOLS:
            yield from self.ports or ()
        elif self.protocol in ICMP_PROTOCOLS:
            icmp_type = -1 if self.icmp_type is None else self.icmp_type
            icmp_code = -1 if self.icmp_code is None or icmp_type == -1 else self.icmp_code
            yield (icmp_type, icmp_code)
        else:
            yield (None, None)

    direction: ClassVar[Direction]

    def peers(self) -> tuple[str, ...]:
        """The canonical peers of this entry (``from:`` or ``to:``)."""
        raise NotImplementedError

    def rule_keys(self) -> Iterator[RuleKey]:
        """Every EC2 rule this entry allows: one per port range and peer."""
        for lo, hi in self._port_pairs():
            for peer in self.peers():
                yield RuleKey(self.direction, self.protocol, lo, hi, peer)


class IngressRule(_RuleSpec):
    """One allowed ingress rule; it expands to one EC2 rule per port range and source.

    ```yaml
    - protocol: tcp
      ports: "8000-8100"
      from: [10.0.0.0/8, sg-0123456789abcdef0, pl-0123456789abcdef0]
    ```
    """

    direction: ClassVar[Direction] = Direction.INGRESS
    from_: Peers = Field(alias="from")

    def peers(self) -> tuple[str, ...]:
        """The ``from:`` list."""
        return self.from_


class EgressRule(_RuleSpec):
    """One allowed egress rule; like ingress, with the peer under ``to:``.

    ```yaml
    - protocol: all
      to: [0.0.0.0/0]      # the default allow-all egress rule
    ```
    """

    direction: ClassVar[Direction] = Direction.EGRESS
    to: Peers

    def peers(self) -> tuple[str, ...]:
        """The ``to:`` list."""
        return self.to


def _tag_map(value: object) -> object:
    if isinstance(value, Mapping):
        for key, val in value.items():
            if not isinstance(val, str):
                raise ValueError(
                    f"tag {key!r} has value {val!r}, which is not a string (quote it in YAML)"
                )
    return value


def _check_group_id(value: str) -> str:
    if not _GROUP_ID.fullmatch(value):
        raise ValueError(f"{value!r} is not a security group id (sg- and 8 or 17 hex digits)")
    return value


def _check_vpc_id(value: str) -> str:
    if not _VPC_ID.fullmatch(value):
        raise ValueError(f"{value!r} is not a VPC id (vpc- and 8 or 17 hex digits)")
    return value


class Match(BaseModel):
    """Which live groups a policy governs; every given key must hold.

    ```yaml
    match:
      tags: {Name: prod-sg, team: web}
      vpc_id: vpc-0abc1234
    ```
    """

    model_config = ConfigDict(**_FROZEN, json_schema_extra={"minProperties": 1})

    tags: Annotated[dict[str, str], BeforeValidator(_tag_map)] | None = None
    group_ids: (
        Annotated[
            tuple[
                Annotated[
                    str,
                    AfterValidator(_check_group_id),
                    Field(json_schema_extra={"pattern": _GROUP_ID.pattern}),
                ],
                ...,
            ],
            Field(min_length=1),
        ]
        | None
    ) = None
    vpc_id: (
        Annotated[
            str,
            AfterValidator(_check_vpc_id),
            Field(json_schema_extra={"pattern": _VPC_ID.pattern}),
        ]
        | None
    ) = None

    @model_validator(mode="after")
    def _not_empty(self) -> Match:
        if not self.tags and not self.group_ids and self.vpc_id is None:
            raise ValueError(
                "match needs at least one of tags, group_ids or vpc_id (an empty match"
                " would govern every group)"
            )
        return self

    def holds_for(self, *, group_id: str, tags: Mapping[str, str], vpc_id: str | None) -> bool:
        """True when a live group with these facts is selected."""
        if self.group_ids is not None and group_id not in self.group_ids:
            return False
        if self.vpc_id is not None and vpc_id != self.vpc_id:
            return False
        return not self.tags or all(tags.get(k) == v for k, v in self.tags.items())


def _egress_value(value: object) -> object:
    if value is None or value == "unmanaged":
        return None
    if isinstance(value, str):
        raise ValueError(f"egress must be a list of rules or 'unmanaged', not {value!r}")
    return value


DEFAULT_MAX_REVOCATIONS_PER_GROUP = 25


class GroupLimits(BaseModel):
    """Blast-radius limit of one group; over it, the group is not touched.

    ```yaml
    limits:
      max_revocations_per_group: 10    # default 25
    ```
    """

    model_config = _FROZEN

    max_revocations_per_group: Annotated[int, Field(ge=1, strict=True)] | None = None


class FileLimits(GroupLimits):
    """Limits for every group in one file; ``max_revocations_per_run`` counts across them.

    ```yaml
    limits:
      max_revocations_per_group: 25
      max_revocations_per_run: 100     # opt in: no default
    groups: [...]
    ```
    """

    max_revocations_per_run: Annotated[int, Field(ge=1, strict=True)] | None = None


def _time_not_number(value: object) -> object:
    """Refuse numbers: pydantic would read ``expires: 20261231`` as seconds since 1970."""
    text = str(value).strip() if isinstance(value, int | float | str) else ""
    if not isinstance(value, bool) and text.lstrip("-").replace(".", "", 1).isdigit():
        raise ValueError(
            f"expires must be a time with a timezone, e.g. 2026-12-31T00:00:00Z, not {value!r}"
        )
    return value


class RuleException(_RuleSpec):
    """A live rule kept for a limited time, outside the baseline.

    ```yaml
    exceptions:
      - protocol: tcp
        ports: 8080
        from: 203.0.113.7/32
        expires: 2026-12-31T00:00:00Z          # required, with a timezone
        reason: vendor debugging, ticket OPS-1234   # required
    ```
    Use ``to:`` instead of ``from:`` for an egress exception.
    """

    direction: ClassVar[Direction] = Direction.INGRESS
    from_: (
        Annotated[tuple[Peer, ...], BeforeValidator(_as_list, json_schema_input_type=_PEER_INPUT)]
        | None
    ) = Field(default=None, alias="from")
    to: (
        Annotated[tuple[Peer, ...], BeforeValidator(_as_list, json_schema_input_type=_PEER_INPUT)]
        | None
    ) = None
    expires: Annotated[AwareDatetime, BeforeValidator(_time_not_number)]
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]

    @model_validator(mode="after")
    def _one_peer_list(self) -> RuleException:
        if (self.from_ is None) == (self.to is None):
            raise ValueError("an exception needs exactly one of from: (ingress) or to: (egress)")
        return self

    def peers(self) -> tuple[str, ...]:
        """The ``from:`` or ``to:`` list."""
        return self.from_ or self.to or ()

    def rule_keys(self) -> Iterator[RuleKey]:
        """Every EC2 rule this exception keeps."""
        direction = Direction.INGRESS if self.from_ is not None else Direction.EGRESS
        for lo, hi in self._port_pairs():
            for peer in self.peers():
                yield RuleKey(direction, self.protocol, lo, hi, peer)


def _check_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid policy name (letters, digits, '.', '_', '-'; at most 128)"
        )
    return value


class GroupPolicy(BaseModel):
    """The baseline of the groups one selector matches.

    ```yaml
    - name: web-prod
      match: {tags: {Name: prod-sg}}
      ingress:
        - {protocol: tcp, ports: 443, from: [0.0.0.0/0, "::/0"]}
      on_drift: revoke
    ```
    """

    model_config = _FROZEN

    name: Annotated[
        str, AfterValidator(_check_name), Field(json_schema_extra={"pattern": _NAME.pattern})
    ]
    description: str | None = None
    match: Match
    ingress: tuple[IngressRule, ...]
    egress: Annotated[
        tuple[EgressRule, ...] | None,
        BeforeValidator(
            _egress_value,
            json_schema_input_type=Literal["unmanaged"] | list[EgressRule] | None,
        ),
    ] = None
    on_drift: Literal["revoke", "report"] = "revoke"
    limits: GroupLimits | None = None
    exceptions: tuple[RuleException, ...] = ()
    allow_empty: Annotated[bool, Field(strict=True)] = False
    restore_missing: Annotated[bool, Field(strict=True)] = False

    def max_revocations_per_group(self) -> int:
        """This group's limit (its own, else its file's, else 25)."""
        if self.limits is not None and self.limits.max_revocations_per_group is not None:
            return self.limits.max_revocations_per_group
        return DEFAULT_MAX_REVOCATIONS_PER_GROUP

    def active_exceptions(self, now: datetime | None) -> dict[RuleKey, RuleException]:
        """Rule keys kept by an exception that has not expired at ``now``.

        Without a clock (``now`` None) every exception counts: the safe side is to keep.
        """
        out: dict[RuleKey, RuleException] = {}
        for exception in self.exceptions:
            if now is None or exception.expires > now:
                for key in exception.rule_keys():
                    out.setdefault(key, exception)
        return out

    def expired_exceptions(self, now: datetime | None) -> dict[RuleKey, RuleException]:
        """Rule keys whose every exception has expired at ``now``."""
        if now is None:
            return {}
        active = self.active_exceptions(now)
        return {
            key: exception
            for exception in self.exceptions
            if exception.expires <= now
            for key in exception.rule_keys()
            if key not in active
        }

    def managed_directions(self) -> tuple[Direction, ...]:
        """Ingress always; egress only when the policy lists egress rules."""
        if self.egress is None:
            return (Direction.INGRESS,)
        return (Direction.INGRESS, Direction.EGRESS)

    def desired(self) -> frozenset[RuleKey]:
        """Every rule key this policy allows, both directions."""
        keys: set[RuleKey] = set()
        for rule in self.rules():
            keys.update(rule.rule_keys())
        return frozenset(keys)

    def rules(self) -> tuple[_RuleSpec, ...]:
        """Ingress entries, then egress entries when egress is managed."""
        return (*self.ingress, *(self.egress or ()))

    def descriptions(self) -> dict[RuleKey, str | None]:
        """The baseline description of each allowed rule (for reports and restores)."""
        out: dict[RuleKey, str | None] = {}
        for rule in self.rules():
            for key in rule.rule_keys():
                out.setdefault(key, rule.description)
        return out


class PolicyFile(BaseModel):
    """One ``policies/*.yaml`` file.

    ```yaml
    groups:
      - name: web-prod
        match: {tags: {Name: prod-sg}}
        ingress: [{protocol: tcp, ports: 443, from: 0.0.0.0/0}]
    ```
    """

    model_config = _FROZEN

    limits: FileLimits | None = None
    groups: Annotated[tuple[GroupPolicy, ...], Field(min_length=1)]

    def effective_groups(self) -> tuple[GroupPolicy, ...]:
        """The groups with the file's per-group limit applied where they set none."""
        file_limit = self.limits.max_revocations_per_group if self.limits else None
        if file_limit is None:
            return self.groups
        inherited = GroupLimits(max_revocations_per_group=file_limit)
        return tuple(
            group
            if group.limits is not None and group.limits.max_revocations_per_group is not None
            else group.model_copy(update={"limits": inherited})
            for group in self.groups
        )


@dataclass(frozen=True, slots=True)
class Baseline:
    """Every policy from every file, names unique; ``sources`` maps a name to its file."""

    policies: tuple[GroupPolicy, ...]
    sources: Mapping[str, str] = field(default_factory=dict)
    run_limits: Mapping[str, int] = field(default_factory=dict)
    locations: Mapping[tuple[str, str, int], int] = field(default_factory=dict)

    def run_limit_of(self, policy: str) -> tuple[str, int] | None:
        """(file, max_revocations_per_run) that governs this policy's groups, if any."""
        source = self.sources.get(policy)
        if source is None or source not in self.run_limits:
            return None
        return source, self.run_limits[source]

    def expiring_exceptions(
        self, now: datetime, within: timedelta
    ) -> list[tuple[GroupPolicy, int, RuleException]]:
        """Exceptions still valid at ``now`` that expire within ``within``."""
        return [
            (policy, index, exception)
            for policy in self.policies
            for index, exception in enumerate(policy.exceptions)
            if now < exception.expires <= now + within
        ]

    def inert_exceptions(self) -> list[tuple[GroupPolicy, int, RuleException]]:
        """Egress exceptions (``to:``) of policies that leave egress unmanaged: no effect."""
        return [
            (policy, index, exception)
            for policy in self.policies
            for index, exception in enumerate(policy.exceptions)
            if exception.to is not None and policy.egress is None
        ]

    def by_name(self, name: str) -> GroupPolicy:
        """The policy with this name (KeyError if none)."""
        for policy in self.policies:
            if policy.name == name:
                return policy
        raise KeyError(name)

    def uses_only_tag_selectors(self) -> bool:
        """True when every policy selects by tag (lets the deploy role use tag conditions)."""
        return all(p.match.tags for p in self.policies)
