"""The installed CLI against moto_server over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from tests.e2e.conftest import cli
from tests.policyfiles import write_policies
from tests.world import DEFAULT_EGRESS, REGION, World, ingress

pytestmark = pytest.mark.e2e

POLICY = """
groups:
  - name: web-prod
    match: {tags: {Name: prod-sg}}
    ingress:
      - {protocol: tcp, ports: 443, from: [0.0.0.0/0, "::/0"]}
"""
KEEP = {ingress("tcp", (443, 443), "0.0.0.0/0"), ingress("tcp", (443, 443), "::/0")}
DRIFT = [
    ingress("tcp", (22, 22), "0.0.0.0/0"),
    ingress("all", None, "0.0.0.0/0"),
    ingress("tcp", (3389, 3389), "::/0"),
]


def test_plan_apply_plan_over_http_with_endpoint_url(tmp_path: Path, endpoint: str) -> None:
    """plan exits 2, apply exits 0 and fixes the group, plan exits 0; the bystander is kept."""
    world = World.create(boto3.client("ec2", region_name=REGION, endpoint_url=endpoint))
    group = world.group("web", {"Name": "prod-sg"}, [*KEEP, *DRIFT])
    bystander = world.group("other", {"Name": "other"}, DRIFT)
    policies = str(write_policies(tmp_path / "p", POLICY))
    common = ["--policies", policies, "--region", REGION, "--endpoint-url", endpoint]

    first = cli("plan", *common, "--output", "json")
    assert first.returncode == 2, first.stderr
    assert len(json.loads(first.stdout)["changes"]) == 3

    applied = cli("apply", *common)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines()[-1] == (
        "Apply: 3 revoked, 0 already absent, 0 failed, 0 missing, 0 excepted, 0 blocked"
        " in 1 groups."
    )
    assert world.live(group) == {*KEEP, DEFAULT_EGRESS}
    assert set(DRIFT) <= world.live(bystander)

    last = cli("plan", *common)
    assert last.returncode == 0, last.stderr


def test_aws_endpoint_url_environment_is_honoured(tmp_path: Path, endpoint: str) -> None:
    """With AWS_ENDPOINT_URL set and no flag, the CLI talks to that endpoint."""
    world = World.create(boto3.client("ec2", region_name=REGION, endpoint_url=endpoint))
    world.group("web", {"Name": "prod-sg"}, [*KEEP, DRIFT[0]])
    policies = str(write_policies(tmp_path / "p", POLICY))
    done = cli("plan", "--policies", policies, env={"AWS_ENDPOINT_URL": endpoint})
    assert done.returncode == 2, done.stderr
    assert "ingress tcp 22 from 0.0.0.0/0" in done.stdout


def test_logs_are_json_lines_on_stderr_with_one_summary(tmp_path: Path, endpoint: str) -> None:
    """Off a TTY, every log line on stderr is JSON; each revoke is logged; one run summary."""
    world = World.create(boto3.client("ec2", region_name=REGION, endpoint_url=endpoint))
    group = world.group("web", {"Name": "prod-sg"}, [*KEEP, DRIFT[0]])
    policies = str(write_policies(tmp_path / "p", POLICY))
    done = cli("apply", "--policies", policies, "--region", REGION, "--endpoint-url", endpoint)
    records = [json.loads(line) for line in done.stderr.splitlines()]
    revokes = [r for r in records if r["event"] == "revoke"]
    assert [(r["group_id"], r["rule"], r["policy"], r["outcome"]) for r in revokes] == [
        (group, "ingress tcp 22 from 0.0.0.0/0", "web-prod", "revoked")
    ]
    assert revokes[0]["rule_id"].startswith("sgr-")
    assert [r["event"] for r in records].count("run_summary") == 1
