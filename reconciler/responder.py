"""The event path: one trigger (CloudTrail call, schedule, or noise) -> a summary.

The event only says where to look. The live state, read fresh, decides what to revoke:
a rule the baseline allows is never revoked, whatever the event says.
"""

from __future__ import annotations

__all__ = ["Responder", "TriggerSummary", "is_same_principal"]

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from reconciler.adapters.ec2 import RuleAuthorizer, RuleRevoker, SecurityGroupReader
from reconciler.adapters.events import ApiCall, Ignored, ScheduledTick, Trigger
from reconciler.adapters.journal import LogJournal, S3Journal
from reconciler.adapters.notify import (
    Notification,
    SnsNotifier,
    drift_notice,
    journal_notice,
    run_notice,
    untracked_notice,
)
from reconciler.core.journal import RunContext
from reconciler.core.plan import Action, Outcome, Plan, Status
from reconciler.core.planner import plan as make_plan
from reconciler.core.rules import Direction, ObservedGroup
from reconciler.service import (
    RunResult,
    apply_plan,
    reconcile,
    reconcile_accounts,
    revoked_with_errors,
)
from reconciler.summary import TriggerKind, TriggerSummary, ignored

if TYPE_CHECKING:
    from reconciler.adapters.accounts import MemberAccounts
    from reconciler.adapters.aws import AwsClients
    from reconciler.core.accounts import Target
    from reconciler.core.policy import Baseline
    from reconciler.settings import Settings

log = structlog.get_logger("reconciler.event")


# Outcomes a scheduled run notifies about (a quiet run sends nothing).
_NOTEWORTHY = frozenset({Status.REVOKED, Status.RESTORED, Status.FAILED, Status.BLOCKED})

_ROLE_ARN = re.compile(r"^arn:aws[\w-]*:iam::(\d{12}):role/(?:.*/)?([\w+=,.@-]+)$")
_ASSUMED_ROLE_ARN = re.compile(r"^arn:aws[\w-]*:sts::(\d{12}):assumed-role/([\w+=,.@-]+)/.+$")


def _role_of(arn: str | None) -> tuple[str, str] | None:
    """(account, role name) of a role or assumed-role ARN; None for anything else."""
    if not arn:
        return None
    found = _ROLE_ARN.match(arn) or _ASSUMED_ROLE_ARN.match(arn)
    return (found.group(1), found.group(2)) if found else None


def is_same_principal(candidate: str | None, principal: str) -> bool:
    """True when ``candidate`` is ``principal``, or both name the same IAM role.

    A session issuer ARN carries the role's path (``role/service-role/x``) while an
    assumed-role ARN does not, so roles compare by account and name.
    """
    if not candidate:
        return False
    if candidate == principal:
        return True
    role = _role_of(candidate)
    return role is not None and role == _role_of(principal)


