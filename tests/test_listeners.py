"""Status changes reach the listeners in order, whatever holds a settle up
(a stalled log handler, a stuck listener), a listener raising SystemExit
stops no other, a log that raises breaks nothing, and the overall status is
tracked before any listener."""

from __future__ import annotations

import itertools
import logging
import threading
from typing import Any

import pytest
from conftest import StalledLogHandler
from conftest import Switch
from conftest import change
from conftest import listener_failures
from conftest import logged
from conftest import timeless
from conftest import wait_for
from flask import Flask
from flask.testing import FlaskClient

from flask_status import FlaskStatus
from flask_status import StatusChange

URL = "/readyz"


def get(client: FlaskClient, url: str = URL) -> tuple[int, Any]:
    response = client.get(url)
    return response.status_code, response.get_json()


def test_changes_arrive_in_order_though_a_log_handler_stalls_one(
    app: Flask, gate: threading.Event
) -> None:
    """A failure whose ERROR log stalls settled before the recovery that
    followed it: the listener hears the failure first, and its last overall
    status is the endpoint's."""
    db = Switch()
    status = FlaskStatus(app, url=URL)
    status.add_field("db", db)
    heard: list[StatusChange] = []
    status.on_change(heard.append)
    client = app.test_client()
    assert get(client) == (200, {"status": "OK", "db": True})
    wait_for(lambda: len(heard) == 2, "the first changes")
    handler = StalledLogHandler(gate)
    app.logger.addHandler(handler)
    failed: list[tuple[int, Any]] = []
    try:
        db.result = False
        failing = threading.Thread(target=lambda: failed.append(get(app.test_client())))
        failing.start()
        assert handler.entered.wait(5)  # the failure is settled, its log stalls
        db.result = True
        assert get(client) == (200, {"status": "OK", "db": True})
        gate.set()
        failing.join(5)
        wait_for(lambda: len(heard) == 6, "the failure and the recovery")
    finally:
        app.logger.removeHandler(handler)
    assert failed == [(503, {"status": "FAIL", "db": False})]
    assert handler.messages == ["Check 'db' failed: returned False"]
    assert timeless(heard) == [
        change("db", None, "OK"),
        change(None, None, "OK"),
        change("db", "OK", "FAIL", "returned False"),
        change(None, "OK", "FAIL"),
        change("db", "FAIL", "OK"),
        change(None, "FAIL", "OK"),
    ]
    assert heard[-1].new == get(client)[1]["status"] == "OK"


def test_changes_beyond_a_thousand_for_a_stuck_listener_are_dropped(
    app: Flask, gate: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    results = itertools.cycle([True, False])  # a flapping check: 2 changes each
    status = FlaskStatus(app, url=URL)
    status.add_field("db", lambda: next(results))
    heard: list[StatusChange] = []

    @status.on_change
    def stuck(change: StatusChange) -> None:
        heard.append(change)
        gate.wait(60)  # a pager call that hangs, until the test releases it

    def drops() -> list[tuple[int, str]]:
        return [
            (r.levelno, r.getMessage())
            for r in logged(app, caplog)
            if "were dropped" in r.getMessage()
        ]

    client = app.test_client()
    assert get(client) == (200, {"status": "OK", "db": True})
    wait_for(lambda: heard, "the listener to hear the first change")
    expected = [change("db", None, "OK"), change(None, None, "OK")]
    for n in range(1, 600):
        ok = n % 2 == 0
        assert get(client) == (
            200 if ok else 503,
            {"status": "OK" if ok else "FAIL", "db": ok},
        )
        old, new = ("FAIL", "OK") if ok else ("OK", "FAIL")
        reason = None if ok else "returned False"
        expected += [change("db", old, new, reason), change(None, old, new)]
    assert len(heard) == 1  # stuck on the first of 1200 changes
    assert drops() == []
    gate.set()
    # The newest 1000 are told; the 199 before them are dropped, and said so.
    last = expected[-1]
    wait_for(lambda: timeless(heard[-1:]) == [last], "the listener to catch up")
    assert drops() == [
        (logging.WARNING, "199 status changes were dropped: the listeners fell behind.")
    ]
    assert timeless(heard) == expected[:1] + expected[200:]


def test_a_listener_raising_system_exit_stops_no_other(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    db = Switch(False)
    status = FlaskStatus(app, url=URL)
    status.add_field("db", db)
    heard: list[StatusChange] = []

    @status.on_change
    def exits(change: StatusChange) -> None:
        raise SystemExit("the pager called sys.exit")

    status.on_change(heard.append)
    client = app.test_client()
    assert get(client) == (503, {"status": "FAIL", "db": False})
    wait_for(lambda: len(heard) == 2, "the listener after the one that exits", 2)
    db.result = True
    assert get(client) == (200, {"status": "OK", "db": True})
    wait_for(lambda: len(heard) == 4, "the recovery", 2)
    assert timeless(heard) == [
        change("db", None, "FAIL", "returned False"),
        change(None, None, "FAIL"),
        change("db", "FAIL", "OK"),
        change(None, "FAIL", "OK"),
    ]
    failures = listener_failures(app, caplog)
    assert [(r.name, r.levelno, r.getMessage()) for r in failures] == [
        (app.name, logging.ERROR, f"The status listener {exits!r} failed on {c!r}.")
        for c in heard
    ]
    assert all(r.exc_info and r.exc_info[0] is SystemExit for r in failures)


def test_a_listener_added_after_requests_hears_the_overall_status_it_left(
    app: Flask,
) -> None:
    db = Switch()
    status = FlaskStatus(app, url=URL, per_check=True)
    status.add_field("db", db)
    status.add_field("cache", lambda: True)
    client = app.test_client()
    assert get(client) == (200, {"status": "OK", "db": True, "cache": True})
    heard: list[StatusChange] = []
    status.on_change(heard.append)
    db.result = False
    assert get(client, f"{URL}/db") == (503, {"status": "FAIL", "db": False})
    wait_for(lambda: len(heard) == 2, "the failure")
    assert timeless(heard) == [
        change("db", "OK", "FAIL", "returned False"),
        change(None, "OK", "FAIL"),  # not None -> FAIL: it was OK all along
    ]


class Refusing(logging.Filter):
    """A log filter that raises, as a full disk or a broken handler might."""

    def filter(self, record: logging.LogRecord) -> bool:
        raise RuntimeError("log is full")


def test_a_log_that_raises_breaks_no_listener_request_or_worker(app: Flask) -> None:
    heard: list[StatusChange] = []

    def raising(change: StatusChange) -> None:
        raise KeyError(change.check)

    db = Switch()
    status = FlaskStatus(app, url=URL)
    status.add_field("db", db)
    status.on_change(raising)  # its failure is logged: the log raises
    status.on_change(heard.append)
    status.details_when(lambda: 1 / 0)  # so is this predicate's
    refusing = Refusing()
    app.logger.addFilter(refusing)  # the logger is shared by name: undo it
    try:
        client = app.test_client()
        assert get(client, URL + "?exclude=nope") == (200, {"status": "OK"})
        db.result = False
        assert get(client) == (503, {"status": "FAIL"})
        wait_for(lambda: len(heard) == 4, "all four changes, past the raising log")
    finally:
        app.logger.removeFilter(refusing)
    assert timeless(heard) == [
        change("db", None, "OK"),
        change(None, None, "OK"),
        change("db", "OK", "FAIL", "returned False"),
        change(None, "OK", "FAIL"),
    ]
