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
import contextlib
import datetime
import json
import os
import re
import signal
import stat
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from typing import Callable
from typing import NamedTuple

import pytest
from flask import Flask
from flask.testing import FlaskClient
from helpers import AtMost
from helpers import Switch
from helpers import exclusive_lock
from helpers import get
from helpers import wait_for
from servers import LOG_FORMAT
from servers import Answer
from servers import LogLine
from servers import Prober
from servers import Start
from servers import children
from servers import flask_command
from servers import log_lines
from servers import probe
from servers import probe_every_worker
from servers import probe_together
from servers import require
from servers import serve_module
from servers import stop
from servers import workers_of

from flask_status import FlaskStatus
from flask_status import StatusChange

# What every served app starts with: its store, its log, its X-Pid header,
# and note(), which appends a line to a file of the test's folder.
PRELUDE = """\
import logging
import os
import time
from pathlib import Path

from flask import Flask

from flask_status import FlaskStatus
from flask_status import StatusChange

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


JOINED = """
status = FlaskStatus(app, url="/readyz", share=STORE, timeout=2)


@status.field
def runner():
    note("runner.runs")
    time.sleep(0.5)
    return os.getpid()
"""


def test_probes_of_four_workers_at_once_join_one_run(
    start: Start, tmp_path: Path
) -> None:
    """Single flight across processes: four probes sent together, one to
    each worker, and a check that takes 0.5 s runs once, in one of them;
    every worker answers its result."""
    write_app(tmp_path, "joined", JOINED)
    master, port = serve_module(start, tmp_path, "joined", *SYNC)
    workers = workers_of(master, 4)
    assert probe(port).code == 200  # the first run, then the round
    time.sleep(0.2)
    before = len(lines(tmp_path / "runner.runs"))
    answers = probe_together(port, 4, threads=4)
    ran = lines(tmp_path / "runner.runs")[before:]
    assert len(ran) == 1
    assert [(a.code, a.json()) for a in answers] == [
        (200, {"status": "OK", "runner": ran[0].pid})
    ] * 4
    assert {a.pid for a in answers} == workers


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


# -- faults of the store, while probes go on -----------------------------------

FAULTY = """
status = FlaskStatus(app, url="/readyz", share=STORE, timeout=0.5)
status.add_field("ok", lambda: True)


@app.post("/hold")
def hold():
    status.hold("every worker reads the store")
    return "", 204
"""
FAULT_SECONDS = 1.5  # three of FAULTY's timeouts


def store_files(store: Path) -> list[Path]:
    """The store and SQLite's files beside it (WAL mode), those there."""
    named = [store, Path(f"{store}-wal"), Path(f"{store}-shm")]
    return [path for path in named if path.exists()]


@contextlib.contextmanager
def deleted(store: Path) -> Iterator[None]:
    """``rm status.sqlite3*``. The fault ends at once: the processes'
    retries create the store anew."""
    for path in store_files(store):
        path.unlink(missing_ok=True)  # SQLite may remove -wal and -shm itself
    yield


@contextlib.contextmanager
def read_only(store: Path) -> Iterator[None]:
    """The store and its WAL made immutable. The tests run as root, which
    chmod a-w does not stop, nor does it stop a process that opened the
    file before; ``chattr +i`` stops both, as a read-only remount would:
    every write fails ("attempt to write a readonly database", or "disk I/O
    error" on a connection opened before), reads go on. Not ``-shm``: SQLite
    writes that through a shared memory mapping, and a write to an immutable
    file's mapping is SIGBUS on ext4, which kills any process using SQLite,
    a fault no read-only store makes. The fault ends with ``chattr -i``."""
    files = [path for path in store_files(store) if not path.name.endswith("-shm")]
    chattr("+i", files)
    try:
        yield
    finally:
        chattr("-i", files)


def chattr(flags: str, files: list[Path]) -> None:
    """``chattr flags`` on each of ``files`` still there: SQLite may remove
    a -wal file itself, as its last connection closes."""
    for path in files:
        done = subprocess.run(["chattr", flags, str(path)], check=False)
        assert done.returncode == 0 or not path.exists(), f"chattr {flags} {path}"


GARBAGE = b"not a database, "


