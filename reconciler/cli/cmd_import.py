"""``sg-reconciler import``: live groups -> a policy file on ``--output`` (or stdout).

Notes (rules no policy can state, groups not found) go to stderr; 0 written, 1 error.
"""

from __future__ import annotations

__all__ = ["run"]

from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.cli.console import EXIT_OK, CommandError
from reconciler.cli.options import aws_options

if TYPE_CHECKING:
    import argparse

    from reconciler.cli.console import Console
    from reconciler.import_groups import GroupSelection


def run(args: argparse.Namespace, console: Console) -> int:
    """Check the options, read the selected groups, write the file, say what was written."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    from reconciler.adapters.aws import AwsClients  # noqa: PLC0415
    from reconciler.import_groups import ImportFailed, import_policies  # noqa: PLC0415

    if args.force:
        console.note("warning: --force is deprecated for import; use --overwrite")
    selection = _selection(args)
    aws = aws_options(args)
    if len(aws.regions) > 1:
        raise CommandError("import reads one region (group ids belong to one); pass one --region")
    output: Path | None = args.output
    if output is not None and output.exists() and not (args.overwrite or args.force):
        raise CommandError(f"{output} exists; pass --overwrite to overwrite it")
    session = aws.session()
    region = aws.resolved_regions(session)[0]
    try:
        imported = import_policies(
            AwsClients(session, aws.endpoint_url).ec2(region),
            region,
            selection,
            name=args.name,
            egress=args.egress,
            per_selector=args.per_selector,
        )
    except ImportFailed as exc:
        raise CommandError(str(exc)) from None
    except (ClientError, BotoCoreError) as exc:
        raise CommandError(f"cannot read security groups in {region}: {exc}") from None
    for note in imported.notes:
        console.note(f"note: {note}")
    if output is None:
        console.out.write(imported.text)
        return EXIT_OK
    _write(output, imported.text)
    console.note(f"Wrote {imported.policies} policies for {imported.groups} groups to {output}.")
    return EXIT_OK


def _selection(args: argparse.Namespace) -> GroupSelection:
    """The groups ``--tag``, ``--group-id`` or ``--vpc-id`` name; CommandError if unusable."""
    from reconciler.import_groups import GroupSelection, parse_tag  # noqa: PLC0415

    try:
        tags = tuple(parse_tag(text) for text in args.tag)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    selection = GroupSelection(tags=tags, group_ids=tuple(args.group_id), vpc_id=args.vpc_id)
    if args.per_selector and selection.group_ids:
        raise CommandError(
            "--per-selector needs --tag or --vpc-id (ids select no group but their own)"
        )
    return selection


def _write(output: Path, text: str) -> None:
    """Write the policy file (and its directory); CommandError naming the file if it fails."""
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot write {output}: {exc}") from None
