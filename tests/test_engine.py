"""The engine: deadlines belong to runs, late runs answer at once, runs always
settle, results are frozen when a run settles, and one pool serves the
process."""

from __future__ import annotations

import gc
import json
import logging
import statistics
import threading
import time
import weakref
from typing import Any
from typing import Callable

import pytest
from conftest import Gunicorn
from conftest import get as http_get
from conftest import logged
from conftest import status_threads
from flask import Flask
from flask import appcontext_pushed
from flask.ctx import _AppCtxGlobals
from flask.testing import FlaskClient

import flask_status
from flask_status import FlaskStatus


def get(client: FlaskClient, url: str = "/api/status") -> tuple[int, Any]:
    response = client.get(url)
    return response.status_code, response.get_json()


def sleeper(seconds: float) -> Callable[[], str]:
    """A check that takes ``seconds`` and passes with "done"."""

    def check() -> str:
        time.sleep(seconds)
        return "done"

    return check


def counted(calls: list[str], check: Callable[[], Any]) -> Callable[[], Any]:
    """``check``, noting each call in ``calls``."""

    def wrapper() -> Any:
        calls.append("call")
        return check()

    return wrapper


# -- deadlines belong to runs -------------------------------------------------


def test_a_run_that_ends_after_its_deadline_timed_out(app: Flask) -> None:
    # The request first waits for "slow", which is within its 2 s; "quick" ended
    # at 0.3 s, long after its own deadline at 0.1 s: that is a timeout.
    status = FlaskStatus(app, show_errors=True)
    status.add_field("slow", sleeper(0.5), timeout=2)
    status.add_field("quick", sleeper(0.3), timeout=0.1)
    assert get(app.test_client()) == (
        503,
        {
            "status": "FAIL",
            "slow": "done",
            "quick": False,
            "errors": {"quick": "timed out after 0.1 s"},
        },
    )


def test_a_check_slower_than_its_timeout_never_passes(app: Flask) -> None:
    # A request joining a run in flight gets the run's deadline, not a new one.
    FlaskStatus(app, timeout=0.3).add_field("slow", sleeper(0.5))
    answers: list[tuple[int, Any]] = []

    def poll() -> None:
        client = app.test_client()
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            answers.append(get(client))
            time.sleep(0.02)

    pollers = [threading.Thread(target=poll) for _ in range(4)]
    for poller in pollers:
        poller.start()
    for poller in pollers:
        poller.join()
    assert len(answers) >= 8
    assert [a for a in answers if a != (503, {"status": "FAIL", "slow": False})] == []


def test_a_late_run_answers_at_once_until_it_returns(
    app: Flask, gate: threading.Event
) -> None:
    calls: list[str] = []
    hung = counted(calls, lambda: gate.wait(5))
    FlaskStatus(app, show_errors=True).add_field("hung", hung, timeout=0.2)
    client = app.test_client()
    failed = {"status": "FAIL", "hung": False}
    assert get(client) == (503, {**failed, "errors": {"hung": "timed out after 0.2 s"}})
    late = (503, {**failed, "errors": {"hung": "timed out after 0.2 s; still running"}})
    took = []
    for _ in range(10):
        start = time.monotonic()
        answer = get(client)
        took.append(time.monotonic() - start)
        assert answer == late
    # Well under 0.05 s each; the median, so one slow slice of a shared
    # machine does not decide, and none waits the 0.2 s again.
    assert statistics.median(took) < 0.05
    assert max(took) < 0.2
    assert calls == ["call"]  # and none starts a second run beside the hung one
    gate.set()  # the check returns: the next request starts a fresh run
    deadline = time.monotonic() + 2
    answer = get(client)
    while answer == late and time.monotonic() < deadline:
        time.sleep(0.01)
        answer = get(client)
    assert answer == (200, {"status": "OK", "hung": True})
    assert calls == ["call", "call"]


STORM = """
    import threading

    from flask import Flask

    from flask_status import FlaskStatus

    app = Flask(__name__)
    FlaskStatus(app, url="/livez")
    readyz = FlaskStatus(app, url="/readyz", timeout=0.5)
    readyz.add_field("hung", threading.Event().wait)
"""


