"""The policy file's JSON Schema (committed, generated from the models) and the pre-commit hook."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from reconciler.cli import main
from reconciler.core.schema import policy_schema

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "schema" / "policy.schema.json"
EXAMPLE = REPO / "policies" / "example.yaml"


def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(COMMITTED.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _doc(**group: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "web",
        "match": {"tags": {"Name": "web"}},
        "ingress": [{"protocol": "tcp", "ports": 443, "from": "0.0.0.0/0"}],
    }
    return {"groups": [base | group]}


def test_committed_schema_is_what_the_models_generate(capsys: pytest.CaptureFixture[str]) -> None:
    """schema/policy.schema.json equals `sg-reconciler schema`, so CI catches model drift."""
    assert main(["schema"]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed) == policy_schema()
    assert COMMITTED.read_text(encoding="utf-8") == printed, (
        "schema/policy.schema.json is out of date with the policy models; regenerate it with"
        " `sg-reconciler schema > schema/policy.schema.json` and commit it"
    )


def test_schema_names_keys_as_written_in_yaml() -> None:
    """The schema has its dialect and id, ``from`` (not ``from_``), and egress's two forms."""
    schema = policy_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "urn:sg-reconciler:schema:policy-file"
    assert schema["title"] == "sg-reconciler policy file"
    ingress = schema["$defs"]["IngressRule"]
    assert "from" in ingress["properties"]
    assert "from" in ingress["required"]
    assert "from_" not in json.dumps(schema)
    egress = schema["$defs"]["GroupPolicy"]["properties"]["egress"]["anyOf"]
    assert {"const": "unmanaged", "type": "string"} in egress
    assert {"items": {"$ref": "#/$defs/EgressRule"}, "type": "array"} in egress


def test_example_policy_points_at_the_schema_and_is_valid_under_it() -> None:
    """policies/example.yaml starts with the yaml-language-server line and validates."""
    text = EXAMPLE.read_text(encoding="utf-8")
    assert text.splitlines()[0] == "# yaml-language-server: $schema=../schema/policy.schema.json"
    assert (EXAMPLE.parent / "../schema/policy.schema.json").resolve() == COMMITTED.resolve()
    assert list(_validator().iter_errors(yaml.safe_load(text))) == []


@pytest.mark.parametrize(
    "document",
    [
        _doc(egress="unmanaged"),
        _doc(egress=[{"protocol": "all", "to": ["0.0.0.0/0", "::/0"]}]),
        _doc(ingress=[{"protocol": -1, "from": "10.0.0.0/8"}]),
        _doc(
            ingress=[
                {"protocol": "TCP", "ports": ["80", "8000-8100", "all"], "from": "pl-12345678"}
            ]
        ),
        _doc(ingress=[{"protocol": "icmp", "icmp_type": 8, "icmp_code": 0, "from": "::/0"}]),
        _doc(match={"group_ids": ["sg-0123456789abcdef0"]}, on_drift="report"),
    ],
)
def test_schema_accepts_every_documented_shape(document: dict[str, Any]) -> None:
    """Scalars or lists of peers and ports, protocol names or numbers, egress forms pass."""
    assert list(_validator().iter_errors(document)) == []


@pytest.mark.parametrize(
    ("document", "why"),
    [
        ({"groups": []}, "should be non-empty"),
        (_doc(descripton="typo"), "Additional properties are not allowed"),
        (_doc(egress="none"), "is not valid under any of the given schemas"),
        (_doc(on_drift="delete"), "is not one of"),
        (_doc(match={}), "should be non-empty"),
        (_doc(ingress=[{"protocol": "tcp", "ports": 70000, "from": "x"}]), "is not valid under"),
        (_doc(ingress=[{"protocol": "tpc", "ports": 22, "from": "x"}]), "is not valid under"),
        (_doc(ingress=[{"protocol": "tcp", "ports": 22}]), "'from' is a required property"),
        (_doc(name="-web"), "does not match"),
    ],
)
def test_schema_rejects_invalid_documents(document: dict[str, Any], why: str) -> None:
    """Typos, wrong enums, empty selectors, bad ports and protocols fail the schema too."""
    errors = [e.message for e in _validator().iter_errors(document)]
    assert errors
    assert any(why in message for message in errors), errors


def test_pre_commit_hook_runs_validate_on_policy_changes() -> None:
    """.pre-commit-hooks.yaml defines sg-reconciler-validate for policies/*.yaml changes."""
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert [hook["id"] for hook in hooks] == ["sg-reconciler-validate"]
    hook = hooks[0]
    assert hook["entry"] == "sg-reconciler validate"
    assert hook["language"] == "python"
    assert hook["pass_filenames"] is False
    pattern = re.compile(hook["files"])
    assert pattern.search("policies/web.yaml")
    assert pattern.search("policies/app.yml")
    assert not pattern.search("docs/policies.yaml")
    assert not pattern.search("policies/README.md")


def test_example_workflow_validates_then_comments_the_markdown_plan() -> None:
    """docs/github-actions-plan.yml runs validate and plan --output markdown via OIDC on PRs."""
    text = (REPO / "docs" / "github-actions-plan.yml").read_text(encoding="utf-8")
    workflow = yaml.safe_load(text)
    assert workflow[True]["pull_request"]["paths"] == ["policies/**"]  # YAML 1.1 reads `on` so
    assert workflow["permissions"]["id-token"] == "write"
    steps = workflow["jobs"]["plan"]["steps"]
    uses = [step.get("uses", "") for step in steps]
    assert "aws-actions/configure-aws-credentials@v4" in uses
    assert "marocchino/sticky-pull-request-comment@v2" in uses
    runs = "\n".join(step.get("run", "") for step in steps)
    assert "sg-reconciler validate --policies policies" in runs
    assert "--output markdown > plan.md" in runs
