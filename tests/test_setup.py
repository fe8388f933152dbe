"""Setup that never surprises: what is refused at registration and at
init_app, with errors that say where to look, and config left alone."""

from __future__ import annotations

import datetime
import functools
import inspect
import sys
import threading
import typing
import warnings
from pathlib import Path
from typing import Any
from typing import Callable

import pytest
from flask import Flask
from flask import abort
from flask import request
from flask.json.provider import DefaultJSONProvider

import flask_status
from flask_status import FlaskStatus

HAS_OVERLOADS = sys.version_info >= (3, 11)  # typing.get_overloads
MAX = f"(threading.TIMEOUT_MAX, {threading.TIMEOUT_MAX:.0f})"
NOT_JSON = (
    "cannot be encoded as JSON; use a str, int, finite float, bool, None, or a"
    " list or dict of them."
)
FROM_ENV = (
    "Config values from environment variables are strings:"
    " app.config.from_prefixed_env() parses numbers and booleans."
)
NEVER = (
    "has a variable part, a query or a fragment, which a status route can never"
    " answer; give a plain path such as '/api/status'."
)


def header(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """An authenticator that answers 401 unless the request has header ``name``."""

    def authenticator(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if name not in request.headers:
                abort(401)
            return view(*args, **kwargs)

        return wrapper

    return authenticator


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ({"a"}, TypeError),
        (datetime.date(2025, 1, 2), TypeError),  # plain JSON only, not the provider's
        ({"ratio": float("nan")}, ValueError),
        ([float("inf")], ValueError),
    ],
)
def test_static_values_are_checked_before_the_app_is_known(
    app: Flask, value: Any, kind: type[Exception]
) -> None:
    status = FlaskStatus()
    with pytest.raises(kind) as error:
        status.add_field("tags", value)
    assert str(error.value) == f"The value of field 'tags' {value!r} {NOT_JSON}"
    status.add_field("version", "1.0")
    status.init_app(app)
    assert app.test_client().get("/api/status").data == (
        b'{"status":"OK","version":"1.0"}'
    )


def test_static_values_are_plain_json_whatever_the_provider(app: Flask) -> None:
    class Lenient(DefaultJSONProvider):
        def default(self, o: Any) -> Any:
            return sorted(o) if isinstance(o, set) else super().default(o)

    app.json = Lenient(app)
    status = FlaskStatus(app)
    with pytest.raises(TypeError) as error:
        status.add_field("tags", {"a"})
    assert str(error.value) == f"The value of field 'tags' {{'a'}} {NOT_JSON}"
    status.add_field("tags", lambda: {"a"})  # a check's result may be anything
    assert app.test_client().get("/api/status").data == b'{"status":"OK","tags":["a"]}'


def test_static_values_are_copied(app: Flask) -> None:
    status = FlaskStatus()
    build: dict[str, Any] = {"version": "1.0", "tags": ["a"]}
    status.add_field("build", build)
    status.init_app(app)
    later = {"region": "eu"}
    status.add_field("later", later)
    build["tags"].append("b")
    build["version"] = "2.0"
    later["region"] = "us"
    assert app.test_client().get("/api/status").data == (
        b'{"status":"OK","build":{"version":"1.0","tags":["a"]},'
        b'"later":{"region":"eu"}}'
    )
    assert build == {"version": "2.0", "tags": ["a", "b"]}  # the user's, as edited


@pytest.mark.parametrize("key", ["errors", "checks"])
def test_reserved_message_keys_are_refused(app: Flask, key: str) -> None:
    with pytest.raises(ValueError) as error:
        FlaskStatus(message={"service": "api", key: "mine"})
    assert str(error.value) == (
        f"The status message has the key {key!r}, which the status endpoint"
        " writes itself; rename that key."
    )
    app.config["STATUS_MESSAGE"] = {key: {}}
    with pytest.raises(
        ValueError, match=f"^The config key STATUS_MESSAGE has the key '{key}',"
    ):
        FlaskStatus(app)
    assert [r.rule for r in app.url_map.iter_rules()] == ["/static/<path:filename>"]


