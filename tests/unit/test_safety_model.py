"""Safety keys of the policy format: limits, exceptions, allow_empty and restore_missing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from reconciler.adapters.policy_files import load_policies
from reconciler.core.policy import (
    DEFAULT_MAX_REVOCATIONS_PER_GROUP,
    Baseline,
    FileLimits,
    GroupLimits,
    GroupPolicy,
    PolicyFile,
    RuleException,
)
from reconciler.core.rules import Direction, RuleKey
from tests.policyfiles import problems_of, write

INGRESS = Direction.INGRESS
EGRESS = Direction.EGRESS
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
OFFICE = "203.0.113.7/32"


def group(name: str = "web", **fields: object) -> GroupPolicy:
    data: dict[str, object] = {"name": name, "match": {"tags": {"Name": name}}, "ingress": []}
    return GroupPolicy.model_validate(data | fields)


def exception(
    expires: datetime,
    reason: str = "ticket OPS-1",
    *,
    sources: str | list[str] = OFFICE,
    **fields: object,
) -> RuleException:
    data: dict[str, object] = {"protocol": "tcp", "ports": 8080, "from": sources}
    return RuleException.model_validate(data | {"expires": expires, "reason": reason} | fields)


# --- loading every new key -----------------------------------------------------------------

EVERY_KEY = """\
limits:
  max_revocations_per_group: 10
  max_revocations_per_run: 40
groups:
  - name: web
    match: {tags: {Name: web}}
    ingress:
      - {protocol: tcp, ports: 443, from: 0.0.0.0/0}
    egress:
      - {protocol: all, to: 0.0.0.0/0}
    limits:
      max_revocations_per_group: 5
    exceptions:
      - protocol: tcp
        ports: 8080
        from: 203.0.113.7/32
        expires: 2026-12-31T00:00:00Z
        reason: vendor debugging, ticket OPS-1234
      - protocol: udp
        ports: "8000-8100"
        to: [10.0.0.0/8, "2001:db8::/32"]
        expires: 2026-06-30T18:00:00+05:30
        reason: log shipping trial
    allow_empty: true
    restore_missing: true
  - name: db
    match: {tags: {Name: db}}
    ingress: []
"""


def test_every_safety_key_loads_into_the_models(policies: Path) -> None:
    """File limits, group limits, exceptions, allow_empty and restore_missing load as written."""
    write(policies, "p.yaml", EVERY_KEY)
    baseline = load_policies(policies)
    web, db = baseline.policies
    assert web.limits == GroupLimits(max_revocations_per_group=5)
    assert (web.allow_empty, web.restore_missing) == (True, True)
    first, second = web.exceptions
    assert first.expires == datetime(2026, 12, 31, tzinfo=UTC)
    assert first.reason == "vendor debugging, ticket OPS-1234"
    assert list(first.rule_keys()) == [RuleKey(INGRESS, "tcp", 8080, 8080, OFFICE)]
    assert second.expires == datetime(2026, 6, 30, 18, tzinfo=timezone(timedelta(hours=5.5)))
    assert second.reason == "log shipping trial"
    assert list(second.rule_keys()) == [
        RuleKey(EGRESS, "udp", 8000, 8100, "10.0.0.0/8"),
        RuleKey(EGRESS, "udp", 8000, 8100, "2001:db8::/32"),
    ]
    assert (db.allow_empty, db.restore_missing, db.exceptions) == (False, False, ())
    assert dict(baseline.run_limits) == {"policies/p.yaml": 40}


def test_loader_records_the_line_of_each_exception(policies: Path) -> None:
    """Baseline.locations maps (policy, "exceptions", index) to the line the entry starts on."""
    write(policies, "p.yaml", EVERY_KEY)
    assert dict(load_policies(policies).locations) == {
        ("web", "exceptions", 0): 14,
        ("web", "exceptions", 1): 19,
    }


def test_groups_without_safety_keys_get_the_defaults(policies: Path) -> None:
    """A group without the new keys has no limits of its own, 25 per group and no run limit."""
    write(policies, "p.yaml", "groups:\n  - name: web\n    match: {tags: {Name: web}}\n"
          "    ingress: []\n")  # fmt: skip
    baseline = load_policies(policies)
    (web,) = baseline.policies
    assert web.limits is None
    assert web.max_revocations_per_group() == DEFAULT_MAX_REVOCATIONS_PER_GROUP == 25
    assert (web.exceptions, web.allow_empty, web.restore_missing) == ((), False, False)
    assert dict(baseline.run_limits) == {}
    assert baseline.run_limit_of("web") is None
    assert dict(baseline.locations) == {}


INHERIT = """\
limits:
  max_revocations_per_group: 10
