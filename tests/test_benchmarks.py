"""The benchmark command runs and prints its table; its figures are read by
people, never asserted, since the machines are shared and noisy."""

from __future__ import annotations

import os
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
        "| 5 trivial checks on request: share= vs no store",
        "| gunicorn 1x8, 5 scheduled checks: req/s with share= vs no store",
        "| gunicorn 4 sync workers, share=: scheduled runs per interval (every=1)",
        "| gunicorn 4 sync workers, share=: cached runs per ttl (cache=2), 8 clients"
        " probing",
        "| gunicorn 4 sync workers, share=: 200/503 flips in 40 probes after the 3rd"
        " failed run (fail_after=3)",
        "| gunicorn 4 sync workers, share=: listener calls for one OK -> FAIL",
        "| gunicorn 4 sync workers, share=: distinct since values of one check"
        " (health+json)",
    ]


def test_only_runs_the_rows_named() -> None:
    only = ["--only", "hung", "--only", "groups"]
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", *only],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    scenarios = [line.split(" | ")[0] for line in result.stdout.splitlines()[2:]]
    assert scenarios == [  # in the full run's order, not the options'
        "| 3 URLs of one instance probed at once, 20 ms check, no cache",
        "| hung check, timeout 0.2 s, 40 requests, 8 threads",
    ]


def test_callgrind_counts_calls_of_every_scenario_without_valgrind(
    tmp_path: Path,
) -> None:
    """With no valgrind on the PATH the counting script says so, skips the
    instructions and still counts every scenario's Python calls."""
    script = ROOT / "benchmarks" / "callgrind.py"
    result = subprocess.run(
        [sys.executable, str(script), "--n", "5", "--repeat", "1"],
        capture_output=True,
        text=True,
        check=True,
        timeout=180,
        env={**os.environ, "PATH": str(tmp_path)},
    )
    lines = result.stdout.splitlines()
    assert lines[0].startswith("valgrind is not installed")
    rows = [line.split(" | ") for line in lines if line.startswith("| ")]
    assert [row[0] for row in rows] == [
        "| scenario",
        "| bare static: jsonify, 2 fields",
        "| flask-status, 0 checks (2 static fields)",
        "| bare: 5 trivial checks called inline",
        "| the floor: 5 trivial checks in one thread",
        "| flask-status, 5 trivial checks on request",
        "| bare static: jsonify, 5 fields",
        "| flask-status, 5 scheduled checks",
    ]
    assert all(row[1][0].isdigit() and row[2] == "-" for row in rows[1:])
    assert any(line.startswith("import flask_status on top of flask") for line in lines)
