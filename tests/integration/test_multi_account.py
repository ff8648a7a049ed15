"""Several accounts in one moto backend: ``plan``/``apply --accounts`` and the hub Lambda.

moto serves every account from one process: credentials from ``sts:AssumeRole`` into a role
of another account act in that account ("Multi-Account support" in moto's docs). The hub is
moto's default account 123456789012; the members are built with credentials assumed into
them. Where a test says "IAM enforced", moto checks every request against the caller's
policies: the hub principal holds exactly the hub template's EC2 statements and its
``AssumeMemberRolePolicy``, and each member role exactly deploy/member-role.yaml's EC2
statements (tests/iam_moto.py aligns moto's evaluation with AWS's).

moto gap: it does not evaluate a role's trust policy for a caller from another account, and
a role need not exist to be assumed. A member that cannot be assumed is therefore one whose
role name the hub's policy does not allow (AccessDenied from the hub's identity policy).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from reconciler.adapters.accounts import load_accounts
from reconciler.cli import main
from reconciler.cli.cmd_reconcile import ReconcileRequest, cmd_reconcile
from reconciler.cli.console import Console
from reconciler.cli.options import AwsOptions
from reconciler.core.errors import PolicyError
from reconciler.core.rules import Direction, RuleKey
from reconciler.deploy.package import ACCOUNTS_ENTRY, build_package
from reconciler.deploy.parameters import ParameterError, hub_parameters
from reconciler.deploy.template import load_template
from reconciler.responder import Responder
from reconciler.runtime import build_responder, run_event
from tests.cfn_resolve import StackContext, ec2_role_policies, resolve
from tests.deploy_stacks import TEMPLATE, VALID_POLICY, WHEEL_CACHE
from tests.eventfiles import as_eventbridge, load_event
from tests.iam_moto import ec2_resource_arns, iam_enforced, moto_evaluable
from tests.policyfiles import write_policies
from tests.world import REGION, World, ingress

HUB = "123456789012"  # moto's default account: the credentials every test starts with
PROD = "111111111111"
STAGING = "222222222222"
LEGACY = "333333333333"  # its role name is not one the hub may assume
STRANGER = "444444444444"  # in no accounts file
MEMBER_ROLE = "sg-reconciler-member"
HUB_ROLE_ARN = f"arn:aws:iam::{HUB}:role/sg-reconciler-hub"
MEMBER_TEMPLATE = TEMPLATE.parent / "member-role.yaml"

POLICY = """\
groups:
  - name: web-prod
    match: {tags: {Name: prod-sg}}
    ingress:
      - {protocol: tcp, ports: 443, from: [0.0.0.0/0]}
"""
KEEP = ingress("tcp", (443, 443), "0.0.0.0/0")
DRIFT = ingress("tcp", (22, 22), "0.0.0.0/0")

ACCOUNTS = f"""\
role_name: {MEMBER_ROLE}
regions: [{REGION}]
accounts:
  - {{id: "{HUB}", name: hub}}
  - {{id: "{PROD}", name: prod}}
  - {{id: "{STAGING}", name: staging}}
  - {{id: "{LEGACY}", name: legacy, role_name: legacy-admin}}
