"""Failure tolerance and state over time: a check's status turns only after
fail_after failed runs, or recover_after passing ones, in a row; runs are
what count; since and consecutiveFailures say how long."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from flask import Flask
from helpers import Switch
from helpers import get
from helpers import logged
from helpers import prometheus
from helpers import wait_for

from flask_status import FlaskStatus
from flask_status import StatusChange

HEALTH = {"Accept": "application/health+json"}


def entry(app: Flask, key: str = "db") -> dict[str, Any]:
    """The health+json entry of check ``key``, from a new request."""
    body = app.test_client().get("/api/status", headers=HEALTH).get_json()
    result: dict[str, Any] = body["checks"][key][0]
    return result


def test_a_check_fails_only_after_fail_after_failed_runs(app: Flask) -> None:
    db = Switch()
    status = FlaskStatus(app, show_errors=True)
    status.add_field("db", db, fail_after=3, recover_after=2)
    client = app.test_client()
    assert get(client) == (200, {"status": "OK", "db": True})
    db.result = False
    tolerated = {"status": "OK", "db": False, "errors": {"db": "returned False"}}
    assert get(client) == (200, tolerated)
    assert get(client) == (200, tolerated)
    failed = {"status": "FAIL", "db": False, "errors": {"db": "returned False"}}
    assert get(client) == (503, failed)
    db.result = True
    assert get(client) == (503, {"status": "FAIL", "db": True})  # one pass of two
    assert get(client) == (200, {"status": "OK", "db": True})


def test_the_first_run_sets_the_status(app: Flask) -> None:
    status = FlaskStatus(app, fail_after=3)
    status.add_field("db", lambda: False)
    status.add_field("cache", lambda: False, critical=False)
    assert get(app.test_client()) == (
        503,
        {"status": "FAIL", "db": False, "cache": False},
    )


def test_the_status_decides_every_format(app: Flask) -> None:
    db = Switch(False)
    status = FlaskStatus(app, fail_after=2)
    status.add_field("db", db)
    client = app.test_client()
    assert entry(app)["status"] == "fail"  # the first run sets it
    db.result = True
    assert entry(app)["status"] == "pass"
    db.result = False
    tolerated = entry(app)
    assert (tolerated["status"], tolerated["observedValue"]) == ("pass", False)
    assert tolerated["consecutiveFailures"] == 1
    assert 'flask_status_check_up{url="/api/status",check="db"} 0' in prometheus(
        client, "/api/status?format=prometheus"
    )  # the second failure in a row: failing again


def test_since_and_consecutive_failures_say_how_long(app: Flask) -> None:
    db = Switch()
    FlaskStatus(app, fail_after=2).add_field("db", db)
    first = entry(app)
    assert (first["since"], first["consecutiveFailures"]) == (first["time"], 0)
    time.sleep(0.01)
    assert entry(app)["since"] == first["since"]  # still OK since the first run
    db.result = False
    tolerated = entry(app)
    assert (tolerated["since"], tolerated["consecutiveFailures"]) == (first["since"], 1)
    failing = entry(app)
    assert failing["since"] == failing["time"] != first["since"]
    assert failing["consecutiveFailures"] == 2
    assert entry(app)["consecutiveFailures"] == 3
    db.result = True
    assert entry(app)["consecutiveFailures"] == 0


def test_a_cached_result_is_not_a_new_run(app: Flask) -> None:
    db = Switch(False)
    status = FlaskStatus(app, cache=60)
    status.add_field("db", db)
    status.add_field("queue", Switch(), fail_after=2)
    client = app.test_client()
    for _ in range(5):
        assert get(client)[0] == 503
    assert entry(app)["consecutiveFailures"] == 1
    assert db.calls == 1


def test_a_timeout_is_a_failed_run(app: Flask) -> None:
    calls = []

    def slow() -> bool:  # from its second call on, it outlasts its timeout
        calls.append(1)
        if len(calls) > 1:
            time.sleep(0.15)
        return True

    status = FlaskStatus(app, timeout=0.05, show_errors=True)
    status.add_field("db", slow, fail_after=2)
    client = app.test_client()
    assert get(client) == (200, {"status": "OK", "db": True})
    timed_out = {"db": False, "errors": {"db": "timed out after 0.05 s; still running"}}
    assert get(client) == (200, {"status": "OK", **timed_out})  # tolerated
    time.sleep(0.2)  # the late call returns: the next request runs it again
    assert get(client) == (503, {"status": "FAIL", **timed_out})


def test_a_scheduled_check_counts_its_scheduled_runs(app: Flask) -> None:
    db = Switch()
    status = FlaskStatus(app, every=0.05, fail_after=3)
    status.add_field("db", db)
    heard: list[StatusChange] = []
    status.on_change(heard.append)
    client = app.test_client()
    assert get(client)[0] == 200
    db.result = False
    wait_for(lambda: get(client)[0] == 503, "three scheduled failures")
    assert db.calls >= 4
    wait_for(lambda: len(heard) == 4, "the listener to hear the failure")
    assert [(c.check, c.new) for c in heard] == [
        ("db", "OK"),
        (None, "OK"),
        ("db", "FAIL"),
        (None, "FAIL"),
    ]


def test_a_flapping_check_keeps_readiness_and_the_listener_quiet(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    db = Switch()
    status = FlaskStatus(app, fail_after=3)
    status.add_field("db", db)
    heard: list[StatusChange] = []
    status.on_change(heard.append)
    client = app.test_client()
    codes = []
    for n in range(20):
        db.result = n % 2 == 0  # fails every other request
        codes.append(get(client)[0])
    assert codes == [200] * 20
    time.sleep(0.1)  # the listener's worker
    assert [(c.check, c.new) for c in heard] == [("db", "OK"), (None, "OK")]
    assert [r for r in logged(app, caplog) if r.levelno >= logging.WARNING] == []


def test_every_mode_logs_a_tolerated_failure_at_info(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    db = Switch(True)
    FlaskStatus(app, fail_after=2, log="every").add_field("db", db)
    client = app.test_client()
    get(client)
    db.result = False
    get(client)
    get(client)
    assert [(r.levelname, r.getMessage()) for r in logged(app, caplog)] == [
        (
            "INFO",
            "Check 'db' of /api/status failed, tolerated (1 in a row): returned False",
        ),
        ("ERROR", "Check 'db' of /api/status failed: returned False"),
    ]


def test_transitions_mode_logs_when_the_status_turns(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    db = Switch(True)
    FlaskStatus(app, fail_after=2, recover_after=2).add_field("db", db)
    client = app.test_client()
    for result in (True, False, False, False, True, True, True):
        db.result = result
        get(client)
    assert [(r.levelname, r.getMessage()) for r in logged(app, caplog)] == [
        ("ERROR", "Check 'db' of /api/status failed: returned False"),
        ("INFO", "Check 'db' of /api/status passes again."),
    ]


def test_flask_status_judges_the_run_it_made(app: Flask) -> None:
    status = FlaskStatus(app, fail_after=5)
    status.add_field("db", lambda: False)
    result = app.test_cli_runner().invoke(args=["status"])
    assert (result.exit_code, result.output) == (
        1,
        '/api/status {"status":"FAIL","db":false}\n',
    )


def test_the_field_overrides_the_endpoint(app: Flask) -> None:
    app.config["STATUS_FAIL_AFTER"] = 5
    db = Switch()
    status = FlaskStatus(app)
    status.add_field("db", db, fail_after=1)
    status.add_field("cache", db, critical=False)
    client = app.test_client()
    get(client)
    db.result = False
    assert get(client) == (503, {"status": "FAIL", "db": False, "cache": False})
    assert entry(app, "cache")["status"] == "pass"  # 2 of 5 failures
