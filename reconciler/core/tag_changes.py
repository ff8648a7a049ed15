"""What a tag change does to which policies govern a group."""

from __future__ import annotations

__all__ = ["policies_left"]

from collections.abc import Sequence

from reconciler.core.policy import Baseline
from reconciler.core.rules import ObservedGroup


def policies_left(
    baseline: Baseline, group: ObservedGroup, removed: Sequence[tuple[str, str | None]]
) -> list[str]:
    """Policies that matched the group before the tags were removed and do not now."""
    out = []
    for policy in baseline.policies:
        wanted = policy.match.tags or {}
        if not any(key in wanted for key, _ in removed):
            continue
        before = dict(group.tags)
        for key, value in removed:
            # DeleteTags may omit the value: assume it was the one the policy wanted.
            before[key] = value if value is not None else wanted.get(key, "")
        gid, vpc = group.group_id, group.vpc_id
        was = policy.match.holds_for(group_id=gid, tags=before, vpc_id=vpc)
        if was and not policy.match.holds_for(group_id=gid, tags=group.tags, vpc_id=vpc):
            out.append(policy.name)
    return out
