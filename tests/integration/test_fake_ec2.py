"""The in-memory EC2 (tests/fake_ec2.py) answers as moto does where moto follows AWS, and as
the EC2 API Reference documents where moto does not (each such test names the difference)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ParamValidationError

from reconciler.adapters.ec2 import SecurityGroupReader
from reconciler.adapters.ec2_writers import RuleRevoker
from reconciler.core.rules import Direction
from tests.fake_ec2 import FakeEC2
from tests.world import DEFAULT_EGRESS, REGION, World, ingress

SSH = ingress("tcp", (22, 22), "0.0.0.0/0")
HTTPS = ingress("tcp", (443, 443), "10.0.0.0/8")
RULE_GONE = {"InvalidPermission.NotFound", "InvalidSecurityGroupRuleId.NotFound"}


@pytest.fixture(params=["moto", "fake"])
def both(request: pytest.FixtureRequest, aws: None) -> Any:
    """An EC2 client of moto's account, then of the fake."""
    if request.param == "moto":
        return boto3.client("ec2", region_name=REGION)
    return FakeEC2().client(REGION)


@pytest.fixture
def fake() -> Any:
    """An EC2 client of the fake alone (for what moto does not do as AWS does)."""
    return FakeEC2().client(REGION)


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_a_new_group_has_the_default_egress_and_its_vpc_a_default_group(both: Any) -> None:
    world = World.create(both)
    group = world.group("web", {"team": "web"})
    assert world.live(group) == {DEFAULT_EGRESS}
    found = both.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [world.vpc_id]}])
    assert sorted(g["GroupName"] for g in found["SecurityGroups"]) == ["default", "web"]
    tagged = both.describe_security_groups(Filters=[{"Name": "tag:team", "Values": ["w*"]}])
    assert [g["GroupId"] for g in tagged["SecurityGroups"]] == [group]


def test_rules_are_read_alike_through_the_reader(both: Any) -> None:
    """One rule per peer, descriptions kept, ids stable between reads."""
    world = World.create(both)
    other = world.group("db")
    group = world.group("web", None, [(SSH, None), (HTTPS, "internal https")])
    world.authorize(group, ingress("udp", (53, 53), other))
    reader = SecurityGroupReader(both, REGION)
    (first,) = reader.read_groups([group])
    (again,) = reader.read_groups([group])
    assert {r.key: r.description for r in first.rules} == {
        SSH: None,
        HTTPS: "internal https",
        ingress("udp", (53, 53), other): None,
        DEFAULT_EGRESS: None,
    }
    assert {r.rule_id for r in first.rules} == {r.rule_id for r in again.rules}


def test_a_duplicate_is_refused_whatever_its_description(both: Any) -> None:
    world = World.create(both)
    group = world.group("web", None, [SSH])
    with pytest.raises(ClientError) as exc:
        world.authorize(group, SSH, "another description")
    assert code(exc) == "InvalidPermission.Duplicate"
    assert world.live(group) == {SSH, DEFAULT_EGRESS}


def test_a_missing_group_is_invalid_group_not_found(both: Any) -> None:
    missing = "sg-0123456789abcdef0"
    calls = [
        lambda: both.describe_security_groups(GroupIds=[missing]),
        lambda: both.revoke_security_group_ingress(GroupId=missing, SecurityGroupRuleIds=["sgr-1"]),
        lambda: World(both).authorize(missing, SSH),
    ]
    for call in calls:
        with pytest.raises(ClientError) as exc:
            call()
        assert code(exc) == "InvalidGroup.NotFound"


def test_revoke_by_id_is_all_or_nothing_and_an_unknown_id_is_rule_gone(both: Any) -> None:
    world = World.create(both)
    group = world.group("web", None, [SSH, HTTPS])
    ids = {r.key: r.rule_id for r in SecurityGroupReader(both, REGION).rules_of([group])[group]}
    with pytest.raises(ClientError) as exc:
        both.revoke_security_group_ingress(
            GroupId=group, SecurityGroupRuleIds=[ids[SSH], "sgr-0123456789abcdef0"]
        )
    assert code(exc) in RULE_GONE
    with pytest.raises(ClientError) as exc:  # an egress rule's id is not an ingress rule
        both.revoke_security_group_ingress(
            GroupId=group, SecurityGroupRuleIds=[ids[DEFAULT_EGRESS]]
        )
    assert code(exc) in RULE_GONE
    assert world.live(group) == {SSH, HTTPS, DEFAULT_EGRESS}
    both.revoke_security_group_ingress(GroupId=group, SecurityGroupRuleIds=[ids[SSH]])
    assert world.live(group) == {HTTPS, DEFAULT_EGRESS}


def test_an_unknown_permission_in_a_non_default_vpc_is_not_found(both: Any) -> None:
    world = World.create(both)
    group = world.group("web", None, [HTTPS])
    with pytest.raises(ClientError) as exc:
        both.revoke_security_group_ingress(
            GroupId=group,
            IpPermissions=[
                {
                    "IpProtocol": "tcp",
                    "FromPort": 9,
                    "ToPort": 9,
                    "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
                }
            ],
        )
    assert code(exc) == "InvalidPermission.NotFound"


