"""Scheduled checks (``every=``): background runs, latest results, timeouts,
fork, weak references to the app, and ``flask status``."""

from __future__ import annotations

import gc
import json
import math
import os
import select
import signal
import threading
import time
import weakref
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from helpers import get
from helpers import wait_for

import flask_status
from flask_status import FlaskStatus
from flask_status import StatusChange


def threads(name: str) -> set[threading.Thread]:
    """The threads of that name alive now; tests count those new since a snapshot."""
    return {t for t in threading.enumerate() if t.name == name}


class Counter:
    """A check that returns how often it was called, from which threads, and
    how many of its calls overlapped at most; it sleeps ``sleep`` seconds,
    and from call ``hang_from`` on it waits for ``release``."""

    def __init__(
        self,
        sleep: float = 0.0,
        hang_from: float = math.inf,
        release: threading.Event | None = None,
    ) -> None:
        self.sleep, self.hang_from = sleep, hang_from
        self.release = release or threading.Event()
        self.calls = 0
        self.running = 0
        self.most = 0
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self) -> int:
        with self.lock:
            self.calls += 1
            n = self.calls
            self.running += 1
            self.most = max(self.most, self.running)
            self.threads.add(threading.current_thread().name)
        try:
            if n >= self.hang_from:
                self.release.wait(10)
            time.sleep(self.sleep)
            return n
        finally:
            with self.lock:
                self.running -= 1


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An event that hung checks wait for; set when the test ends."""
    event = threading.Event()
    yield event
    event.set()


# -- settings -----------------------------------------------------------------

BAD = [
    (True, TypeError, "must be a number of seconds, not True."),
    ("5", TypeError, "must be a number of seconds, not '5'."),
    (-1, ValueError, "-1 is out of range; give a finite number of seconds from 0."),
    (
        math.nan,
        ValueError,
        "nan is out of range; give a finite number of seconds from 0.",
    ),
    (
        math.inf,
        ValueError,
        "inf is out of range; give a finite number of seconds from 0.",
    ),
]


@pytest.mark.parametrize(("value", "kind", "text"), BAD)
@pytest.mark.parametrize("how", ["argument", "field"])
def test_bad_every_is_refused(
    how: str, value: object, kind: type[Exception], text: str
) -> None:
    with pytest.raises(kind) as error:
        if how == "argument":
            FlaskStatus(every=value)  # type: ignore[arg-type]
        else:
            FlaskStatus().add_field("db", lambda: True, every=value)  # type: ignore[arg-type]
    assert str(error.value) == f"The every interval {text}"


@pytest.mark.parametrize(("value", "kind", "text"), BAD)
def test_bad_status_every_is_refused(
    app: Flask, value: object, kind: type[Exception], text: str
) -> None:
    app.config["STATUS_EVERY"] = value
    hint = (
        " Config values from environment variables are strings:"
        " app.config.from_prefixed_env() parses numbers and booleans."
    )
    with pytest.raises(kind) as error:
        FlaskStatus(app)
    expected = f"The config key STATUS_EVERY {text}"
    assert str(error.value) == (expected + hint if value == "5" else expected)


def test_every_and_cache_on_one_field_is_refused() -> None:
    with pytest.raises(ValueError) as error:
        FlaskStatus().add_field("db", lambda: True, cache=1, every=2)
    assert str(error.value) == (
        "Field 'db' has both cache=1 and every=2, which both say how its results"
        " are reused; give only one."
    )


@pytest.mark.parametrize("how", ["argument", "config"])
def test_which_checks_are_scheduled(app: Flask, how: str) -> None:
    """The endpoint's default schedules a check unless it says every=0 or
    has its own cache=; the decorator takes every= too."""
    if how == "config":
        app.config["STATUS_EVERY"] = 60
    status = FlaskStatus(app, every=60) if how == "argument" else FlaskStatus(app)
    scheduled, ping, cached, own = Counter(), Counter(), Counter(), Counter()
    status.add_field("scheduled", scheduled)
    status.add_field("ping", ping, every=0)
    status.add_field("cached", cached, cache=0)
    status.field("own", every=30)(own)
    client = app.test_client()
    for n in (1, 2, 3):
        assert get(client) == (
            200,
            {"status": "OK", "scheduled": 1, "ping": n, "cached": n, "own": 1},
        )


def test_on_request_by_default(app: Flask, client: FlaskClient) -> None:
    check = Counter()
    FlaskStatus(app).add_field("n", check)
    assert [get(client)[1]["n"] for _ in range(3)] == [1, 2, 3]


# -- the schedule -------------------------------------------------------------


def test_nothing_runs_before_the_first_request(app: Flask) -> None:
    gc.collect()  # the apps of earlier tests, and their schedules, are gone
    before = threads("flask-status-scheduler")
    check = Counter()
    FlaskStatus(app, every=0.02).add_field("n", check)
    time.sleep(0.3)
    assert check.calls == 0
    assert threads("flask-status-scheduler") - before == set()
    assert get(app.test_client()) == (200, {"status": "OK", "n": 1})
    wait_for(lambda: check.calls >= 3, "runs after the first request")


def test_first_request_waits_for_the_first_result(app: Flask) -> None:
    check = Counter(sleep=0.1)
    FlaskStatus(app, every=60).add_field("n", check)  # the default 0.8 s timeout
    assert get(app.test_client()) == (200, {"status": "OK", "n": 1})


def test_results_advance_without_requests(app: Flask) -> None:
    check = Counter(sleep=0.5)
    FlaskStatus(app, every=0.1, timeout=2).add_field("n", check)
    client = app.test_client()
    assert get(client) == (200, {"status": "OK", "n": 1})
    seen = []
    for _ in range(5):  # during and between background runs
        start = time.monotonic()
        code, body = get(client)
        assert time.monotonic() - start < 0.3  # never waits for a 0.5 s run
        assert code == 200
        seen.append(body["n"])
        time.sleep(0.1)
    calls = check.calls
    wait_for(lambda: check.calls >= calls + 2, "runs with no request")
    later = get(client)[1]["n"]
    assert seen == sorted(seen)
    assert later > seen[-1]
    assert check.threads == {"flask-status"}  # never a request's thread


def test_a_request_answers_the_latest_result_while_a_run_is_under_way(
    app: Flask, release: threading.Event
) -> None:
    check = Counter(hang_from=2, release=release)
    FlaskStatus(app, every=0.02, timeout=5).add_field("n", check)
    client = app.test_client()
    assert get(client) == (200, {"status": "OK", "n": 1})
    wait_for(lambda: check.calls == 2, "the second run to start")
    start = time.monotonic()
    assert get(client) == (200, {"status": "OK", "n": 1})
    assert time.monotonic() - start < 1  # the run has 5 s
    release.set()
    wait_for(lambda: get(client)[1]["n"] >= 2, "the second result")


def test_never_two_runs_at_once(app: Flask) -> None:
    check = Counter(sleep=0.03)
    # Runs that outlast their timeout are never started again until they return.
    slow = Counter(sleep=0.15)
    status = FlaskStatus(app, every=0.01, timeout=0.1)
    status.add_field("n", check)
    status.add_field("slow", slow, critical=False)

    def hammer() -> None:
        client = app.test_client()
        for _ in range(20):
            client.get("/api/status")
            time.sleep(0.01)

    clients = [threading.Thread(target=hammer) for _ in range(4)]
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    wait_for(lambda: slow.calls >= 3, "a few runs of the slow check")
    assert (check.most, slow.most) == (1, 1)
    assert check.calls >= 3


def test_a_hung_run_fails_at_its_deadline_without_requests(
    app: Flask, release: threading.Event
) -> None:
    check = Counter(hang_from=2, release=release)
    status = FlaskStatus(app, every=0.02, timeout=0.2, show_errors=True)
    status.add_field("db", check)
    changes: list[StatusChange] = []
    status.on_change(changes.append)
    client = app.test_client()
    assert get(client) == (200, {"status": "OK", "db": 1})
    wait_for(lambda: check.calls == 2, "the second run to start")
    wait_for(lambda: len(changes) == 4, "the timeout, with no request")
    assert [(c.check, c.old, c.new, c.reason) for c in changes] == [
        ("db", None, "OK", None),
        (None, None, "OK", None),
        ("db", "OK", "FAIL", "timed out after 0.2 s; still running"),
        (None, "OK", "FAIL", None),
    ]
    failing = (
        503,
        {
            "status": "FAIL",
            "db": False,
            "errors": {"db": "timed out after 0.2 s; still running"},
        },
    )
    for _ in range(5):
        assert get(client) == failing
        time.sleep(0.02)
    assert check.calls == 2  # not started again while it hangs
    release.set()
    wait_for(lambda: len(changes) == 6, "the schedule to resume")
    assert check.calls >= 3
    assert get(client)[0] == 200


def test_a_hung_scheduled_check_ties_up_one_thread(
    app: Flask, release: threading.Event
) -> None:
    gc.collect()  # the apps of earlier tests, and their schedules, are gone
    before = threads("flask-status")
    check = Counter(hang_from=2, release=release)
    status = FlaskStatus(app, every=0.01, timeout=0.5)
    status.add_field("db", check)
    changes: list[StatusChange] = []
    status.on_change(changes.append)
    client = app.test_client()
    assert get(client) == (200, {"status": "OK", "db": 1})
    wait_for(lambda: check.calls == 2, "the run that hangs")
    answers, slowest = [], 0.0
    for n in range(20):
        if n == 10:
            wait_for(lambda: len(changes) == 4, "the hung run to time out")
        start = time.monotonic()
        answers.append(get(client))
        slowest = max(slowest, time.monotonic() - start)
    assert slowest < 0.25  # the run has 0.5 s: no request waited for it
    ok, failed = (
        (200, {"status": "OK", "db": 1}),
        (503, {"status": "FAIL", "db": False}),
    )
    passed = answers.count(ok)  # the latest result until the deadline, then failed
    assert passed >= 1
    assert answers == [ok] * passed + [failed] * (20 - passed)
    assert check.calls == 2
    # The hung run's thread, and at most one each for its log line and the
    # listeners (fewer when idle workers of earlier tests are at hand).
    assert len(threads("flask-status") - before) <= 3


# -- processes and apps -------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads
def test_a_forked_child_runs_its_own_schedule(app: Flask) -> None:
    calls: list[int] = []

    def n() -> int:  # no lock that a parent's thread could hold at the fork
        calls.append(1)
        return len(calls)

    FlaskStatus(app, every=0.02).add_field("n", n)
    assert get(app.test_client()) == (200, {"status": "OK", "n": 1})
    wait_for(lambda: len(calls) >= 3, "the parent's schedule")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report over the pipe, never return to pytest
        code = 1
        try:
            os.close(read)
            client = app.test_client()
            first = get(client)
            inherited = len(calls)
            deadline = time.monotonic() + 5
            while len(calls) < inherited + 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            report = {"first": first, "calls": len(calls) - inherited}
            report["later"] = get(client)
            os.write(write, json.dumps(report).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    try:
        ready, _, _ = select.select([read], [], [], 10)
        output = os.read(read, 65536) if ready else b""
    finally:
        os.close(read)
        done, status = os.waitpid(pid, os.WNOHANG)
        deadline = time.monotonic() + 5
        while not done and time.monotonic() < deadline:
            time.sleep(0.01)
            done, status = os.waitpid(pid, os.WNOHANG)
        if not done:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    assert done and os.waitstatus_to_exitcode(status) == 0, output
    report = json.loads(output)
    assert report["first"][0] == 200
    assert report["calls"] >= 3  # the child's own schedule ran the check
    assert report["later"][1]["n"] > report["first"][1]["n"]


def serve_once(calls: list[int]) -> weakref.ref[Flask]:
    app = Flask("weak")

    def n() -> int:  # refers to no app
        calls.append(1)
        return len(calls)

    FlaskStatus(app, every=0.05).add_field("n", n)
    assert get(app.test_client()) == (200, {"status": "OK", "n": 1})
    wait_for(lambda: len(calls) >= 2, "a scheduled run")
    return weakref.ref(app)


def test_the_schedule_holds_the_app_weakly() -> None:
    calls: list[int] = []
    ref = serve_once(calls)
    gc.collect()
    assert ref() is None
    time.sleep(0.1)  # a run in flight when the app went may still finish
    count = len(calls)
    time.sleep(0.3)  # six intervals
    assert len(calls) == count


def test_the_heap_keeps_no_entries_of_collected_apps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Apps made by a factory, each served once and dropped, leave no
    hour-long entries behind: the heap is pruned as it grows."""
    scheduler = flask_status._Scheduler()
    monkeypatch.setattr(flask_status, "_scheduler", scheduler)
    sizes = []
    try:
        for n in range(300):
            app = Flask(f"factory{n}")
            FlaskStatus(app, every=3600).add_field("db", lambda: True)
            assert get(app.test_client()) == (200, {"status": "OK", "db": True})
            del app
            if n % 10 == 9:
                gc.collect()  # apps in reference cycles, if any
            sizes.append(len(scheduler._heap))
    finally:
        with scheduler._cond:  # let its thread go
            scheduler._heap.clear()
            scheduler._cond.notify()
    assert max(sizes) <= 64 + 4  # two entries per app before the fix: 600


