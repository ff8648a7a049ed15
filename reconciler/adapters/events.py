"""CloudTrail, EventBridge and SNS payloads -> which security groups to look at.

``parse_event`` turns whatever the Lambda was invoked with into a tuple of triggers:

- ``ApiCall``: one successful EC2 call that touched security groups (reconcile those);
- ``ScheduledTick``: the periodic sweep (reconcile everything);
- ``Ignored``: anything else, with a short machine-friendly reason.

The payload is read through ``_Wire``, a read-only view of each JSON object: every read names
the AWS key (mirroring AWS casing), keys it does not read are ignored, and every read is
lenient (a value of the wrong type reads as absent) so that one odd field never hides the
groups a call touched. What it reads is converted once, here, into frozen dataclasses.
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
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any, TypeAlias

from reconciler.core.rules import Direction, canonical_protocol

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
        "CreateSecurityGroup",
        "CreateTags",
        "DeleteTags",
        "RevokeSecurityGroupIngress",
        "RevokeSecurityGroupEgress",
    }
)

_SECURITY_GROUP_RESOURCE = "security-group"
_REASON_LIMIT = 120
_INTEGER = re.compile(r"-?[0-9]+", re.ASCII)


# --- The domain values the rest of the service sees ------------------------------------


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a call, as CloudTrail recorded it."""

    arn: str | None
    type: str | None
    session_issuer_arn: str | None
    source_ip: str | None
    user_agent: str | None
    invoked_by: str | None


@dataclass(frozen=True, slots=True)
class RequestedRule:
    """One rule a call asked for, for notifications only: never used to decide a revoke.

    ``direction`` is None for ModifySecurityGroupRules, whose record does not say it.
    ``protocol`` is lower-case with ``-1`` as ``all`` (and ``6``/``17``/``1``/``58`` named);
    protocol ``all`` has no ports. ``peer`` is a CIDR as given, ``sg-…`` (``account/sg-…``
    for another account's group), ``pl-…``, or a group name when only a name was given.
    """

    direction: Direction | None
    protocol: str
    from_port: int | None
    to_port: int | None
    peer: str
    description: str | None
    rule_id: str | None = None


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One successful CloudTrail-recorded EC2 call that touched security groups.

    ``group_ids`` holds every group the call touched; ``group_names`` is filled only when
    the call named a group and no id is known. ``rule_ids`` is a hint, never a decision.
    ``error_code`` is always None here: failed calls become ``Ignored``.
    """

    event_name: str
    event_id: str | None
    event_time: str | None
    region: str | None
    account: str | None
    group_ids: tuple[str, ...]
    group_names: tuple[str, ...]
    rule_ids: tuple[str, ...]
    direction: Direction | None
    requested: tuple[RequestedRule, ...]
    tags: tuple[tuple[str, str | None], ...]
    actor: Actor
    error_code: str | None
    request_id: str | None = None
    returned: bool | None = None


@dataclass(frozen=True, slots=True)
class ScheduledTick:
    """The periodic EventBridge schedule fired: sweep every group."""

    time: str | None
    region: str | None
    account: str | None


@dataclass(frozen=True, slots=True)
class Ignored:
    """A payload that asks for no work, and why (see the module docstring for reasons)."""

    reason: str
    event_name: str | None = None


Trigger: TypeAlias = ApiCall | ScheduledTick | Ignored


# --- Lenient wire scalars and lists ----------------------------------------------------


def _text(value: object) -> str | None:
    """Strings as given (empty reads as absent); integers as digits (sanitised accounts)."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return str(value)
        except ValueError:  # more digits than Python will print
            return None
    return None


