"""Fixtures shared by the unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def policies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ``policies/`` directory, named relative to the working directory."""
    monkeypatch.chdir(tmp_path)
    directory = Path("policies")
    directory.mkdir()
    return directory
