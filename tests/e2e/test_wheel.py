"""The wheel, installed as a user installs it: not editable, in a fresh venv outside the checkout.

The wheel is built by pip from a copy of the package sources (so nothing is written into the
checkout) and installed with its ``demo`` extra from pip's cache, pinned to the versions of
this venv (which also lets ``deploy`` resolve its Lambda wheels from the shared wheel cache).
Every command then runs from a directory outside the checkout, where only the installed
package can supply the templates and the example policies.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO

pytestmark = pytest.mark.e2e

VERSION = metadata.version("sg-reconciler")
SHIPPED = (
    "reconciler/data/deploy/template.yaml",
    "reconciler/data/deploy/member-role.yaml",
    "reconciler/data/policies/example.yaml",
    "reconciler/data/schema/policy.schema.json",
    "reconciler/py.typed",
)
SOURCES = ("pyproject.toml", "README.md", "LICENSE")
ACCOUNT = "123456789012"  # moto's default account
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in ``cwd`` with ``env``, capturing its output."""
    return subprocess.run(
        command, capture_output=True, text=True, check=False, cwd=cwd, env=env, timeout=300
    )


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without anything that points Python at the checkout or this venv."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env = {k: v for k, v in env.items() if not k.startswith(("AWS_", "SG_RECONCILER_"))}
    return {**env, **FAKE_AWS, **extra}


def copy_sources(target: Path) -> Path:
    """The files a source distribution holds, copied to ``target`` (no caches)."""
    target.mkdir()
    for name in SOURCES:
        if (REPO / name).exists():
            shutil.copy2(REPO / name, target / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "reconciler", target / "reconciler", ignore=ignore)
    return target


def pinned_to_this_venv(path: Path) -> Path:
    """A pip constraints file: every distribution installed here, at its version here."""
    lines = set()
    for dist in metadata.distributions():
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower()
        if name and name not in {"sg-reconciler", "pip", "setuptools"} and "+" not in dist.version:
            lines.add(f"{name}=={dist.version}")
    path.write_text("\n".join(sorted(lines)) + "\n", encoding="utf-8")
    return path


@dataclass(frozen=True)
class Installed:
    """A fresh venv holding the wheel, and a working directory outside the checkout."""

    wheel: Path
    bin: Path
    cwd: Path
    seconds: float

    def cli(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run the installed ``sg-reconciler`` in ``cwd`` (default: the outside directory)."""
        return run([str(self.bin / "sg-reconciler"), *args], cwd or self.cwd, clean_env())


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """Build the wheel, make a venv, install the wheel with ``[demo]`` (not editable)."""
    started = time.monotonic()
    tmp = tmp_path_factory.mktemp("wheel")
    assert not tmp.is_relative_to(REPO)
    sources = copy_sources(tmp / "src")
    built = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), "."],
        sources,
        clean_env(),
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp / "dist").glob("sg_reconciler-*.whl")
    venv = tmp / "venv"
    made = run([sys.executable, "-m", "venv", str(venv)], tmp, clean_env())
    assert made.returncode == 0, made.stdout + made.stderr
    constraints = pinned_to_this_venv(tmp / "constraints.txt")
    pip = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
    ]
    done = run([*pip, "-c", str(constraints), f"{wheel}[demo]"], tmp, clean_env())
    assert done.returncode == 0, done.stdout + done.stderr
    work = tmp / "work"
    work.mkdir()
    # deploy caches the Lambda's wheels under ./.sg-reconciler: share the checkout's cache.
    (REPO / ".sg-reconciler").mkdir(exist_ok=True)
    (work / ".sg-reconciler").symlink_to(REPO / ".sg-reconciler", target_is_directory=True)
    return Installed(wheel, venv / "bin", work, time.monotonic() - started)


def test_the_wheel_ships_the_templates_the_examples_and_the_licence(installed: Installed) -> None:
    """The wheel holds the package data the CLI reads, and the licence file in its metadata."""
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
        meta = wheel.read(f"sg_reconciler-{VERSION}.dist-info/METADATA").decode()
    assert set(SHIPPED) <= names
    assert f"sg_reconciler-{VERSION}.dist-info/licenses/LICENSE" in names
    assert "License-Expression: Apache-2.0" in meta.splitlines()
    assert "Project-URL: Source, https://github.com/sg-reconciler/sg-reconciler" in meta


def test_the_installed_package_is_the_wheel_not_the_checkout(installed: Installed) -> None:
    """reconciler is imported from the venv's site-packages and finds its data there."""
    probe = "import reconciler.resources as r; print(r.__file__); print(r.example_policies())"
    done = run([str(installed.bin / "python"), "-c", probe], installed.cwd, clean_env())
    assert done.returncode == 0, done.stderr
    module, policies = (Path(line) for line in done.stdout.splitlines())
    site = installed.bin.parent / "lib"
    assert module.is_relative_to(site)
    assert not module.is_relative_to(REPO)
    assert (policies / "example.yaml").is_file()
    assert policies.is_relative_to(site)


def test_version_prints_the_version(installed: Installed) -> None:
    """`sg-reconciler --version` prints the distribution's version and exits 0."""
    done = installed.cli("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"sg-reconciler {VERSION}"


def test_validate_accepts_a_copy_of_the_packaged_example(installed: Installed) -> None:
    """validate of a directory holding the shipped example exits 0 and says OK."""
    site = installed.bin.parent / "lib"
    (example,) = site.glob("python3*/site-packages/reconciler/data/policies/example.yaml")
    policies = installed.cwd / "policies"
    policies.mkdir(exist_ok=True)
    shutil.copy(example, policies / "example.yaml")
    done = installed.cli("validate", "--policies", str(policies))
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.fullmatch(r"OK: \d+ policies in 1 files", done.stdout.strip()), done.stdout


def test_deploy_dry_run_uses_the_packaged_template(installed: Installed, endpoint: str) -> None:
    """deploy --dry-run from outside the checkout prints the change set and exits 0."""
    policies = installed.cwd / "dry-run-policies"
    policies.mkdir()
    shutil.copy(REPO / "policies" / "example.yaml", policies / "example.yaml")
    args = ["--stack-name", "x", "--region", "us-east-1", "--dry-run", "--endpoint-url", endpoint]
    done = installed.cli("deploy", *args, "--policies", str(policies))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    bucket = f"sg-reconciler-{ACCOUNT}-us-east-1"
    assert lines[0].startswith(f"Would create bucket {bucket} and upload s3://{bucket}/")
    assert lines[1].startswith("Change set sg-reconciler-")
    assert "  Add      ReconcilerFunction AWS::Lambda::Function" in lines
    assert lines[-1] == "Stack x: dry run, change set deleted"


def test_demo_runs_from_the_installed_package(installed: Installed, tmp_path: Path) -> None:
    """`sg-reconciler demo` (the demo extra) in an empty directory uses the packaged example."""
    done = installed.cli("demo", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Demo finished:" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
