"""The ``sg-reconciler`` command: parse, dispatch to the command's module, print, exit code.

``parser`` builds the arguments of every command, ``commands`` maps each command to the
module that runs it, ``options`` holds the options several commands share. Commands print
only to the two streams ``main`` is given and keep the domain out: they call the service,
the adapters and the core.
"""

from __future__ import annotations

__all__ = ["main"]

import contextlib
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from reconciler.cli.console import Console, guarded


def main(
    argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Entry point of the ``sg-reconciler`` console script; returns the exit code.

    ``out`` and ``err`` default to ``sys.stdout`` and ``sys.stderr``; logs go to ``err``.
    A mistake a user can fix prints one ``error: ...`` line and returns 1, no traceback.
    """
    from reconciler.cli.commands import command  # noqa: PLC0415
    from reconciler.cli.parser import build_parser  # noqa: PLC0415

    console = Console(sys.stdout if out is None else out, sys.stderr if err is None else err)
    with contextlib.redirect_stdout(console.out), contextlib.redirect_stderr(console.err):
        args = build_parser().parse_args(argv)
    _configure_logging(args, err)
    try:
        return guarded(lambda: command(args.command)(args, console), console)
    except Exception as exc:
        if not _is_aws_error(exc):
            raise
        return console.fail(" ".join(str(exc).split()))


def _configure_logging(args: object, err: TextIO | None) -> None:
    """Warnings and errors only on a terminal or with --quiet, unless -v or a level is set.

    Off a terminal (CI, a pipe) info logs stay: they are the JSON lines machines read.
    """
    from reconciler.log import configure_logging  # noqa: PLC0415

    stream = sys.stderr if err is None else err
    level = None
    if "SG_RECONCILER_LOG_LEVEL" not in os.environ and not getattr(args, "verbose", False):
        quiet = getattr(args, "quiet", False)
        level = "WARNING" if quiet or stream.isatty() else None
    # Given no stream, logs follow whatever sys.stderr is when they are written.
    configure_logging(stream=err, level=level)


def _is_aws_error(exc: Exception) -> bool:
    """An error of botocore's (a profile, credentials, an endpoint) that no command handled.

    A response botocore cannot parse (an endpoint that is not AWS) is one too.
    """
    errors = sys.modules.get("botocore.exceptions")  # not loaded: it cannot be one
    parsers = sys.modules.get("botocore.parsers")
    if errors is None:
        return False
    unparsable = (parsers.ResponseParserError,) if parsers is not None else ()
    return isinstance(exc, (errors.BotoCoreError, errors.ClientError, *unparsable))
