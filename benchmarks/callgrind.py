"""Instructions and Python calls per request, counted rather than timed.

    python benchmarks/callgrind.py               # N=200: a few minutes on 2 cores
    python benchmarks/callgrind.py --n 50        # quicker, a little coarser
    python benchmarks/callgrind.py --python /usr/bin/python3.13

Each scenario is one route of the apps that ``run.py`` builds, served through
Flask's test client in a process of its own (``--child``). A process builds
the app, makes ``WARMUP`` requests, then N requests; another makes 4N. What a
request costs is the difference over the 3N extra requests, so start-up,
imports, the warm-up and the exit cancel out:

- instructions: the processes run under ``valgrind --tool=callgrind
  --separate-threads=no`` with ``PYTHONHASHSEED=0``; the count is the total
  ``Ir`` of every thread (the request's, the workers', the scheduler's), as
  the ``totals:`` line of the callgrind.out file gives it.
- Python calls: without valgrind, ``sys.setprofile`` and
  ``threading.setprofile``, set before the app is built so that every thread
  it starts is counted, count "call" events (Python functions, and each
  resumption of a generator) and "c_call" events (builtins and C methods).

The cost of ``import flask_status`` on top of ``import flask``, and of
``import asyncio`` on top of it (which flask_status imports and Flask does
not), is counted the same way, with bytecode cached: the instructions of
``python -c "import flask; import flask_status"`` less those of ``python -c
"import flask"``, and the best of ``--repeat`` wall-clock timings of each.

Without valgrind the calls are still counted, and the instructions skipped.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any
from typing import NamedTuple

HERE = Path(__file__).resolve()
WARMUP = 50  # requests before the counted ones: first-request set-up, workers
FIRST_RESULTS = 120.0  # seconds to wait for a schedule's first results


class Scenario(NamedTuple):
    title: str
    url: str
    app: str  # which of run.py's builders: static, five or scheduled
    baseline: str  # the scenario its ratio is over; "" for a baseline
    target: str  # the lean engine issue's, on the instructions ratio


SCENARIOS = {
    "bare-static": Scenario(
        "bare static: jsonify, 2 fields", "/bare/static", "static", "", ""
    ),
    "status-static": Scenario(
        "flask-status, 0 checks (2 static fields)",
        "/status/static",
        "static",
        "bare-static",
        "<= 1.05x",
    ),
    "bare-five": Scenario(
        "bare: 5 trivial checks called inline", "/bare/five", "five", "", ""
    ),
    "floor-five": Scenario(
        "the floor: 5 trivial checks in one thread",
        "/floor/five",
        "five",
        "bare-five",
        "",
    ),
    "status-five": Scenario(
        "flask-status, 5 trivial checks on request",
        "/status/five",
        "five",
        "bare-five",
        "<= 1.25x",
    ),
    "bare-five-static": Scenario(
        "bare static: jsonify, 5 fields", "/bare/five-static", "scheduled", "", ""
    ),
    "scheduled-five": Scenario(
        "flask-status, 5 scheduled checks",
        "/scheduled/five",
        "scheduled",
        "bare-five-static",
        "<= 1.05x",
    ),
}
FLOORED = {"status-five": "floor-five"}  # scenarios with a floor to compare


# -- the child: one scenario's requests, in a process of its own ----------------


def child(name: str, requests: int, count_calls: bool) -> dict[str, Any]:
    """Serve ``WARMUP`` then ``requests`` requests of scenario ``name``; what
    was counted, for the parent."""
    # Here: the parent needs neither Flask nor the app.
    import run
    from flask import Flask

    scenario = SCENARIOS[name]
    if count_calls:
        calls, c_calls = itertools.count(), itertools.count()
        call, c_call = calls.__next__, c_calls.__next__  # atomic, in C

        def profile(frame: FrameType, event: str, arg: Any) -> None:
            if event == "call":
                call()
            elif event == "c_call":
                c_call()

        threading.setprofile(profile)  # threads started from now on
        sys.setprofile(profile)  # this one

    runs: list[None] = []  # one item per call of a scheduled check

    def counted() -> bool:
        runs.append(None)  # atomic
        return True

    app = Flask(__name__)
    if scenario.app == "static":
        run.add_static(app)
        expected: dict[str, Any] = {**run.MESSAGE, **run.STATIC}
    else:
        expected = {"status": "OK", **dict.fromkeys(run.checks(5), True)}
        if scenario.app == "five":
            run.add_trivial(app, run.Floor(), "five")
        elif not run.add_scheduled(app, counted):
            return {"skipped": run.NO_EVERY}
    client = app.test_client()
    for _ in range(WARMUP):
        response = client.get(scenario.url)
        assert response.status_code == 200, response.status_code
    assert response.get_json() == expected, response.get_json()
    if name == "scheduled-five":
        # The counted requests start once the schedule has produced its first
        # results (each check called once, and the payload shows them), so
        # that no request waits for a first run. The scheduled runs that fall
        # in the counted window run in the scheduler's and the pool's threads,
        # which callgrind counts with the rest (--separate-threads=no), and
        # so does the setprofile hook: they are part of the cost, and stay in.
        # They fall by the clock, every EVERY seconds, so the 4N window, the
        # longer, holds more of them. Under callgrind, which runs Python some
        # 50x slower, that is some 50x as many per request as natively: an
        # upper bound, and a small one (a run of the five costs about what a
        # request does, so each adds 1/3N of a request). The parent prints
        # how many fell in each window.
        deadline = time.monotonic() + FIRST_RESULTS
        while len(runs) < 5 or client.get(scenario.url).get_json() != expected:
            assert time.monotonic() < deadline, "no first results from the schedule"
            time.sleep(0.01)
    before = len(runs)
    for _ in range(requests):
        client.get(scenario.url)
    counts: dict[str, Any] = {"scheduled_runs": (len(runs) - before) / 5}
    if count_calls:
        sys.setprofile(None)
        counts["calls"], counts["c_calls"] = next(calls), next(c_calls)
    return counts


# -- the parent: the processes, the differences and the table -------------------

IMPORTS = {  # the import costs: each on top of the first
    "flask": "import flask",
    "flask_status": "import flask; import flask_status",
    "asyncio": "import flask; import asyncio",
}


def environment(folder: Path) -> dict[str, str]:
    """The children's: a fixed hash seed, and bytecode written to and read
    from a cache of this run's, whatever PYTHONDONTWRITEBYTECODE says."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def execute(
    command: list[str], env: dict[str, str], valgrind: str | None, out: Path
) -> tuple[str, int | None]:
    """Run ``command``, under callgrind into ``out`` when ``valgrind`` is
    given: what it printed, and the instructions of all its threads."""
    if valgrind:
        command = [
            valgrind,
            "--tool=callgrind",
            "--separate-threads=no",
            f"--callgrind-out-file={out}",
            f"--log-file={out}.log",
            *command,
        ]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        log = Path(f"{out}.log")
        raise RuntimeError(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr}"
            + (log.read_text() if valgrind and log.exists() else "")
        )
    return result.stdout, total_ir(out) if valgrind else None


