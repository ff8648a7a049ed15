"""One Lambda container's state: settings, baseline and clients, built once and reused."""

from __future__ import annotations

__all__ = [
    "ReconcileFailed",
    "build_responder",
    "container",
    "handle_event",
    "raise_if_failed",
    "run_event",
]

import functools
import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import structlog

from reconciler.adapters.events import Ignored, parse_event
from reconciler.core.errors import PolicyError, ReconcilerError
from reconciler.summary import TriggerSummary, ignored

if TYPE_CHECKING:
    from pathlib import Path

    import boto3

    from reconciler.adapters.accounts import MemberAccounts
    from reconciler.adapters.aws import AwsClients
    from reconciler.core.policy import Baseline
    from reconciler.responder import Responder

log = structlog.get_logger("reconciler.lambda")


class ReconcileFailed(ReconcilerError):
    """Raised after a run did all it could but AWS calls failed (or the baseline is invalid).

    Raising makes Lambda retry and, in the end, send the event to the dead-letter queue.
    """


def build_responder(
    environ: Mapping[str, str], *, session: boto3.Session | None = None
) -> Responder:
    """Read settings, load and validate the policies once, and prepare clients."""
    import boto3  # noqa: PLC0415

    from reconciler.adapters.aws import AwsClients  # noqa: PLC0415
    from reconciler.adapters.policy_files import load_policies  # noqa: PLC0415
    from reconciler.responder import Deployment, Responder  # noqa: PLC0415
    from reconciler.settings import Settings  # noqa: PLC0415

    settings = Settings.from_env(environ)
    baseline: Baseline | None
    errors: tuple[str, ...] = ()
    try:
        baseline = load_policies(settings.policies)
    except PolicyError as exc:
        baseline, errors = None, tuple(str(p) for p in exc.problems)
        log.error("policies_invalid", errors=list(errors), policies=str(settings.policies))
    clients = AwsClients(session or boto3.Session(), settings.endpoint_url)
    members = None
    if settings.accounts is not None:
        members, problems = _member_accounts(settings.accounts, clients, settings.regions[0])
        if problems:
            # Fail closed: a hub that does not know its accounts acts nowhere.
            baseline, errors = None, (*errors, *problems)

    @functools.cache
    def own_arn() -> str | None:
        if settings.role_arn is not None:
            # Given by the template: no STS client (its model and a call) on a cold start.
            return settings.role_arn
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            arn: str = clients.sts(settings.regions[0]).get_caller_identity()["Arn"]
        except (ClientError, BotoCoreError) as exc:
            log.warning("own_identity_unknown", error=str(exc))
            return None
        return arn

    log.info(
        "container_ready",
        mode=settings.mode,
        regions=list(settings.regions),
        policies=len(baseline.policies) if baseline else 0,
    )
    deployment = Deployment(
        settings=settings,
        baseline=baseline,
        clients=clients,
        own_arn=own_arn,
        policy_errors=errors,
        accounts=members,
    )
    return Responder(deployment)


def _member_accounts(
    path: Path, clients: AwsClients, sts_region: str
) -> tuple[MemberAccounts | None, tuple[str, ...]]:
    """The hub's member accounts from its accounts file, or the file's problems."""
    import uuid  # noqa: PLC0415

    from reconciler.adapters.accounts import MemberAccounts, load_accounts  # noqa: PLC0415

    try:
        accounts = load_accounts(path)
    except PolicyError as exc:
        problems = tuple(str(p) for p in exc.problems)
        log.error("accounts_invalid", errors=list(problems), accounts=str(path))
        return None, problems
    # One session name per container: member CloudTrail entries lead back to it.
    return MemberAccounts(accounts, clients, run_id=uuid.uuid4().hex, sts_region=sts_region), ()


@functools.cache
def configure_once() -> None:
    """JSON log lines for this container (Lambda's log is not a TTY)."""
    from reconciler.log import configure_logging  # noqa: PLC0415

    configure_logging(json=True)


@functools.cache
def container() -> Responder:
    """The responder of this Lambda container, built the first time a trigger needs it.

    Ignored events never build it: no boto3, policies or planner are loaded for them.
    """
    configure_once()
    return build_responder(os.environ)


def handle_event(event: object, responder: Responder | None = None) -> TriggerSummary:
    """Handle every trigger in ``event``; one summary for them all (logged once).

    Without a ``responder`` the container's is used, built only if a trigger needs one.
    """
    summary = TriggerSummary.merged(
        [
            ignored(trigger.reason, trigger.event_name)
            if isinstance(trigger, Ignored)
            else (responder or container()).handle(trigger)
            for trigger in parse_event(event)
        ]
    )
    log.info("event_summary", **summary.to_dict(), failed=summary.failed)
    return summary


def run_event(event: object, responder: Responder | None = None) -> tuple[dict[str, Any], bool]:
    """``handle_event`` as the JSON that leaves the process, and whether anything failed."""
    summary = handle_event(event, responder)
    return summary.to_dict(), summary.failed


def raise_if_failed(summary: dict[str, Any], failed: bool) -> None:
    """Raise ReconcileFailed carrying the summary when the run failed."""
    if failed:
        raise ReconcileFailed(json.dumps(summary, sort_keys=True))
