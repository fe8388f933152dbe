"""One host, one truth (#26): the workers of a real gunicorn on 127.0.0.1
sharing a SQLite store (``share=``, ``STATUS_SHARE``) answer as one process
would; the store's faults keep the endpoint up; a hold set from the command
line reaches every worker; and a store that another user could forge is
refused at setup.

Each served app appends a line to a file of the test's folder for every run
of a check and every change its listeners hear (``PID time text``), logs
through the root logger to ``app.log`` with the PID and the level first
(``servers.LOG_FORMAT``), and says in an ``X-Pid`` header which worker
answered."""

from __future__ import annotations

import collections
import json
import os
import signal
import textwrap
import time
from pathlib import Path
from typing import Any
from typing import NamedTuple

import pytest
from helpers import AtMost
from helpers import wait_for
from servers import LOG_FORMAT
from servers import Prober
from servers import Start
from servers import children
from servers import log_lines
from servers import probe
from servers import probe_together
from servers import serve_module

# What every served app starts with: its store, its log, its X-Pid header,
# and note(), which appends a line to a file of the test's folder.
PRELUDE = """\
import logging
import os
import time
from pathlib import Path

from flask import Flask

from flask_status import FlaskStatus

DIR = Path(os.environ["SHARE_DIR"])
STORE = str(DIR / "status.sqlite3")

handler = logging.FileHandler(DIR / "app.log")
handler.setFormatter(logging.Formatter(%r))
logging.getLogger().addHandler(handler)
logging.getLogger().setLevel(logging.INFO)

app = Flask(__name__)


@app.after_request
def say_pid(response):
    response.headers["X-Pid"] = str(os.getpid())
    return response


def note(name, text=""):
    with open(DIR / name, "a") as file:
        file.write(f"{os.getpid()} {time.time()!r} {text}\\n")

"""


def write_app(folder: Path, module: str, body: str) -> None:
    """Write ``folder/module.py``: the prelude, then ``body``."""
    source = PRELUDE % (LOG_FORMAT,) + textwrap.dedent(body)
    (folder / f"{module}.py").write_text(source)


class Line(NamedTuple):
    """A line that a served app's note() appended."""

    pid: int
    at: float  # time.time()
    text: str


def lines(path: Path) -> list[Line]:
    """The whole lines of a file that note() appends to; none if it is not
    there yet."""
    if not path.exists():
        return []
    found = []
    for line in path.read_text().split("\n")[:-1]:  # the last may be partial
        pid, at, text = line.split(" ", 2)
        found.append(Line(int(pid), float(at), text))
    return found


STORE = "status.sqlite3"
HEALTH = {"Accept": "application/health+json"}
GUNICORN = {
    "sync": ["--workers", "4", "--worker-class", "sync"],
    "gthread": ["--workers", "4", "--worker-class", "gthread", "--threads", "4"],
    "preload": ["--workers", "4", "--worker-class", "sync", "--preload"],
}
SYNC = GUNICORN["sync"]


# -- four workers, one truth: the table, row by row --------------------

COHERENT = """
status = FlaskStatus(app, url="/readyz", share=STORE, timeout=1)


@status.field(every=1)
def tick():
    note("tick.runs")
    return True


@status.field(cache=2)
def cached():
    note("cached.runs")
    return True


@status.field(fail_after=3)
def dep():
    note("dep.runs", "ok" if (DIR / "dep").exists() else "fail")
    return (DIR / "dep").read_text()  # FileNotFoundError once it is gone


@status.on_change
def heard(change):
    note("heard", f"{change.check} {change.old} {change.new}")
"""
PASSING = {"status": "OK", "tick": True, "cached": True, "dep": "up"}
FAILING = {"status": "FAIL", "tick": True, "cached": True, "dep": False}
WINDOW = 5.0  # seconds of probing: 5 intervals of tick, 2.5 ttls of cached


