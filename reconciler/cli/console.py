"""What every command shares: its two output streams, the exit codes, and CommandError."""

from __future__ import annotations

__all__ = ["EXIT_DRIFT", "EXIT_ERROR", "EXIT_OK", "CommandError", "Console", "Reported", "guarded"]

from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_DRIFT = 2


class CommandError(Exception):
    """A mistake or failure a user can fix: ``main`` prints ``error: <message>``, exits 1."""


class Reported(Exception):
    """The problems are printed already (e.g. one per line of a file): ``main`` exits 1."""


@dataclass(frozen=True, slots=True)
class Console:
    """The streams a command prints to: results on ``out``, errors and notes on ``err``."""

    out: TextIO
    err: TextIO

    def print(self, text: str) -> None:
        """One line (or block) of results on ``out``."""
        print(text, file=self.out)

    def note(self, text: str) -> None:
        """One line for the person on ``err`` (``error:``, ``warning:``, ``note:``, ...)."""
        print(text, file=self.err)

    def fail(self, text: str) -> int:
        """Print ``error: <text>`` on ``err`` and return the error exit code."""
        self.note(f"error: {text}")
        return EXIT_ERROR


def guarded(command: Callable[[], int], console: Console) -> int:
    """``command()``, with a CommandError printed as one line and either kind exiting 1."""
    try:
        return command()
    except CommandError as exc:
        return console.fail(str(exc))
    except Reported:
        return EXIT_ERROR
