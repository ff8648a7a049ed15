"""The ports of the reconcile loop: what the service needs from the world, as protocols.

The service and the event path depend on these shapes only; the AWS adapters
(``reconciler.adapters``) implement them, and the tests' in-memory fakes do too. The result
types are plain data so that decisions about them stay in the pure core.
"""

from __future__ import annotations

__all__ = [
    "AuthorizeOutcome",
    "AuthorizeResult",
    "Authorizer",
    "GroupReader",
    "Journal",
    "Notification",
    "Notifier",
    "RegionPorts",
    "RevokeResult",
    "Revoker",
]

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from reconciler.core.journal import JournalEntry
    from reconciler.core.policy import Baseline
    from reconciler.core.rules import Direction, ObservedGroup, ObservedRule, RuleKey


@dataclass(frozen=True, slots=True)
class RevokeResult:
    """What one group-and-direction revoke did: rule id -> (status word, error).

    ``removed`` holds the rules as EC2 says it removed them (``RevokedSecurityGroupRules``),
    for the revoked ids it reported; empty where the endpoint does not report them.
    """

    revoked: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()
    removed: tuple[ObservedRule, ...] = ()


AuthorizeOutcome = Literal["created", "present", "gone", "failed"]


@dataclass(frozen=True, slots=True)
class AuthorizeResult:
    """What one authorize batch did, per rule key."""

    created: tuple[RuleKey, ...] = ()
    present: tuple[RuleKey, ...] = ()
    gone: tuple[tuple[RuleKey, str], ...] = ()
    failed: tuple[tuple[RuleKey, str], ...] = ()

    def outcomes(self) -> dict[RuleKey, tuple[AuthorizeOutcome, str | None]]:
        """Each rule key -> what happened to it (``created`` ... ``failed``) and the error."""
        out: dict[RuleKey, tuple[AuthorizeOutcome, str | None]] = {}
        out.update((key, ("created", None)) for key in self.created)
        out.update((key, ("present", None)) for key in self.present)
        out.update((key, ("gone", error)) for key, error in self.gone)
        out.update((key, ("failed", error)) for key, error in self.failed)
        return out


@dataclass(frozen=True, slots=True)
class Notification:
    """A subject line, a body for people (with a JSON block), and the facts as data."""

    subject: str
    body: str
    facts: dict[str, Any] = field(default_factory=dict)


class GroupReader(Protocol):
    """Reads security groups and their rules (with rule ids) in one region."""

    def read_managed(self, baseline: Baseline) -> tuple[ObservedGroup, ...]:
        """Every group some policy or guardrail selects, with all its rules (ids may be ``""``:
        read from DescribeSecurityGroups; ``with_rule_ids`` fills them)."""

    def read_groups(self, group_ids: Iterable[str]) -> tuple[ObservedGroup, ...]:
        """The given groups (those that still exist) with all their rules."""

    def read_groups_by_name(self, names: Iterable[str]) -> tuple[ObservedGroup, ...]:
        """Groups found by name, with all their rules."""

    def describe(self, group_ids: Iterable[str]) -> tuple[ObservedGroup, ...]:
        """The given groups' facts (tags, VPC, owner) without their rules."""

    def rules_of(
        self, group_ids: Sequence[str], owners: dict[str, str | None] | None = None
    ) -> dict[str, list[ObservedRule]]:
        """Live rules of the given groups, keyed by group id."""

    def with_rule_ids(self, groups: Sequence[ObservedGroup]) -> tuple[ObservedGroup, ...]:
        """The groups with their rules read again, with rule ids (one batched read)."""

    def prefix_list_entries(self, prefix_list_ids: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """The CIDRs each prefix list holds now; a list that cannot be read is left out."""


class Revoker(Protocol):
    """Removes rules of one group and direction; reports, never raises for AWS errors."""

    def revoke(self, group_id: str, direction: Direction, rule_ids: Sequence[str]) -> RevokeResult:
        """Revoke these rules of one group."""


class Authorizer(Protocol):
    """Creates rules exactly (with descriptions); reports, never raises for AWS errors."""

    def authorize(
        self, group_id: str, direction: Direction, rules: Sequence[tuple[RuleKey, str | None]]
    ) -> AuthorizeResult:
        """Authorize ``rules`` in one group and direction."""


class Journal(Protocol):
    """Records revokes: ``record`` is called before each call (intent) and after (outcome).

    ``record`` raises JournalUnavailable when the intent cannot be kept; the revoke is
    then not made.
    """

    def record(self, entry: JournalEntry) -> None:
        """Keep one entry."""


class Notifier(Protocol):
    """Publishes notices to people; returns an error line instead of raising."""

    def publish(self, notification: Notification) -> str | None:
        """Send one notice; None when it went out."""


@dataclass(frozen=True, slots=True)
class RegionPorts:
    """The reader and the writers of one region, built once from its clients."""

    reader: GroupReader
    revoker: Revoker
    authorizer: Authorizer
