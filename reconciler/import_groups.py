"""Import live groups (``sg-reconciler import``): read them, write them as a policy file.

The text comes from the pure ``reconciler.core.baseline_from_groups``; here it is checked
before anyone sees it: it must load as a policy file, and planning it against the groups
just read must find no drift. A live rule no policy can express is reported as a note, not hidden.
"""

from __future__ import annotations

__all__ = ["GroupSelection", "ImportFailed", "ImportedFile", "import_policies", "parse_tag"]

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import yaml
from pydantic import ValidationError

from reconciler.adapters.ec2 import SecurityGroupReader
from reconciler.core.baseline_from_groups import Selector, import_baseline, render_baseline
from reconciler.core.errors import ReconcilerError
from reconciler.core.planner import plan
from reconciler.core.policy import Baseline, PolicyFile
from reconciler.core.rules import ObservedGroup

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import FilterTypeDef


class ImportFailed(ReconcilerError):
    """Nothing to import, or the generated baseline failed its own check."""


def parse_tag(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` -> (key, value); ValueError naming the fix when there is no ``=``."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--tag {text!r} is not KEY=VALUE (e.g. --tag Name=web-prod)")
    return key, value


@dataclass(frozen=True, slots=True)
class GroupSelection:
    """Which live groups to import: any of these tags, these ids, or one VPC."""

    tags: tuple[tuple[str, str], ...] = ()
    group_ids: tuple[str, ...] = ()
    vpc_id: str | None = None

    def filters(self) -> list[list[FilterTypeDef]]:
        """One EC2 filter list per selector (a group matching any of them is imported)."""
        if self.group_ids:
            return [[{"Name": "group-id", "Values": sorted(set(self.group_ids))}]]
        if self.vpc_id is not None:
            return [[{"Name": "vpc-id", "Values": [self.vpc_id]}]]
        return [[{"Name": f"tag:{key}", "Values": [value]}] for key, value in self.tags]

    def selectors(self) -> tuple[Selector, ...]:
        """The selectors a ``--per-selector`` import may write policies for."""
        if self.vpc_id is not None:
            return (Selector(vpc_id=self.vpc_id),)
        return tuple(Selector(tags=(tag,)) for tag in self.tags)

    def describe(self) -> str:
        """For the header and messages: ``tag Role=web``, ``group sg-…``, ``vpc vpc-…``."""
        if self.group_ids:
            return "group " + ", ".join(sorted(set(self.group_ids)))
        if self.vpc_id is not None:
            return f"vpc {self.vpc_id}"
        return "tag " + ", ".join(f"{k}={v}" for k, v in self.tags)


@dataclass(frozen=True, slots=True)
class ImportedFile:
    """The policy file text, how many policies and groups it holds, and notes for people."""

    text: str
    policies: int
    groups: int
    notes: tuple[str, ...] = ()


def import_policies(
    client: EC2Client,
    region: str,
    selection: GroupSelection,
    *,
    name: str | None = None,
    egress: bool = False,
    per_selector: bool = False,
) -> ImportedFile:
    """Read the selected groups in ``region`` and write them as one policy file's text.

    Raises ImportFailed when no group is selected, or when the text fails its own check
    (a bug: it must load, and plan no drift against the groups it was made from).
    """
    groups = SecurityGroupReader(client, region).read_where(*selection.filters())
    if not groups:
        raise ImportFailed(
            f"no security group in {region} matches {selection.describe()}; nothing written"
        )
    notes = [
        f"group {gid} was not found in {region}"
        for gid in sorted(set(selection.group_ids) - {g.group_id for g in groups})
    ]
    result = import_baseline(
        groups,
        name=name,
        egress=egress,
        selectors=selection.selectors() if per_selector else (),
    )
    header = [
        f"Imported by `sg-reconciler import` from {region} ({selection.describe()}):"
        f" {len(groups)} groups, {len(result.policies)} policies.",
    ]
    if not egress:
        header.append(
            "Egress is left alone (egress: unmanaged); import with --egress to manage it."
        )
    text = render_baseline(result, header=header)
    notes += result.notes
    notes += _self_check(text, groups)
    return ImportedFile(text, len(result.policies), len(groups), tuple(notes))


def _self_check(text: str, groups: Sequence[ObservedGroup]) -> list[str]:
    """Load ``text`` as a policy file and plan it: each drift is a rule no policy can hold."""
    try:
        loaded = PolicyFile.model_validate(yaml.safe_load(text))
    except (yaml.YAMLError, ValidationError) as exc:
        raise ImportFailed(f"the generated baseline does not validate (a bug): {exc}") from exc
    drift = plan(Baseline(policies=loaded.groups), groups, enforce_limits=False)
    notes = [str(problem) for problem in drift.problems]
    notes += [
        f"{c.group_id}: plan will show {c.action.value} {c.rule_id or ''} {c.key.describe()}"
        " (a live rule no policy can state exactly)".replace("  ", " ")
        for c in drift.changes
    ]
    return notes
