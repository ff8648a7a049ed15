"""Deploy the CloudFormation stack: upload the package, then create or update through a change set.

The package goes to S3 under a content-addressed key (its sha256, ``reconciler.deploy.bucket``),
so an unchanged package is neither uploaded again nor seen by CloudFormation as a change. Every
stack change goes through a change set, which is printed before it runs (and only printed with
``dry_run``).
"""

from __future__ import annotations

__all__ = [
    "DeployOutcome",
    "DeployRequest",
    "DeployResult",
    "Polling",
    "deploy_stack",
]

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from reconciler.deploy import cloudformation as cf
from reconciler.deploy.bucket import (
    PACKAGE_PREFIX,
    bucket_exists,
    create_bucket,
    default_bucket_name,
    object_exists,
    package_key,
)
from reconciler.deploy.template import TEMPLATE_BODY_LIMIT, load_template
from reconciler.resources import deploy_template

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable
    from pathlib import Path

    import boto3
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.type_defs import ParameterTypeDef
    from mypy_boto3_s3 import S3Client


class DeployOutcome(StrEnum):
    """What a deploy did."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "no changes"
    DRY_RUN = "dry run"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class DeployRequest:
    """One stack in one region from one package: what ``deploy_stack`` is asked to do.

    ``parameters`` are template parameters (CodeS3Bucket and CodeS3Key are set by the deploy);
    on an update, parameters not given keep their deployed values. Without ``bucket`` the
    account's default bucket is used, and created when missing. ``template`` defaults to the
    shipped stack.
    """

    stack_name: str
    region: str
    zip_path: Path
    parameters: Mapping[str, str] = field(default_factory=dict)
    bucket: str | None = None
    dry_run: bool = False
    template: Traversable = field(default_factory=deploy_template)


@dataclass(frozen=True, slots=True)
class Polling:
    """How a deploy waits for CloudFormation: every ``poll_seconds``, for ``timeout_seconds``."""

    poll_seconds: float = 5.0
    timeout_seconds: float = 1800.0
    sleep: Callable[[float], None] = time.sleep

    def until(self, describe: Callable[[], str], busy: Callable[[str], bool], what: str) -> str:
        """Poll ``describe`` until the status it returns is no longer busy."""
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            status = describe()
            if not busy(status):
                return status
            if time.monotonic() >= deadline:
                raise _DeployFailedError(
                    [f"timed out after {self.timeout_seconds:.0f}s: {what} is {status}"], status
                )
            self.sleep(self.poll_seconds)


@dataclass(frozen=True, slots=True)
class DeployResult:
    """The outcome of ``deploy_stack``; ``failures`` holds one line per failed resource."""

    outcome: DeployOutcome
    stack_name: str
    region: str
    bucket: str
    key: str
    uploaded: bool = False
    stack_status: str = ""
    changes: tuple[cf.ResourceChange, ...] = ()
    outputs: Mapping[str, str] = field(default_factory=dict)
    failures: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True unless the deploy failed."""
        return self.outcome is not DeployOutcome.FAILED


class _DeployFailedError(Exception):
    """Internal: stops a deploy; carries the lines that explain why."""

    def __init__(self, failures: Iterable[str], stack_status: str = "") -> None:
        self.failures = tuple(failures)
        self.stack_status = stack_status
        super().__init__("; ".join(self.failures))


def _say(out: TextIO, line: str) -> None:
    out.write(f"{line}\n")


def deploy_stack(
    request: DeployRequest,
    *,
    session: boto3.Session,
    out: TextIO,
    endpoint_url: str | None = None,
    polling: Polling | None = None,
) -> DeployResult:
    """Upload the request's package and create or update its stack from the template.

    A change set with no changes is a success that changes nothing. A dry run uploads nothing,
    prints the change set and deletes it. Progress goes to ``out``; the result carries the same
    facts as data. AWS errors end the deploy as a failed result, never as an exception.
    """
    zip_bytes = request.zip_path.read_bytes()
    region = request.region
    run = _Run(
        cfn=session.client("cloudformation", region_name=region, endpoint_url=endpoint_url),
        s3=session.client("s3", region_name=region, endpoint_url=endpoint_url),
        out=out,
        request=request,
        key=package_key(zip_bytes),
        wait=polling or Polling(),
    )
    try:
        if request.bucket:
            run.bucket = request.bucket
        else:
            sts = session.client("sts", region_name=region, endpoint_url=endpoint_url)
            run.bucket = default_bucket_name(sts.get_caller_identity()["Account"], region)
        run.upload(zip_bytes)
        return run.deploy()
    except _DeployFailedError as failed:
        return run.failed(failed.failures, failed.stack_status)
    except (ClientError, BotoCoreError) as exc:
        return run.failed([str(exc)])


