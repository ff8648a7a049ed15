"""``sg-reconciler demo``: the whole loop on an in-process simulated AWS account (moto)."""

from __future__ import annotations

__all__ = ["run_demo"]

import io
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from reconciler.adapters.ec2 import ip_permission
from reconciler.core.rules import Direction, RuleKey

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import TagSpecificationTypeDef

    from reconciler.cli import AwsOptions
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


@contextmanager
def simulated_account() -> Iterator[None]:
    """An in-process moto account with fake credentials; nothing leaves this process."""
    try:
        from moto import mock_aws  # noqa: PLC0415 - a dev/demo dependency only
    except ImportError as exc:
        raise SystemExit("error: the demo needs moto: pip install 'sg-reconciler[demo]'") from exc
    saved = {k: os.environ.get(k) for k in _FAKE_ENV}
    os.environ.update(_FAKE_ENV)
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


_FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


def _authorize(ec2: EC2Client, group_id: str, key: RuleKey, description: str | None) -> None:
    perm = ip_permission(key, description)
    if key.direction is Direction.INGRESS:
        ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[perm])  # type: ignore[list-item]
    else:
        ec2.authorize_security_group_egress(GroupId=group_id, IpPermissions=[perm])  # type: ignore[list-item]


def build_world(ec2: EC2Client, baseline: Baseline) -> dict[str, str]:
    """Create one group per tag-selected policy with its baseline rules, plus a bystander.

    Returns policy name (and "bystander") -> group id.
    """
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
    groups["bystander"] = ec2.create_security_group(
        GroupName="legacy-tools", Description="no policy manages this group", VpcId=vpc_id
    )["GroupId"]
    return groups


def inject_drift(ec2: EC2Client, groups: dict[str, str]) -> None:
    """Add the hand-made rules of DRIFT to managed groups and to the bystander."""
    for policy, key, description in DRIFT:
        if policy in groups:
            _authorize(ec2, groups[policy], key, description)
    _authorize(ec2, groups["bystander"], BYSTANDER_DRIFT, "nobody manages me")


def run_demo(*, out: TextIO, policies: Path | None = None) -> int:
    """Create a simulated account, inject drift, then plan -> apply -> plan, printed."""
    from reconciler.cli import AwsOptions, cmd_reconcile, load_or_report  # noqa: PLC0415

    policy_dir = policies or Path("policies")
    if "SG_RECONCILER_LOG_LEVEL" not in os.environ:
        from reconciler.log import configure_logging  # noqa: PLC0415

        configure_logging(level="WARNING")  # the printed plans tell the story
    baseline = load_or_report(policy_dir, out)
    if baseline is None:
        return 1
    with simulated_account(), tempfile.TemporaryDirectory(prefix="sg-demo-") as scratch:
        import boto3  # noqa: PLC0415

        session = boto3.Session(region_name=REGION)
        ec2 = session.client("ec2")
        groups = build_world(ec2, baseline)
        inject_drift(ec2, groups)
        aws = AwsOptions(profile=None, regions=(REGION,), endpoint_url=None)
        journal = Path(scratch) / "journal.jsonl"

        def step(title: str, *, apply: bool, show: int | None = None) -> int:
            print(f"\n=== {title}", file=out)
            printed = io.StringIO()
            code = cmd_reconcile(
                policy_dir,
                aws,
                apply=apply,
                dry_run=False,
                output="text",
                out=printed,
                err=printed,
                session=session,
                journal=journal if apply else None,
            )
            lines = printed.getvalue().splitlines()
            if show is not None and len(lines) > 2 * show:
                hidden = len(lines) - 2 * show
                lines = [*lines[:show], f"  ... ({hidden} more lines)", *lines[-show:]]
            print("\n".join(lines), file=out)
            print(f"(exit code {code})", file=out)
            return code

        print(f"Simulated account in {REGION}: groups {groups}", file=out)
        print(
            "Someone opened tcp 22 and all traffic on web-prod, RDP over IPv6, ssh on app-prod,"
            " smtp egress on app-prod, and ssh on the unmanaged group legacy-tools.",
            file=out,
        )
        first = step("sg-reconciler plan (drift expected: exit code 2)", apply=False)
        applied = step("sg-reconciler apply", apply=True)
        final = step("sg-reconciler plan again (clean: exit code 0)", apply=False)
        bystander = ec2.describe_security_group_rules(
            Filters=[{"Name": "group-id", "Values": [groups["bystander"]]}]
        )["SecurityGroupRules"]
        still_open = any(r.get("FromPort") == 22 and not r["IsEgress"] for r in bystander)
        print(
            f"\nUnmanaged group legacy-tools still has its tcp 22 rule: {still_open}"
            " (no policy matches it, so it is never touched)",
            file=out,
        )
        reverted = _event_path(session, ec2, groups, policy_dir, out)

        print("\n=== Safety: a mass change is blocked", file=out)
        mass = [RuleKey(Direction.INGRESS, "tcp", p, p, "10.1.0.0/16") for p in range(9000, 9030)]
        for key in mass:
            _authorize(ec2, groups["app-prod"], key, "bulk script")
        print(
            f"A script added {len(mass)} rules to app-prod at once: more than the default"
            " max_revocations_per_group (25), so apply leaves that group alone and says so.",
            file=out,
        )
        blocked = step("sg-reconciler apply (blocked: exit code 1)", apply=True, show=3)
        untouched = len(mass) == sum(
            1
            for r in ec2.describe_security_group_rules(
                Filters=[{"Name": "group-id", "Values": [groups["app-prod"]]}]
            )["SecurityGroupRules"]
            if 9000 <= r.get("FromPort", 0) < 9030
        )
        print(f"The {len(mass)} rules are all still there: {untouched}", file=out)

        undone = _undo(journal, groups["web-prod"], aws, out)
    ok = (
        first == 2
        and applied == 0
        and final == 0
        and still_open
        and reverted
        and blocked == 1
        and untouched
        and undone
    )
    print(
        "\nDemo finished: drift found, revoked, reverted on its event, a mass change blocked,"
        " and an apply undone."
        if ok
        else "\nDemo FAILED: see above.",
        file=out,
    )
    return 0 if ok else 1


