"""parse_event: real and synthetic CloudTrail/EventBridge/SNS payloads -> triggers."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest

from reconciler.adapters import events
from reconciler.adapters.events import (
    HANDLED_EVENT_NAMES,
    Actor,
    ApiCall,
    Ignored,
    RequestedRule,
    ScheduledTick,
    Trigger,
    parse_event,
)
from reconciler.core.rules import Direction
from tests.eventfiles import as_eventbridge, as_sns, event_names, is_raw_record, load_event

IN = Direction.INGRESS
OUT = Direction.EGRESS
KUALI = "AuthorizeSecurityGroupIngress__whennemuth-kuali-cloudformation__1"


@dataclass(frozen=True)
class Call:
    """What an ApiCall must say about which groups to look at."""

    event_name: str
    group_ids: tuple[str, ...]
    direction: Direction | None
    rule_ids: tuple[str, ...] = ()
    group_names: tuple[str, ...] = ()


def _call(name: str, group: str, direction: Direction | None, *rule_ids: str) -> Call:
    return Call(name, (group,), direction, rule_ids)


EXPECTED: dict[str, Call | Ignored | ScheduledTick] = {
    "AuthorizeSecurityGroupEgress__elastic-integrations__1": _call(
        "AuthorizeSecurityGroupEgress", "sg-038ccc3a1f7b05f42", OUT, "sgr-02bdc373eac599585"
    ),
    "AuthorizeSecurityGroupEgress__panther-analysis__1": _call(
        "AuthorizeSecurityGroupEgress", "sg-03eee825d6bb78f54", OUT
    ),
    "AuthorizeSecurityGroupIngress__cloud-buddy__1": _call(
        "AuthorizeSecurityGroupIngress", "sg-0fbaac03a0ed37aab", IN
    ),
    "AuthorizeSecurityGroupIngress__elastic-integrations__1": _call(
        "AuthorizeSecurityGroupIngress", "sg-0f63fecfa17ef4fee", IN, "sgr-027eb7c59241731e0"
    ),
    "AuthorizeSecurityGroupIngress__netflix-historical__1": _call(
        "AuthorizeSecurityGroupIngress", "sg-4e386e31", IN
    ),
    "AuthorizeSecurityGroupIngress__panther-analysis__1": _call(
        "AuthorizeSecurityGroupIngress", "sg-0d921df5d84f7270a", IN
    ),
    "AuthorizeSecurityGroupIngress__panther-analysis__2": _call(
        "AuthorizeSecurityGroupIngress", "sg-04f0b44316f7d2471", IN
    ),
    "AuthorizeSecurityGroupIngress__panther-analysis__3": Ignored(
        "error_code:UnauthorizedOperation", "AuthorizeSecurityGroupIngress"
    ),
    "AuthorizeSecurityGroupIngress__panther-analysis__4": _call(
        "AuthorizeSecurityGroupIngress", "sg-1", IN
    ),
    "AuthorizeSecurityGroupIngress__stratus-red-team__1": _call(
        "AuthorizeSecurityGroupIngress", "sg-003dc7f1f1c686164", IN, "sgr-09b3e3d2ca1edf2a2"
    ),
    # Sanitised: the group id itself is the placeholder "...".
    "AuthorizeSecurityGroupIngress__streamalert__1": _call(
        "AuthorizeSecurityGroupIngress", "...", IN
    ),
    "AuthorizeSecurityGroupIngress__streamalert__2": _call(
        "AuthorizeSecurityGroupIngress", "...", IN
    ),
    "AuthorizeSecurityGroupIngress__unattributed-a__1": _call(
        "AuthorizeSecurityGroupIngress", "sg-007c4cf0863811b58", IN
    ),
    "AuthorizeSecurityGroupIngress__unattributed-b__1": _call(
        "AuthorizeSecurityGroupIngress", "sg-0db7d4784c4db8612", IN
    ),
    "AuthorizeSecurityGroupIngress__watch-security-group__1": _call(
        "AuthorizeSecurityGroupIngress", "sg-xxxxxxxxxxxxxxx", IN
    ),
    "AuthorizeSecurityGroupIngress__watch-security-group__2": _call(
        "AuthorizeSecurityGroupIngress", "sg-xxxxxxxxxxxxxxx", IN
    ),
    "AuthorizeSecurityGroupIngress__watch-security-group__3": _call(
        "AuthorizeSecurityGroupIngress", "sg-xxxxxxxxxxxxxx", IN
    ),
    KUALI: _call(
        "AuthorizeSecurityGroupIngress", "sg-01f414f5313452cd1", IN, "sgr-02e2ca7d55820dc26"
    ),
    "AuthorizeSecurityGroupIngress__whennemuth-kuali-cloudformation__2": _call(
        "AuthorizeSecurityGroupIngress", "sg-01f414f5313452cd1", IN, "sgr-052f232f61106d4c4"
    ),
    "CreateSecurityGroup__panther-analysis__1": _call(
        "CreateSecurityGroup", "sg-04d018d184a18f647", None
    ),
    "CreateSecurityGroup__unattributed-c__1": _call(
        "CreateSecurityGroup", "sg-0efcc20525890441d", None
    ),
    "CreateTags__unattributed-d__1": Ignored("no_security_group", "CreateTags"),
    "RevokeSecurityGroupIngress__unattributed-e__1": _call(
        "RevokeSecurityGroupIngress", "sg-0f4f552819eac34fc", IN
    ),
    "RunInstances__stratus-red-team__1": Ignored(
        "error_code:Client.UnauthorizedOperation", "RunInstances"
    ),
    "synthetic__AuthorizeSecurityGroupIngress__by_group_name": _call(
        "AuthorizeSecurityGroupIngress", "sg-0d00d00d00d00d00d", IN, "sgr-0cc33dd44ee55ff66"
    ),
    "synthetic__AuthorizeSecurityGroupIngress__by_group_name_only": Call(
        "AuthorizeSecurityGroupIngress", (), IN, (), ("default",)
    ),
    "synthetic__AuthorizeSecurityGroupIngress__prefix_list": _call(
        "AuthorizeSecurityGroupIngress", "sg-0a1b2c3d4e5f60718", IN, "sgr-0bb22cc33dd44ee55"
    ),
    "synthetic__CreateSecurityGroup__with_tags": _call(
        "CreateSecurityGroup", "sg-0e0e0e0e0e0e0e0e0", None
    ),
    "synthetic__CreateTags__sg": _call("CreateTags", "sg-0a1b2c3d4e5f60718", None),
    "synthetic__DeleteTags__sg": _call("DeleteTags", "sg-0a1b2c3d4e5f60718", None),
    "synthetic__ModifySecurityGroupRules__list": _call(
        "ModifySecurityGroupRules",
        "sg-0a1b2c3d4e5f60718",
        None,
        "sgr-0aa11bb22cc33dd45",
        "sgr-0aa11bb22cc33dd46",
        "sgr-0aa11bb22cc33dd47",
    ),
    "synthetic__ModifySecurityGroupRules__object": _call(
        "ModifySecurityGroupRules", "sg-0a1b2c3d4e5f60718", None, "sgr-0aa11bb22cc33dd44"
    ),
    "synthetic__RevokeSecurityGroupEgress": _call(
        "RevokeSecurityGroupEgress", "sg-0a1b2c3d4e5f60718", OUT, "sgr-0dd44ee55ff660077"
    ),
    "synthetic__scheduled_event": ScheduledTick(
        time="2025-03-04T09:30:00Z", region="eu-west-1", account="111122223333"
    ),
    "synthetic__sns_wrapped": _call(
        "AuthorizeSecurityGroupIngress", "sg-01f414f5313452cd1", IN, "sgr-02e2ca7d55820dc26"
    ),
}

RAW_FIXTURES = [name for name in event_names() if is_raw_record(load_event(name))]
NOT_SNS_FIXTURES = [name for name in event_names() if "Records" not in load_event(name)]


def only(event: object) -> Trigger:
    """The single trigger an event must give."""
    triggers = parse_event(event)
    assert len(triggers) == 1, triggers
    return triggers[0]


def only_call(event: object) -> ApiCall:
    """The single trigger an event must give, which must be an ApiCall."""
    trigger = only(event)
    assert isinstance(trigger, ApiCall), trigger
    return trigger


# --- Every fixture ---------------------------------------------------------------------


def test_every_fixture_has_an_expectation() -> None:
    """Each JSON file under tests/events/ is listed in EXPECTED, and nothing else is."""
    assert set(event_names()) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_to_the_expected_trigger(name: str) -> None:
    """Each fixture gives one trigger: the groups, direction and rule ids, or why it is ignored."""
    expected = EXPECTED[name]
    trigger = only(load_event(name))
    if isinstance(expected, Call):
        assert isinstance(trigger, ApiCall), trigger
        got = Call(
            trigger.event_name,
            trigger.group_ids,
            trigger.direction,
            trigger.rule_ids,
            trigger.group_names,
        )
        assert got == expected
        assert trigger.error_code is None
    else:
        assert trigger == expected


def test_there_are_raw_fixtures_to_compare() -> None:
    """The raw-versus-wrapped comparison below runs over the raw samples the README lists."""
    assert "AuthorizeSecurityGroupIngress__stratus-red-team__1" in RAW_FIXTURES
    assert len(RAW_FIXTURES) >= 12


@pytest.mark.parametrize("name", RAW_FIXTURES)
def test_raw_record_parses_the_same_as_its_eventbridge_form(name: str) -> None:
    """A bare CloudTrail record and the same record in an EventBridge envelope give one result."""
    record = load_event(name)
    assert parse_event(record) == parse_event(as_eventbridge(record))


@pytest.mark.parametrize("name", NOT_SNS_FIXTURES)
def test_sns_wrapping_changes_nothing(name: str) -> None:
    """Any fixture delivered as an SNS message gives the same trigger as delivered directly."""
    event = load_event(name)
    assert parse_event(as_sns(event)) == parse_event(event)


def test_sns_fixture_gives_the_trigger_of_the_message_it_carries() -> None:
    """The SNS fixture (kuali__1 as its Message) parses exactly like kuali__1 itself."""
    assert parse_event(load_event("synthetic__sns_wrapped")) == parse_event(load_event(KUALI))


def test_several_sns_records_give_one_trigger_each_in_order() -> None:
    """An SNS event with three records gives three triggers, in record order."""
    first = load_event(KUALI)
    second = load_event("synthetic__scheduled_event")
    third = load_event("RunInstances__stratus-red-team__1")
    triggers = parse_event(as_sns(first, second, third))
    assert triggers == (only(first), only(second), only(third))


# --- What the call asked for ------------------------------------------------------------


REQUESTED: dict[str, tuple[RequestedRule, ...]] = {
    "AuthorizeSecurityGroupIngress__streamalert__1": (
        RequestedRule(IN, "all", None, None, "0.0.0.0/0", "..."),
        RequestedRule(IN, "all", None, None, "::/0", "..."),
    ),
    "AuthorizeSecurityGroupIngress__streamalert__2": (
        RequestedRule(IN, "all", None, None, "10.0.0.0/8", "..."),
    ),
    # Flat form: ipPermissions is {} and the rule sits at the top of requestParameters.
    "AuthorizeSecurityGroupIngress__stratus-red-team__1": (
        RequestedRule(IN, "tcp", 22, 22, "208.236.235.254/0", None, "sgr-09b3e3d2ca1edf2a2"),
    ),
    KUALI: (
        RequestedRule(
            IN,
            "tcp",
            1521,
            1521,
            "sg-000537769a1c2d858",
            "Allows ingress to an rds instance created in another stack from application"
            " ec2 instances created in this stack.",
            "sgr-02e2ca7d55820dc26",
        ),
    ),
    "AuthorizeSecurityGroupIngress__netflix-historical__1": (
        RequestedRule(IN, "tcp", 0, 65535, "sg-4e386e22", None),
    ),
    "AuthorizeSecurityGroupIngress__watch-security-group__2": (
        RequestedRule(
            IN, "tcp", 3389, 3389, "sg-zzzzzzzzzzzzzzz", "All RDP from front-end security group"
        ),
    ),
    "AuthorizeSecurityGroupIngress__cloud-buddy__1": (
        RequestedRule(IN, "tcp", 22, 22, "::/0", "open 22 anywhere"),
    ),
    "AuthorizeSecurityGroupIngress__unattributed-a__1": (
        RequestedRule(IN, "tcp", 6290, 6290, "0.0.0.0/16", "6290-add1"),
        RequestedRule(IN, "tcp", 9062, 9062, "0.0.0.0/32", "9062-add2"),
    ),
    "AuthorizeSecurityGroupIngress__unattributed-b__1": (
        RequestedRule(IN, "tcp", 22, 22, "0.0.0.0/0", None),
        RequestedRule(IN, "tcp", 22, 22, "::/0", None),
    ),
    # Ports given as strings by a SIEM normaliser.
    "AuthorizeSecurityGroupIngress__panther-analysis__2": (
        RequestedRule(IN, "tcp", 443, 443, "0.0.0.0/16", None),
    ),
    "AuthorizeSecurityGroupIngress__elastic-integrations__1": (
        RequestedRule(IN, "tcp", 22, 22, "203.0.113.0/24", None, "sgr-027eb7c59241731e0"),
    ),
    "AuthorizeSecurityGroupEgress__panther-analysis__1": (
        RequestedRule(
            OUT,
            "all",
            None,
            None,
            "0.0.0.0/0",
            "Allow egress to the internet. Required for now until we land ECS/ECR endpoints"
            " in the VPC",
        ),
    ),
    "RevokeSecurityGroupIngress__unattributed-e__1": (
        RequestedRule(IN, "tcp", 0, 65535, "127.0.0.1/32", None),
    ),
    "CreateSecurityGroup__panther-analysis__1": (),
    "synthetic__AuthorizeSecurityGroupIngress__prefix_list": (
        RequestedRule(
            IN, "tcp", 443, 443, "pl-0fedcba9876543210", "corporate ranges", "sgr-0bb22cc33dd44ee55"
        ),
    ),
    "synthetic__AuthorizeSecurityGroupIngress__by_group_name": (
        RequestedRule(IN, "tcp", 80, 80, "0.0.0.0/0", None, "sgr-0cc33dd44ee55ff66"),
    ),
    "synthetic__RevokeSecurityGroupEgress": (
        RequestedRule(OUT, "all", None, None, "0.0.0.0/0", None, "sgr-0dd44ee55ff660077"),
    ),
    "synthetic__ModifySecurityGroupRules__object": (
        RequestedRule(
            None,
            "tcp",
            443,
            443,
            "10.20.0.0/16",
            "HTTPS from the office VPN",
            "sgr-0aa11bb22cc33dd44",
        ),
    ),
    "synthetic__ModifySecurityGroupRules__list": (
        RequestedRule(
            None, "all", None, None, "2001:db8::/32", "all from the lab", "sgr-0aa11bb22cc33dd45"
        ),
        RequestedRule(
            None,
            "tcp",
            5432,
            5432,
            "sg-0123456789abcdef0",
            "postgres from app tier",
            "sgr-0aa11bb22cc33dd46",
        ),
        RequestedRule(None, "tcp", 22, 22, "pl-0fedcba9876543210", None, "sgr-0aa11bb22cc33dd47"),
    ),
}


@pytest.mark.parametrize("name", sorted(REQUESTED))
def test_requested_rules_are_parsed(name: str) -> None:
    """Every peer of every permission (nested or flat form) becomes one requested rule."""
    assert only_call(load_event(name)).requested == REQUESTED[name]


@pytest.mark.parametrize(
    ("protocol", "ports", "expected"),
    [
        ("-1", (-1, -1), ("all", None, None)),
        ("TCP", (80, 80), ("tcp", 80, 80)),
        ("6", (80, 80), ("tcp", 80, 80)),
        ("icmp", (8, -1), ("icmp", 8, -1)),
        ("50", (None, None), ("50", None, None)),
        ("sctp", (9, 9), ("sctp", 9, 9)),
    ],
)
def test_protocol_is_lower_cased_with_all_for_minus_one_and_no_ports_for_all(
    protocol: str, ports: tuple[int | None, int | None], expected: tuple[str, Any, Any]
) -> None:
    """Protocol -1 reads as "all" without ports; names are lower-cased, numbers 6/17/1/58 named."""
    event = load_event("AuthorizeSecurityGroupIngress__panther-analysis__1")
    item = event["requestParameters"]["ipPermissions"]["items"][0]
    item["ipProtocol"] = protocol
    item["fromPort"], item["toPort"] = ports
    (rule,) = only_call(event).requested
    assert (rule.protocol, rule.from_port, rule.to_port) == expected


@pytest.mark.parametrize(
    ("user_id", "peer"),
    [
        ("999988887777", "999988887777/sg-000537769a1c2d858"),
        ("770203350335", "sg-000537769a1c2d858"),
        (None, "sg-000537769a1c2d858"),
    ],
)
def test_a_group_of_another_account_is_named_with_its_account(
    user_id: str | None, peer: str
) -> None:
    """A source group of another account reads ``account/sg-…``; one of this account, ``sg-…``."""
    event = load_event(KUALI)
    pair = event["detail"]["requestParameters"]["ipPermissions"]["items"][0]["groups"]["items"][0]
    if user_id is not None:
        pair["userId"] = user_id
    (rule,) = only_call(event).requested
    assert rule.peer == peer


def test_a_source_group_given_by_name_keeps_the_name_as_peer() -> None:
    """A default-VPC source group named without an id shows that name as the peer."""
    event = load_event("AuthorizeSecurityGroupIngress__watch-security-group__2")
    pair = event["detail"]["requestParameters"]["ipPermissions"]["items"][0]["groups"]["items"][0]
    del pair["groupId"]
    pair["groupName"] = "front-end"
    (rule,) = only_call(event).requested
    assert rule.peer == "front-end"


def test_flat_form_with_a_source_group_name_is_a_requested_rule() -> None:
    """The flat form naming a source group (and its owner) gives one rule from that group."""
    event = load_event("AuthorizeSecurityGroupIngress__stratus-red-team__1")
    params = event["requestParameters"]
    del params["cidrIp"]
    params["sourceSecurityGroupName"] = "bastion"
    params["sourceSecurityGroupOwnerId"] = "999988887777"
    (rule,) = only_call(event).requested
    assert rule == RequestedRule(IN, "tcp", 22, 22, "999988887777/bastion", None)


# --- Tags ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "tags"),
    [
        ("synthetic__CreateTags__sg", (("sg-reconciler/policy", "web-prod"), ("team", "payments"))),
        ("synthetic__DeleteTags__sg", (("sg-reconciler/policy", None), ("team", "payments"))),
        (
            "synthetic__CreateSecurityGroup__with_tags",
            (("Name", "web-prod"), ("sg-reconciler/policy", "web-prod")),
        ),
        ("CreateSecurityGroup__panther-analysis__1", ()),
    ],
)
def test_tags_come_from_tag_set_or_the_security_group_tag_specification(
    name: str, tags: tuple[tuple[str, str | None], ...]
) -> None:
    """Tag calls give their tagSet (a value may be absent); CreateSecurityGroup, its own tags."""
    assert only_call(load_event(name)).tags == tags


def test_tag_specifications_for_other_resource_types_are_not_the_groups_tags() -> None:
    """Only the tagSpecificationSet entry for resourceType security-group names the group's tags."""
    event = load_event("synthetic__CreateSecurityGroup__with_tags")
    specs = event["requestParameters"]["tagSpecificationSet"]["items"]
    specs.append({"resourceType": "vpc", "tags": [{"key": "Name", "value": "not-the-group"}]})
    assert ("Name", "not-the-group") not in only_call(event).tags


