"""The ready-made checks against real servers: PostgreSQL, SQLite, Redis, a
Celery worker, an HTTP server and TCP listeners, each started on a free port
of 127.0.0.1 and stopped by its PID (see servers.py, and the fixtures in
conftest.py). Each check passes, fails for each cause it names, fails at its
own timeout against a server that never answers, and leaves no connections
behind."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from typing import Callable

import pytest
from flask import Flask
from helpers import StartsWith
from helpers import exclusive_lock
from helpers import get
from helpers import wait_for
from servers import HEALTH_CHECK_BROKER
from servers import PASSWORD
from servers import Postgres
from servers import broker_url
from servers import celery_app
from servers import free_port
from servers import frozen
from servers import server_port
from servers import stop
from servers import stop_postgres

import flask_status
from flask_status import FlaskStatus
from flask_status import celery_check
from flask_status import disk_check
from flask_status import http_check
from flask_status import memory_check
from flask_status import redis_check
from flask_status import sql_check
from flask_status import tcp_check

Get = Callable[[], "tuple[int, Any]"]


def endpoint(
    app: Flask, check: Callable[[], object], timeout: float = 0.8, url: str = "/"
) -> Get:
    """An endpoint at ``url`` with one field, ``it``, and reasons shown: a
    GET of it returns the status code and the payload."""
    FlaskStatus(app, url, show_errors=True).add_field("it", check, timeout=timeout)
    return functools.partial(get, app.test_client(), url)


def passed(value: object) -> tuple[int, Any]:
    return 200, {"status": "OK", "it": value}


def failed(reason: str | StartsWith) -> tuple[int, Any]:
    return 503, {"status": "FAIL", "it": False, "errors": {"it": reason}}


def reason(probe: Get) -> str:
    """The reason of a failed run; the rest of the answer is checked."""
    code, body = probe()
    assert (code, body) == failed(body["errors"]["it"])
    return str(body["errors"]["it"])


def timed(probe: Get) -> tuple[tuple[int, Any], float]:
    started = time.monotonic()
    answer = probe()
    return answer, time.monotonic() - started


def test_importing_flask_status_imports_no_client_library() -> None:
    code = "import sys, flask_status; print(sorted(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    modules = set(result.stdout.strip()[1:-1].replace("'", "").split(", "))
    clients = {"sqlalchemy", "flask_sqlalchemy", "psycopg", "redis", "celery", "kombu"}
    assert modules & clients == set()
    assert "flask_status" in modules


# -- sql_check: PostgreSQL through SQLAlchemy and Flask-SQLAlchemy, SQLite


def engine(url: str, **options: Any) -> Any:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    options.setdefault("connect_args", {"connect_timeout": 2})
    return sqlalchemy.create_engine(url, **options)


def connections(postgres: Postgres) -> list[str]:
    """The states of the server's connections named ``probe``, from a
    connection of the test's own."""
    import psycopg

    dsn = postgres.url.replace("+psycopg", "").split("?")[0]
    with psycopg.connect(dsn) as admin:
        rows = admin.execute(
            "SELECT state FROM pg_stat_activity WHERE application_name = 'probe'"
        ).fetchall()
    return sorted(str(state) for (state,) in rows)


def test_sql_check_passes_on_postgres_and_gives_its_connection_back(
    app: Flask, postgres: Postgres
) -> None:
    db = engine(postgres.url)
    check = sql_check(db)
    probe = endpoint(app, check)
    for _ in range(200):
        assert probe() == passed(True)
    # one connection, idle (no transaction left open), back in the pool
    assert connections(postgres) == ["idle"]
    assert (db.pool.checkedin(), db.pool.checkedout()) == (1, 0)
    time.sleep(0.6)  # past the deadlines of those queries, which answered
    assert probe() == passed(True)  # on the same connection: none was cut
    assert connections(postgres) == ["idle"]
    assert repr(check) == f"<sql_check 'SELECT 1' on {db!r}, within 0.5 s>"
    assert PASSWORD not in repr(check)


def test_sql_check_uses_the_engine_of_flask_sqlalchemy_in_the_app_context(
    app: Flask, postgres: Postgres
) -> None:
    flask_sqlalchemy = pytest.importorskip("flask_sqlalchemy")
    app.config["SQLALCHEMY_DATABASE_URI"] = postgres.url
    db = flask_sqlalchemy.SQLAlchemy(app)
    probe = endpoint(app, sql_check(db, "SELECT count(*) FROM pg_class"))
    for _ in range(200):
        assert probe() == passed(True)
    assert connections(postgres) == ["idle"]
    with app.app_context():
        assert db.engine.pool.checkedout() == 0


