"""The CloudFormation template: parsing it, its parameters, and the EC2 actions its role allows.

The template ships in the package (see ``reconciler.resources``); every function here takes a
``Traversable`` (a ``pathlib.Path`` is one), so a template given on disk works the same.
"""

from __future__ import annotations

__all__ = [
    "TEMPLATE_BODY_LIMIT",
    "load_template",
    "policy_documents",
    "template_ec2_actions",
    "template_parameter_defaults",
]

import json
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import yaml

from reconciler.resources import deploy_template

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

TEMPLATE_BODY_LIMIT = 51_200  # bytes CloudFormation accepts inline; larger needs TemplateURL


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation's short-form tags (!Ref, !Sub, ...) as long forms."""


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    name = tag_suffix if tag_suffix in {"Ref", "Condition"} else f"Fn::{tag_suffix}"
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Traversable | None = None) -> dict[str, Any]:
    """Parse a CloudFormation YAML template (default: the shipped stack), intrinsics long-form."""
    source = path if path is not None else deploy_template()
    loaded = yaml.load(source.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(loaded, dict) or not isinstance(loaded.get("Resources"), dict):
        raise ValueError(f"{source}: not a CloudFormation template (no Resources mapping)")
    return loaded


def template_parameter_defaults(template: Mapping[str, Any]) -> dict[str, str | None]:
    """Each template parameter and its default as a string (None when it has no default)."""
    params: Mapping[str, Mapping[str, Any]] = template.get("Parameters", {})
    return {
        name: None if "Default" not in spec else str(spec["Default"])
        for name, spec in params.items()
    }


_SUB_VARIABLE = re.compile(r"\$\{[^}!]+\}")


def policy_documents(node: Any) -> Iterator[Mapping[str, Any]]:
    """Every policy document a template value can become (both branches of an Fn::If).

    A document may be a JSON string built with Fn::Sub (the only way to put a parameter in a
    condition key); its ${...} variables are replaced by a placeholder before parsing.
    """
    if isinstance(node, str):
        yield json.loads(_SUB_VARIABLE.sub("x", node))
    elif isinstance(node, Mapping) and "Fn::If" in node:
        _condition, when_true, when_false = node["Fn::If"]
        yield from policy_documents(when_true)
        yield from policy_documents(when_false)
    elif isinstance(node, Mapping) and "Fn::Sub" in node:
        sub = node["Fn::Sub"]
        yield from policy_documents(sub[0] if isinstance(sub, list) else sub)
    elif isinstance(node, Mapping) and "Statement" in node:
        yield node


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


class _Conditions:
    """The template's conditions, evaluated for one set of parameter values."""

    def __init__(self, template: Mapping[str, Any], parameters: Mapping[str, str] | None) -> None:
        defaults = template_parameter_defaults(template)
        self._values = {name: value or "" for name, value in defaults.items()}
        self._values.update(parameters or {})
        self._declared: Mapping[str, Any] = template.get("Conditions", {})
        self._cache: dict[str, bool] = {}

    def __call__(self, name: str) -> bool:
        if name not in self._cache:
            self._cache[name] = self._holds(self._declared[name])
        return self._cache[name]

    def _holds(self, node: Any) -> bool:
        ((function, args),) = node.items()
        if function == "Condition":
            return self(args)
        if function == "Fn::Equals":
            return str(self._value(args[0])) == str(self._value(args[1]))
        if function == "Fn::Not":
            return not self._holds(args[0])
        if function == "Fn::And":
            return all(self._holds(a) for a in args)
        if function == "Fn::Or":
            return any(self._holds(a) for a in args)
        raise ValueError(f"condition function {function} is not supported here")

    def _value(self, node: Any) -> Any:
        if isinstance(node, Mapping) and "Ref" in node:
            return self._values[node["Ref"]]  # KeyError: teach this a pseudo parameter
        return node

    def chosen(self, node: Any) -> Any:
        """The branch of (nested) Fn::If that holds; None for AWS::NoValue."""
        while isinstance(node, Mapping) and "Fn::If" in node:
            name, when_true, when_false = node["Fn::If"]
            node = when_true if self(name) else when_false
        return None if node == {"Ref": "AWS::NoValue"} else node


_POLICY_RESOURCES = frozenset(
    {"AWS::IAM::Policy", "AWS::IAM::RolePolicy", "AWS::IAM::ManagedPolicy"}
)


def template_ec2_actions(
    template_path: Traversable | None = None, parameters: Mapping[str, str] | None = None
) -> frozenset[str]:
    """The ec2: actions the template's IAM policies allow once deployed with ``parameters``.

    Conditions are evaluated with the template's parameter defaults, overridden by
    ``parameters``: a role's inline policies (their Fn::If branch that holds) and the policy
    resources whose Condition holds. The template defaults to the shipped stack.
    """
    template = load_template(template_path)
    conditions = _Conditions(template, parameters)
    documents: list[Any] = []
    for resource in template["Resources"].values():
        if "Condition" in resource and not conditions(resource["Condition"]):
            continue
        properties = resource.get("Properties", {})
        if resource.get("Type") == "AWS::IAM::Role":
            policies = map(conditions.chosen, properties.get("Policies", []))
            documents.extend(conditions.chosen(p["PolicyDocument"]) for p in policies if p)
        elif resource.get("Type") in _POLICY_RESOURCES:
            documents.append(conditions.chosen(properties["PolicyDocument"]))
    actions: set[str] = set()
    for document in (d for node in documents for d in policy_documents(node)):
        for statement in _as_list(document["Statement"]):
            if statement.get("Effect") != "Allow":
                continue
            actions.update(a for a in _as_list(statement.get("Action", [])) if a.startswith("ec2:"))
    return frozenset(actions)
