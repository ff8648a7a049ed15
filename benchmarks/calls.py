"""Measurement 1: EC2 API calls of ``sg-reconciler apply``, by API, against the lower bound.

Our CLI runs in-process (``reconciler.cli.cmd_reconcile``) with a boto3 session whose
botocore ``before-call``/``after-call`` hooks count every EC2 request and the items each
Describe page returned. moto answers a Describe in one page whatever ``MaxResults`` says,
so we also project the pages AWS would serve (items / MaxResults, at least one) and compare
that projection with the lower bound. Our client-side rate limiter is lifted here: it only
waits before calls, it never changes which calls are made, and at this size it would add
(revoke calls - 50) / 5 seconds per run. Lower bound:

    ceil(managed groups / 1000)                       DescribeSecurityGroups pages
  + ceil(rules on managed groups / 1000)              DescribeSecurityGroupRules pages
  + one revoke per drifted group and direction        Revoke* calls

With a guardrail guarding every group (``WorldSpec.strays``), every group is read:

    ceil(groups in the region / 1000)                 DescribeSecurityGroups pages
  + ceil(rules on the groups with changes / 1000)     DescribeSecurityGroupRules pages
  + one revoke per changed group and direction        Revoke* calls
"""

from __future__ import annotations

__all__ = ["lower_bound", "measure_calls"]

import math
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import boto3

from benchmarks.servers import REGION, MotoServer
from benchmarks.tools import unlimited_rates_env
from benchmarks.world import WorldSpec, build_world, check_world, write_policies

PAGE = 1000  # MaxResults ceiling of DescribeSecurityGroups and DescribeSecurityGroupRules


def lower_bound(spec: WorldSpec) -> dict[str, int]:
    """The fewest EC2 calls any tool needs to revoke the world's drift by rule id."""
    if spec.strays:  # a guardrail reads every group, and rule ids only for changed groups
        groups = spec.managed + spec.bystanders + spec.strays
        return {
            "DescribeSecurityGroups": max(1, math.ceil(groups / PAGE)),
            "DescribeSecurityGroupRules": max(1, math.ceil(spec.changed_rules / PAGE)),
            "Revoke": spec.drifted_directions,
        }
    return {
        "DescribeSecurityGroups": max(1, math.ceil(spec.managed / PAGE)),
        "DescribeSecurityGroupRules": max(1, math.ceil(spec.managed_rules / PAGE)),
        "Revoke": spec.drifted_directions,
    }


class _Recorder:
    """Counts EC2 requests by API, and projects AWS's page count from each Describe."""

    _ITEMS: ClassVar[dict[str, str]] = {
        "DescribeSecurityGroups": "SecurityGroups",
        "DescribeSecurityGroupRules": "SecurityGroupRules",
    }

    def __init__(self, session: boto3.Session) -> None:
        self.calls: Counter[str] = Counter()
        self.projected: Counter[str] = Counter()
        self._page_size: dict[str, int] = {}
        session.events.register("before-call.ec2", self._before)
        session.events.register("after-call.ec2", self._after)

    def _before(self, model: Any, params: Any, **_: Any) -> None:
        self.calls[model.name] += 1
        body = params.get("body") if isinstance(params, dict) else None
        size = body.get("MaxResults") if isinstance(body, dict) else None
        self._page_size[model.name] = int(size) if size else PAGE

    def _after(self, model: Any, parsed: Any, **_: Any) -> None:
        key = self._ITEMS.get(model.name)
        if key is None:
            self.projected[model.name] += 1
            return
        items = len(parsed.get(key, [])) if isinstance(parsed, dict) else 0
        size = min(self._page_size.get(model.name, PAGE), PAGE)
        self.projected[model.name] += max(1, math.ceil(items / size))


def _grouped(counts: Counter[str]) -> dict[str, int]:
    return {
        "DescribeSecurityGroups": counts["DescribeSecurityGroups"],
        "DescribeSecurityGroupRules": counts["DescribeSecurityGroupRules"],
        "Revoke": counts["RevokeSecurityGroupIngress"] + counts["RevokeSecurityGroupEgress"],
        "other": sum(
            n
            for name, n in counts.items()
            if name
            not in {
                "DescribeSecurityGroups",
                "DescribeSecurityGroupRules",
                "RevokeSecurityGroupIngress",
                "RevokeSecurityGroupEgress",
            }
        ),
    }


def _apply_in_process(endpoint: str, policies: Path) -> tuple[int, dict[str, Any], _Recorder]:
    """One ``apply`` through the reconcile loop, as the CLI runs it, with calls recorded."""
    from reconciler.adapters.aws import AwsClients  # noqa: PLC0415
    from reconciler.adapters.policy_files import load_policies  # noqa: PLC0415
    from reconciler.log import configure_logging  # noqa: PLC0415
    from reconciler.service import RunMode, RunOptions, Site, reconcile  # noqa: PLC0415

    session = boto3.Session(region_name=REGION)
    recorder = _Recorder(session)
    lift = unlimited_rates_env()
    saved = {k: os.environ.get(k) for k in lift}
    with open(os.devnull, "w", encoding="utf-8") as devnull:
        configure_logging(stream=devnull, json=True)
        os.environ.update(lift)
        try:
            site = Site.of(AwsClients(session, endpoint).ec2, [REGION])
            result = reconcile(
                load_policies(policies), [site], options=RunOptions(mode=RunMode.ENFORCE)
            )
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    statuses = {status.value: n for status, n in result.statuses().items()}
    return (1 if result.failed else 0), {"summary": {"statuses": statuses}}, recorder


def measure_calls(server: MotoServer, spec: WorldSpec, runs: int) -> dict[str, Any]:
    """Build the world ``runs`` times; each time apply once and count the EC2 calls."""
    bound = lower_bound(spec)
    per_run = []
    with tempfile.TemporaryDirectory(prefix="sg-bench-") as tmp:
        policies = write_policies(Path(tmp) / "policies", spec)
        for _ in range(runs):
            server.reset()
            world = build_world(server.url, spec)
            started = time.perf_counter()
            code, doc, recorder = _apply_in_process(server.url, policies)
            elapsed = time.perf_counter() - started
            live = check_world(server.url, world)
            measured = _grouped(recorder.calls)
            projected = _grouped(recorder.projected)
            per_run.append(
                {
                    "exit_code": code,
                    "statuses": doc.get("summary", {}).get("statuses", {}),
                    "calls_by_api": dict(sorted(recorder.calls.items())),
                    "calls": measured,
                    "aws_projected": projected,
                    "total_calls": sum(measured.values()),
                    "total_aws_projected": sum(projected.values()),
                    "seconds_in_process": elapsed,
                    "live": live.to_dict(),
                }
            )
    bound_total = sum(bound.values())
    totals = [r["total_aws_projected"] for r in per_run]
    return {
        "world": spec.label(),
        "spec": {
            "managed": spec.managed,
            "extras": spec.extras,
            "egress_extras": spec.egress_extras,
            "bystanders": spec.bystanders,
            "strays": spec.strays,
            "managed_rules": spec.managed_rules,
            "revokes": spec.revokes,
        },
        "lower_bound": bound,
        "lower_bound_total": bound_total,
        "runs": per_run,
        "ratio": [t / bound_total for t in totals],
        "all_converged": all(r["live"]["ok"] for r in per_run),
    }
