"""Undo: re-authorize journaled revokes exactly as they were, descriptions included.

Restoring is an operator's action, run from the CLI with the operator's credentials: it
needs ``ec2:AuthorizeSecurityGroupIngress``/``Egress`` (``UNDO_PERMISSIONS``), which the
Lambda's role must not have. It is idempotent: a rule that is already there
(``InvalidPermission.Duplicate``) is reported ``already_present``. A rule is restored in the
account its entry was journaled in: the caller names how to reach each account, and an
account it cannot reach fails that account's rules, not the others.
"""

from __future__ import annotations

__all__ = [
    "UNDO_PERMISSIONS",
    "AccountClients",
    "AccountUnreachable",
    "UndoFilter",
    "UndoOutcome",
    "UndoReport",
    "UndoStatus",
    "account_clients",
    "render_undo",
    "undo_revokes",
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
from reconciler.core.journal import JournalEntry, select_undoable
from reconciler.core.rules import Direction

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

    from reconciler.adapters.accounts import MemberAccounts
    from reconciler.adapters.aws import AwsClients

log = structlog.get_logger("reconciler.undo")

UNDO_PERMISSIONS = frozenset(
    {"ec2:AuthorizeSecurityGroupIngress", "ec2:AuthorizeSecurityGroupEgress"}
)

_DUPLICATE = "InvalidPermission.Duplicate"
_GROUP_GONE = frozenset({"InvalidGroup.NotFound", "InvalidGroupId.NotFound"})


class AccountUnreachable(ReconcilerError):
    """The clients of a journaled account cannot be had; the message says why and what to do."""


AccountClients = Callable[[str | None, str], "EC2Client"]
"""``clients(account, region)``: an EC2 client acting in a journaled entry's account."""


def account_clients(
    base: AwsClients, region: str, members: MemberAccounts | None = None, source: str = ""
) -> AccountClients:
    """EC2 clients in the account a journal entry names (the routing of ``undo``).

    An entry without an account (a single-account run) and one of the caller's own account
    use the caller's credentials (``base``; its STS in ``region`` tells which account that
    is). Any other account needs ``members`` (an accounts file, named ``source`` in
    messages): its role is assumed there. What cannot be reached raises AccountUnreachable,
    which fails only that account's rules.
    """
    import functools  # noqa: PLC0415

    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    @functools.cache
    def own_account() -> str:
        try:
            account: str = base.sts(region).get_caller_identity()["Account"]
        except (ClientError, BotoCoreError) as exc:
            raise AccountUnreachable(
                f"cannot tell which account the credentials act in: {exc}"
            ) from exc
        return account

    def ec2_in(account: str | None, entry_region: str) -> EC2Client:
        if account is None or account == own_account():
            return base.ec2(entry_region)
        if members is None:
            raise AccountUnreachable(
                f"journaled in account {account}, but the credentials act in {own_account()};"
                " pass --accounts FILE to restore it through a role there"
            )
        try:
            target = members.target(account)
        except (ClientError, BotoCoreError) as exc:
            raise AccountUnreachable(f"cannot resolve the accounts file: {exc}") from exc
        if target is None:
            raise AccountUnreachable(f"account {account} is not in {source}")
        try:
            return members.clients(target).ec2(entry_region)
        except (ClientError, BotoCoreError) as exc:
            raise AccountUnreachable(f"cannot assume {target.role_arn}: {exc}") from exc

    return ec2_in


class UndoStatus(StrEnum):
    """What restoring one rule did."""

    RESTORED = "restored"
    ALREADY_PRESENT = "already_present"
    GROUP_GONE = "group_gone"
    FAILED = "failed"
    PLANNED = "planned"


@dataclass(frozen=True, slots=True)
class UndoOutcome:
    """One journaled rule and what restoring it did; ``error`` says why it did not."""

    entry: JournalEntry
    status: UndoStatus
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
class UndoReport:
    """Every selected rule's outcome, and the revokes the journal cannot confirm."""

    outcomes: tuple[UndoOutcome, ...]
    unconfirmed: tuple[JournalEntry, ...] = ()
    include_unconfirmed: bool = False

    @property
    def failed(self) -> bool:
        """True when any rule could not be restored (its group is gone, or a call failed)."""
        return any(o.status in (UndoStatus.GROUP_GONE, UndoStatus.FAILED) for o in self.outcomes)

    def counts(self) -> dict[str, int]:
        """How many rules ended in each status (every status present, zeros included)."""
        found = Counter(o.status for o in self.outcomes)
        return {status.value: found[status] for status in UndoStatus}


@dataclass(frozen=True, slots=True)
class UndoFilter:
    """Which journaled revokes to undo: every filter given must match (empty: any)."""

    since: datetime | None = None
    regions: Collection[str] = ()
    group_ids: Collection[str] = ()
    rule_ids: Collection[str] = ()
    include_unconfirmed: bool = False


def undo_revokes(
    entries: Iterable[JournalEntry],
    clients: AccountClients,
    which: UndoFilter = UndoFilter(),
    *,
    dry_run: bool = False,
) -> UndoReport:
    """Re-authorize the journaled revokes ``which`` selects; one call per group and direction.

    ``clients(account, region)`` gives an EC2 client acting in the entry's account (None:
    the entry names none, so the caller's own) or raises AccountUnreachable. Each rule goes
    back with ``ip_permission(key, description)``. A batch that hits a duplicate (or a
    missing group, which may be a referenced peer) is retried one rule at a time, so the
    others still go in. ``dry_run`` selects and reports without any call.
    """
    selection = select_undoable(
        entries,
        since=which.since,
        regions=which.regions,
        group_ids=which.group_ids,
        rule_ids=which.rule_ids,
        include_unconfirmed=which.include_unconfirmed,
    )
    outcomes: list[UndoOutcome] = []
    batches: dict[tuple[str | None, str, str, str], list[JournalEntry]] = defaultdict(list)
    for entry in selection.entries:
        batches[(entry.account, entry.region, entry.group_id, entry.direction)].append(entry)
    for (account, region, group_id, direction), batch in batches.items():
        done = (
            [UndoOutcome(e, UndoStatus.PLANNED) for e in batch]
            if dry_run
            else _undo_batch(clients, (account, region, group_id, Direction(direction)), batch)
        )
        for outcome in done:
            _log_undo(outcome)
        outcomes += done
    report = UndoReport(
        outcomes=tuple(outcomes),
        unconfirmed=selection.unconfirmed,
        include_unconfirmed=which.include_unconfirmed,
    )
    log.info(
        "undo_summary",
        dry_run=dry_run,
        **report.counts(),
        unconfirmed=len(selection.unconfirmed),
    )
    return report


def _undo_batch(
    clients: AccountClients,
    where: tuple[str | None, str, str, Direction],
    batch: Sequence[JournalEntry],
) -> list[UndoOutcome]:
    """One group's rules of one direction, in the account and region they were revoked in."""
    account, region, group_id, direction = where
    try:
        client = clients(account, region)
    except AccountUnreachable as exc:
        return [UndoOutcome(e, UndoStatus.FAILED, str(exc)) for e in batch]
    return _authorize(client, group_id, direction, batch)


_UNDO_STATUS: dict[AuthorizeOutcome, UndoStatus] = {
    "created": UndoStatus.RESTORED,
    "present": UndoStatus.ALREADY_PRESENT,
    "gone": UndoStatus.GROUP_GONE,
    "failed": UndoStatus.FAILED,
}


def _authorize(
    client: EC2Client, group_id: str, direction: Direction, batch: Sequence[JournalEntry]
) -> list[UndoOutcome]:
    result = RuleAuthorizer(client).authorize(
        group_id, direction, [(e.key, e.description) for e in batch]
    )
    outcomes = result.outcomes()
    restored = []
    for entry in batch:
        kind, error = outcomes[entry.key]
        restored.append(UndoOutcome(entry, _UNDO_STATUS[kind], error))
    return restored


def _log_undo(outcome: UndoOutcome) -> None:
    entry = outcome.entry
    failed = outcome.status in (UndoStatus.GROUP_GONE, UndoStatus.FAILED)
    event = log.error if failed else log.info
    event(
        "undo",
        account=entry.account,
        region=entry.region,
        group_id=entry.group_id,
        rule_id=entry.rule_id,
        rule=entry.key.describe(),
        outcome=outcome.status.value,
        error=outcome.error,
    )


def _rule_line(outcome: UndoOutcome, *, dry_run: bool) -> str:
    entry = outcome.entry
    description = f"({entry.description})" if entry.description else "(no description)"
    result = "would restore" if dry_run else outcome.status.value
    if outcome.error:
        result = f"{result}: {outcome.error}"
    return f"  + restore {entry.rule_id or '-'} {entry.key.describe()} {description} => {result}"


def render_undo(report: UndoReport, *, dry_run: bool) -> str:
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
