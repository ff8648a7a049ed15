"""The composition of one run: read live groups -> plan (pure) -> apply the plan."""

from __future__ import annotations

__all__ = [
    "ACCOUNT_WORKERS",
    "AccountRun",
    "AccountsResult",
    "JournalUnavailable",
    "JournalWriter",
    "RunResult",
    "apply_plan",
    "plan_regions",
    "reconcile",
    "reconcile_accounts",
    "revoked_with_errors",
]

import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from reconciler.adapters.ec2 import (
    AuthorizeOutcome,
    RuleAuthorizer,
    RuleRevoker,
    SecurityGroupReader,
)
from reconciler.core.errors import JournalUnavailable
from reconciler.core.journal import JournalEntry, Phase, RunContext
from reconciler.core.plan import Action, Change, Outcome, Plan, Status
from reconciler.core.planner import plan as make_plan
from reconciler.core.policy import Baseline
from reconciler.core.rules import Direction, ObservedGroup, ObservedRule

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

    from reconciler.adapters.aws import AwsClients
    from reconciler.core.accounts import Target

log = structlog.get_logger("reconciler")

REGION_WORKERS = 4

ClientFactory = Callable[[str], "EC2Client"]


@dataclass(frozen=True, slots=True)
class RunResult:
    """A plan, what applying it did (empty for plan-only runs), and run-level errors."""

    plan: Plan
    outcomes: tuple[Outcome, ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        """True when any AWS call failed or any group could not be handled."""
        return (
            bool(self.errors)
            or bool(self.plan.problems)
            or any(o.status is Status.FAILED for o in self.outcomes)
        )

    def error_messages(self) -> list[str]:
        """Every run-level error and group problem, one line each."""
        return [*self.errors, *(str(p) for p in self.plan.problems)]


def plan_regions(
    baseline: Baseline,
    readers: Iterable[tuple[str, SecurityGroupReader]],
    *,
    now: datetime,
    group_ids: Sequence[str] | None = None,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> tuple[Plan, tuple[str, ...]]:
    """Read each region (all managed groups, or just ``group_ids``) and plan them together.

    A region that cannot be read is an error for that region; the others are still planned.
    ``progress`` is told ``reading <region> (k/n)…`` as each region's read starts.
    """
    items = list(readers)
    started = iter(range(1, len(items) + 1))
    lock = threading.Lock()  # regions are read in parallel; numbers go out in order

    def read(item: tuple[str, SecurityGroupReader]) -> tuple[list[ObservedGroup], str | None]:
        region, reader = item
        if progress is not None:
            with lock:
                progress(f"reading {region} ({next(started)}/{len(items)})…")
        try:
            if group_ids is None:
                return list(reader.read_managed(baseline)), None
            return list(reader.read_groups(group_ids)), None
        except (ClientError, BotoCoreError) as exc:
            log.error("read_failed", region=region, error=str(exc))
            return [], f"{region}: cannot read security groups: {exc}"

    observed: list[ObservedGroup] = []
    errors: list[str] = []
    # Regions (and accounts) are independent sweeps: read them in parallel, bounded.
    with ThreadPoolExecutor(max_workers=max(1, min(REGION_WORKERS, len(items)))) as pool:
        for groups, error in pool.map(read, items):
            observed.extend(groups)
            if error is not None:
                errors.append(error)
    return make_plan(baseline, observed, now=now, enforce_limits=not force), tuple(errors)


class JournalWriter(Protocol):
    """Records revokes: ``record`` is called before each call (intent) and after (outcome).

    ``record`` raises JournalUnavailable when the intent cannot be kept; the revoke is
    then not made.
    """

    def record(self, entry: JournalEntry) -> None:
        """Keep one entry."""


def apply_plan(
    plan: Plan,
    revokers: Callable[[str], RuleRevoker],
    *,
    dry_run: bool = False,
    report_mode: bool = False,
    journal: JournalWriter | None = None,
    context: RunContext | None = None,
    authorizers: Callable[[str], RuleAuthorizer] | None = None,
    workers: int = 8,
) -> tuple[Outcome, ...]:
    """Execute exactly the plan's writing changes: one call per group, direction and action.

    Changes that do not write (missing, report-only, blocked, excepted) are reported as
    such; ``dry_run`` marks writes ``planned`` and ``report_mode`` marks them
    ``skipped_report_mode``, both without a call. One group's failure never stops the others.
    With a ``journal``, every revoke is recorded before its call and its outcome after.
    """
    context = context or RunContext(
        run_id=uuid.uuid4().hex, trigger="apply", time=datetime.now(UTC).isoformat()
    )
    if report_mode:
        plan = plan.as_report_only()
    outcomes: dict[int, Outcome] = {}
    batches: dict[tuple[str, str, Direction, Action], list[int]] = defaultdict(list)
    for index, change in enumerate(plan.changes):
        if change.writes and not dry_run:
            batches[(change.region, change.group_id, change.direction, change.action)].append(index)
        else:
            outcomes[index] = Outcome(change, _non_writing_status(change, dry_run=dry_run))
    guarded = _LockedJournal(journal) if journal is not None else None

    def run_batch(
        item: tuple[tuple[str, str, Direction, Action], list[int]],
    ) -> list[tuple[int, Outcome]]:
        (region, group_id, direction, action), indexes = item
        changes = [plan.changes[i] for i in indexes]
        if action is Action.RESTORE:
            done = _restore(
                changes,
                group_id=group_id,
                direction=direction,
                authorizers=authorizers,
                region=region,
            )
        else:
            done = _revoke(
                changes,
                group_id=group_id,
                direction=direction,
                revoker=revokers(region),
                journal=guarded,
                context=context,
            )
        for outcome in done:
            _log_write(outcome)
            if action is Action.REVOKE and outcome.error != _JOURNAL_REFUSED:
                try:
                    _journal_outcome(guarded, outcome, context)
                except JournalUnavailable as exc:
                    log.error(
                        "journal_outcome_lost", rule_id=outcome.change.rule_id, error=str(exc)
                    )
        return list(zip(indexes, done, strict=True))

    # Groups are independent: their calls run in parallel, paced by the client-side
    # token buckets (adapters/throttle.py) so the run stays at EC2's rate.
    if batches:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(batches)))) as pool:
            for pairs in pool.map(run_batch, batches.items()):
                outcomes.update(pairs)
    return tuple(outcomes[i] for i in range(len(plan.changes)))


