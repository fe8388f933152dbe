"""Details for the authorized (#14): ``details_when`` shows the fields and
errors only when its predicate is true, in every format and route; the
predicate runs after the authenticator, and one that raises hides them; the
manual's predicate for an operator signed in to the app; ``flask status``
shows details whatever the predicate."""

from __future__ import annotations

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
