"""The planner: baseline x live groups -> every revoke and missing rule, deterministically."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pytest

from reconciler.core.plan import Action, Change, GroupProblem, Outcome, Plan, Status, Summary
from reconciler.core.planner import matching_policies, plan
from reconciler.core.policy import Baseline, GroupPolicy
from reconciler.core.rules import Direction, ObservedGroup, ObservedRule, RuleKey

INGRESS = Direction.INGRESS
EGRESS = Direction.EGRESS
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
REGION = "eu-west-1"
ACCOUNT = "123456789012"
WEB = "sg-0aaaaaaaaaaaaaaa1"
APP = "sg-0aaaaaaaaaaaaaaa2"
DB = "sg-0aaaaaaaaaaaaaaa3"
OTHER = "sg-0bbbbbbbbbbbbbbb1"
PEER_SG = "sg-0ccccccccccccccc1"
PL = "pl-0123456789abcdef0"
VPC = "vpc-0123456789abcdef0"

HTTPS = {"protocol": "tcp", "ports": 443, "from": "0.0.0.0/0", "description": "public HTTPS"}


def policy(
    name: str = "web-prod",
    *,
    match: dict[str, Any] | None = None,
    ingress: Iterable[dict[str, Any]] = (HTTPS,),
    **fields: Any,
) -> GroupPolicy:
    data = {"name": name, "match": match or {"tags": {"Name": name}}, "ingress": list(ingress)}
    return GroupPolicy.model_validate(data | fields)


def live(
    rule_id: str,
    protocol: str,
    ports: tuple[int | None, int | None],
    peer: str,
    *,
    direction: Direction = INGRESS,
    description: str | None = None,
) -> ObservedRule:
    """A live rule as the reader builds it from EC2's wire values."""
    key = RuleKey.from_ec2(
        direction=direction, protocol=protocol, from_port=ports[0], to_port=ports[1], peer=peer
    )
    return ObservedRule(rule_id, key, description)


def group(
    group_id: str,
    *rules: ObservedRule,
    name: str = "web-prod",
    tags: dict[str, str] | None = None,
    **facts: Any,
) -> ObservedGroup:
    return ObservedGroup.build(
        region=REGION,
        group_id=group_id,
        rules=rules,
        tags={"Name": name} if tags is None else tags,
        **facts,
    )


def run(policies: Iterable[GroupPolicy], groups: Iterable[ObservedGroup]) -> Plan:
    return plan(Baseline(policies=tuple(policies)), list(groups), now=NOW)


def rows(result: Plan) -> list[tuple[str, str, str | None, str, str]]:
    """Each change as (action, group, rule id, rule text, reason): what a reader sees."""
    return [
        (c.action.value, c.group_id, c.rule_id, c.key.describe(), c.reason) for c in result.changes
    ]


HTTPS_LIVE = live("sgr-00000000000000001", "tcp", (443, 443), "0.0.0.0/0")


# --- revoke and missing --------------------------------------------------------------------


def test_rule_not_in_policy_is_revoked_by_rule_id() -> None:
    """A live rule the policy does not allow becomes a revoke with its rule id and a reason."""
    ssh = live("sgr-0ffffffffffffff22", "tcp", (22, 22), "0.0.0.0/0", description="debug")
    result = run([policy()], [group(WEB, HTTPS_LIVE, ssh)])
    assert result.changes == (
        Change(
            action=Action.REVOKE,
            region=REGION,
            group_id=WEB,
            policy="web-prod",
            key=RuleKey(INGRESS, "tcp", 22, 22, "0.0.0.0/0"),
            rule_id="sgr-0ffffffffffffff22",
            description="debug",
            reason="not in policy web-prod",
        ),
    )
    assert result.changes[0].writes is True
    assert result.problems == ()
    assert result.managed_groups == 1


def test_baseline_rule_not_live_is_reported_missing() -> None:
    """An allowed rule that is not live is reported missing, with its description, never written."""
    https = {**HTTPS, "from": ["0.0.0.0/0", "::/0"]}
    result = run([policy(ingress=[https])], [group(WEB, HTTPS_LIVE)])
    assert result.changes == (
        Change(
            action=Action.MISSING,
            region=REGION,
            group_id=WEB,
            policy="web-prod",
            key=RuleKey(INGRESS, "tcp", 443, 443, "::/0"),
            rule_id=None,
            description="public HTTPS",
            reason="in policy web-prod but not live",
            report_only=False,
        ),
    )
    assert result.changes[0].writes is False


