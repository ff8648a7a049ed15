"""One error hierarchy: the user's input is wrong, or the run failed."""

from __future__ import annotations

__all__ = [
    "ApplyError",
    "EventError",
    "JournalReadError",
    "JournalUnavailable",
    "LimitExceeded",
    "PolicyError",
    "PolicyProblem",
    "ReconcilerError",
]

from dataclasses import dataclass


class ReconcilerError(Exception):
    """Base of every error sg-reconciler raises on purpose."""


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    """One mistake in a policy file: where it is, what is wrong, how to fix it."""

    file: str
    line: int | None
    path: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        field = f" {self.path}:" if self.path else ""
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{prefix}{where}:{field} {self.message}"


class PolicyError(ReconcilerError):
    """The baseline is wrong: nothing may be changed until it is fixed."""

    def __init__(self, problems: list[PolicyProblem] | tuple[PolicyProblem, ...]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ApplyError(ReconcilerError):
    """A run could not finish what the plan asked for (AWS calls failed)."""


class LimitExceeded(ReconcilerError):
    """A blast-radius limit stopped a change."""


class EventError(ReconcilerError):
    """An event could not be understood; the handler skips it."""


class JournalUnavailable(ApplyError):
    """The journal cannot record: revokes that could not be undone are not made."""


class JournalReadError(ReconcilerError):
    """A journal cannot be read, or has malformed lines (each problem names file:line)."""

    def __init__(self, problems: list[str] | tuple[str, ...]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))
