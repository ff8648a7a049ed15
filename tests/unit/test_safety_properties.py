"""Safety properties of the planner for generated baselines, exceptions, limits and live states."""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.core.plan import Action, Change, Plan
from reconciler.core.planner import plan
from reconciler.core.policy import Baseline, GroupPolicy
from reconciler.core.rules import Direction, ObservedGroup, ObservedRule, RuleKey

SAFE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ACCOUNT = "123456789012"
OTHER_ACCOUNT = "111111111111"
SG_A = "sg-0ccccccccccccccc1"
SG_B = "sg-0ccccccccccccccc2"
FILES = ("policies/a.yaml", "policies/b.yaml")

# Small pools, so that live rules, allowed rules and exceptions often coincide.
# Group references are half of all peers, so that own-account references are common.
PEERS = st.sampled_from(["0.0.0.0/0", "10.0.0.0/8", "203.0.113.7/32", "::/0"]) | st.sampled_from(
    [SG_A, SG_B, f"{ACCOUNT}/{SG_A}", f"{OTHER_ACCOUNT}/{SG_A}", "pl-0123456789abcdef0"]
)
# Exceptions name the own account's groups more often: that is where localisation matters.
EXCEPTION_PEERS = st.one_of(PEERS, PEERS, st.just(f"{ACCOUNT}/{SG_A}"))
PORTS = st.sampled_from([22, 443, "8000-8100", "all"])
PROTOCOLS = st.sampled_from(["tcp", "udp", "icmp", "all"])
# Expiries right around now, so that "expires == now" and "one second either side" come up.
EXPIRY_OFFSETS = st.sampled_from(
    [timedelta(days=-10), timedelta(seconds=-1), timedelta(0), timedelta(seconds=1),
     timedelta(days=10)]
)  # fmt: skip
CLOCKS = st.sampled_from([NOW, NOW, NOW, None])


@st.composite
def rule_specs(
    draw: st.DrawFn, peer_field: str, peers: st.SearchStrategy[str] = PEERS
) -> dict[str, Any]:
    """One valid rule entry with its peers under ``from`` or ``to``."""
    protocol = draw(PROTOCOLS)
    spec: dict[str, Any] = {
        "protocol": protocol,
        peer_field: draw(st.lists(peers, min_size=1, max_size=2, unique=True)),
    }
    if protocol in {"tcp", "udp"}:
        spec["ports"] = draw(st.lists(PORTS, min_size=1, max_size=2))
    elif protocol == "icmp" and draw(st.booleans()):
        spec["icmp_type"] = 8
    return spec


@st.composite
def exception_specs(draw: st.DrawFn) -> dict[str, Any]:
    """An ingress or egress exception expiring shortly before, at, or after NOW."""
    spec = draw(rule_specs(draw(st.sampled_from(["from", "from", "to"])), EXCEPTION_PEERS))
    return spec | {"expires": NOW + draw(EXPIRY_OFFSETS), "reason": "ticket"}


@st.composite
def baselines(draw: st.DrawFn) -> Baseline:
    """One to three policies over two files, with exceptions, limits and the safety flags."""
    policies = []
    sources = {}
    for index in range(draw(st.integers(1, 3))):
        data: dict[str, Any] = {
            "name": f"p{index}",
            "match": {"tags": {"Name": f"p{index}"}},
            "ingress": draw(st.lists(rule_specs("from"), max_size=2)),
            "exceptions": draw(st.lists(exception_specs(), max_size=3)),
            "on_drift": draw(st.sampled_from(["revoke", "revoke", "report"])),
            "allow_empty": draw(st.booleans()),
            "restore_missing": draw(st.booleans()),
        }
        if draw(st.booleans()):
            data["egress"] = draw(st.lists(rule_specs("to"), max_size=2))
        if draw(st.booleans()):
            data["limits"] = {"max_revocations_per_group": draw(st.integers(1, 4))}
        policies.append(GroupPolicy.model_validate(data))
        sources[f"p{index}"] = draw(st.sampled_from(FILES))
    run_limits = {
        source: limit
        for source in FILES
        if (limit := draw(st.none() | st.integers(1, 6))) is not None
    }
    return Baseline(policies=tuple(policies), sources=sources, run_limits=run_limits)


def _as_live(key: RuleKey, owner: str | None) -> RuleKey:
    """How the reader reports ``key`` in a group owned by ``owner`` (own groups as plain sg-…)."""
    if owner is None or not key.peer.startswith(f"{owner}/"):
        return key
    return replace(key, peer=key.peer.removeprefix(f"{owner}/"))