def test_both_reserved_keys_name_one(app: Flask) -> None:
    with pytest.raises(ValueError) as error:
        FlaskStatus(app, message={"errors": 1, "checks": 2})
    assert str(error.value) == (
        "The status message has the key 'checks', which the status endpoint"
        " writes itself; rename that key."
    )


def test_status_stays_allowed_in_the_message(app: Flask) -> None:
    status = FlaskStatus(app, message={"service": "api", "status": "UP"})
    status.add_field("db", lambda: True)
    assert app.test_client().get("/api/status").data == (
        b'{"service":"api","status":"UP","db":true}'
    )


# Each case: the key, a bad value, the error's type and its exact text, which
# names the key and the value and says what to give instead.
CONFIG_ERRORS: list[tuple[str, Any, type[Exception], str]] = [
    ("STATUS_URL", "/status/<name>", ValueError, f"'/status/<name>' {NEVER}"),
    ("STATUS_URL", "/status?x=1", ValueError, f"'/status?x=1' {NEVER}"),
    ("STATUS_URL", "/status#top", ValueError, f"'/status#top' {NEVER}"),
    ("STATUS_URL", 5, TypeError, "must be a string, not 5."),
    (
        "STATUS_URL",
        "/status ",
        ValueError,
        "'/status ' is empty or has surrounding spaces; give a path such as"
        " '/api/status'.",
    ),
    (
        "STATUS_MESSAGE",
        {"errors": []},
        ValueError,
        "has the key 'errors', which the status endpoint writes itself; rename"
        " that key.",
    ),
    (
        "STATUS_MESSAGE",
        {"checks": {}},
        ValueError,
        "has the key 'checks', which the status endpoint writes itself; rename"
        " that key.",
    ),
    (
        "STATUS_MESSAGE",
        42,
        TypeError,
        "must be a string or a dict with string keys, not 42.",
    ),
    ("STATUS_MESSAGE", {"at": float("nan")}, ValueError, f"{{'at': nan}} {NOT_JSON}"),
    (
        "STATUS_TIMEOUT",
        "5",
        TypeError,
        f"must be a number of seconds, not '5'. {FROM_ENV}",
    ),
    (
        "STATUS_TIMEOUT",
        "fast",
        TypeError,
        f"must be a number of seconds, not 'fast'. {FROM_ENV}",
    ),
    (
        "STATUS_TIMEOUT",
        float("inf"),
        ValueError,
        "inf is out of range; give a finite number of seconds above 0.",
    ),
    (
        "STATUS_TIMEOUT",
        1e10,
        ValueError,
        f"10000000000.0 is more seconds than Python can wait {MAX}; give fewer.",
    ),
    (
        "STATUS_TIMEOUT",
        0,
        ValueError,
        "0 is out of range; give a finite number of seconds above 0.",
    ),
    (
        "STATUS_CACHE",
        "10",
        TypeError,
        f"must be a number of seconds, not '10'. {FROM_ENV}",
    ),
    (
        "STATUS_CACHE",
        -1,
        ValueError,
        "-1 is out of range; give a finite number of seconds from 0.",
    ),
    (
        "STATUS_CACHE",
        10**400,
        ValueError,
        "1" + "0" * 400 + f" is more seconds than Python can wait {MAX}; give fewer.",
    ),
    (
        "STATUS_EVERY",
        "30",
        TypeError,
        f"must be a number of seconds, not '30'. {FROM_ENV}",
    ),
    (
        "STATUS_EVERY",
        float("nan"),
        ValueError,
        "nan is out of range; give a finite number of seconds from 0.",
    ),
    (
        "STATUS_EVERY",
        1e10,
        ValueError,
        f"10000000000.0 is more seconds than Python can wait {MAX}; give fewer.",
    ),
    (
        "STATUS_SHOW_ERRORS",
        "true",
        TypeError,
        f"must be True or False, not 'true'. {FROM_ENV}",
    ),
    (
        "STATUS_SHOW_ERRORS",
        "yes",
        TypeError,
        f"must be True or False, not 'yes'. {FROM_ENV}",
    ),
    ("STATUS_SHOW_ERRORS", 1, TypeError, "must be True or False, not 1."),
    ("STATUS_FAIL_AFTER", 0, ValueError, "0 must be 1 or more."),
    ("STATUS_FAIL_AFTER", 2.0, TypeError, "must be an int, not 2.0."),
    ("STATUS_FAIL_AFTER", False, TypeError, "must be an int, not False."),
    ("STATUS_RECOVER_AFTER", 1.5, TypeError, "must be an int, not 1.5."),
    ("STATUS_RECOVER_AFTER", -1, ValueError, "-1 must be 1 or more."),
    ("STATUS_WORKERS", 0, ValueError, "0 must be 1 or more."),
    ("STATUS_WORKERS", -2, ValueError, "-2 must be 1 or more."),
    ("STATUS_WORKERS", 2.5, TypeError, "must be an int, not 2.5."),
    ("STATUS_WORKERS", True, TypeError, "must be an int, not True."),
    (
        "STATUS_LOG",
        "all",
        ValueError,
        "'all' is not a log mode; give 'transitions' (log when a check starts"
        " failing and when it recovers) or 'every' (each failed run).",
    ),
    (
        "STATUS_LOG",
        "Every",
        ValueError,
        "'Every' is not a log mode; give 'transitions' (log when a check starts"
        " failing and when it recovers) or 'every' (each failed run).",
    ),
    (
        "STATUS_PER_CHECK",
        "false",
        TypeError,
        f"must be True or False, not 'false'. {FROM_ENV}",
    ),
    ("STATUS_PER_CHECK", None, TypeError, "must be True or False, not None."),
    ("STATUS_HTML", "no", TypeError, f"must be True or False, not 'no'. {FROM_ENV}"),
    ("STATUS_QUIET_ACCESS_LOG", 1, TypeError, "must be True or False, not 1."),
    (
        "STATUS_SHARE",
        7,
        TypeError,
        "must be the path of a SQLite file, as a str or a pathlib.Path, not 7.",
    ),
    (
        "STATUS_SHARE",
        "/no-such-folder/status.db",
        ValueError,
        "'/no-such-folder/status.db' is in a directory that does not exist;"
        " create '/no-such-folder' first, or choose a path in one that does.",
    ),
    (
        "STATUS_CODES",
        "503",
        TypeError,
        'must be a dict of statuses to HTTP codes, such as {"WARN": 429}, not'
        f" '503'. {FROM_ENV}",
    ),
    (
        "STATUS_CODES",
        {"DOWN": 503},
        ValueError,
        "has the key 'DOWN', which is no status; give codes for 'OK', 'WARN' or"
        " 'FAIL'.",
    ),
    (
        "STATUS_CODES",
        {"WARN": "429"},
        TypeError,
        "gives WARN the code '429'; give an int, such as 200.",
    ),
    (
        "STATUS_CODES",
        {"OK": 204, "FAIL": 200},
        ValueError,
        "gives FAIL the code 200; it must be an error (4xx or 5xx): with a"
        " success or a redirect a load balancer would keep sending traffic.",
    ),
    (
        "STATUS_CODES",
        {"FAIL": 302},
        ValueError,
        "gives FAIL the code 302; it must be an error (4xx or 5xx): with a"
        " success or a redirect a load balancer would keep sending traffic.",
    ),
    (
        "STATUS_CODES",
        {"OK": 301},
        ValueError,
        "gives OK the code 301; it must be a success (2xx), or probes would take"
        " the app as down.",
    ),
    (
        "STATUS_CODES",
        {"WARN": 600},
        ValueError,
        "gives WARN the code 600; it must be from 200 to 599.",
    ),
]


