"""What the tests use to make requests, build endpoints, wait for other
threads and read the log: plain functions and classes, no fixtures."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from typing import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

import flask_status
from flask_status import FlaskStatus
from flask_status import StatusChange


def wait_for(condition: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    """Poll until ``condition()`` is true, for what other threads do (listeners,
    schedules); fail the test, saying ``what``, after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"Waited {timeout} s in vain for {what}.")
        time.sleep(0.005)


# -- the log -------------------------------------------------------------------


def logged(app: Flask, caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The records logged through ``app.logger``, none of another app's."""
    return [r for r in caplog.records if r.name == app.name]


def listener_failures(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> list[logging.LogRecord]:
    """The records of status listeners of ``app`` that raised."""
    return [
        r
        for r in logged(app, caplog)
        if r.getMessage().startswith("The status listener")
    ]


def warnings(caplog: pytest.LogCaptureFixture, app: Flask) -> list[str]:
    """The app's warnings about ``?exclude=`` names."""
    return [
        r.getMessage()
        for r in logged(app, caplog)
        if r.levelname == "WARNING" and r.getMessage().startswith("Cannot exclude")
    ]


class StalledLogHandler(logging.Handler):
    """An ERROR handler that stalls, as one sending mail may: it waits for
    ``gate`` (at most ``stall`` seconds), then notes the message.
    ``entered`` is set once a record reached it."""

    def __init__(self, gate: threading.Event, stall: float = 2.0) -> None:
        super().__init__(logging.ERROR)
        self.gate, self.stall = gate, stall
        self.entered = threading.Event()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.entered.set()
        self.gate.wait(self.stall)
        self.messages.append(record.getMessage())


# -- requests and answers ------------------------------------------------------


def get(client: FlaskClient, url: str = "/api/status") -> tuple[int, Any]:
    """GET ``url`` through the test client: the status code and the JSON."""
    response = client.get(url)
    return response.status_code, response.get_json()


def prometheus(
    client: FlaskClient, path: str, headers: dict[str, str] | None = None
) -> str:
    """Scrape ``path`` as Prometheus would: always 200, never cached."""
    response = client.get(path, headers=headers or {})
    assert response.status_code == 200  # a scrape never fails
    assert (
        response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    )
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_data(as_text=True)


class StartsWith:
    """Equal to any text that is ``prefix`` and then more: for a reason or a
    line whose start is ours (a log line's words, the exception's type
    before ``: ``) and whose rest is a third-party library's message, such as
    redis-py's or SQLite's, which the tests never pin: it may change in any
    release. Compare it inside a payload, ``{"db": StartsWith("...: ")}``,
    so the rest of the answer stays exact."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, str)
            and other.startswith(self.prefix)
            and len(other) > len(self.prefix)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"StartsWith({self.prefix!r})"


# -- checks and endpoints ------------------------------------------------------


def counted(calls: list[str], key: str, value: Any) -> Callable[[], Any]:
    """A check that notes each call in ``calls`` and returns ``value``."""

    def check() -> Any:
        calls.append(key)
        return value

    return check


def build_readyz(app: Flask, calls: list[str], **options: Any) -> FlaskStatus:
    """/readyz with a static version, a passing db, a failing non-critical
    cache and a failing critical queue."""
    status = FlaskStatus(app, url="/readyz", **options)
    status.add_field("version", "1.2.3")
    status.add_field("db", counted(calls, "db", 3))
    status.add_field("cache", counted(calls, "cache", False), critical=False)
    status.add_field("queue", counted(calls, "queue", False))
    return status


class Switch:
    """A check whose next results the test sets: True passes, False fails,
    an exception is raised."""

    def __init__(self, result: object = True) -> None:
        self.result = result
        self.calls = 0

    def __call__(self) -> object:
        self.calls += 1
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


# -- status changes: checks the test switches, changes compared without time


def change(
    check: str | None, old: str | None, new: str, reason: str | None = None
) -> StatusChange:
    """A change at /readyz, with ``at`` zeroed to compare with ``timeless``."""
    return StatusChange("/readyz", check, old, new, reason, 0.0)


def timeless(changes: list[StatusChange]) -> list[StatusChange]:
    return [c._replace(at=0.0) for c in changes]


# -- the pool's threads --------------------------------------------------------


def status_threads() -> set[threading.Thread]:
    """The pool's worker threads alive now; tests count those new since a
    snapshot."""
    return {t for t in threading.enumerate() if t.name == "flask-status"}


def assert_pool_at_rest() -> None:
    """Assert the pool's invariant once its work is done: no task is
    queued, no worker is counted as on its way, and no more workers are
    parked than are alive."""
    pool = flask_status._pool
    wait_for(lambda: not pool._tasks and not pool._waking, "the pool to rest")
    with pool._lock:
        assert len(pool._parked) <= len(status_threads())


class AtMost:
    """Equal to any number up to ``limit``: for a rate measured on a real
    server, such as runs per interval, compared inside a dict of such rows so
    that a failure shows them all."""

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def __eq__(self, other: object) -> bool:
        return isinstance(other, (int, float)) and other <= self.limit

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"AtMost({self.limit!r})"


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the SQLite file at ``path``, as a writer
    committing does, for the block; then roll back."""
    holder = sqlite3.connect(path, isolation_level=None, timeout=5)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield
        holder.execute("ROLLBACK")
    finally:
        holder.close()
