"""The installed CLI's import against moto_server over HTTP: import, then plan is clean."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from tests.e2e.conftest import cli
from tests.world import REGION, World, egress, ingress

pytestmark = pytest.mark.e2e


def test_import_then_plan_over_http_shows_no_drift(tmp_path: Path, endpoint: str) -> None:
    """`sg-reconciler import --egress` writes a file that the next `plan` finds clean (exit 0)."""
    world = World.create(boto3.client("ec2", region_name=REGION, endpoint_url=endpoint))
    world.group(
        "web",
        {"Role": "web"},
        [
            (ingress("tcp", (443, 443), "0.0.0.0/0"), "public: HTTPS #1"),
            (ingress("icmp", (8, 0), "10.0.0.0/8"), None),
            (egress("udp", (53, 53), "::/0"), "dns"),
        ],
    )
    target = tmp_path / "policies" / "web.yaml"
    common = ["--region", REGION, "--endpoint-url", endpoint]
    done = cli("import", *common, "--tag", "Role=web", "--egress", "--output", str(target))
    assert done.returncode == 0, done.stderr
    assert done.stderr.endswith(f"Wrote 1 policies for 1 groups to {target}.\n")
    assert cli("validate", "--policies", str(target.parent)).returncode == 0
    plan = cli("plan", "--policies", str(target.parent), *common, "--quiet")
    assert (plan.returncode, plan.stdout) == (
        0,
        "No drift: 1 managed groups match the baseline.\n",
    ), plan.stderr
