"""Checks that fail, hang or stampede: isolation, severity, timeouts,
concurrency, coalescing, caching, app context and async."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from typing import Any

import pytest
from flask import Flask
from flask import current_app
from flask import g
from flask.testing import FlaskClient

import flask_status
from flask_status import FlaskStatus


def get(client: FlaskClient, url: str = "/api/status") -> tuple[int, Any]:
    response = client.get(url)
    return response.status_code, response.get_json()


def workers() -> set[threading.Thread]:
    """The pool threads alive now; tests count those new since a snapshot."""
    return {t for t in threading.enumerate() if t.name == "flask-status"}


@pytest.fixture
def release() -> Any:
    """An event that hung checks wait for; set when the test ends."""
    event = threading.Event()
    yield event
    event.set()


def boom() -> bool:
    raise ConnectionError("db.internal:5432 password=hunter2 refused")


def test_raising_check_fails_without_leaking(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    status = FlaskStatus(app)
    status.add_field("version", "1.0")
    status.add_field("db", boom)
    status.add_field("cache", lambda: "warm")
    response = client.get("/api/status")
    assert response.status_code == 503
    assert (
        response.data == b'{"status":"FAIL","version":"1.0","db":false,"cache":"warm"}'
    )
    [record] = [r for r in caplog.records if r.name == app.name]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == (
        "Check 'db' failed: ConnectionError: db.internal:5432 password=hunter2 refused"
    )
    assert record.exc_info is not None
    assert record.exc_info[0] is ConnectionError


def test_false_fails_and_none_passes(app: Flask, client: FlaskClient) -> None:
    status = FlaskStatus(app)
    status.add_field("nothing", lambda: None)
    assert get(client) == (200, {"status": "OK", "nothing": None})
    status.add_field("down", lambda: False)
    assert get(client) == (503, {"status": "FAIL", "nothing": None, "down": False})


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"raw", "returned a bytes object that JSON cannot encode"),
        ({1, 2}, "returned a set object that JSON cannot encode"),
        (float("nan"), "returned a float object that JSON cannot encode"),
        ({"ratio": float("inf")}, "returned a dict object that JSON cannot encode"),
    ],
)
def test_unencodable_result_fails(
    app: Flask, client: FlaskClient, value: Any, reason: str
) -> None:
    FlaskStatus(app, show_errors=True).add_field("odd", lambda: value)
    assert get(client) == (
        503,
        {"status": "FAIL", "odd": False, "errors": {"odd": reason}},
    )


def test_severity(app: Flask, client: FlaskClient) -> None:
    status = FlaskStatus(app)
    status.add_field("db", lambda: True)
    status.add_field("cache", lambda: False, critical=False)
    assert get(client) == (200, {"status": "WARN", "db": True, "cache": False})
    status.add_field("queue", boom)
    assert get(client) == (
        503,
        {"status": "FAIL", "db": True, "cache": False, "queue": False},
    )


def test_field_decorator_takes_check_options(app: Flask, client: FlaskClient) -> None:
    status = FlaskStatus(app)

    @status.field("cache", critical=False)
    def cache() -> bool:
        return False

    @status.field(critical=False, timeout=0.5, cache=0)
    def queue() -> int:
        return 3

    assert get(client) == (200, {"status": "WARN", "cache": False, "queue": 3})


def test_errors_shown_only_when_asked(app: Flask) -> None:
    FlaskStatus(app, url="/hidden").add_field("db", boom)
    shown = FlaskStatus(app, url="/shown", show_errors=True)
    shown.add_field("db", boom)
    shown.add_field("cache", lambda: False, critical=False)
    client = app.test_client()
    assert client.get("/hidden").data == b'{"status":"FAIL","db":false}'
    assert get(client, "/shown") == (
        503,
        {
            "status": "FAIL",
            "db": False,
            "cache": False,
            "errors": {
                "db": "ConnectionError: db.internal:5432 password=hunter2 refused",
                "cache": "returned False",
            },
        },
    )


def test_show_errors_from_config(app: Flask, client: FlaskClient) -> None:
    app.config["STATUS_SHOW_ERRORS"] = True
    FlaskStatus(app).add_field("db", lambda: False)
    assert get(client) == (
        503,
        {"status": "FAIL", "db": False, "errors": {"db": "returned False"}},
    )


def test_status_key_follows_the_message(app: Flask) -> None:
    up = FlaskStatus(app, url="/up", message={"status": "UP", "service": "api"})
    plain = FlaskStatus(app, url="/plain", message="Running")
    for status in (up, plain):
        status.add_field("ok", lambda: True)
    client = app.test_client()
    assert get(client, "/up") == (200, {"status": "UP", "service": "api", "ok": True})
    assert get(client, "/plain") == (200, {"message": "Running", "ok": True})
    for status in (up, plain):
        status.add_field("db", lambda: False)
    assert get(client, "/up") == (
        503,
        {"status": "FAIL", "service": "api", "ok": True, "db": False},
    )
    assert get(client, "/plain") == (
        503,
        {"message": "Running", "ok": True, "db": False},
    )


def test_timeout_answers_while_check_hangs(
    app: Flask, client: FlaskClient, release: threading.Event, caplog: Any
) -> None:
    status = FlaskStatus(app, show_errors=True)
    status.add_field("hung", release.wait, timeout=0.05)
    status.add_field("fine", lambda: True)
    assert get(client) == (
        503,
        {
            "status": "FAIL",
            "hung": False,
            "fine": True,
            "errors": {"hung": "timed out after 0.05 s"},
        },
    )
    assert not release.is_set()  # the response did not wait for the check
    messages = [r.getMessage() for r in caplog.records if r.name == app.name]
    assert messages == [
        "Check 'hung' failed: timed out after 0.05 s; it has not returned yet"
    ]


def test_default_timeout_from_config_and_explicit_longer(
    app: Flask, release: threading.Event
) -> None:
    app.config["STATUS_TIMEOUT"] = 0.05
    status = FlaskStatus(app, show_errors=True)
    status.add_field("slow", lambda: release.wait(0.3) or "done", timeout=2)
    status.add_field("hung", release.wait, critical=False)
    start = time.monotonic()
    assert get(app.test_client()) == (
        200,
        {
            "status": "WARN",
            "slow": "done",
            "hung": False,
            "errors": {"hung": "timed out after 0.05 s"},
        },
    )
    assert time.monotonic() - start >= 0.3


def test_deadlines_count_from_the_start_of_the_request(
    app: Flask, release: threading.Event
) -> None:
    status = FlaskStatus(app, timeout=0.2)
    for name in ("a", "b", "c"):
        status.add_field(name, release.wait)
    start = time.monotonic()
    assert get(app.test_client()) == (
        503,
        {"status": "FAIL", "a": False, "b": False, "c": False},
    )
    assert time.monotonic() - start < 0.45  # about 0.2 s, not 0.6 s


def test_checks_of_a_request_run_concurrently(app: Flask, client: FlaskClient) -> None:
    barrier = threading.Barrier(5, timeout=2)
    status = FlaskStatus(app, timeout=3)
    for n in range(5):
        status.add_field(f"c{n}", lambda: barrier.wait() >= 0)
    assert get(client) == (200, {"status": "OK", **{f"c{n}": True for n in range(5)}})


def test_checks_behind_a_slow_one_get_their_own_worker(
    app: Flask, client: FlaskClient
) -> None:
    barrier = threading.Barrier(2, timeout=2)
    status = FlaskStatus(app, timeout=3)
    status.add_field("quick", lambda: True)
    status.add_field("slow", lambda: barrier.wait() >= 0)  # needs "behind" to run
    status.add_field("behind", lambda: barrier.wait() >= 0)
    assert get(client) == (
        200,
        {"status": "OK", "quick": True, "slow": True, "behind": True},
    )


def test_concurrent_requests_share_one_run(
    app: Flask, release: threading.Event
) -> None:
    calls: list[int] = []
    arrived = threading.Semaphore(0)
    app.before_request(arrived.release)

    def check() -> bool:
        calls.append(1)
        return release.wait(5)

    FlaskStatus(app, timeout=5).add_field("db", check)
    results: list[tuple[int, Any]] = []
    clients = [
        threading.Thread(target=lambda: results.append(get(app.test_client())))
        for _ in range(8)
    ]
    for client in clients:
        client.start()
    for _ in clients:
        assert arrived.acquire(timeout=5)
    time.sleep(0.2)  # let the last arrivals reach the run
    release.set()
    for client in clients:
        client.join()
    assert results == [(200, {"status": "OK", "db": True})] * 8
    assert calls == [1]


def test_hung_check_ties_up_one_thread(app: Flask, release: threading.Event) -> None:
    calls: list[int] = []

    def hung() -> bool:
        calls.append(1)
        return release.wait()

    FlaskStatus(app, timeout=0.02).add_field("hung", hung)
    before = workers()

    def hammer() -> None:
        client = app.test_client()
        for _ in range(10):
            assert get(client) == (503, {"status": "FAIL", "hung": False})

    clients = [threading.Thread(target=hammer) for _ in range(4)]
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    assert calls == [1]
    assert len(workers() - before) <= 1  # idle workers of earlier tests are reused


def test_cache_serves_recent_results(app: Flask, client: FlaskClient) -> None:
    calls: list[int] = []

    def n() -> int:
        calls.append(1)
        return len(calls)

    def fresh() -> bool:
        calls.append(1)
        return True

    status = FlaskStatus(app, cache=0.3)
    status.add_field("n", n)
    status.add_field("fresh", fresh, cache=0)
    assert get(client) == (200, {"status": "OK", "n": 1, "fresh": True})
    assert get(client) == (200, {"status": "OK", "n": 1, "fresh": True})
    assert len(calls) == 3  # "fresh" ran twice, "n" once
    time.sleep(0.35)
    assert get(client) == (200, {"status": "OK", "n": 4, "fresh": True})


def test_failures_are_cached_too(app: Flask, client: FlaskClient) -> None:
    calls: list[int] = []

    def flaky() -> bool:
        calls.append(1)
        raise RuntimeError("down")

    app.config["STATUS_CACHE"] = 60
    FlaskStatus(app).add_field("db", flaky)
    assert get(client) == (503, {"status": "FAIL", "db": False})
    assert get(client) == (503, {"status": "FAIL", "db": False})
    assert calls == [1]


def test_base_exception_does_not_wedge_a_check(app: Flask, client: FlaskClient) -> None:
    calls: list[int] = []

    def exits() -> bool:
        calls.append(1)
        raise SystemExit(3)

    FlaskStatus(app, show_errors=True).add_field("exits", exits)
    for _ in range(2):
        assert get(client) == (
            503,
            {"status": "FAIL", "exits": False, "errors": {"exits": "SystemExit: 3"}},
        )
    assert calls == [1, 1]


def test_broken_exception_still_settles(app: Flask, client: FlaskClient) -> None:
    class Broken(Exception):
        def __str__(self) -> str:
            raise ValueError("no text")

    def check() -> bool:
        raise Broken

    FlaskStatus(app).add_field("broken", check)
    assert get(client) == (503, {"status": "FAIL", "broken": False})
    assert get(client) == (503, {"status": "FAIL", "broken": False})


def test_checks_run_in_an_app_context(app: Flask, client: FlaskClient) -> None:
    app.config["REGION"] = "eu-west"
    status = FlaskStatus(app)

    @status.field
    def region() -> str:
        g.seen = True
        return str(current_app.config["REGION"])

    assert get(client) == (200, {"status": "OK", "region": "eu-west"})


def test_async_checks(app: Flask, client: FlaskClient) -> None:
    status = FlaskStatus(app, show_errors=True)

    @status.field
    async def ping() -> str:
        await asyncio.sleep(0.01)
        return current_app.name

    @status.field(critical=False)
    async def broken() -> bool:
        raise OSError("no route")

    assert get(client) == (
        200,
        {
            "status": "WARN",
            "ping": app.name,
            "broken": False,
            "errors": {"broken": "OSError: no route"},
        },
    )


def test_unauthenticated_request_runs_no_check(app: Flask, client: FlaskClient) -> None:
    calls: list[int] = []

    def deny(view: Any) -> Any:
        return lambda: ("no", 401)

    FlaskStatus(app, authenticator=deny).add_field("db", lambda: calls.append(1))
    assert client.get("/api/status").status_code == 401
    assert calls == []


def test_one_instance_two_apps_share_no_runs() -> None:
    status = FlaskStatus(cache=60)
    status.add_field("app", lambda: current_app.name)
    one, two = Flask("one"), Flask("two")
    status.init_app(one)
    status.init_app(two)
    assert get(one.test_client()) == (200, {"status": "OK", "app": "one"})
    assert get(two.test_client()) == (200, {"status": "OK", "app": "two"})


def test_workers_are_bounded(app: Flask, release: threading.Event) -> None:
    status = FlaskStatus(app, workers=2, timeout=0.1)
    started: list[str] = []
    for name in ("a", "b", "c"):
        status.add_field(name, functools.partial(hang, started, name, release))
    before = workers()
    assert get(app.test_client()) == (
        503,
        {"status": "FAIL", "a": False, "b": False, "c": False},
    )
    # c waited for a worker and was given up at its deadline: it never started.
    assert sorted(started) == ["a", "b"]
    assert len(workers() - before) <= 2


def hang(started: list[str], name: str, release: threading.Event) -> bool:
    started.append(name)
    return release.wait()


def test_idle_workers_go_away(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flask_status._Pool, "idle", 0.05)
    before = workers()
    FlaskStatus(app).add_field("db", lambda: True)
    assert get(client) == (200, {"status": "OK", "db": True})
    deadline = time.monotonic() + 5
    while workers() - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert workers() - before == set()


def test_failing_teardown_does_not_kill_workers(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    @app.teardown_appcontext
    def broken_teardown(error: BaseException | None) -> None:
        if threading.current_thread().name == "flask-status":  # not the request's
            raise RuntimeError("session cleanup failed")

    FlaskStatus(app, workers=1).add_field("db", lambda: True)
    for _ in range(3):  # each request needs the single worker alive
        assert get(client) == (200, {"status": "OK", "db": True})
    assert any(
        r.getMessage() == "The application context of a status check failed to close."
        for r in caplog.records
    )


def test_field_added_during_a_request_waits_for_the_next(
    app: Flask, client: FlaskClient
) -> None:
    status = FlaskStatus(app)
    added: list[bool] = []

    @status.field
    def registers() -> bool:  # runs while its request waits for it
        if not added:
            added.append(True)
            status.add_field("late", lambda: "here")
        return True

    assert get(client) == (200, {"status": "OK", "registers": True})
    assert get(client) == (200, {"status": "OK", "registers": True, "late": "here"})


def test_no_callables_uses_no_worker(app: Flask, client: FlaskClient) -> None:
    before = workers()
    FlaskStatus(app).add_field("version", "1.0")
    assert get(client) == (200, {"status": "OK", "version": "1.0"})
    assert workers() - before == set()


@pytest.mark.parametrize(
    ("options", "kind", "text"),
    [
        (
            {"timeout": 0},
            ValueError,
            "The timeout 0 is out of range; give a finite number of seconds above 0.",
        ),
        (
            {"timeout": "1"},
            TypeError,
            "The timeout must be a number of seconds, not '1'.",
        ),
        (
            {"cache": -1},
            ValueError,
            "The cache -1 is out of range; give a finite number of seconds from 0.",
        ),
        (
            {"critical": "yes"},
            TypeError,
            "The critical option must be True or False, not 'yes'.",
        ),
    ],
)
def test_bad_check_options(
    app: Flask, options: dict[str, Any], kind: type[Exception], text: str
) -> None:
    with pytest.raises(kind) as error:
        FlaskStatus(app).add_field("db", lambda: True, **options)
    assert str(error.value) == text


def test_options_on_a_static_value_are_refused(app: Flask) -> None:
    with pytest.raises(TypeError) as error:
        FlaskStatus(app).add_field("version", "1.0", timeout=1)
    assert str(error.value) == (
        "critical, timeout, cache and every apply to checks, but field 'version'"
        " is the static value '1.0'; pass a callable instead."
    )


@pytest.mark.parametrize(
    ("key", "value", "kind", "text"),
    [
        (
            "STATUS_TIMEOUT",
            float("inf"),
            ValueError,
            "The config key STATUS_TIMEOUT inf is out of range; give a finite number"
            " of seconds above 0.",
        ),
        (
            "STATUS_TIMEOUT",
            "fast",
            TypeError,
            "The config key STATUS_TIMEOUT must be a number of seconds, not 'fast'."
            " Config values from environment variables are strings:"
            " app.config.from_prefixed_env() parses numbers and booleans.",
        ),
        (
            "STATUS_TIMEOUT",
            1e10,
            ValueError,
            "The config key STATUS_TIMEOUT 10000000000.0 is more seconds than Python"
            f" can wait (threading.TIMEOUT_MAX, {threading.TIMEOUT_MAX:.0f});"
            " give fewer.",
        ),
        (
            "STATUS_CACHE",
            10**400,
            ValueError,
            "The config key STATUS_CACHE 1" + "0" * 400 + " is more seconds than"
            f" Python can wait (threading.TIMEOUT_MAX, {threading.TIMEOUT_MAX:.0f});"
            " give fewer.",
        ),
        (
            "STATUS_WORKERS",
            0,
            ValueError,
            "The config key STATUS_WORKERS 0 must be 1 or more.",
        ),
        (
            "STATUS_WORKERS",
            2.5,
            TypeError,
            "The config key STATUS_WORKERS must be an int, not 2.5.",
        ),
        (
            "STATUS_SHOW_ERRORS",
            "yes",
            TypeError,
            "The config key STATUS_SHOW_ERRORS must be True or False, not 'yes'."
            " Config values from environment variables are strings:"
            " app.config.from_prefixed_env() parses numbers and booleans.",
        ),
        (
            "STATUS_URL",
            "/status/<name>",
            ValueError,
            "The config key STATUS_URL '/status/<name>' has a variable part, a query"
            " or a fragment, which a status route can never answer; give a plain"
            " path such as '/api/status'.",
        ),
        (
            "STATUS_MESSAGE",
            {"checks": {}},
            ValueError,
            "The config key STATUS_MESSAGE has the key 'checks', which the status"
            " endpoint writes itself; rename that key.",
        ),
        (
            "STATUS_LOG",
            "all",
            ValueError,
            "The config key STATUS_LOG 'all' is not a log mode; give 'transitions'"
            " (log when a check starts failing and when it recovers) or 'every'"
            " (each failed run).",
        ),
    ],
)
def test_bad_config_fails_at_init_app(
    app: Flask, key: str, value: Any, kind: type[Exception], text: str
) -> None:
    app.config[key] = value
    with pytest.raises(kind) as error:
        FlaskStatus(app)
    assert str(error.value) == text


def test_bad_constructor_option_fails_at_once() -> None:
    with pytest.raises(ValueError, match=r"^The cache -0.5 is out of range"):
        FlaskStatus(cache=-0.5)