groups:
  - name: own
    match: {tags: {Name: own}}
    ingress: []
    limits: {max_revocations_per_group: 3}
  - name: inherits
    match: {tags: {Name: inherits}}
    ingress: []
  - name: empty-limits
    match: {tags: {Name: empty-limits}}
    ingress: []
    limits: {}
  - name: raises-it
    match: {tags: {Name: raises-it}}
    ingress: []
    limits: {max_revocations_per_group: 100}
"""


def test_file_per_group_limit_is_inherited_and_a_group_override_wins(policies: Path) -> None:
    """Groups without their own per-group limit take the file's; a group's own limit wins."""
    write(policies, "p.yaml", INHERIT)
    baseline = load_policies(policies)
    limits = {p.name: p.max_revocations_per_group() for p in baseline.policies}
    assert limits == {"own": 3, "inherits": 10, "empty-limits": 10, "raises-it": 100}
    assert dict(baseline.run_limits) == {}


def test_file_limit_applies_only_to_its_own_file(policies: Path) -> None:
    """A file's limits never reach the groups of another file."""
    write(policies, "a.yaml", INHERIT)
    write(policies, "b.yaml", "groups:\n  - name: other\n    match: {tags: {Name: other}}\n"
          "    ingress: []\n")  # fmt: skip
    baseline = load_policies(policies)
    assert baseline.by_name("inherits").max_revocations_per_group() == 10
    assert baseline.by_name("other").max_revocations_per_group() == 25


def test_run_limits_are_per_file(policies: Path) -> None:
    """Each file's max_revocations_per_run governs its own groups; a file without one has none."""
    write(policies, "a.yaml", "limits: {max_revocations_per_run: 2}\ngroups:\n"
          "  - {name: a1, match: {tags: {Name: a1}}, ingress: []}\n"
          "  - {name: a2, match: {tags: {Name: a2}}, ingress: []}\n")  # fmt: skip
    write(policies, "b.yaml", "limits: {max_revocations_per_run: 7}\ngroups:\n"
          "  - {name: b1, match: {tags: {Name: b1}}, ingress: []}\n")  # fmt: skip
    write(policies, "c.yaml", "groups:\n  - {name: c1, match: {tags: {Name: c1}}, ingress: []}\n")
    baseline = load_policies(policies)
    assert dict(baseline.run_limits) == {"policies/a.yaml": 2, "policies/b.yaml": 7}
    assert [baseline.run_limit_of(name) for name in ("a1", "a2", "b1", "c1", "unknown")] == [
        ("policies/a.yaml", 2),
        ("policies/a.yaml", 2),
        ("policies/b.yaml", 7),
        None,
        None,
    ]
    # A run limit alone does not change the per-group limit.
    assert baseline.by_name("a1").max_revocations_per_group() == 25


# --- mistakes, with file:line --------------------------------------------------------------

