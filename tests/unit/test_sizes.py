"""Size limits of the package: small modules, short functions, few parameters (issue 11)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "reconciler"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
MAX_PARAMETERS = 6

Function = ast.FunctionDef | ast.AsyncFunctionDef


def _modules() -> Iterator[tuple[str, str]]:
    """(path relative to the repository, source) of every module in the package."""
    for path in sorted(PACKAGE.rglob("*.py")):
        yield str(path.relative_to(PACKAGE.parent)), path.read_text(encoding="utf-8")


def _functions() -> Iterator[tuple[str, Function]]:
    """(module path, function or method node) of every def in the package."""
    for name, source in _modules():
        for node in ast.walk(ast.parse(source, filename=name)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield name, node


def parameter_count(node: Function) -> int:
    """Parameters of a def, self/cls excluded; positional-only, keyword-only, *args, **kwargs
    each count one."""
    args = node.args
    named = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    return (
        len([a for a in named if a not in {"self", "cls"}])
        + (args.vararg is not None)
        + (args.kwarg is not None)
    )


def function_lines(node: Function) -> int:
    """Lines from the def line to the last line of the body (decorators excluded)."""
    assert node.end_lineno is not None
    return node.end_lineno - node.lineno + 1


def test_parameter_count_counts_every_kind() -> None:
    """self is excluded; positional-only, keyword-only, *args and **kwargs are counted."""
    tree = ast.parse("def f(self, a, /, b, *args, c, **kwargs): pass")
    node = tree.body[0]
    assert isinstance(node, ast.FunctionDef)
    assert parameter_count(node) == 5


def test_no_module_over_400_lines() -> None:
    """No module in reconciler/ is longer than 400 lines."""
    offenders = [
        f"{name}:1 {name.rsplit('/', 1)[-1]}: {lines}"
        for name, source in _modules()
        if (lines := len(source.splitlines())) > MAX_MODULE_LINES
    ]
    assert not offenders, f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(offenders)


def test_no_function_over_60_lines() -> None:
    """No function in reconciler/ is longer than 60 lines, def line to last line."""
    offenders = [
        f"{name}:{node.lineno} {node.name}: {lines}"
        for name, node in _functions()
        if (lines := function_lines(node)) > MAX_FUNCTION_LINES
    ]
    assert not offenders, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(offenders)


def test_no_function_with_more_than_6_parameters() -> None:
    """No function in reconciler/ takes more than 6 parameters (an options dataclass is fine)."""
    offenders = [
        f"{name}:{node.lineno} {node.name}: {count}"
        for name, node in _functions()
        if (count := parameter_count(node)) > MAX_PARAMETERS
    ]
    assert not offenders, f"functions with over {MAX_PARAMETERS} parameters:\n" + "\n".join(
        offenders
    )
