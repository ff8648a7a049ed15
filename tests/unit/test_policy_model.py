"""Policy models: what a policy entry allows, and which entries are refused."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from reconciler.core.policy import (
    Baseline,
    EgressRule,
    GroupPolicy,
    IngressRule,
    Match,
    PolicyFile,
)
from reconciler.core.rules import Direction, RuleKey

INGRESS = Direction.INGRESS
EGRESS = Direction.EGRESS
SG = "sg-0123456789abcdef0"
PL = "pl-0123456789abcdef0"
MATCH = {"tags": {"Name": "web"}}


def errors_of(model: type[BaseModel], data: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    """The (location, message) of every validation error ``data`` gives ``model``."""
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return [(tuple(e["loc"]), e["msg"]) for e in info.value.errors(include_url=False)]


def ingress(**fields: Any) -> IngressRule:
    return IngressRule.model_validate(fields)


def group(**fields: Any) -> GroupPolicy:
    data: dict[str, Any] = {"name": "web", "match": MATCH, "ingress": []}
    data.update(fields)
    return GroupPolicy.model_validate(data)


# --- expansion -----------------------------------------------------------------------------


def test_rule_expands_to_one_key_per_port_range_and_peer() -> None:
    """An entry with two port ranges and three peers allows exactly six EC2 rules."""
    rule = ingress(protocol="tcp", ports=[443, "8000-8100"], **{"from": ["10.0.0.0/8", "::/0", SG]})
    assert list(rule.rule_keys()) == [
        RuleKey(INGRESS, "tcp", 443, 443, "10.0.0.0/8"),
        RuleKey(INGRESS, "tcp", 443, 443, "::/0"),
        RuleKey(INGRESS, "tcp", 443, 443, SG),
        RuleKey(INGRESS, "tcp", 8000, 8100, "10.0.0.0/8"),
        RuleKey(INGRESS, "tcp", 8000, 8100, "::/0"),
        RuleKey(INGRESS, "tcp", 8000, 8100, SG),
    ]


@pytest.mark.parametrize(
    ("ports", "expected"),
    [
        (443, ((443, 443),)),
        (0, ((0, 0),)),
        (65535, ((65535, 65535),)),
        ("443", ((443, 443),)),
        ("8000-8100", ((8000, 8100),)),
        (" 8000 - 8100 ", ((8000, 8100),)),
        ("22-22", ((22, 22),)),
        ("all", ((0, 65535),)),
        ("ALL", ((0, 65535),)),
        ([443, 80], ((80, 80), (443, 443))),
        ([443, "443", 443], ((443, 443),)),
        (["8000-8100", 22, "all"], ((0, 65535), (22, 22), (8000, 8100))),
    ],
)
def test_ports_forms(ports: object, expected: tuple[tuple[int, int], ...]) -> None:
    """Ports may be a number, a "lo-hi" range, all, or a list of those (sorted, deduplicated)."""
    assert ingress(protocol="tcp", ports=ports, **{"from": "10.0.0.0/8"}).ports == expected


@pytest.mark.parametrize("protocol", ["tcp", "udp", "6", "17"])
def test_ports_all_is_the_full_range(protocol: str) -> None:
    """ports: all on tcp/udp is the rule 0-65535, which EC2 reports as -1/-1 or 0-65535."""
    rule = ingress(protocol=protocol, ports="all", **{"from": "0.0.0.0/0"})
    (key,) = rule.rule_keys()
    assert (key.from_port, key.to_port) == (0, 65535)


@pytest.mark.parametrize(
    ("fields", "ports"),
    [
        ({"protocol": "all"}, (None, None)),
        ({"protocol": "-1"}, (None, None)),
        ({"protocol": "47"}, (None, None)),
        ({"protocol": "icmp"}, (-1, -1)),
        ({"protocol": "icmp", "icmp_type": 8}, (8, -1)),
        ({"protocol": "icmp", "icmp_type": 3, "icmp_code": 4}, (3, 4)),
        ({"protocol": "icmp", "icmp_type": -1}, (-1, -1)),
        ({"protocol": "icmp", "icmp_type": -1, "icmp_code": -1}, (-1, -1)),
        ({"protocol": "icmp", "icmp_code": -1}, (-1, -1)),
        ({"protocol": "icmpv6", "icmp_type": 128, "icmp_code": 0}, (128, 0)),
    ],
)
def test_portless_protocols_expand_to_their_wire_ports(
    fields: dict[str, Any], ports: tuple[int | None, int | None]
) -> None:
    """Protocol all and other numbers have no ports; ICMP uses type/code with -1 for any."""
    (key,) = ingress(**fields, **{"from": "10.0.0.0/8"}).rule_keys()
    assert (key.from_port, key.to_port) == ports


def test_single_string_from_is_one_peer() -> None:
    """A single peer may be written without brackets and means a one-item list."""
    rule = ingress(protocol="tcp", ports=22, **{"from": "10.0.0.0/8"})
    assert rule.from_ == ("10.0.0.0/8",)


def test_peers_are_canonicalised() -> None:
    """Peers in a policy are stored in the canonical form used to compare with live rules."""
    rule = ingress(protocol="all", **{"from": ["2001:DB8:0:0::/32", "::0/0", " 10.0.0.0/8"]})
    assert rule.peers() == ("2001:db8::/32", "::/0", "10.0.0.0/8")


def test_egress_rules_use_to() -> None:
    """Egress entries name their peers under ``to`` and expand to egress keys."""
    rule = EgressRule.model_validate({"protocol": "all", "to": ["0.0.0.0/0", PL]})
    assert list(rule.rule_keys()) == [
        RuleKey(EGRESS, "all", None, None, "0.0.0.0/0"),
        RuleKey(EGRESS, "all", None, None, PL),
    ]


def test_desired_and_descriptions_cover_both_directions() -> None:
    """A policy allows its ingress and managed egress keys, each with its first description."""
    policy = group(
        ingress=[
            {"protocol": "tcp", "ports": 443, "from": "0.0.0.0/0", "description": "https"},
            {"protocol": "tcp", "ports": 443, "from": "0.0.0.0/0", "description": "dup"},
        ],
        egress=[{"protocol": "all", "to": "0.0.0.0/0"}],
    )
    https = RuleKey(INGRESS, "tcp", 443, 443, "0.0.0.0/0")
    out = RuleKey(EGRESS, "all", None, None, "0.0.0.0/0")
    assert policy.desired() == frozenset({https, out})
    assert policy.descriptions() == {https: "https", out: None}


# --- rule errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        (
            {"protocol": "tcp", "ports": 70000},
            [(("ports",), "Value error, port 70000 is out of range (0-65535)")],
        ),
        (
            {"protocol": "tcp", "ports": -1},
            [(("ports",), "Value error, port -1 is out of range (0-65535)")],
        ),
        (
            {"protocol": "udp", "ports": "1000-70000"},
            [(("ports",), "Value error, port '70000' is out of range (0-65535)")],
        ),
        (
            {"protocol": "tcp", "ports": "8100-8000"},
            [
                (
                    ("ports",),
                    "Value error, port range '8100-8000' is reversed (did you mean 8000-8100?)",
                )
            ],
        ),
        (
            {"protocol": "tcp", "ports": "http"},
            [(("ports",), """Value error, 'http' is not a port (use 443, "8000-8100" or all)""")],
        ),
        (
            {"protocol": "tcp", "ports": "²"},
            [(("ports",), """Value error, '²' is not a port (use 443, "8000-8100" or all)""")],
        ),
        (
            {"protocol": "tcp", "ports": True},
            [(("ports",), """Value error, True is not a port (use 443, "8000-8100" or all)""")],
        ),
        (
            {"protocol": "tcp", "ports": []},
            [(("ports",), "Value error, ports is an empty list (give at least one port, or all)")],
        ),
        (
            {"protocol": "all", "ports": 22},
            [
                (
                    (),
                    "Value error, ports is not allowed with protocol all"
                    " (protocol all covers every port; remove ports)",
                )
            ],
        ),
        (
            {"protocol": "-1", "ports": "all"},
            [
                (
                    (),
                    "Value error, ports is not allowed with protocol all"
                    " (protocol all covers every port; remove ports)",
                )
            ],
        ),
        (
            {"protocol": "icmp", "ports": 8},
            [
                (
                    (),
                    "Value error, ports is not allowed with protocol icmp"
                    " (use icmp_type/icmp_code)",
                )
            ],
        ),
        (
            {"protocol": "tcp"},
            [((), """Value error, protocol tcp needs ports (443, "8000-8100" or all)""")],
        ),
        (
            {"protocol": "17"},
            [((), """Value error, protocol udp needs ports (443, "8000-8100" or all)""")],
        ),
        (
            {"protocol": "tcp", "ports": 22, "icmp_type": 8},
            [
                (
                    (),
                    "Value error, icmp_type/icmp_code are only allowed with icmp or icmpv6,"
                    " not tcp",
                )
            ],
        ),
        (
            {"protocol": "all", "icmp_code": 0},
            [
                (
                    (),
                    "Value error, icmp_type/icmp_code are only allowed with icmp or icmpv6,"
                    " not all",
                )
            ],
        ),
        (
            {"protocol": "icmp", "icmp_code": 0},
            [((), "Value error, icmp_code needs an icmp_type (a code belongs to one type)")],
        ),
        (
            {"protocol": "icmp", "icmp_type": -1, "icmp_code": 3},
            [((), "Value error, icmp_code needs an icmp_type (a code belongs to one type)")],
        ),
        (
            {"protocol": "icmp", "icmp_type": 256},
            [(("icmp_type",), "Input should be less than or equal to 255")],
        ),
        (
            {"protocol": "gre"},
            [
                (
                    ("protocol",),
                    "Value error, unknown protocol 'gre'"
                    " (use tcp, udp, icmp, icmpv6, all, or a number 0-255)",
                )
            ],
        ),
    ],
    ids=[
        "port-out-of-range",
        "negative-port",
        "range-end-out-of-range",
        "reversed-range",
        "not-a-port",
        "non-ascii-digit",
        "bool-port",
        "empty-ports",
        "ports-with-all",
        "ports-with-minus-one",
        "ports-with-icmp",
        "tcp-without-ports",
        "udp-number-without-ports",
        "icmp-type-with-tcp",
        "icmp-code-with-all",
        "icmp-code-without-type",
        "icmp-code-with-any-type",
        "icmp-type-too-big",
        "unknown-protocol",
    ],
)
def test_rule_errors(fields: dict[str, Any], errors: list[tuple[tuple[Any, ...], str]]) -> None:
    """Ports and ICMP fields that do not fit the protocol are refused with the fix."""
    assert errors_of(IngressRule, {**fields, "from": ["10.0.0.0/8"]}) == errors


@pytest.mark.parametrize(
    ("peers", "errors"),
    [
        ([], [(("from",), "Value should have at least 1 item after validation, not 0")]),
        (
            ["10.0.0.0/8", "10.0.0.1/8"],
            [
                (
                    ("from", 1),
                    "Value error, '10.0.0.1/8' has host bits set (did you mean 10.0.0.0/8?)",
                )
            ],
        ),
        (
            "sg-123",
            [
                (
                    ("from", 0),
                    "Value error, 'sg-123' is not a valid id (expected sg-/pl- followed by 8 or"
                    " 17 hex digits, or 123456789012/sg-… for another account's group)",
                )
            ],
        ),
        ([5], [(("from", 0), "Input should be a valid string")]),
    ],
)
def test_from_errors(peers: object, errors: list[tuple[tuple[Any, ...], str]]) -> None:
    """``from`` must name at least one valid peer; each bad peer is reported at its index."""
    assert errors_of(IngressRule, {"protocol": "all", "from": peers}) == errors


def test_missing_from_and_unknown_keys_are_errors() -> None:
    """A rule without ``from`` and with an unknown key is refused (extra keys are forbidden)."""
    assert errors_of(IngressRule, {"protocol": "tcp", "port": 22, "from_": "10.0.0.0/8"}) == [
        (("from",), "Field required"),
        (("port",), "Extra inputs are not permitted"),
        (("from_",), "Extra inputs are not permitted"),
    ]


def test_egress_rule_does_not_accept_from() -> None:
    """Egress entries take ``to``; a ``from`` there is an unknown key, not silently ignored."""
    assert errors_of(EgressRule, {"protocol": "all", "to": "0.0.0.0/0", "from": "10.0.0.0/8"}) == [
        (("from",), "Extra inputs are not permitted")
    ]


# --- match ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        (
            {},
            [
                (
                    (),
                    "Value error, match needs at least one of tags, group_ids or vpc_id (an empty"
                    " match would govern every group)",
                )
            ],
        ),
        (
            {"tags": {}},
            [
                (
                    (),
                    "Value error, match needs at least one of tags, group_ids or vpc_id (an empty"
                    " match would govern every group)",
                )
            ],
        ),
        (
            {"vpc_id": "vpc-zz"},
            [(("vpc_id",), "Value error, 'vpc-zz' is not a VPC id (vpc- and 8 or 17 hex digits)")],
        ),
        (
            {"tags": {"Port": 443}},
            [
                (
                    ("tags",),
                    "Value error, tag 'Port' has value 443, which is not a string"
                    " (quote it in YAML)",
                )
            ],
        ),
        ({"name": "web"}, [(("name",), "Extra inputs are not permitted")]),
    ],
)
def test_match_errors(data: dict[str, Any], errors: list[tuple[tuple[Any, ...], str]]) -> None:
    """A selector must select something specific, with valid ids and string tag values."""
    assert errors_of(Match, data) == errors


def test_match_bad_group_id() -> None:
    """A malformed group id in a selector is reported at its index."""
    assert errors_of(Match, {"group_ids": [SG, "sg-12"]}) == [
        (
            ("group_ids", 1),
            "Value error, 'sg-12' is not a security group id (sg- and 8 or 17 hex digits)",
        )
    ]


@pytest.mark.parametrize(
    ("match", "facts", "holds"),
    [
        ({"tags": {"Name": "web"}}, {"tags": {"Name": "web", "x": "y"}}, True),
        ({"tags": {"Name": "web"}}, {"tags": {"Name": "Web"}}, False),
        ({"tags": {"Name": "web", "env": "prod"}}, {"tags": {"Name": "web"}}, False),
        ({"group_ids": [SG]}, {"group_id": SG}, True),
        ({"group_ids": [SG]}, {"group_id": "sg-00000000"}, False),
        ({"vpc_id": "vpc-0123abcd"}, {"vpc_id": "vpc-0123abcd"}, True),
        ({"vpc_id": "vpc-0123abcd"}, {"vpc_id": None}, False),
        ({"tags": {"Name": "web"}, "vpc_id": "vpc-0123abcd"}, {"tags": {"Name": "web"}}, False),
        (
            {"tags": {"Name": "web"}, "group_ids": [SG]},
            {"group_id": SG, "tags": {"Name": "db"}},
            False,
        ),
    ],
)
def test_match_holds_only_when_every_given_key_holds(
    match: dict[str, Any], facts: dict[str, Any], *, holds: bool
) -> None:
    """Tags, group ids and VPC are ANDed; tag comparison is exact."""
    selector = Match.model_validate(match)
    kwargs: dict[str, Any] = {"group_id": "sg-99999999", "tags": {}, "vpc_id": None} | facts
    assert selector.holds_for(**kwargs) is holds


# --- group policy --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("egress", "directions"),
    [
        ("unmanaged", (INGRESS,)),
        (None, (INGRESS,)),
        ([], (INGRESS, EGRESS)),
        ([{"protocol": "all", "to": "0.0.0.0/0"}], (INGRESS, EGRESS)),
    ],
)
def test_managed_directions(egress: object, directions: tuple[Direction, ...]) -> None:
    """Ingress is always managed; egress only when the policy gives a list (even an empty one)."""
    assert group(egress=egress).managed_directions() == directions


def test_egress_defaults_to_unmanaged() -> None:
    """Leaving egress out leaves live egress rules alone."""
    policy = group()
    assert policy.egress is None
    assert policy.managed_directions() == (INGRESS,)
    assert policy.on_drift == "revoke"


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        (
            {"egress": "none"},
            [
                (
                    ("egress",),
                    "Value error, egress must be a list of rules or 'unmanaged', not 'none'",
                )
            ],
        ),
        (
            {"egress": "Unmanaged"},
            [
                (
                    ("egress",),
                    "Value error, egress must be a list of rules or 'unmanaged', not 'Unmanaged'",
                )
            ],
        ),
        ({"on_drift": "fix"}, [(("on_drift",), "Input should be 'revoke' or 'report'")]),
        (
            {"name": "web prod"},
            [
                (
                    ("name",),
                    "Value error, 'web prod' is not a valid policy name"
                    " (letters, digits, '.', '_', '-'; at most 128)",
                )
            ],
        ),
        ({"owner": "me"}, [(("owner",), "Extra inputs are not permitted")]),
        ({"ingress": None}, [(("ingress",), "Input should be a valid tuple")]),
    ],
)
def test_group_policy_errors(
    fields: dict[str, Any], errors: list[tuple[tuple[Any, ...], str]]
) -> None:
    """A group policy refuses bad egress, on_drift, names and unknown keys."""
    data: dict[str, Any] = {"name": "web", "match": MATCH, "ingress": []}
    assert errors_of(GroupPolicy, data | fields) == errors


def test_group_policy_requires_name_match_and_ingress() -> None:
    """A group policy without name, match and ingress is refused key by key."""
    assert errors_of(GroupPolicy, {}) == [
        (("name",), "Field required"),
        (("match",), "Field required"),
        (("ingress",), "Field required"),
    ]


def test_policy_file_needs_at_least_one_group() -> None:
    """A policy file with an empty groups list is refused."""
    assert errors_of(PolicyFile, {"groups": []}) == [
        (("groups",), "Tuple should have at least 1 item after validation, not 0")
    ]


def test_models_are_frozen() -> None:
    """Policies cannot be changed after loading (assignment raises)."""
    policy = group(ingress=[{"protocol": "tcp", "ports": 22, "from": "10.0.0.0/8"}])
    with pytest.raises(ValidationError, match="Instance is frozen"):
        policy.on_drift = "report"
    with pytest.raises(ValidationError, match="Instance is frozen"):
        policy.ingress[0].protocol = "udp"
    with pytest.raises(ValidationError, match="Instance is frozen"):
        policy.match.vpc_id = "vpc-0123abcd"
    assert policy.on_drift == "revoke"


def test_baseline_by_name_and_selectors() -> None:
    """A baseline finds policies by name and says whether every policy selects by tag."""
    web = group()
    db = group(name="db", match={"group_ids": [SG]})
    assert Baseline(policies=(web, db)).by_name("db") is db
    assert Baseline(policies=(web,)).uses_only_tag_selectors() is True
    assert Baseline(policies=(web, db)).uses_only_tag_selectors() is False
    with pytest.raises(KeyError):
        Baseline(policies=(web,)).by_name("nope")
