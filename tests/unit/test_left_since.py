"""Which groups left their policy between two scheduled runs (pure)."""

from __future__ import annotations

from reconciler.adapters.baseline_state import LeftBaseline, left_baseline_since
from reconciler.core.left_since import LeftGroup, carried_over, groups_left
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


def test_a_region_the_run_could_not_read_keeps_its_groups_for_the_next_run() -> None:
    """A region it could not read would look emptied: every group in it "left"."""
    previous = {A: "payments", C: "web"}
    current = {C: "web"}  # us-east-1 was not read
    kept = carried_over(previous, current, {"us-east-1"})
    assert kept == previous
    assert groups_left(previous, kept) == []
    assert groups_left(previous, carried_over(previous, current, ())) == [
        LeftGroup(A, "payments", None)
    ]


def test_a_run_with_an_error_outside_any_region_neither_reports_nor_rewrites_the_state() -> None:
    class NoS3:  # any call fails the test
        def __getattr__(self, name: str) -> None:
            raise AssertionError(f"S3 {name} called")

    error = RunError("cannot resolve the accounts to reconcile: boom", stage="account")
    result = RunResult(plan=Plan(changes=(), governed=((A, "payments"),)), errors=(error,))
    assert left_baseline_since(NoS3(), "bucket", result) == LeftBaseline()  # type: ignore[arg-type]
