"""Helpers for deploy tests: a small stand-in package, a deploy call, CloudTrail samples."""

from __future__ import annotations

import copy
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from reconciler.deploy.stack import DeployRequest, DeployResult, Polling, deploy_stack

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "deploy" / "template.yaml"
EVENTS = REPO / "tests" / "events"
WHEEL_CACHE = REPO / ".sg-reconciler" / "wheel-cache"

VALID_POLICY = """\
groups:
  - name: web-prod
    match:
      tags: {Name: prod-sg}
    ingress:
      - protocol: tcp
        ports: 443
        from: [0.0.0.0/0, "::/0"]
        description: public HTTPS
"""


def handled_event_names(pattern: dict[str, Any]) -> set[str]:
    """Every eventName a CloudTrail rule's pattern lets through (its branches joined)."""
    return {name for branch in pattern["detail"]["$or"] for name in branch["eventName"]}


def stand_in_package(path: Path, marker: str = "1") -> Path:
    """A small deterministic zip: deploy tests only need bytes to upload, not the real code."""
    with zipfile.ZipFile(path, "w") as archive:
        info = zipfile.ZipInfo("reconciler/__init__.py", date_time=(1980, 1, 1, 0, 0, 0))
        archive.writestr(info, f"# stand-in package {marker}\n")
    return path


@dataclass(frozen=True)
class Deployed:
    """A deploy_stack result and what it printed."""

    result: DeployResult
    printed: str


def deploy(
    session: boto3.Session,
    zip_path: Path,
    *,
    stack_name: str = "sg-reconciler",
    bucket: str | None = None,
    dry_run: bool = False,
    template_path: Path = TEMPLATE,
    **parameters: str,
) -> Deployed:
    """Run deploy_stack against the session's (moto) account and region."""
    out = io.StringIO()
    request = DeployRequest(
        stack_name=stack_name,
        region=session.region_name,
        zip_path=zip_path,
        parameters=parameters,
        bucket=bucket,
        dry_run=dry_run,
        template=template_path,
    )
    result = deploy_stack(request, session=session, out=out, polling=Polling(poll_seconds=0.01))
    return Deployed(result, out.getvalue())


def load_sample(name: str) -> dict[str, Any]:
    """A JSON event from tests/events by file name (without .json)."""
    loaded: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))
    return loaded


def cloudtrail_record(name: str) -> dict[str, Any]:
    """The CloudTrail record of a sample, whether it is raw or inside an EventBridge envelope."""
    sample = load_sample(name)
    record: dict[str, Any] = sample["detail"] if "detail-type" in sample else sample
    return copy.deepcopy(record)


def session_issuer_arn(record: dict[str, Any]) -> str | None:
    """userIdentity.sessionContext.sessionIssuer.arn of a record, None when absent."""
    context = record.get("userIdentity", {}).get("sessionContext") or {}
    arn = (context.get("sessionIssuer") or {}).get("arn")
    return str(arn) if arn is not None else None
