"""Status changes: what listeners hear, in order and once, from a worker
thread, and how a listener that fails or falls behind is handled."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask import current_app
from helpers import StalledLogHandler
from helpers import Switch
from helpers import change
from helpers import get
from helpers import listener_failures
from helpers import logged
from helpers import timeless
from helpers import wait_for

import flask_status
from flask_status import FlaskStatus
from flask_status import StatusChange

URL = "/readyz"


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An event that blocked listeners wait for; set when the test ends."""
    event = threading.Event()
    yield event
    event.set()


def serve(app: Flask, check: Switch, results: list[object]) -> None:
    """Request the status once per result, the check returning each in turn."""
    client = app.test_client()
    for result in results:
        check.result = result
        client.get("/api/status")


class Refusing(logging.Filter):
    """A log filter that raises, as a full disk or a broken handler might."""

    def filter(self, record: logging.LogRecord) -> bool:
        raise RuntimeError("log is full")


def test_status_change_is_an_immutable_named_tuple() -> None:
    item = StatusChange("/readyz", "db", "OK", "FAIL", "returned False", 1.5)
    with pytest.raises(AttributeError):
        item.new = "OK"  # type: ignore[misc]
    assert "StatusChange" in flask_status.__all__
    assert StatusChange._fields == ("url", "check", "old", "new", "reason", "at")
    assert tuple(item) == ("/readyz", "db", "OK", "FAIL", "returned False", 1.5)
    assert repr(item) == (
        "StatusChange(url='/readyz', check='db', old='OK', new='FAIL',"
        " reason='returned False', at=1.5)"
    )


def test_on_change_returns_the_listener_and_refuses_non_callables(
    app: Flask,
) -> None:
    status = FlaskStatus(app)

    def listener(change: StatusChange) -> None:
        pass

    assert status.on_change(listener) is listener

    @status.on_change
    def decorated(change: StatusChange) -> None:
        pass

    assert decorated.__name__ == "decorated"
    with pytest.raises(TypeError) as error:
        status.on_change(42)  # type: ignore[type-var]
    assert str(error.value) == (
        "The listener 42 must be a callable taking one StatusChange."
    )


def test_changes_of_checks_and_of_the_endpoint_in_order(app: Flask) -> None:
    """OK -> FAIL -> OK for a critical check, OK -> WARN -> OK for another,
    each change once, with the overall status (check=None) after them."""
    db, cache = Switch(), Switch()
    status = FlaskStatus(app, url=URL, workers=1, show_errors=True)  # runs in order
    status.add_field("db", db)
    status.add_field("cache", cache, critical=False)
    status.add_field("version", "1.0")  # static: never a change
    seen: list[tuple[str, str, StatusChange]] = []
    main = threading.current_thread()

    @status.on_change
    def first(change: StatusChange) -> None:
        assert threading.current_thread() is not main
        seen.append(("first", threading.current_thread().name, change))

    @status.on_change
    def second(change: StatusChange) -> None:
        seen.append(("second", current_app.name, change))  # in an app context

    client = app.test_client()
    expected = [
        change("db", None, "OK"),
        change("cache", None, "OK"),
        change(None, None, "OK"),
    ]
    before = time.time()
    assert get(client, URL)[0] == 200
    wait_for(lambda: len(seen) == 2 * len(expected), "the first changes")
    db.result = ZeroDivisionError("division by zero")
    code, body = get(client, URL)
    assert (code, body["errors"]) == (
        503,
        {"db": "ZeroDivisionError: division by zero"},
    )
    expected += [
        change("db", "OK", "FAIL", "ZeroDivisionError: division by zero"),
        change(None, "OK", "FAIL"),
    ]
    wait_for(lambda: len(seen) == 2 * len(expected), "the failure")
    assert get(client, URL)[0] == 503  # failing again: no change
    db.result, cache.result = True, False
    assert get(client, URL) == (
        200,
        {
            "status": "WARN",
            "db": True,
            "cache": False,
            "version": "1.0",
            "errors": {"cache": "returned False"},
        },
    )
    expected += [
        change("db", "FAIL", "OK"),
        change(None, "FAIL", "OK"),  # cache was still OK when db recovered
        change("cache", "OK", "WARN", "returned False"),
        change(None, "OK", "WARN"),
    ]
    wait_for(lambda: len(seen) == 2 * len(expected), "the recovery")
    cache.result = True
    assert get(client, URL)[0] == 200
    expected += [change("cache", "WARN", "OK"), change(None, "WARN", "OK")]
    wait_for(lambda: len(seen) == 2 * len(expected), "the last changes")
    after = time.time()
    assert db.calls == cache.calls == 5
    changes = [c for name, _, c in seen if name == "first"]
    assert timeless(changes) == expected
    # Every listener hears each change before the next change is told.
    assert [(name, c) for name, _, c in seen] == [
        (name, c) for c in changes for name in ("first", "second")
    ]
    assert {where for name, where, _ in seen if name == "first"} == {"flask-status"}
    assert {where for name, where, _ in seen if name == "second"} == {app.name}
    assert all(before <= c.at <= after for c in changes)
    assert changes == sorted(changes, key=lambda c: c.at)


