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

__all__ = [  # the models live in policy_* modules; import them from here
    "DEFAULT_MAX_REVOCATIONS_PER_GROUP",
    "Baseline",
    "EgressRule",
    "FileLimits",
    "GroupLimits",
    "GroupPolicy",
    "Guardrail",
    "IngressRule",
    "Match",
    "PolicyFile",
    "RuleException",
]

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, model_validator

from reconciler.core.guardrail import Guardrail
from reconciler.core.patterns import RulePattern
from reconciler.core.policy_exceptions import RuleException
from reconciler.core.policy_limits import DEFAULT_MAX_REVOCATIONS_PER_GROUP, FileLimits, GroupLimits
from reconciler.core.policy_rules import (
    FROZEN,
    NAME_PATTERN,
    EgressRule,
    IngressRule,
    RuleSpec,
    check_name,
)
from reconciler.core.policy_selectors import Match
from reconciler.core.rules import Direction, ObservedGroup, RuleKey


def _egress_value(value: object) -> object:
    if value is None or value == "unmanaged":
        return None
    if isinstance(value, str):
        raise ValueError(f"egress must be a list of rules or 'unmanaged', not {value!r}")
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

    model_config = FROZEN

    name: Annotated[
        str, AfterValidator(check_name), Field(json_schema_extra={"pattern": NAME_PATTERN.pattern})
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

    def required(self) -> frozenset[RuleKey]:
        """The rule keys that must be live: every entry's but the ``within: true`` bounds'."""
        return frozenset(
            key
            for rule in self.rules()
            if not getattr(rule, "within", False)
            for key in rule.rule_keys()
        )

    def bounds(self) -> tuple[RulePattern, ...]:
        """The ``within: true`` entries as patterns: a live rule contained in one is allowed."""
        return tuple(
            rule.pattern() for rule in (*self.ingress, *(self.egress or ())) if rule.within
        )

    def rules(self) -> tuple[RuleSpec, ...]:
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

    model_config = FROZEN

    limits: FileLimits | None = None
    peers: dict[str, str | list[str]] | None = None  # resolved across files by the loader
    groups: Annotated[tuple[GroupPolicy, ...], Field(min_length=1)] = ()
    guardrails: Annotated[tuple[Guardrail, ...], Field(min_length=1)] = ()

    @model_validator(mode="after")
    def _not_empty(self) -> PolicyFile:
        if not self.groups and not self.guardrails and not self.peers:
            raise ValueError(
                "a policy file needs groups:, guardrails: or peers: (an empty file is refused)"
            )
        return self

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
    guardrails: tuple[Guardrail, ...] = ()
    peer_sets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def guardrails_for(self, group: ObservedGroup) -> tuple[Guardrail, ...]:
        """The guardrails that evaluate ``group``, in baseline order."""
        return tuple(
            g
            for g in self.guardrails
            if g.applies_to(group_id=group.group_id, tags=group.tags, vpc_id=group.vpc_id)
        )

    @property
    def guards_every_group(self) -> bool:
        """True when some guardrail has no ``match``: every group must be read."""
        return any(g.match is None for g in self.guardrails)

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
        return all(p.match.tags for p in self.policies) and all(
            g.match is not None and g.match.tags for g in self.guardrails
        )
