"""What one run looks at and how it runs: two small values instead of a row of flags."""

from __future__ import annotations

__all__ = ["RunMode", "Scope", "prefix_list_scope"]

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from reconciler.core.rules import Direction, ObservedGroup


class RunMode(StrEnum):
    """How a run treats the plan it made.

    ``plan`` reads and plans; ``dry_run`` also says what applying would do (``planned``);
    ``report`` applies nothing and marks each revoke ``skipped_report_mode`` (a stack in
    report mode); ``enforce`` makes the changes.
    """

    PLAN = "plan"
    DRY_RUN = "dry_run"
    REPORT = "report"
    ENFORCE = "enforce"

    @property
    def applies(self) -> bool:
        """True when the run goes through the apply step (with or without calls)."""
        return self is not RunMode.PLAN

    @property
    def writes(self) -> bool:
        """True when the run may call AWS to change rules."""
        return self is RunMode.ENFORCE


@dataclass(frozen=True, slots=True)
class Scope:
    """Which groups to look at: every managed group, or the groups an event names.

    ``direction`` (the event's own) or else ``rule_ids`` (the directions of the rules it
    names) narrow the changes to what the event can have changed; the schedule covers
    the rest.
    """

    group_ids: tuple[str, ...] | None = None
    group_names: tuple[str, ...] = ()
    direction: Direction | None = None
    rule_ids: tuple[str, ...] = ()

    @classmethod
    def managed(cls) -> Scope:
        """Every group some policy matches (plan, apply, the schedule)."""
        return cls()

    @property
    def everything(self) -> bool:
        """True when the run sweeps every managed group."""
        return self.group_ids is None and not self.group_names

    def describe(self) -> str:
        """What is read, for error lines: ``security groups`` or the ids/names."""
        if self.everything:
            return "security groups"
        return ", ".join((*(self.group_ids or ()), *self.group_names))

    def directions(self, groups: Iterable[ObservedGroup]) -> frozenset[Direction]:
        """The directions whose changes this run may make."""
        if self.direction is not None:
            return frozenset({self.direction})
        if self.rule_ids:
            named = {
                rule.key.direction
                for group in groups
                for rule in group.rules
                if rule.rule_id in self.rule_ids
            }
            if named:
                return frozenset(named)
        return frozenset(Direction)


class _Associations(Protocol):
    def prefix_list_groups(self, pl_id: str) -> tuple[str, ...] | None: ...


def prefix_list_scope(prefix_list_ids: Iterable[str], reader: _Associations) -> Scope | None:
    """The groups to re-check after a prefix list was edited (ModifyManagedPrefixList).

    The groups whose rules reference the list (GetManagedPrefixListAssociations); every
    group of the region where EC2 cannot say; None when no group references it.
    """
    groups: set[str] = set()
    for pl_id in prefix_list_ids:
        found = reader.prefix_list_groups(pl_id)
        if found is None:
            return Scope.managed()
        groups.update(found)
    return Scope(group_ids=tuple(sorted(groups))) if groups else None
