"""The pure planner: baseline x observed groups -> Plan. No I/O, no logging, no clock."""

from __future__ import annotations

__all__ = ["matching_policies", "plan"]

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from reconciler.core.plan import Action, Change, GroupProblem, Plan
from reconciler.core.policy import Baseline, GroupPolicy
from reconciler.core.rules import Direction, ObservedGroup, ObservedRule, RuleKey


class _PolicyIndex:
    """Finds candidate policies for a group without testing every policy against it."""

    def __init__(self, policies: Iterable[GroupPolicy]) -> None:
        self.by_group_id: dict[str, list[GroupPolicy]] = defaultdict(list)
        self.by_tag: dict[tuple[str, str], list[GroupPolicy]] = defaultdict(list)
        self.by_vpc: dict[str, list[GroupPolicy]] = defaultdict(list)
        for policy in policies:
            match = policy.match
            if match.group_ids:
                for group_id in match.group_ids:
                    self.by_group_id[group_id].append(policy)
            elif match.tags:
                self.by_tag[min(match.tags.items())].append(policy)
            elif match.vpc_id is not None:
                self.by_vpc[match.vpc_id].append(policy)

    def candidates(self, group: ObservedGroup) -> list[GroupPolicy]:
        found = list(self.by_group_id.get(group.group_id, ()))
        for item in group.tags.items():
            found.extend(self.by_tag.get(item, ()))
        if group.vpc_id is not None:
            found.extend(self.by_vpc.get(group.vpc_id, ()))
        return found


def matching_policies(baseline: Baseline, group: ObservedGroup) -> list[GroupPolicy]:
    """Every policy whose selector holds for ``group``, in baseline order."""
    return _matching(_PolicyIndex(baseline.policies), baseline, group)


def _matching(index: _PolicyIndex, baseline: Baseline, group: ObservedGroup) -> list[GroupPolicy]:
    seen: set[str] = set()
    out = []
    for policy in index.candidates(group):
        if policy.name in seen:
            continue
        seen.add(policy.name)
        if policy.match.holds_for(group_id=group.group_id, tags=group.tags, vpc_id=group.vpc_id):
            out.append(policy)
    order = {p.name: i for i, p in enumerate(baseline.policies)}
    return sorted(out, key=lambda p: order[p.name])


def _localise_key(key: RuleKey, owner_id: str | None) -> RuleKey:
    """Write ``<own account>/sg-…`` as ``sg-…``, the way EC2 reports same-account refs."""
    if owner_id is None or not key.peer.startswith(owner_id + "/"):
        return key
    return replace(key, peer=key.peer[len(owner_id) + 1 :])


def plan(
    baseline: Baseline,
    observed: Iterable[ObservedGroup],
    *,
    now: datetime | None = None,
    enforce_limits: bool = True,
) -> Plan:
    """Compare live groups with the baseline and return every change, deterministically.

    A live rule a policy does not allow becomes ``revoke`` (``excepted`` while an unexpired
    exception covers it); an allowed rule that is not live becomes ``missing`` (``restore``
    with ``restore_missing: true``). A group matched by two policies is a problem, not a
    change. Groups no policy matches are not looked at. With ``enforce_limits``, writes
    over a blast-radius limit are marked ``blocked`` with the limit named.
    """
    index = _PolicyIndex(baseline.policies)
    desired_cache: dict[tuple[str, str | None], frozenset[RuleKey]] = {}
    changes: list[Change] = []
    problems: list[GroupProblem] = []
    managed = 0
    for group in sorted(observed, key=lambda g: (g.account_id or "", g.region, g.group_id)):
        policies = _matching(index, baseline, group)
        if not policies:
            continue
        managed += 1
        if len(policies) > 1:
            names = ", ".join(p.name for p in policies)
            problems.append(
                GroupProblem(
                    region=group.region,
                    group_id=group.group_id,
                    message=f"matched by policies {names}; left untouched"
                    " (make the selectors exclusive)",
                    account=group.account_id,
                )
            )
            continue
        policy = policies[0]
        cache_key = (policy.name, group.owner_id)
        desired = desired_cache.get(cache_key)
        if desired is None:
            desired = desired_cache[cache_key] = frozenset(
                _localise_key(k, group.owner_id) for k in policy.desired()
            )
        group_changes = _diff_group(policy, group, desired, now)
        if enforce_limits:
            group_changes = _group_limits(policy, group, group_changes)
        changes.extend(group_changes)
    if enforce_limits:
        changes = _run_limits(baseline, changes)
    return Plan(changes=tuple(changes), problems=tuple(problems), managed_groups=managed)


def _change(
    action: Action,
    policy: GroupPolicy,
    group: ObservedGroup,
    rule: ObservedRule | RuleKey,
    reason: str,
    *,
    description: str | None = None,
) -> Change:
    """A change to ``rule`` of ``group``: a live rule (its id and description) or a missing key."""
    if isinstance(rule, ObservedRule):
        key, rule_id, description = rule.key, rule.rule_id, rule.description
    else:
        key, rule_id = rule, None
    return Change(
        action=action,
        region=group.region,
        group_id=group.group_id,
        policy=policy.name,
        key=key,
        rule_id=rule_id,
        description=description,
        reason=reason,
        report_only=policy.on_drift == "report",
        account=group.account_id,
    )


