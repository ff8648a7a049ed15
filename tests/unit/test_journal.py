"""Journal entries, their selection for restore, and the file journal (no AWS)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reconciler.adapters.journal import (
    MAX_REPORTED_PROBLEMS,
    FileJournal,
    LogJournal,
    parse_s3_source,
    read_entries,
    s3_object_key,
)
from reconciler.core.errors import JournalReadError, JournalUnavailable
from reconciler.core.journal import JournalEntry, RunContext, parse_time, select_undoable
from reconciler.core.plan import Action, Change, Status
from reconciler.core.rules import Direction, RuleKey
from reconciler.undo import UndoOutcome, UndoReport, UndoStatus, render_undo

WEB = "sg-0aaaaaaaaaaaaaaa1"
DB = "sg-0aaaaaaaaaaaaaaa2"
SSH = RuleKey(Direction.INGRESS, "tcp", 22, 22, "0.0.0.0/0")
ALL6 = RuleKey(Direction.EGRESS, "all", None, None, "::/0")
CONTEXT = RunContext(
    run_id="run1",
    trigger="cli-apply",
    time="2025-03-01T10:00:00+00:00",
    actor="arn:aws:iam::123456789012:user/ops",
    event_id=None,
)


def _change(key: RuleKey = SSH, *, group: str = WEB, rule_id: str = "sgr-1") -> Change:
    return Change(
        action=Action.REVOKE,
        region="us-east-1",
        group_id=group,
        policy="web",
        key=key,
        rule_id=rule_id,
        description="temp ssh",
        reason="not in policy web",
        account="123456789012",
    )


def _entry(
    phase: str = "outcome",
    *,
    key: RuleKey = SSH,
    group: str = WEB,
    rule_id: str = "sgr-1",
    run_id: str = "run1",
    time: str = "2025-03-01T10:00:01+00:00",
    status: str | None = "revoked",
    description: str | None = "temp ssh",
    region: str = "us-east-1",
) -> JournalEntry:
    context = replace(CONTEXT, run_id=run_id)
    change = replace(
        _change(key, group=group, rule_id=rule_id), description=description, region=region
    )
    return JournalEntry.for_change(
        "intent" if phase == "intent" else "outcome",
        change,
        context,
        time=time,
        status=Status(status) if status and phase == "outcome" else None,
    )


def test_an_entry_carries_everything_needed_to_recreate_the_rule_and_round_trips() -> None:
    """for_change records rule, group, ids, time, trigger and actor; to_dict/from_dict agree."""
    entry = JournalEntry.for_change("intent", _change(), CONTEXT)
    data = entry.to_dict()
    assert data == {
        "phase": "intent",
        "run_id": "run1",
        "time": "2025-03-01T10:00:00+00:00",
        "trigger": "cli-apply",
        "actor": "arn:aws:iam::123456789012:user/ops",
        "event_id": None,
        "account": "123456789012",
        "region": "us-east-1",
        "group_id": WEB,
        "policy": "web",
        "rule_id": "sgr-1",
        "direction": "ingress",
        "protocol": "tcp",
        "from_port": 22,
        "to_port": 22,
        "source": "0.0.0.0/0",
        "description": "temp ssh",
        "status": None,
        "error": None,
        "guardrail": None,
    }
    assert JournalEntry.from_dict(json.loads(json.dumps(data))) == entry
    assert entry.key == SSH


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"region": None}, "region: expected a string, got None"),
        ({"from_port": "22"}, "from_port: expected an integer or null, got '22'"),
        ({"to_port": True}, "to_port: expected an integer or null, got True"),
        ({"phase": "maybe"}, "phase: unknown phase 'maybe' (intent or outcome)"),
        ({"direction": "sideways"}, "direction: unknown direction 'sideways'"),
        ({"description": 5}, "description: expected a string or null, got 5"),
        (
            {"time": "2025-03-01T10:00:00"},
            "'2025-03-01T10:00:00' has no time zone (add Z or an offset such as +01:00)",
        ),
    ],
)
def test_from_dict_names_the_field_that_is_wrong(change: dict[str, Any], message: str) -> None:
    """A line with a wrong field is refused with the field's name and what was expected."""
    data = _entry().to_dict() | change
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        JournalEntry.from_dict(data)


