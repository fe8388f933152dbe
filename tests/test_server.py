"""examples/probes.py under a real gunicorn on 127.0.0.1, over real HTTP, with a
real SQLite database and a real TCP listener standing in for the cache."""

from __future__ import annotations

import http.client
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import StartsWith
from servers import Gunicorn
from servers import gunicorn_command
from servers import stop

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listen(port: int = 0) -> socket.socket:
    """A TCP listener on 127.0.0.1 that stands in for the cache server."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(256)
    return sock


class Server:
    def __init__(self, port: int, database: Path, cache: socket.socket) -> None:
        self.port, self.database, self.cache = port, database, cache
        self.cache_port: int = cache.getsockname()[1]

    def request(
        self, path: str, method: str = "GET", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def get(self, path: str, **headers: str) -> tuple[int, Any]:
        code, _, body = self.request(path, headers=headers)
        return code, json.loads(body) if body.startswith(b"{") else body

    def restart_cache(self) -> None:
        """Listen again on the cache's port, after a test closed it."""
        self.cache.close()
        self.cache = listen(self.cache_port)

    def wait_until_ready(self) -> None:
        """Wait until every worker answers /readyz with OK again, after a
        test broke a dependency (the database's result is cached for 2 s).
        /readyz is public: its status alone, OK once the database passes
        and the cache check's status is OK."""
        ready = (200, {"status": "OK"})
        deadline = time.monotonic() + 2 + 3  # the cache, and a margin
        while [self.get("/readyz") for _ in range(4)] != [ready] * 4:
            assert time.monotonic() < deadline, "the server did not recover"
            time.sleep(0.1)

    def until_changed(
        self, path: str, cached: tuple[int, Any], **headers: str
    ) -> tuple[int, Any]:
        """GET ``path`` until it answers other than ``cached``, for at most
        the 2 s that a worker may reuse the database's result, and a margin;
        the last answer."""
        deadline = time.monotonic() + 2 + 1
        answer = self.get(path, **headers)
        while answer == cached and time.monotonic() < deadline:
            time.sleep(0.1)
            answer = self.get(path, **headers)
        return answer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    pytest.importorskip("gunicorn")
    folder = tmp_path_factory.mktemp("server")
    cache = listen()
    port = free_port()
    env = dict(
        os.environ,
        PROBES_DATABASE=str(folder / "app.sqlite3"),
        PROBES_CACHE=f"127.0.0.1:{cache.getsockname()[1]}",
        PROBES_TOKEN="s3cret",
    )
    init_db = subprocess.run(  # the operator's step: the app creates no file
        [sys.executable, "-m", "flask", "--app", "probes", "init-db"],
        cwd=EXAMPLES,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert init_db.stdout == f"Created {folder / 'app.sqlite3'}\n"
    command = gunicorn_command(EXAMPLES)
    command += ["--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "16"]
    process = subprocess.Popen(
        [*command, "probes:app"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = Server(port, folder / "app.sqlite3", cache)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "gunicorn exited"
            try:
                if server.get("/livez")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "gunicorn did not come up"
            time.sleep(0.1)
        yield server
    finally:
        stop(process)
        server.cache.close()


AUTH = {"X-Status-Token": "s3cret"}


def test_passing(server: Server) -> None:
    assert server.get("/livez") == (200, {"status": "OK"})
    assert server.get("/readyz") == (200, {"status": "OK"})  # public: no details
    assert server.get("/readyz/database") == (200, {"status": "OK"})
    assert server.get("/readyz/cache") == (200, {"status": "OK"})
    assert server.get("/livez/database")[0] == 404  # /livez has no checks


def test_head_and_405(server: Server) -> None:
    code, headers, body = server.request("/readyz", method="HEAD")
    assert (code, body, headers["Cache-Control"]) == (200, b"", "no-store")
    for method in ("POST", "DELETE", "OPTIONS"):
        assert server.request("/readyz", method=method)[0] == 405


def test_authenticated_route(server: Server) -> None:
    assert server.get("/api/status")[0] == 401
    assert server.get("/api/status", **{"X-Status-Token": "wrong"})[0] == 401
    assert server.get("/api/status", **AUTH) == (
        200,
        {"status": "OK", "database": True, "cache": True},
    )
    assert server.get("/api/status/database")[0] == 401
    assert server.get("/api/status/database", **AUTH) == (
        200,
        {"status": "OK", "database": True},
    )


def test_health_json_over_http(server: Server) -> None:
    code, headers, body = server.request(
        "/readyz", headers={"Accept": "application/health+json"}
    )
    assert (code, headers["Content-Type"]) == (200, "application/health+json")
    assert json.loads(body)["status"] == "pass"


def test_two_hundred_concurrent_requests(server: Server) -> None:
    results: list[int] = []
    errors: list[BaseException] = []

    def client() -> None:
        try:
            for _ in range(10):
                results.append(server.get("/readyz")[0])
        except BaseException as error:  # counted, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=client) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert results == [200] * 200


def test_locked_database_times_out_within_its_deadline(server: Server) -> None:
    server.wait_until_ready()
    holder = sqlite3.connect(server.database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        # /api/status reuses the database's result for 2 s too (cache=2): a
        # worker may answer with the result from before the lock, at once.
        cached = (200, {"status": "OK", "database": True, "cache": True})
        deadline = time.monotonic() + 2 + 1  # the cache, and a margin
        start = time.monotonic()
        code, body = server.get("/api/status", **AUTH)
        while (code, body) == cached and time.monotonic() < deadline:
            time.sleep(0.1)
            start = time.monotonic()
            code, body = server.get("/api/status", **AUTH)
        elapsed = time.monotonic() - start  # of the last request
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        # The timed-out run goes on: sqlite's busy handler retries every 100 ms
        # by now. Let it finish, lest the next tests' requests join it.
        time.sleep(0.3)
    assert (code, body) == (
        503,
        {
            "status": "FAIL",
            "database": False,
            "cache": True,
            "errors": {"database": "timed out after 0.5 s; still running"},
        },
    )
    assert elapsed < 2  # the 0.5 s deadline, not sqlite's 5 s lock wait


def test_warn_without_the_cache_after_three_failed_runs(server: Server) -> None:
    """fail_after=3 on the cache check: a worker whose check passed before
    answers pass for two failed runs in a row, the entry showing each
    failure, and warn from the third. Each worker counts its own runs; of
    two workers, one has made three by the fifth request at the latest."""
    server.wait_until_ready()
    server.cache.close()  # connections to its port are now refused
    try:
        answers = [
            server.get("/api/status", Accept="application/health+json", **AUTH)
            for _ in range(5)
        ]
    finally:
        server.restart_cache()
    seen = []
    for code, body in answers:
        (entry,) = body["checks"]["cache"]
        assert (code, entry["observedValue"]) == (200, False)
        assert entry["output"].startswith("ConnectionRefusedError: ")
        assert body["status"] == entry["status"]  # the database passes
        seen.append((entry["status"], entry["consecutiveFailures"]))
    assert all(failures in (1, 2) for state, failures in seen if state == "pass")
    assert all(state == "warn" for state, failures in seen if failures >= 3)
    assert "warn" in [state for state, _ in seen]
    assert server.get("/api/status", **AUTH) == (
        200,
        {"status": "OK", "database": True, "cache": True},
    )


def test_fail_without_the_database(server: Server) -> None:
    server.wait_until_ready()
    server.database.unlink()
    try:
        # Every URL reuses the database's result for 2 s (cache=2): until
        # then each worker may still answer with the result from before it
        # went, the details included.
        details = server.until_changed(
            "/api/status",
            (200, {"status": "OK", "database": True, "cache": True}),
            **AUTH,
        )
        readyz = server.until_changed("/readyz", (200, {"status": "OK"}))
        livez = server.get("/livez")
    finally:
        sqlite3.connect(server.database).close()  # the operator's init-db
        server.wait_until_ready()
    code, body = details
    assert (code, body["status"], body["database"]) == (503, "FAIL", False)
    assert body["errors"]["database"] == StartsWith("sqlite3.OperationalError: ")
    assert readyz == (503, {"status": "FAIL"})
    assert livez == (200, {"status": "OK"})


COUNTED = """
import sqlite3
import sys

sys.path.insert(0, {examples!r})
from probes import app

runs = []  # a connection the database check opened, for each of its runs
connect = sqlite3.connect


def counted(*args, **kwargs):
    runs.append(args)
    return connect(*args, **kwargs)


sqlite3.connect = counted  # probes.py looks it up at each run


@app.get("/runs")
def count():
    return {{"database": len(runs)}}
"""


def test_a_probe_round_runs_the_database_check_once(
    gunicorn: Gunicorn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/readyz and /api/status probed at the same moment, as kubelet and an
    operator would, in one worker: one instance, so one run of the database
    check per round (three instances ran it once per URL), counted at the
    connections it opens."""
    database = tmp_path / "app.sqlite3"
    sqlite3.connect(database).close()  # the operator's init-db
    cache = listen()
    monkeypatch.setenv("PROBES_DATABASE", str(database))
    monkeypatch.setenv("PROBES_CACHE", f"127.0.0.1:{cache.getsockname()[1]}")
    monkeypatch.setenv("PROBES_TOKEN", "s3cret")
    source = COUNTED.format(examples=str(EXAMPLES))
    _, port = gunicorn(source, "--workers", "1", "--threads", "8")
    server = Server(port, database, cache)
    try:
        for rounds in (1, 2):
            if rounds == 2:
                time.sleep(2.2)  # the result of round 1 expires (cache=2)
            assert probe_at_once(server) == {
                "/readyz": (200, {"status": "OK"}),
                "/api/status": (200, {"status": "OK", "database": True, "cache": True}),
            }
            assert server.get("/runs") == (200, {"database": rounds})
        assert server.get("/readyz/database") == (200, {"status": "OK"})  # cached
        assert server.get("/runs") == (200, {"database": 2})
    finally:
        server.cache.close()


def probe_at_once(server: Server) -> dict[str, tuple[int, Any]]:
    """GET /readyz and /api/status from two threads released together."""
    answers: dict[str, tuple[int, Any]] = {}
    together = threading.Barrier(2)

    def probe(path: str, headers: dict[str, str]) -> None:
        together.wait()
        answers[path] = server.get(path, **headers)

    threads = [
        threading.Thread(target=probe, args=("/readyz", {})),
        threading.Thread(target=probe, args=("/api/status", AUTH)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers
