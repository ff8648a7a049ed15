"""The accounts file (models, file:line errors), the targets it reaches, credential reuse."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from reconciler.adapters.accounts import REFRESH_MARGIN, MemberAccounts, load_accounts
from reconciler.adapters.aws import AwsClients
from reconciler.core.accounts import (
    AccountsFile,
    Target,
    partition_of,
    role_arn,
    session_name,
    targets_of,
)
from reconciler.core.errors import PolicyError
from reconciler.core.plan import Plan
from reconciler.render import account_entry, account_line

HUB = "123456789012"
PROD = "111111111111"
STAGING = "222222222222"
SANDBOX = "333333333333"

VALID = f"""\
role_name: sg-reconciler-member
regions: [us-east-1, eu-west-1]
external_id: shared-secret
accounts:
  - {{id: "{PROD}", name: prod, regions: [us-east-1]}}
  - {{id: "{STAGING}", role_name: legacy-role, external_id: other-secret}}
  - {{id: "{HUB}", name: hub}}
"""


def write(tmp_path: Path, text: str) -> Path:
    """An accounts file with ``text``."""
    path = tmp_path / "accounts.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    """Every problem load_accounts reports for ``text``, as printed."""
    with pytest.raises(PolicyError) as caught:
        load_accounts(write(tmp_path, text))
    return [str(p) for p in caught.value.problems]


def test_valid_file_gives_one_target_per_account_with_defaults_and_overrides(
    tmp_path: Path,
) -> None:
    """Each listed account gets the file's role, regions and external id unless overridden."""
    accounts = load_accounts(write(tmp_path, VALID))
    targets = targets_of(accounts, own_account=HUB)
    assert targets == (
        Target(
            PROD,
            "prod",
            f"arn:aws:iam::{PROD}:role/sg-reconciler-member",
            ("us-east-1",),
            "shared-secret",
        ),
        Target(HUB, "hub", None, ("us-east-1", "eu-west-1"), "shared-secret"),
        Target(
            STAGING,
            None,
            f"arn:aws:iam::{STAGING}:role/legacy-role",
            ("us-east-1", "eu-west-1"),
            "other-secret",
        ),
    )
    assert accounts.role_names() == {"sg-reconciler-member", "legacy-role"}


def test_discovered_accounts_join_the_listed_ones_minus_the_excluded(tmp_path: Path) -> None:
    """Organization accounts are added, excluded ones are not; listed ones keep their settings."""
    text = (
        f'role_name: member\nregions: [eu-west-1]\naccounts:\n  - {{id: "{PROD}", regions:'
        f' [us-east-1]}}\norganizations:\n  exclude: ["{SANDBOX}"]\n'
    )
    accounts = load_accounts(write(tmp_path, text))
    discovered = [(PROD, "prod"), (STAGING, "staging"), (SANDBOX, "sandbox"), (HUB, "mgmt")]
    targets = targets_of(accounts, own_account=HUB, discovered=discovered, partition="aws-cn")
    assert [(t.account_id, t.name, t.regions) for t in targets] == [
        (PROD, None, ("us-east-1",)),
        (HUB, "mgmt", ("eu-west-1",)),
        (STAGING, "staging", ("eu-west-1",)),
    ]
    assert [t.role_arn for t in targets] == [
        f"arn:aws-cn:iam::{PROD}:role/member",
        None,
        f"arn:aws-cn:iam::{STAGING}:role/member",
    ]


def test_organizations_alone_is_a_valid_file(tmp_path: Path) -> None:
    """``organizations: {}`` without a list reaches the whole organization."""
    accounts = load_accounts(
        write(tmp_path, "role_name: r\nregions: [us-east-1]\norganizations: {}\n")
    )
    assert accounts.accounts == ()
    assert accounts.organizations is not None


def test_unquoted_account_id_is_an_error_with_its_line(tmp_path: Path) -> None:
    """An id YAML reads as a number names its line and says to quote it."""
    text = "role_name: r\nregions: [us-east-1]\naccounts:\n  - id: 111111111111\n"
    assert problems(tmp_path, text) == [
        f"{tmp_path / 'accounts.yaml'}:4: accounts[0].id: account id 111111111111 is a number:"
        ' quote it, e.g. "111111111111" (an unquoted id loses leading zeros)'
    ]


def test_mistakes_are_all_reported_with_file_line_and_path(tmp_path: Path) -> None:
    """A bad id, an unknown key (with a hint) and a bad region are reported together."""
    text = (
        "role_name: r\n"
        "regions: [us-east-1]\n"
        "accounts:\n"
        '  - id: "12345"\n'
        f'  - id: "{PROD}"\n'
        "    regons: [eu-west-1]\n"
        f'  - id: "{STAGING}"\n'
        "    regions: [Europe]\n"
    )
    where = tmp_path / "accounts.yaml"
    assert problems(tmp_path, text) == [
        f"{where}:4: accounts[0].id: '12345' is not an account id (12 digits, quoted)",
        f"{where}:6: accounts[1].regons: unknown key 'regons' (did you mean 'regions'?)",
        f"{where}:8: accounts[2].regions[0]: 'Europe' is not a region name (e.g. eu-west-1)",
    ]


def test_duplicate_account_is_an_error_at_the_second_entry(tmp_path: Path) -> None:
    """The repeated id is reported on its own line, naming the first entry and its line."""
    text = f'role_name: r\nregions: [us-east-1]\naccounts:\n  - id: "{PROD}"\n  - id: "{PROD}"\n'
    assert problems(tmp_path, text) == [
        f"{tmp_path / 'accounts.yaml'}:5: accounts[1].id: duplicate account {PROD}"
        " (also accounts[0], line 4); list each account once"
    ]


