"""The generated world every tool is measured on, built in moto over HTTP, and its checks.

``managed`` groups tagged ``team=web`` carry the baseline (tcp 443 from 0.0.0.0/0 and ::/0)
plus ``extras`` ingress rules (and, with ``egress_extras``, extra egress rules beside the
default allow-all). ``bystanders`` tagged ``team=data`` carry the same rules and must be left
alone. The extras mix IPv4 and IPv6, tcp and udp, and one wider source on the baseline port.

With ``strays``, a guardrail ("nothing from the internet but tcp 443", bystanders excluded)
guards every other group: ``strays`` groups tagged ``team=stray`` that no policy manages, each
with tcp 443 from 0.0.0.0/0 (allowed), every other one also with tcp 22 from 0.0.0.0/0 (a
violation, revoked).
"""

from __future__ import annotations

__all__ = [
    "BASELINE",
    "LiveCheck",
    "WorldSpec",
    "build_world",
    "check_world",
    "ec2_client",
    "write_policies",
]

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from benchmarks.servers import REGION, require_loopback

# (protocol, from_port, to_port, peer) of an ingress rule, peers canonical as EC2 returns them.
Rule = tuple[str, int, int, str]

BASELINE: frozenset[Rule] = frozenset({("tcp", 443, 443, "0.0.0.0/0"), ("tcp", 443, 443, "::/0")})
DEFAULT_EGRESS: Rule = ("-1", -1, -1, "0.0.0.0/0")
STRAY_ALLOWED: Rule = ("tcp", 443, 443, "0.0.0.0/0")
STRAY_VIOLATION: Rule = ("tcp", 22, 22, "0.0.0.0/0")
MAX_EXTRAS = 25  # the default max_revocations_per_group: more would be blocked, not revoked


def extra_ingress(k: int) -> Rule:
    """The k-th extra ingress rule (the same on every group)."""
    if k == 0:
        return ("tcp", 443, 443, "10.0.0.0/8")  # the baseline port from a source it does not allow
    if k % 3 == 1:
        return ("tcp", 8000 + k, 8000 + k, f"2001:db8:{k:x}::/48")
    if k % 3 == 2:
        return ("udp", 9000 + k, 9000 + k, f"198.51.100.{k}/32")
    return ("tcp", 8000 + k, 8000 + k, f"192.0.2.{k}/32")


def extra_egress(k: int) -> Rule:
    """The k-th extra egress rule."""
    return ("tcp", 5000 + k, 5000 + k, f"203.0.113.{k}/32")


@dataclass(frozen=True, slots=True)
class WorldSpec:
    """How big the world is."""

    managed: int
    extras: int
    bystanders: int
    egress_extras: int = 0
    strays: int = 0  # groups no policy manages, under the guardrail

    @property
    def violating_strays(self) -> int:
        """Strays with a violation (the even-numbered ones)."""
        return (self.strays + 1) // 2

    @property
    def changed_rules(self) -> int:
        """Live rules on the groups a correct reconcile changes (those need rule ids)."""
        managed = self.managed_rules if self.extras or self.egress_extras else 0
        return managed + self.violating_strays * 3  # 443, 22 and the default egress

    def __post_init__(self) -> None:
        if not 0 <= self.extras <= MAX_EXTRAS or not 0 <= self.egress_extras <= MAX_EXTRAS:
            raise ValueError(f"at most {MAX_EXTRAS} extras per group and direction")

    @property
    def manages_egress(self) -> bool:
        """The policy lists egress rules (the default allow-all) when egress drift is made."""
        return self.egress_extras > 0

    @property
    def managed_rules(self) -> int:
        """Live rules on the managed groups, both directions (with the default egress rule)."""
        return self.managed * (len(BASELINE) + self.extras + 1 + self.egress_extras)

    @property
    def revokes(self) -> int:
        """Rules a correct reconcile revokes."""
        return self.managed * (self.extras + self.egress_extras) + self.violating_strays

    @property
    def drifted_directions(self) -> int:
        """(group, direction) pairs with drift: the fewest revoke calls possible."""
        managed = self.managed * ((self.extras > 0) + (self.egress_extras > 0))
        return managed + self.violating_strays

    def label(self) -> str:
        """``200 groups x 5 extras (+50 bystanders)``."""
        egress = f" + {self.egress_extras} egress" if self.egress_extras else ""
        strays = (
            f", +{self.strays} groups no policy manages under a guardrail"
            f" ({self.violating_strays} violating)"
            if self.strays
            else ""
        )
        return (
            f"{self.managed} groups x {self.extras} ingress{egress} extras"
            f" (+{self.bystanders} bystanders{strays})"
        )


