"""Reader, planner and revoker together against a moto account."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from reconciler.adapters.aws import AwsClients
from reconciler.adapters.ec2 import RuleAuthorizer, RuleRevoker, SecurityGroupReader
from reconciler.adapters.policy_files import load_policies
from reconciler.cli.cmd_reconcile import ReconcileRequest, cmd_reconcile
from reconciler.cli.console import Console
from reconciler.cli.options import AwsOptions
from reconciler.core.plan import Status
from reconciler.service import RunMode, RunOptions, Site, Writers, apply_plan, reconcile
from tests.faults import FaultyEC2, fail_on
from tests.policyfiles import write_policies
from tests.world import DEFAULT_EGRESS, REGION, CallCounter, World, egress, ingress

pytestmark = pytest.mark.fake_ec2  # decisions: the in-memory EC2 of tests/fake_ec2.py

WEB = """
groups:
  - name: web
    match: {tags: {team: web}}
    ingress:
      - {protocol: tcp, ports: 443, from: [0.0.0.0/0, "::/0"], description: https}
      - {protocol: tcp, ports: "8000-8100", from: [10.0.0.0/8]}
      - {protocol: all, from: [192.168.0.0/16]}
    egress:
      - {protocol: all, to: [0.0.0.0/0]}
"""

BASELINE = [
    ingress("tcp", (443, 443), "0.0.0.0/0"),
    ingress("tcp", (443, 443), "::/0"),
    ingress("tcp", (8000, 8100), "10.0.0.0/8"),
    ingress("all", None, "192.168.0.0/16"),
]
DRIFT = [
    ingress("tcp", (22, 22), "0.0.0.0/0"),
    ingress("all", None, "0.0.0.0/0"),
    ingress("tcp", (3389, 3389), "::/0"),
    egress("tcp", (25, 25), "0.0.0.0/0"),
]


def run(policies: Path, *, apply: bool, session: boto3.Session, **kw: Any) -> tuple[int, str]:
    """Run the CLI's plan/apply in-process and return (exit code, stdout)."""
    out, err = io.StringIO(), io.StringIO()
    request = ReconcileRequest(
        policies,
        AwsOptions(None, (REGION,), None),
        apply=apply,
        dry_run=kw.get("dry_run", False),
        output=kw.get("output", "text"),
        session=session,
    )
    code = cmd_reconcile(request, Console(out, err))
    return code, out.getvalue() + err.getvalue()


def test_apply_revokes_only_drift_and_keeps_baseline_whatever_its_description(
    tmp_path: Path, world: World
) -> None:
    """Apply leaves a managed group with exactly its baseline rules, descriptions untouched."""
    policies = write_policies(tmp_path / "p", WEB)
    described = [(key, f"hand-written note {i}") for i, key in enumerate(BASELINE)]
    group = world.group("web-1", {"team": "web"}, [*described, *DRIFT])
    code, output = run(policies, apply=True, session=boto3.Session(region_name=REGION))
    assert code == 0, output
    assert world.live(group) == {*BASELINE, DEFAULT_EGRESS}
    assert world.descriptions(group)[BASELINE[0]] == "hand-written note 0"
    code, output = run(policies, apply=False, session=boto3.Session(region_name=REGION))
    assert (code, output.splitlines()[-1]) == (
        0,
        "No drift: 1 managed groups match the baseline.",
    )


def test_unmanaged_group_with_the_same_drift_is_untouched(tmp_path: Path, world: World) -> None:
    """A group no policy matches keeps every rule, even ones that would be drift elsewhere."""
    policies = write_policies(tmp_path / "p", WEB)
    bystander = world.group("other", {"team": "data"}, [*BASELINE, *DRIFT])
    before = world.live(bystander)
    counted = boto3.Session(region_name=REGION)
    counter = CallCounter(counted)
    code, _ = run(policies, apply=True, session=counted)
    assert code == 0
    assert world.live(bystander) == before
    assert counter.writes() == 0


def test_report_mode_group_is_never_written(tmp_path: Path, world: World) -> None:
    """A policy with on_drift: report shows its drift but apply makes no write call."""
    policies = write_policies(
        tmp_path / "p", WEB.replace("    egress:", "    on_drift: report\n    egress:")
    )
    group = world.group("web-1", {"team": "web"}, [*BASELINE, DRIFT[0]])
    counted = boto3.Session(region_name=REGION)
    counter = CallCounter(counted)
    code, output = run(policies, apply=True, session=counted, output="json")
    doc = json.loads(output)
    assert code == 0
    assert counter.writes() == 0
    assert DRIFT[0] in world.live(group)
    assert [c["status"] for c in doc["changes"]] == ["skipped_report_mode"]