@dataclass(slots=True)
class _Run:
    """One deploy: the clients, what has happened so far, and the steps."""

    cfn: CloudFormationClient
    s3: S3Client
    out: TextIO
    request: DeployRequest
    key: str
    wait: Polling
    bucket: str = ""
    uploaded: bool = False
    status: str = ""
    changes: tuple[cf.ResourceChange, ...] = ()

    @property
    def stack_name(self) -> str:
        """The stack this run deploys."""
        return self.request.stack_name

    def upload(self, zip_bytes: bytes) -> None:
        """Put the package in S3 unless it is already there (a dry run only says what it would)."""
        url = f"s3://{self.bucket}/{self.key}"
        dry_run = self.request.dry_run
        if not bucket_exists(self.s3, self.bucket):
            if self.request.bucket:
                raise _DeployFailedError(
                    [f"bucket {self.bucket} does not exist (omit --bucket to create one)"]
                )
            if dry_run:
                _say(self.out, f"Would create bucket {self.bucket} and upload {url}")
                return
            create_bucket(self.s3, self.bucket, self.request.region)
            _say(self.out, f"Created bucket {self.bucket} (private, versioned)")
        elif object_exists(self.s3, self.bucket, self.key):
            _say(self.out, f"Package {url} already uploaded")
            return
        if dry_run:
            _say(self.out, f"Would upload {url}")
            return
        self.s3.put_object(
            Bucket=self.bucket, Key=self.key, Body=zip_bytes, ContentType="application/zip"
        )
        self.uploaded = True
        _say(self.out, f"Uploaded {url}")

    def current_status(self) -> str | None:
        """The stack's status, refusing states in which it cannot be changed."""
        current = cf.stack_status(self.cfn, self.stack_name)
        self.status = current or ""
        if current is None or current in cf.EMPTY_STACK_STATES:
            return current
        if current.endswith("_IN_PROGRESS"):
            raise _DeployFailedError(
                [f"stack {self.stack_name} is busy ({current}); wait for it and deploy again"],
                current,
            )
        if current == "ROLLBACK_COMPLETE":
            raise _DeployFailedError(
                [
                    f"stack {self.stack_name} is ROLLBACK_COMPLETE after a failed create and"
                    " cannot be updated; delete it (aws cloudformation delete-stack"
                    f" --stack-name {self.stack_name}) and deploy again"
                ],
                current,
            )
        return current

    def deploy(self) -> DeployResult:
        """Create the change set, show it, and execute it (or delete it on a dry run)."""
        source = self.request.template
        template = load_template(source)
        body = source.read_text(encoding="utf-8")
        if len(body.encode()) > TEMPLATE_BODY_LIMIT:
            raise _DeployFailedError([f"{source} is over {TEMPLATE_BODY_LIMIT} bytes"])
        current = self.current_status()
        updating = current is not None and current not in cf.EMPTY_STACK_STATES
        given = {**self.request.parameters, "CodeS3Bucket": self.bucket, "CodeS3Key": self.key}
        params = cf.change_set_parameters(
            self.cfn, self.stack_name, template, given, updating=updating
        )
        name = (
            f"sg-reconciler-{datetime.now(UTC):%Y%m%d%H%M%S}-{self.key[len(PACKAGE_PREFIX) :][:8]}"
        )
        change_set_id = self.create_change_set(name, body, params, updating=updating)
        if change_set_id is None or not self.review(change_set_id, name, new_stack=not updating):
            return self.unchanged()
        if self.request.dry_run:
            cf.discard_change_set(self.cfn, change_set_id, self.stack_name, new_stack=not updating)
            _say(self.out, f"Stack {self.stack_name}: dry run, change set deleted")
            return self.result(DeployOutcome.DRY_RUN)
        self.execute(change_set_id)
        outputs = cf.stack_outputs(self.cfn, self.stack_name)
        _say(self.out, f"Stack {self.stack_name}: {self.status}")
        for output, value in sorted(outputs.items()):
            _say(self.out, f"  {output} = {value}")
        outcome = DeployOutcome.UPDATED if updating else DeployOutcome.CREATED
        return self.result(outcome, outputs=outputs)

    def create_change_set(
        self, name: str, body: str, params: list[ParameterTypeDef], *, updating: bool
    ) -> str | None:
        """Create change set ``name`` of template ``body``; None when it would change nothing."""
        try:
            return self.cfn.create_change_set(
                StackName=self.stack_name,
                ChangeSetName=name,
                ChangeSetType="UPDATE" if updating else "CREATE",
                TemplateBody=body,
                Parameters=params,
                Capabilities=list(cf.CAPABILITIES),  # type: ignore[arg-type]
                Description=f"sg-reconciler package {self.key}",
            )["Id"]
        except ClientError as exc:
            if any(reason in str(exc) for reason in cf.NO_CHANGE_REASONS):
                return None
            if not updating:
                cf.remove_empty_stack(self.cfn, self.stack_name)
            raise

    def review(self, change_set_id: str, name: str, *, new_stack: bool) -> bool:
        """Wait for the change set and print it; False when it holds no changes."""
        status = self.wait.until(
            lambda: self.cfn.describe_change_set(ChangeSetName=change_set_id)["Status"],
            lambda s: s in {"CREATE_PENDING", "CREATE_IN_PROGRESS"},
            f"change set {name}",
        )
        if status == "FAILED":
            reason = self.cfn.describe_change_set(ChangeSetName=change_set_id).get(
                "StatusReason", ""
            )
            cf.discard_change_set(self.cfn, change_set_id, self.stack_name, new_stack=new_stack)
            if any(r in reason for r in cf.NO_CHANGE_REASONS):
                return False
            raise _DeployFailedError([f"change set {name} failed: {reason}"])
        self.changes = cf.change_set_changes(self.cfn, change_set_id)
        _say(self.out, f"Change set {name} ({len(self.changes)} changes):")
        for change in self.changes:
            _say(self.out, f"  {change}")
        return True

    def execute(self, change_set_id: str) -> None:
        """Run the change set and wait; on failure, raise with the failed resources' reasons."""
        newest = cf.newest_event_id(self.cfn, self.stack_name)
        self.cfn.execute_change_set(ChangeSetName=change_set_id)
        self.status = self.wait.until(
            lambda: cf.stack_status(self.cfn, self.stack_name) or "DELETE_COMPLETE",
            lambda s: s.endswith("_IN_PROGRESS"),
            f"stack {self.stack_name}",
        )
        if self.status not in cf.STACK_OK_STATES:
            reasons = cf.failure_reasons(cf.events_since(self.cfn, self.stack_name, newest))
            raise _DeployFailedError(
                reasons or [f"stack {self.stack_name} ended {self.status}"], self.status
            )

    def result(
        self,
        outcome: DeployOutcome,
        *,
        outputs: Mapping[str, str] | None = None,
        failures: tuple[str, ...] = (),
    ) -> DeployResult:
        """The result so far, with ``outcome``."""
        return DeployResult(
            outcome=outcome,
            stack_name=self.stack_name,
            region=self.request.region,
            bucket=self.bucket,
            key=self.key,
            uploaded=self.uploaded,
            stack_status=self.status,
            changes=self.changes,
            outputs=dict(outputs or {}),
            failures=failures,
        )

    def unchanged(self) -> DeployResult:
        """The stack already is what this deploy asks for."""
        self.status = cf.stack_status(self.cfn, self.stack_name) or ""
        _say(self.out, f"Stack {self.stack_name}: no changes")
        outputs = cf.stack_outputs(self.cfn, self.stack_name)
        return self.result(DeployOutcome.UNCHANGED, outputs=outputs)

    def failed(self, failures: Iterable[str], status: str = "") -> DeployResult:
        """Print and return a failure, one line per reason."""
        lines = tuple(failures)
        self.status = status or self.status
        suffix = f" ({self.status})" if self.status else ""
        _say(self.out, f"Stack {self.stack_name}: deploy failed{suffix}")
        for line in lines:
            _say(self.out, f"  {line}")
        return self.result(DeployOutcome.FAILED, failures=lines)
