"""Fights: the third re-creation within an hour is announced once per rule and hour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reconciler.core.fights import FightLog
from reconciler.core.rules import Direction, RuleKey

SSH = RuleKey(Direction.INGRESS, "tcp", 22, 22, "0.0.0.0/0")
T0 = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
BOT = "arn:aws:sts::123456789012:assumed-role/k8s-lb-controller/i-1"


def test_three_recreations_within_the_hour_are_one_fight_per_hour() -> None:
    log = FightLog()
    got = [log.revoked(BOT, "1", "sg-1", SSH, T0 + timedelta(minutes=m)) for m in (0, 10, 20)]
    assert got[:2] == [None, None]
    assert got[2] is not None
    assert (got[2].principal, got[2].times) == (BOT, 3)
    announced = [
        m
        for m in (30, 65, 70, 85)
        if log.revoked(BOT, "1", "sg-1", SSH, T0 + timedelta(minutes=m)) is not None
    ]
    assert announced == [85]  # told at 20; the next notice an hour later, still fighting


def test_spread_out_or_different_rules_are_not_a_fight() -> None:
    log = FightLog()
    assert all(
        log.revoked(BOT, "1", "sg-1", SSH, T0 + timedelta(minutes=40 * i)) is None for i in range(3)
    )
    other = RuleKey(Direction.INGRESS, "tcp", 23, 23, "0.0.0.0/0")
    log2 = FightLog()
    assert log2.revoked(BOT, "1", "sg-1", SSH, T0) is None
    assert log2.revoked(BOT, "1", "sg-1", other, T0) is None
    assert log2.revoked("arn:other", "1", "sg-1", SSH, T0) is None
