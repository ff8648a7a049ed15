"""Named peer sets (``peers:``) and the ``internet`` keyword, usable wherever a peer is.

```yaml
peers:
  office: [203.0.113.0/24, "2001:db8:1::/48"]
  private: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, "fc00::/7"]
  trusted: [$office, $private]          # a set may name other sets (no cycles)
```

Names are global across the policy files of a baseline. A rule, exception or guardrail entry
writes ``from: $private`` (or a list mixing ``$name``, ``internet`` and peers); the name is
expanded at load time, so every model downstream sees plain canonical peers.
"""

from __future__ import annotations

__all__ = [
    "INTERNET",
    "INTERNET_PEERS",
    "PeerSetSource",
    "expand_peer_list",
    "resolve_peer_sets",
]

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import ValidationInfo

from reconciler.core.errors import PolicyProblem
from reconciler.core.rules import canonical_peer

INTERNET = "internet"
INTERNET_PEERS = ("0.0.0.0/0", "::/0")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _suggest(name: str, known: Mapping[str, object]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    if close:
        return f" (did you mean ${close[0]}?)"
    if known:
        return f" (known sets: {', '.join('$' + k for k in sorted(known))})"
    return " (declare it under peers: in any policy file)"


def expand_peer_list(value: object, info: ValidationInfo) -> object:
    """A peer, or a list of peers, with ``$name`` and ``internet`` expanded (a BeforeValidator).

    The named sets come from the validation context (``{"peers": {name: peers}}``) that the
    policy loader passes; outside it every ``$name`` is unknown.
    """
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        return value
    sets: Mapping[str, tuple[str, ...]] = {}
    if isinstance(info.context, Mapping):
        sets = info.context.get("peers", {})
    out: list[object] = []
    for item in items:
        if not isinstance(item, str):
            out.append(item)
            continue
        text = item.strip()
        if text.lower() == INTERNET:
            out.extend(INTERNET_PEERS)
        elif text.startswith("$"):
            name = text[1:]
            if name not in sets:
                raise ValueError(f"unknown peer set {text!r}{_suggest(name, sets)}")
            out.extend(sets[name])
        else:
            out.append(item)
    return list(dict.fromkeys(out)) if all(isinstance(i, str) for i in out) else out


def _shape_problem(name: str, items: object) -> str | None:
    if not _NAME.fullmatch(name):
        return f"{name!r} is not a valid peer set name (letters, digits, '.', '_', '-')"
    if not isinstance(items, list) or not items:
        return "a peer set must be a non-empty list of CIDRs, sg-…, pl-… or $names"
    return None


@dataclass(frozen=True, slots=True)
class PeerSetSource:
    """One ``peers:`` entry as read: its file, its line, and the raw values."""

    file: str
    line: int | None
    values: object


def resolve_peer_sets(
    raw: Mapping[str, PeerSetSource], problems: list[PolicyProblem]
) -> dict[str, tuple[str, ...]]:
    """Every named set as canonical peers, nested names expanded; mistakes in ``problems``.

    A set is a non-empty list; a reference names a set; no set refers to itself.
    """
    resolved: dict[str, tuple[str, ...]] = {}
    failed: set[str] = set()

    def problem(name: str, message: str) -> None:
        source = raw[name]
        problems.append(PolicyProblem(source.file, source.line, f"peers.{name}", message))
        failed.add(name)

    def resolve(name: str, stack: tuple[str, ...]) -> tuple[str, ...] | None:
        if name in resolved:
            return resolved[name]
        if name in failed:
            return None
        if name in stack:
            cycle = " -> ".join("$" + n for n in (*stack[stack.index(name) :], name))
            problem(name, f"peer sets refer to each other in a cycle ({cycle})")
            return None
        values = raw[name].values
        items = [values] if isinstance(values, str) else values
        wrong = _shape_problem(name, items)
        if wrong is not None or not isinstance(items, list):
            problem(name, wrong or "")
            return None
        out: list[str] = []
        for item in items:
            text = str(item).strip() if isinstance(item, str) else None
            if text is None:
                problem(name, f"{item!r} is not a peer (quote CIDRs that YAML reads as numbers)")
                return None
            if text.lower() == INTERNET:
                out.extend(INTERNET_PEERS)
            elif text.startswith("$"):
                inner = text[1:]
                if inner not in raw:
                    problem(name, f"unknown peer set {text!r}{_suggest(inner, raw)}")
                    return None
                nested = resolve(inner, (*stack, name))
                if nested is None:
                    failed.add(name)
                    return None
                out.extend(nested)
            else:
                try:
                    out.append(canonical_peer(text, strict=True))
                except ValueError as exc:
                    problem(name, str(exc))
                    return None
        resolved[name] = tuple(dict.fromkeys(out))
        return resolved[name]

    for name in raw:
        resolve(name, ())
    return resolved
