"""build_package: what the Lambda zip holds, that it is reproducible, and that it runs on 3.12.

Wheels come from PyPI the first time and from .sg-reconciler/wheel-cache afterwards.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import boto3
import pytest

from reconciler.cli import main
from reconciler.core.errors import PolicyError
from reconciler.deploy.package import (
    PackageError,
    PackageResult,
    build_package,
    lambda_python,
)
from tests.deploy_stacks import EVENTS, VALID_POLICY, WHEEL_CACHE
from tests.policyfiles import write_policies

RUNTIME_TOP_LEVEL = {
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_inspection",
    "yaml",
    "_yaml",
    "structlog",
}


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid one-file baseline."""
    return write_policies(tmp_path_factory.mktemp("policies"), VALID_POLICY, "web.yaml")


@pytest.fixture(scope="module")
def arm64(policies: Path, tmp_path_factory: pytest.TempPathFactory) -> PackageResult:
    """The default package: arm64, boto3 left to the Lambda runtime."""
    return build_package(
        policies, tmp_path_factory.mktemp("arm64") / "package.zip", wheel_dir=WHEEL_CACHE
    )


def names(result: PackageResult) -> list[str]:
    """Entry names of a built zip, in archive order."""
    with zipfile.ZipFile(result.path) as archive:
        return archive.namelist()


def top_level(entries: list[str]) -> set[str]:
    """First path component of each entry, without .dist-info/.libs directories and bytecode."""
    tops = {e.split("/", 1)[0].removesuffix(".py") for e in entries}
    return {t for t in tops if not t.endswith((".dist-info", ".libs")) and t != "__pycache__"}


def test_package_holds_code_policies_and_runtime_wheels(arm64: PackageResult) -> None:
    """reconciler source, policies/ and the runtime dependencies sit at the zip root; no boto3."""
    entries = names(arm64)
    assert top_level(entries) == {"reconciler", "policies", "typing_extensions"} | RUNTIME_TOP_LEVEL
    assert "reconciler/__init__.py" in entries
    assert "reconciler/core/errors.py" in entries
    assert "reconciler/adapters/policy_files.py" in entries
    assert "policies/web.yaml" in entries
    sources = [e for e in entries if e.endswith(".py")]
    bytecode = {e for e in entries if "__pycache__" in e or e.endswith(".pyc")}
    if lambda_python() is None:  # no CPython 3.12 here: source only, and `package` says so
        assert (arm64.compiled, bytecode) == (0, set())
    else:  # one 3.12 .pyc beside every .py, nothing else
        assert bytecode == {_cached(e) for e in sources}
        assert arm64.compiled == len(sources)
        with zipfile.ZipFile(arm64.path) as archive:
            header = archive.read(_cached("reconciler/lambda_handler.py"))[:16]
        # PEP 552 flags: bit 0 hash-based, bit 1 check the source (unset: never checked).
        assert int.from_bytes(header[4:8], "little") == 0b01
    native = [e for e in entries if e.startswith("pydantic_core/") and e.endswith(".so")]
    assert native == [e for e in native if e.endswith("cpython-312-aarch64-linux-gnu.so")]
    assert len(native) == 1
    assert arm64.architecture == "arm64"
    assert arm64.entries == len(entries)
    versions = {w.split("-")[0].lower(): w.split("-")[1] for w in arm64.wheels}
    assert versions["pydantic"] == metadata.version("pydantic")
    assert versions["pyyaml"] == metadata.version("pyyaml")
    assert versions["structlog"] == metadata.version("structlog")
    assert set(versions) == {
        "pydantic",
        "pydantic_core",
        "annotated_types",
        "typing_inspection",
        "typing_extensions",
        "pyyaml",
        "structlog",
    }


def _cached(source: str) -> str:
    """Where CPython 3.12 looks for the bytecode of ``source``."""
    folder, _, name = source.rpartition("/")
    return f"{folder + '/' if folder else ''}__pycache__/{name.removesuffix('.py')}.cpython-312.pyc"