@pytest.mark.parametrize(("key", "value", "kind", "text"), CONFIG_ERRORS)
def test_config_errors_say_where_to_look(
    app: Flask, key: str, value: Any, kind: type[Exception], text: str
) -> None:
    app.config[key] = value
    with pytest.raises(kind) as error:
        FlaskStatus(app)
    assert str(error.value) == f"The config key {key} {text}"


def test_every_setting_has_a_config_error_case() -> None:
    settings = set(inspect.signature(FlaskStatus).parameters) - {"app", "authenticator"}
    keys = {s.key for s in flask_status._SETTINGS if s.name in settings}
    assert keys == {key for key, *_ in CONFIG_ERRORS}
    assert len(keys) == 15  # status_codes's key is STATUS_CODES


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("STATUS_TIMEOUT", "5"),
        ("STATUS_CACHE", "0.5"),
        ("STATUS_EVERY", "30"),
        ("STATUS_WORKERS", "4"),
        ("STATUS_FAIL_AFTER", "3"),
        ("STATUS_SHOW_ERRORS", "false"),
        ("STATUS_PER_CHECK", "true"),
    ],
)
def test_strings_from_the_environment_point_to_from_prefixed_env(
    app: Flask, key: str, value: str
) -> None:
    app.config[key] = value
    with pytest.raises(TypeError) as error:
        FlaskStatus(app)
    text = str(error.value)
    assert text.startswith(f"The config key {key} ")
    assert repr(value) in text
    assert "app.config.from_prefixed_env()" in text


