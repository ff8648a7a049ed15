"""EC2 writers: revoke rules by id, and authorize rules exactly (restore_missing, undo)."""

from __future__ import annotations

__all__ = ["REVOKE_CHUNK", "RuleAuthorizer", "RuleRevoker"]

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from reconciler.adapters.ec2_shapes import chunks, error_code, ip_permission, revoked_rule
from reconciler.core.ports import AuthorizeResult, RevokeResult
from reconciler.core.rules import Direction, ObservedRule, RuleKey

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

    from reconciler.core.ports import GroupReader


REVOKE_CHUNK = 200  # rule ids per revoke call; a group rarely has more per direction

_RULE_GONE = frozenset({"InvalidPermission.NotFound", "InvalidSecurityGroupRuleId.NotFound"})
_GROUP_GONE = frozenset({"InvalidGroup.NotFound", "InvalidGroupId.NotFound"})
# Errors that hold for every rule of a batch alike: splitting it would only repeat them.
_WHOLE_BATCH = frozenset(
    {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "UnauthorizedOperation",
        "AccessDenied",
        "AuthFailure",
    }
)

_DUPLICATE = "InvalidPermission.Duplicate"

log = structlog.get_logger("reconciler.ec2")


class RuleRevoker:
    """Revokes rules by ``SecurityGroupRuleIds``, one call per group and direction.

    A rule already gone makes it re-read the group and revoke what is left; a batch EC2
    refuses for any other reason than throttling, access or a server error is split, so one
    bad rule fails alone.
    """

    def __init__(self, client: EC2Client, reader: GroupReader) -> None:
        self._client = client
        self._reader = reader

    def revoke(self, group_id: str, direction: Direction, rule_ids: Sequence[str]) -> RevokeResult:
        """Revoke these rules of one group; never raises for AWS errors, reports them."""
        revoked: list[str] = []
        absent: list[str] = []
        failed: list[tuple[str, str]] = []
        removed: list[ObservedRule] = []
        for chunk in chunks(list(rule_ids), REVOKE_CHUNK):
            result = self._revoke_chunk(group_id, direction, chunk)
            revoked += result.revoked
            absent += result.absent
            failed += result.failed
            removed += result.removed
        return RevokeResult(tuple(revoked), tuple(absent), tuple(failed), tuple(removed))

    def _call(
        self, group_id: str, direction: Direction, rule_ids: list[str]
    ) -> tuple[ObservedRule, ...]:
        """Revoke; the rules EC2 reports it removed (what they were at that moment)."""
        if direction is Direction.INGRESS:
            response = self._client.revoke_security_group_ingress(
                GroupId=group_id, SecurityGroupRuleIds=rule_ids
            )
        else:
            response = self._client.revoke_security_group_egress(
                GroupId=group_id, SecurityGroupRuleIds=rule_ids
            )
        items = response.get("RevokedSecurityGroupRules", [])
        return tuple(rule for item in items if (rule := revoked_rule(item)) is not None)

    def _revoke_chunk(self, group_id: str, direction: Direction, ids: list[str]) -> RevokeResult:
        try:
            removed = self._call(group_id, direction, ids)
        except ClientError as exc:
            code = error_code(exc)
            if code in _GROUP_GONE:
                return RevokeResult(absent=tuple(ids))
            if code not in _RULE_GONE:
                if len(ids) == 1 or _whole_batch(exc):
                    return RevokeResult(failed=tuple((i, f"{code}: {exc}") for i in ids))
                return self._revoke_one_by_one(group_id, direction, ids, code)
        else:
            return RevokeResult(revoked=tuple(ids), removed=removed)
        # Some rule is already gone: re-read the group, then revoke what is still there.
        try:
            live = {r.rule_id for r in self._reader.rules_of([group_id]).get(group_id, [])}
        except ClientError as exc:
            return RevokeResult(failed=tuple((i, f"{error_code(exc)}: {exc}") for i in ids))
        present = [i for i in ids if i in live]
        gone = tuple(i for i in ids if i not in live)
        if not present:
            return RevokeResult(absent=gone)
        try:
            removed = self._call(group_id, direction, present)
        except ClientError as exc:
            code = error_code(exc)
            return RevokeResult(absent=gone, failed=tuple((i, f"{code}: {exc}") for i in present))
        return RevokeResult(revoked=tuple(present), absent=gone, removed=removed)

    def _revoke_one_by_one(
        self, group_id: str, direction: Direction, ids: list[str], code: str
    ) -> RevokeResult:
        """EC2 refused the batch (one bad rule fails it all): revoke each live rule alone."""
        log.warning("revoke_batch_split", group_id=group_id, rules=len(ids), error_code=code)
        try:
            live = {r.rule_id for r in self._reader.rules_of([group_id]).get(group_id, [])}
        except ClientError as exc:
            return RevokeResult(failed=tuple((i, f"{error_code(exc)}: {exc}") for i in ids))
        parts = [self._revoke_chunk(group_id, direction, [i]) for i in ids if i in live]
        return RevokeResult(
            revoked=tuple(i for part in parts for i in part.revoked),
            absent=(
                *(i for i in ids if i not in live),
                *(i for part in parts for i in part.absent),
            ),
            failed=tuple(f for part in parts for f in part.failed),
            removed=tuple(r for part in parts for r in part.removed),
        )


