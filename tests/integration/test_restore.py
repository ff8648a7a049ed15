"""Undo: `sg-reconciler restore` puts journaled revokes back exactly, in-process against moto."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import structlog

from reconciler.cli import main
from reconciler.cli.options import AwsOptions
from reconciler.core.rules import RuleKey
from reconciler.log import configure_logging
from reconciler.runtime import build_responder, run_event
from tests.eventfiles import load_event
from tests.moto_rules import aws_like_rule_descriptions
from tests.policyfiles import write_policies
from tests.world import DEFAULT_EGRESS, REGION, CallCounter, World, egress, ingress

pytestmark = pytest.mark.fake_ec2  # decisions: the in-memory EC2 of tests/fake_ec2.py

POLICY = """
groups:
  - name: web
    match: {tags: {team: web}}
    ingress:
      - {protocol: tcp, ports: 443, from: [10.0.0.0/8], description: internal https}
    egress:
      - {protocol: all, to: [0.0.0.0/0]}
"""
KEEP = ingress("tcp", (443, 443), "10.0.0.0/8")
SSH = ingress("tcp", (22, 22), "0.0.0.0/0")
RDP6 = ingress("tcp", (3389, 3389), "::/0")
SMTP = egress("tcp", (25, 25), "0.0.0.0/0")


def _drift(world: World) -> list[tuple[RuleKey, str | None]]:
    """Drift of every peer kind and protocol shape, each with a description (one without)."""
    peer = world.group("app")
    prefix_list = world.ec2.create_managed_prefix_list(
        PrefixListName="office", MaxEntries=5, AddressFamily="IPv4"
    )["PrefixList"]["PrefixListId"]
    return [
        (SSH, "ssh from anywhere"),
        (RDP6, "rdp over IPv6"),
        (ingress("tcp", (5432, 5432), peer), "db from app"),
        (ingress("tcp", (8443, 8443), prefix_list), "admin from the office list"),
        (ingress("all", None, "192.168.0.0/16"), "lab: everything"),
        (ingress("icmp", (8, 0), "10.0.0.0/8"), "ping"),
        (ingress("icmpv6", (-1, -1), "::/0"), None),
        (ingress("udp", (1000, 2000), "172.16.0.0/12"), "udp range"),
        (SMTP, "smtp out"),
        (egress("all", None, "::/0"), "everything out over IPv6"),
        (egress("tcp", (443, 443), peer), "to app"),
    ]


def _apply(policies: Path, journal: Path) -> int:
    return main(
        ["apply", "--policies", str(policies), "--region", REGION, "--journal", str(journal)]
    )


def _restore(journal: Path | str, *extra: str) -> int:
    return main(["restore", "--journal", str(journal), *extra])


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    """The web baseline: https from 10/8 in, all traffic out."""
    return write_policies(tmp_path / "policies", POLICY)


@pytest.fixture
def _aws_like_descriptions() -> Iterator[None]:
    """Group-reference and prefix-list rules keep their descriptions, as on AWS."""
    with aws_like_rule_descriptions():
        yield


@pytest.fixture
def cli_session(session: boto3.Session, monkeypatch: pytest.MonkeyPatch) -> boto3.Session:
    """The CLI runs on the test's session, so that its calls can be counted."""
    monkeypatch.setattr(AwsOptions, "session", lambda _self: session)
    return session


