"""Deploy the CloudFormation stack: upload the package, then create or update through a change set.

The package goes to S3 under a content-addressed key (its sha256), so an unchanged package is
neither uploaded again nor seen by CloudFormation as a change. Every stack change goes through a
change set, which is printed before it runs (and only printed with ``dry_run``).
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_TEMPLATE",
    "PACKAGE_PREFIX",
    "DeployOutcome",
    "DeployResult",
    "ResourceChange",
    "default_bucket_name",
    "deploy_stack",
    "failure_reasons",
    "load_template",
    "package_key",
    "policy_documents",
    "template_ec2_actions",
    "template_parameter_defaults",
]

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import yaml
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.type_defs import ParameterTypeDef, StackEventTypeDef
    from mypy_boto3_s3 import S3Client

DEFAULT_TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "template.yaml"
PACKAGE_PREFIX = "sg-reconciler/"
TEMPLATE_BODY_LIMIT = 51_200  # bytes CloudFormation accepts inline; larger needs TemplateURL
CAPABILITIES: tuple[str, ...] = ("CAPABILITY_IAM", "CAPABILITY_NAMED_IAM")

# AWS marks a change set that changes nothing FAILED, with "The submitted information didn't
# contain changes..."; "No updates are to be performed" is the same answer on the update path
# (moto raises it from CreateChangeSet). Either means the stack already is what was asked.
_NO_CHANGE_REASONS = ("didn't contain changes", "No updates are to be performed")
# A CREATE change set first makes an empty stack in this state; it has no resources yet.
_EMPTY_STACK_STATES = frozenset({"REVIEW_IN_PROGRESS"})
_STACK_OK_STATES = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"})


class DeployOutcome(StrEnum):
    """What a deploy did."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "no changes"
    DRY_RUN = "dry run"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ResourceChange:
    """One line of a change set: what CloudFormation would do to one resource."""

    action: str
    logical_id: str
    resource_type: str
    replacement: str = ""

    def __str__(self) -> str:
        replace = f" (replacement: {self.replacement})" if self.replacement else ""
        return f"{self.action:<8} {self.logical_id} {self.resource_type}{replace}"


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
    changes: tuple[ResourceChange, ...] = ()
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


# --- the template ------------------------------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation's short-form tags (!Ref, !Sub, ...) as long forms."""


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    name = tag_suffix if tag_suffix in {"Ref", "Condition"} else f"Fn::{tag_suffix}"
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = DEFAULT_TEMPLATE) -> dict[str, Any]:
    """Parse a CloudFormation YAML template, intrinsic functions in their long form."""
    loaded = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(loaded, dict) or not isinstance(loaded.get("Resources"), dict):
        raise ValueError(f"{path}: not a CloudFormation template (no Resources mapping)")
    return loaded


def template_parameter_defaults(template: Mapping[str, Any]) -> dict[str, str | None]:
    """Each template parameter and its default as a string (None when it has no default)."""
    params: Mapping[str, Mapping[str, Any]] = template.get("Parameters", {})
    return {
        name: None if "Default" not in spec else str(spec["Default"])
        for name, spec in params.items()
    }


_SUB_VARIABLE = re.compile(r"\$\{[^}!]+\}")


def policy_documents(node: Any) -> Iterator[Mapping[str, Any]]:
    """Every policy document a template value can become (both branches of an Fn::If).

    A document may be a JSON string built with Fn::Sub (the only way to put a parameter in a
    condition key); its ${...} variables are replaced by a placeholder before parsing.
    """
    if isinstance(node, str):
        yield json.loads(_SUB_VARIABLE.sub("x", node))
    elif isinstance(node, Mapping) and "Fn::If" in node:
        _condition, when_true, when_false = node["Fn::If"]
        yield from policy_documents(when_true)
        yield from policy_documents(when_false)
    elif isinstance(node, Mapping) and "Fn::Sub" in node:
        sub = node["Fn::Sub"]
        yield from policy_documents(sub[0] if isinstance(sub, list) else sub)
    elif isinstance(node, Mapping) and "Statement" in node:
        yield node


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


