"""The servers the tests start, each on a free port of 127.0.0.1 and stopped
by its PID: Redis, PostgreSQL, a Celery worker, small HTTP and TCP servers of
Python's own, gunicorn and the development server; and what finds, starts,
addresses and stops them. The fixtures that start them are in conftest.py."""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import importlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from typing import Callable
from typing import NamedTuple
from typing import Protocol

import pytest
from flask import Flask
from werkzeug.serving import make_server

# The fixtures ``start`` and ``gunicorn``, as the tests that take them see them.
Start = Callable[[list[str], dict[str, str], int], "subprocess.Popen[bytes]"]


class Gunicorn(Protocol):
    def __call__(
        self, source: str, *options: str
    ) -> tuple[subprocess.Popen[bytes], int]: ...


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


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server by its PID: SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


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


# -- servers for the ready-made checks ---------------------------------------

PASSWORD = "s3cret"  # of the Redis and PostgreSQL servers the tests start


def server_port(process: subprocess.Popen[bytes]) -> int:
    """The port a process from the fixtures ``redis_server`` and ``postgres``
    listens on."""
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


def stop_postgres(process: subprocess.Popen[bytes]) -> None:
    """Stop PostgreSQL by its PID, at once: SIGINT is its fast shutdown,
    which ends the sessions that SIGTERM would wait for."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGINT)
    stop(process)


def accepts_queries(url: str) -> bool:
    """Whether the PostgreSQL server at ``url`` has started up."""
    import psycopg

    try:
        psycopg.connect(url.replace("+psycopg", ""), connect_timeout=2).close()
    except psycopg.OperationalError:  # still starting up
        return False
    return True


# The small servers of Python's own that the fixture ``serve`` starts, by mode.
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

# The Celery app of the worker that the fixture ``celery_worker`` starts.
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


def broker_url(redis_server: subprocess.Popen[bytes]) -> str:
    return f"redis://:{PASSWORD}@127.0.0.1:{server_port(redis_server)}/0"


def children(pid: int) -> list[int]:
    """The PIDs of ``pid``'s child processes, from /proc."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text()
        found += [int(child) for child in text.split()]
    return found


@contextlib.contextmanager
def frozen(process: subprocess.Popen[bytes]) -> Iterator[None]:
    """Stop a server and its child processes (PostgreSQL's backends) with
    SIGSTOP, and let them go on with SIGCONT afterwards, whatever happens."""
    pids = [process.pid, *children(process.pid)]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


# -- apps served by several workers: probes that say which worker answered ---


def serve_module(
    start: Start, folder: Path, module: str, *options: str
) -> tuple[subprocess.Popen[bytes], int]:
    """Serve ``folder/module.py``'s ``app`` under a real gunicorn on a free
    port of 127.0.0.1, with the options given, through the fixture ``start``
    (which stops it by its PID), once a worker answers; the process,
    gunicorn's master, and the port. The module reads ``SHARE_DIR``, set to
    ``folder``; gunicorn logs to ``folder/gunicorn.log``, whose text fails
    the test if no worker boots."""
    pytest.importorskip("gunicorn")
    port = free_port()
    log = folder / "gunicorn.log"
    command = gunicorn_command(folder)
    command += ["--bind", f"127.0.0.1:{port}", "--error-logfile", str(log)]
    command += [*options, f"{module}:app"]
    master = start(command, dict(os.environ, SHARE_DIR=str(folder)), port)
    deadline = time.monotonic() + 30
    while True:  # it listens before its workers have imported the app
        try:
            probe(port, "/")
            return master, port
        except (OSError, http.client.HTTPException):
            if master.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"No worker of {command} answered:\n{log.read_text()}")
            time.sleep(0.05)


class Answer(NamedTuple):
    """A server's answer to one probe: the code, the PID of the worker that
    answered (its ``X-Pid`` header, which the served apps set), the body,
    and when the probe started and ended (``time.monotonic()``)."""

    code: int
    pid: int
    body: bytes
    started: float
    ended: float

    def json(self) -> Any:
        return json.loads(self.body)


