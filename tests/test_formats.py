"""Durations in application/health+json and the Prometheus text format,
which format a request gets, and the wording of reasons, through the test
client."""

from __future__ import annotations

import html
import re
import threading
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from helpers import build_readyz
from helpers import prometheus

from flask_status import FlaskStatus

HEALTH = {"Accept": "application/health+json"}


# -- durations in application/health+json --------------------------------------


def entries(client: FlaskClient, path: str = "/readyz") -> dict[str, Any]:
    body = client.get(path, headers=HEALTH).get_json(force=True)
    return {key: entry for key, [entry] in body["checks"].items()}


def test_every_check_entry_has_a_duration(app: Flask, client: FlaskClient) -> None:
    status = FlaskStatus(app, url="/readyz", show_errors=True)
    status.add_field("version", "1.2.3")
    status.add_field("quick", lambda: 1)

    @status.field
    def slow() -> int:
        time.sleep(0.2)
        return 2

    @status.field
    def broken() -> None:
        time.sleep(0.05)
        raise RuntimeError("down")

    checks = entries(client)
    assert list(checks) == ["quick", "slow", "broken"]
    assert all(type(entry["duration"]) is float for entry in checks.values())
    assert 0 <= checks["quick"]["duration"] < 0.1  # its own time, not slow's
    assert 0.2 <= checks["slow"]["duration"] < 1
    assert 0.05 <= checks["broken"]["duration"] < 1
    assert checks["broken"]["output"] == "RuntimeError: down"
    assert client.get("/readyz").data == (  # the classic payload: no durations
        b'{"status":"FAIL","version":"1.2.3","quick":1,"slow":2,"broken":false,'
        b'"errors":{"broken":"RuntimeError: down"}}'
    )


def test_timed_out_check_lasts_its_timeout(app: Flask, client: FlaskClient) -> None:
    release = threading.Event()
    status = FlaskStatus(app, url="/readyz", show_errors=True)
    status.add_field("hung", lambda: release.wait(5), timeout=0.2)
    try:
        for _ in range(2):  # the request that gives the run up, and the next
            entry = entries(client)["hung"]
            assert entry["output"] == "timed out after 0.2 s; still running"
            assert 0.2 <= entry["duration"] < 0.5
    finally:
        release.set()


def test_a_cached_result_keeps_its_duration_and_time(
    app: Flask, client: FlaskClient
) -> None:
    calls: list[str] = []
    status = FlaskStatus(app, url="/readyz")

    @status.field(cache=5)
    def db() -> int:
        calls.append("db")
        time.sleep(0.05)
        return 1

    first = entries(client)["db"]
    assert first["duration"] >= 0.05
    time.sleep(0.05)
    assert entries(client)["db"] == first
    text = client.get("/readyz?format=prometheus").data.decode()
    [duration] = re.findall(
        r'check_duration_seconds\{url="/readyz",check="db"} (.+)', text
    )
    assert round(float(duration), 6) == first["duration"]  # the same run
    assert calls == ["db"]


# -- Prometheus text -----------------------------------------------------------

EXPECTED = """\
# HELP flask_status_up 1 unless the endpoint's status is FAIL.
# TYPE flask_status_up gauge
flask_status_up{url="/readyz"} UP
# HELP flask_status_check_up 1 unless the check's status is WARN or FAIL.
# TYPE flask_status_check_up gauge
flask_status_check_up{url="/readyz",check="db"} 1
flask_status_check_up{url="/readyz",check="cache"} 0
flask_status_check_up{url="/readyz",check="queue"} QUEUE
# HELP flask_status_check_duration_seconds How long the check's latest run took.
# TYPE flask_status_check_duration_seconds gauge
flask_status_check_duration_seconds{url="/readyz",check="db"} D
flask_status_check_duration_seconds{url="/readyz",check="cache"} D
flask_status_check_duration_seconds{url="/readyz",check="queue"} D
"""


@pytest.mark.parametrize(("queue", "up"), [(True, "1"), (False, "0")])
def test_prometheus_exact_text(
    app: Flask, client: FlaskClient, queue: bool, up: str
) -> None:
    status = FlaskStatus(app, url="/readyz")
    status.add_field("version", "1.2.3")  # static: no metric
    status.add_field("db", lambda: 3)
    status.add_field("cache", lambda: False, critical=False)  # WARN: still up
    status.add_field("queue", lambda: queue)
    expected = EXPECTED.replace("UP", up).replace("QUEUE", str(int(queue)))
    pattern = re.escape(expected).replace("D", "([0-9.e+-]+)")
    match = re.fullmatch(pattern, prometheus(client, "/readyz?format=prometheus"))
    assert match is not None
    assert all(0 <= float(d) < 1 for d in match.groups())
    assert client.get("/readyz").status_code == (200 if queue else 503)


