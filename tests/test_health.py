"""Results that say more: a check that returns a Health decides its own
status and gives a value with a unit; every format shows them; reasons are
bounded; the HTTP code of each status is a setting."""

from __future__ import annotations

import logging
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any
from typing import Callable

import pytest
from flask import Flask
from helpers import Switch
from helpers import get
from helpers import logged
from helpers import prometheus
from helpers import wait_for
from servers import PASSWORD
from servers import server_port

import flask_status
from flask_status import FlaskStatus
from flask_status import Health
from flask_status import StatusChange
from flask_status import disk_check
from flask_status import http_check
from flask_status import memory_check
from flask_status import redis_check
from flask_status import sql_check

HEALTH = {"Accept": "application/health+json"}
SIZE = r"\d+(\.\d)? ([kMGT]B|bytes)"
TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def checks(app: Flask, url: str = "/readyz") -> dict[str, Any]:
    """Each check's health+json entry, ``time``, ``since`` and ``duration``
    checked and left out."""
    body = app.test_client().get(url, headers=HEALTH).get_json()
    entries = {}
    for key, [entry] in body["checks"].items():
        assert re.fullmatch(TIME, entry.pop("time"))
        assert re.fullmatch(TIME, entry.pop("since"))
        assert 0 <= entry.pop("duration") < 1
        entries[key] = entry
    return entries


# -- the type ------------------------------------------------------------------


def test_health_says_its_status_value_unit_and_reason() -> None:
    degraded = Health.warn("85% full", value=85, unit="%")
    assert (degraded.status, degraded.value, degraded.unit, degraded.reason) == (
        "WARN",
        85,
        "%",
        "85% full",
    )
    assert repr(degraded) == "Health.warn('85% full', value=85, unit='%')"
    assert repr(Health.ok()) == "Health.ok()"
    assert repr(Health.ok(3, unit="s")) == "Health.ok(3, unit='s')"
    assert repr(Health.fail("down")) == "Health.fail('down')"
    assert Health.fail("down") == Health.fail("down") != Health.warn("down")


@pytest.mark.parametrize(
    ("make", "kind", "text"),
    [
        (lambda: Health.warn(""), ValueError, "The reason of a Health '' is empty"),
        (
            lambda: Health.fail(None),  # type: ignore[arg-type]
            TypeError,
            "The reason of a Health must be a",
        ),
        (
            lambda: Health.ok(1, unit=5),  # type: ignore[arg-type]
            TypeError,
            "The unit of a Health must be a",
        ),
        (lambda: Health("UP"), ValueError, "The status 'UP' of a Health is none"),
        (lambda: Health("OK", reason="x"), ValueError, "Health.ok takes no reason"),
    ],
)
def test_a_bad_health_is_refused(make: Any, kind: type[Exception], text: str) -> None:
    with pytest.raises(kind, match=f"^{re.escape(text)}"):
        make()


# -- the status it decides -------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "critical", "answer"),
    [
        (Health.ok(), True, (200, {"status": "OK", "it": True})),
        (Health.ok(42, unit="ms"), True, (200, {"status": "OK", "it": 42})),
        (
            Health.warn("slow", value=0.3, unit="s"),
            True,  # WARN whatever critical says
            (200, {"status": "WARN", "it": 0.3, "errors": {"it": "slow"}}),
        ),
        (
            Health.warn("slow"),
            False,
            (200, {"status": "WARN", "it": True, "errors": {"it": "slow"}}),
        ),
        (
            Health.fail("down"),
            True,
            (503, {"status": "FAIL", "it": False, "errors": {"it": "down"}}),
        ),
        (
            Health.fail("down", value=7),
            False,  # a non-critical failure stays WARN
            (200, {"status": "WARN", "it": 7, "errors": {"it": "down"}}),
        ),
    ],
)
def test_a_health_decides_the_status_and_the_field(
    app: Flask, result: Health, critical: bool, answer: tuple[int, Any]
) -> None:
    status = FlaskStatus(app, show_errors=True)
    status.add_field("it", lambda: result, critical=critical)
    assert get(app.test_client()) == answer


def test_a_health_value_json_cannot_encode_fails_its_check(app: Flask) -> None:
    FlaskStatus(app, show_errors=True).add_field("it", lambda: Health.ok({1, 2}))
    assert get(app.test_client()) == (
        503,
        {
            "status": "FAIL",
            "it": False,
            "errors": {"it": "returned a set object that JSON cannot encode"},
        },
    )