@contextlib.contextmanager
def garbage(store: Path) -> Iterator[None]:
    """The store's files overwritten in place with text. All three: in WAL
    mode the pages the processes read may sit in ``-wal`` (and its index in
    ``-shm``), so garbage in the main file alone goes unseen until a
    checkpoint writes the good pages back over it. The fault ends as an
    operator ends it, by removing the files; unless the processes replaced
    the store themselves meanwhile."""
    for path in store_files(store):
        # A worker whose connection was the last may remove -wal and -shm
        # at any moment, as SQLite does: a file gone meanwhile is no fault.
        with contextlib.suppress(FileNotFoundError), path.open("r+b") as file:
            size = max(os.fstat(file.fileno()).st_size, 4096)
            file.write((GARBAGE * (size // len(GARBAGE) + 1))[:size])
    yield
    if store.exists() and store.read_bytes().startswith(GARBAGE):
        for path in store_files(store):
            path.unlink(missing_ok=True)


def locked(store: Path) -> contextlib.AbstractContextManager[None]:
    """Another process holds the store's write lock (BEGIN EXCLUSIVE),
    longer than the timeout; the fault ends with its ROLLBACK."""
    return exclusive_lock(store)


FAULTS: dict[str, Callable[[Path], contextlib.AbstractContextManager[None]]] = {
    "deleted": deleted,
    "read-only": read_only,
    "garbage": garbage,
    "locked": locked,
}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_store_fault_keeps_the_endpoint_up(
    start: Start, tmp_path: Path, fault: str
) -> None:
    """While probes go on, the store fails: no answer but 200 OK, no probe
    held, one WARNING naming the store in each process that met the fault,
    one INFO when it works again; then every worker shares it again."""
    if fault == "read-only":
        immutable_files_or_skip(tmp_path)
    write_app(tmp_path, "faulty", FAULTY)
    master, port = serve_module(start, tmp_path, "faulty", *SYNC)
    store, log = tmp_path / STORE, tmp_path / "app.log"
    with Prober(port, 4) as probes:  # a client a worker: none waits for one
        time.sleep(0.5)  # every worker has used the store
        before = len(log_lines(log))
        with FAULTS[fault](store):
            time.sleep(FAULT_SECONDS)
        ended = len(log_lines(log))
        wait_for(
            lambda: recovered(log_lines(log)[before:], store),
            "a WARNING naming the store, then from each process that gave"
            " one an INFO saying it works again",
            10,
        )
        time.sleep(0.2)  # a second line would come by now
    logged = log_lines(log)[before:]
    warned = collections.Counter(line.pid for line in logged if line.level == "WARNING")
    answers = probes.answers
    assert {
        "answers but 200 OK": [
            (a.code, a.body) for a in answers if a.code != 200 or not passes(a)
        ],
        "connection errors": probes.errors,
        "longest probe": max(a.ended - a.started for a in answers),
        "WARNINGs naming the store, by process": {
            pid: [
                str(store) in line.message
                for line in logged
                if line.pid == pid and line.level == "WARNING"
            ]
            for pid in warned
        },
        "ERRORs": [line for line in logged if line.level == "ERROR"],
        "recoveries said before the fault ended": [
            line for line in logged[: ended - before] if is_recovery(line, store)
        ]
        if fault != "deleted"  # which ends at once
        else [],
        "mode of the store": stat.S_IMODE(store.stat().st_mode),
    } == {
        "answers but 200 OK": [],
        "connection errors": [],
        "longest probe": AtMost(0.5 + 1.0),
        "WARNINGs naming the store, by process": {
            pid: [True]
            for pid in warned  # of those that logged a warning, one each
        },
        "ERRORs": [],
        "recoveries said before the fault ended": [],
        "mode of the store": 0o600,
    }
    assert warned, "no process warned of the fault"
    # Recovered means shared again: a hold set by one worker reaches all.
    assert probe(port, "/hold", method="POST").code == 204
    time.sleep(1)
    workers = workers_of(master, 4)
    codes = collections.defaultdict(set)
    for answer in probe_every_worker(port, workers):
        codes[answer.pid].add(answer.code)
    assert codes == {pid: {503} for pid in workers}


def passes(answer: Answer) -> bool:
    return bool(answer.json() == {"status": "OK", "ok": True})


def is_recovery(line: LogLine, store: Path) -> bool:
    return line.level == "INFO" and str(store) in line.message


def recovered(logged: list[LogLine], store: Path) -> bool:
    """Whether each process that warned of ``store`` has since said, once,
    at INFO, that it works again (and at least one warned)."""
    warned: dict[int, int] = {}  # the process's INFO lines since its warning
    for line in logged:
        if line.level == "WARNING" and str(store) in line.message:
            warned.setdefault(line.pid, 0)
        elif line.pid in warned and is_recovery(line, store):
            warned[line.pid] += 1
    return bool(warned) and set(warned.values()) == {1}


def immutable_files_or_skip(folder: Path) -> None:
    """Skip unless ``chattr +i`` works here: root (CAP_LINUX_IMMUTABLE), and
    a filesystem that has the flag (ext4, xfs, btrfs; not tmpfs)."""
    chattr = require("chattr", "e2fsprogs")
    trial = folder / "trial"
    trial.touch()
    made = subprocess.run([chattr, "+i", str(trial)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(
            "chattr +i fails here (it takes root, and a filesystem such as"
            f" ext4): {made.stderr.decode().strip()}"
        )
    subprocess.run([chattr, "-i", str(trial)], check=True)
    trial.unlink()


# -- a hold from the command line ----------------------------------------------

HELD = """
app.config["STATUS_SHARE"] = STORE
status = FlaskStatus(app, url="/readyz", timeout=0.5)
status.add_field("ok", lambda: True)


@status.on_change
def heard(change):
    note("heard", f"{change.check} {change.old} {change.new} {change.reason}")
"""
REASON = "db migration"


def test_a_hold_from_the_command_line_reaches_every_worker(
    start: Start, tmp_path: Path
) -> None:
    """kubectl exec POD -- flask status hold --for 600 --reason "db migration":
    within a second every worker answers FAIL, saying why and until when, in
    every format; it outlives a SIGHUP of the master, whose new workers
    answer the same; and release ends it everywhere."""
    write_app(tmp_path, "held", HELD)
    master, port = serve_module(start, tmp_path, "held", *SYNC)
    workers = workers_of(master, 4)
    passing = (200, {"status": "OK", "ok": True})
    assert distinct(probe_every_worker(port, workers)) == [passing]
    before = time.time()
    hold = flask_command(
        tmp_path, "held", "status", "hold", "--for", "600", "--reason", REASON
    )
    after, held_at = time.time(), time.monotonic()
    assert hold.returncode == 0, hold.stderr
    time.sleep(max(0.0, held_at + 1 - time.monotonic()))
    answers = probe_every_worker(port, workers)
    until = next((a.json()["held"]["until"] for a in answers if a.code == 503), None)
    holding = {"reason": REASON, "until": until}
    held = (503, {"status": "FAIL", "ok": True, "held": holding})
    assert distinct(answers) == [held]
    assert {a.pid for a in answers} >= workers
    assert before + 600 - 0.001 <= utc(str(until)) <= after + 600 + 0.001
    health = probe(port, headers=HEALTH)
    assert (health.code, health.json()["status"]) == (503, "fail")
    assert REASON in health.body.decode()
    page = probe(port, "/readyz?format=html")
    assert page.code == 503
    assert REASON in page.body.decode()
    scrape = probe(port, "/readyz?format=prometheus")
    assert scrape.code == 200
    assert 'flask_status_up{url="/readyz"} 0\n' in scrape.body.decode()
    # Plain flask status says it too.
    status = flask_command(tmp_path, "held", "status")
    assert (status.returncode, status.stdout.split(" ", 1)[0]) == (1, "/readyz")
    assert json.loads(status.stdout.split(" ", 1)[1]) == held[1]
    restarted = sighup(master, workers)
    answers = probe_every_worker(port, restarted)
    assert distinct(answers) == [held]
    assert {a.pid for a in answers} >= restarted
    release = flask_command(tmp_path, "held", "status", "release")
    released_at = time.monotonic()
    assert release.returncode == 0, release.stderr
    time.sleep(max(0.0, released_at + 1 - time.monotonic()))
    assert distinct(probe_every_worker(port, restarted)) == [passing]
    # Heard once on the host, and said once at WARNING.
    wait_for(lambda: len(heard(tmp_path)) >= 4, "the listeners to hear the release")
    time.sleep(0.3)
    changes = [text.split(" ", 3) for text in heard(tmp_path)]
    assert [c[:3] for c in changes] == [
        ["ok", "None", "OK"],
        ["None", "None", "OK"],
        ["None", "OK", "FAIL"],
        ["None", "FAIL", "OK"],
    ]
    assert REASON in changes[2][3]
    warnings = [
        line
        for line in log_lines(tmp_path / "app.log")
        if line.level == "WARNING" and REASON in line.message
    ]
    assert len(warnings) == 1, warnings


def test_holds_and_releases_from_the_command_line_reach_every_worker_again(
    start: Start, tmp_path: Path
) -> None:
    """Hold, release, hold, release: each reaches every worker. (A worker
    that opened and closed the store's file itself, to look at it, dropped
    SQLite's locks on it, so the command line took its connection for the
    last, deleted the WAL on exit, and no later hold or release reached the
    workers.)"""
    write_app(tmp_path, "held", HELD)
    master, port = serve_module(start, tmp_path, "held", *SYNC)
    workers = workers_of(master, 4)
    passing = (200, {"status": "OK", "ok": True})
    assert distinct(probe_every_worker(port, workers)) == [passing]
    for _ in range(2):
        time.sleep(1.2)  # each worker has looked at the store's file again
        probe_every_worker(port, workers)
        hold = flask_command(tmp_path, "held", "status", "hold", "--reason", REASON)
        assert hold.returncode == 0, hold.stderr
        time.sleep(0.2)
        held = (
            503,
            {"status": "FAIL", "ok": True, "held": {"reason": REASON, "until": None}},
        )
        assert distinct(probe_every_worker(port, workers)) == [held]
        time.sleep(1.2)
        release = flask_command(tmp_path, "held", "status", "release")
        assert release.returncode == 0, release.stderr
        time.sleep(0.2)
        assert distinct(probe_every_worker(port, workers)) == [passing]


TICKING = """
status = FlaskStatus(app, url="/readyz", share=STORE, timeout=0.5)
status.add_field("at", time.time, every=1)
"""


def test_after_a_sighup_the_new_workers_keep_the_schedule(
    start: Start, tmp_path: Path
) -> None:
    """The new workers take the host's scheduled result and schedule the
    check themselves: no answer is much older than the interval, where
    before they waited for the taken result to expire (every + timeout +
    1 s), with nobody running the check meanwhile."""
    write_app(tmp_path, "ticking", TICKING)
    master, port = serve_module(start, tmp_path, "ticking", *SYNC)
    workers = workers_of(master, 4)
    probe_every_worker(port, workers)
    time.sleep(1.5)
    restarted = sighup(master, workers)
    ages = []
    ends = time.monotonic() + 4
    while time.monotonic() < ends:
        for answer in probe_every_worker(port, restarted):
            ages.append(time.time() - answer.json()["at"])
        time.sleep(0.1)
    assert max(ages) < 1 + 0.5 + 0.5, sorted(ages)[-5:]  # every, timeout, slack


def sighup(master: subprocess.Popen[bytes], workers: set[int]) -> set[int]:
    """SIGHUP gunicorn's master, which starts new workers and stops the old
    ones; the new workers' PIDs, once all four are up and the old gone."""
    os.kill(master.pid, signal.SIGHUP)
    wait_for(
        lambda: (
            len(set(children(master.pid)) - workers) == 4
            and not set(children(master.pid)) & workers
        ),
        "four new workers",
        30,
    )
    return set(children(master.pid))


def distinct(answers: list[Answer]) -> list[tuple[int, Any]]:
    """The distinct answers, each its code and its JSON, in the order
    first seen."""
    found: list[tuple[int, Any]] = []
    for answer in answers:
        if (answer.code, answer.json()) not in found:
            found.append((answer.code, answer.json()))
    return found


def utc(text: str) -> float:
    """Seconds since the epoch of an ISO 8601 time that must be UTC."""
    moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert moment.utcoffset() == datetime.timedelta(0), text
    return moment.timestamp()


# The same code deployed twice: a check whose result is cached for a minute.
DEPLOYED = """
app.config["STATUS_SHARE"] = STORE
status = FlaskStatus(app, url="/readyz")
status.add_field("version", lambda: (DIR / "version").read_text(), cache=60)
"""


def test_a_new_deploy_reads_no_results_of_the_last_but_keeps_its_hold(
    start: Start, tmp_path: Path
) -> None:
    """The next deploy of the same code on the same store runs its checks
    afresh, where it would find the last deploy's result still fresh; a
    hold set before it outlives it, until released."""
    write_app(tmp_path, "deployed", DEPLOYED)
    (tmp_path / "version").write_text("1")
    master, port = serve_module(start, tmp_path, "deployed", "--workers", "2")
    answers = probe_every_worker(port, workers_of(master, 2))
    assert distinct(answers) == [(200, {"status": "OK", "version": "1"})]
    hold = flask_command(tmp_path, "deployed", "status", "hold", "--reason", "deploy")
    assert hold.returncode == 0, hold.stderr
    stop(master)
    (tmp_path / "version").write_text("2")
    master, port = serve_module(start, tmp_path, "deployed", "--workers", "2")
    answers = probe_every_worker(port, workers_of(master, 2))
    held = {"reason": "deploy", "until": None}
    assert distinct(answers) == [
        (503, {"status": "FAIL", "version": "2", "held": held})
    ]


# -- two apps and two URLs on one store ----------------------------------------

# Served as first.py and as second.py: two apps of the same code, each with
# two URLs whose checks have the same key, each result cached for a minute.
TWO_URLS = """
statuses = {}
for name in ("a", "b"):
    statuses[name] = FlaskStatus(app, url=f"/{name}", share=STORE)
    statuses[name].add_field("n", lambda name=name: f"{__name__} {name}", cache=60)


@app.post("/hold/<name>")
def hold(name):
    statuses[name].hold(f"{__name__} {name} held")
    return "", 204


@app.post("/release/<name>")
def release(name):
    statuses[name].release()
    return "", 204
"""


def test_two_apps_and_two_urls_keep_their_own_state(
    start: Start, tmp_path: Path
) -> None:
    """Each app's URL shows its own check's result, never one another app
    or URL stored under the same key, and a hold covers its own URL alone."""
    served = {}
    for module in ("first", "second"):
        write_app(tmp_path, module, TWO_URLS)
        options = ["--workers", "2"]
        master, port = serve_module(start, tmp_path, module, *options)
        served[module] = (port, workers_of(master, 2))

    def answers() -> dict[str, list[tuple[int, Any]]]:
        return {
            f"{module} /{name}": distinct(probe_every_worker(port, pids, f"/{name}"))
            for module, (port, pids) in served.items()
            for name in ("a", "b")
        }

    def ok(value: str) -> list[tuple[int, Any]]:
        return [(200, {"status": "OK", "n": value})]

    def held(value: str) -> list[tuple[int, Any]]:
        holding = {"reason": f"{value} held", "until": None}
        return [(503, {"status": "FAIL", "n": value, "held": holding})]

    assert answers() == {
        "first /a": ok("first a"),
        "first /b": ok("first b"),
        "second /a": ok("second a"),
        "second /b": ok("second b"),
    }
    first, second = served["first"][0], served["second"][0]
    assert probe(first, "/hold/a", method="POST").code == 204
    time.sleep(1)
    assert answers() == {
        "first /a": held("first a"),
        "first /b": ok("first b"),
        "second /a": ok("second a"),
        "second /b": ok("second b"),
    }
    assert probe(second, "/hold/b", method="POST").code == 204
    assert probe(first, "/release/a", method="POST").code == 204
    time.sleep(1)
    assert answers() == {
        "first /a": ok("first a"),
        "first /b": ok("first b"),
        "second /a": ok("second a"),
        "second /b": held("second b"),
    }


# -- in one process: the hold's API, and the command line without a store -----


def sharing(app: Flask, folder: Path) -> FlaskStatus:
    status = FlaskStatus(app, url="/readyz", share=str(folder / STORE))
    status.add_field("ok", lambda: True)
    return status


def test_a_hold_ends_by_itself(app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    status = sharing(app, tmp_path)
    assert get(client, "/readyz") == (200, {"status": "OK", "ok": True})
    with app.app_context():
        status.hold("restoring a backup", seconds=0.5)
    held_at = time.time()
    code, payload = get(client, "/readyz")
    until = payload["held"]["until"]
    assert (code, payload) == (
        503,
        {
            "status": "FAIL",
            "ok": True,
            "held": {"reason": "restoring a backup", "until": until},
        },
    )
    assert held_at - 0.1 <= utc(until) - 0.5 <= held_at + 0.001
    time.sleep(max(0.0, utc(until) - time.time()) + 0.05)
    assert get(client, "/readyz") == (200, {"status": "OK", "ok": True})


def test_a_hold_without_an_end_lasts_until_released(
    app: Flask, client: FlaskClient, tmp_path: Path
) -> None:
    status = sharing(app, tmp_path)
    with app.app_context():
        status.hold("db migration")
    held = {"reason": "db migration", "until": None}
    assert get(client, "/readyz") == (
        503,
        {"status": "FAIL", "ok": True, "held": held},
    )
    with app.app_context():
        status.release()
    assert get(client, "/readyz") == (200, {"status": "OK", "ok": True})


@pytest.mark.parametrize(
    "args",
    [
        ["status", "hold", "--for", "600", "--reason", "db migration"],
        ["status", "release"],
    ],
    ids=["hold", "release"],
)
def test_the_command_line_needs_a_store(app: Flask, args: list[str]) -> None:
    FlaskStatus(app, url="/readyz").add_field("ok", lambda: True)
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code != 0
    assert "STATUS_SHARE" in result.output


def test_a_hold_needs_a_reason(app: Flask, tmp_path: Path) -> None:
    sharing(app, tmp_path)
    result = app.test_cli_runner().invoke(args=["status", "hold", "--for", "600"])
    assert result.exit_code == 2  # a usage error
    assert "--reason" in result.output


@pytest.mark.parametrize("shared", [True, False], ids=["store", "process"])
def test_the_page_shows_the_last_20_changes_newest_first(
    app: Flask, client: FlaskClient, tmp_path: Path, shared: bool
) -> None:
    """22 changes of a check (its first result is none): the page shows the
    last 20, newest first, after the fields' table, as its listeners heard
    them; health+json does not grow."""
    share = str(tmp_path / STORE) if shared else None
    status = FlaskStatus(app, url="/readyz", share=share)
    db = Switch()
    status.add_field("db", db)
    heard: list[StatusChange] = []
    status.on_change(heard.append)
    health = client.get("/readyz", headers=HEALTH).get_json()
    for run in range(22):
        db.result = run % 2 == 1  # FAIL first, then OK, FAIL...
        client.get("/readyz")
    assert db.calls == 23
    # The first results of the check and the URL, then 22 changes of each.
    wait_for(lambda: len(heard) == 2 + 22 * 2, "the listeners")
    page = client.get("/readyz?format=html").get_data(as_text=True)
    fields, changes = page.split('<table class="history">')
    assert 'data-label="Since"' in fields  # the fields' table comes first
    shown = re.findall(
        r'<tr><th scope="row">(\w+)</th><td data-label="When"><time'
        r' datetime="([^"]+)">[^<]+</time></td><td data-label="From"><span'
        r' class="\w+">(\w+)</span></td><td data-label="To"><span'
        r' class="\w+">(\w+)</span></td></tr>',
        changes,
    )
    ran = [c for c in heard if c.check == "db" and c.old is not None]
    assert shown == [("db", iso(c.at), c.old, c.new) for c in reversed(ran)][:20]
    after = client.get("/readyz", headers=HEALTH).get_json()
    assert (list(after), list(after["checks"]["db"][0])) == (
        list(health),
        list(health["checks"]["db"][0]),
    )


def iso(at: float) -> str:
    """``at`` as the page says a time: ISO 8601 in UTC, to the millisecond."""
    moment = datetime.datetime.fromtimestamp(at, datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- setup: a store another user could forge is refused ------------------------


def refusal(app: Flask, path: Path, given: str) -> str:
    """The ValueError's message when ``path`` is given as ``share`` (``given``
    is "argument") or as ``STATUS_SHARE`` ("config")."""
    with pytest.raises(ValueError) as refused:
        if given == "argument":
            FlaskStatus(app, share=str(path))
        else:
            app.config["STATUS_SHARE"] = str(path)
            FlaskStatus(app)
    message = str(refused.value)
    assert str(path) in message
    if given == "config":
        assert "STATUS_SHARE" in message
    return message


GIVEN = pytest.mark.parametrize("given", ["argument", "config"])


def as_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("making a file another user's takes root (os.chown)")


@GIVEN
def test_a_missing_directory_is_refused(app: Flask, tmp_path: Path, given: str) -> None:
    refusal(app, tmp_path / "missing" / STORE, given)


@GIVEN
def test_a_symlink_is_refused(app: Flask, tmp_path: Path, given: str) -> None:
    target = tmp_path / "elsewhere.sqlite3"
    target.touch(0o600)
    (tmp_path / STORE).symlink_to(target)
    refusal(app, tmp_path / STORE, given)


@GIVEN
def test_a_file_of_another_user_is_refused(
    app: Flask, tmp_path: Path, given: str
) -> None:
    as_root()
    (tmp_path / STORE).touch(0o600)
    os.chown(tmp_path / STORE, 65534, 65534)  # nobody's
    refusal(app, tmp_path / STORE, given)


@GIVEN
@pytest.mark.parametrize("mode", [0o620, 0o602], ids=["group", "others"])
def test_a_file_others_may_write_is_refused(
    app: Flask, tmp_path: Path, given: str, mode: int
) -> None:
    (tmp_path / STORE).touch()
    os.chmod(tmp_path / STORE, mode)
    refusal(app, tmp_path / STORE, given)


@GIVEN
@pytest.mark.parametrize("suffix", ["-wal", "-shm"])
def test_sqlite_files_of_another_user_are_refused(
    app: Flask, tmp_path: Path, given: str, suffix: str
) -> None:
    as_root()
    (tmp_path / STORE).touch(0o600)
    beside = tmp_path / f"{STORE}{suffix}"
    beside.touch(0o600)
    os.chown(beside, 65534, 65534)
    message = refusal(app, tmp_path / STORE, given)
    assert str(beside) in message


@GIVEN
def test_a_directory_others_may_write_needs_the_sticky_bit(
    app: Flask, tmp_path: Path, given: str
) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o777)  # anyone could replace the store
    refusal(app, folder / STORE, given)
    folder.chmod(0o1777)  # as /tmp: only its owner may
    other = Flask("other")
    sharing(other, folder)
    assert get(other.test_client(), "/readyz") == (200, {"status": "OK", "ok": True})


def test_the_store_is_created_for_its_owner_alone(
    app: Flask, client: FlaskClient, tmp_path: Path
) -> None:
    old = os.umask(0o022)  # the usual one, under which SQLite makes 0644
    try:
        sharing(app, tmp_path)
        assert get(client, "/readyz") == (200, {"status": "OK", "ok": True})
    finally:
        os.umask(old)
    files = store_files(tmp_path / STORE)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
    assert modes[STORE] == 0o600
    assert set(modes.values()) == {0o600}  # -wal and -shm too


@pytest.mark.parametrize("value", ["", " ", ":memory:", "file:status.sqlite3?mode=rw"])
def test_what_is_no_file_path_is_refused(app: Flask, value: str) -> None:
    app.config["STATUS_SHARE"] = value
    with pytest.raises(ValueError) as refused:
        FlaskStatus(app)
    assert str(refused.value) == (
        f"The config key STATUS_SHARE {value!r} is no file path; give the path"
        " of a file on this host's local disk, such as"
        " '/run/myapp/status.sqlite3', or leave it unset (None) to keep state"
        " per process."
    )


def test_a_directory_is_refused(app: Flask, tmp_path: Path) -> None:
    with pytest.raises(ValueError) as refused:
        FlaskStatus(app, share=tmp_path)
    assert str(refused.value) == (
        f"The share option {str(tmp_path)!r} must name a file, not a directory."
    )
