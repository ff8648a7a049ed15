"""Where journal entries go: a local JSON-lines file, an S3 object per run, or the log.

Every writer keeps an entry before ``record`` returns, so an intent exists before its
revoke call: the file is flushed and fsynced, and the S3 journal logs each entry at once
(the object is only written at the end of the run). ``read_entries`` reads any of them
back for ``sg-reconciler undo``.
"""

from __future__ import annotations

__all__ = [
    "MAX_REPORTED_PROBLEMS",
    "FileJournal",
    "LogJournal",
    "S3Journal",
    "parse_s3_source",
    "read_entries",
    "s3_object_key",
]

import json
import os
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from reconciler.core.errors import JournalReadError, JournalUnavailable
from reconciler.core.journal import JournalEntry, RunContext, parse_time

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.literals import ServerSideEncryptionType

log = structlog.get_logger("reconciler.journal")

MAX_REPORTED_PROBLEMS = 20  # a corrupt file yields one line per problem up to this many


def _line(entry: JournalEntry) -> str:
    return json.dumps(entry.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n"


class FileJournal:
    """Appends one JSON line per entry to a local file, on disk before ``record`` returns.

    The file (and its directory) is created when the journal is opened, so a journal that
    cannot be written is known before anything is read or changed; a file it created and
    wrote nothing to is removed on ``close`` (a failed run leaves no empty journal). Each
    line is one unbuffered append followed by fsync: nothing held in memory can be lost.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.recorded = 0
        self._created = not path.exists()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            # mkdir says "File exists" when a file sits where the directory should be.
            reason = (
                f"{exc.filename} is not a directory"
                if isinstance(exc, FileExistsError)
                else exc.strerror or str(exc)
            )
            raise JournalUnavailable(f"cannot open journal {path}: {reason}") from None

    def record(self, entry: JournalEntry) -> None:
        """Append and fsync one entry; raises JournalUnavailable if it could not be kept."""
        if self._fd is None:
            raise JournalUnavailable(f"cannot write journal {self.path}: it is closed")
        data = _line(entry).encode("utf-8")
        try:
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
            os.fsync(self._fd)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise JournalUnavailable(f"cannot write journal {self.path}: {reason}") from None
        self.recorded += 1

    def close(self) -> str | None:
        """Close the file (every entry is already on disk); remove it if we made it for nothing."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            if self._created and not self.recorded:
                self.path.unlink(missing_ok=True)
        return None


class LogJournal:
    """Logs each entry as one ``journal`` line (a Lambda with no journal bucket)."""

    def __init__(self) -> None:
        self.recorded = 0

    def record(self, entry: JournalEntry) -> None:
        """Log one entry."""
        log.info("journal", **entry.to_dict())
        self.recorded += 1

    def close(self) -> str | None:
        """Nothing to flush."""
        return None


def s3_object_key(prefix: str, context: RunContext) -> str:
    """``{prefix}/{YYYY}/{MM}/{DD}/{run_id}.jsonl``, dated by the run's start (UTC)."""
    day = parse_time(context.time).astimezone(UTC)
    stem = f"{day:%Y/%m/%d}/{context.run_id}.jsonl"
    clean = prefix.strip("/")
    return f"{clean}/{stem}" if clean else stem


class S3Journal:
    """One S3 object per run; each entry is also logged at once, before its revoke call.

    ``close`` writes the object (server-side encrypted) and returns an error message
    instead of raising when S3 cannot be reached: the revokes have happened, and the log
    holds every entry.
    """

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        prefix: str,
        context: RunContext,
        *,
        server_side_encryption: ServerSideEncryptionType = "AES256",
    ) -> None:
        self._client = client
        self.bucket = bucket
        self.key = s3_object_key(prefix, context)
        self._encryption = server_side_encryption
        self._entries: list[JournalEntry] = []
        self._closed = False

    @property
    def recorded(self) -> int:
        """Entries recorded so far."""
        return len(self._entries)

    def record(self, entry: JournalEntry) -> None:
        """Keep the entry for the object, and log it now."""
        self._entries.append(entry)
        log.info("journal", **entry.to_dict())

    def close(self) -> str | None:
        """Write the run's object (if anything was recorded); an error message if S3 failed."""
        if self._closed or not self._entries:
            self._closed = True
            return None
        body = "".join(_line(e) for e in self._entries).encode("utf-8")
        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=self.key,
                Body=body,
                ContentType="application/x-ndjson",
                ServerSideEncryption=self._encryption,
            )
        except (ClientError, BotoCoreError) as exc:
            log.error(
                "journal_unavailable",
                bucket=self.bucket,
                key=self.key,
                entries=len(self._entries),
                error=str(exc),
            )
            return f"journal: cannot write s3://{self.bucket}/{self.key}: {exc}"
        self._closed = True
        log.info("journal_written", bucket=self.bucket, key=self.key, entries=len(self._entries))
        return None


def parse_s3_source(source: str) -> tuple[str, str] | None:
    """(bucket, prefix) of an ``s3://BUCKET/PREFIX`` source; None for a local path."""
    if not source.startswith("s3://"):
        return None
    bucket, _, prefix = source[len("s3://") :].partition("/")
    if not bucket:
        raise JournalReadError((f"{source}: no bucket (expected s3://BUCKET/PREFIX)",))
    return bucket, prefix


def read_entries(source: str, *, s3: S3Client | None = None) -> list[JournalEntry]:
    """Every entry of a JSONL file, or of every object under ``s3://BUCKET/PREFIX``.

    Nothing is skipped silently: an unreadable source or any malformed line raises
    JournalReadError with one problem per line, each naming ``file:line``. Blank lines
    are allowed. Objects are read in key order (the keys are dated).
    """
    where = parse_s3_source(source)
    if where is None:
        return _read_file(Path(source))
    if s3 is None:
        raise JournalReadError((f"{source}: an S3 client is needed to read this journal",))
    return _read_s3(s3, *where)


def _read_file(path: Path) -> list[JournalEntry]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise JournalReadError((f"{path}: cannot read journal: {exc.strerror or exc}",)) from None
    entries, problems = _parse(data, str(path))
    if problems:
        raise JournalReadError(problems)
    return entries


def _read_s3(client: S3Client, bucket: str, prefix: str) -> list[JournalEntry]:
    entries: list[JournalEntry] = []
    problems: list[str] = []
    try:
        keys = sorted(
            item["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix
            )
            for item in page.get("Contents", [])
            if not item["Key"].endswith("/")
        )
        for key in keys:
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            found, wrong = _parse(body, f"s3://{bucket}/{key}")
            entries += found
            problems += wrong
    except (ClientError, BotoCoreError) as exc:
        raise JournalReadError((f"s3://{bucket}/{prefix}: cannot read journal: {exc}",)) from None
    if problems:
        raise JournalReadError(problems)
    return entries


def _parse(data: bytes, where: str) -> tuple[list[JournalEntry], list[str]]:
    entries: list[JournalEntry] = []
    problems: list[str] = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], [f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})"]
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(JournalEntry.from_dict(json.loads(line)))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            problems.append(f"{where}:{number}: malformed journal entry: {exc}")
    if len(problems) > MAX_REPORTED_PROBLEMS:
        more = len(problems) - MAX_REPORTED_PROBLEMS
        problems = [*problems[:MAX_REPORTED_PROBLEMS], f"{where}: and {more} more malformed lines"]
    return entries, problems