class Responder:
    """Handles triggers against live AWS state with one container's settings and baseline."""

    def __init__(
        self,
        *,
        settings: Settings,
        baseline: Baseline | None,
        policy_errors: Sequence[str],
        clients: AwsClients,
        own_arn: Callable[[], str | None],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        accounts: MemberAccounts | None = None,
    ) -> None:
        self._settings = settings
        # A hub: the schedule covers every account of the file; events act in their account.
        self._accounts = accounts
        self._baseline = baseline
        self._policy_errors = tuple(policy_errors)
        self._clients = clients
        self._own_arn = own_arn
        self._now = now

    def handle(self, trigger: Trigger) -> TriggerSummary:
        """Act on one trigger; AWS failures are reported in the summary, never raised."""
        if isinstance(trigger, Ignored):
            return ignored(trigger.reason, trigger.event_name)
        if self._baseline is None:
            # Fail closed: an invalid baseline stops every action.
            kind: TriggerKind = "schedule" if isinstance(trigger, ScheduledTick) else "cloudtrail"
            name = trigger.event_name if isinstance(trigger, ApiCall) else None
            log.error("policies_invalid", errors=list(self._policy_errors))
            return TriggerSummary(
                trigger=kind,
                event_name=name,
                skipped_reason="policies_invalid",
                errors=self._policy_errors,
                failed=True,
            )
        if isinstance(trigger, ScheduledTick):
            context = self._run_context("schedule")
        else:
            context = self._run_context(
                f"cloudtrail:{trigger.event_name}", trigger.actor.arn, trigger.event_id
            )
        journal = self._journal(context)
        try:
            if isinstance(trigger, ScheduledTick):
                summary = self._scheduled(self._baseline, journal, context)
            else:
                summary = self._api_call(self._baseline, trigger, journal, context)
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

    # --- journal ---------------------------------------------------------------------------

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

    def _authorizer(self, region: str) -> RuleAuthorizer:
        """Creates missing baseline rules (restore_missing); the role allows it only then."""
        return RuleAuthorizer(self._clients.ec2(region))

    # --- schedule ------------------------------------------------------------------------

    def _scheduled(
        self, baseline: Baseline, journal: S3Journal | LogJournal, context: RunContext
    ) -> TriggerSummary:
        report = self._settings.mode == "report"
        if self._accounts is not None:
            result = self._reconcile_accounts(baseline, self._accounts, journal, context)
        else:
            result = reconcile(
                baseline,
                self._clients.ec2,
                self._settings.regions,
                apply=True,
                dry_run=False,
                report_mode=report,
                now=self._now(),
                journal=journal,
                context=context,
                authorizers=self._authorizer,
            )
        errors = (*result.errors, *(str(p) for p in result.plan.problems))
        notices: list[Notification] = []
        changed = any(o.status in _NOTEWORTHY for o in result.outcomes)
        if changed or errors:
            notices.append(run_notice(result.outcomes, errors, mode=self._settings.mode))
        return self._summary(
            "schedule",
            None,
            tuple(sorted({c.group_id for c in result.plan.changes})),
            result.outcomes,
            errors=errors,
            failed=result.failed,
            notices=notices,
        )

    def _reconcile_accounts(
        self,
        baseline: Baseline,
        accounts: MemberAccounts,
        journal: S3Journal | LogJournal,
        context: RunContext,
    ) -> RunResult:
        """Every account of the accounts file (listed again, for new organization accounts)."""
        try:
            targets = accounts.targets(refresh=True)
        except (ClientError, BotoCoreError) as exc:
            log.error("accounts_unresolved", error=str(exc))
            error = f"cannot resolve the accounts to reconcile: {exc}"
            return RunResult(plan=Plan(changes=()), errors=(error,))
        return reconcile_accounts(
            baseline,
            targets,
            accounts.clients,
            apply=True,
            report_mode=self._settings.mode == "report",
            now=self._now(),
            journal=journal,
            context=context,
        ).result

    # --- CloudTrail calls -----------------------------------------------------------------

    def _is_own_call(self, call: ApiCall) -> bool:
        issuer, arn = call.actor.session_issuer_arn, call.actor.arn
        for principal in self._settings.ignore_principals:
            if is_same_principal(issuer, principal) or is_same_principal(arn, principal):
                return True
        if self._accounts is not None:
            # The member role acts for us in its account: its changes are ours.
            role = _role_of(issuer)
            names = self._accounts.file.role_names()
            if role is not None and role[0] == call.account and role[1] in names:
                return True
        if issuer is None:
            return False  # IAM users and root have no session issuer: never us
        own = self._own_arn()
        return own is not None and is_same_principal(issuer, own)

    def _api_call(
        self,
        baseline: Baseline,
        call: ApiCall,
        journal: S3Journal | LogJournal,
        context: RunContext,
    ) -> TriggerSummary:
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
                return _call_failed(
                    call, f"{account.label}: cannot assume {account.role_arn}: {exc}"
                )
        account_id = account.account_id if account is not None else call.account
        reader = SecurityGroupReader(clients.ec2(region), region, account_id)
        try:
            if call.event_name == "DeleteTags":
                return self._tags_removed(baseline, call, reader)
            groups = (
                reader.read_groups(call.group_ids)
                if call.group_ids
                else reader.read_groups_by_name(call.group_names)
            )
        except (ClientError, BotoCoreError) as exc:
            log.error("read_failed", region=region, error=str(exc), event_name=call.event_name)
            return _call_failed(call, f"{region}: cannot read {', '.join(call.group_ids)}: {exc}")
        if not groups:
            return TriggerSummary(
                trigger="cloudtrail",
                event_name=call.event_name,
                group_ids=call.group_ids,
                skipped_reason="group_not_found",
            )
        plan = make_plan(baseline, groups, now=self._now())
        plan = plan.restricted_to(_directions(call, groups))
        if plan.managed_groups == 0:
            return TriggerSummary(
                trigger="cloudtrail",
                event_name=call.event_name,
                group_ids=tuple(g.group_id for g in groups),
                skipped_reason="unmanaged_group",
            )
        revoker = RuleRevoker(clients.ec2(region), reader)
        outcomes = apply_plan(
            plan,
            lambda _region: revoker,
            report_mode=self._settings.mode == "report",
            journal=journal,
            context=context,
            authorizers=lambda r: RuleAuthorizer(clients.ec2(r)),
        )
        notices: list[Notification] = []
        if any(o.change.action in (Action.REVOKE, Action.RESTORE) for o in outcomes):
            notice = drift_notice(call, outcomes, mode=self._settings.mode)
            log.warning("drift_event", **notice.facts)
            notices.append(notice)
        return self._summary(
            "cloudtrail",
            call.event_name,
            tuple(g.group_id for g in groups),
            outcomes,
            errors=(*(str(p) for p in plan.problems), *revoked_with_errors(outcomes)),
            failed=any(o.status is Status.FAILED for o in outcomes),
            notices=notices,
        )

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
            return _call_failed(call, f"cannot resolve the accounts to reconcile: {exc}")
        if target is None:
            return ignored(f"account_not_managed:{(call.account or '')[:40]}", call.event_name)
        return target

    def _tags_removed(
        self, baseline: Baseline, call: ApiCall, reader: SecurityGroupReader
    ) -> TriggerSummary:
        """A removed tag may take a group out of the baseline: warn, never revert."""
        groups = reader.describe(call.group_ids)
        notices = []
        for group in groups:
            left = _policies_left(baseline, group, call.tags)
            if left:
                notice = untracked_notice(call, [group.group_id], ", ".join(left))
                log.warning("group_left_baseline", **notice.facts)
                notices.append(notice)
        return TriggerSummary(
            trigger="cloudtrail",
            event_name=call.event_name,
            group_ids=tuple(g.group_id for g in groups),
            skipped_reason="tags_removed" if notices else "no_managed_tag_removed",
            notifications=tuple(notices),
        )

    # --- shared -------------------------------------------------------------------------

    def _summary(
        self,
        kind: TriggerKind,
        event_name: str | None,
        group_ids: tuple[str, ...],
        outcomes: Sequence[Outcome],
        *,
        errors: tuple[str, ...],
        failed: bool,
        notices: list[Notification],
    ) -> TriggerSummary:
        errors = (
            *errors,
            *(
                f"{o.change.group_id} {o.change.rule_id}: {o.error}"
                for o in outcomes
                if o.status is Status.FAILED
            ),
        )
        sent = self._publish(notices)
        return TriggerSummary(
            trigger=kind,
            event_name=event_name,
            group_ids=group_ids,
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
        topic = self._settings.topic_arn
        if not notices or topic is None:
            return ()
        region = topic.split(":")[3] if topic.count(":") >= 5 else None
        notifier = SnsNotifier(self._clients.sns(region), topic)
        errors = [error for n in notices if (error := notifier.publish(n)) is not None]
        return tuple(errors)


def _directions(call: ApiCall, groups: Sequence[ObservedGroup]) -> frozenset[Direction]:
    """The directions an event can have changed: its own, else those of the rules it names.

    Limiting the event path to them keeps it at one revoke call; the schedule covers the
    rest.
    """
    if call.direction is not None:
        return frozenset({call.direction})
    if call.rule_ids:
        named = {
            rule.key.direction
            for group in groups
            for rule in group.rules
            if rule.rule_id in call.rule_ids
        }
        if named:
            return frozenset(named)
    return frozenset(Direction)


def _policies_left(
    baseline: Baseline, group: ObservedGroup, removed: Sequence[tuple[str, str | None]]
) -> list[str]:
    """Policies that matched the group before the tags were removed and do not now."""
    out = []
    for policy in baseline.policies:
        wanted = policy.match.tags or {}
        if not any(key in wanted for key, _ in removed):
            continue
        before = dict(group.tags)
        for key, value in removed:
            # DeleteTags may omit the value: assume it was the one the policy wanted.
            before[key] = value if value is not None else wanted.get(key, "")
        gid, vpc = group.group_id, group.vpc_id
        was = policy.match.holds_for(group_id=gid, tags=before, vpc_id=vpc)
        if was and not policy.match.holds_for(group_id=gid, tags=group.tags, vpc_id=vpc):
            out.append(policy.name)
    return out


def _call_failed(call: ApiCall, error: str) -> TriggerSummary:
    """The summary of an event that could not be handled: it fails, so Lambda retries it."""
    return TriggerSummary(
        trigger="cloudtrail",
        event_name=call.event_name,
        group_ids=call.group_ids,
        errors=(error,),
        failed=True,
    )
