"""What a tag change does to which policies govern a group."""

from __future__ import annotations

__all__ = ["policies_left"]

from collections.abc import Sequence

from reconciler.core.policy import Baseline
from reconciler.core.rules import ObservedGroup


def policies_left(
    baseline: Baseline,
    group: ObservedGroup,
    changed: Sequence[tuple[str, str | None]],
    *,
    overwritten: bool = False,
) -> list[str]:
    """Policies that may have matched the group before its tags changed and do not now.

    ``changed`` are DeleteTags' removed tags, or (``overwritten``) CreateTags' new values.
    CloudTrail does not record the value a tag had: a policy counts as left when the group
    would match it with the changed keys at the policy's values and does not match it now.
    """
    removed = [(key, None if overwritten else value) for key, value in changed]
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
