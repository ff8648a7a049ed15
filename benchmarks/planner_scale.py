"""Measurement 4: planner CPU time and peak memory on 30,000 and 300,000 live rules (no AWS).

Each size runs in a fresh interpreter (``python -m benchmarks.planner_scale --groups G``),
which builds ``ObservedGroup``s directly, the way the EC2 reader does (one ``RuleKey`` per
live rule via ``RuleKey.from_ec2``, unique rule ids), then times ``plan()`` only.

Shape of a group: 120 live rules, IPv4 and IPv6. The policy allows 100 of them (tcp ports
8000-8049 from 10.0.0.0/8 and fd00::/8); 20 are extras (tcp 9000-9009 from 198.51.100.0/24
and 2001:db8::/32), under the default 25-per-group revoke limit, so every group has drift
and the plan holds 20 revokes per group.

Modes: ``cpu`` (``time.process_time`` around each of 5 ``plan()`` calls, their median;
peak RSS (VmHWM) before and after),
``memory`` (``tracemalloc`` peak of what ``plan()`` allocates; slower, so timed apart) and
``profile`` (the top functions by own time, for whoever optimises).
"""

from __future__ import annotations

__all__ = ["build_input", "main", "measure_planner"]

import argparse
import cProfile
import gc
import io
import json
import pstats
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ALLOWED_PORTS = range(8000, 8050)
EXTRA_PORTS = range(9000, 9010)
ALLOWED_PEERS = ("10.0.0.0/8", "fd00::/8")
EXTRA_PEERS = ("198.51.100.0/24", "2001:db8::/32")
RULES_PER_GROUP = len(ALLOWED_PORTS) * 2 + len(EXTRA_PORTS) * 2
NOW = datetime(2026, 1, 1, tzinfo=UTC)
CPU_REPEATS = 5  # plan() calls per process in cpu mode; their median is reported


def build_input(groups: int) -> tuple[Any, list[Any]]:
    """The baseline and ``groups`` observed groups of ``RULES_PER_GROUP`` rules each."""
    from reconciler.core.policy import Baseline, GroupPolicy  # noqa: PLC0415
    from reconciler.core.rules import Direction, ObservedGroup, ObservedRule, RuleKey  # noqa: PLC0415

    policy = GroupPolicy.model_validate(
        {
            "name": "web",
            "match": {"tags": {"team": "web"}},
            "ingress": [
                {
                    "protocol": "tcp",
                    "ports": list(ALLOWED_PORTS),
                    "from": list(ALLOWED_PEERS),
                }
            ],
        }
    )
    baseline = Baseline(policies=(policy,), sources={"web": "bench.yaml"})
    wire = [(port, peer) for port in ALLOWED_PORTS for peer in ALLOWED_PEERS]
    wire += [(port, peer) for port in EXTRA_PORTS for peer in EXTRA_PEERS]
    observed = []
    serial = 0
    for g in range(groups):
        rules = []
        for port, peer in wire:
            serial += 1
            key = RuleKey.from_ec2(
                direction=Direction.INGRESS, protocol="tcp", from_port=port, to_port=port, peer=peer
            )
            rules.append(ObservedRule(rule_id=f"sgr-{serial:017x}", key=key))
        observed.append(
            ObservedGroup.build(
                region="us-east-1",
                group_id=f"sg-{g:017x}",
                name=f"web-{g}",
                vpc_id="vpc-0123456789abcdef0",
                owner_id="123456789012",
                tags={"team": "web", "Name": f"web-{g}"},
                rules=tuple(rules),
            )
        )
    return baseline, observed


def _maxrss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and
    exec, so a child would report its parent's size."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _run(mode: str, groups: int) -> dict[str, Any]:
    from reconciler.core.planner import plan  # noqa: PLC0415

    baseline, observed = build_input(groups)
    gc.collect()
    out: dict[str, Any] = {
        "mode": mode,
        "groups": groups,
        "rules": groups * RULES_PER_GROUP,
        "rss_before_plan_mb": _maxrss_mb(),
    }
    if mode == "cpu":
        cpu: list[float] = []
        wall: list[float] = []
        kept: list[Any] = []
        for _ in range(CPU_REPEATS):
            kept.clear()  # the previous plan is garbage before the next is timed
            gc.collect()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            kept.append(plan(baseline, observed, now=NOW))
            cpu.append(time.process_time() - cpu0)
            wall.append(time.perf_counter() - wall0)
        result = kept[0]
        out["cpu_seconds_each"] = cpu
        out["cpu_seconds"] = statistics.median(cpu)
        out["wall_seconds"] = statistics.median(wall)
        out["peak_rss_mb"] = _maxrss_mb()
    elif mode == "memory":
        tracemalloc.start()
        result = plan(baseline, observed, now=NOW)
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out["tracemalloc_peak_mb"] = peak / 2**20
        out["tracemalloc_kept_mb"] = current / 2**20
    else:
        profiler = cProfile.Profile()
        result = profiler.runcall(plan, baseline, observed, now=NOW)
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(8)
        out["profile"] = [
            line.strip()
            for line in text.getvalue().splitlines()
            if line.strip() and line.strip()[0].isdigit()
        ][:8]
    summary = result.summary().to_dict()
    out["to_revoke"] = summary.get("to_revoke")
    out["blocked"] = summary.get("blocked")
    out["managed_groups"] = result.managed_groups
    return out


SIZES = {"30k": 250, "300k": 2500}


def _subprocess(mode: str, groups: int) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.planner_scale", "--groups", str(groups), "--mode", mode],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=Path(__file__).resolve().parents[1],
    )
    if proc.returncode != 0:
        raise RuntimeError(f"planner_scale {mode} {groups} failed: {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def measure_planner(runs: int) -> dict[str, Any]:
    """Each size ``runs`` times per mode, each in a fresh interpreter; one profile at 300k."""
    out: dict[str, Any] = {
        "shape": f"{RULES_PER_GROUP} rules per group (IPv4 + IPv6), 20 of them drift",
        "sizes": {},
    }
    for label, groups in SIZES.items():
        cpu = [_subprocess("cpu", groups) for _ in range(runs)]
        memory = [_subprocess("memory", groups) for _ in range(runs)]
        out["sizes"][label] = {
            "groups": groups,
            "rules": groups * RULES_PER_GROUP,
            "to_revoke": cpu[0]["to_revoke"],
            "blocked": cpu[0]["blocked"],
            "cpu_seconds": [r["cpu_seconds"] for r in cpu],
            "peak_rss_mb": [r["peak_rss_mb"] for r in cpu],
            "rss_before_plan_mb": [r["rss_before_plan_mb"] for r in cpu],
            "tracemalloc_peak_mb": [r["tracemalloc_peak_mb"] for r in memory],
        }
    small, large = out["sizes"]["30k"], out["sizes"]["300k"]
    out["growth"] = statistics.median(large["cpu_seconds"]) / statistics.median(
        small["cpu_seconds"]
    )
    out["profile_300k"] = _subprocess("profile", SIZES["300k"])["profile"]
    return out


def main(argv: list[str] | None = None) -> int:
    """Run one measurement and print it as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--groups", type=int, required=True)
    parser.add_argument("--mode", choices=("cpu", "memory", "profile"), default="cpu")
    args = parser.parse_args(argv)
    print(json.dumps(_run(args.mode, args.groups)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
