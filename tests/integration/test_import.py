"""``sg-reconciler import`` against moto: the file validates and ``plan`` right after is clean."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from reconciler.adapters.policy_files import load_policies
from reconciler.cli import main
from tests.world import REGION, World, egress, ingress

REPO = Path(__file__).resolve().parents[2]
SPECIAL = 'it\'s "quoted": yes # not a comment'


def _every_kind(world: World) -> str:
    """A group with every rule kind EC2 stores, descriptions with quotes, colons and #."""
    peer = world.group("app")
    prefix_list = world.ec2.create_managed_prefix_list(
        PrefixListName="office", MaxEntries=5, AddressFamily="IPv4"
    )["PrefixList"]["PrefixListId"]
    return world.group(
        "web prod #1",
        {"Role": "web"},
        [
            (ingress("tcp", (443, 443), "0.0.0.0/0"), SPECIAL),
            (ingress("tcp", (443, 443), "::/0"), SPECIAL),
            (ingress("tcp", (443, 443), "2001:db8::/32"), "v6: office"),
            (ingress("tcp", (8000, 8100), prefix_list), None),
            (ingress("udp", (53, 53), peer), "dns from app"),
            (ingress("udp", (1000, 2000), "172.16.0.0/12"), None),
            (ingress("all", None, "192.168.0.0/16"), "lab"),
            (ingress("icmp", (8, 0), "10.0.0.0/8"), "ping"),
            (ingress("icmp", (3, -1), "10.0.0.0/8"), None),
            (ingress("icmp", (-1, -1), "10.1.0.0/16"), None),
            (ingress("icmpv6", (-1, -1), "::/0"), None),
            (egress("tcp", (25, 25), "::/0"), "smtp: out"),
        ],
    )


def _import(*args: str) -> int:
    return main(["import", "--region", REGION, *args])


def _plan(policies: Path) -> int:
    return main(["plan", "--policies", str(policies), "--region", REGION])