def test_tagging_only_rules_and_instances_names_no_security_group() -> None:
    """CreateTags on an instance and an sgr- rule touches no group and is ignored."""
    event = load_event("synthetic__CreateTags__sg")
    event["detail"]["requestParameters"]["resourcesSet"] = {
        "items": [{"resourceId": "i-0123456789abcdef0"}, {"resourceId": "sgr-0aa11bb22cc33dd44"}]
    }
    assert only(event) == Ignored("no_security_group", "CreateTags")


def test_tagging_several_groups_names_every_group() -> None:
    """CreateTags on two groups (and an instance) lists both groups, in request order."""
    event = load_event("synthetic__CreateTags__sg")
    event["detail"]["requestParameters"]["resourcesSet"]["items"].append(
        {"resourceId": "sg-0ffffffffffffffff"}
    )
    assert only_call(event).group_ids == ("sg-0a1b2c3d4e5f60718", "sg-0ffffffffffffffff")


# --- Who, when, where ------------------------------------------------------------------


def test_actor_of_a_cloudformation_call_names_the_role_and_the_service() -> None:
    """The actor carries the session issuer ARN (for the handler's own-role check) and invokedBy."""
    assert only_call(load_event(KUALI)).actor == Actor(
        arn="arn:aws:sts::770203350335:assumed-role/Shibboleth-InfraMgt/wrh@bu.edu",
        type="AssumedRole",
        session_issuer_arn="arn:aws:iam::770203350335:role/Shibboleth-InfraMgt",
        source_ip="AWS Internal",
        user_agent="AWS Internal",
        invoked_by="cloudformation.amazonaws.com",
    )


