"""What one trigger led to: the handler's public return shape, kept light to import.

The Lambda builds these for ignored events without loading boto3, the policies or the
planner (a cold start that only has to say "not ours" stays cheap).
"""

from __future__ import annotations

__all__ = ["TriggerKind", "TriggerSummary", "ignored"]

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from reconciler.adapters.notify import Notification

TriggerKind = Literal["cloudtrail", "schedule", "ignored"]


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
    notifications: tuple[Notification, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-serialisable summary (README, "Lambda")."""
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
        }


def ignored(reason: str, event_name: str | None = None) -> TriggerSummary:
    """The summary of a trigger that asks for no work."""
    return TriggerSummary(trigger="ignored", event_name=event_name, skipped_reason=reason)
