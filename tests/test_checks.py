"""Checks that fail: isolation, severity, errors, caching, app context and
async."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from flask import Flask
from flask import current_app
from flask import g
from flask.testing import FlaskClient
from helpers import get
from helpers import logged

from flask_status import FlaskStatus


def boom() -> bool:
    raise ConnectionError("db.internal:5432 password=hunter2 refused")


def test_raising_check_fails_without_leaking(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    status = FlaskStatus(app)
    status.add_field("version", "1.0")
    status.add_field("db", boom)
    status.add_field("cache", lambda: "warm")
    response = client.get("/api/status")
    assert response.status_code == 503
    assert (
        response.data == b'{"status":"FAIL","version":"1.0","db":false,"cache":"warm"}'
    )
    [record] = logged(app, caplog)
    assert record.levelno == logging.ERROR
    assert record.getMessage() == (
        "Check 'db' of /api/status failed: ConnectionError: db.internal:5432"
        " password=hunter2 refused"
    )
    assert record.exc_info is not None
    assert record.exc_info[0] is ConnectionError


def test_false_fails_and_none_passes(app: Flask, client: FlaskClient) -> None:
    status = FlaskStatus(app)
    status.add_field("nothing", lambda: None)
    assert get(client) == (200, {"status": "OK", "nothing": None})
    status.add_field("down", lambda: False)
    assert get(client) == (503, {"status": "FAIL", "nothing": None, "down": False})


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"raw", "returned a bytes object that JSON cannot encode"),
        ({1, 2}, "returned a set object that JSON cannot encode"),
        (float("nan"), "returned a float object that JSON cannot encode"),
        ({"ratio": float("inf")}, "returned a dict object that JSON cannot encode"),
    ],
)
def test_unencodable_result_fails(
    app: Flask, client: FlaskClient, value: Any, reason: str
) -> None:
    FlaskStatus(app, show_errors=True).add_field("odd", lambda: value)
    assert get(client) == (
        503,
        {"status": "FAIL", "odd": False, "errors": {"odd": reason}},
    )


def test_severity(app: Flask, client: FlaskClient) -> None:
    status = FlaskStatus(app)
    status.add_field("db", lambda: True)
    status.add_field("cache", lambda: False, critical=False)
    assert get(client) == (200, {"status": "WARN", "db": True, "cache": False})
    status.add_field("queue", boom)
    assert get(client) == (
        503,
        {"status": "FAIL", "db": True, "cache": False, "queue": False},
    )


def test_field_decorator_takes_check_options(app: Flask, client: FlaskClient) -> None:
    status = FlaskStatus(app)

    @status.field("cache", critical=False)
    def cache() -> bool:
        return False

    @status.field(critical=False, timeout=0.5, cache=0)
    def queue() -> int:
        return 3

    assert get(client) == (200, {"status": "WARN", "cache": False, "queue": 3})


def test_errors_shown_only_when_asked(app: Flask) -> None:
    FlaskStatus(app, url="/hidden").add_field("db", boom)
    shown = FlaskStatus(app, url="/shown", show_errors=True)
    shown.add_field("db", boom)
    shown.add_field("cache", lambda: False, critical=False)
    client = app.test_client()
    assert client.get("/hidden").data == b'{"status":"FAIL","db":false}'
    assert get(client, "/shown") == (
        503,
        {
            "status": "FAIL",
            "db": False,
            "cache": False,
            "errors": {
                "db": "ConnectionError: db.internal:5432 password=hunter2 refused",
                "cache": "returned False",
            },
        },
    )


def test_show_errors_from_config(app: Flask, client: FlaskClient) -> None:
    app.config["STATUS_SHOW_ERRORS"] = True
    FlaskStatus(app).add_field("db", lambda: False)
    assert get(client) == (
        503,
        {"status": "FAIL", "db": False, "errors": {"db": "returned False"}},
    )


def test_status_key_follows_the_message(app: Flask) -> None:
    up = FlaskStatus(app, url="/up", message={"status": "UP", "service": "api"})
    plain = FlaskStatus(app, url="/plain", message="Running")
    for status in (up, plain):
        status.add_field("ok", lambda: True)
    client = app.test_client()
    assert get(client, "/up") == (200, {"status": "UP", "service": "api", "ok": True})
    assert get(client, "/plain") == (200, {"message": "Running", "ok": True})
    for status in (up, plain):
        status.add_field("db", lambda: False)
    assert get(client, "/up") == (
        503,
        {"status": "FAIL", "service": "api", "ok": True, "db": False},
    )
    assert get(client, "/plain") == (
        503,
        {"message": "Running", "ok": True, "db": False},
    )


def test_cache_serves_recent_results(app: Flask, client: FlaskClient) -> None:
    n_calls: list[int] = []  # one list per check: the two may run in any order
    fresh_calls: list[int] = []

    def n() -> int:
        n_calls.append(1)
        return len(n_calls)

    def fresh() -> bool:
        fresh_calls.append(1)
        return True

    status = FlaskStatus(app, cache=0.5)
    status.add_field("n", n)
    status.add_field("fresh", fresh, cache=0)
    assert get(client) == (200, {"status": "OK", "n": 1, "fresh": True})
    assert get(client) == (200, {"status": "OK", "n": 1, "fresh": True})
    assert (len(n_calls), len(fresh_calls)) == (1, 2)
    time.sleep(0.55)
    assert get(client) == (200, {"status": "OK", "n": 2, "fresh": True})


def test_failures_are_cached_too(app: Flask, client: FlaskClient) -> None:
    calls: list[int] = []

    def flaky() -> bool:
        calls.append(1)
        raise RuntimeError("down")

    app.config["STATUS_CACHE"] = 60
    FlaskStatus(app).add_field("db", flaky)
    assert get(client) == (503, {"status": "FAIL", "db": False})
    assert get(client) == (503, {"status": "FAIL", "db": False})
    assert calls == [1]


def test_base_exception_does_not_wedge_a_check(app: Flask, client: FlaskClient) -> None:
    calls: list[int] = []

    def exits() -> bool:
        calls.append(1)
        raise SystemExit(3)

    FlaskStatus(app, show_errors=True).add_field("exits", exits)
    for _ in range(2):
        assert get(client) == (
            503,
            {"status": "FAIL", "exits": False, "errors": {"exits": "SystemExit: 3"}},
        )
    assert calls == [1, 1]


def test_broken_exception_still_settles(app: Flask, client: FlaskClient) -> None:
    class Broken(Exception):
        def __str__(self) -> str:
            raise ValueError("no text")

    def check() -> bool:
        raise Broken

    FlaskStatus(app).add_field("broken", check)
    assert get(client) == (503, {"status": "FAIL", "broken": False})
    assert get(client) == (503, {"status": "FAIL", "broken": False})


def test_checks_run_in_an_app_context(app: Flask, client: FlaskClient) -> None:
    app.config["REGION"] = "eu-west"
    status = FlaskStatus(app)

    @status.field
    def region() -> str:
        g.seen = True
        return str(current_app.config["REGION"])

    assert get(client) == (200, {"status": "OK", "region": "eu-west"})


def test_async_checks(app: Flask, client: FlaskClient) -> None:
    status = FlaskStatus(app, show_errors=True)

    @status.field
    async def ping() -> str:
        await asyncio.sleep(0.01)
        return current_app.name

    @status.field(critical=False)
    async def broken() -> bool:
        raise OSError("no route")

    assert get(client) == (
        200,
        {
            "status": "WARN",
            "ping": app.name,
            "broken": False,
            "errors": {"broken": "OSError: no route"},
        },
    )


def test_unauthenticated_request_runs_no_check(app: Flask, client: FlaskClient) -> None:
    calls: list[int] = []

    def deny(view: Any) -> Any:
        return lambda: ("no", 401)

    FlaskStatus(app, authenticator=deny).add_field("db", lambda: calls.append(1))
    assert client.get("/api/status").status_code == 401
    assert calls == []
