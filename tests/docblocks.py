"""Fenced code blocks and the ``sg-reconciler`` commands shown in README.md and docs/*.md."""

from __future__ import annotations

__all__ = ["DOCS", "REPO", "Block", "command_lines", "commands", "fenced_blocks", "workflow_runs"]

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DOCS = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))

SHELL_LANGUAGES = frozenset({"sh", "bash", "shell", "console"})
SEPARATORS = frozenset({"&&", "||", "|", ";", "&"})
REDIRECTIONS = frozenset({">", ">>", "<"})
INVOCATION = re.compile(r"(?:^|[\s;&|/])sg-reconciler\s")
PLACEHOLDER = re.compile(r"<[A-Za-z][\w .'-]*>")  # <journal>, <the hub's RoleArn output>


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced code block: where it starts (file:line), its language and its text."""

    path: Path
    line: int
    language: str
    text: str

    @property
    def where(self) -> str:
        """``README.md:12``: the line of the opening fence, relative to the repository."""
        return f"{self.path.relative_to(REPO)}:{self.line}"


def fenced_blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file (indented fences too, as in list items)."""
    blocks: list[Block] = []
    opening: tuple[int, str, str] | None = None  # line, indent, language
    body: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.lstrip()
        if opening is None:
            if stripped.startswith("```"):
                indent = line[: len(line) - len(stripped)]
                opening, body = (number, indent, stripped[3:].strip()), []
            continue
        if stripped.startswith("```") and not stripped[3:].strip():
            blocks.append(Block(path, opening[0], opening[2], "\n".join(body) + "\n"))
            opening = None
            continue
        body.append(line.removeprefix(opening[1]))
    return blocks


def command_lines(text: str, *, prompts_only: bool) -> list[str]:
    """A block's shell lines, continuations (``\\``) joined; ``prompts_only``: ``$ `` lines."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if prompts_only:
            if line.startswith("$ "):
                lines.append(line[2:])
        elif line:
            lines.append(line)
    return lines


def commands(line: str) -> list[list[str]]:
    """The ``sg-reconciler`` invocations of one shell line, each as its arguments."""
    if not INVOCATION.search(line):  # other lines may hold quotes opened on an earlier line
        return []
    lexer = shlex.shlex(PLACEHOLDER.sub("PLACEHOLDER", line), posix=True, punctuation_chars=";&|<>")
    lexer.whitespace_split = True
    segments: list[list[str]] = [[]]
    tokens = iter(lexer)
    for token in tokens:
        if token in SEPARATORS:
            segments.append([])
        elif token in REDIRECTIONS:
            next(tokens, None)  # the file redirected to or from
        elif token != "${args[@]}":  # the workflow's "${args[@]}" expands to --region R ...
            segments[-1].append(token)
    return [seg[1:] for seg in segments if seg and seg[0].rsplit("/", 1)[-1] == "sg-reconciler"]


def workflow_runs(workflow: Any) -> list[str]:
    """The ``run:`` scripts of every step of a GitHub Actions workflow."""
    return [
        str(step["run"])
        for job in (workflow.get("jobs") or {}).values()
        for step in job.get("steps", [])
        if "run" in step
    ]
