"""The documented first steps on one's own account (import, validate, plan) run as written."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from reconciler.cli import main
from tests.docblocks import REPO, Block, command_lines, fenced_blocks
from tests.world import World, ingress

MARKER = "<!-- tests/integration/test_docs_steps.py runs the next block"
EXIT_COMMENT = re.compile(r"#\s*exit (\d)")


def _marked_blocks() -> list[Block]:
    """The fenced block after each marker line, in README.md and docs/commands.md."""
    found: list[Block] = []
    for doc in (REPO / "README.md", REPO / "docs" / "commands.md"):
        lines = doc.read_text(encoding="utf-8").splitlines()
        marked = {number + 2 for number, line in enumerate(lines) if line.startswith(MARKER)}
        found += [block for block in fenced_blocks(doc) if block.line in marked]
    return found


MARKED = _marked_blocks()


def test_both_first_steps_are_marked() -> None:
    """The README's and the commands page's import steps are both run by this module."""
    assert [block.where.split(":")[0] for block in MARKED] == ["README.md", "docs/commands.md"]


def _run(line: str, cwd: Path) -> int | None:
    """Run one documented line in ``cwd``: sg-reconciler through main, mkdir; None for make."""
    argv = shlex.split(line, comments=True)
    if argv[0] == "make":
        assert argv == ["make", ".venv/.installed"], line  # the install step: done already
        return None
    if argv[0] == "mkdir":
        (cwd / argv[1]).mkdir()
        return 0
    assert argv[0].rsplit("/", 1)[-1] == "sg-reconciler", line
    return main(argv[1:])


@pytest.mark.parametrize("block", MARKED, ids=lambda b: b.where)
@pytest.mark.usefixtures("aws")
def test_the_documented_import_steps_work_beside_the_example_policies(
    block: Block, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a fresh clone (example policies/ beside), each step exits as its comment says (or 0)."""
    shutil.copytree(REPO / "policies", tmp_path / "policies")  # the example web-prod is there
    assert "name: web-prod" in (tmp_path / "policies" / "example.yaml").read_text()
    world.group(
        "web-prod",
        {"Name": "web-prod"},
        [
            (ingress("tcp", (443, 443), "0.0.0.0/0"), "public HTTPS"),
            (ingress("tcp", (22, 22), "198.51.100.0/24"), "vendor"),
            (ingress("icmp", (8, -1), "10.0.0.0/8"), None),
        ],
    )
    monkeypatch.chdir(tmp_path)
    codes = []
    for line in command_lines(block.text, prompts_only=False):
        expected = EXIT_COMMENT.search(line)
        code = _run(line, tmp_path)
        if code is not None:
            codes.append(code)
            assert code == (int(expected.group(1)) if expected else 0), f"{block.where}: {line}"
    assert len(codes) >= 3
    assert "name: web-prod" in (tmp_path / "my-policies" / "web.yaml").read_text()