def test_a_reused_cached_result_is_no_new_result(app: Flask) -> None:
    db = Switch()
    status = FlaskStatus(app, url=URL, cache=0.3)
    status.add_field("db", db)
    changes: list[StatusChange] = []
    status.on_change(changes.append)
    client = app.test_client()
    assert get(client, URL) == (200, {"status": "OK", "db": True})
    db.result = False
    assert get(client, URL) == (200, {"status": "OK", "db": True})  # cached
    wait_for(lambda: db.calls == 1 and len(changes) == 2, "the first changes")
    wait_for(lambda: get(client, URL)[0] == 503, "the cache to expire")
    wait_for(lambda: len(changes) == 4, "the failure")
    assert db.calls == 2
    assert timeless(changes) == [
        change("db", None, "OK"),
        change(None, None, "OK"),
        change("db", "OK", "FAIL", "returned False"),
        change(None, "OK", "FAIL"),
    ]


def test_scheduled_runs_report_changes_without_requests(app: Flask) -> None:
    db = Switch()
    requests: list[str] = []

    @app.before_request
    def count() -> None:
        requests.append("request")

    status = FlaskStatus(app, url=URL, every=0.02)
    status.add_field("db", db)
    changes: list[StatusChange] = []
    status.on_change(changes.append)
    assert get(app.test_client(), URL) == (200, {"status": "OK", "db": True})
    wait_for(lambda: len(changes) == 2, "the first changes")
    db.result = OSError("disk full")
    wait_for(lambda: len(changes) == 4, "the failure, with no request")
    db.result = True
    wait_for(lambda: len(changes) == 6, "the recovery, with no request")
    assert requests == ["request"]
    assert db.calls >= 3
    assert timeless(changes) == [
        change("db", None, "OK"),
        change(None, None, "OK"),
        change("db", "OK", "FAIL", "OSError: disk full"),
        change(None, "OK", "FAIL"),
        change("db", "FAIL", "OK"),
        change(None, "FAIL", "OK"),
    ]