"""


def account_session(account: str) -> boto3.Session:
    """Unchecked credentials acting in ``account`` (moto: assume any role of that account)."""
    if account == HUB:
        return boto3.Session(region_name=REGION)
    credentials = boto3.client("sts", region_name=REGION).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/test-setup", RoleSessionName="test-setup"
    )["Credentials"]
    return boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=REGION,
    )


def deploy_member_role(account: str) -> None:
    """The member role as deploy/member-role.yaml defines it, created in ``account``."""
    template = load_template(MEMBER_TEMPLATE)
    context = StackContext(
        template,
        account_id=account,
        region=REGION,
        parameters={"HubAccountId": HUB, "HubRoleArn": HUB_ROLE_ARN},
    )
    role = template["Resources"]["MemberRole"]["Properties"]
    iam = account_session(account).client("iam")
    iam.create_role(
        RoleName=MEMBER_ROLE,
        AssumeRolePolicyDocument=json.dumps(resolve(role["AssumeRolePolicyDocument"], context)),
    )
    for name, document in ec2_role_policies(context, role="MemberRole").items():
        iam.put_role_policy(
            RoleName=MEMBER_ROLE,
            PolicyName=name,
            PolicyDocument=json.dumps(moto_evaluable(document, REGION)),
        )


def hub_principal() -> boto3.Session:
    """A hub-account user with exactly the hub role's EC2 statements and member-role grant."""
    template = load_template(TEMPLATE)
    context = StackContext(
        template, account_id=HUB, region=REGION, parameters={"MemberRoleName": MEMBER_ROLE}
    )
    policies = {
        name: moto_evaluable(document, REGION)
        for name, document in ec2_role_policies(context).items()
    }
    grant = template["Resources"]["AssumeMemberRolePolicy"]["Properties"]
    policies[grant["PolicyName"]] = resolve(grant["PolicyDocument"], context)
    iam = boto3.client("iam", region_name=REGION)
    iam.create_user(UserName="sg-reconciler-hub-stand-in")
    for name, document in policies.items():
        iam.put_user_policy(
            UserName="sg-reconciler-hub-stand-in",
            PolicyName=name,
            PolicyDocument=json.dumps(document),
        )
    key = iam.create_access_key(UserName="sg-reconciler-hub-stand-in")["AccessKey"]
    return boto3.Session(
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
        region_name=REGION,
    )


@dataclass
class Estate:
    """One drifted managed group per account, the files, and the hub's credentials."""

    worlds: dict[str, World]
    groups: dict[str, str]
    policies: Path
    accounts: Path
    hub: boto3.Session

    def live(self, account: str) -> set[RuleKey]:
        """The ingress rule keys live on the account's managed group (egress is unmanaged)."""
        keys = self.worlds[account].live(self.groups[account])
        return {k for k in keys if k.direction is Direction.INGRESS}


@pytest.fixture
def estate(aws: None, tmp_path: Path) -> Iterator[Estate]:
    """Hub, prod, staging and legacy accounts, each with ssh-from-the-world drift."""
    worlds: dict[str, World] = {}
    groups: dict[str, str] = {}
    for account in (HUB, PROD, STAGING, LEGACY):
        worlds[account] = World.create(account_session(account).client("ec2"))
        groups[account] = worlds[account].group("web", {"Name": "prod-sg"}, [KEEP, DRIFT])
    for account in (PROD, STAGING, LEGACY):
        deploy_member_role(account)
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(ACCOUNTS, encoding="utf-8")
    with ec2_resource_arns():
        yield Estate(
            worlds,
            groups,
            write_policies(tmp_path / "policies", POLICY),
            accounts,
            hub_principal(),
        )


def run_cli(
    estate: Estate, *, apply: bool, output: str = "json", journal: Path | None = None
) -> tuple[int, str, str]:
    """``plan``/``apply --accounts`` as the hub principal, IAM enforced."""
    out, err = io.StringIO(), io.StringIO()
    code = iam_enforced(
        lambda: cmd_reconcile(
            ReconcileRequest(
                estate.policies,
                AwsOptions(None, (), None),
                apply=apply,
                output=output,
                session=estate.hub,
                journal=journal,
                accounts=estate.accounts,
            ),
            Console(out, err),
        )
    )
    return code, out.getvalue(), err.getvalue()


