"""``sg-reconciler deploy``: package, upload, create or update one stack per region."""

from __future__ import annotations

__all__ = ["run"]

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.cli.console import EXIT_ERROR, EXIT_OK, CommandError, Reported
from reconciler.cli.options import aws_options, load_accounts_file, load_baseline

if TYPE_CHECKING:
    import argparse

    import boto3

    from reconciler.cli.console import Console
    from reconciler.core.accounts import AccountsFile
    from reconciler.deploy.parameters import StackOptions


def run(args: argparse.Namespace, console: Console) -> int:
    """Check everything the stack needs first, then build the zip and deploy each region."""
    from reconciler.cli.cmd_package import note_without_bytecode  # noqa: PLC0415
    from reconciler.deploy.package import PackageError, build_package  # noqa: PLC0415
    from reconciler.deploy.parameters import ParameterError, stack_parameters  # noqa: PLC0415

    baseline = load_baseline(args.policies, console)
    if baseline is None:
        return EXIT_ERROR
    try:
        params = stack_parameters(
            _stack_options(args), baseline, _accounts(args, console), str(args.accounts)
        )
    except ParameterError as exc:
        raise CommandError(str(exc)) from None
    aws = aws_options(args)
    session = aws.session()
    regions = aws.resolved_regions(session)
    with tempfile.TemporaryDirectory(prefix="sg-reconciler-") as tmp:
        try:
            package = build_package(
                args.policies,
                Path(tmp) / "sg-reconciler.zip",
                architecture=args.architecture,
                bundle_boto3=args.bundle_boto3,
                accounts=args.accounts,
            )
        except PackageError as exc:
            raise CommandError(str(exc)) from None
        note_without_bytecode(package.compiled, console)
        ok = [
            _deploy(args, session, region, zip_path=package.path, params=params, console=console)
            for region in regions
        ]
    return EXIT_OK if all(ok) else EXIT_ERROR


def _stack_options(args: argparse.Namespace) -> StackOptions:
    from reconciler.deploy.parameters import StackOptions  # noqa: PLC0415

    return StackOptions(
        architecture=args.architecture,
        mode=args.mode,
        schedule=args.schedule,
        notify_email=args.notify_email,
        ignore_principals=tuple(args.ignore_principal),
        create_trail=args.create_trail,
        create_dashboard=args.create_dashboard,
        organization_id=args.organization_id,
    )


def _accounts(args: argparse.Namespace, console: Console) -> AccountsFile | None:
    """The hub's accounts file, if ``--accounts`` names one; Reported if it is wrong."""
    if args.accounts is None:
        return None
    accounts = load_accounts_file(args.accounts, console)
    if accounts is None:
        raise Reported
    return accounts


def _deploy(
    args: argparse.Namespace,
    session: boto3.Session,
    region: str,
    *,
    zip_path: Path,
    params: dict[str, str],
    console: Console,
) -> bool:
    """Deploy the stack in one region; print each failure, and return whether it went well."""
    from reconciler.deploy.stack import DeployRequest, deploy_stack  # noqa: PLC0415

    request = DeployRequest(
        stack_name=args.stack_name,
        region=region,
        zip_path=zip_path,
        parameters=params,
        bucket=args.bucket,
        dry_run=args.dry_run,
    )
    result = deploy_stack(request, session=session, out=console.out, endpoint_url=args.endpoint_url)
    for failure in result.failures:
        console.note(f"error: {region} {args.stack_name}: {failure}")
    return result.ok
