"""Measurement 5: import time of our Lambda handler vs Cloud Custodian's (``c7n.handler``).

Two figures per module, each the median of ``runs`` fresh interpreters after one warm-up
(so both read compiled ``.pyc`` files), in the same interpreter and site-packages:

* ``wall``: ``time.perf_counter()`` around the ``import`` statement alone (the target's figure);
* ``importtime``: ``python -X importtime``, the sum of the cumulative microseconds of the
  top-level imports the statement triggers (modules imported at interpreter start-up, found
  with ``-c pass``, are left out). The heaviest imports are listed too.

The bench venv also holds our dev tools, and both handlers import some of them only because
they are installed (structlog picks up ``rich``, c7n ``aws_xray_sdk``). A third figure,
``deployed``, hides from each handler every package outside its own runtime requirements
(its distribution's ``Requires-Dist`` closure, no extras), as in a Lambda package of it.
"""

from __future__ import annotations

__all__ = ["hidden_outside_requirements", "measure_imports"]

import re
import statistics
import subprocess
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

from benchmarks.servers import isolated_env

REPO = Path(__file__).resolve().parents[1]
_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s+)(\S+)\s*$")
_TIMED = (
    "import sys\nfor _m in {hidden!r}: sys.modules[_m] = None\n"
    "import time as _t\n_s = _t.perf_counter()\nimport {module}\nprint(_t.perf_counter() - _s)"
)


def _python(args: list[str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
        env=isolated_env(),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"python {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return proc


def _parse(stderr: str) -> list[tuple[int, int, str]]:
    """(cumulative µs, depth, module) of every line ``-X importtime`` printed."""
    out = []
    for line in stderr.splitlines():
        match = _LINE.match(line)
        if match:
            depth = (len(match.group(3)) - 1) // 2
            out.append((int(match.group(2)), depth, match.group(4)))
    return out


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(dist: str) -> set[str]:
    """``dist`` and every distribution it requires at run time (extras not taken)."""
    seen: set[str] = set()
    stack = [dist]
    for _ in range(10_000):  # bounded walk of the dependency graph
        if not stack:
            break
        name = _norm(stack.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            continue
        for text in requires:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                stack.append(req.name)
    return seen


def _hidden(module: str, dist: str, startup: set[str]) -> list[str]:
    """Top-level packages the import pulls in that ``dist`` does not require."""
    entries = _parse(_python(["-X", "importtime", "-c", f"import {module}"]).stderr)
    tops = {name.split(".")[0] for _, _, name in entries if name not in startup}
    owners = packages_distributions()
    allowed = _closure(dist)
    return sorted(
        top for top in tops if owners.get(top) and not any(_norm(d) in allowed for d in owners[top])
    )


def _importtime(
    module: str, startup: set[str], hidden: Sequence[str] = ()
) -> tuple[int, list[tuple[str, int]]]:
    code = f"import sys\nfor _m in {list(hidden)!r}: sys.modules[_m] = None\nimport {module}"
    entries = _parse(_python(["-X", "importtime", "-c", code]).stderr)
    mine = [(us, depth, name) for us, depth, name in entries if name not in startup]
    total = sum(us for us, depth, _ in mine if depth == 0)
    heavy = sorted(((name, us) for us, depth, name in mine if 1 <= depth <= 2), key=lambda x: -x[1])
    return total, heavy[:8]


def _wall(module: str, hidden: list[str]) -> float:
    return float(_python(["-c", _TIMED.format(hidden=hidden, module=module)]).stdout.strip())


def _startup() -> set[str]:
    return {name for _, _, name in _parse(_python(["-X", "importtime", "-c", "pass"]).stderr)}


def hidden_outside_requirements(modules: dict[str, tuple[str, str]]) -> dict[str, list[str]]:
    """For each label -> (module, distribution): what to hide to import it as deployed."""
    startup = _startup()
    return {label: _hidden(module, dist, startup) for label, (module, dist) in modules.items()}


def measure_imports(modules: dict[str, tuple[str, str]], runs: int) -> dict[str, Any]:
    """Import each module (label -> (dotted name, distribution)) in fresh interpreters."""
    startup = _startup()
    results: dict[str, Any] = {}
    for label, (module, dist) in modules.items():
        _python(["-c", f"import {module}"])  # warm-up: compile .pyc files once
        hidden = _hidden(module, dist, startup)
        wall = [_wall(module, []) for _ in range(runs)]
        deployed = [_wall(module, hidden) for _ in range(runs)]
        sums: list[int] = []
        heavy: list[tuple[str, int]] = []
        for _ in range(runs):
            total, heavy = _importtime(module, startup)
            sums.append(total)
        results[label] = {
            "module": module,
            "wall_seconds": wall,
            "median_wall_seconds": statistics.median(wall),
            "importtime_us": sums,
            "median_importtime_us": statistics.median(sums),
            "heaviest_imports_us": heavy,
            "hidden_when_deployed": hidden,
            "heaviest_deployed_us": _importtime(module, startup, hidden)[1],
            "deployed_wall_seconds": deployed,
            "median_deployed_wall_seconds": statistics.median(deployed),
        }
    labels = list(modules)
    if len(labels) == 2:
        a, b = (results[label] for label in labels)
        results["ratio_wall"] = a["median_wall_seconds"] / b["median_wall_seconds"]
        results["ratio_importtime"] = a["median_importtime_us"] / b["median_importtime_us"]
        results["ratio_deployed"] = (
            a["median_deployed_wall_seconds"] / b["median_deployed_wall_seconds"]
        )
    return results
