"""Operator output of plan/apply against moto: --quiet, --output markdown, TTY-only progress."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from reconciler.adapters.aws import AwsClients
from reconciler.adapters.policy_files import load_policies
from reconciler.cli import main
from reconciler.cli.cmd_reconcile import ReconcileRequest, cmd_reconcile
from reconciler.cli.console import Console
from reconciler.cli.options import AwsOptions
from reconciler.core.accounts import Target
from reconciler.core.policy import Baseline
from reconciler.render import render_json
from reconciler.service import RunOptions, Site, reconcile
from tests.faults import SendFaults
from tests.policyfiles import write_policies
from tests.world import REGION, World, ingress

POLICY = """
groups:
  - name: web-prod
    match: {tags: {Name: prod-sg}}
    ingress:
      - {protocol: tcp, ports: 443, from: [0.0.0.0/0]}
"""
KEEP = ingress("tcp", (443, 443), "0.0.0.0/0")
SSH = ingress("tcp", (22, 22), "0.0.0.0/0")
OTHER_REGION = "eu-west-1"


class _Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def _drifted(tmp_path: Path, world: World) -> tuple[Path, str]:
    policies = write_policies(tmp_path / "p", POLICY)
    return policies, world.group("web", {"Name": "prod-sg"}, [KEEP, SSH])


def test_quiet_plan_prints_only_the_summary_line(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """plan --quiet prints just the summary (exit 2 still), and no info logs."""
    policies, _ = _drifted(tmp_path, world)
    assert main(["plan", "--policies", str(policies), "--region", REGION, "--quiet"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "Plan: 1 to revoke, 0 missing, 0 excepted, 0 blocked in 1 groups.\n"
    assert "run_summary" not in captured.err


def test_quiet_apply_prints_the_apply_summary_and_still_revokes(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """apply -q revokes as usual and prints only the Apply: line."""
    policies, group = _drifted(tmp_path, world)
    assert main(["apply", "--policies", str(policies), "--region", REGION, "-q"]) == 0
    assert capsys.readouterr().out == (
        "Apply: 1 revoked, 0 already absent, 0 failed, 0 missing, 0 excepted, 0 blocked"
        " in 1 groups.\n"
    )
    assert SSH not in world.live(group)


def test_quiet_keeps_errors(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """A group matched by two policies is still reported under --quiet."""
    twice = POLICY + POLICY.replace("web-prod", "web-again").replace("groups:\n", "")
    policies = write_policies(tmp_path / "p", twice)
    group = world.group("web", {"Name": "prod-sg"}, [KEEP])
    assert main(["plan", "--policies", str(policies), "--region", REGION, "--quiet"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"error: {REGION} {group}: matched by policies web-prod, web-again; left untouched"
        " (make the selectors exclusive)",
        "Plan: 0 to revoke, 0 missing, 0 excepted, 0 blocked in 0 groups.",
    ]


def test_plan_markdown_is_a_pr_comment(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """plan --output markdown prints the heading, bold summary and the group's table."""
    policies, group = _drifted(tmp_path, world)
    code = main(["plan", "--policies", str(policies), "--region", REGION, "--output", "markdown"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 2
    assert lines[:8] == [
        "## sg-reconciler plan",
        "",
        "**Plan: 1 to revoke, 0 missing, 0 excepted, 0 blocked in 1 groups.**",
        "",
        f"### {REGION} {group} (policy web-prod)",
        "",
        "| action | rule id | rule | reason | blocked |",
        "| --- | --- | --- | --- | --- |",
    ]
    assert lines[8].startswith("| revoke | `sgr-")
    assert lines[8].endswith("` | `ingress tcp 22 from 0.0.0.0/0` | not in policy web-prod |  |")
    assert len(lines) == 9


def test_no_progress_is_written_when_stderr_is_not_a_tty(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """A multi-region plan with stderr captured (not a TTY) writes no progress lines."""
    policies, _ = _drifted(tmp_path, world)
    args = ["plan", "--policies", str(policies), "--region", REGION, "--region", OTHER_REGION]
    assert main(args) == 2
    assert "reading" not in capsys.readouterr().err


def test_progress_goes_to_a_tty_stderr_for_multi_region_runs(
    tmp_path: Path, world: World, session: boto3.Session
) -> None:
    """On a TTY each region's read is announced once, numbered in order; --quiet silences it."""
    policies, _ = _drifted(tmp_path, world)
    aws = AwsOptions(None, (REGION, OTHER_REGION), None)
    out, err = io.StringIO(), _Terminal()
    code = cmd_reconcile(
        ReconcileRequest(policies, aws, output="json", session=session), Console(out, err)
    )
    assert code == 2
    # The other region has no managed group: its warning follows the progress lines.
    lines = [line for line in err.getvalue().splitlines() if not line.startswith("warning:")]
    assert [line.split()[0] for line in lines] == ["reading", "reading"]
    assert [line.split()[2] for line in lines] == ["(1/2)…", "(2/2)…"]
    assert {line.split()[1] for line in lines} == {REGION, OTHER_REGION}

    quiet_err = _Terminal()
    cmd_reconcile(
        ReconcileRequest(policies, aws, quiet=True, session=session),
        Console(io.StringIO(), quiet_err),
    )
    assert quiet_err.getvalue() == ""


def test_accounts_progress_names_each_account_once() -> None:
    """reconcile_accounts tells progress about each account as it starts, in order."""
    messages: list[str] = []

    def unreachable(target: Target) -> AwsClients:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "AssumeRole")

    targets = [
        Target("222222222222", "staging", "arn:aws:iam::222222222222:role/r", (REGION,)),
        Target("111111111111", "prod", "arn:aws:iam::111111111111:role/r", (REGION,)),
    ]
    result = reconcile(
        Baseline(policies=()),
        [Site.member(t, unreachable) for t in targets],
        options=RunOptions(account_workers=1, progress=messages.append),
    )
    assert len(result.errors) == 2
    assert messages == [
        "account 111111111111 (prod) (1/2)…",
        "account 222222222222 (staging) (2/2)…",
    ]


def test_plan_json_counts_an_unreadable_region_and_names_it(
    tmp_path: Path, world: World, session: boto3.Session
) -> None:
    """A region that cannot be read is an error of the JSON with its region, and is counted."""
    policies, _ = _drifted(tmp_path, world)
    denied = boto3.Session(region_name=REGION)
    SendFaults().attach(denied).fail("DescribeSecurityGroups", "UnauthorizedOperation")
    real, refused = AwsClients(session).ec2, AwsClients(denied).ec2

    def ec2(region: str) -> Any:
        return refused(region) if region == OTHER_REGION else real(region)

    site = Site.of(ec2, [REGION, OTHER_REGION])
    result = reconcile(load_policies(policies), [site], options=RunOptions())
    doc = json.loads(render_json(result.plan, result.outcomes, result.errors))
    (error,) = doc["errors"]
    assert error["region"] == OTHER_REGION
    assert error["message"].startswith(f"{OTHER_REGION}: cannot read security groups: ")
    assert doc["summary"]["errors"] == 1
    assert [c["region"] for c in doc["changes"]] == [REGION]


def test_a_region_where_no_group_matches_warns_on_stderr(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """plan in a region with no managed group still exits 0, and stderr says to check it."""
    policies, _ = _drifted(tmp_path, world)
    argv = ["plan", "--policies", str(policies), "--region", OTHER_REGION]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out == "No drift: 0 managed groups match the baseline.\n"
    assert (
        f"warning: no security group in {OTHER_REGION} matches any policy; check the region"
        " and the policies' match selectors\n"
    ) in captured.err
