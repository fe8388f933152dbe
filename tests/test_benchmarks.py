"""The benchmark command runs and prints its table; its figures are read by
people, never asserted, since the machines are shared and noisy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_prints_every_scenario() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick"],
        capture_output=True,
        text=True,
        check=True,
        timeout=180,
    )
    lines = result.stdout.splitlines()
    assert lines[:2] == ["| scenario | target | measured | met |", "|---|---|---|---|"]
    scenarios = [line.split(" | ")[0] for line in lines[2:]]
    assert scenarios == [
        "| 0 callables vs bare jsonify",
        "| 5 trivial callables vs bare calling them",
        "| 5 trivial checks vs the floor",
        "| 5 trivial checks: the HTML page vs JSON",
        "| 5 checks sleeping 50 ms vs one",
        "| storm: 16 clients, 1 s, 20 ms check, no cache",
        "| storm as above with cache=1",
        "| 3 URLs of one instance probed at once, 20 ms check, no cache",
        "| hung check, timeout 0.2 s, 40 requests, 8 threads",
        "| 5 scheduled trivial checks vs bare",
        "| gunicorn 1x8, 3 trivial checks: req/s vs the floor",
        "| gunicorn 1x8, 5 scheduled checks: req/s vs bare",
    ]