def test_a_hung_check_does_not_tie_up_the_servers_threads(gunicorn: Gunicorn) -> None:
    # 32 clients on /readyz, served by 8 threads: if each waited for the hung
    # check, /livez would queue behind them for seconds.
    _, port = gunicorn(STORM, "--workers", "1", "--threads", "8")
    stop = threading.Event()
    answers: list[tuple[int, bytes]] = []

    def storm() -> None:
        while not stop.is_set():
            answers.append(http_get(port, "/readyz"))

    clients = [threading.Thread(target=storm) for _ in range(32)]
    for client in clients:
        client.start()
    latencies = []
    try:
        time.sleep(0.7)  # the storm is on, and the first run is late
        for _ in range(5):
            start = time.monotonic()
            assert http_get(port, "/livez") == (200, b'{"status":"OK"}')
            latencies.append(time.monotonic() - start)
            time.sleep(0.1)
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=30)
    assert max(latencies) < 1.0
    assert set(answers) == {(503, b'{"status":"FAIL","hung":false}')}


def test_hung_checks_never_starve_a_healthy_one(
    app: Flask, gate: threading.Event
) -> None:
    # Two hung checks hold both workers until their deadlines at 0.1 s; the
    # quick check, with 0.8 s, gets a worker then, and on every request after.
    status = FlaskStatus(app, workers=2, show_errors=True)
    status.add_field("hung1", gate.wait, timeout=0.1)
    status.add_field("hung2", gate.wait, timeout=0.1)
    status.add_field("quick", lambda: "up")
    before = status_threads()
    client = app.test_client()
    answers = [get(client) for _ in range(5)]
    failed = {"status": "FAIL", "hung1": False, "hung2": False, "quick": "up"}
    timed_out = "timed out after 0.1 s"
    assert answers[0] == (
        503,
        {**failed, "errors": {"hung1": timed_out, "hung2": timed_out}},
    )
    late = f"{timed_out}; still running"
    assert (
        answers[1:] == [(503, {**failed, "errors": {"hung1": late, "hung2": late}})] * 4
    )
    assert len(status_threads() - before) <= 2 + 2  # workers + hung checks


# -- runs always settle -------------------------------------------------------


def test_a_failing_app_context_settles_the_run(app: Flask, client: FlaskClient) -> None:
    pytest.importorskip("blinker")  # Flask 2.2 has no signals without it

    def refuse(sender: Flask, **extra: Any) -> None:
        if threading.current_thread().name == "flask-status":  # not the request's
            raise RuntimeError("no context for you")

    calls: list[str] = []
    FlaskStatus(app, show_errors=True).add_field("db", counted(calls, lambda: True))
    appcontext_pushed.connect(refuse, app)
    try:
        start = time.monotonic()
        assert get(client) == (
            503,
            {
                "status": "FAIL",
                "db": False,
                "errors": {
                    "db": "the app context failed: RuntimeError: no context for you"
                },
            },
        )
        assert time.monotonic() - start < 0.5  # not at the 0.8 s deadline
    finally:
        appcontext_pushed.disconnect(refuse, app)
    assert get(client) == (200, {"status": "OK", "db": True})
    assert calls == ["call"]


def test_an_app_context_that_cannot_be_made_settles_the_run(
    app: Flask, client: FlaskClient
) -> None:
    class Globals(_AppCtxGlobals):
        def __init__(self) -> None:  # made with each application context
            if threading.current_thread().name == "flask-status":
                raise RuntimeError("no globals for you")

    calls: list[str] = []
    FlaskStatus(app, show_errors=True).add_field("db", counted(calls, lambda: True))
    app.app_ctx_globals_class = Globals
    start = time.monotonic()
    assert get(client) == (
        503,
        {
            "status": "FAIL",
            "db": False,
            "errors": {
                "db": "the app context failed: RuntimeError: no globals for you"
            },
        },
    )
    assert time.monotonic() - start < 0.5  # not at the 0.8 s deadline
    app.app_ctx_globals_class = _AppCtxGlobals
    assert get(client) == (200, {"status": "OK", "db": True})
    assert calls == ["call"]


