"""moto-backed fixtures for integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.fake_ec2 import FakeEC2, serving
from tests.world import REGION, World


@pytest.fixture
def aws(request: pytest.FixtureRequest) -> Iterator[None]:
    """An in-process moto account for the duration of the test.

    A test marked ``fake_ec2`` gets the in-memory EC2 of tests/fake_ec2.py instead of moto's
    (its other services stay moto's): decisions are tested there, moto's EC2 for the adapters.
    """
    with mock_aws():
        if request.node.get_closest_marker("fake_ec2") is None:
            yield
        else:
            with serving(FakeEC2()):
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


@pytest.fixture
def inbox(aws: None) -> tuple[str, str]:
    """An SNS topic and the SQS queue subscribed to it: (topic ARN, queue URL)."""
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic = sns.create_topic(Name="sg-reconciler")["TopicArn"]
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return topic, queue
