"""Plans and apply results for people (text) and programs (JSON)."""

from __future__ import annotations

__all__ = [
    "Palette",
    "account_entry",
    "account_line",
    "render_json",
    "render_markdown",
    "render_text",
]

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from reconciler.core.accounts import Target
from reconciler.core.plan import Action, Change, Outcome, Plan, Status
from reconciler.core.results import RunError


@dataclass(frozen=True, slots=True)
class Palette:
    """ANSI colours, or none (not a TTY, or NO_COLOR set)."""

    enabled: bool = False

    def paint(self, text: str, code: str) -> str:
        """Wrap ``text`` in an SGR code when colours are on."""
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled else text


_MARK = {
    Action.REVOKE: ("-", "31"),
    Action.MISSING: ("+", "33"),
    Action.EXCEPTED: ("~", "36"),
    Action.RESTORE: ("+", "32"),
}


def _line(change: Change, status: Status | None, palette: Palette) -> str:
    mark, colour = _MARK[change.action]
    if change.blocked is not None:
        colour = "35"
    word = change.action.value
    rule_id = change.rule_id or ""
    text = f"  {mark} {word:<8} {rule_id:<22} {change.key.describe()}  ({change.reason})"
    if change.blocked is not None:
        text += f"  [blocked: {change.blocked}]"
    if status is not None and status not in (Status.REPORTED,):
        text += f"  => {status.value}"
    return palette.paint(text, colour)


def _heading(change: Change) -> str:
    where = f"{change.account} " if change.account else ""
    governed = f"policy {change.policy}" if change.policy else "no policy; guardrails"
    return f"{where}{change.region} {change.group_id} ({governed})"


UNMANAGED_HEADING = "Groups no policy manages (guardrails only):"


def _by_group(changes: Sequence[Change]) -> list[tuple[str, list[Change]]]:
    """Changes under their group's heading, ordered account -> region -> group.

    The sort is stable, so within a group the planner's order (ingress first, revokes
    before missing rules) is kept.
    """
    ordered = sorted(changes, key=lambda c: (c.account or "", c.region, c.group_id))
    return [(heading, list(group)) for heading, group in groupby(ordered, key=_heading)]


def _summary_line(
    plan: Plan, outcomes: tuple[Outcome, ...], problems: Sequence[str], *, dry_run: bool = False
) -> str:
    summary = plan.summary()
    if dry_run and plan.changes:
        restore = f" {summary.to_restore} to restore," if summary.to_restore else ""
        return (
            f"Dry run: {summary.to_revoke} to revoke,{restore} {summary.missing} missing,"
            f" {summary.excepted} excepted, {summary.blocked} blocked"
            f" in {summary.drifted_groups} groups; nothing was changed."
        )
    if outcomes:
        counts = Counter(o.status for o in outcomes)
        restored = f" {counts[Status.RESTORED]} restored," if counts[Status.RESTORED] else ""
        return (
            f"Apply: {counts[Status.REVOKED]} revoked,{restored} {counts[Status.ALREADY_ABSENT]}"
            f" already absent, {counts[Status.FAILED]} failed, {summary.missing} missing,"
            f" {summary.excepted} excepted, {summary.blocked} blocked"
            f" in {summary.drifted_groups} groups."
        )
    if not plan.changes and not problems:
        return f"No drift: {summary.managed_groups} managed groups match the baseline."
    report_only = f" ({summary.report_only} report-only)" if summary.report_only else ""
    restore = f" {summary.to_restore} to restore," if summary.to_restore else ""
    return (
        f"Plan: {summary.to_revoke} to revoke{report_only},{restore} {summary.missing}"
        " missing,"
        f" {summary.excepted} excepted, {summary.blocked} blocked"
        f" in {summary.drifted_groups} groups."
    )


def render_text(
    plan: Plan,
    outcomes: tuple[Outcome, ...] = (),
    errors: list[str] | None = None,
    *,
    palette: Palette | None = None,
    quiet: bool = False,
    dry_run: bool = False,
) -> str:
    """A readable plan grouped by account, region and group, then a summary line.

    With outcomes, each change's status. ``quiet`` keeps only the errors and the summary;
    ``dry_run`` (``apply --dry-run``) says so in the summary.
    """
    pal = palette or Palette()
    status_of = {id(o.change): o.status for o in outcomes}
    lines: list[str] = []
    managed = [c for c in plan.changes if c.policy is not None]
    unmanaged = [c for c in plan.changes if c.policy is None]
    for part in () if quiet else (managed, unmanaged):
        if part is unmanaged and unmanaged:
            lines.append(pal.paint(UNMANAGED_HEADING, "1"))
        for heading, changes in _by_group(part):
            lines.append(pal.paint(heading, "1"))
            lines.extend(_line(c, status_of.get(id(c)), pal) for c in changes)
    problems = [*(errors or []), *(str(p) for p in plan.problems)]
    lines.extend(pal.paint(f"error: {message}", "31") for message in problems)
    lines.append(_summary_line(plan, outcomes, problems, dry_run=dry_run) + _guarded(plan))
    return "\n".join(lines)