_JOURNAL_REFUSED = "journal unavailable: not revoked"


class _LockedJournal:
    """Serialises journal writes from parallel batches."""

    def __init__(self, journal: JournalWriter) -> None:
        self._journal = journal
        self._lock = threading.Lock()

    def record(self, entry: JournalEntry) -> None:
        with self._lock:
            self._journal.record(entry)


def _revoke(
    changes: list[Change],
    *,
    group_id: str,
    direction: Direction,
    revoker: RuleRevoker,
    journal: JournalWriter | None,
    context: RunContext,
) -> list[Outcome]:
    try:
        _journal(journal, "intent", changes, context)
    except JournalUnavailable as exc:
        log.error("journal_unavailable", group_id=group_id, error=str(exc))
        return [Outcome(c, Status.FAILED, error=_JOURNAL_REFUSED) for c in changes]
    result = revoker.revoke(group_id, direction, [c.rule_id or "" for c in changes])
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
    an error, so that the journal (and ``restore``) and the operator see the truth.
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
            f" {actual.key.describe()}; if the baseline allows that rule, restore it"
            f" (sg-reconciler restore --rule-id {change.rule_id})"
        ),
    )


def _restore(
    changes: list[Change],
    *,
    group_id: str,
    direction: Direction,
    authorizers: Callable[[str], RuleAuthorizer] | None,
    region: str,
) -> list[Outcome]:
    if authorizers is None:
        return [Outcome(c, Status.FAILED, error="restore is not enabled here") for c in changes]
    result = authorizers(region).authorize(
        group_id, direction, [(c.key, c.description) for c in changes]
    )
    outcomes = result.outcomes()
    restored = []
    for change in changes:
        kind, error = outcomes[change.key]
        restored.append(Outcome(change, _RESTORE_STATUS[kind], error))
    return restored


# A missing group is a failed restore here: the plan was made from that group moments ago.
_RESTORE_STATUS: dict[AuthorizeOutcome, Status] = {
    "created": Status.RESTORED,
    "present": Status.ALREADY_PRESENT,
    "gone": Status.FAILED,
    "failed": Status.FAILED,
}


def _journal(
    journal: JournalWriter | None, phase: Phase, changes: list[Change], context: RunContext
) -> None:
    if journal is None:
        return
    for change in changes:
        journal.record(JournalEntry.for_change(phase, change, context))


def _journal_outcome(journal: JournalWriter | None, outcome: Outcome, context: RunContext) -> None:
    if journal is None:
        return
    journal.record(
        JournalEntry.for_change(
            "outcome",
            outcome.change,
            context,
            time=datetime.now(UTC).isoformat(),
            status=outcome.status,
            error=outcome.error,
        )
    )


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


