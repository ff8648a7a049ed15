"""The ``match:`` selector of a policy: which live groups (tags, ids, VPC) it governs."""

from __future__ import annotations

__all__ = ["GroupIds", "Match"]

import re
from collections.abc import Mapping
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from reconciler.core.policy_rules import FROZEN

GROUP_ID_PATTERN = re.compile(r"^sg-[0-9a-f]{8}(?:[0-9a-f]{9})?$")
_VPC_ID = re.compile(r"^vpc-[0-9a-f]{8}(?:[0-9a-f]{9})?$")


def _tag_map(value: object) -> object:
    if isinstance(value, Mapping):
        for key, val in value.items():
            if not isinstance(val, str):
                raise ValueError(
                    f"tag {key!r} has value {val!r}, which is not a string (quote it in YAML)"
                )
    return value


def check_group_id(value: str) -> str:
    if not GROUP_ID_PATTERN.fullmatch(value):
        raise ValueError(f"{value!r} is not a security group id (sg- and 8 or 17 hex digits)")
    return value


GroupIds = Annotated[
    tuple[
        Annotated[
            str,
            AfterValidator(check_group_id),
            Field(json_schema_extra={"pattern": GROUP_ID_PATTERN.pattern}),
        ],
        ...,
    ],
    Field(min_length=1),
]


def _check_vpc_id(value: str) -> str:
    if not _VPC_ID.fullmatch(value):
        raise ValueError(f"{value!r} is not a VPC id (vpc- and 8 or 17 hex digits)")
    return value


class Match(BaseModel):
    """Which live groups a policy governs; every given key must hold.

    ```yaml
    match:
      tags: {Name: prod-sg, team: web}
      vpc_id: vpc-0abc1234
    ```
    """

    model_config = ConfigDict(**FROZEN, json_schema_extra={"minProperties": 1})

    tags: Annotated[dict[str, str], BeforeValidator(_tag_map)] | None = None
    group_ids: GroupIds | None = None
    vpc_id: (
        Annotated[
            str,
            AfterValidator(_check_vpc_id),
            Field(json_schema_extra={"pattern": _VPC_ID.pattern}),
        ]
        | None
    ) = None

    @model_validator(mode="after")
    def _not_empty(self) -> Match:
        if not self.tags and not self.group_ids and self.vpc_id is None:
            raise ValueError(
                "match needs at least one of tags, group_ids or vpc_id (an empty match"
                " would govern every group)"
            )
        return self

    def holds_for(self, *, group_id: str, tags: Mapping[str, str], vpc_id: str | None) -> bool:
        """True when a live group with these facts is selected."""
        if self.group_ids is not None and group_id not in self.group_ids:
            return False
        if self.vpc_id is not None and vpc_id != self.vpc_id:
            return False
        return not self.tags or all(tags.get(k) == v for k, v in self.tags.items())
