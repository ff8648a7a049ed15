"""Template values as CloudFormation resolves them: the role's policies, the function's settings.

``load_template`` keeps intrinsic functions in their long form; this resolves the ones the
template uses (Ref, Fn::Sub, Fn::If, Fn::Split, Fn::Join, Fn::GetAtt) for one account, region
and set of parameters, the way CloudFormation does, so that a test can give a principal exactly
the policies the deployed role would get, or compare a live resource with its template. A
resource's Ref or attribute is its live value when the context has it (a deployed stack), a
``<Logical>``/``<Logical.Attribute>`` stand-in otherwise. Anything else raises: a new intrinsic
in the template must be taught here rather than silently passed through.
"""

from __future__ import annotations

__all__ = ["StackContext", "ec2_role_policies", "resolve"]

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.deploy.template import template_parameter_defaults

_SUB_VARIABLE = re.compile(r"\$\{(!?)([^}]+)\}")
_NO_VALUE = object()  # AWS::NoValue: the property is removed


@dataclass(frozen=True)
class StackContext:
    """Where the stack is deployed and with which parameters (template defaults otherwise)."""

    template: Mapping[str, Any]
    account_id: str
    region: str
    partition: str = "aws"
    stack_name: str = "sg-reconciler"
    parameters: Mapping[str, str] = field(default_factory=dict)
    physical_ids: Mapping[str, str] = field(default_factory=dict)  # Ref of a resource
    attributes: Mapping[str, str] = field(default_factory=dict)  # "Logical.Attribute"

    def ref(self, name: str) -> Any:
        """The value of ``Ref name``: a pseudo parameter, a parameter, or a resource's id."""
        pseudo = {
            "AWS::AccountId": self.account_id,
            "AWS::Region": self.region,
            "AWS::Partition": self.partition,
            "AWS::StackName": self.stack_name,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": _NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        defaults = template_parameter_defaults(self.template)
        if name in defaults:
            value = defaults[name]
            if value is None:
                raise KeyError(f"parameter {name} has no default and was not given")
            return value
        if name in self.template["Resources"]:
            # A resource's physical id is only known once it exists; a stand-in keeps the
            # value recognisable. EC2 statements reference no resource of the stack.
            return self.physical_ids.get(name, f"<{name}>")
        raise KeyError(f"Ref to unknown name {name}")

    def get_att(self, logical: str, attribute: str) -> str:
        """The value of ``Fn::GetAtt [logical, attribute]``."""
        if logical not in self.template["Resources"]:
            raise KeyError(f"Fn::GetAtt of unknown resource {logical}")
        name = f"{logical}.{attribute}"
        return self.attributes.get(name, f"<{name}>")

    def condition(self, name: str) -> bool:
        """A named condition of the template, evaluated."""
        return self.holds(self.template["Conditions"][name])

    def holds(self, node: Any) -> bool:
        """A condition function (Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition)."""
        if not isinstance(node, Mapping) or len(node) != 1:
            raise ValueError(f"not a condition: {node!r}")
        ((function, args),) = node.items()
        if function == "Condition":
            return self.condition(args)
        if function == "Fn::Equals":
            left, right = (resolve(a, self) for a in args)
            return str(left) == str(right)
        if function == "Fn::Not":
            return not self.holds(args[0])
        if function == "Fn::And":
            return all(self.holds(a) for a in args)
        if function == "Fn::Or":
            return any(self.holds(a) for a in args)
        raise ValueError(f"condition function {function} is not supported here")


def _sub(text: str, variables: Mapping[str, Any], context: StackContext) -> str:
    def replace(match: re.Match[str]) -> str:
        literal, name = match[1], match[2]
        if literal:  # ${!Name} is the literal text ${Name}
            return "${" + name + "}"
        if name in variables:
            return str(variables[name])
        if "." in name:
            return context.get_att(*name.split(".", 1))
        return str(context.ref(name))

    return _SUB_VARIABLE.sub(replace, text)


def resolve(node: Any, context: StackContext) -> Any:
    """``node`` with every intrinsic function replaced by its value in ``context``."""
    if isinstance(node, list):
        return [v for v in (resolve(item, context) for item in node) if v is not _NO_VALUE]
    if not isinstance(node, Mapping):
        return node
    if len(node) == 1:
        ((function, args),) = node.items()
        if function == "Ref":
            return context.ref(args)
        if function == "Fn::GetAtt":
            logical, attribute = args
            return context.get_att(logical, attribute)
        if function == "Fn::If":
            name, when_true, when_false = args
            return resolve(when_true if context.condition(name) else when_false, context)
        if function == "Fn::Sub":
            text, variables = (args, {}) if isinstance(args, str) else args
            resolved = {k: resolve(v, context) for k, v in variables.items()}
            return _sub(text, resolved, context)
        if function == "Fn::Split":
            delimiter, source = args
            return str(resolve(source, context)).split(delimiter)
        if function == "Fn::Join":
            delimiter, values = args
            return delimiter.join(str(v) for v in resolve(values, context))
        if function.startswith("Fn::"):
            raise ValueError(f"{function} is not supported here")
    resolved = {k: resolve(v, context) for k, v in node.items()}
    return {k: v for k, v in resolved.items() if v is not _NO_VALUE}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def ec2_role_policies(context: StackContext, role: str = "ReconcilerRole") -> dict[str, Any]:
    """The role's inline policies that allow ec2: actions, resolved, by policy name.

    A document written as a JSON string (Fn::Sub over JSON, for parameterised condition keys)
    is parsed, as IAM does. Policies granting anything but ec2: actions are left out; a policy
    mixing ec2: and other actions is an error, so "exactly the EC2 statements" stays exact.
    """
    policies: dict[str, Any] = {}
    inline = list(context.template["Resources"][role]["Properties"]["Policies"])
    # Policy resources attached to the role (e.g. restore-missing), when their Condition holds.
    for resource in context.template["Resources"].values():
        properties = resource.get("Properties", {})
        attached = {"Ref": role} in properties.get("Roles", []) or (
            properties.get("RoleName") == {"Ref": role}
        )
        kind = resource["Type"] in {"AWS::IAM::Policy", "AWS::IAM::RolePolicy"}
        holds = "Condition" not in resource or context.condition(resource["Condition"])
        if kind and attached and holds:
            inline.append(properties)
    for policy in inline:
        document = resolve(policy["PolicyDocument"], context)
        if isinstance(document, str):
            document = json.loads(document)
        actions = {a for s in document["Statement"] for a in _as_list(s["Action"])}
        ec2 = {a for a in actions if a.startswith("ec2:")}
        if not ec2:
            continue
        if ec2 != actions:
            raise ValueError(f"policy {policy['PolicyName']} mixes ec2: and other actions")
        policies[policy["PolicyName"]] = document
    return policies
