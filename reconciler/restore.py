"""Undo: re-authorize journaled revokes exactly as they were, descriptions included.

Restoring is an operator's action, run from the CLI with the operator's credentials: it
needs ``ec2:AuthorizeSecurityGroupIngress``/``Egress`` (``RESTORE_PERMISSIONS``), which the
Lambda's role must not have. It is idempotent: a rule that is already there
(``InvalidPermission.Duplicate``) is reported ``already_present``. A rule is restored in the
account its entry was journaled in: the caller names how to reach each account, and an
account it cannot reach fails that account's rules, not the others.
"""

from __future__ import annotations

__all__ = [
    "RESTORE_PERMISSIONS",
    "AccountUnreachable",
    "RestoreOutcome",
    "RestoreReport",
    "RestoreStatus",
    "render_restore",
    "restore",
]

from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import structlog

from reconciler.adapters.ec2 import AuthorizeOutcome, RuleAuthorizer
from reconciler.core.errors import ReconcilerError
from reconciler.core.journal import JournalEntry, select_restorable
from reconciler.core.rules import Direction

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

log = structlog.get_logger("reconciler.restore")

RESTORE_PERMISSIONS = frozenset(
    {"ec2:AuthorizeSecurityGroupIngress", "ec2:AuthorizeSecurityGroupEgress"}
)

_DUPLICATE = "InvalidPermission.Duplicate"
_GROUP_GONE = frozenset({"InvalidGroup.NotFound", "InvalidGroupId.NotFound"})


class AccountUnreachable(ReconcilerError):
    """The clients of a journaled account cannot be had; the message says why and what to do."""


class RestoreStatus(StrEnum):
    """What restoring one rule did."""

    RESTORED = "restored"
    ALREADY_PRESENT = "already_present"
    GROUP_GONE = "group_gone"
    FAILED = "failed"
    PLANNED = "planned"


