"""CloudTrail, EventBridge and SNS payloads -> which security groups to look at.

``parse_event`` turns whatever the Lambda was invoked with into a tuple of triggers:

- ``ApiCall``: one successful EC2 call that touched security groups (reconcile those);
- ``ScheduledTick``: the periodic sweep (reconcile everything);
- ``Ignored``: anything else, with a short machine-friendly reason.

The payload is read through ``Wire`` (reconciler.adapters.event_wire), a read-only view of
each JSON object: every read names the AWS key (mirroring AWS casing), keys it does not read
are ignored, and every read is lenient (a value of the wrong type reads as absent) so that
one odd field never hides the groups a call touched. What it reads is converted once, here,
into frozen dataclasses (reconciler.adapters.event_triggers).
Plain dict reads rather than pydantic models keep pydantic off the Lambda's import path.

Reasons an event is ignored:

- ``error_code:<code>``: the call failed (codes come with or without ``Client.``);
- ``other_source:<source>``: not EC2 (an envelope ``source`` such as ``aws.s3``, a record
  ``eventSource`` such as ``s3.amazonaws.com``, or an SNS-style record such as ``aws:sqs``);
- ``other_detail_type:<detail-type>``: an ``aws.ec2``/``aws.events`` event that is neither a
  CloudTrail record nor a Scheduled Event (e.g. an instance state change);
- ``unknown_event:<eventName>``: an EC2 call outside ``HANDLED_EVENT_NAMES``;
- ``no_security_group``: CreateTags/DeleteTags on resources none of which is an ``sg-``;
- ``malformed:<what>``: the payload is not a shape this module knows;
- ``internal_error:<exception>``: a bug in this module (the fuzz tests hold it at zero).
"""

from __future__ import annotations

__all__ = [
    "HANDLED_EVENT_NAMES",
    "Actor",
    "ApiCall",
    "Ignored",
    "RequestedRule",
    "ScheduledTick",
    "Trigger",
    "parse_event",
]

import json
from collections.abc import Iterable
from typing import Any

from reconciler.adapters.event_rules import modified_rules, requested_rules
from reconciler.adapters.event_triggers import (
    Actor,
    ApiCall,
    Ignored,
    RequestedRule,
    ScheduledTick,
    Trigger,
)
from reconciler.adapters.event_wire import ABSENT, Wire
from reconciler.core.rules import Direction

_EC2_EVENT_SOURCE = "ec2.amazonaws.com"
_EC2_ENVELOPE_SOURCE = "aws.ec2"
_SCHEDULER_SOURCE = "aws.events"
_SCHEDULED_DETAIL_TYPE = "Scheduled Event"
_SNS_EVENT_SOURCE = "aws:sns"

_DIRECTION_OF: dict[str, Direction] = {
    "AuthorizeSecurityGroupIngress": Direction.INGRESS,
    "AuthorizeSecurityGroupEgress": Direction.EGRESS,
    "RevokeSecurityGroupIngress": Direction.INGRESS,
    "RevokeSecurityGroupEgress": Direction.EGRESS,
}
_TAG_EVENTS = frozenset({"CreateTags", "DeleteTags"})

HANDLED_EVENT_NAMES: frozenset[str] = frozenset(
    {
        "AuthorizeSecurityGroupIngress",
        "AuthorizeSecurityGroupEgress",
        "ModifySecurityGroupRules",
        "ModifyManagedPrefixList",
        "CreateSecurityGroup",
        "CreateTags",
        "DeleteTags",
        "RevokeSecurityGroupIngress",
        "RevokeSecurityGroupEgress",
    }
)

_SECURITY_GROUP_RESOURCE = "security-group"
_REASON_LIMIT = 120


# --- Parsing ---------------------------------------------------------------------------


