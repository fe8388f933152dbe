"""The flask-status 1.0.1 README's examples, as written there, still work.

The README left ``AUTH_TOKEN_HEADER`` and ``verify_token`` to the reader; they
are defined here. Everything else is the README's code.
"""

from __future__ import annotations

from functools import wraps

from flask import Flask
from flask import abort
from flask import request
from werkzeug.test import TestResponse

from flask_status import FlaskStatus

AUTH_TOKEN_HEADER = "token"


def verify_token(token: str) -> bool:
    return token == "good"


def test_quick_start() -> None:
    app = Flask(__name__)
    FlaskStatus(app)

    response = app.test_client().get("/api/status")
    assert (response.status_code, response.get_json()) == (200, {"status": "OK"})


def test_route_and_payload() -> None:
    app = Flask(__name__)
    FlaskStatus(app, url="/api/ping", message={"message": "show my status"})

    assert app.test_client().get("/api/ping").get_json() == {
        "message": "show my status"
    }


def test_string_message() -> None:
    app = Flask(__name__)
    FlaskStatus(app, message="Running")

    assert app.test_client().get("/api/status").get_json() == {"message": "Running"}


def test_add_field() -> None:
    app = Flask(__name__)
    flask_status = FlaskStatus(app)
    flask_status.add_field("error", False)

    # you can also add functions to run on request of the status route
    def check_database():  # type: ignore[no-untyped-def]
        # check if database is running
        return True

    flask_status.add_field("database", check_database)

    assert app.test_client().get("/api/status").get_json() == {
        "status": "OK",
        "error": False,
        "database": True,
    }


def test_authenticator() -> None:
    app = Flask(__name__)

    # define an authenticator decorator function
    def login_required(func):  # type: ignore[no-untyped-def]
        @wraps(func)
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            token = request.cookies.get(AUTH_TOKEN_HEADER)
            if not token:
                return abort(401)
            if not verify_token(token):
                return abort(403)
            return func(*args, **kwargs)

        return wrapper

    # define FlaskStatus with this authenticator function
    FlaskStatus(app, authenticator=login_required)

    client = app.test_client(use_cookies=False)  # send the Cookie header as given
    assert client.get("/api/status").status_code == 401

    def get(token: str) -> TestResponse:
        cookie = f"{AUTH_TOKEN_HEADER}={token}"
        return client.get("/api/status", headers={"Cookie": cookie})

    assert get("bad").status_code == 403
    response = get("good")
    assert (response.status_code, response.get_json()) == (200, {"status": "OK"})
