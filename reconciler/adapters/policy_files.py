"""Policy files on disk -> a validated Baseline, or a PolicyError naming file:line and a fix."""

from __future__ import annotations

__all__ = ["POLICY_SUFFIXES", "load_policies", "policy_files"]

from pathlib import Path
from typing import Any

from reconciler.adapters.yaml_models import Loc, read_yaml_file, validate_data
from reconciler.core.errors import PolicyError, PolicyProblem
from reconciler.core.policy import Baseline, GroupPolicy, PolicyFile

POLICY_SUFFIXES = (".yaml", ".yml")


def policy_files(directory: Path) -> list[Path]:
    """The policy files in ``directory``, sorted by name (not recursive)."""
    return sorted(
        p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in POLICY_SUFFIXES
    )


def load_policies(path: Path | str) -> Baseline:
    """Load and validate every policy file in the directory ``path``, or the one file ``path``.

    Every mistake in every file is collected (duplicate policy names too, even in files with
    other mistakes); if there is any, PolicyError is raised with all of them, so nothing acts
    on a partly valid baseline (fail closed).
    """
    files = _files_at(Path(path))
    problems: list[PolicyProblem] = []
    policies: list[GroupPolicy] = []
    sources: dict[str, str] = {}
    run_limits: dict[str, int] = {}
    locations: dict[tuple[str, str, int], int] = {}
    first_seen: dict[str, str] = {}
    for file in files:
        read = read_yaml_file(file, problems)
        if read is None:
            continue
        data, lines = read
        parsed = validate_data(data, lines, PolicyFile, str(file), problems)
        _check_names(file, data, lines, first_seen, problems)
        if parsed is None:
            continue
        if parsed.limits is not None and parsed.limits.max_revocations_per_run is not None:
            run_limits[str(file)] = parsed.limits.max_revocations_per_run
        for index, group in enumerate(parsed.effective_groups()):
            for number in range(len(group.exceptions)):
                line = lines.get(("groups", index, "exceptions", number))
                if line is not None:
                    locations[(group.name, "exceptions", number)] = line
            sources.setdefault(group.name, str(file))
            policies.append(group)
    if problems:
        raise PolicyError(problems)
    return Baseline(
        policies=tuple(policies), sources=sources, run_limits=run_limits, locations=locations
    )


def _files_at(path: Path) -> list[Path]:
    """The policy files ``path`` names: the files of a directory, or one policy file."""
    if path.is_file():
        if path.suffix.lower() not in POLICY_SUFFIXES:
            raise PolicyError(
                [
                    PolicyProblem(
                        str(path),
                        None,
                        "",
                        "not a policy file (policy files end in .yaml or .yml); pass one, or"
                        " the directory that holds them",
                    )
                ]
            )
        return [path]
    if not path.is_dir():
        raise PolicyError(
            [
                PolicyProblem(
                    str(path),
                    None,
                    "",
                    "policy directory or file not found"
                    " (use --policies DIR or --policies FILE.yaml)",
                )
            ]
        )
    files = policy_files(path)
    if not files:
        raise PolicyError(
            [
                PolicyProblem(
                    str(path),
                    None,
                    "",
                    "no policy files (*.yaml, *.yml) found; an empty baseline is refused"
                    " rather than treated as 'nothing to do'",
                )
            ]
        )
    return files


def _check_names(
    file: Path,
    data: dict[Any, Any],
    lines: dict[Loc, int],
    first_seen: dict[str, str],
    problems: list[PolicyProblem],
) -> None:
    """Report each policy name already used, naming both places; read from the raw data, so a
    file with other mistakes still has its duplicates reported in the same run."""
    groups = data.get("groups")
    if not isinstance(groups, list):
        return
    for index, group in enumerate(groups):
        name = group.get("name") if isinstance(group, dict) else None
        if not isinstance(name, str):
            continue
        line = lines.get(("groups", index, "name"))
        here = f"{file}:{line}" if line is not None else str(file)
        if name in first_seen:
            problems.append(
                PolicyProblem(
                    str(file),
                    line,
                    f"groups[{index}].name",
                    f"duplicate policy name {name!r} (also at {first_seen[name]});"
                    " names must be unique across all files",
                )
            )
            continue
        first_seen[name] = here