def test_apply_accounts_fixes_every_reachable_account_and_reports_the_unreachable_one(
    estate: Estate, tmp_path: Path
) -> None:
    """Drift in the hub and two members is revoked; the member whose role is denied is an error."""
    journal = tmp_path / "journal.jsonl"
    code, out, _ = run_cli(estate, apply=True, journal=journal)
    doc = json.loads(out)
    assert code == 1  # one account failed
    revoked = {(c["account"], c["group_id"]) for c in doc["changes"] if c["status"] == "revoked"}
    assert revoked == {(a, estate.groups[a]) for a in (HUB, PROD, STAGING)}
    for account in (HUB, PROD, STAGING):
        assert estate.live(account) == {KEEP}
    assert estate.live(LEGACY) == {KEEP, DRIFT}
    (error,) = doc["errors"]
    assert error["message"].startswith(
        f"{LEGACY} (legacy): cannot assume arn:aws:iam::{LEGACY}:role/legacy-admin:"
    )
    assert "AccessDenied" in error["message"]
    by_account = {a["account"]: a for a in doc["accounts"]}
    assert list(by_account) == [PROD, HUB, STAGING, LEGACY]
    assert by_account[HUB]["role_arn"] is None
    assert by_account[PROD]["summary"]["statuses"] == {"revoked": 1}
    assert by_account[LEGACY]["errors"] == [error["message"].split(": ", 1)[1]]
    entries = [json.loads(line) for line in journal.read_text().splitlines()]
    assert {(e["phase"], e["account"]) for e in entries} == {
        (phase, a) for phase in ("intent", "outcome") for a in (HUB, PROD, STAGING)
    }


def test_plan_accounts_groups_the_text_by_account_with_a_line_per_account(
    estate: Estate,
) -> None:
    """Headings carry the account; every account ends with its own summary line."""
    code, out, _ = run_cli(estate, apply=False, output="text")
    assert code == 1  # legacy could not be read: an error outranks drift
    headings = [line for line in out.splitlines() if line.endswith("(policy web-prod)")]
    assert headings == [
        f"{a} {REGION} {estate.groups[a]} (policy web-prod)" for a in (PROD, HUB, STAGING)
    ]
    assert out.splitlines()[-4:] == [
        f"Account {PROD} (prod): 1 to revoke, 0 missing in 1 of 1 managed groups.",
        f"Account {HUB} (hub): 1 to revoke, 0 missing in 1 of 1 managed groups.",
        f"Account {STAGING} (staging): 1 to revoke, 0 missing in 1 of 1 managed groups.",
        f"Account {LEGACY} (legacy): not reconciled (1 error, above).",
    ]


def test_plan_accounts_without_errors_exits_2_on_drift_and_0_after_apply(
    estate: Estate,
) -> None:
    """With only reachable accounts the exit codes are plan's usual ones."""
    estate.accounts.write_text(ACCOUNTS.rsplit("  - {id", 1)[0], encoding="utf-8")
    assert run_cli(estate, apply=False)[0] == 2
    assert run_cli(estate, apply=True)[0] == 0
    code, out, _ = run_cli(estate, apply=False)
    assert code == 0
    assert json.loads(out)["summary"]["managed_groups"] == 3


