"""Guardrails: one rule for the whole fleet, a floor under every baseline.

```yaml
guardrails:
  - name: no-internet-except-web
    description: only HTTP(S) may be reached from the internet
    match: {tags: {env: prod}}          # optional: omitted, every group of the run's regions
    exclude: {tags: {elbv2.k8s.aws/cluster: prod}}   # optional: never evaluated
    deny:                               # a live rule violates when it overlaps a deny entry
      - {protocol: all, from: internet}
    allow:                              # ...and is not contained in any single allow entry
      - {protocol: tcp, ports: [80, 443], from: internet}
      - {protocol: all, from: $private}
    on_violation: revoke                # or report
    exceptions: []                      # as in policies, optionally with group_ids
    limits: {max_revocations_per_run: 50}
```
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_GUARDRAIL_REVOCATIONS_PER_RUN",
    "GuardEntry",
    "GuardException",
    "GuardLimits",
    "Guardrail",
]

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, model_validator

from reconciler.core.patterns import PrefixEntries, RulePattern, contains, overlaps
from reconciler.core.policy_exceptions import RuleException
from reconciler.core.policy_rules import (
    FROZEN,
    NAME_PATTERN,
    Peers,
    TrafficSpec,
    check_name,
)
from reconciler.core.policy_selectors import GroupIds, Match
from reconciler.core.rules import (
    ICMP_PROTOCOLS,
    PORTED_PROTOCOLS,
    Direction,
    RuleKey,
)

DEFAULT_GUARDRAIL_REVOCATIONS_PER_RUN = 50


class GuardEntry(TrafficSpec):
    """One ``deny:`` or ``allow:`` entry: a set of rules, ingress (``from:``) or egress (``to:``).

    ```yaml
    - {protocol: tcp, ports: [22, 3389], from: internet}
    ```
    ``ports`` may be omitted: every port of the protocol.
    """

    from_: Peers | None = Field(default=None, alias="from")
    to: Peers | None = None

    @model_validator(mode="after")
    def _shape(self) -> GuardEntry:
        if (self.from_ is None) == (self.to is None):
            raise ValueError(
                "a deny or allow entry needs exactly one of from: (ingress) or to: (egress)"
            )
        if self.ports is not None and self.protocol not in PORTED_PROTOCOLS:
            raise ValueError(f"ports is not allowed with protocol {self.protocol} (tcp, udp only)")
        icmp = (self.icmp_type, self.icmp_code) != (None, None)
        if icmp and self.protocol not in ICMP_PROTOCOLS:
            raise ValueError("icmp_type/icmp_code are only allowed with icmp or icmpv6")
        return self

    @property
    def direction(self) -> Direction:
        """Ingress for ``from:``, egress for ``to:``."""
        return Direction.INGRESS if self.from_ is not None else Direction.EGRESS

    def pattern(self) -> RulePattern:
        """This entry as a rule pattern."""
        icmp_type = -1 if self.icmp_type is None else self.icmp_type
        icmp_code = -1 if self.icmp_code is None or icmp_type == -1 else self.icmp_code
        return RulePattern(
            self.direction,
            self.protocol,
            self.ports,
            (icmp_type, icmp_code),
            self.from_ or self.to or (),
        )


class GuardException(RuleException):
    """A guardrail exception: a rule kept until ``expires``, on every group or on ``group_ids``.

    ```yaml
    - {protocol: tcp, ports: 22, from: 198.51.100.7/32, group_ids: [sg-0123456789abcdef0],
       expires: 2026-12-31T00:00:00Z, reason: vendor access, ticket SEC-42}
    ```
    """

    group_ids: GroupIds | None = None

    def keeps(self, group_id: str, key: RuleKey, now: datetime | None) -> bool:
        """Whether this exception, unexpired at ``now``, keeps ``key`` on ``group_id``."""
        if now is not None and self.expires <= now:
            return False
        if self.group_ids is not None and group_id not in self.group_ids:
            return False
        return any(
            key == mine or key.same_rule_as_removed(mine) or mine.same_rule_as_removed(key)
            for mine in self.rule_keys()
        )


class GuardLimits(BaseModel):
    """A guardrail's own blast-radius limit, against a mistaken guardrail.

    ```yaml
    limits: {max_revocations_per_run: 50}   # the default
    ```
    """

    model_config = FROZEN

    max_revocations_per_run: Annotated[int, Field(ge=1, strict=True)] = (
        DEFAULT_GUARDRAIL_REVOCATIONS_PER_RUN
    )


class Guardrail(BaseModel):
    """A fleet-wide floor: live rules that overlap ``deny`` and escape ``allow`` are violations."""

    model_config = FROZEN

    name: Annotated[
        str, AfterValidator(check_name), Field(json_schema_extra={"pattern": NAME_PATTERN.pattern})
    ]
    description: str | None = None
    match: Match | None = None
    exclude: Match | None = None
    deny: Annotated[tuple[GuardEntry, ...], Field(min_length=1)]
    allow: tuple[GuardEntry, ...] = ()
    on_violation: Literal["revoke", "report"] = "revoke"
    exceptions: tuple[GuardException, ...] = ()
    limits: GuardLimits = GuardLimits()

    def applies_to(self, *, group_id: str, tags: Mapping[str, str], vpc_id: str | None) -> bool:
        """Whether a group with these facts is evaluated."""
        if self.match is not None and not self.match.holds_for(
            group_id=group_id, tags=tags, vpc_id=vpc_id
        ):
            return False
        return self.exclude is None or not self.exclude.holds_for(
            group_id=group_id, tags=tags, vpc_id=vpc_id
        )

    def violation(self, key: RuleKey, entries: PrefixEntries) -> int | None:
        """The index of the deny entry ``key`` overlaps while no allow entry contains it.

        Raises UnknownPrefixList when a prefix list's entries decide and are not known.
        """
        if any(contains(entry.pattern(), key, entries) for entry in self.allow):
            return None
        for index, entry in enumerate(self.deny):
            if overlaps(key, entry.pattern(), entries):
                return index
        return None

    def exception_for(
        self, group_id: str, key: RuleKey, now: datetime | None
    ) -> GuardException | None:
        """The unexpired exception that keeps ``key`` on ``group_id``, if any."""
        return next((e for e in self.exceptions if e.keeps(group_id, key, now)), None)
