"""Measurement: how long ``load_policies`` takes to validate 5,000 policies (no AWS).

``python -m benchmarks.policy_load [--policies 5000] [--files 50] [--repeat 3]`` writes the
policies across ``--files`` YAML files in a temporary directory (each policy: a tag selector,
two ingress rules, one egress rule and one exception), then times ``load_policies`` on that
directory ``--repeat`` times in this interpreter and prints the median, the range and which
YAML loader was used (PyYAML's C loader when libyaml is available).
"""

from __future__ import annotations

__all__ = ["main", "write_policies"]

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from reconciler.adapters.policy_files import load_policies
from reconciler.adapters.yaml_models import COMPOSE_LOADER

_POLICY = """\
  - name: app-{n}
    match:
      tags:
        Name: app-{n}
    ingress:
      - protocol: tcp
        ports: [443, "8000-8010"]
        from: [10.{a}.{b}.0/24, 192.0.2.0/24]
        description: web from the office
      - protocol: udp
        ports: [53]
        from: [10.0.0.0/8]
    egress:
      - protocol: tcp
        ports: [443]
        to: [0.0.0.0/0]
    exceptions:
      - protocol: tcp
        ports: [22]
        from: [203.0.113.{c}/32]
        reason: vendor maintenance window OPS-{n}
        expires: 2030-01-01T00:00:00Z
"""


def write_policies(directory: Path, policies: int, files: int) -> None:
    """Write ``policies`` policies spread evenly over ``files`` files in ``directory``."""
    per_file = -(-policies // files)
    for f in range(files):
        numbers = range(f * per_file, min(policies, (f + 1) * per_file))
        body = "".join(
            _POLICY.format(n=n, a=n // 256 % 256, b=n % 256, c=n % 250 + 1) for n in numbers
        )
        (directory / f"policies-{f:03d}.yaml").write_text("groups:\n" + body, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Generate the policies, time the loads and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, default=5000)
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_policies(root, args.policies, args.files)
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            baseline = load_policies(root)
            times.append(time.perf_counter() - start)
        assert len(baseline.policies) == args.policies
    print(
        f"load_policies: {args.policies} policies in {args.files} files:"
        f" median {statistics.median(times):.2f} s"
        f" [{min(times):.2f}-{max(times):.2f}] over {args.repeat} runs;"
        f" PyYAML {yaml.__version__}, nodes composed by {COMPOSE_LOADER.__name__}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
