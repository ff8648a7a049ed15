"""Packaging the Lambda zip and deploying the CloudFormation stack (deploy/template.yaml)."""

from __future__ import annotations

__all__ = [
    "DeployOutcome",
    "DeployResult",
    "PackageResult",
    "build_package",
    "deploy_stack",
    "template_ec2_actions",
]

from reconciler.deploy.package import PackageResult, build_package
from reconciler.deploy.stack import DeployOutcome, DeployResult, deploy_stack, template_ec2_actions
