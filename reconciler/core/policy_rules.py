"""Policy rule models: ``ingress:`` and ``egress:`` entries, their ports, protocols and peers.

Shared by the group policy (reconciler.core.policy) and its exceptions; import the models from
reconciler.core.policy.
"""

from __future__ import annotations

__all__ = [
    "FROZEN",
    "NAME_PATTERN",
    "PEER_INPUT",
    "PROTOCOL_INPUT",
    "EgressRule",
    "IngressRule",
    "Peer",
    "Peers",
    "PortRanges",
    "RuleSpec",
    "TrafficSpec",
    "as_peer_list",
    "check_name",
]

import re
from collections.abc import Iterator
from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from reconciler.core.patterns import RulePattern
from reconciler.core.peers import expand_peer_list
from reconciler.core.rules import (
    ICMP_PROTOCOLS,
    PORTED_PROTOCOLS,
    Direction,
    RuleKey,
    canonical_peer,
    canonical_protocol,
)

FROZEN = ConfigDict(frozen=True, extra="forbid", populate_by_name=False)
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_name(value: str) -> str:
    """A policy's or guardrail's name: letters, digits, '.', '_', '-'; at most 128."""
    if not NAME_PATTERN.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid policy name (letters, digits, '.', '_', '-'; at most 128)"
        )
    return value


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


def as_peer_list(value: object) -> object:
    """Let a single peer be written without brackets."""
    return [value] if isinstance(value, str) else value


def _check_peer(value: str) -> str:
    return canonical_peer(value, strict=True)


# What a person may write (the JSON schema: `sg-reconciler schema`); validators normalise it.
PEER_INPUT = str | Annotated[list[str], Field(min_length=1)]
_PORT_INPUT = (
    Annotated[int, Field(ge=0, le=65535)]
    | Annotated[str, Field(pattern=r"^\s*(?:[Aa][Ll][Ll]|[0-9]+(?:\s*-\s*[0-9]+)?)\s*$")]
)
PROTOCOL_INPUT = (
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
    BeforeValidator(expand_peer_list, json_schema_input_type=PEER_INPUT),
    Field(min_length=1),
]
PortRanges = Annotated[
    tuple[tuple[int, int], ...] | None,
    BeforeValidator(
        _parse_ports,
        json_schema_input_type=_PORT_INPUT | Annotated[list[_PORT_INPUT], Field(min_length=1)],
    ),
]


class TrafficSpec(BaseModel):
    """Protocol, ports and ICMP type/code: what a rule, exception or guardrail entry covers."""

    model_config = FROZEN

    protocol: Annotated[
        str, BeforeValidator(canonical_protocol, json_schema_input_type=PROTOCOL_INPUT)
    ]
    ports: PortRanges = None
    icmp_type: Annotated[int, Field(ge=-1, le=255)] | None = None
    icmp_code: Annotated[int, Field(ge=-1, le=255)] | None = None


class RuleSpec(TrafficSpec):
    """Fields shared by ingress and egress rules."""

    description: str | None = None

    @model_validator(mode="after")
    def _ports_fit_protocol(self) -> RuleSpec:
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


class _BaselineRule(RuleSpec):
    """A baseline entry: exact by default; ``within: true`` allows any rule contained in it."""

    within: Annotated[bool, Field(strict=True)] = False

    def pattern(self) -> RulePattern:
        """This entry as a pattern (for ``within: true``)."""
        icmp = next(iter(self._port_pairs())) if self.protocol in ICMP_PROTOCOLS else (-1, -1)
        return RulePattern(
            self.direction,
            self.protocol,
            self.ports,
            (icmp[0] if icmp[0] is not None else -1, icmp[1] if icmp[1] is not None else -1),
            self.peers(),
        )


class IngressRule(_BaselineRule):
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


class EgressRule(_BaselineRule):
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
