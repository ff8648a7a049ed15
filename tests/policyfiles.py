"""Writes policy directories for tests."""

from __future__ import annotations

from pathlib import Path


def write_policies(directory: Path, text: str, name: str = "policies.yaml") -> Path:
    """Write one policy file into ``directory`` (created) and return the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(text, encoding="utf-8")
    return directory
