"""Shared fixtures: no test may ever reach real AWS."""

from __future__ import annotations

from pathlib import Path

import botocore.session
import pytest
import structlog
from botocore.loaders import create_loader

from reconciler.runtime import configure_once

FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "NO_COLOR": "1",
    # moto loads ~1,300 default AMIs into every EC2 backend it creates (~0.15 s per region and
    # test); no test launches an instance.
    "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
    # moto never throttles; at AWS's rates (tests/unit/test_throttle.py) a 200-group fix
    # would wait ~30 s on token buckets for nothing. `make bench` measures the real rates.
    "SG_RECONCILER_RATE_LIMITS": (
        "describe=100000/100000,sg_ingress=100000/100000,mutating=100000/100000"
    ),
}


_LOADERS: dict[object, object] = {}


def _shared_loader(search_paths: object = None) -> object:
    """One botocore data loader for every session of the test run.

    Each ``boto3.Session`` otherwise parses the service models again (EC2's is ~1 MB of JSON,
    ~0.15 s per client); the models are read-only, so sharing them changes nothing a test sees.
    """
    key = tuple(search_paths) if isinstance(search_paths, list) else search_paths
    if key not in _LOADERS:
        _LOADERS[key] = create_loader(search_paths)  # type: ignore[arg-type]
    return _LOADERS[key]


botocore.session.create_loader = _shared_loader  # type: ignore[assignment]


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
