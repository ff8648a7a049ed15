"""The ``sg-reconciler`` command: parse, call the service, print, exit code."""

from __future__ import annotations

__all__ = ["main"]

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from reconciler import __version__

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_ec2 import EC2Client

    from reconciler.adapters.aws import AwsClients
    from reconciler.core.journal import RunContext
    from reconciler.core.policy import Baseline

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_DRIFT = 2

DEFAULT_JOURNAL = Path(".sg-reconciler") / "journal.jsonl"


@dataclass(frozen=True, slots=True)
class AwsOptions:
    """Where to talk to AWS: profile, regions and an optional endpoint (moto, LocalStack)."""

    profile: str | None
    regions: tuple[str, ...]
    endpoint_url: str | None

    def session(self) -> boto3.Session:
        """A boto3 session for the profile."""
        import boto3  # noqa: PLC0415 - keep `validate` and `--help` fast

        return boto3.Session(profile_name=self.profile)

    def resolved_regions(self, session: boto3.Session) -> tuple[str, ...]:
        """The --region values, else the session's region; an error if there is none."""
        if self.regions:
            return self.regions
        if session.region_name:
            return (session.region_name,)
        raise SystemExit("error: no region: pass --region R or set AWS_REGION / AWS_DEFAULT_REGION")


def ec2_factory(session: boto3.Session, endpoint_url: str | None) -> Callable[[str], EC2Client]:
    """EC2 clients per region, created once, with standard retries and our user agent."""
    from reconciler.adapters.aws import AwsClients  # noqa: PLC0415

    return AwsClients(session, endpoint_url).ec2


