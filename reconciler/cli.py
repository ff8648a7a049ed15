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
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from reconciler import __version__

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_ec2 import EC2Client

    from reconciler.adapters.aws import AwsClients
    from reconciler.adapters.journal import FileJournal
    from reconciler.core.accounts import AccountsFile
    from reconciler.core.journal import RunContext
    from reconciler.core.policy import Baseline
    from reconciler.service import RunResult

T = TypeVar("T")

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
    accounts: bool = False,
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
        parser.add_argument(
            "--output",
            choices=("text", "json", "markdown"),
            default="text",
            help="text (default), json (the public contract) or markdown (a PR comment)",
        )
        parser.add_argument(
            "--quiet",
            "-q",
            action="store_true",
            help="text and markdown: only the summary line and errors; no progress",
        )
    if accounts:
        _accounts_option(
            parser,
            "reconcile every account of this accounts file (assuming its role in each), in"
            " the file's regions; not with --region",
        )


def _deploy_parser(sub: Any) -> None:
    """The ``deploy`` subcommand's options."""
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
    deploy.add_argument(
        "--create-dashboard",
        action="store_true",
        help="create a CloudWatch dashboard of the function's metrics (about USD 3 a month)",
    )
    deploy.add_argument("--architecture", choices=("arm64", "x86_64"), default="arm64")
    deploy.add_argument("--bundle-boto3", action="store_true")
    _hub_options(deploy)
    deploy.add_argument(
        "--dry-run", action="store_true", help="print the change set, then delete it"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="sg-reconciler",
        description="Keep EC2 security groups equal to a declarative baseline.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = sub.add_parser("validate", help="check the policy files (exit 0 valid, 1 invalid)")
    _common(validate)  # accepts the AWS options like every command; reads no AWS

    plan = sub.add_parser("plan", help="show drift (exit 0 none, 2 drift, 1 error)")
    _common(plan, output=True, accounts=True)

    apply = sub.add_parser("apply", help="revoke drift (exit 0 all done, 1 any failure)")
    _common(apply, output=True, accounts=True)
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
    _accounts_option(
        restore,
        "restore each rule in the account it was journaled in, assuming the file's role there"
        " (the caller's own account uses the caller's credentials); without it, rules"
        " journaled in another account fail and name this option",
    )
    restore.add_argument(
        "--role-name",
        metavar="NAME",
        help="with --accounts: assume this role in every account instead of the file's (the"
        " member role may not authorize; e.g. OrganizationAccountAccessRole)",
    )

    handle = sub.add_parser(
        "handle-event",
        help="run the Lambda handler locally on an event file (exit 0 ok, 1 failed)",
    )
    handle.add_argument("file", type=Path, help="EventBridge envelope or bare CloudTrail record")
    _common(handle)
    handle.add_argument("--mode", choices=("enforce", "report"), help="override SG_RECONCILER_MODE")
    _accounts_option(handle, "act as a hub with this accounts file (SG_RECONCILER_ACCOUNTS)")

    package = sub.add_parser("package", help="build the Lambda zip (refuses invalid policies)")
    _common(package, aws=False)
    package.add_argument("--output", type=Path, default=Path("dist/sg-reconciler.zip"))
    package.add_argument("--architecture", choices=("arm64", "x86_64"), default="arm64")
    package.add_argument(
        "--bundle-boto3",
        action="store_true",
        help="ship boto3/botocore in the zip instead of using the Lambda runtime's",
    )
    _accounts_option(package, "ship this accounts file (checked first) as accounts.yaml (a hub)")

    _deploy_parser(sub)

    demo = sub.add_parser("demo", help="run the whole loop on a local simulated AWS account")
    _common(demo, aws=False)
    _import_parser(sub)
    sub.add_parser("schema", help="print the JSON Schema of the policy file format")
    return parser


def _import_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    imp = sub.add_parser(
        "import",
        help="write baseline YAML from live groups (exit 0 written, 1 error)",
        description="Read live security groups and write them as a policy file: one policy"
        " per group (match: group_ids), or with --per-selector one per tag (or the VPC) whose"
        " groups have identical rules. `validate` accepts the result and `plan` right after"
        " shows no drift.",
    )
    _common(imp, policies=False, region_help="the region to read (default: the session's)")
    which = imp.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="groups carrying this tag; repeat for several (a group with any of them)",
    )
    which.add_argument(
        "--group-id", action="append", default=[], metavar="ID", help="this group (repeat)"
    )
    which.add_argument("--vpc-id", metavar="ID", help="every group of this VPC")
    imp.add_argument(
        "--name",
        metavar="NAME",
        help="the policy name when one policy results, else the prefix of each name"
        " (default: the group name, or the tag value with --per-selector)",
    )
    imp.add_argument("--output", type=Path, metavar="FILE", help="write here instead of to stdout")
    imp.add_argument("--force", action="store_true", help="overwrite --output if it exists")
    imp.add_argument(
        "--egress",
        action="store_true",
        help="manage egress too (write egress: rules); default: egress unmanaged",
    )
    imp.add_argument(
        "--per-selector",
        action="store_true",
        help="one policy per --tag (or the --vpc-id) matching by that selector, when its groups"
        " have identical rules; otherwise one policy per group (and a note says why)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sg-reconciler`` console script."""
    args = build_parser().parse_args(argv)
    from reconciler.log import configure_logging  # noqa: PLC0415

    quiet = getattr(args, "quiet", False)
    # --quiet: only the summary and errors, so info logs go too (unless a level is set).
    configure_logging(
        level="WARNING" if quiet and "SG_RECONCILER_LOG_LEVEL" not in os.environ else None
    )
    if args.command == "schema":
        return cmd_schema(out=sys.stdout)
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
            accounts=args.accounts,
        )
    aws = AwsOptions(args.profile, tuple(args.region), args.endpoint_url)
    if args.command == "deploy":
        return cmd_deploy(args, aws, out=sys.stdout, err=sys.stderr)
    if args.command == "handle-event":
        return cmd_handle_event(
            args.file, args.policies, aws, mode=args.mode, out=sys.stdout, accounts=args.accounts
        )
    if args.command == "restore":
        return cmd_restore(args, aws, out=sys.stdout, err=sys.stderr)
    if args.command == "import":
        return cmd_import(args, aws, out=sys.stdout, err=sys.stderr)
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
        accounts=args.accounts,
        quiet=quiet,
    )