def test_dry_run_apply_makes_no_write(tmp_path: Path, world: World) -> None:
    """apply --dry-run reports what it would revoke and calls no mutating API."""
    policies = write_policies(tmp_path / "p", WEB)
    group = world.group("web-1", {"team": "web"}, [*BASELINE, *DRIFT])
    counted = boto3.Session(region_name=REGION)
    counter = CallCounter(counted)
    code, output = run(policies, apply=True, session=counted, output="json", dry_run=True)
    assert code == 0
    assert counter.writes() == 0
    assert {c["status"] for c in json.loads(output)["changes"]} == {"planned"}
    assert set(DRIFT) <= world.live(group)


def test_every_peer_kind_and_protocol_all_round_trip(tmp_path: Path, world: World) -> None:
    """IPv4, IPv6, source groups, prefix lists and protocol all are kept or revoked exactly."""
    source = world.group("source", {"role": "lb"})
    prefix_list = world.ec2.create_managed_prefix_list(
        PrefixListName="office", MaxEntries=5, AddressFamily="IPv4"
    )["PrefixList"]["PrefixListId"]
    policies = write_policies(
        tmp_path / "p",
        f"""
groups:
  - name: mixed
    match: {{tags: {{team: mixed}}}}
    ingress:
      - {{protocol: tcp, ports: 443, from: [{source}, {prefix_list}]}}
      - {{protocol: udp, ports: all, from: ["2001:db8::/32"]}}
      - {{protocol: icmp, icmp_type: 8, from: [10.0.0.0/8]}}
""",
    )
    keep = [
        ingress("tcp", (443, 443), source),
        ingress("tcp", (443, 443), prefix_list),
        ingress("udp", (0, 65535), "2001:db8::/32"),
        ingress("icmp", (8, -1), "10.0.0.0/8"),
    ]
    extra = [
        ingress("tcp", (80, 80), source),
        ingress("tcp", (444, 444), prefix_list),
        ingress("all", None, "::/0"),
        ingress("icmp", (-1, -1), "10.0.0.0/8"),
    ]
    group = world.group("mixed", {"team": "mixed"}, [*keep, *extra])
    code, output = run(policies, apply=True, session=boto3.Session(region_name=REGION))
    assert code == 0, output
    assert world.live(group) == {*keep, DEFAULT_EGRESS}


def test_group_matched_by_two_policies_is_reported_and_untouched(
    tmp_path: Path, world: World
) -> None:
    """A group two policies select is an error for that group and is never written."""
    policies = write_policies(
        tmp_path / "p",
        WEB
        + """
  - name: also-web
    match: {tags: {tier: front}}
    ingress: []
""",
    )
    both = world.group("both", {"team": "web", "tier": "front"}, [*BASELINE, *DRIFT])
    single = world.group("single", {"team": "web"}, [*BASELINE, *DRIFT])
    code, output = run(policies, apply=True, session=boto3.Session(region_name=REGION))
    assert code == 1
    assert f"error: {REGION} {both}: matched by policies web, also-web; left untouched" in output
    assert set(DRIFT) <= world.live(both)
    assert world.live(single) == {*BASELINE, DEFAULT_EGRESS}


def test_missing_baseline_rule_is_reported_not_created(tmp_path: Path, world: World) -> None:
    """A baseline rule that is not live is reported as missing and nothing is authorized."""
    policies = write_policies(tmp_path / "p", WEB)
    group = world.group("web-1", {"team": "web"}, BASELINE[1:])
    code, output = run(
        policies, apply=False, session=boto3.Session(region_name=REGION), output="json"
    )
    doc = json.loads(output)
    assert code == 2
    assert [(c["action"], c["protocol"], c["from_port"], c["source"]) for c in doc["changes"]] == [
        ("missing", "tcp", 443, "0.0.0.0/0")
    ]
    code, _ = run(policies, apply=True, session=boto3.Session(region_name=REGION))
    assert code == 0
    assert BASELINE[0] not in world.live(group)


