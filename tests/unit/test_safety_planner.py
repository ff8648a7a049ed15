"""The planner's safety rules: blast-radius limits, allow_empty, exceptions and restores."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.adapters.policy_files import load_policies
from reconciler.core.plan import Action, Plan, Summary
from reconciler.core.planner import plan
from reconciler.core.policy import Baseline, GroupLimits, GroupPolicy
from reconciler.core.rules import Direction, ObservedGroup, ObservedRule, RuleKey
from reconciler.render import render_json, render_text

INGRESS = Direction.INGRESS
EGRESS = Direction.EGRESS
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
REGION = "eu-west-1"
ACCOUNT = "123456789012"
WEB = "sg-0aaaaaaaaaaaaaaa1"
APP = "sg-0aaaaaaaaaaaaaaa2"
DB = "sg-0aaaaaaaaaaaaaaa3"
PEER_SG = "sg-0ccccccccccccccc1"
OFFICE = "203.0.113.7/32"
HTTPS = {"protocol": "tcp", "ports": 443, "from": "0.0.0.0/0", "description": "public HTTPS"}
BLOCK_EMPTY = "allow_empty: would leave the group with no ingress rules (set allow_empty: true)"
BLOCK_MISSING = (
    "allow_empty: would leave the group with no ingress rules (its baseline rules are all missing)"
)


def policy(
    name: str = "web-prod", *, ingress: Iterable[dict[str, Any]] = (HTTPS,), **fields: Any
) -> GroupPolicy:
    data = {"name": name, "match": {"tags": {"Name": name}}, "ingress": list(ingress)}
    return GroupPolicy.model_validate(data | fields)


def excepted(
    expires: datetime,
    reason: str = "vendor debugging",
    *,
    source: str | None = OFFICE,
    **rule: Any,
) -> dict[str, Any]:
    """An exception entry for tcp 8080 from ``source``; ``rule`` overrides keys (None drops one)."""
    base: dict[str, Any] = {"protocol": "tcp", "ports": 8080, "from": source}
    spec = {key: value for key, value in (base | rule).items() if value is not None}
    return spec | {"expires": expires, "reason": reason}


def rule(
    number: int,
    port: int | tuple[int, int] = 22,
    peer: str = "0.0.0.0/0",
    *,
    protocol: str = "tcp",
    direction: Direction = INGRESS,
) -> ObservedRule:
    """A live rule with id ``sgr-…<number>``."""
    lo, hi = (port, port) if isinstance(port, int) else port
    key = RuleKey.from_ec2(
        direction=direction, protocol=protocol, from_port=lo, to_port=hi, peer=peer
    )
    return ObservedRule(f"sgr-{number:017x}", key)


def extras(
    count: int, start: int = 1000, direction: Direction = INGRESS
) -> tuple[ObservedRule, ...]:
    """``count`` distinct live rules no test policy allows (tcp ports start..)."""
    return tuple(
        rule(start + i, start + i, "10.9.0.0/16", direction=direction) for i in range(count)
    )


HTTPS_LIVE = rule(1, 443)


def group(
    group_id: str, *rules: ObservedRule, name: str = "web-prod", **facts: Any
) -> ObservedGroup:
    return ObservedGroup.build(
        region=REGION, group_id=group_id, rules=rules, tags={"Name": name}, **facts
    )


def run(
    policies: Iterable[GroupPolicy] | Baseline,
    groups: Iterable[ObservedGroup],
    *,
    now: datetime | None = NOW,
    enforce_limits: bool = True,
) -> Plan:
    baseline = policies if isinstance(policies, Baseline) else Baseline(policies=tuple(policies))
    return plan(baseline, list(groups), now=now, enforce_limits=enforce_limits)


def rows(result: Plan) -> list[tuple[str, str, str | None, str, str, str | None]]:
    """Each change as (action, group, rule id, rule text, reason, blocked)."""
    return [
        (c.action.value, c.group_id, c.rule_id, c.key.describe(), c.reason, c.blocked)
        for c in result.changes
    ]


def blocked_of(result: Plan, group_id: str) -> set[str | None]:
    """The distinct ``blocked`` values of a group's writing-kind changes."""
    return {
        c.blocked
        for c in result.changes
        if c.group_id == group_id and c.action in (Action.REVOKE, Action.RESTORE)
    }