def test_accounts_file_mistakes_stop_the_run_before_any_aws_call(
    estate: Estate, tmp_path: Path
) -> None:
    """An invalid accounts file prints file:line errors; --region with --accounts is refused."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(f'role_name: r\nregions: [{REGION}]\naccounts:\n  - id: "1"\n', encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    options = AwsOptions(None, (), None)
    common: dict[str, Any] = {"apply": True, "output": "json", "accounts": bad}
    bad_file = ReconcileRequest(estate.policies, options, **common)
    assert cmd_reconcile(bad_file, Console(out, err)) == 1
    assert err.getvalue().splitlines() == [
        f"{bad}:4: accounts[0].id: '1' is not an account id (12 digits, quoted)",
        f"error: 1 problem(s) in {bad}; nothing was changed",
    ]
    with_region = AwsOptions(None, (REGION,), None)
    err = io.StringIO()
    with_bad = ReconcileRequest(estate.policies, with_region, **common)
    assert cmd_reconcile(with_bad, Console(out, err)) == 1
    assert "--accounts and --region exclude each other" in err.getvalue()
    assert out.getvalue() == ""
    assert estate.live(HUB) == {KEEP, DRIFT}


def test_organizations_discovery_reaches_active_accounts_except_the_excluded(
    aws: None, tmp_path: Path
) -> None:
    """Every ACTIVE account of the organization is planned, minus excluded and closed ones."""
    org = boto3.client("organizations", region_name=REGION)
    org.create_organization(FeatureSet="ALL")
    created = {}
    for name in ("prod", "sandbox", "closed"):
        status = org.create_account(AccountName=name, Email=f"{name}@example.com")
        created[name] = status["CreateAccountStatus"]["AccountId"]
    org.close_account(AccountId=created["closed"])
    groups = {}
    for account in (HUB, *created.values()):
        world = World.create(account_session(account).client("ec2"))
        groups[account] = world.group("web", {"Name": "prod-sg"}, [KEEP, DRIFT])
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(
        f"role_name: {MEMBER_ROLE}\nregions: [{REGION}]\n"
        f'organizations:\n  exclude: ["{created["sandbox"]}"]\n',
        encoding="utf-8",
    )
    out, err = io.StringIO(), io.StringIO()
    request = ReconcileRequest(
        write_policies(tmp_path / "policies", POLICY),
        AwsOptions(None, (), None),
        output="json",
        accounts=accounts,
    )
    code = cmd_reconcile(request, Console(out, err))
    doc = json.loads(out.getvalue())
    assert code == 2
    reached = {a["account"]: a["name"] for a in doc["accounts"]}
    assert reached == {HUB: "master", created["prod"]: "prod"}
    assert {(c["account"], c["group_id"]) for c in doc["changes"]} == {
        (a, groups[a]) for a in reached
    }


# --- the hub Lambda --------------------------------------------------------------------------


def _restore(journal: Path, *extra: str) -> int:
    """``sg-reconciler restore`` with the default credentials: an operator in the hub account."""
    return main(["restore", "--journal", str(journal), "--region", REGION, *extra])


def test_restore_puts_each_rule_back_in_the_account_it_was_journaled_in(
    estate: Estate, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --accounts only the caller's account is restored and the others say how;
    with --accounts each member's rules go back through a role assumed there."""
    estate.accounts.write_text(ACCOUNTS.rsplit("  - {id", 1)[0], encoding="utf-8")
    journal = tmp_path / "journal.jsonl"
    assert run_cli(estate, apply=True, journal=journal)[0] == 0
    assert all(estate.live(a) == {KEEP} for a in (HUB, PROD, STAGING))
    capsys.readouterr()

    assert _restore(journal) == 1
    out = capsys.readouterr().out.splitlines()
    assert (estate.live(HUB), estate.live(PROD), estate.live(STAGING)) == (
        {KEEP, DRIFT},
        {KEEP},
        {KEEP},
    )
    rule = "ingress tcp 22 from 0.0.0.0/0 (no description) => failed: journaled in account"
    for member in (PROD, STAGING):
        at = out.index(f"{member} {REGION} {estate.groups[member]}")
        assert out[at + 1].endswith(
            f"{rule} {member}, but the credentials act in {HUB}; pass --accounts FILE to"
            " restore it through a role there"
        )
    assert (
        out[-1]
        == "Restore: 1 restored, 0 already present, 0 group gone, 2 failed (3 rules in 3 groups)."
    )

    # The member role may not authorize; an operator names a role that may.
    assert _restore(journal, "--accounts", str(estate.accounts), "--role-name", "operator") == 0
    out = capsys.readouterr().out.splitlines()
    assert all(estate.live(a) == {KEEP, DRIFT} for a in (HUB, PROD, STAGING))
    assert out[-1] == (
        "Restore: 2 restored, 1 already present, 0 group gone, 0 failed (3 rules in 3 groups)."
    )