class _Conditions:
    """The template's conditions, evaluated for one set of parameter values."""

    def __init__(self, template: Mapping[str, Any], parameters: Mapping[str, str] | None) -> None:
        defaults = template_parameter_defaults(template)
        self._values = {name: value or "" for name, value in defaults.items()}
        self._values.update(parameters or {})
        self._declared: Mapping[str, Any] = template.get("Conditions", {})
        self._cache: dict[str, bool] = {}

    def __call__(self, name: str) -> bool:
        if name not in self._cache:
            self._cache[name] = self._holds(self._declared[name])
        return self._cache[name]

    def _holds(self, node: Any) -> bool:
        ((function, args),) = node.items()
        if function == "Condition":
            return self(args)
        if function == "Fn::Equals":
            return str(self._value(args[0])) == str(self._value(args[1]))
        if function == "Fn::Not":
            return not self._holds(args[0])
        if function == "Fn::And":
            return all(self._holds(a) for a in args)
        if function == "Fn::Or":
            return any(self._holds(a) for a in args)
        raise ValueError(f"condition function {function} is not supported here")

    def _value(self, node: Any) -> Any:
        if isinstance(node, Mapping) and "Ref" in node:
            return self._values[node["Ref"]]  # KeyError: teach this a pseudo parameter
        return node

    def chosen(self, node: Any) -> Any:
        """The branch of (nested) Fn::If that holds; None for AWS::NoValue."""
        while isinstance(node, Mapping) and "Fn::If" in node:
            name, when_true, when_false = node["Fn::If"]
            node = when_true if self(name) else when_false
        return None if node == {"Ref": "AWS::NoValue"} else node


_POLICY_RESOURCES = frozenset(
    {"AWS::IAM::Policy", "AWS::IAM::RolePolicy", "AWS::IAM::ManagedPolicy"}
)


def template_ec2_actions(
    template_path: Path = DEFAULT_TEMPLATE, parameters: Mapping[str, str] | None = None
) -> frozenset[str]:
    """The ec2: actions the template's IAM policies allow once deployed with ``parameters``.

    Conditions are evaluated with the template's parameter defaults, overridden by
    ``parameters``: a role's inline policies (their Fn::If branch that holds) and the policy
    resources whose Condition holds.
    """
    template = load_template(template_path)
    conditions = _Conditions(template, parameters)
    documents: list[Any] = []
    for resource in template["Resources"].values():
        if "Condition" in resource and not conditions(resource["Condition"]):
            continue
        properties = resource.get("Properties", {})
        if resource.get("Type") == "AWS::IAM::Role":
            policies = map(conditions.chosen, properties.get("Policies", []))
            documents.extend(conditions.chosen(p["PolicyDocument"]) for p in policies if p)
        elif resource.get("Type") in _POLICY_RESOURCES:
            documents.append(conditions.chosen(properties["PolicyDocument"]))
    actions: set[str] = set()
    for document in (d for node in documents for d in policy_documents(node)):
        for statement in _as_list(document["Statement"]):
            if statement.get("Effect") != "Allow":
                continue
            actions.update(a for a in _as_list(statement.get("Action", [])) if a.startswith("ec2:"))
    return frozenset(actions)


# --- S3 ------------------------------------------------------------------------------------------


def default_bucket_name(account_id: str, region: str) -> str:
    """The bucket deploy creates when none is given: one per account and region."""
    return f"sg-reconciler-{account_id}-{region}"


def package_key(zip_bytes: bytes) -> str:
    """Content-addressed S3 key of a package: the same bytes always map to the same key."""
    return f"{PACKAGE_PREFIX}{hashlib.sha256(zip_bytes).hexdigest()}.zip"


