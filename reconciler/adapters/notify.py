"""Notifications: what happened, in words and JSON, published to SNS (or only logged)."""

from __future__ import annotations

__all__ = [
    "Notification",
    "SnsNotifier",
    "drift_notice",
    "fight_notices",
    "journal_notice",
    "left_baseline_notices",
    "problem_notice",
    "publish_all",
    "run_notice",
    "untracked_notice",
]

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from reconciler.core.plan import Outcome, Status
from reconciler.core.planner import matching_policies
from reconciler.core.ports import Notification
from reconciler.core.tag_changes import policies_left

if TYPE_CHECKING:
    from datetime import datetime

    from mypy_boto3_sns import SNSClient

    from reconciler.adapters.events import ApiCall
    from reconciler.core.fights import FightLog
    from reconciler.core.journal import RunContext
    from reconciler.core.policy import Baseline
    from reconciler.core.rules import ObservedGroup

log = structlog.get_logger("reconciler.notify")

SUBJECT_LIMIT = 100  # SNS rejects longer subjects


def _subject(text: str) -> str:
    clean = " ".join(text.split())
    return clean if len(clean) <= SUBJECT_LIMIT else clean[: SUBJECT_LIMIT - 1] + "…"


def _who(call: ApiCall) -> dict[str, Any]:
    return {
        "actor": call.actor.arn,
        "actor_type": call.actor.type,
        "source_ip": call.actor.source_ip,
        "user_agent": call.actor.user_agent,
        "event_name": call.event_name,
        "event_time": call.event_time,
        "event_id": call.event_id,
        "account": call.account,
        "region": call.region,
    }


def drift_notice(call: ApiCall, outcomes: Sequence[Outcome], *, mode: str) -> Notification:
    """The message for an event that led to revokes (or would have, in report mode)."""
    revoked = [o for o in outcomes if o.status is Status.REVOKED]
    failed = [o for o in outcomes if o.status is Status.FAILED]
    blocked = [o for o in outcomes if o.status is Status.BLOCKED]
    shown = [o for o in outcomes if o.change.action.value in ("revoke", "restore")]
    groups = sorted({o.change.group_id for o in shown})
    policies = sorted({o.change.source for o in shown})
    if blocked and not revoked:
        verdict = "BLOCKED BY LIMIT"
    elif mode == "report" or not revoked:
        verdict = "DRIFT REPORTED" if not failed else "MITIGATION FAILED"
    else:
        verdict = "AUTO-MITIGATED" if not failed and not blocked else "PARTLY MITIGATED"
    what = (
        f"revoked {len(revoked)} rule(s)"
        if verdict in ("AUTO-MITIGATED", "PARTLY MITIGATED")
        else f"found {len(shown)} rule(s) not in the baseline"
    )
    subject = _subject(
        f"sg-reconciler {verdict}: {what} on {', '.join(groups)} ({', '.join(policies)})"
    )
    facts = {
        "verdict": verdict,
        "mode": mode,
        "group_ids": groups,
        "policies": policies,
        **_who(call),
        "rules": [o.to_dict() for o in shown],
    }
    lines = [
        f"{verdict}: {call.event_name} by {call.actor.arn or 'unknown'}"
        f" changed {', '.join(groups)} at {call.event_time or 'unknown time'}.",
        "",
        "Rules not in the baseline:",
        *(
            f"  {o.change.rule_id}  {o.change.key.describe()}"
            f"  ({o.change.description or 'no description'})  => {o.status.value}"
            + (f" [{o.change.blocked}]" if o.change.blocked else "")
            for o in shown
        ),
        "",
        f"Who: {call.actor.arn} ({call.actor.type})",
        f"Source IP: {call.actor.source_ip}",
        f"User agent: {call.actor.user_agent}",
        f"Event: {call.event_name} {call.event_id} at {call.event_time} in {call.region}",
        "",
        "As JSON:",
        json.dumps(facts, indent=2, sort_keys=True),
    ]
    return Notification(subject=subject, body="\n".join(lines), facts=facts)


