"""Notification subjects say what happened at a glance."""

from __future__ import annotations

from dataclasses import replace

from reconciler.adapters.notify import SUBJECT_LIMIT, run_notice
from reconciler.core.plan import Action, Change, Outcome, Status
from reconciler.core.rules import Direction, RuleKey

SSH = RuleKey(Direction.INGRESS, "tcp", 22, 22, "0.0.0.0/0")
CHANGE = Change(
    action=Action.REVOKE,
    region="us-east-1",
    group_id="sg-0123456789abcdef0",
    policy="web",
    key=SSH,
    rule_id="sgr-0123456789abcdef0",
    description=None,
    reason="not in policy web",
)


def test_scheduled_run_with_only_blocked_changes_says_blocked() -> None:
    """A scheduled run whose changes were all blocked leads with BLOCKED BY LIMIT."""
    blocked = replace(CHANGE, blocked="max_revocations_per_group=25 (30 revokes planned)")
    notice = run_notice([Outcome(blocked, Status.BLOCKED)] * 30, [], mode="enforce")
    assert notice.subject == (
        "sg-reconciler BLOCKED BY LIMIT: 0 revoked, 0 failed, 30 blocked, 0 errors"
    )
    assert "max_revocations_per_group" not in notice.subject


def test_failures_win_over_blocked_and_subjects_stay_within_the_sns_limit() -> None:
    """A failed revoke makes the run FAILED; the subject never exceeds SNS's 100 characters."""
    outcomes = [
        Outcome(CHANGE, Status.FAILED, error="UnauthorizedOperation: denied"),
        Outcome(replace(CHANGE, blocked="limit"), Status.BLOCKED),
    ]
    notice = run_notice(outcomes, ["x" * 500], mode="enforce")
    assert notice.subject.startswith("sg-reconciler RUN FAILED: 0 revoked, 1 failed, 1 blocked")
    assert len(notice.subject) <= SUBJECT_LIMIT