def _spec_keys(spec: dict[str, Any], direction: Direction) -> list[RuleKey]:
    data = {"name": "x", "match": {"tags": {"x": "x"}}, "ingress": [spec]}
    keys = GroupPolicy.model_validate(data).desired()
    return sorted(replace(k, direction=direction) for k in keys)


@st.composite
def live_states(draw: st.DrawFn, baseline: Baseline) -> list[ObservedGroup]:
    """Live groups mixing allowed, excepted and random rules (a third each), no duplicates."""
    allowed = sorted({k for p in baseline.policies for k in p.desired()})
    excepted = sorted({k for p in baseline.policies for e in p.exceptions for k in e.rule_keys()})
    names = [p.name for p in baseline.policies] + ["bystander"]
    groups = []
    number = 0
    for index in range(draw(st.integers(1, 4))):
        owner = draw(st.sampled_from([ACCOUNT, ACCOUNT, "999999999999", None]))
        keys: dict[RuleKey, None] = {}
        for _ in range(draw(st.integers(0, 8))):
            pool = draw(st.sampled_from([allowed, excepted, []]))
            if pool:
                key = draw(st.sampled_from(pool))
            else:
                direction = draw(st.sampled_from(list(Direction)))
                key = draw(st.sampled_from(_spec_keys(draw(rule_specs("from")), direction)))
            keys.setdefault(_as_live(key, owner), None)
        rules = []
        for key in keys:
            number += 1
            rules.append(ObservedRule(f"sgr-{number:017x}", key))
        groups.append(
            ObservedGroup.build(
                region="eu-west-1",
                group_id=f"sg-{index + 1:017x}",
                rules=tuple(rules),
                tags={"Name": draw(st.sampled_from(names))},
                owner_id=owner,
            )
        )
    return groups


# --- an oracle written from the policy format, not from the planner ------------------------


def _governing(baseline: Baseline, group: ObservedGroup) -> GroupPolicy | None:
    found = [p for p in baseline.policies if p.match.holds_for(
        group_id=group.group_id, tags=group.tags, vpc_id=group.vpc_id)]  # fmt: skip
    assert len(found) <= 1  # names (and so tags) are distinct
    return found[0] if found else None


def _allowed(policy: GroupPolicy, key: RuleKey, owner: str | None) -> bool:
    return any(_as_live(k, owner) == key for k in policy.desired())


def _kept(policy: GroupPolicy, key: RuleKey, owner: str | None, now: datetime | None) -> bool:
    """True when an exception that has not expired at ``now`` names ``key``."""
    return any(
        _as_live(k, owner) == key
        for exception in policy.exceptions
        if now is None or exception.expires > now
        for k in exception.rule_keys()
    )


def _changes_of(result: Plan, group: ObservedGroup) -> list[Change]:
    return [c for c in result.changes if c.group_id == group.group_id]


def _without(
    groups: list[ObservedGroup], gone: AbstractSet[tuple[str, str | None]]
) -> list[ObservedGroup]:
    """The live state after the rules ``(group_id, rule_id)`` in ``gone`` were revoked."""
    return [
        replace(g, rules=tuple(r for r in g.rules if (g.group_id, r.rule_id) not in gone))
        for g in groups
    ]


# --- properties ----------------------------------------------------------------------------


@SAFE
@given(st.data())
def test_plan_never_revokes_an_allowed_rule_or_one_under_an_unexpired_exception(
    data: st.DataObject,
) -> None:
    """No revoke (written, blocked or report-only) targets a baseline or unexpired-excepted rule."""
    baseline = data.draw(baselines())
    observed = data.draw(live_states(baseline))
    now = data.draw(CLOCKS)
    result = plan(baseline, observed, now=now)
    for group in observed:
        policy = _governing(baseline, group)
        for change in _changes_of(result, group):
            assert policy is not None
            if change.action is Action.REVOKE:
                assert not _allowed(policy, change.key, group.owner_id), change
                assert not _kept(policy, change.key, group.owner_id, now), change
            if change.action is Action.EXCEPTED:
                assert _kept(policy, change.key, group.owner_id, now), change
                assert not change.writes


@SAFE
@given(st.data())
def test_every_rule_neither_allowed_nor_excepted_is_revoked_or_blocked(
    data: st.DataObject,
) -> None:
    """Each live rule in a managed direction that is not allowed is excepted or revoked, once."""
    baseline = data.draw(baselines())
    observed = data.draw(live_states(baseline))
    now = data.draw(CLOCKS)
    result = plan(baseline, observed, now=now)
    for group in observed:
        policy = _governing(baseline, group)
        by_rule = {c.rule_id: c for c in _changes_of(result, group) if c.rule_id is not None}
        if policy is None:
            assert by_rule == {}
            continue
        for rule in group.rules:
            change = by_rule.get(rule.rule_id)
            if rule.key.direction not in policy.managed_directions() or _allowed(
                policy, rule.key, group.owner_id
            ):
                assert change is None, rule
            elif _kept(policy, rule.key, group.owner_id, now):
                assert change is not None
                assert change.action is Action.EXCEPTED, rule
            else:
                assert change is not None, rule
                assert change.action is Action.REVOKE, rule
                assert change.writes or change.blocked is not None or change.report_only


