"""Shared fixtures: no test may ever reach real AWS."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog

from reconciler.runtime import configure_once

FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "NO_COLOR": "1",
    # moto never throttles; at AWS's rates (tests/unit/test_throttle.py) a 200-group fix
    # would wait ~30 s on token buckets for nothing. `make bench` measures the real rates.
    "SG_RECONCILER_RATE_LIMITS": (
        "describe=100000/100000,sg_ingress=100000/100000,mutating=100000/100000"
    ),
}


@pytest.fixture(autouse=True)
def _fake_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials and a fixed region for every test; no profile or endpoint leaks in.

    ``apply`` journals to ./.sg-reconciler by default: each test gets its own journal instead.
    """
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "SG_RECONCILER_POLICIES"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SG_RECONCILER_JOURNAL", str(tmp_path / "default-journal.jsonl"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    for key, value in FAKE_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(autouse=True)
def _fresh_logging() -> None:
    """Each test starts from structlog's defaults: a level or stream set by an earlier test
    (the demo logs at WARNING, the CLI to a captured stream) never leaks into the next.
    """
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    configure_once.cache_clear()
