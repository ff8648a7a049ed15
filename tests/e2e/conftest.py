"""A real moto_server on 127.0.0.1, started by the tests, reset between tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def _serving(command: list[str], port: int) -> Iterator[str]:
    """Run a moto server ``command`` listening on 127.0.0.1:``port``; yield its URL when up."""
    url = f"http://127.0.0.1:{port}"
    # started before any test's environment is set: no AMIs (see FAKE_ENV in tests/conftest.py)
    env = {**os.environ, "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO, env=env
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):  # noqa: S310
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{command[0]} did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _reset(url: str) -> str:
    request = urllib.request.Request(f"{url}/moto-api/reset", method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=5):  # noqa: S310
        pass
    return url


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Start moto_server on a free loopback port; yield its URL; stop it afterwards."""
    port = _free_port()
    with _serving([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], port) as url:
        yield url


@pytest.fixture(scope="session")
def aws_like_moto_server() -> Iterator[str]:
    """moto_server whose CloudFormation executes change sets as AWS does (tests/cfn_moto.py)."""
    port = _free_port()
    command = [sys.executable, "-m", "tests.e2e.aws_like_moto_server", "-H", "127.0.0.1"]
    with _serving([*command, "-p", str(port)], port) as url:
        yield url


@pytest.fixture
def endpoint(moto_server: str) -> str:
    """The moto_server URL, with its state reset for this test."""
    return _reset(moto_server)


@pytest.fixture
def aws_like_endpoint(aws_like_moto_server: str) -> str:
    """The AWS-like moto_server URL, with its state reset for this test."""
    return _reset(aws_like_moto_server)


def cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed sg-reconciler console script (in ``cwd``, default the current one)."""
    return subprocess.run(
        [str(BIN / "sg-reconciler"), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
        timeout=120,
        cwd=cwd,
    )
