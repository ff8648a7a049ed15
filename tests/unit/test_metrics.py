"""EMF metric lines: the structure AWS's specification requires, and the values of a summary."""

from __future__ import annotations

import io
import json
import math
import time
from typing import Any, get_args

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from reconciler.log import configure_logging
from reconciler.metrics import (
    DIMENSIONS,
    METRIC_UNITS,
    NAMESPACE,
    TRIGGERS,
    RunCounts,
    emf_record,
    emit_emf,
    metrics_for,
)
from reconciler.summary import TriggerKind, TriggerSummary

TIMESTAMP_MS = 1_764_374_400_000  # 2025-11-29T00:00:00Z
# CloudWatch units an EMF MetricDefinition may name (the specification's JSON schema).
CLOUDWATCH_UNITS = {
    *("Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes"),
    *("Gigabytes", "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits"),
    *("Percent", "Count", "Bytes/Second", "Kilobytes/Second", "Megabytes/Second"),
    *("Gigabytes/Second", "Terabytes/Second", "Bits/Second", "Kilobits/Second"),
    *("Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None"),
}


def assert_valid_emf(document: Any) -> None:
    """Fail unless ``document`` is an EMF document as AWS's specification defines it."""
    assert isinstance(document, dict)
    metadata = document["_aws"]
    assert isinstance(metadata, dict)
    assert set(metadata) == {"Timestamp", "CloudWatchMetrics"}  # no other members allowed
    timestamp = metadata["Timestamp"]
    # Epoch milliseconds: an integer, and later than 2001 in ms (seconds would be 1000x less).
    assert isinstance(timestamp, int)
    assert not isinstance(timestamp, bool)
    assert timestamp > 1_000_000_000_000
    directives = metadata["CloudWatchMetrics"]
    assert isinstance(directives, list)
    assert directives
    for directive in directives:
        assert set(directive) == {"Namespace", "Dimensions", "Metrics"}
        assert isinstance(directive["Namespace"], str)
        assert 1 <= len(directive["Namespace"]) <= 255
        assert isinstance(directive["Dimensions"], list)
        assert directive["Dimensions"]
        for dimension_set in directive["Dimensions"]:
            assert isinstance(dimension_set, list)
            assert len(dimension_set) <= 9
            for key in dimension_set:
                # A dimension references a top-level member with a string value.
                assert isinstance(document[key], str), key
                assert document[key]
        definitions = directive["Metrics"]
        assert isinstance(definitions, list)
        assert 1 <= len(definitions) <= 100
        for definition in definitions:
            assert set(definition) <= {"Name", "Unit", "StorageResolution"}
            name = definition["Name"]
            assert isinstance(name, str)
            assert 1 <= len(name) <= 255
            assert definition.get("Unit", "None") in CLOUDWATCH_UNITS
            # A metric references a top-level member with a numeric value (a bool is not one).
            value = document[name]
            assert isinstance(value, int | float), name
            assert not isinstance(value, bool), name
            assert math.isfinite(value), name