def _diff_group(
    policy: GroupPolicy,
    group: ObservedGroup,
    desired: frozenset[RuleKey],
    now: datetime | None,
) -> list[Change]:
    """Every change for one group: live rules not in the policy, then policy rules not live."""
    directions = policy.managed_directions()
    live = [rule for rule in group.rules if rule.key.direction in directions]
    out = _extra_changes(policy, group, [r for r in live if r.key not in desired], now)
    live_keys = {rule.key for rule in live}
    missing = [k for k in desired if k not in live_keys and k.direction in directions]
    if missing:
        out.extend(_missing_changes(policy, group, missing))
    out.sort(
        key=lambda c: (
            c.key.direction is not Direction.INGRESS,
            _ACTION_ORDER[c.action],
            c.key,
            c.rule_id or "",
        )
    )
    return out


def _extra_changes(
    policy: GroupPolicy, group: ObservedGroup, extras: list[ObservedRule], now: datetime | None
) -> list[Change]:
    """Live rules the policy does not hold: excepted while an exception covers one, else revoked."""
    suffix = " (report only)" if policy.on_drift == "report" else ""
    owner = group.owner_id
    excepted = {_localise_key(k, owner): e for k, e in policy.active_exceptions(now).items()}
    expired = {_localise_key(k, owner): e for k, e in policy.expired_exceptions(now).items()}
    out: list[Change] = []
    for rule in extras:
        exception = excepted.get(rule.key)
        if exception is not None:
            reason = f"excepted until {exception.expires.isoformat()}: {exception.reason}"
            out.append(_change(Action.EXCEPTED, policy, group, rule, reason))
            continue
        lapsed = expired.get(rule.key)
        note = f"; its exception expired {lapsed.expires.isoformat()}" if lapsed else ""
        reason = f"not in policy {policy.name}{note}{suffix}"
        out.append(_change(Action.REVOKE, policy, group, rule, reason))
    return out


def _missing_changes(
    policy: GroupPolicy, group: ObservedGroup, missing: list[RuleKey]
) -> list[Change]:
    """Policy rules not live: restored when restore_missing is on (and not report-only)."""
    descriptions = {_localise_key(k, group.owner_id): d for k, d in policy.descriptions().items()}
    restore = policy.restore_missing and policy.on_drift != "report"
    action = Action.RESTORE if restore else Action.MISSING
    reason = f"in policy {policy.name} but not live" + (
        "; restore_missing is on" if restore else ""
    )
    return [
        _change(action, policy, group, key, reason, description=descriptions.get(key))
        for key in missing
    ]


_ACTION_ORDER = {Action.REVOKE: 0, Action.EXCEPTED: 1, Action.RESTORE: 2, Action.MISSING: 3}


def _blocked(changes: list[Change], limit: str, selected: set[int] | None = None) -> list[Change]:
    """Mark writing changes (all, or those at ``selected`` positions) blocked by ``limit``."""
    return [
        replace(c, blocked=limit) if c.writes and (selected is None or i in selected) else c
        for i, c in enumerate(changes)
    ]


def _group_limits(policy: GroupPolicy, group: ObservedGroup, changes: list[Change]) -> list[Change]:
    """Stop a group's revokes over its limit, or ones that would leave it with no ingress."""
    revokes = [c for c in changes if c.writes and c.action is Action.REVOKE]
    limit = policy.max_revocations_per_group()
    if len(revokes) > limit:
        return _blocked(
            changes,
            f"max_revocations_per_group={limit} ({len(revokes)} revokes planned)",
        )
    live_ingress = sum(1 for r in group.rules if r.key.direction is Direction.INGRESS)
    ingress_revokes = sum(1 for c in revokes if c.key.direction is Direction.INGRESS)
    ingress_restores = sum(
        1
        for c in changes
        if c.writes and c.action is Action.RESTORE and c.key.direction is Direction.INGRESS
    )
    empties = live_ingress > 0 and live_ingress - ingress_revokes + ingress_restores == 0
    if empties and not (policy.allow_empty and not policy.ingress):
        hint = (
            "set allow_empty: true" if not policy.ingress else "its baseline rules are all missing"
        )
        selected = {
            i
            for i, c in enumerate(changes)
            if c.action is Action.REVOKE and c.key.direction is Direction.INGRESS
        }
        return _blocked(
            changes,
            f"allow_empty: would leave the group with no ingress rules ({hint})",
            selected,
        )
    return changes


def _run_limits(baseline: Baseline, changes: list[Change]) -> list[Change]:
    """Stop every revoke of a file whose groups together exceed max_revocations_per_run."""
    planned: dict[str, int] = defaultdict(int)
    for change in changes:
        scope = baseline.run_limit_of(change.policy)
        if scope is not None and change.writes and change.action is Action.REVOKE:
            planned[scope[0]] += 1
    over = {
        source: count for source, count in planned.items() if count > baseline.run_limits[source]
    }
    if not over:
        return changes
    out = []
    for change in changes:
        scope = baseline.run_limit_of(change.policy)
        if scope is not None and scope[0] in over and change.writes:
            limit = (
                f"max_revocations_per_run={scope[1]} ({over[scope[0]]} revokes planned"
                f" for {scope[0]})"
            )
            change = replace(change, blocked=limit)  # noqa: PLW2901 - rebuilt immutably
        out.append(change)
    return out