def _accounts_option(parser: argparse.ArgumentParser, text: str) -> None:
    parser.add_argument("--accounts", type=Path, metavar="FILE", help=text)


def _hub_options(deploy: argparse.ArgumentParser) -> None:
    _accounts_option(
        deploy,
        "deploy a hub: ship this accounts file and let the function assume its role_name"
        " (MemberRoleName); without it the stack reconciles its own account only",
    )
    deploy.add_argument(
        "--organization-id",
        metavar="ID",
        help="o-…: let this organization's accounts forward events to the hub (OrganizationId)",
    )


def load_accounts_or_report(path: Path, err: TextIO) -> AccountsFile | None:
    """Load an accounts file, or print every problem (one per line) and return None."""
    from reconciler.adapters.accounts import load_accounts  # noqa: PLC0415

    return _load_or_report(load_accounts, path, err)


def _default_journal() -> Path:
    return Path(os.environ.get("SG_RECONCILER_JOURNAL") or DEFAULT_JOURNAL)


def load_or_report(policies: Path, err: TextIO) -> Baseline | None:
    """Load the baseline, or print every problem (one per line) and return None."""
    from reconciler.adapters.policy_files import load_policies  # noqa: PLC0415

    return _load_or_report(load_policies, policies, err)


def _load_or_report(load: Callable[[Path], T], path: Path, err: TextIO) -> T | None:
    """``load(path)``, or print each of its PolicyError problems and a closing line."""
    from reconciler.core.errors import PolicyError  # noqa: PLC0415

    try:
        return load(path)
    except PolicyError as exc:
        for problem in exc.problems:
            print(str(problem), file=err)
        print(f"error: {len(exc.problems)} problem(s) in {path}; nothing was changed", file=err)
        return None


