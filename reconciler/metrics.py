"""CloudWatch metrics of one Lambda invocation, as an Embedded Metric Format (EMF) log line.

CloudWatch Logs extracts the metrics from the function's own log: no PutMetricData call,
no extra permission, nothing to fail at run time. The record follows the EMF specification
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html):
an ``_aws`` metadata object (Timestamp in epoch milliseconds, one MetricDirective with the
namespace, the dimension set and every metric's name and unit) and, at the top level, a
numeric member per metric and a string member per dimension.

The line is written to stdout as plain JSON, never through structlog: on Lambda, JSON on
stdout is all EMF needs, and a log renderer's extra keys or console format would break it.
"""

from __future__ import annotations

__all__ = [
    "DIMENSIONS",
    "METRIC_UNITS",
    "NAMESPACE",
    "TRIGGERS",
    "RunCounts",
    "emf_record",
    "emit_emf",
    "metrics_for",
]

import json
import math
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from reconciler.summary import RunCounts, TriggerSummary

NAMESPACE = "SgReconciler"
# Trigger only: the mode is constant per deployment, so it is a plain member of the record
# (searchable in the log) rather than a dimension that would multiply the custom metrics.
DIMENSIONS: tuple[str, ...] = ("Trigger",)
# The values of the Trigger dimension (the handler's summary "trigger").
TRIGGERS: tuple[str, ...] = ("cloudtrail", "schedule", "ignored")
# Every metric of the record and its CloudWatch unit, in the order they are declared.
METRIC_UNITS: Mapping[str, str] = {
    "DriftedGroups": "Count",
    "RulesRevoked": "Count",
    "RulesWouldRevoke": "Count",
    "RulesRestored": "Count",
    "RulesBlocked": "Count",
    "Errors": "Count",
    "GroupsLeftBaseline": "Count",
    "Fights": "Count",
    "Duration": "Milliseconds",
}


def emf_record(
    counts: RunCounts,
    *,
    trigger: str,
    mode: str,
    duration_ms: float,
    timestamp_ms: int,
) -> dict[str, Any]:
    """The EMF document for one invocation; raises ValueError for values EMF cannot carry."""
    values = counts.values()
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"metric {name} must be a non-negative integer, not {value!r}")
    if not math.isfinite(duration_ms) or duration_ms < 0:
        raise ValueError(f"duration_ms must be a finite, non-negative number, not {duration_ms!r}")
    if isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, int) or timestamp_ms < 0:
        raise ValueError(f"timestamp_ms must be epoch milliseconds, not {timestamp_ms!r}")
    if not trigger:
        raise ValueError("trigger (a dimension value) must be a non-empty string")
    return {
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [list(DIMENSIONS)],
                    "Metrics": [{"Name": n, "Unit": u} for n, u in METRIC_UNITS.items()],
                }
            ],
        },
        "event": "metrics",  # like every other log line: filter with { $.event = "metrics" }
        "Trigger": trigger,
        "Mode": mode,
        **values,
        "Duration": round(float(duration_ms), 3),
    }


def emit_emf(record: Mapping[str, Any], stream: TextIO | None = None) -> None:
    """Write ``record`` as one JSON line to ``stream`` (stdout, the Lambda log, by default)."""
    out = stream if stream is not None else sys.stdout
    # One line, no NaN: CloudWatch Logs takes a line as one event, and NaN is not JSON.
    out.write(json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n")
    out.flush()


def metrics_for(
    summary: TriggerSummary,
    *,
    duration_ms: float,
    mode: str,
    timestamp_ms: int | None = None,
) -> dict[str, Any]:
    """The EMF record of one handler invocation, from its summary (now, unless given)."""
    return emf_record(
        summary.counts(),
        trigger=summary.trigger,
        mode=mode,
        duration_ms=duration_ms,
        timestamp_ms=timestamp_ms if timestamp_ms is not None else time.time_ns() // 1_000_000,
    )