def test_matching_group_has_no_changes() -> None:
    """A group equal to its baseline gives an empty plan that still counts it as managed."""
    result = run([policy()], [group(WEB, HTTPS_LIVE)])
    assert result == Plan(
        changes=(), problems=(), managed_groups=1, governed=((f"-/{REGION}/{WEB}", "web-prod"),)
    )
    assert result.has_drift is False


def test_description_only_difference_is_no_change() -> None:
    """A live rule whose description differs from the policy's is the same rule: no change."""
    renamed = live("sgr-00000000000000001", "tcp", (443, 443), "0.0.0.0/0", description="edited")
    assert run([policy()], [group(WEB, renamed)]).changes == ()


def test_empty_ingress_revokes_every_ingress_rule() -> None:
    """``ingress: []`` means no ingress at all: every live ingress rule is revoked."""
    result = run([policy(ingress=[])], [group(WEB, HTTPS_LIVE)])
    assert rows(result) == [
        (
            "revoke",
            WEB,
            "sgr-00000000000000001",
            "ingress tcp 443 from 0.0.0.0/0",
            "not in policy web-prod",
        )
    ]


SAME_RULE = [
    pytest.param(
        {"protocol": "tcp", "ports": 22, "from": "10.0.0.0/8"},
        ("tcp", (22, 22), "10.0.0.0/8"),
        id="ipv4",
    ),
    pytest.param(
        {"protocol": "tcp", "ports": 22, "from": "10.0.0.0/8"},
        ("6", (22, 22), "10.0.0.0/8"),
        id="protocol-number",
    ),
    pytest.param(
        {"protocol": "tcp", "ports": 22, "from": "10.0.0.0/8"},
        ("tcp", (22, 22), "10.0.0.5/8"),
        id="live-host-bits",
    ),
    pytest.param(
        {"protocol": "tcp", "ports": 22, "from": "2001:DB8:0:0::/32"},
        ("tcp", (22, 22), "2001:db8::/32"),
        id="ipv6-policy-uncompressed",
    ),
    pytest.param(
        {"protocol": "tcp", "ports": 22, "from": "::/0"},
        ("tcp", (22, 22), "::0/0"),
        id="ipv6-live-uncompressed",
    ),
    pytest.param(
        {"protocol": "tcp", "ports": 22, "from": PEER_SG},
        ("tcp", (22, 22), PEER_SG),
        id="group-reference",
    ),
    pytest.param(
        {"protocol": "tcp", "ports": 22, "from": PL}, ("tcp", (22, 22), PL), id="prefix-list"
    ),
    pytest.param(
        {"protocol": "tcp", "ports": "8000-8100", "from": "10.0.0.0/8"},
        ("tcp", (8000, 8100), "10.0.0.0/8"),
        id="port-range",
    ),
    pytest.param(
        {"protocol": "tcp", "ports": "all", "from": "10.0.0.0/8"},
        ("tcp", (-1, -1), "10.0.0.0/8"),
        id="tcp-all-ports-wire-minus-one",
    ),
    pytest.param(
        {"protocol": "udp", "ports": "0-65535", "from": "10.0.0.0/8"},
        ("17", (0, 65535), "10.0.0.0/8"),
        id="udp-full-range",
    ),
    pytest.param(
        {"protocol": "all", "from": "10.0.0.0/8"}, ("-1", (-1, -1), "10.0.0.0/8"), id="protocol-all"
    ),
    pytest.param(
        {"protocol": "-1", "from": "::/0"}, ("-1", (None, None), "::/0"), id="protocol-all-v6"
    ),
    pytest.param(
        {"protocol": "icmp", "from": "10.0.0.0/8"}, ("1", (-1, -1), "10.0.0.0/8"), id="icmp-any"
    ),
    pytest.param(
        {"protocol": "icmp", "icmp_type": 8, "from": "10.0.0.0/8"},
        ("icmp", (8, -1), "10.0.0.0/8"),
        id="icmp-type",
    ),
    pytest.param(
        {"protocol": "icmpv6", "icmp_type": 128, "icmp_code": 0, "from": "::/0"},
        ("58", (128, 0), "::/0"),
        id="icmpv6-type-code",
    ),
    pytest.param(
        {"protocol": "47", "from": "10.0.0.0/8"},
        ("47", (-1, -1), "10.0.0.0/8"),
        id="other-protocol",
    ),
]