def ec2_client(endpoint: str, *, session: boto3.Session | None = None) -> Any:
    """An EC2 client for the local endpoint, failing fast instead of retrying."""
    session = session or boto3.Session(region_name=REGION)
    return session.client(
        "ec2",
        region_name=REGION,
        endpoint_url=require_loopback(endpoint),
        config=Config(retries={"mode": "standard", "max_attempts": 2}, read_timeout=120),
    )


def _permissions(rules: list[Rule]) -> list[dict[str, Any]]:
    out = []
    for protocol, lo, hi, peer in rules:
        perm: dict[str, Any] = {"IpProtocol": protocol}
        if protocol != "-1":
            perm["FromPort"], perm["ToPort"] = lo, hi
        if ":" in peer:
            perm["Ipv6Ranges"] = [{"CidrIpv6": peer}]
        else:
            perm["IpRanges"] = [{"CidrIp": peer}]
        out.append(perm)
    return out


@dataclass(frozen=True, slots=True)
class BuiltWorld:
    """The ids of what was built."""

    spec: WorldSpec
    managed_ids: tuple[str, ...]
    bystander_ids: tuple[str, ...]
    stray_ids: tuple[str, ...] = ()


def _group(ec2: Any, vpc_id: str, team: str, i: int) -> str:
    group_id: str = ec2.create_security_group(
        GroupName=f"{team}-{i:05d}",
        Description=f"bench {team} {i}",
        VpcId=vpc_id,
        TagSpecifications=[
            {"ResourceType": "security-group", "Tags": [{"Key": "team", "Value": team}]}
        ],
    )["GroupId"]
    return group_id


def build_world(endpoint: str, spec: WorldSpec) -> BuiltWorld:
    """Create the world in an empty (just reset) moto account."""
    ec2 = ec2_client(endpoint)
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ingress = _permissions([*sorted(BASELINE), *(extra_ingress(k) for k in range(spec.extras))])
    egress = _permissions([extra_egress(k) for k in range(spec.egress_extras)])
    ids: dict[str, list[str]] = {"web": [], "data": [], "stray": []}
    for team, count in (("web", spec.managed), ("data", spec.bystanders)):
        for i in range(count):
            group_id = _group(ec2, vpc_id, team, i)
            ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=ingress)
            if egress:
                ec2.authorize_security_group_egress(GroupId=group_id, IpPermissions=egress)
            ids[team].append(group_id)
    for i in range(spec.strays):
        group_id = _group(ec2, vpc_id, "stray", i)
        rules = [STRAY_ALLOWED, STRAY_VIOLATION] if i % 2 == 0 else [STRAY_ALLOWED]
        ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=_permissions(rules))
        ids["stray"].append(group_id)
    return BuiltWorld(spec, tuple(ids["web"]), tuple(ids["data"]), tuple(ids["stray"]))


def _live(ec2: Any) -> tuple[dict[str, set[Rule]], dict[str, set[Rule]]]:
    """Every group's live ingress and egress rules (moto answers in one page)."""
    ingress: dict[str, set[Rule]] = defaultdict(set)
    egress: dict[str, set[Rule]] = defaultdict(set)
    token: str | None = None
    for _ in range(10_000):  # bounded: a page per 1000 rules
        kwargs: dict[str, Any] = {"MaxResults": 1000}
        if token:
            kwargs["NextToken"] = token
        page = ec2.describe_security_group_rules(**kwargs)
        for item in page["SecurityGroupRules"]:
            peer = item.get("CidrIpv4") or item.get("CidrIpv6") or "?"
            rule = (item["IpProtocol"], item.get("FromPort", -1), item.get("ToPort", -1), peer)
            (egress if item["IsEgress"] else ingress)[item["GroupId"]].add(rule)
        token = page.get("NextToken")
        if not token:
            break
    return ingress, egress


