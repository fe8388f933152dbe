"""Checks that hang or stampede: timeouts, concurrency, coalescing and the
pool of workers."""

from __future__ import annotations

import functools
import threading
import time
from typing import Any

import pytest
from conftest import StalledLogHandler
from conftest import logged
from conftest import status_threads
from conftest import wait_for
from flask import Flask
from flask import current_app
from flask.testing import FlaskClient

import flask_status
from flask_status import FlaskStatus


def get(client: FlaskClient, url: str = "/api/status") -> tuple[int, Any]:
    response = client.get(url)
    return response.status_code, response.get_json()


def test_timeout_answers_while_check_hangs(
    app: Flask, client: FlaskClient, gate: threading.Event, caplog: Any
) -> None:
    status = FlaskStatus(app, show_errors=True)
    status.add_field("hung", gate.wait, timeout=0.05)
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
    assert not gate.is_set()  # the response did not wait for the check

    def messages() -> list[str]:
        return [r.getMessage() for r in logged(app, caplog)]

    # A worker logs it, so that no request waits for a log handler.
    wait_for(messages, "the timeout to be logged")
    assert messages() == [
        "Check 'hung' failed: timed out after 0.05 s; it has not returned yet"
    ]


def test_default_timeout_from_config_and_explicit_longer(
    app: Flask, gate: threading.Event
) -> None:
    app.config["STATUS_TIMEOUT"] = 0.05
    status = FlaskStatus(app, show_errors=True)
    status.add_field("slow", lambda: gate.wait(0.3) or "done", timeout=2)
    status.add_field("hung", gate.wait, critical=False)
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


def test_each_deadline_counts_from_the_start_of_its_run(
    app: Flask, gate: threading.Event
) -> None:
    status = FlaskStatus(app, timeout=0.2)
    for name in ("a", "b", "c"):
        status.add_field(name, gate.wait)
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


def test_concurrent_requests_share_one_run(app: Flask, gate: threading.Event) -> None:
    calls: list[int] = []
    arrived = threading.Semaphore(0)
    app.before_request(arrived.release)

    def check() -> bool:
        calls.append(1)
        return gate.wait(5)

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
    time.sleep(0.5)  # let the last arrivals reach the run
    gate.set()
    for client in clients:
        client.join()
    assert results == [(200, {"status": "OK", "db": True})] * 8
    assert calls == [1]


def test_hung_check_ties_up_one_thread(app: Flask, gate: threading.Event) -> None:
    calls: list[int] = []

    def hung() -> bool:
        calls.append(1)
        return gate.wait()

    FlaskStatus(app, timeout=0.2).add_field("hung", hung)
    before = status_threads()

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
    # The hung call's thread, and one more (or an idle one from an earlier
    # test) that logged the timeout.
    assert len(status_threads() - before) <= 2


def test_one_instance_two_apps_share_no_runs() -> None:
    status = FlaskStatus(cache=60)
    status.add_field("app", lambda: current_app.name)
    one, two = Flask("one"), Flask("two")
    status.init_app(one)
    status.init_app(two)
    assert get(one.test_client()) == (200, {"status": "OK", "app": "one"})
    assert get(two.test_client()) == (200, {"status": "OK", "app": "two"})


def test_workers_are_bounded(app: Flask, gate: threading.Event) -> None:
    status = FlaskStatus(app, workers=2, timeout=0.1)
    started: list[str] = []
    for name in ("a", "b", "c"):
        status.add_field(name, functools.partial(hang, started, name, gate))
    before = status_threads()
    assert get(app.test_client()) == (
        503,
        {"status": "FAIL", "a": False, "b": False, "c": False},
    )
    # c waited for a worker and was given up at its deadline: it never started.
    assert sorted(started) == ["a", "b"]
    # The two hung calls, and threads that log the three timeouts: no more
    # than the bound, workers plus one per hung check.
    assert len(status_threads() - before) <= 2 + 2


def hang(started: list[str], name: str, gate: threading.Event) -> bool:
    started.append(name)
    return gate.wait()


def test_a_check_no_worker_was_free_for_says_so(
    app: Flask, client: FlaskClient, gate: threading.Event
) -> None:
    status = FlaskStatus(app, workers=2, timeout=0.3, show_errors=True)
    status.add_field("hung1", gate.wait)
    status.add_field("hung2", gate.wait)
    status.add_field("quick", lambda: True)
    assert get(client) == (
        503,
        {
            "status": "FAIL",
            "hung1": False,
            "hung2": False,
            "quick": False,
            "errors": {
                "hung1": "timed out after 0.3 s",
                "hung2": "timed out after 0.3 s",
                "quick": "timed out after 0.3 s waiting for a worker; all 2 were busy",
            },
        },
    )
    # The hung runs are past their deadlines: they hold no worker any more.
    assert get(client) == (
        503,
        {
            "status": "FAIL",
            "hung1": False,
            "hung2": False,
            "quick": True,
            "errors": {
                "hung1": "timed out after 0.3 s; still running",
                "hung2": "timed out after 0.3 s; still running",
            },
        },
    )


