"""A plan is data: a closed set of actions, each change with a reason for people.

The reason is shown, never used to decide anything at apply time: apply executes the
changes exactly as planned.
"""

from __future__ import annotations

__all__ = ["Action", "Change", "GroupProblem", "Outcome", "Plan", "Status", "Summary"]

from collections import Counter
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from reconciler.core.rules import Direction, RuleKey


class Action(StrEnum):
    """What a change does. ``revoke`` and ``restore`` write; the others only report."""

    REVOKE = "revoke"
    MISSING = "missing"
    EXCEPTED = "excepted"
    RESTORE = "restore"


class Status(StrEnum):
    """What applying a change did."""

    REVOKED = "revoked"
    RESTORED = "restored"
    ALREADY_ABSENT = "already_absent"
    ALREADY_PRESENT = "already_present"
    FAILED = "failed"
    SKIPPED_REPORT_MODE = "skipped_report_mode"
    REPORTED = "reported"
    BLOCKED = "blocked"
    PLANNED = "planned"


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between the baseline and a live group."""

    action: Action
    region: str
    group_id: str
    policy: str | None  # the group's baseline policy (None: a group no policy manages)
    key: RuleKey
    rule_id: str | None
    description: str | None
    reason: str
    report_only: bool = False
    blocked: str | None = None
    account: str | None = None
    guardrail: str | None = None  # the guardrail this change enforces (None: the baseline)

    @property
    def source(self) -> str:
        """What asked for this change, for people: ``guardrail NAME`` or the policy's name."""
        if self.guardrail is not None:
            return f"guardrail {self.guardrail}"
        return self.policy or ""

    @property
    def direction(self) -> Direction:
        """Ingress or egress."""
        return self.key.direction

    @property
    def writes(self) -> bool:
        """True when applying this change calls a mutating EC2 API."""
        writing = self.action in (Action.REVOKE, Action.RESTORE)
        return writing and not self.report_only and self.blocked is None

    def to_dict(self) -> dict[str, Any]:
        """The public JSON shape of a change (see docs/commands.md, "JSON output")."""
        out: dict[str, Any] = {
            "action": self.action.value,
            "region": self.region,
            "group_id": self.group_id,
            "policy": self.policy,
            "guardrail": self.guardrail,
            "rule_id": self.rule_id,
            "direction": self.key.direction.value,
            "protocol": self.key.protocol,
            "from_port": self.key.from_port,
            "to_port": self.key.to_port,
            "source": self.key.peer,
            "description": self.description,
            "reason": self.reason,
        }
        if self.account is not None:
            out["account"] = self.account
        if self.blocked is not None:
            out["blocked"] = self.blocked
        if self.report_only:
            out["report_only"] = True
        return out


@dataclass(frozen=True, slots=True)
class GroupProblem:
    """A group the plan refuses to touch, and why (e.g. matched by two policies)."""

    region: str
    group_id: str
    message: str
    account: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON shape of an error entry."""
        out: dict[str, Any] = {
            "region": self.region,
            "group_id": self.group_id,
            "message": self.message,
        }
        if self.account is not None:
            out["account"] = self.account
        return out

    def __str__(self) -> str:
        return f"{self.region} {self.group_id}: {self.message}"


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts for the summary line and the JSON ``summary`` object."""

    to_revoke: int
    to_restore: int
    missing: int
    excepted: int
    blocked: int
    report_only: int
    drifted_groups: int
    managed_groups: int
    errors: int
    guardrail_violations: int = 0
    unmanaged_groups: int = 0

    def to_dict(self) -> dict[str, int]:
        """JSON shape."""
        return {
            "to_revoke": self.to_revoke,
            "to_restore": self.to_restore,
            "missing": self.missing,
            "excepted": self.excepted,
            "blocked": self.blocked,
            "report_only": self.report_only,
            "drifted_groups": self.drifted_groups,
            "managed_groups": self.managed_groups,
            "errors": self.errors,
            "guardrail_violations": self.guardrail_violations,
            "unmanaged_groups": self.unmanaged_groups,
        }


@dataclass(frozen=True, slots=True)
class Plan:
    """Every change and problem found by one planning pass, in a deterministic order."""

    changes: tuple[Change, ...]
    problems: tuple[GroupProblem, ...] = ()
    managed_groups: int = 0
    guarded_groups: int = 0  # groups a guardrail evaluated, managed or not
    unmanaged_groups: int = 0  # of those, the groups no policy manages
    # "account/region/group id" -> its one policy, for each group a policy governs
    governed: tuple[tuple[str, str], ...] = ()

    def as_report_only(self) -> Plan:
        """The same plan with every change marked report-only (nothing will be written)."""
        return replace(self, changes=tuple(replace(c, report_only=True) for c in self.changes))

    def restricted_to(self, directions: frozenset[Direction]) -> Plan:
        """Only the changes of the given directions (the event path's scope)."""
        return replace(
            self, changes=tuple(c for c in self.changes if c.key.direction in directions)
        )

    @property
    def has_drift(self) -> bool:
        """True when a revoke or a missing rule was found (excepted rules are not drift)."""
        return any(c.action is not Action.EXCEPTED for c in self.changes)

    def summary(self) -> Summary:
        """Counts of what the plan holds."""
        actions = Counter(c.action for c in self.changes)
        return Summary(
            to_revoke=sum(1 for c in self.changes if c.writes and c.action is Action.REVOKE),
            to_restore=sum(1 for c in self.changes if c.writes and c.action is Action.RESTORE),
            missing=actions[Action.MISSING],
            excepted=actions[Action.EXCEPTED],
            blocked=sum(1 for c in self.changes if c.blocked is not None),
            report_only=sum(1 for c in self.changes if c.report_only and c.action is Action.REVOKE),
            drifted_groups=len(
                {
                    (c.account, c.region, c.group_id)
                    for c in self.changes
                    if c.action is not Action.EXCEPTED
                }
            ),
            managed_groups=self.managed_groups,
            errors=len(self.problems),
            guardrail_violations=sum(
                1
                for c in self.changes
                if c.guardrail is not None and c.action is not Action.EXCEPTED
            ),
            unmanaged_groups=self.unmanaged_groups,
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """A change and what applying it did; ``error`` says why it failed."""

    change: Change
    status: Status
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The change's JSON shape plus ``status`` (and ``error`` when it failed)."""
        out = self.change.to_dict()
        out["status"] = self.status.value
        if self.error is not None:
            out["error"] = self.error
        return out