def total_ir(path: Path) -> int:
    """The total instructions of a callgrind.out file, every thread's."""
    with path.open() as lines:
        for line in lines:
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1])
    raise ValueError(f"no totals: or summary: line in {path}")


def measure(
    python: str,
    name: str,
    requests: int,
    env: dict[str, str],
    valgrind: str | None,
    folder: Path,
) -> dict[str, Any]:
    """What one child counted: its instructions under callgrind when
    ``valgrind`` is given, else its Python calls."""
    command = [python, str(HERE), "--child", name, "--requests", str(requests)]
    if not valgrind:
        command.append("--count-calls")
    out = folder / f"{name}-{requests}-{'ir' if valgrind else 'calls'}.out"
    printed, ir = execute(command, env, valgrind, out)
    counts: dict[str, Any] = json.loads(printed.splitlines()[-1])
    if ir is not None and "skipped" not in counts:
        counts["ir"] = ir
    return counts


def importing(python: str, code: str) -> list[str]:
    root = str(HERE.parent.parent)  # flask_status from this clone, as run.py has it
    return [python, "-c", f"import sys; sys.path.insert(0, {root!r}); {code}"]


def best_times(python: str, env: dict[str, str], repeat: int) -> dict[str, float]:
    """The best of ``repeat`` wall-clock times of each import, round by round."""
    best = dict.fromkeys(IMPORTS, float("inf"))
    for _ in range(repeat):
        for what, code in IMPORTS.items():
            start = time.perf_counter()
            subprocess.run(importing(python, code), env=env, check=True)
            best[what] = min(best[what], time.perf_counter() - start)
    return best


