"""The CLI's exit codes, messages and JSON contract, in-process against moto."""

from __future__ import annotations

import http.server
import io
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.cli import main
from tests.policyfiles import write_policies
from tests.world import REGION, World, ingress

pytestmark = pytest.mark.fake_ec2  # decisions: the in-memory EC2 of tests/fake_ec2.py

POLICY = """
groups:
  - name: web-prod
    match: {tags: {Name: prod-sg}}
    ingress:
      - {protocol: tcp, ports: 443, from: [0.0.0.0/0, "::/0"], description: public HTTPS}
"""
KEEP = [ingress("tcp", (443, 443), "0.0.0.0/0"), ingress("tcp", (443, 443), "::/0")]
SSH = ingress("tcp", (22, 22), "0.0.0.0/0")
JSON_KEYS = {
    "action",
    "region",
    "group_id",
    "policy",
    "guardrail",
    "rule_id",
    "direction",
    "protocol",
    "from_port",
    "to_port",
    "source",
    "description",
    "reason",
}


def test_plan_exits_2_on_drift_and_prints_the_revoke_line(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """plan shows each revoke with its rule id and reason, a summary, and exits 2."""
    policies = write_policies(tmp_path / "p", POLICY)
    group = world.group("web", {"Name": "prod-sg"}, [*KEEP, (SSH, "temp")])
    code = main(["plan", "--policies", str(policies), "--region", REGION])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert code == 2
    assert lines[0] == f"{REGION} {group} (policy web-prod)"
    assert lines[1].startswith("  - revoke   sgr-")
    assert lines[1].endswith("ingress tcp 22 from 0.0.0.0/0  (not in policy web-prod)")
    assert lines[-1] == "Plan: 1 to revoke, 0 missing, 0 excepted, 0 blocked in 1 groups."
    assert "\x1b[" not in out


def test_plan_exits_0_when_there_is_no_drift(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """plan exits 0 and says so when every managed group matches."""
    policies = write_policies(tmp_path / "p", POLICY)
    world.group("web", {"Name": "prod-sg"}, KEEP)
    assert main(["plan", "--policies", str(policies), "--region", REGION]) == 0
    assert capsys.readouterr().out == "No drift: 1 managed groups match the baseline.\n"


def test_plan_json_is_the_public_contract(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """plan --output json emits changes with exactly the documented keys, errors and summary."""
    policies = write_policies(tmp_path / "p", POLICY)
    group = world.group("web", {"Name": "prod-sg"}, [*KEEP, (SSH, "temp")])
    world.authorize(group, ingress("all", None, "::/0"))
    code = main(["plan", "--policies", str(policies), "--region", REGION, "--output", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 2
    assert set(doc) == {"changes", "errors", "summary"}
    assert doc["errors"] == []
    assert all(set(c) == JSON_KEYS for c in doc["changes"])
    by_proto = {c["protocol"]: c for c in doc["changes"]}
    assert by_proto["all"]["from_port"] is None
    assert by_proto["all"]["to_port"] is None
    assert by_proto["all"]["source"] == "::/0"
    ssh = by_proto["tcp"]
    assert (ssh["action"], ssh["direction"], ssh["from_port"], ssh["to_port"]) == (
        "revoke",
        "ingress",
        22,
        22,
    )
    assert (ssh["group_id"], ssh["policy"], ssh["description"]) == (group, "web-prod", "temp")
    assert ssh["rule_id"].startswith("sgr-")
    assert doc["summary"]["to_revoke"] == 2


def test_apply_then_plan_is_clean_and_apply_json_has_status(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """apply exits 0, every change says revoked, and the next plan exits 0."""
    policies = write_policies(tmp_path / "p", POLICY)
    group = world.group("web", {"Name": "prod-sg"}, [*KEEP, SSH])
    code = main(["apply", "--policies", str(policies), "--region", REGION, "--output", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [c["status"] for c in doc["changes"]] == ["revoked"]
    assert doc["summary"]["statuses"] == {"revoked": 1}
    assert world.live(group) >= set(KEEP)
    assert SSH not in world.live(group)
    assert main(["plan", "--policies", str(policies), "--region", REGION]) == 0


def test_invalid_policies_exit_1_with_file_line_errors_and_change_nothing(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """apply on a broken baseline prints every error with file:line and revokes nothing."""
    policies = write_policies(tmp_path / "p", POLICY.replace("0.0.0.0/0,", "10.0.0.1/8,"))
    group = world.group("web", {"Name": "prod-sg"}, [*KEEP, SSH])
    code = main(["apply", "--policies", str(policies), "--region", REGION])
    err = capsys.readouterr().err.splitlines()
    assert code == 1
    assert err[0] == (
        f"{policies / 'policies.yaml'}:6: groups[0].ingress[0].from[0]: '10.0.0.1/8' has host"
        " bits set (did you mean 10.0.0.0/8?)"
    )
    assert err[-1] == f"error: 1 problem(s) in {policies}; nothing was changed"
    assert SSH in world.live(group)


def test_validate_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """validate exits 0 on a valid directory and 1 on an empty one."""
    good = write_policies(tmp_path / "good", POLICY)
    assert main(["validate", "--policies", str(good)]) == 0
    assert capsys.readouterr().out == "OK: 1 policies in 1 files\n"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["validate", "--policies", str(empty)]) == 1
    assert "no policy files (*.yaml, *.yml) found" in capsys.readouterr().err


def test_no_region_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aws: None
) -> None:
    """Without --region or a session region, plan stops with a one-line hint."""
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION")
    policies = write_policies(tmp_path / "p", POLICY)
    out, err = io.StringIO(), io.StringIO()
    assert main(["plan", "--policies", str(policies)], out=out, err=err) == 1
    assert err.getvalue() == (
        "error: no region: pass --region R or set AWS_REGION / AWS_DEFAULT_REGION\n"
    )
    assert out.getvalue() == ""


def test_python_dash_m_runs_the_cli() -> None:
    """`python -m reconciler --version` works like the console script."""
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout.startswith("sg-reconciler ")


def test_demo_finds_and_revokes_drift(capsys: pytest.CaptureFixture[str]) -> None:
    """The demo runs plan -> apply -> plan on the example policies and succeeds."""
    policies = Path(__file__).parents[2] / "policies"
    assert main(["demo", "--policies", str(policies)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "Simulated AWS account in us-east-1 with 4 security groups:"
    assert "{'" not in out  # no Python dict (or any repr) is printed
    assert "$ sg-reconciler plan --policies" in out  # each step shows the command it runs
    assert "(exit code 2)" in out
    assert out.rstrip().endswith(
        "Demo finished: drift found, revoked, reverted on its event, an unmanaged group and"
        " a retag escape caught by the guardrail, a mass change blocked, and an apply undone."
    )
    assert "Groups no policy manages (guardrails only):" in out
    assert "Unmanaged group legacy-tools still has its tcp 22 from the world: False" in out
    assert "Notification: sg-reconciler LEFT BASELINE: sg-" in out
    assert "still on the retagged group: False" in out
    assert "[blocked: max_revocations_per_group=25 (30 revokes planned)]" in out
    assert "Restore: 3 restored, 0 already present, 0 group gone, 0 failed" in out
    assert "Notification: sg-reconciler AUTO-MITIGATED: revoked 1 rule(s) on sg-" in out


class _Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def html_endpoint() -> Iterator[str]:
    """A local web server that answers every request with a 200 HTML page (not AWS)."""

    class Page(http.server.BaseHTTPRequestHandler):
        def _page(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b"<html><body><h1>Welcome to nginx!</h1></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _page  # noqa: N815 - the names http.server calls

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _aws_command(name: str, tmp_path: Path) -> list[str]:
    """``name`` with every option it needs to get as far as talking to AWS."""
    policies = str(write_policies(tmp_path / "p", POLICY))
    event = tmp_path / "event.json"
    event.write_text('{"source": "aws.s3", "detail-type": "Object Created", "detail": {}}')
    return {
        "plan": ["plan", "--policies", policies],
        "apply": ["apply", "--policies", policies, "--journal", str(tmp_path / "j.jsonl")],
        "undo": ["undo", "--journal", str(tmp_path / "j.jsonl")],
        "restore": ["restore", "--journal", str(tmp_path / "j.jsonl")],
        "import": ["import", "--group-id", "sg-0123456789abcdef0"],
        "handle-event": ["handle-event", str(event), "--policies", policies],
        "deploy": ["deploy", "--stack-name", "s", "--policies", policies],
    }[name]


@pytest.mark.parametrize(
    "command", ["plan", "apply", "undo", "restore", "import", "handle-event", "deploy"]
)
def test_a_missing_profile_is_one_error_line_on_every_aws_command(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--profile nosuch prints one `error:` line naming the profile and exits 1, no traceback."""
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    out, err = io.StringIO(), io.StringIO()
    argv = [*_aws_command(command, tmp_path), "--region", REGION, "--profile", "nosuch"]
    assert main(argv, out=out, err=err) == 1
    assert err.getvalue() == (
        "error: --profile nosuch: no such profile in the AWS config files"
        " (`aws configure list-profiles` lists them)\n"
    )
    assert out.getvalue() == ""


@pytest.mark.parametrize("command", ["plan", "apply", "import"])
def test_an_endpoint_answering_html_is_one_error_line_and_apply_leaves_no_journal(
    command: str, tmp_path: Path, html_endpoint: str
) -> None:
    """A web page instead of the EC2 API is one `error:` line, exit 1; apply keeps no journal."""
    out, err = io.StringIO(), io.StringIO()
    argv = [*_aws_command(command, tmp_path), "--region", REGION, "--endpoint-url", html_endpoint]
    assert main(argv, out=out, err=err) == 1
    assert err.getvalue() == (
        f"error: --endpoint-url {html_endpoint} answered a web page (text/html, HTTP 200),"
        " not an AWS API response; check the URL\n"
    )
    assert out.getvalue() == ""
    assert not (tmp_path / "j.jsonl").exists()


def test_apply_dry_run_says_dry_run_in_its_summary_and_changes_nothing(
    tmp_path: Path, world: World
) -> None:
    """apply --dry-run ends with a `Dry run:` summary saying nothing changed, and exits 0."""
    policies = write_policies(tmp_path / "p", POLICY)
    group = world.group("web", {"Name": "prod-sg"}, [*KEEP, SSH])
    out = io.StringIO()
    argv = ["apply", "--dry-run", "--policies", str(policies), "--region", REGION]
    assert main(argv, out=out, err=io.StringIO()) == 0
    assert out.getvalue().splitlines()[-1] == (
        "Dry run: 1 to revoke, 0 missing, 0 excepted, 0 blocked in 1 groups; nothing was changed."
    )
    assert SSH in world.live(group)


def test_on_a_terminal_info_logs_need_verbose_or_a_log_level(
    tmp_path: Path, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a TTY plan's stderr has no run_summary log unless -v or SG_RECONCILER_LOG_LEVEL."""
    monkeypatch.delenv("SG_RECONCILER_LOG_LEVEL", raising=False)
    policies = write_policies(tmp_path / "p", POLICY)
    world.group("web", {"Name": "prod-sg"}, KEEP)
    plan = ["plan", "--policies", str(policies), "--region", REGION]
    for argv, shown in ((plan, False), ([*plan, "-v"], True), (["--verbose", *plan], True)):
        err = _Terminal()
        assert main(argv, out=io.StringIO(), err=err) == 0
        assert ("run_summary" in err.getvalue()) is shown, argv
    monkeypatch.setenv("SG_RECONCILER_LOG_LEVEL", "INFO")
    err = _Terminal()
    assert main(plan, out=io.StringIO(), err=err) == 0
    assert "run_summary" in err.getvalue()


def test_validate_policies_given_one_file_validates_that_file(tmp_path: Path) -> None:
    """validate --policies FILE checks that one file; a missing path is one error line."""
    policy = write_policies(tmp_path / "p", POLICY) / "policies.yaml"
    out, err = io.StringIO(), io.StringIO()
    assert main(["validate", "--policies", str(policy)], out=out, err=err) == 0
    assert (out.getvalue(), err.getvalue()) == ("OK: 1 policies in 1 files\n", "")
    missing = tmp_path / "nope"
    out, err = io.StringIO(), io.StringIO()
    assert main(["validate", "--policies", str(missing)], out=out, err=err) == 1
    assert out.getvalue() == ""
    assert (
        err.getvalue()
        .splitlines()[0]
        .endswith("policy directory or file not found (use --policies DIR or --policies FILE.yaml)")
    )
