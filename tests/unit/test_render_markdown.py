"""Plans for pull-request comments (markdown), quiet text, and account -> region -> group order."""

from __future__ import annotations

from reconciler.core.plan import Action, Change, GroupProblem, Outcome, Plan, Status
from reconciler.core.rules import Direction, RuleKey
from reconciler.render import render_markdown, render_text

WEB = "sg-0aaaaaaaaaaaaaaa1"
DB = "sg-0aaaaaaaaaaaaaaa3"
SSH_ID = "sgr-0123456789abcdef0"


def _change(
    action: Action,
    group_id: str,
    key: RuleKey,
    *,
    region: str = "us-east-1",
    account: str | None = None,
    rule_id: str | None = None,
    reason: str = "not in policy web-prod",
    blocked: str | None = None,
    policy: str = "web-prod",
) -> Change:
    return Change(
        action=action,
        region=region,
        group_id=group_id,
        policy=policy,
        key=key,
        rule_id=rule_id,
        description=None,
        reason=reason,
        blocked=blocked,
        account=account,
    )


SSH = RuleKey(Direction.INGRESS, "tcp", 22, 22, "0.0.0.0/0")
HTTPS6 = RuleKey(Direction.INGRESS, "tcp", 443, 443, "::/0")
PG = RuleKey(Direction.INGRESS, "tcp", 5432, 5432, "10.0.0.0/8")


def _small_plan() -> Plan:
    """web-prod: a revoke and a missing rule; db-prod: a blocked revoke with a `|` reason."""
    return Plan(
        changes=(
            _change(Action.REVOKE, WEB, SSH, rule_id=SSH_ID),
            _change(Action.MISSING, WEB, HTTPS6, reason="in policy web-prod but not live"),
            _change(
                Action.REVOKE,
                DB,
                PG,
                rule_id="sgr-00000000000000999",
                policy="db-prod",
                reason="not in policy db-prod | legacy",
                blocked="max_revocations_per_group=1 (2 revokes planned)",
            ),
        ),
        problems=(GroupProblem("us-east-1", "sg-0aaaaaaaaaaaaaaa9", "matched by policies a, b"),),
        managed_groups=3,
    )


def test_markdown_plan_is_a_heading_summary_table_per_group_and_errors() -> None:
    """The PR comment has a heading, the bold summary, one table per group, then errors."""
    assert render_markdown(_small_plan(), errors=["eu-west-1: AccessDenied | denied"]) == "\n".join(
        [
            "## sg-reconciler plan",
            "",
            "**Plan: 1 to revoke, 1 missing, 0 excepted, 1 blocked in 2 groups.**",
            "",
            f"### us-east-1 {WEB} (policy web-prod)",
            "",
            "| action | rule id | rule | reason | blocked |",
            "| --- | --- | --- | --- | --- |",
            f"| revoke | `{SSH_ID}` | `ingress tcp 22 from 0.0.0.0/0`"
            " | not in policy web-prod |  |",
            "| missing |  | `ingress tcp 443 from ::/0` | in policy web-prod but not live |  |",
            "",
            f"### us-east-1 {DB} (policy db-prod)",
            "",
            "| action | rule id | rule | reason | blocked |",
            "| --- | --- | --- | --- | --- |",
            "| revoke | `sgr-00000000000000999` | `ingress tcp 5432 from 10.0.0.0/8`"
            " | not in policy db-prod \\| legacy"
            " | max_revocations_per_group=1 (2 revokes planned) |",
            "",
            "### Errors",
            "",
            "- eu-west-1: AccessDenied \\| denied",
            "- us-east-1 sg-0aaaaaaaaaaaaaaa9: matched by policies a, b",
        ]
    )


def test_markdown_for_a_clean_plan_is_the_heading_and_no_drift() -> None:
    """No changes and no errors: just the heading and the no-drift line."""
    assert render_markdown(Plan(changes=(), managed_groups=4)) == (
        "## sg-reconciler plan\n\n**No drift: 4 managed groups match the baseline.**"
    )


def test_markdown_after_apply_adds_a_status_column() -> None:
    """With outcomes the heading says apply and each row carries its status."""
    plan = Plan(changes=(_change(Action.REVOKE, WEB, SSH, rule_id=SSH_ID),), managed_groups=1)
    text = render_markdown(plan, (Outcome(plan.changes[0], Status.REVOKED),))
    assert text.splitlines() == [
        "## sg-reconciler apply",
        "",
        "**Apply: 1 revoked, 0 already absent, 0 failed, 0 missing, 0 excepted, 0 blocked"
        " in 1 groups.**",
        "",
        f"### us-east-1 {WEB} (policy web-prod)",
        "",
        "| action | rule id | rule | reason | blocked | status |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| revoke | `{SSH_ID}` | `ingress tcp 22 from 0.0.0.0/0` | not in policy web-prod |  |"
        " revoked |",
    ]


def test_quiet_keeps_only_errors_and_the_summary() -> None:
    """Quiet text and markdown drop the per-group lines but keep errors and the summary."""
    assert render_text(_small_plan(), quiet=True).splitlines() == [
        "error: us-east-1 sg-0aaaaaaaaaaaaaaa9: matched by policies a, b",
        "Plan: 1 to revoke, 1 missing, 0 excepted, 1 blocked in 2 groups.",
    ]
    assert render_markdown(_small_plan(), quiet=True).splitlines() == [
        "## sg-reconciler plan",
        "",
        "**Plan: 1 to revoke, 1 missing, 0 excepted, 1 blocked in 2 groups.**",
        "",
        "### Errors",
        "",
        "- us-east-1 sg-0aaaaaaaaaaaaaaa9: matched by policies a, b",
    ]


def test_text_groups_by_account_then_region_then_group_keeping_order_within() -> None:
    """Changes arriving interleaved print under one heading each, account -> region -> group."""
    changes = (
        _change(Action.MISSING, WEB, HTTPS6, region="us-east-1", account="222222222222"),
        _change(Action.REVOKE, DB, SSH, region="eu-west-1", account="111111111111"),
        _change(Action.REVOKE, WEB, SSH, region="us-east-1", account="222222222222"),
        _change(Action.REVOKE, WEB, PG, region="eu-west-1", account="111111111111"),
        _change(Action.REVOKE, WEB, SSH, region="us-east-1", account="111111111111"),
    )
    headings = [
        line
        for line in render_text(Plan(changes=changes, managed_groups=4)).splitlines()
        if not line.startswith(("  ", "Plan:"))
    ]
    assert headings == [
        f"111111111111 eu-west-1 {WEB} (policy web-prod)",
        f"111111111111 eu-west-1 {DB} (policy web-prod)",
        f"111111111111 us-east-1 {WEB} (policy web-prod)",
        f"222222222222 us-east-1 {WEB} (policy web-prod)",
    ]
    lines = render_text(Plan(changes=changes, managed_groups=4)).splitlines()
    assert [line.split()[:2] for line in lines[-3:-1]] == [["+", "missing"], ["-", "revoke"]]