def untracked_notice(
    call: ApiCall, group_ids: Sequence[str], left: str, *, name: str = "", floor: str = ""
) -> Notification:
    """A tag change took a group out of the policy that governed it (``left``).

    ``floor`` says what governs it now (another policy, guardrails, or nothing).
    """
    groups = ", ".join(group_ids)
    label = f" ({name})" if name else ""
    who = call.actor.arn or "unknown"
    subject = _subject(
        f"sg-reconciler LEFT BASELINE: {groups}{label} after {call.event_name} by {who}"
    )
    facts = {
        "verdict": "LEFT BASELINE",
        "group_ids": list(group_ids),
        "policy": left,
        "now_under": floor or None,
        **_who(call),
    }
    body = "\n".join(
        [
            f"LEFT BASELINE: {groups}{label} after {call.event_name} by {who}:"
            f" policy {left} no longer governs it.",
            f"It is now under: {floor or 'nothing (no policy, no guardrail)'}.",
            "If this was not intended, restore the tag; the next run will then reconcile"
            " the group against its baseline.",
            "",
            json.dumps(facts, indent=2, sort_keys=True),
        ]
    )
    return Notification(subject=subject, body=body, facts=facts)


def left_baseline_notices(
    baseline: Baseline, call: ApiCall, groups: Sequence[ObservedGroup]
) -> list[Notification]:
    """One LEFT BASELINE notice per group the tag change took out of its policy.

    The group is reconciled right after under whatever governs it now (another policy, the
    guardrails); nothing of its old baseline is restored.
    """
    notices = []
    for group in groups:
        left = policies_left(
            baseline, group, call.tags, overwritten=call.event_name == "CreateTags"
        )
        if not left:
            continue
        now = [p.name for p in matching_policies(baseline, group)]
        now += [f"guardrail {g.name}" for g in baseline.guardrails_for(group)]
        notice = untracked_notice(
            call, [group.group_id], ", ".join(left), name=group.name, floor=", ".join(now)
        )
        log.warning("group_left_baseline", **notice.facts)
        notices.append(notice)
    return notices


def fight_notices(
    log_: FightLog, call: ApiCall, outcomes: Sequence[Outcome], now: datetime
) -> list[Notification]:
    """``FIGHTING`` notices for rules the call's principal keeps re-creating (third time in
    an hour; one notice per rule and hour). Enforcement goes on either way."""
    principal = call.actor.arn
    if principal is None:
        return []
    out = []
    for outcome in outcomes:
        change = outcome.change
        made = not call.rule_ids or change.rule_id in call.rule_ids
        if outcome.status is not Status.REVOKED or not made:
            continue
        fight = log_.revoked(principal, change.account, change.group_id, change.key, now)
        if fight is None:
            continue
        what = f"{fight.key.describe()} in {fight.group_id}"
        subject = _subject(f"sg-reconciler FIGHTING: {principal} keeps re-creating {what}")
        facts = {"verdict": "FIGHTING", "rule": fight.key.describe(), "times": fight.times}
        facts.update(group_ids=[fight.group_id], **_who(call))
        body = "\n".join(
            [
                f"FIGHTING: {principal} keeps re-creating {what}: revoked {fight.times} times"
                " within the hour, and revoked again.",
                "Enforcement goes on. If that automation is legitimate, exclude the group from"
                " the guardrail (exclude:) or except the rule (exceptions: with expires).",
                "",
                json.dumps(facts, indent=2, sort_keys=True),
            ]
        )
        log.warning("fighting", **facts)
        out.append(Notification(subject=subject, body=body, facts=facts))
    return out


