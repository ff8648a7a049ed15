"""Properties that must hold for every baseline and live state, checked with generated data."""

from __future__ import annotations

import ipaddress
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.adapters.policy_files import load_policies
from reconciler.core.errors import PolicyError
from reconciler.core.plan import Action, Plan
from reconciler.core.planner import plan
from reconciler.core.policy import Baseline, GroupPolicy
from reconciler.core.rules import (
    Direction,
    ObservedGroup,
    ObservedRule,
    RuleKey,
    canonical_peer,
    canonical_protocol,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ACCOUNT = "123456789012"
OTHER_ACCOUNT = "111111111111"
SG_A = "sg-0ccccccccccccccc1"
SG_B = "sg-0ccccccccccccccc2"

# Small pools so that generated live rules often equal, or nearly equal, allowed ones.
V4 = ["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "192.168.1.0/24", "203.0.113.7/32"]
V6 = ["::/0", "2001:db8::/32", "2001:db8:1::/48"]
GROUP_PEERS = [SG_A, SG_B, f"{ACCOUNT}/{SG_A}", f"{OTHER_ACCOUNT}/{SG_A}"]
PREFIX_LISTS = ["pl-0123456789abcdef0"]
# Group references are half of all peers so that own-account references are common.
PEERS = st.sampled_from(V4 + V6 + PREFIX_LISTS) | st.sampled_from(GROUP_PEERS)
PORT_ITEMS = st.sampled_from([22, 80, 443, "8000-8100", "0-65535", "all"])
PROTOCOLS = st.sampled_from(["tcp", "udp", "icmp", "icmpv6", "all", "47"])
ICMP_TYPES = st.sampled_from([None, -1, 0, 8])
ICMP_CODES = st.sampled_from([None, -1, 0])

# EC2 may report one protocol under either spelling.
WIRE_PROTOCOLS = {
    "tcp": ["tcp", "6"],
    "udp": ["udp", "17"],
    "icmp": ["icmp", "1"],
    "icmpv6": ["icmpv6", "58"],
    "all": ["-1"],
    "47": ["47"],
}


# --- strategies ----------------------------------------------------------------------------


@st.composite
def rule_specs(draw: st.DrawFn, peer_field: str) -> dict[str, Any]:
    """One valid ingress (``from``) or egress (``to``) entry."""
    protocol = draw(PROTOCOLS)
    spec: dict[str, Any] = {
        "protocol": protocol,
        peer_field: draw(st.lists(PEERS, min_size=1, max_size=3)),
    }
    if draw(st.booleans()):
        spec["description"] = draw(st.sampled_from(["office", "vpn", "health checks"]))
    if protocol in {"tcp", "udp"}:
        spec["ports"] = draw(st.lists(PORT_ITEMS, min_size=1, max_size=2))
    elif protocol in {"icmp", "icmpv6"}:
        icmp_type = draw(ICMP_TYPES)
        if icmp_type is not None:
            spec["icmp_type"] = icmp_type
            if icmp_type != -1 and (code := draw(ICMP_CODES)) is not None:
                spec["icmp_code"] = code
    return spec


@st.composite
def baselines(draw: st.DrawFn) -> Baseline:
    """One to three policies, each selecting the groups tagged Name=p<i>."""
    policies = []
    for index in range(draw(st.integers(1, 3))):
        data: dict[str, Any] = {
            "name": f"p{index}",
            "match": {"tags": {"Name": f"p{index}"}},
            "ingress": draw(st.lists(rule_specs("from"), max_size=3)),
            "on_drift": draw(st.sampled_from(["revoke", "report"])),
        }
        if draw(st.booleans()):
            data["egress"] = draw(st.lists(rule_specs("to"), max_size=2))
        policies.append(GroupPolicy.model_validate(data))
    # A catch-all policy by group id sometimes overlaps a tag policy: a two-policy conflict.
    if draw(st.booleans()):
        conflict = {"name": "by-id", "match": {"group_ids": ["sg-00000000000000001"]}}
        policies.append(GroupPolicy.model_validate(conflict | {"ingress": []}))
    return Baseline(policies=tuple(policies))


@st.composite
def wire_forms(draw: st.DrawFn, key: RuleKey) -> tuple[str, int | None, int | None, str]:
    """EC2 wire values (protocol, FromPort, ToPort, peer) that all mean ``key``."""
    protocol = draw(st.sampled_from(WIRE_PROTOCOLS[key.protocol]))
    ports: tuple[int | None, int | None] = (key.from_port, key.to_port)
    if key.from_port is None:
        ports = draw(st.sampled_from([(-1, -1), (None, None)]))
    elif key.protocol in {"tcp", "udp"} and ports == (0, 65535):
        ports = draw(st.sampled_from([(0, 65535), (-1, -1), (None, None)]))
    return protocol, ports[0], ports[1], draw(peer_spellings(key.peer))


@st.composite
def peer_spellings(draw: st.DrawFn, peer: str) -> str:
    """Other ways EC2 or a person may write the same canonical peer."""
    if peer.startswith(("sg-", "pl-")) or "/sg-" in peer:
        return peer
    network = ipaddress.ip_network(peer)
    host = network.network_address + draw(st.integers(0, network.num_addresses - 1))
    forms = [peer, f"{host}/{network.prefixlen}"]
    if network.version == 6:
        forms += [network.exploded, network.exploded.upper()]
    return draw(st.sampled_from(forms))


@st.composite
def live_states(draw: st.DrawFn, baseline: Baseline) -> list[ObservedGroup]:
    """Live groups whose rules mix allowed rules (in wire spelling) with random ones."""
    allowed = sorted({k for p in baseline.policies for k in p.desired()})
    groups = []
    rule_number = 0
    group_count = draw(st.integers(1, 4))
    for index in range(group_count):
        owner = draw(st.sampled_from([ACCOUNT, ACCOUNT, "999999999999", None]))
        rules = []
        for _ in range(draw(st.integers(0, 6))):
            rule_number += 1
            use_allowed: bool = draw(st.booleans())
            if allowed and use_allowed:
                key = draw(st.sampled_from(allowed))
                protocol, lo, hi, peer = draw(wire_forms(key))
                direction = key.direction
            else:
                spec = draw(rule_specs("from"))
                key = draw(st.sampled_from(sorted(_spec_keys(spec))))
                protocol, lo, hi, peer = key.ec2_protocol, key.from_port, key.to_port, key.peer
                direction = draw(st.sampled_from(list(Direction)))
            if owner is not None:
                peer = peer.removeprefix(f"{owner}/")  # the reader reports own groups as sg-…
            wire_key = RuleKey.from_ec2(
                direction=direction, protocol=protocol, from_port=lo, to_port=hi, peer=peer
            )
            rules.append(ObservedRule(f"sgr-{rule_number:017x}", wire_key))
        name = draw(st.sampled_from(["p0", "p1", "p2", "bystander"]))
        groups.append(
            ObservedGroup.build(
                region="eu-west-1",
                group_id=f"sg-{index + 1:017x}",
                rules=tuple(rules),
                tags={"Name": name},
                owner_id=owner,
            )
        )
    return groups


def _spec_keys(spec: dict[str, Any]) -> set[RuleKey]:
    return set(GroupPolicy.model_validate(
        {"name": "x", "match": {"tags": {"x": "x"}}, "ingress": [spec]}
    ).desired())  # fmt: skip


def _allows(policy: GroupPolicy, key: RuleKey, owner: str | None) -> bool:
    """Whether ``policy`` allows live ``key`` in a group owned by ``owner``, from the spec."""
    for wanted in policy.desired():
        same_peer = wanted.peer == key.peer or (
            owner is not None and wanted.peer == f"{owner}/{key.peer}"
        )
        if same_peer and (wanted.direction, wanted.protocol, wanted.from_port, wanted.to_port) == (
            key.direction,
            key.protocol,
            key.from_port,
            key.to_port,
        ):
            return True
    return False


def _governing(baseline: Baseline, group: ObservedGroup) -> list[GroupPolicy]:
    return [
        p
        for p in baseline.policies
        if p.match.holds_for(group_id=group.group_id, tags=group.tags, vpc_id=group.vpc_id)
    ]


# --- the planner ---------------------------------------------------------------------------


@FAST
@given(st.data())
def test_plan_revokes_exactly_the_rules_the_baseline_does_not_allow(data: st.DataObject) -> None:
    """No allowed rule is ever revoked; every disallowed rule in a managed direction is."""
    baseline = data.draw(baselines())
    observed = data.draw(live_states(baseline))
    result = plan(baseline, observed)
    revoked = {(c.group_id, c.rule_id) for c in result.changes if c.action is Action.REVOKE}
    for group in observed:
        policies = _governing(baseline, group)
        if len(policies) != 1:
            assert all(c.group_id != group.group_id for c in result.changes)
            continue
        (policy,) = policies
        managed = policy.managed_directions()
        for rule in group.rules:
            should_revoke = rule.key.direction in managed and not _allows(
                policy, rule.key, group.owner_id
            )
            assert ((group.group_id, rule.rule_id) in revoked) is should_revoke, rule.key


@FAST
@given(st.data())
def test_removing_planned_revokes_leaves_nothing_to_revoke(data: st.DataObject) -> None:
    """After the planned revokes are gone from the live state, a second plan has no revokes."""
    baseline = data.draw(baselines())
    observed = data.draw(live_states(baseline))
    first = plan(baseline, observed)
    gone = {(c.group_id, c.rule_id) for c in first.changes if c.action is Action.REVOKE}
    after = [
        ObservedGroup.build(
            region=g.region,
            group_id=g.group_id,
            rules=tuple(r for r in g.rules if (g.group_id, r.rule_id) not in gone),
            tags=dict(g.tags),
            owner_id=g.owner_id,
        )
        for g in observed
    ]
    second = plan(baseline, after)
    assert [c for c in second.changes if c.action is Action.REVOKE] == []
    assert _missing(second) == _missing(first)
    assert second.problems == first.problems


@FAST
@given(st.data())
def test_missing_rules_are_the_allowed_rules_not_live_with_their_descriptions(
    data: st.DataObject,
) -> None:
    """Every allowed rule absent from a group is reported missing once, with its description."""
    baseline = data.draw(baselines())
    observed = data.draw(live_states(baseline))
    result = plan(baseline, observed)
    for group in observed:
        policies = _governing(baseline, group)
        if len(policies) != 1:
            continue
        (policy,) = policies
        live = {r.key for r in group.rules}
        expected: dict[RuleKey, set[str | None]] = {}
        for wanted, description in policy.descriptions().items():
            key = _as_live(wanted, group.owner_id)
            if key.direction in policy.managed_directions() and key not in live:
                expected.setdefault(key, set()).add(description)
        reported = [
            c for c in result.changes if c.group_id == group.group_id and c.action is Action.MISSING
        ]
        assert sorted(c.key for c in reported) == sorted(expected)
        for change in reported:
            assert change.description in expected[change.key], change.key


def _as_live(key: RuleKey, owner: str | None) -> RuleKey:
    """How the reader reports ``key`` for a group owned by ``owner``."""
    if owner is None or not key.peer.startswith(f"{owner}/"):
        return key
    return RuleKey(
        key.direction, key.protocol, key.from_port, key.to_port, key.peer.removeprefix(f"{owner}/")
    )


def _missing(result: Plan) -> list[tuple[str, RuleKey]]:
    return [(c.group_id, c.key) for c in result.changes if c.action is Action.MISSING]


@FAST
@given(st.data())
def test_plan_does_not_depend_on_input_order(data: st.DataObject) -> None:
    """Permuting the live groups and their rules gives the same plan."""
    baseline = data.draw(baselines())
    observed = data.draw(live_states(baseline))
    shuffled = [
        ObservedGroup.build(
            region=g.region,
            group_id=g.group_id,
            rules=tuple(data.draw(st.permutations(g.rules))),
            tags=dict(g.tags),
            owner_id=g.owner_id,
        )
        for g in data.draw(st.permutations(observed))
    ]
    assert plan(baseline, shuffled) == plan(baseline, observed)


# --- normalisation -------------------------------------------------------------------------

V4_NETWORKS = st.builds(
    lambda address, length: ipaddress.IPv4Network((address, length), strict=False),
    st.integers(0, 2**32 - 1),
    st.integers(0, 32),
)
V6_NETWORKS = st.builds(
    lambda address, length: ipaddress.IPv6Network((address, length), strict=False),
    st.integers(0, 2**128 - 1),
    st.integers(0, 128),
)


@FAST
@given(st.one_of(V4_NETWORKS, V6_NETWORKS).flatmap(lambda n: peer_spellings(str(n))))
def test_canonical_peer_is_idempotent(text: str) -> None:
    """Canonicalising a canonical peer changes nothing, and a policy accepts it as written."""
    once = canonical_peer(text, strict=False)
    assert canonical_peer(once, strict=False) == once
    assert canonical_peer(once, strict=True) == once
    assert once == ipaddress.ip_network(text, strict=False).compressed


@FAST
@given(st.integers(0, 255), st.integers(0, 2))
def test_canonical_protocol_is_idempotent(number: int, padding: int) -> None:
    """Canonicalising a canonical protocol changes nothing, however the number was written."""
    once = canonical_protocol("0" * padding + str(number))
    assert canonical_protocol(once) == once
    assert once == canonical_protocol(number)


@FAST
@given(
    rule_specs("from")
    .flatmap(lambda spec: st.sampled_from(sorted(_spec_keys(spec))))
    .flatmap(lambda key: st.tuples(st.just(key), wire_forms(key)))
)
def test_from_ec2_of_a_keys_wire_values_is_the_same_key(
    case: tuple[RuleKey, tuple[str, int | None, int | None, str]],
) -> None:
    """A key read back from its own EC2 wire values, in any equivalent spelling, is the same key."""
    key, (protocol, lo, hi, peer) = case
    own = RuleKey.from_ec2(
        direction=key.direction,
        protocol=key.ec2_protocol,
        from_port=key.from_port,
        to_port=key.to_port,
        peer=key.peer,
    )
    assert own == key
    again = RuleKey.from_ec2(
        direction=key.direction, protocol=protocol, from_port=lo, to_port=hi, peer=peer
    )
    assert again == key


# --- the loader ----------------------------------------------------------------------------

KEYS = st.sampled_from(
    ["groups", "name", "match", "tags", "group_ids", "vpc_id", "ingress", "egress", "protocol",
     "ports", "from", "to", "icmp_type", "icmp_code", "description", "on_drift", "Name", "x"]
)  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["tcp", "all", "-1", "443", "8000-8100", "0.0.0.0/0", "::/0", "10.0.0.1/8",
                     SG_A, "sg-1", "vpc-0123abcd", "unmanaged", "report", "p0"]),
)  # fmt: skip
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(KEYS, st.text(max_size=6), st.integers()), inner, max_size=5),
    ),
    max_leaves=25,
)


