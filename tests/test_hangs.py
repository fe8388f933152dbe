"""A hung check turns failing: while a run is late, each further timeout it
stays late counts as one more failed run, so that a hung dependency trips
``fail_after`` after about ``fail_after`` timeouts, on request, on a schedule
and with a cache, and against real Redis and PostgreSQL servers stopped with
SIGSTOP. The late call's return counts no more."""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from typing import Any
from typing import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from helpers import get
from helpers import logged
from helpers import prometheus
from helpers import wait_for
from servers import PASSWORD
from servers import Postgres
from servers import frozen
from servers import server_port

from flask_status import FlaskStatus
from flask_status import StatusChange
from flask_status import redis_check
from flask_status import sql_check

HEALTH = {"Accept": "application/health+json"}
LATE = "timed out after 0.2 s; still running"


class Hanging:
    """A check that passes until ``hang`` is set, then waits for ``release``
    (or the test's end); ``returned`` counts the calls that came back."""

    def __init__(self, release: threading.Event) -> None:
        self.hang = threading.Event()
        self.release = release
        self.calls = 0
        self.returned = 0

    def __call__(self) -> bool:
        self.calls += 1
        if self.hang.is_set():
            self.release.wait(30)
        self.returned += 1
        return True


def tolerated() -> dict[str, Any]:
    return {"status": "OK", "db": False, "errors": {"db": LATE}}


FAILED = (503, {"status": "FAIL", "db": False, "errors": {"db": LATE}})


def failures(client: FlaskClient) -> int:
    """consecutiveFailures of ``db``, from a new request."""
    body = client.get("/api/status", headers=HEALTH).get_json()
    return int(body["checks"]["db"][0]["consecutiveFailures"])


def probe_until_failing(client: FlaskClient, every: float = 0.05) -> list[Any]:
    """Probe until the answer is 503; the answers, the 503 last."""
    answers: list[Any] = []
    deadline = time.monotonic() + 10
    while not answers or answers[-1][0] != 503:
        assert time.monotonic() < deadline, f"still not failing: {answers[-3:]}"
        answers.append(get(client))
        time.sleep(every)
    return answers


def listen(status: FlaskStatus) -> list[StatusChange]:
    """The changes a listener of ``status`` hears, the first results aside."""
    heard: list[StatusChange] = []

    def hear(change: StatusChange) -> None:
        if change.old is not None:
            heard.append(change)

    status.on_change(hear)
    return heard


def hang_of(
    app: Flask, check: Callable[[], object], **options: Any
) -> tuple[FlaskClient, list[StatusChange]]:
    """An endpoint whose ``db`` check is ``check``, with a timeout of 0.2 s
    and ``options`` (failing after three timeouts unless they say else);
    its client, and the changes its listener hears."""
    status = FlaskStatus(app, timeout=0.2, show_errors=True)
    status.add_field("db", check, **{"fail_after": 3, **options})
    return app.test_client(), listen(status)


