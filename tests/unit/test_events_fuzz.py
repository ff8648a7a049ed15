"""parse_event never raises: arbitrary JSON, and real samples mutated at random."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from reconciler.adapters.events import ApiCall, parse_event
from tests.eventfiles import as_sns
from tests.strategies import (
    DIRECTED_CALLS,
    FUZZ,
    JSON,
    RECORDS,
    WRAPPINGS,
    assert_well_formed,
    mutated_fixtures,
    wrapped,
)


@FUZZ
@given(JSON)
def test_arbitrary_json_never_raises(value: object) -> None:
    """Any JSON value gives a non-empty tuple of triggers and no exception."""
    assert_well_formed(parse_event(value))


@FUZZ
@given(mutated_fixtures())
def test_mutated_samples_never_raise(event: object) -> None:
    """Samples with keys dropped, values replaced or stringified still parse without raising."""
    assert_well_formed(parse_event(event))


@FUZZ
@given(st.lists(mutated_fixtures() | JSON, min_size=1, max_size=3))
def test_sns_wrapped_junk_gives_one_trigger_per_record(messages: list[object]) -> None:
    """Any messages delivered through SNS give exactly one trigger per SNS record."""
    triggers = parse_event(as_sns(*messages))
    assert_well_formed(triggers)
    assert len(triggers) == len(messages)


@FUZZ
@given(RECORDS, WRAPPINGS)
def test_shaped_random_records_never_raise(record: dict[str, Any], wrapping: str) -> None:
    """Handled EC2 records with random values in every known field parse without raising."""
    assert_well_formed(parse_event(wrapped(record, wrapping)))


@FUZZ
@given(RECORDS, WRAPPINGS)
def test_a_request_group_id_is_never_lost(record: dict[str, Any], wrapping: str) -> None:
    """Whatever else a successful Authorize/Revoke holds, the group id it names is reconciled."""
    if record["eventName"] not in DIRECTED_CALLS:
        record["eventName"] = "AuthorizeSecurityGroupIngress"
    record["requestParameters"]["groupId"] = "sg-0123456789abcdef0"
    (trigger,) = parse_event(wrapped(record, wrapping))
    assert isinstance(trigger, ApiCall), trigger
    assert "sg-0123456789abcdef0" in trigger.group_ids