def files_baseline(files: dict[str, tuple[int | None, list[GroupPolicy]]]) -> Baseline:
    """A baseline as the loader builds it: ``{file: (max_revocations_per_run, policies)}``."""
    policies = [p for _, members in files.values() for p in members]
    return Baseline(
        policies=tuple(policies),
        sources={p.name: source for source, (_, members) in files.items() for p in members},
        run_limits={source: limit for source, (limit, _) in files.items() if limit is not None},
    )


# --- max_revocations_per_group -------------------------------------------------------------


def test_exactly_the_default_limit_of_revokes_proceeds() -> None:
    """25 revokes in one group (the default limit) are all planned as writes."""
    result = run([policy()], [group(WEB, HTTPS_LIVE, *extras(25))])
    assert [c.action for c in result.changes] == [Action.REVOKE] * 25
    assert all(c.writes and c.blocked is None for c in result.changes)
    assert result.summary().to_revoke == 25
    assert result.summary().blocked == 0


def test_one_over_the_limit_blocks_every_write_of_that_group_only() -> None:
    """26 revokes block all writes of that group (restores too); other groups are unaffected."""
    web = policy(
        restore_missing=True, ingress=[HTTPS, {"protocol": "tcp", "ports": 80, "from": "0.0.0.0/0"}]
    )
    app = policy("app-prod")
    result = run(
        [web, app],
        [group(WEB, HTTPS_LIVE, *extras(26)), group(APP, HTTPS_LIVE, rule(2, 22), name="app-prod")],
    )
    limit = "max_revocations_per_group=25 (26 revokes planned)"
    web_changes = [c for c in result.changes if c.group_id == WEB]
    assert [c.action for c in web_changes] == [Action.REVOKE] * 26 + [Action.RESTORE]
    assert {c.blocked for c in web_changes} == {limit}
    assert not any(c.writes for c in web_changes)
    assert rows(result)[-1] == (
        "revoke",
        APP,
        "sgr-00000000000000002",
        "ingress tcp 22 from 0.0.0.0/0",
        "not in policy app-prod",
        None,
    )
    assert result.changes[-1].writes
    summary = result.summary()
    assert (summary.to_revoke, summary.to_restore, summary.blocked) == (1, 0, 27)


def test_a_group_limit_of_its_own_applies() -> None:
    """A group's own max_revocations_per_group replaces the default."""
    tight = policy(limits={"max_revocations_per_group": 2})
    assert blocked_of(run([tight], [group(WEB, HTTPS_LIVE, *extras(2))]), WEB) == {None}
    assert blocked_of(run([tight], [group(WEB, HTTPS_LIVE, *extras(3))]), WEB) == {
        "max_revocations_per_group=2 (3 revokes planned)"
    }


def test_a_raised_group_limit_lets_more_revokes_through() -> None:
    """A group limit above 25 lets 26 revokes proceed."""
    loose = policy(limits={"max_revocations_per_group": 30})
    result = run([loose], [group(WEB, HTTPS_LIVE, *extras(26))])
    assert result.summary().to_revoke == 26
    assert result.summary().blocked == 0


def test_the_limit_counts_revokes_in_both_directions() -> None:
    """Ingress and egress revokes of one group count together against its limit."""
    both = policy(egress=[], limits={"max_revocations_per_group": 3})
    result = run([both], [group(WEB, HTTPS_LIVE, *extras(2), *extras(2, 2000, EGRESS))])
    assert blocked_of(result, WEB) == {"max_revocations_per_group=3 (4 revokes planned)"}


def test_report_only_excepted_and_missing_changes_do_not_count_toward_the_limit() -> None:
    """Only writing revokes count: report-mode revokes, excepted and missing rules do not."""
    report = policy(
        "db-prod", ingress=[], on_drift="report", limits={"max_revocations_per_group": 1}
    )
    kept = [excepted(NOW + timedelta(days=1), ports=[8080, 8081, 8082])]
    tight = policy(
        limits={"max_revocations_per_group": 1},
        exceptions=kept,
        ingress=[HTTPS, {"protocol": "udp", "ports": [53, 123], "from": "10.0.0.0/8"}],
    )
    result = run(
        [report, tight],
        [
            group(DB, *extras(5), name="db-prod"),
            group(WEB, HTTPS_LIVE, rule(2, 22), *(rule(10 + p, p, OFFICE) for p in (8080, 8081))),
        ],
    )
    assert {c.blocked for c in result.changes} == {None}
    summary = result.summary()
    assert (summary.to_revoke, summary.report_only, summary.excepted, summary.missing) == (
        1,
        5,
        2,
        2,
    )