@pytest.mark.parametrize(("allowed", "wire"), SAME_RULE)
def test_equivalent_spellings_are_the_same_rule(
    allowed: dict[str, Any], wire: tuple[str, tuple[int | None, int | None], str]
) -> None:
    """A policy rule and the live rule EC2 reports for it compare equal, however each is written."""
    protocol, ports, peer = wire
    observed = group(WEB, live("sgr-00000000000000001", protocol, ports, peer))
    assert run([policy(ingress=[allowed])], [observed]).changes == ()


DIFFERENT_RULE = [
    pytest.param(
        {"protocol": "tcp", "ports": "8000-8100", "from": "10.0.0.0/8"},
        ("tcp", (8000, 8101), "10.0.0.0/8"),
        "ingress tcp 8000-8101 from 10.0.0.0/8",
        "ingress tcp 8000-8100 from 10.0.0.0/8",
        id="wider-port-range",
    ),
    pytest.param(
        {"protocol": "tcp", "ports": 443, "from": "10.0.0.0/8"},
        ("tcp", (-1, -1), "10.0.0.0/8"),
        "ingress tcp all ports from 10.0.0.0/8",
        "ingress tcp 443 from 10.0.0.0/8",
        id="all-ports-instead-of-one",
    ),
    pytest.param(
        {"protocol": "tcp", "ports": 53, "from": "10.0.0.0/8"},
        ("udp", (53, 53), "10.0.0.0/8"),
        "ingress udp 53 from 10.0.0.0/8",
        "ingress tcp 53 from 10.0.0.0/8",
        id="udp-instead-of-tcp",
    ),
    pytest.param(
        {"protocol": "tcp", "ports": 443, "from": "10.0.0.0/8"},
        ("-1", (-1, -1), "10.0.0.0/8"),
        "ingress all from 10.0.0.0/8",
        "ingress tcp 443 from 10.0.0.0/8",
        id="all-protocols-instead-of-tcp",
    ),
    pytest.param(
        {"protocol": "tcp", "ports": 443, "from": "10.0.0.0/8"},
        ("tcp", (443, 443), "10.0.0.0/16"),
        "ingress tcp 443 from 10.0.0.0/16",
        "ingress tcp 443 from 10.0.0.0/8",
        id="narrower-cidr",
    ),
    pytest.param(
        {"protocol": "tcp", "ports": 443, "from": "0.0.0.0/0"},
        ("tcp", (443, 443), "::/0"),
        "ingress tcp 443 from ::/0",
        "ingress tcp 443 from 0.0.0.0/0",
        id="ipv6-instead-of-ipv4",
    ),
    pytest.param(
        {"protocol": "tcp", "ports": 443, "from": PEER_SG},
        ("tcp", (443, 443), OTHER),
        f"ingress tcp 443 from {OTHER}",
        f"ingress tcp 443 from {PEER_SG}",
        id="other-group",
    ),
    pytest.param(
        {"protocol": "icmp", "icmp_type": 8, "from": "10.0.0.0/8"},
        ("icmp", (-1, -1), "10.0.0.0/8"),
        "ingress icmp all types from 10.0.0.0/8",
        "ingress icmp type 8 code any from 10.0.0.0/8",
        id="icmp-all-types-instead-of-echo",
    ),
]


@pytest.mark.parametrize(("allowed", "wire", "revoked", "missing"), DIFFERENT_RULE)
def test_different_rules_are_revoked_and_reported_missing(
    allowed: dict[str, Any],
    wire: tuple[str, tuple[int | None, int | None], str],
    revoked: str,
    missing: str,
) -> None:
    """A live rule unlike the allowed one is revoked, and the allowed one reported missing."""
    protocol, ports, peer = wire
    observed = group(WEB, live("sgr-00000000000000009", protocol, ports, peer))
    assert rows(run([policy(ingress=[allowed])], [observed])) == [
        ("revoke", WEB, "sgr-00000000000000009", revoked, "not in policy web-prod"),
        ("missing", WEB, None, missing, "in policy web-prod but not live"),
    ]


