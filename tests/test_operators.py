"""For operators (#14): ?exclude=, per-check routes, durations, Prometheus
text and details for the authorized, through the test client."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any
from typing import Callable

import pytest
from flask import Flask
from flask import abort
from flask import request
from flask import session
from flask.testing import FlaskClient
from helpers import build_readyz
from helpers import get
from helpers import logged
from helpers import prometheus

from flask_status import FlaskStatus

HEALTH = {"Accept": "application/health+json"}
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


def warnings(caplog: pytest.LogCaptureFixture, app: Flask) -> list[str]:
    """The app's warnings about ``?exclude=`` names."""
    return [
        r.getMessage()
        for r in logged(app, caplog)
        if r.levelname == "WARNING" and r.getMessage().startswith("Cannot exclude")
    ]


# -- ?exclude= and flask status --exclude --------------------------------------


def test_excluded_fields_neither_run_nor_show(app: Flask, client: FlaskClient) -> None:
    calls: list[str] = []
    build_readyz(app, calls)
    response = client.get("/readyz?exclude=queue")
    assert (response.status_code, response.data) == (
        200,
        b'{"status":"WARN","version":"1.2.3","db":3,"cache":false}',
    )
    assert sorted(calls) == ["cache", "db"]
    calls.clear()
    response = client.get("/readyz?exclude=queue,cache&exclude=version")
    assert (response.status_code, response.data) == (200, b'{"status":"OK","db":3}')
    assert calls == ["db"]
    calls.clear()
    response = client.get("/readyz?exclude= db , queue,&exclude=")  # spaces, empties
    assert (response.status_code, response.data) == (
        200,
        b'{"status":"WARN","version":"1.2.3","cache":false}',
    )
    assert calls == ["cache"]
    assert client.get("/readyz").status_code == 503  # nothing excluded