def _guarded(plan: Plan) -> str:
    """`` Guardrails: N violations; M groups no policy manages.`` (nothing without any)."""
    if not plan.guarded_groups:
        return ""
    summary = plan.summary()
    return (
        f" Guardrails: {summary.guardrail_violations} violations;"
        f" {summary.unmanaged_groups} groups no policy manages."
    )


def _cell(text: str) -> str:
    """Text that stays inside one markdown table cell (or list item)."""
    return " ".join(text.split()).replace("|", "\\|")


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def render_markdown(
    plan: Plan,
    outcomes: tuple[Outcome, ...] = (),
    errors: list[str] | None = None,
    *,
    quiet: bool = False,
    dry_run: bool = False,
) -> str:
    """The plan (or apply) as GitHub markdown for a pull-request comment.

    A heading, the summary line in bold, a table per group (account -> region -> group)
    and the errors as a list. ``quiet`` leaves out the tables.
    """
    status_of = {id(o.change): o.status for o in outcomes}
    problems = [*(errors or []), *(str(p) for p in plan.problems)]
    title = "apply" if outcomes else "plan"
    lines = [
        f"## sg-reconciler {title}",
        "",
        f"**{_summary_line(plan, outcomes, problems, dry_run=dry_run)}{_guarded(plan)}**",
    ]
    columns = ["action", "rule id", "rule", "reason", "blocked"]
    if outcomes:
        columns.append("status")
    for heading, changes in [] if quiet else _by_group(plan.changes):
        lines += ["", f"### {_cell(heading)}", "", _row(columns), _row(["---"] * len(columns))]
        for change in changes:
            cells = [
                change.action.value,
                f"`{change.rule_id}`" if change.rule_id else "",
                f"`{change.key.describe()}`",
                _cell(change.reason),
                _cell(change.blocked or ""),
            ]
            if outcomes:
                status = status_of.get(id(change))
                cells.append(status.value if status is not None else "")
            lines.append(_row(cells))
    if problems:
        lines += ["", "### Errors", "", *(f"- {_cell(message)}" for message in problems)]
    return "\n".join(lines)


def render_json(
    plan: Plan,
    outcomes: tuple[Outcome, ...] = (),
    errors: Sequence[RunError | str] | None = None,
    accounts: list[dict[str, Any]] | None = None,
) -> str:
    """The public JSON document: ``changes``, ``errors``, ``summary`` (and ``accounts``).

    ``summary.errors`` counts every entry of ``errors``: run-level errors (each with its
    ``region`` when it has one) and the groups the plan refused to touch.
    """
    changes: list[dict[str, Any]] = (
        [o.to_dict() for o in outcomes] if outcomes else [c.to_dict() for c in plan.changes]
    )
    summary: dict[str, Any] = dict(plan.summary().to_dict())
    if outcomes:
        counts = Counter(o.status.value for o in outcomes)
        summary["statuses"] = {s.value: counts[s.value] for s in Status if counts[s.value]}
    entries = [
        *(e.to_dict() if isinstance(e, RunError) else {"message": e} for e in errors or []),
        *(p.to_dict() for p in plan.problems),
    ]
    summary["errors"] = len(entries)
    doc = {"changes": changes, "errors": entries, "summary": summary}
    if accounts is not None:
        doc["accounts"] = accounts
    return json.dumps(doc, indent=2)


def account_line(
    label: str, plan: Plan, outcomes: tuple[Outcome, ...], errors: Sequence[str]
) -> str:
    """One account's summary line after a multi-account plan or apply."""
    summary = plan.summary()
    failures = len(errors) + summary.errors
    counted = f"{failures} error{'' if failures == 1 else 's'}"
    if errors and not plan.changes and not plan.managed_groups:
        return f"Account {label}: not reconciled ({counted}, above)."
    tail = f"; {counted}" if failures else ""
    if outcomes:
        counts = Counter(o.status for o in outcomes)
        done = f"{counts[Status.REVOKED]} revoked, {counts[Status.FAILED]} failed"
    elif not plan.changes:
        done = "no drift"
    else:
        done = f"{summary.to_revoke} to revoke, {summary.missing} missing"
    return (
        f"Account {label}: {done} in {summary.drifted_groups} of {summary.managed_groups}"
        f" managed groups{tail}."
    )


def account_entry(
    target: Target, plan: Plan, outcomes: tuple[Outcome, ...], errors: Sequence[str]
) -> dict[str, Any]:
    """One item of the JSON ``accounts`` list: where, the account's summary and errors."""
    summary: dict[str, Any] = dict(plan.summary().to_dict())
    if outcomes:
        counts = Counter(o.status.value for o in outcomes)
        summary["statuses"] = {s.value: counts[s.value] for s in Status if counts[s.value]}
    return {
        "account": target.account_id,
        "name": target.name,
        "role_arn": target.role_arn,
        "regions": list(target.regions),
        "summary": summary,
        "errors": [*errors, *(str(p) for p in plan.problems)],
    }
