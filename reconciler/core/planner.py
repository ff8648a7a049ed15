"""The pure planner: baseline x observed groups -> Plan. No I/O, no logging, no clock."""

from __future__ import annotations

__all__ = ["matching_policies", "plan"]

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from reconciler.core.guard_plan import guard_group, guardrail_run_limits
from reconciler.core.patterns import PrefixEntries, RulePattern, UnknownPrefixList, contains
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
    prefix_lists: PrefixEntries | None = None,
    urgent: frozenset[str] = frozenset(),
) -> Plan:
    """Compare live groups with the baseline and its guardrails; every change, in order.

    A live rule a policy does not allow is ``revoke`` (``excepted`` under an exception); an
    allowed rule not live is ``missing`` (``restore`` with ``restore_missing``); a group of
    two policies is a problem. Guardrails evaluate every group they select (guard_plan).
    With ``enforce_limits``, writes over a limit are ``blocked``; baseline limits never block
    a guardrail's revoke nor an ``urgent`` rule id (made by the call being answered).
    """
    evaluate = _Evaluator(baseline, prefix_lists or {}, now, urgent if enforce_limits else None)
    changes: list[Change] = []
    for group in sorted(observed, key=lambda g: (g.account_id or "", g.region, g.group_id)):
        changes.extend(evaluate(group))
    if enforce_limits:
        changes = _run_limits(baseline, changes, urgent)
        changes = guardrail_run_limits(baseline.guardrails, changes)
    counts = evaluate.counts
    return Plan(
        changes=tuple(changes),
        problems=tuple(evaluate.problems),
        managed_groups=counts["managed"],
        guarded_groups=counts["guarded"],
        unmanaged_groups=counts["unmanaged"],
        governed=tuple(evaluate.governed),
    )


class _Evaluator:
    """One group at a time: its baseline changes, its guardrails' over them, its limits."""

    def __init__(
        self,
        baseline: Baseline,
        entries: PrefixEntries,
        now: datetime | None,
        urgent: frozenset[str] | None,
    ) -> None:
        self.baseline, self.entries, self.now, self.urgent = baseline, entries, now, urgent
        self.index = _PolicyIndex(baseline.policies)
        self.desired: dict[tuple[str, str | None], frozenset[RuleKey]] = {}
        self.problems: list[GroupProblem] = []
        self.counts = Counter[str]()
        self.governed: list[tuple[str, str]] = []

    def __call__(self, group: ObservedGroup) -> list[Change]:
        baseline = self.baseline
        policies = _matching(self.index, baseline, group)
        guards = baseline.guardrails_for(group) if baseline.guardrails else ()
        if not policies and not guards:
            return []
        self.counts.update(
            {
                "managed": int(bool(policies)),
                "guarded": int(bool(guards)),
                "unmanaged": int(not policies),
            }
        )
        policy = policies[0] if len(policies) == 1 else None
        changes: list[Change] = []
        if len(policies) > 1:
            self.problems.append(_ambiguous(group, policies, guarded=bool(guards)))
        elif policy is not None:
            where = f"{group.account_id or '-'}/{group.region}/{group.group_id}"
            self.governed.append((where, policy.name))
            changes = _diff_group(
                policy, group, self._desired(policy, group), self.now, self.entries
            )
        changes, problem = guard_group(
            guards, group, policy, changes, entries=self.entries, now=self.now
        )
        if problem is not None:
            self.problems.append(problem)
        if self.urgent is not None and policy is not None:
            changes = _group_limits(policy, group, changes, self.urgent)
        return sorted(changes, key=_order)

    def _desired(self, policy: GroupPolicy, group: ObservedGroup) -> frozenset[RuleKey]:
        cache_key = (policy.name, group.owner_id)
        desired = self.desired.get(cache_key)
        if desired is None:
            desired = self.desired[cache_key] = frozenset(
                _localise_key(k, group.owner_id) for k in policy.desired()
            )
        return desired


def _ambiguous(group: ObservedGroup, policies: list[GroupPolicy], *, guarded: bool) -> GroupProblem:
    names = ", ".join(p.name for p in policies)
    floor = "; its guardrails still apply" if guarded else ""
    return GroupProblem(
        region=group.region,
        group_id=group.group_id,
        message=f"matched by policies {names}; left untouched"
        f" (make the selectors exclusive){floor}",
        account=group.account_id,
    )