def test_from_dict_refuses_a_missing_field_and_a_non_object() -> None:
    """A missing required field or a line that is not an object is a ValueError."""
    data = _entry().to_dict()
    del data["source"]
    with pytest.raises(ValueError, match="missing field 'source'"):
        JournalEntry.from_dict(data)
    with pytest.raises(ValueError, match="expected a JSON object, got list"):
        JournalEntry.from_dict([1, 2])


def test_parse_time_needs_a_time_zone() -> None:
    """Z and offsets are accepted; a naive time and a non-time are refused with the fix."""
    assert parse_time("2025-03-01T10:00:00Z") == datetime(2025, 3, 1, 10, tzinfo=UTC)
    assert parse_time("2025-03-01T11:00:00+01:00") == datetime(2025, 3, 1, 10, tzinfo=UTC)
    with pytest.raises(ValueError, match="has no time zone"):
        parse_time("2025-03-01")
    with pytest.raises(
        ValueError, match=re.escape("is not an ISO 8601 time (e.g. 2025-01-31T14:00:00Z)")
    ):
        parse_time("yesterday")


def test_only_confirmed_revokes_are_selected() -> None:
    """Intents, failures and already-absent outcomes are never restored; revoked ones are."""
    entries = [
        _entry("intent"),
        _entry(),
        _entry(rule_id="sgr-2", key=ALL6, status="failed"),
        _entry(rule_id="sgr-3", key=ALL6, status="already_absent"),
    ]
    selection = select_undoable(entries)
    assert [e.rule_id for e in selection.entries] == ["sgr-1"]
    assert selection.unconfirmed == ()
    assert selection.runs == 1


def test_filters_since_group_rule_and_region_combine() -> None:
    """--since is inclusive; group, rule and region filters keep only matching entries."""
    early = _entry(rule_id="sgr-1", time="2025-03-01T09:00:00+00:00")
    late = _entry(rule_id="sgr-2", key=ALL6, time="2025-03-01T11:00:00+00:00")
    other_group = _entry(rule_id="sgr-3", group=DB, time="2025-03-01T11:00:00+00:00")
    other_region = _entry(rule_id="sgr-4", region="eu-west-1", time="2025-03-01T12:00:00Z")
    entries = [early, late, other_group, other_region]
    since = datetime(2025, 3, 1, 11, tzinfo=UTC)
    assert [e.rule_id for e in select_undoable(entries, since=since).entries] == [
        "sgr-4",
        "sgr-2",
        "sgr-3",
    ]
    assert select_undoable(entries, group_ids=[DB]).entries == (other_group,)
    assert select_undoable(entries, rule_ids=["sgr-1", "sgr-4"]).entries == (
        other_region,
        early,
    )
    assert select_undoable(entries, regions=["us-east-1"], since=since).entries == (
        late,
        other_group,
    )


def test_a_rule_revoked_twice_is_restored_once_with_its_latest_description() -> None:
    """Identical rules are de-duplicated; the latest revoke's description wins."""
    first = _entry(rule_id="sgr-1", run_id="a", description="old", time="2025-03-01T09:00:00Z")
    second = _entry(rule_id="sgr-9", run_id="b", description="new", time="2025-03-02T09:00:00Z")
    selection = select_undoable([second, first])
    assert selection.entries == (second,)
    assert selection.runs == 1


def test_the_same_rule_journaled_in_two_accounts_is_two_rules_ordered_by_account() -> None:
    """A hub's journal names the account: equal group ids in two accounts are not merged."""
    here = replace(_entry(), account="222222222222")
    there = replace(_entry(), account="111111111111")
    assert select_undoable([here, there]).entries == (there, here)
    intent = replace(_entry("intent"), account="333333333333")
    assert select_undoable([here, there, intent]).unconfirmed == (intent,)


