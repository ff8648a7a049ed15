"""moto-backed fixtures for integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.world import REGION, World


@pytest.fixture
def aws() -> Iterator[None]:
    """An in-process moto account for the duration of the test."""
    with mock_aws():
        yield


@pytest.fixture
def session(aws: None) -> boto3.Session:
    """A boto3 session inside the moto account."""
    return boto3.Session(region_name=REGION)


@pytest.fixture
def ec2(session: boto3.Session) -> Any:
    """An EC2 client for test set-up (not counted)."""
    return session.client("ec2")


@pytest.fixture
def world(ec2: Any) -> World:
    """A VPC to build groups in."""
    return World.create(ec2)