def test_restore_fails_only_the_rules_of_an_account_the_file_does_not_reach(
    estate: Estate, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A journaled account missing from the accounts file fails its rules; others go back."""
    estate.accounts.write_text(ACCOUNTS.rsplit("  - {id", 1)[0], encoding="utf-8")
    journal = tmp_path / "journal.jsonl"
    assert run_cli(estate, apply=True, journal=journal)[0] == 0
    only_prod = tmp_path / "prod-only.yaml"
    only_prod.write_text(
        f'role_name: operator\nregions: [{REGION}]\naccounts:\n  - {{id: "{PROD}"}}\n',
        encoding="utf-8",
    )
    capsys.readouterr()
    assert _restore(journal, "--accounts", str(only_prod)) == 1
    out = capsys.readouterr().out
    assert f"=> failed: account {STAGING} is not in {only_prod}" in out
    assert (estate.live(HUB), estate.live(PROD), estate.live(STAGING)) == (
        {KEEP, DRIFT},
        {KEEP, DRIFT},
        {KEEP},
    )


def test_restore_role_name_needs_accounts_and_must_be_a_role_name(
    estate: Estate, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--role-name alone, or an invalid one, is a one-line error and restores nothing."""
    journal = tmp_path / "journal.jsonl"
    journal.write_text("", encoding="utf-8")
    assert _restore(journal, "--role-name", "operator") == 1
    assert capsys.readouterr().err.splitlines()[-1] == "error: --role-name needs --accounts FILE"
    assert _restore(journal, "--accounts", str(estate.accounts), "--role-name", "no spaces") == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "error: --role-name 'no spaces' is not an IAM role name"
    )


@pytest.fixture
def hub(estate: Estate) -> Responder:
    """A hub container: the estate's accounts file, on the hub principal's credentials."""
    env = {
        "SG_RECONCILER_POLICIES": str(estate.policies),
        "SG_RECONCILER_REGIONS": REGION,
        "SG_RECONCILER_ACCOUNTS": str(estate.accounts),
        "AWS_REGION": REGION,
    }
    return build_responder(env, session=estate.hub)