@SAFE
@given(st.data())
def test_without_limits_nothing_is_blocked_and_nothing_else_changes(data: st.DataObject) -> None:
    """enforce_limits=False blocks nothing and plans exactly the enforced plan's changes."""
    baseline = data.draw(baselines())
    observed = data.draw(live_states(baseline))
    now = data.draw(CLOCKS)
    enforced = plan(baseline, observed, now=now)
    forced = plan(baseline, observed, now=now, enforce_limits=False)
    assert all(c.blocked is None for c in forced.changes)
    assert forced.changes == tuple(replace(c, blocked=None) for c in enforced.changes)
    assert forced.problems == enforced.problems


@SAFE
@given(st.data())
def test_removing_the_planned_revokes_leaves_nothing_to_revoke(data: st.DataObject) -> None:
    """Once every planned revoke is gone from the live state, a second plan revokes nothing."""
    baseline = data.draw(baselines())
    observed = data.draw(live_states(baseline))
    now = data.draw(CLOCKS)
    first = plan(baseline, observed, now=now)
    gone = {(c.group_id, c.rule_id) for c in first.changes if c.action is Action.REVOKE}
    second = plan(baseline, _without(observed, gone), now=now)
    assert [c for c in second.changes if c.action is Action.REVOKE] == []
    excepted = [(c.group_id, c.rule_id) for c in first.changes if c.action is Action.EXCEPTED]
    assert [(c.group_id, c.rule_id) for c in second.changes if c.action is Action.EXCEPTED] == (
        excepted
    )


@SAFE
@given(st.data())
def test_applying_the_writes_then_replanning_only_finds_what_was_held_back(
    data: st.DataObject,
) -> None:
    """After the written revokes and restores, what is left to revoke was blocked or report-only."""
    baseline = data.draw(baselines())
    observed = data.draw(live_states(baseline))
    first = plan(baseline, observed, now=NOW)
    revoked = {(c.group_id, c.rule_id) for c in first.changes if c.writes and c.rule_id}
    held_back = {
        (c.group_id, c.rule_id) for c in first.changes if c.action is Action.REVOKE and not c.writes
    }
    restored = [
        (c.group_id, c.key) for c in first.changes if c.writes and c.action is Action.RESTORE
    ]
    after = []
    for group in _without(observed, revoked):
        new = tuple(
            ObservedRule(f"sgr-new{i:014x}", key)
            for i, (group_id, key) in enumerate(restored)
            if group_id == group.group_id
        )
        after.append(replace(group, rules=(*group.rules, *new)))
    second = plan(baseline, after, now=NOW)
    again = {(c.group_id, c.rule_id) for c in second.changes if c.action is Action.REVOKE}
    assert again <= held_back
    assert not [c for c in second.changes if (c.group_id, c.key) in set(restored)]


@SAFE
@given(st.data())
def test_writes_stay_within_every_limit_and_never_in_report_mode(data: st.DataObject) -> None:
    """Writes respect the group limit, the run limit and allow_empty; report mode writes nothing."""
    baseline = data.draw(baselines())
    observed = data.draw(live_states(baseline))
    result = plan(baseline, observed, now=NOW)
    per_file: dict[str, int] = {}
    for group in observed:
        policy = _governing(baseline, group)
        if policy is None:
            continue
        changes = _changes_of(result, group)
        if policy.on_drift == "report":
            assert not any(c.writes for c in changes)
        revokes = [c for c in changes if c.writes and c.action is Action.REVOKE]
        assert len(revokes) <= policy.max_revocations_per_group()
        source = baseline.sources[policy.name]
        per_file[source] = per_file.get(source, 0) + len(revokes)
        live_ingress = [r for r in group.rules if r.key.direction is Direction.INGRESS]
        left = (
            len(live_ingress)
            - sum(1 for c in revokes if c.direction is Direction.INGRESS)
            + sum(
                1
                for c in changes
                if c.writes and c.action is Action.RESTORE and c.direction is Direction.INGRESS
            )
        )
        if live_ingress and left == 0:
            assert policy.allow_empty
            assert policy.ingress == ()
    for source, count in per_file.items():
        assert count <= baseline.run_limits.get(source, count)