def test_a_warn_run_passes_for_tolerance_and_warns_at_once(app: Flask) -> None:
    db = Switch(Health.warn("replica 30 s behind"))
    status = FlaskStatus(app, fail_after=3, recover_after=2)
    status.add_field("db", db)
    client = app.test_client()
    assert get(client) == (200, {"status": "WARN", "db": True})  # at once
    db.result = True
    assert get(client) == (200, {"status": "OK", "db": True})  # not failing: no wait
    db.result = Health.fail("down")
    assert get(client) == (200, {"status": "OK", "db": False})  # 1 of 3
    assert get(client) == (200, {"status": "OK", "db": False})  # 2 of 3
    db.result = Health.warn("back, slowly")
    assert get(client) == (200, {"status": "WARN", "db": True})  # the streak ended
    db.result = Health.fail("down")
    for _ in range(2):
        assert get(client)[0] == 200  # counting from 0 again
    assert get(client) == (503, {"status": "FAIL", "db": False})
    db.result = Health.warn("back, slowly")
    assert get(client)[0] == 503  # 1 of recover_after's 2 passing runs
    assert get(client) == (200, {"status": "WARN", "db": True})


def test_warnings_are_logged_when_the_status_turns(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    db = Switch(Health.warn("slow"))
    FlaskStatus(app).add_field("db", db)
    client = app.test_client()
    for result in (Health.warn("slow"), Health.warn("slower"), True, True):
        db.result = result
        get(client)
    assert [(r.levelname, r.getMessage()) for r in logged(app, caplog)] == [
        ("WARNING", "Check 'db' of /api/status warns: slow"),
        ("INFO", "Check 'db' of /api/status passes again."),
    ]


def test_listeners_hear_a_warning_and_its_reason(app: Flask) -> None:
    db = Switch(True)
    status = FlaskStatus(app, url="/readyz")
    status.add_field("db", db)
    heard: list[StatusChange] = []
    status.on_change(heard.append)
    client = app.test_client()
    get(client, "/readyz")
    db.result = Health.warn("slow")
    get(client, "/readyz")
    wait_for(lambda: len(heard) == 4, "the listener to hear the warning")
    assert [(c.check, c.old, c.new, c.reason) for c in heard] == [
        ("db", None, "OK", None),
        (None, None, "OK", None),
        ("db", "OK", "WARN", "slow"),
        (None, "OK", "WARN", None),
    ]


# -- every format ----------------------------------------------------------------


def formats_app(app: Flask) -> None:
    """/readyz with a WARN result, a FAIL result, a value with a unit and a
    plain value."""
    status = FlaskStatus(app, url="/readyz", show_errors=True)
    status.add_field(
        "disk",
        lambda: Health.warn("85% full", value=84_134_076_416, unit="bytes"),
        component_type="system",
    )
    status.add_field("queue", lambda: Health.fail("broker down"), critical=False)
    status.add_field(
        "db", lambda: Health.ok(0.0032, unit="s"), component_type="datastore"
    )
    status.add_field("plain", lambda: 3)


def test_json_shows_values_and_reasons(app: Flask) -> None:
    formats_app(app)
    assert app.test_client().get("/readyz").data == (
        b'{"status":"WARN","disk":84134076416,"queue":false,"db":0.0032,"plain":3,'
        b'"errors":{"disk":"85% full","queue":"broker down"}}'
    )


def test_health_json_has_units_component_types_and_output(app: Flask) -> None:
    formats_app(app)
    assert checks(app) == {
        "disk": {
            "status": "warn",
            "componentType": "system",
            "observedValue": 84134076416,
            "observedUnit": "bytes",
            "consecutiveFailures": 0,
            "output": "85% full",
        },
        "queue": {
            "status": "warn",
            "observedValue": False,
            "consecutiveFailures": 1,
            "output": "broker down",
        },
        "db": {
            "status": "pass",
            "componentType": "datastore",
            "observedValue": 0.0032,
            "observedUnit": "s",
            "consecutiveFailures": 0,
        },
        "plain": {"status": "pass", "observedValue": 3, "consecutiveFailures": 0},
    }
    body = app.test_client().get("/readyz", headers=HEALTH).get_json()
    assert list(body["checks"]["disk"][0]) == [  # in the draft's order
        "status",
        "componentType",
        "observedValue",
        "observedUnit",
        "time",
        "duration",
        "since",
        "consecutiveFailures",
        "output",
    ]


def test_prometheus_has_the_values_of_health_results_with_units(app: Flask) -> None:
    formats_app(app)
    text = prometheus(app.test_client(), "/readyz?format=prometheus")
    durations = re.sub(r"(duration_seconds\{[^}]+\}) [0-9.e+-]+", r"\1 D", text)
    assert durations.endswith(
        'flask_status_check_up{url="/readyz",check="plain"} 1\n'
        "# HELP flask_status_check_duration_seconds How long the check's latest"
        " run took.\n# TYPE flask_status_check_duration_seconds gauge\n"
        + "".join(
            f'flask_status_check_duration_seconds{{url="/readyz",check="{k}"}} D\n'
            for k in ("disk", "queue", "db", "plain")
        )
        + "# HELP flask_status_check_value The value of the check's latest run, in"
        " its unit.\n"
        "# TYPE flask_status_check_value gauge\n"
        'flask_status_check_value{url="/readyz",check="disk",unit="bytes"}'
        " 84134076416\n"
        'flask_status_check_value{url="/readyz",check="db",unit="s"} 0.0032\n'
    )
    assert 'flask_status_check_up{url="/readyz",check="disk"} 0\n' in text


def test_prometheus_values_parse_and_a_value_without_a_unit_has_no_label(
    app: Flask,
) -> None:
    parser = pytest.importorskip("prometheus_client.parser")
    status = FlaskStatus(app, url="/readyz")
    status.add_field("depth", lambda: Health.ok(12))
    status.add_field("ratio", lambda: Health.ok(0.5, unit='a "b"'))
    status.add_field("text", lambda: Health.ok("fine", unit="words"))  # no number
    status.add_field("flag", lambda: Health.ok(True, unit="bool"))  # no number
    text = prometheus(app.test_client(), "/readyz?format=prometheus")
    families = {f.name: f for f in parser.text_string_to_metric_families(text)}
    samples = families["flask_status_check_value"].samples
    assert [(s.labels, s.value) for s in samples] == [
        ({"url": "/readyz", "check": "depth"}, 12),
        ({"url": "/readyz", "check": "ratio", "unit": 'a "b"'}, 0.5),
    ]


def test_the_page_shows_units_ages_a_summary_and_when_it_was_made(
    app: Flask,
) -> None:
    formats_app(app)
    text = app.test_client().get("/readyz?format=html").get_data(as_text=True)
    assert '<p class="summary">4 checks: 2 OK, 2 WARN</p>\n' in text
    assert '<data value="84134076416">84.1 GB</data>' in text
    assert '<data value="0.0032">3.2 ms</data>' in text
    assert "<code>false</code></td>" in text and "<code>3</code></td>" in text
    assert re.search(
        f'<td data-label="Since"><time datetime="{TIME}">[^<]+</time> \\(0 s ago\\)',
        text,
    )
    assert re.search(f'<p>Made at <time datetime="{TIME}">[^<]+</time>.</p>', text)


def test_a_summary_counts_one_check_and_only_statuses_it_has(app: Flask) -> None:
    FlaskStatus(app, url="/readyz").add_field("db", lambda: Health.fail("down"))
    text = app.test_client().get("/readyz?format=html").get_data(as_text=True)
    assert '<p class="summary">1 check: 1 FAIL</p>' in text


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [
        (512, "bytes", '<data value="512">512 bytes</data>'),
        (3_200_000, "bytes", '<data value="3200000">3.2 MB</data>'),
        (0.25, "s", '<data value="0.25">250 ms</data>'),
        (12.5, "s", '<data value="12.5">12.5 s</data>'),
        (4000, "s", '<data value="4000">4000 s</data>'),
        (-1, "bytes", "<code>-1</code> bytes"),
        (7, "<b>", "<code>7</code> &lt;b&gt;"),
        ("up", "state", "<code>&quot;up&quot;</code> state"),
    ],
)
def test_units_on_the_page(app: Flask, value: Any, unit: str, shown: str) -> None:
    FlaskStatus(app, url="/readyz").add_field("it", lambda: Health.ok(value, unit=unit))
    text = app.test_client().get("/readyz?format=html").get_data(as_text=True)
    assert f'<td data-label="Value">{shown}</td>' in text


