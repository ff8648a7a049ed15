"""``sg-reconciler undo`` (and its former name ``restore``): put journaled revokes back.

Reads a journal (a file or an S3 prefix), re-authorizes what the filters select in the
account each rule was revoked in, and prints each rule; 0 all back or present, 1 otherwise.
"""

from __future__ import annotations

__all__ = ["run"]

import uuid
from typing import TYPE_CHECKING

from reconciler.cli.console import EXIT_ERROR, EXIT_OK, CommandError, Reported
from reconciler.cli.options import aws_options, load_accounts_file

if TYPE_CHECKING:
    import argparse
    from datetime import datetime

    from reconciler.adapters.accounts import MemberAccounts
    from reconciler.adapters.aws import AwsClients
    from reconciler.cli.console import Console
    from reconciler.core.journal import JournalEntry


def run(args: argparse.Namespace, console: Console) -> int:
    """Check the options, reach the accounts, read the journal, undo, print the report."""
    from reconciler.adapters.aws import AwsClients  # noqa: PLC0415
    from reconciler.undo import UndoFilter, account_clients, render_undo, undo_revokes  # noqa: PLC0415

    since = _since(args.since)
    if args.role_name and args.accounts is None:
        raise CommandError("--role-name needs --accounts FILE")
    aws = aws_options(args)
    session = aws.session()
    clients = AwsClients(session, aws.endpoint_url)
    home_region = (aws.regions or (session.region_name,))[0] or "us-east-1"
    members = _members(args, clients, home_region, console)
    entries = _read_journal(args.journal, clients, home_region, console)
    if entries is None:
        return EXIT_ERROR
    which = UndoFilter(
        since=since,
        regions=aws.regions,
        group_ids=args.group_id,
        rule_ids=args.rule_id,
        include_unconfirmed=args.include_unconfirmed,
    )
    route = account_clients(clients, home_region, members, str(args.accounts))
    report = undo_revokes(entries, route, which, dry_run=args.dry_run)
    if report.unconfirmed and not args.include_unconfirmed:
        console.note(
            f"warning: {len(report.unconfirmed)} revokes in the journal have no outcome (an"
            " interrupted run) and were not restored; add --include-unconfirmed to restore"
            " them too"
        )
    console.print(render_undo(report, dry_run=args.dry_run))
    return EXIT_ERROR if report.failed else EXIT_OK


def _since(text: str | None) -> datetime | None:
    """``--since`` as a time; CommandError naming the option when it is not one."""
    from reconciler.core.journal import parse_time  # noqa: PLC0415

    try:
        return parse_time(text) if text else None
    except ValueError as exc:
        raise CommandError(f"--since {exc}") from None


def _members(
    args: argparse.Namespace, base: AwsClients, region: str, console: Console
) -> MemberAccounts | None:
    """The accounts of ``--accounts`` (with ``--role-name``); Reported if the file is wrong."""
    if args.accounts is None:
        return None
    from reconciler.adapters.accounts import MemberAccounts  # noqa: PLC0415
    from reconciler.core.accounts import with_role  # noqa: PLC0415

    accounts = load_accounts_file(args.accounts, console)
    if accounts is None:
        raise Reported
    if args.role_name:
        try:
            accounts = with_role(accounts, args.role_name)
        except ValueError:
            raise CommandError(f"--role-name {args.role_name!r} is not an IAM role name") from None
    return MemberAccounts(accounts, base, run_id=uuid.uuid4().hex, sts_region=region)


def _read_journal(
    source: str, clients: AwsClients, region: str, console: Console
) -> list[JournalEntry] | None:
    """Every entry of the journal; None after printing each problem that makes it unusable."""
    from reconciler.adapters.journal import parse_s3_source, read_entries  # noqa: PLC0415
    from reconciler.core.errors import JournalReadError  # noqa: PLC0415

    try:
        s3 = clients.s3(region) if parse_s3_source(source) else None
        return list(read_entries(source, s3=s3))
    except JournalReadError as exc:
        for problem in exc.problems:
            console.note(f"error: {problem}")
        console.note("error: the journal cannot be used; nothing was restored")
        return None