def test_sql_check_fails_on_a_wrong_password(app: Flask, postgres: Postgres) -> None:
    right = endpoint(app, sql_check(engine(postgres.url)), url="/right")
    wrong = sql_check(engine(postgres.url.replace(PASSWORD, "wrong")))
    probe = endpoint(app, wrong, url="/wrong")
    assert right() == passed(True)  # the password is all that differs
    # the reason after the type is SQLAlchemy's, psycopg's and the server's
    assert probe() == failed(StartsWith("sqlalchemy.exc.OperationalError: "))


def test_sql_check_fails_when_the_server_stops(app: Flask, postgres: Postgres) -> None:
    probe = endpoint(app, sql_check(engine(postgres.url, pool_pre_ping=True)))
    assert probe() == passed(True)
    stop_postgres(postgres.process)
    assert probe() == failed(StartsWith("sqlalchemy.exc.OperationalError: "))


def test_sql_check_fails_at_connect_timeout_on_a_server_that_never_answers(
    app: Flask, serve: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    silent = server_port(serve("silent"))
    url = f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:{silent}/postgres"
    probe = endpoint(app, sql_check(engine(url)), timeout=3)
    answer, took = timed(probe)
    # connect_timeout's, in the libraries' words (the field's would say
    # "timed out after 3 s")
    assert answer == failed(StartsWith("sqlalchemy.exc.OperationalError: "))
    assert took >= 2  # connect_timeout is whole seconds, at least 2


def test_sql_check_cuts_off_its_query_to_a_stopped_server_at_its_timeout(
    app: Flask, postgres: Postgres
) -> None:
    db = engine(postgres.url)
    # the field's timeout is longer, so the reason is the check's own
    probe = endpoint(app, sql_check(db), timeout=5)
    assert probe() == passed(True)  # a connection in the pool, for the next query
    with frozen(postgres.process):
        answer, took = timed(probe)
    # no client setting brings this query back (docs/ready-checks.md#timeouts)
    assert answer == failed("TimeoutError: the database did not answer within 0.5 s")
    assert took < 3  # about 0.5 s
    assert probe() == passed(True)  # the cut connection was discarded
    wait_for(lambda: connections(postgres) == ["idle"], "the cut backend to end")
    assert (db.pool.checkedin(), db.pool.checkedout()) == (1, 0)


def test_sql_check_cuts_off_a_dbapi_connection_to_a_stopped_server(
    app: Flask, postgres: Postgres
) -> None:
    psycopg = pytest.importorskip("psycopg")
    dsn = postgres.url.replace("+psycopg", "")  # named probe, too
    made: list[Any] = []
    stop_after_connecting = False

    def connect() -> Any:
        made.append(psycopg.connect(dsn, connect_timeout=2))
        if stop_after_connecting:  # a fresh connection, then the server hangs
            server.enter_context(frozen(postgres.process))
        return made[-1]

    probe = endpoint(app, sql_check(connect, timeout=0.3), timeout=5)
    assert probe() == passed(True)
    with contextlib.ExitStack() as server:  # resumes the server, if stopped
        stop_after_connecting = True
        answer, took = timed(probe)
        stop_after_connecting = False
    assert answer == failed("TimeoutError: the database did not answer within 0.3 s")
    assert took < 3  # about 0.3 s
    assert len(made) == 2  # the server was stopped
    assert probe() == passed(True)
    assert [c.closed for c in made] == [True, True, True]
    wait_for(lambda: connections(postgres) == [], "the cut backend to end")


def test_sql_check_cuts_off_a_slow_query_and_discards_its_connection(
    app: Flask, postgres: Postgres
) -> None:
    db = engine(postgres.url)
    slow = sql_check(db, "SELECT pg_sleep(1)", timeout=0.3)
    probe = endpoint(app, slow, timeout=5, url="/slow")
    quick = endpoint(app, sql_check(db), url="/quick")
    assert quick() == passed(True)
    answer, took = timed(probe)
    assert answer == failed("TimeoutError: the database did not answer within 0.3 s")
    assert took < 1  # about 0.3 s
    assert quick() == passed(True)  # on a new connection
    # the cut one ends when its backend next writes, after the sleep
    wait_for(lambda: connections(postgres) == ["idle"], "the cut backend to end")
    assert repr(slow) == f"<sql_check 'SELECT pg_sleep(1)' on {db!r}, within 0.3 s>"


class Socketed(sqlite3.Connection):
    """A SQLite connection with a socket, as a server's client has, for
    ``fileno()``; its SQL function ``after_the_cut()`` returns 1 once the
    socket is shut down, as an answer may come just after the deadline's
    cut."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ours, self.theirs = socket.socketpair()
        self.create_function("after_the_cut", 0, self.after_the_cut)

    def fileno(self) -> int:
        return self.ours.fileno()

    def after_the_cut(self) -> int:
        self.theirs.settimeout(5)
        return 1 if self.theirs.recv(1) == b"" else 0  # b"": shut down

    def close(self) -> None:
        super().close()
        self.ours.close()
        self.theirs.close()


def test_sql_check_passes_on_an_answer_cut_just_after_but_keeps_no_connection(
    tmp_path: Path,
) -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    path = str(tmp_path / "app.sqlite3")
    made: list[Socketed] = []

    def connect() -> Socketed:
        made.append(Socketed(path, check_same_thread=False))
        return made[-1]

    db = sqlalchemy.create_engine(f"sqlite:///{path}", creator=connect)
    invalidated: list[object] = []
    sqlalchemy.event.listen(db, "invalidate", lambda *a: invalidated.append(a[2]))
    query = "SELECT after_the_cut()"
    assert sql_check(db, query, timeout=0.1)() is True  # the answer stands
    assert invalidated == [None]  # and its connection was closed, not pooled
    with pytest.raises(sqlite3.ProgrammingError):  # closed: SQLite's words
        made[0].execute("SELECT 1")
    assert sql_check(db)() is True
    assert len(made) == 2
    assert sql_check(connect, query, timeout=0.1)() is True  # DB-API: closed
    with pytest.raises(sqlite3.ProgrammingError):
        made[2].execute("SELECT 1")


def test_sql_check_notices_a_locked_sqlite_file_by_reading_it(
    app: Flask, tmp_path: Path
) -> None:
    path = tmp_path / "app.sqlite3"
    sqlite3.connect(path).close()
    made: list[sqlite3.Connection] = []

    def connect() -> sqlite3.Connection:
        uri = f"file:{path}?mode=ro"  # as the README has it
        made.append(
            sqlite3.connect(uri, uri=True, timeout=0.1, check_same_thread=False)
        )
        return made[-1]

    reads = sql_check(connect, "SELECT count(*) FROM sqlite_master")
    probe = endpoint(app, reads, timeout=3)  # beyond SQLite's, even on a busy machine
    assert probe() == passed(True)
    with exclusive_lock(path):
        assert probe() == failed(StartsWith("sqlite3.OperationalError: "))
        assert sql_check(connect)() is True  # SELECT 1 never reads the file
    assert probe() == passed(True)
    for connection in made:  # each closed, whether its query passed or not
        with pytest.raises(sqlite3.ProgrammingError):  # closed: SQLite's words
            connection.execute("SELECT 1")
    assert repr(reads) == (
        f"<sql_check 'SELECT count(*) FROM sqlite_master' on {connect!r}, within 0.5 s>"
    )


# -- redis_check: redis-server, with the client settings the README gives


def redis_client(port: int, password: str = PASSWORD) -> Any:
    """A client made as the README says for a health check: socket timeouts
    below the field's, no retries; its connections are named ``probe``."""
    redis = pytest.importorskip("redis")
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(
        host="127.0.0.1",
        port=port,
        password=password,
        socket_timeout=0.3,
        socket_connect_timeout=0.3,
        retry=Retry(NoBackoff(), 0),
        client_name="probe",
    )


def redis_connections(port: int) -> int:
    """How many connections named ``probe`` the server has."""
    clients = redis_client(port).client_list()
    return sum(int(c["name"] == "probe") for c in clients) - 1  # less the asker's


def test_redis_check_passes_with_one_pooled_connection(
    app: Flask, redis_server: subprocess.Popen[bytes]
) -> None:
    port = server_port(redis_server)
    client = redis_client(port)
    check = redis_check(client)
    probe = endpoint(app, check)
    for _ in range(200):
        assert probe() == passed(True)
    assert redis_connections(port) == 1
    assert repr(check) == f"<redis_check PING {client!r}>"


def test_redis_check_fails_on_a_wrong_password(
    app: Flask, redis_server: subprocess.Popen[bytes]
) -> None:
    probe = endpoint(app, redis_check(redis_client(server_port(redis_server), "no")))
    assert probe() == failed(StartsWith("redis.exceptions.AuthenticationError: "))


def test_redis_check_fails_at_once_when_the_server_stops(
    app: Flask, redis_server: subprocess.Popen[bytes]
) -> None:
    port = server_port(redis_server)
    probe = endpoint(app, redis_check(redis_client(port)))
    assert probe() == passed(True)
    stop(redis_server)
    # (with redis-py 8's default retries it would time out after 0.8 s)
    assert probe() == failed(StartsWith("redis.exceptions.ConnectionError: "))


def test_redis_check_fails_at_its_socket_timeout_on_a_server_that_never_answers(
    app: Flask, serve: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    probe = endpoint(app, redis_check(redis_client(server_port(serve("silent")))))
    answer, took = timed(probe)
    # the client's own timeout, in redis-py's words (the field's would say
    # "timed out after 0.8 s")
    assert answer == failed(StartsWith("redis.exceptions.TimeoutError: "))
    assert took >= 0.3


def test_redis_check_fails_with_an_asyncio_client_instead_of_passing(
    app: Flask, redis_server: subprocess.Popen[bytes]
) -> None:
    asyncio_redis = pytest.importorskip("redis.asyncio")

    async def made_in_a_loop() -> Any:  # before 3.10 it needs an event loop
        return asyncio_redis.Redis(port=server_port(redis_server), password=PASSWORD)

    client = asyncio.run(made_in_a_loop())
    assert endpoint(app, redis_check(client))() == failed(
        "TypeError: PING gave a coroutine; give redis_check a client that answers"
        " at once, such as redis.Redis(), not an asyncio one."
    )


class Replica:
    """A client that answers PING with a false value."""

    def ping(self) -> bool:
        return False


def test_redis_check_fails_on_a_false_answer(app: Flask) -> None:
    assert endpoint(app, redis_check(Replica()))() == failed(
        "RuntimeError: PING answered False"
    )


# -- celery_check: a real worker on the Redis broker


def test_celery_check_answers_at_the_first_reply_and_never_fails_falsely(
    app: Flask,
    redis_server: subprocess.Popen[bytes],
    celery_worker: subprocess.Popen[bytes],
) -> None:
    celery = celery_app(broker_url(redis_server))
    check = celery_check(celery, timeout=0.5)
    probe = endpoint(app, check)
    answers, took = [], []
    for _ in range(15):  # probes 0.2 s apart, as a busy load balancer sends
        answer, seconds = timed(probe)
        answers.append(answer)
        took.append(seconds)
        time.sleep(0.2)
    assert answers == [passed(1)] * 15
    assert max(took) < 0.4, took  # well before the timeout of 0.5 s
    assert repr(check) == f"<celery_check ping {celery!r}, within 0.5 s>"


def test_celery_check_fails_at_its_timeout_when_no_worker_replies(
    app: Flask,
    redis_server: subprocess.Popen[bytes],
    celery_worker: subprocess.Popen[bytes],
) -> None:
    probe = endpoint(app, celery_check(celery_app(broker_url(redis_server))))
    assert probe() == passed(1)
    stop(celery_worker)
    answer, took = timed(probe)
    assert answer == failed("TimeoutError: no Celery worker replied within 0.5 s")
    assert took >= 0.5


def test_celery_check_fails_at_once_when_the_broker_stops(
    app: Flask, redis_server: subprocess.Popen[bytes]
) -> None:
    probe = endpoint(app, celery_check(celery_app(broker_url(redis_server))))
    stop(redis_server)
    assert probe() == failed(StartsWith("kombu.exceptions.OperationalError: "))


def test_celery_check_fails_at_the_broker_socket_timeout_on_a_silent_broker(
    app: Flask, serve: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    broker = f"redis://127.0.0.1:{server_port(serve('silent'))}/0"
    probe = endpoint(app, celery_check(celery_app(broker)))
    answer, took = timed(probe)
    # the broker's socket timeout, in kombu's and redis-py's words, not ours
    assert answer == failed(StartsWith("kombu.exceptions.OperationalError: "))
    assert took >= HEALTH_CHECK_BROKER["socket_timeout"]


# -- http_check and tcp_check: Python's own servers (SERVER in servers.py)


def test_http_check_shows_the_code_and_follows_no_redirect(
    app: Flask, serve: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    base = f"http://127.0.0.1:{server_port(serve('http'))}"
    check = http_check(f"{base}/302?from=probe")
    assert endpoint(app, check)() == passed(302)  # a redirect to /200, not taken
    assert repr(check) == f"<http_check GET {base}/302?from=probe, expect 200-399>"


def test_http_check_fails_on_a_code_it_does_not_expect(
    app: Flask, serve: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    base = f"http://127.0.0.1:{server_port(serve('http'))}"
    moved = http_check(f"{base}/302", expect=[200, 204])
    down = endpoint(app, http_check(f"{base}/503"), url="/down")
    redirected = endpoint(app, moved, url="/moved")
    ok = endpoint(app, http_check(f"{base}/204", expect=[200, 204]), url="/ok")
    assert down() == failed("RuntimeError: HTTP 503")
    assert redirected() == failed("RuntimeError: HTTP 302")
    assert ok() == passed(204)
    assert repr(moved) == f"<http_check GET {base}/302, expect 200, 204>"


def test_http_and_tcp_checks_fail_on_a_closed_port(app: Flask) -> None:
    port = free_port()  # nothing listens there
    http = endpoint(app, http_check(f"http://127.0.0.1:{port}/livez"), url="/http")
    tcp = endpoint(app, tcp_check("127.0.0.1", port), url="/tcp")
    refused = failed(StartsWith("ConnectionRefusedError: "))  # then the OS's words
    assert (http(), tcp()) == (refused, refused)


def test_http_check_sends_the_urls_user_and_password_and_shows_neither(
    app: Flask, serve: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    base = f"127.0.0.1:{server_port(serve('http'))}"
    token = base64.b64encode(b"ops team:p@ss:word").decode()
    check = http_check(f"http://ops%20team:p%40ss:word@{base}/basic/{token}")
    wrong = http_check(f"http://ops%20team:guess@{base}/basic/{token}")
    right, guessed = endpoint(app, check), endpoint(app, wrong, url="/wrong")
    assert (right(), guessed()) == (passed(200), failed("RuntimeError: HTTP 401"))
    assert repr(check) == (
        f"<http_check GET http://ops%20team:***@{base}/basic/{token}, expect 200-399>"
    )


def test_http_check_fails_at_its_timeout_on_a_server_that_drips_its_answer(
    app: Flask, serve: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    port = server_port(serve("drip"))
    check = http_check(f"http://127.0.0.1:{port}/", timeout=0.5)
    probe = endpoint(app, check, timeout=5)
    answer, took = timed(probe)
    assert answer == failed(
        f"TimeoutError: 127.0.0.1:{port} did not answer within 0.5 s"
    )
    assert took < 2  # the whole request's deadline, not 0.5 s a byte (6 s)


def test_http_check_fails_at_its_timeout_on_a_server_that_never_answers(
    app: Flask, serve: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    port = server_port(serve("silent"))
    probe = endpoint(app, http_check(f"http://127.0.0.1:{port}/", timeout=0.3))
    answer, took = timed(probe)
    assert answer == failed(
        f"TimeoutError: 127.0.0.1:{port} did not answer within 0.3 s"
    )
    assert took >= 0.3  # its own timeout (the field's, 0.8 s, would say so)


def test_tcp_check_passes_when_a_server_accepts(
    app: Flask, serve: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    port = server_port(serve("silent"))
    check = tcp_check("127.0.0.1", port)
    assert endpoint(app, check)() == passed(True)
    assert repr(check) == f"<tcp_check 127.0.0.1:{port}, within 0.5 s>"


def test_tcp_check_fails_at_its_timeout_when_connecting_hangs(
    app: Flask, serve: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    port = server_port(serve("unaccepting"))
    with contextlib.suppress(OSError):  # take its one place, if still free
        socket.create_connection(("127.0.0.1", port), timeout=0.1)
    probe = endpoint(app, tcp_check("127.0.0.1", port, timeout=0.3))
    answer, took = timed(probe)
    assert answer == failed(
        f"TimeoutError: 127.0.0.1:{port} did not answer within 0.3 s"
    )
    assert took >= 0.3


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (
            lambda: sql_check("sqlite:///app.db"),
            "TypeError: sql_check needs a SQLAlchemy Engine, a Flask-SQLAlchemy"
            " extension or a callable returning a DB-API connection, not"
            " 'sqlite:///app.db'.",
        ),
        (
            lambda: sql_check(sqlite3.connect, b"SELECT 1"),  # type: ignore[arg-type]
            "TypeError: The query must be a string of SQL, not b'SELECT 1'.",
        ),
        (
            lambda: sql_check(sqlite3.connect, " "),
            "ValueError: The query ' ' is empty; give one such as 'SELECT 1'.",
        ),
        (
            lambda: sql_check(lambda db: db),
            re.compile(
                r"TypeError: sql_check calls <function .*<lambda> at 0x\w+> with"
                r" no arguments, but it needs some \(the database, at least\);"
                r" pass one that connects, such as"
                r" lambda: sqlite3\.connect\('app\.sqlite3'\)\."
            ),
        ),
        (
            lambda: sql_check(sqlite3.connect),
            f"TypeError: sql_check calls {sqlite3.connect!r} with no"
            " arguments, but it needs some (the database, at least); pass one"
            " that connects, such as lambda: sqlite3.connect('app.sqlite3').",
        ),
        (
            lambda: sql_check(lambda: sqlite3.connect(":memory:"), timeout=-1),
            "ValueError: The timeout -1 is out of range; give a finite number of"
            " seconds above 0.",
        ),
        (
            lambda: redis_check(pytest.importorskip("redis").Redis),
            "TypeError: redis_check needs an object, such as redis.Redis(host=...),"
            " not the class Redis; make it once at startup and pass that.",
        ),
        (
            lambda: redis_check("redis://127.0.0.1:6379"),
            "TypeError: redis_check needs a client with a ping() method, such as"
            " redis.Redis(), not 'redis://127.0.0.1:6379'.",
        ),
        (
            lambda: celery_check("redis://127.0.0.1:6379/0"),
            "TypeError: celery_check needs a Celery app, not"
            " 'redis://127.0.0.1:6379/0'.",
        ),
        (
            lambda: celery_check(celery_app("redis://127.0.0.1:1/0"), timeout=0),
            "ValueError: The timeout 0 is out of range; give a finite number of"
            " seconds above 0.",
        ),
        (
            lambda: http_check(b"http://x/"),  # type: ignore[arg-type]
            "TypeError: The URL must be a string, not b'http://x/'.",
        ),
        (
            lambda: http_check("ftp://files.internal/"),
            "ValueError: The URL 'ftp://files.internal/' is not an http or https"
            " URL with a host and a valid port; give one such as"
            " 'http://127.0.0.1:8080/livez'.",
        ),
        (
            lambda: http_check("http://api.internal:80800/livez"),
            "ValueError: The URL 'http://api.internal:80800/livez' is not an http"
            " or https URL with a host and a valid port; give one such as"
            " 'http://127.0.0.1:8080/livez'.",
        ),
        (
            lambda: http_check("http://127.0.0.1:0/"),
            "ValueError: The URL 'http://127.0.0.1:0/' is not an http or https"
            " URL with a host and a valid port; give one such as"
            " 'http://127.0.0.1:8080/livez'.",
        ),
        (
            lambda: http_check("http://user:hunter2@api.internal:0/"),
            "ValueError: The URL 'http://user:***@api.internal:0/' is not an http"
            " or https URL with a host and a valid port; give one such as"
            " 'http://127.0.0.1:8080/livez'.",
        ),
        (
            lambda: http_check("http://api.internal/live z"),
            "ValueError: The URL 'http://api.internal/live z' has a space or a"
            " control character, which no request line can carry; percent-encode"
            " it, as %20 for a space.",
        ),
        (
            lambda: http_check("http://x/", expect=range(200, 200)),
            "TypeError: expect must be HTTP status codes (ints), such as"
            " range(200, 400), not range(200, 200).",
        ),
        (
            lambda: http_check("http://x/", expect=[200, 1000]),
            "ValueError: expect has 1000, which is no HTTP status code; give"
            " codes from 100 to 599.",
        ),
        (
            lambda: http_check("http://x/", timeout=True),
            "TypeError: The timeout must be a number of seconds, not True.",
        ),
        (
            lambda: tcp_check(None, 80),  # type: ignore[arg-type]
            "TypeError: The host must be a string, not None.",
        ),
        (
            lambda: tcp_check("", 80),
            "ValueError: The host '' is empty; give a name or IP address.",
        ),
        (
            lambda: tcp_check("db", "5432"),  # type: ignore[arg-type]
            "TypeError: The port must be an int, not '5432'.",
        ),
        (
            lambda: tcp_check("db", 65536),
            "ValueError: The port 65536 is out of range; give one from 1 to 65535.",
        ),
        (
            lambda: disk_check(3, min_free=0),  # type: ignore[arg-type]
            "TypeError: The path must be a string or a path, not 3.",
        ),
        (
            lambda: disk_check(min_free="10%"),  # type: ignore[arg-type]
            "TypeError: min_free must be bytes (an int) or a fraction of the total"
            " (a float between 0 and 1), not '10%'.",
        ),
        (
            lambda: disk_check(min_free=1.5),
            "ValueError: min_free 1.5 is out of range; give bytes as an int from"
            " 0, or a fraction as a float between 0 and 1, such as 0.1.",
        ),
        (
            lambda: memory_check(min_available=-1),
            "ValueError: min_available -1 is out of range; give bytes as an int"
            " from 0, or a fraction as a float between 0 and 1, such as 0.1.",
        ),
        (
            lambda: memory_check(min_available=True),
            "TypeError: min_available must be bytes (an int) or a fraction of the"
            " total (a float between 0 and 1), not True.",
        ),
    ],
)
def test_wrong_arguments_are_refused_when_the_check_is_made(
    make: Callable[[], object], error: str | re.Pattern[str]
) -> None:
    with pytest.raises((TypeError, ValueError)) as raised:
        make()
    text = f"{type(raised.value).__name__}: {raised.value}"
    assert error.fullmatch(text) if isinstance(error, re.Pattern) else text == error


# -- disk_check and memory_check: the real disk and memory of this machine

SIZE = r"\d+(\.\d)? ([kMGT]B|bytes)"


def test_disk_check_shows_the_free_bytes(app: Flask, tmp_path: Path) -> None:
    check = disk_check(tmp_path, min_free=1)
    code, body = endpoint(app, check)()
    free = shutil.disk_usage(tmp_path).free
    assert (code, body) == passed(body["it"])
    assert abs(body["it"] - free) < free / 100  # what the disk had then
    assert repr(check) == f"<disk_check at least 1 bytes free on {str(tmp_path)!r}>"


def test_disk_check_fails_below_a_minimum_above_the_free_space(
    app: Flask, tmp_path: Path
) -> None:
    usage = shutil.disk_usage(tmp_path)
    share = (usage.free / usage.total + 1) / 2  # between the free share and 1
    by_share = endpoint(app, disk_check(tmp_path, min_free=share), url="/share")
    by_bytes = endpoint(app, disk_check(tmp_path, min_free=usage.total), url="/bytes")
    where = re.escape(repr(str(tmp_path)))
    percent = re.escape(f"{share * 100:g}%")
    assert re.fullmatch(
        f"RuntimeError: {SIZE} free on {where}, below the minimum of {percent}"
        f" \\({SIZE}\\)",
        reason(by_share),
    )
    assert re.fullmatch(
        f"RuntimeError: {SIZE} free on {where}, below the minimum of"
        f" {re.escape(flask_status._size(usage.total))}",
        reason(by_bytes),
    )


def test_disk_check_fails_on_a_missing_path(app: Flask, tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    probe = endpoint(app, disk_check(missing, min_free=0))
    assert probe() == failed(StartsWith("FileNotFoundError: "))  # the OS's words


def meminfo(name: str) -> int:
    """A line of /proc/meminfo, in bytes."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1]) * 1024
    raise LookupError(name)


@pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="Linux only")
def test_memory_check_shows_available_memory_and_fails_below_the_minimum(
    app: Flask,
) -> None:
    total = meminfo("MemTotal")
    passing = memory_check(min_available=0.0001)
    probe = endpoint(app, passing, url="/passing")
    above = endpoint(app, memory_check(min_available=total + 1), url="/above")
    code, body = probe()
    assert (code, body) == passed(body["it"])
    assert abs(body["it"] - meminfo("MemAvailable")) < total / 20
    assert repr(passing) == "<memory_check at least 0.01% available>"
    assert re.fullmatch(
        f"RuntimeError: {SIZE} available, below the minimum of"
        f" {re.escape(flask_status._size(total + 1))}",
        reason(above),
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (None, r"FileNotFoundError: .+"),  # in the OS's words
        ("MemTotal: 1024 kB\nMemFree: 512 kB\n", re.escape("KeyError: 'MemAvailable'")),
    ],
)
def test_memory_check_is_refused_where_memory_cannot_be_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str | None, problem: str
) -> None:
    path = tmp_path / "meminfo"  # as on a system without it, or before Linux 3.14
    if text is not None:
        path.write_text(text)
    monkeypatch.setattr(flask_status, "_MEMINFO", str(path))
    with pytest.raises(OSError) as error:
        memory_check(min_available=0.1)
    ours = (
        f"memory_check reads MemAvailable from {path}, which this system does not"
        " have ({}); it needs Linux 3.14 or later."
    )
    assert re.fullmatch(re.escape(ours).replace(r"\{\}", problem), str(error.value))


def memory_group() -> Path:
    """The folder of this process's memory control group (v2, or v1's memory
    controller), where the tests may make one below it; else the test skips,
    or in CI (as root on Linux) fails."""
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    for _, controllers, path in (line.split(":", 2) for line in lines):
        unified = Path("/sys/fs/cgroup") / path.lstrip("/")
        if not controllers and (unified / "memory.max").exists():
            return unified
        if "memory" in controllers.split(","):
            return Path("/sys/fs/cgroup/memory") / path.lstrip("/")
    reason = "no memory control group can be made here (Linux, as root)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI runs as root on Linux.")
    pytest.skip(reason)


@pytest.fixture
def limited() -> Iterator[Path]:
    """A memory control group of its own with a limit of 256 MiB, below this
    process's; removed afterwards."""
    parent = memory_group()
    folder = parent / f"flask-status-test-{os.getpid()}"
    try:
        folder.mkdir()
    except OSError as error:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"cannot make a control group in {parent}: {error}")
    v2 = (folder / "memory.max").exists()
    limit = folder / ("memory.max" if v2 else "memory.limit_in_bytes")
    limit.write_text(str(256 * 2**20))
    try:
        yield folder
    finally:
        folder.rmdir()


def test_memory_check_reads_the_limit_of_its_control_group(
    limited: Path, tmp_path: Path
) -> None:
    code = (
        "import sys, flask_status\n"
        "print(flask_status.memory_check(min_available=0.0001)())\n"
        "try:\n"
        "    flask_status.memory_check(min_available=300 * 2**20)()\n"
        "except RuntimeError as error:\n"
        "    print(error)\n"
    )
    script = tmp_path / "memory.py"
    script.write_text(code)
    inside = f"echo $$ > {limited / 'cgroup.procs'} && exec {sys.executable} {script}"
    result = subprocess.run(
        ["sh", "-c", inside], capture_output=True, text=True, check=True
    )
    shown, reason = result.stdout.splitlines()
    assert 0 < int(shown) < 256 * 2**20
    assert re.fullmatch(
        f"{SIZE} available in the memory limit of 268.4 MB, below the minimum of"
        " 314.6 MB",
        reason,
    )


def test_memory_check_reads_a_v2_limit_and_the_lowest_above_it(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cgroup v2 tree as /proc/self/cgroup and mountinfo describe it, with
    the limit set on the pod's group above the container's."""
    mount = tmp_path / "cgroup"
    pod, container = mount / "kubepods" / "pod1", mount / "kubepods" / "pod1" / "c1"
    container.mkdir(parents=True)
    (pod / "memory.max").write_text(f"{512 * 2**20}\n")
    (container / "memory.max").write_text("max\n")
    (container / "memory.current").write_text(f"{200 * 2**20}\n")
    (container / "memory.stat").write_text(f"anon 1\ninactive_file {50 * 2**20}\n")
    (tmp_path / "cgroup.txt").write_text("0::/kubepods/pod1/c1\n")
    (tmp_path / "mountinfo").write_text(
        f"31 23 0:28 / /dev rw - devtmpfs udev rw\n"
        f"32 23 0:29 /kubepods {mount / 'kubepods'} rw - cgroup2 cgroup2 rw\n"
    )
    monkeypatch.setattr(flask_status, "_CGROUP", str(tmp_path / "cgroup.txt"))
    monkeypatch.setattr(flask_status, "_MOUNTINFO", str(tmp_path / "mountinfo"))
    # 512 MiB less 150 MiB in use that the kernel cannot reclaim
    assert flask_status._cgroup_memory() == (362 * 2**20, 512 * 2**20)
    probe = endpoint(app, memory_check(min_available=0.9))
    assert reason(probe) == (
        "RuntimeError: 379.6 MB available in the memory limit of 536.9 MB, below"
        " the minimum of 90% (483.2 MB)"
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pa/ss@127.0.0.1:8080/", "http://user:***@127.0.0.1:8080/"),
        ("http://user:p?ss@127.0.0.1/", "http://user:***@127.0.0.1/"),
        ("http://host.internal:8080/a@b", "http://host.internal:***@b"),
    ],
)
def test_a_password_that_breaks_the_url_is_refused_and_never_shown(
    url: str, shown: str
) -> None:
    with pytest.raises(ValueError) as error:
        http_check(url)
    assert str(error.value) == (
        f"The URL {shown!r} has an @ outside its user name and password, or a"
        " / ? or # inside them; percent-encode those characters, as %2F for /."
    )


def test_a_user_part_alone_is_shown_as_stars() -> None:
    check = http_check("http://s3cr3tToken@127.0.0.1:8080/livez")
    assert (
        repr(check)
        == "<http_check GET http://***@127.0.0.1:8080/livez, expect 200-399>"
    )


def test_sql_check_refuses_a_connection_for_a_function_that_opens_one() -> None:
    connection = sqlite3.connect(":memory:")
    with pytest.raises(TypeError) as error:
        sql_check(connection)
    connection.close()
    assert str(error.value) == (
        f"sql_check needs a function that opens a connection, not the connection"
        f" {connection!r}, which a failed check would leave broken; pass one such"
        " as lambda: sqlite3.connect('app.sqlite3')."
    )
