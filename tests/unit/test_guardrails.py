"""Guardrails on plain data: the verdict table, validation, and how they sit under baselines."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.adapters.policy_files import load_policies
from reconciler.core.plan import Action, Plan
from reconciler.core.planner import plan
from reconciler.core.policy import Baseline
from reconciler.core.rules import Direction, ObservedGroup, ObservedRule, RuleKey
from tests.policyfiles import problems_of, write

# The guardrail of the issue and of docs/guardrails.md, verbatim.
GUARDRAIL_FILE = """\
peers:
  office: [203.0.113.0/24, "2001:db8:1::/48"]
  private: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, "fc00::/7"]
guardrails:
  - name: no-internet-except-web
    description: only HTTP(S) may be reached from the internet
    match: {tags: {env: prod}}
    exclude: {tags: {elbv2.k8s.aws/cluster: prod}}
    deny:
      - {protocol: all, from: internet}
    allow:
      - {protocol: tcp, ports: [80, 443], from: internet}
      - {protocol: all, from: $private}
    on_violation: revoke
    exceptions: []
    limits: {max_revocations_per_run: 50}
"""
PL_OPEN = "pl-0aaaaaaaaaaaaaaa1"
PL_PRIVATE = "pl-0aaaaaaaaaaaaaaa2"
ENTRIES = {PL_OPEN: ("0.0.0.0/0",), PL_PRIVATE: ("10.1.0.0/16", "192.168.0.0/24")}
PROD = {"env": "prod"}


def key(protocol: str, ports: tuple[int | None, int | None], peer: str) -> RuleKey:
    return RuleKey(Direction.INGRESS, protocol, ports[0], ports[1], peer)


def group(
    *keys: RuleKey, group_id: str = "sg-0aaaaaaaaaaaaaaa1", tags: dict[str, str] | None = None
) -> ObservedGroup:
    rules = tuple(ObservedRule(f"sgr-{group_id[3:]}{i:03d}", k) for i, k in enumerate(keys))
    return ObservedGroup.build(
        region="eu-west-1", group_id=group_id, tags=PROD if tags is None else tags, rules=rules
    )


@pytest.fixture
def guarded(tmp_path: Path) -> Baseline:
    write(tmp_path, "guardrails.yaml", GUARDRAIL_FILE)
    return load_policies(tmp_path)


# The table of docs/guardrails.md ("Verdicts").
VERDICTS = [
    (key("tcp", (443, 443), "0.0.0.0/0"), "allowed"),
    (key("tcp", (80, 443), "0.0.0.0/0"), "violation"),
    (key("tcp", (22, 22), "0.0.0.0/0"), "violation"),
    (key("tcp", (22, 22), "8.8.8.8/32"), "violation"),
    (key("tcp", (22, 22), "0.0.0.0/1"), "violation"),
    (key("all", (None, None), "::/0"), "violation"),
    (key("tcp", (22, 22), "10.0.0.0/8"), "allowed"),
    (key("udp", (53, 53), "10.0.0.0/7"), "violation"),
    (key("tcp", (22, 22), "sg-0123456789abcdef0"), "allowed"),
    (key("tcp", (22, 22), PL_OPEN), "violation"),
    (key("tcp", (22, 22), PL_PRIVATE), "allowed"),
    (key("icmp", (8, -1), "0.0.0.0/0"), "violation"),
    (key("tcp", (80, 80), "::/0"), "allowed"),
]


@pytest.mark.parametrize(("rule", "verdict"), VERDICTS, ids=[r.describe() for r, _ in VERDICTS])
def test_the_verdict_table(guarded: Baseline, rule: RuleKey, verdict: str) -> None:
    result = plan(guarded, [group(rule)], prefix_lists=ENTRIES)
    got = "violation" if result.changes else "allowed"
    assert got == verdict
    if result.changes:
        (change,) = result.changes
        assert change.action is Action.REVOKE
        assert change.guardrail == "no-internet-except-web"
        assert change.policy is None
        assert change.reason.startswith("guardrail no-internet-except-web denies it (deny[0]:")


def test_the_issue_guardrail_file_passes_validate(guarded: Baseline) -> None:
    assert [g.name for g in guarded.guardrails] == ["no-internet-except-web"]
    assert guarded.peer_sets["office"] == ("203.0.113.0/24", "2001:db8:1::/48")


def test_without_match_a_baseline_allowing_ssh_from_anywhere_fails_validate(
    tmp_path: Path,
) -> None:
    write(
        tmp_path, "guardrails.yaml", GUARDRAIL_FILE.replace("    match: {tags: {env: prod}}\n", "")
    )
    write(
        tmp_path,
        "web.yaml",
        """\
        groups:
          - name: web
            match: {tags: {Name: web}}
            ingress:
              - {protocol: tcp, ports: 443, from: internet}
              - {protocol: tcp, ports: 22, from: 0.0.0.0/0}
        """,
    )
    assert problems_of(tmp_path) == [
        f"{tmp_path}/web.yaml:6: groups[0].ingress[1]: policy web allows ingress tcp 22 from"
        " 0.0.0.0/0 (deny[0]: all from 0.0.0.0/0, ::/0), which guardrail"
        " no-internet-except-web denies on every group (remove the rule, add a guardrail"
        " exception, or give the guardrail a match:)"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "peers: {private: [10.0.0.0/8]}\nguardrails:\n  - name: g\n"
            "    deny: [{protocol: all, from: $privat}]\n",
            "p.yaml:4: guardrails[0].deny[0].from: unknown peer set '$privat'"
            " (did you mean $private?)",
        ),
        (
            "peers: {a: [$b], b: [$a]}\nguardrails:\n  - name: g\n"
            "    deny: [{protocol: all, from: internet}]\n",
            "p.yaml:1: peers.a: peer sets refer to each other in a cycle ($a -> $b -> $a)",
        ),
        (
            "peers: {a: []}\nguardrails:\n  - name: g\n"
            "    deny: [{protocol: all, from: internet}]\n",
            "p.yaml:1: peers.a: a peer set must be a non-empty list of CIDRs, sg-…, pl-… or $names",
        ),
        (
            "guardrails:\n  - name: g\n    deny: [{protocol: all, from: internet, to: internet}]\n",
            "p.yaml:3: guardrails[0].deny[0]: a deny or allow entry needs exactly one of from:"
            " (ingress) or to: (egress)",
        ),
        (
            "guardrails:\n  - name: g\n    deny: [{protocol: all}]\n",
            "p.yaml:3: guardrails[0].deny[0]: a deny or allow entry needs exactly one of from:"
            " (ingress) or to: (egress)",
        ),
        (
            "guardrails:\n  - name: g\n    deny: [{protocol: all, from: internet}]\n"
            "    on_violation: revert\n",
            "p.yaml:4: guardrails[0].on_violation:",
        ),
    ],
    ids=["unknown-name", "cycle", "empty-set", "both-directions", "no-direction", "bad-mode"],
)
def test_guardrail_and_peer_mistakes_name_file_and_line(
    tmp_path: Path, text: str, expected: str
) -> None:
    write(tmp_path, "p.yaml", text)
    (problem,) = problems_of(tmp_path)
    assert problem.startswith(f"{tmp_path}/{expected}")


def test_guardrail_and_policy_names_are_unique_together(tmp_path: Path) -> None:
    write(
        tmp_path, "a.yaml", "groups:\n  - name: web\n    match: {tags: {a: b}}\n    ingress: []\n"
    )
    write(
        tmp_path,
        "b.yaml",
        "guardrails:\n  - name: web\n    deny: [{protocol: all, from: internet}]\n",
    )
    (problem,) = problems_of(tmp_path)
    assert problem == (
        f"{tmp_path}/b.yaml:2: guardrails[0].name: duplicate guardrail name 'web' (also at"
        f" {tmp_path}/a.yaml:2); names must be unique across all files"
    )


POLICY_AND_FLOOR = """\
peers:
  private: [10.0.0.0/8]
