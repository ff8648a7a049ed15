"""Who made a call: comparing IAM principals the way CloudTrail names them."""

from __future__ import annotations

__all__ = ["is_same_principal", "role_of"]

import re

_ROLE_ARN = re.compile(r"^arn:aws[\w-]*:iam::(\d{12}):role/(?:.*/)?([\w+=,.@-]+)$")
_ASSUMED_ROLE_ARN = re.compile(r"^arn:aws[\w-]*:sts::(\d{12}):assumed-role/([\w+=,.@-]+)/.+$")


def role_of(arn: str | None) -> tuple[str, str] | None:
    """(account, role name) of a role or assumed-role ARN; None for anything else."""
    if not arn:
        return None
    found = _ROLE_ARN.match(arn) or _ASSUMED_ROLE_ARN.match(arn)
    return (found.group(1), found.group(2)) if found else None


def is_same_principal(candidate: str | None, principal: str) -> bool:
    """True when ``candidate`` is ``principal``, or both name the same IAM role.

    A session issuer ARN carries the role's path (``role/service-role/x``) while an
    assumed-role ARN does not, so roles compare by account and name.
    """
    if not candidate:
        return False
    if candidate == principal:
        return True
    role = role_of(candidate)
    return role is not None and role == role_of(principal)