def test_intents_without_an_outcome_are_listed_and_restored_only_when_asked() -> None:
    """An interrupted run's intents are reported as unconfirmed; the flag includes them."""
    done = [_entry("intent", run_id="a"), _entry(run_id="a")]
    interrupted = _entry("intent", run_id="b", rule_id="sgr-7", key=ALL6)
    selection = select_undoable([*done, interrupted])
    assert [e.rule_id for e in selection.entries] == ["sgr-1"]
    assert selection.unconfirmed == (interrupted,)
    included = select_undoable([*done, interrupted], include_unconfirmed=True)
    assert [e.rule_id for e in included.entries] == ["sgr-7", "sgr-1"]  # egress sorts first


def test_file_journal_creates_its_directory_and_appends_one_line_per_entry(
    tmp_path: Path,
) -> None:
    """Each record is a JSON line on disk at once; a second journal appends to the same file."""
    path = tmp_path / "a" / "b" / "journal.jsonl"
    journal = FileJournal(path)
    journal.record(_entry("intent"))
    assert len(path.read_text(encoding="utf-8").splitlines()) == 1  # before close
    journal.record(_entry())
    assert journal.close() is None
    again = FileJournal(path)
    again.record(_entry(rule_id="sgr-2"))
    again.close()
    assert [e.rule_id for e in read_entries(str(path))] == ["sgr-1", "sgr-1", "sgr-2"]
    assert [e.phase for e in read_entries(str(path))] == ["intent", "outcome", "outcome"]


def test_file_journal_that_recorded_nothing_leaves_no_file_it_created(tmp_path: Path) -> None:
    """A journal opened and closed without an entry removes the file it made, not an old one."""
    path = tmp_path / "journal.jsonl"
    FileJournal(path).close()
    assert not path.exists()
    path.write_text("", encoding="utf-8")  # someone else's (empty) file stays
    FileJournal(path).close()
    assert path.exists()


def test_file_journal_that_cannot_be_opened_says_where_and_why(tmp_path: Path) -> None:
    """A file where the directory should be, or a directory as the path, is one clear line."""
    blocker = tmp_path / "blocker"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(JournalUnavailable) as caught:
        FileJournal(blocker / "journal.jsonl")
    assert str(caught.value) == (
        f"cannot open journal {blocker}/journal.jsonl: {blocker} is not a directory"
    )
    with pytest.raises(
        JournalUnavailable, match=f"^cannot open journal {tmp_path}: Is a directory$"
    ):
        FileJournal(tmp_path)


def test_file_journal_on_a_full_disk_raises_journal_unavailable() -> None:
    """A write that the disk refuses (ENOSPC) is JournalUnavailable, not an OSError."""
    journal = FileJournal(Path("/dev/full"))
    with pytest.raises(JournalUnavailable, match=r"^cannot write journal /dev/full: No space left"):
        journal.record(_entry())
    journal.close()


def test_log_journal_logs_every_entry_as_a_journal_event() -> None:
    """Without a bucket each entry is one structured ``journal`` log line."""
    from structlog.testing import capture_logs  # noqa: PLC0415

    journal = LogJournal()
    with capture_logs() as logs:
        journal.record(_entry())
    assert journal.close() is None
    assert logs == [{"event": "journal", "log_level": "info", **_entry().to_dict()}]


def test_a_malformed_line_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    """Bad JSON and bad entries are reported as file:line each; blank lines are fine."""
    path = tmp_path / "journal.jsonl"
    good = json.dumps(_entry().to_dict())
    bad_port = json.dumps(_entry().to_dict() | {"from_port": "x"})
    path.write_text(f"{good}\n\n{{not json\n{bad_port}\n", encoding="utf-8")
    with pytest.raises(JournalReadError) as caught:
        read_entries(str(path))
    assert caught.value.problems == (
        f"{path}:3: malformed journal entry: Expecting property name enclosed in double quotes:"
        " line 1 column 2 (char 1)",
        f"{path}:4: malformed journal entry: from_port: expected an integer or null, got 'x'",
    )