def test_package_leaves_out_the_files_only_the_cli_reads(arm64: PackageResult) -> None:
    """The templates, example policies and schema (reconciler/data) stay out of the Lambda zip."""
    entries = names(arm64)
    assert [e for e in entries if e.startswith("reconciler/data/")] == []
    assert not any(e.endswith(("template.yaml", "example.yaml", ".schema.json")) for e in entries)


def test_policies_in_the_zip_are_the_files_given(arm64: PackageResult, policies: Path) -> None:
    """The baseline is packaged byte for byte under policies/."""
    with zipfile.ZipFile(arm64.path) as archive:
        assert archive.read("policies/web.yaml") == (policies / "web.yaml").read_bytes()


def test_package_is_reproducible(arm64: PackageResult, policies: Path, tmp_path: Path) -> None:
    """Building again gives the same bytes: sorted entries, 1980-01-01, mode 0644."""
    again = build_package(policies, tmp_path / "again.zip", wheel_dir=WHEEL_CACHE)
    assert again.path.read_bytes() == arm64.path.read_bytes()
    assert again.sha256 == arm64.sha256
    with zipfile.ZipFile(arm64.path) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}


def test_x86_64_and_bundled_boto3(policies: Path, tmp_path: Path) -> None:
    """x86_64 gets x86_64 native code; bundle_boto3 adds boto3 and botocore, pinned as here."""
    result = build_package(
        policies,
        tmp_path / "x86.zip",
        architecture="x86_64",
        bundle_boto3=True,
        wheel_dir=WHEEL_CACHE,
    )
    entries = names(result)
    assert "pydantic_core/_pydantic_core.cpython-312-x86_64-linux-gnu.so" in entries
    assert "boto3/__init__.py" in entries
    assert "botocore/__init__.py" in entries
    assert f"boto3-{metadata.version('boto3')}.dist-info/METADATA" in entries


def test_invalid_policies_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    """A baseline with a mistake raises PolicyError naming file:line, and writes no zip."""
    bad = write_policies(tmp_path / "bad", "groups:\n  - name: web\n    ingres: []\n", "bad.yaml")
    output = tmp_path / "package.zip"
    with pytest.raises(PolicyError) as raised:
        build_package(bad, output, wheel_dir=WHEEL_CACHE)
    problems = [str(p) for p in raised.value.problems]
    assert problems
    assert all(p.startswith(f"{bad / 'bad.yaml'}:") for p in problems)
    assert not output.exists()


def test_unknown_architecture_is_refused(policies: Path, tmp_path: Path) -> None:
    """An architecture Lambda does not offer is named in the error."""
    with pytest.raises(PackageError, match=r"architecture 'ppc64le' is not one of arm64, x86_64"):
        build_package(policies, tmp_path / "p.zip", architecture="ppc64le", wheel_dir=WHEEL_CACHE)


# --- the package on Lambda's Python, with only boto3 installed -----------------------------------


def python312() -> str | None:
    """A working CPython 3.12 interpreter here (stands in for Lambda's python3.12), if any."""
    candidates = [str(p) for p in sorted(Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"))]
    candidates += [found for found in [shutil.which("python3.12")] if found]
    for candidate in candidates:
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 12))"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if probe.stdout.strip() == "True":
            return candidate
    return None


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def moto_server() -> Iterator[str]:
    """moto_server on 127.0.0.1, stopped after the test."""
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


HANDLER_RUN = """
import importlib._bootstrap_external as bootstrap, json, sys
from types import SimpleNamespace
# Every module compiled from source here: none of the package's may be, it ships bytecode.
from_source = []
source_to_code = bootstrap.SourceLoader.source_to_code
def counted(self, data, path, *args, **kwargs):
    from_source.append(path)
    return source_to_code(self, data, path, *args, **kwargs)
bootstrap.SourceLoader.source_to_code = counted
import boto3, pydantic_core
from reconciler.lambda_handler import handler
assert pydantic_core.__file__.startswith(sys.argv[1]), pydantic_core.__file__
context = SimpleNamespace(function_name="sg-reconciler", aws_request_id="test-request",
                          invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:x",
                          get_remaining_time_in_millis=lambda: 60_000)
with open(sys.argv[2], encoding="utf-8") as f:
    event = json.load(f)
answer = handler(event, context)
assert not [p for p in from_source if p.startswith(sys.argv[1])], from_source
print(json.dumps(answer, default=str))
"""