# -- long reasons ------------------------------------------------------------------


def test_a_long_reason_is_cut_everywhere_but_in_the_log(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    long = "x" * 450 + "y" * 100 + "z" * 9450  # 10,000 characters
    cut = "x" * 450 + "y" * 50 + "... [9500 more characters in the log]"
    raised = f"RuntimeError: {'x' * 450}{'y' * 36}... [9514 more characters in the log]"
    status = FlaskStatus(app, url="/readyz", show_errors=True)
    heard: list[StatusChange] = []
    status.on_change(heard.append)

    @status.field
    def db() -> None:
        raise RuntimeError(long)

    status.add_field("cache", lambda: Health.warn(long), critical=False)
    client = app.test_client()
    assert get(client, "/readyz") == (
        503,
        {
            "status": "FAIL",
            "db": False,
            "cache": True,
            "errors": {"db": raised, "cache": cut},
        },
    )
    entries = checks(app)
    assert (entries["db"]["output"], entries["cache"]["output"]) == (raised, cut)
    page = client.get("/readyz?format=html").get_data(as_text=True)
    assert f'<td data-label="Reason">{cut}</td>' in page
    assert "zz" not in page
    wait_for(lambda: len(heard) == 3, "the listener")
    assert [c.reason for c in heard if c.check] == [raised, cut]
    lines = {r.getMessage() for r in logged(app, caplog)}
    assert f"Check 'db' of /readyz failed: RuntimeError: {long}" in lines
    assert f"Check 'cache' of /readyz warns: {long}" in lines


def test_a_reason_of_500_characters_is_kept_whole(app: Flask) -> None:
    reason = "r" * 500
    FlaskStatus(app, show_errors=True).add_field("db", lambda: Health.fail(reason))
    assert get(app.test_client())[1]["errors"] == {"db": reason}


# -- HTTP codes ----------------------------------------------------------------------


@pytest.mark.parametrize("setting", ["argument", "config"])
def test_status_codes_set_each_statuss_code(app: Flask, setting: str) -> None:
    codes = {"WARN": 299, "FAIL": 500}
    if setting == "config":
        app.config["STATUS_CODES"] = codes
        status = FlaskStatus(app)
    else:
        status = FlaskStatus(app, status_codes=codes)
    db = Switch(True)
    status.add_field("db", db)
    client = app.test_client()
    assert client.get("/api/status").status_code == 200  # OK keeps its default
    db.result = Health.warn("slow")
    assert client.get("/api/status").status_code == 299
    db.result = False
    assert client.get("/api/status").status_code == 500
    assert client.get("/api/status?format=html").status_code == 500
    assert client.get("/api/status?format=prometheus").status_code == 200
    assert codes == {"WARN": 299, "FAIL": 500}  # the app's own, untouched


def test_a_bad_status_code_argument_is_refused_naming_it() -> None:
    with pytest.raises(ValueError) as error:
        FlaskStatus(status_codes={"FAIL": 204})
    assert str(error.value) == (
        "The status_codes option gives FAIL the code 204; it must be an error (4xx"
        " or 5xx): with a success or a redirect a load balancer would keep sending"
        " traffic."
    )


def test_a_component_type_must_be_text(app: Flask) -> None:
    with pytest.raises(TypeError) as error:
        FlaskStatus(app).add_field("db", lambda: True, component_type=3)  # type: ignore[arg-type]
    assert str(error.value) == (
        "The component_type option must be a string, such as 'datastore', not 3."
    )


def test_a_plain_true_is_what_it_was(app: Flask) -> None:
    """The commonest result takes the path it always took: a run that
    returns True has no Health, and shows as before in every format."""
    status = FlaskStatus(app, url="/readyz")
    status.add_field("db", lambda: True)
    assert checks(app) == {
        "db": {"status": "pass", "observedValue": True, "consecutiveFailures": 0}
    }
    assert "flask_status_check_value" not in prometheus(
        app.test_client(), "/readyz?format=prometheus"
    )


# -- the ready-made checks -----------------------------------------------------------


def test_disk_check_warns_before_it_fails(app: Flask, tmp_path: Path) -> None:
    usage = shutil.disk_usage(tmp_path)
    status = FlaskStatus(app, url="/readyz", show_errors=True)
    check = disk_check(tmp_path, min_free=1, warn_free=usage.total)  # always below
    status.add_field("disk", check)
    code, body = get(app.test_client(), "/readyz")
    assert (code, body["status"]) == (200, "WARN")
    assert abs(body["disk"] - usage.free) < usage.free / 100
    where = re.escape(repr(str(tmp_path)))
    size = re.escape(flask_status._size(usage.total))
    assert re.fullmatch(f"{SIZE} free on {where}, below {size}", body["errors"]["disk"])
    assert checks(app)["disk"]["observedUnit"] == "bytes"
    assert type(check()) is int  # called directly: the plain value, as before
    total = flask_status._size(usage.total)
    assert repr(check) == (
        f"<disk_check at least 1 bytes (warns below {total}) free on {str(tmp_path)!r}>"
    )


def test_disk_check_passes_above_its_warning_with_a_unit(
    app: Flask, tmp_path: Path
) -> None:
    status = FlaskStatus(app, url="/readyz")
    status.add_field("disk", disk_check(tmp_path, min_free=0, warn_free=0.0001))
    entry = checks(app)["disk"]
    assert (entry["status"], entry["observedUnit"]) == ("pass", "bytes")


@pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="Linux only")
def test_memory_check_warns_before_it_fails(app: Flask) -> None:
    status = FlaskStatus(app, url="/readyz", show_errors=True)
    status.add_field("memory", memory_check(min_available=1, warn_available=0.9999))
    code, body = get(app.test_client(), "/readyz")
    assert (code, body["status"]) == (200, "WARN")
    assert re.fullmatch(
        f"{SIZE} available( in the memory limit of {SIZE})?, below 99.99% \\({SIZE}\\)",
        body["errors"]["memory"],
    )


