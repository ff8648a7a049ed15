"""Journal entries: everything needed to recreate a revoked rule exactly, as data."""

from __future__ import annotations

__all__ = [
    "JournalEntry",
    "Phase",
    "RunContext",
    "UndoableRevokes",
    "parse_time",
    "select_undoable",
]

from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
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
    policy: str | None  # None: a guardrail's revoke on a group no policy manages
    rule_id: str | None
    direction: str
    protocol: str
    from_port: int | None
    to_port: int | None
    source: str
    description: str | None
    status: str | None = None
    error: str | None = None
    guardrail: str | None = None

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
            guardrail=change.guardrail,
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
    def from_dict(cls, data: object) -> JournalEntry:
        """Parse one entry; raises ValueError naming the first field that is wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        missing = [f for f in _REQUIRED if f not in data]
        if missing:
            raise ValueError(f"missing field {missing[0]!r}")
        for name in _TEXT:
            if not isinstance(data[name], str):
                raise ValueError(f"{name}: expected a string, got {data[name]!r}")
        for name in _OPTIONAL_TEXT:
            if data.get(name) is not None and not isinstance(data[name], str):
                raise ValueError(f"{name}: expected a string or null, got {data[name]!r}")
        for name in ("from_port", "to_port"):
            value = data[name]
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise ValueError(f"{name}: expected an integer or null, got {value!r}")
        if data["phase"] not in ("intent", "outcome"):
            raise ValueError(f"phase: unknown phase {data['phase']!r} (intent or outcome)")
        if data["direction"] not in {d.value for d in Direction}:
            raise ValueError(f"direction: unknown direction {data['direction']!r}")
        parse_time(data["time"])
        fields: dict[str, Any] = {f: data.get(f) for f in cls.__dataclass_fields__}
        return cls(**fields)

    @property
    def parsed_time(self) -> datetime:
        """``time`` as an aware datetime."""
        return parse_time(self.time)

    @property
    def rule_identity(self) -> tuple[str, str, str, RuleKey]:
        """(account, region, group id, rule key): equal identities name the same rule."""
        return (self.account or "", self.region, self.group_id, self.key)


_REQUIRED = (
    "phase",
    "run_id",
    "time",
    "trigger",
    "region",
    "group_id",
    "direction",
    "protocol",
    "from_port",
    "to_port",
    "source",
)
_TEXT = tuple(f for f in _REQUIRED if f not in ("from_port", "to_port"))
_OPTIONAL_TEXT = (
    "actor",
    "event_id",
    "account",
    "policy",
    "rule_id",
    "description",
    "status",
    "error",
    "guardrail",
)


def parse_time(text: str) -> datetime:
    """An ISO 8601 time with a time zone (``Z`` or an offset); a naive time is a ValueError."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"{text!r} is not an ISO 8601 time (e.g. 2025-01-31T14:00:00Z)") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{text!r} has no time zone (add Z or an offset such as +01:00)")
    return moment


@dataclass(frozen=True, slots=True)
class UndoableRevokes:
    """The revokes an undo would re-authorize, one entry per rule, and what was left out."""

    entries: tuple[JournalEntry, ...]
    unconfirmed: tuple[JournalEntry, ...] = ()
    runs: int = 0


def select_undoable(
    entries: Iterable[JournalEntry],
    *,
    since: datetime | None = None,
    regions: Collection[str] = (),
    group_ids: Collection[str] = (),
    rule_ids: Collection[str] = (),
    include_unconfirmed: bool = False,
) -> UndoableRevokes:
    """The rules to re-authorize: those the journal says were revoked, one entry per rule.

    An outcome ``revoked`` is a confirmed revoke. An intent with no outcome in its run
    (the run stopped between the call and the record) may or may not have been revoked:
    it is listed in ``unconfirmed`` and restored only with ``include_unconfirmed`` (a
    rule that is still live then reports as already present). Filters keep entries at or
    after ``since`` in the given regions, groups and rule ids (empty means all). A rule
    revoked more than once is restored once, with the description of its latest revoke.
    """
    every = list(entries)
    with_outcome = {
        (e.run_id, e.account, e.region, e.group_id, e.rule_id)
        for e in every
        if e.phase == "outcome"
    }

    def wanted(entry: JournalEntry) -> bool:
        return (
            (since is None or entry.parsed_time >= since)
            and (not regions or entry.region in regions)
            and (not group_ids or entry.group_id in group_ids)
            and (not rule_ids or entry.rule_id in rule_ids)
        )

    confirmed = [e for e in every if e.phase == "outcome" and e.status == "revoked" and wanted(e)]
    unconfirmed = [
        e
        for e in every
        if e.phase == "intent"
        and (e.run_id, e.account, e.region, e.group_id, e.rule_id) not in with_outcome
        and wanted(e)
    ]
    chosen = confirmed + (unconfirmed if include_unconfirmed else [])
    latest: dict[tuple[str, str, str, RuleKey], JournalEntry] = {}
    for entry in sorted(chosen, key=lambda e: e.parsed_time):
        latest[entry.rule_identity] = entry
    ordered = tuple(sorted(latest.values(), key=_rule_order))
    return UndoableRevokes(
        entries=ordered,
        unconfirmed=tuple(unconfirmed),
        runs=len({e.run_id for e in ordered}),
    )


def _rule_order(entry: JournalEntry) -> tuple[str, str, str, str, str, int, int, str]:
    """Deterministic order: by account, region, group, direction, protocol, ports, peer."""
    return (
        entry.account or "",
        entry.region,
        entry.group_id,
        entry.direction,
        entry.protocol,
        -2 if entry.from_port is None else entry.from_port,
        -2 if entry.to_port is None else entry.to_port,
        entry.source,
    )
