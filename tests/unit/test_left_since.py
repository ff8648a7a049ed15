"""Which groups left their policy between two scheduled runs (pure)."""

from __future__ import annotations

from reconciler.adapters.baseline_state import LeftBaseline, left_baseline_since
from reconciler.core.left_since import LeftGroup, groups_left
from reconciler.core.plan import Plan
from reconciler.core.results import RunError, RunResult

A = "-/us-east-1/sg-0a"
B = "-/us-east-1/sg-0b"
C = "111122223333/eu-west-1/sg-0c"


def test_a_group_untagged_retagged_or_deleted_is_named_with_where_it_went() -> None:
    previous = {A: "payments", B: "web", C: "web"}
    current = {A: "payments", B: "web-legacy"}  # B retagged into another policy; C gone
    assert groups_left(previous, current) == [
        LeftGroup(B, "web", "web-legacy"),
        LeftGroup(C, "web", None),
    ]
    assert [g.group_id for g in groups_left(previous, current)] == ["sg-0b", "sg-0c"]


def test_new_groups_and_an_unchanged_fleet_are_not_news() -> None:
    assert groups_left({A: "payments"}, {A: "payments", B: "web"}) == []
    assert groups_left({}, {A: "payments"}) == []  # the first run


def test_a_run_that_could_not_read_a_region_neither_reports_nor_rewrites_the_state() -> None:
    """A region it could not read would look emptied: every group in it "left"."""

    class NoS3:  # any call fails the test
        def __getattr__(self, name: str) -> None:
            raise AssertionError(f"S3 {name} called")

    error = RunError("us-east-1: cannot read security groups: boom", region="us-east-1")
    result = RunResult(plan=Plan(changes=(), governed=((A, "payments"),)), errors=(error,))
    assert left_baseline_since(NoS3(), "bucket", result) == LeftBaseline()  # type: ignore[arg-type]
