"""Run every benchmark; write benchmarks/out/results.json and benchmarks/RESULTS.md.

Usage (from the repository root, in the bench venv that also holds Cloud Custodian)::

    make bench
    .venv-bench/bin/python -m benchmarks.run [--runs 3] [--only calls c7n ... cold_start]

Measurements (each module's docstring says exactly how):

1. ``calls``    EC2 API calls of ``sg-reconciler apply`` by API vs the lower bound
2. ``c7n``      ``apply`` wall time vs ``custodian run`` on 200 groups x 5 extras
3. ``throttle`` time to converge and failed revokes behind AWS-like token buckets
4. ``planner``  planner CPU time and peak memory at 30,000 and 300,000 rules
5. ``imports``  Lambda handler import time vs ``c7n.handler``
6. ``cold_start`` handler import + first event handled, vs c7n's Lambda handler; and the
   deployed zip's import on CPython 3.12 with and without its bytecode (informational)

Everything talks to a moto_server this program starts on 127.0.0.1 (and stops, even on
failure); proxies in the environment point at a dead loopback port so nothing can leave the
machine. Without c7n installed, the c7n comparisons are reported as SKIPPED. Exit code 0
when every measurement ran (whatever the targets say), 1 when one raised.
"""

from __future__ import annotations

__all__ = ["main"]

import argparse
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.calls import measure_calls
from benchmarks.cold_start import measure_cold_start, measure_package_bytecode
from benchmarks.import_time import measure_imports
from benchmarks.planner_scale import measure_planner
from benchmarks.report import machine_info, render_markdown, render_summary, verdicts
from benchmarks.servers import MotoServer, isolated_env
from benchmarks.throttling import measure_throttling
from benchmarks.tools import c7n_available, c7n_version
from benchmarks.versus_c7n import measure_versus_c7n
from benchmarks.world import WorldSpec

HERE = Path(__file__).resolve().parent
MEASUREMENTS = ("calls", "c7n", "throttle", "planner", "imports", "cold_start")

# Sizes (see RESULTS.md for why): the README's 200-group case, a multi-page one with egress
# drift too (run once: its counts are deterministic and moto is slow at that size), the
# comparison world, and a throttled world whose minimum is 20 s.
CALLS_WORLDS = (
    (WorldSpec(managed=200, extras=5, bystanders=50), None),
    (WorldSpec(managed=1000, extras=5, bystanders=250, egress_extras=1), 1),
    # issue 12's guarded world: 300 groups, 100 managed, 200 no policy manages
    (WorldSpec(managed=100, extras=2, bystanders=0, strays=200), None),
)
C7N_WORLD = WorldSpec(managed=200, extras=5, bystanders=50)
THROTTLE_WORLD = WorldSpec(managed=150, extras=1, bystanders=30)


def _guarded(name: str, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one measurement; an exception becomes an ERROR row, the others still run."""
    started = time.monotonic()
    print(f"[bench] {name} ...", flush=True)
    try:
        result = measure()
    except Exception:  # noqa: BLE001 - report any failure of one measurement and go on
        result = {"error": traceback.format_exc()}
        print(result["error"], file=sys.stderr, flush=True)
    result["seconds"] = time.monotonic() - started
    print(f"[bench] {name} done in {result['seconds']:.0f} s", flush=True)
    return result


def _calls(server: MotoServer, runs: int) -> dict[str, Any]:
    cases = []
    for spec, fixed_runs in CALLS_WORLDS:
        try:
            cases.append(measure_calls(server, spec, fixed_runs or runs))
        except Exception:  # noqa: BLE001 - one case failing must not hide the other
            cases.append({"world": spec.label(), "error": traceback.format_exc(limit=3)})
    return {"cases": cases}


def _needs_c7n(measure: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    def run() -> dict[str, Any]:
        if not c7n_available():
            return {"skipped": "c7n is not installed here (use the bench venv: make bench)"}
        return measure()

    return run


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _render_only(json_path: Path, markdown: Path) -> int:
    saved: dict[str, Any] = json.loads(json_path.read_text(encoding="utf-8"))
    rows = verdicts(saved)
    markdown.write_text(render_markdown(saved, rows), encoding="utf-8")
    print(render_summary(rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the selected measurements, write the results, print the targets table."""
    parser = argparse.ArgumentParser(description="sg-reconciler benchmarks")
    parser.add_argument(
        "--runs",
        type=int,
        default=3,
        help="runs per timed figure (imports take at least 7)",
    )
    parser.add_argument("--only", nargs="+", choices=MEASUREMENTS, default=list(MEASUREMENTS))
    parser.add_argument("--json", type=Path, default=HERE / "out" / "results.json")
    parser.add_argument("--markdown", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="measure nothing: rewrite the markdown and the summary from the JSON file",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.render_only:
        return _render_only(args.json, args.markdown)

    # SIGTERM (make, CI) unwinds like Ctrl-C, so moto_server and the proxies are stopped.
    signal.signal(signal.SIGTERM, _terminate)
    os.environ.update(isolated_env())  # in-process boto3 calls get the same guard rails
    started = time.monotonic()
    results: dict[str, Any] = {
        "machine": machine_info(),
        "config": {"runs": args.runs, "only": args.only, "c7n": c7n_version()},
        "measurements": {},
    }
    measured = results["measurements"]
    wanted = set(args.only)
    if wanted & {"calls", "c7n", "throttle", "cold_start"}:
        with MotoServer() as server:
            if "calls" in wanted:
                measured["calls"] = _guarded("calls", lambda: _calls(server, args.runs))
            if "c7n" in wanted:
                measured["c7n"] = _guarded(
                    "c7n",
                    _needs_c7n(lambda: measure_versus_c7n(server, C7N_WORLD, args.runs)),
                )
            if "throttle" in wanted:
                measured["throttle"] = _guarded(
                    "throttle",
                    lambda: measure_throttling(
                        server, THROTTLE_WORLD, args.runs, with_c7n=c7n_available()
                    ),
                )
            if "cold_start" in wanted:
                measured["cold_start"] = _guarded(
                    "cold_start",
                    lambda: measure_cold_start(server, max(5, args.runs), with_c7n=c7n_available()),
                )
    if "cold_start" in wanted:
        measured["package_bytecode"] = _guarded(
            "package_bytecode", lambda: measure_package_bytecode(max(5, args.runs))
        )
    if "planner" in wanted:
        measured["planner"] = _guarded("planner", lambda: measure_planner(args.runs))
    if "imports" in wanted:
        modules = {
            "sg-reconciler": ("reconciler.lambda_handler", "sg-reconciler"),
            "c7n": ("c7n.handler", "c7n"),
        }
        measured["imports"] = _guarded(
            "imports", _needs_c7n(lambda: measure_imports(modules, max(7, args.runs)))
        )
    results["machine"]["load_average_end"] = os.getloadavg()
    results["total_seconds"] = time.monotonic() - started

    rows = verdicts(results)
    results["verdicts"] = [asdict(r) for r in rows]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    args.markdown.write_text(render_markdown(results, rows), encoding="utf-8")
    print()
    print(render_summary(rows))
    print(
        f"\n[bench] total {results['total_seconds']:.0f} s; wrote {args.json} and {args.markdown}"
    )
    return 1 if any("error" in m for m in measured.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
