"""Rule exceptions: a live rule kept for a limited time, outside the baseline."""

from __future__ import annotations

__all__ = ["RuleException"]

from collections.abc import Iterator
from typing import Annotated, ClassVar

from pydantic import AwareDatetime, BeforeValidator, Field, StringConstraints, model_validator

from reconciler.core.peers import expand_peer_list
from reconciler.core.policy_rules import PEER_INPUT, Peer, RuleSpec
from reconciler.core.rules import Direction, RuleKey


def _time_not_number(value: object) -> object:
    """Refuse numbers: pydantic would read ``expires: 20261231`` as seconds since 1970."""
    text = str(value).strip() if isinstance(value, int | float | str) else ""
    if not isinstance(value, bool) and text.lstrip("-").replace(".", "", 1).isdigit():
        raise ValueError(
            f"expires must be a time with a timezone, e.g. 2026-12-31T00:00:00Z, not {value!r}"
        )
    return value


class RuleException(RuleSpec):
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
        Annotated[
            tuple[Peer, ...], BeforeValidator(expand_peer_list, json_schema_input_type=PEER_INPUT)
        ]
        | None
    ) = Field(default=None, alias="from")
    to: (
        Annotated[
            tuple[Peer, ...], BeforeValidator(expand_peer_list, json_schema_input_type=PEER_INPUT)
        ]
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
