"""``sg-reconciler demo``: the whole loop on an in-process simulated AWS account (moto).

Each step is a real command, run through ``reconciler.cli.main`` with the demo's own
streams, and printed as a person would see it: the command, its output, its exit code.
"""

from __future__ import annotations

__all__ = ["run"]

import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.cli.console import EXIT_ERROR, EXIT_OK, CommandError
from reconciler.cli.options import load_baseline
from reconciler.core.rules import Direction, RuleKey
from reconciler.demo import (
    BYSTANDER,
    REGION,
    DemoUnavailable,
    Inbox,
    World,
    cloudtrail_event,
    simulated_account,
    tag_event,
)
from reconciler.resources import example_policies

if TYPE_CHECKING:
    import argparse

    import boto3

    from reconciler.cli.console import Console

MASS_PORTS = range(9000, 9030)  # more than max_revocations_per_group (25) at once
SSH_TO_THE_WORLD = RuleKey(Direction.INGRESS, "tcp", 22, 22, "0.0.0.0/0")


def run(args: argparse.Namespace, console: Console) -> int:
    """Build the simulated account, inject drift, tell the story; 0 when every step held."""
    # Outside a checkout there is no ./policies: the story is told on the shipped example.
    implicit = args.policies == Path("policies") and not args.policies.exists()
    policies = example_policies() if implicit else args.policies
    baseline = load_baseline(policies, console)
    if baseline is None:
        return EXIT_ERROR
    quiet_logs = (
        {} if "SG_RECONCILER_LOG_LEVEL" in os.environ else {"SG_RECONCILER_LOG_LEVEL": "ERROR"}
    )
    try:
        with simulated_account(quiet_logs), tempfile.TemporaryDirectory(prefix="sg-demo-") as tmp:
            import boto3  # noqa: PLC0415 - only the commands that talk to AWS load it

            session = boto3.Session(region_name=REGION)
            world = World.build(session.client("ec2"), baseline)
            world.inject_drift()
            held = Story(console, policies, Path(tmp), world, session).tell()
    except DemoUnavailable as exc:
        raise CommandError(str(exc)) from None
    if all(held):
        console.print(
            "\nDemo finished: drift found, revoked, reverted on its event, an unmanaged group and"
            " a retag escape caught by the guardrail, a mass change blocked, and an apply undone."
        )
        return EXIT_OK
    console.print("\nDemo FAILED: see above.")
    return EXIT_ERROR