def _load_text(text: str) -> Baseline | PolicyError:
    """Load ``text`` as the only policy file; return the Baseline or the PolicyError."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory, "p.yaml")
        path.write_text(text, encoding="utf-8")
        try:
            return load_policies(directory)
        except PolicyError as exc:
            return exc


def _assert_answer(answer: Baseline | PolicyError) -> None:
    if isinstance(answer, PolicyError):
        assert answer.problems
        assert all(p.file.endswith("p.yaml") and p.message for p in answer.problems)
    else:
        assert answer.policies


@FAST
@given(DOCUMENTS.map(lambda doc: {"groups": doc}) | DOCUMENTS)
def test_loader_answers_random_documents_with_a_baseline_or_policy_error(doc: object) -> None:
    """Any YAML document gives a Baseline or a PolicyError with problems, never a crash."""
    _assert_answer(_load_text(yaml.safe_dump(doc)))


YAML_PIECES = st.sampled_from(
    ["groups:", "- ", "  ", "    ", "\n", "name: web", "match:", "tags: {Name: web}", "ingress:",
     "protocol: tcp", "ports: 443", "from: [10.0.0.0/8]", "{", "}", "[", "]", ": ", ", ", "'",
     '"', "#", "&a ", "*a", "<<: ", "!!int ", "!!float ", "!!timestamp ", "!Ref ", "!!binary ",
     "!!python/name:os.system", "? ", "---", "...", "|", ">", "\t", "~", "x", "42", "%YAML 1.1",
     "@", "`"]
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(YAML_PIECES | st.text(max_size=4), max_size=30).map("".join))
def test_loader_answers_random_yaml_text_with_a_baseline_or_policy_error(text: str) -> None:
    """Any text in a policy file gives a Baseline or a PolicyError with problems, never a crash."""
    _assert_answer(_load_text(text))