# --- which groups a policy governs ---------------------------------------------------------


def test_unmatched_bystander_group_produces_nothing() -> None:
    """A live group no policy selects is never touched and not counted as managed."""
    open_ssh = live("sgr-00000000000000002", "tcp", (22, 22), "0.0.0.0/0")
    result = run([policy()], [group(OTHER, open_ssh, name="bystander"), group(WEB, HTTPS_LIVE)])
    assert result == Plan(
        changes=(), problems=(), managed_groups=1, governed=((f"-/{REGION}/{WEB}", "web-prod"),)
    )


def test_group_matched_by_two_policies_is_a_problem_and_left_untouched() -> None:
    """A group two policies select is reported naming both, and gets no change at all."""
    by_tag = policy("web-prod")
    by_id = policy("web-by-id", match={"group_ids": [WEB]}, ingress=[])
    ssh = live("sgr-00000000000000002", "tcp", (22, 22), "0.0.0.0/0")
    app_ssh = live("sgr-00000000000000003", "tcp", (22, 22), "0.0.0.0/0")
    app = policy("app-prod", ingress=[])
    result = run(
        [by_tag, by_id, app], [group(WEB, HTTPS_LIVE, ssh), group(APP, app_ssh, name="app-prod")]
    )
    assert result.problems == (
        GroupProblem(
            region=REGION,
            group_id=WEB,
            message="matched by policies web-prod, web-by-id; left untouched"
            " (make the selectors exclusive)",
        ),
    )
    assert str(result.problems[0]) == (
        f"{REGION} {WEB}: matched by policies web-prod, web-by-id; left untouched"
        " (make the selectors exclusive)"
    )
    assert rows(result) == [
        (
            "revoke",
            APP,
            "sgr-00000000000000003",
            "ingress tcp 22 from 0.0.0.0/0",
            "not in policy app-prod",
        )
    ]
    assert result.managed_groups == 2
    assert result.summary().errors == 1


@pytest.mark.parametrize(
    ("match", "facts", "managed"),
    [
        pytest.param({"group_ids": [WEB]}, {"tags": {}}, True, id="by-id"),
        pytest.param({"group_ids": [APP]}, {"tags": {}}, False, id="other-id"),
        pytest.param({"vpc_id": VPC}, {"tags": {}, "vpc_id": VPC}, True, id="by-vpc"),
        pytest.param(
            {"vpc_id": VPC}, {"tags": {}, "vpc_id": "vpc-0123abcd"}, False, id="other-vpc"
        ),
        pytest.param(
            {"tags": {"Name": "web", "env": "prod"}},
            {"tags": {"env": "prod", "Name": "web", "x": "1"}},
            True,
            id="all-tags",
        ),
        pytest.param(
            {"tags": {"Name": "web", "env": "prod"}},
            {"tags": {"env": "prod"}},
            False,
            id="some-tags",
        ),
        pytest.param(
            {"tags": {"Name": "web", "env": "prod"}},
            {"tags": {"Name": "web"}},
            False,
            id="first-tag-only",
        ),
        pytest.param(
            {"tags": {"Name": "web"}, "vpc_id": VPC},
            {"tags": {"Name": "web"}, "vpc_id": "vpc-0123abcd"},
            False,
            id="tag-but-other-vpc",
        ),
        pytest.param(
            {"group_ids": [WEB], "tags": {"Name": "web"}},
            {"tags": {"Name": "db"}},
            False,
            id="id-but-other-tag",
        ),
    ],
)
def test_selectors_choose_the_groups_a_policy_governs(
    match: dict[str, Any], facts: dict[str, Any], *, managed: bool
) -> None:
    """Every key of a selector must hold for the group: ids, tags (all of them) and VPC."""
    extra = live("sgr-00000000000000002", "tcp", (22, 22), "0.0.0.0/0")
    result = run([policy(match=match)], [group(WEB, HTTPS_LIVE, extra, **facts)])
    assert result.managed_groups == int(managed)
    assert [c.rule_id for c in result.changes] == (["sgr-00000000000000002"] if managed else [])


