"""The threads: checks run side by side on shared workers, a failed check
leaves its app context to no other, contexts and threads that fail settle
the run, and the pool stays as small as the work."""

from __future__ import annotations

import gc
import logging
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from typing import Callable

import pytest
from flask import Flask
from flask import appcontext_pushed
from flask import g
from flask.ctx import _AppCtxGlobals
from flask.testing import FlaskClient
from helpers import assert_pool_at_rest
from helpers import get
from helpers import logged
from helpers import status_threads
from helpers import wait_for
from servers import Gunicorn
from servers import http_get

import flask_status
from flask_status import FlaskStatus


@pytest.fixture(autouse=True)
def pool_at_rest() -> Iterator[None]:
    """After each test of the threads, the pool's invariant holds."""
    yield
    assert_pool_at_rest()


def serve_a_failing_check(name: str, coroutine: bool) -> weakref.ref[Flask]:
    app = Flask(name)
    status = FlaskStatus(app)

    def db() -> None:
        raise RuntimeError("down")

    async def db_async() -> None:
        raise RuntimeError("down")

    status.add_field("db", db_async if coroutine else db)
    status.add_field("cache", lambda: True)
    assert get(app.test_client()) == (
        503,
        {"status": "FAIL", "db": False, "cache": True},
    )
    return weakref.ref(app)


def hang(started: list[str], name: str, gate: threading.Event) -> bool:
    started.append(name)
    return gate.wait()


def counted(calls: list[str], check: Callable[[], Any]) -> Callable[[], Any]:
    """``check``, noting each call in ``calls``."""

    def wrapper() -> Any:
        calls.append("call")
        return check()

    return wrapper


STORM = """
    import threading

    from flask import Flask

    from flask_status import FlaskStatus

    app = Flask(__name__)
    FlaskStatus(app, url="/livez")
    readyz = FlaskStatus(app, url="/readyz", timeout=0.5)
    readyz.add_field("hung", threading.Event().wait)
"""


def test_a_failed_check_leaves_nothing_in_g_for_the_checks_after_it(
    app: Flask, client: FlaskClient
) -> None:
    status = FlaskStatus(app, show_errors=True)

    @status.field
    def a() -> None:
        g.left = "aborted transaction left by check a"
        raise RuntimeError("query failed")

    @status.field
    def b() -> str:
        return str(getattr(g, "left", "fresh"))

    for _ in range(5):
        assert get(client) == (
            503,
            {
                "status": "FAIL",
                "a": False,
                "b": "fresh",
                "errors": {"a": "RuntimeError: query failed"},
            },
        )


def test_a_failed_check_leaves_its_open_transaction_to_no_other(
    app: Flask, client: FlaskClient, tmp_path: Path
) -> None:
    """The pattern of Flask's tutorial: one SQLite connection per app
    context, on g, closed at teardown."""
    path = tmp_path / "app.sqlite3"
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE probe (n INTEGER)")
    setup.close()

    def get_db() -> sqlite3.Connection:
        if "db" not in g:
            g.db = sqlite3.connect(path, isolation_level=None)  # explicit BEGIN
        return g.db  # type: ignore[no-any-return]

    @app.teardown_appcontext
    def close_db(error: BaseException | None) -> None:
        db = g.pop("db", None)
        if db is not None:
            db.close()  # rolls back what is still open

    status = FlaskStatus(app, show_errors=True)

    @status.field
    def migrated() -> None:
        db = get_db()
        db.execute("BEGIN")
        db.execute("INSERT INTO probe VALUES (1)")
        raise RuntimeError("migration failed")  # the transaction stays open

    @status.field
    def writable() -> bool:
        db = get_db()
        db.execute("BEGIN")  # within a's transaction, if it shared a's context
        db.execute("INSERT INTO probe VALUES (2)")
        db.execute("ROLLBACK")
        return True

    for _ in range(3):
        assert get(client) == (
            503,
            {
                "status": "FAIL",
                "migrated": False,
                "writable": True,
                "errors": {"migrated": "RuntimeError: migration failed"},
            },
        )
    with sqlite3.connect(path) as check:
        assert check.execute("SELECT count(*) FROM probe").fetchone() == (0,)
    check.close()


