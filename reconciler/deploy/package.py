"""Build the Lambda deployment package: one reproducible zip with code, policies and wheels.

The zip holds the ``reconciler`` package (from where it is installed), the baseline under
``policies/``, and the third-party wheels for the Lambda platform (CPython 3.12 on manylinux,
arm64 or x86_64) unpacked at the root. Wheels are fetched with ``pip download`` into a cache and
pinned to the versions installed here, so the function runs what the tests ran. Entries are
sorted and carry fixed timestamps and permissions: the same inputs give the same bytes.

Lambda's ``/var/task`` is read-only, so Python cannot cache bytecode there: without ``.pyc``
files in the zip every cold start compiles every module it imports. When a CPython 3.12 is at
hand, each ``.py`` is compiled by it into ``__pycache__/*.cpython-312.pyc`` with
``unchecked-hash`` invalidation (PEP 552: no timestamps, so reproducible, and never checked
against the source, which ships beside it unchanged).
"""

from __future__ import annotations

__all__ = [
    "ACCOUNTS_ENTRY",
    "LAMBDA_PYTHON",
    "LAMBDA_PYTHON_ENV",
    "RUNTIME_REQUIREMENTS",
    "PackageError",
    "PackageResult",
    "build_package",
    "default_wheel_dir",
    "lambda_python",
]

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath

import reconciler
from reconciler.core.errors import ReconcilerError

LAMBDA_PYTHON = "3.12"
RUNTIME_REQUIREMENTS = ("pydantic", "pyyaml", "structlog")
BOTO_REQUIREMENTS = ("boto3",)  # the Lambda runtime provides boto3 and botocore
ACCOUNTS_ENTRY = "accounts.yaml"  # SG_RECONCILER_ACCOUNTS of a hub: /var/task/accounts.yaml
ARCHITECTURES = {"arm64": "aarch64", "x86_64": "x86_64"}
MANYLINUX = ("manylinux2014", "manylinux_2_28")

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can carry
_FILE_MODE = 0o100644  # regular file, rw-r--r--: Lambda only needs to read the code
_SKIP_DIRS = frozenset({"__pycache__"})
_SKIP_SUFFIXES = (".pyc", ".pyo")
# The templates, example policies and schema the CLI ships (reconciler.resources): the function
# never reads them, so they stay out of its zip.
_CLI_DATA = "data"


class PackageError(ReconcilerError):
    """The package could not be built (pip failed, a file would be overwritten, ...)."""


@dataclass(frozen=True, slots=True)
class PackageResult:
    """The built zip and what went into it."""

    path: Path
    sha256: str
    size: int
    entries: int
    architecture: str
    wheels: tuple[str, ...]  # wheel file names, sorted
    compiled: int = 0  # .py files shipped with CPython 3.12 bytecode (0: no 3.12 found)


def default_wheel_dir() -> Path:
    """Where downloaded wheels are cached: ``.sg-reconciler/wheel-cache`` under the cwd."""
    return Path.cwd() / ".sg-reconciler" / "wheel-cache"


def build_package(
    policies_dir: Path,
    output: Path,
    *,
    architecture: str = "arm64",
    bundle_boto3: bool = False,
    wheel_dir: Path | None = None,
    accounts: Path | None = None,
) -> PackageResult:
    """Build the Lambda zip at ``output`` and return what it holds.

    Refuses an invalid baseline: ``PolicyError`` (whose ``problems`` print one per line) is
    raised before anything is downloaded or written. An ``accounts`` file (a hub) is checked
    the same way and shipped as ``accounts.yaml`` beside ``policies/``.
    """
    _check_inputs(policies_dir, architecture, accounts)
    requirements = _pinned(RUNTIME_REQUIREMENTS + (BOTO_REQUIREMENTS if bundle_boto3 else ()))
    cache = (
        wheel_dir or default_wheel_dir()
    ) / f"cp{LAMBDA_PYTHON.replace('.', '')}-{architecture}"
    with tempfile.TemporaryDirectory(prefix="sg-reconciler-wheels-") as picked:
        wheels = _lambda_wheels(requirements, architecture, cache, Path(picked))
        entries = _entries(policies_dir, accounts, wheels)
        wheel_names = tuple(sorted(w.name for w in wheels))
    bytecode = _bytecode(entries)
    entries.update(bytecode)
    data = _write_zip(entries, output)
    return PackageResult(
        path=output,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        entries=len(entries),
        architecture=architecture,
        wheels=wheel_names,
        compiled=len(bytecode),
    )