def test_init_app_leaves_unset_config_keys_alone() -> None:
    app = Flask(__name__)
    message = {"service": "api", "meta": {"zone": "a"}}
    app.config.update(STATUS_MESSAGE=message, STATUS_TIMEOUT=2)
    before = dict(app.config)
    status = FlaskStatus(app, url="/livez", show_errors=True)
    status.add_field("db", lambda: True)
    assert app.test_client().get("/livez").data == (
        b'{"service":"api","meta":{"zone":"a"},"db":true}'
    )
    assert "STATUS_URL" not in app.config
    assert "STATUS_SHOW_ERRORS" not in app.config
    assert [k for k in app.config if k.startswith("STATUS_")] == [
        "STATUS_MESSAGE",
        "STATUS_TIMEOUT",
    ]
    assert dict(app.config) == before
    assert app.config["STATUS_MESSAGE"] is message
    assert message == {"service": "api", "meta": {"zone": "a"}}


def test_a_second_authenticator_is_refused() -> None:
    first, second = header("X-First"), header("X-Second")
    for make in ("argument", "auth"):
        app = Flask(__name__)
        if make == "argument":
            status = FlaskStatus(app, authenticator=first)
        else:
            status = FlaskStatus(app)
            status.auth(first)
        with pytest.raises(RuntimeError) as error:
            status.auth(second)
        assert str(error.value) == (
            f"This FlaskStatus is already guarded by {first!r}; it cannot also"
            f" take {second!r}. Combine them into one decorator that applies"
            " both, and pass that once."
        )
        client = app.test_client()
        assert client.get("/api/status").status_code == 401
        assert client.get("/api/status", headers={"X-Second": "1"}).status_code == 401
        assert client.get("/api/status", headers={"X-First": "1"}).status_code == 200


def test_a_second_authenticator_as_a_decorator_is_refused(app: Flask) -> None:
    first = header("X-First")
    status = FlaskStatus(app, authenticator=first)
    with pytest.raises(RuntimeError, match=r"^This FlaskStatus is already guarded by"):

        @status.auth
        def second(view: Callable[..., Any]) -> Callable[..., Any]:
            return view

    assert app.test_client().get("/api/status").status_code == 401


def test_a_refused_authenticator_leaves_room_for_a_good_one(app: Flask) -> None:
    status = FlaskStatus(app)
    with pytest.raises(TypeError):
        status.auth(lambda view: None)  # type: ignore[type-var]
    status.auth(header("X-First"))
    assert app.test_client().get("/api/status").status_code == 401


