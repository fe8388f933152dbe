"""Per-check routes (#14): ``<url>/<key>`` judges that field alone, in every
format and for GET and HEAD only; they are opt-in, by argument or config,
and refused where they would answer the app's own URLs."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from helpers import build_readyz

from flask_status import FlaskStatus

HEALTH = {"Accept": "application/health+json"}


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