def _check_inputs(policies_dir: Path, architecture: str, accounts: Path | None) -> None:
    """Raise before any work when the architecture, the baseline or the accounts file is wrong."""
    # Imported here: the loaders pull in the models, which packaging does not otherwise need.
    from reconciler.adapters.policy_files import load_policies  # noqa: PLC0415

    if architecture not in ARCHITECTURES:
        raise PackageError(
            f"architecture {architecture!r} is not one of {', '.join(sorted(ARCHITECTURES))}"
        )
    load_policies(policies_dir)
    if accounts is not None:
        from reconciler.adapters.accounts import load_accounts  # noqa: PLC0415

        load_accounts(accounts)


def _entries(policies_dir: Path, accounts: Path | None, wheels: Iterable[Path]) -> dict[str, bytes]:
    """Every file of the zip by entry name: our code, the baseline, the accounts, the wheels."""
    entries: dict[str, bytes] = {}
    code = Path(reconciler.__file__).parent
    _add_tree(entries, code, PurePosixPath("reconciler"), "code", skip=(code / _CLI_DATA,))
    _add_tree(entries, policies_dir, PurePosixPath("policies"), "policies")
    if accounts is not None:
        _put(entries, ACCOUNTS_ENTRY, accounts.read_bytes(), str(accounts))
    for wheel in wheels:
        _add_wheel(entries, wheel)
    return entries


