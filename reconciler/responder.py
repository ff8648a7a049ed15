"""The event path: one trigger (CloudTrail call, schedule, or noise) -> a summary.

The event only says where to look. The live state, read fresh by the one reconcile loop,
decides what to revoke: a rule the baseline allows is never revoked, whatever the event
says. What is the event path's own: ignoring (own calls, other regions and accounts),
routing to a member account, tag removals, and the notices.
"""

from __future__ import annotations

__all__ = ["Deployment", "Responder", "TriggerSummary", "is_same_principal"]

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from reconciler.adapters.baseline_state import LeftBaseline, left_baseline_since
from reconciler.adapters.ec2 import SecurityGroupReader
from reconciler.adapters.events import ApiCall, Ignored, ScheduledTick, Trigger
from reconciler.adapters.journal import LogJournal, S3Journal
from reconciler.adapters.notify import (
    drift_notice,
    fight_notices,
    journal_notice,
    left_baseline_notices,
    problem_notice,
    publish_all,
    run_notice,
)
from reconciler.core.fights import FightLog
from reconciler.core.journal import RunContext
from reconciler.core.plan import Action, Plan, Status
from reconciler.core.principals import is_same_principal, role_of
from reconciler.core.scope import RunMode, Scope, prefix_list_scope
from reconciler.service import Record, RunError, RunOptions, RunResult, Site, reconcile
from reconciler.summary import TriggerKind, TriggerSummary, call_failed, failed_writes, ignored

if TYPE_CHECKING:
    from reconciler.adapters.accounts import MemberAccounts
    from reconciler.adapters.aws import AwsClients
    from reconciler.core.accounts import Target
    from reconciler.core.policy import Baseline
    from reconciler.core.ports import Notification
    from reconciler.settings import Settings

log = structlog.get_logger("reconciler.event")

_TAG_EVENTS = frozenset({"CreateTags", "DeleteTags"})
# Outcomes a scheduled run notifies about (a quiet run sends nothing).
_NOTEWORTHY = frozenset({Status.REVOKED, Status.RESTORED, Status.FAILED, Status.BLOCKED})


@dataclass(frozen=True, slots=True)
class Deployment:
    """What one Lambda container knows: settings, baseline (None if invalid), clients.

    ``accounts`` makes it a hub: the schedule covers every account of the file; events
    act in their own account.
    """

    settings: Settings
    baseline: Baseline | None
    clients: AwsClients
    own_arn: Callable[[], str | None]
    policy_errors: tuple[str, ...] = ()
    accounts: MemberAccounts | None = None