def test_a_thread_that_cannot_start_settles_the_run(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flask_status, "_pool", flask_status._Pool())  # none idle
    start_thread = threading.Thread.start

    def refuse(thread: threading.Thread) -> None:
        if thread.name == "flask-status":
            raise RuntimeError("can't start new thread")
        start_thread(thread)

    FlaskStatus(app, show_errors=True, timeout=2).add_field("db", lambda: True)
    with monkeypatch.context() as patch:
        patch.setattr(threading.Thread, "start", refuse)
        start = time.monotonic()
        answer = get(client)
        elapsed = time.monotonic() - start
    assert answer == (
        503,
        {
            "status": "FAIL",
            "db": False,
            "errors": {
                "db": "could not start a thread: RuntimeError: can't start new thread"
            },
        },
    )
    assert elapsed < 1.0  # not a hang until the deadline at 2 s
    assert get(client) == (200, {"status": "OK", "db": True})


def test_system_exit_in_a_teardown_hook_wedges_nothing(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    @app.teardown_appcontext
    def exit_on_teardown(error: BaseException | None) -> None:
        if threading.current_thread().name == "flask-status":  # not the request's
            raise SystemExit(3)

    calls: list[str] = []
    FlaskStatus(app, workers=1).add_field("db", counted(calls, lambda: True))
    for _ in range(3):  # each request is a fresh run, on a pool still working
        assert get(client) == (200, {"status": "OK", "db": True})
    assert calls == ["call"] * 3

    def messages() -> list[str]:
        return [r.getMessage() for r in logged(app, caplog)]

    deadline = time.monotonic() + 2  # each is logged after its response
    while len(messages()) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (
        messages() == ["The application context of a status check failed to close."] * 3
    )


def test_a_raising_log_filter_still_settles_the_run(
    app: Flask, client: FlaskClient
) -> None:
    raised: list[str] = []

    class Broken(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            raised.append(record.getMessage())
            raise RuntimeError("the log is full")

    broken = Broken()
    calls: list[str] = []
    FlaskStatus(app, workers=1).add_field("db", counted(calls, lambda: False))
    app.logger.addFilter(broken)
    try:
        for _ in range(3):  # the first run's log raises; each is a fresh run
            assert get(client) == (503, {"status": "FAIL", "db": False})
    finally:
        app.logger.removeFilter(broken)
    assert raised == ["Check 'db' failed: returned False"]
    assert calls == ["call"] * 3


# -- results are frozen when a run settles ------------------------------------


def not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def test_a_result_changed_after_its_run_settled_changes_nothing(
    app: Flask, client: FlaskClient
) -> None:
    shared: list[Any] = ["replica-1"]
    FlaskStatus(app, cache=10).add_field("replicas", lambda: shared)
    first = client.get("/api/status")
    assert (first.status_code, first.data) == (
        200,
        b'{"status":"OK","replicas":["replica-1"]}',
    )
    shared.append("replica-2")
    shared.append({"a set"})
    shared.append(float("nan"))
    for _ in range(3):
        later = client.get("/api/status")
        assert (later.status_code, later.data) == (200, first.data)
        json.loads(later.data, parse_constant=not_json)


def test_a_result_too_deep_to_encode_fails_only_its_check(
    app: Flask, client: FlaskClient
) -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    status = FlaskStatus(app, show_errors=True)
    status.add_field("deep", lambda: deep)
    status.add_field("fine", lambda: "up")
    assert get(client) == (
        503,
        {
            "status": "FAIL",
            "deep": False,
            "fine": "up",
            "errors": {"deep": "returned a list object that JSON cannot encode"},
        },
    )


# -- one pool per process, apps freed promptly --------------------------------


def test_many_apps_share_one_pool_and_are_freed() -> None:
    before = status_threads()
    refs = []
    for n in range(300):
        app = Flask(f"app{n}")
        FlaskStatus(app).add_field("n", lambda n=n: n)
        response = app.test_client().get("/api/status")
        assert (response.status_code, response.get_json()) == (
            200,
            {"status": "OK", "n": n},
        )
        refs.append(weakref.ref(app))
        del app, response
    assert len(status_threads() - before) <= 8
    # The last worker to run a check may still be closing its app context.
    deadline = time.monotonic() + 1
    gc.collect()
    while any(ref() is not None for ref in refs) and time.monotonic() < deadline:
        time.sleep(0.01)
        gc.collect()
    assert [n for n, ref in enumerate(refs) if ref() is not None] == []
