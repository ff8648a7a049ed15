"""Event JSON under tests/events/, and the wrappings AWS delivers a CloudTrail record in."""

from __future__ import annotations

__all__ = [
    "EVENTS_DIR",
    "as_eventbridge",
    "as_sns",
    "event_names",
    "is_raw_record",
    "load_event",
]

import json
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).parent / "events"


def load_event(name: str) -> dict[str, Any]:
    """The event stored as ``tests/events/<name>.json`` (a fresh copy on every call)."""
    data = json.loads((EVENTS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise TypeError(f"tests/events/{name}.json holds {type(data).__name__}, not an object")
    return data


def event_names() -> list[str]:
    """Every fixture name (file name without ``.json``), sorted."""
    return sorted(path.stem for path in EVENTS_DIR.glob("*.json"))


def is_raw_record(event: dict[str, Any]) -> bool:
    """True for a bare CloudTrail record (as in S3 or lookup-events), not an envelope."""
    return "eventName" in event and "detail" not in event


def as_eventbridge(record: dict[str, Any]) -> dict[str, Any]:
    """Wrap a bare CloudTrail record the way EventBridge delivers it to a Lambda."""
    return {
        "version": "0",
        "id": "00000000-0000-4000-8000-000000000000",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ec2",
        "account": record.get("recipientAccountId", "123456789012"),
        "time": record.get("eventTime"),
        "region": record.get("awsRegion"),
        "resources": [],
        "detail": record,
    }


def as_sns(*events: object) -> dict[str, Any]:
    """An SNS-to-Lambda event carrying each of ``events`` as one record's JSON message."""
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": f"00000000-0000-4000-8000-{index:012d}",
                    "TopicArn": "arn:aws:sns:us-east-1:123456789012:sg-changes",
                    "Message": json.dumps(event),
                },
            }
            for index, event in enumerate(events)
        ]
    }