def test_import_then_validate_then_plan_shows_no_drift_for_every_rule_kind(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """An imported group (every peer, protocol and ICMP shape, egress) plans with no drift."""
    group = _every_kind(world)
    target = tmp_path / "policies" / "imported.yaml"
    assert _import("--tag", "Role=web", "--egress", "--output", str(target)) == 0
    err = capsys.readouterr().err
    assert f"Wrote 1 policies for 1 groups to {target}." in err
    assert "note:" not in err
    text = target.read_text(encoding="utf-8")
    assert f"  # web prod #1 ({group})\n  - name: web-prod-1\n" in text
    assert f'description: "{SPECIAL.replace(chr(34), chr(92) + chr(34))}"' in text
    assert main(["validate", "--policies", str(target.parent)]) == 0
    assert _plan(target.parent) == 0
    assert capsys.readouterr().out.endswith("No drift: 1 managed groups match the baseline.\n")
    policy = load_policies(target.parent).by_name("web-prod-1")
    assert policy.match.group_ids == (group,)
    assert set(policy.descriptions().values()) >= {SPECIAL, "v6: office", "smtp: out", "ping"}
    schema = json.loads((REPO / "schema" / "policy.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(yaml.safe_load(text), schema)

    world.authorize(group, egress("tcp", (3306, 3306), "10.0.0.0/8"))
    assert _plan(target.parent) == 2, "with --egress a new egress rule is drift"


def test_without_egress_the_import_leaves_egress_alone(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --egress the file has no egress key, and a new egress rule is not drift."""
    group = world.group("web", {"Role": "web"}, [ingress("tcp", (443, 443), "0.0.0.0/0")])
    target = tmp_path / "p" / "web.yaml"
    assert _import("--group-id", group, "--output", str(target)) == 0
    assert "\n    egress:" not in target.read_text(encoding="utf-8")
    assert load_policies(target.parent).policies[0].egress is None
    world.authorize(group, egress("tcp", (3306, 3306), "10.0.0.0/8"))
    assert _plan(target.parent) == 0
    assert "No drift" in capsys.readouterr().out


def test_per_selector_writes_one_tag_policy_for_identical_groups(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """Identical groups under one tag become one `match: {tags: …}` policy, and plan is clean."""
    rules = [(ingress("tcp", (443, 443), "0.0.0.0/0"), "https")]
    world.group("web-a", {"Role": "web"}, rules)
    world.group("web-b", {"Role": "web"}, rules)
    target = tmp_path / "p" / "web.yaml"
    assert _import("--tag", "Role=web", "--per-selector", "--output", str(target)) == 0
    text = target.read_text(encoding="utf-8")
    assert "  - name: web\n    match:\n      tags: {Role: web}\n" in text
    assert [p.name for p in load_policies(target.parent).policies] == ["web"]
    assert _plan(target.parent) == 0
    assert capsys.readouterr().out == "No drift: 2 managed groups match the baseline.\n"


def test_per_selector_says_why_and_falls_back_when_groups_differ(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """Groups of one tag with different rules get a note and one policy per group."""
    a = world.group("web-a", {"Role": "web"}, [ingress("tcp", (443, 443), "0.0.0.0/0")])
    b = world.group("web-b", {"Role": "web"}, [ingress("tcp", (80, 80), "0.0.0.0/0")])
    target = tmp_path / "p" / "web.yaml"
    code = _import("--tag", "Role=web", "--per-selector", "--name", "edge", "--output", str(target))
    assert code == 0
    assert (
        f"note: tag Role=web: groups web-a ({a}) and web-b ({b}) have different rules;"
        " writing one policy per group instead"
    ) in capsys.readouterr().err
    baseline = load_policies(target.parent)
    assert [(p.name, p.match.group_ids) for p in baseline.policies] == [
        ("edge-web-a", (a,)),
        ("edge-web-b", (b,)),
    ]
    assert _plan(target.parent) == 0


def test_import_by_vpc_writes_every_group_of_the_vpc_and_stdout_is_the_file(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """--vpc-id takes every group of the VPC (the default one too); stdout holds the file."""
    web = world.group("web", None, [ingress("tcp", (443, 443), "0.0.0.0/0")])
    assert _import("--vpc-id", world.vpc_id, "--egress") == 0
    text = capsys.readouterr().out
    assert text.startswith(
        f"# Imported by `sg-reconciler import` from {REGION} (vpc {world.vpc_id})"
    )
    policies = tmp_path / "p"
    policies.mkdir()
    (policies / "vpc.yaml").write_text(text, encoding="utf-8")
    names = [p.name for p in load_policies(policies).policies]
    assert names == ["default", "web"]
    assert load_policies(policies).by_name("web").match.group_ids == (web,)
    assert _plan(policies) == 0


def test_import_refuses_to_overwrite_without_overwrite(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """An existing --output is kept (exit 1) unless --overwrite is given."""
    group = world.group("web", None, [ingress("tcp", (443, 443), "0.0.0.0/0")])
    target = tmp_path / "web.yaml"
    target.write_text("keep me\n", encoding="utf-8")
    assert _import("--group-id", group, "--output", str(target)) == 1
    assert capsys.readouterr().err == f"error: {target} exists; pass --overwrite to overwrite it\n"
    assert target.read_text(encoding="utf-8") == "keep me\n"
    assert _import("--group-id", group, "--output", str(target), "--overwrite") == 0
    assert "group_ids: [" in target.read_text(encoding="utf-8")
    assert "deprecated" not in capsys.readouterr().err


def test_import_force_still_overwrites_and_says_it_is_deprecated(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """--force on import is the deprecated alias of --overwrite: it works and warns first."""
    group = world.group("web", None, [ingress("tcp", (443, 443), "0.0.0.0/0")])
    target = tmp_path / "web.yaml"
    target.write_text("keep me\n", encoding="utf-8")
    assert _import("--group-id", group, "--output", str(target), "--force") == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "warning: --force is deprecated for import; use --overwrite"
    assert err[-1] == f"Wrote 1 policies for 1 groups to {target}."
    assert "group_ids: [" in target.read_text(encoding="utf-8")


def test_import_of_nothing_is_an_error_and_writes_no_file(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """A selector no group matches exits 1 with one line and leaves no file behind."""
    world.group("web", {"Role": "web"})
    target = tmp_path / "none.yaml"
    assert _import("--tag", "Role=nothing", "--output", str(target)) == 1
    assert capsys.readouterr().err == (
        f"error: no security group in {REGION} matches tag Role=nothing; nothing written\n"
    )
    assert not target.exists()
    assert _import("--tag", "Role") == 1
    assert "is not KEY=VALUE" in capsys.readouterr().err
    assert _import("--group-id", "sg-0123456789abcdef0", "--per-selector") == 1
    assert "--per-selector needs --tag or --vpc-id" in capsys.readouterr().err