def reconcile(
    baseline: Baseline,
    clients: ClientFactory,
    regions: Sequence[str],
    *,
    apply: bool,
    dry_run: bool = False,
    report_mode: bool = False,
    now: datetime | None = None,
    group_ids: Sequence[str] | None = None,
    account_id: str | None = None,
    journal: JournalWriter | None = None,
    context: RunContext | None = None,
    force: bool = False,
    authorizers: Callable[[str], RuleAuthorizer] | None = None,
    progress: Callable[[str], None] | None = None,
) -> RunResult:
    """Plan (and, with ``apply``, execute) the baseline in every region; log one summary.

    ``progress`` (optional) is told about each region read and the apply, one line each.
    """
    started = time.monotonic()
    readers = {r: SecurityGroupReader(clients(r), r, account_id) for r in regions}
    plan, errors = plan_regions(
        baseline,
        readers.items(),
        now=now or datetime.now(UTC),
        group_ids=group_ids,
        force=force,
        progress=progress,
    )
    outcomes: tuple[Outcome, ...] = ()
    if apply:
        if progress is not None and not dry_run and not report_mode:
            progress(f"applying {sum(1 for c in plan.changes if c.writes)} changes…")
        revokers = {r: RuleRevoker(clients(r), readers[r]) for r in regions}
        outcomes = apply_plan(
            plan,
            revokers.__getitem__,
            dry_run=dry_run,
            report_mode=report_mode,
            journal=journal,
            context=context,
            authorizers=authorizers,
        )
    errors = (*errors, *revoked_with_errors(outcomes))
    result = RunResult(plan=plan, outcomes=outcomes, errors=errors)
    statuses: dict[str, int] = defaultdict(int)
    for outcome in outcomes:
        statuses[outcome.status.value] += 1
    log.info(
        "run_summary",
        mode="apply" if apply and not dry_run else "plan",
        account=account_id,
        regions=list(regions),
        **plan.summary().to_dict(),
        outcomes=dict(statuses),
        run_errors=len(errors),
        duration_ms=round((time.monotonic() - started) * 1000),
    )
    return result


# --- several accounts ----------------------------------------------------------------------

ACCOUNT_WORKERS = 4


@dataclass(frozen=True, slots=True)
class AccountRun:
    """One account's part of a multi-account run (an unreachable account has only errors)."""

    target: Target
    result: RunResult


@dataclass(frozen=True, slots=True)
class AccountsResult:
    """Every account's run, and all of them merged into one result (errors name the account)."""

    result: RunResult
    accounts: tuple[AccountRun, ...]


def reconcile_accounts(
    baseline: Baseline,
    targets: Sequence[Target],
    clients_for: Callable[[Target], AwsClients],
    *,
    apply: bool,
    dry_run: bool = False,
    report_mode: bool = False,
    now: datetime | None = None,
    journal: JournalWriter | None = None,
    context: RunContext | None = None,
    force: bool = False,
    workers: int = ACCOUNT_WORKERS,
    progress: Callable[[str], None] | None = None,
) -> AccountsResult:
    """Reconcile every target account in its regions, accounts in parallel (bounded).

    ``clients_for`` gives clients acting in an account (assuming its role); when it fails
    with an AWS error, that account is an error of the run and the others proceed.
    Blast-radius limits count per account, as each account is its own plan.
    ``progress`` is told ``account <label> (k/n)…`` as each account starts, then its reads.
    """
    now = now or datetime.now(UTC)
    shared = _LockedJournal(journal) if journal is not None else None
    ordered = sorted(targets, key=lambda t: t.account_id)
    started = iter(range(1, len(ordered) + 1))
    lock = threading.Lock()

    def run(target: Target) -> AccountRun:
        account_progress = None
        if progress is not None:
            with lock:
                progress(f"account {target.label} ({next(started)}/{len(ordered)})…")
            account_progress = _prefixed(progress, f"{target.label}: ")
        try:
            clients = clients_for(target)
        except (ClientError, BotoCoreError) as exc:
            log.error(
                "account_unreachable",
                account=target.account_id,
                role_arn=target.role_arn,
                error=str(exc),
            )
            error = f"cannot assume {target.role_arn}: {exc}"
            return AccountRun(target, RunResult(plan=Plan(changes=()), errors=(error,)))
        result = reconcile(
            baseline,
            clients.ec2,
            target.regions,
            apply=apply,
            dry_run=dry_run,
            report_mode=report_mode,
            now=now,
            account_id=target.account_id,
            journal=shared,
            context=context,
            force=force,
            authorizers=lambda region: RuleAuthorizer(clients.ec2(region)),
            progress=account_progress,
        )
        return AccountRun(target, result)

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(ordered)))) as pool:
        runs = tuple(pool.map(run, ordered))
    merged = RunResult(
        plan=Plan(
            changes=tuple(c for r in runs for c in r.result.plan.changes),
            problems=tuple(p for r in runs for p in r.result.plan.problems),
            managed_groups=sum(r.result.plan.managed_groups for r in runs),
        ),
        outcomes=tuple(o for r in runs for o in r.result.outcomes),
        errors=tuple(f"{r.target.label}: {e}" for r in runs for e in r.result.errors),
    )
    return AccountsResult(result=merged, accounts=runs)


def _prefixed(progress: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    """``progress`` with every message prefixed (one account's lines in a parallel run)."""
    return lambda message: progress(prefix + message)