HEAD = """\
groups:
  - name: web
    match: {tags: {Name: web}}
    ingress: []
"""
EXCEPTION_HEAD = HEAD + "    exceptions:\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            EXCEPTION_HEAD + "      - {protocol: tcp, ports: 22, from: 10.0.0.0/8, reason: x}\n",
            [
                "policies/p.yaml:6: groups[0].exceptions[0].expires: required key 'expires' is"
                " missing"
            ],
            id="no-expires",
        ),
        pytest.param(
            EXCEPTION_HEAD + "      - protocol: tcp\n        ports: 22\n        from: 10.0.0.0/8\n"
            "        expires: 2026-12-31T00:00:00Z\n",
            ["policies/p.yaml:6: groups[0].exceptions[0].reason: required key 'reason' is missing"],
            id="no-reason",
        ),
        pytest.param(
            EXCEPTION_HEAD + "      - protocol: tcp\n        ports: 22\n        from: 10.0.0.0/8\n"
            "        expires: 2026-12-31T00:00:00\n        reason: x\n",
            [
                "policies/p.yaml:9: groups[0].exceptions[0].expires: expires needs a timezone,"
                " e.g. 2026-12-31T00:00:00Z"
            ],
            id="naive-time",
        ),
        pytest.param(
            EXCEPTION_HEAD + "      - protocol: tcp\n        ports: 22\n        from: 10.0.0.0/8\n"
            "        expires: 2026-12-31\n        reason: x\n",
            [
                "policies/p.yaml:9: groups[0].exceptions[0].expires: expires needs a timezone,"
                " e.g. 2026-12-31T00:00:00Z"
            ],
            id="date-without-time",
        ),
        pytest.param(
            EXCEPTION_HEAD + "      - protocol: tcp\n        ports: 22\n        from: 10.0.0.0/8\n"
            "        to: 10.0.0.0/8\n        expires: 2026-12-31T00:00:00Z\n        reason: x\n",
            [
                "policies/p.yaml:6: groups[0].exceptions[0]: an exception needs exactly one of"
                " from: (ingress) or to: (egress)"
            ],
            id="both-from-and-to",
        ),
        pytest.param(
            EXCEPTION_HEAD + "      - protocol: tcp\n        ports: 22\n"
            "        expires: 2026-12-31T00:00:00Z\n        reason: x\n",
            [
                "policies/p.yaml:6: groups[0].exceptions[0]: an exception needs exactly one of"
                " from: (ingress) or to: (egress)"
            ],
            id="neither-from-nor-to",
        ),
        pytest.param(
            EXCEPTION_HEAD + "      - protocol: all\n        ports: 22\n        from: 10.0.0.0/8\n"
            "        expires: 2026-12-31T00:00:00Z\n        reason: x\n",
            [
                "policies/p.yaml:6: groups[0].exceptions[0]: ports is not allowed with protocol all"
                " (protocol all covers every port; remove ports)"
            ],
            id="ports-with-protocol-all",
        ),
        pytest.param(
            EXCEPTION_HEAD + "      - protocol: tcp\n        ports: 22\n        from: 10.0.0.1/8\n"
            "        expires: 2026-12-31T00:00:00Z\n        reason: x\n",
            [
                "policies/p.yaml:8: groups[0].exceptions[0].from[0]: '10.0.0.1/8' has host bits set"
                " (did you mean 10.0.0.0/8?)"
            ],
            id="host-bits-in-from",
        ),
        pytest.param(
            EXCEPTION_HEAD + "      - protocol: tcp\n        ports: 22\n        from: 10.0.0.0/8\n"
            "        expire: 2026-12-31T00:00:00Z\n        reason: x\n",
            [
                "policies/p.yaml:6: groups[0].exceptions[0].expires: required key 'expires' is"
                " missing",
                "policies/p.yaml:9: groups[0].exceptions[0].expire: unknown key 'expire' (did you"
                " mean 'expires'?)",
            ],
            id="misspelt-expires",
        ),
        pytest.param(
            HEAD + "    limits: {max_revocations_per_group: 0}\n",
            [
                "policies/p.yaml:5: groups[0].limits.max_revocations_per_group: must be at least"
                " 1, got 0 (remove the key for the default)"
            ],
            id="group-limit-zero",
        ),
        pytest.param(
            "limits:\n  max_revocations_per_group: -1\n  max_revocations_per_run: 0\n" + HEAD,
            [
                "policies/p.yaml:2: limits.max_revocations_per_group: must be at least 1, got -1"
                " (remove the key for the default)",
                "policies/p.yaml:3: limits.max_revocations_per_run: must be at least 1, got 0"
                " (remove the key for the default)",
            ],
            id="file-limits-not-positive",
        ),
        pytest.param(
            HEAD + "    limits:\n      max_revocations_per_run: 10\n",
            [
                "policies/p.yaml:6: groups[0].limits.max_revocations_per_run:"
                " max_revocations_per_run counts across a file's groups: set it in the file-level"
                " limits (top of the file), not in a group"
            ],
            id="run-limit-in-a-group",
        ),
        pytest.param(
            "limits: {max_revocation_per_run: 10}\n" + HEAD,
            [
                "policies/p.yaml:1: limits.max_revocation_per_run: unknown key"
                " 'max_revocation_per_run' (did you mean 'max_revocations_per_run'?)"
            ],
            id="misspelt-file-limit",
        ),
        pytest.param(
            HEAD + "    allow_empty: maybe\n",
            ["policies/p.yaml:5: groups[0].allow_empty: expected true or false, got 'maybe'"],
            id="allow-empty-not-a-boolean",
        ),
    ],
)
def test_safety_key_errors(policies: Path, text: str, expected: list[str]) -> None:
    """Each mistake in the safety keys is reported once, at its file and line, with a fix."""
    write(policies, "p.yaml", text)
    assert problems_of(policies) == expected


