"""What one trigger led to: the handler's public return shape, kept light to import.

The Lambda builds these for ignored events without loading boto3, the policies or the
planner (a cold start that only has to say "not ours" stays cheap).
"""

from __future__ import annotations

__all__ = ["RunCounts", "TriggerKind", "TriggerSummary", "call_failed", "failed_writes", "ignored"]

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from reconciler.adapters.event_triggers import ApiCall
    from reconciler.core.plan import Outcome
    from reconciler.core.ports import Notification

TriggerKind = Literal["cloudtrail", "schedule", "ignored"]


@dataclass(frozen=True, slots=True)
class RunCounts:
    """What one invocation found and did, as the numbers the metrics carry."""

    drifted_groups: int = 0
    rules_revoked: int = 0
    rules_would_revoke: int = 0  # report mode: drift found and left alone
    rules_restored: int = 0
    rules_blocked: int = 0  # over a blast-radius limit: not made
    errors: int = 0
    groups_left_baseline: int = 0  # groups no longer under the policy that governed them
    fights: int = 0  # rules another principal keeps re-creating (FIGHTING notices)

    def values(self) -> dict[str, int]:
        """The count metrics by metric name (every name of METRIC_UNITS but Duration)."""
        return {
            "DriftedGroups": self.drifted_groups,
            "RulesRevoked": self.rules_revoked,
            "RulesWouldRevoke": self.rules_would_revoke,
            "RulesRestored": self.rules_restored,
            "RulesBlocked": self.rules_blocked,
            "Errors": self.errors,
            "GroupsLeftBaseline": self.groups_left_baseline,
            "Fights": self.fights,
        }


@dataclass(frozen=True, slots=True)
class TriggerSummary:
    """What one trigger led to; ``to_dict`` is the handler's public return shape."""

    trigger: TriggerKind
    event_name: str | None = None
    group_ids: tuple[str, ...] = ()
    revoked: tuple[str, ...] = ()
    missing: tuple[dict[str, Any], ...] = ()
    skipped_reason: str | None = None
    errors: tuple[str, ...] = ()
    would_revoke: tuple[str, ...] = ()
    restored: tuple[dict[str, Any], ...] = ()
    blocked: tuple[dict[str, Any], ...] = ()
    drifted_group_ids: tuple[str, ...] = ()
    failed: bool = False
    left_baseline: tuple[str, ...] = ()  # groups that left the policy governing them
    fights: int = 0  # FIGHTING notices sent (not in the JSON: a metric)
    notifications: tuple[Notification, ...] = field(default=(), repr=False)
    records: tuple[TriggerSummary, ...] = ()  # the triggers merged into this one

    @classmethod
    def merged(cls, summaries: Sequence[TriggerSummary]) -> TriggerSummary:
        """One summary for the triggers of one event (an SNS batch may carry several).

        The first acting trigger names it; the lists hold every trigger's items in order,
        and ``records`` each trigger's own summary.
        """
        if len(summaries) == 1:
            return summaries[0]
        acting = [s for s in summaries if s.trigger != "ignored"] or list(summaries)
        return replace(
            acting[0],
            group_ids=tuple(g for s in summaries for g in s.group_ids),
            revoked=tuple(r for s in summaries for r in s.revoked),
            missing=tuple(m for s in summaries for m in s.missing),
            errors=tuple(e for s in summaries for e in s.errors),
            would_revoke=tuple(r for s in summaries for r in s.would_revoke),
            restored=tuple(r for s in summaries for r in s.restored),
            blocked=tuple(b for s in summaries for b in s.blocked),
            drifted_group_ids=tuple(g for s in summaries for g in s.drifted_group_ids),
            failed=any(s.failed for s in summaries),
            left_baseline=tuple(g for s in summaries for g in s.left_baseline),
            fights=sum(s.fights for s in summaries),
            notifications=tuple(n for s in summaries for n in s.notifications),
            records=tuple(summaries),
        )

    def counts(self) -> RunCounts:
        """The numbers the invocation's metrics carry (a merged summary may repeat a group)."""
        return RunCounts(
            drifted_groups=len(set(self.drifted_group_ids)),
            rules_revoked=len(self.revoked),
            rules_would_revoke=len(self.would_revoke),
            rules_restored=len(self.restored),
            rules_blocked=len(self.blocked),
            errors=len(self.errors),
            groups_left_baseline=len(set(self.left_baseline)),
            fights=self.fights,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON-serialisable summary (the handler's return value)."""
        out = self._fields()
        if self.records:
            out["records"] = [record.to_dict() for record in self.records]
        return out

    def _fields(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger,
            "event_name": self.event_name,
            "group_ids": list(self.group_ids),
            "revoked": list(self.revoked),
            "missing": list(self.missing),
            "skipped_reason": self.skipped_reason,
            "errors": list(self.errors),
            "would_revoke": list(self.would_revoke),
            "restored": list(self.restored),
            "blocked": list(self.blocked),
            "drifted_group_ids": list(self.drifted_group_ids),
            "left_baseline": list(self.left_baseline),
        }


def ignored(reason: str, event_name: str | None = None) -> TriggerSummary:
    """The summary of a trigger that asks for no work."""
    return TriggerSummary(trigger="ignored", event_name=event_name, skipped_reason=reason)


def failed_writes(outcomes: Sequence[Outcome]) -> tuple[str, ...]:
    """One line per failed write."""
    return tuple(
        f"{o.change.group_id} {o.change.rule_id}: {o.error}"
        for o in outcomes
        if o.status.value == "failed"
    )


def call_failed(call: ApiCall, error: str) -> TriggerSummary:
    """The summary of an event that could not be handled: it fails, so Lambda retries it."""
    return TriggerSummary(
        trigger="cloudtrail",
        event_name=call.event_name,
        group_ids=call.group_ids,
        errors=(error,),
        failed=True,
    )
