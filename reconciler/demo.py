"""The demo's simulated AWS account (moto, in-process): its groups, the drift, the event.

``sg-reconciler demo`` (``reconciler.cli.cmd_demo``) tells the story; this module only
builds and inspects the world it runs in, so it needs neither the CLI nor a terminal.
"""

from __future__ import annotations

__all__ = [
    "BYSTANDER_DRIFT",
    "DRIFT",
    "REGION",
    "DemoUnavailable",
    "Inbox",
    "World",
    "cloudtrail_event",
    "simulated_account",
    "tag_event",
]

import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reconciler.adapters.ec2 import ip_permission
from reconciler.core.errors import ReconcilerError
from reconciler.core.rules import Direction, RuleKey

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import SecurityGroupRuleTypeDef, TagSpecificationTypeDef

    from reconciler.core.policy import Baseline

REGION = "us-east-1"

# Drift someone might add by hand: (policy, rule, description).
DRIFT: tuple[tuple[str, RuleKey, str], ...] = (
    ("web-prod", RuleKey(Direction.INGRESS, "tcp", 22, 22, "0.0.0.0/0"), "ssh for a minute"),
    ("web-prod", RuleKey(Direction.INGRESS, "all", None, None, "198.51.100.0/24"), "vendor"),
    ("web-prod", RuleKey(Direction.INGRESS, "tcp", 3389, 3389, "::/0"), "rdp over v6"),
    ("app-prod", RuleKey(Direction.INGRESS, "tcp", 22, 22, "10.0.0.0/8"), "debug"),
    ("app-prod", RuleKey(Direction.EGRESS, "tcp", 25, 25, "0.0.0.0/0"), "smtp out"),
)
BYSTANDER_DRIFT = RuleKey(Direction.INGRESS, "tcp", 22, 22, "0.0.0.0/0")
BYSTANDER = "legacy-tools"


class DemoUnavailable(ReconcilerError):
    """The simulated account cannot be had here (moto, the demo extra, is not installed)."""


_FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    # moto would load ~1,300 default AMIs into each EC2 backend; the demo launches no instance
    "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
}


@contextmanager
def simulated_account(env: Mapping[str, str] | None = None) -> Iterator[None]:
    """An in-process moto account with fake credentials; nothing leaves this process.

    ``env`` is set too for as long as the account lives (e.g. the handler's settings);
    every variable is put back as it was afterwards.
    """
    try:
        from moto import mock_aws  # noqa: PLC0415 - a dev/demo dependency only
    except ImportError as exc:
        raise DemoUnavailable("the demo needs moto: pip install 'sg-reconciler[demo]'") from exc
    changes = {**_FAKE_ENV, **(env or {})}
    saved = {k: os.environ.get(k) for k in [*changes, "AWS_ENDPOINT_URL"]}
    os.environ.update(changes)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    try:
        with mock_aws():
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _authorize(ec2: EC2Client, group_id: str, key: RuleKey, description: str | None) -> str:
    """Add one rule and return its rule id."""
    perm: Any = ip_permission(key, description)
    if key.direction is Direction.INGRESS:
        added = ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[perm])
    else:
        added = ec2.authorize_security_group_egress(GroupId=group_id, IpPermissions=[perm])
    return added["SecurityGroupRules"][0]["SecurityGroupRuleId"]


@dataclass(frozen=True, slots=True)
class World:
    """The simulated account's groups: policy name (and ``legacy-tools``) -> group id."""

    ec2: EC2Client
    groups: dict[str, str]

    @classmethod
    def build(cls, ec2: EC2Client, baseline: Baseline) -> World:
        """One group per tag-selected policy with its baseline rules, plus an unmanaged one."""
        vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        groups: dict[str, str] = {}
        for policy in baseline.policies:
            if not policy.match.tags:
                continue
            spec: TagSpecificationTypeDef = {
                "ResourceType": "security-group",
                "Tags": [{"Key": k, "Value": v} for k, v in policy.match.tags.items()],
            }
            group_id = ec2.create_security_group(
                GroupName=policy.name,
                Description=policy.description or policy.name,
                VpcId=vpc_id,
                TagSpecifications=[spec],
            )["GroupId"]
            groups[policy.name] = group_id
            descriptions = policy.descriptions()
            for key in sorted(policy.desired()):
                if key.direction is Direction.EGRESS and key.protocol == "all":
                    continue  # EC2 creates the default allow-all egress rule itself
                _authorize(ec2, group_id, key, descriptions.get(key))
        groups[BYSTANDER] = ec2.create_security_group(
            GroupName=BYSTANDER, Description="no policy manages this group", VpcId=vpc_id
        )["GroupId"]
        return cls(ec2, groups)

    def inject_drift(self) -> None:
        """Add the hand-made rules of DRIFT to managed groups and to the bystander."""
        for policy, key, description in DRIFT:
            if policy in self.groups:
                _authorize(self.ec2, self.groups[policy], key, description)
        _authorize(self.ec2, self.groups[BYSTANDER], BYSTANDER_DRIFT, "nobody manages me")

    def authorize(self, name: str, key: RuleKey, description: str) -> str:
        """Add one rule to the group of ``name``; its rule id."""
        return _authorize(self.ec2, self.groups[name], key, description)

    def rules(self, name: str) -> list[SecurityGroupRuleTypeDef]:
        """The live rules of the group of ``name``."""
        found = self.ec2.describe_security_group_rules(
            Filters=[{"Name": "group-id", "Values": [self.groups[name]]}]
        )
        return found["SecurityGroupRules"]

    def count(self, name: str, matches: Callable[[SecurityGroupRuleTypeDef], bool]) -> int:
        """How many live rules of the group of ``name`` match."""
        return sum(1 for rule in self.rules(name) if matches(rule))