def test_full_reconcile_of_200_groups_makes_the_minimum_calls(tmp_path: Path, world: World) -> None:
    """200 drifted groups are fixed with one describe page each and one revoke per direction."""
    policies = write_policies(tmp_path / "p", WEB)
    managed = [
        world.group(f"web-{i}", {"team": "web"}, [(k, f"note {i}") for k in BASELINE] + DRIFT)
        for i in range(200)
    ]
    bystanders = [world.group(f"other-{i}", {"team": "data"}, DRIFT) for i in range(20)]
    untouched = {g: world.live(g) for g in bystanders}
    rules = sum(len(world.live(g)) for g in managed)
    counted = boto3.Session(region_name=REGION)
    counter = CallCounter(counted)
    code, output = run(policies, apply=True, session=counted)
    assert code == 0, output[-2000:]
    # One DescribeSecurityGroups (tag-key filter; 220 groups fit a page of 1,000) and the
    # managed groups' rules in pages of 1,000 (200 group ids fit one filter), as EC2 pages
    # them (MaxResults; moto ignores it and answers on one page).
    assert rules > 1000
    assert dict(counter.calls) == {
        "DescribeSecurityGroups": 1,
        "DescribeSecurityGroupRules": -(-rules // 1000),
        "RevokeSecurityGroupIngress": 200,
        "RevokeSecurityGroupEgress": 200,
    }
    for group in managed:
        assert world.live(group) == {*BASELINE, DEFAULT_EGRESS}
    assert {g: world.live(g) for g in bystanders} == untouched
    code, _ = run(policies, apply=False, session=boto3.Session(region_name=REGION))
    assert code == 0


def test_revoke_of_a_rule_someone_else_already_removed_is_already_absent(
    tmp_path: Path, world: World, session: boto3.Session
) -> None:
    """A planned rule that vanished before apply is reported already_absent; the rest go."""
    baseline = load_policies(write_policies(tmp_path / "p", WEB))
    group = world.group("web-1", {"team": "web"}, [*BASELINE, *DRIFT])
    clients = AwsClients(session).ec2
    plan = reconcile(baseline, [Site.of(clients, [REGION])]).plan
    gone = next(c for c in plan.changes if c.key == DRIFT[0])
    world.ec2.revoke_security_group_ingress(GroupId=group, SecurityGroupRuleIds=[gone.rule_id])

    reader = SecurityGroupReader(clients(REGION), REGION)
    outcomes = apply_plan(plan, _writers(clients(REGION), reader))
    status = {o.change.key: o.status for o in outcomes}
    assert status[DRIFT[0]] is Status.ALREADY_ABSENT
    assert status[DRIFT[1]] is Status.REVOKED
    assert world.live(group) == {*BASELINE, DEFAULT_EGRESS}


def test_group_deleted_before_apply_is_already_absent_and_others_proceed(
    tmp_path: Path, world: World, session: boto3.Session
) -> None:
    """A group deleted between plan and apply does not stop the other groups."""
    baseline = load_policies(write_policies(tmp_path / "p", WEB))
    doomed = world.group("web-1", {"team": "web"}, [*BASELINE, *DRIFT])
    other = world.group("web-2", {"team": "web"}, [*BASELINE, *DRIFT])
    clients = AwsClients(session).ec2
    plan = reconcile(baseline, [Site.of(clients, [REGION])]).plan
    world.ec2.delete_security_group(GroupId=doomed)

    reader = SecurityGroupReader(clients(REGION), REGION)
    outcomes = apply_plan(plan, _writers(clients(REGION), reader))
    by_group = {(o.change.group_id, o.status) for o in outcomes}
    assert (doomed, Status.ALREADY_ABSENT) in by_group
    assert {s for g, s in by_group if g == other} == {Status.REVOKED}
    assert world.live(other) == {*BASELINE, DEFAULT_EGRESS}


@pytest.mark.parametrize("region_count", [2])
def test_several_regions_are_planned_in_one_run(
    tmp_path: Path, aws: None, region_count: int
) -> None:
    """Each --region is swept; drift in each is revoked and reported with its region."""
    regions = ["us-east-1", "eu-west-1"][:region_count]
    policies = write_policies(tmp_path / "p", WEB)
    groups = {}
    for region in regions:
        region_world = World.create(boto3.client("ec2", region_name=region))
        groups[region] = (
            region_world,
            region_world.group("web", {"team": "web"}, [*BASELINE, DRIFT[0]]),
        )
    out = io.StringIO()
    request = ReconcileRequest(
        policies,
        AwsOptions(None, tuple(regions), None),
        apply=True,
        output="json",
        session=boto3.Session(),
    )
    code = cmd_reconcile(request, Console(out, io.StringIO()))
    assert code == 0
    doc = json.loads(out.getvalue())
    assert sorted(c["region"] for c in doc["changes"]) == sorted(regions)
    for region_world, group in groups.values():
        assert DRIFT[0] not in region_world.live(group)


def test_one_group_failing_does_not_stop_the_others_and_apply_exits_1(
    tmp_path: Path, world: World, session: boto3.Session
) -> None:
    """An access-denied revoke on one group fails that group only; apply exits 1."""
    policies = write_policies(tmp_path / "p", WEB)
    denied = world.group("web-1", {"team": "web"}, [*BASELINE, *DRIFT])
    fine = world.group("web-2", {"team": "web"}, [*BASELINE, *DRIFT])
    real = AwsClients(session).ec2
    faulty = FaultyEC2(
        real(REGION),
        fail_on("revoke_security_group_ingress", "UnauthorizedOperation", group_id=denied),
    )
    baseline = load_policies(policies)
    result = reconcile(
        baseline, [Site.of(lambda _r: faulty, [REGION])], options=RunOptions(mode=RunMode.ENFORCE)
    )
    statuses = {(o.change.group_id, o.status) for o in result.outcomes}
    assert (denied, Status.FAILED) in statuses
    assert {s for g, s in statuses if g == fine} == {Status.REVOKED}
    assert result.failed
    assert world.live(fine) == {*BASELINE, DEFAULT_EGRESS}
    assert set(DRIFT[:3]) <= world.live(denied)
    failed = next(o for o in result.outcomes if o.status is Status.FAILED)
    assert failed.error is not None
    assert failed.error.startswith("UnauthorizedOperation: ")


def _writers(client: Any, reader: SecurityGroupReader) -> Writers:
    """Writers acting through ``client`` in every region (one region here)."""
    revoker = RuleRevoker(client, reader)
    return Writers(revoker=lambda _r: revoker, authorizer=lambda _r: RuleAuthorizer(client))


GUARDED = """
peers:
  private: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16]
groups:
  - name: web
    match: {tags: {team: web}}
    ingress:
      - {protocol: tcp, ports: 443, from: [0.0.0.0/0]}
guardrails:
  - name: no-internet-except-web
    deny: [{protocol: all, from: internet}]
    allow:
      - {protocol: tcp, ports: [80, 443], from: internet}
      - {protocol: all, from: $private}
"""


def test_a_guarded_world_of_300_groups_is_fixed_at_the_call_lower_bound(
    tmp_path: Path, world: World
) -> None:
    """100 managed and 200 unmanaged groups, mixed violations: one describe page, rule ids
    only for the 40 changed groups (one page), one revoke per changed group; nothing allowed
    is touched, and the next plan is clean."""
    policies = write_policies(tmp_path / "p", GUARDED)
    https = ingress("tcp", (443, 443), "0.0.0.0/0")
    private_ssh = ingress("tcp", (22, 22), "10.0.0.0/8")
    world_ssh = ingress("tcp", (22, 22), "0.0.0.0/0")
    rdp6 = ingress("tcp", (3389, 3389), "::/0")
    internal = ingress("tcp", (8080, 8080), "10.9.0.0/16")  # the floor allows it; web does not
    managed = [
        world.group(f"web-{i}", {"team": "web"}, [https, *([rdp6] if i < 10 else [])])
        for i in range(90)
    ] + [world.group(f"web-drift-{i}", {"team": "web"}, [https, internal]) for i in range(10)]
    unmanaged = [
        world.group(f"other-{i}", None, [private_ssh, *([world_ssh] if i < 20 else [])])
        for i in range(200)
    ]
    counted = boto3.Session(region_name=REGION)
    counter = CallCounter(counted)
    code, output = run(policies, apply=True, session=counted)
    assert code == 0, output[-2000:]
    assert dict(counter.calls) == {
        "DescribeSecurityGroups": 1,
        "DescribeSecurityGroupRules": 1,
        "RevokeSecurityGroupIngress": 40,
    }
    assert all(world.live(g) == {https, DEFAULT_EGRESS} for g in managed)
    assert all(world.live(g) == {private_ssh, DEFAULT_EGRESS} for g in unmanaged)
    assert "Groups no policy manages (guardrails only):" in output
    code, output = run(policies, apply=False, session=boto3.Session(region_name=REGION))
    assert code == 0, output[-2000:]
