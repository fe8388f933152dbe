"""Groups: more URLs of one FlaskStatus over the same runs, each judged from
its own fields, public ones without the authenticator or details, and the
URLs that cannot be served."""

from __future__ import annotations

import asyncio
import functools
import json
import threading
import types
from pathlib import Path
from typing import Any
from typing import Callable

import pytest
from flask import Flask
from flask import abort
from flask import request
from helpers import Switch
from helpers import get
from helpers import logged
from helpers import prometheus
from helpers import wait_for
from servers import Gunicorn
from servers import http_get

from flask_status import FlaskStatus
from flask_status import StatusChange


class Counter:
    """A check that counts its calls; it waits for ``gate`` when given."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.gate = gate
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        if self.gate is not None:
            self.gate.wait(5)
        return True


def token(view: Callable[..., Any]) -> Callable[..., Any]:
    """An authenticator that answers 401 without ``Authorization: Bearer s3cret``."""

    @functools.wraps(view)
    def wrapper(**kwargs: Any) -> Any:
        if request.headers.get("Authorization") != "Bearer s3cret":
            abort(401)
        return view(**kwargs)

    return wrapper


def probes(app: Flask, **options: Any) -> tuple[FlaskStatus, Switch, Switch]:
    """/api/status with every field, /livez with none, /readyz without billing."""
    status = FlaskStatus(app, **options)
    database, billing = Switch(), Switch()
    status.add_field("version", "1.2.3")
    status.add_field("database", database)
    status.add_field("billing", billing)
    status.group("/livez", include=[])
    status.group("/readyz", exclude=["billing"])
    return status, database, billing


def test_each_url_shows_its_own_fields(app: Flask) -> None:
    probes(app)
    client = app.test_client()
    assert get(client) == (
        200,
        {"status": "OK", "version": "1.2.3", "database": True, "billing": True},
    )
    assert get(client, "/livez") == (200, {"status": "OK"})
    assert get(client, "/readyz") == (
        200,
        {"status": "OK", "version": "1.2.3", "database": True},
    )
    assert app.extensions["status"] == {
        "/api/status": app.extensions["status"]["/api/status"],
        "/livez": app.extensions["status"]["/api/status"],
        "/readyz": app.extensions["status"]["/api/status"],
    }


def test_each_url_is_judged_from_its_own_fields(app: Flask) -> None:
    _, database, billing = probes(app)
    client = app.test_client()
    billing.result = False
    assert get(client) == (
        503,
        {"status": "FAIL", "version": "1.2.3", "database": True, "billing": False},
    )
    assert get(client, "/readyz")[0] == 200
    assert get(client, "/livez") == (200, {"status": "OK"})
    database.result = False
    assert get(client, "/readyz")[0] == 503
    assert get(client, "/livez") == (200, {"status": "OK"})


def test_urls_probed_at_once_share_one_run(app: Flask) -> None:
    gate = threading.Event()
    status = FlaskStatus(app)
    counter = Counter(gate)
    status.add_field("database", counter)
    status.group("/readyz")
    answers: list[Any] = []
    threads = [
        threading.Thread(target=lambda u=url: answers.append(get(app.test_client(), u)))
        for url in ("/api/status", "/readyz", "/readyz", "/api/status")
    ]
    for thread in threads:
        thread.start()
    wait_for(lambda: counter.calls == 1, "the run to start")
    threading.Event().wait(0.1)  # the other requests join it
    gate.set()
    for thread in threads:
        thread.join(5)
    assert answers == [(200, {"status": "OK", "database": True})] * 4
    assert counter.calls == 1


def test_a_cached_result_serves_every_url(app: Flask) -> None:
    status = FlaskStatus(app, cache=5)
    counter = Counter()
    status.add_field("database", counter)
    status.group("/readyz")
    client = app.test_client()
    assert get(client)[0] == get(client, "/readyz")[0] == 200
    assert counter.calls == 1


def test_a_group_in_every_format(app: Flask) -> None:
    _, _, billing = probes(app, per_check=True)
    client = app.test_client()
    billing.result = False
    health = client.get("/readyz?format=health").get_json()
    assert (health["status"], sorted(health["checks"])) == ("pass", ["database"])
    scrape = prometheus(client, "/readyz?format=prometheus").splitlines()
    assert scrape[:-1] == [
        "# HELP flask_status_up 1 unless the endpoint's status is FAIL.",
        "# TYPE flask_status_up gauge",
        'flask_status_up{url="/readyz"} 1',
        "# HELP flask_status_check_up 1 unless the check's status is WARN or FAIL.",
        "# TYPE flask_status_check_up gauge",
        'flask_status_check_up{url="/readyz",check="database"} 1',
        "# HELP flask_status_check_duration_seconds How long the check's latest"
        " run took.",
        "# TYPE flask_status_check_duration_seconds gauge",
    ]
    assert scrape[-1].startswith(
        'flask_status_check_duration_seconds{url="/readyz",check="database"} '
    )
    assert get(client, "/readyz?exclude=database") == (
        200,
        {"status": "OK", "version": "1.2.3"},
    )
    assert get(client, "/readyz/database") == (200, {"status": "OK", "database": True})
    assert client.get("/readyz/billing").status_code == 404  # not its field
    assert get(client, "/api/status/billing") == (
        503,
        {"status": "FAIL", "billing": False},
    )
    assert client.get("/livez/database").status_code == 404


def test_a_public_group_skips_the_authenticator_and_shows_no_details(
    app: Flask,
) -> None:
    status = FlaskStatus(app, authenticator=token, per_check=True)
    database = Switch()
    status.add_field("database", database)
    status.group("/readyz", public=True)
    client = app.test_client()
    assert client.get("/api/status").status_code == 401
    assert get(client, "/readyz") == (200, {"status": "OK"})
    assert get(client, "/readyz/database") == (200, {"status": "OK"})
    database.result = False
    assert get(client, "/readyz") == (503, {"status": "FAIL"})
    health = client.get("/readyz", headers={"Accept": "application/health+json"})
    assert (health.status_code, health.get_json()) == (503, {"status": "fail"})
    assert prometheus(client, "/readyz?format=prometheus") == (
        "# HELP flask_status_up 1 unless the endpoint's status is FAIL.\n"
        "# TYPE flask_status_up gauge\n"
        'flask_status_up{url="/readyz"} 0\n'
    )
    page = client.get("/readyz?format=html")
    assert page.status_code == 503
    assert "database" not in page.get_data(as_text=True)
    authorized = {"Authorization": "Bearer s3cret"}
    assert client.get("/api/status", headers=authorized).get_json() == {
        "status": "FAIL",
        "database": False,
    }


def test_a_group_that_is_not_public_is_guarded_as_the_url_is(app: Flask) -> None:
    status = FlaskStatus(app, authenticator=token)
    status.add_field("database", lambda: True)
    status.group("/readyz")

    @status.details_when
    def operator() -> bool:
        return request.args.get("who") == "operator"

    client = app.test_client()
    assert client.get("/readyz").status_code == 401
    authorized = {"Authorization": "Bearer s3cret"}
    assert client.get("/readyz", headers=authorized).get_json() == {"status": "OK"}
    assert client.get("/readyz?who=operator", headers=authorized).get_json() == {
        "status": "OK",
        "database": True,
    }


def test_listeners_hear_a_check_once_and_each_urls_own_change(app: Flask) -> None:
    _, database, billing = probes(app)
    status: FlaskStatus = app.extensions["status"]["/api/status"]
    heard: list[StatusChange] = []
    status.on_change(heard.append)
    client = app.test_client()
    assert get(client, "/readyz")[0] == 200  # billing has not run yet
    assert get(client)[0] == 200
    wait_for(lambda: len(heard) == 4, "the first changes")
    billing.result = False
    assert get(client)[0] == 503
    wait_for(lambda: len(heard) == 6, "billing's change")
    assert [(c.url, c.check, c.old, c.new) for c in heard] == [
        ("/api/status", "database", None, "OK"),
        ("/readyz", None, None, "OK"),
        ("/api/status", "billing", None, "OK"),
        ("/api/status", None, None, "OK"),
        ("/api/status", "billing", "OK", "FAIL"),
        ("/api/status", None, "OK", "FAIL"),
    ]
    assert database.calls == 3  # once per request: no cache


def test_a_group_is_served_on_apps_added_later() -> None:
    status = FlaskStatus()
    status.add_field("database", lambda: True)
    status.group("/readyz", public=True)
    first, second = Flask("first"), Flask("second")
    status.init_app(first)
    status.init_app(second)
    for app in (first, second):
        assert get(app.test_client(), "/readyz") == (200, {"status": "OK"})


def test_a_group_added_after_init_app_is_served(app: Flask) -> None:
    status = FlaskStatus(app)
    status.add_field("database", lambda: True)
    status.group("/readyz")
    assert get(app.test_client(), "/readyz") == (
        200,
        {"status": "OK", "database": True},
    )


@pytest.mark.parametrize(
    ("args", "kind", "text"),
    [
        (
            {"include": ["database"], "exclude": []},
            ValueError,
            "A group takes include or exclude, not both, but got include=['database']"
            " and exclude=[]; list the fields it shows, or those it leaves out.",
        ),
        (
            {"include": ["nope"]},
            ValueError,
            "'nope' in the include option is no field of this FlaskStatus yet; add"
            " the field before the group.",
        ),
        (
            {"exclude": ["nope"]},
            ValueError,
            "'nope' in the exclude option is no field of this FlaskStatus yet; add"
            " the field before the group.",
        ),
        (
            {"include": "database"},
            TypeError,
            "The include option must be a list of field keys, not 'database'; write"
            " include=['database'] for one.",
        ),
        (
            {"public": "yes"},
            TypeError,
            "The public option must be True or False, not 'yes'.",
        ),
    ],
)
def test_bad_group_options_are_refused(
    app: Flask, args: dict[str, Any], kind: type[Exception], text: str
) -> None:
    status = FlaskStatus(app)
    status.add_field("database", lambda: True)
    with pytest.raises(kind) as error:
        status.group("/readyz", **args)
    assert str(error.value) == text


@pytest.mark.parametrize(
    ("url", "text"),
    [
        (
            "/api/status",
            "The URL '/api/status' is already routed on {app!r}; give the group"
            " another url.",
        ),
        (
            "/livez",
            "This FlaskStatus already serves the group '/livez'; give the group"
            " another url.",
        ),
        (
            "/home",
            "The URL '/home' is already routed on {app!r}; give the group another url.",
        ),
        (
            "/api/status/database",
            "The URL '/api/status/database' is answered by the per-check route"
            " '/api/status/<key>' on {app!r}; give the group another url.",
        ),
        (
            "/st%61tus",
            "The group URL '/st%61tus' has a percent-escape, which Flask would match"
            " only as those very characters; write the path unescaped, such as"
            " '/api/status'.",
        ),
        (
            "/<name>",
            "The group URL '/<name>' has a variable part, a query or a fragment,"
            " which a status route can never answer; give a plain path such as"
            " '/api/status'.",
        ),
    ],
)
def test_urls_that_are_taken_or_not_plain_are_refused(url: str, text: str) -> None:
    app = Flask("app")
    app.add_url_rule("/home", "home", lambda: "home")
    status = FlaskStatus(app, per_check=True)
    status.add_field("database", lambda: True)
    status.group("/livez", include=[])
    with pytest.raises(ValueError) as error:
        status.group(url)
    assert str(error.value) == text.format(app=app)  # Flask's repr of the app


def test_a_per_check_route_clash_is_refused_in_either_order() -> None:
    app = Flask("app")
    readyz = FlaskStatus(app, url="/readyz", per_check=True)
    readyz.add_field("db", lambda: True)
    with pytest.raises(ValueError) as error:
        FlaskStatus(app, url="/readyz/db")
    assert str(error.value) == (
        "The URL '/readyz/db' is answered by the per-check route '/readyz/<key>'"
        f" on {app!r}; give this FlaskStatus another url."
    )
    other = Flask("other")
    FlaskStatus(other, url="/readyz/db")
    with pytest.raises(ValueError) as error:
        FlaskStatus(other, url="/readyz", per_check=True)
    assert str(error.value) == (
        f"The URL '/readyz/db' is already routed on {other!r}; give this"
        " FlaskStatus another url."
    )


def test_an_app_where_a_group_url_is_taken_gets_no_route_at_all() -> None:
    status = FlaskStatus()
    status.group("/readyz")
    app = Flask("app")
    app.add_url_rule("/readyz", "mine", lambda: "mine")
    with pytest.raises(ValueError) as error:
        status.init_app(app)
    assert str(error.value) == (
        f"The URL '/readyz' is already routed on {app!r}; give the group another url."
    )
    assert [r.rule for r in app.url_map.iter_rules() if r.endpoint != "static"] == [
        "/readyz"
    ]
    assert "status" not in app.extensions


def test_a_percent_escape_in_the_url_is_refused() -> None:
    with pytest.raises(ValueError) as error:
        FlaskStatus(url="/st%61tus")
    assert str(error.value) == (
        "The status URL '/st%61tus' has a percent-escape, which Flask would match"
        " only as those very characters; write the path unescaped, such as"
        " '/api/status'."
    )


@pytest.mark.parametrize("shown", [True, False])
def test_an_async_details_predicate_is_awaited(app: Flask, shown: bool) -> None:
    status = FlaskStatus(app)
    status.add_field("database", lambda: True)

    @status.details_when
    async def operator() -> bool:
        return shown

    body = {"status": "OK", "database": True} if shown else {"status": "OK"}
    assert get(app.test_client()) == (200, body)


@pytest.mark.parametrize("error", [SystemExit(3), KeyboardInterrupt()])
def test_a_predicate_that_raises_anything_shows_nothing(
    app: Flask, caplog: pytest.LogCaptureFixture, error: BaseException
) -> None:
    status = FlaskStatus(app)
    status.add_field("database", lambda: True)

    def operator() -> bool:
        raise error

    status.details_when(operator)
    assert get(app.test_client()) == (200, {"status": "OK"})
    assert [r.getMessage() for r in logged(app, caplog)] == [
        f"The details predicate {operator!r} of /api/status raised."
    ]


def test_flask_status_runs_a_group_and_a_per_check_route(app: Flask) -> None:
    status, _, billing = probes(app, per_check=True)
    counter = Counter()
    status.add_field("queue", counter)
    billing.result = False
    runner = app.test_cli_runner()
    result = runner.invoke(args=["status"])
    assert (result.exit_code, result.output) == (
        1,
        '/api/status {"status":"FAIL","version":"1.2.3","database":true,'
        '"billing":false,"queue":true}\n'
        '/livez {"status":"OK"}\n'
        '/readyz {"status":"OK","version":"1.2.3","database":true,"queue":true}\n',
    )
    assert counter.calls == 1  # one run for all three URLs
    result = runner.invoke(args=["status", "--url", "/readyz"])
    assert result.exit_code == 0
    result = runner.invoke(args=["status", "--url", "/readyz/database"])
    assert (result.exit_code, result.output) == (
        0,
        '/readyz/database {"status":"OK","database":true}\n',
    )
    result = runner.invoke(args=["status", "--url", "/api/status/billing"])
    assert (result.exit_code, result.output) == (
        1,
        '/api/status/billing {"status":"FAIL","billing":false}\n',
    )
    result = runner.invoke(args=["status", "--url", "/readyz/billing"])
    assert result.exit_code == 2  # not a field of /readyz
    assert "'/readyz/billing' is not served by flask-status" in result.output


SERVED = """
    import itertools, json, os, time
    from flask import Flask
    from flask_status import FlaskStatus

    app = Flask(__name__)
    status = FlaskStatus(app, fail_after=3)
    runs = itertools.count(1)
    flaps = itertools.count()

    def database():
        time.sleep(0.2)  # long enough for a round's probes to join one run
        return next(runs)

    def cache():  # fails every other run
        time.sleep(0.2)
        return next(flaps) % 2 == 0

    status.add_field("database", database)
    status.add_field("cache", cache)
    status.group("/livez", include=[])
    status.group("/readyz", public=True)

    @status.on_change
    def heard(change):
        with open(os.environ["HEARD"], "a") as heard:
            heard.write(json.dumps([change.url, change.check, change.new]) + "\\n")
