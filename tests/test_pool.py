"""The pool of workers: a check that failed leaves its app context (g, a
database session) to no other check, the pool stays small under load, and
an app whose check raised is freed without waiting for a GC pass."""

from __future__ import annotations

import gc
import logging
import sqlite3
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import pytest
from conftest import status_threads
from conftest import wait_for
from flask import Flask
from flask import g
from flask.testing import FlaskClient

import flask_status
from flask_status import FlaskStatus


def get(client: FlaskClient, url: str = "/api/status") -> tuple[int, Any]:
    response = client.get(url)
    return response.status_code, response.get_json()


# -- a failed check's app context ----------------------------------------------


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


# -- the pool stays small --------------------------------------------------------


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


# -- apps freed promptly ---------------------------------------------------------


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
