"""Apply: execute exactly a plan's writing changes, journaled, one call per group."""

from __future__ import annotations

__all__ = ["Writers", "apply_plan", "revoked_with_errors"]

import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import structlog

from reconciler.core.errors import JournalUnavailable
from reconciler.core.journal import JournalEntry, Phase, RunContext
from reconciler.core.plan import Action, Change, Outcome, Plan, Status
from reconciler.core.ports import AuthorizeOutcome, Authorizer, Journal, Revoker
from reconciler.core.rules import Direction, ObservedRule
from reconciler.core.scope import RunMode

log = structlog.get_logger("reconciler")

WORKERS = 8
_JOURNAL_REFUSED = "journal unavailable: not revoked"
# A missing group is a failed restore here: the plan was made from that group moments ago.
_RESTORE_STATUS: dict[AuthorizeOutcome, Status] = {
    "created": Status.RESTORED,
    "present": Status.ALREADY_PRESENT,
    "gone": Status.FAILED,
    "failed": Status.FAILED,
}

_Batch = tuple[str, str, Direction, Action]


@dataclass(frozen=True, slots=True)
class Writers:
    """Where a run's writes go: a revoker and an authorizer per region, and the journal.

    With a ``journal``, every revoke is recorded before its call (intent) and after it
    (outcome), stamped with ``context``.
    """

    revoker: Callable[[str], Revoker]
    authorizer: Callable[[str], Authorizer]
    journal: Journal | None = None
    context: RunContext | None = None


def apply_plan(
    plan: Plan, writers: Writers, *, mode: RunMode = RunMode.ENFORCE
) -> tuple[Outcome, ...]:
    """Execute exactly the plan's writing changes: one call per group, direction and action.

    Changes that do not write (missing, report-only, blocked, excepted) are reported as
    such; ``dry_run`` marks writes ``planned`` and ``report`` marks them
    ``skipped_report_mode``, both without a call. One group's failure never stops the others.
    """
    if mode is RunMode.REPORT:
        plan = plan.as_report_only()
    dry_run = mode in (RunMode.PLAN, RunMode.DRY_RUN)
    context = writers.context or RunContext(
        run_id=uuid.uuid4().hex, trigger="apply", time=datetime.now(UTC).isoformat()
    )
    journal = _LockedJournal(writers.journal) if writers.journal is not None else None
    outcomes: dict[int, Outcome] = {}
    batches: dict[_Batch, list[int]] = defaultdict(list)
    for index, change in enumerate(plan.changes):
        if change.writes and not dry_run:
            batches[(change.region, change.group_id, change.direction, change.action)].append(index)
        else:
            outcomes[index] = Outcome(change, _non_writing_status(change, dry_run=dry_run))

    def run_batch(item: tuple[_Batch, list[int]]) -> list[tuple[int, Outcome]]:
        (region, group_id, direction, action), indexes = item
        changes = [plan.changes[i] for i in indexes]
        if action is Action.RESTORE:
            done = _restore(changes, writers.authorizer(region), group_id, direction)
        else:
            batch = _Revoke(writers.revoker(region), journal, context)
            done = batch.run(changes, group_id, direction)
        for outcome in done:
            _log_write(outcome)
            if action is Action.REVOKE and outcome.error != _JOURNAL_REFUSED:
                _journal_outcome(journal, outcome, context)
        return list(zip(indexes, done, strict=True))

    # Groups are independent: their calls run in parallel, paced by the client-side
    # token buckets (adapters/throttle.py) so the run stays at EC2's rate. Restores go
    # first: a rule widened in place is put back before its widened form is revoked, and
    # a restore that fails leaves the group no emptier than the revoke alone would.
    for action in (Action.RESTORE, Action.REVOKE):
        items = [item for item in batches.items() if item[0][3] is action]
        if not items:
            continue
        with ThreadPoolExecutor(max_workers=max(1, min(WORKERS, len(items)))) as pool:
            for pairs in pool.map(run_batch, items):
                outcomes.update(pairs)
    return tuple(outcomes[i] for i in range(len(plan.changes)))