@dataclass(frozen=True, slots=True)
class Story:
    """The demo's steps in the simulated account; each says whether it went as told."""

    console: Console
    policies: Path
    scratch: Path
    world: World
    session: boto3.Session

    @property
    def journal(self) -> Path:
        """Where the demo's apply journals its revokes (and undo reads them back)."""
        return self.scratch / "journal.jsonl"

    def tell(self) -> list[bool]:
        """Every step in order; the list of whether each held."""
        self.introduce()
        return [
            self.command("plan (drift expected: exit code 2)", ["plan"]) == 2,
            self.command("apply", ["apply", "--journal", str(self.journal)]) == 0,
            self.command("plan again (clean: exit code 0)", ["plan"]) == 0,
            self.bystander_guarded(),
            self.event_reverted(),
            self.retag_escape_caught(),
            self.mass_change_blocked(),
            self.undone(),
        ]

    def introduce(self) -> None:
        """Which groups exist, and the drift someone made by hand."""
        groups = self.world.groups
        self.console.print(f"Simulated AWS account in {REGION} with {len(groups)} security groups:")
        for name, group_id in groups.items():
            managed = "no policy matches it" if name == BYSTANDER else f"policy {name}"
            self.console.print(f"  {group_id}  {name} ({managed})")
        self.console.print(
            "Someone opened tcp 22 and all traffic on web-prod, RDP over IPv6, ssh on app-prod,"
            " smtp egress on app-prod, and ssh on the unmanaged group legacy-tools."
        )

    def command(self, title: str, argv: list[str], *, show: int | None = None) -> int:
        """Run ``sg-reconciler <argv>`` in the simulated account and print what it printed.

        plan/apply get the policies and the region; ``show`` keeps that many lines at each
        end of a long output.
        """
        from reconciler.cli import main  # noqa: PLC0415 - the CLI runs this module

        if argv[0] in ("plan", "apply", "handle-event"):
            argv = [*argv, "--policies", str(self.policies), "--region", REGION]
        self.console.print(f"\n=== sg-reconciler {title}")
        self.console.print("$ sg-reconciler " + " ".join(self._shown(argv)))
        printed = io.StringIO()
        code = main(argv, out=printed, err=printed)
        lines = printed.getvalue().splitlines()
        if show is not None and len(lines) > 2 * show:
            hidden = len(lines) - 2 * show
            lines = [*lines[:show], f"  ... ({hidden} more lines)", *lines[-show:]]
        self.console.print("\n".join(lines))
        self.console.print(f"(exit code {code})")
        return code

    def _shown(self, argv: list[str]) -> list[str]:
        """The command line as a person would type it: the scratch directory left out."""
        return [arg.replace(str(self.scratch), "<scratch>") for arg in argv]

    def bystander_guarded(self) -> bool:
        """No policy manages legacy-tools, but the guardrail took its world-open ssh away."""
        still_open = self.world.count(
            BYSTANDER, lambda r: r.get("FromPort") == 22 and not r["IsEgress"]
        )
        self.console.print(
            "\nUnmanaged group legacy-tools still has its tcp 22 from the world:"
            f" {bool(still_open)}"
            " (no policy manages it; guardrail no-internet-except-web is the floor under every"
            " group)"
        )
        return not still_open

    def event_reverted(self) -> bool:
        """alice opens tcp 22 to the world; the CloudTrail event goes to ``handle-event``."""
        inbox = Inbox.create(self.session)
        os.environ["SG_RECONCILER_TOPIC_ARN"] = inbox.topic_arn  # put back with the account
        rule_id = self.world.authorize("web-prod", SSH_TO_THE_WORLD, "just for a minute")
        account = self.session.client("sts").get_caller_identity()["Account"]
        event = cloudtrail_event(
            group_id=self.world.groups["web-prod"],
            rule_id=rule_id,
            key=SSH_TO_THE_WORLD,
            actor=f"arn:aws:iam::{account}:user/alice",
            account=account,
        )
        path = self.scratch / "event.json"
        path.write_text(json.dumps(event), encoding="utf-8")
        self.console.print("\n=== Event path: someone opens tcp 22 to the world on web-prod")
        self.console.print(f"alice added {rule_id} ({SSH_TO_THE_WORLD.describe()}) to web-prod;")
        self.console.print("CloudTrail emits the event, and EventBridge hands it to the function.")
        code = self.command("handle-event (the function, run locally)", ["handle-event", str(path)])
        notices = inbox.messages()
        for subject, message in notices:
            readable = message.split("\n\nAs JSON:")[0]  # the JSON repeats it for programs
            self.console.print(f"\nNotification: {subject}\n{readable}")
        still = self.world.count("web-prod", lambda r: r["SecurityGroupRuleId"] == rule_id)
        self.console.print(f"\nRule {rule_id} still on web-prod: {bool(still)}")
        return code == 0 and not still and bool(notices)

    def retag_escape_caught(self) -> bool:
        """mallory renames web-prod's tag to escape its policy, then opens ssh to the world."""
        inbox = Inbox.create(self.session)
        os.environ["SG_RECONCILER_TOPIC_ARN"] = inbox.topic_arn
        group = self.world.groups["web-prod"]
        account = self.session.client("sts").get_caller_identity()["Account"]
        actor = f"arn:aws:iam::{account}:user/mallory"
        self.console.print("\n=== Escape: retag the group out of its policy, then open ssh")
        self.world.ec2.create_tags(Resources=[group], Tags=[{"Key": "Name", "Value": "web-prod2"}])
        retag = tag_event(group_id=group, tags={"Name": "web-prod2"}, actor=actor, account=account)
        self.console.print("mallory set Name=web-prod2 on web-prod: no policy matches that name.")
        codes = [self._handle("retag", retag)]
        rule_id = self.world.authorize("web-prod", SSH_TO_THE_WORLD, "nobody manages me now")
        self.console.print(f"\nThen mallory added {rule_id} ({SSH_TO_THE_WORLD.describe()}).")
        opened = cloudtrail_event(
            group_id=group, rule_id=rule_id, key=SSH_TO_THE_WORLD, actor=actor, account=account
        )
        codes.append(self._handle("open", opened))
        subjects = [subject for subject, _ in inbox.messages()]
        for subject in subjects:
            self.console.print(f"Notification: {subject}")
        still = self.world.count("web-prod", lambda r: r["SecurityGroupRuleId"] == rule_id)
        self.console.print(f"Rule {rule_id} still on the retagged group: {bool(still)}")
        self.world.ec2.create_tags(Resources=[group], Tags=[{"Key": "Name", "Value": "web-prod"}])
        left = any("LEFT BASELINE" in subject for subject in subjects)
        return codes == [0, 0] and left and not still

    def _handle(self, name: str, event: dict[str, object]) -> int:
        """Run ``handle-event`` on ``event`` (written to the scratch directory)."""
        path = self.scratch / f"{name}.json"
        path.write_text(json.dumps(event), encoding="utf-8")
        return self.command(f"handle-event ({name})", ["handle-event", str(path)], show=4)

    def mass_change_blocked(self) -> bool:
        """A script adds 30 rules at once: apply leaves that group alone and exits 1."""
        mass = [RuleKey(Direction.INGRESS, "tcp", p, p, "10.1.0.0/16") for p in MASS_PORTS]
        for key in mass:
            self.world.authorize("app-prod", key, "bulk script")
        self.console.print("\n=== Safety: a mass change is blocked")
        self.console.print(
            f"A script added {len(mass)} rules to app-prod at once: more than the default"
            " max_revocations_per_group (25), so apply leaves that group alone and says so."
        )
        blocked = ["apply", "--journal", str(self.journal)]
        code = self.command("apply (blocked: exit code 1)", blocked, show=3)
        left = self.world.count("app-prod", lambda r: r.get("FromPort", 0) in MASS_PORTS)
        self.console.print(f"The {len(mass)} rules are all still there: {left == len(mass)}")
        return code == 1 and left == len(mass)

    def undone(self) -> bool:
        """Put back what the first apply revoked on web-prod, from its journal."""
        group = self.world.groups["web-prod"]
        argv = ["undo", "--journal", str(self.journal), "--group-id", group]
        code = self.command("undo: restore web-prod's revoked rules from the journal", argv)
        self.console.print(
            "The rules are back with their descriptions; they are drift again, so the next"
            " run would revoke them unless the baseline allows them."
        )
        return code == 0
