"""reconciler.resources: the shipped templates, example policies and schema, in the package."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from reconciler.deploy.template import load_template
from reconciler.resources import (
    deploy_template,
    example_policies,
    member_role_template,
    on_disk,
    policy_schema_file,
)

REPO = Path(__file__).resolve().parents[2]
PACKAGED = REPO / "reconciler" / "data"


@pytest.mark.parametrize(
    ("repo_path", "packaged"),
    [
        ("deploy/template.yaml", "deploy/template.yaml"),
        ("deploy/member-role.yaml", "deploy/member-role.yaml"),
        ("policies/example.yaml", "policies/example.yaml"),
        ("policies/guardrails.yaml", "policies/guardrails.yaml"),
        ("schema/policy.schema.json", "schema/policy.schema.json"),
    ],
)
def test_repository_paths_are_symlinks_to_the_packaged_files(repo_path: str, packaged: str) -> None:
    """Each familiar repository path is a symlink to the one packaged copy (no duplicate)."""
    link = REPO / repo_path
    assert link.is_symlink()
    assert link.resolve() == PACKAGED / packaged
    assert not (PACKAGED / packaged).is_symlink()


def test_each_resource_is_the_packaged_file() -> None:
    """The functions return the files under reconciler/data, found through importlib.resources."""
    assert Path(str(deploy_template())) == PACKAGED / "deploy" / "template.yaml"
    assert Path(str(member_role_template())) == PACKAGED / "deploy" / "member-role.yaml"
    assert Path(str(policy_schema_file())) == PACKAGED / "schema" / "policy.schema.json"
    assert example_policies() == PACKAGED / "policies"
    assert sorted(p.name for p in example_policies().glob("*.yaml")) == [
        "example.yaml",
        "guardrails.yaml",
    ]


def test_load_template_defaults_to_the_shipped_stack() -> None:
    """load_template() without a path parses the packaged template."""
    assert load_template() == load_template(REPO / "deploy" / "template.yaml")
    assert "ReconcilerFunction" in load_template()["Resources"]


def test_the_example_schema_reference_resolves_inside_the_package() -> None:
    """The example's `$schema=../schema/...` line points at the packaged schema there too."""
    first = (example_policies() / "example.yaml").read_text(encoding="utf-8").splitlines()[0]
    relative = first.split("$schema=", 1)[1]
    assert (example_policies() / relative).resolve() == PACKAGED / "schema" / "policy.schema.json"


def test_a_directory_inside_a_zip_is_copied_to_disk(tmp_path: Path) -> None:
    """on_disk gives a zipped policies directory as a real directory with the same files."""
    archive = tmp_path / "shipped.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("data/policies/a.yaml", "groups: []\n")
        zipped.writestr("data/policies/b.yaml", "groups: []\n# b\n")
    directory = on_disk(zipfile.Path(archive, "data/policies/"))
    assert directory.is_dir()
    assert sorted(p.name for p in directory.iterdir()) == ["a.yaml", "b.yaml"]
    assert (directory / "b.yaml").read_text(encoding="utf-8") == "groups: []\n# b\n"


def test_a_directory_on_disk_is_returned_as_it_is(tmp_path: Path) -> None:
    """on_disk returns a file-system path unchanged, copying nothing."""
    assert on_disk(tmp_path) is tmp_path
