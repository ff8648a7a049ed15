"""The dispatch table: each command's name -> the module that runs it (imported only then).

Every command module has ``run(args, console) -> int``. Importing one module per run keeps
``validate`` and ``--help`` free of boto3 (guarded by tests/unit/test_cold_start.py).
"""

from __future__ import annotations

__all__ = ["COMMANDS", "command"]

import argparse
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconciler.cli.console import Console

Command = Callable[[argparse.Namespace, "Console"], int]

COMMANDS: dict[str, str] = {
    "validate": "reconciler.cli.cmd_validate",
    "plan": "reconciler.cli.cmd_reconcile",
    "apply": "reconciler.cli.cmd_reconcile",
    "undo": "reconciler.cli.cmd_undo",
    "restore": "reconciler.cli.cmd_undo",  # the former name of undo
    "import": "reconciler.cli.cmd_import",
    "handle-event": "reconciler.cli.cmd_handle_event",
    "package": "reconciler.cli.cmd_package",
    "deploy": "reconciler.cli.cmd_deploy",
    "demo": "reconciler.cli.cmd_demo",
    "schema": "reconciler.cli.cmd_schema",
}


def command(name: str) -> Command:
    """The ``run`` function of the command called ``name``."""
    run: Command = importlib.import_module(COMMANDS[name]).run
    return run