def _order(change: Change) -> tuple[bool, int, RuleKey, str]:
    return (
        change.key.direction is not Direction.INGRESS,
        _ACTION_ORDER[change.action],
        change.key,
        change.rule_id or "",
    )


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
    entries: PrefixEntries,
) -> list[Change]:
    """Every change for one group: live rules not in the policy, then policy rules not live.

    A live rule contained in a ``within: true`` entry is allowed; such an entry is a bound,
    never reported missing.
    """
    directions = policy.managed_directions()
    live = [rule for rule in group.rules if rule.key.direction in directions]
    bounds = policy.bounds()
    extras = [r for r in live if r.key not in desired and not _within(bounds, r.key, entries)]
    out = _extra_changes(policy, group, extras, now)
    live_keys = {rule.key for rule in live}
    required = {_localise_key(k, group.owner_id) for k in policy.required()}
    missing = [
        k for k in desired if k in required and k not in live_keys and k.direction in directions
    ]
    if missing:
        out.extend(_missing_changes(policy, group, missing))
    return out


def _within(bounds: tuple[RulePattern, ...], key: RuleKey, entries: PrefixEntries) -> bool:
    """Whether a ``within: true`` entry contains ``key`` (an unknown prefix list does not)."""
    for bound in bounds:
        try:
            if contains(bound, key, entries):
                return True
        except UnknownPrefixList:
            continue
    return False


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


def _limited(change: Change, urgent: frozenset[str]) -> bool:
    """Whether a baseline limit may block this change (not a guardrail's, not an urgent one)."""
    return change.writes and change.guardrail is None and (change.rule_id or "") not in urgent


def _group_limits(
    policy: GroupPolicy, group: ObservedGroup, changes: list[Change], urgent: frozenset[str]
) -> list[Change]:
    """Stop a group's revokes over its limit, or ones that would leave it with no ingress.

    Only the baseline's own changes count and are stopped: a guardrail's revoke and an
    urgent one (made by the call being answered) go ahead either way.
    """
    limited = {i for i, c in enumerate(changes) if _limited(c, urgent)}
    revokes = [changes[i] for i in limited if changes[i].action is Action.REVOKE]
    limit = policy.max_revocations_per_group()
    if len(revokes) > limit:
        return _blocked(
            changes,
            f"max_revocations_per_group={limit} ({len(revokes)} revokes planned)",
            limited,
        )
    writes = [c for c in changes if c.writes]
    live_ingress = sum(1 for r in group.rules if r.key.direction is Direction.INGRESS)
    ingress_revokes = sum(
        1 for c in writes if c.action is Action.REVOKE and c.key.direction is Direction.INGRESS
    )
    ingress_restores = sum(
        1 for c in writes if c.action is Action.RESTORE and c.key.direction is Direction.INGRESS
    )
    empties = live_ingress > 0 and live_ingress - ingress_revokes + ingress_restores == 0
    if empties and not (policy.allow_empty and not policy.ingress):
        hint = (
            "set allow_empty: true" if not policy.ingress else "its baseline rules are all missing"
        )
        selected = {
            i
            for i in limited
            if changes[i].action is Action.REVOKE and changes[i].key.direction is Direction.INGRESS
        }
        return _blocked(
            changes,
            f"allow_empty: would leave the group with no ingress rules ({hint})",
            selected,
        )
    return changes


def _run_limits(baseline: Baseline, changes: list[Change], urgent: frozenset[str]) -> list[Change]:
    """Stop every revoke of a file whose groups together exceed max_revocations_per_run."""
    planned: dict[str, int] = defaultdict(int)
    for change in changes:
        scope = baseline.run_limit_of(change.policy) if change.policy else None
        if scope is not None and _limited(change, urgent) and change.action is Action.REVOKE:
            planned[scope[0]] += 1
    over = {
        source: count for source, count in planned.items() if count > baseline.run_limits[source]
    }
    if not over:
        return changes
    out = []
    for change in changes:
        scope = baseline.run_limit_of(change.policy) if change.policy else None
        if scope is not None and scope[0] in over and _limited(change, urgent):
            limit = (
                f"max_revocations_per_run={scope[1]} ({over[scope[0]]} revokes planned"
                f" for {scope[0]})"
            )
            change = replace(change, blocked=limit)  # noqa: PLW2901 - rebuilt immutably
        out.append(change)
    return out