@pytest.mark.parametrize("options", GUNICORN.values(), ids=GUNICORN)
def test_four_workers_answer_as_one_process(
    start: Start, tmp_path: Path, options: list[str]
) -> None:
    """The issue's table, measured as it was: 8 clients probe a scheduled
    check (every=1), a cached one (cache=2) and a dependency (fail_after=3)
    with a listener; then the dependency breaks."""
    (tmp_path / "dep").write_text("up")
    write_app(tmp_path, "coherent", COHERENT)
    master, port = serve_module(start, tmp_path, "coherent", *options)
    first = probe(port)
    assert (first.code, first.json()) == (200, PASSING)
    begun = time.time()
    with Prober(port, 8, headers=[{}, HEALTH]) as probes:
        time.sleep(WINDOW)
    passing = probes.answers
    # The dependency breaks; one probe at a time, each starting one run of
    # it (it runs on request, cache=0), until the host made three.
    (tmp_path / "dep").unlink()
    codes = []
    while len([r for r in lines(tmp_path / "dep.runs") if r.text == "fail"]) < 3:
        codes.append(probe(port).code)
        assert len(codes) < 10, "the dependency did not run"
    failing = probe_together(port, 40)
    deadline = time.monotonic() + 3  # the listeners run on a worker thread
    while "dep OK FAIL" not in heard(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)  # and a second one, in another worker, would come by now

    def per_interval(name: str, interval: float) -> float:
        ran = [r for r in lines(tmp_path / name) if begun <= r.at < begun + WINDOW]
        return len(ran) / (WINDOW / interval)

    health = [a.json() for a in passing if a.json()["status"] == "pass"]
    failed = [
        line.message
        for line in log_lines(tmp_path / "app.log")
        if line.message.startswith("Check 'dep' of /readyz failed")
    ]
    assert {
        "workers that answered": len({a.pid for a in passing}),
        "scheduled runs per interval": per_interval("tick.runs", 1),
        "cached runs per ttl": per_interval("cached.runs", 2),
        "answers until the 3rd failed run": codes,
        "answers of 200 after it": sum(a.code == 200 for a in failing),
        "listener calls for one OK→FAIL": heard(tmp_path).count("dep OK FAIL"),
        "log lines for one OK→FAIL": len(failed),
        "distinct since values for each check": {
            key: len({h["checks"][key][0]["since"] for h in health})
            for key in ("tick", "cached", "dep")
        },
        "runs shown differently by two answers": differing_runs(health),
    } == {
        "workers that answered": 4,
        "scheduled runs per interval": AtMost(1.2),
        "cached runs per ttl": AtMost(1.2),
        "answers until the 3rd failed run": [200, 200, 503],
        "answers of 200 after it": 0,
        "listener calls for one OK→FAIL": 1,
        "log lines for one OK→FAIL": 1,
        "distinct since values for each check": {"tick": 1, "cached": 1, "dep": 1},
        "runs shown differently by two answers": 0,
    }
    assert set(children(master.pid)) == {a.pid for a in passing}
    json_answers = [(a.code, a.json()) for a in passing if "checks" not in a.json()]
    assert json_answers == [(200, PASSING)] * len(json_answers)
    assert [(a.code, a.json()) for a in failing] == [(503, FAILING)] * 40
    # Each change heard once on the host: the first results, then the failure.
    assert collections.Counter(heard(tmp_path)) == {
        "tick None OK": 1,
        "cached None OK": 1,
        "dep None OK": 1,
        "None None OK": 1,
        "dep OK FAIL": 1,
        "None OK FAIL": 1,
    }


def heard(folder: Path) -> list[str]:
    """What the listeners heard, ``check old new`` a change, in order."""
    return [line.text for line in lines(folder / "heard")]


def differing_runs(health: list[Any]) -> int:
    """How many runs of the scheduled and the cached check two health+json
    answers showed differently (status, value, duration, since or failures).
    A run is known by its ``time``, in milliseconds: theirs are a second or
    more apart, where two runs of ``dep`` may start in one millisecond."""
    shown = collections.defaultdict(set)
    for answer in health:
        for key in ("tick", "cached"):
            (entry,) = answer["checks"][key]
            shown[key, entry["time"]].add(json.dumps(entry, sort_keys=True))
    return sum(len(entries) > 1 for entries in shown.values())


# -- a worker killed while it runs a check -------------------------------------

SLOW = """
status = FlaskStatus(app, url="/readyz", share=STORE, timeout=1)


@status.field
def slow():
    note("slow.runs")
    if (DIR / "hang").exists():
        time.sleep(30)
    return True
"""
TIMEOUT = 1.0  # SLOW's


def test_a_worker_killed_mid_run_holds_no_probe(start: Start, tmp_path: Path) -> None:
    """SIGKILL the worker whose run of a check hangs: no probe waits past
    its deadline, and the next run starts at most one timeout after the dead
    run's deadline (its start and a timeout), on another worker."""
    write_app(tmp_path, "slow", SLOW)
    _, port = serve_module(start, tmp_path, "slow", *SYNC)
    assert (probe(port).code, probe(port).json()) == (
        200,
        {"status": "OK", "slow": True},
    )
    runs = tmp_path / "slow.runs"
    (tmp_path / "hang").touch()
    hanging = time.time()  # a run noted from now on finds the file
    # Three clients for three workers that stay: none waits for a free one.
    with Prober(port, 3) as probes:
        wait_for(lambda: [r for r in lines(runs) if r.at >= hanging], "a run to hang")
        dead = next(r for r in lines(runs) if r.at >= hanging)
        (tmp_path / "hang").unlink()  # the next run passes, wherever it starts
        os.kill(dead.pid, signal.SIGKILL)
        wait_for(
            lambda: [r for r in lines(runs) if r.at > dead.at and r.pid != dead.pid],
            "the next run",
        )
        time.sleep(0.5)  # answers from the next run
    after = next(r for r in lines(runs) if r.at > dead.at and r.pid != dead.pid)
    answers = probes.answers
    passing = (200, {"status": "OK", "slow": True})
    timed_out = (503, {"status": "FAIL", "slow": False})
    assert {
        "longest probe": max(a.ended - a.started for a in answers),
        "next run after the dead one started": after.at - dead.at,
        "connections reset (the killed worker's request)": len(probes.errors),
        "other answers": [
            (a.code, a.json())
            for a in answers
            if (a.code, a.json()) not in (passing, timed_out)
        ],
        "the last answer": (answers[-1].code, answers[-1].json()),
    } == {
        "longest probe": AtMost(TIMEOUT + 0.5),
        "next run after the dead one started": AtMost(2 * TIMEOUT + 0.3),
        "connections reset (the killed worker's request)": AtMost(1),
        "other answers": [],
        "the last answer": passing,
    }