def ratio(mine: float | None, base: float | None) -> str:
    return f"{mine / base:.2f}x" if mine is not None and base else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="the interpreter")
    parser.add_argument("--n", type=int, default=200, help="compare N and 4N")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--only", action="append", choices=SCENARIOS, help="this scenario only"
    )
    parser.add_argument("--repeat", type=int, default=20, help="import timings")
    parser.add_argument("--child", choices=SCENARIOS, help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--count-calls", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.requests, args.count_calls)))
        sys.stdout.flush()
        os._exit(0)  # no need to finalize the daemon threads

    names: list[str] = args.only or list(SCENARIOS)
    n: int = args.n
    python: str = args.python
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print(
            "valgrind is not installed: instructions skipped (apt-get install valgrind)"
        )
    version = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    tools = [valgrind, None] if valgrind else [None]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = environment(folder)
        # Write the bytecode cache first, one process at a time: else the N
        # and the 4N process, running at once, may each compile a module, or
        # one compile it and the other read it, and so differ by millions.
        for code in IMPORTS.values():
            subprocess.run(importing(python, code), env=env, check=True)
        kinds = {SCENARIOS[name].app: name for name in names}
        for name in kinds.values():
            measure(python, name, 0, env, None, folder)
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            futures = {
                (name, k, tool is not None): pool.submit(
                    measure, python, name, k * n, env, tool, folder
                )
                for tool in tools  # the slow ones first
                for name in names
                for k in (1, 4)
            }
            imports = {
                what: pool.submit(
                    execute, importing(python, code), env, valgrind, folder / what
                )
                for what, code in IMPORTS.items()
                if valgrind
            }
        results = {key: future.result() for key, future in futures.items()}
        ir = {what: future.result()[1] for what, future in imports.items()}
        seconds = best_times(python, env, args.repeat)  # with nothing else running

    def cost(name: str, key: str) -> float | None:
        """Per request: ``key`` at 4N less at N, over 3N; None if not run."""
        under = key == "ir"
        if (name, 1, under) not in results or key not in results[name, 1, under]:
            return None
        more = results[name, 4, under][key] - results[name, 1, under][key]
        return float(more) / (3 * n)

    print(
        f"Python {version}; per request: what {4 * n} requests cost less what"
        f" {n} cost, over {3 * n} (each after {WARMUP} to warm up)."
    )
    print()
    print(
        "| scenario | Python calls (C calls) | instructions | vs its bare route"
        " | vs the floor | target |"
    )
    print("|---|---|---|---|---|---|")
    for name in names:
        scenario = SCENARIOS[name]
        if "skipped" in results[name, 1, False]:
            skipped = results[name, 1, False]["skipped"]
            print(f"| {scenario.title} | {skipped} | - | - | - | - |")
            continue
        mine = cost(name, "ir")
        row = (
            scenario.title,
            f"{cost(name, 'calls'):.1f} ({cost(name, 'c_calls'):.1f})",
            "-" if mine is None else f"{mine / 1e6:.3f} M",
            ratio(mine, cost(scenario.baseline, "ir")) if scenario.baseline else "-",
            ratio(mine, cost(FLOORED[name], "ir")) if name in FLOORED else "-",
            scenario.target or "-",
        )
        print(f"| {' | '.join(row)} |")
    if (
        "scheduled-five" in names
        and "skipped" not in results["scheduled-five", 1, False]
    ):
        fell = [
            f"{results['scheduled-five', 1, under]['scheduled_runs']:g} and"
            f" {results['scheduled-five', 4, under]['scheduled_runs']:g}"
            f" {'under callgrind' if under else 'counting calls'}"
            for under in (True, False)
            if ("scheduled-five", 1, under) in results
        ]
        print()
        print(f"Scheduled runs in the counted windows of N and 4N: {'; '.join(fell)}.")
    print()
    for what in ("flask_status", "asyncio"):
        instructions = ""
        if ir:
            more = (ir[what] or 0) - (ir["flask"] or 0)
            instructions = f"{more / 1e6:.1f} M instructions and "
        print(
            f"import {what} on top of flask, bytecode cached: {instructions}"
            f"{(seconds[what] - seconds['flask']) * 1e3:.1f} ms"
            f" (best of {args.repeat}: {seconds[what] * 1e3:.1f} ms"
            f" vs {seconds['flask'] * 1e3:.1f} ms)"
        )


if __name__ == "__main__":
    main()
