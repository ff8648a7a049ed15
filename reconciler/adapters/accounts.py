"""Accounts file on disk, Organizations discovery, and clients in member accounts (AssumeRole).

The caller's own account is reached with the caller's credentials; every other account
through ``sts:AssumeRole`` into its member role, with a session name that identifies the
reconciler in the member's CloudTrail. Assumed credentials are cached per account and
replaced shortly before they expire, so a warm Lambda container never acts on stale ones.
"""

from __future__ import annotations

__all__ = [
    "ASSUME_PERMISSIONS",
    "DISCOVER_PERMISSIONS",
    "REFRESH_MARGIN",
    "MemberAccounts",
    "discover_accounts",
    "load_accounts",
]

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from reconciler.adapters.aws import AwsClients
from reconciler.adapters.yaml_models import load_model_file
from reconciler.core.accounts import (
    AccountsFile,
    Target,
    duplicate_account_ids,
    partition_of,
    session_name,
    targets_of,
)
from reconciler.core.errors import PolicyError, PolicyProblem

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_organizations import OrganizationsClient

ASSUME_PERMISSIONS = frozenset({"sts:AssumeRole"})
DISCOVER_PERMISSIONS = frozenset({"organizations:ListAccounts"})

# Assumed credentials last an hour; a scheduled run takes at most the function's timeout
# (15 minutes at most), so credentials closer than this to their end are replaced first.
REFRESH_MARGIN = timedelta(minutes=15)
ASSUME_SECONDS = 3600

log = structlog.get_logger("reconciler.accounts")


def load_accounts(path: Path | str) -> AccountsFile:
    """Load and validate an accounts file; PolicyError lists every mistake with file:line."""
    file = Path(path)
    if not file.is_file():
        raise PolicyError(
            [PolicyProblem(str(file), None, "", "accounts file not found (use --accounts FILE)")]
        )
    problems: list[PolicyProblem] = []
    loaded = load_model_file(file, AccountsFile, problems, what="'accounts:'")
    if loaded is None:
        raise PolicyError(problems)
    accounts, lines = loaded
    for index, first in duplicate_account_ids(accounts.accounts):
        problems.append(
            PolicyProblem(
                str(file),
                lines.get(("accounts", index, "id")),
                f"accounts[{index}].id",
                f"duplicate account {accounts.accounts[index].id} (also accounts[{first}],"
                f" line {lines.get(('accounts', first, 'id'))}); list each account once",
            )
        )
    if problems:
        raise PolicyError(problems)
    return accounts


def discover_accounts(client: OrganizationsClient) -> tuple[tuple[str, str | None], ...]:
    """(id, name) of every ACTIVE account of the organization (all pages of ListAccounts)."""
    out: list[tuple[str, str | None]] = []
    for page in client.get_paginator("list_accounts").paginate():
        for account in page.get("Accounts", []):
            # ``State`` replaces the deprecated ``Status``; either says ACTIVE.
            state = account.get("State") or account.get("Status")
            if state == "ACTIVE" and "Id" in account:
                out.append((account["Id"], account.get("Name") or None))
    return tuple(out)


class MemberAccounts:
    """The accounts of an accounts file, and AWS clients in each, for one process or container.

    ``targets()`` resolves the file once (the caller's account from STS, the organization's
    accounts when asked) and again on ``refresh``. ``clients(target)`` raises botocore's
    ClientError/BotoCoreError when the role cannot be assumed.
    """

    def __init__(
        self,
        accounts: AccountsFile,
        base: AwsClients,
        *,
        run_id: str,
        sts_region: str | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.file = accounts
        self._base = base
        self._session_name = session_name(run_id)
        self._sts_region = sts_region or base.session.region_name
        self._now = now
        self._lock = threading.Lock()
        self._account_locks: dict[str, threading.Lock] = {}
        self._assumed: dict[str, tuple[AwsClients, datetime]] = {}
        self._targets: tuple[Target, ...] | None = None
        self._own: str | None = None
        self._partition = "aws"

    @property
    def session_name(self) -> str:
        """The RoleSessionName of every role this object assumes."""
        return self._session_name

    def own_account(self) -> str:
        """The caller's own account (STS GetCallerIdentity, asked once)."""
        if self._own is None:
            identity = self._base.sts(self._sts_region).get_caller_identity()
            self._own = identity["Account"]
            self._partition = partition_of(identity.get("Arn"))
        return self._own

    def targets(self, *, refresh: bool = False) -> tuple[Target, ...]:
        """Every account to reconcile, by id; the organization is listed again on ``refresh``."""
        if self._targets is not None and not refresh:
            return self._targets
        own = self.own_account()
        discovered: tuple[tuple[str, str | None], ...] = ()
        if self.file.organizations is not None:
            discovered = discover_accounts(self._base.organizations())
        found = targets_of(
            self.file, own_account=own, discovered=discovered, partition=self._partition
        )
        log.info(
            "accounts_resolved",
            accounts=[t.account_id for t in found],
            discovered=len(discovered),
            own_account=own,
        )
        self._targets = found
        return found

    def target(self, account_id: str) -> Target | None:
        """The target of one account, or None when the file does not reach it."""
        for target in self.targets():
            if target.account_id == account_id:
                return target
        return None

    def clients(self, target: Target) -> AwsClients:
        """Clients acting in the target's account (cached until REFRESH_MARGIN before expiry)."""
        if target.role_arn is None:
            return self._base
        with self._lock:
            lock = self._account_locks.setdefault(target.account_id, threading.Lock())
        with lock:  # one AssumeRole per account at a time; other accounts proceed
            cached = self._assumed.get(target.role_arn)
            if cached is not None and cached[1] - self._now() > REFRESH_MARGIN:
                return cached[0]
            clients, expires = self._assume(target, target.role_arn)
            self._assumed[target.role_arn] = (clients, expires)
            return clients

    def _assume(self, target: Target, arn: str) -> tuple[AwsClients, datetime]:
        import boto3  # noqa: PLC0415

        sts = self._base.sts(self._sts_region)
        if target.external_id:
            answer = sts.assume_role(
                RoleArn=arn,
                RoleSessionName=self._session_name,
                DurationSeconds=ASSUME_SECONDS,
                ExternalId=target.external_id,
            )
        else:
            answer = sts.assume_role(
                RoleArn=arn, RoleSessionName=self._session_name, DurationSeconds=ASSUME_SECONDS
            )
        credentials = answer["Credentials"]
        session: boto3.Session = boto3.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=self._base.session.region_name,
        )
        expires = credentials["Expiration"]
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        log.info(
            "role_assumed",
            account=target.account_id,
            role_arn=arn,
            session_name=self._session_name,
            expires=expires.isoformat(),
        )
        return AwsClients(session, self._base.endpoint_url, rates=self._base.rates), expires
