"""The reconcile loop: read live groups -> plan (pure) -> apply the plan.

Every job runs through ``reconcile``: ``plan``/``apply`` (one account or an accounts
file), the CloudTrail event path (the groups an event names) and the scheduled run. Each
passes *what to look at* (a Scope), *how to run* (RunOptions) and *where* (Sites, whose
clients give the reader and writers of each region); a Record adds the journal.
"""

from __future__ import annotations

__all__ = ["ACCOUNT_WORKERS", "Record", "RunOptions", "Site", "reconcile"]

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from reconciler.adapters.ec2 import ClientFactory, ec2_ports
from reconciler.core.plan import Plan
from reconciler.core.planner import plan as make_plan
from reconciler.core.results import AccountRun, RunError, RunResult
from reconciler.core.rules import peer_kind
from reconciler.core.scope import RunMode, Scope
from reconciler.service.apply import Writers, apply_plan, revoked_with_errors

if TYPE_CHECKING:
    from reconciler.adapters.aws import AwsClients
    from reconciler.core.accounts import Target
    from reconciler.core.journal import RunContext
    from reconciler.core.policy import Baseline
    from reconciler.core.ports import GroupReader, Journal, RegionPorts
    from reconciler.core.rules import ObservedGroup

log = structlog.get_logger("reconciler")

