"""Measurement 6 (informational): a Lambda cold start to the first answer, ours vs c7n's.

The import-time target (measurement 5) times only ``import`` of each handler. What a cold
start costs an event is the import *plus* the first invocation, which loads whatever the
handler left for later (boto3, the policies, c7n's resource registry). Here each handler runs
in a fresh interpreter (the bench venv, ``.pyc`` compiled, and, as in measurement 5's
"deployed" figure, every package outside the handler's runtime requirements made
unimportable) and handles one CloudTrail event
against moto_server: an AuthorizeSecurityGroupIngress on a managed group that carries
``extras`` rules outside the baseline. Both must leave the group at the baseline. The figure
is the wall time from the start of the import to the handler's return; the import alone is
reported beside it.

Ours runs with the environment ``deploy/template.yaml`` gives the function (the policies,
``SG_RECONCILER_ROLE_ARN``). c7n runs as its Lambda does: ``c7n.handler.dispatch_event``
with a ``config.json`` holding the same policy as measurement 2 in ``mode: cloudtrail`` (ids from
``requestParameters.groupId``), the account id given in ``execution-options`` as
``custodian`` writes it when it provisions the function.
"""

from __future__ import annotations

__all__ = ["measure_cold_start", "measure_package_bytecode"]

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import yaml

from benchmarks.import_time import hidden_outside_requirements
from benchmarks.servers import REGION, MotoServer, isolated_env, require_loopback
from benchmarks.tools import C7N_POLICY
from benchmarks.world import WorldSpec, build_world, check_world, write_policies

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "tests" / "events" / "AuthorizeSecurityGroupIngress__panther-analysis__1.json"
ACCOUNT = "123456789012"  # moto's default account
WORLD = WorldSpec(managed=1, extras=5, bystanders=2)

_PROBE = """
import json, sys, time
for _m in {hidden!r}: sys.modules[_m] = None
started = time.perf_counter()
{import_line}
imported = time.perf_counter()
event = json.loads(sys.stdin.read())
class Context:
    aws_request_id = "bench-cold-start"
    function_name = "bench"
    def get_remaining_time_in_millis(self):
        return 300000
result = {call}
done = time.perf_counter()
print(json.dumps({{"import": imported - started, "total": done - started}}))
"""
_OURS = {
    "import_line": "from reconciler.lambda_handler import handler",
    "call": "handler(event, Context())",
}
_C7N = {"import_line": "import c7n.handler", "call": "c7n.handler.dispatch_event(event, Context())"}
_MODULES = {
    "sg-reconciler": ("reconciler.lambda_handler", "sg-reconciler"),
    "c7n": ("c7n.handler", "c7n"),
}
# What the template sets; any role of moto's account would do, the event's caller is another.
_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/sg-reconciler-ReconcilerRole-BENCH"


def _event(group_id: str) -> dict[str, Any]:
    """The real sample, pointed at ``group_id`` in moto's account and the bench region."""
    record = json.loads(SAMPLE.read_text(encoding="utf-8"))
    record["requestParameters"]["groupId"] = group_id
    record["awsRegion"] = REGION
    record["recipientAccountId"] = ACCOUNT
    return {
        "version": "0",
        "id": "bench-cold-start",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ec2",
        "account": ACCOUNT,
        "time": record.get("eventTime"),
        "region": REGION,
        "resources": [],
        "detail": record,
    }


def _c7n_config(directory: Path) -> None:
    policy = yaml.safe_load(C7N_POLICY)["policies"][0]
    policy["mode"] = {
        "type": "cloudtrail",
        "events": [
            {
                "source": "ec2.amazonaws.com",
                "event": "AuthorizeSecurityGroupIngress",
                "ids": "requestParameters.groupId",
            }
        ],
    }
    config = {
        "execution-options": {
            "account_id": ACCOUNT,
            "region": REGION,
            "output_dir": str(directory / "c7n-out"),
        },
        "policies": [policy],
    }
    (directory / "config.json").write_text(json.dumps(config), encoding="utf-8")


