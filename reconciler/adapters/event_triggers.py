"""The triggers ``parse_event`` returns: frozen values the rest of the service sees.

Plain dataclasses (no pydantic) so that an ignored event loads nothing heavy; import them from
reconciler.adapters.events.
"""

from __future__ import annotations

__all__ = ["Actor", "ApiCall", "Ignored", "RequestedRule", "ScheduledTick", "Trigger"]

from dataclasses import dataclass
from typing import TypeAlias

from reconciler.core.rules import Direction


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a call, as CloudTrail recorded it."""

    arn: str | None
    type: str | None
    session_issuer_arn: str | None
    source_ip: str | None
    user_agent: str | None
    invoked_by: str | None


@dataclass(frozen=True, slots=True)
class RequestedRule:
    """One rule a call asked for, for notifications only: never used to decide a revoke.

    ``direction`` is None for ModifySecurityGroupRules, whose record does not say it.
    ``protocol`` is lower-case with ``-1`` as ``all`` (and ``6``/``17``/``1``/``58`` named);
    protocol ``all`` has no ports. ``peer`` is a CIDR as given, ``sg-…`` (``account/sg-…``
    for another account's group), ``pl-…``, or a group name when only a name was given.
    """

    direction: Direction | None
    protocol: str
    from_port: int | None
    to_port: int | None
    peer: str
    description: str | None
    rule_id: str | None = None


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One successful CloudTrail-recorded EC2 call that touched security groups.

    ``group_ids`` holds every group the call touched; ``group_names`` is filled only when
    the call named a group and no id is known. ``rule_ids`` is a hint, never a decision.
    ``error_code`` is always None here: failed calls become ``Ignored``.
    """

    event_name: str
    event_id: str | None
    event_time: str | None
    region: str | None
    account: str | None
    group_ids: tuple[str, ...]
    group_names: tuple[str, ...]
    rule_ids: tuple[str, ...]
    direction: Direction | None
    requested: tuple[RequestedRule, ...]
    tags: tuple[tuple[str, str | None], ...]
    actor: Actor
    error_code: str | None
    request_id: str | None = None
    returned: bool | None = None
    prefix_list_ids: tuple[str, ...] = ()  # ModifyManagedPrefixList: the list edited


@dataclass(frozen=True, slots=True)
class ScheduledTick:
    """The periodic EventBridge schedule fired: sweep every group."""

    time: str | None
    region: str | None
    account: str | None


@dataclass(frozen=True, slots=True)
class Ignored:
    """A payload that asks for no work, and why (see the module docstring for reasons)."""

    reason: str
    event_name: str | None = None


Trigger: TypeAlias = ApiCall | ScheduledTick | Ignored
