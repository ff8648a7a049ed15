"""The installed CLI with ``--accounts`` against one moto_server holding several accounts.

The CLI's credentials act in moto's default account (the hub); it reaches the members by
``sts:AssumeRole`` over HTTP, and moto serves each assumed session from that member account.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from tests.e2e.conftest import cli
from tests.policyfiles import write_policies
from tests.world import REGION, World, ingress

pytestmark = pytest.mark.e2e

HUB = "123456789012"
MEMBERS = ("111111111111", "222222222222")
POLICY = """
groups:
  - name: web-prod
    match: {tags: {Name: prod-sg}}
    ingress:
      - {protocol: tcp, ports: 443, from: [0.0.0.0/0]}
"""
KEEP = ingress("tcp", (443, 443), "0.0.0.0/0")
DRIFT = ingress("tcp", (22, 22), "0.0.0.0/0")


def ec2_in(account: str, endpoint: str) -> object:
    """An EC2 client acting in ``account`` on the server (assumed-role credentials)."""
    if account == HUB:
        return boto3.client("ec2", region_name=REGION, endpoint_url=endpoint)
    sts = boto3.client("sts", region_name=REGION, endpoint_url=endpoint)
    credentials = sts.assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/test-setup", RoleSessionName="test-setup"
    )["Credentials"]
    return boto3.client(
        "ec2",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def test_plan_apply_plan_across_accounts_over_http(tmp_path: Path, endpoint: str) -> None:
    """plan exits 2 with drift in every account, apply fixes all of them, plan exits 0."""
    worlds = {a: World.create(ec2_in(a, endpoint)) for a in (HUB, *MEMBERS)}
    groups = {a: w.group("web", {"Name": "prod-sg"}, [KEEP, DRIFT]) for a, w in worlds.items()}
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(
        f"role_name: sg-reconciler-member\nregions: [{REGION}]\naccounts:\n"
        + "".join(f'  - {{id: "{a}"}}\n' for a in (HUB, *MEMBERS)),
        encoding="utf-8",
    )
    policies = str(write_policies(tmp_path / "p", POLICY))
    common = ["--policies", policies, "--accounts", str(accounts), "--endpoint-url", endpoint]

    first = cli("plan", *common, "--output", "json")
    assert first.returncode == 2, first.stderr
    planned = {(c["account"], c["group_id"]) for c in json.loads(first.stdout)["changes"]}
    assert planned == set(groups.items())

    applied = cli("apply", *common, "--no-journal")
    assert applied.returncode == 0, applied.stderr
    for account, world in worlds.items():
        assert DRIFT not in world.live(groups[account])
    assumed = [json.loads(line) for line in applied.stderr.splitlines()]
    sessions = {r["session_name"] for r in assumed if r["event"] == "role_assumed"}
    assert len(sessions) == 1
    assert next(iter(sessions)).startswith("sg-reconciler-")

    last = cli("plan", *common)
    assert last.returncode == 0, last.stderr
    assert last.stdout.splitlines()[-3:] == [
        f"Account {a}: no drift in 0 of 1 managed groups." for a in sorted((HUB, *MEMBERS))
    ]