def test_a_hung_check_on_request_fails_after_fail_after_timeouts(
    app: Flask, gate: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    db = Hanging(gate)
    client, heard = hang_of(app, db)
    assert get(client) == (200, {"status": "OK", "db": True})
    db.hang.set()
    started = time.monotonic()
    answers = probe_until_failing(client)
    took = time.monotonic() - started
    assert answers[-1] == FAILED
    assert set(map(str, answers[:-1])) == {str((200, tolerated()))}
    assert took >= 3 * 0.2  # three timeouts, each one failed run
    assert db.calls == 2  # never started again beside the hung call
    assert failures(client) >= 3
    wait_for(lambda: len(heard) == 2, "the listener to hear the failure")
    assert [(c.check, c.old, c.new, c.reason) for c in heard] == [
        ("db", "OK", "FAIL", LATE),
        (None, "OK", "FAIL", None),
    ]
    metrics = prometheus(client, "/api/status?format=prometheus")
    assert 'flask_status_check_up{url="/api/status",check="db"} 0' in metrics
    line = "Check 'db' of /api/status failed: " + LATE
    wait_for(
        lambda: [r.getMessage() for r in logged(app, caplog)] == [line],
        "the failure to be logged once",
    )
    assert logged(app, caplog)[0].levelno == logging.ERROR


def test_each_request_counts_at_most_one_more_failed_run(
    app: Flask, gate: threading.Event
) -> None:
    db = Hanging(gate)
    client, _ = hang_of(app, db)
    assert get(client) == (200, {"status": "OK", "db": True})
    db.hang.set()
    assert get(client) == (200, tolerated())  # waits out the deadline: 1
    time.sleep(1.0)  # five timeouts pass unseen
    assert get(client) == (200, tolerated())  # 2: one more, not five
    assert get(client) == (200, tolerated())  # within the same timeout: still 2
    time.sleep(0.25)
    assert get(client) == FAILED  # 3


def test_the_late_call_returning_counts_no_more_and_a_fresh_run_follows(
    app: Flask, gate: threading.Event
) -> None:
    db = Hanging(gate)
    client, heard = hang_of(app, db, fail_after=2)
    assert get(client) == (200, {"status": "OK", "db": True})
    db.hang.set()
    probe_until_failing(client)
    counted = failures(client)
    db.hang.clear()
    gate.set()
    wait_for(lambda: db.returned == 2, "the hung call to return")
    assert failures(client) == 0  # this request ran the check afresh: it passed
    assert counted >= 2
    assert get(client) == (200, {"status": "OK", "db": True})
    wait_for(lambda: len(heard) == 4, "the listener to hear the recovery")
    assert [(c.check, c.old, c.new) for c in heard] == [
        ("db", "OK", "FAIL"),
        (None, "OK", "FAIL"),
        ("db", "FAIL", "OK"),
        (None, "FAIL", "OK"),
    ]


def test_a_hung_scheduled_check_fails_without_requests(
    app: Flask, gate: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    db = Hanging(gate)
    client, heard = hang_of(app, db, every=0.1)
    assert get(client) == (200, {"status": "OK", "db": True})
    db.hang.set()
    wait_for(lambda: len(heard) == 2, "the scheduler to count the hang as failing")
    assert [(c.check, c.old, c.new, c.reason) for c in heard] == [
        ("db", "OK", "FAIL", LATE),
        (None, "OK", "FAIL", None),
    ]
    assert get(client) == FAILED
    assert db.calls >= 2 and db.calls == db.returned + 1  # one call hangs
    db.hang.clear()
    gate.set()  # the call returns: the schedule resumes, and passes
    wait_for(lambda: len(heard) == 4, "the schedule to resume and recover")
    assert get(client) == (200, {"status": "OK", "db": True})
    lines = [r.getMessage() for r in logged(app, caplog)]
    assert lines == [
        "Check 'db' of /api/status failed: " + LATE,
        "Check 'db' of /api/status passes again.",
    ]


def test_a_hung_cached_check_fails_after_fail_after_timeouts(
    app: Flask, gate: threading.Event
) -> None:
    db = Hanging(gate)
    client, _ = hang_of(app, db, cache=0.5)
    assert get(client) == (200, {"status": "OK", "db": True})
    db.hang.set()
    assert get(client) == (200, {"status": "OK", "db": True})  # cached
    time.sleep(0.5)  # the cache runs out
    answers = probe_until_failing(client)
    assert answers[-1] == FAILED
    assert db.calls == 2


# -- real servers, stopped with SIGSTOP: the client call hangs until SIGCONT


def test_a_redis_server_stopped_with_sigstop_turns_failing(
    app: Flask, redis_server: subprocess.Popen[bytes]
) -> None:
    redis = pytest.importorskip("redis")
    # No socket timeout, redis-py's default: the call waits until SIGCONT.
    client = redis.Redis(port=server_port(redis_server), password=PASSWORD)
    http, heard = hang_of(app, redis_check(client))
    assert get(http) == (200, {"status": "OK", "db": True})
    with frozen(redis_server):
        answers = probe_until_failing(http)
        assert answers[-1] == FAILED
        wait_for(lambda: len(heard) == 2, "the listener to hear the failure")
        assert heard[0][1:4] == ("db", "OK", "FAIL")
    wait_for(lambda: get(http)[0] == 200, "the check to pass after SIGCONT")


def test_a_postgres_server_stopped_with_sigstop_turns_failing(
    app: Flask, postgres: Postgres
) -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    engine = sqlalchemy.create_engine(postgres.url, pool_size=1)
    http, heard = hang_of(app, sql_check(engine))
    assert get(http) == (200, {"status": "OK", "db": True})
    with frozen(postgres.process):
        answers = probe_until_failing(http)
        assert answers[-1] == FAILED
        wait_for(lambda: len(heard) == 2, "the listener to hear the failure")
        assert heard[0][1:4] == ("db", "OK", "FAIL")
    wait_for(lambda: get(http)[0] == 200, "the check to pass after SIGCONT", 20)
    engine.dispose()
