"""Journal entries: everything needed to recreate a revoked rule exactly, as data."""

from __future__ import annotations

__all__ = ["JournalEntry", "Phase", "RunContext"]

from dataclasses import asdict, dataclass
from typing import Any, Literal

from reconciler.core.plan import Change, Status
from reconciler.core.rules import Direction, RuleKey

Phase = Literal["intent", "outcome"]


@dataclass(frozen=True, slots=True)
class RunContext:
    """Who and what a run is: stamped on every journal entry it writes."""

    run_id: str
    trigger: str
    time: str
    actor: str | None = None
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One line of the journal: the intent to revoke a rule, or the outcome of doing so.

    The rule fields (protocol, ports, source, description) recreate the rule exactly with
    AuthorizeSecurityGroupIngress/Egress.
    """

    phase: Phase
    run_id: str
    time: str
    trigger: str
    actor: str | None
    event_id: str | None
    account: str | None
    region: str
    group_id: str
    policy: str
    rule_id: str | None
    direction: str
    protocol: str
    from_port: int | None
    to_port: int | None
    source: str
    description: str | None
    status: str | None = None
    error: str | None = None

    @classmethod
    def for_change(
        cls,
        phase: Phase,
        change: Change,
        context: RunContext,
        *,
        time: str | None = None,
        status: Status | None = None,
        error: str | None = None,
    ) -> JournalEntry:
        """The entry for one planned revoke (``intent``) or its result (``outcome``)."""
        key = change.key
        return cls(
            phase=phase,
            run_id=context.run_id,
            time=time or context.time,
            trigger=context.trigger,
            actor=context.actor,
            event_id=context.event_id,
            account=change.account,
            region=change.region,
            group_id=change.group_id,
            policy=change.policy,
            rule_id=change.rule_id,
            direction=key.direction.value,
            protocol=key.protocol,
            from_port=key.from_port,
            to_port=key.to_port,
            source=key.peer,
            description=change.description,
            status=status.value if status is not None else None,
            error=error,
        )

    @property
    def key(self) -> RuleKey:
        """The rule this entry is about."""
        return RuleKey(
            Direction(self.direction), self.protocol, self.from_port, self.to_port, self.source
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (one JSON line per entry)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JournalEntry:
        """Parse one entry; raises KeyError/TypeError/ValueError on a malformed line."""
        fields = {f: data[f] for f in cls.__dataclass_fields__ if f in data}
        entry = cls(**fields)
        if entry.phase not in ("intent", "outcome"):
            raise ValueError(f"unknown phase {entry.phase!r}")
        Direction(entry.direction)
        return entry
