"""AWS Lambda entry point: ``reconciler.lambda_handler.handler``."""

from __future__ import annotations

__all__ = ["handler"]

from typing import Any

import structlog

from reconciler.runtime import configure_once, raise_if_failed, run_event


def handler(event: object, context: Any) -> dict[str, Any]:
    """Reconcile what ``event`` points at (or everything, on schedule); return a summary.

    Never raises for malformed, unrelated or ignored input. Raises ReconcileFailed only
    after doing all it could when AWS calls failed or the baseline is invalid, so that
    Lambda retries and the dead-letter queue and alarms see it.
    """
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(
        request_id=getattr(context, "aws_request_id", None),
        function=getattr(context, "function_name", None),
    )
    configure_once()
    summary, failed = run_event(event)
    raise_if_failed(summary, failed)
    return summary