def _status_code(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _bucket_exists(s3: S3Client, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if _status_code(exc) == 404 or _error_code(exc) in {"404", "NoSuchBucket"}:
            return False
        raise
    return True


def _create_bucket(s3: S3Client, bucket: str, region: str) -> None:
    """A private, versioned, encrypted bucket for packages."""
    if region == "us-east-1":  # the one region that refuses a LocationConstraint
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(
            Bucket=bucket,
            CreateBucketConfiguration={"LocationConstraint": region},  # type: ignore[typeddict-item]
        )
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )


def _object_exists(s3: S3Client, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if _status_code(exc) == 404 or _error_code(exc) in {"404", "NoSuchKey", "NotFound"}:
            return False
        raise
    return True


# --- CloudFormation ------------------------------------------------------------------------------


def _stack_status(cfn: CloudFormationClient, stack_name: str) -> str | None:
    """The stack's status, or None when there is no such stack."""
    try:
        stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return stacks[0]["StackStatus"] if stacks else None


def _stack_parameters(
    cfn: CloudFormationClient,
    stack_name: str,
    template: Mapping[str, Any],
    given: Mapping[str, str],
    *,
    updating: bool,
) -> list[ParameterTypeDef]:
    """The parameters for a change set.

    Like ``aws cloudformation deploy``, a parameter that is not given keeps its deployed value on
    an update. Where that value is the template default, the parameter is simply omitted (which
    means the same), so that an unchanged deploy sends the same parameters as the last one.
    """
    defaults = template_parameter_defaults(template)
    params: list[ParameterTypeDef] = [
        {"ParameterKey": k, "ParameterValue": v} for k, v in sorted(given.items())
    ]
    if updating:
        stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
        current = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", [])}
        for name in sorted(defaults):
            if name in given or name not in current:
                continue
            if current[name] != defaults[name]:
                params.append({"ParameterKey": name, "UsePreviousValue": True})
    return params


def failure_reasons(events: Iterable[StackEventTypeDef]) -> tuple[str, ...]:
    """One line per failed resource event, oldest first: ``LogicalId (Type) STATUS: reason``.

    ``events`` is describe_stack_events' list (newest first) for the operation that failed.
    """
    lines = []
    for event in events:
        status = event.get("ResourceStatus", "")
        reason = event.get("ResourceStatusReason", "")
        if not status.endswith("_FAILED") or not reason:
            continue
        resource = event.get("LogicalResourceId", "?")
        kind = event.get("ResourceType", "?")
        lines.append(f"{resource} ({kind}) {status}: {reason}")
    return tuple(reversed(lines))


def _events_since(
    cfn: CloudFormationClient, stack_name: str, newest_before: str | None
) -> list[StackEventTypeDef]:
    """Stack events newer than the event id ``newest_before`` (all when None), newest first."""
    events: list[StackEventTypeDef] = []
    for page in cfn.get_paginator("describe_stack_events").paginate(StackName=stack_name):
        for event in page["StackEvents"]:
            if event["EventId"] == newest_before:
                return events
            events.append(event)
    return events


def _newest_event_id(cfn: CloudFormationClient, stack_name: str) -> str | None:
    try:
        events = cfn.describe_stack_events(StackName=stack_name)["StackEvents"]
    except ClientError:
        return None
    return events[0]["EventId"] if events else None


def _changes(cfn: CloudFormationClient, change_set_id: str) -> tuple[ResourceChange, ...]:
    changes: list[ResourceChange] = []
    token: str | None = None
    while True:
        page = (
            cfn.describe_change_set(ChangeSetName=change_set_id, NextToken=token)
            if token
            else cfn.describe_change_set(ChangeSetName=change_set_id)
        )
        for change in page.get("Changes", []):
            rc = change.get("ResourceChange", {})
            changes.append(
                ResourceChange(
                    action=rc.get("Action", "?"),
                    logical_id=rc.get("LogicalResourceId", "?"),
                    resource_type=rc.get("ResourceType", "?"),
                    replacement=rc.get("Replacement", "") if rc.get("Action") == "Modify" else "",
                )
            )
        token = page.get("NextToken")
        if not token:
            return tuple(changes)


def _remove_empty_stack(cfn: CloudFormationClient, stack_name: str) -> None:
    """Delete the empty REVIEW_IN_PROGRESS stack a CREATE change set leaves behind."""
    if _stack_status(cfn, stack_name) in _EMPTY_STACK_STATES:
        cfn.delete_stack(StackName=stack_name)


def _discard_change_set(
    cfn: CloudFormationClient, change_set_id: str, stack_name: str, *, new_stack: bool
) -> None:
    """Delete a change set that will not run (and, for a new stack, the empty stack)."""
    cfn.delete_change_set(ChangeSetName=change_set_id)
    if new_stack:
        _remove_empty_stack(cfn, stack_name)


def _outputs(cfn: CloudFormationClient, stack_name: str) -> dict[str, str]:
    stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", []) if "OutputKey" in o}


def deploy_stack(
    *,
    session: boto3.Session,
    stack_name: str,
    region: str,
    zip_path: Path,
    bucket: str | None,
    parameters: Mapping[str, str],
    endpoint_url: str | None,
    dry_run: bool,
    out: TextIO,
    template_path: Path = DEFAULT_TEMPLATE,
    poll_seconds: float = 5.0,
    timeout_seconds: float = 1800.0,
    sleep: Callable[[float], None] = time.sleep,
) -> DeployResult:
    """Upload ``zip_path`` and create or update ``stack_name`` from the template.

    ``parameters`` are template parameters (CodeS3Bucket and CodeS3Key are set here); on an
    update, parameters not given keep their deployed values. A change set with no changes is a
    success that changes nothing. ``dry_run`` uploads nothing, prints the change set and
    deletes it. Progress goes to ``out``; the result carries the same facts as data.
    """
    zip_bytes = zip_path.read_bytes()
    run = _Run(
        cfn=session.client("cloudformation", region_name=region, endpoint_url=endpoint_url),
        s3=session.client("s3", region_name=region, endpoint_url=endpoint_url),
        out=out,
        stack_name=stack_name,
        region=region,
        key=package_key(zip_bytes),
        wait=_Waiter(poll_seconds, timeout_seconds, sleep),
    )
    try:
        if bucket:
            run.bucket = bucket
        else:
            sts = session.client("sts", region_name=region, endpoint_url=endpoint_url)
            run.bucket = default_bucket_name(sts.get_caller_identity()["Account"], region)
        run.upload(zip_bytes, create=not bucket, dry_run=dry_run)
        return run.deploy(template_path, parameters, dry_run=dry_run)
    except _DeployFailedError as failed:
        return run.failed(failed.failures, failed.stack_status)
    except (ClientError, BotoCoreError) as exc:
        return run.failed([str(exc)])


@dataclass(frozen=True, slots=True)
class _Waiter:
    poll_seconds: float
    timeout_seconds: float
    sleep: Callable[[float], None]

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


@dataclass(slots=True)
class _Run:
    """One deploy: the clients, what has happened so far, and the steps."""

    cfn: CloudFormationClient
    s3: S3Client
    out: TextIO
    stack_name: str
    region: str
    key: str
    wait: _Waiter
    bucket: str = ""
    uploaded: bool = False
    status: str = ""
    changes: tuple[ResourceChange, ...] = ()

    def upload(self, zip_bytes: bytes, *, create: bool, dry_run: bool) -> None:
        """Put the package in S3 unless it is already there."""
        url = f"s3://{self.bucket}/{self.key}"
        if not _bucket_exists(self.s3, self.bucket):
            if not create:
                raise _DeployFailedError(
                    [f"bucket {self.bucket} does not exist (omit --bucket to create one)"]
                )
            if dry_run:
                _say(self.out, f"Would create bucket {self.bucket} and upload {url}")
                return
            _create_bucket(self.s3, self.bucket, self.region)
            _say(self.out, f"Created bucket {self.bucket} (private, versioned)")
        elif _object_exists(self.s3, self.bucket, self.key):
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
        current = _stack_status(self.cfn, self.stack_name)
        self.status = current or ""
        if current is None or current in _EMPTY_STACK_STATES:
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

    def deploy(
        self, template_path: Path, parameters: Mapping[str, str], *, dry_run: bool
    ) -> DeployResult:
        """Create the change set, show it, and execute it (or delete it on a dry run)."""
        template = load_template(template_path)
        body = template_path.read_text(encoding="utf-8")
        if len(body.encode()) > TEMPLATE_BODY_LIMIT:
            raise _DeployFailedError([f"{template_path} is over {TEMPLATE_BODY_LIMIT} bytes"])
        current = self.current_status()
        updating = current is not None and current not in _EMPTY_STACK_STATES
        params = _stack_parameters(
            self.cfn,
            self.stack_name,
            template,
            {**parameters, "CodeS3Bucket": self.bucket, "CodeS3Key": self.key},
            updating=updating,
        )
        name = (
            f"sg-reconciler-{datetime.now(UTC):%Y%m%d%H%M%S}-{self.key[len(PACKAGE_PREFIX) :][:8]}"
        )
        try:
            change_set_id = self.cfn.create_change_set(
                StackName=self.stack_name,
                ChangeSetName=name,
                ChangeSetType="UPDATE" if updating else "CREATE",
                TemplateBody=body,
                Parameters=params,
                Capabilities=list(CAPABILITIES),  # type: ignore[arg-type]
                Description=f"sg-reconciler package {self.key}",
            )["Id"]
        except ClientError as exc:
            if any(reason in str(exc) for reason in _NO_CHANGE_REASONS):
                return self.unchanged()
            if not updating:
                _remove_empty_stack(self.cfn, self.stack_name)
            raise
        if not self.review(change_set_id, name, new_stack=not updating):
            return self.unchanged()
        if dry_run:
            _discard_change_set(self.cfn, change_set_id, self.stack_name, new_stack=not updating)
            _say(self.out, f"Stack {self.stack_name}: dry run, change set deleted")
            return self.result(DeployOutcome.DRY_RUN)
        self.execute(change_set_id)
        outputs = _outputs(self.cfn, self.stack_name)
        _say(self.out, f"Stack {self.stack_name}: {self.status}")
        for output, value in sorted(outputs.items()):
            _say(self.out, f"  {output} = {value}")
        outcome = DeployOutcome.UPDATED if updating else DeployOutcome.CREATED
        return self.result(outcome, outputs=outputs)

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
            _discard_change_set(self.cfn, change_set_id, self.stack_name, new_stack=new_stack)
            if any(r in reason for r in _NO_CHANGE_REASONS):
                return False
            raise _DeployFailedError([f"change set {name} failed: {reason}"])
        self.changes = _changes(self.cfn, change_set_id)
        _say(self.out, f"Change set {name} ({len(self.changes)} changes):")
        for change in self.changes:
            _say(self.out, f"  {change}")
        return True

    def execute(self, change_set_id: str) -> None:
        """Run the change set and wait; on failure, raise with the failed resources' reasons."""
        newest = _newest_event_id(self.cfn, self.stack_name)
        self.cfn.execute_change_set(ChangeSetName=change_set_id)
        self.status = self.wait.until(
            lambda: _stack_status(self.cfn, self.stack_name) or "DELETE_COMPLETE",
            lambda s: s.endswith("_IN_PROGRESS"),
            f"stack {self.stack_name}",
        )
        if self.status not in _STACK_OK_STATES:
            reasons = failure_reasons(_events_since(self.cfn, self.stack_name, newest))
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
            region=self.region,
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
        self.status = _stack_status(self.cfn, self.stack_name) or ""
        _say(self.out, f"Stack {self.stack_name}: no changes")
        return self.result(DeployOutcome.UNCHANGED, outputs=_outputs(self.cfn, self.stack_name))

    def failed(self, failures: Iterable[str], status: str = "") -> DeployResult:
        """Print and return a failure, one line per reason."""
        lines = tuple(failures)
        self.status = status or self.status
        suffix = f" ({self.status})" if self.status else ""
        _say(self.out, f"Stack {self.stack_name}: deploy failed{suffix}")
        for line in lines:
            _say(self.out, f"  {line}")
        return self.result(DeployOutcome.FAILED, failures=lines)