groups:
  - name: web
    match: {tags: {Name: web}}
    ingress:
      - {protocol: tcp, ports: 443, from: $private}
    limits: {max_revocations_per_group: 2}
guardrails:
  - name: floor
    match: {tags: {env: prod}}
    deny: [{protocol: all, from: internet}]
    allow: [{protocol: all, from: $private}]
"""


def floor(tmp_path: Path, text: str = POLICY_AND_FLOOR) -> Baseline:
    write(tmp_path, "p.yaml", text)
    return load_policies(tmp_path)


def by_rule(result: Plan) -> dict[str, tuple[str, str | None, str | None, str | None]]:
    return {
        c.rule_id or "": (c.action.value, c.guardrail, c.policy, c.blocked) for c in result.changes
    }


def test_the_guardrail_wins_over_an_allowing_baseline_and_names_both(tmp_path: Path) -> None:
    text = POLICY_AND_FLOOR.replace(
        "ports: 443, from: $private}", "ports: 443, from: [$private, 0.0.0.0/0]}"
    )
    baseline = floor(tmp_path, text)
    live = group(
        key("tcp", (443, 443), "10.0.0.0/8"),
        key("tcp", (443, 443), "0.0.0.0/0"),
        tags={"Name": "web", "env": "prod"},
    )
    result = plan(baseline, [live])
    (change,) = [c for c in result.changes if c.action is Action.REVOKE]
    assert (change.rule_id, change.guardrail, change.policy) == (
        "sgr-0aaaaaaaaaaaaaaa1001",
        "floor",
        "web",
    )
    assert change.reason == (
        "guardrail floor denies it (deny[0]: all from 0.0.0.0/0, ::/0); policy web allows it,"
        " the guardrail wins"
    )
    assert change.to_dict()["guardrail"] == "floor"


def test_limits_never_shield_a_guardrail_violation(tmp_path: Path) -> None:
    """25 junk rules and ssh from the world: the baseline's own revokes are blocked by its
    limit, the world-open one is revoked all the same."""
    baseline = floor(tmp_path)
    junk = [key("tcp", (1000 + i, 1000 + i), "10.9.0.0/16") for i in range(5)]
    # (10.9.0.0/16 is private: the floor allows it, the baseline does not)
    live = group(
        key("tcp", (443, 443), "10.0.0.0/8"),
        *junk,
        key("tcp", (22, 22), "0.0.0.0/0"),
        tags={"Name": "web", "env": "prod"},
    )
    rows = by_rule(plan(baseline, [live]))
    world = "sgr-0aaaaaaaaaaaaaaa1006"
    assert rows.pop(world) == ("revoke", "floor", "web", None)
    assert {blocked for _, guard, _, blocked in rows.values()} == {
        "max_revocations_per_group=2 (5 revokes planned)"
    }


def test_a_widened_only_rule_is_revoked_although_the_group_is_left_empty(tmp_path: Path) -> None:
    baseline = floor(tmp_path)
    live = group(key("tcp", (0, 65535), "0.0.0.0/0"), tags={"Name": "web", "env": "prod"})
    revoke, missing = plan(baseline, [live]).changes
    assert (revoke.action, revoke.guardrail, revoke.blocked) == (Action.REVOKE, "floor", None)
    assert (missing.action, missing.guardrail) == (Action.MISSING, None)


def test_urgent_rule_ids_pass_the_baseline_limits(tmp_path: Path) -> None:
    """On the event path, the rules the call made are revoked even over the group's limit
    and even when the group is left with no ingress; the rest stays blocked."""
    baseline = floor(tmp_path, POLICY_AND_FLOOR.replace("env: prod", "env: never"))
    junk = [key("tcp", (1000 + i, 1000 + i), "10.9.0.0/16") for i in range(4)]
    live = group(*junk, tags={"Name": "web"})
    urgent = frozenset({"sgr-0aaaaaaaaaaaaaaa1002"})
    rows = by_rule(plan(baseline, [live], urgent=urgent))
    assert rows.pop("") == ("missing", None, "web", None)  # the 443 rule
    assert rows.pop("sgr-0aaaaaaaaaaaaaaa1002") == ("revoke", None, "web", None)
    assert {r[3] for r in rows.values()} == {"max_revocations_per_group=2 (3 revokes planned)"}
    only, _missing = plan(
        baseline,
        [group(junk[0], tags={"Name": "web"})],
        urgent=frozenset({"sgr-0aaaaaaaaaaaaaaa1000"}),
    ).changes
    assert (only.action, only.blocked) == (Action.REVOKE, None)  # the group is left empty


def test_a_guardrail_has_its_own_run_limit(tmp_path: Path) -> None:
    baseline = floor(
        tmp_path,
        POLICY_AND_FLOOR.replace(
            "deny: [{protocol: all, from: internet}]",
            "deny: [{protocol: all, from: internet}]\n    limits: {max_revocations_per_run: 2}",
        ),
    )
    groups = [
        group(key("tcp", (22, 22), "0.0.0.0/0"), group_id=f"sg-0aaaaaaaaaaaaaa{i:02d}", tags=PROD)
        for i in range(3)
    ]
    result = plan(baseline, groups)
    assert {c.blocked for c in result.changes} == {
        "max_revocations_per_run=2 (3 revokes planned for guardrail floor)"
    }
    assert result.unmanaged_groups == 3
    assert result.summary().guardrail_violations == 3


def test_report_mode_guardrail_reports_and_exceptions_keep(tmp_path: Path) -> None:
    text = POLICY_AND_FLOOR.replace(
        "deny: [{protocol: all, from: internet}]",
        "deny: [{protocol: all, from: internet}]\n    on_violation: report\n"
        "    exceptions:\n      - {protocol: tcp, ports: 8080, from: 0.0.0.0/0,"
        " group_ids: [sg-0aaaaaaaaaaaaaaa1], expires: 2999-01-01T00:00:00Z, reason: demo}",
    )
    baseline = floor(tmp_path, text)
    live = group(key("tcp", (22, 22), "0.0.0.0/0"), key("tcp", (8080, 8080), "0.0.0.0/0"))
    first, second = plan(baseline, [live]).changes
    assert (first.action, first.report_only, first.writes) == (Action.REVOKE, True, False)
    assert second.action is Action.EXCEPTED
    assert second.reason.endswith("excepted until 2999-01-01T00:00:00+00:00")
    other = group(key("tcp", (8080, 8080), "0.0.0.0/0"), group_id="sg-0aaaaaaaaaaaaaaa2")
    (change,) = plan(baseline, [other]).changes
    assert change.action is Action.REVOKE  # the exception names another group


def test_an_unreadable_prefix_list_is_a_problem_not_a_guess(guarded: Baseline) -> None:
    result = plan(guarded, [group(key("tcp", (22, 22), PL_OPEN))], prefix_lists={})
    assert result.changes == ()
    (problem,) = result.problems
    assert "entries of prefix list pl-0aaaaaaaaaaaaaaa1 could not be read" in problem.message


def test_egress_guardrail_for_a_tagged_tier(tmp_path: Path) -> None:
    baseline = floor(
        tmp_path,
        """\