def emitted(record: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """The lines emit_emf writes for ``record``, and the first parsed back."""
    stream = io.StringIO()
    emit_emf(record, stream)
    text = stream.getvalue()
    assert text.endswith("\n")
    lines = text.splitlines()
    return lines, json.loads(lines[0])


def test_a_cloudtrail_summary_becomes_these_exact_metric_values() -> None:
    """A CloudTrail event that revoked two rules of one group gives its exact metric values."""
    summary = {  # the handler's documented return shape (docs/lambda.md)
        "trigger": "cloudtrail",
        "event_name": "AuthorizeSecurityGroupIngress",
        "group_ids": ["sg-0123456789abcdef0"],
        "revoked": ["sgr-0aaaaaaaaaaaaaaa1", "sgr-0aaaaaaaaaaaaaaa2"],
        "drifted_group_ids": ["sg-0aaaaaaaaaaaaaaa1"],
        "missing": [{"action": "missing"}],
        "skipped_reason": None,
        "errors": ["notify: cannot publish"],
        "would_revoke": [],
    }
    record = metrics_for(
        typed(summary), duration_ms=812.3456, mode="enforce", timestamp_ms=TIMESTAMP_MS
    )
    lines, parsed = emitted(record)
    assert len(lines) == 1
    assert_valid_emf(parsed)
    assert parsed == {
        "_aws": {
            "Timestamp": TIMESTAMP_MS,
            "CloudWatchMetrics": [
                {
                    "Namespace": "SgReconciler",
                    "Dimensions": [["Trigger"]],
                    "Metrics": [
                        {"Name": "DriftedGroups", "Unit": "Count"},
                        {"Name": "RulesRevoked", "Unit": "Count"},
                        {"Name": "RulesWouldRevoke", "Unit": "Count"},
                        {"Name": "RulesRestored", "Unit": "Count"},
                        {"Name": "RulesBlocked", "Unit": "Count"},
                        {"Name": "Errors", "Unit": "Count"},
                        {"Name": "GroupsLeftBaseline", "Unit": "Count"},
                        {"Name": "Fights", "Unit": "Count"},
                        {"Name": "Duration", "Unit": "Milliseconds"},
                    ],
                }
            ],
        },
        "event": "metrics",
        "Trigger": "cloudtrail",
        "Mode": "enforce",
        "DriftedGroups": 1,
        "RulesRevoked": 2,
        "RulesWouldRevoke": 0,
        "RulesRestored": 0,
        "RulesBlocked": 0,
        "Errors": 1,
        "GroupsLeftBaseline": 0,
        "Fights": 0,
        "Duration": 812.346,
    }


def test_report_mode_counts_what_it_would_revoke_and_revokes_nothing() -> None:
    """A scheduled run in report mode counts its would-be revokes, not revokes."""
    summary = {
        "trigger": "schedule",
        "group_ids": ["sg-0aaaaaaaaaaaaaaa1", "sg-0aaaaaaaaaaaaaaa2"],
        "revoked": [],
        "would_revoke": ["sgr-0aaaaaaaaaaaaaaa1", "sgr-0aaaaaaaaaaaaaaa2", "sgr-0aaaaaaaaaaaaaaa3"],
        "drifted_group_ids": ["sg-0aaaaaaaaaaaaaaa1", "sg-0aaaaaaaaaaaaaaa2"],
        "missing": [],
        "errors": [],
    }
    record = metrics_for(typed(summary), duration_ms=1500, mode="report", timestamp_ms=TIMESTAMP_MS)
    assert_valid_emf(record)
    assert (record["Trigger"], record["Mode"]) == ("schedule", "report")
    counted = (record["RulesRevoked"], record["RulesWouldRevoke"], record["DriftedGroups"])
    assert counted == (0, 3, 2)


def test_an_ignored_event_is_counted_with_zero_drift() -> None:
    """An ignored event still gives one record (its duration), every count zero."""
    summary = TriggerSummary(trigger="ignored", skipped_reason="own_call")
    record = metrics_for(typed(summary), duration_ms=3.0, mode="enforce", timestamp_ms=TIMESTAMP_MS)
    assert_valid_emf(record)
    assert record["Trigger"] == "ignored"
    assert [record[name] for name in METRIC_UNITS if name != "Duration"] == [0] * 8
    assert record["Duration"] == 3.0


def test_groups_read_without_drift_are_not_counted_as_drifted() -> None:
    """A CloudTrail event on a managed group that is already right counts no drifted group."""
    summary = {"trigger": "cloudtrail", "group_ids": ["sg-0aaaaaaaaaaaaaaa1"], "revoked": []}
    assert typed(summary).counts() == RunCounts()


def test_the_summary_the_handler_builds_gives_a_valid_line_with_its_counts() -> None:
    """A TriggerSummary's own to_dict() (whatever keys it has today) is read correctly."""
    summary = TriggerSummary(
        trigger="cloudtrail",
        group_ids=("sg-0aaaaaaaaaaaaaaa1",),
        revoked=("sgr-0aaaaaaaaaaaaaaa1",),
        would_revoke=("sgr-0aaaaaaaaaaaaaaa2",),
        errors=("journal: cannot write s3://b/k: denied",),
    )
    record = metrics_for(typed(summary), duration_ms=9.5, mode="enforce", timestamp_ms=TIMESTAMP_MS)
    assert_valid_emf(record)
    counted = (record["RulesRevoked"], record["RulesWouldRevoke"], record["Errors"])
    assert counted == (1, 1, 1)
    assert record["Trigger"] == "cloudtrail"


def test_restored_blocked_and_drifted_group_ids_are_used_when_the_summary_has_them() -> None:
    """The optional summary keys (lists or counts) fill the restored, blocked and group counts."""
    summary = {
        "trigger": "schedule",
        "group_ids": ["sg-1", "sg-2", "sg-3"],  # sg-3 only had an excepted rule
        "drifted_group_ids": ["sg-1", "sg-2"],
        "revoked": ["sgr-1"],
        "restored": [{"action": "restore"}, {"action": "restore"}],
        "blocked": [{"action": "revoke"}] * 25,
        "errors": [],
        "would_revoke": [],
        "missing": [],
    }
    assert typed(summary).counts() == RunCounts(
        drifted_groups=2, rules_revoked=1, rules_restored=2, rules_blocked=25
    )


def test_a_combined_sns_summary_counts_every_record() -> None:
    """Several SNS records combined into one summary count all revokes, each group once."""
    summary = {
        "trigger": "cloudtrail",
        "group_ids": ["sg-1", "sg-2", "sg-1"],  # two events on sg-1
        "drifted_group_ids": ["sg-1", "sg-2", "sg-1"],
        "revoked": ["sgr-1", "sgr-2", "sgr-3"],
        "missing": [],
        "errors": [],
        "would_revoke": [],
    }
    assert typed(summary).counts() == RunCounts(drifted_groups=2, rules_revoked=3)


def test_a_merged_summary_counts_every_trigger_and_each_group_once() -> None:
    """TriggerSummary.merged (an SNS batch) adds up the revokes and counts a group once."""
    first = TriggerSummary(
        trigger="cloudtrail", revoked=("sgr-1",), drifted_group_ids=("sg-1",), errors=("e",)
    )
    second = TriggerSummary(
        trigger="cloudtrail", revoked=("sgr-2", "sgr-3"), drifted_group_ids=("sg-1", "sg-2")
    )
    noise = TriggerSummary(trigger="ignored", skipped_reason="own_call")
    merged = TriggerSummary.merged([noise, first, second])
    assert merged.counts() == RunCounts(drifted_groups=2, rules_revoked=3, errors=1)
    assert merged.to_dict()["trigger"] == "cloudtrail"
    assert [r["trigger"] for r in merged.to_dict()["records"]] == [
        "ignored",
        "cloudtrail",
        "cloudtrail",
    ]


def typed(summary: dict[str, Any] | TriggerSummary) -> TriggerSummary:
    """The TriggerSummary these fields describe (lists become the type's tuples)."""
    if isinstance(summary, TriggerSummary):
        return summary
    return TriggerSummary(**{k: tuple(v) if isinstance(v, list) else v for k, v in summary.items()})


def test_the_timestamp_defaults_to_now_in_epoch_milliseconds() -> None:
    """Without a timestamp the record carries the current time in milliseconds."""
    record = metrics_for(TriggerSummary(trigger="schedule"), duration_ms=1, mode="enforce")
    now_ms = time.time() * 1000
    assert now_ms - 60_000 < record["_aws"]["Timestamp"] <= now_ms + 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("duration_ms", float("nan")),
        ("duration_ms", float("inf")),
        ("duration_ms", -1.0),
        ("timestamp_ms", 1_764_374_400.5),
        ("timestamp_ms", -1),
        ("trigger", ""),
    ],
)
def test_values_emf_cannot_carry_are_refused(field: str, value: Any) -> None:
    """NaN, infinite or negative durations, non-integer timestamps and empty triggers raise."""
    arguments: dict[str, Any] = {
        "trigger": "schedule",
        "mode": "enforce",
        "duration_ms": 1.0,
        "timestamp_ms": TIMESTAMP_MS,
    }
    arguments[field] = value
    with pytest.raises(ValueError, match=field):
        emf_record(RunCounts(), **arguments)


