"""The payload: encoded by the app's JSON provider, in the order given, from
a message that stays the user's own; errors as type and message."""

from __future__ import annotations

import copy
import dataclasses
import datetime
import decimal
import json
import logging
import re
import sqlite3
import sys
import uuid
from typing import Any

import pytest
from flask import Flask
from flask import jsonify
from flask.json.provider import DefaultJSONProvider
from flask.json.provider import JSONProvider
from helpers import StartsWith
from helpers import logged

from flask_status import FlaskStatus

HEALTH = {"Accept": "application/health+json"}


@dataclasses.dataclass
class Build:
    name: str  # declared before "commit": the payload keeps this order
    commit: str


class Widget:
    """Something no provider here knows how to encode."""


class SetProvider(DefaultJSONProvider):
    """A provider as Flask's docs suggest: override ``default``."""

    def default(self, o: Any) -> Any:
        if isinstance(o, (set, frozenset)):
            return sorted(o)
        if isinstance(o, datetime.date):
            return o.isoformat()
        return super().default(o)


class OwnProvider(JSONProvider):
    """A provider with its own dumps and loads, not based on json's defaults."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return json.dumps(obj, default=self._default, ensure_ascii=False)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return json.loads(s)

    @staticmethod
    def _default(o: Any) -> Any:
        if isinstance(o, (set, frozenset)):
            return sorted(o)
        if isinstance(o, Widget):
            raise RuntimeError("no widgets here")
        raise TypeError(f"cannot encode {type(o).__name__}")


def sorts_keys(app: Flask) -> bool:
    """Whether the app's provider sorts keys, as Flask's does by default."""
    return isinstance(app.json, DefaultJSONProvider) and app.json.sort_keys


def pairs(data: bytes) -> Any:
    """The JSON document as nested lists of (key, value): order included."""
    return json.loads(data, object_pairs_hook=list)


@pytest.mark.parametrize(
    "value",
    [
        datetime.datetime(2025, 1, 2, 3, 4, 5),
        datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
        datetime.date(2025, 1, 2),
        uuid.UUID(int=1),
        decimal.Decimal("1.50"),
        "caf\u00e9",  # ensure_ascii, as jsonify
    ],
)
def test_results_are_encoded_as_jsonify_does(app: Flask, value: Any) -> None:
    FlaskStatus(app).add_field("value", lambda: value)
    with app.app_context():
        expected = app.json.dumps(value)
        assert jsonify(value).data == expected.encode() + b"\n"
    response = app.test_client().get("/api/status")
    assert response.status_code == 200
    assert response.data == b'{"status":"OK","value":' + expected.encode() + b"}"


def test_dataclass_and_nested_results_as_jsonify_but_in_order(app: Flask) -> None:
    status = FlaskStatus(app, message={"zulu": 1, "alpha": 2})
    build = Build("api", "abc123")
    nested = {"when": datetime.date(2025, 1, 2), "ids": [uuid.UUID(int=2)]}
    status.add_field("build", lambda: build)
    status.add_field("nested", lambda: nested)
    assert sorts_keys(app)  # jsonify sorts: the payload does not
    response = app.test_client().get("/api/status")
    assert response.data == (
        b'{"zulu":1,"alpha":2,"build":{"name":"api","commit":"abc123"},'
        b'"nested":{"when":"Thu, 02 Jan 2025 00:00:00 GMT",'
        b'"ids":["00000000-0000-0000-0000-000000000002"]}}'
    )
    with app.app_context():
        body = response.get_json()
        assert body["build"] == jsonify(build).get_json()
        assert body["nested"] == jsonify(nested).get_json()


def test_the_command_line_encodes_as_the_app_does(app: Flask) -> None:
    FlaskStatus(app).add_field("day", lambda: datetime.date(2025, 1, 2))
    result = app.test_cli_runner().invoke(args=["status"])
    assert (result.exit_code, result.output) == (
        0,
        '/api/status {"status":"OK","day":"Thu, 02 Jan 2025 00:00:00 GMT"}\n',
    )


def test_a_provider_overriding_default_is_honoured(app: Flask) -> None:
    app.json = SetProvider(app)
    status = FlaskStatus(app, message={"service": "caf\u00e9"})
    status.add_field("tags", lambda: {"b", "c", "a"})
    status.add_field("day", lambda: datetime.date(2025, 1, 2))
    assert app.test_client().get("/api/status").data == (
        b'{"service":"caf\\u00e9","tags":["a","b","c"],"day":"2025-01-02"}'
    )


def test_a_provider_of_its_own_is_honoured(app: Flask) -> None:
    status = FlaskStatus(app, message={"service": "caf\u00e9", "status": "OK"})
    status.add_field("tags", lambda: frozenset({2, 1}))
    status.add_field("owner", "z\u00fcrich")
    app.json = OwnProvider(app)  # after setup, before the first request
    # Its own dumps writes each value, so "tags" has its spaces.
    assert (
        app.test_client().get("/api/status").data
        == (
            '{"service":"caf\u00e9","status":"OK","tags":[1, 2],"owner":"z\u00fcrich"}'
        ).encode()
    )


def test_a_provider_set_after_setup_and_after_a_request(app: Flask) -> None:
    status = FlaskStatus(app)
    status.add_field("tags", lambda: {"b", "a"})
    status.add_field("day", lambda: datetime.date(2025, 1, 2))
    client = app.test_client()
    assert client.get("/api/status").data == (
        b'{"status":"FAIL","tags":false,"day":"Thu, 02 Jan 2025 00:00:00 GMT"}'
    )
    app.json = SetProvider(app)
    assert client.get("/api/status").data == (
        b'{"status":"OK","tags":["a","b"],"day":"2025-01-02"}'
    )
    app.json = OwnProvider(app)
    assert client.get("/api/status").data == (
        b'{"status":"FAIL","tags":["a", "b"],"day":false}'
    )


def test_provider_settings_made_before_the_first_request_count(app: Flask) -> None:
    status = FlaskStatus(app, message="caf\u00e9")
    status.add_field("city", "z\u00fcrich")
    status.add_field("name", lambda: "\u00e5s")
    assert isinstance(app.json, DefaultJSONProvider)
    app.json.ensure_ascii = False
    assert app.test_client().get("/api/status").data == (
        '{"message":"caf\u00e9","city":"z\u00fcrich","name":"\u00e5s"}'.encode()
    )


def test_order_is_kept_though_the_provider_sorts_keys(app: Flask) -> None:
    assert sorts_keys(app)
    message = {"zulu": "z", "status": "OK", "alpha": {"y": 1, "b": 2}}
    status = FlaskStatus(app, message=message, show_errors=True)
    status.add_field("mike", {"q": 1, "c": 2})
    status.add_field("echo", lambda: {"k": 1, "d": [{"z": 0, "a": 1}]})
    status.add_field("bravo", lambda: False, critical=False)
    status.add_field("alpha2", Widget)
    client = app.test_client()
    assert client.get("/api/status").data == (
        b'{"zulu":"z","status":"FAIL","alpha":{"y":1,"b":2},"mike":{"q":1,"c":2},'
        b'"echo":{"k":1,"d":[{"z":0,"a":1}]},"bravo":false,"alpha2":false,'
        b'"errors":{"bravo":"returned False",'
        b'"alpha2":"returned a Widget object that JSON cannot encode"}}'
    )
    health = pairs(client.get("/api/status", headers=HEALTH).data)
    assert [key for key, _ in health] == [
        "zulu",
        "status",
        "alpha",
        "mike",
        "checks",
    ]
    assert health[2][1] == [("y", 1), ("b", 2)]
    checks = dict(health)["checks"]
    assert [key for key, _ in checks] == ["echo", "bravo", "alpha2"]
    [echo] = checks[0][1]
    assert dict(echo)["observedValue"] == [("k", 1), ("d", [[("z", 0), ("a", 1)]])]


@pytest.mark.parametrize(
    "provider",
    [DefaultJSONProvider, SetProvider, OwnProvider],
    ids=lambda p: p.__name__,
)
@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (float("nan"), "float"),
        (float("inf"), "float"),
        (float("-inf"), "float"),
        ([1.0, float("nan")], "list"),
        ({"ratio": float("-inf")}, "dict"),
    ],
)
def test_nan_and_infinities_fail_with_any_provider(
    app: Flask, provider: type[JSONProvider], value: Any, kind: str
) -> None:
    app.json = provider(app)
    status = FlaskStatus(app, show_errors=True)
    status.add_field("ratio", lambda: value)
    status.add_field("fine", lambda: 0.5)
    response = app.test_client().get("/api/status")
    assert response.status_code == 503
    assert response.get_json() == {
        "status": "FAIL",
        "ratio": False,
        "fine": 0.5,
        "errors": {"ratio": f"returned a {kind} object that JSON cannot encode"},
    }


@pytest.mark.parametrize(
    "provider",
    [DefaultJSONProvider, SetProvider, OwnProvider],
    ids=lambda p: p.__name__,
)
def test_an_unencodable_result_fails_only_its_field(
    app: Flask, provider: type[JSONProvider], caplog: pytest.LogCaptureFixture
) -> None:
    app.json = provider(app)
    status = FlaskStatus(app, message={"service": "api"})
    status.add_field("widget", Widget, critical=False)
    status.add_field("day", lambda: "2025-01-02")
    status.add_field("version", "1.0")
    response = app.test_client().get("/api/status")
    assert (response.status_code, response.get_json()) == (
        200,
        {"service": "api", "widget": False, "day": "2025-01-02", "version": "1.0"},
    )
    [record] = logged(app, caplog)
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "Check 'widget' of /api/status failed: returned a Widget object that JSON"
        " cannot encode"
    )
    assert record.exc_info is not None  # the provider's own words, in the log
    error = record.exc_info[1]
    if provider is OwnProvider:
        assert (type(error), str(error)) == (RuntimeError, "no widgets here")
    else:
        assert (type(error), str(error)) == (
            TypeError,
            "Object of type Widget is not JSON serializable",
        )


def test_a_provider_that_writes_no_json_fails_the_check(app: Flask) -> None:
    class Loose(OwnProvider):
        def dumps(self, obj: Any, **kwargs: Any) -> str:
            return "undefined" if isinstance(obj, Widget) else super().dumps(obj)

    app.json = Loose(app)
    FlaskStatus(app, show_errors=True).add_field("widget", Widget)
    assert app.test_client().get("/api/status").get_json() == {
        "status": "FAIL",
        "widget": False,
        "errors": {"widget": "returned a Widget object that JSON cannot encode"},
    }


def message_with_nesting() -> dict[str, Any]:
    return {"status": "OK", "meta": {"region": "eu", "tags": ["a"]}, "n": 1}


def exercise(app: Flask, url: str = "/api/status") -> list[bytes]:
    """Every kind of response (JSON, health+json, Prometheus, some fields
    excluded), without the times, durations and counts that change each
    run."""
    client = app.test_client()
    bodies = [
        client.get(url).data,
        client.get(url, headers=HEALTH).data,
        client.get(url + "?format=health").data,
        client.get(url + "?format=prometheus").data,
        client.get(url + "?exclude=db").data,
    ]
    timed = (
        rb'"time":"[^"]+"(,"duration":[-+.e0-9]+)?'
        rb'(,"since":"[^"]+","consecutiveFailures":[0-9]+)?'
    )
    return [
        re.sub(rb"(seconds\{.*\}) .*", rb"\1 ~", re.sub(timed, b'"t":0', body))
        for body in bodies
    ]


def test_no_request_changes_the_users_message(app: Flask) -> None:
    message = message_with_nesting()
    snapshot, meta = copy.deepcopy(message), message["meta"]
    status = FlaskStatus(app, message=message, show_errors=True)
    status.add_field("db", lambda: False)
    status.add_field("cache", lambda: {"hits": 1}, critical=False)
    exercise(app)
    status.add_field("queue", lambda: 1)  # new parts, the same message
    first = exercise(app)
    assert message == snapshot
    assert list(message) == list(snapshot)
    assert message["meta"] is meta
    assert meta["tags"] == ["a"]
    message["meta"]["region"] = "us"
    message["meta"]["tags"].append("b")
    message["n"] = 2
    message["extra"] = True
    del message["status"]
    again = exercise(app)
    assert (
        again[0]
        == first[0]
        == (
            b'{"status":"FAIL","meta":{"region":"eu","tags":["a"]},"n":1,'
            b'"db":false,"cache":{"hits":1},"queue":1,"errors":{"db":"returned False"}}'
        )
    )
    assert pairs(again[1])[:3] == [
        ("status", "fail"),
        ("meta", [("region", "eu"), ("tags", ["a"])]),
        ("n", 1),
    ]
    assert again[2:] == first[2:]


def test_the_config_message_stays_as_set(app: Flask) -> None:
    configured = message_with_nesting()
    app.config["STATUS_MESSAGE"] = configured
    snapshot = copy.deepcopy(configured)
    FlaskStatus(app).add_field("db", lambda: True)
    first = exercise(app)
    assert app.config["STATUS_MESSAGE"] is configured
    assert configured == snapshot
    configured["meta"]["region"] = "us"
    configured["n"] = 2
    assert exercise(app)[:2] == first[:2]
    assert first[0] == (
        b'{"status":"OK","meta":{"region":"eu","tags":["a"]},"n":1,"db":true}'
    )
    other = Flask(__name__)
    other.config["STATUS_MESSAGE"] = "up"  # a string stays a string
    FlaskStatus(other)
    assert other.test_client().get("/api/status").data == b'{"message":"up"}'
    assert other.config["STATUS_MESSAGE"] == "up"


def failing(error: BaseException) -> Any:
    def check() -> Any:
        raise error

    return check


def noted() -> Any:
    error = ValueError("disk full")
    error.add_note("while checking /var")  # type: ignore[attr-defined,unused-ignore]
    error.add_note("and this is the last note")  # type: ignore[attr-defined,unused-ignore]
    raise error


def missing_table() -> Any:
    with sqlite3.connect(":memory:") as db:
        return db.execute("SELECT * FROM missing").fetchall()


@pytest.mark.parametrize(
    ("check", "reason"),
    [
        pytest.param(
            noted,
            "ValueError: disk full",
            marks=pytest.mark.skipif(
                sys.version_info < (3, 11), reason="add_note is Python 3.11+"
            ),
            id="notes",
        ),
        pytest.param(failing(ValueError()), "ValueError", id="no-message"),
        pytest.param(failing(KeyError("")), "KeyError: ''", id="key-error-repr"),
        pytest.param(failing(ValueError("")), "ValueError", id="empty-message"),
        pytest.param(
            missing_table,
            StartsWith("sqlite3.OperationalError: "),  # then SQLite's words
            id="module-qualified",
        ),
        pytest.param(
            failing(json.JSONDecodeError("Expecting value", "", 0)),
            StartsWith("json.decoder.JSONDecodeError: Expecting value"),
            id="submodule",
        ),
    ],
)
def test_errors_read_as_type_and_message(
    app: Flask,
    check: Any,
    reason: str | StartsWith,
    caplog: pytest.LogCaptureFixture,
) -> None:
    FlaskStatus(app, show_errors=True).add_field("db", check)
    client = app.test_client()
    assert client.get("/api/status").get_json() == {
        "status": "FAIL",
        "db": False,
        "errors": {"db": reason},
    }
    [entry] = client.get("/api/status", headers=HEALTH).get_json()["checks"]["db"]
    assert entry["output"] == reason
    [line] = {r.getMessage() for r in logged(app, caplog)}
    said, _, why = line.partition(": ")
    assert (said, why) == ("Check 'db' of /api/status failed", reason)


def test_lone_surrogates_from_a_check_never_make_a_500(app: Flask) -> None:
    """With ensure_ascii off, a result or an error text with a lone surrogate
    could not be encoded as UTF-8: the result fails its check, and the
    error text is shown escaped."""
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    status = FlaskStatus(app, show_errors=True)
    status.add_field("name", lambda: "caf\udce9")

    def broken() -> bool:
        raise OSError("bad path b'caf\udce9'")

    status.add_field("disk", broken)
    for path in (
        "/api/status",
        "/api/status?format=prometheus",
        "/api/status?format=html",
    ):
        assert app.test_client().get(path).status_code in (200, 503)
    assert app.test_client().get("/api/status").get_json() == {
        "status": "FAIL",
        "name": False,
        "disk": False,
        "errors": {
            "name": "returned a str object that JSON cannot encode",
            "disk": "OSError: bad path b'caf\\udce9'",
        },
    }