def _run(probe: dict[str, str], event: dict[str, Any], env: dict[str, str], cwd: Path) -> Any:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(**probe)],
        input=json.dumps(event),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
        env=env,
    )
    if done.returncode != 0:
        raise RuntimeError(f"cold-start probe failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_cold_start(server: MotoServer, runs: int, *, with_c7n: bool) -> dict[str, Any]:
    """Import + first event, in fresh interpreters, for our handler (and c7n's)."""
    endpoint = require_loopback(server.url)
    work = Path(tempfile.mkdtemp(prefix="cold-start-"))
    policies = write_policies(work / "policies", WORLD)
    _c7n_config(work)
    probes = {"sg-reconciler": _OURS, **({"c7n": _C7N} if with_c7n else {})}
    hidden = hidden_outside_requirements({name: _MODULES[name] for name in probes})
    tools = {name: {**probe, "hidden": hidden[name]} for name, probe in probes.items()}
    env = {
        "sg-reconciler": isolated_env(
            {
                "AWS_ENDPOINT_URL": endpoint,
                "SG_RECONCILER_POLICIES": str(policies),
                "SG_RECONCILER_ROLE_ARN": _ROLE_ARN,
            }
        ),
        "c7n": isolated_env({"AWS_ENDPOINT_URL": endpoint}),
    }
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in tools}
    converged: dict[str, list[bool]] = {name: [] for name in tools}
    for name, probe in tools.items():  # warm-up: .pyc files compiled once
        server.reset()
        world = build_world(endpoint, WORLD)
        _run(probe, _event(world.managed_ids[0]), env[name], work)
    for i in range(runs):
        order = list(tools) if i % 2 == 0 else list(reversed(tools))
        for name in order:
            server.reset()
            world = build_world(endpoint, WORLD)
            samples[name].append(_run(tools[name], _event(world.managed_ids[0]), env[name], work))
            converged[name].append(check_world(endpoint, world).ok)
    out: dict[str, Any] = {"world": WORLD.label(), "runs": runs}
    for name in tools:
        totals = [s["total"] for s in samples[name]]
        imports = [s["import"] for s in samples[name]]
        out[name] = {
            "total_seconds": totals,
            "median_total_seconds": statistics.median(totals),
            "import_seconds": imports,
            "median_import_seconds": statistics.median(imports),
            "converged": converged[name],
            "hidden": hidden[name],
        }
    if with_c7n:
        out["ratio_total"] = (
            out["sg-reconciler"]["median_total_seconds"] / out["c7n"]["median_total_seconds"]
        )
    return out


_PACKAGE_PROBE = """
import sys, time
started = time.perf_counter()
import reconciler.lambda_handler
from reconciler.adapters.policy_files import load_policies
load_policies(sys.argv[1] + "/policies")
print(time.perf_counter() - started)
"""


def measure_package_bytecode(runs: int) -> dict[str, Any]:
    """The deployed zip on CPython 3.12: import the handler and load the policies, with the
    bytecode ``sg-reconciler package`` ships and with source only (as before it shipped any).

    Lambda's ``/var/task`` is read-only, so without ``.pyc`` files in the zip every cold start
    compiles what it imports; ``-B`` keeps this run from writing any either.
    """
    from reconciler.deploy.package import build_package, lambda_python  # noqa: PLC0415

    interpreter = lambda_python()
    if interpreter is None:
        return {"skipped": "no CPython 3.12 here to stand in for Lambda's runtime"}
    work = Path(tempfile.mkdtemp(prefix="package-bytecode-"))
    policies = write_policies(work / "policies", WORLD)
    # This machine's architecture, so that pydantic-core's native module loads here.
    machine = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]
    package = build_package(policies, work / "package.zip", architecture=machine)
    trees = {"with bytecode": work / "task", "source only": work / "task-source-only"}
    for tree in trees.values():
        with zipfile.ZipFile(package.path) as archive:
            archive.extractall(tree)
    for cache in sorted(trees["source only"].rglob("__pycache__")):
        shutil.rmtree(cache)
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONNOUSERSITE": "1", "NO_COLOR": "1"}
    seconds: dict[str, list[float]] = {name: [] for name in trees}
    for i in range(runs):
        for name in list(trees) if i % 2 == 0 else list(reversed(trees)):
            tree = trees[name]
            done = subprocess.run(
                [interpreter, "-B", "-c", _PACKAGE_PROBE, str(tree)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                cwd=tree,
                env={**env, "PYTHONPATH": str(tree)},
            )
            if done.returncode != 0:
                raise RuntimeError(f"package probe failed: {done.stderr[-2000:]}")
            seconds[name].append(float(done.stdout.strip().splitlines()[-1]))
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    return {
        "interpreter": interpreter,
        "compiled": package.compiled,
        "runs_seconds": seconds,
        "median_seconds": medians,
        "ratio": medians["with bytecode"] / medians["source only"],
    }
