"""The 1.0 API and the decorator API: routes, payloads, fields, auth (the
authenticator comes before every route, query and format), factory."""

from __future__ import annotations

import functools
import gc
import weakref
from typing import Any
from typing import Callable

import pytest
from flask import Flask
from flask import abort
from flask import jsonify
from flask import request
from flask.testing import FlaskClient
from helpers import build_readyz
from helpers import warnings

from flask_status import FlaskStatus

HEALTH = {"Accept": "application/health+json"}


def test_default_route(app: Flask, client: FlaskClient) -> None:
    FlaskStatus(app)
    response = client.get("/api/status")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == {"status": "OK"}


def test_url_and_dict_message(app: Flask, client: FlaskClient) -> None:
    FlaskStatus(app, url="/api/ping", message={"message": "show my status"})
    assert client.get("/api/ping").get_json() == {"message": "show my status"}
    assert client.get("/api/status").status_code == 404


def test_string_message(app: Flask, client: FlaskClient) -> None:
    FlaskStatus(app, message="Running")
    assert client.get("/api/status").get_json() == {"message": "Running"}


def test_url_without_leading_slash(app: Flask, client: FlaskClient) -> None:
    FlaskStatus(app, url="health")
    assert client.get("/health").get_json() == {"status": "OK"}
    assert "/health" in app.extensions["status"]


def test_fields_follow_message_in_registration_order(
    app: Flask, client: FlaskClient
) -> None:
    status = FlaskStatus(app, message={"b": 1, "a": 2})
    status.add_field("z", [1, 2])
    status.add_field("y", lambda: "computed")
    status.add_field("x", None)
    assert client.get("/api/status").data == (
        b'{"b":1,"a":2,"z":[1,2],"y":"computed","x":null}'
    )


def test_callable_runs_on_every_request(app: Flask, client: FlaskClient) -> None:
    calls: list[int] = []

    def count() -> int:
        calls.append(1)
        return len(calls)

    status = FlaskStatus(app)
    status.add_field("calls", count)
    assert calls == []  # not run at registration, as 1.0 did
    assert client.get("/api/status").get_json() == {"status": "OK", "calls": 1}
    assert client.get("/api/status").get_json() == {"status": "OK", "calls": 2}


def test_static_false_is_a_plain_field(app: Flask, client: FlaskClient) -> None:
    FlaskStatus(app).add_field("error", False)
    response = client.get("/api/status")
    assert response.status_code == 200
    assert response.get_json() == {"status": "OK", "error": False}


def test_field_decorator_returns_function_unchanged(
    app: Flask, client: FlaskClient
) -> None:
    status = FlaskStatus(app)

    def database() -> bool:
        return True

    def cache() -> str:
        return "warm"

    assert status.field("db")(database) is database
    assert status.field(cache) is cache
    assert client.get("/api/status").get_json() == {
        "status": "OK",
        "db": True,
        "cache": "warm",
    }


def test_bare_field_decorator_uses_name(app: Flask, client: FlaskClient) -> None:
    status = FlaskStatus(app)

    @status.field
    def queue_depth() -> int:
        return 3

    assert queue_depth() == 3
    assert client.get("/api/status").get_json() == {"status": "OK", "queue_depth": 3}


def test_field_decorator_shares_add_field_validation(app: Flask) -> None:
    status = FlaskStatus(app)
    status.add_field("db", True)
    with pytest.raises(ValueError) as error:
        status.field("db")(lambda: True)
    assert str(error.value) == (
        "A field 'db' is already added; choose another key or another FlaskStatus."
    )


def test_field_decorator_without_name_needs_dunder_name(app: Flask) -> None:
    status = FlaskStatus(app)
    check = functools.partial(bool, 1)
    with pytest.raises(TypeError) as error:
        status.field(check)
    assert str(error.value) == (
        f"{check!r} has no __name__; name the field: @status.field('name')."
    )


@pytest.mark.parametrize(
    ("key", "kind", "text"),
    [
        (1, TypeError, "A field key must be a string, not 1."),
        (
            "",
            ValueError,
            "The field key '' is empty; give the field a name, such as 'database'.",
        ),
        (
            "status",
            ValueError,
            "The field key 'status' is reserved: the status endpoint writes it"
            " itself; choose another key.",
        ),
        (
            "checks",
            ValueError,
            "The field key 'checks' is reserved: the status endpoint writes it"
            " itself; choose another key.",
        ),
    ],
)
def test_bad_field_keys(app: Flask, key: Any, kind: type[Exception], text: str) -> None:
    with pytest.raises(kind) as error:
        FlaskStatus(app).add_field(key, True)
    assert str(error.value) == text