def cmd_validate(policies: Path, *, out: TextIO, err: TextIO) -> int:
    """``validate``: 0 when every file is valid, 1 otherwise (all errors on stderr)."""
    baseline = load_or_report(policies, err)
    if baseline is None:
        return EXIT_ERROR
    files = len(set(baseline.sources.values()))
    for warning in expiry_warnings(baseline, datetime.now(UTC)) + inert_warnings(baseline):
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


def inert_warnings(baseline: Baseline) -> list[str]:
    """One line per egress exception of a policy that does not manage egress (it does nothing)."""
    out = []
    for policy, index, _ in baseline.inert_exceptions():
        source = baseline.sources.get(policy.name, "?")
        line = baseline.locations.get((policy.name, "exceptions", index))
        where = f"{source}:{line}" if line is not None else source
        out.append(
            f"warning: {where}: policy {policy.name} exceptions[{index}] is an egress exception"
            " (to:), but the policy leaves egress unmanaged, so it changes nothing; list the"
            " allowed egress rules under egress:, or remove it"
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
    accounts: Path | None = None,
    quiet: bool = False,
) -> int:
    """``plan`` and ``apply``: read, plan, (apply), print, and choose the exit code.

    With ``journal`` (apply only), every revoke is appended to that file before its call;
    a journal that cannot be opened stops the run before anything is read or changed.
    With ``accounts``, every account of that file is reconciled (see reconcile_accounts).
    ``quiet`` prints only the summary line and errors; progress lines go to ``err`` only
    when it is a TTY and the run spans several regions or accounts.
    """
    from reconciler.adapters.aws import AwsClients  # noqa: PLC0415
    from reconciler.adapters.ec2 import RuleAuthorizer  # noqa: PLC0415
    from reconciler.service import reconcile  # noqa: PLC0415

    baseline = load_or_report(policies, err)
    if baseline is None:
        return EXIT_ERROR
    accounts_file = None
    if accounts is not None:
        if aws.regions:
            print(
                "error: --accounts and --region exclude each other (the file names the regions)",
                file=err,
            )
            return EXIT_ERROR
        accounts_file = load_accounts_or_report(accounts, err)
        if accounts_file is None:
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
    if accounts_file is not None:
        return _reconcile_accounts(
            baseline,
            accounts_file,
            AwsClients(session, aws.endpoint_url),
            apply=apply,
            dry_run=dry_run,
            output=output,
            out=out,
            err=err,
            writer=writer,
            force=force,
            quiet=quiet,
        )
    regions = aws.resolved_regions(session)
    progress = None if quiet or len(regions) < 2 else tty_progress(err)
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
            progress=progress,
        )
    finally:
        if writer is not None:
            writer.close()
    _log_journal(writer, context)
    print(_rendered(result, output, out=out, quiet=quiet), file=out)
    return _exit_code(result, apply=apply, dry_run=dry_run, err=err)


def tty_progress(err: TextIO) -> Callable[[str], None] | None:
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
    output: str,
    *,
    out: TextIO,
    quiet: bool,
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

    errors = list(result.errors)
    if output == "json":
        return render_json(result.plan, result.outcomes, errors, accounts_json)
    if output == "markdown":
        text = render_markdown(result.plan, result.outcomes, errors, quiet=quiet)
        return "\n".join([text, *(f"- {line}" for line in account_lines)])
    palette = Palette(enabled=out.isatty() and "NO_COLOR" not in os.environ)
    text = render_text(result.plan, result.outcomes, errors, palette=palette, quiet=quiet)
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
        undo=f"sg-reconciler restore --journal {writer.path} --since {context.time}",
    )


def _exit_code(result: RunResult, *, apply: bool, dry_run: bool, err: TextIO) -> int:
    """0 done or no drift, 2 drift (plan), 1 any error or a change blocked by limits (apply)."""
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


