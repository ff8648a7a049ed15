"""Local servers for the benchmarks: moto_server on 127.0.0.1, and the loopback-only guard."""

from __future__ import annotations

__all__ = [
    "BIN",
    "LOOPBACK",
    "REGION",
    "MotoServer",
    "free_port",
    "isolated_env",
    "require_loopback",
]

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
REGION = "us-east-1"
# A port nothing listens on: any request that would leave the machine fails at once.
_DEAD_PROXY = f"http://{LOOPBACK}:9"


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def require_loopback(url: str) -> str:
    """Return ``url`` if it points at 127.0.0.1; refuse anything else."""
    host = urllib.parse.urlsplit(url).hostname
    if host != LOOPBACK:
        raise ValueError(f"refusing non-loopback endpoint {url!r}")
    return url


def isolated_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for every tool under test: fake credentials, no real AWS reachable.

    Proxies point at a dead loopback port (only 127.0.0.1 bypasses them), the instance
    metadata service is off, and no shared config or credentials file is read.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "SG_RECONCILER_", "PYTHONDONTWRITEBYTECODE"))
        and k.lower() not in _PROXY_VARS
    }
    empty = str(Path(tempfile.gettempdir()) / "sg-reconciler-bench-no-aws-config")
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": empty,
            "AWS_SHARED_CREDENTIALS_FILE": empty,
            "HTTP_PROXY": _DEAD_PROXY,
            "HTTPS_PROXY": _DEAD_PROXY,
            "http_proxy": _DEAD_PROXY,
            "https_proxy": _DEAD_PROXY,
            "NO_PROXY": f"{LOOPBACK},localhost",
            "no_proxy": f"{LOOPBACK},localhost",
            "NO_COLOR": "1",
        }
    )
    env.update(extra or {})
    return env


_PROXY_VARS = frozenset({"http_proxy", "https_proxy", "no_proxy", "all_proxy"})


class MotoServer:
    """``moto_server`` on a free loopback port; stopped on exit, even after an error."""

    def __init__(self, start_timeout: float = 30.0) -> None:
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__

    def __enter__(self) -> MotoServer:
        command = [str(BIN / "moto_server"), "-H", LOOPBACK, "-p", str(self.port)]
        self._proc = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=isolated_env(),
        )
        deadline = time.monotonic() + self._start_timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1):  # noqa: S310
                    return self
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self._stop()
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self._log.close()

    def reset(self) -> None:
        """Forget every resource (a fresh account)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=30):  # noqa: S310
            pass
