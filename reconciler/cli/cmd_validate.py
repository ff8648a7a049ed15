"""``sg-reconciler validate``: check the policy files; 0 valid, 1 invalid (errors on stderr)."""

from __future__ import annotations

__all__ = ["run"]

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from reconciler.cli.console import EXIT_ERROR, EXIT_OK
from reconciler.cli.options import load_baseline
from reconciler.core.baseline_warnings import baseline_warnings

if TYPE_CHECKING:
    import argparse

    from reconciler.cli.console import Console


def run(args: argparse.Namespace, console: Console) -> int:
    """Load every file (all problems reported), warn about expiring or inert exceptions."""
    baseline = load_baseline(args.policies, console)
    if baseline is None:
        return EXIT_ERROR
    for warning in baseline_warnings(baseline, datetime.now(UTC)):
        console.note(warning)
    files = len(set(baseline.sources.values()))
    console.print(f"OK: {len(baseline.policies)} policies in {files} files")
    return EXIT_OK
