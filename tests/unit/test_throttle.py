"""Client-side token buckets pace EC2 calls at AWS's documented rates."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from reconciler.adapters.throttle import (
    DEFAULT_RATES,
    ApiRateLimiter,
    TokenBucket,
    api_class,
    parse_rates,
)


class FakeClock:
    """A clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_burst_then_refill_rate() -> None:
    """50 calls go at once; each further call waits 1/5 s, so 60 calls take 2 s."""
    clock = FakeClock()
    bucket = TokenBucket(50, 5, clock=clock, sleep=clock.sleep)
    waits = [bucket.acquire() for _ in range(60)]
    assert waits[:50] == [0.0] * 50
    assert waits[50:] == pytest.approx([0.2] * 10)
    assert clock.now == pytest.approx(2.0)


def test_idle_time_refills_up_to_capacity_only() -> None:
    """After a long pause the bucket holds its capacity, not more."""
    clock = FakeClock()
    bucket = TokenBucket(2, 1, clock=clock, sleep=clock.sleep)
    bucket.acquire()
    bucket.acquire()
    clock.now += 100
    assert [bucket.acquire() for _ in range(3)] == pytest.approx([0.0, 0.0, 1.0])


@pytest.mark.parametrize(
    ("operation", "bucket"),
    [
        ("DescribeSecurityGroupRules", "describe"),
        ("DescribeSecurityGroups", "describe"),
        ("RevokeSecurityGroupIngress", "sg_ingress"),
        ("AuthorizeSecurityGroupIngress", "sg_ingress"),
        ("RevokeSecurityGroupEgress", "mutating"),
        ("AuthorizeSecurityGroupEgress", "mutating"),
    ],
)
def test_operations_draw_from_their_documented_bucket(operation: str, bucket: str) -> None:
    """Describe calls, SG ingress writes and other writes have separate buckets."""
    assert api_class(operation) == bucket


def test_limiter_paces_each_class_independently() -> None:
    """Exhausting the ingress bucket does not slow describes."""
    clock = FakeClock()
    limiter = ApiRateLimiter(clock=clock, sleep=clock.sleep)
    revoke = SimpleNamespace(name="RevokeSecurityGroupIngress")
    describe = SimpleNamespace(name="DescribeSecurityGroups")
    for _ in range(51):
        limiter.before_call(revoke)
    assert limiter.waited == pytest.approx(0.2)
    limiter.before_call(describe)
    assert limiter.waited == pytest.approx(0.2)


def test_parse_rates_overrides_defaults_and_rejects_nonsense() -> None:
    """Rates can be tuned per class; malformed text is a one-line error with the fix."""
    assert parse_rates("sg_ingress=10/2") == {**DEFAULT_RATES, "sg_ingress": (10.0, 2.0)}
    with pytest.raises(ValueError, match=r"is not CLASS=BURST/PER_SECOND \(e.g. sg_ingress=50/5\)"):
        parse_rates("sg_ingress=fast")
    with pytest.raises(ValueError, match="class must be one of describe, sg_ingress, mutating"):
        parse_rates("other=1/1")