def test_actor_of_a_root_console_call_has_no_session_issuer() -> None:
    """A root console call has no session issuer; its invokedBy is the sign-in service."""
    actor = only_call(load_event("AuthorizeSecurityGroupIngress__cloud-buddy__1")).actor
    assert actor == Actor(
        arn="arn:aws:iam::864374811737:root",
        type="Root",
        session_issuer_arn=None,
        source_ip="38.104.243.166",
        user_agent="signin.amazonaws.com",
        invoked_by="signin.amazonaws.com",
    )


def test_session_issuer_is_found_under_lower_cased_keys() -> None:
    """A SIEM-normalised record (sessioncontext/sessionissuer) still exposes the issuer ARN."""
    actor = only_call(load_event("AuthorizeSecurityGroupIngress__panther-analysis__2")).actor
    assert actor.session_issuer_arn == "arn:aws:iam::112233445566:role/TestAdmin"


def test_calls_by_the_reconcilers_own_role_are_still_parsed() -> None:
    """The parser leaves the own-role decision to the handler: such a call is an ApiCall."""
    event = load_event(KUALI)
    own = "arn:aws:iam::770203350335:role/sg-reconciler"
    event["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] = own
    assert only_call(event).actor.session_issuer_arn == own


def test_event_metadata_is_taken_from_the_record() -> None:
    """Event id, time, region, account and request id come from the CloudTrail record."""
    call = only_call(load_event(KUALI))
    assert (call.event_id, call.event_time, call.region, call.account, call.request_id) == (
        "50dd3491-f4bc-4a04-a4e0-db6d5311049d",
        "2022-11-16T02:34:24Z",
        "us-east-1",
        "770203350335",
        "b389022f-eb12-4752-a925-f12a129d8d29",
    )


def test_account_falls_back_to_the_envelope_when_the_record_has_none() -> None:
    """Without recipientAccountId the envelope's account is used."""
    call = only_call(load_event("AuthorizeSecurityGroupIngress__watch-security-group__1"))
    assert call.account == "123456789012"


def test_an_integer_envelope_account_reads_as_text() -> None:
    """A sanitised envelope giving the account as a number yields the digits as a string."""
    event = load_event("AuthorizeSecurityGroupIngress__streamalert__1")
    del event["detail"]["recipientAccountId"]
    assert event["account"] == 12345
    assert only_call(event).account == "12345"


def test_region_and_time_fall_back_to_the_envelope() -> None:
    """Without awsRegion/eventTime in the record, the envelope's region and time are used."""
    event = load_event(KUALI)
    del event["detail"]["awsRegion"], event["detail"]["eventTime"]
    event["region"], event["time"] = "eu-north-1", "2022-11-16T02:34:25Z"
    call = only_call(event)
    assert (call.region, call.event_time) == ("eu-north-1", "2022-11-16T02:34:25Z")


@pytest.mark.parametrize(
    ("response", "request_id", "returned"),
    [
        ({"requestId": "r-1", "_return": True}, "r-1", True),
        ({"requestID": "r-2", "return": False}, "r-2", False),
        ({"_return": "true"}, None, True),
        (None, None, None),
    ],
)
def test_request_id_and_return_accept_both_spellings(
    response: dict[str, Any] | None, request_id: str | None, returned: bool | None
) -> None:
    """requestId/requestID and _return/return both read; responseElements may be null."""
    event = load_event("AuthorizeSecurityGroupIngress__panther-analysis__1")
    del event["requestID"]
    event["responseElements"] = response
    call = only_call(event)
    assert (call.request_id, call.returned) == (request_id, returned)


def test_modify_return_is_read_from_its_own_response() -> None:
    """ModifySecurityGroupRules reports success under ModifySecurityGroupRulesResponse.return."""
    event = load_event("synthetic__ModifySecurityGroupRules__object")
    response = event["detail"]["responseElements"]["ModifySecurityGroupRulesResponse"]
    response["return"] = False
    assert only_call(event).returned is False


# --- Shapes that still name a group --------------------------------------------------------


def test_a_successful_call_without_response_elements_still_names_the_request_group() -> None:
    """responseElements null on a success: the request groupId is enough, rule ids are empty."""
    event = load_event(KUALI)
    event["detail"]["responseElements"] = None
    call = only_call(event)
    assert (call.group_ids, call.rule_ids) == (("sg-01f414f5313452cd1",), ())


def test_a_create_without_a_response_falls_back_to_the_group_name() -> None:
    """CreateSecurityGroup with no response gives the requested name, since no id is known."""
    event = load_event("CreateSecurityGroup__panther-analysis__1")
    event["responseElements"] = None
    call = only_call(event)
    assert (call.group_ids, call.group_names) == ((), ("prod-webapp-webserver-security",))


def test_modify_security_group_rule_may_be_a_list_with_one_object() -> None:
    """A one-element SecurityGroupRule list parses like the same rule given as an object."""
    event = load_event("synthetic__ModifySecurityGroupRules__object")
    request = event["detail"]["requestParameters"]["ModifySecurityGroupRulesRequest"]
    as_object = only_call(event)
    request["SecurityGroupRule"] = [request["SecurityGroupRule"]]
    assert only_call(event) == as_object


def test_ports_given_as_strings_read_as_numbers() -> None:
    """String ports ("443") read as integers; unreadable ports read as absent."""
    event = load_event("AuthorizeSecurityGroupIngress__panther-analysis__1")
    item = event["requestParameters"]["ipPermissions"]["items"][0]
    item["fromPort"], item["toPort"] = "443", "port"
    (rule,) = only_call(event).requested
    assert (rule.from_port, rule.to_port) == (443, None)


# --- Ignored ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["Client.InvalidPermission.Duplicate", "Client.DryRunOperation"])
def test_a_failed_security_group_call_is_ignored_with_its_code(code: str) -> None:
    """A record with errorCode changed nothing: it is ignored, naming the code and the call."""
    event = load_event(KUALI)
    event["detail"]["errorCode"] = code
    assert only(event) == Ignored("error_code:" + code, "AuthorizeSecurityGroupIngress")


def test_an_unhandled_ec2_call_is_ignored_by_name() -> None:
    """A successful EC2 call outside HANDLED_EVENT_NAMES is ignored as unknown_event."""
    event = load_event("RunInstances__stratus-red-team__1")
    del event["errorCode"], event["errorMessage"]
    assert only(event) == Ignored("unknown_event:RunInstances", "RunInstances")


def test_a_handled_call_that_names_no_group_is_malformed() -> None:
    """An Authorize with neither a group id nor a group name anywhere is malformed:no_group."""
    event = load_event("AuthorizeSecurityGroupIngress__panther-analysis__1")
    event["requestParameters"] = {}
    assert only(event) == Ignored("malformed:no_group", "AuthorizeSecurityGroupIngress")


def test_a_cloudtrail_envelope_from_another_service_is_other_source() -> None:
    """An EventBridge CloudTrail envelope from aws.s3 is ignored as other_source:aws.s3."""
    record = load_event("AuthorizeSecurityGroupIngress__panther-analysis__1")
    record["eventSource"], record["eventName"] = "s3.amazonaws.com", "PutBucketPolicy"
    envelope = as_eventbridge(record)
    envelope["source"] = "aws.s3"
    assert only(envelope) == Ignored("other_source:aws.s3")


def test_a_bare_record_from_another_service_is_other_source() -> None:
    """A bare record whose eventSource is not EC2 is ignored, naming that eventSource."""
    record = load_event("AuthorizeSecurityGroupIngress__panther-analysis__1")
    record["eventSource"] = "s3.amazonaws.com"
    assert only(record) == Ignored("other_source:s3.amazonaws.com", "AuthorizeSecurityGroupIngress")


def test_a_record_that_is_not_from_sns_is_other_source() -> None:
    """A Records event from SQS is ignored record by record as other_source:aws:sqs."""
    event = {"Records": [{"eventSource": "aws:sqs", "EventSource": "aws:sqs", "body": "{}"}]}
    assert parse_event(event) == (Ignored("other_source:aws:sqs"),)


@pytest.mark.parametrize(
    ("source", "detail_type", "reason"),
    [
        ("aws.ec2", "EC2 Instance State-change Notification", "other_detail_type:"),
        ("aws.events", "Not A Schedule", "other_detail_type:"),
    ],
)
def test_non_cloudtrail_events_from_ec2_or_the_scheduler_are_other_detail_type(
    source: str, detail_type: str, reason: str
) -> None:
    """An aws.ec2 event that is no CloudTrail record, or an aws.events non-schedule, is ignored."""
    event = {"source": source, "detail-type": detail_type, "detail": {"state": "running"}}
    assert only(event) == Ignored(reason + detail_type)


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (None, "malformed:not_an_object"),
        ([], "malformed:not_an_object"),
        ("AuthorizeSecurityGroupIngress", "malformed:not_an_object"),
        (42, "malformed:not_an_object"),
        ({}, "malformed:unrecognised_shape"),
        ({"Records": []}, "malformed:no_records"),
        ({"Records": "x"}, "malformed:no_records"),
        ({"Records": [7]}, "malformed:record_not_an_object"),
        ({"Records": [{"Sns": {"Message": "{}"}}]}, "malformed:record_without_source"),
        ({"Records": [{"EventSource": "aws:sns", "Sns": {}}]}, "malformed:sns_without_message"),
        (
            {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "not json"}}]},
            "malformed:sns_message_not_json",
        ),
        (
            {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": '{"Records": []}'}}]},
            "malformed:nested_records",
        ),
        (
            {"source": "aws.ec2", "detail-type": "AWS API Call via CloudTrail"},
            "malformed:no_detail",
        ),
        ({"eventName": "CreateTags"}, "malformed:no_event_source"),
        ({"eventSource": "ec2.amazonaws.com"}, "malformed:no_event_name"),
    ],
)
def test_unknown_shapes_are_ignored_as_malformed(event: object, reason: str) -> None:
    """Payloads of no known shape give a single Ignored naming what was wrong."""
    (trigger,) = parse_event(event)
    assert isinstance(trigger, Ignored)
    assert trigger.reason == reason


