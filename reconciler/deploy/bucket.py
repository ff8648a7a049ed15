"""The S3 side of a deploy: the package's bucket and its content-addressed key.

The package goes to S3 under its sha256, so an unchanged package is neither uploaded again nor
seen by CloudFormation as a change.
"""

from __future__ import annotations

__all__ = [
    "PACKAGE_PREFIX",
    "bucket_exists",
    "create_bucket",
    "default_bucket_name",
    "object_exists",
    "package_key",
]

import hashlib
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PACKAGE_PREFIX = "sg-reconciler/"


def default_bucket_name(account_id: str, region: str) -> str:
    """The bucket deploy creates when none is given: one per account and region."""
    return f"sg-reconciler-{account_id}-{region}"


def package_key(zip_bytes: bytes) -> str:
    """Content-addressed S3 key of a package: the same bytes always map to the same key."""
    return f"{PACKAGE_PREFIX}{hashlib.sha256(zip_bytes).hexdigest()}.zip"


def _status_code(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def bucket_exists(s3: S3Client, bucket: str) -> bool:
    """True when ``bucket`` exists (and is ours to read); other errors are raised."""
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if _status_code(exc) == 404 or _error_code(exc) in {"404", "NoSuchBucket"}:
            return False
        raise
    return True


def create_bucket(s3: S3Client, bucket: str, region: str) -> None:
    """A private, versioned, encrypted bucket for packages."""
    if region == "us-east-1":  # the one region that refuses a LocationConstraint
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(
            Bucket=bucket,
            CreateBucketConfiguration={"LocationConstraint": region},  # type: ignore[typeddict-item]
        )
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )


def object_exists(s3: S3Client, bucket: str, key: str) -> bool:
    """True when ``key`` is already in ``bucket``; other errors are raised."""
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if _status_code(exc) == 404 or _error_code(exc) in {"404", "NoSuchKey", "NotFound"}:
            return False
        raise
    return True