def test_matching_policies_are_in_baseline_order() -> None:
    """matching_policies lists every policy that selects a group, in baseline order."""
    first = policy("b-by-id", match={"group_ids": [WEB]})
    second = policy("a-by-tag", match={"tags": {"Name": "web-prod"}})
    third = policy("c-by-vpc", match={"vpc_id": VPC})
    unrelated = policy("d-other", match={"tags": {"Name": "db"}})
    baseline = Baseline(policies=(first, second, unrelated, third))
    found = matching_policies(baseline, group(WEB, vpc_id=VPC))
    assert [p.name for p in found] == ["b-by-id", "a-by-tag", "c-by-vpc"]


# --- on_drift: report ----------------------------------------------------------------------


def test_report_mode_plans_revokes_that_do_not_write() -> None:
    """With ``on_drift: report`` extras are planned as report-only revokes that never call EC2."""
    db = policy(
        "db-prod",
        ingress=[{"protocol": "tcp", "ports": 5432, "from": "10.0.1.0/24"}],
        on_drift="report",
    )
    extra = live("sgr-00000000000000005", "tcp", (5432, 5432), "0.0.0.0/0")
    allowed = live("sgr-00000000000000006", "tcp", (5432, 5432), "10.0.1.0/24")
    result = run([db], [group(DB, allowed, extra, name="db-prod")])
    (change,) = result.changes
    assert change.action is Action.REVOKE
    assert change.report_only is True
    assert change.writes is False
    assert change.reason == "not in policy db-prod (report only)"
    assert change.to_dict()["report_only"] is True
    assert result.has_drift is True
    assert result.summary() == Summary(
        to_revoke=0,
        to_restore=0,
        missing=0,
        excepted=0,
        blocked=0,
        report_only=1,
        drifted_groups=1,
        managed_groups=1,
        errors=0,
    )


# --- egress --------------------------------------------------------------------------------

ALL_OUT = live("sgr-0000000000000e001", "-1", (-1, -1), "0.0.0.0/0", direction=EGRESS)
SMTP_OUT = live("sgr-0000000000000e002", "tcp", (25, 25), "0.0.0.0/0", direction=EGRESS)


@pytest.mark.parametrize("egress", ["unmanaged", None])
def test_unmanaged_egress_is_left_alone(egress: str | None) -> None:
    """When a policy does not list egress, no egress rule is revoked or reported missing."""
    fields: dict[str, Any] = {} if egress is None else {"egress": egress}
    assert run([policy(**fields)], [group(WEB, HTTPS_LIVE, ALL_OUT, SMTP_OUT)]).changes == ()


def test_listed_egress_is_managed() -> None:
    """When a policy lists egress, extra egress is revoked and listed egress reported missing."""
    egress = [
        {"protocol": "all", "to": "0.0.0.0/0"},
        {"protocol": "tcp", "ports": 443, "to": PL, "description": "s3"},
    ]
    result = run([policy(egress=egress)], [group(WEB, HTTPS_LIVE, ALL_OUT, SMTP_OUT)])
    assert rows(result) == [
        (
            "revoke",
            WEB,
            "sgr-0000000000000e002",
            "egress tcp 25 to 0.0.0.0/0",
            "not in policy web-prod",
        ),
        ("missing", WEB, None, f"egress tcp 443 to {PL}", "in policy web-prod but not live"),
    ]
    assert result.changes[1].description == "s3"


def test_empty_egress_list_revokes_all_egress() -> None:
    """``egress: []`` manages egress with nothing allowed: every live egress rule is revoked."""
    result = run([policy(egress=[])], [group(WEB, HTTPS_LIVE, ALL_OUT)])
    assert rows(result) == [
        (
            "revoke",
            WEB,
            "sgr-0000000000000e001",
            "egress all to 0.0.0.0/0",
            "not in policy web-prod",
        )
    ]


# --- group references across accounts ------------------------------------------------------

OWN_REF = f"{ACCOUNT}/{PEER_SG}"
FOREIGN_REF = f"111111111111/{PEER_SG}"