def test_unknown_exclude_is_warned_once_per_name(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    build_readyz(app, [])
    for _ in range(3):
        response = client.get("/readyz?exclude=nope,queue")
        assert (response.status_code, response.data) == (
            200,
            b'{"status":"WARN","version":"1.2.3","db":3,"cache":false}',
        )
    client.get("/readyz?exclude=nope&exclude=other,zzz,queue")
    assert warnings(caplog, app) == [
        "Cannot exclude 'nope' from /readyz: there is no such field.",
        "Cannot exclude 'other', 'zzz' from /readyz: there is no such field.",
    ]


def test_unknown_exclude_warnings_are_bounded(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    build_readyz(app, [])
    for number in range(100):  # a client inventing names cannot flood the log
        assert client.get(f"/readyz?exclude=x{number}").status_code == 503
    assert len(warnings(caplog, app)) == 64


def test_one_request_logs_at_most_64_unknown_names(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    build_readyz(app, [])
    names = [f"n{number}" for number in range(5000)]
    assert client.get(f"/readyz?exclude={','.join(names)}").status_code == 503
    assert client.get("/readyz?exclude=more,names").status_code == 503
    listed = ", ".join(map(repr, sorted(names)[:64]))
    assert warnings(caplog, app) == [
        f"Cannot exclude {listed} from /readyz: there is no such field."
    ]


def test_cli_exclude(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []
    build_readyz(app, calls)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["status", "--exclude", "queue"])
    assert (result.exit_code, result.output) == (
        0,
        '/readyz {"status":"WARN","version":"1.2.3","db":3,"cache":false}\n',
    )
    assert sorted(calls) == ["cache", "db"]
    calls.clear()
    args = ["status", "--exclude", "queue,cache", "--exclude", "version"]
    result = runner.invoke(args=args)
    assert (result.exit_code, result.output) == (0, '/readyz {"status":"OK","db":3}\n')
    assert calls == ["db"]
    result = runner.invoke(args=["status", "--exclude", "nope"])
    assert (result.exit_code, result.output) == (
        1,
        '/readyz {"status":"FAIL","version":"1.2.3","db":3,"cache":false,'
        '"queue":false}\n',
    )
    assert warnings(caplog, app) == [
        "Cannot exclude 'nope': no endpoint has such a field."
    ]


def test_cli_exclude_warns_only_of_names_no_endpoint_has(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    FlaskStatus(app, url="/livez")
    FlaskStatus(app, url="/readyz").add_field("db", lambda: 1)
    result = app.test_cli_runner().invoke(args=["status", "--exclude", "db,dbb"])
    assert (result.exit_code, result.output) == (
        0,
        '/livez {"status":"OK"}\n/readyz {"status":"OK"}\n',
    )
    assert warnings(caplog, app) == [
        "Cannot exclude 'dbb': no endpoint has such a field."
    ]


# -- per-check routes ----------------------------------------------------------


def test_per_check_route_judges_one_field(app: Flask, client: FlaskClient) -> None:
    calls: list[str] = []
    build_readyz(app, calls, per_check=True, message={"status": "OK", "service": "api"})
    expected = {
        "db": (200, b'{"status":"OK","service":"api","db":3}', ["db"]),
        "cache": (200, b'{"status":"WARN","service":"api","cache":false}', ["cache"]),
        "queue": (503, b'{"status":"FAIL","service":"api","queue":false}', ["queue"]),
        "version": (200, b'{"status":"OK","service":"api","version":"1.2.3"}', []),
    }
    for key, (code, body, ran) in expected.items():
        calls.clear()
        response = client.get(f"/readyz/{key}")
        assert (response.status_code, response.data, calls) == (code, body, ran)
        assert response.headers["Cache-Control"] == "no-store"
        head = client.head(f"/readyz/{key}")
        assert (head.status_code, head.data) == (code, b"")
    calls.clear()
    assert client.get("/readyz/nope").status_code == 404
    assert client.get("/readyz/db/more").status_code == 404
    assert calls == []


def test_per_check_route_shows_its_error_and_formats(
    app: Flask, client: FlaskClient
) -> None:
    build_readyz(app, [], per_check=True, show_errors=True)
    response = client.get("/readyz/queue")
    assert response.data == (
        b'{"status":"FAIL","queue":false,"errors":{"queue":"returned False"}}'
    )
    body = client.get("/readyz/cache", headers=HEALTH).get_json(force=True)
    assert (body["status"], list(body["checks"])) == ("warn", ["cache"])
    text = client.get("/readyz/db?format=prometheus").data.decode()
    assert 'flask_status_check_up{url="/readyz",check="db"} 1\n' in text
    assert "cache" not in text


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
def test_per_check_route_other_methods_are_405(
    app: Flask, client: FlaskClient, method: str
) -> None:
    calls: list[str] = []
    build_readyz(app, calls, per_check=True)
    response = client.open("/readyz/db", method=method)
    assert (response.status_code, sorted(response.allow)) == (405, ["GET", "HEAD"])
    assert calls == []


@pytest.mark.parametrize(
    ("argument", "config", "served"),
    [
        (None, None, False),
        (None, True, True),
        (False, True, False),
        (True, False, True),
    ],
)
def test_per_check_is_opt_in_and_the_argument_beats_config(
    argument: bool | None, config: bool | None, served: bool
) -> None:
    app = Flask(__name__)
    if config is not None:
        app.config["STATUS_PER_CHECK"] = config
    FlaskStatus(app, url="/readyz", per_check=argument).add_field("db", lambda: 1)
    response = app.test_client().get("/readyz/db")
    assert response.status_code == (200 if served else 404)


def test_per_check_config_must_be_a_bool(app: Flask) -> None:
    app.config["STATUS_PER_CHECK"] = "true"
    with pytest.raises(TypeError) as error:
        FlaskStatus(app)
    assert str(error.value) == (
        "The config key STATUS_PER_CHECK must be True or False, not 'true'."
        " Config values from environment variables are strings:"
        " app.config.from_prefixed_env() parses numbers and booleans."
    )


def test_per_check_at_the_root_is_refused(app: Flask) -> None:
    text = (
        "Per-check routes at the URL '/' would answer every one-segment path of"
        " the app; give this FlaskStatus another url."
    )
    with pytest.raises(ValueError) as error:
        FlaskStatus(app, url="/", per_check=True)
    assert str(error.value) == text
    app.config["STATUS_PER_CHECK"] = True
    with pytest.raises(ValueError) as error:
        FlaskStatus(app, url="/")
    assert str(error.value) == text
    assert [r.rule for r in app.url_map.iter_rules()] == ["/static/<path:filename>"]
    FlaskStatus(app, url="/", per_check=False)  # the root alone is fine


@pytest.mark.parametrize("rule", ["/readyz/<name>", "/readyz/x"])
def test_per_check_routes_must_not_clash_with_the_apps(app: Flask, rule: str) -> None:
    def mine(**kwargs: str) -> str:
        return "the app's own view"

    app.add_url_rule(rule, "mine", mine)
    with pytest.raises(ValueError) as error:
        FlaskStatus(app, url="/readyz", per_check=True)
    assert str(error.value) == (
        f"The URL {rule!r} is already routed on {app!r}; give this FlaskStatus"
        " another url."
    )
    assert sorted(r.rule for r in app.url_map.iter_rules()) == [
        rule,
        "/static/<path:filename>",
    ]
    FlaskStatus(app, url="/readyz").add_field("db", lambda: True)  # no clash
    client = app.test_client()
    assert client.get("/readyz").get_json() == {"status": "OK", "db": True}
    assert client.get("/readyz/x").data == b"the app's own view"


# -- the authenticator comes first ---------------------------------------------


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


# -- details for the authorized ------------------------------------------------


def test_details_hidden_when_the_predicate_is_false(
    app: Flask, client: FlaskClient
) -> None:
    status = build_readyz(app, [], per_check=True, show_errors=True)
    status.details_when(lambda: "X-Ops" in request.headers)
    ops = {"X-Ops": "1"}
    hidden = {
        "/readyz": (503, b'{"status":"FAIL"}'),
        "/readyz/cache": (200, b'{"status":"WARN"}'),
        "/readyz/db": (200, b'{"status":"OK"}'),
    }
    for path, (code, body) in hidden.items():
        response = client.get(path)
        assert (response.status_code, response.data) == (code, body)
        assert client.get(path, headers=ops).data.startswith(body[:-1] + b",")
    health = client.get("/readyz", headers=HEALTH)
    assert (health.status_code, health.data) == (503, b'{"status":"fail"}')
    assert "checks" in client.get("/readyz", headers={**HEALTH, **ops}).get_json(
        force=True
    )
    assert prometheus(client, "/readyz?format=prometheus") == (
        "# HELP flask_status_up 1 unless the endpoint's status is FAIL.\n"
        "# TYPE flask_status_up gauge\n"
        'flask_status_up{url="/readyz"} 0\n'
    )
    shown = prometheus(client, "/readyz?format=prometheus", ops)
    assert 'flask_status_check_up{url="/readyz",check="queue"} 0\n' in shown


def test_details_predicate_is_returned_and_runs_after_the_authenticator(
    app: Flask, client: FlaskClient
) -> None:
    order: list[str] = []
    status = FlaskStatus(app, url="/readyz", message={"status": "all good"})
    status.add_field("db", lambda: 1)

    @status.auth
    def token_required(view: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(**kwargs: Any) -> Any:
            order.append("auth")
            if "X-Token" not in request.headers:
                abort(401)
            return view(**kwargs)

        return wrapper

    def operator() -> bool:
        order.append(f"details {request.path}")
        return request.headers["X-Token"] == "ops"

    assert status.details_when(operator) is operator
    assert client.get("/readyz").status_code == 401
    assert order == ["auth"]
    assert client.get("/readyz", headers={"X-Token": "app"}).data == (
        b'{"status":"all good"}'
    )
    assert client.get("/readyz", headers={"X-Token": "ops"}).data == (
        b'{"status":"all good","db":1}'
    )
    assert order == ["auth", "auth", "details /readyz", "auth", "details /readyz"]


def test_a_raising_predicate_is_logged_and_hides_details(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    status = FlaskStatus(app, url="/readyz")
    status.add_field("db", lambda: 1)

    @status.details_when
    def broken() -> bool:
        raise KeyError("X-Ops")

    response = client.get("/readyz")
    assert (response.status_code, response.data) == (200, b'{"status":"OK"}')
    [record] = logged(app, caplog)
    assert (record.levelname, record.getMessage()) == (
        "ERROR",
        f"The details predicate {broken!r} of /readyz raised.",
    )
    assert record.exc_info is not None and record.exc_info[0] is KeyError


def test_details_when_twice_and_not_callable(app: Flask) -> None:
    status = FlaskStatus(app)
    first = status.details_when(lambda: True)
    second = lambda: False  # noqa: E731
    with pytest.raises(RuntimeError) as error:
        status.details_when(second)
    assert str(error.value) == (
        f"This FlaskStatus already shows details when {first!r} is true;"
        f" combine it with {second!r} into one predicate."
    )
    with pytest.raises(TypeError) as bad:
        FlaskStatus(Flask(__name__)).details_when(True)  # type: ignore[type-var]
    assert str(bad.value) == (
        "The details predicate True must be a callable taking no arguments."
    )


def signed_in_example() -> str:
    """The manual's predicate that accepts the app's session as well as the
    token (docs/operators.md)."""
    page = Path(__file__).resolve().parent.parent / "docs" / "operators.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), re.S)
    [code] = [block for block in blocks if 'session.get("operator")' in block]
    return str(code)


def test_details_for_an_operator_signed_in_to_the_app(app: Flask) -> None:
    """A browser sends no Authorization header: with the manual's predicate
    it gets the details once its user signed in through the app's own login
    view, which sets the session; other browsers get the status alone."""
    app.config.update(SECRET_KEY="app-secret", OPS_TOKEN="s3cret")
    status = build_readyz(app, [], show_errors=True)
    exec(signed_in_example(), {"status": status})

    @app.post("/login")
    def login() -> str:
        if request.form.get("password") != "operator's":
            abort(403)
        session["operator"] = True
        return "signed in"

    @app.post("/logout")
    def logout() -> str:
        session.clear()
        return "signed out"

    browser, other = app.test_client(), app.test_client()
    bare = (503, {"status": "FAIL"})
    detailed = (
        503,
        {
            "status": "FAIL",
            "version": "1.2.3",
            "db": 3,
            "cache": False,
            "queue": False,
            "errors": {"cache": "returned False", "queue": "returned False"},
        },
    )
    assert get(browser, "/readyz") == bare
    assert browser.post("/login", data={"password": "guess"}).status_code == 403
    assert get(browser, "/readyz") == bare
    assert browser.post("/login", data={"password": "operator's"}).status_code == 200
    assert get(browser, "/readyz") == detailed
    page = browser.get("/readyz", headers={"Accept": "text/html"}).text
    assert "<table>" in page and "returned False" in page
    assert get(other, "/readyz") == bare
    assert "<table>" not in other.get("/readyz", headers={"Accept": "text/html"}).text
    ops = {"Authorization": "Bearer s3cret"}  # the token still works, alone
    assert other.get("/readyz", headers=ops).get_json() == detailed[1]
    assert browser.post("/logout").status_code == 200
    assert get(browser, "/readyz") == bare


def test_flask_status_shows_details_whatever_the_predicate(app: Flask) -> None:
    status = build_readyz(app, [])
    status.details_when(lambda: False)
    result = app.test_cli_runner().invoke(args=["status", "--exclude", "queue"])
    assert (result.exit_code, result.output) == (
        0,
        '/readyz {"status":"WARN","version":"1.2.3","db":3,"cache":false}\n',
    )
