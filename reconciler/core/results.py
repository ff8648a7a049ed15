"""What one run of the loop found and did, typed until it leaves the process."""

from __future__ import annotations

__all__ = ["AccountRun", "RunError", "RunResult"]

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from reconciler.core.plan import Outcome, Plan, Status

if TYPE_CHECKING:
    from collections.abc import Sequence

    from reconciler.core.accounts import Target


@dataclass(frozen=True, slots=True)
class RunError:
    """A run-level error: the line people read, and where it happened (region, account)."""

    message: str  # whole, with its region (and account) in front: "us-east-1: cannot read ..."
    region: str | None = None
    account: str | None = None  # the account's label in a multi-account run
    stage: Literal["account", "read", "write"] = "read"

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, str]:
        """The JSON shape: ``message``, and ``region``/``account`` when known."""
        out = {"message": self.message}
        if self.region:
            out["region"] = self.region
        if self.account:
            out["account"] = self.account
        return out

    def in_account(self, label: str) -> RunError:
        """The same error, named by the account it happened in."""
        return RunError(f"{label}: {self.message}", self.region, label, self.stage)


@dataclass(frozen=True, slots=True)
class AccountRun:
    """One account's part of a multi-account run (an unreachable account has only errors)."""

    target: Target
    result: RunResult


@dataclass(frozen=True, slots=True)
class RunResult:
    """A plan, what applying it did (empty for plan-only runs), and run-level errors.

    ``observed`` are the ids of the groups read (managed or not); ``unmatched_regions`` the
    regions read without error where no group matches any policy (a mistyped region looks
    clean otherwise); ``accounts`` each account's own result in a multi-account run.
    """

    plan: Plan
    outcomes: tuple[Outcome, ...] = ()
    errors: tuple[RunError, ...] = ()
    observed: tuple[str, ...] = ()
    unmatched_regions: tuple[str, ...] = ()
    accounts: tuple[AccountRun, ...] = ()

    @property
    def failed(self) -> bool:
        """True when any AWS call failed or any group could not be handled."""
        return bool(self.errors) or bool(self.plan.problems) or self.any_failed_write

    @property
    def any_failed_write(self) -> bool:
        """True when a revoke or restore call failed."""
        return any(o.status is Status.FAILED for o in self.outcomes)

    @property
    def read_failed(self) -> bool:
        """True when the groups could not be read (or their account not reached)."""
        return any(e.stage != "write" for e in self.errors)

    def error_lines(self) -> list[str]:
        """The run-level errors, one line each (group problems are in the plan)."""
        return [str(e) for e in self.errors]

    def error_messages(self) -> list[str]:
        """Every run-level error and group problem, one line each."""
        return [*(str(e) for e in self.errors), *(str(p) for p in self.plan.problems)]

    def statuses(self) -> dict[Status, int]:
        """How many outcomes ended in each status (only the statuses that occurred)."""
        counts = Counter(o.status for o in self.outcomes)
        return {status: counts[status] for status in Status if counts[status]}

    def with_outcomes(self, outcomes: tuple[Outcome, ...]) -> RunResult:
        """This result after applying its plan."""
        return RunResult(
            self.plan, outcomes, self.errors, self.observed, self.unmatched_regions, self.accounts
        )

    @classmethod
    def merged(cls, runs: Sequence[AccountRun]) -> RunResult:
        """Every account's run as one result; errors name their account."""
        return cls(
            plan=Plan(
                changes=tuple(c for r in runs for c in r.result.plan.changes),
                problems=tuple(p for r in runs for p in r.result.plan.problems),
                managed_groups=sum(r.result.plan.managed_groups for r in runs),
                guarded_groups=sum(r.result.plan.guarded_groups for r in runs),
                unmanaged_groups=sum(r.result.plan.unmanaged_groups for r in runs),
                governed=tuple(g for r in runs for g in r.result.plan.governed),
            ),
            outcomes=tuple(o for r in runs for o in r.result.outcomes),
            errors=tuple(e.in_account(r.target.label) for r in runs for e in r.result.errors),
            observed=tuple(g for r in runs for g in r.result.observed),
            unmatched_regions=tuple(
                f"{region} of account {r.target.label}"
                for r in runs
                for region in r.result.unmatched_regions
            ),
            accounts=tuple(runs),
        )