def parse_event(event: object) -> tuple[Trigger, ...]:
    """Turn a Lambda payload into triggers; never raises.

    Accepts an EventBridge "AWS API Call via CloudTrail" envelope, a bare CloudTrail record,
    an EventBridge "Scheduled Event", or an SNS event whose messages hold either (one
    trigger per SNS record). Anything else becomes a single ``Ignored``.
    """
    try:
        if isinstance(event, dict) and "Records" in event:
            return _from_records(event["Records"])
        return (_parse_one(event),)
    except Exception as exc:  # noqa: BLE001 -- the handler relies on "never raises"; the
        # scheduled sweep still covers whatever this event would have shown.
        return (Ignored(_reason("internal_error", type(exc).__name__)),)


def _parse_one(event: object) -> Trigger:
    if not isinstance(event, dict):
        return Ignored("malformed:not_an_object")
    if "Records" in event:
        return Ignored("malformed:nested_records")
    if "detail" in event or "detail-type" in event:
        return _from_envelope(event)
    if "eventName" in event or "eventSource" in event:
        return _from_record(event, ABSENT)
    return Ignored("malformed:unrecognised_shape")


def _from_records(records: object) -> tuple[Trigger, ...]:
    if not isinstance(records, list) or not records:
        return (Ignored("malformed:no_records"),)
    return tuple(_from_sns_record(record) for record in records)


def _from_sns_record(raw: object) -> Trigger:
    record = Wire.of(raw)
    if record is None:
        return Ignored("malformed:record_not_an_object")
    source = record.text("EventSource")
    if source != _SNS_EVENT_SOURCE:
        if source is None:
            return Ignored("malformed:record_without_source")
        return Ignored(_reason("other_source", source))
    sns = record.view("Sns")
    message = sns.text("Message") if sns is not None else None
    if message is None:
        return Ignored("malformed:sns_without_message")
    try:
        inner = json.loads(message)
    except (ValueError, RecursionError):
        return Ignored("malformed:sns_message_not_json")
    return _parse_one(inner)


def _from_envelope(raw: dict[Any, Any]) -> Trigger:
    envelope = Wire(raw)
    source, detail_type = envelope.text("source"), envelope.text("detail-type")
    if source == _SCHEDULER_SOURCE:
        if detail_type == _SCHEDULED_DETAIL_TYPE:
            return ScheduledTick(
                time=envelope.text("time"),
                region=envelope.text("region"),
                account=envelope.text("account"),
            )
        return Ignored(_reason("other_detail_type", detail_type))
    # Only sources AWS reserves (aws.*) are trusted to say "not EC2"; sanitised samples
    # carry placeholders there, so the record's own eventSource decides for them.
    if source is not None and source.startswith("aws.") and source != _EC2_ENVELOPE_SOURCE:
        return Ignored(_reason("other_source", source))
    detail = envelope.raw("detail")
    if not isinstance(detail, dict):
        return Ignored("malformed:no_detail")
    if "eventName" not in detail and "eventSource" not in detail:
        return Ignored(_reason("other_detail_type", detail_type))
    return _from_record(detail, envelope)


def _from_record(raw: dict[Any, Any], envelope: Wire) -> Trigger:
    """``envelope`` is the EventBridge envelope around the record, empty for a bare record."""
    record = Wire(raw)
    name, source = record.text("eventName"), record.text("eventSource")
    if source is None:
        return Ignored("malformed:no_event_source", name)
    if source != _EC2_EVENT_SOURCE:
        return Ignored(_reason("other_source", source), name)
    error_code = record.text("errorCode")
    if error_code is not None:
        # A failed call changed nothing; it must never lead to a revoke.
        return Ignored(_reason("error_code", error_code), name)
    if name is None:
        return Ignored("malformed:no_event_name")
    if name not in HANDLED_EVENT_NAMES:
        return Ignored(_reason("unknown_event", name), name)
    call = _api_call(record, name, envelope)
    if not call.group_ids and not call.group_names and not call.prefix_list_ids:
        if name in _TAG_EVENTS:
            return Ignored("no_security_group", name)
        return Ignored("malformed:no_group", name)
    return call


