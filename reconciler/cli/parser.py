"""The argument parser of ``sg-reconciler``: every command and its options, in one place.

Building it imports nothing heavy (no boto3, no pydantic): ``--help`` and ``validate`` stay
fast. What each command does is in its own module (see ``reconciler.cli.commands``).
"""

from __future__ import annotations

__all__ = ["build_parser"]

import argparse
from pathlib import Path

from reconciler import __version__
from reconciler.cli.options import (
    add_accounts_option,
    add_aws_options,
    add_output_options,
    add_policies_option,
    add_verbose_option,
    default_journal,
)

Subparsers = argparse._SubParsersAction  # argparse has no public name for it

UNDO_DESCRIPTION = (
    "Re-authorize rules that apply or the Lambda revoked, exactly as they were (with their"
    " descriptions), from a journal. Idempotent: a rule already there is reported"
    " already_present. Needs ec2:AuthorizeSecurityGroupIngress/Egress, which the Lambda's role"
    " does not have: run it with an operator's credentials. Restored rules are drift until the"
    " baseline allows them: update the policy (or switch the stack to report mode) first, or"
    " the next reconcile revokes them again."
)

IMPORT_DESCRIPTION = (
    "Read live security groups and write them as a policy file: one policy per group (match:"
    " group_ids), or with --per-selector one per tag (or the VPC) whose groups have identical"
    " rules. `validate` accepts the result and `plan` right after shows no drift."
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="sg-reconciler",
        description="Keep EC2 security groups equal to a declarative baseline.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_verbose_option(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    validate = _command(sub, "validate", "check the policy files (exit 0 valid, 1 invalid)")
    add_aws_options(validate)  # accepted like every command; reads no AWS
    _plan_parser(sub)
    _apply_parser(sub)
    _undo_parser(sub, "undo", "re-authorize journaled revokes (exit 0 all back, 1 any failure)")
    _undo_parser(sub, "restore", "the former name of undo (same options, same output)")
    _handle_event_parser(sub)
    _package_parser(sub)
    _deploy_parser(sub)
    _command(sub, "demo", "run the whole loop on a local simulated AWS account")
    _import_parser(sub)
    _command(sub, "schema", "print the JSON Schema of the policy file format", policies=False)
    return parser


def _command(
    sub: Subparsers[argparse.ArgumentParser],
    name: str,
    text: str,
    *,
    policies: bool = True,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """A subcommand with ``-v`` (and ``--policies`` unless told otherwise)."""
    parser = sub.add_parser(name, help=text, description=description or text)
    add_verbose_option(parser)
    if policies:
        add_policies_option(parser)
    return parser


def _plan_parser(sub: Subparsers[argparse.ArgumentParser]) -> None:
    plan = _command(sub, "plan", "show drift (exit 0 none, 2 drift, 1 error)")
    add_aws_options(plan)
    add_output_options(plan)
    _reconcile_accounts_option(plan)


def _apply_parser(sub: Subparsers[argparse.ArgumentParser]) -> None:
    apply = _command(sub, "apply", "revoke drift (exit 0 all done, 1 any failure)")
    add_aws_options(apply)
    add_output_options(apply)
    _reconcile_accounts_option(apply)
    apply.add_argument("--dry-run", action="store_true", help="plan and report, but make no change")
    apply.add_argument(
        "--force",
        action="store_true",
        help="override blast-radius limits (max_revocations_*, allow_empty) for this run",
    )
    apply.add_argument(
        "--journal",
        type=Path,
        default=default_journal(),
        metavar="PATH",
        help="append every revoke (before the call) and its outcome here as JSON lines, for"
        " `undo` (default: SG_RECONCILER_JOURNAL or ./.sg-reconciler/journal.jsonl);"
        " if it cannot be written, nothing is revoked",
    )
    apply.add_argument(
        "--no-journal", action="store_true", help="revoke without keeping a journal (no undo)"
    )


def _reconcile_accounts_option(parser: argparse.ArgumentParser) -> None:
    add_accounts_option(
        parser,
        "reconcile every account of this accounts file (assuming its role in each), in"
        " the file's regions; not with --region",
    )


def _undo_parser(sub: Subparsers[argparse.ArgumentParser], name: str, text: str) -> None:
    undo = _command(sub, name, text, policies=False, description=UNDO_DESCRIPTION)
    undo.add_argument(
        "--journal",
        default=str(default_journal()),
        metavar="PATH|s3://BUCKET/PREFIX",
        help="a JSON-lines journal file, or every object under an S3 prefix (default:"
        " SG_RECONCILER_JOURNAL or ./.sg-reconciler/journal.jsonl)",
    )
    undo.add_argument(
        "--since",
        metavar="TIME",
        help="only revokes at or after TIME (ISO 8601 with a time zone, e.g. 2025-01-31T14:00:00Z)",
    )
    undo.add_argument(
        "--group-id", action="append", default=[], metavar="ID", help="only this group (repeat)"
    )
    undo.add_argument(
        "--rule-id",
        action="append",
        default=[],
        metavar="ID",
        help="only this revoked rule id, sgr-… (repeat)",
    )
    undo.add_argument(
        "--include-unconfirmed",
        action="store_true",
        help="also restore revokes whose outcome was never journaled (an interrupted run)",
    )
    undo.add_argument(
        "--dry-run", action="store_true", help="print what would be restored; change nothing"
    )
    add_aws_options(undo, "only rules journaled in this region; repeat for several (default: all)")
    add_accounts_option(
        undo,
        "restore each rule in the account it was journaled in, assuming the file's role there"
        " (the caller's own account uses the caller's credentials); without it, rules"
        " journaled in another account fail and name this option",
    )
    undo.add_argument(
        "--role-name",
        metavar="NAME",
        help="with --accounts: assume this role in every account instead of the file's (the"
        " member role may not authorize; e.g. OrganizationAccountAccessRole)",
    )


def _handle_event_parser(sub: Subparsers[argparse.ArgumentParser]) -> None:
    handle = _command(
        sub, "handle-event", "run the Lambda handler locally on an event file (exit 0 ok, 1 failed)"
    )
    handle.add_argument("file", type=Path, help="EventBridge envelope or bare CloudTrail record")
    add_aws_options(handle)
    handle.add_argument("--mode", choices=("enforce", "report"), help="override SG_RECONCILER_MODE")
    add_accounts_option(handle, "act as a hub with this accounts file (SG_RECONCILER_ACCOUNTS)")


def _package_parser(sub: Subparsers[argparse.ArgumentParser]) -> None:
    package = _command(sub, "package", "build the Lambda zip (refuses invalid policies)")
    package.add_argument("--output", type=Path, default=Path("dist/sg-reconciler.zip"))
    _build_options(package)
    add_accounts_option(package, "ship this accounts file (checked first) as accounts.yaml (a hub)")


def _build_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--architecture", choices=("arm64", "x86_64"), default="arm64")
    parser.add_argument(
        "--bundle-boto3",
        action="store_true",
        help="ship boto3/botocore in the zip instead of using the Lambda runtime's",
    )


def _deploy_parser(sub: Subparsers[argparse.ArgumentParser]) -> None:
    deploy = _command(sub, "deploy", "package, upload and create/update the CloudFormation stack")
    add_aws_options(deploy)
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
    _build_options(deploy)
    add_accounts_option(
        deploy,
        "deploy a hub: ship this accounts file and let the function assume its role_name"
        " (MemberRoleName); without it the stack reconciles its own account only",
    )
    deploy.add_argument(
        "--organization-id",
        metavar="ID",
        help="o-…: let this organization's accounts forward events to the hub (OrganizationId)",
    )
    deploy.add_argument(
        "--dry-run", action="store_true", help="print the change set, then delete it"
    )


def _import_parser(sub: Subparsers[argparse.ArgumentParser]) -> None:
    imp = _command(
        sub,
        "import",
        "write baseline YAML from live groups (exit 0 written, 1 error)",
        policies=False,
        description=IMPORT_DESCRIPTION,
    )
    add_aws_options(imp, "the region to read (default: the session's)")
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
    imp.add_argument("--overwrite", action="store_true", help="overwrite --output if it exists")
    imp.add_argument(
        "--force", action="store_true", help="deprecated: the former name of --overwrite"
    )
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
