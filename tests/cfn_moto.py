"""moto's CloudFormation brought in line with AWS's documented behaviour, for deploy tests.

The deploy code is written to AWS's documentation. Where moto (5.x) behaves differently, the
difference is named here, with what AWS does, so that no test has to accept moto's behaviour as
the contract:

- Resources moto cannot create (``MOTO_UNSUPPORTED``) are skipped with a UserWarning; AWS creates
  them. Tests check those resources in the template instead (tests/integration/test_template.py).
- Executing a change set does not refresh the stack's Outputs in moto (they stay those of the
  empty stack a CREATE change set starts from) and does not record the change set's parameters
  as the stack's; AWS does both. ``aws_like_change_sets`` patches moto's backend to do the same.
- Executing a change set leaves it listed in moto; AWS deletes a stack's change sets once one
  of them has been executed (``aws_like_change_sets`` does the same).
- Inline policies of a role created by CloudFormation come back from GetRolePolicy as the
  Python repr of a dict in moto, not as the JSON document AWS returns (``role_policy``).
- moto offers every PutEvents event to rules without an event pattern, such as schedule rules;
  AWS fires those only on their schedule.
- moto ignores ``Architectures`` and ``LoggingConfig`` of AWS::Lambda::Function (the live
  function is x86_64); a change set lists resources whose Condition is false; and a resource that
  fails to create raises during ExecuteChangeSet instead of rolling the stack back with a reason
  in its events.
"""

from __future__ import annotations

__all__ = [
    "MOTO_UNSUPPORTED",
    "aws_like_change_sets",
    "ignore_unsupported_resources",
    "role_policy",
]

import ast
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
from moto.cloudformation.models import CloudFormationBackend

MOTO_UNSUPPORTED = frozenset(
    {
        "AWS::CloudTrail::Trail",
        "AWS::CloudWatch::Alarm",
        "AWS::Lambda::EventInvokeConfig",
        "AWS::S3::BucketPolicy",
        "AWS::SNS::Subscription",
        "AWS::SQS::QueuePolicy",
    }
)

ignore_unsupported_resources = pytest.mark.filterwarnings(
    "ignore:Tried to parse .* but it's not supported by moto's CloudFormation:UserWarning"
)


@contextmanager
def aws_like_change_sets() -> Iterator[None]:
    """Within the block, executing a change set refreshes Outputs and parameters, as on AWS."""
    execute = CloudFormationBackend.execute_change_set

    def execute_like_aws(
        self: CloudFormationBackend, change_set_name: str, stack_name: str | None = None
    ) -> Any:
        change_set = self.describe_change_set(change_set_name)
        result = execute(self, change_set_name, stack_name)
        stack = self.stacks[change_set.stack_id]
        stack.parameters = dict(change_set.parameters)
        stack._parse_template()
        stack.output_map = stack._create_output_map()
        for change_set_id in [
            k for k, v in self.change_sets.items() if v.stack_id == stack.stack_id
        ]:
            del self.change_sets[change_set_id]
        return result

    with mock.patch.object(CloudFormationBackend, "execute_change_set", execute_like_aws):
        yield


def role_policy(iam: Any, role_name: str, policy_name: str) -> dict[str, Any]:
    """An inline role policy as the dict boto3 gives for AWS's JSON document."""
    document = iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)["PolicyDocument"]
    if isinstance(document, dict):
        return document
    try:
        parsed: dict[str, Any] = json.loads(document)
    except json.JSONDecodeError:
        parsed = ast.literal_eval(document)  # moto: str() of the template's dict
    return parsed