REGION_WORKERS = 4
ACCOUNT_WORKERS = 4

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How to run: the mode, whether blast-radius limits hold, the clock, progress lines.

    ``progress`` is told ``reading <region> (k/n)…`` as each region's read starts,
    ``account <label> (k/n)…`` as each account starts, and ``applying N changes…``.
    """

    mode: RunMode = RunMode.PLAN
    honour_limits: bool = True
    now: datetime | None = None
    progress: Progress | None = None
    account_workers: int = ACCOUNT_WORKERS  # accounts reconciled at once


@dataclass(frozen=True, slots=True)
class Record:
    """The journal a run writes every revoke to, and the stamp on its entries."""

    journal: Journal
    context: RunContext


@dataclass(frozen=True, slots=True)
class Site:
    """One account's regions, and how to get the reader and writers of each region.

    ``connect`` may raise an AWS error (assuming a member account's role): that account is
    then an error of the run and the others proceed. ``target`` is set for the accounts of
    an accounts file: their results are kept apart and their errors name them.
    """

    regions: tuple[str, ...]
    connect: Callable[[], Callable[[str], RegionPorts]] = field(repr=False)
    account_id: str | None = None
    target: Target | None = None

    @classmethod
    def of(cls, ec2: ClientFactory, regions: Sequence[str], account_id: str | None = None) -> Site:
        """The regions of the account that ``ec2``'s clients act in."""
        ports = ec2_ports(ec2, account_id)
        return cls(tuple(regions), lambda: ports, account_id)

    @classmethod
    def member(cls, target: Target, clients_for: Callable[[Target], AwsClients]) -> Site:
        """An account of an accounts file, reached through its role when the run gets to it."""

        def connect() -> Callable[[str], RegionPorts]:
            return ec2_ports(clients_for(target).ec2, target.account_id)

        return cls(tuple(target.regions), connect, target.account_id, target)


def reconcile(
    baseline: Baseline,
    sites: Sequence[Site],
    *,
    scope: Scope | None = None,
    options: RunOptions | None = None,
    record: Record | None = None,
) -> RunResult:
    """Plan (and, unless the mode is ``plan``, apply) the baseline at every site.

    One site without a target is a single-account run; sites with targets (an accounts
    file) run in parallel, bounded, and their results are merged, each kept in
    ``accounts``. Blast-radius limits count per account, as each account is its own plan.
    """
    scope = scope or Scope.managed()
    options = options or RunOptions()
    if options.now is None:
        options = replace(options, now=datetime.now(UTC))  # one clock for every account
    if len(sites) == 1 and sites[0].target is None:
        return _run_site(baseline, sites[0], scope, options, record)
    pairs = [(s, s.target) for s in sorted(sites, key=lambda s: s.account_id or "")]
    members = [(site, target) for site, target in pairs if target is not None]
    if len(members) != len(pairs):
        raise ValueError("every site of a run over several sites must name its account (target)")
    counter = iter(range(1, len(members) + 1))
    lock = threading.Lock()
    progress = options.progress

    def run(member: tuple[Site, Target]) -> AccountRun:
        site, target = member
        site_options = options
        if progress is not None:
            with lock:
                progress(f"account {target.label} ({next(counter)}/{len(members)})…")
            site_options = _prefixed(options, progress, f"{target.label}: ")
        return AccountRun(target, _run_site(baseline, site, scope, site_options, record))

    workers = max(1, min(options.account_workers, len(members)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        runs = tuple(pool.map(run, members))
    return RunResult.merged(runs)


def _run_site(
    baseline: Baseline, site: Site, scope: Scope, options: RunOptions, record: Record | None
) -> RunResult:
    """Read, plan and apply at one site; log one summary line."""
    started = time.monotonic()
    try:
        ports = site.connect()
    except (ClientError, BotoCoreError) as exc:
        role_arn = site.target.role_arn if site.target is not None else None
        log.error("account_unreachable", account=site.account_id, role_arn=role_arn, error=str(exc))
        error = RunError(f"cannot assume {role_arn}: {exc}", stage="account")
        return RunResult(plan=Plan(changes=()), errors=(error,))
    observed, read = _read(baseline, site, ports, scope, options)
    plan = make_plan(
        baseline,
        observed,
        now=options.now or datetime.now(UTC),
        enforce_limits=options.honour_limits,
        prefix_lists=read.prefix_lists,
        # The rules the answered call made: no baseline limit shields them.
        urgent=frozenset(scope.rule_ids) if not scope.everything else frozenset(),
    )
    if not scope.everything:
        plan = plan.restricted_to(scope.directions(observed))
    result = RunResult(
        plan=plan,
        errors=read.errors,
        observed=tuple(g.group_id for g in observed),
        unmatched_regions=read.unmatched if scope.everything else (),
    )
    if options.mode.applies:
        result = _apply(result, ports, options, record)
    _log_summary(result, site, options, started)
    return result


@dataclass(frozen=True, slots=True)
class _Read:
    errors: tuple[RunError, ...]
    unmatched: tuple[str, ...]
    prefix_lists: dict[str, tuple[str, ...]]


def _complete(
    baseline: Baseline, reader: GroupReader, groups: list[ObservedGroup], now: datetime | None
) -> tuple[list[ObservedGroup], dict[str, tuple[str, ...]]]:
    """The prefix lists the plan needs, and rule ids for the groups that have changes.

    A sweep reads rules without ids (DescribeSecurityGroups); a probe plan finds the groups
    whose changes need ids, and only those are read again (DescribeSecurityGroupRules):
    the API-call lower bound for a region where most groups are clean.
    """
    wanted = _prefix_lists_needed(baseline, groups)
    entries = reader.prefix_list_entries(wanted) if wanted else {}
    idless = [g for g in groups if any(r.rule_id == "" for r in g.rules)]
    if not idless:
        return groups, entries
    probe = make_plan(baseline, idless, now=now, enforce_limits=False, prefix_lists=entries)
    need = {c.group_id for c in probe.changes if c.rule_id == ""}
    filled = {
        g.group_id: g for g in reader.with_rule_ids([g for g in idless if g.group_id in need])
    }
    return [filled.get(g.group_id, g) for g in groups], entries


def _prefix_lists_needed(baseline: Baseline, groups: list[ObservedGroup]) -> set[str]:
    """Prefix lists whose entries decide a guardrail or ``within`` verdict."""
    bounds = [b for p in baseline.policies for b in p.bounds()]
    if not baseline.guardrails and not bounds:
        return set()
    patterns = [
        *(e.pattern() for g in baseline.guardrails for e in (*g.deny, *g.allow)),
        *bounds,
    ]
    peers = {r.key.peer for g in groups for r in g.rules}
    peers.update(peer for pattern in patterns for peer in pattern.peers)
    return {peer for peer in peers if peer_kind(peer) == "prefix_list"}


def _read(
    baseline: Baseline,
    site: Site,
    ports: Callable[[str], RegionPorts],
    scope: Scope,
    options: RunOptions,
) -> tuple[list[ObservedGroup], _Read]:
    """Read each region (in parallel): a region that cannot be read is an error of its own."""
    regions = site.regions
    progress = options.progress
    counter = iter(range(1, len(regions) + 1))
    lock = threading.Lock()  # regions are read in parallel; numbers go out in order

    def read(
        region: str,
    ) -> tuple[list[ObservedGroup], dict[str, tuple[str, ...]], RunError | None]:
        if progress is not None:
            with lock:
                progress(f"reading {region} ({next(counter)}/{len(regions)})…")
        reader = ports(region).reader
        try:
            if scope.everything:
                groups = list(reader.read_managed(baseline))
            elif scope.group_ids:
                groups = list(reader.read_groups(scope.group_ids))
            else:
                groups = list(reader.read_groups_by_name(scope.group_names))
            groups, entries = _complete(baseline, reader, groups, options.now)
        except (ClientError, BotoCoreError) as exc:
            log.error("read_failed", region=region, error=str(exc))
            message = f"{region}: cannot read {scope.describe()}: {exc}"
            return [], {}, RunError(message, region=region)
        return groups, entries, None

    observed: list[ObservedGroup] = []
    errors: list[RunError] = []
    unmatched: list[str] = []
    prefix_lists: dict[str, tuple[str, ...]] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(REGION_WORKERS, len(regions)))) as pool:
        for region, (groups, entries, error) in zip(regions, pool.map(read, regions), strict=True):
            observed.extend(groups)
            prefix_lists.update(entries)
            if error is not None:
                errors.append(error)
            elif not groups:
                unmatched.append(region)
    return observed, _Read(tuple(errors), tuple(unmatched), prefix_lists)


def _apply(
    result: RunResult,
    ports: Callable[[str], RegionPorts],
    options: RunOptions,
    record: Record | None,
) -> RunResult:
    if options.progress is not None and options.mode is RunMode.ENFORCE:
        options.progress(f"applying {sum(1 for c in result.plan.changes if c.writes)} changes…")
    writers = Writers(
        revoker=lambda region: ports(region).revoker,
        authorizer=lambda region: ports(region).authorizer,
        journal=record.journal if record is not None else None,
        context=record.context if record is not None else None,
    )
    outcomes = apply_plan(result.plan, writers, mode=options.mode)
    changed = tuple(
        RunError(line, region=None, stage="write") for line in revoked_with_errors(outcomes)
    )
    applied = result.with_outcomes(outcomes)
    return RunResult(
        applied.plan,
        applied.outcomes,
        (*applied.errors, *changed),
        applied.observed,
        applied.unmatched_regions,
    )


def _log_summary(result: RunResult, site: Site, options: RunOptions, started: float) -> None:
    """The run's one summary line (the canonical log line)."""
    applies = options.mode in (RunMode.ENFORCE, RunMode.REPORT)
    log.info(
        "run_summary",
        mode="apply" if applies else "plan",
        account=site.account_id,
        regions=list(site.regions),
        **result.plan.summary().to_dict(),
        outcomes={status.value: n for status, n in result.statuses().items()},
        run_errors=len(result.errors),
        duration_ms=round((time.monotonic() - started) * 1000),
    )


def _prefixed(options: RunOptions, progress: Progress, prefix: str) -> RunOptions:
    """``options`` with every progress message prefixed (one account's lines in parallel)."""
    return replace(options, progress=lambda message: progress(prefix + message))