def test_prometheus_parses_and_escapes_labels(app: Flask, client: FlaskClient) -> None:
    parser = pytest.importorskip("prometheus_client.parser")
    key = 'say "hi"\\there\nnow'
    status = FlaskStatus(app, url="/readyz")
    status.add_field("version", "1.2.3")
    status.add_field(key, lambda: True)
    status.add_field("queue", lambda: False)
    text = prometheus(client, "/readyz?format=prometheus")
    assert 'check="say \\"hi\\"\\\\there\\nnow"} 1\n' in text
    families = {f.name: f for f in parser.text_string_to_metric_families(text)}
    assert {name: f.type for name, f in families.items()} == {
        "flask_status_up": "gauge",
        "flask_status_check_up": "gauge",
        "flask_status_check_duration_seconds": "gauge",
    }
    assert families["flask_status_up"].documentation == (
        "1 unless the endpoint's status is FAIL."
    )
    assert [(s.labels, s.value) for s in families["flask_status_up"].samples] == [
        ({"url": "/readyz"}, 0)
    ]
    assert [(s.labels, s.value) for s in families["flask_status_check_up"].samples] == [
        ({"url": "/readyz", "check": key}, 1),
        ({"url": "/readyz", "check": "queue"}, 0),
    ]
    durations = families["flask_status_check_duration_seconds"].samples
    assert [s.labels["check"] for s in durations] == [key, "queue"]
    assert all(0 <= s.value < 1 for s in durations)


def test_prometheus_without_checks_and_with_exclude(
    app: Flask, client: FlaskClient
) -> None:
    calls: list[str] = []
    build_readyz(app, calls)
    text = prometheus(client, "/readyz?format=prometheus&exclude=db,cache,queue")
    assert text == (
        "# HELP flask_status_up 1 unless the endpoint's status is FAIL.\n"
        "# TYPE flask_status_up gauge\n"
        'flask_status_up{url="/readyz"} 1\n'
    )
    assert calls == []
    text = prometheus(client, "/readyz?exclude=queue&format=prometheus")
    assert 'flask_status_up{url="/readyz"} 1\n' in text
    assert "queue" not in text
    assert sorted(calls) == ["cache", "db"]


def test_unknown_format_is_400(app: Flask, client: FlaskClient) -> None:
    calls: list[str] = []
    build_readyz(app, calls)
    response = client.get("/readyz?format=xml")
    assert response.status_code == 400
    assert (  # in Werkzeug's error page, which escapes it in its own way
        "Unknown format 'xml'; use one of: json, health, prometheus, html."
        in html.unescape(response.text)
    )
    assert calls == []


def test_format_json_beats_an_accept_header_preferring_health(
    app: Flask, client: FlaskClient
) -> None:
    FlaskStatus(app, url="/readyz").add_field("db", lambda: True)
    response = client.get("/readyz?format=json", headers=HEALTH)
    assert (response.status_code, response.content_type, response.data) == (
        200,
        "application/json",
        b'{"status":"OK","db":true}',
    )
    response = client.get("/readyz", headers=HEALTH)  # no ?format: Accept decides
    assert (response.status_code, response.content_type) == (
        200,
        "application/health+json",
    )
    assert response.get_json(force=True)["status"] == "pass"


def test_prometheus_durations_are_rounded_to_microseconds(
    app: Flask, client: FlaskClient
) -> None:
    def check() -> bool:
        time.sleep(0.002)
        return True

    status = FlaskStatus(app, url="/readyz")
    for n in range(5):
        status.add_field(f"c{n}", check)
    text = prometheus(client, "/readyz?format=prometheus")
    durations = re.findall(
        r'^flask_status_check_duration_seconds\{url="/readyz",check="c\d"} (.+)$',
        text,
        re.MULTILINE,
    )
    assert len(durations) == 5
    assert all(re.fullmatch(r"0\.[0-9]{1,6}", d) for d in durations), durations
    assert all(0.002 <= float(d) < 1 for d in durations)


# -- reasons -------------------------------------------------------------------


class Item:
    """A class of the app's, which JSON cannot encode."""


def test_reasons_use_the_right_article(app: Flask, client: FlaskClient) -> None:
    status = FlaskStatus(app, show_errors=True)
    status.add_field("number", lambda: 1j)
    status.add_field("item", Item)
    assert client.get("/api/status").get_json() == {
        "status": "FAIL",
        "number": False,
        "item": False,
        "errors": {
            "number": "returned a complex object that JSON cannot encode",
            "item": "returned an Item object that JSON cannot encode",
        },
    }
