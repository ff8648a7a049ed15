"""``sg-reconciler plan`` and ``apply``: load, run the reconcile loop, print, exit code.

``run_reconcile`` is the one place the CLI calls the service's loop, for one account's
regions and for every account of an accounts file alike.
"""

from __future__ import annotations

__all__ = ["ReconcileRequest", "cmd_reconcile", "run", "run_reconcile", "tty_progress"]

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from reconciler.cli.console import (
    EXIT_DRIFT,
    EXIT_ERROR,
    EXIT_OK,
    CommandError,
    Reported,
    guarded,
)
from reconciler.cli.options import AwsOptions, aws_options, load_accounts_file, load_baseline
from reconciler.core.scope import RunMode

if TYPE_CHECKING:
    import argparse

    import boto3

    from reconciler.adapters.aws import AwsClients
    from reconciler.adapters.journal import FileJournal
    from reconciler.cli.console import Console
    from reconciler.core.accounts import AccountsFile
    from reconciler.core.journal import RunContext
    from reconciler.core.policy import Baseline
    from reconciler.service import Record, RunResult, Site

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ReconcileRequest:
    """One ``plan`` or ``apply``: what the command line asked for.

    ``journal`` (apply only) gets every revoke before its call; ``accounts`` reconciles
    every account of that file; ``quiet`` prints only the summary line and errors;
    ``session`` replaces the one ``aws`` would make (tests, the benchmarks).
    """

    policies: Path
    aws: AwsOptions
    apply: bool = False
    dry_run: bool = False
    output: str = "text"
    journal: Path | None = None
    force: bool = False
    accounts: Path | None = None
    quiet: bool = False
    session: boto3.Session | None = field(default=None, compare=False, repr=False)

    @property
    def mode(self) -> RunMode:
        """``plan``, ``apply --dry-run`` or ``apply``."""
        if not self.apply:
            return RunMode.PLAN
        return RunMode.DRY_RUN if self.dry_run else RunMode.ENFORCE


def run(args: argparse.Namespace, console: Console) -> int:
    """The ``plan``/``apply`` command line, run."""
    apply = args.command == "apply"
    request = ReconcileRequest(
        args.policies,
        aws_options(args),
        apply=apply,
        dry_run=apply and args.dry_run,
        output=args.output,
        journal=None if not apply or args.no_journal else args.journal,
        force=apply and args.force,
        accounts=args.accounts,
        quiet=args.quiet,
    )
    return cmd_reconcile(request, console)


def run_reconcile(
    baseline: Baseline,
    sites: Sequence[Site],
    request: ReconcileRequest,
    *,
    progress: Progress | None = None,
    record: Record | None = None,
) -> RunResult:
    """The reconcile loop for ``request`` at ``sites``: the CLI's one call into the service."""
    from reconciler.service import RunOptions, reconcile  # noqa: PLC0415

    options = RunOptions(mode=request.mode, honour_limits=not request.force, progress=progress)
    return reconcile(baseline, sites, options=options, record=record)


def cmd_reconcile(request: ReconcileRequest, console: Console) -> int:
    """Read, plan, (apply), print, and choose the exit code.

    Nothing is read before the baseline, the accounts file and the journal are known to
    be usable: a journal that cannot be opened stops the run before anything changes.
    """
    return guarded(lambda: _cmd_reconcile(request, console), console)


def _cmd_reconcile(request: ReconcileRequest, console: Console) -> int:
    from reconciler.adapters.aws import AwsClients  # noqa: PLC0415

    baseline = load_baseline(request.policies, console)
    if baseline is None:
        return EXIT_ERROR
    accounts = _accounts_file(request, console)
    writer = _open_journal(request)
    try:
        clients = AwsClients(request.session or request.aws.session(), request.aws.endpoint_url)
        if accounts is None:
            return _reconcile_regions(baseline, clients, request, writer, console)
        return _reconcile_accounts(
            baseline, accounts, clients, request, writer=writer, console=console
        )
    finally:
        if writer is not None:
            writer.close()


def _accounts_file(request: ReconcileRequest, console: Console) -> AccountsFile | None:
    """The accounts file if one was given; Reported after printing why it cannot be used."""
    if request.accounts is None:
        return None
    if request.aws.regions:
        raise CommandError(
            "--accounts and --region exclude each other (the file names the regions)"
        )
    accounts = load_accounts_file(request.accounts, console)
    if accounts is None:
        raise Reported
    return accounts


def _open_journal(request: ReconcileRequest) -> FileJournal | None:
    """The journal of a real apply; CommandError (nothing changed) if it cannot be written."""
    if request.mode is not RunMode.ENFORCE or request.journal is None:
        return None
    from reconciler.adapters.journal import FileJournal  # noqa: PLC0415
    from reconciler.core.errors import JournalUnavailable  # noqa: PLC0415

    try:
        return FileJournal(request.journal)
    except JournalUnavailable as exc:
        raise CommandError(
            f"{exc}; nothing was changed (choose a writable --journal PATH)"
        ) from None


def _reconcile_regions(
    baseline: Baseline,
    clients: AwsClients,
    request: ReconcileRequest,
    writer: FileJournal | None,
    console: Console,
) -> int:
    """One account (the caller's), each of its regions."""
    from reconciler.service import Record, Site  # noqa: PLC0415

    regions = request.aws.resolved_regions(clients.session)
    progress = None if request.quiet or len(regions) < 2 else tty_progress(console.err)
    context = _run_context(clients, regions[0]) if writer is not None else None
    record = Record(writer, context) if writer is not None and context is not None else None
    result = run_reconcile(
        baseline, [Site.of(clients.ec2, regions)], request, progress=progress, record=record
    )
    _log_journal(writer, context)
    console.print(_rendered(result, request, console.out))
    _warn_unmatched(result, request, console)
    return _exit_code(result, request, console)


