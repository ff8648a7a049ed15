"""A lenient, read-only view of the JSON objects of an event payload (see ``Wire``)."""

from __future__ import annotations

__all__ = ["ABSENT", "Wire"]

import math
import re
from typing import Any

_INTEGER = re.compile(r"-?[0-9]+", re.ASCII)


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


class Wire:
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
    def of(cls, value: object) -> Wire | None:
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

    def view(self, *keys: str) -> Wire | None:
        """The nested object, or None when it is absent or not an object."""
        return Wire.of(self.raw(*keys))

    def views(self, key: str) -> tuple[Wire, ...]:
        """The objects of an EC2 list (see ``_items``)."""
        return tuple(map(Wire, _items(self.raw(key))))

    def one_or_many(self, *keys: str) -> tuple[Wire, ...]:
        """The objects of a list that may also be given as a single object."""
        return tuple(map(Wire, _one_or_many(self.raw(*keys))))


ABSENT = Wire({})
