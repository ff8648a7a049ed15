"""The tools under test as a user runs them: ``sg-reconciler`` and ``custodian`` subprocesses."""

from __future__ import annotations

__all__ = [
    "C7N_POLICY",
    "ToolRun",
    "c7n_available",
    "c7n_version",
    "run_c7n",
    "run_ours",
    "unlimited_rates_env",
]

import importlib.util
import json
import resource
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from benchmarks.servers import BIN, REGION, isolated_env, require_loopback

TOOL_TIMEOUT = 600.0

# The c7n equivalent of our baseline "team=web: ingress is exactly tcp 443 from 0.0.0.0/0
# and ::/0". c7n's ingress filter looks at each (permission, peer) pair on its own and, with
# match-operator or, matches a pair that is not tcp, or not exactly port 443, or whose IPv4 or
# IPv6 source is not the allowed one: every CIDR rule outside the baseline. Rules whose peer
# is a security group or a prefix list would not match (no Cidr to compare); the generated
# world has none, so on it the two policies select the same rules.
C7N_POLICY = """\
policies:
  - name: web-baseline
    resource: aws.security-group
    filters:
      - "tag:team": web
      - type: ingress
        match-operator: or
        IpProtocol: {type: value, value: tcp, op: ne}
        OnlyPorts: [443]
        Cidr: {type: value, value: 0.0.0.0/0, op: ne}
        CidrV6: {type: value, value: "::/0", op: ne}
    actions:
      - type: remove-permissions
        ingress: matched
"""


@dataclass(frozen=True, slots=True)
class ToolRun:
    """One run of a tool: wall seconds, the child's CPU seconds, exit code, parsed output."""

    seconds: float
    cpu_seconds: float
    exit_code: int
    doc: dict[str, Any]
    stderr_tail: str
    started: float = 0.0  # time.perf_counter() when the process was started

    def statuses(self) -> dict[str, int]:
        """``summary.statuses`` of our JSON output (empty for c7n)."""
        summary = self.doc.get("summary", {})
        return dict(summary.get("statuses", {})) if isinstance(summary, dict) else {}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class _Finished(NamedTuple):
    started: float
    seconds: float
    cpu_seconds: float
    exit_code: int
    stdout: str
    stderr: str


def _timed(command: list[str], env: dict[str, str], cwd: Path) -> _Finished:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        cpu0 = _children_cpu()
        started = time.perf_counter()
        proc = subprocess.run(
            command, stdout=out, stderr=err, env=env, cwd=cwd, timeout=TOOL_TIMEOUT, check=False
        )
        seconds = time.perf_counter() - started
        cpu = _children_cpu() - cpu0
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    return _Finished(started, seconds, cpu, proc.returncode, stdout, stderr)


def unlimited_rates_env() -> dict[str, str]:
    """Environment that lifts our client-side EC2 rate limiter (every bucket effectively
    endless), or {} when this version of sg-reconciler has none."""
    try:
        from reconciler.adapters.aws import RATE_LIMITS_ENV  # noqa: PLC0415
        from reconciler.adapters.throttle import DEFAULT_RATES  # noqa: PLC0415
    except ImportError:
        return {}
    return {RATE_LIMITS_ENV: ",".join(f"{name}=1000000/1000000" for name in DEFAULT_RATES)}


def run_ours(
    endpoint: str, policies: Path, command: str = "apply", env: dict[str, str] | None = None
) -> ToolRun:
    """``sg-reconciler {apply|plan} --output json`` against ``endpoint``."""
    argv = [
        str(BIN / "sg-reconciler"),
        command,
        "--policies",
        str(policies),
        "--region",
        REGION,
        "--endpoint-url",
        require_loopback(endpoint),
        "--output",
        "json",
    ]
    done = _timed(argv, isolated_env(env), policies.parent)
    try:
        doc = json.loads(done.stdout) if done.stdout.strip() else {}
    except ValueError:
        doc = {}
    return ToolRun(
        done.seconds, done.cpu_seconds, done.exit_code, doc, done.stderr[-2000:], done.started
    )


def c7n_available() -> bool:
    """True when Cloud Custodian is installed in this environment (the bench venv)."""
    return importlib.util.find_spec("c7n") is not None and (BIN / "custodian").exists()


def c7n_version() -> str | None:
    """The installed c7n version, if any."""
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("c7n")
    except PackageNotFoundError:
        return None


def run_c7n(endpoint: str, workdir: Path) -> ToolRun:
    """``custodian run`` of ``C7N_POLICY`` with its resource cache off, against ``endpoint``.

    c7n builds plain boto3 clients, so boto3's ``AWS_ENDPOINT_URL`` sends every call (EC2 and
    the STS account lookup) to the local endpoint.
    """
    policy = workdir / "c7n-policy.yml"
    policy.write_text(C7N_POLICY, encoding="utf-8")
    output = tempfile.mkdtemp(prefix="c7n-out-", dir=workdir)
    argv = [
        str(BIN / "custodian"),
        "run",
        "--output-dir",
        output,
        "--region",
        REGION,
        "--cache-period",
        "0",
        str(policy),
    ]
    env = isolated_env({"AWS_ENDPOINT_URL": require_loopback(endpoint)})
    done = _timed(argv, env, workdir)
    return ToolRun(
        done.seconds, done.cpu_seconds, done.exit_code, {}, done.stderr[-2000:], done.started
    )
