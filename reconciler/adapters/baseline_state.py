"""The scheduled run's memory of which groups each policy governed: one S3 object.

``state/managed.json`` in the journal bucket (a prefix of its own: the journal prefix stays
write-only), keyed "account/region/group id". Read at the end of a scheduled run and
rewritten: a region the run could not read keeps its previous groups (it would look emptied),
and a run with errors outside any region neither reports nor writes.
"""

from __future__ import annotations

__all__ = ["STATE_KEY", "LeftBaseline", "left_baseline_since"]

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from reconciler.adapters.ec2_shapes import error_code
from reconciler.core.left_since import LeftGroup, carried_over, groups_left
from reconciler.core.ports import Notification

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from reconciler.core.results import RunResult

log = structlog.get_logger("reconciler.state")

STATE_KEY = "state/managed.json"


@dataclass(frozen=True, slots=True)
class LeftBaseline:
    """What the schedule found: the notice, the ids of the groups that left, and why it
    could not tell (the run's errors: a state it cannot read or write is never quiet)."""

    notices: tuple[Notification, ...] = ()
    group_ids: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()


def _load(client: S3Client, bucket: str) -> dict[str, str] | str:
    """The previous run's groups, or why they cannot be read."""
    where = f"s3://{bucket}/{STATE_KEY}"
    try:
        body = client.get_object(Bucket=bucket, Key=STATE_KEY)["Body"].read()
    except ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "404"):
            return {}  # the first run
        log.error("state_unreadable", bucket=bucket, key=STATE_KEY, error=str(exc))
        return f"state: cannot read {where}: {exc}"
    except BotoCoreError as exc:
        log.error("state_unreadable", bucket=bucket, key=STATE_KEY, error=str(exc))
        return f"state: cannot read {where}: {exc}"
    try:
        groups = json.loads(body)["groups"]
        return {str(k): str(v) for k, v in groups.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        log.error("state_malformed", bucket=bucket, key=STATE_KEY)
        return f"state: {where} is not a state object; rewritten from this run"


def _notice(left: list[LeftGroup]) -> Notification:
    lines = [
        f"- {g.group_id} ({g.where}): left policy {g.policy}; now under"
        f" {g.now or 'no policy (guardrails only, if any)'}"
        for g in left
    ]
    facts = {
        "verdict": "LEFT BASELINE",
        "groups": [{"where": g.where, "policy": g.policy, "now": g.now} for g in left[:200]],
        "count": len(left),
    }
    body = "\n".join(
        [
            f"LEFT BASELINE since the last scheduled run: {len(left)} group(s), whoever did it"
            " and however (tag change, deletion, policy edit):",
            *lines[:200],
            "",
            json.dumps(facts, indent=2, sort_keys=True),
        ]
    )
    subject = f"sg-reconciler LEFT BASELINE: {len(left)} group(s) since the last run"
    return Notification(subject=subject, body=body, facts=facts)


def left_baseline_since(client: S3Client, bucket: str, result: RunResult) -> LeftBaseline:
    """The notice of groups that left their policy since the previous run, and their ids;
    the state object then holds this run's groups."""
    unread = {e.region for e in result.errors}
    if None in unread:  # an error of the whole run (an account, the credentials)
        log.warning("state_not_updated", reason="the run had errors outside any region")
        return LeftBaseline()
    previous = _load(client, bucket)
    if isinstance(previous, str) and not previous.endswith("rewritten from this run"):
        return LeftBaseline(errors=(previous,))
    errors: tuple[str, ...] = (previous,) if isinstance(previous, str) else ()
    before = previous if isinstance(previous, dict) else {}
    current = carried_over(before, dict(result.plan.governed), {r for r in unread if r})
    left = groups_left(before, current)
    try:
        client.put_object(
            Bucket=bucket,
            Key=STATE_KEY,
            Body=json.dumps({"groups": current}, sort_keys=True).encode("utf-8"),
            ContentType="application/json",
            ServerSideEncryption="AES256",
        )
    except (ClientError, BotoCoreError) as exc:
        log.error("state_not_written", bucket=bucket, key=STATE_KEY, error=str(exc))
        errors += (f"state: cannot write s3://{bucket}/{STATE_KEY}: {exc}",)
    if not left:
        return LeftBaseline(errors=errors)
    log.warning("groups_left_baseline", count=len(left))
    return LeftBaseline((_notice(left),), tuple(g.group_id for g in left), errors)