def test_a_negative_count_is_refused() -> None:
    """A count below zero is no metric value."""
    with pytest.raises(ValueError, match="RulesRevoked"):
        emf_record(
            RunCounts(rules_revoked=-1),
            trigger="schedule",
            mode="enforce",
            duration_ms=1.0,
            timestamp_ms=TIMESTAMP_MS,
        )


def test_the_line_goes_to_stdout_as_plain_json_whatever_structlog_renders(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With structlog set to JSON on stderr, the EMF line is stdout's only line, bare JSON."""
    configure_logging(json=True)
    try:
        structlog.get_logger("reconciler").info("run_summary", drifted_groups=1)
        record = metrics_for(TriggerSummary(trigger="schedule"), duration_ms=5, mode="enforce")
        emit_emf(record)
    finally:
        structlog.reset_defaults()
    out, err = capsys.readouterr()
    assert out.count("\n") == 1
    parsed = json.loads(out)
    assert parsed == record
    # No renderer keys: structlog's level and timestamp are not in the metric line.
    assert "level" not in parsed
    assert "timestamp" not in parsed
    assert "run_summary" in err


def test_trigger_values_are_the_handlers_trigger_kinds() -> None:
    """TRIGGERS (graphed by the dashboard) are exactly the summary's possible triggers."""
    assert set(TRIGGERS) == set(get_args(TriggerKind))


def test_the_namespace_and_dimensions_are_the_documented_ones() -> None:
    """Namespace SgReconciler, one dimension set: Trigger."""
    assert NAMESPACE == "SgReconciler"
    assert DIMENSIONS == ("Trigger",)


_IDS = st.lists(st.text(alphabet="0123456789abcdef", min_size=1, max_size=17), max_size=30)


_SUMMARIES = st.fixed_dictionaries(
    {
        "trigger": st.sampled_from(TRIGGERS),
        "group_ids": _IDS,
        "revoked": _IDS,
        "would_revoke": _IDS,
        "errors": st.lists(st.text(max_size=40), max_size=5),
        "missing": st.just([]),
    }
)


@given(
    summary=_SUMMARIES,
    duration_ms=st.floats(min_value=0, max_value=900_000, allow_nan=False),
    mode=st.sampled_from(["enforce", "report"]),
)
def test_every_summary_gives_one_valid_emf_line(
    summary: dict[str, Any], duration_ms: float, mode: str
) -> None:
    """Any summary shape the handler returns gives one line that is a valid EMF document."""
    record = metrics_for(
        typed(summary), duration_ms=duration_ms, mode=mode, timestamp_ms=TIMESTAMP_MS
    )
    lines, parsed = emitted(record)
    assert len(lines) == 1
    assert_valid_emf(parsed)
    assert parsed["RulesRevoked"] == len(summary["revoked"])
    assert parsed["Errors"] == len(summary["errors"])