def _write_zip(entries: dict[str, bytes], output: Path) -> bytes:
    """Write ``entries`` sorted, with fixed dates and modes, atomically; return the zip's bytes."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.create_system = 3  # Unix, so that external_attr holds the mode on any host
            info.external_attr = _FILE_MODE << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entries[name], compresslevel=9)
    partial.replace(output)
    return output.read_bytes()


# Run by the 3.12 interpreter: compile argv[1]'s tree into argv[2], names as on Lambda.
_COMPILE = """
import pathlib, py_compile, sys
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for path in sorted(src.rglob("*.py")):
    rel = path.relative_to(src)
    target = out / rel.parent / "__pycache__" / (rel.stem + ".cpython-312.pyc")
    try:
        py_compile.compile(str(path), cfile=str(target), dfile="/var/task/" + rel.as_posix(),
                           doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    except py_compile.PyCompileError:
        pass  # not valid 3.12 source: Lambda would fail on it too, if it is ever imported
"""


LAMBDA_PYTHON_ENV = "SG_RECONCILER_LAMBDA_PYTHON"  # path of a CPython 3.12 to compile with


def lambda_python() -> str | None:
    """A working CPython of the Lambda runtime's version here, or None.

    Tried in order: ``SG_RECONCILER_LAMBDA_PYTHON``, this interpreter, ``python3.12`` on
    PATH, and pyenv's 3.12 builds (a pyenv shim on PATH fails unless that version is active).
    """
    if sys.implementation.name == "cpython" and sys.version_info[:2] == (3, 12):
        return sys.executable
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    candidates = [
        os.environ.get(LAMBDA_PYTHON_ENV),
        shutil.which(f"python{LAMBDA_PYTHON}"),
        *(str(p) for p in sorted(pyenv.glob(f"{LAMBDA_PYTHON}*/bin/python{LAMBDA_PYTHON}"))),
    ]
    for candidate in candidates:
        if candidate and _is_lambda_python(candidate):
            return candidate
    return None


_VERSION_PROBE = "import sys; print(sys.implementation.name, *sys.version_info[:2])"


def _is_lambda_python(interpreter: str) -> bool:
    try:
        probe = subprocess.run(  # noqa: S603 - an interpreter path, fixed argv
            [
                interpreter,
                "-c",
                "import sys; print(sys.implementation.name, *sys.version_info[:2])",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    except OSError:
        return False
    return probe.stdout.split() == ["cpython", *LAMBDA_PYTHON.split(".")]


def _bytecode(entries: dict[str, bytes]) -> dict[str, bytes]:
    """``__pycache__`` entries for the ``.py`` entries, or none without a CPython 3.12."""
    interpreter = lambda_python()
    if interpreter is None:
        return {}
    with tempfile.TemporaryDirectory(prefix="sg-reconciler-pyc-") as work:
        src, out = Path(work) / "src", Path(work) / "out"
        for name, data in entries.items():
            if name.endswith(".py"):
                path = src / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        # -I: nothing from the environment or user site; the same sources compile to the
        # same bytes (tests/integration/test_package.py builds twice and compares).
        done = subprocess.run(  # noqa: S603 - fixed argv
            [interpreter, "-I", "-c", _COMPILE, str(src), str(out)],
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
            env={"PATH": os.environ.get("PATH", "")},
        )
        if done.returncode != 0:
            raise PackageError(f"compiling for python{LAMBDA_PYTHON} failed: {done.stderr[-500:]}")
        return {
            str(PurePosixPath(*path.relative_to(out).parts)): path.read_bytes()
            for path in sorted(out.rglob("*.pyc"))
        }


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pinned(names: Iterable[str]) -> list[str]:
    """``name==version`` for each requirement, at the version installed here."""
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError as exc:
            raise PackageError(
                f"{name} is not installed here; install sg-reconciler first"
            ) from exc
    return pins


def _installed_constraints() -> str:
    """Every installed distribution at its installed version, as a pip constraints file.

    This pins the dependencies of the requirements too (pydantic-core, typing-extensions, ...)
    to what runs here; constraints on packages that are not needed are ignored by pip.
    """
    lines = set()
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if not name or "+" in dist.version or _canonical(name) == "sg-reconciler":
            continue  # local builds have no wheel on an index; ourselves we ship as source
        lines.add(f"{_canonical(name)}=={dist.version}")
    return "\n".join(sorted(lines)) + "\n"


def _pip_download(
    requirements: list[str],
    architecture: str,
    dest: Path,
    constraints: Path,
    *,
    find_links: Path | None,
) -> subprocess.CompletedProcess[str]:
    machine = ARCHITECTURES[architecture]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
    command += ["--only-binary=:all:", "--implementation", "cp"]
    command += ["--python-version", LAMBDA_PYTHON, "--abi", f"cp{LAMBDA_PYTHON.replace('.', '')}"]
    for tag in MANYLINUX:
        command += ["--platform", f"{tag}_{machine}"]
    command += ["--dest", str(dest), "--constraint", str(constraints)]
    if find_links is not None:
        command += ["--no-index", "--find-links", str(find_links)]
    command += requirements
    env = {**os.environ, "PIP_NO_INPUT": "1"}
    return subprocess.run(command, capture_output=True, text=True, check=False, env=env)  # noqa: S603 - fixed argv


def _lambda_wheels(
    requirements: list[str], architecture: str, cache: Path, picked: Path
) -> list[Path]:
    """The exact set of wheels the requirements need on Lambda, downloaded once into ``cache``.

    pip resolves offline from the cache first; only when that fails does it go to the index.
    The resolution lands in the empty ``picked`` directory, so stale wheels in the cache are
    never packaged.
    """
    cache.mkdir(parents=True, exist_ok=True)
    constraints = picked / "constraints.txt"
    constraints.write_text(_installed_constraints(), encoding="utf-8")
    chosen = picked / "wheels"
    done = _pip_download(requirements, architecture, chosen, constraints, find_links=cache)
    if done.returncode != 0:
        fetched = _pip_download(requirements, architecture, cache, constraints, find_links=None)
        if fetched.returncode != 0:
            said = (fetched.stderr or fetched.stdout).strip().splitlines()
            raise PackageError(
                f"pip could not download wheels for {architecture}/cp{LAMBDA_PYTHON}:"
                f" {said[-1] if said else f'exit status {fetched.returncode}'}"
            )
        done = _pip_download(requirements, architecture, chosen, constraints, find_links=cache)
        if done.returncode != 0:
            raise PackageError(f"pip could not resolve from {cache}: {done.stderr.strip()}")
    wheels = sorted(chosen.glob("*.whl"))
    if not wheels:
        raise PackageError(f"pip resolved no wheels for {', '.join(requirements)}")
    return wheels


def _files(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for filename in sorted(filenames):
            if filename.endswith(_SKIP_SUFFIXES) or filename.startswith("."):
                continue
            yield Path(dirpath) / filename


def _put(entries: dict[str, bytes], name: str, data: bytes, source: str) -> None:
    if name in entries:
        raise PackageError(f"{name} would be added twice (second time from {source})")
    entries[name] = data


def _add_tree(
    entries: dict[str, bytes],
    root: Path,
    prefix: PurePosixPath,
    source: str,
    *,
    skip: tuple[Path, ...] = (),
) -> None:
    for path in _files(root):
        if any(path.is_relative_to(skipped) for skipped in skip):
            continue
        relative = PurePosixPath(*path.relative_to(root).parts)
        _put(entries, str(prefix / relative), path.read_bytes(), source)


def _add_wheel(entries: dict[str, bytes], wheel: Path) -> None:
    """Unpack a wheel at the zip root, the way pip would install it into site-packages."""
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            name = info.filename
            parts = PurePosixPath(name).parts
            if any(part in _SKIP_DIRS for part in parts) or name.endswith(_SKIP_SUFFIXES):
                continue
            if parts[0].endswith(".data"):
                # purelib/platlib are importable code; scripts and headers are not needed.
                if len(parts) < 3 or parts[1] not in {"purelib", "platlib"}:
                    continue
                name = str(PurePosixPath(*parts[2:]))
            _put(entries, name, archive.read(info), wheel.name)