def test_file_without_accounts_or_organizations_is_refused(tmp_path: Path) -> None:
    """Reaching no account is an error, not 'nothing to do'."""
    (problem,) = problems(tmp_path, "role_name: r\nregions: [us-east-1]\n")
    assert problem.startswith(f"{tmp_path / 'accounts.yaml'}:1: no accounts:")
    assert "organizations: {}" in problem


def test_missing_keys_empty_file_and_missing_file_are_reported(tmp_path: Path) -> None:
    """Required keys, an empty file and a missing file each give one clear line."""
    assert problems(tmp_path, f'accounts:\n  - id: "{PROD}"\n') == [
        f"{tmp_path / 'accounts.yaml'}:1: role_name: required key 'role_name' is missing",
        f"{tmp_path / 'accounts.yaml'}:1: regions: required key 'regions' is missing",
    ]
    (empty,) = problems(tmp_path, "")
    assert empty.endswith("file is empty (add a 'accounts:' list, or delete the file)")
    with pytest.raises(PolicyError, match="accounts file not found"):
        load_accounts(tmp_path / "absent.yaml")


def test_names_of_roles_sessions_and_partitions() -> None:
    """Role ARNs, session names and partitions are built the way IAM and STS expect."""
    assert role_arn(PROD, "member") == f"arn:aws:iam::{PROD}:role/member"
    assert session_name("0123456789abcdef0123") == "sg-reconciler-0123456789ab"
    assert session_name("!!") == "sg-reconciler-run"
    assert partition_of("arn:aws-us-gov:sts::1:assumed-role/x/y") == "aws-us-gov"
    assert partition_of(None) == "aws"


# --- credentials of member accounts --------------------------------------------------------


@dataclass
class FakeSts:
    """Answers AssumeRole with credentials ending at ``now + lifetime``; records the calls."""

    now: list[datetime]
    lifetime: timedelta = timedelta(hours=1)
    calls: list[dict[str, Any]] = field(default_factory=list)

    def assume_role(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        n = len(self.calls)
        return {
            "Credentials": {
                "AccessKeyId": f"ASIA{n}",
                "SecretAccessKey": "secret",
                "SessionToken": "token",
                "Expiration": self.now[0] + self.lifetime,
            }
        }

    def get_caller_identity(self) -> dict[str, str]:
        return {"Account": HUB, "Arn": f"arn:aws:iam::{HUB}:user/operator"}


class FakeClients(AwsClients):
    """AwsClients whose STS is the fake (nothing else is called)."""

    def __init__(self, sts: FakeSts) -> None:
        super().__init__(boto3.Session(region_name="us-east-1"), None, rates={})
        self.fake_sts = sts

    def sts(self, region: str | None) -> Any:
        return self.fake_sts


def members(now: list[datetime]) -> tuple[MemberAccounts, FakeSts, FakeClients]:
    """MemberAccounts over a fake STS, with a clock the test moves."""
    sts = FakeSts(now)
    base = FakeClients(sts)
    file = AccountsFile.model_validate(
        {
            "role_name": "member",
            "regions": ["us-east-1"],
            "external_id": "ext-1",
            "accounts": [{"id": PROD}, {"id": HUB}],
        }
    )
    return MemberAccounts(file, base, run_id="abc123", now=lambda: now[0]), sts, base


def test_assumed_credentials_are_reused_until_shortly_before_they_expire() -> None:
    """One AssumeRole per account while the credentials last; a new one before they run out."""
    now = [datetime(2025, 1, 1, tzinfo=UTC)]
    accounts, sts, _ = members(now)
    prod = accounts.target(PROD)
    assert prod is not None
    first = accounts.clients(prod)
    now[0] += timedelta(hours=1) - REFRESH_MARGIN - timedelta(seconds=1)
    assert accounts.clients(prod) is first
    assert len(sts.calls) == 1
    now[0] += timedelta(seconds=2)
    second = accounts.clients(prod)
    assert second is not first
    assert len(sts.calls) == 2
    assert sts.calls[0] == {
        "RoleArn": f"arn:aws:iam::{PROD}:role/member",
        "RoleSessionName": "sg-reconciler-abc123",
        "DurationSeconds": 3600,
        "ExternalId": "ext-1",
    }


def test_own_account_uses_the_callers_clients_without_assuming() -> None:
    """The caller's account is reached with the caller's credentials: no AssumeRole."""
    now = [datetime(2025, 1, 1, tzinfo=UTC)]
    accounts, sts, base = members(now)
    hub = accounts.target(HUB)
    assert hub is not None
    assert hub.role_arn is None
    assert accounts.clients(hub) is base
    assert accounts.target("999999999999") is None
    assert sts.calls == []


def test_account_line_and_entry_summarise_one_account() -> None:
    """The per-account text line and JSON entry say what happened in that account."""
    target = Target(SANDBOX, "sandbox", f"arn:aws:iam::{SANDBOX}:role/r", ("us-east-1",))
    empty = Plan(changes=(), managed_groups=3)
    assert account_line(target.label, empty, (), ()) == (
        f"Account {SANDBOX} (sandbox): no drift in 0 of 3 managed groups."
    )
    assert account_line(target.label, Plan(changes=()), (), ["denied"]) == (
        f"Account {SANDBOX} (sandbox): not reconciled (1 error, above)."
    )
    entry = account_entry(target, Plan(changes=()), (), ["denied"])
    assert entry["account"] == SANDBOX
    assert entry["role_arn"] == target.role_arn
    assert entry["errors"] == ["denied"]
    assert entry["summary"]["managed_groups"] == 0