guardrails:
  - name: db-no-egress-to-internet
    match: {tags: {tier: db}}
    deny: [{protocol: all, to: internet}]
    allow: [{protocol: all, to: 10.0.0.0/8}]
""",
    )
    out = RuleKey(Direction.EGRESS, "all", None, None, "0.0.0.0/0")
    inside = RuleKey(Direction.EGRESS, "tcp", 5432, 5432, "10.0.0.0/8")
    db = group(out, inside, tags={"tier": "db"})
    (change,) = plan(baseline, [db]).changes
    assert (change.key, change.guardrail) == (out, "db-no-egress-to-internet")
    assert plan(baseline, [group(out, tags={"tier": "web"})]).changes == ()


def test_within_allows_any_rule_contained_in_the_entry(tmp_path: Path) -> None:
    baseline = floor(
        tmp_path,
        """\
groups:
  - name: app
    match: {tags: {Name: app}}
    ingress:
      - {protocol: tcp, ports: 8000-8100, from: 10.0.0.0/8, within: true}
      - {protocol: tcp, ports: 443, from: 10.0.0.0/8}
""",
    )
    inside = key("tcp", (8080, 8080), "10.1.2.0/24")
    wider = key("tcp", (8080, 8080), "10.0.0.0/7")
    live = group(key("tcp", (443, 443), "10.0.0.0/8"), inside, wider, tags={"Name": "app"})
    (change,) = plan(baseline, [live]).changes
    assert (change.action, change.key) == (Action.REVOKE, wider)
