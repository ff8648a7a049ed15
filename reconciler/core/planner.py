"""The pure planner: baseline x observed groups -> Plan. No I/O, no logging, no clock."""

from __future__ import annotations

__all__ = ["matching_policies", "plan"]

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from reconciler.core.plan import Action, Change, GroupProblem, Plan
from reconciler.core.policy import Baseline, GroupPolicy
from reconciler.core.rules import Direction, ObservedGroup, RuleKey


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

    A live rule a policy does not allow becomes ``revoke``; an allowed rule that is not
    live becomes ``missing``. A group matched by two policies is a problem, not a change.
    Groups no policy matches are not looked at.
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
        changes.extend(_diff_group(policy, group, desired))
    return Plan(changes=tuple(changes), problems=tuple(problems), managed_groups=managed)


def _diff_group(
    policy: GroupPolicy, group: ObservedGroup, desired: frozenset[RuleKey]
) -> list[Change]:
    directions = policy.managed_directions()
    report_only = policy.on_drift == "report"
    out: list[Change] = []
    live_keys: set[RuleKey] = set()
    for rule in group.rules:
        if rule.key.direction not in directions:
            continue
        live_keys.add(rule.key)
        if rule.key in desired:
            continue
        suffix = " (report only)" if report_only else ""
        out.append(
            Change(
                action=Action.REVOKE,
                region=group.region,
                group_id=group.group_id,
                policy=policy.name,
                key=rule.key,
                rule_id=rule.rule_id,
                description=rule.description,
                reason=f"not in policy {policy.name}{suffix}",
                report_only=report_only,
                account=group.account_id,
            )
        )
    missing = [k for k in desired if k not in live_keys and k.direction in directions]
    if missing:
        descriptions = {
            _localise_key(k, group.owner_id): d for k, d in policy.descriptions().items()
        }
        out.extend(
            Change(
                action=Action.MISSING,
                region=group.region,
                group_id=group.group_id,
                policy=policy.name,
                key=key,
                rule_id=None,
                description=descriptions.get(key),
                reason=f"in policy {policy.name} but not live",
                report_only=True,
                account=group.account_id,
            )
            for key in missing
        )
    out.sort(
        key=lambda c: (
            c.key.direction is not Direction.INGRESS,
            c.action is not Action.REVOKE,
            c.key,
            c.rule_id or "",
        )
    )
    return out
