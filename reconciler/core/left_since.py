"""Groups that left their policy since the previous scheduled run. Pure.

The schedule keeps the set of groups each policy governed at its last run (a small state
object next to the journal). Whatever took a group out since (a tag change, its deletion, a
policy edit), the next run names it.
"""

from __future__ import annotations

__all__ = ["LeftGroup", "carried_over", "groups_left"]

from collections.abc import Collection, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LeftGroup:
    """A group its policy governed at the previous run and does not now."""

    where: str  # account/region/group id
    policy: str
    now: str | None  # the policy governing it now, or None

    @property
    def group_id(self) -> str:
        """The group's id."""
        return self.where.rsplit("/", 1)[-1]


def _region(where: str) -> str:
    return where.split("/")[1] if where.count("/") == 2 else ""


def carried_over(
    previous: Mapping[str, str], current: Mapping[str, str], unread: Collection[str]
) -> dict[str, str]:
    """This run's groups, and the previous run's in regions this run could not read (an
    unread region looks emptied: its groups are kept, to be judged when it is read again)."""
    kept = {w: p for w, p in previous.items() if _region(w) in unread}
    return {**kept, **current}


def groups_left(previous: Mapping[str, str], current: Mapping[str, str]) -> list[LeftGroup]:
    """Every group ``previous`` had under a policy that ``current`` has under none or another."""
    return [
        LeftGroup(where, policy, current.get(where))
        for where, policy in sorted(previous.items())
        if current.get(where) != policy
    ]
