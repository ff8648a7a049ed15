"""The optional CloudWatch dashboard of deploy/template.yaml: off by default, valid JSON when on."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from reconciler.deploy.template import load_template
from reconciler.metrics import METRIC_UNITS, NAMESPACE, TRIGGERS
from tests.cfn_resolve import StackContext, resolve
from tests.deploy_stacks import TEMPLATE

ACCOUNT = "123456789012"
REGION = "eu-west-1"
STACK = "sg-reconciler"
REQUIRED = {"CodeS3Bucket": "bucket", "CodeS3Key": "sg-reconciler/abc.zip"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    """The template, intrinsic functions in long form."""
    return load_template(TEMPLATE)


def context(template: Mapping[str, Any], create: str) -> StackContext:
    """The template deployed in one account and region, with CreateDashboard = ``create``."""
    return StackContext(
        template,
        account_id=ACCOUNT,
        region=REGION,
        stack_name=STACK,
        parameters={**REQUIRED, "CreateDashboard": create},
    )


@pytest.fixture(scope="module")
def body(template: dict[str, Any]) -> dict[str, Any]:
    """The dashboard body as CloudFormation resolves it, parsed as JSON."""
    resolved = resolve(
        template["Resources"]["Dashboard"]["Properties"]["DashboardBody"],
        context(template, "true"),
    )
    assert isinstance(resolved, str)
    parsed: dict[str, Any] = json.loads(resolved)
    return parsed


def graphed(body: Mapping[str, Any]) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(namespace, metric name, dimensions) of every metric of every metric widget."""
    for widget in body["widgets"]:
        if widget["type"] != "metric":
            continue
        for entry in widget["properties"]["metrics"]:
            names = [item for item in entry if isinstance(item, str)]
            namespace, metric, *pairs = names
            assert len(pairs) % 2 == 0, entry
            yield namespace, metric, dict(zip(pairs[::2], pairs[1::2], strict=True))


def test_the_dashboard_is_off_by_default_and_created_only_when_asked(
    template: dict[str, Any],
) -> None:
    """CreateDashboard defaults to "false"; the dashboard and its output exist only for "true"."""
    parameter = template["Parameters"]["CreateDashboard"]
    assert parameter["Default"] == "false"
    assert parameter["AllowedValues"] == ["true", "false"]
    dashboard = template["Resources"]["Dashboard"]
    assert dashboard["Type"] == "AWS::CloudWatch::Dashboard"
    assert dashboard["Condition"] == "ShouldCreateDashboard"
    assert template["Outputs"]["DashboardName"]["Condition"] == "ShouldCreateDashboard"
    assert not context(template, "false").condition("ShouldCreateDashboard")
    assert context(template, "true").condition("ShouldCreateDashboard")
    # Nothing else depends on the flag.
    conditional = {
        name
        for name, resource in template["Resources"].items()
        if resource.get("Condition") == "ShouldCreateDashboard"
    }
    assert conditional == {"Dashboard"}


def test_the_dashboard_name_holds_the_region_as_dashboards_are_global(
    template: dict[str, Any],
) -> None:
    """One stack per region gives one dashboard per region, not a name clash."""
    name = resolve(
        template["Resources"]["Dashboard"]["Properties"]["DashboardName"],
        context(template, "true"),
    )
    assert name == f"{STACK}-{REGION}"


def test_the_body_is_a_dashboard_of_positioned_widgets_in_the_stack_region(
    body: dict[str, Any],
) -> None:
    """Every widget has a known type, a place on the 24-column grid and its properties."""
    assert body["widgets"]
    for widget in body["widgets"]:
        assert widget["type"] in {"metric", "alarm", "log", "text"}
        assert 0 <= widget["x"] <= 23
        assert 1 <= widget["width"] <= 24
        assert widget["x"] + widget["width"] <= 24
        assert widget["y"] >= 0
        assert widget["height"] >= 1
        properties = widget["properties"]
        if widget["type"] in {"metric", "log"}:
            assert properties["region"] == REGION
        if widget["type"] == "metric":
            assert properties["metrics"]
            assert properties["period"] % 60 == 0


def test_every_reconciler_metric_is_graphed_by_trigger(body: dict[str, Any]) -> None:
    """Each SgReconciler metric the function emits is graphed, by the Trigger dimension only."""
    ours = [(m, d) for ns, m, d in graphed(body) if ns == NAMESPACE]
    assert {metric for metric, _ in ours} == set(METRIC_UNITS)
    for _, dimensions in ours:
        assert set(dimensions) == {"Trigger"}
        assert dimensions["Trigger"] in TRIGGERS
    assert {d["Trigger"] for _, d in ours} == set(TRIGGERS)
    revoked = {d["Trigger"] for m, d in ours if m == "RulesRevoked"}
    assert revoked == {"cloudtrail", "schedule"}


def test_the_functions_errors_throttles_and_the_dead_letter_queue_are_graphed(
    body: dict[str, Any],
) -> None:
    """Lambda Errors and Throttles of this function and the DLQ depth are on the dashboard."""
    metrics = list(graphed(body))
    function = {"FunctionName": "<ReconcilerFunction>"}
    assert ("AWS/Lambda", "Errors", function) in metrics
    assert ("AWS/Lambda", "Throttles", function) in metrics
    queue = {"QueueName": "<DeadLetterQueue.QueueName>"}
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", queue) in metrics


def test_the_alarm_widget_shows_every_alarm_of_the_template(
    template: dict[str, Any], body: dict[str, Any]
) -> None:
    """The alarm widget lists exactly the template's alarms."""
    alarms = {
        name for name, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    (widget,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    assert set(widget["properties"]["alarms"]) == {f"<{name}.Arn>" for name in alarms}


def test_the_log_widget_queries_the_functions_log_for_drift_events(body: dict[str, Any]) -> None:
    """The log widget reads the function's log group and keeps only drift_event lines."""
    (widget,) = [w for w in body["widgets"] if w["type"] == "log"]
    query = widget["properties"]["query"]
    assert query.startswith("SOURCE '<ReconcilerLogGroup>' |")
    assert 'filter event = "drift_event"' in query
