"""YAML files -> frozen pydantic models, every mistake reported with file, line, path and fix.

Shared by the policy files and the accounts file.
"""

from __future__ import annotations

__all__ = ["COMPOSE_LOADER", "Loc", "load_model_file", "read_yaml_file", "validate_data"]

import difflib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from reconciler.core.errors import PolicyProblem

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)

# libyaml's loader composes nodes several times faster and keeps every node's start_mark (line),
# which is all this module reads; nodes are still built into data by the checks below, never by
# the loader, so merge keys, recursive aliases and unknown tags are refused either way.
COMPOSE_LOADER: type[yaml.SafeLoader] | type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_model_file(
    path: Path,
    model: type[M],
    problems: list[PolicyProblem],
    *,
    what: str = "'groups:'",
) -> tuple[M, dict[Loc, int]] | None:
    """Read one YAML file into ``model``; every mistake is appended to ``problems``.

    Returns the model and the line of every data path, or None when anything was wrong.
    """
    read = read_yaml_file(path, problems, what=what)
    if read is None:
        return None
    data, lines = read
    parsed = validate_data(data, lines, model, str(path), problems)
    return None if parsed is None else (parsed, lines)


def read_yaml_file(
    path: Path, problems: list[PolicyProblem], *, what: str = "'groups:'"
) -> tuple[dict[Any, Any], dict[Loc, int]] | None:
    """The top-level mapping of one YAML file and the line of every data path in it.

    Every mistake (unreadable, syntax, empty, refused YAML features, not a mapping) is
    appended to ``problems`` and None returned; ``what`` names the key a file starts with.
    """
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(PolicyProblem(name, None, "", f"cannot read file: {exc}"))
        return None
    try:
        node = _compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        problems.append(
            PolicyProblem(
                name, line, "", f"YAML syntax error: {problem} (check indentation and quotes)"
            )
        )
        return None
    if node is None:
        problems.append(
            PolicyProblem(name, 1, "", f"file is empty (add a {what} list, or delete the file)")
        )
        return None
    lines: dict[Loc, int] = {}
    before = len(problems)
    data = _construct(node, (), lines, name, problems)
    if len(problems) > before:
        return None
    if not isinstance(data, dict):
        problems.append(
            PolicyProblem(
                name,
                node.start_mark.line + 1,
                "",
                f"top level is a {_yaml_type(data)}, not a mapping (start with {what})",
            )
        )
        return None
    return data, lines


def validate_data(
    data: dict[Any, Any],
    lines: dict[Loc, int],
    model: type[M],
    name: str,
    problems: list[PolicyProblem],
    *,
    context: dict[str, Any] | None = None,
) -> M | None:
    """``data`` (read from ``name``) as ``model``, or None with its mistakes in ``problems``.

    ``context`` reaches the models' validators (the policy files' named peer sets).
    """
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        problems.extend(_problems_from(exc, name, lines, model))
        return None


def _compose(text: str) -> yaml.Node | None:
    """The node tree of ``text``, composed by libyaml when available.

    A file libyaml refuses is composed again by the pure loader, so a syntax error reads the
    same (same words, same line) whichever loader is installed.
    """
    if COMPOSE_LOADER is yaml.SafeLoader:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    try:
        return yaml.compose(text, Loader=COMPOSE_LOADER)
    except yaml.YAMLError:
        return yaml.compose(text, Loader=yaml.SafeLoader)


_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"


def _construct(
    node: yaml.Node,
    loc: Loc,
    lines: dict[Loc, int],
    name: str,
    problems: list[PolicyProblem],
    *,
    parents: frozenset[int] = frozenset(),
) -> Any:
    """Build plain Python data from a YAML node, recording the line of every path."""
    line = node.start_mark.line + 1
    lines.setdefault(loc, line)
    if id(node) in parents:
        problems.append(
            PolicyProblem(
                name,
                line,
                _format_loc(loc),
                "an alias refers to the anchor that contains it (a value cannot contain itself)",
            )
        )
        return None
    inner = parents | {id(node)}
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                problems.append(
                    PolicyProblem(
                        name,
                        key_node.start_mark.line + 1,
                        _format_loc(loc),
                        "YAML merge keys (<<) are not supported; write the keys out",
                    )
                )
                continue
            key = _scalar(key_node, loc, name, problems)
            if not isinstance(key, str | int | float | bool) or key is None:
                key = str(key)
            key_loc = (*loc, str(key))
            if key in out:
                problems.append(
                    PolicyProblem(
                        name,
                        key_node.start_mark.line + 1,
                        _format_loc(key_loc),
                        f"duplicate key {key!r} (the later value would silently win)",
                    )
                )
                continue
            lines[key_loc] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, key_loc, lines, name, problems, parents=inner)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _construct(item, (*loc, i), lines, name, problems, parents=inner)
            for i, item in enumerate(node.value)
        ]
    return _scalar(node, loc, name, problems)


