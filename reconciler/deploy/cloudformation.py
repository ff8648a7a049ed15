"""The CloudFormation calls of a deploy: stack status, change set parameters and contents, events.

Each function is one question to CloudFormation, with the answer in our terms; the order of the
steps (and what is printed) is ``reconciler.deploy.stack``'s.
"""

from __future__ import annotations

__all__ = [
    "CAPABILITIES",
    "EMPTY_STACK_STATES",
    "NO_CHANGE_REASONS",
    "STACK_OK_STATES",
    "ResourceChange",
    "change_set_changes",
    "change_set_parameters",
    "discard_change_set",
    "events_since",
    "failure_reasons",
    "newest_event_id",
    "remove_empty_stack",
    "stack_outputs",
    "stack_status",
]

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from reconciler.deploy.template import template_parameter_defaults

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.type_defs import ParameterTypeDef, StackEventTypeDef

CAPABILITIES: tuple[str, ...] = ("CAPABILITY_IAM", "CAPABILITY_NAMED_IAM")
# AWS marks a change set that changes nothing FAILED, with "The submitted information didn't
# contain changes..."; "No updates are to be performed" is the same answer on the update path
# (moto raises it from CreateChangeSet). Either means the stack already is what was asked.
NO_CHANGE_REASONS = ("didn't contain changes", "No updates are to be performed")
# A CREATE change set first makes an empty stack in this state; it has no resources yet.
EMPTY_STACK_STATES = frozenset({"REVIEW_IN_PROGRESS"})
STACK_OK_STATES = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"})


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


def stack_status(cfn: CloudFormationClient, stack_name: str) -> str | None:
    """The stack's status, or None when there is no such stack."""
    try:
        stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return stacks[0]["StackStatus"] if stacks else None


def change_set_parameters(
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


def events_since(
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


def newest_event_id(cfn: CloudFormationClient, stack_name: str) -> str | None:
    """The id of the stack's latest event, None when it has none (or does not exist)."""
    try:
        events = cfn.describe_stack_events(StackName=stack_name)["StackEvents"]
    except ClientError:
        return None
    return events[0]["EventId"] if events else None


def change_set_changes(cfn: CloudFormationClient, change_set_id: str) -> tuple[ResourceChange, ...]:
    """Every resource change of a change set, in CloudFormation's order (all pages)."""
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


def remove_empty_stack(cfn: CloudFormationClient, stack_name: str) -> None:
    """Delete the empty REVIEW_IN_PROGRESS stack a CREATE change set leaves behind."""
    if stack_status(cfn, stack_name) in EMPTY_STACK_STATES:
        cfn.delete_stack(StackName=stack_name)


def discard_change_set(
    cfn: CloudFormationClient, change_set_id: str, stack_name: str, *, new_stack: bool
) -> None:
    """Delete a change set that will not run (and, for a new stack, the empty stack)."""
    cfn.delete_change_set(ChangeSetName=change_set_id)
    if new_stack:
        remove_empty_stack(cfn, stack_name)


def stack_outputs(cfn: CloudFormationClient, stack_name: str) -> dict[str, str]:
    """The stack's outputs, by output key."""
    stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", []) if "OutputKey" in o}