def _integer(value: object) -> int | None:
    """Ports arrive as numbers or as strings of digits."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        try:
            return int(value)
        except ValueError:  # more digits than Python will parse
            return None
    return None


def _flag(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    return None


def _items(value: object) -> list[dict[Any, Any]]:
    """EC2 lists are ``{"items": [...]}``, an empty one is ``{}``; a bare list is accepted."""
    if isinstance(value, dict):
        value = value.get("items")
    if isinstance(value, list):
        return [item for item in value if isinstance(item, dict)]
    return []


def _one_or_many(value: object) -> list[dict[Any, Any]]:
    """A single object where a list is expected (ModifySecurityGroupRules does this)."""
    if isinstance(value, dict) and "items" not in value:
        return [value]
    return _items(value)


class _Wire:
    """A read-only, lenient view of one JSON object of the payload.

    Each read names the AWS key. Where AWS (or a normaliser re-emitting its records) spells a
    key more than one way, the read lists the spellings and the first one present is used,
    even if its value then reads as absent. A value of the wrong type reads as absent: None
    for a scalar or an object, an empty tuple for a list; lists keep only their objects.
    """

    __slots__ = ("_fields",)

    def __init__(self, fields: dict[Any, Any]) -> None:
        self._fields = fields

    @classmethod
    def of(cls, value: object) -> _Wire | None:
        """A view of ``value`` if it is a JSON object, else None."""
        return cls(value) if isinstance(value, dict) else None

    def raw(self, *keys: str) -> object:
        """The value under the first of ``keys`` present, as given; None if none is."""
        for key in keys:
            if key in self._fields:
                return self._fields[key]
        return None

    def text(self, *keys: str) -> str | None:
        return _text(self.raw(*keys))

    def integer(self, key: str) -> int | None:
        return _integer(self.raw(key))

    def flag(self, *keys: str) -> bool | None:
        return _flag(self.raw(*keys))

    def view(self, *keys: str) -> _Wire | None:
        """The nested object, or None when it is absent or not an object."""
        return _Wire.of(self.raw(*keys))

    def views(self, key: str) -> tuple[_Wire, ...]:
        """The objects of an EC2 list (see ``_items``)."""
        return tuple(map(_Wire, _items(self.raw(key))))

    def one_or_many(self, *keys: str) -> tuple[_Wire, ...]:
        """The objects of a list that may also be given as a single object."""
        return tuple(map(_Wire, _one_or_many(self.raw(*keys))))


_ABSENT = _Wire({})


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
        return _from_record(event, _ABSENT)
    return Ignored("malformed:unrecognised_shape")


def _from_records(records: object) -> tuple[Trigger, ...]:
    if not isinstance(records, list) or not records:
        return (Ignored("malformed:no_records"),)
    return tuple(_from_sns_record(record) for record in records)


def _from_sns_record(raw: object) -> Trigger:
    record = _Wire.of(raw)
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
    envelope = _Wire(raw)
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


def _from_record(raw: dict[Any, Any], envelope: _Wire) -> Trigger:
    """``envelope`` is the EventBridge envelope around the record, empty for a bare record."""
    record = _Wire(raw)
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
    if not call.group_ids and not call.group_names:
        if name in _TAG_EVENTS:
            return Ignored("no_security_group", name)
        return Ignored("malformed:no_group", name)
    return call


def _api_call(record: _Wire, name: str, envelope: _Wire) -> ApiCall:
    params = record.view("requestParameters") or _ABSENT
    response = record.view("responseElements") or _ABSENT
    modify = params.view("ModifySecurityGroupRulesRequest") or _ABSENT
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
        requested += _requested_rules(params, direction, account, response_rules)
    requested += _modified_rules(updates)
    modify_response = response.view("ModifySecurityGroupRulesResponse")
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
        actor=_actor(record),
        error_code=None,
        request_id=record.text("requestID", "requestId") or response.text("requestId", "requestID"),
        returned=(
            modify_response.flag("return", "_return")
            if modify_response is not None
            else response.flag("_return", "return")
        ),
    )


def _requested_rules(
    params: _Wire,
    direction: Direction,
    account: str | None,
    response_rules: Iterable[_Wire],
) -> Iterator[RequestedRule]:
    rule_id_of = {_response_key(rule): rule.text("securityGroupRuleId") for rule in response_rules}
    for perm in (*params.views("ipPermissions"), _flat_permission(params)):
        for peer, match_peer, description in _peers(perm, account):
            rule = _requested(
                direction,
                perm.text("ipProtocol"),
                ports=(perm.integer("fromPort"), perm.integer("toPort")),
                peer=peer,
                description=description,
            )
            if rule is not None:
                yield replace(rule, rule_id=rule_id_of.get(_key(rule, match_peer)))


def _flat_permission(params: _Wire) -> _Wire:
    """The flat request form (one rule outside ``ipPermissions``) in the nested shape."""
    return _Wire(
        {
            "ipProtocol": params.raw("ipProtocol"),
            "fromPort": params.raw("fromPort"),
            "toPort": params.raw("toPort"),
            "ipRanges": [{"cidrIp": params.raw("cidrIp")}],
            "groups": [
                {
                    "groupName": params.raw("sourceSecurityGroupName"),
                    "userId": params.raw("sourceSecurityGroupOwnerId"),
                }
            ],
        }
    )


def _peers(perm: _Wire, account: str | None) -> Iterator[tuple[str | None, str | None, str | None]]:
    """(peer as shown, peer as the response names it, description) for each peer."""
    for v4 in perm.views("ipRanges"):
        cidr = v4.text("cidrIp")
        yield cidr, cidr, v4.text("description")
    for v6 in perm.views("ipv6Ranges"):
        cidr = v6.text("cidrIpv6")
        yield cidr, cidr, v6.text("description")
    for pl in perm.views("prefixListIds"):
        prefix_list = pl.text("prefixListId")
        yield prefix_list, prefix_list, pl.text("description")
    for pair in perm.views("groups"):
        group = pair.text("groupId") or pair.text("groupName")
        yield _group_peer(group, pair.text("userId"), account), group, pair.text("description")


def _group_peer(group: str | None, owner: str | None, account: str | None) -> str | None:
    if group is None:
        return None
    if owner is not None and account is not None and owner != account:
        return owner + "/" + group
    return group


def _modified_rules(updates: Iterable[_Wire]) -> Iterator[RequestedRule]:
    """ModifySecurityGroupRules updates: each rule id with the rule it now holds."""
    for update in updates:
        values = update.view("SecurityGroupRule")
        if values is None:
            continue
        rule = _requested(
            None,
            values.text("IpProtocol"),
            ports=(values.integer("FromPort"), values.integer("ToPort")),
            peer=values.text("CidrIpv4")
            or values.text("CidrIpv6")
            or values.text("PrefixListId")
            or values.text("ReferencedGroupId"),
            description=values.text("Description"),
        )
        if rule is not None:
            yield replace(rule, rule_id=update.text("SecurityGroupRuleId"))


def _requested(
    direction: Direction | None,
    protocol_text: str | None,
    *,
    ports: tuple[int | None, int | None],
    peer: str | None,
    description: str | None,
) -> RequestedRule | None:
    protocol = _protocol(protocol_text)
    if protocol is None or peer is None:
        return None
    from_port, to_port = (None, None) if protocol == "all" else ports
    return RequestedRule(direction, protocol, from_port, to_port, peer, description)


_RuleMatch = tuple[str | None, int | None, int | None, str | None]


def _key(rule: RequestedRule, match_peer: str | None) -> _RuleMatch:
    return (rule.protocol, rule.from_port, rule.to_port, match_peer)


def _response_key(rule: _Wire) -> _RuleMatch:
    """The match key of a rule in ``securityGroupRuleSet``, to find a requested rule's id."""
    protocol = _protocol(rule.text("ipProtocol"))
    referenced = rule.view("referencedGroupInfo")
    peer = (
        rule.text("cidrIpv4")
        or rule.text("cidrIpv6")
        or rule.text("prefixListId")
        or (referenced.text("groupId") if referenced is not None else None)
    )
    if protocol == "all":
        return (protocol, None, None, peer)
    return (protocol, rule.integer("fromPort"), rule.integer("toPort"), peer)


def _protocol(value: str | None) -> str | None:
    text = (value or "").strip().lower()
    if not text:
        return None
    try:
        return canonical_protocol(text)
    except ValueError:
        return text


def _tags(params: _Wire) -> tuple[tuple[str, str | None], ...]:
    """CreateTags/DeleteTags ``tagSet``, or the group's tags in CreateSecurityGroup."""
    tags = list(params.views("tagSet"))
    for spec in params.views("tagSpecificationSet"):
        if spec.text("resourceType") in (None, _SECURITY_GROUP_RESOURCE):
            tags += spec.views("tags")
    pairs = ((tag.text("key"), tag.text("value")) for tag in tags)
    return tuple((key, value) for key, value in pairs if key is not None)


def _actor(record: _Wire) -> Actor:
    # The lower-case spellings appear in records re-emitted by SIEM normalisers.
    identity = record.view("userIdentity") or _ABSENT
    context = identity.view("sessionContext", "sessioncontext") or _ABSENT
    issuer = context.view("sessionIssuer", "sessionissuer") or _ABSENT
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