def test_ignored_reasons_stay_short() -> None:
    """A reason built from event text is cut to 120 characters."""
    record = load_event("AuthorizeSecurityGroupIngress__panther-analysis__1")
    record["eventName"] = "X" * 500
    trigger = only(record)
    assert isinstance(trigger, Ignored)
    assert trigger.reason == ("unknown_event:" + "X" * 500)[:120]


def test_a_bug_in_the_parser_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    """If parsing itself fails, parse_event still returns, with an internal_error reason."""

    def broken(event: object) -> Trigger:
        raise RuntimeError(event)

    monkeypatch.setattr(events, "_parse_one", broken)
    assert parse_event({}) == (Ignored("internal_error:RuntimeError"),)


# --- The public contract ----------------------------------------------------------------


def test_handled_event_names_are_the_security_group_and_prefix_list_calls() -> None:
    """The deploy template's event pattern is tested against exactly these names."""
    assert (
        frozenset(
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
        == HANDLED_EVENT_NAMES
    )


def test_triggers_are_frozen() -> None:
    """Parsed values cannot be changed after the fact."""
    call = only_call(load_event(KUALI))
    with pytest.raises(dataclasses.FrozenInstanceError):
        call.group_ids = ()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        call.requested[0].peer = "0.0.0.0/0"  # type: ignore[misc]


def stringify_numbers(value: object) -> object:
    """The same JSON with every integer (not boolean) written as a string."""
    if isinstance(value, dict):
        return {key: stringify_numbers(child) for key, child in value.items()}
    if isinstance(value, list):
        return [stringify_numbers(child) for child in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_numbers_written_as_strings_parse_the_same(name: str) -> None:
    """Writing every number of a fixture as a string (ports, accounts) changes no trigger."""
    event = load_event(name)
    assert parse_event(stringify_numbers(event)) == parse_event(event)


def test_modify_managed_prefix_list_names_the_list() -> None:
    """The edited list is read from the request (wrapped, as CloudTrail writes newer APIs)."""
    event = {
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ec2",
        "detail": {
            "eventSource": "ec2.amazonaws.com",
            "eventName": "ModifyManagedPrefixList",
            "awsRegion": "eu-west-1",
            "requestParameters": {
                "ModifyManagedPrefixListRequest": {"PrefixListId": "pl-0123456789abcdef0"}
            },
        },
    }
    (call,) = parse_event(event)
    assert isinstance(call, ApiCall)
    assert (call.prefix_list_ids, call.group_ids) == (("pl-0123456789abcdef0",), ())
    event["detail"]["requestParameters"] = {}
    assert parse_event(event) == (Ignored("malformed:no_group", "ModifyManagedPrefixList"),)
