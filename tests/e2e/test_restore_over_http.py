"""The installed CLI's journal and restore against moto_server over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from tests.e2e.conftest import cli
from tests.policyfiles import write_policies
from tests.world import DEFAULT_EGRESS, REGION, World, egress, ingress

pytestmark = pytest.mark.e2e

POLICY = """
groups:
  - name: web-prod
    match: {tags: {Name: prod-sg}}
    ingress:
      - {protocol: tcp, ports: 443, from: [0.0.0.0/0]}
    egress:
      - {protocol: all, to: [0.0.0.0/0]}
"""
KEEP = ingress("tcp", (443, 443), "0.0.0.0/0")
DRIFT = [
    (ingress("tcp", (22, 22), "0.0.0.0/0"), "ssh for the vendor"),
    (ingress("all", None, "::/0"), "debugging"),
    (egress("udp", (53, 53), "10.0.0.0/8"), None),
]


def test_apply_journals_and_restore_puts_everything_back_over_http(
    tmp_path: Path, endpoint: str
) -> None:
    """apply writes the journal; restore recreates the rules with descriptions; again: no-op."""
    world = World.create(boto3.client("ec2", region_name=REGION, endpoint_url=endpoint))
    group = world.group("web", {"Name": "prod-sg"}, [KEEP, *DRIFT])
    before = world.descriptions(group)
    policies = str(write_policies(tmp_path / "p", POLICY))
    journal = str(tmp_path / "journal" / "run.jsonl")
    aws = ["--region", REGION, "--endpoint-url", endpoint]

    applied = cli("apply", "--policies", policies, "--journal", journal, *aws)
    assert applied.returncode == 0, applied.stderr
    assert world.live(group) == {KEEP, DEFAULT_EGRESS}
    lines = [json.loads(line) for line in Path(journal).read_text(encoding="utf-8").splitlines()]
    phases = [(e["rule_id"], e["phase"]) for e in lines]
    assert sorted(p for _, p in phases) == ["intent"] * 3 + ["outcome"] * 3
    for rule_id, phase in phases:
        if phase == "outcome":
            assert phases.index((rule_id, "intent")) < phases.index((rule_id, "outcome"))
    assert {e["actor"] for e in lines} == {"arn:aws:sts::123456789012:user/moto"}

    restored = cli("restore", "--journal", journal, "--endpoint-url", endpoint)
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout.splitlines()[-1] == (
        "Restore: 3 restored, 0 already present, 0 group gone, 0 failed (3 rules in 1 groups)."
    )
    assert world.descriptions(group) == before

    again = cli("restore", "--journal", journal, "--endpoint-url", endpoint)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == (
        "Restore: 0 restored, 3 already present, 0 group gone, 0 failed (3 rules in 1 groups)."
    )
    assert world.descriptions(group) == before
