"""CloudTrail, EventBridge and SNS payloads -> which security groups to look at.

``parse_event`` turns whatever the Lambda was invoked with into a tuple of triggers:

- ``ApiCall``: one successful EC2 call that touched security groups (reconcile those);
- ``ScheduledTick``: the periodic sweep (reconcile everything);
- ``Ignored``: anything else, with a short machine-friendly reason.

The wire models mirror AWS casing and ignore keys they do not know. Every scalar is lenient
(a value of the wrong type reads as absent) so that one odd field never hides the groups a
call touched. They are converted once, here, into frozen dataclasses.

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

# Wire models mirror AWS casing (STYLE.md), so their mixedCase field names are intended.
# ruff: noqa: N815

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
from typing import Annotated, Any, TypeAlias, TypeVar

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

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


def _mapping(value: object) -> object:
    return value if isinstance(value, dict) else None


def _items(value: object) -> list[object]:
    """EC2 lists are ``{"items": [...]}``, an empty one is ``{}``; a bare list is accepted."""
    if isinstance(value, dict):
        value = value.get("items")
    if isinstance(value, list):
        return [item for item in value if isinstance(item, dict)]
    return []


def _one_or_many(value: object) -> list[object]:
    """A single object where a list is expected (ModifySecurityGroupRules does this)."""
    if isinstance(value, dict) and "items" not in value:
        return [value]
    return _items(value)


_M = TypeVar("_M", bound=BaseModel)

_Text = Annotated[str | None, BeforeValidator(_text)]
_Int = Annotated[int | None, BeforeValidator(_integer)]
_Flag = Annotated[bool | None, BeforeValidator(_flag)]
_Lenient = Annotated[_M | None, BeforeValidator(_mapping)]
_Items = Annotated[tuple[_M, ...], BeforeValidator(_items)]
_OneOrMany = Annotated[tuple[_M, ...], BeforeValidator(_one_or_many)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


# --- Wire models: requestParameters ----------------------------------------------------


class _IpRange(_Wire):
    cidrIp: _Text = None
    description: _Text = None


class _Ipv6Range(_Wire):
    cidrIpv6: _Text = None
    description: _Text = None


class _PrefixListId(_Wire):
    prefixListId: _Text = None
    description: _Text = None


class _UserIdGroupPair(_Wire):
    groupId: _Text = None
    groupName: _Text = None
    userId: _Text = None
    description: _Text = None


class _IpPermission(_Wire):
    ipProtocol: _Text = None
    fromPort: _Int = None
    toPort: _Int = None
    groups: _Items[_UserIdGroupPair] = ()
    ipRanges: _Items[_IpRange] = ()
    ipv6Ranges: _Items[_Ipv6Range] = ()
    prefixListIds: _Items[_PrefixListId] = ()


class _SecurityGroupRuleRequest(_Wire):
    IpProtocol: _Text = None
    FromPort: _Int = None
    ToPort: _Int = None
    CidrIpv4: _Text = None
    CidrIpv6: _Text = None
    PrefixListId: _Text = None
    ReferencedGroupId: _Text = None
    Description: _Text = None


class _SecurityGroupRuleUpdate(_Wire):
    SecurityGroupRuleId: _Text = None
    SecurityGroupRule: _Lenient[_SecurityGroupRuleRequest] = None


class _ModifySecurityGroupRulesRequest(_Wire):
    GroupId: _Text = None
    SecurityGroupRule: _OneOrMany[_SecurityGroupRuleUpdate] = Field(
        (), validation_alias=AliasChoices("SecurityGroupRule", "SecurityGroupRules")
    )


class _ResourceId(_Wire):
    resourceId: _Text = None


class _Tag(_Wire):
    key: _Text = None
    value: _Text = None


class _TagSpecification(_Wire):
    resourceType: _Text = None
    tags: _Items[_Tag] = ()


class _RequestParameters(_Wire):
    groupId: _Text = None
    groupName: _Text = None
    ipPermissions: _Items[_IpPermission] = ()
    # The flat form (one rule given outside ipPermissions), as older SDKs and the CLI send.
    ipProtocol: _Text = None
    fromPort: _Int = None
    toPort: _Int = None
    cidrIp: _Text = None
    sourceSecurityGroupName: _Text = None
    sourceSecurityGroupOwnerId: _Text = None
    resourcesSet: _Items[_ResourceId] = ()
    tagSet: _Items[_Tag] = ()
    tagSpecificationSet: _Items[_TagSpecification] = ()
    ModifySecurityGroupRulesRequest: _Lenient[_ModifySecurityGroupRulesRequest] = None


# --- Wire models: responseElements, identity, record and envelopes ----------------------


class _ReferencedGroup(_Wire):
    groupId: _Text = None
    userId: _Text = None


class _SecurityGroupRule(_Wire):
    groupId: _Text = None
    securityGroupRuleId: _Text = None
    isEgress: _Flag = None
    ipProtocol: _Text = None
    fromPort: _Int = None
    toPort: _Int = None
    cidrIpv4: _Text = None
    cidrIpv6: _Text = None
    prefixListId: _Text = None
    referencedGroupInfo: _Lenient[_ReferencedGroup] = None


class _ModifySecurityGroupRulesResponse(_Wire):
    return_: _Flag = Field(None, validation_alias=AliasChoices("return", "_return"))


class _ResponseElements(_Wire):
    requestId: _Text = Field(None, validation_alias=AliasChoices("requestId", "requestID"))
    return_: _Flag = Field(None, validation_alias=AliasChoices("_return", "return"))
    groupId: _Text = None
    securityGroupRuleSet: _Items[_SecurityGroupRule] = ()
    revokedSecurityGroupRuleSet: _Items[_SecurityGroupRule] = ()
    ModifySecurityGroupRulesResponse: _Lenient[_ModifySecurityGroupRulesResponse] = None


class _SessionIssuer(_Wire):
    type: _Text = None
    arn: _Text = None


# The lower-case spellings appear in records re-emitted by SIEM normalisers.
class _SessionContext(_Wire):
    sessionIssuer: _Lenient[_SessionIssuer] = Field(
        None, validation_alias=AliasChoices("sessionIssuer", "sessionissuer")
    )


class _UserIdentity(_Wire):
    type: _Text = None
    arn: _Text = None
    accountId: _Text = Field(None, validation_alias=AliasChoices("accountId", "accountid"))
    invokedBy: _Text = Field(None, validation_alias=AliasChoices("invokedBy", "invokedby"))
    sessionContext: _Lenient[_SessionContext] = Field(
        None, validation_alias=AliasChoices("sessionContext", "sessioncontext")
    )


class _CloudTrailRecord(_Wire):
    eventSource: _Text = None
    eventName: _Text = None
    eventID: _Text = None
    eventTime: _Text = None
    awsRegion: _Text = None
    recipientAccountId: _Text = None
    requestID: _Text = Field(None, validation_alias=AliasChoices("requestID", "requestId"))
    errorCode: _Text = None
    sourceIPAddress: _Text = None
    userAgent: _Text = None
    userIdentity: _Lenient[_UserIdentity] = None
    requestParameters: _Lenient[_RequestParameters] = None
    responseElements: _Lenient[_ResponseElements] = None


class _EventBridgeEnvelope(_Wire):
    source: _Text = None
    detail_type: _Text = Field(None, validation_alias="detail-type")
    account: _Text = None
    region: _Text = None
    time: _Text = None
    detail: object = None


class _SnsMessage(_Wire):
    Message: _Text = None


class _SnsRecord(_Wire):
    EventSource: _Text = None
    Sns: _Lenient[_SnsMessage] = None


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
        return _from_record(event, None)
    return Ignored("malformed:unrecognised_shape")


def _from_records(records: object) -> tuple[Trigger, ...]:
    if not isinstance(records, list) or not records:
        return (Ignored("malformed:no_records"),)
    return tuple(_from_sns_record(record) for record in records)


def _from_sns_record(raw: object) -> Trigger:
    record = _validate(_SnsRecord, raw)
    if record is None:
        return Ignored("malformed:record_not_an_object")
    if record.EventSource != _SNS_EVENT_SOURCE:
        if record.EventSource is None:
            return Ignored("malformed:record_without_source")
        return Ignored(_reason("other_source", record.EventSource))
    message = record.Sns.Message if record.Sns is not None else None
    if message is None:
        return Ignored("malformed:sns_without_message")
    try:
        inner = json.loads(message)
    except (ValueError, RecursionError):
        return Ignored("malformed:sns_message_not_json")
    return _parse_one(inner)


def _from_envelope(raw: dict[Any, Any]) -> Trigger:
    envelope = _validate(_EventBridgeEnvelope, raw)
    if envelope is None:
        return Ignored("malformed:envelope")
    source, detail_type = envelope.source, envelope.detail_type
    if source == _SCHEDULER_SOURCE:
        if detail_type == _SCHEDULED_DETAIL_TYPE:
            return ScheduledTick(
                time=envelope.time, region=envelope.region, account=envelope.account
            )
        return Ignored(_reason("other_detail_type", detail_type))
    # Only sources AWS reserves (aws.*) are trusted to say "not EC2"; sanitised samples
    # carry placeholders there, so the record's own eventSource decides for them.
    if source is not None and source.startswith("aws.") and source != _EC2_ENVELOPE_SOURCE:
        return Ignored(_reason("other_source", source))
    detail = envelope.detail
    if not isinstance(detail, dict):
        return Ignored("malformed:no_detail")
    if "eventName" not in detail and "eventSource" not in detail:
        return Ignored(_reason("other_detail_type", detail_type))
    return _from_record(detail, envelope)


def _from_record(raw: dict[Any, Any], envelope: _EventBridgeEnvelope | None) -> Trigger:
    record = _validate(_CloudTrailRecord, raw)
    if record is None:
        return Ignored("malformed:record")
    name = record.eventName
    if record.eventSource is None:
        return Ignored("malformed:no_event_source", name)
    if record.eventSource != _EC2_EVENT_SOURCE:
        return Ignored(_reason("other_source", record.eventSource), name)
    if record.errorCode is not None:
        # A failed call changed nothing; it must never lead to a revoke.
        return Ignored(_reason("error_code", record.errorCode), name)
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


def _api_call(
    record: _CloudTrailRecord, name: str, envelope: _EventBridgeEnvelope | None
) -> ApiCall:
    params = record.requestParameters or _RequestParameters()
    response = record.responseElements or _ResponseElements()
    modify = params.ModifySecurityGroupRulesRequest or _ModifySecurityGroupRulesRequest()
    response_rules = response.securityGroupRuleSet + response.revokedSecurityGroupRuleSet
    account = record.recipientAccountId or (envelope.account if envelope else None)
    region = record.awsRegion or (envelope.region if envelope else None)
    direction = _DIRECTION_OF.get(name)

    group_ids = _unique(
        [
            params.groupId,
            modify.GroupId,
            *(rule.groupId for rule in response_rules),
            response.groupId,
            *(r.resourceId for r in params.resourcesSet if _is_group_id(r.resourceId)),
        ]
    )
    rule_ids = _unique(
        [
            *(rule.securityGroupRuleId for rule in response_rules),
            *(update.SecurityGroupRuleId for update in modify.SecurityGroupRule),
        ]
    )
    requested: list[RequestedRule] = []
    if direction is not None:
        requested += _requested_rules(params, direction, account, response_rules)
    requested += _modified_rules(modify)
    modify_response = response.ModifySecurityGroupRulesResponse
    return ApiCall(
        event_name=name,
        event_id=record.eventID,
        event_time=record.eventTime or (envelope.time if envelope else None),
        region=region,
        account=account,
        group_ids=group_ids,
        group_names=() if group_ids else _unique([params.groupName]),
        rule_ids=rule_ids,
        direction=direction,
        requested=tuple(requested),
        tags=_tags(params),
        actor=_actor(record),
        error_code=record.errorCode,
        request_id=record.requestID or response.requestId,
        returned=modify_response.return_ if modify_response is not None else response.return_,
    )


def _requested_rules(
    params: _RequestParameters,
    direction: Direction,
    account: str | None,
    response_rules: Iterable[_SecurityGroupRule],
) -> Iterator[RequestedRule]:
    rule_id_of = {_response_key(rule): rule.securityGroupRuleId for rule in response_rules}
    for perm in (*params.ipPermissions, _flat_permission(params)):
        for peer, match_peer, description in _peers(perm, account):
            rule = _requested(
                direction,
                perm.ipProtocol,
                ports=(perm.fromPort, perm.toPort),
                peer=peer,
                description=description,
            )
            if rule is not None:
                yield replace(rule, rule_id=rule_id_of.get(_key(rule, match_peer)))


def _flat_permission(params: _RequestParameters) -> _IpPermission:
    """The flat request form (one rule outside ``ipPermissions``) in the nested shape."""
    return _IpPermission.model_validate(
        {
            "ipProtocol": params.ipProtocol,
            "fromPort": params.fromPort,
            "toPort": params.toPort,
            "ipRanges": [{"cidrIp": params.cidrIp}],
            "groups": [
                {
                    "groupName": params.sourceSecurityGroupName,
                    "userId": params.sourceSecurityGroupOwnerId,
                }
            ],
        }
    )


def _peers(
    perm: _IpPermission, account: str | None
) -> Iterator[tuple[str | None, str | None, str | None]]:
    """(peer as shown, peer as the response names it, description) for each peer."""
    for v4 in perm.ipRanges:
        yield v4.cidrIp, v4.cidrIp, v4.description
    for v6 in perm.ipv6Ranges:
        yield v6.cidrIpv6, v6.cidrIpv6, v6.description
    for pl in perm.prefixListIds:
        yield pl.prefixListId, pl.prefixListId, pl.description
    for pair in perm.groups:
        group = pair.groupId or pair.groupName
        yield _group_peer(group, pair.userId, account), group, pair.description


def _group_peer(group: str | None, owner: str | None, account: str | None) -> str | None:
    if group is None:
        return None
    if owner is not None and account is not None and owner != account:
        return owner + "/" + group
    return group


def _modified_rules(modify: _ModifySecurityGroupRulesRequest) -> Iterator[RequestedRule]:
    for update in modify.SecurityGroupRule:
        values = update.SecurityGroupRule
        if values is None:
            continue
        rule = _requested(
            None,
            values.IpProtocol,
            ports=(values.FromPort, values.ToPort),
            peer=values.CidrIpv4
            or values.CidrIpv6
            or values.PrefixListId
            or values.ReferencedGroupId,
            description=values.Description,
        )
        if rule is not None:
            yield replace(rule, rule_id=update.SecurityGroupRuleId)


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


def _response_key(rule: _SecurityGroupRule) -> _RuleMatch:
    protocol = _protocol(rule.ipProtocol)
    referenced = rule.referencedGroupInfo.groupId if rule.referencedGroupInfo else None
    peer = rule.cidrIpv4 or rule.cidrIpv6 or rule.prefixListId or referenced
    if protocol == "all":
        return (protocol, None, None, peer)
    return (protocol, rule.fromPort, rule.toPort, peer)


def _protocol(value: str | None) -> str | None:
    text = (value or "").strip().lower()
    if not text:
        return None
    try:
        return canonical_protocol(text)
    except ValueError:
        return text


def _tags(params: _RequestParameters) -> tuple[tuple[str, str | None], ...]:
    """CreateTags/DeleteTags ``tagSet``, or the group's tags in CreateSecurityGroup."""
    tags = list(params.tagSet)
    for spec in params.tagSpecificationSet:
        if spec.resourceType in (None, _SECURITY_GROUP_RESOURCE):
            tags += spec.tags
    return tuple((tag.key, tag.value) for tag in tags if tag.key is not None)


def _actor(record: _CloudTrailRecord) -> Actor:
    identity = record.userIdentity or _UserIdentity()
    context = identity.sessionContext or _SessionContext()
    issuer = context.sessionIssuer or _SessionIssuer()
    return Actor(
        arn=identity.arn,
        type=identity.type,
        session_issuer_arn=issuer.arn,
        source_ip=record.sourceIPAddress,
        user_agent=record.userAgent,
        invoked_by=identity.invokedBy,
    )


def _is_group_id(value: str | None) -> bool:
    # "sgr-" (a rule) does not match: tagging a rule changes no rule.
    return value is not None and value.startswith("sg-")


def _unique(values: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value for value in values if value))


def _validate(model: type[_M], raw: object) -> _M | None:
    if not isinstance(raw, dict):
        return None
    try:
        return model.model_validate(raw)
    except ValidationError:
        return None


def _reason(kind: str, detail: str | None) -> str:
    return (kind + ":" + str(detail))[:_REASON_LIMIT]