def _common(
    parser: argparse.ArgumentParser,
    *,
    aws: bool = True,
    output: bool = False,
    policies: bool = True,
    region_help: str = "region to reconcile; repeat for several (default: the session's region)",
) -> None:
    if policies:
        parser.add_argument(
            "--policies",
            type=Path,
            default=Path(os.environ.get("SG_RECONCILER_POLICIES", "policies")),
            metavar="DIR",
            help="directory of *.yaml policy files (default: ./policies)",
        )
    if aws:
        parser.add_argument("--region", action="append", default=[], metavar="R", help=region_help)
        parser.add_argument("--profile", help="AWS named profile")
        parser.add_argument(
            "--endpoint-url",
            default=os.environ.get("AWS_ENDPOINT_URL"),
            metavar="URL",
            help="EC2 endpoint (e.g. a local moto server); AWS_ENDPOINT_URL is honoured too",
        )
    if output:
        parser.add_argument("--output", choices=("text", "json"), default="text")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="sg-reconciler",
        description="Keep EC2 security groups equal to a declarative baseline.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = sub.add_parser("validate", help="check the policy files (exit 0 valid, 1 invalid)")
    _common(validate, aws=False)

    plan = sub.add_parser("plan", help="show drift (exit 0 none, 2 drift, 1 error)")
    _common(plan, output=True)

    apply = sub.add_parser("apply", help="revoke drift (exit 0 all done, 1 any failure)")
    _common(apply, output=True)
    apply.add_argument("--dry-run", action="store_true", help="plan and report, but make no change")
    apply.add_argument(
        "--force",
        action="store_true",
        help="override blast-radius limits (max_revocations_*, allow_empty) for this run",
    )
    apply.add_argument(
        "--journal",
        type=Path,
        default=_default_journal(),
        metavar="PATH",
        help="append every revoke (before the call) and its outcome here as JSON lines, for"
        " `restore` (default: SG_RECONCILER_JOURNAL or ./.sg-reconciler/journal.jsonl);"
        " if it cannot be written, nothing is revoked",
    )
    apply.add_argument(
        "--no-journal", action="store_true", help="revoke without keeping a journal (no undo)"
    )

    restore = sub.add_parser(
        "restore",
        help="re-authorize journaled revokes (exit 0 all restored or present, 1 any failure)",
        description="Re-authorize rules that apply or the Lambda revoked, exactly as they were"
        " (with their descriptions), from a journal. Idempotent: a rule already there is"
        " reported already_present. Needs ec2:AuthorizeSecurityGroupIngress/Egress, which the"
        " Lambda's role does not have: run it with an operator's credentials. Restored rules"
        " are drift until the baseline allows them: update the policy (or switch the stack to"
        " report mode) first, or the next reconcile revokes them again.",
    )
    restore.add_argument(
        "--journal",
        default=str(_default_journal()),
        metavar="PATH|s3://BUCKET/PREFIX",
        help="a JSON-lines journal file, or every object under an S3 prefix (default:"
        " SG_RECONCILER_JOURNAL or ./.sg-reconciler/journal.jsonl)",
    )
    restore.add_argument(
        "--since",
        metavar="TIME",
        help="only revokes at or after TIME (ISO 8601 with a time zone, e.g. 2025-01-31T14:00:00Z)",
    )
    restore.add_argument(
        "--group-id", action="append", default=[], metavar="ID", help="only this group (repeat)"
    )
    restore.add_argument(
        "--rule-id",
        action="append",
        default=[],
        metavar="ID",
        help="only this revoked rule id, sgr-… (repeat)",
    )
    restore.add_argument(
        "--include-unconfirmed",
        action="store_true",
        help="also restore revokes whose outcome was never journaled (an interrupted run)",
    )
    restore.add_argument(
        "--dry-run", action="store_true", help="print what would be restored; change nothing"
    )
    _common(
        restore,
        policies=False,
        region_help="only rules journaled in this region; repeat for several (default: all)",
    )

    handle = sub.add_parser(
        "handle-event",
        help="run the Lambda handler locally on an event file (exit 0 ok, 1 failed)",
    )
    handle.add_argument("file", type=Path, help="EventBridge envelope or bare CloudTrail record")
    _common(handle)
    handle.add_argument("--mode", choices=("enforce", "report"), help="override SG_RECONCILER_MODE")

    package = sub.add_parser("package", help="build the Lambda zip (refuses invalid policies)")
    _common(package, aws=False)
    package.add_argument("--output", type=Path, default=Path("dist/sg-reconciler.zip"))
    package.add_argument("--architecture", choices=("arm64", "x86_64"), default="arm64")
    package.add_argument(
        "--bundle-boto3",
        action="store_true",
        help="ship boto3/botocore in the zip instead of using the Lambda runtime's",
    )

    deploy = sub.add_parser(
        "deploy", help="package, upload and create/update the CloudFormation stack"
    )
    _common(deploy)
    deploy.add_argument("--stack-name", required=True)
    deploy.add_argument("--bucket", help="S3 bucket for the code (default: created for you)")
    deploy.add_argument("--mode", choices=("enforce", "report"))
    deploy.add_argument("--schedule", metavar="EXPR", help="e.g. 'rate(15 minutes)'")
    deploy.add_argument("--notify-email", metavar="ADDR")
    deploy.add_argument("--ignore-principal", action="append", default=[], metavar="ARN")
    deploy.add_argument("--create-trail", action="store_true", help="create a CloudTrail trail")
    deploy.add_argument("--architecture", choices=("arm64", "x86_64"), default="arm64")
    deploy.add_argument("--bundle-boto3", action="store_true")
    deploy.add_argument(
        "--dry-run", action="store_true", help="print the change set, then delete it"
    )

    demo = sub.add_parser("demo", help="run the whole loop on a local simulated AWS account")
    _common(demo, aws=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sg-reconciler`` console script."""
    args = build_parser().parse_args(argv)
    from reconciler.log import configure_logging  # noqa: PLC0415

    configure_logging()
    if args.command == "validate":
        return cmd_validate(args.policies, out=sys.stdout, err=sys.stderr)
    if args.command == "demo":
        from reconciler.demo import run_demo  # noqa: PLC0415

        return run_demo(out=sys.stdout, policies=args.policies)
    if args.command == "package":
        return cmd_package(
            args.policies,
            args.output,
            architecture=args.architecture,
            bundle_boto3=args.bundle_boto3,
            out=sys.stdout,
            err=sys.stderr,
        )
    aws = AwsOptions(args.profile, tuple(args.region), args.endpoint_url)
    if args.command == "deploy":
        return cmd_deploy(args, aws, out=sys.stdout, err=sys.stderr)
    if args.command == "handle-event":
        return cmd_handle_event(args.file, args.policies, aws, mode=args.mode, out=sys.stdout)
    if args.command == "restore":
        return cmd_restore(args, aws, out=sys.stdout, err=sys.stderr)
    journal = None if getattr(args, "no_journal", True) else args.journal
    return cmd_reconcile(
        args.policies,
        aws,
        apply=args.command == "apply",
        dry_run=getattr(args, "dry_run", False),
        output=args.output,
        out=sys.stdout,
        err=sys.stderr,
        journal=journal,
        force=getattr(args, "force", False),
    )


def _default_journal() -> Path:
    return Path(os.environ.get("SG_RECONCILER_JOURNAL") or DEFAULT_JOURNAL)


def load_or_report(policies: Path, err: TextIO) -> Baseline | None:
    """Load the baseline, or print every problem (one per line) and return None."""
    from reconciler.adapters.policy_files import load_policies  # noqa: PLC0415
    from reconciler.core.errors import PolicyError  # noqa: PLC0415

    try:
        return load_policies(policies)
    except PolicyError as exc:
        for problem in exc.problems:
            print(str(problem), file=err)
        print(
            f"error: {len(exc.problems)} problem(s) in {policies}; nothing was changed",
            file=err,
        )
        return None


def cmd_validate(policies: Path, *, out: TextIO, err: TextIO) -> int:
    """``validate``: 0 when every file is valid, 1 otherwise (all errors on stderr)."""
    baseline = load_or_report(policies, err)
    if baseline is None:
        return EXIT_ERROR
    files = len(set(baseline.sources.values()))
    for warning in expiry_warnings(baseline, datetime.now(UTC)):
        print(warning, file=err)
    print(f"OK: {len(baseline.policies)} policies in {files} files", file=out)
    return EXIT_OK


EXPIRY_WARNING = timedelta(days=7)


def expiry_warnings(baseline: Baseline, now: datetime) -> list[str]:
    """One line per exception that expires within 7 days (it will then be revoked)."""
    out = []
    for policy, index, exception in baseline.expiring_exceptions(now, EXPIRY_WARNING):
        source = baseline.sources.get(policy.name, "?")
        line = baseline.locations.get((policy.name, "exceptions", index))
        where = f"{source}:{line}" if line is not None else source
        days = (exception.expires - now).total_seconds() / 86400
        out.append(
            f"warning: {where}: policy {policy.name} exceptions[{index}] expires"
            f" {exception.expires.isoformat()} (in {days:.1f} days; the rule is revoked then):"
            f" {exception.reason}"
        )
    return out


def cmd_reconcile(
    policies: Path,
    aws: AwsOptions,
    *,
    apply: bool,
    dry_run: bool,
    output: str,
    out: TextIO,
    err: TextIO,
    session: boto3.Session | None = None,
    journal: Path | None = None,
    force: bool = False,
) -> int:
    """``plan`` and ``apply``: read, plan, (apply), print, and choose the exit code.

    With ``journal`` (apply only), every revoke is appended to that file before its call;
    a journal that cannot be opened stops the run before anything is read or changed.
    """
    from reconciler.adapters.aws import AwsClients  # noqa: PLC0415
    from reconciler.adapters.ec2 import RuleAuthorizer  # noqa: PLC0415
    from reconciler.render import Palette, render_json, render_text  # noqa: PLC0415
    from reconciler.service import reconcile  # noqa: PLC0415

    baseline = load_or_report(policies, err)
    if baseline is None:
        return EXIT_ERROR
    writer = None
    if apply and not dry_run and journal is not None:
        from reconciler.adapters.journal import FileJournal  # noqa: PLC0415
        from reconciler.core.errors import JournalUnavailable  # noqa: PLC0415

        try:
            writer = FileJournal(journal)
        except JournalUnavailable as exc:
            print(f"error: {exc}; nothing was changed (choose a writable --journal PATH)", file=err)
            return EXIT_ERROR
    session = session or aws.session()
    regions = aws.resolved_regions(session)
    clients = AwsClients(session, aws.endpoint_url)
    context = _run_context(clients, regions[0]) if writer is not None else None
    try:
        result = reconcile(
            baseline,
            clients.ec2,
            regions,
            apply=apply,
            dry_run=dry_run,
            journal=writer,
            context=context,
            force=force,
            authorizers=lambda region: RuleAuthorizer(clients.ec2(region)),
        )
    finally:
        if writer is not None:
            writer.close()
    if writer is not None and context is not None and writer.recorded:
        import structlog  # noqa: PLC0415

        # A log line, not a print: off a TTY stderr carries only JSON log lines.
        structlog.get_logger("reconciler").info(
            "journal_written",
            path=str(journal),
            entries=writer.recorded,
            run_id=context.run_id,
            undo=f"sg-reconciler restore --journal {journal} --since {context.time}",
        )
    if output == "json":
        print(render_json(result.plan, result.outcomes, list(result.errors)), file=out)
    else:
        palette = Palette(enabled=out.isatty() and "NO_COLOR" not in os.environ)
        print(
            render_text(result.plan, result.outcomes, list(result.errors), palette=palette),
            file=out,
        )
    if result.failed:
        return EXIT_ERROR
    blocked = result.plan.summary().blocked
    if apply and blocked and not dry_run:
        print(
            f"error: {blocked} changes were blocked by blast-radius limits and not made;"
            " review them, then fix the baseline or rerun with --force",
            file=err,
        )
        return EXIT_ERROR
    if apply:
        return EXIT_OK
    return EXIT_DRIFT if result.plan.has_drift else EXIT_OK


def _run_context(clients: AwsClients, region: str) -> RunContext:
    """Stamp for the journal of one ``apply``: a new run id, now, and who is calling."""
    import uuid  # noqa: PLC0415
    from datetime import UTC, datetime  # noqa: PLC0415

    from reconciler.core.journal import RunContext  # noqa: PLC0415

    return RunContext(
        run_id=uuid.uuid4().hex,
        trigger="cli-apply",
        time=datetime.now(UTC).isoformat(timespec="seconds"),
        actor=clients.caller_arn(region),
    )


def cmd_restore(args: argparse.Namespace, aws: AwsOptions, *, out: TextIO, err: TextIO) -> int:
    """``restore``: read a journal, re-authorize what the filters select, print each rule."""
    from reconciler.adapters.aws import AwsClients  # noqa: PLC0415
    from reconciler.adapters.journal import parse_s3_source, read_entries  # noqa: PLC0415
    from reconciler.core.errors import JournalReadError  # noqa: PLC0415
    from reconciler.core.journal import parse_time  # noqa: PLC0415
    from reconciler.restore import render_restore, restore  # noqa: PLC0415

    try:
        since = parse_time(args.since) if args.since else None
    except ValueError as exc:
        print(f"error: --since {exc}", file=err)
        return EXIT_ERROR
    session = aws.session()
    clients = AwsClients(session, aws.endpoint_url)
    try:
        s3_region = (aws.regions or (session.region_name,))[0]
        s3 = clients.s3(s3_region) if parse_s3_source(args.journal) else None
        entries = read_entries(args.journal, s3=s3)
    except JournalReadError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=err)
        print("error: the journal cannot be used; nothing was restored", file=err)
        return EXIT_ERROR
    report = restore(
        entries,
        clients.ec2,
        since=since,
        regions=aws.regions,
        group_ids=args.group_id,
        rule_ids=args.rule_id,
        include_unconfirmed=args.include_unconfirmed,
        dry_run=args.dry_run,
    )
    if report.unconfirmed and not args.include_unconfirmed:
        print(
            f"warning: {len(report.unconfirmed)} revokes in the journal have no outcome (an"
            " interrupted run) and were not restored; add --include-unconfirmed to restore"
            " them too",
            file=err,
        )
    print(render_restore(report, dry_run=args.dry_run), file=out)
    return EXIT_ERROR if report.failed else EXIT_OK


def cmd_handle_event(
    file: Path,
    policies: Path,
    aws: AwsOptions,
    *,
    mode: str | None,
    out: TextIO,
    session: boto3.Session | None = None,
) -> int:
    """``handle-event``: the Lambda's code path on a local event file; prints the summary."""
    import json  # noqa: PLC0415

    from reconciler.runtime import build_responder, run_event  # noqa: PLC0415

    try:
        event = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"error: cannot read event {file}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    session = session or aws.session()
    env = dict(os.environ)
    env["SG_RECONCILER_POLICIES"] = str(policies)
    env["SG_RECONCILER_REGIONS"] = ",".join(aws.resolved_regions(session))
    if aws.endpoint_url:
        env["AWS_ENDPOINT_URL"] = aws.endpoint_url
    if mode:
        env["SG_RECONCILER_MODE"] = mode
    try:
        responder = build_responder(env, session=session)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    summary, failed = run_event(event, responder)
    print(json.dumps(summary, indent=2), file=out)
    return EXIT_ERROR if failed else EXIT_OK


def cmd_package(
    policies: Path,
    output: Path,
    *,
    architecture: str,
    bundle_boto3: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    """``package``: build the reproducible Lambda zip; invalid policies are refused."""
    from reconciler.core.errors import PolicyError  # noqa: PLC0415
    from reconciler.deploy.package import PackageError, build_package  # noqa: PLC0415

    if load_or_report(policies, err) is None:
        return EXIT_ERROR
    try:
        result = build_package(
            policies, output, architecture=architecture, bundle_boto3=bundle_boto3
        )
    except (PackageError, PolicyError) as exc:
        print(f"error: {exc}", file=err)
        return EXIT_ERROR
    print(
        f"Built {result.path} ({result.size} bytes, {result.entries} files, {architecture},"
        f" sha256 {result.sha256})",
        file=out,
    )
    return EXIT_OK


def _deploy_parameters(args: argparse.Namespace, baseline: Baseline) -> dict[str, str]:
    """Stack parameters from the options actually given (the rest keep deployed values)."""
    params: dict[str, str] = {"Architecture": args.architecture}
    given = {
        "Mode": args.mode,
        "Schedule": args.schedule,
        "NotifyEmail": args.notify_email,
        "IgnorePrincipals": ",".join(args.ignore_principal) or None,
        "CreateTrail": "true" if args.create_trail else None,
    }
    params.update({k: v for k, v in given.items() if v is not None})
    common = _common_tag(baseline)
    if common is not None:
        params["ManagedTagKey"], params["ManagedTagValue"] = common
    return params


def _common_tag(baseline: Baseline) -> tuple[str, str] | None:
    """A tag every policy selects by, if any: the role can then be limited to it."""
    if not baseline.uses_only_tag_selectors():
        return None
    shared = set.intersection(*(set((p.match.tags or {}).items()) for p in baseline.policies))
    return min(shared) if shared else None


def cmd_deploy(args: argparse.Namespace, aws: AwsOptions, *, out: TextIO, err: TextIO) -> int:
    """``deploy``: package, upload, create or update one stack per region, print outputs."""
    import tempfile  # noqa: PLC0415

    from reconciler.deploy.package import PackageError, build_package  # noqa: PLC0415
    from reconciler.deploy.stack import deploy_stack  # noqa: PLC0415

    baseline = load_or_report(args.policies, err)
    if baseline is None:
        return EXIT_ERROR
    session = aws.session()
    regions = aws.resolved_regions(session)
    params = _deploy_parameters(args, baseline)
    code = EXIT_OK
    with tempfile.TemporaryDirectory(prefix="sg-reconciler-") as tmp:
        try:
            package = build_package(
                args.policies,
                Path(tmp) / "sg-reconciler.zip",
                architecture=args.architecture,
                bundle_boto3=args.bundle_boto3,
            )
        except PackageError as exc:
            print(f"error: {exc}", file=err)
            return EXIT_ERROR
        for region in regions:
            result = deploy_stack(
                session=session,
                stack_name=args.stack_name,
                region=region,
                zip_path=package.path,
                bucket=args.bucket,
                parameters=params,
                endpoint_url=aws.endpoint_url,
                dry_run=args.dry_run,
                out=out,
            )
            if not result.ok:
                code = EXIT_ERROR
                for failure in result.failures:
                    print(f"error: {region} {args.stack_name}: {failure}", file=err)
    return code
