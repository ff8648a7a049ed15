"""``sg-reconciler handle-event``: the Lambda's code path on a local event file.

Prints the handler's summary as JSON; 0 handled, 1 failed (as the Lambda would retry).
"""

from __future__ import annotations

__all__ = ["run"]

import json
import os
from typing import TYPE_CHECKING, Any

from reconciler.cli.console import EXIT_ERROR, EXIT_OK, CommandError
from reconciler.cli.options import aws_options

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

    from reconciler.cli.console import Console


def run(args: argparse.Namespace, console: Console) -> int:
    """Read the event, build the responder from the environment plus the options, handle it."""
    from reconciler.runtime import build_responder, run_event  # noqa: PLC0415

    event = _read_event(args.file)
    aws = aws_options(args)
    session = aws.session()
    env = dict(os.environ)
    env["SG_RECONCILER_POLICIES"] = str(args.policies)
    env["SG_RECONCILER_REGIONS"] = ",".join(aws.resolved_regions(session))
    if aws.endpoint_url:
        env["AWS_ENDPOINT_URL"] = aws.endpoint_url
    if args.mode:
        env["SG_RECONCILER_MODE"] = args.mode
    if args.accounts is not None:
        env["SG_RECONCILER_ACCOUNTS"] = str(args.accounts)
    try:
        responder = build_responder(env, session=session)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    summary, failed = run_event(event, responder)
    console.print(json.dumps(summary, indent=2))
    return EXIT_ERROR if failed else EXIT_OK


def _read_event(file: Path) -> Any:
    """The event file's JSON; CommandError naming the file when it cannot be read."""
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CommandError(f"cannot read event {file}: {exc}") from None
