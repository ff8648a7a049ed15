"""``sg-reconciler package``: build the reproducible Lambda zip; invalid policies are refused."""

from __future__ import annotations

__all__ = ["note_without_bytecode", "run"]

from typing import TYPE_CHECKING

from reconciler.cli.console import EXIT_ERROR, EXIT_OK, CommandError
from reconciler.cli.options import load_accounts_file, load_baseline

if TYPE_CHECKING:
    import argparse

    from reconciler.cli.console import Console


def run(args: argparse.Namespace, console: Console) -> int:
    """Check the policies (and the accounts file), build the zip, print what it holds."""
    from reconciler.core.errors import PolicyError  # noqa: PLC0415
    from reconciler.deploy.package import PackageError, build_package  # noqa: PLC0415

    if load_baseline(args.policies, console) is None:
        return EXIT_ERROR
    if args.accounts is not None and load_accounts_file(args.accounts, console) is None:
        return EXIT_ERROR
    try:
        result = build_package(
            args.policies,
            args.output,
            architecture=args.architecture,
            bundle_boto3=args.bundle_boto3,
            accounts=args.accounts,
        )
    except (PackageError, PolicyError) as exc:
        raise CommandError(str(exc)) from None
    console.print(
        f"Built {result.path} ({result.size} bytes, {result.entries} files, {args.architecture},"
        f" sha256 {result.sha256})"
    )
    note_without_bytecode(result.compiled, console)
    return EXIT_OK


def note_without_bytecode(compiled: int, console: Console) -> None:
    """Say that a package without bytecode costs every cold start, and how to fix it."""
    if not compiled:
        console.note(
            "note: no CPython 3.12 here, so the package holds no bytecode: Lambda compiles"
            " every module it imports on each cold start (install python3.12, or set"
            " SG_RECONCILER_LAMBDA_PYTHON to one, and rebuild)"
        )
