"""Fights: another automation re-creating what we revoke, made loud. Pure (the clock is given).

A Kubernetes load-balancer controller, a Terraform pipeline or a CloudFormation stack that
re-creates a rule we revoke starts an endless revoke/re-create loop. We never stop enforcing
(that would hand an attacker an off switch); we say so: when the same principal re-creates
the same rule in the same group three times within an hour, one ``FIGHTING`` notice per rule
and hour. Best effort: the memory is one warm Lambda container's.
"""

from __future__ import annotations

__all__ = ["FIGHT_THRESHOLD", "FIGHT_WINDOW", "Fight", "FightLog"]

from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from reconciler.core.rules import RuleKey

FIGHT_THRESHOLD = 3
FIGHT_WINDOW = timedelta(hours=1)
_MAX_TRACKED = 10_000  # a bound on the container's memory, whatever the event rate


@dataclass(frozen=True, slots=True)
class Fight:
    """One rule a principal keeps re-creating in one group."""

    principal: str
    account: str | None
    group_id: str
    key: RuleKey
    times: int


@dataclass
class FightLog:
    """Revokes answered per (principal, account, group, rule), within the window."""

    _seen: dict[tuple[str, str | None, str, RuleKey], deque[datetime]] = field(
        default_factory=lambda: defaultdict(deque)
    )
    _told: dict[tuple[str, str | None, str, RuleKey], datetime] = field(default_factory=dict)

    def revoked(
        self, principal: str, account: str | None, group_id: str, key: RuleKey, now: datetime
    ) -> Fight | None:
        """Record that a rule ``principal`` made was revoked at ``now``; a Fight to announce
        when it is the third time within the hour and none was announced this hour."""
        if len(self._seen) > _MAX_TRACKED:
            self._seen.clear()
            self._told.clear()
        ident = (principal, account, group_id, key)
        times = self._seen[ident]
        times.append(now)
        while times and now - times[0] > FIGHT_WINDOW:
            times.popleft()
        if len(times) < FIGHT_THRESHOLD:
            return None
        told = self._told.get(ident)
        if told is not None and now - told < FIGHT_WINDOW:
            return None
        self._told[ident] = now
        return Fight(principal, account, group_id, key, len(times))
