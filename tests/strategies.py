"""Hypothesis strategies for events: arbitrary JSON, shaped records, mutated real samples."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

from reconciler.adapters.events import (
    HANDLED_EVENT_NAMES,
    ApiCall,
    Ignored,
    ScheduledTick,
    Trigger,
)
from tests.eventfiles import as_eventbridge, as_sns, event_names, load_event

FIXTURES = {name: load_event(name) for name in event_names()}
DIRECTED_CALLS = {
    "AuthorizeSecurityGroupIngress",
    "AuthorizeSecurityGroupEgress",
    "RevokeSecurityGroupIngress",
    "RevokeSecurityGroupEgress",
}

# Keys the parser looks at, so random objects reach past the first branch.
KNOWN_KEYS = sorted(
    {
        "Records",
        "EventSource",
        "Sns",
        "Message",
        "detail",
        "detail-type",
        "source",
        "account",
        "region",
        "time",
        "eventSource",
        "eventName",
        "errorCode",
        "recipientAccountId",
        "awsRegion",
        "userIdentity",
        "sessionContext",
        "sessionIssuer",
        "arn",
        "requestParameters",
        "responseElements",
        "groupId",
        "groupName",
        "ipPermissions",
        "items",
        "ipProtocol",
        "fromPort",
        "toPort",
        "cidrIp",
        "groups",
        "ipRanges",
        "securityGroupRuleSet",
        "resourcesSet",
        "resourceId",
        "tagSet",
        "tagSpecificationSet",
        "ModifySecurityGroupRulesRequest",
        "SecurityGroupRule",
        "_return",
        "return",
    }
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(
        [
            "ec2.amazonaws.com",
            "aws.ec2",
            "aws.events",
            "aws:sns",
            "Scheduled Event",
            "AuthorizeSecurityGroupIngress",
            "ModifySecurityGroupRules",
            "CreateTags",
            "sg-0123456789abcdef0",
            "-1",
            "22",
        ]
    )
)
KEYS = st.sampled_from(KNOWN_KEYS) | st.text(max_size=10)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=30,
)
FUZZ = settings(max_examples=250, deadline=None)


def optional(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects holding any subset of ``fields``."""
    return st.fixed_dictionaries({}, optional=fields)