def test_many_malformed_lines_are_capped_with_a_count(tmp_path: Path) -> None:
    """A file that is not a journal at all gives a bounded list of problems and a count."""
    path = tmp_path / "notes.txt"
    path.write_text("hello\n" * 50, encoding="utf-8")
    with pytest.raises(JournalReadError) as caught:
        read_entries(str(path))
    assert len(caught.value.problems) == MAX_REPORTED_PROBLEMS + 1
    assert caught.value.problems[-1] == f"{path}: and 30 more malformed lines"


def test_a_missing_journal_file_is_an_error(tmp_path: Path) -> None:
    """Reading a journal that does not exist says so, with the path."""
    with pytest.raises(JournalReadError) as caught:
        read_entries(str(tmp_path / "nope.jsonl"))
    assert caught.value.problems == (
        f"{tmp_path}/nope.jsonl: cannot read journal: No such file or directory",
    )


def test_s3_sources_and_object_keys() -> None:
    """s3://bucket/prefix splits in two; objects are dated by the run's UTC day."""
    assert parse_s3_source("s3://bucket/journal") == ("bucket", "journal")
    assert parse_s3_source("s3://bucket") == ("bucket", "")
    assert parse_s3_source("journal.jsonl") is None
    with pytest.raises(JournalReadError, match="no bucket"):
        parse_s3_source("s3:///journal")
    late = replace(CONTEXT, time="2025-03-01T23:30:00-02:00")
    assert s3_object_key("journal", late) == "journal/2025/03/02/run1.jsonl"
    assert s3_object_key("/a/b/", CONTEXT) == "a/b/2025/03/01/run1.jsonl"
    assert s3_object_key("", CONTEXT) == "2025/03/01/run1.jsonl"


def test_restore_text_has_a_line_per_group_and_rule_and_a_summary() -> None:
    """Each rule shows its old id, the rule, its description and what happened."""
    report = UndoReport(
        outcomes=(
            UndoOutcome(_entry(), UndoStatus.RESTORED),
            UndoOutcome(
                _entry(rule_id="sgr-2", key=ALL6, description=None), UndoStatus.ALREADY_PRESENT
            ),
            UndoOutcome(
                _entry(group=DB, rule_id="sgr-3"),
                UndoStatus.GROUP_GONE,
                "InvalidGroup.NotFound: gone",
            ),
            UndoOutcome(
                replace(_entry(group=DB, rule_id="sgr-4"), account=None), UndoStatus.RESTORED
            ),
        )
    )
    account = _entry().account
    assert account is not None
    assert render_undo(report, dry_run=False).splitlines() == [
        f"{account} us-east-1 {WEB}",
        "  + restore sgr-1 ingress tcp 22 from 0.0.0.0/0 (temp ssh) => restored",
        "  + restore sgr-2 egress all to ::/0 (no description) => already_present",
        f"{account} us-east-1 {DB}",
        "  + restore sgr-3 ingress tcp 22 from 0.0.0.0/0 (temp ssh) => group_gone:"
        " InvalidGroup.NotFound: gone",
        # A single-account run journals no account: the heading is region and group.
        f"us-east-1 {DB}",
        "  + restore sgr-4 ingress tcp 22 from 0.0.0.0/0 (temp ssh) => restored",
        "Restore: 2 restored, 1 already present, 1 group gone, 0 failed (4 rules in 3 groups).",
    ]
    assert report.failed
    assert render_undo(UndoReport(outcomes=()), dry_run=False) == (
        "Nothing to restore: no revoked rule in the journal matches."
    )
