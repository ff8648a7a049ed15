"""moto's EventBridge pattern matching brought in line with AWS's, for event-pattern tests.

AWS matches patterns with Event Ruler, which "crushes" arrays of objects out of the event: in
``{"items": [{"resourceId": "i-1"}, {"resourceId": "sg-2"}]}`` the pattern
``{"items": {"resourceId": [{"prefix": "sg-"}]}}`` matches, as if ``items.resourceId`` were
the array ``["i-1", "sg-2"]`` (the event-ruler README, "JSON Array Matching"). moto (5.x)
flattens only nested objects and never looks inside arrays, so no such pattern ever matches.
``ruler_like_arrays`` patches moto's flattening to collect the values of objects inside arrays
the way Ruler does. (Ruler's ``rulesForJSONEvent`` also refuses to combine two fields taken from
different elements of one array; our patterns test one field per array, so that is not copied.)
"""

from __future__ import annotations

__all__ = ["ruler_like_arrays"]

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from moto.events.models import EventPattern


def _flatten(
    node: Any, prefix: str = "", result: dict[str, Any] | None = None, *, in_array: bool = False
) -> dict[str, Any]:
    result = {} if result is None else result
    if not isinstance(node, dict):
        return result
    for name, value in node.items():
        key = f"{prefix}.{name}" if prefix else name
        if isinstance(value, dict) and value:
            _flatten(value, key, result, in_array=in_array)
        elif isinstance(value, list) and any(isinstance(item, dict) for item in value):
            for item in value:
                _flatten(item, key, result, in_array=True)
        elif in_array:
            collected = result.setdefault(key, [])
            collected.extend(value if isinstance(value, list) else [value])
        else:
            result[key] = value
    return result


@contextmanager
def ruler_like_arrays() -> Iterator[None]:
    """Within the block, moto's event patterns see inside arrays of objects, as AWS's do."""
    with mock.patch.object(EventPattern, "_flatten_dict", staticmethod(_flatten)):
        yield
