"""AWS Lambda entry point: ``reconciler.lambda_handler.handler``."""

from __future__ import annotations

__all__ = ["handler"]

import os
import time
from typing import Any

import structlog

from reconciler.metrics import emit_emf, metrics_for
from reconciler.runtime import configure_once, handle_event, raise_if_failed


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
    started = time.monotonic()
    summary = handle_event(event)
    # One EMF line per invocation, before a failure is raised so that failed runs count too.
    # The mode comes from the environment: ignored events never build the settings.
    mode = (os.environ.get("SG_RECONCILER_MODE") or "enforce").strip().lower()
    emit_emf(metrics_for(summary, duration_ms=(time.monotonic() - started) * 1000, mode=mode))
    result = summary.to_dict()
    raise_if_failed(result, summary.failed)
    return result