def test_the_revoker_reports_a_rule_already_gone_as_absent(both: Any) -> None:
    world = World.create(both)
    group = world.group("web", None, [SSH, HTTPS])
    reader = SecurityGroupReader(both, REGION)
    ids = {r.key: r.rule_id for r in reader.rules_of([group])[group]}
    both.revoke_security_group_ingress(GroupId=group, SecurityGroupRuleIds=[ids[SSH]])
    result = RuleRevoker(both, reader).revoke(group, Direction.INGRESS, [ids[SSH], ids[HTTPS]])
    assert (result.revoked, result.absent, result.failed) == ((ids[HTTPS],), (ids[SSH],), ())
    assert world.live(group) == {DEFAULT_EGRESS}


# -- where moto differs from the EC2 API Reference: the fake follows the reference ----------


def test_a_batch_with_a_duplicate_adds_nothing(fake: Any) -> None:
    """API_AuthorizeSecurityGroupIngress: the call fails whole; moto 5 adds the rules before it."""
    world = World.create(fake)
    group = world.group("web", None, [SSH])
    perms = [{"IpProtocol": "tcp", "FromPort": p, "ToPort": p} for p in (1, 22)]
    for perm in perms:
        perm["IpRanges"] = [{"CidrIp": "0.0.0.0/0"}]
    with pytest.raises(ClientError) as exc:
        fake.authorize_security_group_ingress(GroupId=group, IpPermissions=perms)
    assert code(exc) == "InvalidPermission.Duplicate"
    assert world.live(group) == {SSH, DEFAULT_EGRESS}


def test_revokes_name_what_they_removed_and_unknown_ids_by_their_own_code(fake: Any) -> None:
    """API_RevokeSecurityGroupIngress answers RevokedSecurityGroupRules (moto 5: only Return); an
    unknown id is InvalidSecurityGroupRuleId.NotFound (moto 5: InvalidPermission.NotFound)."""
    world = World.create(fake)
    group = world.group("web", None, [(HTTPS, "internal https")])
    (rule,) = [
        r for r in SecurityGroupReader(fake, REGION).rules_of([group])[group] if r.key == HTTPS
    ]
    with pytest.raises(ClientError) as exc:
        fake.revoke_security_group_ingress(GroupId=group, SecurityGroupRuleIds=["sgr-1"])
    assert code(exc) == "InvalidSecurityGroupRuleId.NotFound"
    done = fake.revoke_security_group_ingress(GroupId=group, SecurityGroupRuleIds=[rule.rule_id])
    assert done["RevokedSecurityGroupRules"] == [
        {
            "SecurityGroupRuleId": rule.rule_id,
            "GroupId": group,
            "IsEgress": False,
            "IpProtocol": "tcp",
            "FromPort": 443,
            "ToPort": 443,
            "CidrIpv4": "10.0.0.0/8",
            "Description": "internal https",
        }
    ]


def test_an_unknown_permission_in_the_default_vpc_is_listed_not_refused(fake: Any) -> None:
    """API_RevokeSecurityGroupIngress: in a default VPC no error, UnknownIpPermissions instead."""
    group = fake.create_security_group(GroupName="web", Description="web")["GroupId"]
    perm = {"IpProtocol": "tcp", "FromPort": 9, "ToPort": 9, "IpRanges": [{"CidrIp": "1.0.0.0/8"}]}
    done = fake.revoke_security_group_ingress(GroupId=group, IpPermissions=[perm])
    assert (done["RevokedSecurityGroupRules"], done["UnknownIpPermissions"]) == ([], [perm])


def test_rules_come_in_pages_of_max_results(fake: Any) -> None:
    """MaxResults 5-1000 with NextToken pages (moto 5 answers everything on one page)."""
    world = World.create(fake)
    group = world.group("web", None, [ingress("tcp", (p, p), "0.0.0.0/0") for p in range(11)])
    pages = fake.get_paginator("describe_security_group_rules").paginate(
        Filters=[{"Name": "group-id", "Values": [group]}], PaginationConfig={"PageSize": 5}
    )
    assert [len(p["SecurityGroupRules"]) for p in pages] == [5, 5, 2]
    with pytest.raises(ParamValidationError):  # botocore's own validation, as for a client
        fake.describe_security_group_rules(MaxResults=4)


def test_a_modified_rule_keeps_its_id_and_takes_the_new_content(both: Any) -> None:
    """ModifySecurityGroupRules edits in place (API_ModifySecurityGroupRules): the race a revoke
    by id must survive."""
    world = World.create(both)
    group = world.group("web", None, [HTTPS])
    reader = SecurityGroupReader(both, REGION)
    (rule,) = [r for r in reader.rules_of([group])[group] if r.key == HTTPS]
    edit = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIpv4": "0.0.0.0/0"}
    both.modify_security_group_rules(
        GroupId=group,
        SecurityGroupRules=[{"SecurityGroupRuleId": rule.rule_id, "SecurityGroupRule": edit}],
    )
    after = {r.rule_id: r.key for r in reader.rules_of([group])[group]}
    assert after[rule.rule_id] == SSH
    assert set(after.values()) == {SSH, DEFAULT_EGRESS}
