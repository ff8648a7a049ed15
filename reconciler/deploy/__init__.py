"""Packaging the Lambda zip and deploying the CloudFormation stack (the shipped template)."""

from __future__ import annotations

__all__ = [
    "DeployOutcome",
    "DeployRequest",
    "DeployResult",
    "PackageResult",
    "build_package",
    "deploy_stack",
    "template_ec2_actions",
]

from reconciler.deploy.package import PackageResult, build_package
from reconciler.deploy.stack import DeployOutcome, DeployRequest, DeployResult, deploy_stack
from reconciler.deploy.template import template_ec2_actions
