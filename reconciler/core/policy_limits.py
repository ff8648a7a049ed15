"""Safety limits of a policy: revocations per group and per run (blast radius)."""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_REVOCATIONS_PER_GROUP", "FileLimits", "GroupLimits"]

from typing import Annotated

from pydantic import BaseModel, Field

from reconciler.core.policy_rules import FROZEN

DEFAULT_MAX_REVOCATIONS_PER_GROUP = 25


class GroupLimits(BaseModel):
    """Blast-radius limit of one group; over it, the group is not touched.

    ```yaml
    limits:
      max_revocations_per_group: 10    # default 25
    ```
    """

    model_config = FROZEN

    max_revocations_per_group: Annotated[int, Field(ge=1, strict=True)] | None = None


class FileLimits(GroupLimits):
    """Limits for every group in one file; ``max_revocations_per_run`` counts across them.

    ```yaml
    limits:
      max_revocations_per_group: 25
      max_revocations_per_run: 100     # opt in: no default
    groups: [...]
    ```
    """

    max_revocations_per_run: Annotated[int, Field(ge=1, strict=True)] | None = None
