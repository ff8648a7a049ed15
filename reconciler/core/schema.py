"""The JSON Schema of a policy file, generated from the pydantic models (pure).

``sg-reconciler schema`` prints it; ``schema/policy.schema.json`` is that output, committed
for editors (``# yaml-language-server: $schema=../schema/policy.schema.json``) and checked
against the models by a test.
"""

from __future__ import annotations

__all__ = ["SCHEMA_ID", "policy_schema"]

from typing import Any

from reconciler.core.policy import PolicyFile

SCHEMA_ID = "urn:sg-reconciler:schema:policy-file"
_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def policy_schema() -> dict[str, Any]:
    """The schema of one ``policies/*.yaml`` file: keys as written (``from``, not ``from_``).

    It describes what a person may write (``ports: 443`` or ``"8000-8100"``, one peer or a
    list, ``egress: unmanaged`` or rules); ``validate`` checks more (CIDRs, ranges, names
    unique across files).
    """
    generated = PolicyFile.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": _DIALECT,
        "$id": SCHEMA_ID,
        **generated,
        "title": "sg-reconciler policy file",
    }