def _scalar(node: yaml.Node, loc: Loc, name: str, problems: list[PolicyProblem]) -> Any:
    """Build one scalar; a tag SafeLoader cannot build, or a value its tag rejects, is a problem."""
    if node.tag == _STR_TAG and isinstance(node, yaml.ScalarNode):
        return node.value  # what SafeConstructor builds for a string, without its dispatch
    try:
        return _CONSTRUCTOR.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError, AttributeError, LookupError):
        problems.append(
            PolicyProblem(
                name,
                node.start_mark.line + 1,
                _format_loc(loc),
                f"cannot read {node.value!r} as {node.tag} (remove the tag or quote the value)",
            )
        )
        return None


def _yaml_type(value: object) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def _format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _line_for(loc: Loc, lines: dict[Loc, int]) -> int | None:
    for end in range(len(loc), -1, -1):
        line = lines.get(loc[:end])
        if line is not None:
            return line
    return None


def _problems_from(
    exc: ValidationError, name: str, lines: dict[Loc, int], root: type[BaseModel]
) -> list[PolicyProblem]:
    out: list[PolicyProblem] = []
    seen: set[tuple[Loc, str]] = set()
    for error in exc.errors(include_url=False):
        loc = _data_loc(tuple(error["loc"]))
        if error["type"] == "too_short" and error.get("input"):
            continue  # pydantic adds this when every item failed; the item errors say why
        message = _message(error, loc, root)
        if (loc, message) in seen:
            continue
        seen.add((loc, message))
        out.append(PolicyProblem(name, _line_for(loc, lines), _format_loc(loc), message))
    return out


def _data_loc(loc: Loc) -> Loc:
    """Drop pydantic's internal steps (validator names) so the path matches the YAML."""
    return tuple(p for p in loc if isinstance(p, int) or not p.startswith(("function-", "tuple[")))


def _message(error: Any, loc: Loc, root: type[BaseModel]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden" and loc and loc[-1] == "max_revocations_per_run":
        return (
            "max_revocations_per_run counts across a file's groups: set it in the file-level"
            " limits (top of the file), not in a group"
        )
    if kind == "timezone_aware":
        return f"{loc[-1]} needs a timezone, e.g. 2026-12-31T00:00:00Z"
    if kind == "extra_forbidden":
        key = loc[-1] if loc else "?"
        allowed = _allowed_keys(loc[:-1], root)
        hint = ""
        if allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = (
                f" (did you mean {close[0]!r}?)"
                if close
                else f" (allowed: {', '.join(sorted(allowed))})"
            )
        return f"unknown key {key!r}{hint}"
    if kind == "missing":
        return f"required key {loc[-1]!r} is missing" if loc else "required key is missing"
    if kind == "too_short" and loc and loc[-1] == "groups":
        return "groups is empty (add at least one group, or delete the file)"
    if kind == "too_short":
        return "must not be empty"
    return _value_message(error)


def _value_message(error: Any) -> str:
    """Messages for a value of the wrong type or range."""
    kind, given = error["type"], error.get("input")
    if kind in {"bool_type", "bool_parsing"}:
        return f"expected true or false, got {given!r}"
    if kind == "greater_than_equal":
        bound = error.get("ctx", {}).get("ge")
        return f"must be at least {bound}, got {given!r} (remove the key for the default)"
    if kind in {"string_type", "int_type", "int_parsing"}:
        return f"{error['msg'].lower()}, got {given!r} (quote strings in YAML)"
    if kind in {"model_type", "dict_type"}:
        return f"expected a mapping, got {_yaml_type(given)}"
    if kind in {"tuple_type", "list_type"}:
        return f"expected a list, got {_yaml_type(given)}"
    if kind == "literal_error":
        return f"{error['msg']}, got {given!r}"
    return str(error["msg"]).removeprefix("Value error, ")


def _allowed_keys(loc: Loc, root: type[BaseModel]) -> list[str]:
    """The keys the model at ``loc`` accepts, for 'did you mean' hints."""
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        field = _field_by_alias(model, part)
        if field is None:
            return []
        model = _model_in(field.annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [f.alias or n for n, f in model.model_fields.items()]
    return []


def _field_by_alias(model: type[BaseModel], key: str) -> Any:
    for field_name, info in model.model_fields.items():
        if (info.alias or field_name) == key:
            return info
    return None


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _model_in(typing.get_args(annotation)[0])
    if origin in (tuple, list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None
