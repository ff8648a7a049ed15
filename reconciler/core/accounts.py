"""The accounts file as data, and the accounts a multi-account run reaches (pure).

One deployment (or one operator) reconciles several AWS accounts by assuming a role in each::

    role_name: sg-reconciler-member      # the role in every member account
    regions: [us-east-1, eu-west-1]       # default regions of every account
    external_id: my-external-id           # optional, passed to sts:AssumeRole
    accounts:
      - {id: "111111111111", name: prod, regions: [us-east-1]}
      - {id: "222222222222", name: staging, role_name: other-role}
    organizations:                        # optional: every ACTIVE account of the organization
      exclude: ["333333333333"]

The caller's own account is reconciled with the caller's credentials, never through a role.
"""

from __future__ import annotations

__all__ = [
    "SESSION_PREFIX",
    "AccountEntry",
    "AccountsFile",
    "OrganizationsDiscovery",
    "Target",
    "duplicate_account_ids",
    "partition_of",
    "role_arn",
    "session_name",
    "targets_of",
    "with_role",
]

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

_FROZEN = ConfigDict(frozen=True, extra="forbid")
_ACCOUNT_ID = re.compile(r"^\d{12}$")
_ROLE_NAME = re.compile(r"^[\w+=,.@-]{1,64}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]{2,1224}$")
_NAME = re.compile(r"^[\w .@+=,-]{1,64}$")
_PARTITION = re.compile(r"^arn:(aws[\w-]*):")

# RoleSessionName: 2-64 of [\w+=,.@-]; CloudTrail shows it in every member account.
SESSION_PREFIX = "sg-reconciler-"


def _account_id(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML reads 012345678901 as a number and drops the leading zero: never guess.
        raise ValueError(
            f'account id {value!r} is a number: quote it, e.g. "{value:012d}" (an unquoted id'
            " loses leading zeros)"
        )
    if isinstance(value, str) and not _ACCOUNT_ID.fullmatch(value):
        raise ValueError(f"{value!r} is not an account id (12 digits, quoted)")
    return value


def _checked(pattern: re.Pattern[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return AfterValidator(check)


AccountId = Annotated[str, BeforeValidator(_account_id)]
RoleName = Annotated[str, _checked(_ROLE_NAME, "an IAM role name (1-64 of A-Za-z0-9+=,.@_-)")]
Region = Annotated[str, _checked(_REGION, "a region name (e.g. eu-west-1)")]
Regions = Annotated[tuple[Region, ...], Field(min_length=1)]
ExternalId = Annotated[str, _checked(_EXTERNAL_ID, "an external id (2-1224 of \\w+=,.@:/-)")]
AccountName = Annotated[str, _checked(_NAME, "a short account name (1-64 characters)")]


class AccountEntry(BaseModel):
    """One member account; regions, role and external id default to the file's.

    ``- {id: "111111111111", name: prod, regions: [us-east-1], role_name: other-role}``
    """

    model_config = _FROZEN

    id: AccountId
    name: AccountName | None = None
    regions: Regions | None = None
    role_name: RoleName | None = None
    external_id: ExternalId | None = None


class OrganizationsDiscovery(BaseModel):
    """Reach every ACTIVE account of the organization (``organizations:ListAccounts``).

    ``organizations: {exclude: ["333333333333"]}``; listed ``accounts`` keep their settings.
    """

    model_config = _FROZEN

    exclude: tuple[AccountId, ...] = ()


class AccountsFile(BaseModel):
    """The accounts file (see the module docstring for an example)."""

    model_config = _FROZEN

    role_name: RoleName
    regions: Regions
    external_id: ExternalId | None = None
    accounts: tuple[AccountEntry, ...] = ()
    organizations: OrganizationsDiscovery | None = None

    @model_validator(mode="after")
    def _reaches_some_account(self) -> AccountsFile:
        if not self.accounts and self.organizations is None:
            raise ValueError(
                "no accounts: list them under 'accounts:', or add 'organizations: {}' to"
                " reconcile every account of the organization"
            )
        return self

    def role_names(self) -> frozenset[str]:
        """Every role name the file assumes (the default and the overrides)."""
        return frozenset({self.role_name, *(a.role_name for a in self.accounts if a.role_name)})


def duplicate_account_ids(accounts: Sequence[AccountEntry]) -> list[tuple[int, int]]:
    """(index, index of the first entry with the same id) for every repeated account id."""
    first: dict[str, int] = {}
    out = []
    for index, entry in enumerate(accounts):
        if entry.id in first:
            out.append((index, first[entry.id]))
        else:
            first[entry.id] = index
    return out


@dataclass(frozen=True, slots=True)
class Target:
    """One account a run reconciles: through ``role_arn``, or (None) the caller's own."""

    account_id: str
    name: str | None
    role_arn: str | None
    regions: tuple[str, ...]
    external_id: str | None = None

    @property
    def label(self) -> str:
        """``111111111111 (prod)``, or the bare id."""
        return f"{self.account_id} ({self.name})" if self.name else self.account_id


def partition_of(arn: str | None) -> str:
    """The partition of an ARN (``aws``, ``aws-cn``, ``aws-us-gov``); ``aws`` if unknown."""
    found = _PARTITION.match(arn or "")
    return found.group(1) if found else "aws"


def role_arn(account_id: str, role_name: str, partition: str = "aws") -> str:
    """The ARN of a role (without a path) in an account."""
    return f"arn:{partition}:iam::{account_id}:role/{role_name}"


def with_role(accounts: AccountsFile, role_name: str) -> AccountsFile:
    """The same accounts, every one reached through ``role_name`` (ValueError if invalid)."""
    raw = accounts.model_dump()
    raw["role_name"] = role_name
    raw["accounts"] = [{**entry, "role_name": None} for entry in raw["accounts"]]
    return AccountsFile.model_validate(raw)


def session_name(run_id: str) -> str:
    """The RoleSessionName naming the reconciler and the run in member accounts' CloudTrail."""
    cleaned = re.sub(r"[^\w+=,.@-]", "", run_id)[:12] or "run"
    return f"{SESSION_PREFIX}{cleaned}"


def targets_of(
    accounts: AccountsFile,
    *,
    own_account: str | None,
    discovered: Iterable[tuple[str, str | None]] = (),
    partition: str = "aws",
) -> tuple[Target, ...]:
    """The accounts to reconcile, by account id: listed ones, then discovered ones not excluded.

    ``discovered`` holds (id, name) of the organization's ACTIVE accounts. The caller's own
    account gets no role: it is reconciled with the caller's credentials.
    """
    excluded = set(accounts.organizations.exclude) if accounts.organizations else set()
    out: dict[str, Target] = {}
    for entry in accounts.accounts:
        out[entry.id] = _target(
            accounts,
            entry.id,
            entry.name,
            own_account=own_account,
            partition=partition,
            entry=entry,
        )
    for account_id, name in discovered:
        if account_id in out or account_id in excluded:
            continue
        out[account_id] = _target(
            accounts, account_id, name, own_account=own_account, partition=partition
        )
    return tuple(out[key] for key in sorted(out))


def _target(
    accounts: AccountsFile,
    account_id: str,
    name: str | None,
    *,
    own_account: str | None,
    partition: str,
    entry: AccountEntry | None = None,
) -> Target:
    role = (entry.role_name if entry else None) or accounts.role_name
    return Target(
        account_id=account_id,
        name=name,
        role_arn=None if account_id == own_account else role_arn(account_id, role, partition),
        regions=(entry.regions if entry else None) or accounts.regions,
        external_id=(entry.external_id if entry else None) or accounts.external_id,
    )