class Responder:
    """Handles triggers against live AWS state with one container's deployment."""

    def __init__(
        self, deployment: Deployment, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._deployment = deployment
        self._settings = deployment.settings
        self._accounts = deployment.accounts
        self._clients = deployment.clients
        self._own_arn = deployment.own_arn
        self._now = now
        self._fights = FightLog()  # this warm container's memory of revokes answered

    @property
    def baseline(self) -> Baseline | None:
        """The container's baseline; None when the policies are invalid (fail closed)."""
        return self._deployment.baseline

    @property
    def _mode(self) -> RunMode:
        return RunMode.REPORT if self._settings.mode == "report" else RunMode.ENFORCE

    def handle(self, trigger: Trigger) -> TriggerSummary:
        """Act on one trigger; AWS failures are reported in the summary, never raised."""
        if isinstance(trigger, Ignored):
            return ignored(trigger.reason, trigger.event_name)
        baseline = self._deployment.baseline
        if baseline is None:
            return self._fail_closed(trigger)
        if isinstance(trigger, ScheduledTick):
            context = self._run_context("schedule")
        else:
            context = self._run_context(
                f"cloudtrail:{trigger.event_name}", trigger.actor.arn, trigger.event_id
            )
        journal = self._journal(context)
        try:
            record = Record(journal, context)
            if isinstance(trigger, ScheduledTick):
                summary = self._scheduled(baseline, record)
            else:
                summary = self._api_call(baseline, trigger, record)
        finally:
            # Written even when the run broke off: what was revoked before is recorded.
            error = journal.close()
        if error is None:
            return summary
        # The revokes have happened either way: a journal that S3 refused is an error to
        # report, and to tell the operators about (every entry is in the log), not a reason
        # to fail the run and have Lambda retry revokes that are done.
        notice = journal_notice(error, context)
        sent = self._publish([notice])
        return replace(
            summary,
            errors=(*summary.errors, error, *sent),
            notifications=(*summary.notifications, notice),
        )

    def _fail_closed(self, trigger: ApiCall | ScheduledTick) -> TriggerSummary:
        """An invalid baseline stops every action."""
        kind: TriggerKind = "schedule" if isinstance(trigger, ScheduledTick) else "cloudtrail"
        name = trigger.event_name if isinstance(trigger, ApiCall) else None
        errors = self._deployment.policy_errors
        log.error("policies_invalid", errors=list(errors))
        return TriggerSummary(
            trigger=kind,
            event_name=name,
            skipped_reason="policies_invalid",
            errors=errors,
            failed=True,
        )

    def _run_context(
        self, trigger: str, actor: str | None = None, event_id: str | None = None
    ) -> RunContext:
        return RunContext(
            run_id=uuid.uuid4().hex,
            trigger=trigger,
            time=self._now().isoformat(),
            actor=actor,
            event_id=event_id,
        )

    def _journal(self, context: RunContext) -> S3Journal | LogJournal:
        """One object per run in the journal bucket, or the log when there is none."""
        bucket = self._settings.journal_bucket
        if bucket is None:
            return LogJournal()
        return S3Journal(self._clients.s3(None), bucket, self._settings.journal_prefix, context)

    # --- schedule ------------------------------------------------------------------------

    def _scheduled(self, baseline: Baseline, record: Record) -> TriggerSummary:
        result, bucket = self._schedule_run(baseline, record), self._settings.journal_bucket
        left = LeftBaseline()  # the groups that left their policy since the last run
        if bucket is not None:
            left = left_baseline_since(self._clients.s3(None), bucket, result)
        errors = (*result.error_messages(), *left.errors)
        notices = list(left.notices)
        if any(o.status in _NOTEWORTHY for o in result.outcomes) or errors:
            notices.insert(0, run_notice(result.outcomes, errors, mode=self._settings.mode))
        changed = tuple(sorted({c.group_id for c in result.plan.changes}))
        head = TriggerSummary(trigger="schedule", group_ids=changed, left_baseline=left.group_ids)
        # Blocked changes are drift left in place: the run fails, for the alarms.
        blocked = any(o.status is Status.BLOCKED for o in result.outcomes)
        return self._summary(
            head, result, errors=errors, failed=result.failed or blocked, notices=notices
        )

    def _schedule_run(self, baseline: Baseline, record: Record) -> RunResult:
        """Every managed group of this account, or of every account of the accounts file."""
        if self._accounts is None:
            sites = [Site.of(self._clients.ec2, self._settings.regions)]
        else:
            try:
                # Listed again each run, for new organization accounts.
                targets = self._accounts.targets(refresh=True)
            except (ClientError, BotoCoreError) as exc:
                log.error("accounts_unresolved", error=str(exc))
                error = RunError(
                    f"cannot resolve the accounts to reconcile: {exc}", stage="account"
                )
                return RunResult(plan=Plan(changes=()), errors=(error,))
            sites = [Site.member(t, self._accounts.clients) for t in targets]
        options = RunOptions(mode=self._mode, now=self._now())
        return reconcile(baseline, sites, options=options, record=record)

    # --- CloudTrail calls -----------------------------------------------------------------

    def _is_own_call(self, call: ApiCall) -> bool:
        issuer, arn = call.actor.session_issuer_arn, call.actor.arn
        for principal in self._settings.ignore_principals:
            if is_same_principal(issuer, principal) or is_same_principal(arn, principal):
                return True
        if self._accounts is not None:
            # The member role acts for us in its account: its changes are ours.
            role = role_of(issuer)
            names = self._accounts.file.role_names()
            if role is not None and role[0] == call.account and role[1] in names:
                return True
        if issuer is None:
            return False  # IAM users and root have no session issuer: never us
        own = self._own_arn()
        return own is not None and is_same_principal(issuer, own)

    def _api_call(self, baseline: Baseline, call: ApiCall, record: Record) -> TriggerSummary:
        if self._is_own_call(call):
            return ignored("own_call", call.event_name)
        account = self._member_of(call)
        if isinstance(account, TriggerSummary):
            return account
        regions = account.regions if account is not None else self._settings.regions
        region = call.region or regions[0]
        if region not in regions:
            # Only configured regions are acted on: a hostile or forwarded event cannot
            # send the function to an arbitrary endpoint.
            return ignored(f"region_not_managed:{region[:40]}", call.event_name)
        clients = self._clients
        if account is not None and self._accounts is not None:
            try:
                clients = self._accounts.clients(account)
            except (ClientError, BotoCoreError) as exc:
                log.error("account_unreachable", account=account.account_id, error=str(exc))
                return call_failed(
                    call, f"{account.label}: cannot assume {account.role_arn}: {exc}"
                )
        account_id = account.account_id if account is not None else call.account
        left: list[Notification] = []
        if call.event_name in _TAG_EVENTS:
            found = self._left_baseline(baseline, call, clients, account_id)
            if isinstance(found, TriggerSummary):
                return found
            left = found
        if call.prefix_list_ids:
            return self._prefix_list_changed(baseline, call, clients, account_id, record)
        scope = Scope(
            group_ids=call.group_ids or None,
            group_names=() if call.group_ids else call.group_names,
            direction=call.direction,
            rule_ids=call.rule_ids,
        )
        site = Site.of(clients.ec2, (region,), account_id)
        options = RunOptions(mode=self._mode, now=self._now())
        result = reconcile(baseline, [site], scope=scope, options=options, record=record)
        return self._call_summary(call, result, left)

    def _call_summary(
        self, call: ApiCall, result: RunResult, left: list[Notification]
    ) -> TriggerSummary:
        """What one call led to: not found, unmanaged, or what the loop did about it.

        Groups that left their policy (``left``), groups the plan refused (two policies)
        and blocked changes are all published; the last two fail the run.
        """
        if result.read_failed:
            return call_failed(call, str(result.errors[0]))
        left_ids = tuple(g for n in left for g in n.facts["group_ids"])
        if not result.observed:
            return TriggerSummary(
                trigger="cloudtrail",
                event_name=call.event_name,
                group_ids=call.group_ids,
                skipped_reason="group_not_found",
            )
        if result.plan.managed_groups == 0 and result.plan.guarded_groups == 0 and not left:
            return TriggerSummary(
                trigger="cloudtrail",
                event_name=call.event_name,
                group_ids=result.observed,
                skipped_reason="unmanaged_group",
            )
        notices = list(left)
        if any(o.change.action in (Action.REVOKE, Action.RESTORE) for o in result.outcomes):
            notice = drift_notice(call, result.outcomes, mode=self._settings.mode)
            log.warning("drift_event", **notice.facts)
            notices.append(notice)
        fights = fight_notices(self._fights, call, result.outcomes, self._now())
        problems = [str(p) for p in result.plan.problems]
        notices += fights + ([problem_notice(call, problems)] if problems else [])
        head = TriggerSummary(
            trigger="cloudtrail",
            event_name=call.event_name,
            group_ids=result.observed,
            skipped_reason="left_baseline" if left and not result.plan.changes else None,
            left_baseline=left_ids,
            fights=len(fights),
        )
        blocked = any(o.status is Status.BLOCKED for o in result.outcomes)
        return self._summary(
            head,
            result,
            errors=(*problems, *(str(e) for e in result.errors)),
            failed=result.any_failed_write or bool(problems) or blocked,
            notices=notices,
        )

    def _prefix_list_changed(
        self,
        baseline: Baseline,
        call: ApiCall,
        clients: AwsClients,
        account_id: str | None,
        record: Record,
    ) -> TriggerSummary:
        """A prefix list was edited: re-check the groups whose rules reference it."""
        region = call.region or self._settings.regions[0]
        reader = SecurityGroupReader(clients.ec2(region), region, account_id)
        scope = prefix_list_scope(call.prefix_list_ids, reader)
        if scope is None:
            return ignored("prefix_list_unreferenced", call.event_name)
        site = Site.of(clients.ec2, (region,), account_id)
        options = RunOptions(mode=self._mode, now=self._now())
        result = reconcile(baseline, [site], scope=scope, options=options, record=record)
        return self._call_summary(call, result, [])

    def _member_of(self, call: ApiCall) -> Target | TriggerSummary | None:
        """The account an event acts in (a hub), None for a single account, or why not.

        An event names its account (the member it was forwarded from); one that is neither
        this account nor a member of the accounts file is ignored.
        """
        if self._accounts is None:
            return None
        try:
            own = self._accounts.own_account()
            target = self._accounts.target(call.account or own)
        except (ClientError, BotoCoreError) as exc:
            log.error("accounts_unresolved", error=str(exc), event_name=call.event_name)
            return call_failed(call, f"cannot resolve the accounts to reconcile: {exc}")
        if target is None:
            return ignored(f"account_not_managed:{(call.account or '')[:40]}", call.event_name)
        return target

    def _left_baseline(
        self, baseline: Baseline, call: ApiCall, clients: AwsClients, account_id: str | None
    ) -> list[Notification] | TriggerSummary:
        """A tag change that takes a group out of its policy: one notice per group."""
        region = call.region or self._settings.regions[0]
        reader = SecurityGroupReader(clients.ec2(region), region, account_id)
        try:
            return left_baseline_notices(baseline, call, reader.describe(call.group_ids))
        except (ClientError, BotoCoreError) as exc:
            log.error("read_failed", region=region, error=str(exc), event_name=call.event_name)
            return call_failed(call, f"{region}: cannot read {', '.join(call.group_ids)}: {exc}")

    # --- shared -------------------------------------------------------------------------

    def _summary(
        self,
        head: TriggerSummary,
        result: RunResult,
        *,
        errors: tuple[str, ...],
        failed: bool,
        notices: list[Notification],
    ) -> TriggerSummary:
        """``head`` (trigger, event, groups) completed with what the run did; notices sent."""
        outcomes = result.outcomes
        errors = (*errors, *failed_writes(outcomes))
        sent = self._publish(notices)
        return replace(
            head,
            revoked=tuple(o.change.rule_id or "" for o in outcomes if o.status is Status.REVOKED),
            missing=tuple(
                o.change.to_dict() for o in outcomes if o.change.action is Action.MISSING
            ),
            errors=(*errors, *sent),
            would_revoke=tuple(
                o.change.rule_id or "" for o in outcomes if o.status is Status.SKIPPED_REPORT_MODE
            ),
            restored=tuple(o.change.to_dict() for o in outcomes if o.status is Status.RESTORED),
            blocked=tuple(o.change.to_dict() for o in outcomes if o.status is Status.BLOCKED),
            drifted_group_ids=tuple(
                sorted(
                    {o.change.group_id for o in outcomes if o.change.action is not Action.EXCEPTED}
                )
            ),
            failed=failed,
            notifications=tuple(notices),
        )

    def _publish(self, notices: list[Notification]) -> tuple[str, ...]:
        return publish_all(self._clients.sns, self._settings.topic_arn, notices)
