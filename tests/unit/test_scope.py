"""What a run looks at (Scope), how it runs (RunMode), and what it returns (RunResult)."""

from __future__ import annotations

from reconciler.core.accounts import Target
from reconciler.core.plan import Plan
from reconciler.core.rules import Direction, ObservedGroup, ObservedRule, RuleKey
from reconciler.core.scope import RunMode, Scope
from reconciler.service import AccountRun, RunError, RunResult

INGRESS = RuleKey.from_ec2(
    direction=Direction.INGRESS, protocol="tcp", from_port=22, to_port=22, peer="0.0.0.0/0"
)
EGRESS = RuleKey.from_ec2(
    direction=Direction.EGRESS, protocol="-1", from_port=None, to_port=None, peer="0.0.0.0/0"
)
GROUP = ObservedGroup(
    region="us-east-1",
    group_id="sg-1",
    rules=(ObservedRule("sgr-in", INGRESS), ObservedRule("sgr-out", EGRESS)),
)


def test_an_event_with_a_direction_is_limited_to_it() -> None:
    """AuthorizeSecurityGroupEgress may only lead to egress changes."""
    scope = Scope(group_ids=("sg-1",), direction=Direction.EGRESS)
    assert scope.directions([GROUP]) == frozenset({Direction.EGRESS})


def test_an_event_naming_rules_is_limited_to_their_directions() -> None:
    """ModifySecurityGroupRules names rule ids: their live directions bound the changes."""
    scope = Scope(group_ids=("sg-1",), rule_ids=("sgr-out",))
    assert scope.directions([GROUP]) == frozenset({Direction.EGRESS})


def test_rules_that_no_longer_exist_leave_every_direction_open() -> None:
    """Rule ids the live groups do not have say nothing: both directions are looked at."""
    scope = Scope(group_ids=("sg-1",), rule_ids=("sgr-gone",))
    assert scope.directions([GROUP]) == frozenset(Direction)


def test_the_managed_sweep_reads_everything_and_says_so_in_errors() -> None:
    """Scope.managed() is the schedule's and plan's scope; errors name what was read."""
    assert Scope.managed().everything
    assert Scope.managed().describe() == "security groups"
    named = Scope(group_ids=("sg-1", "sg-2"))
    assert not named.everything
    assert named.describe() == "sg-1, sg-2"


def test_only_enforce_writes_and_only_plan_skips_the_apply_step() -> None:
    """The four modes: plan (no apply step), dry run and report (no calls), enforce."""
    assert [m.applies for m in RunMode] == [False, True, True, True]
    assert [m.writes for m in RunMode] == [False, False, False, True]


def test_a_merged_run_names_each_account_in_its_errors_and_keeps_each_result() -> None:
    """Errors of a multi-account run carry the account label; each account's part is kept."""
    prod = Target("111111111111", "prod", "arn:aws:iam::111111111111:role/r", ("us-east-1",))
    read = RunError("us-east-1: cannot read security groups: boom", region="us-east-1")
    run = AccountRun(prod, RunResult(plan=Plan(changes=(), managed_groups=3), errors=(read,)))
    merged = RunResult.merged([run])
    assert [str(e) for e in merged.errors] == [
        "111111111111 (prod): us-east-1: cannot read security groups: boom"
    ]
    assert merged.errors[0].to_dict() == {
        "message": "111111111111 (prod): us-east-1: cannot read security groups: boom",
        "region": "us-east-1",
        "account": "111111111111 (prod)",
    }
    assert merged.plan.managed_groups == 3
    assert merged.accounts == (run,)
    assert merged.read_failed
    assert merged.failed
