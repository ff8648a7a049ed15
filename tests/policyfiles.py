"""Writes policy directories for tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from reconciler.adapters.policy_files import load_policies
from reconciler.core.errors import PolicyError


def write_policies(directory: Path, text: str, name: str = "policies.yaml") -> Path:
    """Write one policy file into ``directory`` (created) and return the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(text, encoding="utf-8")
    return directory


def write(directory: Path, name: str, text: str) -> None:
    """Write ``text`` (dedented) as ``directory/name``."""
    (directory / name).write_text(textwrap.dedent(text), encoding="utf-8")


def problems_of(directory: Path) -> list[str]:
    """The printed problems load_policies reports for ``directory``."""
    with pytest.raises(PolicyError) as info:
        load_policies(directory)
    return [str(problem) for problem in info.value.problems]
