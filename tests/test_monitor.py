"""The monitor: a run's deadline, timeouts, late runs that answer at once,
runs that requests share, the workers bound, and failures logged before
the responses that wait for them."""

from __future__ import annotations

import functools
import json
import logging
import statistics
import threading
import time
from typing import Any
from typing import Callable

from flask import Flask
from flask import current_app
from flask.testing import FlaskClient
from helpers import StalledLogHandler
from helpers import get
from helpers import logged
from helpers import status_threads
from helpers import wait_for

from flask_status import FlaskStatus


def hang(started: list[str], name: str, gate: threading.Event) -> bool:
    started.append(name)
    return gate.wait()


def sleeper(seconds: float) -> Callable[[], str]:
    """A check that takes ``seconds`` and passes with "done"."""

    def check() -> str:
        time.sleep(seconds)
        return "done"

    return check


def counted(calls: list[str], check: Callable[[], Any]) -> Callable[[], Any]:
    """``check``, noting each call in ``calls``."""

    def wrapper() -> Any:
        calls.append("call")
        return check()

    return wrapper


def not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


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
            "errors": {"hung": "timed out after 0.05 s; still running"},
        },
    )
    assert not gate.is_set()  # the response did not wait for the check

    def messages() -> list[str]:
        return [r.getMessage() for r in logged(app, caplog)]

    # A worker logs it, so that no request waits for a log handler.
    wait_for(messages, "the timeout to be logged")
    assert messages() == [
        "Check 'hung' of /api/status failed: timed out after 0.05 s; still running"
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
            "errors": {"hung": "timed out after 0.05 s; still running"},
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
                "hung1": "timed out after 0.3 s; still running",
                "hung2": "timed out after 0.3 s; still running",
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
        "Check 'hung1' of /api/status failed: timed out after 0.2 s; still running",
        "Check 'hung2' of /api/status failed: timed out after 0.2 s; still running",
        "Check 'queued' of /api/status failed: timed out after 0.2 s waiting for a"
        " worker; all 2 were busy",  # it never started: nothing to return
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
        "Check 'hung' of /api/status failed: timed out after 0.3 s; still running"
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
        assert handler.messages == ["Check 'db' of /api/status failed: returned False"]
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
    assert handler.messages == ["Check 'db' of /api/status failed: returned False"]


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


def test_a_run_that_ends_after_its_deadline_timed_out(app: Flask) -> None:
    # The request first waits for "slow", which is within its 2 s; "quick" ended
    # at 0.3 s, long after its own deadline at 0.1 s: that is a timeout.
    status = FlaskStatus(app, show_errors=True)
    status.add_field("slow", sleeper(0.5), timeout=2)
    status.add_field("quick", sleeper(0.3), timeout=0.1)
    assert get(app.test_client()) == (
        503,
        {
            "status": "FAIL",
            "slow": "done",
            "quick": False,
            "errors": {"quick": "timed out after 0.1 s"},
        },
    )


def test_a_check_slower_than_its_timeout_never_passes(app: Flask) -> None:
    # A request joining a run in flight gets the run's deadline, not a new one.
    FlaskStatus(app, timeout=0.3).add_field("slow", sleeper(0.5))
    answers: list[tuple[int, Any]] = []

    def poll() -> None:
        client = app.test_client()
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            answers.append(get(client))
            time.sleep(0.02)

    pollers = [threading.Thread(target=poll) for _ in range(4)]
    for poller in pollers:
        poller.start()
    for poller in pollers:
        poller.join()
    assert len(answers) >= 8
    assert [a for a in answers if a != (503, {"status": "FAIL", "slow": False})] == []


def test_a_late_run_answers_at_once_until_it_returns(
    app: Flask, gate: threading.Event
) -> None:
    calls: list[str] = []
    hung = counted(calls, lambda: gate.wait(5))
    FlaskStatus(app, show_errors=True).add_field("hung", hung, timeout=0.2)
    client = app.test_client()
    failed = {"status": "FAIL", "hung": False}
    # The request that gives the run up, and those after it: one wording.
    late = (503, {**failed, "errors": {"hung": "timed out after 0.2 s; still running"}})
    assert get(client) == late
    took = []
    for _ in range(10):
        start = time.monotonic()
        answer = get(client)
        took.append(time.monotonic() - start)
        assert answer == late
    # Well under 0.05 s each; the median, so one slow slice of a shared
    # machine does not decide, and none waits the 0.2 s again.
    assert statistics.median(took) < 0.05
    assert max(took) < 0.2
    assert calls == ["call"]  # and none starts a second run beside the hung one
    gate.set()  # the check returns: the next request starts a fresh run
    deadline = time.monotonic() + 2
    answer = get(client)
    while answer == late and time.monotonic() < deadline:
        time.sleep(0.01)
        answer = get(client)
    assert answer == (200, {"status": "OK", "hung": True})
    assert calls == ["call", "call"]


def test_hung_checks_never_starve_a_healthy_one(
    app: Flask, gate: threading.Event
) -> None:
    # Two hung checks hold both workers until their deadlines at 0.1 s; the
    # quick check, with 0.8 s, gets a worker then, and on every request after.
    status = FlaskStatus(app, workers=2, show_errors=True)
    status.add_field("hung1", gate.wait, timeout=0.1)
    status.add_field("hung2", gate.wait, timeout=0.1)
    status.add_field("quick", lambda: "up")
    before = status_threads()
    client = app.test_client()
    answers = [get(client) for _ in range(5)]
    failed = {"status": "FAIL", "hung1": False, "hung2": False, "quick": "up"}
    timed_out = "timed out after 0.1 s; still running"
    assert answers[0] == (
        503,
        {**failed, "errors": {"hung1": timed_out, "hung2": timed_out}},
    )
    late = timed_out
    assert (
        answers[1:] == [(503, {**failed, "errors": {"hung1": late, "hung2": late}})] * 4
    )
    assert len(status_threads() - before) <= 2 + 2  # workers + hung checks


def test_a_raising_log_filter_still_settles_the_run(
    app: Flask, client: FlaskClient
) -> None:
    raised: list[str] = []

    class Broken(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            raised.append(record.getMessage())
            raise RuntimeError("the log is full")

    broken = Broken()
    calls: list[str] = []
    FlaskStatus(app, workers=1).add_field("db", counted(calls, lambda: False))
    app.logger.addFilter(broken)
    try:
        for _ in range(3):  # the first run's log raises; each is a fresh run
            assert get(client) == (503, {"status": "FAIL", "db": False})
    finally:
        app.logger.removeFilter(broken)
    assert raised == ["Check 'db' of /api/status failed: returned False"]
    assert calls == ["call"] * 3


def test_a_result_changed_after_its_run_settled_changes_nothing(
    app: Flask, client: FlaskClient
) -> None:
    shared: list[Any] = ["replica-1"]
    FlaskStatus(app, cache=10).add_field("replicas", lambda: shared)
    first = client.get("/api/status")
    assert (first.status_code, first.data) == (
        200,
        b'{"status":"OK","replicas":["replica-1"]}',
    )
    shared.append("replica-2")
    shared.append({"a set"})
    shared.append(float("nan"))
    for _ in range(3):
        later = client.get("/api/status")
        assert (later.status_code, later.data) == (200, first.data)
        json.loads(later.data, parse_constant=not_json)


def test_a_result_too_deep_to_encode_fails_only_its_check(
    app: Flask, client: FlaskClient
) -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    status = FlaskStatus(app, show_errors=True)
    status.add_field("deep", lambda: deep)
    status.add_field("fine", lambda: "up")
    assert get(client) == (
        503,
        {
            "status": "FAIL",
            "deep": False,
            "fine": "up",
            "errors": {"deep": "returned a list object that JSON cannot encode"},
        },
    )
