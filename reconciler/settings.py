"""Configuration of the Lambda, read once per container from its environment."""

from __future__ import annotations

__all__ = ["DEFAULT_POLICY_DIR", "Settings"]

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

# In the deployment zip the policies sit beside the package: /var/task/policies.
DEFAULT_POLICY_DIR = Path(__file__).resolve().parent.parent / "policies"


def _csv(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


Csv = Annotated[tuple[str, ...], BeforeValidator(_csv)]


class Settings(BaseModel):
    """``SG_RECONCILER_*`` environment variables, validated.

    SG_RECONCILER_POLICIES            policy directory (default: policies/ in the package)
    SG_RECONCILER_MODE                enforce (default) | report (never writes)
    SG_RECONCILER_REGIONS             comma-separated (default: the function's region)
    SG_RECONCILER_TOPIC_ARN           SNS topic for notifications (optional)
    SG_RECONCILER_IGNORE_PRINCIPALS   comma-separated ARNs whose calls are never acted on
    SG_RECONCILER_ROLE_ARN            the function's own role: its calls are never acted on
                                      (default: asked of STS once per container)
    SG_RECONCILER_JOURNAL_BUCKET      S3 bucket for one journal object per run (default: log only)
    SG_RECONCILER_JOURNAL_PREFIX      key prefix in that bucket (default: journal)
    SG_RECONCILER_ACCOUNTS            accounts file: reconcile member accounts through their role
                                      (a hub); its regions replace SG_RECONCILER_REGIONS
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    policies: Path = DEFAULT_POLICY_DIR
    mode: Literal["enforce", "report"] = "enforce"
    regions: Csv = Field(min_length=1)
    topic_arn: str | None = None
    ignore_principals: Csv = ()
    role_arn: str | None = Field(default=None, pattern=r"^arn:aws[\w-]*:iam::\d{12}:role/\S+$")
    endpoint_url: str | None = None
    journal_bucket: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    journal_prefix: str = "journal"
    accounts: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Read the settings; raises ValueError with one line per bad variable."""
        region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or ""
        raw: dict[str, object] = {
            "regions": environ.get("SG_RECONCILER_REGIONS") or region,
            "mode": (environ.get("SG_RECONCILER_MODE") or "enforce").strip().lower(),
            "topic_arn": environ.get("SG_RECONCILER_TOPIC_ARN") or None,
            "ignore_principals": environ.get("SG_RECONCILER_IGNORE_PRINCIPALS", ""),
            "role_arn": environ.get("SG_RECONCILER_ROLE_ARN") or None,
            "endpoint_url": environ.get("AWS_ENDPOINT_URL") or None,
            "journal_bucket": environ.get("SG_RECONCILER_JOURNAL_BUCKET") or None,
            "journal_prefix": (environ.get("SG_RECONCILER_JOURNAL_PREFIX") or "journal").strip("/"),
        }
        if environ.get("SG_RECONCILER_POLICIES"):
            raw["policies"] = environ["SG_RECONCILER_POLICIES"]
        if environ.get("SG_RECONCILER_ACCOUNTS"):
            raw["accounts"] = environ["SG_RECONCILER_ACCOUNTS"]
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            names = {
                "regions": "SG_RECONCILER_REGIONS (or AWS_REGION)",
                "mode": "SG_RECONCILER_MODE",
                "policies": "SG_RECONCILER_POLICIES",
                "journal_bucket": "SG_RECONCILER_JOURNAL_BUCKET",
                "accounts": "SG_RECONCILER_ACCOUNTS",
                "role_arn": "SG_RECONCILER_ROLE_ARN",
            }
            lines = [
                f"{names.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}" for e in exc.errors()
            ]
            raise ValueError("; ".join(lines)) from None