def forwarded(account: str, group_id: str, *, issuer: str | None = None) -> dict[str, Any]:
    """A real AuthorizeSecurityGroupIngress record (ssh from anywhere) made in ``account``."""
    record = json.loads(
        json.dumps(load_event("AuthorizeSecurityGroupIngress__panther-analysis__1")).replace(
            "112233445566", account
        )
    )
    record["requestParameters"]["groupId"] = group_id
    record["awsRegion"] = REGION
    if issuer is not None:
        record["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] = issuer
    return as_eventbridge(record)


def test_hub_reverts_a_forwarded_member_event_through_that_members_role(
    estate: Estate, hub: Responder
) -> None:
    """The event's account decides the role: the change in prod is revoked with prod's role."""
    assumed: list[dict[str, Any]] = []
    estate.hub.events.register(
        "provide-client-params.sts.AssumeRole", lambda params, **_: assumed.append(dict(params))
    )
    event = forwarded(PROD, estate.groups[PROD])
    for _ in range(2):
        summary, failed = iam_enforced(lambda: run_event(event, hub))
        assert not failed
        assert (summary["skipped_reason"], len(summary["revoked"])) == (None, 1)
        assert estate.live(PROD) == {KEEP}
        estate.worlds[PROD].authorize(estate.groups[PROD], DRIFT)  # the same change again
    (call,) = assumed  # the second event reuses the credentials
    assert call["RoleArn"] == f"arn:aws:iam::{PROD}:role/{MEMBER_ROLE}"
    assert call["RoleSessionName"].startswith("sg-reconciler-")
    assert estate.live(HUB) == {KEEP, DRIFT}  # the hub's own group was not touched


def test_hub_ignores_events_of_unknown_accounts_and_its_own_member_role(
    estate: Estate, hub: Responder
) -> None:
    """An account outside the file, and the member role's own revokes, lead to no action."""
    summary, failed = iam_enforced(
        lambda: run_event(forwarded(STRANGER, "sg-0123456789abcdef0"), hub)
    )
    assert (summary["trigger"], summary["skipped_reason"]) == (
        "ignored",
        f"account_not_managed:{STRANGER}",
    )
    own = f"arn:aws:iam::{PROD}:role/{MEMBER_ROLE}"
    summary, failed = iam_enforced(
        lambda: run_event(forwarded(PROD, estate.groups[PROD], issuer=own), hub)
    )
    assert summary["skipped_reason"] == "own_call"
    assert not failed
    assert estate.live(PROD) == {KEEP, DRIFT}


def test_hub_schedule_reconciles_every_account_and_reports_the_unreachable_one(
    estate: Estate, hub: Responder
) -> None:
    """A scheduled tick revokes drift in every reachable account and fails for the rest."""
    summary, failed = iam_enforced(lambda: run_event(load_event("synthetic__scheduled_event"), hub))
    assert failed
    assert sorted(summary["group_ids"]) == sorted(estate.groups[a] for a in (HUB, PROD, STAGING))
    assert len(summary["revoked"]) == 3
    (error,) = summary["errors"]
    assert error.startswith(f"{LEGACY} (legacy): cannot assume")
    for account in (HUB, PROD, STAGING):
        assert estate.live(account) == {KEEP}


def test_hub_with_an_invalid_accounts_file_fails_closed(estate: Estate) -> None:
    """A hub that cannot read its accounts acts nowhere and says why."""
    estate.accounts.write_text("role_name: r\nregions: [nowhere]\naccounts: []\n")
    env = {
        "SG_RECONCILER_POLICIES": str(estate.policies),
        "SG_RECONCILER_ACCOUNTS": str(estate.accounts),
        "AWS_REGION": REGION,
    }
    responder = build_responder(env, session=estate.hub)
    summary, failed = run_event(forwarded(PROD, estate.groups[PROD]), responder)
    assert failed
    assert summary["skipped_reason"] == "policies_invalid"
    assert any("regions[0]: 'nowhere' is not a region name" in e for e in summary["errors"])
    assert estate.live(PROD) == {KEEP, DRIFT}


# --- packaging a hub ---------------------------------------------------------------------------


def test_package_ships_the_accounts_file_and_refuses_an_invalid_one(tmp_path: Path) -> None:
    """``--accounts`` puts the file at accounts.yaml in the zip; a bad file builds nothing."""
    import zipfile  # noqa: PLC0415

    policies = write_policies(tmp_path / "policies", VALID_POLICY)
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(ACCOUNTS, encoding="utf-8")
    result = build_package(policies, tmp_path / "hub.zip", accounts=accounts, wheel_dir=WHEEL_CACHE)
    with zipfile.ZipFile(result.path) as archive:
        assert archive.read(ACCOUNTS_ENTRY) == accounts.read_bytes()
    accounts.write_text("role_name: r\n", encoding="utf-8")
    with pytest.raises(PolicyError):
        build_package(policies, tmp_path / "bad.zip", accounts=accounts, wheel_dir=WHEEL_CACHE)
    assert not (tmp_path / "bad.zip").exists()


def test_deploy_sets_member_role_name_from_the_accounts_file(tmp_path: Path) -> None:
    """A hub's MemberRoleName is the file's one role name; no --accounts means no hub."""
    single = tmp_path / "single.yaml"
    single.write_text(ACCOUNTS.replace(", role_name: legacy-admin", ""), encoding="utf-8")
    assert hub_parameters(load_accounts(single), "o-abcdefghij", str(single)) == {
        "MemberRoleName": MEMBER_ROLE,
        "OrganizationId": "o-abcdefghij",
    }
    assert hub_parameters(None, None) == {"MemberRoleName": ""}
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text(ACCOUNTS, encoding="utf-8")
    assert load_accounts(mixed).role_names() == {MEMBER_ROLE, "legacy-admin"}
    with pytest.raises(ParameterError, match="a hub assumes one role name"):
        hub_parameters(load_accounts(mixed), None, str(mixed))
