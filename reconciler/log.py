"""structlog set-up shared by the CLI and the Lambda: console on a TTY, JSON lines otherwise."""

from __future__ import annotations

__all__ = ["configure_logging"]

import logging
import os
import sys
from typing import TextIO

import structlog


def configure_logging(
    *, stream: TextIO | None = None, json: bool | None = None, level: str | None = None
) -> None:
    """Route structlog to ``stream`` (stderr by default) as pretty text on a TTY, else JSON.

    Logs never go to stdout: stdout carries the plan and the JSON output.
    """
    out: TextIO = stream if stream is not None else _CurrentStderr()  # type: ignore[assignment]
    as_json = json if json is not None else not out.isatty()
    name = (level or os.environ.get("SG_RECONCILER_LOG_LEVEL", "INFO")).upper()
    numeric = logging.getLevelNamesMapping().get(name, logging.INFO)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor
    if as_json:
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
        shared.append(structlog.processors.format_exc_info)
    else:
        colors = "NO_COLOR" not in os.environ and out.isatty()
        renderer = structlog.dev.ConsoleRenderer(colors=colors)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


class _CurrentStderr:
    """Whatever ``sys.stderr`` is at write time (tests and hosts may swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()