def test_expires_given_as_a_number_is_refused(policies: Path) -> None:
    """A number is not an expiry: 20261231 must not be read as seconds since 1970."""
    write(
        policies,
        "p.yaml",
        EXCEPTION_HEAD
        + "      - protocol: tcp\n        ports: 22\n        from: 10.0.0.0/8\n"
        + "        expires: 20261231\n        reason: x\n"
        + "      - protocol: tcp\n        ports: 22\n        from: 10.0.0.0/8\n"
        + '        expires: "1767225600"\n        reason: x\n',
    )
    assert problems_of(policies) == [
        "policies/p.yaml:9: groups[0].exceptions[0].expires: expires must be a time with a"
        " timezone, e.g. 2026-12-31T00:00:00Z, not 20261231",
        "policies/p.yaml:14: groups[0].exceptions[1].expires: expires must be a time with a"
        " timezone, e.g. 2026-12-31T00:00:00Z, not '1767225600'",
    ]


def test_blank_reason_is_refused(policies: Path) -> None:
    """A reason of only spaces says nothing, so it counts as missing."""
    write(
        policies,
        "p.yaml",
        EXCEPTION_HEAD + "      - protocol: tcp\n        ports: 22\n        from: 10.0.0.0/8\n"
        '        expires: 2026-12-31T00:00:00Z\n        reason: "   "\n',
    )
    assert problems_of(policies) == [
        "policies/p.yaml:10: groups[0].exceptions[0].reason: String should have at least 1"
        " character"
    ]


def test_every_bad_exception_is_reported_together(policies: Path) -> None:
    """Two bad exceptions in one group give two problems, each at its own line."""
    write(
        policies,
        "p.yaml",
        EXCEPTION_HEAD
        + "      - {protocol: tcp, ports: 22, from: 10.0.0.0/8, reason: x}\n"
        + "      - {protocol: tcp, ports: 22, from: 10.0.0.0/8, expires: 2026-01-01T00:00:00Z}\n",
    )
    assert problems_of(policies) == [
        "policies/p.yaml:6: groups[0].exceptions[0].expires: required key 'expires' is missing",
        "policies/p.yaml:7: groups[0].exceptions[1].reason: required key 'reason' is missing",
    ]


# --- models --------------------------------------------------------------------------------


def test_exception_needs_a_non_empty_reason() -> None:
    """An empty reason is refused: every exception must say why it exists."""
    with pytest.raises(ValidationError) as info:
        exception(NOW, reason="")
    assert [(e["loc"], e["msg"]) for e in info.value.errors(include_url=False)] == [
        (("reason",), "String should have at least 1 character")
    ]


def test_exception_keys_follow_rule_syntax_per_direction() -> None:
    """An exception expands like a rule: one key per port range and peer, ingress or egress."""
    ingress = exception(NOW, ports=[22, "8000-8100"], sources=[OFFICE, "::/0"])
    assert list(ingress.rule_keys()) == [
        RuleKey(INGRESS, "tcp", 22, 22, OFFICE),
        RuleKey(INGRESS, "tcp", 22, 22, "::/0"),
        RuleKey(INGRESS, "tcp", 8000, 8100, OFFICE),
        RuleKey(INGRESS, "tcp", 8000, 8100, "::/0"),
    ]
    egress = RuleException.model_validate(
        {"protocol": "icmp", "icmp_type": 8, "to": "10.0.0.0/8", "expires": NOW, "reason": "r"}
    )
    assert list(egress.rule_keys()) == [RuleKey(EGRESS, "icmp", 8, -1, "10.0.0.0/8")]
    assert egress.peers() == ("10.0.0.0/8",)


def test_active_and_expired_exceptions_split_at_now() -> None:
    """An exception is active strictly before it expires; at its expiry time it has expired."""
    expiring_now = exception(NOW, ports=22)
    later = exception(NOW + timedelta(seconds=1), ports=443)
    web = group(exceptions=[expiring_now, later])
    ssh = RuleKey(INGRESS, "tcp", 22, 22, OFFICE)
    https = RuleKey(INGRESS, "tcp", 443, 443, OFFICE)
    assert web.active_exceptions(NOW) == {https: later}
    assert web.expired_exceptions(NOW) == {ssh: expiring_now}
    assert web.active_exceptions(NOW - timedelta(seconds=1)) == {ssh: expiring_now, https: later}
    assert web.expired_exceptions(NOW - timedelta(seconds=1)) == {}