"""


def test_one_instance_serves_three_probes_from_one_run_per_round(
    gunicorn: Gunicorn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    heard = tmp_path / "heard.jsonl"
    monkeypatch.setenv("HEARD", str(heard))
    _, port = gunicorn(SERVED, "--workers", "1", "--threads", "8")
    for round_ in range(1, 7):
        answers: dict[str, tuple[int, bytes]] = {}
        probes = [
            threading.Thread(
                target=lambda u=url, a=answers: a.update({u: http_get(port, u)})
            )
            for url in ("/livez", "/readyz", "/api/status")
        ]
        for probe in probes:
            probe.start()
        for probe in probes:
            probe.join(10)
        cache = "true" if round_ % 2 else "false"  # the flapping check
        assert answers == {
            "/livez": (200, b'{"status":"OK"}'),
            "/readyz": (200, b'{"status":"OK"}'),
            "/api/status": (
                200,
                f'{{"status":"OK","database":{round_},"cache":{cache}}}'.encode(),
            ),
        }
    changes = [json.loads(line) for line in heard.read_text().splitlines()]
    assert sorted(changes[:2]) == [  # whichever check settled first
        ["/api/status", "cache", "OK"],
        ["/api/status", "database", "OK"],
    ]
    assert changes[2:] == [["/api/status", None, "OK"], ["/readyz", None, "OK"]]


def test_a_group_is_refused_whole_once_an_app_has_served() -> None:
    status = FlaskStatus()
    status.add_field("db", lambda: True)
    first, second = Flask("first"), Flask("second")
    status.init_app(first)
    status.init_app(second)
    assert get(second.test_client())[0] == 200  # second has served
    with pytest.raises(RuntimeError) as error:
        status.group("/livez", include=[])
    assert str(error.value) == (
        f"{second!r} has served a request already, so it takes no new route"
        " such as '/livez'; add the group before the app serves, where you add"
        " its fields."
    )
    assert first.test_client().get("/livez").status_code == 404  # nowhere
    third = Flask("third")
    status.init_app(third)
    assert third.test_client().get("/livez").status_code == 404


def test_a_url_that_cannot_be_utf_8_is_refused_before_any_route() -> None:
    status = FlaskStatus()
    with pytest.raises(ValueError) as error:
        status.group("/x\udc80")
    assert str(error.value).startswith(
        "The group URL '/x\\udc80' has text that cannot be encoded as UTF-8"
    )
    app = Flask("app")
    status.init_app(app)
    assert get(app.test_client()) == (200, {"status": "OK"})


@pytest.mark.parametrize("kind", ["generator-based coroutine", "future"])
def test_a_predicate_returning_any_awaitable_shows_no_details_unless_true(
    app: Flask, kind: str
) -> None:
    status = FlaskStatus(app)
    status.add_field("database", lambda: True)

    @types.coroutine
    def later() -> Any:
        yield
        return False

    def operator() -> Any:
        if kind == "future":
            future = asyncio.get_event_loop_policy().new_event_loop().create_future()
            future.set_result(False)
            return future
        return later()

    status.details_when(operator)
    assert get(app.test_client()) == (200, {"status": "OK"})


@pytest.mark.parametrize(
    ("rule", "url"),
    [
        ("/files/<path:name>", "/files/x"),
        ("/files/<name>", "/files/x"),
        ("/<int:year>", "/2025"),
    ],
)
def test_a_url_a_variable_route_answers_is_refused(rule: str, url: str) -> None:
    app = Flask("app")
    app.add_url_rule(rule, "files", lambda **kwargs: "the app's")
    status = FlaskStatus(app)
    with pytest.raises(ValueError) as error:
        status.group(url)
    assert str(error.value) == (
        f"The URL {url!r} is answered by the route {rule!r} (endpoint 'files') on"
        f" {app!r}; a status route there would take that path from it. Give"
        " the group another url, or add it before that route."
    )
    with pytest.raises(ValueError, match=r"^The URL .* is answered by the route"):
        FlaskStatus(app, url=url)
    assert app.test_client().get(url).data == b"the app's"


def test_a_url_only_another_method_answers_is_free() -> None:
    app = Flask("app")
    app.add_url_rule("/files/<name>", "upload", lambda name: "", methods=["POST"])
    FlaskStatus(app).group("/files/x")
    assert app.test_client().get("/files/x").get_json() == {"status": "OK"}
