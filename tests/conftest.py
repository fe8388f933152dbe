from __future__ import annotations

import contextlib
import http.client
import importlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from typing import Callable
from typing import NamedTuple
from typing import Protocol

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

import flask_status
from flask_status import FlaskStatus
from flask_status import StatusChange


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


def wait_for(condition: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    """Poll until ``condition()`` is true, for what other threads do (listeners,
    schedules); fail the test, saying ``what``, after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"Waited {timeout} s in vain for {what}.")
        time.sleep(0.005)


def logged(app: Flask, caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The records logged through ``app.logger``, none of another app's."""
    return [r for r in caplog.records if r.name == app.name]


def listener_failures(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> list[logging.LogRecord]:
    """The records of status listeners of ``app`` that raised."""
    return [
        r
        for r in logged(app, caplog)
        if r.getMessage().startswith("The status listener")
    ]


def require(command: str, package: str) -> str:
    """The path of the program ``command``. Where it is missing the test is
    skipped, with a reason naming the Debian package that brings it; in CI
    (``CI=true``), which installs every one, that is a failure instead."""
    found = shutil.which(command)
    if found is None:
        reason = (
            f"{command} is not installed; apt-get install {package} to run this test."
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} CI must install it (see .ci/run).")
        pytest.skip(reason)
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(client: FlaskClient, url: str = "/api/status") -> tuple[int, Any]:
    """GET ``url`` through the test client: the status code and the JSON."""
    response = client.get(url)
    return response.status_code, response.get_json()


class StartsWith:
    """Equal to any text that is ``prefix`` and then more: for a reason or a
    line whose start is ours (a log line's words, the exception's type
    before ``: ``) and whose rest is a third-party library's message, such as
    redis-py's or SQLite's, which the tests never pin: it may change in any
    release. Compare it inside a payload, ``{"db": StartsWith("...: ")}``,
    so the rest of the answer stays exact."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, str)
            and other.startswith(self.prefix)
            and len(other) > len(self.prefix)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"StartsWith({self.prefix!r})"


def http_get(
    port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """GET http://127.0.0.1:port/path: the status code and the body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@contextlib.contextmanager
def served(app: Flask) -> Iterator[int]:
    """Serve ``app`` with the development server (werkzeug's, which logs each
    request to the ``werkzeug`` logger) in a thread on 127.0.0.1; the port."""
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield server.port
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


Start = Callable[[list[str], dict[str, str], int], "subprocess.Popen[bytes]"]


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


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server by its PID: SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """An event that hung checks wait on; set when the test ends, so that
    their threads go back to the pool."""
    event = threading.Event()
    yield event
    event.set()


def status_threads() -> set[threading.Thread]:
    """The pool's worker threads alive now; tests count those new since a
    snapshot."""
    return {t for t in threading.enumerate() if t.name == "flask-status"}


def assert_pool_at_rest() -> None:
    """Assert the pool's invariant once its work is done: no task is
    queued, no worker is counted as on its way, and no more workers are
    parked than are alive."""
    pool = flask_status._pool
    wait_for(lambda: not pool._tasks and not pool._waking, "the pool to rest")
    with pool._lock:
        assert len(pool._parked) <= len(status_threads())


class StalledLogHandler(logging.Handler):
    """An ERROR handler that stalls, as one sending mail may: it waits for
    ``gate`` (at most ``stall`` seconds), then notes the message.
    ``entered`` is set once a record reached it."""

    def __init__(self, gate: threading.Event, stall: float = 2.0) -> None:
        super().__init__(logging.ERROR)
        self.gate, self.stall = gate, stall
        self.entered = threading.Event()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.entered.set()
        self.gate.wait(self.stall)
        self.messages.append(record.getMessage())


def gunicorn_command(folder: Path) -> list[str]:
    """The start of a command serving an app from ``folder`` with gunicorn.

    Newer gunicorn releases (27, say) open a control socket, by default in
    ``$XDG_RUNTIME_DIR`` or ``~/.gunicorn``, outside the clone and the
    temporary folder: every test turns it off where gunicorn has it.
    """
    settings = importlib.import_module("gunicorn.config").KNOWN_SETTINGS
    command = [sys.executable, "-m", "gunicorn", "--chdir", str(folder)]
    if any(s.name == "control_socket_disable" for s in settings):
        command.append("--no-control-socket")
    return command


class Gunicorn(Protocol):
    def __call__(
        self, source: str, *options: str
    ) -> tuple[subprocess.Popen[bytes], int]: ...


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


def counted(calls: list[str], key: str, value: Any) -> Callable[[], Any]:
    """A check that notes each call in ``calls`` and returns ``value``."""

    def check() -> Any:
        calls.append(key)
        return value

    return check


def build_readyz(app: Flask, calls: list[str], **options: Any) -> FlaskStatus:
    """/readyz with a static version, a passing db, a failing non-critical
    cache and a failing critical queue."""
    status = FlaskStatus(app, url="/readyz", **options)
    status.add_field("version", "1.2.3")
    status.add_field("db", counted(calls, "db", 3))
    status.add_field("cache", counted(calls, "cache", False), critical=False)
    status.add_field("queue", counted(calls, "queue", False))
    return status


def prometheus(
    client: FlaskClient, path: str, headers: dict[str, str] | None = None
) -> str:
    """Scrape ``path`` as Prometheus would: always 200, never cached."""
    response = client.get(path, headers=headers or {})
    assert response.status_code == 200  # a scrape never fails
    assert (
        response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    )
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_data(as_text=True)


# -- status changes: checks the test switches, changes compared without time


def change(
    check: str | None, old: str | None, new: str, reason: str | None = None
) -> StatusChange:
    """A change at /readyz, with ``at`` zeroed to compare with ``timeless``."""
    return StatusChange("/readyz", check, old, new, reason, 0.0)


def timeless(changes: list[StatusChange]) -> list[StatusChange]:
    return [c._replace(at=0.0) for c in changes]


class Switch:
    """A check whose next results the test sets: True passes, False fails,
    an exception is raised."""

    def __init__(self, result: object = True) -> None:
        self.result = result
        self.calls = 0

    def __call__(self) -> object:
        self.calls += 1
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


# -- servers for the ready-made checks, each on a free port of 127.0.0.1 -----

PASSWORD = "s3cret"  # of the Redis and PostgreSQL servers the tests start


@pytest.fixture
def redis_server(start: Start, tmp_path: Path) -> subprocess.Popen[bytes]:
    """redis-server with ``PASSWORD``, saving nothing; ``server_port`` tells
    its port."""
    command = require("redis-server", "redis-server")
    port = free_port()
    options = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
    options += ["--save", "", "--appendonly", "no", "--requirepass", PASSWORD]
    return start([command, *options], dict(os.environ), port)


def server_port(process: subprocess.Popen[bytes]) -> int:
    """The port a process from the fixtures below listens on."""
    args = list(process.args)  # type: ignore[arg-type]
    return int(str(args[args.index("--port") + 1]))


def postgres_bin() -> Path:
    """The folder of PostgreSQL's programs: Debian keeps them off PATH, in
    /usr/lib/postgresql/<version>/bin; elsewhere, where PATH finds them."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    if found:
        return found[-1].parent
    return Path(require("postgres", "postgresql")).parent


class Postgres(NamedTuple):
    url: str
    port: int
    process: subprocess.Popen[bytes]


def as_postgres() -> list[str]:
    """What runs a command as the postgres user when the tests run as root,
    which PostgreSQL refuses: setpriv execs it, so its PID is the program's
    own."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]


@contextlib.contextmanager
def postgres_folder(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path``; as root, a temporary folder of the postgres user's
    instead (pytest's are root's alone), removed afterwards."""
    if not as_postgres():
        yield tmp_path
        return
    home = Path(tempfile.mkdtemp(prefix="flask-status-pg-"))
    try:
        shutil.chown(home, "postgres")
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


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
        wait_for(lambda: _accepts_queries(url), "PostgreSQL to accept queries", 30)
        yield Postgres(f"{url}?application_name=probe", port, process)
        stop_postgres(process)  # before its folder goes


def stop_postgres(process: subprocess.Popen[bytes]) -> None:
    """Stop PostgreSQL by its PID, at once: SIGINT is its fast shutdown,
    which ends the sessions that SIGTERM would wait for."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGINT)
    stop(process)


def _accepts_queries(url: str) -> bool:
    import psycopg

    try:
        psycopg.connect(url.replace("+psycopg", ""), connect_timeout=2).close()
    except psycopg.OperationalError:  # still starting up
        return False
    return True


SERVER = """
import http.server, socket, sys, time
mode, port = sys.argv[1], int(sys.argv[3])
if mode == "http":
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.startswith("/basic/"):  # 200 for that Authorization
                token = self.path[len("/basic/"):]
                sent = self.headers.get("Authorization")
                self.send_response(200 if sent == f"Basic {token}" else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            code = int(self.path.split("?")[0].strip("/"))
            self.send_response(code)
            self.send_header("Location", "/200")
            self.send_header("Content-Length", "0")
            self.end_headers()
    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
listener = socket.socket()
listener.bind(("127.0.0.1", port))
if mode == "unaccepting":  # room for one connection, and never accepted
    listener.listen(0)
    time.sleep(3600)
listener.listen(64)
if mode == "drip":  # accepts, and sends a status line a byte every 0.3 s
    while True:
        connection = listener.accept()[0]
        for byte in b"HTTP/1.1 200 OK\\r\\n\\r\\n":
            time.sleep(0.3)
            try:
                connection.send(bytes([byte]))
            except OSError:
                break
        connection.close()
held = []
while True:  # silent: accepts, holds, never answers
    held.append(listener.accept()[0])
"""


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


CELERY_APP = """
import os
from celery import Celery
app = Celery("worker", broker=os.environ["BROKER_URL"])
"""


def celery_app(broker: str) -> Any:
    """A Celery app on ``broker`` with the README's broker settings for a
    health check: socket timeouts, and no retries."""
    celery = pytest.importorskip("celery")
    app = celery.Celery("probes", broker=broker)
    app.conf.broker_transport_options = HEALTH_CHECK_BROKER
    return app


HEALTH_CHECK_BROKER = {
    "socket_timeout": 0.3,
    "socket_connect_timeout": 0.3,
    "max_retries": 0,
}


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


def broker_url(redis_server: subprocess.Popen[bytes]) -> str:
    return f"redis://:{PASSWORD}@127.0.0.1:{server_port(redis_server)}/0"
