"""Live groups -> baseline policies and YAML text (core.baseline_from_groups), without AWS."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reconciler.core.baseline_from_groups import (
    Selector,
    import_baseline,
    merge_rules,
    policy_name,
    render_baseline,
    yaml_scalar,
)
from reconciler.core.planner import plan
from reconciler.core.policy import Baseline, PolicyFile
from reconciler.core.rules import Direction, ObservedGroup, ObservedRule, RuleKey
from reconciler.import_groups import _self_check

REGION = "eu-west-1"
OWNER = "111111111111"
PEER_GROUP = "sg-0bbbbbbbbbbbbbbb2"
PREFIX_LIST = "pl-0ccccccccccccccc3"
CROSS = "222222222222/sg-0ddddddddddddddd4"
SPECIAL = 'it\'s "quoted": yes # not a comment, {x: [1]} | ok'


def _rule(
    number: int,
    protocol: str,
    ports: tuple[int, int] | None,
    peer: str,
    description: str | None = None,
    *,
    egress: bool = False,
) -> ObservedRule:
    key = RuleKey.from_ec2(
        direction=Direction.EGRESS if egress else Direction.INGRESS,
        protocol=protocol,
        from_port=ports[0] if ports else None,
        to_port=ports[1] if ports else None,
        peer=peer,
    )
    return ObservedRule(f"sgr-{number:017x}", key, description)


def _group(
    group_id: str,
    rules: list[ObservedRule],
    name: str = "web",
    tags: dict[str, str] | None = None,
) -> ObservedGroup:
    return ObservedGroup.build(
        region=REGION,
        group_id=group_id,
        name=name,
        rules=tuple(rules),
        tags=tags or {},
        owner_id=OWNER,
        vpc_id="vpc-0123456789abcdef0",
    )


EVERY_KIND = [
    _rule(1, "tcp", (443, 443), "0.0.0.0/0", "public HTTPS"),
    _rule(2, "tcp", (443, 443), "2001:db8::/32", "public HTTPS"),
    _rule(3, "tcp", (443, 443), "10.0.0.0/8", "inside"),
    _rule(4, "tcp", (8000, 8100), PREFIX_LIST),
    _rule(5, "udp", (53, 53), PEER_GROUP, SPECIAL),
    _rule(6, "tcp", (22, 22), CROSS, "from the tools account"),
    _rule(7, "tcp", (-1, -1), "172.16.0.0/12"),
    _rule(8, "-1", None, "192.168.0.0/16", "lab"),
    _rule(9, "icmp", (8, 0), "10.0.0.0/8"),
    _rule(10, "icmp", (3, -1), "10.0.0.0/8"),
    _rule(11, "icmp", (-1, -1), "10.1.0.0/16"),
    _rule(12, "58", (-1, -1), "::/0"),
    _rule(13, "50", None, "10.2.0.0/16", "ESP"),
    _rule(14, "-1", None, "0.0.0.0/0", egress=True),
    _rule(15, "tcp", (25, 25), "::/0", "smtp: out", egress=True),
]


def _load(text: str) -> PolicyFile:
    return PolicyFile.model_validate(yaml.safe_load(text))


def test_merge_rules_joins_peers_of_one_protocol_ports_and_description_only() -> None:
    """Rules differing only in peer share one entry; other ports or descriptions stay apart."""
    entries = merge_rules(EVERY_KIND, Direction.INGRESS)
    shapes = [(e.protocol, e.from_port, e.to_port, e.description, e.peers) for e in entries]
    assert shapes == [
        ("tcp", 0, 65535, None, ("172.16.0.0/12",)),
        ("tcp", 22, 22, "from the tools account", (CROSS,)),
        ("tcp", 443, 443, "inside", ("10.0.0.0/8",)),
        ("tcp", 443, 443, "public HTTPS", ("0.0.0.0/0", "2001:db8::/32")),
        ("tcp", 8000, 8100, None, (PREFIX_LIST,)),
        ("udp", 53, 53, SPECIAL, (PEER_GROUP,)),
        ("icmp", -1, -1, None, ("10.1.0.0/16",)),
        ("icmp", 3, -1, None, ("10.0.0.0/8",)),
        ("icmp", 8, 0, None, ("10.0.0.0/8",)),
        ("icmpv6", -1, -1, None, ("::/0",)),
        ("all", None, None, "lab", ("192.168.0.0/16",)),
        ("50", None, None, "ESP", ("10.2.0.0/16",)),
    ]


def test_rendered_policy_is_exact_and_deterministic() -> None:
    """A group renders with its comment, group id match, merged peers and quoted specials."""
    group = _group(
        "sg-0aaaaaaaaaaaaaaa1",
        [
            _rule(2, "tcp", (443, 443), "::/0", "public: HTTPS"),
            _rule(1, "tcp", (443, 443), "0.0.0.0/0", "public: HTTPS"),
            _rule(3, "tcp", (8000, 8100), "10.0.0.0/16"),
            _rule(4, "icmp", (8, -1), "10.0.0.0/8"),
            _rule(5, "-1", None, "0.0.0.0/0", egress=True),
        ],
        name="web prod",
    )
    result = import_baseline([group], egress=True)
    text = render_baseline(result, header=["Imported for a test."])
    assert text == (
        "# Imported for a test.\n"
        "groups:\n"
        "  # web prod (sg-0aaaaaaaaaaaaaaa1)\n"
        "  - name: web-prod\n"
        "    match:\n"
        "      group_ids: [sg-0aaaaaaaaaaaaaaa1]\n"
        "    ingress:\n"
        "      - protocol: tcp\n"
        "        ports: 443\n"
        '        from: [0.0.0.0/0, "::/0"]\n'
        '        description: "public: HTTPS"\n'
        "      - protocol: tcp\n"
        '        ports: "8000-8100"\n'
        "        from: [10.0.0.0/16]\n"
        "      - protocol: icmp\n"
        "        icmp_type: 8\n"
        "        from: [10.0.0.0/8]\n"
        "    egress:\n"
        "      - protocol: all\n"
        "        to: [0.0.0.0/0]\n"
    )
    shuffled = _group(group.group_id, list(reversed(group.rules)), name="web prod")
    assert (
        render_baseline(import_baseline([shuffled], egress=True), header=["Imported for a test."])
        == text
    )


def test_every_rule_kind_round_trips_to_no_drift_with_descriptions_kept() -> None:
    """The text loads as a policy file whose plan against the same groups is empty."""
    groups = [_group("sg-0aaaaaaaaaaaaaaa1", EVERY_KIND), _group(PEER_GROUP, [], name="peer")]
    loaded = _load(render_baseline(import_baseline(groups, egress=True)))
    result = plan(Baseline(policies=loaded.groups), groups)
    assert result.changes == ()
    assert result.problems == ()
    assert result.managed_groups == 2
    web = next(p for p in loaded.groups if p.name == "web")
    described = {k.peer: d for k, d in web.descriptions().items() if k.protocol == "udp"}
    assert described == {PEER_GROUP: SPECIAL}
    assert web.egress is not None
    assert {k.peer for k in web.desired() if k.direction is Direction.EGRESS} == {
        "0.0.0.0/0",
        "::/0",
    }


def test_without_egress_the_policy_leaves_egress_unmanaged() -> None:
    """Without ``egress`` no egress key is written, so live egress rules are never drift."""
    groups = [_group("sg-0aaaaaaaaaaaaaaa1", EVERY_KIND)]
    text = render_baseline(import_baseline(groups))
    assert "egress" not in text
    loaded = _load(text)
    assert loaded.groups[0].egress is None
    assert plan(Baseline(policies=loaded.groups), groups).changes == ()


def test_a_group_without_rules_imports_as_an_empty_ingress_list() -> None:
    """A group with no ingress becomes ``ingress: []`` (and ``egress: []`` with egress)."""
    text = render_baseline(import_baseline([_group("sg-0aaaaaaaaaaaaaaa1", [])], egress=True))
    assert "    ingress: []\n    egress: []\n" in text
    assert _load(text).groups[0].ingress == ()


def test_names_are_sanitised_made_unique_and_take_the_prefix() -> None:
    """Group names become valid policy names, duplicates get -2, and --name prefixes them."""
    groups = [
        _group("sg-0aaaaaaaaaaaaaaa1", [], name="default"),
        _group("sg-0aaaaaaaaaaaaaaa2", [], name="default"),
        _group("sg-0aaaaaaaaaaaaaaa3", [], name="  Web / prod (eu) "),
        _group("sg-0aaaaaaaaaaaaaaa4", [], name="###"),
    ]
    assert [p.name for p in import_baseline(groups).policies] == [
        "Web-prod-eu",
        "default",
        "default-2",
        "sg-0aaaaaaaaaaaaaaa4",
    ]
    prefixed = import_baseline(groups[:2], name="legacy")
    assert [p.name for p in prefixed.policies] == ["legacy-default", "legacy-default-2"]
    assert [p.name for p in import_baseline(groups[:1], name="edge").policies] == ["edge"]
    assert policy_name("x" * 300, "sg-1") == "x" * 128


def test_per_selector_writes_one_tag_policy_when_the_groups_agree() -> None:
    """Groups of one tag with identical rules become one policy matching that tag."""
    rules = [_rule(1, "tcp", (443, 443), "0.0.0.0/0", "https")]
    groups = [
        _group("sg-0aaaaaaaaaaaaaaa1", rules, name="web-a", tags={"Role": "web"}),
        _group("sg-0aaaaaaaaaaaaaaa2", rules, name="web-b", tags={"Role": "web"}),
    ]
    result = import_baseline(groups, selectors=[Selector(tags=(("Role", "web"),))])
    assert result.notes == ()
    text = render_baseline(result)
    assert text.startswith(
        "groups:\n"
        "  # web-a (sg-0aaaaaaaaaaaaaaa1)\n"
        "  # web-b (sg-0aaaaaaaaaaaaaaa2)\n"
        "  - name: web\n"
        "    match:\n"
        "      tags: {Role: web}\n"
    )
    loaded = _load(text)
    assert plan(Baseline(policies=loaded.groups), groups).changes == ()


def test_per_selector_falls_back_to_one_policy_per_group_when_rules_differ() -> None:
    """A selector whose groups differ gets a note and one group-id policy per group."""
    groups = [
        _group("sg-0aaaaaaaaaaaaaaa1", [_rule(1, "tcp", (443, 443), "0.0.0.0/0")], "a", {"R": "x"}),
        _group("sg-0aaaaaaaaaaaaaaa2", [_rule(2, "tcp", (80, 80), "0.0.0.0/0")], "b", {"R": "x"}),
    ]
    result = import_baseline(groups, selectors=[Selector(tags=(("R", "x"),))])
    assert result.notes == (
        "tag R=x: groups a (sg-0aaaaaaaaaaaaaaa1) and b (sg-0aaaaaaaaaaaaaaa2) have different"
        " rules; writing one policy per group instead",
    )
    assert [(p.name, p.selector, p.group_ids) for p in result.policies] == [
        ("a", None, ("sg-0aaaaaaaaaaaaaaa1",)),
        ("b", None, ("sg-0aaaaaaaaaaaaaaa2",)),
    ]


def test_per_selector_refuses_selectors_that_share_a_group() -> None:
    """Two selectors holding the same group would both match it: both fall back, with notes."""
    group = _group("sg-0aaaaaaaaaaaaaaa1", [], "both", {"R": "x", "T": "y"})
    result = import_baseline(
        [group], selectors=[Selector(tags=(("R", "x"),)), Selector(tags=(("T", "y"),))]
    )
    assert [n.split(":")[0] for n in result.notes] == ["tag R=x", "tag T=y"]
    assert all("also selected by" in note for note in result.notes)
    assert [p.group_ids for p in result.policies] == [("sg-0aaaaaaaaaaaaaaa1",)]
    assert result.policies[0].selector is None


def test_scalars_that_look_like_other_types_are_quoted() -> None:
    """Strings YAML would read as bools, numbers, dates or null are double-quoted."""
    assert [yaml_scalar(v) for v in ["web", "yes", "Off", "null", "443", "2024-01-02", "::/0"]] == [
        "web",
        '"yes"',
        '"Off"',
        '"null"',
        '"443"',
        '"2024-01-02"',
        '"::/0"',
    ]
    assert yaml_scalar("10.0.0.0/8") == "10.0.0.0/8"
    assert yaml_scalar(CROSS) == CROSS


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
@example("\x85\u2028\x7f\t\r\n \ufeff\U0001f600 \\ ' \"")
@example("- item: # x")
@example("web\n")
@example("")
def test_any_string_reads_back_unchanged_in_block_and_flow_context(value: str) -> None:
    """Whatever a description or tag holds, the emitted scalar reads back as that string."""
    scalar = yaml_scalar(value)
    doc: Any = yaml.safe_load(f"a: {scalar}\nb: [{scalar}, x]\nc: {{{scalar}: {scalar}}}\n")
    assert doc == {"a": value, "b": [value, "x"], "c": {value: value}}


def test_a_rule_no_policy_can_state_is_reported_not_hidden() -> None:
    """An ICMP rule with a code but any type cannot be written: the self-check names it."""
    odd = _rule(1, "icmp", (-1, 5), "10.0.0.0/8")
    group = _group("sg-0aaaaaaaaaaaaaaa1", [odd])
    text = render_baseline(import_baseline([group]))
    assert _self_check(text, [group]) == [
        f"sg-0aaaaaaaaaaaaaaa1: plan will show revoke {odd.rule_id} ingress icmp all types"
        " from 10.0.0.0/8 (a live rule no policy can state exactly)",
        "sg-0aaaaaaaaaaaaaaa1: plan will show missing ingress icmp all types from 10.0.0.0/8"
        " (a live rule no policy can state exactly)",
    ]
