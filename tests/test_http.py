"""HTTP hygiene and application/health+json (draft-inadarei-api-health-check-06)."""

from __future__ import annotations

import datetime
import threading
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_status import FlaskStatus

HEALTH = "application/health+json"


def test_get_and_head(app: Flask, client: FlaskClient) -> None:
    FlaskStatus(app).add_field("db", lambda: False)
    get = client.get("/api/status")
    head = client.head("/api/status")
    assert (get.status_code, head.status_code) == (503, 503)
    assert head.data == b""
    assert get.data == b'{"status":"FAIL","db":false}'


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_other_methods_are_405(app: Flask, client: FlaskClient, method: str) -> None:
    calls: list[int] = []
    FlaskStatus(app).add_field("db", lambda: calls.append(1))
    response = client.open("/api/status", method=method)
    assert response.status_code == 405
    assert sorted(response.allow) == ["GET", "HEAD"]
    assert calls == []


def test_responses_are_not_cached(app: Flask, client: FlaskClient) -> None:
    FlaskStatus(app)
    assert client.get("/api/status").headers["Cache-Control"] == "no-store"
    assert (
        client.get("/api/status", headers={"Accept": HEALTH}).headers["Cache-Control"]
        == "no-store"
    )


def test_json_is_compact_and_keeps_order(app: Flask, client: FlaskClient) -> None:
    status = FlaskStatus(app, message={"zulu": 1, "alpha": {"b": 2, "a": 1}})
    status.add_field("mike", "m")
    status.add_field("bravo", lambda: [1, 2])
    assert client.get("/api/status").data == (
        b'{"zulu":1,"alpha":{"b":2,"a":1},"mike":"m","bravo":[1,2]}'
    )


def build(app: Flask, **options: Any) -> threading.Event:
    """An app with a passing, a warning and (once the event is set) a failing check."""
    failing = threading.Event()
    status = FlaskStatus(app, message={"status": "OK", "service": "api"}, **options)
    status.add_field("version", "1.2.3")
    status.add_field("db", lambda: 3)
    status.add_field("cache", lambda: False, critical=False)
    status.add_field("queue", lambda: not failing.is_set())
    return failing


def parse_time(text: str) -> datetime.datetime:
    assert text.endswith("Z")
    when = datetime.datetime.fromisoformat(text[:-1] + "+00:00")
    assert when.utcoffset() == datetime.timedelta(0)
    return when


def assert_draft(response: Any) -> dict[str, Any]:
    """The draft's rules for a health+json response; returns the body."""
    assert response.mimetype == HEALTH
    body: dict[str, Any] = response.get_json(force=True)
    assert body["status"] in {"pass", "warn", "fail"}
    if body["status"] == "fail":
        assert 400 <= response.status_code < 600
    else:
        assert 200 <= response.status_code < 400
    for name, entries in body.get("checks", {}).items():
        assert isinstance(name, str)
        assert isinstance(entries, list)
        for entry in entries:
            assert entry["status"] in {"pass", "warn", "fail"}
            assert "observedValue" in entry
            now = datetime.datetime.now(datetime.timezone.utc)
            assert abs((now - parse_time(entry["time"])).total_seconds()) < 60
            if entry["status"] == "pass":
                assert "output" not in entry
    return body


def test_health_json_pass_warn_fail(app: Flask, client: FlaskClient) -> None:
    failing = build(app)
    headers = {"Accept": HEALTH}
    warn = client.get("/api/status", headers=headers)
    assert warn.status_code == 200
    body = assert_draft(warn)
    assert {k: v for k, v in body.items() if k != "checks"} == {
        "status": "warn",
        "service": "api",
        "version": "1.2.3",
    }
    assert {
        name: [
            {k: v for k, v in e.items() if k not in ("time", "duration", "since")}
            for e in entries
        ]
        for name, entries in body["checks"].items()
    } == {
        "db": [{"status": "pass", "observedValue": 3, "consecutiveFailures": 0}],
        "cache": [{"status": "warn", "observedValue": False, "consecutiveFailures": 1}],
        "queue": [{"status": "pass", "observedValue": True, "consecutiveFailures": 0}],
    }
    for entries in body["checks"].values():  # the first run: since it began
        assert entries[0]["since"] == entries[0]["time"]
    failing.set()
    fail = client.get("/api/status", headers=headers)
    assert fail.status_code == 503
    assert assert_draft(fail)["checks"]["queue"][0]["status"] == "fail"


def test_health_json_pass(app: Flask, client: FlaskClient) -> None:
    FlaskStatus(app).add_field("db", lambda: True)
    response = client.get("/api/status", headers={"Accept": HEALTH})
    assert response.status_code == 200
    assert assert_draft(response)["status"] == "pass"


def test_health_json_output_only_when_errors_shown(app: Flask) -> None:
    build(app, url="/hidden")
    build(app, url="/shown", show_errors=True)
    client = app.test_client()
    hidden = assert_draft(client.get("/hidden", headers={"Accept": HEALTH}))
    shown = assert_draft(client.get("/shown", headers={"Accept": HEALTH}))
    assert "output" not in hidden["checks"]["cache"][0]
    assert shown["checks"]["cache"][0]["output"] == "returned False"
    assert "output" not in shown["checks"]["db"][0]
    assert "errors" not in shown


@pytest.mark.parametrize(
    "accept",
    [
        None,
        "*/*",
        "application/json",
        "application/json, application/health+json;q=0.5",
        "text/plain",  # text/html gets the page: see test_page.py
    ],
)
def test_other_accepts_get_the_1_0_payload(
    app: Flask, client: FlaskClient, accept: str | None
) -> None:
    build(app)
    headers = {} if accept is None else {"Accept": accept}
    response = client.get("/api/status", headers=headers)
    assert response.mimetype == "application/json"
    assert response.get_json() == {
        "status": "WARN",
        "service": "api",
        "version": "1.2.3",
        "db": 3,
        "cache": False,
        "queue": True,
    }


def test_health_json_preferred_by_quality(app: Flask, client: FlaskClient) -> None:
    build(app)
    accept = "application/json;q=0.5, application/health+json"
    assert client.get("/api/status", headers={"Accept": accept}).mimetype == HEALTH
