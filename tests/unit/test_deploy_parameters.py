"""The stack parameters `deploy` derives from its options and the baseline (pure functions)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.adapters.policy_files import load_policies
from reconciler.core.policy import Baseline
from reconciler.deploy.parameters import (
    ParameterError,
    StackOptions,
    restore_parameters,
    stack_parameters,
)

TAGGED = """
groups:
  - name: web
    match: {tags: {team: web, env: prod}}
    ingress:
      - {protocol: tcp, ports: 443, from: [0.0.0.0/0]}
  - name: app
    match: {tags: {team: app, env: prod}}
    restore_missing: true
    ingress:
      - {protocol: tcp, ports: 8080, from: [10.0.0.0/8]}
"""


def _baseline(policies: Path, text: str) -> Baseline:
    (policies / "p.yaml").write_text(text, encoding="utf-8")
    return load_policies(policies)


def test_options_given_become_parameters_and_a_shared_tag_limits_the_role(
    policies: Path,
) -> None:
    """Only the options given are set; the tag every policy selects by is ManagedTagKey/Value."""
    options = StackOptions(mode="report", ignore_principals=("arn:a", "arn:b"), create_trail=True)
    assert stack_parameters(options, _baseline(policies, TAGGED)) == {
        "Architecture": "arm64",
        "Mode": "report",
        "IgnorePrincipals": "arn:a,arn:b",
        "CreateTrail": "true",
        "ManagedTagKey": "env",
        "ManagedTagValue": "prod",
        "MemberRoleName": "",
        "RestoreTagKey": "env",
        "RestoreTagValue": "prod",
    }


def test_restoring_policies_without_a_shared_tag_are_a_parameter_error(policies: Path) -> None:
    """restore_missing policies that share no match tag cannot be granted Authorize: one error."""
    text = TAGGED.replace("match: {tags: {team: web, env: prod}}", "match: {tags: {team: web}}")
    text = text.replace(
        "    ingress:\n      - {protocol: tcp, ports: 443",
        ("    restore_missing: true\n    ingress:\n      - {protocol: tcp, ports: 443"),
    )
    with pytest.raises(ParameterError) as raised:
        restore_parameters(_baseline(policies, text))
    assert str(raised.value).startswith(
        "restore_missing: policies web, app share no tag in match.tags"
    )
