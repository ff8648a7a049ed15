"""A fault-injecting wrapper around a real (moto) EC2 client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

Rule = Callable[[str, dict[str, Any]], str | None]


class FaultyEC2:
    """Proxies every call to ``client``; ``rules`` may answer a call with an AWS error code.

    Each rule gets (operation name in snake_case, kwargs) and returns an error code to
    raise, or None to let the call through.
    """

    def __init__(self, client: Any, *rules: Rule) -> None:
        self._client = client
        self._rules = list(rules)
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._client, name)
        if not callable(target) or name.startswith(("get_paginator", "meta")):
            return target

        def call(**kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            for rule in self._rules:
                code = rule(name, kwargs)
                if code is not None:
                    raise ClientError(
                        {"Error": {"Code": code, "Message": f"injected {code}"}}, name
                    )
            return target(**kwargs)

        return call


def fail_on(operation: str, code: str, *, group_id: str | None = None) -> Rule:
    """A rule failing every ``operation`` call (optionally only for one group)."""

    def rule(name: str, kwargs: dict[str, Any]) -> str | None:
        if name == operation and (group_id is None or kwargs.get("GroupId") == group_id):
            return code
        return None

    return rule