def test_own_account_reference_in_policy_equals_plain_live_reference() -> None:
    """A policy's ``123456789012/sg-…`` is the live ``sg-…`` in a group owned by 123456789012."""
    allowed = {"protocol": "tcp", "ports": 443, "from": OWN_REF}
    observed = group(
        WEB, live("sgr-00000000000000001", "tcp", (443, 443), PEER_SG), owner_id=ACCOUNT
    )
    assert run([policy(ingress=[allowed])], [observed]).changes == ()


def test_own_account_reference_reported_missing_keeps_its_description() -> None:
    """A missing same-account reference is reported in its live form with its description."""
    allowed = {"protocol": "tcp", "ports": 443, "from": OWN_REF, "description": "from web"}
    result = run([policy(ingress=[allowed])], [group(WEB, owner_id=ACCOUNT)])
    (change,) = result.changes
    assert (change.action, change.key.peer, change.description) == (
        Action.MISSING,
        PEER_SG,
        "from web",
    )


def test_reference_to_another_accounts_group_is_kept_qualified() -> None:
    """A reference qualified with another account matches only the same qualified live reference."""
    allowed = {"protocol": "tcp", "ports": 443, "from": FOREIGN_REF}
    same = live("sgr-00000000000000001", "tcp", (443, 443), FOREIGN_REF)
    local = live("sgr-00000000000000002", "tcp", (443, 443), PEER_SG)
    result = run([policy(ingress=[allowed])], [group(WEB, same, local, owner_id=ACCOUNT)])
    assert rows(result) == [
        (
            "revoke",
            WEB,
            "sgr-00000000000000002",
            f"ingress tcp 443 from {PEER_SG}",
            "not in policy web-prod",
        )
    ]


def test_own_account_reference_is_not_localised_for_another_owner() -> None:
    """The account prefix is only dropped for groups owned by that account."""
    allowed = {"protocol": "tcp", "ports": 443, "from": OWN_REF}
    local = live("sgr-00000000000000001", "tcp", (443, 443), PEER_SG)
    result = run([policy(ingress=[allowed])], [group(WEB, local, owner_id="999999999999")])
    assert rows(result) == [
        (
            "revoke",
            WEB,
            "sgr-00000000000000001",
            f"ingress tcp 443 from {PEER_SG}",
            "not in policy web-prod",
        ),
        (
            "missing",
            WEB,
            None,
            f"ingress tcp 443 from {OWN_REF}",
            "in policy web-prod but not live",
        ),
    ]


# --- determinism ---------------------------------------------------------------------------


def _world() -> tuple[list[GroupPolicy], list[ObservedGroup]]:
    web = policy(
        ingress=[HTTPS, {"protocol": "tcp", "ports": 80, "from": ["0.0.0.0/0", "::/0"]}],
        egress=[{"protocol": "all", "to": "0.0.0.0/0"}],
    )
    app = policy("app-prod", ingress=[{"protocol": "tcp", "ports": "8000-8100", "from": PEER_SG}])
    groups = [
        group(
            WEB,
            ALL_OUT,
            SMTP_OUT,
            live("sgr-00000000000000022", "tcp", (22, 22), "0.0.0.0/0"),
            live("sgr-00000000000000021", "-1", (-1, -1), "198.51.100.0/24"),
        ),
        group(APP, live("sgr-00000000000000031", "tcp", (22, 22), "10.0.0.0/8"), name="app-prod"),
        group(OTHER, live("sgr-00000000000000041", "tcp", (22, 22), "0.0.0.0/0"), name="bystander"),
        group(DB, live("sgr-00000000000000051", "tcp", (3389, 3389), "::/0"), name="app-prod"),
    ]
    return [web, app], groups