@pytest.mark.parametrize(
    ("make", "kind", "text"),
    [
        (
            lambda: disk_check(min_free=100, warn_free=100),
            ValueError,
            "warn_free 100 is not above min_free 100, so it would never warn; give"
            " more than min_free.",
        ),
        (
            lambda: memory_check(min_available=0.2, warn_available=0.1),
            ValueError,
            "warn_available 0.1 is not above min_available 0.2, so it would never"
            " warn; give more than min_available.",
        ),
        (
            lambda: disk_check(min_free=1, warn_free="2"),  # type: ignore[arg-type]
            TypeError,
            "warn_free must be bytes (an int) or a fraction of the total (a float"
            " between 0 and 1), not '2'.",
        ),
        (
            lambda: http_check("http://127.0.0.1/", value="speed"),
            ValueError,
            "The value 'speed' is not one a check can show instead of its own;"
            " give value='latency' for the seconds it took.",
        ),
        (
            lambda: redis_check(Pong(), warn_latency=0),
            ValueError,
            "warn_latency 0 is out of range; give a finite number of seconds above 0.",
        ),
    ],
)
def test_wrong_thresholds_are_refused(
    make: Any, kind: type[Exception], text: str
) -> None:
    with pytest.raises(kind) as error:
        make()
    assert str(error.value) == text