# --- max_revocations_per_run ---------------------------------------------------------------


def test_run_limit_counts_across_the_files_groups() -> None:
    """Two groups of one file with 2 revokes each exceed a run limit of 3: all 4 are blocked."""
    baseline = files_baseline({"policies/a.yaml": (3, [policy("web-prod"), policy("app-prod")])})
    result = run(
        baseline,
        [
            group(WEB, HTTPS_LIVE, *extras(2)),
            group(APP, HTTPS_LIVE, *extras(2, 2000), name="app-prod"),
        ],
    )
    limit = "max_revocations_per_run=3 (4 revokes planned for policies/a.yaml)"
    assert [c.blocked for c in result.changes] == [limit] * 4
    assert result.summary().to_revoke == 0
    assert result.summary().blocked == 4


def test_run_limit_reached_exactly_proceeds() -> None:
    """A file whose groups plan exactly max_revocations_per_run revokes writes them all."""
    baseline = files_baseline({"policies/a.yaml": (3, [policy("web-prod"), policy("app-prod")])})
    result = run(
        baseline,
        [
            group(WEB, HTTPS_LIVE, *extras(2)),
            group(APP, HTTPS_LIVE, *extras(1, 2000), name="app-prod"),
        ],
    )
    assert [c.blocked for c in result.changes] == [None] * 3
    assert result.summary().to_revoke == 3


def test_two_files_have_separate_run_limits() -> None:
    """Each file's run limit counts only its own groups; a file without one is never blocked."""
    baseline = files_baseline(
        {
            "policies/a.yaml": (2, [policy("web-prod")]),
            "policies/b.yaml": (5, [policy("app-prod")]),
            "policies/c.yaml": (None, [policy("db-prod")]),
        }
    )
    result = run(
        baseline,
        [
            group(WEB, HTTPS_LIVE, *extras(3)),
            group(APP, HTTPS_LIVE, *extras(3, 2000), name="app-prod"),
            group(DB, HTTPS_LIVE, *extras(10, 3000), name="db-prod"),
        ],
    )
    assert blocked_of(result, WEB) == {
        "max_revocations_per_run=2 (3 revokes planned for policies/a.yaml)"
    }
    assert blocked_of(result, APP) == {None}
    assert blocked_of(result, DB) == {None}
    assert result.summary().to_revoke == 13


def test_run_limit_also_blocks_restores_of_that_files_groups() -> None:
    """Over the run limit, every write of the file's groups is blocked, restores included."""
    restoring = policy("app-prod", restore_missing=True)
    baseline = files_baseline({"policies/a.yaml": (1, [policy("web-prod"), restoring])})
    result = run(
        baseline, [group(WEB, HTTPS_LIVE, *extras(2)), group(APP, rule(5, 22), name="app-prod")]
    )
    limit = "max_revocations_per_run=1 (3 revokes planned for policies/a.yaml)"
    assert [(c.action, c.group_id, c.blocked) for c in result.changes] == [
        (Action.REVOKE, WEB, limit),
        (Action.REVOKE, WEB, limit),
        (Action.REVOKE, APP, limit),
        (Action.RESTORE, APP, limit),
    ]


def test_group_blocked_revokes_do_not_count_toward_the_run_limit() -> None:
    """Revokes a group limit already blocked are not planned writes, so the run limit skips them."""
    tight = policy("web-prod", limits={"max_revocations_per_group": 1})
    baseline = files_baseline({"policies/a.yaml": (2, [tight, policy("app-prod")])})
    result = run(
        baseline,
        [
            group(WEB, HTTPS_LIVE, *extras(5)),
            group(APP, HTTPS_LIVE, *extras(2, 2000), name="app-prod"),
        ],
    )
    assert blocked_of(result, WEB) == {"max_revocations_per_group=1 (5 revokes planned)"}
    assert blocked_of(result, APP) == {None}


HTTPS_YAML = "ingress: [{protocol: tcp, ports: 443, from: 0.0.0.0/0}]"