def test_static_value_must_be_json(app: Flask) -> None:
    status = FlaskStatus(app)
    with pytest.raises(TypeError) as error:
        status.add_field("raw", b"bytes")
    assert str(error.value) == (
        "The value of field 'raw' b'bytes' cannot be encoded as JSON; use a str,"
        " int, finite float, bool, None, or a list or dict of them."
    )
    with pytest.raises(ValueError, match=r"field 'ratio' nan cannot be encoded"):
        status.add_field("ratio", float("nan"))


def test_check_taking_arguments_is_refused(app: Flask) -> None:
    def ping(host: str) -> bool:
        return True

    with pytest.raises(TypeError) as error:
        FlaskStatus(app).add_field("ping", ping)
    assert str(error.value) == (
        f"The check {ping!r} for field 'ping' requires arguments; it is called"
        " with none, so give it defaults or wrap it in a lambda."
    )


def _require_token(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from flask import request

        token = request.headers.get("X-Token")
        if token is None:
            abort(401)
        if token != "secret":
            abort(403)
        return view(*args, **kwargs)

    return wrapper


def test_authenticator_argument(app: Flask, client: FlaskClient) -> None:
    FlaskStatus(app, authenticator=_require_token)
    assert client.get("/api/status").status_code == 401
    assert client.get("/api/status", headers={"X-Token": "no"}).status_code == 403
    response = client.get("/api/status", headers={"X-Token": "secret"})
    assert (response.status_code, response.get_json()) == (200, {"status": "OK"})


def test_auth_decorator_after_route_exists_and_is_returned(
    app: Flask, client: FlaskClient
) -> None:
    status = FlaskStatus(app)

    @app.get("/other")
    @_require_token
    def other() -> str:
        return "guarded too"

    assert client.get("/api/status").status_code == 200
    assert status.auth(_require_token) is _require_token
    assert client.get("/api/status").status_code == 401
    assert client.get("/other").status_code == 401


def test_authenticator_runs_before_any_check(app: Flask, client: FlaskClient) -> None:
    calls: list[str] = []

    def db() -> bool:
        calls.append("db")
        return True

    status = FlaskStatus(app, authenticator=_require_token)
    status.add_field("db", db)
    assert client.get("/api/status").status_code == 401
    assert calls == []


def test_authenticator_runs_before_every_route_query_and_format(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []
    seen: list[dict[str, Any]] = []
    status = build_readyz(app, calls, per_check=True)

    @status.auth
    def token_required(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(**kwargs: Any) -> Any:
            if request.headers.get("X-Token") != "s3cret":
                abort(401)
            seen.append(kwargs)
            return view(**kwargs)

        return wrapper

    paths = [
        "/readyz",
        "/readyz?exclude=nope",
        "/readyz?format=prometheus",
        "/readyz?format=nope",
        "/readyz/db",
        "/readyz/anything",
    ]
    for path in paths:
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers=HEALTH).status_code == 401, path
        assert client.head(path).status_code == 401, path
    assert (calls, seen, warnings(caplog, app)) == ([], [], [])
    token = {"X-Token": "s3cret"}
    codes = [client.get(path, headers=token).status_code for path in paths]
    assert codes == [503, 503, 200, 400, 200, 404]
    assert seen == [{}, {}, {}, {}, {"key": "db"}, {"key": "anything"}]


def test_authenticator_own_response_reaches_client(
    app: Flask, client: FlaskClient
) -> None:
    def teapot(view: Callable[..., Any]) -> Callable[..., Any]:
        return lambda: (jsonify(error="brew first"), 418)

    FlaskStatus(app, authenticator=teapot)
    response = client.get("/api/status")
    assert (response.status_code, response.get_json()) == (418, {"error": "brew first"})


def test_partial_and_callable_object_authenticators(app: Flask) -> None:
    def header_is(name: str, view: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper() -> Any:
            from flask import request

            return view() if request.headers.get(name) else abort(401)

        return wrapper

    class Guard:
        def __call__(self, view: Callable[..., Any]) -> Callable[..., Any]:
            return functools.partial(abort, 403)

    FlaskStatus(app, url="/a", authenticator=functools.partial(header_is, "X-A"))
    FlaskStatus(app, url="/b", authenticator=Guard())
    client = app.test_client()
    assert client.get("/a").status_code == 401
    assert client.get("/a", headers={"X-A": "1"}).status_code == 200
    assert client.get("/b").status_code == 403


@pytest.mark.parametrize("bad", [None, "login_required", lambda view: None])
def test_bad_authenticator(app: Flask, bad: Any) -> None:
    with pytest.raises(TypeError) as error:
        FlaskStatus(app).auth(bad)
    assert str(error.value) == (
        f"The authenticator {bad!r} must be a view decorator: a callable that"
        " takes a view function and returns one."
    )


def test_app_factory_serves_many_apps() -> None:
    status = FlaskStatus(message="factory")
    status.add_field("answer", 42)

    def create_app() -> Flask:
        app = Flask(__name__)
        status.init_app(app)
        return app

    first, second = create_app(), create_app()
    for app in (first, second):
        assert app.extensions["status"] == {"/api/status": status}
        assert app.test_client().get("/api/status").get_json() == {
            "message": "factory",
            "answer": 42,
        }


def test_instances_share_nothing() -> None:
    one, two = Flask("one"), Flask("two")
    FlaskStatus(one).add_field("only_one", True)
    FlaskStatus(two)
    assert two.test_client().get("/api/status").get_json() == {"status": "OK"}
    assert one.test_client().get("/api/status").get_json() == {
        "status": "OK",
        "only_one": True,
    }


def test_mutating_the_message_after_setup_changes_nothing(
    app: Flask, client: FlaskClient
) -> None:
    message = {"status": "OK"}
    FlaskStatus(app, message=message)
    message["leak"] = "yes"
    assert client.get("/api/status").get_json() == {"status": "OK"}


def test_app_is_not_kept_alive_by_the_extension() -> None:
    status = FlaskStatus()
    app = Flask(__name__)
    status.init_app(app)
    app.test_client().get("/api/status")
    ref = weakref.ref(app)
    del app
    gc.collect()
    assert ref() is None


def test_several_instances_on_one_app(app: Flask, client: FlaskClient) -> None:
    livez = FlaskStatus(app, url="/livez")
    readyz = FlaskStatus(app, url="/readyz", authenticator=_require_token)
    readyz.add_field("db", lambda: True)
    assert app.extensions["status"] == {"/livez": livez, "/readyz": readyz}
    assert client.get("/livez").get_json() == {"status": "OK"}
    assert client.get("/readyz").status_code == 401
    assert client.get("/readyz", headers={"X-Token": "secret"}).get_json() == {
        "status": "OK",
        "db": True,
    }
    assert {rule.endpoint for rule in app.url_map.iter_rules()} >= {
        "status:/livez",
        "status:/readyz",
    }


def test_same_url_twice_is_refused(app: Flask) -> None:
    FlaskStatus(app)
    with pytest.raises(ValueError) as error:
        FlaskStatus(app, url="api/status")
    assert str(error.value) == (
        f"The URL '/api/status' is already routed on {app!r}; give this"
        " FlaskStatus another url."
    )


def test_url_of_an_existing_view_is_refused(app: Flask) -> None:
    app.add_url_rule("/health", "health", lambda: "mine")
    with pytest.raises(ValueError, match="'/health' is already routed"):
        FlaskStatus(app, url="/health")


def test_init_app_twice_is_refused(app: Flask) -> None:
    status = FlaskStatus(app)
    with pytest.raises(RuntimeError) as error:
        status.init_app(app)
    assert str(error.value) == (
        f"This FlaskStatus already serves {app!r}; create another FlaskStatus"
        " to serve a second URL."
    )


@pytest.mark.parametrize(
    ("url", "kind", "text"),
    [
        (5, TypeError, "The status URL must be a string, not 5."),
        (
            " ",
            ValueError,
            "The status URL ' ' is empty or has surrounding spaces; give a path"
            " such as '/api/status'.",
        ),
    ],
)
def test_bad_urls(app: Flask, url: Any, kind: type[Exception], text: str) -> None:
    with pytest.raises(kind) as error:
        FlaskStatus(app, url=url)
    assert str(error.value) == text


@pytest.mark.parametrize("message", [42, ["OK"], {1: "one"}])
def test_bad_message_kinds(app: Flask, message: Any) -> None:
    with pytest.raises(TypeError) as error:
        FlaskStatus(app, message=message)
    assert str(error.value) == (
        "The status message must be a string or a dict with string keys,"
        f" not {message!r}."
    )


def test_message_must_be_json(app: Flask) -> None:
    with pytest.raises(TypeError, match=r"^The status message \{'when': <object"):
        FlaskStatus(app, message={"when": object()})


def test_argument_beats_config_beats_default() -> None:
    app = Flask(__name__)
    app.config.update(STATUS_URL="/from-config", STATUS_MESSAGE="configured")
    FlaskStatus(app)
    FlaskStatus(app, url="/from-argument", message={"status": "argued"})
    bare = Flask(__name__)
    FlaskStatus(bare)
    client = app.test_client()
    assert client.get("/from-config").get_json() == {"message": "configured"}
    assert client.get("/from-argument").get_json() == {"status": "argued"}
    assert bare.test_client().get("/api/status").get_json() == {"status": "OK"}
    # Keys nobody set stay unset: init_app writes no defaults into the config.
    assert "STATUS_URL" not in bare.config
    assert "STATUS_TIMEOUT" not in bare.config
    assert list(app.extensions["status"]) == ["/from-config", "/from-argument"]
