"""Policy files on disk -> a validated Baseline, or a PolicyError naming file:line and a fix."""

from __future__ import annotations

__all__ = ["POLICY_SUFFIXES", "load_policies", "policy_files"]

from pathlib import Path

from reconciler.adapters.yaml_models import load_model_file
from reconciler.core.errors import PolicyError, PolicyProblem
from reconciler.core.policy import Baseline, GroupPolicy, PolicyFile

POLICY_SUFFIXES = (".yaml", ".yml")


def policy_files(directory: Path) -> list[Path]:
    """The policy files in ``directory``, sorted by name (not recursive)."""
    return sorted(
        p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in POLICY_SUFFIXES
    )


def load_policies(directory: Path | str) -> Baseline:
    """Load and validate every policy file in ``directory``.

    Every mistake in every file is collected; if there is any, PolicyError is raised with
    all of them, so nothing acts on a partly valid baseline (fail closed).
    """
    root = Path(directory)
    if not root.is_dir():
        raise PolicyError(
            [PolicyProblem(str(root), None, "", "policy directory not found (use --policies DIR)")]
        )
    files = policy_files(root)
    if not files:
        raise PolicyError(
            [
                PolicyProblem(
                    str(root),
                    None,
                    "",
                    "no policy files (*.yaml, *.yml) found; an empty baseline is refused"
                    " rather than treated as 'nothing to do'",
                )
            ]
        )
    problems: list[PolicyProblem] = []
    policies: list[GroupPolicy] = []
    sources: dict[str, str] = {}
    run_limits: dict[str, int] = {}
    locations: dict[tuple[str, str, int], int] = {}
    for path in files:
        loaded = load_model_file(path, PolicyFile, problems)
        if loaded is None:
            continue
        parsed, lines = loaded
        if parsed.limits is not None and parsed.limits.max_revocations_per_run is not None:
            run_limits[str(path)] = parsed.limits.max_revocations_per_run
        for index, group in enumerate(parsed.effective_groups()):
            for number in range(len(group.exceptions)):
                line = lines.get(("groups", index, "exceptions", number))
                if line is not None:
                    locations[(group.name, "exceptions", number)] = line
            if group.name in sources:
                problems.append(
                    PolicyProblem(
                        str(path),
                        lines.get(("groups", index, "name")),
                        f"groups[{index}].name",
                        f"duplicate policy name {group.name!r} (also in {sources[group.name]});"
                        " names must be unique across all files",
                    )
                )
                continue
            sources[group.name] = str(path)
            policies.append(group)
    if problems:
        raise PolicyError(problems)
    return Baseline(
        policies=tuple(policies), sources=sources, run_limits=run_limits, locations=locations
    )
