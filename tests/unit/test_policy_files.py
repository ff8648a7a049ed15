"""Loading policy files: a valid Baseline, or every mistake as ``file:line: path: message``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from reconciler.adapters import yaml_models
from reconciler.adapters.policy_files import load_policies
from reconciler.core.errors import PolicyError, PolicyProblem
from reconciler.core.rules import Direction, RuleKey
from tests.policyfiles import problems_of, write

REPO = Path(__file__).resolve().parents[2]

VALID = """\
groups:
  - name: web-prod
    match:
      tags: {Name: web-prod}
    ingress:
      - protocol: tcp
        ports: 443
        from: [0.0.0.0/0]
"""


def group_yaml(name: str, tag: str) -> str:
    return textwrap.dedent(
        f"""\
          - name: {name}
            match: {{tags: {{Name: {tag}}}}}
            ingress: []
        """
    )


# --- loading a good baseline ---------------------------------------------------------------


def test_repo_policies_load_cleanly() -> None:
    """The example baseline shipped in policies/ is valid."""
    baseline = load_policies(REPO / "policies")
    assert [p.name for p in baseline.policies] == ["web-prod", "app-prod", "db-prod"]
    assert dict(baseline.sources) == {
        **dict.fromkeys(
            ["web-prod", "app-prod", "db-prod"], str(REPO / "policies" / "example.yaml")
        ),
        "no-internet-except-web": str(REPO / "policies" / "guardrails.yaml"),
    }
    app = baseline.by_name("app-prod")
    assert app.desired() == frozenset(
        {
            RuleKey(Direction.INGRESS, "tcp", 8000, 8100, "10.0.0.0/16"),
            RuleKey(Direction.INGRESS, "icmp", 8, -1, "10.0.0.0/8"),
            RuleKey(Direction.EGRESS, "all", None, None, "0.0.0.0/0"),
        }
    )
    assert baseline.by_name("db-prod").on_drift == "report"


def test_policies_load_in_file_then_document_order(policies: Path) -> None:
    """Policies come in file-name order, then in the order each file lists them."""
    write(policies, "b.yaml", "groups:\n" + group_yaml("b1", "b1") + group_yaml("b2", "b2"))
    write(policies, "a.yaml", "groups:\n" + group_yaml("a1", "a1"))
    baseline = load_policies(policies)
    assert [p.name for p in baseline.policies] == ["a1", "b1", "b2"]
    assert dict(baseline.sources) == {
        "a1": "policies/a.yaml",
        "b1": "policies/b.yaml",
        "b2": "policies/b.yaml",
    }


def test_yml_files_load_and_other_files_are_ignored(policies: Path) -> None:
    """Both .yaml and .yml (any case) are policy files; other files and subdirectories are not."""
    write(policies, "a.yaml", "groups:\n" + group_yaml("from-yaml", "a"))
    write(policies, "b.yml", "groups:\n" + group_yaml("from-yml", "b"))
    write(policies, "c.YML", "groups:\n" + group_yaml("from-upper-yml", "c"))
    write(policies, "README.md", "not: [yaml")
    write(policies, "old.yaml.bak", "not: [yaml")
    write(policies, "policy.json", "{")
    (policies / "nested.yaml").mkdir()
    write(policies / "nested.yaml", "inner.yaml", "not: [yaml")
    baseline = load_policies(policies)
    assert [p.name for p in baseline.policies] == ["from-yaml", "from-yml", "from-upper-yml"]


def test_string_directory_is_accepted(policies: Path) -> None:
    """load_policies takes a path given as a string, as the CLI passes it."""
    write(policies, "web.yaml", VALID)
    assert [p.name for p in load_policies("policies").policies] == ["web-prod"]


# --- a directory without a baseline --------------------------------------------------------


def test_missing_directory_is_an_error(policies: Path) -> None:
    """A policy path that does not exist is one error line, not treated as an empty baseline."""
    assert problems_of(Path("nope")) == [
        "nope: policy directory or file not found (use --policies DIR or --policies FILE.yaml)"
    ]


def test_a_single_policy_file_is_loaded(policies: Path) -> None:
    """A policy file given instead of a directory is loaded alone (validate --policies FILE)."""
    write(policies, "web.yaml", VALID)
    write(policies, "other.yaml", "groups:\n" + group_yaml("db", "db"))
    baseline = load_policies(policies / "web.yaml")
    assert [p.name for p in baseline.policies] == ["web-prod"]
    assert dict(baseline.sources) == {"web-prod": "policies/web.yaml"}


def test_a_single_policy_file_reports_its_mistakes(policies: Path) -> None:
    """A policy file given on its own is validated like one in a directory: file:line: path."""
    write(policies, "web.yaml", VALID.replace("0.0.0.0/0", "10.0.0.1/8"))
    assert problems_of(policies / "web.yaml") == [
        "policies/web.yaml:8: groups[0].ingress[0].from[0]: '10.0.0.1/8' has host bits set (did"
        " you mean 10.0.0.0/8?)"
    ]


def test_a_file_that_is_not_yaml_is_an_error(policies: Path) -> None:
    """A file without a .yaml/.yml suffix is one error line naming it, not parsed as YAML."""
    write(policies, "README.md", "# policies")
    assert problems_of(policies / "README.md") == [
        "policies/README.md: not a policy file (policy files end in .yaml or .yml); pass one,"
        " or the directory that holds them"
    ]


def test_directory_without_policy_files_is_an_error(policies: Path) -> None:
    """A directory with no *.yaml/*.yml files is refused rather than meaning 'nothing to do'."""
    write(policies, "README.md", "# policies")
    assert problems_of(policies) == [
        "policies: no policy files (*.yaml, *.yml) found; an empty baseline is refused"
        " rather than treated as 'nothing to do'"
    ]


# --- one bad file, exact message and line --------------------------------------------------


def test_host_bits_reported_with_file_line_and_path(policies: Path) -> None:
    """A CIDR with host bits set names its file, line, path and the network meant."""
    write(
        policies,
        "web.yaml",
        """\
        # Web tier.
        groups:
          - name: web-prod
            match:
              tags: {Name: web-prod}
            ingress:
              - protocol: tcp
                ports: 443
                from: [0.0.0.0/0]
              - protocol: tcp
                ports: 22
                from: [10.0.0.1/8]
        """,
    )
    assert problems_of(policies) == [
        "policies/web.yaml:12: groups[0].ingress[1].from[0]: '10.0.0.1/8' has host bits set"
        " (did you mean 10.0.0.0/8?)"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "groups:\n  - name: web\n    match: {tags: {Name: x}\n    ingress: []\n",
            "policies/p.yaml:4: YAML syntax error: expected ',' or '}', but got '<scalar>'"
            " (check indentation and quotes)",
            id="unclosed-flow-mapping",
        ),
        pytest.param(
            "groups:\n  - name: web\n   match: {}\n",
            "policies/p.yaml:3: YAML syntax error: expected <block end>, but found '<block"
            " mapping start>' (check indentation and quotes)",
            id="bad-indentation",
        ),
        pytest.param(
            "groups:\n\t- name: web\n",
            "policies/p.yaml:2: YAML syntax error: found character '\\t' that cannot start any"
            " token (check indentation and quotes)",
            id="tab",
        ),
        pytest.param(
            "",
            "policies/p.yaml:1: file is empty (add a 'groups:' list, or delete the file)",
            id="empty",
        ),
        pytest.param(
            "# only a comment\n\n",
            "policies/p.yaml:1: file is empty (add a 'groups:' list, or delete the file)",
            id="only-comments",
        ),
        pytest.param(
            "- name: web\n- name: db\n",
            "policies/p.yaml:1: top level is a list, not a mapping (start with 'groups:')",
            id="top-level-list",
        ),
        pytest.param(
            "# a string\nhello\n",
            "policies/p.yaml:2: top level is a string, not a mapping (start with 'groups:')",
            id="top-level-string",
        ),
        pytest.param(
            "42\n",
            "policies/p.yaml:1: top level is a int, not a mapping (start with 'groups:')",
            id="top-level-number",
        ),
        pytest.param(
            "groups: []\n",
            "policies/p.yaml:1: groups: groups is empty (add at least one group, or delete the"
            " file)",
            id="groups-empty",
        ),
        pytest.param(
            "groups: 3\n",
            "policies/p.yaml:1: groups: expected a list, got int",
            id="groups-not-a-list",
        ),
        pytest.param(
            "groups:\n  - null\n",
            "policies/p.yaml:2: groups[0]: expected a mapping, got NoneType",
            id="group-null",
        ),
        pytest.param(
            "groups:\n  - name: web\n    name: web2\n    match: {tags: {Name: x}}\n"
            "    ingress: []\n",
            "policies/p.yaml:3: groups[0].name: duplicate key 'name' (the later value would"
            " silently win)",
            id="duplicate-yaml-key",
        ),
        pytest.param(
            "groups:\n  - name: web\n    match:\n      tags:\n        Name: a\n        Name: b\n"
            "    ingress: []\n",
            "policies/p.yaml:6: groups[0].match.tags.Name: duplicate key 'Name' (the later"
            " value would silently win)",
            id="duplicate-tag-key",
        ),
    ],
)
def test_file_level_errors(policies: Path, text: str, expected: str) -> None:
    """Syntax errors, empty files, non-mappings and duplicate keys are reported at their line."""
    write(policies, "p.yaml", text)
    assert problems_of(policies) == [expected]


RULE_HEAD = """\
groups:
  - name: web
    match: {tags: {Name: web}}
    ingress:
"""


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        pytest.param(
            "      - {protocol: tcp, ports: 70000, from: 10.0.0.0/8}\n",
            ["policies/p.yaml:5: groups[0].ingress[0].ports: port 70000 is out of range (0-65535)"],
            id="port-out-of-range",
        ),
        pytest.param(
            "      - protocol: tcp\n        ports: '100-65536'\n        from: 10.0.0.0/8\n",
            [
                "policies/p.yaml:6: groups[0].ingress[0].ports: port '65536' is out of range"
                " (0-65535)"
            ],
            id="range-end-out-of-range",
        ),
        pytest.param(
            "      - protocol: tcp\n        ports: '200-100'\n        from: 10.0.0.0/8\n",
            [
                "policies/p.yaml:6: groups[0].ingress[0].ports: port range '200-100' is reversed"
                " (did you mean 100-200?)"
            ],
            id="reversed-range",
        ),
        pytest.param(
            "      - protocol: all\n        ports: 22\n        from: 10.0.0.0/8\n",
            [
                "policies/p.yaml:5: groups[0].ingress[0]: ports is not allowed with protocol all"
                " (protocol all covers every port; remove ports)"
            ],
            id="ports-with-all",
        ),
        pytest.param(
            "      - protocol: tcp\n        from: 10.0.0.0/8\n",
            [
                "policies/p.yaml:5: groups[0].ingress[0]: protocol tcp needs ports (443,"
                ' "8000-8100" or all)'
            ],
            id="tcp-without-ports",
        ),
        pytest.param(
            "      - {protocol: gre, from: 10.0.0.0/8}\n",
            [
                "policies/p.yaml:5: groups[0].ingress[0].protocol: unknown protocol 'gre' (use"
                " tcp, udp, icmp, icmpv6, all, or a number 0-255)"
            ],
            id="unknown-protocol",
        ),
        pytest.param(
            "      - protocol: tcp\n        ports: 22\n        from:\n          - 10.0.0.0/8\n"
            "          - 10.0.0.0/33\n          - 10.0.0.1\n          - sg-123\n"
            "          - 2001:db8::1/32\n",
            [
                "policies/p.yaml:9: groups[0].ingress[0].from[1]: '10.0.0.0/33' is not a valid"
                " CIDR ('10.0.0.0/33' does not appear to be an IPv4 or IPv6 network)",
                "policies/p.yaml:10: groups[0].ingress[0].from[2]: '10.0.0.1' is not a CIDR,"
                " sg-… or pl-… (did you mean 10.0.0.1/32?)",
                "policies/p.yaml:11: groups[0].ingress[0].from[3]: 'sg-123' is not a valid id"
                " (expected sg-/pl- followed by 8 or 17 hex digits, or 123456789012/sg-… for"
                " another account's group)",
                "policies/p.yaml:12: groups[0].ingress[0].from[4]: '2001:db8::1/32' has host"
                " bits set (did you mean 2001:db8::/32?)",
            ],
            id="bad-peers-each-at-its-line",
        ),
        pytest.param(
            "      - {protocol: tcp, ports: 22, from: []}\n",
            ["policies/p.yaml:5: groups[0].ingress[0].from: must not be empty"],
            id="empty-from",
        ),
        pytest.param(
            "      - protocol: tcp\n        port: 22\n        from: 10.0.0.0/8\n",
            [
                "policies/p.yaml:6: groups[0].ingress[0].port: unknown key 'port' (did you"
                " mean 'ports'?)"
            ],
            id="unknown-rule-key",
        ),
        pytest.param(
            "      - {protocol: tcp, ports: 22, sources: 10.0.0.0/8}\n",
            [
                "policies/p.yaml:5: groups[0].ingress[0].from: required key 'from' is missing",
                "policies/p.yaml:5: groups[0].ingress[0].sources: unknown key 'sources'"
                " (allowed: description, from, icmp_code, icmp_type, ports, protocol, within)",
            ],
            id="unknown-rule-key-without-close-match",
        ),
        pytest.param(
            "      - {protocol: icmp, icmp_code: 0, from: 10.0.0.0/8}\n",
            [
                "policies/p.yaml:5: groups[0].ingress[0]: icmp_code needs an icmp_type (a code"
                " belongs to one type)"
            ],
            id="icmp-code-without-type",
        ),
    ],
)
def test_rule_errors(policies: Path, rules: str, expected: list[str]) -> None:
    """Rule mistakes name the line of the offending value and say how to fix it."""
    write(policies, "p.yaml", RULE_HEAD + rules)
    assert problems_of(policies) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "groups:\n  - name: web\n    match: {tags: {Name: x}}\n    ingres: []\n",
            [
                "policies/p.yaml:2: groups[0].ingress: required key 'ingress' is missing",
                "policies/p.yaml:4: groups[0].ingres: unknown key 'ingres' (did you mean"
                " 'ingress'?)",
            ],
            id="misspelt-ingress",
        ),
        pytest.param(
            "group:\n  - name: web\n",
            [
                "policies/p.yaml:1: group: unknown key 'group' (did you mean 'groups'?)",
            ],
            id="misspelt-groups",
        ),
        pytest.param(
            "groups:\n  - name: web\n    match: {tag: {Name: x}}\n    ingress: []\n",
            [
                "policies/p.yaml:3: groups[0].match.tag: unknown key 'tag' (did you mean 'tags'?)",
            ],
            id="misspelt-tags",
        ),
        pytest.param(
            "groups:\n  - name: web\n    match: {tags: {Name: x}}\n    ingress: []\n"
            "    owner: me\n",
            [
                "policies/p.yaml:5: groups[0].owner: unknown key 'owner' (allowed:"
                " allow_empty, description, egress, exceptions, ingress, limits, match, name,"
                " on_drift, restore_missing)"
            ],
            id="unknown-group-key",
        ),
        pytest.param(
            "groups:\n  - name: web\n    match: {}\n    ingress: []\n",
            [
                "policies/p.yaml:3: groups[0].match: match needs at least one of tags,"
                " group_ids or vpc_id (an empty match would govern every group)"
            ],
            id="empty-match",
        ),
        pytest.param(
            "groups:\n  - name: web\n    match:\n      group_ids: [sg-12]\n"
            "      vpc_id: vpc-zz\n    ingress: []\n",
            [
                "policies/p.yaml:4: groups[0].match.group_ids[0]: 'sg-12' is not a security"
                " group id (sg- and 8 or 17 hex digits)",
                "policies/p.yaml:5: groups[0].match.vpc_id: 'vpc-zz' is not a VPC id (vpc- and"
                " 8 or 17 hex digits)",
            ],
            id="bad-ids",
        ),
        pytest.param(
            "groups:\n  - name: web\n    match:\n      tags: {Port: 443}\n    ingress: []\n",
            [
                "policies/p.yaml:4: groups[0].match.tags: tag 'Port' has value 443, which is not"
                " a string (quote it in YAML)"
            ],
            id="tag-value-not-a-string",
        ),
        pytest.param(
            "groups:\n  - name: web\n    match: {tags: {Name: x}}\n    ingress: []\n"
            "    egress: none\n",
            [
                "policies/p.yaml:5: groups[0].egress: egress must be a list of rules or"
                " 'unmanaged', not 'none'"
            ],
            id="egress-bad-string",
        ),
        pytest.param(
            "groups:\n  - name: web\n    match: {tags: {Name: x}}\n    ingress: []\n"
            "    on_drift: fix\n",
            [
                "policies/p.yaml:5: groups[0].on_drift: Input should be 'revoke' or 'report',"
                " got 'fix'"
            ],
            id="bad-on-drift",
        ),
        pytest.param(
            "groups:\n  - name: 'web prod'\n    match: {tags: {Name: x}}\n    ingress: []\n",
            [
                "policies/p.yaml:2: groups[0].name: 'web prod' is not a valid policy name"
                " (letters, digits, '.', '_', '-'; at most 128)"
            ],
            id="bad-name",
        ),
        pytest.param(
            "groups:\n  - name: 5\n    match: {tags: {Name: x}}\n    ingress: []\n",
            [
                "policies/p.yaml:2: groups[0].name: input should be a valid string, got 5"
                " (quote strings in YAML)"
            ],
            id="name-not-a-string",
        ),
        pytest.param(
            "groups:\n  - name: web\n    match: {tags: {Name: x}}\n    ingress: []\n"
            "  - name: db\n    match: {tags: {Name: y}}\n    ingress: []\n"
            "  - name: web\n    match: {tags: {Name: z}}\n    ingress: []\n",
            [
                "policies/p.yaml:8: groups[2].name: duplicate policy name 'web' (also at"
                " policies/p.yaml:2); names must be unique across all files"
            ],
            id="duplicate-name-in-one-file",
        ),
    ],
)
def test_group_errors(policies: Path, text: str, expected: list[str]) -> None:
    """Group mistakes (unknown keys with a suggestion, bad selectors, bad names) are reported."""
    write(policies, "p.yaml", text)
    assert problems_of(policies) == expected


def test_unreadable_file_is_reported(policies: Path) -> None:
    """A file that is not UTF-8 is reported by name instead of crashing the run."""
    (policies / "bad.yaml").write_bytes(b"\xffgroups: []\n")
    assert problems_of(policies) == [
        "policies/bad.yaml: cannot read file: 'utf-8' codec can't decode byte 0xff in"
        " position 0: invalid start byte"
    ]


# --- several files -------------------------------------------------------------------------


def test_duplicate_policy_names_across_files_name_both_files(policies: Path) -> None:
    """A policy name used in two files is an error at the second that names the first's line."""
    write(policies, "a.yaml", "groups:\n" + group_yaml("web", "a"))
    write(policies, "b.yaml", "groups:\n" + group_yaml("db", "b") + group_yaml("web", "c"))
    assert problems_of(policies) == [
        "policies/b.yaml:5: groups[1].name: duplicate policy name 'web' (also at"
        " policies/a.yaml:2); names must be unique across all files"
    ]


def test_duplicate_policy_name_is_reported_with_the_other_mistakes(policies: Path) -> None:
    """A duplicate name comes back in the same run as the other mistakes, even in a bad file."""
    write(policies, "a.yaml", "groups:\n" + group_yaml("web", "a"))
    write(
        policies,
        "b.yaml",
        "groups:\n  - name: web\n    match: {tags: {Name: b}}\n    ingress: []\n"
        "  - name: db\n    match: {tags: {Name: db}}\n    ingress: []\n    colour: red\n",
    )
    write(policies, "c.yaml", "groups:\n  - name: web\n    match: {}\n    ingress: []\n")
    assert problems_of(policies) == [
        "policies/b.yaml:8: groups[1].colour: unknown key 'colour' (allowed: allow_empty,"
        " description, egress, exceptions, ingress, limits, match, name, on_drift,"
        " restore_missing)",
        "policies/b.yaml:2: groups[0].name: duplicate policy name 'web' (also at"
        " policies/a.yaml:2); names must be unique across all files",
        "policies/c.yaml:3: groups[0].match: match needs at least one of tags, group_ids or"
        " vpc_id (an empty match would govern every group)",
        "policies/c.yaml:2: groups[0].name: duplicate policy name 'web' (also at"
        " policies/a.yaml:2); names must be unique across all files",
    ]


def test_every_error_in_every_file_is_reported_together(policies: Path) -> None:
    """All mistakes across all files come back in one PolicyError, in file order."""
    write(policies, "a.yaml", "groups: []\n")
    write(policies, "b.yaml", VALID)
    write(policies, "c.yml", "groups:\n  - name: x\n   bad\n")
    write(
        policies,
        "d.yaml",
        RULE_HEAD
        + "      - {protocol: tcp, ports: 70000, from: 10.0.0.0/8}\n"
        + "      - {protocol: all, ports: 22, from: 10.0.0.1/8}\n",
    )
    write(policies, "e.yaml", "")
    with pytest.raises(PolicyError) as info:
        load_policies(policies)
    expected = [
        "policies/a.yaml:1: groups: groups is empty (add at least one group, or delete the file)",
        "policies/c.yml:3: YAML syntax error: expected <block end>, but found '<scalar>' (check"
        " indentation and quotes)",
        "policies/d.yaml:5: groups[0].ingress[0].ports: port 70000 is out of range (0-65535)",
        "policies/d.yaml:6: groups[0].ingress[1].from[0]: '10.0.0.1/8' has host bits set (did"
        " you mean 10.0.0.0/8?)",
        "policies/e.yaml:1: file is empty (add a 'groups:' list, or delete the file)",
    ]
    assert [str(p) for p in info.value.problems] == expected
    assert str(info.value) == "\n".join(expected)


def test_problems_carry_structured_fields(policies: Path) -> None:
    """Each problem keeps file, line, path and message apart for programs (JSON, annotations)."""
    write(policies, "web.yaml", RULE_HEAD + "      - {protocol: tcp, ports: 70000, from: '::/0'}\n")
    with pytest.raises(PolicyError) as info:
        load_policies(policies)
    assert info.value.problems == (
        PolicyProblem(
            "policies/web.yaml",
            5,
            "groups[0].ingress[0].ports",
            "port 70000 is out of range (0-65535)",
        ),
    )


# --- YAML features the loader must refuse politely -----------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "groups:\n  - name: web\n    match: {tags: {Name: !Ref WebName}}\n    ingress: []\n",
            "policies/p.yaml:3: groups[0].match.tags.Name: cannot read 'WebName' as !Ref"
            " (remove the tag or quote the value)",
            id="unknown-local-tag",
        ),
        pytest.param(
            "groups: !!python/object:os.system x\n",
            "policies/p.yaml:1: groups: cannot read 'x' as tag:yaml.org,2002:python/object:"
            "os.system (remove the tag or quote the value)",
            id="python-tag",
        ),
        pytest.param(
            "groups:\n  - name: web\n    match: {tags: {Name: x}}\n    ingress:\n"
            "      - {protocol: tcp, ports: !!int eighty, from: 10.0.0.0/8}\n",
            "policies/p.yaml:5: groups[0].ingress[0].ports: cannot read 'eighty' as"
            " tag:yaml.org,2002:int (remove the tag or quote the value)",
            id="bad-int-tag",
        ),
        pytest.param(
            "groups:\n  - name: web\n    description: !!timestamp yesterday\n"
            "    match: {tags: {Name: x}}\n    ingress: []\n",
            "policies/p.yaml:3: groups[0].description: cannot read 'yesterday' as"
            " tag:yaml.org,2002:timestamp (remove the tag or quote the value)",
            id="bad-timestamp-tag",
        ),
        pytest.param(
            "defaults: &rule {protocol: tcp, ports: 443}\n"
            "groups:\n  - name: web\n    match: {tags: {Name: x}}\n    ingress:\n"
            "      - <<: *rule\n        from: 10.0.0.0/8\n",
            "policies/p.yaml:6: groups[0].ingress[0]: YAML merge keys (<<) are not supported;"
            " write the keys out",
            id="merge-key",
        ),
        pytest.param(
            "groups:\n  - &web\n    name: web\n    match: {tags: {Name: x}}\n    ingress: [*web]\n",
            "policies/p.yaml:2: groups[0].ingress[0]: an alias refers to the anchor that"
            " contains it (a value cannot contain itself)",
            id="recursive-alias",
        ),
    ],
)
@pytest.mark.parametrize("loader", ["libyaml", "pure"])
def test_yaml_tags_merges_and_recursive_aliases_are_policy_errors(
    policies: Path, text: str, expected: str, loader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tags PyYAML cannot build, merge keys and self-referencing aliases are reported, the
    same way whether libyaml or the pure-Python loader composes the file."""
    if loader == "pure":
        monkeypatch.setattr(yaml_models, "COMPOSE_LOADER", yaml.SafeLoader)
    write(policies, "p.yaml", text)
    assert problems_of(policies) == [expected]


def test_libyaml_composes_when_available() -> None:
    """PyYAML's C loader composes the files when libyaml is installed (it keeps line numbers)."""
    expected = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader
    assert yaml_models.COMPOSE_LOADER is expected


@pytest.mark.parametrize("loader", ["libyaml", "pure"])
def test_syntax_errors_read_the_same_with_either_loader(
    policies: Path, loader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A syntax error has the same words and line whichever loader is installed."""
    if loader == "pure":
        monkeypatch.setattr(yaml_models, "COMPOSE_LOADER", yaml.SafeLoader)
    write(policies, "c.yml", "groups:\n  - name: x\n   bad\n")
    assert problems_of(policies) == [
        "policies/c.yml:3: YAML syntax error: expected <block end>, but found '<scalar>' (check"
        " indentation and quotes)"
    ]


def test_empty_group_ids_is_an_error_not_a_policy_that_matches_nothing(policies: Path) -> None:
    """``group_ids: []`` beside tags is refused: the policy would silently govern nothing."""
    write(
        policies,
        "p.yaml",
        "groups:\n  - name: web\n    match:\n      tags: {Name: web}\n      group_ids: []\n"
        "    ingress: []\n",
    )
    assert problems_of(policies) == [
        "policies/p.yaml:5: groups[0].match.group_ids: must not be empty"
    ]