def test_two_guards_combined_into_one(app: Flask) -> None:
    first, second = header("X-First"), header("X-Second")

    def both(view: Callable[..., Any]) -> Callable[..., Any]:
        return first(second(view))

    status = FlaskStatus(app, url="/readyz", authenticator=both, per_check=True)
    status.add_field("db", lambda: True)
    client = app.test_client()
    for url in ("/readyz", "/readyz/db"):
        assert client.get(url, headers={"X-First": "1"}).status_code == 401
        assert client.get(url, headers={"X-Second": "1"}).status_code == 401
        response = client.get(url, headers={"X-First": "1", "X-Second": "1"})
        assert (response.status_code, response.data) == (
            200,
            b'{"status":"OK","db":true}',
        )


@pytest.mark.parametrize("url", ["/status/<name>", "/status?x=1", "/status#top"])
def test_a_url_that_can_never_answer_is_refused(app: Flask, url: str) -> None:
    with pytest.raises(ValueError) as error:
        FlaskStatus(url=url)
    assert str(error.value) == f"The status URL {url!r} {NEVER}"
    with pytest.raises(ValueError) as error:
        FlaskStatus(app, url=url)
    assert str(error.value) == f"The status URL {url!r} {NEVER}"
    app.config["STATUS_URL"] = url
    with pytest.raises(ValueError) as error:
        FlaskStatus(app)
    assert str(error.value) == f"The config key STATUS_URL {url!r} {NEVER}"


TOO_MANY = [(1e10, "10000000000.0"), (10**400, "1" + "0" * 400)]


@pytest.mark.parametrize(("value", "shown"), TOO_MANY, ids=["1e10", "10**400"])
@pytest.mark.parametrize(
    ("option", "label"),
    [
        ("timeout", "The timeout"),
        ("cache", "The cache"),
        ("every", "The every interval"),
    ],
)
def test_seconds_python_cannot_wait_are_refused(
    app: Flask, option: str, label: str, value: Any, shown: str
) -> None:
    text = f"{label} {shown} is more seconds than Python can wait {MAX}; give fewer."
    with pytest.raises(ValueError) as error:
        FlaskStatus(**{option: value})
    assert str(error.value) == text
    with pytest.raises(ValueError) as error:
        FlaskStatus(app).add_field("db", lambda: True, **{option: value})
    assert str(error.value) == text


def test_the_longest_wait_python_can_do_is_accepted(app: Flask) -> None:
    most = threading.TIMEOUT_MAX
    status = FlaskStatus(app, timeout=most, every=most)
    status.add_field("db", lambda: True)
    status.add_field("cache", lambda: 1, timeout=most, cache=most)
    client = app.test_client()
    for _ in range(2):
        response = client.get("/api/status")
        assert (response.status_code, response.data) == (
            200,
            b'{"status":"OK","db":true,"cache":1}',
        )


def test_every_setting_is_a_keyword_a_field_and_documented() -> None:
    """A setting lives in _SETTINGS, _Settings, FlaskStatus's signature and
    docstring, and the README's table: one left out is a setting half-added."""
    names = [s.name for s in flask_status._SETTINGS]
    assert tuple(names) == flask_status._Settings._fields
    parameters = inspect.signature(FlaskStatus).parameters
    assert [n for n in parameters if n not in ("app", "authenticator")] == names
    doc = inspect.getdoc(FlaskStatus) or ""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for setting in flask_status._SETTINGS:
        assert f":param {setting.name}:" in doc
        assert f"``{setting.key}``" in doc
        assert f"| `{setting.name}` | `{setting.key}` |" in readme