def test_a_raising_listener_is_logged_and_the_others_run(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    status = FlaskStatus(app, url=URL)
    status.add_field("db", lambda: False)
    heard: list[StatusChange] = []

    @status.on_change
    def broken(change: StatusChange) -> None:
        raise KeyError("pager")

    status.on_change(heard.append)
    assert get(app.test_client(), URL) == (503, {"status": "FAIL", "db": False})
    wait_for(lambda: len(heard) == 2, "the listener after the broken one")
    failures = listener_failures(app, caplog)
    assert [(r.name, r.levelno, r.getMessage()) for r in failures] == [
        (
            app.name,
            logging.ERROR,
            f"The status listener {broken!r} of /readyz failed on {c!r}.",
        )
        for c in heard
    ]
    assert all(r.exc_info is not None and r.exc_info[0] is KeyError for r in failures)
    assert get(app.test_client(), URL) == (503, {"status": "FAIL", "db": False})


def test_a_slow_listener_delays_no_response(
    app: Flask, release: threading.Event
) -> None:
    db = Switch()
    status = FlaskStatus(app, url=URL, timeout=2)
    status.add_field("db", db)
    heard: list[StatusChange] = []

    @status.on_change
    def slow(change: StatusChange) -> None:
        heard.append(change)
        release.wait(5)  # a pager that hangs, until the test releases it

    client = app.test_client()
    start = time.monotonic()
    assert get(client, URL) == (200, {"status": "OK", "db": True})
    db.result = False
    assert get(client, URL) == (503, {"status": "FAIL", "db": False})
    assert time.monotonic() - start < 0.5  # not 5 s, and far under the 2 s timeout
    wait_for(lambda: len(heard) >= 1, "the listener to start")
    assert len(heard) == 1  # blocked on the first change, the others queued
    release.set()
    wait_for(lambda: len(heard) == 4, "the queued changes")
    assert timeless(heard) == [
        change("db", None, "OK"),
        change(None, None, "OK"),
        change("db", "OK", "FAIL", "returned False"),
        change(None, "OK", "FAIL"),
    ]


def test_listeners_never_run_in_the_request_thread(
    app: Flask, release: threading.Event
) -> None:
    """Not even when the request itself gives a hung check up at its deadline."""
    status = FlaskStatus(app, url=URL, timeout=0.1)
    status.add_field("hung", release.wait)
    heard: list[tuple[threading.Thread, StatusChange]] = []

    @status.on_change
    def slow(change: StatusChange) -> None:
        heard.append((threading.current_thread(), change))
        release.wait(5)

    start = time.monotonic()
    assert get(app.test_client(), URL) == (503, {"status": "FAIL", "hung": False})
    assert time.monotonic() - start < 1  # 0.1 s, not the listener's 5 s
    wait_for(lambda: heard, "the listener")
    assert heard[0][0] is not threading.current_thread()
    assert heard[0][1]._replace(at=0.0) == change(
        "hung", None, "FAIL", "timed out after 0.1 s; still running"
    )


@pytest.mark.parametrize("critical", [True, False])
def test_log_transitions_by_default(
    app: Flask, caplog: pytest.LogCaptureFixture, critical: bool
) -> None:
    caplog.set_level(logging.INFO)
    db = Switch()
    FlaskStatus(app).add_field("db", db, critical=critical)
    serve(app, db, [True, ZeroDivisionError("division by zero"), False, True, False])
    level = logging.ERROR if critical else logging.WARNING
    records = logged(app, caplog)
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (
            level,
            "Check 'db' of /api/status failed: ZeroDivisionError: division by zero",
        ),
        (logging.INFO, "Check 'db' of /api/status passes again."),
        (level, "Check 'db' of /api/status failed: returned False"),
    ]
    assert records[0].exc_info is not None
    assert records[0].exc_info[0] is ZeroDivisionError


def test_log_transitions_from_config(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app.config["STATUS_LOG"] = "transitions"
    db = Switch()
    FlaskStatus(app).add_field("db", db)
    serve(app, db, [False, False, True])
    assert [(r.levelno, r.getMessage()) for r in logged(app, caplog)] == [
        (logging.ERROR, "Check 'db' of /api/status failed: returned False"),
        (logging.INFO, "Check 'db' of /api/status passes again."),
    ]


@pytest.mark.parametrize("how", ["argument", "config"])
def test_log_every_failed_run(
    app: Flask, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    caplog.set_level(logging.INFO)
    if how == "config":
        app.config["STATUS_LOG"] = "every"
    status = FlaskStatus(app, log="every") if how == "argument" else FlaskStatus(app)
    db = Switch()
    status.add_field("db", db)
    serve(app, db, [False, False, True, OSError("gone")])
    records = logged(app, caplog)
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.ERROR, "Check 'db' of /api/status failed: returned False"),
        (logging.ERROR, "Check 'db' of /api/status failed: returned False"),
        (logging.ERROR, "Check 'db' of /api/status failed: OSError: gone"),
    ]
    assert records[-1].exc_info is not None
    assert records[-1].exc_info[0] is OSError