def test_the_log_of_a_check_that_never_started_does_not_say_it_runs(
    app: Flask, client: FlaskClient, gate: threading.Event, caplog: Any
) -> None:
    status = FlaskStatus(app, workers=2, timeout=0.2)
    status.add_field("hung1", gate.wait)
    status.add_field("hung2", gate.wait)
    status.add_field("queued", lambda: True)
    assert get(client)[0] == 503

    def messages() -> list[str]:
        return sorted(r.getMessage() for r in logged(app, caplog))

    wait_for(lambda: len(messages()) == 3, "the timeouts to be logged")
    assert messages() == [
        "Check 'hung1' failed: timed out after 0.2 s; it has not returned yet",
        "Check 'hung2' failed: timed out after 0.2 s; it has not returned yet",
        "Check 'queued' failed: timed out after 0.2 s waiting for a worker;"
        " all 2 were busy",  # it never started: nothing to return
    ]


def test_a_stalled_log_handler_holds_no_response_past_its_deadline(
    app: Flask, client: FlaskClient, gate: threading.Event
) -> None:
    """The request that gives a hung run up leaves its log line to a worker:
    a handler sending mail, say, does not hold the response."""
    FlaskStatus(app, timeout=0.3).add_field("hung", gate.wait)
    handler = StalledLogHandler(gate)  # stalls until released, at most 2 s
    app.logger.addHandler(handler)
    try:
        start = time.monotonic()
        assert get(client) == (503, {"status": "FAIL", "hung": False})
        assert time.monotonic() - start < 1.5  # about 0.3 s, not 2.3 s
        gate.set()
        wait_for(lambda: handler.messages, "the timeout to be logged")
    finally:
        app.logger.removeHandler(handler)
    assert handler.messages == [
        "Check 'hung' failed: timed out after 0.3 s; it has not returned yet"
    ]


def test_a_failure_is_logged_before_its_response(
    app: Flask, client: FlaskClient, gate: threading.Event
) -> None:
    """A test reading its log right after the response finds the line, even
    when the worker is slow to write it, and another check settles last."""
    status = FlaskStatus(app)
    status.add_field("db", lambda: False)
    status.add_field("cache", lambda: True)  # run by another worker meanwhile
    handler = StalledLogHandler(gate, stall=0.2)  # a slow handler, never released
    app.logger.addHandler(handler)
    try:
        assert get(client) == (503, {"status": "FAIL", "db": False, "cache": True})
        assert handler.messages == ["Check 'db' failed: returned False"]
    finally:
        app.logger.removeHandler(handler)


def test_a_stalled_log_handler_holds_a_response_no_longer_than_the_timeout(
    app: Flask, client: FlaskClient, gate: threading.Event
) -> None:
    FlaskStatus(app, timeout=0.3).add_field("db", lambda: False)
    handler = StalledLogHandler(gate)  # stalls until released, at most 2 s
    app.logger.addHandler(handler)
    try:
        start = time.monotonic()
        assert get(client) == (503, {"status": "FAIL", "db": False})
        assert 0.25 < time.monotonic() - start < 1.5  # about 0.3 s, not 2 s
        assert handler.messages == []
        gate.set()
        wait_for(lambda: handler.messages, "the failure to be logged")
    finally:
        app.logger.removeHandler(handler)
    assert handler.messages == ["Check 'db' failed: returned False"]


def test_idle_workers_go_away(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flask_status._Pool, "idle", 0.05)
    before = status_threads()
    FlaskStatus(app).add_field("db", lambda: True)
    assert get(client) == (200, {"status": "OK", "db": True})
    deadline = time.monotonic() + 5
    while status_threads() - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert status_threads() - before == set()


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
    message = "The application context of a status check failed to close."
    wait_for(  # the worker closes its context after the run settled
        lambda: any(r.getMessage() == message for r in caplog.records),
        "the failed teardown to be logged",
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
    before = status_threads()
    FlaskStatus(app).add_field("version", "1.0")
    assert get(client) == (200, {"status": "OK", "version": "1.0"})
    assert status_threads() - before == set()
