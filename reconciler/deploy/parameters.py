"""The CloudFormation parameters of ``sg-reconciler deploy``, from its options and the baseline.

Pure functions: a combination the stack cannot express raises ParameterError, whose message
is one line saying what is wrong and the fix.
"""

from __future__ import annotations

__all__ = [
    "ParameterError",
    "StackOptions",
    "common_tag",
    "deploy_parameters",
    "hub_parameters",
    "restore_parameters",
    "stack_parameters",
]

from dataclasses import dataclass
from typing import TYPE_CHECKING

from reconciler.core.errors import ReconcilerError

if TYPE_CHECKING:
    from reconciler.core.accounts import AccountsFile
    from reconciler.core.policy import Baseline


class ParameterError(ReconcilerError):
    """The options and the baseline ask for a stack the template cannot express."""


@dataclass(frozen=True, slots=True)
class StackOptions:
    """The ``deploy`` options that become stack parameters; None keeps the deployed value."""

    architecture: str = "arm64"
    mode: str | None = None
    schedule: str | None = None
    notify_email: str | None = None
    ignore_principals: tuple[str, ...] = ()
    create_trail: bool = False
    create_dashboard: bool = False
    organization_id: str | None = None


def stack_parameters(
    options: StackOptions,
    baseline: Baseline,
    accounts: AccountsFile | None = None,
    source: str = "",
) -> dict[str, str]:
    """Every parameter ``deploy`` sets: its options, the hub's, and the restore tag.

    ``accounts`` (read from ``source``) makes the stack a hub. Raises ParameterError.
    """
    params = deploy_parameters(options, baseline)
    params.update(hub_parameters(accounts, options.organization_id, source))
    params.update(restore_parameters(baseline))
    return params


def deploy_parameters(options: StackOptions, baseline: Baseline) -> dict[str, str]:
    """Stack parameters from the options actually given (the rest keep deployed values)."""
    params: dict[str, str] = {"Architecture": options.architecture}
    given = {
        "Mode": options.mode,
        "Schedule": options.schedule,
        "NotifyEmail": options.notify_email,
        "IgnorePrincipals": ",".join(options.ignore_principals) or None,
        "CreateTrail": "true" if options.create_trail else None,
        "CreateDashboard": "true" if options.create_dashboard else None,
    }
    params.update({k: v for k, v in given.items() if v is not None})
    common = common_tag(baseline)
    if common is not None:
        params["ManagedTagKey"], params["ManagedTagValue"] = common
    return params


def common_tag(baseline: Baseline) -> tuple[str, str] | None:
    """A tag every policy selects by, if any: the role can then be limited to it."""
    if not baseline.uses_only_tag_selectors():
        return None
    shared = set.intersection(*(set((p.match.tags or {}).items()) for p in baseline.policies))
    return min(shared) if shared else None


def restore_parameters(baseline: Baseline) -> dict[str, str]:
    """RestoreTagKey/Value: the tag every ``restore_missing`` policy selects by, or empty.

    Always set, so that a baseline without restore_missing takes Authorize away from the role
    again. Raises ParameterError when the restoring policies share no tag in ``match.tags``:
    the role may authorize only in groups carrying one tag.
    """
    restoring = [p for p in baseline.policies if p.restore_missing and p.on_drift == "revoke"]
    if not restoring:
        return {"RestoreTagKey": "", "RestoreTagValue": ""}
    shared = set.intersection(*(set((p.match.tags or {}).items()) for p in restoring))
    if not shared:
        raise ParameterError(
            f"restore_missing: policies {', '.join(p.name for p in restoring)} share no"
            " tag in match.tags, and the function's role may authorize rules only in groups"
            ' carrying one tag they all select by; add one (e.g. sg-reconciler-restore: "true")'
            " to each of them and to their groups"
        )
    key, value = min(shared)
    return {"RestoreTagKey": key, "RestoreTagValue": value}


def hub_parameters(
    accounts: AccountsFile | None, organization_id: str | None = None, source: str = ""
) -> dict[str, str]:
    """MemberRoleName (and OrganizationId) from an accounts file; ParameterError if unusable.

    Always set, so that the package and the stack agree: without an accounts file the
    package has none and the stack is a single-account one.
    """
    params = {"OrganizationId": organization_id} if organization_id else {}
    if accounts is None:
        return {"MemberRoleName": "", **params}
    names = accounts.role_names()
    if len(names) > 1:
        # The hub's role may assume exactly one role name (MemberRoleName) in any account.
        raise ParameterError(
            f"{source}: a hub assumes one role name, the file names"
            f" {', '.join(sorted(names))}; use role_name only at the top"
        )
    return {"MemberRoleName": accounts.role_name, **params}