def problem_notice(call: ApiCall, problems: Sequence[str]) -> Notification:
    """Groups the plan refused to touch after a call (e.g. now matched by two policies)."""
    subject = _subject(f"sg-reconciler GROUP LEFT UNTOUCHED after {call.event_name}: {problems[0]}")
    facts = {"verdict": "GROUP LEFT UNTOUCHED", "problems": list(problems), **_who(call)}
    body = "\n".join(
        [
            f"{call.event_name} by {call.actor.arn or 'unknown'} left groups the baseline"
            " cannot govern; their baseline is not enforced until this is fixed:",
            *(f"- {p}" for p in problems),
            "",
            json.dumps(facts, indent=2, sort_keys=True),
        ]
    )
    return Notification(subject=subject, body=body, facts=facts)


def journal_notice(error: str, context: RunContext) -> Notification:
    """A run's journal object could not be written: its entries are only in the log."""
    subject = _subject(f"sg-reconciler WARNING: journal of run {context.run_id} not in S3")
    facts = {
        "verdict": "JOURNAL NOT WRITTEN",
        "run_id": context.run_id,
        "trigger": context.trigger,
        "started": context.time,
        "error": error,
    }
    body = "\n".join(
        [
            f"The journal of run {context.run_id} ({context.trigger}, started {context.time})"
            f" could not be written to S3: {error}",
            "Its revokes happened, and every journal entry is in the function's log (lines"
            f' with "event": "journal" and "run_id": "{context.run_id}"). To undo them, restore'
            ' from the log (docs/safety.md, "Journal and undo", "From the log").',
            "",
            json.dumps(facts, indent=2, sort_keys=True),
        ]
    )
    return Notification(subject=subject, body=body, facts=facts)


def run_notice(outcomes: Sequence[Outcome], errors: Sequence[str], *, mode: str) -> Notification:
    """One summary for a scheduled run that changed or failed something."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status.value] = counts.get(outcome.status.value, 0) + 1
    if errors or counts.get("failed"):
        verdict = "RUN FAILED"
    elif counts.get("blocked"):
        verdict = "BLOCKED BY LIMIT"
    else:
        verdict = "SCHEDULED RUN"
    blocked = f", {counts['blocked']} blocked" if counts.get("blocked") else ""
    subject = _subject(
        f"sg-reconciler {verdict}: {counts.get('revoked', 0)} revoked,"
        f" {counts.get('failed', 0)} failed{blocked}, {len(errors)} errors"
    )
    facts = {
        "verdict": verdict,
        "mode": mode,
        "statuses": counts,
        "errors": list(errors),
        "changes": [o.to_dict() for o in outcomes if o.status is not Status.REPORTED],
    }
    body = "\n".join(
        [
            f"{verdict} ({mode}):",
            *(
                f"  {o.change.region} {o.change.group_id} {o.change.rule_id}"
                f"  {o.change.key.describe()}  => {o.status.value}"
                for o in outcomes
                if o.status is not Status.REPORTED
            ),
            *(f"  error: {e}" for e in errors),
            "",
            json.dumps(facts, indent=2, sort_keys=True),
        ]
    )
    return Notification(subject=subject, body=body, facts=facts)


class SnsNotifier:
    """Publishes notifications to one SNS topic; a failure is logged and returned, not raised."""

    def __init__(self, client: SNSClient, topic_arn: str) -> None:
        self._client = client
        self._topic_arn = topic_arn

    def publish(self, notification: Notification) -> str | None:
        """Publish; return an error message when SNS refused or could not be reached."""
        try:
            self._client.publish(
                TopicArn=self._topic_arn,
                Subject=notification.subject,
                Message=notification.body,
            )
        except (ClientError, BotoCoreError) as exc:
            log.error("notify_failed", topic_arn=self._topic_arn, error=str(exc))
            return f"cannot publish to {self._topic_arn}: {exc}"
        return None


def publish_all(
    sns: Callable[[str | None], SNSClient], topic: str | None, notices: Sequence[Notification]
) -> tuple[str, ...]:
    """Publish every notice to ``topic`` (its region's client); the errors, one per failure."""
    if not notices or topic is None:
        return ()
    region = topic.split(":")[3] if topic.count(":") >= 5 else None
    notifier = SnsNotifier(sns(region), topic)
    return tuple(error for n in notices if (error := notifier.publish(n)) is not None)
