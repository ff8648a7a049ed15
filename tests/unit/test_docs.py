"""The README and the docs site: examples that load, commands that parse, a strict build."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from reconciler.adapters.accounts import load_accounts
from reconciler.adapters.policy_files import load_policies
from reconciler.cli.parser import build_parser
from tests.docblocks import (
    DOCS,
    REPO,
    SHELL_LANGUAGES,
    Block,
    command_lines,
    commands,
    fenced_blocks,
    workflow_runs,
)

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
VERSION = PYPROJECT["project"]["version"]
WORKFLOW = REPO / "docs" / "github-actions-plan.yml"
RESULTS = REPO / "benchmarks" / "RESULTS.md"

YAML_BLOCKS = [block for doc in DOCS for block in fenced_blocks(doc) if block.language == "yaml"]
POLICY_BLOCKS = [
    b
    for b in YAML_BLOCKS
    if isinstance(yaml.safe_load(b.text), dict) and ("groups" in b.text or "guardrails" in b.text)
]
# Files that are not policies but are shown as YAML: each kind is checked on its own below.
OTHER_KINDS = {"accounts", "repos", "jobs"}


def _shown_commands() -> list[tuple[str, list[str]]]:
    """Every sg-reconciler command in a shell block, a ``$ `` line, or the example workflow."""
    shown: list[tuple[str, list[str]]] = []
    for doc in DOCS:
        for block in fenced_blocks(doc):
            prompts_only = block.language not in SHELL_LANGUAGES
            scripts = [block.text]
            if block.language == "yaml" and "jobs" in (yaml.safe_load(block.text) or {}):
                scripts, prompts_only = workflow_runs(yaml.safe_load(block.text)), False
            for script in scripts:
                for line in command_lines(script, prompts_only=prompts_only):
                    shown += [(block.where, argv) for argv in commands(line)]
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    for script in workflow_runs(workflow):
        for line in command_lines(script, prompts_only=False):
            shown += [(str(WORKFLOW.relative_to(REPO)), argv) for argv in commands(line)]
    return shown


SHOWN_COMMANDS = _shown_commands()


def test_the_readme_is_under_300_lines() -> None:
    """The README stays a five-minute read: fewer than 300 lines."""
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < 300


def test_the_docs_show_policy_examples_and_commands() -> None:
    """The extractors find the examples (an extractor that finds nothing would check nothing)."""
    assert len(POLICY_BLOCKS) >= 10
    assert len(SHOWN_COMMANDS) >= 30
    assert {argv[0] for _, argv in SHOWN_COMMANDS} >= {
        "validate",
        "plan",
        "apply",
        "undo",
        "import",
        "deploy",
        "handle-event",
        "package",
    }


@pytest.mark.parametrize("block", POLICY_BLOCKS, ids=lambda b: b.where)
def test_every_policy_example_loads(block: Block, tmp_path: Path) -> None:
    """Each YAML policy example of the README and docs/*.md is a file the loader accepts."""
    policy = tmp_path / "example.yaml"
    policy.write_text(block.text, encoding="utf-8")
    baseline = load_policies(policy)
    assert baseline.policies or baseline.guardrails, block.where


@pytest.mark.parametrize(
    "block", [b for b in YAML_BLOCKS if b not in POLICY_BLOCKS], ids=lambda b: b.where
)
def test_every_other_yaml_example_is_a_known_kind_that_loads(block: Block, tmp_path: Path) -> None:
    """A YAML example that is no policy is an accounts file (it loads), pre-commit or a workflow."""
    data = yaml.safe_load(block.text)
    if data is None:  # a comment only, e.g. the yaml-language-server line
        assert block.text.lstrip().startswith("#"), block.where
        return
    assert isinstance(data, dict), block.where
    assert set(data) & OTHER_KINDS, f"{block.where}: a YAML example of an unknown kind"
    if "accounts" in data:
        accounts = tmp_path / "accounts.yaml"
        accounts.write_text(block.text, encoding="utf-8")
        assert load_accounts(accounts).accounts, block.where


@pytest.mark.parametrize("shown", SHOWN_COMMANDS, ids=lambda s: f"{s[0]} {' '.join(s[1][:1])}")
def test_every_command_shown_parses(shown: tuple[str, list[str]]) -> None:
    """Each sg-reconciler command the docs show uses only subcommands and flags that exist."""
    where, argv = shown
    err = io.StringIO()
    code: object = 0
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's way of refusing (or of --version, code 0)
        code = exc.code
    assert code == 0, f"{where}: sg-reconciler {' '.join(argv)}: {err.getvalue()}"


def test_the_mkdocs_site_builds_strictly(tmp_path: Path) -> None:
    """``mkdocs build --strict`` (a dev dependency) builds the site: no broken link, no warning."""
    mkdocs = Path(sys.executable).parent / "mkdocs"
    assert mkdocs.exists(), "mkdocs is missing: pip install -e '.[dev]' (mkdocs-material)"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "changelog" / "index.html").is_file()


def test_readme_links_point_at_files_that_exist() -> None:
    """Every relative link of the README names a file or directory of the repository."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if "://" not in t]
    assert local
    missing = [t for t in local if not (REPO / t).exists()]
    assert missing == []


def test_the_pinned_examples_pin_the_version_of_pyproject() -> None:
    """The pre-commit and GitHub Actions examples pin the tag of the version pyproject has."""
    hooks = (REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8")
    ci = (REPO / "docs" / "ci.md").read_text(encoding="utf-8")
    workflow = WORKFLOW.read_text(encoding="utf-8")
    revs = re.findall(r"\brev: (\S+)", hooks + ci)
    tags = re.findall(r"sg-reconciler@(v[\w.]+)", workflow + ci)
    assert len(revs) >= 2
    assert len(tags) >= 2
    assert set(revs) == set(tags) == {f"v{VERSION}"}


TIMES = "\N{MULTIPLICATION SIGN}"  # the docs write 1.04x with it; RESULTS.md with an x
FIGURE = re.compile(rf"(?<![\w.])(\d[\d,]*(?:\.\d+)?) ?(ms|s|MB|{TIMES})(?![\w])")


def _figures(text: str) -> set[str]:
    """Each figure with a unit (``31.46 s``, ``40 ms``, ``129 MB``, a ratio), as in RESULTS.md."""
    return {f"{n}x" if unit == TIMES else f"{n} {unit}" for n, unit in FIGURE.findall(text)}


def test_every_benchmark_figure_is_in_the_results_of_make_bench() -> None:
    """Each figure on the benchmarks page and the comparison's c7n table comes from RESULTS.md."""
    results = RESULTS.read_text(encoding="utf-8")
    benchmarks = (REPO / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    comparison = (REPO / "docs" / "comparison.md").read_text(encoding="utf-8")
    measured = comparison[comparison.index("Measured against c7n") :]
    figures = _figures(benchmarks) | _figures(measured[: measured.index("\n## ")])
    assert len(figures) >= 30
    missing = sorted(figure for figure in figures if figure not in results)
    assert missing == []