def _reconcile_accounts(
    baseline: Baseline,
    accounts: AccountsFile,
    base: AwsClients,
    request: ReconcileRequest,
    *,
    writer: FileJournal | None,
    console: Console,
) -> int:
    """Every account of the file, printed by account (``plan``/``apply --accounts``)."""
    import uuid  # noqa: PLC0415

    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    from reconciler.adapters.accounts import MemberAccounts  # noqa: PLC0415
    from reconciler.render import account_entry, account_line  # noqa: PLC0415
    from reconciler.service import Record, Site  # noqa: PLC0415

    run_id = uuid.uuid4().hex  # also in the role session name: CloudTrail <-> journal
    members = MemberAccounts(accounts, base, run_id=run_id, sts_region=accounts.regions[0])
    try:
        targets = members.targets()
    except (ClientError, BotoCoreError) as exc:
        return console.fail(f"cannot resolve the accounts to reconcile: {exc}")
    context = _run_context(base, accounts.regions[0], run_id) if writer is not None else None
    record = Record(writer, context) if writer is not None and context is not None else None
    result = run_reconcile(
        baseline,
        [Site.member(t, members.clients) for t in targets],
        request,
        progress=None if request.quiet else tty_progress(console.err),
        record=record,
    )
    _log_journal(writer, context)
    runs = [
        (r.target, r.result.plan, r.result.outcomes, r.result.error_lines())
        for r in result.accounts
    ]
    entries = [account_entry(*run) for run in runs]
    lines = [account_line(target.label, plan, done, errors) for target, plan, done, errors in runs]
    text = _rendered(result, request, console.out, entries, () if request.quiet else lines)
    console.print(text)
    _warn_unmatched(result, request, console)
    return _exit_code(result, request, console)


def _warn_unmatched(result: RunResult, request: ReconcileRequest, console: Console) -> None:
    """A region where no group matches any policy looks clean: say so (a mistyped region).

    Not with ``--quiet``, which prints only the summary line and errors.
    """
    if request.quiet:
        return
    for region in result.unmatched_regions:
        console.note(
            f"warning: no security group in {region} matches any policy; check the region"
            " and the policies' match selectors"
        )


def tty_progress(err: TextIO) -> Progress | None:
    """A progress callback writing one line per step to ``err``, or None off a TTY."""
    if not err.isatty():
        return None
    import threading  # noqa: PLC0415

    lock = threading.Lock()  # regions and accounts are read in parallel

    def report(message: str) -> None:
        with lock:
            err.write(message + "\n")
            err.flush()

    return report


def _rendered(
    result: RunResult,
    request: ReconcileRequest,
    out: TextIO,
    accounts_json: list[dict[str, Any]] | None = None,
    account_lines: Sequence[str] = (),
) -> str:
    """The run for ``--output``: JSON (the contract, never shortened), markdown or text."""
    from reconciler.render import (  # noqa: PLC0415
        Palette,
        render_json,
        render_markdown,
        render_text,
    )

    errors = result.error_lines()
    dry_run = request.mode is RunMode.DRY_RUN
    if request.output == "json":
        return render_json(result.plan, result.outcomes, result.errors, accounts_json)
    if request.output == "markdown":
        text = render_markdown(
            result.plan, result.outcomes, errors, quiet=request.quiet, dry_run=dry_run
        )
        return "\n".join([text, *(f"- {line}" for line in account_lines)])
    palette = Palette(enabled=out.isatty() and "NO_COLOR" not in os.environ)
    text = render_text(
        result.plan,
        result.outcomes,
        errors,
        palette=palette,
        quiet=request.quiet,
        dry_run=dry_run,
    )
    return "\n".join([text, *account_lines])


def _log_journal(writer: FileJournal | None, context: RunContext | None) -> None:
    """Log where the journal went and how to undo the run (when anything was journaled)."""
    if writer is None or context is None or not writer.recorded:
        return
    import structlog  # noqa: PLC0415

    # A log line, not a print: off a TTY stderr carries only JSON log lines.
    structlog.get_logger("reconciler").info(
        "journal_written",
        path=str(writer.path),
        entries=writer.recorded,
        run_id=context.run_id,
        undo=f"sg-reconciler undo --journal {writer.path} --since {context.time}",
    )


def _exit_code(result: RunResult, request: ReconcileRequest, console: Console) -> int:
    """0 done or no drift, 2 drift (plan), 1 any error or a change blocked by limits (apply)."""
    if result.failed:
        return EXIT_ERROR
    blocked = result.plan.summary().blocked
    if request.mode is RunMode.ENFORCE and blocked:
        return console.fail(
            f"{blocked} changes were blocked by blast-radius limits and not made;"
            " review them, then fix the baseline or rerun with --force"
        )
    if request.apply:
        return EXIT_OK
    return EXIT_DRIFT if result.plan.has_drift else EXIT_OK


def _run_context(clients: AwsClients, region: str, run_id: str | None = None) -> RunContext:
    """Stamp for the journal of one ``apply``: a run id (new by default), now, and who calls."""
    import uuid  # noqa: PLC0415
    from datetime import UTC, datetime  # noqa: PLC0415

    from reconciler.core.journal import RunContext  # noqa: PLC0415

    return RunContext(
        run_id=run_id or uuid.uuid4().hex,
        trigger="cli-apply",
        time=datetime.now(UTC).isoformat(timespec="seconds"),
        actor=clients.caller_arn(region),
    )