def test_plan_order_is_by_group_then_ingress_revokes_missing_then_egress() -> None:
    """Changes come per group; then ingress before egress, revokes before missing, by rule."""
    policies, groups = _world()
    web_reason, app_reason = "not in policy web-prod", "not in policy app-prod"
    web_missing, app_missing = "in policy web-prod but not live", "in policy app-prod but not live"
    assert rows(run(policies, groups)) == [
        ("revoke", WEB, "sgr-00000000000000021", "ingress all from 198.51.100.0/24", web_reason),
        ("revoke", WEB, "sgr-00000000000000022", "ingress tcp 22 from 0.0.0.0/0", web_reason),
        ("missing", WEB, None, "ingress tcp 80 from 0.0.0.0/0", web_missing),
        ("missing", WEB, None, "ingress tcp 80 from ::/0", web_missing),
        ("missing", WEB, None, "ingress tcp 443 from 0.0.0.0/0", web_missing),
        ("revoke", WEB, "sgr-0000000000000e002", "egress tcp 25 to 0.0.0.0/0", web_reason),
        ("revoke", APP, "sgr-00000000000000031", "ingress tcp 22 from 10.0.0.0/8", app_reason),
        ("missing", APP, None, f"ingress tcp 8000-8100 from {PEER_SG}", app_missing),
        ("revoke", DB, "sgr-00000000000000051", "ingress tcp 3389 from ::/0", app_reason),
        ("missing", DB, None, f"ingress tcp 8000-8100 from {PEER_SG}", app_missing),
    ]


def test_plan_is_identical_for_every_input_order() -> None:
    """Shuffling live groups and their rules never changes the plan."""
    policies, groups = _world()
    expected = run(policies, groups)
    for order in itertools.permutations(groups):
        shuffled = [
            ObservedGroup.build(
                region=g.region,
                group_id=g.group_id,
                rules=tuple(reversed(g.rules)),
                tags=dict(g.tags),
            )
            for g in order
        ]
        assert run(policies, order) == expected
        assert run(policies, shuffled) == expected


def test_groups_sort_by_account_then_region_then_id() -> None:
    """Across accounts and regions the plan is ordered by (account, region, group id)."""
    ssh = live("sgr-00000000000000002", "tcp", (22, 22), "0.0.0.0/0")
    groups = [
        ObservedGroup.build(
            region="us-east-1",
            group_id=APP,
            rules=(ssh,),
            tags={"Name": "web-prod"},
            account_id="222222222222",
        ),
        ObservedGroup.build(
            region="us-east-1",
            group_id=WEB,
            rules=(ssh,),
            tags={"Name": "web-prod"},
            account_id="111111111111",
        ),
        ObservedGroup.build(
            region="eu-west-1",
            group_id=WEB,
            rules=(ssh,),
            tags={"Name": "web-prod"},
            account_id="222222222222",
        ),
    ]
    result = run([policy(ingress=[])], groups)
    assert [(c.account, c.region, c.group_id) for c in result.changes] == [
        ("111111111111", "us-east-1", WEB),
        ("222222222222", "eu-west-1", WEB),
        ("222222222222", "us-east-1", APP),
    ]
    assert result.changes[0].to_dict()["account"] == "111111111111"


def test_plan_does_not_depend_on_now() -> None:
    """The clock passed in does not change what is planned."""
    policies, groups = _world()
    baseline = Baseline(policies=tuple(policies))
    assert (
        plan(baseline, groups, now=NOW)
        == plan(baseline, groups)
        == plan(baseline, groups, now=datetime(2030, 1, 1, tzinfo=UTC))
    )


# --- plan data -----------------------------------------------------------------------------


def _change(action: Action, rule_id: str | None = "sgr-00000000000000001", **fields: Any) -> Change:
    values: dict[str, Any] = {
        "action": action,
        "region": REGION,
        "group_id": WEB,
        "policy": "web-prod",
        "guardrail": None,
        "key": RuleKey(INGRESS, "tcp", 22, 22, "0.0.0.0/0"),
        "rule_id": rule_id,
        "description": None,
        "reason": "r",
    }
    return Change(**(values | fields))


