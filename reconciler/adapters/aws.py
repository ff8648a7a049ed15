"""boto3 clients, created once per region and service, with retries and our user agent."""

from __future__ import annotations

__all__ = ["RATE_LIMITS_ENV", "AwsClients"]

import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from reconciler import __version__

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_organizations import OrganizationsClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sts import STSClient


# e.g. "describe=100/20,sg_ingress=50/5,mutating=50/5" (burst/per second; AWS's defaults)
RATE_LIMITS_ENV = "SG_RECONCILER_RATE_LIMITS"


class AwsClients:
    """Lazily created clients from one session; the endpoint (moto, LocalStack) applies to all."""

    def __init__(
        self,
        session: boto3.Session,
        endpoint_url: str | None = None,
        *,
        rates: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        self.session = session
        self.endpoint_url = endpoint_url
        self._clients: dict[tuple[str, str], Any] = {}
        if rates is None:
            from reconciler.adapters.throttle import parse_rates  # noqa: PLC0415

            rates = parse_rates(os.environ.get(RATE_LIMITS_ENV, ""))
        self._rates = rates
        self._lock = threading.Lock()

    def _client(self, service: str, region: str | None) -> Any:
        key = (service, region or "")
        with self._lock:  # parallel region sweeps share this cache
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = self._new_client(service, region)
        return client

    def _new_client(self, service: str, region: str | None) -> Any:
        from botocore.config import Config  # noqa: PLC0415 - keeps import time low

        config = Config(
            # Standard mode retries throttling with jittered backoff; the token buckets
            # below keep us from provoking it in the first place.
            retries={"mode": "standard", "max_attempts": 8},
            user_agent_extra=f"sg-reconciler/{__version__}",
            max_pool_connections=16,
        )
        client = self.session.client(
            service,  # type: ignore[call-overload]
            region_name=region,
            endpoint_url=self.endpoint_url,
            config=config,
        )
        if service == "ec2":
            # One set of token buckets per account and region, as EC2 throttles.
            from reconciler.adapters.throttle import ApiRateLimiter  # noqa: PLC0415

            ApiRateLimiter(self._rates).attach(client)
        return client

    @property
    def rates(self) -> Mapping[str, tuple[float, float]]:
        """The EC2 token-bucket rates (clients in other accounts get the same)."""
        return self._rates

    def ec2(self, region: str) -> EC2Client:
        """The EC2 client of a region."""
        client: EC2Client = self._client("ec2", region)
        return client

    def s3(self, region: str | None) -> S3Client:
        """The S3 client of a region (the journal bucket's)."""
        client: S3Client = self._client("s3", region)
        return client

    def caller_arn(self, region: str | None) -> str | None:
        """The ARN of whoever these credentials are (STS GetCallerIdentity); None if unknown."""
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            arn: str = self.sts(region).get_caller_identity()["Arn"]
        except (ClientError, BotoCoreError):
            return None
        return arn

    def sns(self, region: str | None) -> SNSClient:
        """The SNS client of a region."""
        client: SNSClient = self._client("sns", region)
        return client

    def sts(self, region: str | None) -> STSClient:
        """The STS client of a region."""
        client: STSClient = self._client("sts", region)
        return client

    def organizations(self) -> OrganizationsClient:
        """The Organizations client (a global service, served from us-east-1 in ``aws``)."""
        client: OrganizationsClient = self._client("organizations", "us-east-1")
        return client
