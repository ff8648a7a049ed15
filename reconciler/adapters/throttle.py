"""Client-side token buckets, so a large fix runs at EC2's rate instead of being throttled.

EC2 throttles per account and region with token buckets per API class (AWS's "Request
throttling for the Amazon EC2 API"): non-mutating Describe* calls 100 burst / 20 per second;
RevokeSecurityGroupIngress and AuthorizeSecurityGroupIngress share a bucket of 50 / 5; other
mutating calls (RevokeSecurityGroupEgress, ...) 50 / 5. Waiting for our own token before each
call keeps the run at that rate with no RequestLimitExceeded, and leaves the account's
other callers the same share they had.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_RATES",
    "ApiRateLimiter",
    "TokenBucket",
    "api_class",
    "parse_rates",
]

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_RATES: Mapping[str, tuple[float, float]] = {
    "describe": (100.0, 20.0),
    "sg_ingress": (50.0, 5.0),
    "mutating": (50.0, 5.0),
}

_SG_INGRESS = frozenset({"RevokeSecurityGroupIngress", "AuthorizeSecurityGroupIngress"})


def api_class(operation: str) -> str:
    """The EC2 throttling bucket an operation draws from."""
    if operation.startswith("Describe"):
        return "describe"
    if operation in _SG_INGRESS:
        return "sg_ingress"
    return "mutating"


def parse_rates(text: str) -> dict[str, tuple[float, float]]:
    """Parse ``describe=100/20,sg_ingress=50/5`` into {class: (burst, per second)}.

    Raises ValueError with the fix when the text is malformed.
    """
    rates = dict(DEFAULT_RATES)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        burst, _, refill = value.partition("/")
        try:
            parsed = (float(burst), float(refill))
        except ValueError:
            raise ValueError(
                f"rate {part!r} is not CLASS=BURST/PER_SECOND (e.g. sg_ingress=50/5)"
            ) from None
        if name.strip() not in DEFAULT_RATES or min(parsed) <= 0:
            raise ValueError(
                f"rate {part!r}: class must be one of {', '.join(DEFAULT_RATES)} and both"
                " numbers positive"
            )
        rates[name.strip()] = parsed
    return rates


@dataclass
class TokenBucket:
    """A thread-safe token bucket; ``acquire`` reserves a token and sleeps until it is due."""

    capacity: float
    refill_per_second: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        self._tokens = self.capacity
        self._stamp = self.clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, waiting as long as needed; return the seconds waited."""
        with self._lock:
            now = self.clock()
            elapsed = now - self._stamp
            self._stamp = now
            self._tokens = min(self.capacity, self._tokens + elapsed * self.refill_per_second)
            self._tokens -= 1  # a reservation: concurrent callers queue up behind it
            wait = max(0.0, -self._tokens / self.refill_per_second)
        if wait > 0:
            self.sleep(wait)
        return wait


class ApiRateLimiter:
    """One bucket per API class for one account and region; hooks into a botocore client."""

    def __init__(
        self,
        rates: Mapping[str, tuple[float, float]] = DEFAULT_RATES,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.buckets = {
            name: TokenBucket(burst, refill, clock=clock, sleep=sleep)
            for name, (burst, refill) in rates.items()
        }
        self.waited = 0.0
        self._lock = threading.Lock()

    def before_call(self, model: Any, **_: Any) -> None:
        """botocore ``before-call`` hook: wait for a token of the operation's class."""
        waited = self.buckets[api_class(model.name)].acquire()
        with self._lock:
            self.waited += waited

    def attach(self, client: Any) -> None:
        """Make every EC2 call of ``client`` wait for its token first."""
        client.meta.events.register("before-call.ec2", self.before_call)