def test_summary_counts_and_drift() -> None:
    """The summary counts writes, missing, excepted, blocked, report-only and drifted groups."""
    result = Plan(
        changes=(
            _change(Action.REVOKE),
            _change(Action.REVOKE, "sgr-00000000000000002", blocked="max-revokes 1"),
            _change(Action.REVOKE, "sgr-00000000000000003", report_only=True, group_id=APP),
            _change(Action.MISSING, None, report_only=True, group_id=APP),
            _change(Action.EXCEPTED, "sgr-00000000000000004", group_id=DB),
        ),
        problems=(GroupProblem(REGION, OTHER, "matched by policies a, b"),),
        managed_groups=5,
    )
    assert result.summary() == Summary(
        to_revoke=1,
        to_restore=0,
        missing=1,
        excepted=1,
        blocked=1,
        report_only=1,
        drifted_groups=2,
        managed_groups=5,
        errors=1,
    )
    assert result.summary().to_dict() == {
        "to_revoke": 1,
        "to_restore": 0,
        "missing": 1,
        "excepted": 1,
        "blocked": 1,
        "report_only": 1,
        "drifted_groups": 2,
        "managed_groups": 5,
        "errors": 1,
        "guardrail_violations": 0,
        "unmanaged_groups": 0,
    }
    assert result.has_drift is True


@pytest.mark.parametrize(
    ("changes", "drift"),
    [
        ((), False),
        ((_change(Action.EXCEPTED),), False),
        ((_change(Action.MISSING, None),), True),
        ((_change(Action.REVOKE, report_only=True),), True),
        ((_change(Action.REVOKE),), True),
    ],
)
def test_has_drift(changes: tuple[Change, ...], *, drift: bool) -> None:
    """Drift is any revoke or missing rule, report-only included; excepted rules are not drift."""
    assert Plan(changes=changes).has_drift is drift


def test_change_json_shape() -> None:
    """A change serialises to exactly the documented keys."""
    result = run(
        [policy()],
        [
            group(
                WEB,
                HTTPS_LIVE,
                live("sgr-00000000000000002", "tcp", (8000, 8100), "::/0", description="tmp"),
            )
        ],
    )
    assert [c.to_dict() for c in result.changes] == [
        {
            "action": "revoke",
            "region": REGION,
            "group_id": WEB,
            "policy": "web-prod",
            "guardrail": None,
            "rule_id": "sgr-00000000000000002",
            "direction": "ingress",
            "protocol": "tcp",
            "from_port": 8000,
            "to_port": 8100,
            "source": "::/0",
            "description": "tmp",
            "reason": "not in policy web-prod",
        }
    ]


def test_change_json_for_protocol_all_has_null_ports() -> None:
    """Protocol all serialises with from_port and to_port null, and protocol 'all'."""
    egress = live("sgr-00000000000000003", "-1", (-1, -1), "0.0.0.0/0", direction=EGRESS)
    result = run([policy(egress=[])], [group(WEB, HTTPS_LIVE, egress)])
    (change,) = result.changes
    assert change.to_dict() == {
        "action": "revoke",
        "region": REGION,
        "group_id": WEB,
        "policy": "web-prod",
        "guardrail": None,
        "rule_id": "sgr-00000000000000003",
        "direction": "egress",
        "protocol": "all",
        "from_port": None,
        "to_port": None,
        "source": "0.0.0.0/0",
        "description": None,
        "reason": "not in policy web-prod",
    }


def test_change_json_optional_keys_appear_only_when_set() -> None:
    """account, blocked and report_only are added to a change's JSON only when they apply."""
    change = _change(Action.REVOKE, account=ACCOUNT, blocked="limit", report_only=True)
    out = change.to_dict()
    assert (out["account"], out["blocked"], out["report_only"]) == (ACCOUNT, "limit", True)
    assert set(_change(Action.REVOKE).to_dict()) == {
        "action",
        "region",
        "group_id",
        "policy",
        "guardrail",
        "rule_id",
        "direction",
        "protocol",
        "from_port",
        "to_port",
        "source",
        "description",
        "reason",
    }


def test_problem_and_outcome_json() -> None:
    """Group problems and apply outcomes have their documented JSON shapes."""
    problem = GroupProblem(REGION, WEB, "matched by policies a, b", account=ACCOUNT)
    assert problem.to_dict() == {
        "region": REGION,
        "group_id": WEB,
        "message": "matched by policies a, b",
        "account": ACCOUNT,
    }
    outcome = Outcome(_change(Action.REVOKE), Status.FAILED, error="UnauthorizedOperation")
    assert outcome.to_dict() == _change(Action.REVOKE).to_dict() | {
        "status": "failed",
        "error": "UnauthorizedOperation",
    }
    assert Outcome(_change(Action.REVOKE), Status.REVOKED).to_dict()["status"] == "revoked"