@dataclass(frozen=True, slots=True)
class LiveCheck:
    """What the live state says after a tool ran."""

    managed_clean: int  # managed groups exactly at the baseline (both managed directions)
    managed_total: int
    extras_left: int  # extra rules still live on managed groups
    baseline_lost: int  # baseline rules no longer live on managed groups
    bystanders_intact: int  # bystanders with every rule they were built with
    bystanders_total: int
    strays_right: int = 0  # strays left with exactly tcp 443 from the world (and egress)
    strays_total: int = 0

    @property
    def ok(self) -> bool:
        """Every managed group at the baseline, every bystander untouched, every stray with
        its violation revoked and its allowed rule kept."""
        return (
            self.managed_clean == self.managed_total
            and self.bystanders_intact == self.bystanders_total
            and self.strays_right == self.strays_total
        )

    def to_dict(self) -> dict[str, int | bool]:
        """For results.json."""
        return {
            "ok": self.ok,
            "managed_clean": self.managed_clean,
            "managed_total": self.managed_total,
            "extras_left": self.extras_left,
            "baseline_lost": self.baseline_lost,
            "bystanders_intact": self.bystanders_intact,
            "bystanders_total": self.bystanders_total,
            "strays_right": self.strays_right,
            "strays_total": self.strays_total,
        }


def check_world(endpoint: str, world: BuiltWorld) -> LiveCheck:
    """Compare the live rules with what a correct reconcile leaves."""
    ingress, egress = _live(ec2_client(endpoint))
    spec = world.spec
    built_ingress = BASELINE | {extra_ingress(k) for k in range(spec.extras)}
    built_egress = {DEFAULT_EGRESS} | {extra_egress(k) for k in range(spec.egress_extras)}
    clean = extras_left = lost = 0
    for group_id in world.managed_ids:
        live_in, live_out = ingress[group_id], egress[group_id]
        extras_left += len(live_in - BASELINE) + len(live_out - {DEFAULT_EGRESS})
        lost += len(BASELINE - live_in) + (DEFAULT_EGRESS not in live_out)
        egress_ok = (
            live_out == {DEFAULT_EGRESS} if spec.manages_egress else live_out == built_egress
        )
        clean += live_in == BASELINE and egress_ok
    intact = sum(
        ingress[g] == built_ingress and egress[g] == built_egress for g in world.bystander_ids
    )
    return LiveCheck(
        managed_clean=clean,
        managed_total=len(world.managed_ids),
        extras_left=extras_left,
        baseline_lost=lost,
        bystanders_intact=intact,
        bystanders_total=len(world.bystander_ids),
        strays_right=sum(
            ingress[g] == {STRAY_ALLOWED} and egress[g] == {DEFAULT_EGRESS} for g in world.stray_ids
        ),
        strays_total=len(world.stray_ids),
    )


def write_policies(directory: Path, spec: WorldSpec) -> Path:
    """Our baseline for the world: one policy for ``team=web``, and with strays a guardrail
    for every group but the bystanders."""
    directory.mkdir(parents=True, exist_ok=True)
    guardrail = (
        "guardrails:\n"
        "  - name: internet-only-https\n"
        "    exclude: {tags: {team: data}}\n"
        "    deny: [{protocol: all, from: internet}]\n"
        "    allow: [{protocol: tcp, ports: 443, from: internet}]\n"
        "    limits: {max_revocations_per_run: 100000}\n"  # the default 50 would block most
        if spec.strays
        else ""
    )
    egress = (
        "    egress:\n      - {protocol: all, to: [0.0.0.0/0]}\n" if spec.manages_egress else ""
    )
    (directory / "bench.yaml").write_text(
        "groups:\n"
        "  - name: web\n"
        "    match: {tags: {team: web}}\n"
        "    ingress:\n"
        '      - {protocol: tcp, ports: 443, from: [0.0.0.0/0, "::/0"]}\n' + egress + guardrail,
        encoding="utf-8",
    )
    return directory
