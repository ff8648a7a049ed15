"""Fault injection around real (moto) clients.

``FaultyEC2`` wraps a client and answers chosen calls with an AWS error before they reach it
(above botocore's retries: an injected throttle is not retried). ``SendFaults`` answers at
botocore's ``before-send`` event instead, below the retries, so the client's real retry
configuration handles the injected errors.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import boto3
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from moto.core.models import botocore_stubber

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


def fail_first(operation: str, code: str, times: int) -> Rule:
    """A rule failing the first ``times`` calls of ``operation``, then letting all through."""
    left = [times]

    def rule(name: str, _kwargs: dict[str, Any]) -> str | None:
        if name == operation and left[0] > 0:
            left[0] -= 1
            return code
        return None

    return rule


def reject_rule_id(rule_id: str, code: str) -> Rule:
    """A rule refusing every revoke call whose ``SecurityGroupRuleIds`` include ``rule_id``."""

    def rule(name: str, kwargs: dict[str, Any]) -> str | None:
        if name.startswith("revoke_") and rule_id in kwargs.get("SecurityGroupRuleIds", []):
            return code
        return None

    return rule


def before_first(
    operation: str, action: Callable[[], object], *, group_id: str | None = None
) -> Rule:
    """A rule running ``action`` (someone else's change) just before the first matching call."""
    done = [False]

    def rule(name: str, kwargs: dict[str, Any]) -> str | None:
        matches = name == operation and (group_id is None or kwargs.get("GroupId") == group_id)
        if matches and not done[0]:
            done[0] = True
            action()
        return None

    return rule


# --- below botocore's retries -------------------------------------------------------------------


class _Body:
    """The raw stream AWSResponse reads a body from."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


def _error_body(protocol: str, code: str) -> bytes:
    """An error response body as the service's protocol writes it."""
    message = f"injected {code}"
    if protocol == "ec2":
        text = (
            f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error>"
            "</Errors><RequestID>injected</RequestID></Response>"
        )
    elif protocol == "query":
        text = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
            f"<Message>{message}</Message></Error><RequestId>injected</RequestId></ErrorResponse>"
        )
    elif protocol == "rest-xml":
        text = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    else:
        raise ValueError(f"no error body for protocol {protocol}")
    return text.encode()


@dataclass
class _Script:
    operation: str
    code: str
    status: int
    remaining: int | None  # None: every request
    when: Callable[[dict[str, list[str]]], bool] | None


class SendFaults:
    """Answers chosen requests with AWS error responses at botocore's ``before-send`` event.

    That is below botocore's retry handler: the client's real retry configuration (standard
    mode, ``max_attempts``) sees each injected error exactly as a real one, and a request
    that is let through goes on to moto. ``on_send`` runs a callback (e.g. a barrier) just
    before a matching request goes out.
    """

    def __init__(self) -> None:
        self._scripts: list[_Script] = []
        self._hooks: list[tuple[str, Callable[[dict[str, list[str]]], None]]] = []
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()

    def attach(self, session: boto3.Session) -> SendFaults:
        """Act on every client the session creates from now on.

        botocore calls every ``before-send`` handler and takes the first answer, and moto
        answers (and acts on) each request in its own handler: for this session, moto's
        handler is replaced by one that asks the faults first, so that an answered request
        never reaches moto, as a throttled request never changes anything on AWS.
        """
        session.events.unregister("before-send", botocore_stubber)
        session.events.register("before-send", self._answer)
        return self

    def _answer(self, **kwargs: Any) -> AWSResponse | None:
        return self._before_send(**kwargs) or botocore_stubber(**kwargs)

    def fail(
        self,
        operation: str,
        code: str,
        *,
        status: int = 400,
        times: int | None = None,
        when: Callable[[dict[str, list[str]]], bool] | None = None,
    ) -> None:
        """Answer ``operation`` with ``code`` (the first ``times`` requests, or all)."""
        with self._lock:
            self._scripts.append(_Script(operation, code, status, times, when))

    def throttle(self, operation: str, *, times: int | None = None) -> None:
        """Answer ``operation`` with 503 RequestLimitExceeded, as EC2 does when throttling."""
        self.fail(operation, "RequestLimitExceeded", status=503, times=times)

    def on_send(self, operation: str, callback: Callable[[dict[str, list[str]]], None]) -> None:
        """Run ``callback(params)`` before each ``operation`` request that is let through."""
        self._hooks.append((operation, callback))

    def stop(self) -> None:
        """The faults stop: every later request goes through."""
        with self._lock:
            self._scripts.clear()
            self._hooks.clear()

    def _before_send(self, request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        _, service, operation = event_name.split(".", 2)
        body = request.body or b""
        params = parse_qs(body.decode() if isinstance(body, bytes) else str(body))
        with self._lock:
            for script in self._scripts:
                if script.operation != operation or script.remaining == 0:
                    continue
                if script.when is not None and not script.when(params):
                    continue
                if script.remaining is not None:
                    script.remaining -= 1
                self.injected[operation] += 1
                protocol = _PROTOCOLS.get(service, "query")
                data = _error_body(protocol, script.code)
                return AWSResponse(request.url, script.status, {}, _Body(data))
            self.sent[operation] += 1
            hooks = [callback for name, callback in self._hooks if name == operation]
        for callback in hooks:
            callback(params)
        return None


_PROTOCOLS = {"ec2": "ec2", "s3": "rest-xml", "sns": "query", "sts": "query"}
