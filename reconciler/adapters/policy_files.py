"""Policy files on disk -> a validated Baseline, or a PolicyError naming file:line and a fix."""

from __future__ import annotations

__all__ = ["POLICY_SUFFIXES", "load_policies", "policy_files"]

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.adapters.yaml_models import Loc, read_yaml_file, validate_data
from reconciler.core.errors import PolicyError, PolicyProblem
from reconciler.core.guardrail_checks import RuleLocation, guardrail_conflicts
from reconciler.core.peers import PeerSetSource, resolve_peer_sets
from reconciler.core.policy import Baseline, GroupPolicy, Guardrail, PolicyFile

POLICY_SUFFIXES = (".yaml", ".yml")
_KIND = {"groups": "policy", "guardrails": "guardrail"}


def policy_files(directory: Path) -> list[Path]:
    """The policy files in ``directory``, sorted by name (not recursive)."""
    return sorted(
        p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in POLICY_SUFFIXES
    )


def load_policies(path: Path | str) -> Baseline:
    """Load and validate every policy file in the directory ``path``, or the one file ``path``.

    Every mistake in every file is collected (duplicate names too, even in files with other
    mistakes); if there is any, PolicyError is raised with all of them, so nothing acts on a
    partly valid baseline (fail closed). Named peer sets are read from every file first, so
    a ``$name`` may be used in any file.
    """
    problems: list[PolicyProblem] = []
    read = [
        (file, got) for file in _files_at(Path(path)) if (got := read_yaml_file(file, problems))
    ]
    peer_sets = resolve_peer_sets(_peer_sources(read, problems), problems)
    loaded = _Loaded()
    first_seen: dict[str, str] = {}
    for file, (data, lines) in read:
        parsed = validate_data(
            data, lines, PolicyFile, str(file), problems, context={"peers": peer_sets}
        )
        _check_names(file, data, lines, first_seen, problems)
        if parsed is not None:
            loaded.add(file, parsed, lines)
    baseline = Baseline(
        policies=tuple(loaded.policies),
        sources=loaded.sources,
        run_limits=loaded.run_limits,
        locations=loaded.locations,
        guardrails=tuple(loaded.guardrails),
        peer_sets=peer_sets,
    )
    if not problems:
        problems += guardrail_conflicts(baseline, loaded.rule_lines)
        if not baseline.policies and not baseline.guardrails:
            problems.append(
                PolicyProblem(
                    str(path),
                    None,
                    "",
                    "no groups: or guardrails: in any policy file; an"
                    " empty baseline is refused rather than treated as 'nothing to do'",
                )
            )
    if problems:
        raise PolicyError(sorted(problems, key=lambda p: p.file))  # stable: file by file
    return baseline


@dataclass
class _Loaded:
    """What the valid files hold, with the lines validation after loading reports."""

    policies: list[GroupPolicy] = field(default_factory=list)
    guardrails: list[Guardrail] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    run_limits: dict[str, int] = field(default_factory=dict)
    locations: dict[tuple[str, str, int], int] = field(default_factory=dict)
    rule_lines: dict[tuple[str, str, int], RuleLocation] = field(default_factory=dict)

    def add(self, file: Path, parsed: PolicyFile, lines: dict[Loc, int]) -> None:
        if parsed.limits is not None and parsed.limits.max_revocations_per_run is not None:
            self.run_limits[str(file)] = parsed.limits.max_revocations_per_run
        for index, group in enumerate(parsed.effective_groups()):
            for number in range(len(group.exceptions)):
                line = lines.get(("groups", index, "exceptions", number))
                if line is not None:
                    self.locations[(group.name, "exceptions", number)] = line
            for part in ("ingress", "egress", "exceptions"):
                for number in range(len(getattr(group, part) or ())):
                    line = lines.get(("groups", index, part, number))
                    self.rule_lines[(group.name, part, number)] = RuleLocation(
                        str(file), line, f"groups[{index}].{part}[{number}]"
                    )
            self.sources.setdefault(group.name, str(file))
            self.policies.append(group)
        for guardrail in parsed.guardrails:
            self.sources.setdefault(guardrail.name, str(file))
            self.guardrails.append(guardrail)


def _peer_sources(
    read: list[tuple[Path, tuple[dict[Any, Any], dict[Loc, int]]]], problems: list[PolicyProblem]
) -> dict[str, PeerSetSource]:
    """Every file's ``peers:`` entries; a name declared twice is a problem naming both."""
    out: dict[str, PeerSetSource] = {}
    for file, (data, lines) in read:
        peers = data.get("peers")
        if not isinstance(peers, dict):
            continue
        for name, values in peers.items():
            line = lines.get(("peers", name))
            if name in out:
                first = out[name]
                problems.append(
                    PolicyProblem(
                        str(file),
                        line,
                        f"peers.{name}",
                        f"duplicate peer set {name!r} (also at {first.file}:{first.line});"
                        " names must be unique across all files",
                    )
                )
                continue
            out[str(name)] = PeerSetSource(str(file), line, values)
    return out


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
    """Report each policy or guardrail name already used, naming both places; read from the
    raw data, so a file with other mistakes still has its duplicates reported in the same run."""
    for section in ("groups", "guardrails"):
        entries = data.get(section)
        if not isinstance(entries, list):
            continue
        for index, entry in enumerate(entries):
            name = entry.get("name") if isinstance(entry, dict) else None
            if not isinstance(name, str):
                continue
            line = lines.get((section, index, "name"))
            here = f"{file}:{line}" if line is not None else str(file)
            if name in first_seen:
                problems.append(
                    PolicyProblem(
                        str(file),
                        line,
                        f"{section}[{index}].name",
                        f"duplicate {_KIND[section]} name {name!r} (also at {first_seen[name]});"
                        " names must be unique across all files",
                    )
                )
                continue
            first_seen[name] = here