@dataclass(frozen=True, slots=True)
class Inbox:
    """An SNS topic with an SQS queue subscribed: where the handler's notices can be read."""

    session: boto3.Session
    topic_arn: str
    queue_url: str

    @classmethod
    def create(cls, session: boto3.Session) -> Inbox:
        """The topic ``sg-reconciler`` and the queue ``ops-inbox`` subscribed to it."""
        sns, sqs = session.client("sns"), session.client("sqs")
        topic = sns.create_topic(Name="sg-reconciler")["TopicArn"]
        queue = sqs.create_queue(QueueName="ops-inbox")["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=attributes["Attributes"]["QueueArn"])
        return cls(session, topic, queue)

    def messages(self) -> list[tuple[str, str]]:
        """(subject, message) of each notice the topic delivered."""
        sqs = self.session.client("sqs")
        received = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
        bodies = [json.loads(m["Body"]) for m in received.get("Messages", [])]
        return [(str(b.get("Subject")), str(b.get("Message"))) for b in bodies]


def cloudtrail_event(
    *, group_id: str, rule_id: str, key: RuleKey, actor: str, account: str
) -> dict[str, Any]:
    """An EventBridge "AWS API Call via CloudTrail" event for an ingress Authorize."""
    return {
        "version": "0",
        "id": "6f5a0e5c-demo-0000-0000-000000000001",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ec2",
        "account": account,
        "time": "2026-11-29T09:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": {
            "eventVersion": "1.10",
            "userIdentity": {
                "type": "IAMUser",
                "principalId": "AIDADEMO",
                "arn": actor,
                "accountId": account,
                "userName": actor.rsplit("/", 1)[-1],
            },
            "eventTime": "2026-11-29T09:00:00Z",
            "eventSource": "ec2.amazonaws.com",
            "eventName": "AuthorizeSecurityGroupIngress",
            "awsRegion": REGION,
            "sourceIPAddress": "198.51.100.23",
            "userAgent": "console.ec2.amazonaws.com",
            "requestParameters": _request(group_id, key),
            "responseElements": _response(group_id, rule_id, key, account),
            "requestID": "demo-request",
            "eventID": "0b9a3f0e-demo-0000-0000-000000000002",
            "readOnly": False,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": account,
            "eventCategory": "Management",
        },
    }


def tag_event(*, group_id: str, tags: dict[str, str], actor: str, account: str) -> dict[str, Any]:
    """The same envelope for a CreateTags of one group."""
    event = cloudtrail_event(
        group_id=group_id,
        rule_id="",
        key=RuleKey(Direction.INGRESS, "all", None, None, "0.0.0.0/0"),
        actor=actor,
        account=account,
    )
    items = [{"key": k, "value": v} for k, v in tags.items()]
    event["detail"].update(
        eventName="CreateTags",
        eventID="0b9a3f0e-demo-0000-0000-000000000003",
        requestParameters={
            "resourcesSet": {"items": [{"resourceId": group_id}]},
            "tagSet": {"items": items},
        },
        responseElements={"requestId": "demo-request", "_return": True},
    )
    return event


def _request(group_id: str, key: RuleKey) -> dict[str, Any]:
    """The ``requestParameters`` of an AuthorizeSecurityGroupIngress of one IPv4 rule."""
    permission = {
        "ipProtocol": key.protocol,
        "fromPort": key.from_port,
        "toPort": key.to_port,
        "groups": {},
        "ipRanges": {"items": [{"cidrIp": key.peer}]},
        "ipv6Ranges": {},
        "prefixListIds": {},
    }
    return {"groupId": group_id, "ipPermissions": {"items": [permission]}}


def _response(group_id: str, rule_id: str, key: RuleKey, account: str) -> dict[str, Any]:
    """The ``responseElements``: the rule EC2 created, with its id."""
    rule = {
        "groupOwnerId": account,
        "groupId": group_id,
        "securityGroupRuleId": rule_id,
        "isEgress": False,
        "ipProtocol": key.protocol,
        "fromPort": key.from_port,
        "toPort": key.to_port,
        "cidrIpv4": key.peer,
    }
    return {"requestId": "demo-request", "_return": True, "securityGroupRuleSet": {"items": [rule]}}