def test_the_pool_grows_no_further_than_the_work_needs(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four clients hammering five quick checks need a few threads, not the
    dozens woken for tasks other workers were already on their way to take."""
    monkeypatch.setattr(flask_status, "_pool", flask_status._Pool())  # none idle
    before = status_threads()
    status = FlaskStatus(app, workers=2)
    for n in range(5):
        status.add_field(f"c{n}", lambda: True)
    answers: list[int] = []
    end = time.monotonic() + 1.5

    def hammer() -> None:
        client = app.test_client()
        while time.monotonic() < end:
            answers.append(client.get("/api/status").status_code)

    clients = [threading.Thread(target=hammer) for _ in range(4)]
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    assert len(answers) > 100
    assert set(answers) == {200}
    assert len(status_threads() - before) <= 8  # ~60 before the fix


@pytest.mark.parametrize("coroutine", [False, True], ids=["function", "coroutine"])
def test_an_app_whose_check_raised_is_freed_without_a_gc_pass(coroutine: bool) -> None:
    """The traceback of the check's exception holds the frame that ran it,
    and so the app: reference counting alone must free it. (A coroutine's
    exception is also held by its asyncio task, which its traceback holds.)"""
    name = f"freed-without-gc-{coroutine}"
    logging.getLogger(name).disabled = True  # the log keeps no traceback
    gc.collect()
    gc.disable()
    try:
        ref = serve_a_failing_check(name, coroutine)
        # The worker may still be closing the app context.
        wait_for(lambda: ref() is None, "the app to be freed", 2)
    finally:
        gc.enable()
        logging.getLogger(name).disabled = False


def test_checks_of_a_request_run_concurrently(app: Flask, client: FlaskClient) -> None:
    barrier = threading.Barrier(5, timeout=2)
    status = FlaskStatus(app, timeout=3)
    for n in range(5):
        status.add_field(f"c{n}", lambda: barrier.wait() >= 0)
    assert get(client) == (200, {"status": "OK", **{f"c{n}": True for n in range(5)}})


def test_checks_behind_a_slow_one_get_their_own_worker(
    app: Flask, client: FlaskClient
) -> None:
    barrier = threading.Barrier(2, timeout=2)
    status = FlaskStatus(app, timeout=3)
    status.add_field("quick", lambda: True)
    status.add_field("slow", lambda: barrier.wait() >= 0)  # needs "behind" to run
    status.add_field("behind", lambda: barrier.wait() >= 0)
    assert get(client) == (
        200,
        {"status": "OK", "quick": True, "slow": True, "behind": True},
    )


def test_hung_check_ties_up_one_thread(app: Flask, gate: threading.Event) -> None:
    calls: list[int] = []

    def hung() -> bool:
        calls.append(1)
        return gate.wait()

    FlaskStatus(app, timeout=0.2).add_field("hung", hung)
    before = status_threads()

    def hammer() -> None:
        client = app.test_client()
        for _ in range(10):
            assert get(client) == (503, {"status": "FAIL", "hung": False})

    clients = [threading.Thread(target=hammer) for _ in range(4)]
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    assert calls == [1]
    # The hung call's thread, and one more (or an idle one from an earlier
    # test) that logged the timeout.
    assert len(status_threads() - before) <= 2


def test_idle_workers_go_away(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flask_status._Pool, "idle", 0.05)
    before = status_threads()
    FlaskStatus(app).add_field("db", lambda: True)
    assert get(client) == (200, {"status": "OK", "db": True})
    deadline = time.monotonic() + 5
    while status_threads() - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert status_threads() - before == set()


def test_failing_teardown_does_not_kill_workers(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    @app.teardown_appcontext
    def broken_teardown(error: BaseException | None) -> None:
        if threading.current_thread().name == "flask-status":  # not the request's
            raise RuntimeError("session cleanup failed")

    FlaskStatus(app, workers=1).add_field("db", lambda: True)
    for _ in range(3):  # each request needs the single worker alive
        assert get(client) == (200, {"status": "OK", "db": True})
    message = "The application context of a status check failed to close."
    wait_for(  # the worker closes its context after the run settled
        lambda: any(r.getMessage() == message for r in caplog.records),
        "the failed teardown to be logged",
    )


def test_no_callables_uses_no_worker(app: Flask, client: FlaskClient) -> None:
    before = status_threads()
    FlaskStatus(app).add_field("version", "1.0")
    assert get(client) == (200, {"status": "OK", "version": "1.0"})
    assert status_threads() - before == set()


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
