"""The files the installed tool reads: the CloudFormation templates, example policies, schema.

They ship inside the package (``reconciler/data/``, laid out like the repository, so that the
example's ``$schema=../schema/policy.schema.json`` resolves in both places) and are found with
``importlib.resources``, so a wheel installed anywhere has them. The repository's
``deploy/*.yaml``, ``policies/example.yaml`` and ``schema/policy.schema.json`` are symlinks to
these files, for people, docs and linters that use the familiar paths.
"""

from __future__ import annotations

__all__ = [
    "deploy_template",
    "example_policies",
    "member_role_template",
    "on_disk",
    "policy_schema_file",
]

import atexit
import shutil
import tempfile
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable


def _data() -> Traversable:
    return files("reconciler") / "data"


def deploy_template() -> Traversable:
    """The stack ``sg-reconciler deploy`` creates (``deploy/template.yaml`` in the repository)."""
    return _data() / "deploy" / "template.yaml"


def member_role_template() -> Traversable:
    """The role a hub assumes in each member account (``deploy/member-role.yaml``)."""
    return _data() / "deploy" / "member-role.yaml"


def policy_schema_file() -> Traversable:
    """The JSON Schema of a policy file, as committed (``schema/policy.schema.json``)."""
    return _data() / "schema" / "policy.schema.json"


def example_policies() -> Path:
    """The directory of the example baseline (``policies/``), usable as ``--policies``."""
    return on_disk(_data() / "policies")


def on_disk(directory: Traversable) -> Path:
    """``directory`` as a file-system path, its files copied out when it is not on disk.

    An installed wheel is on disk and is returned as it is; a package imported from a zip is
    copied (its top-level files: a policies directory is flat) into a temporary directory that
    is removed when the process exits.
    """
    if isinstance(directory, Path):
        return directory
    copy = Path(tempfile.mkdtemp(prefix="sg-reconciler-"))
    atexit.register(shutil.rmtree, copy, ignore_errors=True)
    for entry in directory.iterdir():
        if entry.is_file():
            (copy / entry.name).write_bytes(entry.read_bytes())
    return copy
