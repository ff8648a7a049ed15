"""Checks of a baseline against its guardrails, made when the policies are loaded. Pure.

A baseline rule or exception that a guardrail applying to every group denies can never
hold: the guardrail would revoke it on every run. That is a mistake in the files, reported
with file:line like any other, so nothing acts on the contradiction.
"""

from __future__ import annotations

__all__ = ["RuleLocation", "guardrail_conflicts"]

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reconciler.core.errors import PolicyProblem
from reconciler.core.patterns import UnknownPrefixList

if TYPE_CHECKING:
    from reconciler.core.guardrail import Guardrail
    from reconciler.core.policy import Baseline, GroupPolicy
    from reconciler.core.policy_rules import RuleSpec


@dataclass(frozen=True, slots=True)
class RuleLocation:
    """Where one baseline entry is written: file, line, and its path in the file."""

    file: str
    line: int | None
    path: str


def _entries(policy: GroupPolicy) -> Iterator[tuple[str, int, RuleSpec]]:
    for part in ("ingress", "egress", "exceptions"):
        for number, entry in enumerate(getattr(policy, part) or ()):
            yield part, number, entry


def _denied(guardrail: Guardrail, entry: RuleSpec) -> str | None:
    """The first rule of ``entry`` the guardrail denies everywhere, described; else None."""
    for key in entry.rule_keys():
        try:
            index = guardrail.violation(key, {})
        except UnknownPrefixList:
            continue  # its entries are read at run time; the run decides
        if index is not None and guardrail.exception_for("", key, None) is None:
            return f"{key.describe()} (deny[{index}]: {guardrail.deny[index].pattern().describe()})"
    return None


def _guards(guardrail: Guardrail, policy: GroupPolicy) -> bool:
    """Whether the guardrail evaluates the policy's groups whatever their other tags are.

    A guardrail without ``match`` does, unless its ``exclude`` holds for every group the
    policy selects (the policy's selector implies it).
    """
    if guardrail.match is not None:
        return False
    exclude, match = guardrail.exclude, policy.match
    if exclude is None:
        return True
    implied = (
        all((match.tags or {}).get(k) == v for k, v in (exclude.tags or {}).items())
        and (exclude.vpc_id is None or match.vpc_id == exclude.vpc_id)
        and (
            exclude.group_ids is None
            or (match.group_ids is not None and set(match.group_ids) <= set(exclude.group_ids))
        )
    )
    return not implied


def guardrail_conflicts(
    baseline: Baseline, locations: Mapping[tuple[str, str, int], RuleLocation]
) -> list[PolicyProblem]:
    """Every baseline rule or exception that a guardrail without ``match`` denies."""
    problems: list[PolicyProblem] = []
    for policy in baseline.policies:
        guarding = [g for g in baseline.guardrails if _guards(g, policy)]
        for part, number, entry in _entries(policy):
            for guardrail in guarding:
                denied = _denied(guardrail, entry)
                if denied is None:
                    continue
                where = locations.get((policy.name, part, number))
                problems.append(
                    PolicyProblem(
                        where.file if where else baseline.sources.get(policy.name, ""),
                        where.line if where else None,
                        where.path if where else f"{policy.name}.{part}[{number}]",
                        f"policy {policy.name} allows {denied}, which guardrail"
                        f" {guardrail.name} denies on every group (remove the rule, add a"
                        " guardrail exception, or give the guardrail a match:)",
                    )
                )
                break
    return problems