def test_package_runs_the_handler_on_python312_with_only_boto3(
    policies: Path, tmp_path: Path, moto_server: str
) -> None:
    """In a fresh 3.12 venv holding only boto3, the unzipped package answers a scheduled event."""
    if importlib.util.find_spec("reconciler.lambda_handler") is None:
        pytest.skip("reconciler.lambda_handler is not written yet")
    interpreter = python312()
    if interpreter is None:
        pytest.skip("no CPython 3.12 here to stand in for Lambda's python3.12 runtime")
    architecture = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]
    package = build_package(
        policies, tmp_path / "package.zip", architecture=architecture, wheel_dir=WHEEL_CACHE
    )
    task = tmp_path / "task"  # Lambda unpacks the zip in /var/task and puts it on sys.path
    with zipfile.ZipFile(package.path) as archive:
        archive.extractall(task)
    venv = tmp_path / "venv"
    subprocess.run([interpreter, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "pip"), "install", "--quiet", f"boto3=={metadata.version('boto3')}"]
    cached = WHEEL_CACHE / f"cp312-{architecture}"  # filled by the bundle_boto3 build
    installed = subprocess.run(
        [*pip, "--no-index", "--find-links", str(cached)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if installed.returncode != 0:
        installed = subprocess.run(pip, capture_output=True, text=True, check=False, timeout=300)
    assert installed.returncode == 0, installed.stderr
    region = "us-east-1"
    ec2 = boto3.client(
        "ec2",
        region_name=region,
        endpoint_url=moto_server,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    group = ec2.create_security_group(
        GroupName="web",
        Description="web",
        VpcId=vpc,
        TagSpecifications=[
            {"ResourceType": "security-group", "Tags": [{"Key": "Name", "Value": "prod-sg"}]}
        ],
    )["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=group,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 443,
                "ToPort": 443,
                "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
            },
            {
                "IpProtocol": "tcp",
                "FromPort": 22,
                "ToPort": 22,
                "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
            },
        ],
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(task),
        "PYTHONNOUSERSITE": "1",
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_EC2_METADATA_DISABLED": "true",  # never look for instance credentials
        "AWS_LAMBDA_FUNCTION_NAME": "sg-reconciler",
        "SG_RECONCILER_MODE": "report",
        "SG_RECONCILER_REGIONS": region,
        "LAMBDA_TASK_ROOT": str(task),
    }
    done = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            HANDLER_RUN,
            str(task),
            str(EVENTS / "synthetic__scheduled_event.json"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=task,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["trigger"] == "schedule"
    assert answer["group_ids"] == [group]
    assert answer["errors"] == []
    assert answer["revoked"] == []  # report mode
    ssh = [
        r["SecurityGroupRuleId"]
        for r in ec2.describe_security_group_rules(
            Filters=[{"Name": "group-id", "Values": [group]}]
        )["SecurityGroupRules"]
        if r.get("FromPort") == 22
    ]
    assert answer["would_revoke"] == ssh  # still live: report mode only reports
    assert {m["policy"] for m in answer["missing"]} == {
        "web-prod"
    }  # read from policies/ in the zip


def test_without_a_python312_the_package_is_source_only_and_says_so(
    policies: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No CPython 3.12 to compile with: a working zip without bytecode, and one note why."""
    monkeypatch.setattr("reconciler.deploy.package.lambda_python", lambda: None)
    output = tmp_path / "source-only.zip"
    code = main(["package", "--policies", str(policies), "--output", str(output)])
    assert code == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"Built {output} (")
    assert err.splitlines()[-1] == (
        "note: no CPython 3.12 here, so the package holds no bytecode: Lambda compiles every"
        " module it imports on each cold start (install python3.12, or set"
        " SG_RECONCILER_LAMBDA_PYTHON to one, and rebuild)"
    )
    with zipfile.ZipFile(output) as archive:
        entries = archive.namelist()
    assert "reconciler/lambda_handler.py" in entries
    assert not [e for e in entries if e.endswith(".pyc")]
