"""The fixtures, and nothing else: the helpers they use are in helpers.py
and servers.py, which the tests import as well."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

import flask_status

# Before helpers.py and servers.py are imported: a failed assert there
# explains itself, as one in a test or in this file does.
pytest.register_assert_rewrite("helpers", "servers")

from helpers import wait_for  # noqa: E402
from servers import CELERY_APP  # noqa: E402
from servers import PASSWORD  # noqa: E402
from servers import SERVER  # noqa: E402
from servers import Gunicorn  # noqa: E402
from servers import Postgres  # noqa: E402
from servers import Start  # noqa: E402
from servers import accepts_queries  # noqa: E402
from servers import as_postgres  # noqa: E402
from servers import broker_url  # noqa: E402
from servers import celery_app  # noqa: E402
from servers import free_port  # noqa: E402
from servers import gunicorn_command  # noqa: E402
from servers import postgres_bin  # noqa: E402
from servers import postgres_folder  # noqa: E402
from servers import require  # noqa: E402
from servers import stop  # noqa: E402
from servers import stop_postgres  # noqa: E402


@pytest.fixture(autouse=True)
def monitor_counts() -> Iterator[None]:
    """After each test, every monitor's counts agree with its runs: as many
    running as there are RUNNING runs, and every QUEUED run in the backlog."""
    yield
    for monitor in list(flask_status._MONITORS):
        monitor.assert_counts()


@pytest.fixture
def app(request: pytest.FixtureRequest) -> Flask:
    """An app named for its test, so that its logger is its own: a line that
    a worker logs late for an earlier test's app cannot land in this one's
    records."""
    name = re.sub(r"\W", "_", request.node.name)
    app = Flask(name, root_path=str(Path(__file__).parent))
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Start a server process and wait until it accepts connections on
    127.0.0.1:port; every process started is stopped by its PID afterwards."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(
        command: list[str], env: dict[str, str], port: int
    ) -> subprocess.Popen[bytes]:
        log = tmp_path / f"server-{len(processes)}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                command, env=env, stdout=output, stderr=subprocess.STDOUT
            )
        processes.append(process)
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"{command} exited {process.returncode}:\n{log.read_text()}"
                )
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return process
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{command} did not listen:\n{log.read_text()}")
                time.sleep(0.1)

    yield start
    for process in processes:
        stop(process)


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """An event that hung checks wait on; set when the test ends, so that
    their threads go back to the pool."""
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def gunicorn(tmp_path: Path, start: Start) -> Gunicorn:
    """Serve ``source``, the text of a module defining ``app``, under a real
    gunicorn on 127.0.0.1 at a free port with the options given; returns the
    process (stopped by its PID afterwards) and the port."""
    pytest.importorskip("gunicorn")

    def serve(source: str, *options: str) -> tuple[subprocess.Popen[bytes], int]:
        (tmp_path / "served.py").write_text(textwrap.dedent(source))
        port = free_port()
        command = gunicorn_command(tmp_path)
        command += ["--bind", f"127.0.0.1:{port}", *options, "served:app"]
        return start(command, dict(os.environ), port), port

    return serve


# -- servers for the ready-made checks, each on a free port of 127.0.0.1 -----


@pytest.fixture
def redis_server(start: Start, tmp_path: Path) -> subprocess.Popen[bytes]:
    """redis-server with ``PASSWORD``, saving nothing; ``server_port`` tells
    its port."""
    command = require("redis-server", "redis-server")
    port = free_port()
    options = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
    options += ["--save", "", "--appendonly", "no", "--requirepass", PASSWORD]
    return start([command, *options], dict(os.environ), port)


@pytest.fixture(scope="session")
def postgres_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A database cluster made once by initdb, user postgres with
    ``PASSWORD``; each server runs on a copy."""
    pytest.importorskip("psycopg")
    programs = postgres_bin()
    with postgres_folder(tmp_path_factory.mktemp("postgres")) as home:
        (home / "password").write_text(PASSWORD)
        initdb = [str(programs / "initdb"), "-D", str(home / "data")]
        initdb += ["--username=postgres", "--auth=scram-sha-256", "--no-sync"]
        initdb += ["--locale=C", "--encoding=UTF8", f"--pwfile={home / 'password'}"]
        subprocess.run(as_postgres() + initdb, check=True, capture_output=True)
        yield home / "data"


@pytest.fixture
def postgres(
    start: Start, tmp_path: Path, postgres_cluster: Path
) -> Iterator[Postgres]:
    """A PostgreSQL server of its own, on a copy of ``postgres_cluster``: its
    port, its process, and a SQLAlchemy URL (psycopg) whose connections are
    named ``probe`` in pg_stat_activity."""
    with postgres_folder(tmp_path) as home:
        data = str(home / "data")
        copy = ["cp", "-a", str(postgres_cluster), data]
        subprocess.run(as_postgres() + copy, check=True)
        port = free_port()
        server = [str(postgres_bin() / "postgres"), "-D", data, "-p", str(port)]
        server += ["-k", "", "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]
        process = start(as_postgres() + server, dict(os.environ), port)
        url = f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:{port}/postgres"
        wait_for(lambda: accepts_queries(url), "PostgreSQL to accept queries", 30)
        yield Postgres(f"{url}?application_name=probe", port, process)
        stop_postgres(process)  # before its folder goes


@pytest.fixture
def serve(start: Start, tmp_path: Path) -> Callable[[str], subprocess.Popen[bytes]]:
    """Start a small server of Python's on a free port, by its mode:
    ``http`` answers GET /<code> with that status code (and a Location
    header: redirects are not followed); ``silent`` accepts connections and
    never answers; ``unaccepting`` listens with room for one connection and
    never accepts one, so connecting hangs once that room is taken; ``drip``
    answers ``HTTP/1.1 200 OK`` a byte every 0.3 s. ``http`` answers GET
    /basic/<token> with 200 if the request's Authorization header is
    ``Basic <token>``, else 401."""
    (tmp_path / "server.py").write_text(SERVER)

    def serve(mode: str) -> subprocess.Popen[bytes]:
        port = free_port()
        command = [sys.executable, str(tmp_path / "server.py"), mode, "--port"]
        return start([*command, str(port)], dict(os.environ), port)

    return serve


@pytest.fixture
def celery_worker(
    redis_server: subprocess.Popen[bytes], tmp_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A Celery worker (solo pool) on the Redis broker ``broker_url(redis_server)``,
    ready: it has answered a ping. Stopped by its PID afterwards."""
    broker = broker_url(redis_server)
    (tmp_path / "worker.py").write_text(CELERY_APP)
    command = [sys.executable, "-m", "celery", "--app", "worker", "worker"]
    command += ["--pool", "solo", "--loglevel", "warning", "--without-gossip"]
    command += ["--without-mingle", "--without-heartbeat"]
    log = tmp_path / "worker.log"
    with log.open("wb") as output:
        worker = subprocess.Popen(
            command,
            cwd=tmp_path,
            env={**os.environ, "BROKER_URL": broker},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        app = celery_app(broker)
        wait_for(
            lambda: worker.poll() is not None or app.control.ping(timeout=0.2, limit=1),
            "the Celery worker to answer a ping",
            30,
        )
        if worker.poll() is not None:
            pytest.fail(f"The Celery worker exited:\n{log.read_text()}")
        yield worker
    finally:
        stop(worker)