def test_a_reused_cached_failure_is_not_logged_again(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    db = Switch()
    FlaskStatus(app, log="every", cache=60).add_field("db", db)
    serve(app, db, [False, False, False])
    assert db.calls == 1
    assert [r.getMessage() for r in logged(app, caplog)] == [
        "Check 'db' of /api/status failed: returned False"
    ]


def test_an_argument_beats_the_log_config_key(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    app.config["STATUS_LOG"] = "transitions"
    db = Switch()
    FlaskStatus(app, log="every").add_field("db", db)
    serve(app, db, [False, False])
    assert len(logged(app, caplog)) == 2


@pytest.mark.parametrize(
    ("how", "text"),
    [
        ("argument", "The log mode 'all' is not a log mode"),
        ("config", "The config key STATUS_LOG 'all' is not a log mode"),
    ],
)
def test_bad_log_mode_is_refused_at_setup(app: Flask, how: str, text: str) -> None:
    with pytest.raises(ValueError) as error:
        if how == "argument":
            FlaskStatus(log="all")
        else:
            app.config["STATUS_LOG"] = "all"
            FlaskStatus(app)
    assert str(error.value) == (
        f"{text}; give 'transitions' (log when a check starts failing and when it"
        " recovers) or 'every' (each failed run)."
    )


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
    assert get(client, URL) == (200, {"status": "OK", "db": True})
    wait_for(lambda: len(heard) == 2, "the first changes")
    handler = StalledLogHandler(gate)
    app.logger.addHandler(handler)
    failed: list[tuple[int, Any]] = []
    try:
        db.result = False
        failing = threading.Thread(
            target=lambda: failed.append(get(app.test_client(), URL))
        )
        failing.start()
        assert handler.entered.wait(5)  # the failure is settled, its log stalls
        db.result = True
        assert get(client, URL) == (200, {"status": "OK", "db": True})
        gate.set()
        failing.join(5)
        wait_for(lambda: len(heard) == 6, "the failure and the recovery")
    finally:
        app.logger.removeHandler(handler)
    assert failed == [(503, {"status": "FAIL", "db": False})]
    assert handler.messages == ["Check 'db' of /readyz failed: returned False"]
    assert timeless(heard) == [
        change("db", None, "OK"),
        change(None, None, "OK"),
        change("db", "OK", "FAIL", "returned False"),
        change(None, "OK", "FAIL"),
        change("db", "FAIL", "OK"),
        change(None, "FAIL", "OK"),
    ]
    assert heard[-1].new == get(client, URL)[1]["status"] == "OK"


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
    assert get(client, URL) == (200, {"status": "OK", "db": True})
    wait_for(lambda: heard, "the listener to hear the first change")
    expected = [change("db", None, "OK"), change(None, None, "OK")]
    for n in range(1, 600):
        ok = n % 2 == 0
        assert get(client, URL) == (
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
        (
            logging.WARNING,
            "199 status changes of /readyz were dropped: listeners fell behind.",
        )
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
    assert get(client, URL) == (503, {"status": "FAIL", "db": False})
    wait_for(lambda: len(heard) == 2, "the listener after the one that exits", 2)
    db.result = True
    assert get(client, URL) == (200, {"status": "OK", "db": True})
    wait_for(lambda: len(heard) == 4, "the recovery", 2)
    assert timeless(heard) == [
        change("db", None, "FAIL", "returned False"),
        change(None, None, "FAIL"),
        change("db", "FAIL", "OK"),
        change(None, "FAIL", "OK"),
    ]
    failures = listener_failures(app, caplog)
    assert [(r.name, r.levelno, r.getMessage()) for r in failures] == [
        (
            app.name,
            logging.ERROR,
            f"The status listener {exits!r} of /readyz failed on {c!r}.",
        )
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
    assert get(client, URL) == (200, {"status": "OK", "db": True, "cache": True})
    heard: list[StatusChange] = []
    status.on_change(heard.append)
    db.result = False
    assert get(client, f"{URL}/db") == (503, {"status": "FAIL", "db": False})
    wait_for(lambda: len(heard) == 2, "the failure")
    assert timeless(heard) == [
        change("db", "OK", "FAIL", "returned False"),
        change(None, "OK", "FAIL"),  # not None -> FAIL: it was OK all along
    ]


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
        assert get(client, URL) == (503, {"status": "FAIL"})
        wait_for(lambda: len(heard) == 4, "all four changes, past the raising log")
    finally:
        app.logger.removeFilter(refusing)
    assert timeless(heard) == [
        change("db", None, "OK"),
        change(None, None, "OK"),
        change("db", "OK", "FAIL", "returned False"),
        change(None, "OK", "FAIL"),
    ]


def test_a_slow_listener_is_warned_about_once_per_interval_not_per_drop(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    """10,000 transitions past a listener that takes a millisecond each: the
    drops are counted exactly, but said in a few lines, not thousands."""
    db = Switch()
    status = FlaskStatus(app, url=URL)
    status.add_field("db", db)
    heard: list[StatusChange] = []

    @status.on_change
    def slow(change: StatusChange) -> None:
        time.sleep(0.001)
        heard.append(change)

    client = app.test_client()
    for n in range(5000):  # two changes a request: the check's and the URL's
        db.result = n % 2 == 0
        client.get(URL)

    def said() -> list[str]:
        return [
            r.getMessage()
            for r in logged(app, caplog)
            if r.getMessage().endswith("were dropped: listeners fell behind.")
        ]

    wait_for(
        lambda: len(heard) + sum(int(m.split()[0]) for m in said()) == 10000,
        "every change heard or counted",
        60,
    )
    assert 1 <= len(said()) <= 3  # the first, perhaps one 10 s later, the last