def _api_call(record: Wire, name: str, envelope: Wire) -> ApiCall:
    params = record.view("requestParameters") or ABSENT
    response = record.view("responseElements") or ABSENT
    modify = params.view("ModifySecurityGroupRulesRequest") or ABSENT
    updates = modify.one_or_many("SecurityGroupRule", "SecurityGroupRules")
    response_rules = (
        *response.views("securityGroupRuleSet"),
        *response.views("revokedSecurityGroupRuleSet"),
    )
    resource_ids = (resource.text("resourceId") for resource in params.views("resourcesSet"))
    account = record.text("recipientAccountId") or envelope.text("account")
    direction = _DIRECTION_OF.get(name)

    group_ids = _unique(
        [
            params.text("groupId"),
            modify.text("GroupId"),
            *(rule.text("groupId") for rule in response_rules),
            response.text("groupId"),
            *(resource_id for resource_id in resource_ids if _is_group_id(resource_id)),
        ]
    )
    rule_ids = _unique(
        [
            *(rule.text("securityGroupRuleId") for rule in response_rules),
            *(update.text("SecurityGroupRuleId") for update in updates),
        ]
    )
    requested: list[RequestedRule] = []
    if direction is not None:
        requested += requested_rules(params, direction, account, response_rules)
    requested += modified_rules(updates)
    modify_response = response.view("ModifySecurityGroupRulesResponse")
    prefix_list = params.view("ModifyManagedPrefixListRequest") or params
    return ApiCall(
        event_name=name,
        event_id=record.text("eventID"),
        event_time=record.text("eventTime") or envelope.text("time"),
        region=record.text("awsRegion") or envelope.text("region"),
        account=account,
        group_ids=group_ids,
        group_names=() if group_ids else _unique([params.text("groupName")]),
        rule_ids=rule_ids,
        direction=direction,
        requested=tuple(requested),
        tags=_tags(params),
        prefix_list_ids=_unique(
            [prefix_list.text("PrefixListId")] if name == "ModifyManagedPrefixList" else []
        ),
        actor=_actor(record),
        error_code=None,
        request_id=record.text("requestID", "requestId") or response.text("requestId", "requestID"),
        returned=(
            modify_response.flag("return", "_return")
            if modify_response is not None
            else response.flag("_return", "return")
        ),
    )


def _tags(params: Wire) -> tuple[tuple[str, str | None], ...]:
    """CreateTags/DeleteTags ``tagSet``, or the group's tags in CreateSecurityGroup."""
    tags = list(params.views("tagSet"))
    for spec in params.views("tagSpecificationSet"):
        if spec.text("resourceType") in (None, _SECURITY_GROUP_RESOURCE):
            tags += spec.views("tags")
    pairs = ((tag.text("key"), tag.text("value")) for tag in tags)
    return tuple((key, value) for key, value in pairs if key is not None)


def _actor(record: Wire) -> Actor:
    # The lower-case spellings appear in records re-emitted by SIEM normalisers.
    identity = record.view("userIdentity") or ABSENT
    context = identity.view("sessionContext", "sessioncontext") or ABSENT
    issuer = context.view("sessionIssuer", "sessionissuer") or ABSENT
    return Actor(
        arn=identity.text("arn"),
        type=identity.text("type"),
        session_issuer_arn=issuer.text("arn"),
        source_ip=record.text("sourceIPAddress"),
        user_agent=record.text("userAgent"),
        invoked_by=identity.text("invokedBy", "invokedby"),
    )


def _is_group_id(value: str | None) -> bool:
    # "sgr-" (a rule) does not match: tagging a rule changes no rule.
    return value is not None and value.startswith("sg-")


def _unique(values: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value for value in values if value))


def _reason(kind: str, detail: str | None) -> str:
    return (kind + ":" + str(detail))[:_REASON_LIMIT]