@pytest.mark.usefixtures("_aws_like_descriptions")
def test_apply_then_restore_gives_back_every_rule_with_its_description(
    tmp_path: Path, world: World, policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After apply and restore the group's rules and descriptions are what they were."""
    drift = _drift(world)
    group = world.group("web", {"team": "web"}, [(KEEP, "internal https"), *drift])
    before = world.descriptions(group)
    assert len(before) == 2 + len(drift)
    assert all(before[key] == description for key, description in drift)
    journal = tmp_path / "journal.jsonl"
    assert _apply(policies, journal) == 0
    assert world.live(group) == {KEEP, DEFAULT_EGRESS}
    capsys.readouterr()

    assert _restore(journal) == 0
    out = capsys.readouterr().out.splitlines()
    assert world.descriptions(group) == before
    assert out[0] == f"{REGION} {group}"
    assert len(out) == 1 + len(drift) + 1
    assert all(line.endswith("=> restored") for line in out[1:-1]), out
    assert "  + restore sgr-" in out[1]
    assert any(
        line.endswith(" ingress tcp 22 from 0.0.0.0/0 (ssh from anywhere) => restored")
        for line in out
    )
    assert any(
        line.endswith(" ingress icmpv6 all types from ::/0 (no description) => restored")
        for line in out
    )
    assert out[-1] == (
        f"Restore: {len(drift)} restored, 0 already present, 0 group gone, 0 failed"
        f" ({len(drift)} rules in 1 groups)."
    )


def test_restore_again_is_idempotent(
    tmp_path: Path,
    world: World,
    session: boto3.Session,
    policies: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A second restore exits 0, reports every rule already present, and changes nothing."""
    group = world.group("web", {"team": "web"}, [KEEP, (SSH, "temp"), (RDP6, "rdp"), SMTP])
    before = world.descriptions(group)
    journal = tmp_path / "journal.jsonl"
    assert _apply(policies, journal) == 0
    assert _restore(journal) == 0
    capsys.readouterr()
    ids = {
        r["SecurityGroupRuleId"]
        for r in world.ec2.describe_security_group_rules(
            Filters=[{"Name": "group-id", "Values": [group]}]
        )["SecurityGroupRules"]
    }
    assert _restore(journal) == 0
    out = capsys.readouterr().out.splitlines()
    assert world.descriptions(group) == before
    after_ids = {
        r["SecurityGroupRuleId"]
        for r in world.ec2.describe_security_group_rules(
            Filters=[{"Name": "group-id", "Values": [group]}]
        )["SecurityGroupRules"]
    }
    assert after_ids == ids
    assert all(line.endswith("=> already_present") for line in out[1:-1]), out
    assert out[-1] == (
        "Restore: 0 restored, 3 already present, 0 group gone, 0 failed (3 rules in 1 groups)."
    )


def test_a_batch_with_one_rule_already_back_restores_the_others(
    tmp_path: Path, world: World, policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A duplicate in the batch is retried rule by rule: the rest still go in."""
    group = world.group("web", {"team": "web"}, [KEEP, (SSH, "ssh"), (RDP6, "rdp")])
    journal = tmp_path / "journal.jsonl"
    assert _apply(policies, journal) == 0
    # Someone already put ssh back. (It sorts first in the batch: moto, unlike AWS, applies
    # the permissions before a duplicate, so a later duplicate would blur the statuses.)
    world.authorize(group, SSH, "ssh")
    capsys.readouterr()
    assert _restore(journal) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].endswith("ingress tcp 22 from 0.0.0.0/0 (ssh) => already_present")
    assert out[2].endswith("ingress tcp 3389 from ::/0 (rdp) => restored")
    assert world.live(group) == {KEEP, SSH, RDP6, DEFAULT_EGRESS}


def test_filters_by_group_rule_id_and_time(
    tmp_path: Path, world: World, policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--group-id, --rule-id and --since restore only what they select."""
    web = world.group("web", {"team": "web"}, [KEEP, (SSH, "ssh"), (RDP6, "rdp")])
    api = world.group("api", {"team": "web"}, [KEEP, (SSH, "api ssh")])
    journal = tmp_path / "journal.jsonl"
    assert _apply(policies, journal) == 0
    entries = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines()]
    rdp_id = next(e["rule_id"] for e in entries if e["group_id"] == web and e["from_port"] == 3389)

    assert _restore(journal, "--group-id", api) == 0
    assert world.live(api) == {KEEP, SSH, DEFAULT_EGRESS}
    assert world.live(web) == {KEEP, DEFAULT_EGRESS}

    assert _restore(journal, "--rule-id", rdp_id) == 0
    assert world.live(web) == {KEEP, RDP6, DEFAULT_EGRESS}

    capsys.readouterr()
    assert _restore(journal, "--since", "2999-01-01T00:00:00Z") == 0
    assert capsys.readouterr().out == (
        "Nothing to restore: no revoked rule in the journal matches.\n"
    )
    assert world.live(web) == {KEEP, RDP6, DEFAULT_EGRESS}

    assert _restore(journal, "--since", "2000-01-01T00:00:00+02:00") == 0
    assert world.live(web) == {KEEP, SSH, RDP6, DEFAULT_EGRESS}


def test_dry_run_prints_what_it_would_restore_and_calls_nothing(
    tmp_path: Path,
    world: World,
    cli_session: boto3.Session,
    policies: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--dry-run lists each rule and makes no EC2 call at all."""
    group = world.group("web", {"team": "web"}, [KEEP, (SSH, "ssh")])
    journal = tmp_path / "journal.jsonl"
    assert _apply(policies, journal) == 0
    capsys.readouterr()
    counter = CallCounter(cli_session)
    assert _restore(journal, "--dry-run") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].endswith(" ingress tcp 22 from 0.0.0.0/0 (ssh) => would restore")
    assert out[-1] == "Dry run: 1 rules in 1 groups would be restored; nothing was changed."
    assert world.live(group) == {KEEP, DEFAULT_EGRESS}
    assert sum(counter.calls.values()) == 0
    assert _restore(journal) == 0
    assert counter.calls == {"AuthorizeSecurityGroupIngress": 1}  # the counter does count


def test_a_deleted_group_is_reported_group_gone_and_exits_1(
    tmp_path: Path, world: World, policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rules of a group that no longer exists cannot come back: group_gone, exit 1."""
    gone = world.group("gone", {"team": "web"}, [KEEP, (SSH, "ssh"), (RDP6, "rdp")])
    kept = world.group("kept", {"team": "web"}, [KEEP, (SSH, "ssh")])
    journal = tmp_path / "journal.jsonl"
    assert _apply(policies, journal) == 0
    world.ec2.delete_security_group(GroupId=gone)
    capsys.readouterr()
    assert _restore(journal) == 1
    out = capsys.readouterr().out.splitlines()
    gone_lines = out[out.index(f"{REGION} {gone}") + 1 :][:2]
    assert all("=> group_gone: InvalidGroup.NotFound" in line for line in gone_lines), out
    assert out[-1].startswith("Restore: 1 restored, 0 already present, 2 group gone, 0 failed")
    assert world.live(kept) == {KEEP, SSH, DEFAULT_EGRESS}


def test_undo_and_its_former_name_restore_print_the_same_and_exit_the_same(
    tmp_path: Path,
    world: World,
    policies: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`undo` is the command and `restore` its alias: same options, same output, same codes."""
    monkeypatch.setenv("SG_RECONCILER_LOG_LEVEL", "WARNING")  # info logs carry a timestamp
    world.group("web", {"team": "web"}, [KEEP, (SSH, "temp"), (RDP6, "rdp"), SMTP])
    journal = tmp_path / "journal.jsonl"
    assert _apply(policies, journal) == 0
    capsys.readouterr()
    for extra in (["--dry-run"], ["--since", "2025-01-01T00:00"]):
        printed = []
        for name in ("undo", "restore"):
            code = main([name, "--journal", str(journal), *extra])
            printed.append((code, *capsys.readouterr()))
        assert printed[0] == printed[1], extra
        assert printed[0][0] == (0 if extra == ["--dry-run"] else 1)
    assert main(["undo", "--journal", str(journal)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "Restore: 3 restored, 0 already present, 0 group gone, 0 failed (3 rules in 1 groups)."
    )
    assert main(["restore", "--journal", str(journal)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "Restore: 0 restored, 3 already present, 0 group gone, 0 failed (3 rules in 1 groups)."
    )


def test_a_malformed_journal_line_is_one_error_naming_file_and_line(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """A corrupt line stops the restore before any call, with file:line."""
    journal = tmp_path / "journal.jsonl"
    journal.write_text('{"phase": "outcome"}\n', encoding="utf-8")
    assert _restore(journal) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: {journal}:1: malformed journal entry: missing field 'run_id'",
        "error: the journal cannot be used; nothing was restored",
    ]


def test_a_naive_since_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--since without a time zone is an error with the fix, exit 1."""
    assert _restore(tmp_path / "journal.jsonl", "--since", "2025-01-01T00:00") == 1
    assert capsys.readouterr().err == (
        "error: --since '2025-01-01T00:00' has no time zone (add Z or an offset such as +01:00)\n"
    )


def test_interrupted_revokes_are_flagged_and_restored_on_request(
    tmp_path: Path, world: World, policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Intents without an outcome are warned about, and --include-unconfirmed restores them."""
    group = world.group("web", {"team": "web"}, [KEEP, (SSH, "ssh")])
    journal = tmp_path / "journal.jsonl"
    assert _apply(policies, journal) == 0
    # Keep only the intent, as if the process died right after the revoke call.
    lines = journal.read_text(encoding="utf-8").splitlines()
    journal.write_text(
        "".join(f"{line}\n" for line in lines if '"phase":"intent"' in line), encoding="utf-8"
    )
    capsys.readouterr()
    assert _restore(journal) == 0
    warnings = [
        line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")
    ]
    assert warnings == [
        "warning: 1 revokes in the journal have no outcome (an interrupted run) and were not"
        " restored; add --include-unconfirmed to restore them too"
    ]
    assert SSH not in world.live(group)
    assert _restore(journal, "--include-unconfirmed") == 0
    assert world.descriptions(group)[SSH] == "ssh"


def test_restore_from_the_lambdas_s3_journal(
    tmp_path: Path,
    world: World,
    session: boto3.Session,
    policies: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What a scheduled Lambda run revoked comes back from s3://bucket/prefix."""
    s3 = session.client("s3")
    s3.create_bucket(Bucket="journal-bucket")
    env = {
        "SG_RECONCILER_POLICIES": str(policies),
        "SG_RECONCILER_REGIONS": REGION,
        "SG_RECONCILER_JOURNAL_BUCKET": "journal-bucket",
    }
    drift: list[Any] = [(SSH, "ssh"), (SMTP, "smtp")]
    group = world.group("web", {"team": "web"}, [KEEP, *drift])
    before = world.descriptions(group)
    summary, failed = run_event(
        load_event("synthetic__scheduled_event"), build_responder(env, session=session)
    )
    assert not failed
    assert len(summary["revoked"]) == 2
    assert _restore("s3://journal-bucket/journal") == 0
    assert world.descriptions(group) == before


def test_restore_help_says_it_needs_operator_credentials(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The help names the authorize permissions the Lambda role lacks, and the re-revoke trap."""
    with pytest.raises(SystemExit) as exited:
        main(["restore", "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "Needs ec2:AuthorizeSecurityGroupIngress/Egress, which the Lambda's role does not" in (
        text
    )
    assert "run it with an operator's credentials" in text
    assert "or the next reconcile revokes them again" in text


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Logs as the Lambda writes them (JSON lines), into a buffer; the old set-up restored."""
    saved = structlog.get_config()
    log = io.StringIO()
    configure_logging(stream=log, json=True)
    yield log
    structlog.configure(**saved)


def test_restore_from_the_log_when_the_bucket_was_unavailable(
    tmp_path: Path, world: World, session: boto3.Session, policies: Path, json_log: io.StringIO
) -> None:
    """The ``journal`` lines a Lambda logs are entries restore reads (the S3 fallback)."""
    group = world.group("web", {"team": "web"}, [KEEP, (SSH, "ssh"), (SMTP, "smtp")])
    before = world.descriptions(group)
    env = {
        "SG_RECONCILER_POLICIES": str(policies),
        "SG_RECONCILER_REGIONS": REGION,
        "SG_RECONCILER_JOURNAL_BUCKET": "bucket-that-is-gone",
    }
    summary, _ = run_event(
        load_event("synthetic__scheduled_event"), build_responder(env, session=session)
    )
    assert any(
        e.startswith("journal: cannot write s3://bucket-that-is-gone/") for e in summary["errors"]
    )
    assert world.live(group) == {KEEP, DEFAULT_EGRESS}
    # What `aws logs filter-log-events --filter-pattern '{ $.event = "journal" }'` returns.
    records = [json.loads(line) for line in json_log.getvalue().splitlines()]
    journal = tmp_path / "from-logs.jsonl"
    journal.write_text(
        "".join(json.dumps(r) + "\n" for r in records if r["event"] == "journal"),
        encoding="utf-8",
    )
    assert _restore(journal) == 0
    assert world.descriptions(group) == before
