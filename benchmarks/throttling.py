"""Measurement 3: converging under EC2 request throttling, against the theoretical minimum.

The tool talks to moto_server through ``EC2Proxy`` with AWS's token buckets (fresh, full
buckets for each run). ``sg-reconciler apply`` runs, then ``plan``; while the plan still
shows drift, apply again (at most ``MAX_ROUNDS``). Time to converge is from the start of the
first apply to the end of the last one (the in-between plans count, the final clean plan
does not). Failed revokes are the ``failed`` statuses of every apply.

The minimum is what a perfect client could do against the same buckets: spend each
bucket's burst at once, then one call per refill interval:
max over buckets of (calls - burst) / refill, counting the fewest calls the drift needs.
"""

from __future__ import annotations

__all__ = ["measure_throttling", "minimum_seconds"]

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.calls import lower_bound
from benchmarks.proxy import AWS_BUCKETS, EC2Proxy
from benchmarks.servers import MotoServer
from benchmarks.tools import run_c7n, run_ours
from benchmarks.world import WorldSpec, build_world, check_world, write_policies

MAX_ROUNDS = 5


def minimum_seconds(spec: WorldSpec) -> float:
    """The fastest any client can revoke the drift through AWS's buckets."""
    bound = lower_bound(spec)
    need = {
        "non-mutating": bound["DescribeSecurityGroups"] + bound["DescribeSecurityGroupRules"],
        "sg-ingress": spec.managed if spec.extras else 0,
        "mutating": spec.managed if spec.egress_extras else 0,
    }
    return max(
        max(0.0, (need[name] - burst) / refill) for name, (burst, refill) in AWS_BUCKETS.items()
    )


def _converge_ours(endpoint: str, policies: Path) -> dict[str, Any]:
    rounds: list[dict[str, Any]] = []
    started = time.perf_counter()
    converged_at: float | None = None
    for _ in range(MAX_ROUNDS):
        applied = run_ours(endpoint, policies, "apply")
        applied_end = time.perf_counter()
        planned = run_ours(endpoint, policies, "plan")
        rounds.append(
            {
                "apply_seconds": applied.seconds,
                "apply_exit_code": applied.exit_code,
                "statuses": applied.statuses(),
                "plan_exit_code": planned.exit_code,
                "stderr_tail": "" if applied.exit_code == 0 else applied.stderr_tail,
            }
        )
        if planned.exit_code == 0:
            converged_at = applied_end
            break
    return {
        "converged": converged_at is not None,
        "seconds": (converged_at or time.perf_counter()) - started,
        "rounds": rounds,
        "failed_revokes": sum(r["statuses"].get("failed", 0) for r in rounds),
    }


def _converge_c7n(endpoint: str, workdir: Path, check: Any) -> dict[str, Any]:
    rounds: list[dict[str, Any]] = []
    started = time.perf_counter()
    converged_at: float | None = None
    for _ in range(MAX_ROUNDS):
        ran = run_c7n(endpoint, workdir)
        ran_end = time.perf_counter()
        live = check()
        rounds.append(
            {
                "run_seconds": ran.seconds,
                "exit_code": ran.exit_code,
                "extras_left": live.extras_left,
                "stderr_tail": ran.stderr_tail[-600:],
            }
        )
        if live.ok:
            converged_at = ran_end
            break
    return {
        "converged": converged_at is not None,
        "seconds": (converged_at or time.perf_counter()) - started,
        "rounds": rounds,
    }


def measure_throttling(
    server: MotoServer, spec: WorldSpec, runs: int, *, with_c7n: bool
) -> dict[str, Any]:
    """Converge ``runs`` times behind fresh AWS-like buckets; c7n once, for reference."""
    minimum = minimum_seconds(spec)
    per_run: list[dict[str, Any]] = []
    c7n: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="sg-bench-throttle-") as tmp:
        workdir = Path(tmp)
        policies = write_policies(workdir / "policies", spec)
        for _ in range(runs):
            server.reset()
            world = build_world(server.url, spec)
            with EC2Proxy(server.url, AWS_BUCKETS) as proxy:
                result = _converge_ours(proxy.url, policies)
                result["requests"] = proxy.counts()
            result["live"] = check_world(server.url, world).to_dict()
            per_run.append(result)
        if with_c7n:
            server.reset()
            world = build_world(server.url, spec)
            with EC2Proxy(server.url, AWS_BUCKETS) as proxy:
                c7n = _converge_c7n(proxy.url, workdir, lambda: check_world(server.url, world))
                c7n["requests"] = proxy.counts()
            c7n["live"] = check_world(server.url, world).to_dict()
    seconds = [r["seconds"] for r in per_run]
    median = statistics.median(seconds)
    return {
        "world": spec.label(),
        "buckets": {k: {"burst": b, "per_second": r} for k, (b, r) in AWS_BUCKETS.items()},
        "minimum_seconds": minimum,
        "runs": per_run,
        "median_seconds": median,
        "ratio": median / minimum if minimum else None,
        "failed_revokes": [r["failed_revokes"] for r in per_run],
        "all_converged": all(r["converged"] and r["live"]["ok"] for r in per_run),
        "c7n_once": c7n,
    }
