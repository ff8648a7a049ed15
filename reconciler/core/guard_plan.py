"""The guardrails' part of a plan: violations of one group, and their run limit. Pure.

A guardrail is a floor under the baseline: its change replaces the baseline's change for
the same rule (so no per-group baseline limit can block it), and a rule the baseline allows
is revoked all the same, the change naming both the guardrail and the policy.
"""

from __future__ import annotations

__all__ = ["guard_group", "guardrail_run_limits"]

from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from reconciler.core.patterns import PrefixEntries, UnknownPrefixList
from reconciler.core.plan import Action, Change, GroupProblem

if TYPE_CHECKING:
    from reconciler.core.guardrail import Guardrail
    from reconciler.core.policy import GroupPolicy
    from reconciler.core.rules import ObservedGroup, ObservedRule


@dataclass(frozen=True, slots=True)
class _Verdict:
    guardrail: Guardrail
    deny: int
    excepted: bool


def _verdict(
    guardrails: tuple[Guardrail, ...],
    group: ObservedGroup,
    rule: ObservedRule,
    entries: PrefixEntries,
    now: datetime | None,
) -> _Verdict | None:
    """The first guardrail ``rule`` violates (or is excepted from); None if none."""
    excepted: _Verdict | None = None
    for guardrail in guardrails:
        index = guardrail.violation(rule.key, entries)
        if index is None:
            continue
        if guardrail.exception_for(group.group_id, rule.key, now) is None:
            return _Verdict(guardrail, index, excepted=False)
        excepted = excepted or _Verdict(guardrail, index, excepted=True)
    return excepted


def _guard_change(
    verdict: _Verdict,
    group: ObservedGroup,
    rule: ObservedRule,
    policy: GroupPolicy | None,
    baseline_change: Change | None,
) -> Change:
    guardrail = verdict.guardrail
    deny = guardrail.deny[verdict.deny].pattern().describe()
    if verdict.excepted:
        exception = guardrail.exception_for(group.group_id, rule.key, None)
        until = exception.expires.isoformat() if exception is not None else "?"
        reason = (
            f"guardrail {guardrail.name} denies it (deny[{verdict.deny}]: {deny});"
            f" excepted until {until}"
        )
        action = Action.EXCEPTED
    else:
        reason = f"guardrail {guardrail.name} denies it (deny[{verdict.deny}]: {deny})"
        if policy is not None:
            if baseline_change is None:
                reason += f"; policy {policy.name} allows it, the guardrail wins"
            elif baseline_change.action is Action.EXCEPTED:
                reason += f"; policy {policy.name} excepts it, the guardrail wins"
        report = guardrail.on_violation == "report"
        reason += " (report only)" if report else ""
        action = Action.REVOKE
    return Change(
        action=action,
        region=group.region,
        group_id=group.group_id,
        policy=policy.name if policy is not None else None,
        key=rule.key,
        rule_id=rule.rule_id,
        description=rule.description,
        reason=reason,
        report_only=action is Action.REVOKE and guardrail.on_violation == "report",
        account=group.account_id,
        guardrail=guardrail.name,
    )


def guard_group(
    guardrails: tuple[Guardrail, ...],
    group: ObservedGroup,
    policy: GroupPolicy | None,
    baseline_changes: list[Change],
    *,
    entries: PrefixEntries,
    now: datetime | None,
) -> tuple[list[Change], GroupProblem | None]:
    """The group's changes with the guardrails applied over the baseline's.

    A violation replaces the baseline's change of that rule; an excepted violation only
    shows when the baseline has nothing to say about the rule; a baseline restore of a rule
    a guardrail denies becomes ``missing``. A prefix list whose entries are unknown leaves
    the group's baseline changes as they are and is a problem of the group.
    """
    if not guardrails:
        return baseline_changes, None
    by_rule = {c.rule_id: c for c in baseline_changes if c.rule_id is not None}
    replaced: dict[str, Change] = {}
    added: list[Change] = []
    try:
        for rule in group.rules:
            verdict = _verdict(guardrails, group, rule, entries, now)
            if verdict is None:
                continue
            mine = by_rule.get(rule.rule_id)
            change = _guard_change(verdict, group, rule, policy, mine)
            if mine is not None and not verdict.excepted:
                replaced[rule.rule_id] = change
            elif mine is None:
                added.append(change)
        restores = _denied_restores(guardrails, baseline_changes, entries)
    except UnknownPrefixList as exc:
        problem = GroupProblem(
            region=group.region,
            group_id=group.group_id,
            message=f"entries of prefix list {exc.prefix_list_id} could not be read; the"
            " guardrails did not evaluate this group",
            account=group.account_id,
        )
        return baseline_changes, problem
    out = [restores.get(id(c), replaced.get(c.rule_id or "", c)) for c in baseline_changes]
    return [*out, *added], None


def _denied_restores(
    guardrails: tuple[Guardrail, ...], changes: list[Change], entries: PrefixEntries
) -> dict[int, Change]:
    """Baseline restores of rules a guardrail denies: reported ``missing``, never written."""
    out: dict[int, Change] = {}
    for change in changes:
        if change.action is not Action.RESTORE:
            continue
        for guardrail in guardrails:
            if guardrail.violation(change.key, entries) is not None:
                out[id(change)] = replace(
                    change,
                    action=Action.MISSING,
                    reason=f"{change.reason}; not restored: guardrail {guardrail.name} denies it",
                )
                break
    return out


def guardrail_run_limits(guardrails: tuple[Guardrail, ...], changes: list[Change]) -> list[Change]:
    """Block every write of a guardrail whose revokes in this run exceed its own limit."""
    planned = Counter(
        c.guardrail
        for c in changes
        if c.guardrail is not None and c.writes and c.action is Action.REVOKE
    )
    limits = {g.name: g.limits.max_revocations_per_run for g in guardrails}
    over = {name: n for name, n in planned.items() if name is not None and n > limits.get(name, n)}
    if not over:
        return changes
    return [
        replace(
            c,
            blocked=f"max_revocations_per_run={limits[c.guardrail]} ({over[c.guardrail]} revokes"
            f" planned for guardrail {c.guardrail})",
        )
        if c.guardrail in over and c.writes
        else c
        for c in changes
    ]