def test_file_limits_from_yaml_drive_the_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Limits loaded from files block as declared: the inherited per-group and the per-run."""
    monkeypatch.chdir(tmp_path)
    Path("policies").mkdir()
    Path("policies/a.yaml").write_text(
        textwrap.dedent(
            f"""\
            limits: {{max_revocations_per_group: 2}}
            groups:
              - name: web-prod
                match: {{tags: {{Name: web-prod}}}}
                {HTTPS_YAML}
              - name: app-prod
                match: {{tags: {{Name: app-prod}}}}
                {HTTPS_YAML}
                limits: {{max_revocations_per_group: 4}}
            """
        ),
        encoding="utf-8",
    )
    Path("policies/b.yaml").write_text(
        textwrap.dedent(
            f"""\
            limits: {{max_revocations_per_run: 1}}
            groups:
              - name: db-prod
                match: {{tags: {{Name: db-prod}}}}
                {HTTPS_YAML}
            """
        ),
        encoding="utf-8",
    )
    result = run(
        load_policies("policies"),
        [
            group(WEB, HTTPS_LIVE, *extras(3)),
            group(APP, HTTPS_LIVE, *extras(3, 2000), name="app-prod"),
            group(DB, HTTPS_LIVE, *extras(2, 3000), name="db-prod"),
        ],
    )
    assert blocked_of(result, WEB) == {"max_revocations_per_group=2 (3 revokes planned)"}
    assert blocked_of(result, APP) == {None}
    assert blocked_of(result, DB) == {
        "max_revocations_per_run=1 (2 revokes planned for policies/b.yaml)"
    }


# --- allow_empty ---------------------------------------------------------------------------


def test_empty_baseline_with_allow_empty_revokes_every_ingress_rule() -> None:
    """ingress: [] with allow_empty: true empties the group as asked."""
    empty = policy(ingress=[], allow_empty=True)
    result = run([empty], [group(WEB, rule(1, 22), rule(2, 443))])
    assert [(c.action, c.writes, c.blocked) for c in result.changes] == [
        (Action.REVOKE, True, None),
        (Action.REVOKE, True, None),
    ]


def test_empty_baseline_without_allow_empty_is_blocked() -> None:
    """ingress: [] without allow_empty blocks the revokes that would empty the group."""
    empty = policy(ingress=[])
    result = run([empty], [group(WEB, rule(1, 22), rule(2, 443))])
    assert rows(result) == [
        (
            "revoke",
            WEB,
            "sgr-00000000000000001",
            "ingress tcp 22 from 0.0.0.0/0",
            "not in policy web-prod",
            BLOCK_EMPTY,
        ),
        (
            "revoke",
            WEB,
            "sgr-00000000000000002",
            "ingress tcp 443 from 0.0.0.0/0",
            "not in policy web-prod",
            BLOCK_EMPTY,
        ),
    ]
    assert not any(c.writes for c in result.changes)


def test_all_baseline_rules_missing_blocks_revoking_the_rest() -> None:
    """A baseline whose rules are all missing blocks ingress revokes, whatever allow_empty says."""
    for allow in (False, True):
        result = run([policy(allow_empty=allow)], [group(WEB, rule(1, 22))])
        assert rows(result) == [
            (
                "revoke",
                WEB,
                "sgr-00000000000000001",
                "ingress tcp 22 from 0.0.0.0/0",
                "not in policy web-prod",
                BLOCK_MISSING,
            ),
            (
                "missing",
                WEB,
                None,
                "ingress tcp 443 from 0.0.0.0/0",
                "in policy web-prod but not live",
                None,
            ),
        ], allow


def test_restoring_the_baseline_keeps_the_group_from_emptying() -> None:
    """With restore_missing the planned restores keep ingress, so the revokes proceed."""
    result = run([policy(restore_missing=True)], [group(WEB, rule(1, 22))])
    assert [(c.action, c.writes, c.blocked) for c in result.changes] == [
        (Action.REVOKE, True, None),
        (Action.RESTORE, True, None),
    ]


def test_a_rule_left_standing_means_the_group_is_not_emptied() -> None:
    """When one live ingress rule stays (allowed or excepted) the revokes proceed."""
    allowed_stays = run([policy()], [group(WEB, HTTPS_LIVE, rule(2, 22))])
    assert blocked_of(allowed_stays, WEB) == {None}
    kept = policy(ingress=[], exceptions=[excepted(NOW + timedelta(days=1))])
    excepted_stays = run([kept], [group(WEB, rule(1, 8080, OFFICE), rule(2, 22))])
    assert [(c.action, c.blocked) for c in excepted_stays.changes] == [
        (Action.REVOKE, None),
        (Action.EXCEPTED, None),
    ]


def test_egress_only_drift_is_never_blocked_by_allow_empty() -> None:
    """allow_empty is about ingress: emptying egress, or egress beside blocked ingress, writes."""
    only_egress = policy(egress=[])
    result = run([only_egress], [group(WEB, HTTPS_LIVE, *extras(2, 2000, EGRESS))])
    assert [(c.direction, c.writes, c.blocked) for c in result.changes] == [
        (EGRESS, True, None),
        (EGRESS, True, None),
    ]
    no_ingress_live = run([only_egress], [group(WEB, *extras(1, 2000, EGRESS))])
    assert [(c.action, c.direction, c.blocked) for c in no_ingress_live.changes] == [
        (Action.MISSING, INGRESS, None),
        (Action.REVOKE, EGRESS, None),
    ]
    mixed = run(
        [policy(ingress=[], egress=[])], [group(WEB, rule(1, 22), *extras(1, 2000, EGRESS))]
    )
    assert [(c.direction, c.writes, c.blocked) for c in mixed.changes] == [
        (INGRESS, False, BLOCK_EMPTY),
        (EGRESS, True, None),
    ]


def test_report_only_groups_are_never_blocked() -> None:
    """A report-mode group never writes, so neither allow_empty nor limits mark it blocked."""
    report = policy(ingress=[], on_drift="report", limits={"max_revocations_per_group": 1})
    result = run([report], [group(WEB, *extras(3))])
    assert [(c.action, c.report_only, c.writes, c.blocked) for c in result.changes] == [
        (Action.REVOKE, True, False, None)
    ] * 3
    assert result.summary().blocked == 0


def test_group_limit_is_reported_before_allow_empty() -> None:
    """Over the group limit, the limit is the reason given, even if the group would empty."""
    tight = policy(ingress=[], limits={"max_revocations_per_group": 1})
    result = run([tight], [group(WEB, *extras(2))])
    assert blocked_of(result, WEB) == {"max_revocations_per_group=1 (2 revokes planned)"}


# --- enforce_limits=False ------------------------------------------------------------------


def test_enforce_limits_false_unblocks_everything_and_changes_nothing_else() -> None:
    """apply --force plans the same changes with no limit marking any of them blocked."""
    baseline = files_baseline(
        {
            "policies/a.yaml": (
                1,
                [
                    policy("web-prod", limits=GroupLimits(max_revocations_per_group=1)),
                    policy("app-prod"),
                ],
            ),
            "policies/b.yaml": (None, [policy("db-prod", ingress=[])]),
        }
    )
    groups = [
        group(WEB, HTTPS_LIVE, *extras(2)),
        group(APP, HTTPS_LIVE, *extras(2, 2000), name="app-prod"),
        group(DB, *extras(1, 3000), name="db-prod"),
    ]
    enforced = run(baseline, groups)
    assert [(c.group_id, c.blocked) for c in enforced.changes] == [
        (WEB, "max_revocations_per_group=1 (2 revokes planned)"),
        (WEB, "max_revocations_per_group=1 (2 revokes planned)"),
        (APP, "max_revocations_per_run=1 (2 revokes planned for policies/a.yaml)"),
        (APP, "max_revocations_per_run=1 (2 revokes planned for policies/a.yaml)"),
        (DB, BLOCK_EMPTY),
    ]
    forced = run(baseline, groups, enforce_limits=False)
    assert forced.changes == tuple(replace(c, blocked=None) for c in enforced.changes)
    assert all(c.writes for c in forced.changes)
    assert forced.summary().to_revoke == 5
    assert forced.summary().blocked == 0


def test_enforce_limits_false_still_honours_exceptions() -> None:
    """--force lifts limits, not exceptions: an excepted rule stays excepted."""
    kept = policy(exceptions=[excepted(NOW + timedelta(days=1))])
    result = run([kept], [group(WEB, HTTPS_LIVE, rule(2, 8080, OFFICE))], enforce_limits=False)
    assert [c.action for c in result.changes] == [Action.EXCEPTED]


# --- exceptions ----------------------------------------------------------------------------

UNTIL = datetime(2024, 6, 1, tzinfo=UTC)
LAPSED = datetime(2024, 4, 1, tzinfo=UTC)


def test_unexpired_exception_keeps_the_rule_and_never_writes() -> None:
    """A live rule under an unexpired exception is 'excepted', with its expiry and reason."""
    kept = policy(exceptions=[excepted(UNTIL)])
    result = run([kept], [group(WEB, HTTPS_LIVE, rule(2, 8080, OFFICE))])
    assert rows(result) == [
        (
            "excepted",
            WEB,
            "sgr-00000000000000002",
            f"ingress tcp 8080 from {OFFICE}",
            "excepted until 2024-06-01T00:00:00+00:00: vendor debugging",
            None,
        ),
    ]
    (change,) = result.changes
    assert (change.writes, change.report_only) == (False, False)
    assert result.has_drift is False
    assert result.summary() == Summary(
        to_revoke=0,
        to_restore=0,
        missing=0,
        excepted=1,
        blocked=0,
        report_only=0,
        drifted_groups=0,
        managed_groups=1,
        errors=0,
    )


def test_expired_exception_is_revoked_and_says_when_it_expired() -> None:
    """After its expiry the rule is drift again, and the reason names the lapsed expiry."""
    lapsed = policy(exceptions=[excepted(LAPSED)])
    result = run([lapsed], [group(WEB, HTTPS_LIVE, rule(2, 8080, OFFICE))])
    assert rows(result) == [
        (
            "revoke",
            WEB,
            "sgr-00000000000000002",
            f"ingress tcp 8080 from {OFFICE}",
            "not in policy web-prod; its exception expired 2024-04-01T00:00:00+00:00",
            None,
        ),
    ]
    assert result.changes[0].writes


def test_exception_expiring_exactly_now_has_expired() -> None:
    """An exception whose expiry equals now no longer keeps the rule."""
    at_now = policy(exceptions=[excepted(NOW)])
    result = run([at_now], [group(WEB, HTTPS_LIVE, rule(2, 8080, OFFICE))])
    assert [c.action for c in result.changes] == [Action.REVOKE]
    before = run(
        [at_now], [group(WEB, HTTPS_LIVE, rule(2, 8080, OFFICE))], now=NOW - timedelta(seconds=1)
    )
    assert [c.action for c in before.changes] == [Action.EXCEPTED]


def test_without_a_clock_every_exception_keeps_its_rule() -> None:
    """With now=None even an expired exception keeps its rule (the safe side)."""
    lapsed = policy(exceptions=[excepted(LAPSED)])
    result = run([lapsed], [group(WEB, HTTPS_LIVE, rule(2, 8080, OFFICE))], now=None)
    assert rows(result) == [
        (
            "excepted",
            WEB,
            "sgr-00000000000000002",
            f"ingress tcp 8080 from {OFFICE}",
            "excepted until 2024-04-01T00:00:00+00:00: vendor debugging",
            None,
        ),
    ]


def test_exception_in_report_mode_and_expired_in_report_mode() -> None:
    """Report-mode groups show excepted rules alike, and lapsed ones as report-only revokes."""
    report = policy(on_drift="report", exceptions=[excepted(UNTIL), excepted(LAPSED, ports=9090)])
    result = run([report], [group(WEB, HTTPS_LIVE, rule(2, 8080, OFFICE), rule(3, 9090, OFFICE))])
    assert rows(result) == [
        (
            "revoke",
            WEB,
            "sgr-00000000000000003",
            f"ingress tcp 9090 from {OFFICE}",
            "not in policy web-prod; its exception expired 2024-04-01T00:00:00+00:00 (report only)",
            None,
        ),
        (
            "excepted",
            WEB,
            "sgr-00000000000000002",
            f"ingress tcp 8080 from {OFFICE}",
            "excepted until 2024-06-01T00:00:00+00:00: vendor debugging",
            None,
        ),
    ]


def test_egress_exception_uses_to() -> None:
    """An exception with to: keeps an egress rule of a group whose egress is managed."""
    spec = excepted(UNTIL, protocol="all", ports=None, to="198.51.100.0/24", source=None)
    kept = policy(egress=[], exceptions=[spec])
    live_egress = rule(2, (-1, -1), "198.51.100.0/24", protocol="-1", direction=EGRESS)
    same_as_ingress = rule(3, (-1, -1), "198.51.100.0/24", protocol="-1")
    result = run([kept], [group(WEB, HTTPS_LIVE, live_egress, same_as_ingress)])
    assert rows(result) == [
        (
            "revoke",
            WEB,
            "sgr-00000000000000003",
            "ingress all from 198.51.100.0/24",
            "not in policy web-prod",
            None,
        ),
        (
            "excepted",
            WEB,
            "sgr-00000000000000002",
            "egress all to 198.51.100.0/24",
            "excepted until 2024-06-01T00:00:00+00:00: vendor debugging",
            None,
        ),
    ]


def test_egress_exception_is_moot_while_egress_is_unmanaged() -> None:
    """With egress unmanaged, live egress rules are left alone whether excepted or not."""
    spec = excepted(UNTIL, protocol="all", ports=None, to="198.51.100.0/24", source=None)
    kept = policy(exceptions=[spec])
    live_egress = rule(2, (-1, -1), "198.51.100.0/24", protocol="-1", direction=EGRESS)
    assert run([kept], [group(WEB, HTTPS_LIVE, live_egress)]).changes == ()


def test_exception_on_a_port_range_keeps_exactly_that_range() -> None:
    """An exception for 8000-8100 keeps the live 8000-8100 rule, not a rule for part of it."""
    ranged = policy(exceptions=[excepted(UNTIL, ports="8000-8100")])
    result = run(
        [ranged],
        [
            group(
                WEB,
                HTTPS_LIVE,
                rule(2, (8000, 8100), OFFICE),
                rule(3, 8080, OFFICE),
                rule(4, (8000, 8100), "10.0.0.0/8"),
            )
        ],
    )
    assert [(c.action, c.rule_id) for c in result.changes] == [
        (Action.REVOKE, "sgr-00000000000000004"),
        (Action.REVOKE, "sgr-00000000000000003"),
        (Action.EXCEPTED, "sgr-00000000000000002"),
    ]


def test_exception_with_all_ports_matches_the_wire_form_without_ports() -> None:
    """ports: all in an exception keeps a live tcp rule EC2 reports with ports -1."""
    everything = policy(exceptions=[excepted(UNTIL, ports="all")])
    result = run([everything], [group(WEB, HTTPS_LIVE, rule(2, (-1, -1), OFFICE))])
    assert [(c.action, c.key.from_port, c.key.to_port) for c in result.changes] == [
        (Action.EXCEPTED, 0, 65535)
    ]


def test_exception_naming_the_own_account_keeps_the_plain_live_reference() -> None:
    """An exception written as <own account>/sg-… keeps the live sg-… rule, as the baseline does."""
    own = f"{ACCOUNT}/{PEER_SG}"
    kept = policy(exceptions=[excepted(UNTIL, ports=22, source=own)])
    live_ref = rule(2, 22, PEER_SG)
    result = run([kept], [group(WEB, HTTPS_LIVE, live_ref, owner_id=ACCOUNT)])
    assert rows(result) == [
        (
            "excepted",
            WEB,
            "sgr-00000000000000002",
            f"ingress tcp 22 from {PEER_SG}",
            "excepted until 2024-06-01T00:00:00+00:00: vendor debugging",
            None,
        ),
    ]


def test_expired_own_account_exception_names_its_expiry() -> None:
    """A lapsed exception written as <own account>/sg-… still explains the revoke."""
    own = f"{ACCOUNT}/{PEER_SG}"
    lapsed = policy(exceptions=[excepted(LAPSED, ports=22, source=own)])
    result = run([lapsed], [group(WEB, HTTPS_LIVE, rule(2, 22, PEER_SG), owner_id=ACCOUNT)])
    assert [c.reason for c in result.changes] == [
        "not in policy web-prod; its exception expired 2024-04-01T00:00:00+00:00"
    ]


def test_exception_for_a_baseline_rule_changes_nothing() -> None:
    """A rule both allowed and excepted is simply allowed: no change at all."""
    both = policy(exceptions=[excepted(UNTIL, ports=443, source="0.0.0.0/0")])
    assert run([both], [group(WEB, HTTPS_LIVE)]).changes == ()


# --- restore_missing -----------------------------------------------------------------------


def test_restore_missing_plans_restores_that_write() -> None:
    """With restore_missing a missing baseline rule becomes a writing 'restore' change."""
    result = run([policy(restore_missing=True)], [group(WEB, rule(2, 443, "10.0.0.0/8"))])
    assert rows(result) == [
        (
            "revoke",
            WEB,
            "sgr-00000000000000002",
            "ingress tcp 443 from 10.0.0.0/8",
            "not in policy web-prod",
            None,
        ),
        (
            "restore",
            WEB,
            None,
            "ingress tcp 443 from 0.0.0.0/0",
            "in policy web-prod but not live; restore_missing is on",
            None,
        ),
    ]
    restore = result.changes[1]
    assert (restore.writes, restore.report_only, restore.description) == (
        True,
        False,
        "public HTTPS",
    )
    assert result.summary().to_restore == 1
    assert result.summary().missing == 0
    assert restore.to_dict()["action"] == "restore"


def test_restore_missing_in_report_mode_stays_missing() -> None:
    """A report-mode group never writes, so restore_missing still reports 'missing'."""
    report = policy(on_drift="report", restore_missing=True)
    result = run([report], [group(WEB, rule(2, 22))])
    assert [(c.action, c.writes, c.reason) for c in result.changes] == [
        (Action.REVOKE, False, "not in policy web-prod (report only)"),
        (Action.MISSING, False, "in policy web-prod but not live"),
    ]
    assert result.summary().to_restore == 0


def test_report_only_plan_turns_restores_into_non_writes() -> None:
    """A plan marked report-only (Lambda report mode) writes nothing, restores included."""
    result = run([policy(restore_missing=True)], [group(WEB)]).as_report_only()
    assert [(c.action, c.writes) for c in result.changes] == [(Action.RESTORE, False)]
    assert result.summary().to_restore == 0


def test_restore_of_an_own_account_reference_is_localised() -> None:
    """A restore of <own account>/sg-… targets the plain sg-… EC2 reports."""
    ref = policy(
        restore_missing=True,
        ingress=[HTTPS, {"protocol": "tcp", "ports": 5432, "from": f"{ACCOUNT}/{PEER_SG}"}],
    )
    result = run([ref], [group(WEB, HTTPS_LIVE, owner_id=ACCOUNT)])
    assert [(c.action, c.key.peer) for c in result.changes] == [(Action.RESTORE, PEER_SG)]


# --- blocked changes in the summary, JSON and text -----------------------------------------


def test_blocked_changes_do_not_write_and_are_counted_as_blocked() -> None:
    """A blocked change has writes False, counts in Summary.blocked and keeps has_drift."""
    result = run([policy(limits={"max_revocations_per_group": 1})], [group(WEB, *extras(2))])
    assert all(not c.writes for c in result.changes)
    assert result.has_drift is True
    summary = result.summary()
    assert (summary.to_revoke, summary.missing, summary.blocked, summary.drifted_groups) == (
        0,
        1,
        2,
        1,
    )
    assert result.changes[0].to_dict()["blocked"] == (
        "max_revocations_per_group=1 (2 revokes planned)"
    )


def test_rendered_text_shows_blocks_restores_and_exceptions() -> None:
    """The text plan marks blocked lines, shows restore and excepted lines, and sums them up."""
    web = policy(limits={"max_revocations_per_group": 1})
    app = policy("app-prod", restore_missing=True, exceptions=[excepted(UNTIL)])
    result = run(
        [web, app],
        [
            group(WEB, HTTPS_LIVE, rule(2, 22), rule(3, 23)),
            group(APP, rule(4, 8080, OFFICE), rule(5, 25), name="app-prod"),
        ],
    )
    limit = "max_revocations_per_group=1 (2 revokes planned)"
    assert render_text(result).splitlines() == [
        f"{REGION} {WEB} (policy web-prod)",
        "  - revoke   sgr-00000000000000002  ingress tcp 22 from 0.0.0.0/0"
        f"  (not in policy web-prod)  [blocked: {limit}]",
        "  - revoke   sgr-00000000000000003  ingress tcp 23 from 0.0.0.0/0"
        f"  (not in policy web-prod)  [blocked: {limit}]",
        f"{REGION} {APP} (policy app-prod)",
        "  - revoke   sgr-00000000000000005  ingress tcp 25 from 0.0.0.0/0"
        "  (not in policy app-prod)",
        f"  ~ excepted sgr-00000000000000004  ingress tcp 8080 from {OFFICE}"
        "  (excepted until 2024-06-01T00:00:00+00:00: vendor debugging)",
        f"  + restore  {'':<22} ingress tcp 443 from 0.0.0.0/0"
        "  (in policy app-prod but not live; restore_missing is on)",
        "Plan: 1 to revoke, 1 to restore, 0 missing, 1 excepted, 2 blocked in 2 groups.",
    ]


def test_json_shows_blocked_and_the_summary_counts() -> None:
    """The JSON plan carries each change's blocked reason and the safety counts."""
    result = run([policy(ingress=[])], [group(WEB, rule(1, 22))])
    doc = json.loads(render_json(result))
    assert [(c["action"], c["blocked"]) for c in doc["changes"]] == [("revoke", BLOCK_EMPTY)]
    assert doc["summary"] == {
        "to_revoke": 0,
        "to_restore": 0,
        "missing": 0,
        "excepted": 0,
        "blocked": 1,
        "report_only": 0,
        "drifted_groups": 1,
        "managed_groups": 1,
        "errors": 0,
        "guardrail_violations": 0,
        "unmanaged_groups": 0,
    }
