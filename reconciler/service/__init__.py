"""The one reconcile loop and its apply step (see ``loop.reconcile``)."""

from __future__ import annotations

__all__ = [
    "ACCOUNT_WORKERS",
    "AccountRun",
    "Record",
    "RunError",
    "RunMode",
    "RunOptions",
    "RunResult",
    "Scope",
    "Site",
    "Writers",
    "apply_plan",
    "reconcile",
    "revoked_with_errors",
]

from reconciler.core.results import AccountRun, RunError, RunResult
from reconciler.core.scope import RunMode, Scope
from reconciler.service.apply import Writers, apply_plan, revoked_with_errors
from reconciler.service.loop import ACCOUNT_WORKERS, Record, RunOptions, Site, reconcile