def _reconcile_accounts(
    baseline: Baseline,
    accounts: AccountsFile,
    base: AwsClients,
    *,
    apply: bool,
    dry_run: bool,
    output: str,
    out: TextIO,
    err: TextIO,
    writer: FileJournal | None,
    force: bool,
    quiet: bool = False,
) -> int:
    """``plan``/``apply --accounts``: every account of the file, printed by account."""
    import uuid  # noqa: PLC0415

    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    from reconciler.adapters.accounts import MemberAccounts  # noqa: PLC0415
    from reconciler.render import account_entry, account_line  # noqa: PLC0415
    from reconciler.service import reconcile_accounts  # noqa: PLC0415

    run_id = uuid.uuid4().hex  # also in the role session name: CloudTrail <-> journal
    members = MemberAccounts(accounts, base, run_id=run_id, sts_region=accounts.regions[0])
    context = None
    try:
        try:
            targets = members.targets()
        except (ClientError, BotoCoreError) as exc:
            print(f"error: cannot resolve the accounts to reconcile: {exc}", file=err)
            return EXIT_ERROR
        if writer is not None:
            context = _run_context(base, accounts.regions[0], run_id)
        run = reconcile_accounts(
            baseline,
            targets,
            members.clients,
            apply=apply,
            dry_run=dry_run,
            journal=writer,
            context=context,
            force=force,
            progress=None if quiet else tty_progress(err),
        )
    finally:
        if writer is not None:
            writer.close()
    _log_journal(writer, context)
    result = run.result
    entries = [
        account_entry(r.target, r.result.plan, r.result.outcomes, r.result.errors)
        for r in run.accounts
    ]
    lines = [
        account_line(r.target.label, r.result.plan, r.result.outcomes, r.result.errors)
        for r in run.accounts
    ]
    print(
        _rendered(
            result,
            output,
            out=out,
            quiet=quiet,
            accounts_json=entries,
            account_lines=() if quiet else lines,
        ),
        file=out,
    )
    return _exit_code(result, apply=apply, dry_run=dry_run, err=err)


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
    if args.role_name and args.accounts is None:
        print("error: --role-name needs --accounts FILE", file=err)
        return EXIT_ERROR
    session = aws.session()
    clients = AwsClients(session, aws.endpoint_url)
    home_region = (aws.regions or (session.region_name,))[0] or "us-east-1"
    ec2_in = _journal_accounts(args.accounts, args.role_name, clients, home_region, err)
    if ec2_in is None:
        return EXIT_ERROR
    try:
        s3 = clients.s3(home_region) if parse_s3_source(args.journal) else None
        entries = read_entries(args.journal, s3=s3)
    except JournalReadError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=err)
        print("error: the journal cannot be used; nothing was restored", file=err)
        return EXIT_ERROR
    report = restore(
        entries,
        ec2_in,
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


def _journal_accounts(
    path: Path | None, role_name: str | None, base: AwsClients, region: str, err: TextIO
) -> Callable[[str | None, str], EC2Client] | None:
    """EC2 clients in the account a journal entry names, or None after printing why not.

    An entry without an account (a single-account run) and one of the caller's own account
    use the caller's credentials. Any other account needs ``path``: its role is assumed
    there. What cannot be reached raises AccountUnreachable, which fails only its rules.
    """
    import functools  # noqa: PLC0415
    import uuid  # noqa: PLC0415

    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    from reconciler.adapters.accounts import MemberAccounts  # noqa: PLC0415
    from reconciler.core.accounts import with_role  # noqa: PLC0415
    from reconciler.restore import AccountUnreachable  # noqa: PLC0415

    members = None
    if path is not None:
        accounts = load_accounts_or_report(path, err)
        if accounts is None:
            return None
        if role_name:
            try:
                accounts = with_role(accounts, role_name)
            except ValueError:
                print(f"error: --role-name {role_name!r} is not an IAM role name", file=err)
                return None
        members = MemberAccounts(accounts, base, run_id=uuid.uuid4().hex, sts_region=region)

    @functools.cache
    def own_account() -> str:
        try:
            account: str = base.sts(region).get_caller_identity()["Account"]
        except (ClientError, BotoCoreError) as exc:
            raise AccountUnreachable(
                f"cannot tell which account the credentials act in: {exc}"
            ) from exc
        return account

    def ec2_in(account: str | None, entry_region: str) -> EC2Client:
        if account is None or account == own_account():
            return base.ec2(entry_region)
        if members is None:
            raise AccountUnreachable(
                f"journaled in account {account}, but the credentials act in {own_account()};"
                " pass --accounts FILE to restore it through a role there"
            )
        try:
            target = members.target(account)
        except (ClientError, BotoCoreError) as exc:
            raise AccountUnreachable(f"cannot resolve the accounts file: {exc}") from exc
        if target is None:
            raise AccountUnreachable(f"account {account} is not in {path}")
        try:
            return members.clients(target).ec2(entry_region)
        except (ClientError, BotoCoreError) as exc:
            raise AccountUnreachable(f"cannot assume {target.role_arn}: {exc}") from exc

    return ec2_in


def cmd_schema(*, out: TextIO) -> int:
    """``schema``: the JSON Schema of a policy file (``schema/policy.schema.json``)."""
    import json  # noqa: PLC0415

    from reconciler.core.schema import policy_schema  # noqa: PLC0415

    print(json.dumps(policy_schema(), indent=2, ensure_ascii=False), file=out)
    return EXIT_OK


def cmd_import(args: argparse.Namespace, aws: AwsOptions, *, out: TextIO, err: TextIO) -> int:
    """``import``: live groups -> a policy file on ``--output`` (or stdout); notes on stderr."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    from reconciler.adapters.aws import AwsClients  # noqa: PLC0415
    from reconciler.importer import ImportFailed, Selection, import_policies, parse_tag  # noqa: PLC0415

    try:
        tags = tuple(parse_tag(text) for text in args.tag)
    except ValueError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_ERROR
    selection = Selection(tags=tags, group_ids=tuple(args.group_id), vpc_id=args.vpc_id)
    if args.per_selector and selection.group_ids:
        print(
            "error: --per-selector needs --tag or --vpc-id (ids select no group but their own)",
            file=err,
        )
        return EXIT_ERROR
    if len(aws.regions) > 1:
        print(
            "error: import reads one region (group ids belong to one); pass one --region", file=err
        )
        return EXIT_ERROR
    output: Path | None = args.output
    if output is not None and output.exists() and not args.force:
        print(f"error: {output} exists; pass --force to overwrite it", file=err)
        return EXIT_ERROR
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
        print(f"error: {exc}", file=err)
        return EXIT_ERROR
    except (ClientError, BotoCoreError) as exc:
        print(f"error: cannot read security groups in {region}: {exc}", file=err)
        return EXIT_ERROR
    for note in imported.notes:
        print(f"note: {note}", file=err)
    if output is None:
        out.write(imported.text)
        return EXIT_OK
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(imported.text, encoding="utf-8")
    except OSError as exc:
        print(f"error: cannot write {output}: {exc}", file=err)
        return EXIT_ERROR
    print(
        f"Wrote {imported.policies} policies for {imported.groups} groups to {output}.",
        file=err,
    )
    return EXIT_OK


def cmd_handle_event(
    file: Path,
    policies: Path,
    aws: AwsOptions,
    *,
    mode: str | None,
    out: TextIO,
    session: boto3.Session | None = None,
    accounts: Path | None = None,
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
    if accounts is not None:
        env["SG_RECONCILER_ACCOUNTS"] = str(accounts)
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
    accounts: Path | None = None,
) -> int:
    """``package``: build the reproducible Lambda zip; invalid policies are refused."""
    from reconciler.core.errors import PolicyError  # noqa: PLC0415
    from reconciler.deploy.package import PackageError, build_package  # noqa: PLC0415

    if load_or_report(policies, err) is None:
        return EXIT_ERROR
    if accounts is not None and load_accounts_or_report(accounts, err) is None:
        return EXIT_ERROR
    try:
        result = build_package(
            policies,
            output,
            architecture=architecture,
            bundle_boto3=bundle_boto3,
            accounts=accounts,
        )
    except (PackageError, PolicyError) as exc:
        print(f"error: {exc}", file=err)
        return EXIT_ERROR
    print(
        f"Built {result.path} ({result.size} bytes, {result.entries} files, {architecture},"
        f" sha256 {result.sha256})",
        file=out,
    )
    _note_without_bytecode(result.compiled, err)
    return EXIT_OK


def _note_without_bytecode(compiled: int, err: TextIO) -> None:
    if not compiled:
        print(
            "note: no CPython 3.12 here, so the package holds no bytecode: Lambda compiles"
            " every module it imports on each cold start (install python3.12, or set"
            " SG_RECONCILER_LAMBDA_PYTHON to one, and rebuild)",
            file=err,
        )


def _deploy_parameters(args: argparse.Namespace, baseline: Baseline) -> dict[str, str]:
    """Stack parameters from the options actually given (the rest keep deployed values)."""
    params: dict[str, str] = {"Architecture": args.architecture}
    given = {
        "Mode": args.mode,
        "Schedule": args.schedule,
        "NotifyEmail": args.notify_email,
        "IgnorePrincipals": ",".join(args.ignore_principal) or None,
        "CreateTrail": "true" if args.create_trail else None,
        "CreateDashboard": "true" if args.create_dashboard else None,
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


def _restore_parameters(baseline: Baseline, err: TextIO) -> dict[str, str] | None:
    """RestoreTagKey/Value: the tag every ``restore_missing`` policy selects by, or empty.

    Always set, so that a baseline without restore_missing takes Authorize away from the role
    again. None after printing why: the role may authorize only in groups carrying one tag,
    so the restoring policies must share one in ``match.tags``.
    """
    restoring = [p for p in baseline.policies if p.restore_missing and p.on_drift == "revoke"]
    if not restoring:
        return {"RestoreTagKey": "", "RestoreTagValue": ""}
    shared = set.intersection(*(set((p.match.tags or {}).items()) for p in restoring))
    if not shared:
        print(
            f"error: restore_missing: policies {', '.join(p.name for p in restoring)} share no"
            " tag in match.tags, and the function's role may authorize rules only in groups"
            ' carrying one tag they all select by; add one (e.g. sg-reconciler-restore: "true")'
            " to each of them and to their groups",
            file=err,
        )
        return None
    key, value = min(shared)
    return {"RestoreTagKey": key, "RestoreTagValue": value}


def _hub_parameters(args: argparse.Namespace, err: TextIO) -> dict[str, str] | None:
    """MemberRoleName (and OrganizationId) from --accounts; None after printing a problem.

    Always set, so that the package and the stack agree: without --accounts the package has
    no accounts file and the stack is a single-account one.
    """
    params = {"OrganizationId": args.organization_id} if args.organization_id else {}
    if args.accounts is None:
        return {"MemberRoleName": "", **params}
    accounts = load_accounts_or_report(args.accounts, err)
    if accounts is None:
        return None
    names = accounts.role_names()
    if len(names) > 1:
        # The hub's role may assume exactly one role name (MemberRoleName) in any account.
        print(
            f"error: {args.accounts}: a hub assumes one role name, the file names"
            f" {', '.join(sorted(names))}; use role_name only at the top",
            file=err,
        )
        return None
    return {"MemberRoleName": accounts.role_name, **params}


def cmd_deploy(args: argparse.Namespace, aws: AwsOptions, *, out: TextIO, err: TextIO) -> int:
    """``deploy``: package, upload, create or update one stack per region, print outputs."""
    import tempfile  # noqa: PLC0415

    from reconciler.deploy.package import PackageError, build_package  # noqa: PLC0415
    from reconciler.deploy.stack import deploy_stack  # noqa: PLC0415

    baseline = load_or_report(args.policies, err)
    if baseline is None:
        return EXIT_ERROR
    hub = _hub_parameters(args, err)
    if hub is None:
        return EXIT_ERROR
    restore = _restore_parameters(baseline, err)
    if restore is None:
        return EXIT_ERROR
    session = aws.session()
    regions = aws.resolved_regions(session)
    params = _deploy_parameters(args, baseline)
    params.update(hub)
    params.update(restore)
    code = EXIT_OK
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
            print(f"error: {exc}", file=err)
            return EXIT_ERROR
        _note_without_bytecode(package.compiled, err)
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
