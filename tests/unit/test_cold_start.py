"""The Lambda entry point loads only what the event path needs."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
from reconciler.lambda_handler import handler
heavy = ("boto3", "botocore", "yaml", "pydantic", "pydantic_core", "reconciler.responder")
at_import = sorted(m for m in heavy if m in sys.modules)
summary = handler({"source": "aws.s3", "detail-type": "Object Created", "detail": {}}, None)
after_ignored = sorted(m for m in heavy if m in sys.modules)
print(json.dumps({"at_import": at_import, "after_ignored": after_ignored, "summary": summary}))
"""


def test_import_and_an_ignored_event_load_neither_boto3_nor_the_policies() -> None:
    """Importing the handler and skipping an unrelated event imports no boto3, yaml or pydantic."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "", "AWS_REGION": "us-east-1", "NO_COLOR": "1"},
    )
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["at_import"] == []
    assert result["after_ignored"] == []
    assert result["summary"]["skipped_reason"] == "other_source:aws.s3"