def _undo(journal: Path, group_id: str, aws: AwsOptions, out: TextIO) -> bool:
    """Restore what the first apply revoked on web-prod, from its journal."""
    from reconciler.cli import build_parser, cmd_restore  # noqa: PLC0415

    print("\n=== Undo: restore web-prod's revoked rules from the journal", file=out)
    argv = ["restore", "--journal", str(journal), "--group-id", group_id]
    print(f"sg-reconciler {' '.join(argv[:2])} <journal> {' '.join(argv[3:])}", file=out)
    code = cmd_restore(build_parser().parse_args(argv), aws, out=out, err=out)
    print(
        f"(exit code {code}) The rules are back with their descriptions; they are drift"
        " again, so the next run would revoke them unless the baseline allows them.",
        file=out,
    )
    return code == 0


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
            "requestParameters": {
                "groupId": group_id,
                "ipPermissions": {
                    "items": [
                        {
                            "ipProtocol": key.protocol,
                            "fromPort": key.from_port,
                            "toPort": key.to_port,
                            "groups": {},
                            "ipRanges": {"items": [{"cidrIp": key.peer}]},
                            "ipv6Ranges": {},
                            "prefixListIds": {},
                        }
                    ]
                },
            },
            "responseElements": {
                "requestId": "demo-request",
                "_return": True,
                "securityGroupRuleSet": {
                    "items": [
                        {
                            "groupOwnerId": account,
                            "groupId": group_id,
                            "securityGroupRuleId": rule_id,
                            "isEgress": False,
                            "ipProtocol": key.protocol,
                            "fromPort": key.from_port,
                            "toPort": key.to_port,
                            "cidrIpv4": key.peer,
                        }
                    ]
                },
            },
            "requestID": "demo-request",
            "eventID": "0b9a3f0e-demo-0000-0000-000000000002",
            "readOnly": False,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": account,
            "eventCategory": "Management",
        },
    }


def _event_path(
    session: boto3.Session, ec2: EC2Client, groups: dict[str, str], policy_dir: Path, out: TextIO
) -> bool:
    """Someone opens tcp 22 to the world; the CloudTrail event goes to the handler."""
    from reconciler.runtime import build_responder, run_event  # noqa: PLC0415

    print("\n=== Event path: someone opens tcp 22 to the world on web-prod", file=out)
    sns, sqs = session.client("sns"), session.client("sqs")
    topic = sns.create_topic(Name="sg-reconciler")["TopicArn"]
    queue = sqs.create_queue(QueueName="ops-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    ssh = RuleKey(Direction.INGRESS, "tcp", 22, 22, "0.0.0.0/0")
    group = groups["web-prod"]
    created = ec2.authorize_security_group_ingress(
        GroupId=group,
        IpPermissions=[ip_permission(ssh, "just for a minute")],  # type: ignore[list-item]
    )
    rule_id = created["SecurityGroupRules"][0]["SecurityGroupRuleId"]
    account = session.client("sts").get_caller_identity()["Account"]
    event = cloudtrail_event(
        group_id=group,
        rule_id=rule_id,
        key=ssh,
        actor=f"arn:aws:iam::{account}:user/alice",
        account=account,
    )
    print(f"alice added {rule_id} ({ssh.describe()}); CloudTrail emits the event.", file=out)
    env = {
        "SG_RECONCILER_POLICIES": str(policy_dir),
        "SG_RECONCILER_REGIONS": REGION,
        "SG_RECONCILER_TOPIC_ARN": topic,
    }
    summary, failed = run_event(event, build_responder(env, session=session))
    print("Handler summary:", json.dumps(summary, indent=2), sep="\n", file=out)
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    for message in messages:
        body = json.loads(message["Body"])
        print(f"\nNotification: {body.get('Subject')}\n{body.get('Message')}", file=out)
    live = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group]}])
    still = any(r["SecurityGroupRuleId"] == rule_id for r in live["SecurityGroupRules"])
    print(f"\nRule {rule_id} still on web-prod: {still}", file=out)
    return not failed and summary["revoked"] == [rule_id] and not still and bool(messages)