def test_every_check_option_is_a_keyword_a_field_and_documented() -> None:
    """A check option lives in _CHECK_OPTIONS, _CheckOptions, the signatures
    and docstrings of add_field and of field's overload, and _Check: one
    left out is an option half-added."""
    names = [o.name for o in flask_status._CHECK_OPTIONS]
    assert tuple(names) == flask_status._CheckOptions._fields
    assert set(names) <= set(flask_status._Check.__slots__) | {"critical"}
    added = inspect.signature(FlaskStatus.add_field).parameters
    assert [n for n in added if n not in ("self", "key", "value")] == names
    overloads = typing.get_overloads(FlaskStatus.field) if HAS_OVERLOADS else []
    for overload in overloads[1:]:  # the decorator factory's
        parameters = inspect.signature(overload).parameters
        assert [n for n in parameters if n not in ("self", "name")] == names
    add_doc = inspect.getdoc(FlaskStatus.add_field) or ""
    field_doc = inspect.getdoc(FlaskStatus.field) or ""
    for name in names:
        assert f":param {name}:" in add_doc
        assert f"``{name}``" in field_doc


def test_a_key_that_cannot_be_utf_8_is_refused(app: Flask) -> None:
    with pytest.raises(ValueError) as error:
        FlaskStatus(app).add_field("\udc80", lambda: True)
    assert str(error.value) == (
        "The field key '\\udc80' has text that cannot be encoded as UTF-8 (a lone"
        " surrogate), as every response must be; decode it with errors='replace'"
        " first."
    )
    with pytest.raises(ValueError) as error:
        FlaskStatus(app, url="/other", message={"note": "\udc80"})
    assert str(error.value).startswith(
        "The status message {'note': '\\udc80'} has text that cannot be encoded"
    )


def test_a_message_string_that_cannot_be_utf_8_is_refused() -> None:
    with pytest.raises(ValueError) as error:
        FlaskStatus(message="up \udc80")
    assert str(error.value) == (
        "The status message 'up \\udc80' has text that cannot be encoded as UTF-8"
        " (a lone surrogate), as every response must be; decode it with"
        " errors='replace' first."
    )


def test_an_authenticator_that_is_no_decorator_is_refused(app: Flask) -> None:
    guard = lambda: None  # noqa: E731  (takes no view)
    with pytest.raises(TypeError) as error:
        FlaskStatus(app, authenticator=guard)  # type: ignore[arg-type]
    assert str(error.value) == (
        f"The authenticator {guard!r} must be a view decorator: a callable that"
        " takes a view function and returns one."
    )


def test_unknown_status_config_keys_are_warned_about(app: Flask) -> None:
    app.config.update(STATUS_TIMOUT=0.3, STATUS_SHOW_ERROR=True, STATUS_COLOUR="red")
    with pytest.warns(UserWarning) as warned:
        FlaskStatus(app)
    assert [(str(w.message), w.filename) for w in warned] == [
        (
            "The config key 'STATUS_COLOUR' is no flask-status setting, so it does"
            " nothing; the README lists them.",
            __file__,
        ),
        (
            "The config key 'STATUS_SHOW_ERROR' is no flask-status setting, so it"
            " does nothing; did you mean STATUS_SHOW_ERRORS?",
            __file__,
        ),
        (
            "The config key 'STATUS_TIMOUT' is no flask-status setting, so it does"
            " nothing; did you mean STATUS_TIMEOUT?",
            __file__,
        ),
    ]


def test_known_status_config_keys_warn_of_nothing(app: Flask) -> None:
    app.config.update(STATUS_TIMEOUT=0.3, STATUS_SHOW_ERRORS=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FlaskStatus().init_app(app)


def test_an_unknown_key_in_another_case_is_warned_about_with_its_setting(
    app: Flask,
) -> None:
    app.config["STATUS_timeout"] = 0.3
    with pytest.warns(UserWarning) as warned:
        FlaskStatus(app)
    assert [str(w.message) for w in warned] == [
        "The config key 'STATUS_timeout' is no flask-status setting, so it does"
        " nothing; did you mean STATUS_TIMEOUT?"
    ]
