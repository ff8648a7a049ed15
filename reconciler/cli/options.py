"""The options several commands share, and reading them back: AWS, output, policies, accounts.

Adding an option here adds it to every command that takes that kind of option; reading
it back (``aws_options``, ``load_baseline``, ...) turns its value into what the command
needs, or a one-line CommandError.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_JOURNAL",
    "AwsOptions",
    "add_accounts_option",
    "add_aws_options",
    "add_output_options",
    "add_policies_option",
    "add_verbose_option",
    "aws_options",
    "default_journal",
    "load_accounts_file",
    "load_baseline",
]

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from reconciler.cli.console import CommandError

if TYPE_CHECKING:
    import boto3

    from reconciler.cli.console import Console
    from reconciler.core.accounts import AccountsFile
    from reconciler.core.policy import Baseline

T = TypeVar("T")

DEFAULT_JOURNAL = Path(".sg-reconciler") / "journal.jsonl"

REGION_HELP = "region to reconcile; repeat for several (default: the session's region)"


@dataclass(frozen=True, slots=True)
class AwsOptions:
    """Where to talk to AWS: profile, regions and an optional endpoint (moto, LocalStack)."""

    profile: str | None
    regions: tuple[str, ...]
    endpoint_url: str | None

    def session(self) -> boto3.Session:
        """A boto3 session for the profile; CommandError when the profile does not exist."""
        import boto3  # noqa: PLC0415 - keep `validate` and `--help` fast
        from botocore.exceptions import ProfileNotFound  # noqa: PLC0415

        try:
            session = boto3.Session(profile_name=self.profile)
        except ProfileNotFound:
            raise CommandError(
                f"--profile {self.profile}: no such profile in the AWS config files"
                " (`aws configure list-profiles` lists them)"
            ) from None
        if self.endpoint_url:
            refuse_non_aws_answers(session, self.endpoint_url)
        return session

    def resolved_regions(self, session: boto3.Session) -> tuple[str, ...]:
        """The --region values, else the session's region; CommandError if there is none."""
        if self.regions:
            return self.regions
        if session.region_name:
            return (session.region_name,)
        raise CommandError("no region: pass --region R or set AWS_REGION / AWS_DEFAULT_REGION")


def refuse_non_aws_answers(session: boto3.Session, endpoint_url: str) -> None:
    """Make an endpoint that answers a web page (HTML) a CommandError, not an empty result.

    EC2 speaks XML, and an HTML page parses as XML with no groups in it: a wrong
    --endpoint-url would otherwise look like an account without drift.
    """

    def check(response_dict: dict[str, Any], **_: Any) -> None:
        content_type = str(response_dict.get("headers", {}).get("content-type", ""))
        # A HEAD answer has no body to misread (moto_server labels its HEAD 404s text/html).
        if content_type.lower().startswith("text/html") and response_dict.get("body"):
            status = response_dict.get("status_code")
            raise CommandError(
                f"--endpoint-url {endpoint_url} answered a web page ({content_type}, HTTP"
                f" {status}), not an AWS API response; check the URL"
            )

    session.events.register("before-parse", check)


def aws_options(args: argparse.Namespace) -> AwsOptions:
    """The AWS options a command was given."""
    return AwsOptions(args.profile, tuple(args.region), args.endpoint_url)


def default_journal() -> Path:
    """SG_RECONCILER_JOURNAL, else ./.sg-reconciler/journal.jsonl."""
    return Path(os.environ.get("SG_RECONCILER_JOURNAL") or DEFAULT_JOURNAL)


def add_verbose_option(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """``-v``/``--verbose``: info logs on a terminal too (before or after the command)."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        # Given after the command it must not reset what was given before it.
        default=False if top else argparse.SUPPRESS,
        help="show info logs on a terminal too (SG_RECONCILER_LOG_LEVEL sets a level)",
    )


def add_policies_option(parser: argparse.ArgumentParser) -> None:
    """``--policies DIR`` (SG_RECONCILER_POLICIES, else ./policies)."""
    parser.add_argument(
        "--policies",
        type=Path,
        default=Path(os.environ.get("SG_RECONCILER_POLICIES", "policies")),
        metavar="DIR",
        help="directory of *.yaml policy files, or one file (default: ./policies)",
    )


def add_aws_options(parser: argparse.ArgumentParser, region_help: str = REGION_HELP) -> None:
    """``--region`` (repeatable), ``--profile`` and ``--endpoint-url``."""
    parser.add_argument("--region", action="append", default=[], metavar="R", help=region_help)
    parser.add_argument("--profile", help="AWS named profile")
    parser.add_argument(
        "--endpoint-url",
        default=os.environ.get("AWS_ENDPOINT_URL"),
        metavar="URL",
        help="EC2 endpoint (e.g. a local moto server); AWS_ENDPOINT_URL is honoured too",
    )


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """``--output text|json|markdown`` and ``--quiet``."""
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


def add_accounts_option(parser: argparse.ArgumentParser, text: str) -> None:
    """``--accounts FILE``, with what it means for this command."""
    parser.add_argument("--accounts", type=Path, metavar="FILE", help=text)


def load_baseline(policies: Path, console: Console) -> Baseline | None:
    """Load the baseline, or print every problem (one per line) and return None.

    ``policies`` is a directory of policy files, or one policy file.
    """
    from reconciler.adapters.policy_files import load_policies  # noqa: PLC0415

    return _load_or_report(load_policies, policies, console)


def load_accounts_file(path: Path, console: Console) -> AccountsFile | None:
    """Load an accounts file, or print every problem (one per line) and return None."""
    from reconciler.adapters.accounts import load_accounts  # noqa: PLC0415

    return _load_or_report(load_accounts, path, console)


def _load_or_report(load: Callable[[Path], T], path: Path, console: Console) -> T | None:
    """``load(path)``, or print each of its PolicyError problems and a closing line."""
    from reconciler.core.errors import PolicyError  # noqa: PLC0415

    try:
        return load(path)
    except PolicyError as exc:
        for problem in exc.problems:
            console.note(str(problem))
        console.note(f"error: {len(exc.problems)} problem(s) in {path}; nothing was changed")
        return None