def probe(
    port: int,
    path: str = "/readyz",
    headers: dict[str, str] | None = None,
    method: str = "GET",
) -> Answer:
    """One request to 127.0.0.1:port on a connection of its own, so that any
    worker may take it."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        pid = int(response.getheader("X-Pid") or 0)
        return Answer(response.status, pid, body, started, time.monotonic())
    finally:
        conn.close()


def probe_together(
    port: int,
    count: int,
    path: str = "/readyz",
    headers: dict[str, str] | None = None,
    threads: int = 8,
) -> list[Answer]:
    """``count`` probes of ``path``, ``threads`` at a time, so that every
    worker takes some; the answers in the order the probes were sent."""
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda _: probe(port, path, headers), range(count)))


class Prober:
    """Threads that probe a server over and over, each with its headers in
    turn from ``headers``, from ``with`` until its end: every answer, and
    every error with the monotonic time it came (a worker killed under a
    request resets its connection)."""

    def __init__(
        self,
        port: int,
        threads: int,
        path: str = "/readyz",
        headers: Sequence[dict[str, str]] = ({},),
    ) -> None:
        self.port, self.path, self.headers = port, path, headers
        self.answers: list[Answer] = []
        self.errors: list[tuple[float, Exception]] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._probe, args=(headers[i % len(headers)],))
            for i in range(threads)
        ]

    def _probe(self, headers: dict[str, str]) -> None:
        while not self._stop.is_set():
            try:
                self.answers.append(probe(self.port, self.path, headers))
            except (OSError, http.client.HTTPException) as error:
                self.errors.append((time.monotonic(), error))

    def __enter__(self) -> Prober:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


# How the served apps log, through the root logger, to a file each of their
# processes appends to: the process ID and the level first, to count lines
# by worker.
LOG_FORMAT = "%(process)d %(levelname)s %(message)s"


class LogLine(NamedTuple):
    pid: int
    level: str
    message: str


def log_lines(path: Path) -> list[LogLine]:
    """The lines of a log written with ``LOG_FORMAT``, in order; a
    traceback's lines are left out."""
    if not path.exists():
        return []
    found = []
    for line in path.read_text().splitlines():
        match = re.match(r"(\d+) (DEBUG|INFO|WARNING|ERROR|CRITICAL) (.*)", line)
        if match:
            found.append(LogLine(int(match[1]), match[2], match[3]))
    return found


def probe_every_worker(
    port: int,
    workers: set[int],
    path: str = "/readyz",
    headers: dict[str, str] | None = None,
    limit: int = 400,
) -> list[Answer]:
    """Probes of ``path``, 8 at a time, until each of ``workers`` (PIDs) has
    answered one, or ``limit`` probes were made; every answer."""
    answers: list[Answer] = []
    while len(answers) < limit and not workers <= {a.pid for a in answers}:
        answers += probe_together(port, 8, path, headers)
    return answers


def flask_command(
    folder: Path, module: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """Run ``flask --app module ARGS`` in ``folder``, as an operator would in
    the pod (``SHARE_DIR`` set to ``folder``, as ``serve_module`` sets it);
    what it printed and its exit code."""
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", module, *args],
        cwd=folder,
        env=dict(os.environ, SHARE_DIR=str(folder)),
        capture_output=True,
        text=True,
        timeout=60,
    )


def workers_of(master: subprocess.Popen[bytes], count: int) -> set[int]:
    """The PIDs of the ``count`` workers of a gunicorn ``master``, once it
    has forked them all (it listens before it forks)."""
    deadline = time.monotonic() + 30
    while len(children(master.pid)) != count:
        assert time.monotonic() < deadline, f"gunicorn did not fork {count} workers"
        time.sleep(0.05)
    return set(children(master.pid))