class Pong:
    """A client of the app's whose PING is answered: for setup errors."""

    def ping(self) -> bool:
        return True


def test_http_check_shows_its_latency_and_warns_when_slow(
    app: Flask, serve: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    url = f"http://127.0.0.1:{server_port(serve('http'))}/200"
    status = FlaskStatus(app, url="/readyz", show_errors=True)
    quick = http_check(url, value="latency", warn_latency=5)
    status.add_field("quick", quick)
    status.add_field("slow", http_check(url, warn_latency=0.000001))
    code, body = get(app.test_client(), "/readyz")
    assert (code, body["status"]) == (200, "WARN")
    assert 0 < body["quick"] < 1 and body["slow"] == 200
    assert re.fullmatch(
        r"answered in [0-9.e-]+ s, slower than 1e-06 s", body["errors"]["slow"]
    )
    entry = checks(app)["quick"]
    assert (entry["status"], entry["observedUnit"]) == ("pass", "s")
    assert repr(quick) == (
        f"<http_check GET {url}, expect 200-399, shows its latency, warns above 5 s>"
    )
    assert 0 < quick() < 1  # called directly: the latency alone


def test_sql_check_shows_its_latency(app: Flask, tmp_path: Path) -> None:
    database = tmp_path / "app.sqlite3"
    sqlite3.connect(database).close()
    check = sql_check(lambda: sqlite3.connect(database), value="latency")
    FlaskStatus(app, url="/readyz").add_field("db", check)
    entry = checks(app)["db"]
    assert (entry["status"], entry["observedUnit"]) == ("pass", "s")
    assert 0 < entry["observedValue"] < 1


def test_redis_check_warns_when_ping_is_slow(
    app: Flask, redis_server: subprocess.Popen[bytes]
) -> None:
    redis = pytest.importorskip("redis")
    client = redis.Redis(port=server_port(redis_server), password=PASSWORD)
    status = FlaskStatus(app, url="/readyz", show_errors=True)
    status.add_field("cache", redis_check(client, value="latency", warn_latency=1e-9))
    entry = checks(app)["cache"]
    assert (entry["status"], entry["observedUnit"]) == ("warn", "s")
    assert entry["output"].startswith("answered in ")