def test_flask_status_runs_each_check_once(app: Flask) -> None:
    scheduled, plain = Counter(), Counter()
    status = FlaskStatus(app, every=0.02, workers=1)  # one run after the other
    status.add_field("scheduled", scheduled)
    status.add_field("plain", plain, every=0)
    heard: list[StatusChange] = []
    status.on_change(heard.append)
    start = time.monotonic()
    result = app.test_cli_runner().invoke(args=["status"])
    assert time.monotonic() - start < 1
    assert (result.exit_code, result.output) == (
        0,
        '/api/status {"status":"OK","scheduled":1,"plain":1}\n',
    )
    time.sleep(0.2)  # ten intervals: no schedule was started
    assert (scheduled.calls, plain.calls) == (1, 1)
    # A request's changes are the first the listener hears: the command had none.
    assert get(app.test_client())[0] == 200
    wait_for(lambda: len(heard) == 3, "the request's changes")
    assert [(c.check, c.old, c.new) for c in heard] == [
        ("scheduled", None, "OK"),
        ("plain", None, "OK"),
        (None, None, "OK"),
    ]


def test_scheduled_checks_that_fall_due_together_each_get_a_worker(
    app: Flask,
) -> None:
    """Three checks that can pass only side by side: each scheduled run
    meets the other two. Run one after another on one worker, the first
    waits in vain and every one fails."""
    barrier = threading.Barrier(3)

    def meet() -> bool:
        barrier.wait(timeout=0.5)
        return True

    status = FlaskStatus(app, every=0.1)
    for key in ("a", "b", "c"):
        status.add_field(key, meet)
    heard: list[StatusChange] = []
    status.on_change(heard.append)
    client = app.test_client()
    ok = {"status": "OK", "a": True, "b": True, "c": True}
    assert get(client) == (200, ok)
    time.sleep(1.0)  # ten scheduled rounds
    assert get(client) == (200, ok)
    assert [(c.check, c.new) for c in heard if c.new != "OK"] == []
