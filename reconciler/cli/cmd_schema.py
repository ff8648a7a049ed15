"""``sg-reconciler schema``: the JSON Schema of a policy file (``schema/policy.schema.json``)."""

from __future__ import annotations

__all__ = ["run"]

import json
from typing import TYPE_CHECKING

from reconciler.cli.console import EXIT_OK
from reconciler.core.schema import policy_schema

if TYPE_CHECKING:
    import argparse

    from reconciler.cli.console import Console


def run(args: argparse.Namespace, console: Console) -> int:
    """Print the schema, indented, on ``out``."""
    console.print(json.dumps(policy_schema(), indent=2, ensure_ascii=False))
    return EXIT_OK
