"""What ``validate`` warns about in a valid baseline: exceptions about to expire or inert.

Pure: each warning is one line naming the file:line of the exception, what happens, and
the fix, for the CLI to print.
"""

from __future__ import annotations

__all__ = ["EXPIRY_WARNING", "baseline_warnings", "expiry_warnings", "inert_warnings"]

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconciler.core.policy import Baseline, GroupPolicy

EXPIRY_WARNING = timedelta(days=7)


def baseline_warnings(baseline: Baseline, now: datetime) -> list[str]:
    """Every warning of a valid baseline: expiring exceptions first, then inert ones."""
    return expiry_warnings(baseline, now) + inert_warnings(baseline)


def expiry_warnings(baseline: Baseline, now: datetime) -> list[str]:
    """One line per exception that expires within 7 days (it will then be revoked)."""
    out = []
    for policy, index, exception in baseline.expiring_exceptions(now, EXPIRY_WARNING):
        days = (exception.expires - now).total_seconds() / 86400
        out.append(
            f"warning: {_where(baseline, policy, index)}: policy {policy.name}"
            f" exceptions[{index}] expires {exception.expires.isoformat()} (in {days:.1f} days;"
            f" the rule is revoked then): {exception.reason}"
        )
    return out


def inert_warnings(baseline: Baseline) -> list[str]:
    """One line per egress exception of a policy that does not manage egress (it does nothing)."""
    return [
        f"warning: {_where(baseline, policy, index)}: policy {policy.name} exceptions[{index}]"
        " is an egress exception (to:), but the policy leaves egress unmanaged, so it changes"
        " nothing; list the allowed egress rules under egress:, or remove it"
        for policy, index, _ in baseline.inert_exceptions()
    ]


def _where(baseline: Baseline, policy: GroupPolicy, index: int) -> str:
    """``file:line`` of ``exceptions[index]`` of ``policy`` (just the file if unknown)."""
    source = baseline.sources.get(policy.name, "?")
    line = baseline.locations.get((policy.name, "exceptions", index))
    return f"{source}:{line}" if line is not None else source