class _LockedJournal:
    """Serialises journal writes from parallel batches."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._lock = threading.Lock()

    def record(self, entry: JournalEntry) -> None:
        with self._lock:
            self._journal.record(entry)


@dataclass(frozen=True, slots=True)
class _Revoke:
    """One group-and-direction revoke: intent journaled first, then the call."""

    revoker: Revoker
    journal: Journal | None
    context: RunContext

    def run(self, changes: list[Change], group_id: str, direction: Direction) -> list[Outcome]:
        try:
            _journal(self.journal, "intent", changes, self.context)
        except JournalUnavailable as exc:
            log.error("journal_unavailable", group_id=group_id, error=str(exc))
            return [Outcome(c, Status.FAILED, error=_JOURNAL_REFUSED) for c in changes]
        result = self.revoker.revoke(group_id, direction, [c.rule_id or "" for c in changes])
        status: dict[str, tuple[Status, str | None]] = {}
        status.update((rule_id, (Status.REVOKED, None)) for rule_id in result.revoked)
        status.update((rule_id, (Status.ALREADY_ABSENT, None)) for rule_id in result.absent)
        status.update((rule_id, (Status.FAILED, error)) for rule_id, error in result.failed)
        removed = {rule.rule_id: rule for rule in result.removed}
        outcomes = []
        for change in changes:
            outcome = Outcome(change, *status[change.rule_id or ""])
            actual = removed.get(change.rule_id or "")
            if outcome.status is Status.REVOKED and actual is not None:
                outcome = _as_removed(outcome, actual)
            outcomes.append(outcome)
        return outcomes


def revoked_with_errors(outcomes: Iterable[Outcome]) -> tuple[str, ...]:
    """One line per rule revoked with an error (it had changed since it was read)."""
    return tuple(
        f"{o.change.group_id} {o.change.rule_id}: {o.error}"
        for o in outcomes
        if o.status is Status.REVOKED and o.error is not None
    )


def _as_removed(outcome: Outcome, actual: ObservedRule) -> Outcome:
    """The revoke as EC2 reports it was done: what the journal must record to undo it.

    A rule is read, then revoked by id; ModifySecurityGroupRules can change it in between
    (seconds, in a long paced run). EC2's revoke response says what it removed: when that
    is another rule than the planned one, the outcome carries the rule actually removed and
    an error, so that the journal (and ``undo``) and the operator see the truth.
    """
    change = outcome.change
    if change.key.same_rule_as_removed(actual.key):
        # Same rule; its description may have been edited since the read.
        return replace(outcome, change=replace(change, description=actual.description))
    log.error(
        "revoked_rule_changed",
        group_id=change.group_id,
        rule_id=change.rule_id,
        planned=change.key.describe(),
        removed=actual.key.describe(),
    )
    return replace(
        outcome,
        change=replace(change, key=actual.key, description=actual.description),
        error=(
            f"changed after it was read: planned {change.key.describe()}, EC2 removed"
            f" {actual.key.describe()}; if the baseline allows that rule, put it back"
            f" (sg-reconciler undo --rule-id {change.rule_id})"
        ),
    )


def _restore(
    changes: list[Change], authorizer: Authorizer, group_id: str, direction: Direction
) -> list[Outcome]:
    """Re-create missing baseline rules (``restore_missing``)."""
    result = authorizer.authorize(group_id, direction, [(c.key, c.description) for c in changes])
    outcomes = result.outcomes()
    restored = []
    for change in changes:
        kind, error = outcomes[change.key]
        restored.append(Outcome(change, _RESTORE_STATUS[kind], error))
    return restored


def _journal(
    journal: Journal | None, phase: Phase, changes: list[Change], context: RunContext
) -> None:
    if journal is None:
        return
    for change in changes:
        journal.record(JournalEntry.for_change(phase, change, context))


def _journal_outcome(journal: Journal | None, outcome: Outcome, context: RunContext) -> None:
    if journal is None:
        return
    entry = JournalEntry.for_change(
        "outcome",
        outcome.change,
        context,
        time=datetime.now(UTC).isoformat(),
        status=outcome.status,
        error=outcome.error,
    )
    try:
        journal.record(entry)
    except JournalUnavailable as exc:
        log.error("journal_outcome_lost", rule_id=outcome.change.rule_id, error=str(exc))


def _non_writing_status(change: Change, *, dry_run: bool) -> Status:
    if change.blocked is not None:
        return Status.BLOCKED
    if change.action is not Action.REVOKE:
        return Status.REPORTED
    if change.report_only:
        return Status.SKIPPED_REPORT_MODE
    return Status.PLANNED if dry_run else Status.SKIPPED_REPORT_MODE


def _log_write(outcome: Outcome) -> None:
    change = outcome.change
    event = log.error if outcome.status is Status.FAILED else log.info
    event(
        change.action.value,
        region=change.region,
        group_id=change.group_id,
        rule_id=change.rule_id,
        rule=change.key.describe(),
        policy=change.policy,
        outcome=outcome.status.value,
        error=outcome.error,
    )
