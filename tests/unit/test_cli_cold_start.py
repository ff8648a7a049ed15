"""The CLI loads only what the command run needs: --help and validate never load boto3."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROBE = """
import contextlib, io, json, sys
from reconciler.cli import main
argv = json.loads(sys.argv[1])
out = io.StringIO()
with contextlib.suppress(SystemExit):
    code = main(argv, out=out, err=io.StringIO())
heavy = ("boto3", "botocore", "yaml", "pydantic", "moto", "reconciler.service")
print(json.dumps({"loaded": sorted(m for m in heavy if m in sys.modules), "out": out.getvalue()}))
"""
POLICIES = Path(__file__).parents[2] / "policies"


def _loaded(*argv: str) -> tuple[list[str], str]:
    """Run the CLI in a fresh interpreter; the heavy modules it imported and its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv)],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "", "NO_COLOR": "1"},
    )
    result = json.loads(done.stdout.splitlines()[-1])
    return result["loaded"], result["out"]


def test_help_loads_no_aws_sdk_no_yaml_and_no_pydantic() -> None:
    """`sg-reconciler --help` (and a command's --help) imports none of the heavy modules."""
    for argv in (["--help"], ["apply", "--help"], ["import", "--help"]):
        loaded, out = _loaded(*argv)
        assert loaded == [], argv
        assert out.startswith("usage: sg-reconciler"), argv


def test_validate_loads_no_aws_sdk() -> None:
    """`validate` reads the policy files without importing boto3, botocore or the service."""
    loaded, out = _loaded("validate", "--policies", str(POLICIES))
    assert out.startswith("OK: ")
    assert "boto3" not in loaded
    assert "botocore" not in loaded
    assert "reconciler.service" not in loaded