def test_without_a_clock_every_exception_is_active() -> None:
    """With now None every exception counts as active and none as expired (the safe side)."""
    past = exception(datetime(2000, 1, 1, tzinfo=UTC), ports=22)
    web = group(exceptions=[past])
    assert web.active_exceptions(None) == {RuleKey(INGRESS, "tcp", 22, 22, OFFICE): past}
    assert web.expired_exceptions(None) == {}


def test_a_key_with_an_active_and_an_expired_exception_is_active() -> None:
    """A renewed exception (a new entry for the same rule) wins over the expired one."""
    old = exception(NOW - timedelta(days=1), reason="old")
    renewed = exception(NOW + timedelta(days=1), reason="renewed")
    web = group(exceptions=[old, renewed])
    key = RuleKey(INGRESS, "tcp", 8080, 8080, OFFICE)
    assert web.active_exceptions(NOW) == {key: renewed}
    assert web.expired_exceptions(NOW) == {}


def test_exception_times_in_other_zones_compare_as_instants() -> None:
    """An expiry written with an offset is compared as the instant it names."""
    plus_two = timezone(timedelta(hours=2))
    same_instant = exception(datetime(2024, 5, 1, 14, 0, tzinfo=plus_two))
    web = group(exceptions=[same_instant])
    assert web.active_exceptions(NOW) == {}
    assert web.active_exceptions(NOW - timedelta(microseconds=1)) != {}


def test_effective_groups_apply_the_file_per_group_limit() -> None:
    """effective_groups gives groups without a per-group limit the file's, keeping overrides."""
    file = PolicyFile(
        limits=FileLimits(max_revocations_per_group=7, max_revocations_per_run=9),
        groups=(
            group("plain"),
            group("own", limits={"max_revocations_per_group": 2}),
            group("blank", limits={}),
        ),
    )
    assert [g.max_revocations_per_group() for g in file.effective_groups()] == [7, 2, 7]
    assert [g.max_revocations_per_group() for g in file.groups] == [25, 2, 25]


def test_effective_groups_without_file_limits_are_the_groups() -> None:
    """A file without a per-group limit returns its groups unchanged."""
    groups = (group("a"), group("b", limits={"max_revocations_per_group": 4}))
    assert PolicyFile(groups=groups).effective_groups() == groups
    run_only = PolicyFile(limits=FileLimits(max_revocations_per_run=3), groups=groups)
    assert run_only.effective_groups() == groups


# --- expiring exceptions -------------------------------------------------------------------


def test_expiring_exceptions_finds_those_ending_within_the_window() -> None:
    """Exceptions valid now and ending within 7 days are found; expired and far ones are not."""
    week = timedelta(days=7)
    expired = exception(NOW - timedelta(days=1), reason="expired")
    at_now = exception(NOW, reason="expires exactly now")
    soon = exception(NOW + timedelta(hours=1), reason="soon")
    edge = exception(NOW + week, reason="exactly 7 days")
    far = exception(NOW + week + timedelta(seconds=1), reason="far")
    web = group("web", exceptions=[expired, at_now, soon, edge, far])
    db = group("db", exceptions=[far, soon])
    baseline = Baseline(policies=(web, db))
    found = baseline.expiring_exceptions(NOW, week)
    assert [(p.name, index, e.reason) for p, index, e in found] == [
        ("web", 2, "soon"),
        ("web", 3, "exactly 7 days"),
        ("db", 1, "soon"),
    ]
    assert found[0][0] is web
    assert found[0][2] is soon


def test_expiring_exceptions_is_empty_without_exceptions() -> None:
    """A baseline without exceptions has none expiring."""
    assert Baseline(policies=(group(),)).expiring_exceptions(NOW, timedelta(days=7)) == []


def test_safety_models_are_frozen() -> None:
    """Limits and exceptions cannot be changed after loading."""
    limits = GroupLimits(max_revocations_per_group=3)
    entry = exception(NOW)
    with pytest.raises(ValidationError):
        limits.max_revocations_per_group = 4
    with pytest.raises(ValidationError):
        entry.reason = "changed"