def _whole_batch(exc: ClientError) -> bool:
    """Throttled, denied or a server error: the same for each rule, so never split."""
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return error_code(exc) in _WHOLE_BATCH or int(status) >= 500


class RuleAuthorizer:
    """Creates rules exactly (with descriptions): one call per group and direction.

    Needs ``ec2:AuthorizeSecurityGroupIngress``/``Egress``, which the Lambda's role only has
    when a policy opts in to ``restore_missing``; ``InvalidPermission.Duplicate`` means the
    rule is already there.
    """

    def __init__(self, client: EC2Client) -> None:
        self._client = client

    def authorize(
        self,
        group_id: str,
        direction: Direction,
        rules: Sequence[tuple[RuleKey, str | None]],
    ) -> AuthorizeResult:
        """Authorize ``rules``; never raises for AWS or connection errors, reports them.

        EC2 applies a batch all or nothing: a duplicate in it, or a missing group (which
        may be a referenced peer rather than this group), makes each rule go in on its own.
        """
        keys = tuple(key for key, _ in rules)
        try:
            self._call(group_id, direction, rules)
        except ClientError as exc:
            code = error_code(exc)
            if len(rules) > 1 and (code == _DUPLICATE or code in _GROUP_GONE):
                parts = [self.authorize(group_id, direction, [rule]) for rule in rules]
                return AuthorizeResult(
                    created=tuple(k for part in parts for k in part.created),
                    present=tuple(k for part in parts for k in part.present),
                    gone=tuple(g for part in parts for g in part.gone),
                    failed=tuple(f for part in parts for f in part.failed),
                )
            if code == _DUPLICATE:
                return AuthorizeResult(present=keys)
            message = exc.response.get("Error", {}).get("Message") or str(exc)
            why = tuple((k, f"{code}: {message}") for k in keys)
            return AuthorizeResult(gone=why) if code in _GROUP_GONE else AuthorizeResult(failed=why)
        except BotoCoreError as exc:
            return AuthorizeResult(failed=tuple((k, str(exc)) for k in keys))
        return AuthorizeResult(created=keys)

    def _call(
        self, group_id: str, direction: Direction, rules: Sequence[tuple[RuleKey, str | None]]
    ) -> None:
        perms: list[Any] = [ip_permission(key, description) for key, description in rules]
        if direction is Direction.INGRESS:
            self._client.authorize_security_group_ingress(GroupId=group_id, IpPermissions=perms)
        else:
            self._client.authorize_security_group_egress(GroupId=group_id, IpPermissions=perms)
