"""Measurement 2: wall time of ``sg-reconciler apply`` vs Cloud Custodian on the same world.

Each run rebuilds the identical world in a reset moto account before each tool, runs the
tool as a user would (a fresh process: interpreter start, imports, API calls, output), then
reads the live rules back to check the tool left every managed group at the baseline and
every bystander untouched. The order rotates between runs. A final untimed pass of each
tool goes through the counting proxy to show the EC2 calls each one made and where its
time went.

Three variants: ``sg-reconciler`` as shipped (the target's figure), ``sg-reconciler`` with
its client-side EC2 rate limiter lifted (informational: moto never throttles, so the limiter
only waits there), and ``c7n``.
"""

from __future__ import annotations

__all__ = ["OURS", "OURS_UNLIMITED", "VARIANTS", "measure_versus_c7n"]

import statistics
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.proxy import EC2Proxy
from benchmarks.servers import MotoServer
from benchmarks.tools import ToolRun, run_c7n, run_ours, unlimited_rates_env
from benchmarks.world import WorldSpec, build_world, check_world, write_policies

OURS = "sg-reconciler"
OURS_UNLIMITED = "sg-reconciler, client rate limiter lifted"
C7N = "c7n"
VARIANTS = (OURS, OURS_UNLIMITED, C7N)


def _run(variant: str, endpoint: str, workdir: Path, policies: Path) -> ToolRun:
    if variant == OURS:
        return run_ours(endpoint, policies)
    if variant == OURS_UNLIMITED:
        return run_ours(endpoint, policies, env=unlimited_rates_env())
    return run_c7n(endpoint, workdir)


def _phases(run: ToolRun, timeline: dict[str, tuple[float, float]]) -> dict[str, float]:
    """Where one run's wall time went, from the proxy's first/last request per action."""
    if not timeline:
        return {}
    end = run.started + run.seconds
    first_call = min(start for start, _ in timeline.values())
    last_call = max(done for _, done in timeline.values())
    revokes = [span for action, span in timeline.items() if action.startswith("Revoke")]
    first_revoke = min((start for start, _ in revokes), default=last_call)
    last_revoke = max((done for _, done in revokes), default=last_call)
    return {
        "start_to_first_call": first_call - run.started,
        "reading": first_revoke - first_call,
        "revoking": last_revoke - first_revoke,
        "after_last_call": end - last_call,
    }


def _record(outcome: ToolRun, live: dict[str, Any]) -> dict[str, Any]:
    return {
        "seconds": outcome.seconds,
        "cpu_seconds": outcome.cpu_seconds,
        "exit_code": outcome.exit_code,
        "statuses": outcome.statuses(),
        "live": live,
        "stderr_tail": "" if outcome.exit_code == 0 else outcome.stderr_tail,
    }


def _counted(server: MotoServer, spec: WorldSpec, workdir: Path, policies: Path) -> dict[str, Any]:
    """One untimed run of each variant through the counting proxy."""
    calls: dict[str, Any] = {}
    for variant in VARIANTS:
        server.reset()
        world = build_world(server.url, spec)
        with EC2Proxy(server.url, buckets=None) as proxy:
            outcome = _run(variant, proxy.url, workdir, policies)
            counts = proxy.counts()["allowed"]
            server_seconds = proxy.server_seconds()
            timeline = proxy.timeline()
        calls[variant] = {
            "calls_by_api": counts,
            "server_seconds": server_seconds,
            "phases": _phases(outcome, timeline),
            "counted_run_seconds": outcome.seconds,
            "exit_code": outcome.exit_code,
            "live": check_world(server.url, world).to_dict(),
        }
    return calls


def measure_versus_c7n(server: MotoServer, spec: WorldSpec, runs: int) -> dict[str, Any]:
    """Time every variant ``runs`` times on freshly built identical worlds."""
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="sg-bench-c7n-") as tmp:
        workdir = Path(tmp)
        policies = write_policies(workdir / "policies", spec)
        for run in range(runs):
            shift = run % len(VARIANTS)
            for variant in VARIANTS[shift:] + VARIANTS[:shift]:
                server.reset()
                world = build_world(server.url, spec)
                outcome = _run(variant, server.url, workdir, policies)
                results[variant].append(_record(outcome, check_world(server.url, world).to_dict()))
        calls = _counted(server, spec, workdir, policies)
    medians = {v: statistics.median(r["seconds"] for r in results[v]) for v in VARIANTS}
    return {
        "world": spec.label(),
        "runs": results,
        "median_seconds": medians,
        "median_cpu_seconds": {
            v: statistics.median(r["cpu_seconds"] for r in results[v]) for v in VARIANTS
        },
        "ratio": medians[OURS] / medians[C7N],
        "ratio_unlimited": medians[OURS_UNLIMITED] / medians[C7N],
        "per_run_ratio": [
            a["seconds"] / b["seconds"] for a, b in zip(results[OURS], results[C7N], strict=True)
        ],
        "limiter_lift_env": unlimited_rates_env(),
        "calls": calls,
        "converged": {
            v: all(r["exit_code"] == 0 and r["live"]["ok"] for r in results[v]) for v in VARIANTS
        },
    }
