"""The reader's batching and pagination.

moto ignores MaxResults and never returns a NextToken, so pagination is exercised with
botocore's Stubber playing AWS's documented paged responses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
from botocore.stub import ANY, Stubber

from reconciler.adapters.ec2 import SecurityGroupReader, observed_rule
from reconciler.adapters.policy_files import load_policies
from tests.policyfiles import write_policies
from tests.world import REGION, CallCounter, World, ingress

POLICY = """
groups:
  - name: web
    match: {tags: {team: web}}
    ingress: [{protocol: tcp, ports: 443, from: 0.0.0.0/0}]
"""


def _rule(group_id: str, rule_id: str, port: int) -> dict[str, Any]:
    return {
        "SecurityGroupRuleId": rule_id,
        "GroupId": group_id,
        "GroupOwnerId": "123456789012",
        "IsEgress": False,
        "IpProtocol": "tcp",
        "FromPort": port,
        "ToPort": port,
        "CidrIpv4": "10.0.0.0/8",
    }


def test_reader_follows_next_tokens_of_both_describe_calls(tmp_path: Path) -> None:
    """Every page of DescribeSecurityGroups and DescribeSecurityGroupRules is read."""
    baseline = load_policies(write_policies(tmp_path, POLICY))
    client = boto3.client("ec2", region_name=REGION)
    group = {
        "GroupId": "sg-0123456789abcdef0",
        "GroupName": "web",
        "OwnerId": "123456789012",
        "VpcId": "vpc-0123456789abcdef0",
        "Tags": [{"Key": "team", "Value": "web"}],
    }
    other = {**group, "GroupId": "sg-0123456789abcdef1", "Tags": [{"Key": "team", "Value": "x"}]}
    with Stubber(client) as stub:
        stub.add_response(
            "describe_security_groups",
            {"SecurityGroups": [group], "NextToken": "t1"},
            {"Filters": [{"Name": "tag-key", "Values": ["team"]}], "MaxResults": 1000},
        )
        stub.add_response(
            "describe_security_groups",
            {"SecurityGroups": [other]},
            {"Filters": ANY, "MaxResults": 1000, "NextToken": "t1"},
        )
        stub.add_response(
            "describe_security_group_rules",
            {"SecurityGroupRules": [_rule(group["GroupId"], "sgr-01", 22)], "NextToken": "r1"},
            {
                "Filters": [{"Name": "group-id", "Values": [group["GroupId"]]}],
                "MaxResults": 1000,
            },
        )
        stub.add_response(
            "describe_security_group_rules",
            {"SecurityGroupRules": [_rule(group["GroupId"], "sgr-02", 23)]},
            {"Filters": ANY, "MaxResults": 1000, "NextToken": "r1"},
        )
        reader = SecurityGroupReader(client, REGION)
        observed = reader.with_rule_ids(reader.read_managed(baseline))
        stub.assert_no_pending_responses()
    assert [g.group_id for g in observed] == [group["GroupId"]]
    assert [r.rule_id for r in observed[0].rules] == ["sgr-01", "sgr-02"]


def test_rules_are_read_only_for_managed_groups_in_batches_of_200(
    tmp_path: Path, world: World
) -> None:
    """450 managed groups take three rule describes (200 ids per filter), never one per group."""
    for i in range(450):
        world.group(f"web-{i}", {"team": "web"})
    for i in range(5):
        world.group(f"other-{i}", {"team": "other"}, [ingress("tcp", (22, 22), "0.0.0.0/0")])
    session = boto3.Session(region_name=REGION)
    counter = CallCounter(session)
    baseline = load_policies(write_policies(tmp_path, POLICY))
    reader = SecurityGroupReader(session.client("ec2"), REGION)
    observed = reader.read_managed(baseline)
    assert len(observed) == 450
    # The sweep itself reads rules from DescribeSecurityGroups' permissions, ids unknown.
    assert dict(counter.calls) == {"DescribeSecurityGroups": 1}
    assert {r.rule_id for g in observed for r in g.rules} == {""}
    with_ids = reader.with_rule_ids(observed)
    assert dict(counter.calls) == {"DescribeSecurityGroups": 1, "DescribeSecurityGroupRules": 3}
    assert all(r.rule_id.startswith("sgr-") for g in with_ids for r in g.rules)
    assert {r.key for g in with_ids for r in g.rules} == {r.key for g in observed for r in g.rules}


def test_cross_account_reference_keeps_its_account() -> None:
    """A rule naming another account's group reads as account/sg-…, same-account as sg-…."""
    same = observed_rule(
        {
            "SecurityGroupRuleId": "sgr-1",
            "IsEgress": False,
            "IpProtocol": "tcp",
            "FromPort": 1,
            "ToPort": 1,
            "ReferencedGroupInfo": {"GroupId": "sg-0123456789abcdef0", "UserId": "111111111111"},
        },
        "111111111111",
    )
    cross = observed_rule(
        {
            "SecurityGroupRuleId": "sgr-2",
            "IsEgress": False,
            "IpProtocol": "tcp",
            "FromPort": 1,
            "ToPort": 1,
            "ReferencedGroupInfo": {"GroupId": "sg-0123456789abcdef0", "UserId": "222222222222"},
        },
        "111111111111",
    )
    assert same is not None
    assert cross is not None
    assert same.key.peer == "sg-0123456789abcdef0"
    assert cross.key.peer == "222222222222/sg-0123456789abcdef0"