def items_of(element: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """An EC2 list ({"items": [...]}), or any JSON in its place."""
    return st.fixed_dictionaries({"items": st.lists(element | JSON, max_size=3)}) | JSON


PEER = optional(
    cidrIp=SCALARS,
    cidrIpv6=SCALARS,
    prefixListId=SCALARS,
    groupId=SCALARS,
    groupName=SCALARS,
    userId=SCALARS,
    description=SCALARS,
)
PERMISSION = optional(
    ipProtocol=SCALARS,
    fromPort=SCALARS,
    toPort=SCALARS,
    groups=items_of(PEER),
    ipRanges=items_of(PEER),
    ipv6Ranges=items_of(PEER),
    prefixListIds=items_of(PEER),
)
RULE_VALUES = optional(
    IpProtocol=SCALARS,
    FromPort=SCALARS,
    ToPort=SCALARS,
    CidrIpv4=SCALARS,
    CidrIpv6=SCALARS,
    PrefixListId=SCALARS,
    ReferencedGroupId=SCALARS,
    Description=SCALARS,
)
RULE_UPDATE = optional(SecurityGroupRuleId=SCALARS, SecurityGroupRule=RULE_VALUES | JSON)
TAG = optional(key=SCALARS, value=SCALARS)
REQUEST = optional(
    groupId=SCALARS,
    groupName=SCALARS,
    ipPermissions=items_of(PERMISSION),
    ipProtocol=SCALARS,
    fromPort=SCALARS,
    toPort=SCALARS,
    cidrIp=SCALARS,
    sourceSecurityGroupName=SCALARS,
    sourceSecurityGroupOwnerId=SCALARS,
    resourcesSet=items_of(optional(resourceId=SCALARS)),
    tagSet=items_of(TAG),
    tagSpecificationSet=items_of(
        optional(resourceType=SCALARS, tags=st.lists(TAG | JSON, max_size=3) | items_of(TAG))
    ),
    ModifySecurityGroupRulesRequest=optional(
        GroupId=SCALARS,
        SecurityGroupRule=RULE_UPDATE | st.lists(RULE_UPDATE | JSON, max_size=3) | JSON,
    )
    | JSON,
)
RESPONSE_RULE = optional(
    groupId=SCALARS,
    securityGroupRuleId=SCALARS,
    isEgress=SCALARS,
    ipProtocol=SCALARS,
    fromPort=SCALARS,
    toPort=SCALARS,
    cidrIpv4=SCALARS,
    cidrIpv6=SCALARS,
    prefixListId=SCALARS,
    referencedGroupInfo=optional(groupId=SCALARS, userId=SCALARS) | JSON,
)
RESPONSE = optional(
    requestId=SCALARS,
    requestID=SCALARS,
    _return=SCALARS,
    groupId=SCALARS,
    securityGroupRuleSet=items_of(RESPONSE_RULE),
    revokedSecurityGroupRuleSet=items_of(RESPONSE_RULE),
    ModifySecurityGroupRulesResponse=optional(**{"return": SCALARS, "_return": SCALARS}) | JSON,
)
IDENTITY = optional(
    type=SCALARS,
    arn=SCALARS,
    invokedBy=SCALARS,
    sessionContext=optional(sessionIssuer=optional(arn=SCALARS, type=SCALARS) | JSON) | JSON,
)
# Successful EC2 records of a handled call, every part of them shaped or random.
RECORDS = st.fixed_dictionaries(
    {
        "eventSource": st.just("ec2.amazonaws.com"),
        "eventName": st.sampled_from(sorted(HANDLED_EVENT_NAMES)),
        "requestParameters": REQUEST,
    },
    optional={
        "responseElements": RESPONSE | JSON,
        "userIdentity": IDENTITY | JSON,
        "recipientAccountId": SCALARS,
        "awsRegion": SCALARS,
        "eventTime": SCALARS,
        "eventID": SCALARS,
        "requestID": SCALARS,
        "sourceIPAddress": SCALARS,
        "userAgent": SCALARS,
    },
)
WRAPPINGS = st.sampled_from(["raw", "eventbridge", "sns"])


def wrapped(record: dict[str, Any], wrapping: str) -> object:
    """The record as delivered: bare, in an EventBridge envelope, or through SNS."""
    if wrapping == "eventbridge":
        return as_eventbridge(record)
    if wrapping == "sns":
        return as_sns(as_eventbridge(record))
    return record


def assert_well_formed(triggers: tuple[Trigger, ...]) -> None:
    """A non-empty tuple of triggers, none of them reporting a bug in the parser."""
    assert isinstance(triggers, tuple)
    assert triggers
    for trigger in triggers:
        assert isinstance(trigger, ApiCall | ScheduledTick | Ignored)
        if isinstance(trigger, Ignored):
            assert not trigger.reason.startswith("internal_error"), trigger


def paths(value: object, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key/index path into a JSON value, the root excluded."""
    found: list[tuple[Any, ...]] = []
    children: list[tuple[Any, object]] = []
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    for key, child in children:
        found.append((*prefix, key))
        found += paths(child, (*prefix, key))
    return found


@st.composite
def mutated_fixtures(draw: st.DrawFn) -> object:
    """A real or synthetic fixture with a few keys dropped, replaced or stringified."""
    event = copy.deepcopy(FIXTURES[draw(st.sampled_from(sorted(FIXTURES)))])
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        candidates = paths(event)
        if not candidates:
            break
        *parent_path, last = draw(st.sampled_from(candidates))
        parent: Any = event
        for step in parent_path:
            parent = parent[step]
        kind = draw(st.sampled_from(["drop", "replace", "stringify"]))
        if kind == "drop":
            del parent[last]
        elif kind == "replace":
            parent[last] = draw(JSON)
        else:
            parent[last] = json.dumps(parent[last])
    return event