@dataclass(frozen=True, slots=True)
class RestoreOutcome:
    """One journaled rule and what restoring it did; ``error`` says why it did not."""

    entry: JournalEntry
    status: RestoreStatus
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The entry's rule fields with ``status`` (and ``error``)."""
        entry = self.entry
        return {
            "account": entry.account,
            "region": entry.region,
            "group_id": entry.group_id,
            "rule_id": entry.rule_id,
            "direction": entry.direction,
            "protocol": entry.protocol,
            "from_port": entry.from_port,
            "to_port": entry.to_port,
            "source": entry.source,
            "description": entry.description,
            "revoked_at": entry.time,
            "run_id": entry.run_id,
            "status": self.status.value,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class RestoreReport:
    """Every selected rule's outcome, and the revokes the journal cannot confirm."""

    outcomes: tuple[RestoreOutcome, ...]
    unconfirmed: tuple[JournalEntry, ...] = ()
    include_unconfirmed: bool = False

    @property
    def failed(self) -> bool:
        """True when any rule could not be restored (its group is gone, or a call failed)."""
        return any(
            o.status in (RestoreStatus.GROUP_GONE, RestoreStatus.FAILED) for o in self.outcomes
        )

    def counts(self) -> dict[str, int]:
        """How many rules ended in each status (every status present, zeros included)."""
        found = Counter(o.status for o in self.outcomes)
        return {status.value: found[status] for status in RestoreStatus}


def restore(
    entries: Iterable[JournalEntry],
    clients: Callable[[str | None, str], EC2Client],
    *,
    since: datetime | None = None,
    regions: Collection[str] = (),
    group_ids: Collection[str] = (),
    rule_ids: Collection[str] = (),
    include_unconfirmed: bool = False,
    dry_run: bool = False,
) -> RestoreReport:
    """Re-authorize the journaled revokes the filters select; one call per group and direction.

    ``clients(account, region)`` gives an EC2 client acting in the entry's account (None:
    the entry names none, so the caller's own) or raises AccountUnreachable. Each rule goes
    back with ``ip_permission(key, description)``. A batch that hits a duplicate (or a
    missing group, which may be a referenced peer) is retried one rule at a time, so the
    others still go in. ``dry_run`` selects and reports without any call.
    """
    selection = select_restorable(
        entries,
        since=since,
        regions=regions,
        group_ids=group_ids,
        rule_ids=rule_ids,
        include_unconfirmed=include_unconfirmed,
    )
    outcomes: list[RestoreOutcome] = []
    batches: dict[tuple[str | None, str, str, str], list[JournalEntry]] = defaultdict(list)
    for entry in selection.entries:
        batches[(entry.account, entry.region, entry.group_id, entry.direction)].append(entry)
    for (account, region, group_id, direction), batch in batches.items():
        if dry_run:
            done = [RestoreOutcome(e, RestoreStatus.PLANNED) for e in batch]
        else:
            try:
                client = clients(account, region)
            except AccountUnreachable as exc:
                done = [RestoreOutcome(e, RestoreStatus.FAILED, str(exc)) for e in batch]
            else:
                done = _authorize(client, group_id, Direction(direction), batch)
        for outcome in done:
            _log_restore(outcome)
        outcomes += done
    report = RestoreReport(
        outcomes=tuple(outcomes),
        unconfirmed=selection.unconfirmed,
        include_unconfirmed=include_unconfirmed,
    )
    log.info(
        "restore_summary",
        dry_run=dry_run,
        **report.counts(),
        unconfirmed=len(selection.unconfirmed),
    )
    return report


_RESTORE_STATUS: dict[AuthorizeOutcome, RestoreStatus] = {
    "created": RestoreStatus.RESTORED,
    "present": RestoreStatus.ALREADY_PRESENT,
    "gone": RestoreStatus.GROUP_GONE,
    "failed": RestoreStatus.FAILED,
}


def _authorize(
    client: EC2Client, group_id: str, direction: Direction, batch: Sequence[JournalEntry]
) -> list[RestoreOutcome]:
    result = RuleAuthorizer(client).authorize(
        group_id, direction, [(e.key, e.description) for e in batch]
    )
    outcomes = result.outcomes()
    restored = []
    for entry in batch:
        kind, error = outcomes[entry.key]
        restored.append(RestoreOutcome(entry, _RESTORE_STATUS[kind], error))
    return restored


def _log_restore(outcome: RestoreOutcome) -> None:
    entry = outcome.entry
    failed = outcome.status in (RestoreStatus.GROUP_GONE, RestoreStatus.FAILED)
    event = log.error if failed else log.info
    event(
        "restore",
        account=entry.account,
        region=entry.region,
        group_id=entry.group_id,
        rule_id=entry.rule_id,
        rule=entry.key.describe(),
        outcome=outcome.status.value,
        error=outcome.error,
    )


def _rule_line(outcome: RestoreOutcome, *, dry_run: bool) -> str:
    entry = outcome.entry
    description = f"({entry.description})" if entry.description else "(no description)"
    result = "would restore" if dry_run else outcome.status.value
    if outcome.error:
        result = f"{result}: {outcome.error}"
    return f"  + restore {entry.rule_id or '-'} {entry.key.describe()} {description} => {result}"


def render_restore(report: RestoreReport, *, dry_run: bool) -> str:
    """Text for people: a line per group, a line per rule, then one summary line."""
    lines: list[str] = []
    current: tuple[str | None, str, str] | None = None
    for outcome in report.outcomes:
        group = (outcome.entry.account, outcome.entry.region, outcome.entry.group_id)
        if group != current:
            # The account leads the heading when the journal names one, as in plan --accounts.
            lines.append(" ".join(part for part in group if part))
            current = group
        lines.append(_rule_line(outcome, dry_run=dry_run))
    total = len(report.outcomes)
    groups = len({(o.entry.account, o.entry.region, o.entry.group_id) for o in report.outcomes})
    if not total:
        lines.append("Nothing to restore: no revoked rule in the journal matches.")
    elif dry_run:
        lines.append(
            f"Dry run: {total} rules in {groups} groups would be restored; nothing was changed."
        )
    else:
        counts = report.counts()
        lines.append(
            f"Restore: {counts['restored']} restored, {counts['already_present']} already"
            f" present, {counts['group_gone']} group gone, {counts['failed']} failed"
            f" ({total} rules in {groups} groups)."
        )
    return "\n".join(lines)
