"""The examples in examples/ serve what the README says they serve."""

from __future__ import annotations

import json
import logging
import os
import re
import runpy
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from helpers import StartsWith
from servers import Start
from servers import free_port
from servers import http_get

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# A database file that cannot be opened, and a refused connection: our reason
# is the exception's type, then SQLite's words or the OS's, which are not ours.
CANNOT_OPEN = StartsWith("sqlite3.OperationalError: ")
REFUSED_CONNECTION = StartsWith("ConnectionRefusedError: ")
REFUSED = (
    "Refusing to serve on HOST={} with the default token 'change-me', which is"
    " for local use only: set PROBES_TOKEN to a secret (clients send it in the"
    " X-Status-Token header), or serve on a loopback address such as"
    " HOST=127.0.0.1.\n"
)


def load(name: str) -> dict[str, Any]:
    return runpy.run_path(str(EXAMPLES / name), run_name="example")


def test_main_serves_the_quick_start() -> None:
    app = load("main.py")["app"]  # held: Flask 2.2 responses refer to it weakly
    response = app.test_client().get("/api/status")
    assert (response.status_code, response.get_json()) == (200, {"status": "OK"})


def test_main_serves_on_host_and_port_from_the_environment(start: Start) -> None:
    port = free_port()
    env = dict(os.environ, HOST="127.0.0.1", PORT=str(port))
    start([sys.executable, str(EXAMPLES / "main.py")], env, port)
    assert http_get(port, "/api/status") == (200, b'{"status":"OK"}')


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections: bound, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@pytest.fixture
def database(
    tmp_path: Path, refused_port: int, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Set up the environment of examples/probes.py: its database (not
    created) under tmp_path, its cache refusing connections, no token."""
    path = tmp_path / "probes.sqlite3"
    monkeypatch.setenv("PROBES_DATABASE", str(path))
    monkeypatch.setenv("PROBES_CACHE", f"127.0.0.1:{refused_port}")
    monkeypatch.delenv("PROBES_TOKEN", raising=False)
    return path


LOCAL_TOKEN = {"X-Status-Token": "change-me"}  # from the test client: loopback
FLASK = [sys.executable, "-m", "flask", "--app", "probes"]


def local_get(client: FlaskClient, url: str) -> tuple[int, Any]:
    """GET ``url`` from loopback with the default token: every URL answers."""
    response = client.get(url, headers=LOCAL_TOKEN)
    return response.status_code, response.get_json()


def init_db(probes: dict[str, Any]) -> None:
    result = probes["app"].test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 0, result.output


def test_probes_creates_no_database_when_imported(database: Path) -> None:
    app = load("probes.py")["app"]
    assert not database.exists()
    client = app.test_client()
    response = client.get("/readyz")
    assert (response.status_code, response.get_json()) == (503, {"status": "FAIL"})
    response = client.get("/api/status", headers=LOCAL_TOKEN)  # from loopback
    assert (response.status_code, response.get_json()) == (
        503,
        {
            "status": "FAIL",
            "database": False,
            "cache": False,
            "errors": {
                "database": CANNOT_OPEN,
                "cache": REFUSED_CONNECTION,
            },
        },
    )
    assert not database.exists()


def test_init_db_creates_the_database(database: Path) -> None:
    app = load("probes.py")["app"]
    runner = app.test_cli_runner()
    created = runner.invoke(args=["init-db"])
    assert (created.exit_code, created.output) == (0, f"Created {database}\n")
    assert database.is_file()
    found = runner.invoke(args=["init-db"])
    assert (found.exit_code, found.output) == (0, f"Found {database}\n")
    response = app.test_client().get("/readyz")
    assert (response.status_code, response.get_json()) == (200, {"status": "WARN"})


def test_init_db_says_when_it_cannot(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = database.parent / "missing" / "probes.sqlite3"
    monkeypatch.setenv("PROBES_DATABASE", str(path))
    result = load("probes.py")["app"].test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 1
    assert f"Cannot create {path}: " in result.output  # then SQLite's words


def test_every_url_shares_one_cached_run_of_the_database(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One instance: /readyz, /api/status and the per-check routes share the
    database's runs and its cache=2, so the check runs once for them all."""
    probes = load("probes.py")
    init_db(probes)
    runs: list[object] = []
    connect = sqlite3.connect

    def counted(*args: Any, **kwargs: Any) -> Any:
        runs.append(args)
        return connect(*args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", counted)  # as the check calls it
    client = probes["app"].test_client()
    assert local_get(client, "/readyz") == (200, {"status": "WARN"})  # no cache
    assert len(runs) == 1
    database.unlink()  # well within the 2 s of cache=2: nobody notices
    assert local_get(client, "/readyz/database") == (200, {"status": "OK"})
    assert local_get(client, "/api/status/database") == (
        200,
        {"status": "OK", "database": True},
    )
    body = local_get(client, "/api/status")[1]
    assert (body["status"], body["database"]) == ("WARN", True)
    assert runs == [(f"file:{database}?mode=rw",)]  # one run for them all


def test_flask_status_runs_one_check_of_readyz(database: Path) -> None:
    """The operators' page's command: one check of a per-check route, in a
    process of its own, exit 0 while the database opens and 1 once it fails."""

    def status() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*FLASK, "status", "--url", "/readyz/database"],
            cwd=EXAMPLES,
            capture_output=True,
            text=True,
            timeout=60,
        )

    subprocess.run([*FLASK, "init-db"], cwd=EXAMPLES, capture_output=True, check=True)
    ran = status()
    assert (ran.returncode, ran.stdout) == (
        0,
        '/readyz/database {"status":"OK","database":true}\n',
    )
    database.unlink()
    ran = status()
    assert ran.returncode == 1
    assert ran.stdout == StartsWith(
        '/readyz/database {"status":"FAIL","database":false,"errors":{"database":'
        '"sqlite3.OperationalError: '
    )
    assert ran.stdout.endswith('"}}\n') and ran.stdout.count("\n") == 1


def test_the_cache_check_tolerates_two_failed_runs(
    database: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """fail_after=3: once the cache passed, the status turns WARN only at the
    third failed run in a row; the field shows each failure, with its reason."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    monkeypatch.setenv("PROBES_CACHE", f"127.0.0.1:{listener.getsockname()[1]}")
    probes = load("probes.py")
    init_db(probes)
    client = probes["app"].test_client()
    assert local_get(client, "/api/status") == (
        200,
        {"status": "OK", "database": True, "cache": True},
    )
    listener.close()  # connections to its port are now refused
    tolerated = {
        "database": True,
        "cache": False,
        "errors": {"cache": REFUSED_CONNECTION},
    }
    assert [local_get(client, "/api/status") for _ in range(3)] == [
        (200, {"status": "OK", **tolerated}),
        (200, {"status": "OK", **tolerated}),
        (200, {"status": "WARN", **tolerated}),
    ]
    assert local_get(client, "/readyz") == (
        200,
        {"status": "WARN"},
    )  # still failing: 4 in a row
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        StartsWith("Check 'cache' of /api/status failed: ConnectionRefusedError: ")
    ]


def test_is_loopback(database: Path) -> None:
    is_loopback = load("probes.py")["is_loopback"]
    hosts = {
        "127.0.0.1": True,
        "127.8.9.10": True,
        "::1": True,
        "[::1]": True,
        "::ffff:127.0.0.1": True,
        "localhost": True,
        "LocalHost": True,
        "0.0.0.0": False,
        "::": False,
        "192.0.2.7": False,
        "::ffff:192.0.2.7": False,
        "2001:db8::7": False,
        "example.com": False,
        "": False,
    }
    assert {host: is_loopback(host) for host in hosts} == hosts


def codes(probes: dict[str, Any], *requests: tuple[str, str | None]) -> list[int]:
    """The status codes of /api/status for each (client address, token)."""
    client = probes["app"].test_client()
    return [
        client.get(
            "/api/status",
            headers={} if token is None else {"X-Status-Token": token},
            environ_base={"REMOTE_ADDR": address},
        ).status_code
        for address, token in requests
    ]


def test_default_token_only_from_loopback(
    database: Path, caplog: pytest.LogCaptureFixture
) -> None:
    probes = load("probes.py")
    init_db(probes)  # so that an accepted request answers 200 (WARN)
    assert codes(
        probes,
        ("127.0.0.1", "change-me"),
        ("::1", "change-me"),
        ("127.0.0.1", "wrong"),
        ("127.0.0.1", None),
        ("192.0.2.7", "change-me"),
        ("2001:db8::7", "change-me"),
        ("192.0.2.7", "wrong"),
    ) == [200, 200, 401, 401, 401, 401, 401]
    refusals = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    refusals = [m for m in refusals if m.startswith("Refused")]
    assert refusals == [
        f"Refused the default token from {address}: it is for local use only;"
        " set PROBES_TOKEN to a secret."
        for address in ("192.0.2.7", "2001:db8::7")
    ]


def test_a_token_of_ones_own_works_from_anywhere(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROBES_TOKEN", "s3cret")
    probes = load("probes.py")
    init_db(probes)
    assert codes(
        probes,
        ("192.0.2.7", "s3cret"),
        ("127.0.0.1", "s3cret"),
        ("127.0.0.1", "change-me"),
        ("192.0.2.7", None),
    ) == [200, 200, 401, 401]


def test_an_empty_token_is_the_default(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROBES_TOKEN", "")  # not "any empty header will do"
    probes = load("probes.py")
    init_db(probes)
    assert codes(
        probes,
        ("127.0.0.1", None),
        ("127.0.0.1", ""),
        ("127.0.0.1", "change-me"),
        ("192.0.2.7", "change-me"),
    ) == [401, 401, 200, 401]


def probes_environ(**settings: str) -> dict[str, str]:
    """The environment for a process running examples/probes.py: this
    process's, as the database fixture set it, but HOST and PORT."""
    env = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT")}
    env.update(settings)
    return env


def test_probes_will_not_start_beyond_loopback_with_the_default_token(
    database: Path,
) -> None:
    for host, token in (
        ("0.0.0.0", None),
        ("::", None),
        ("192.0.2.7", ""),
        ("0.0.0.0", "change-me"),
    ):
        env = probes_environ(HOST=host, PORT=str(free_port()))
        if token is not None:
            env["PROBES_TOKEN"] = token
        result = subprocess.run(
            [sys.executable, str(EXAMPLES / "probes.py")],
            env=env,
            cwd=database.parent,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (result.returncode, result.stdout, result.stderr) == (
            1,
            "",
            REFUSED.format(host),
        )


def test_probes_starts_beyond_loopback_with_a_token(
    database: Path, start: Start
) -> None:
    port = free_port()  # bound on every address, asked on 127.0.0.1 only
    env = probes_environ(HOST="0.0.0.0", PORT=str(port))
    env["PROBES_TOKEN"] = "s3cret"
    start([sys.executable, str(EXAMPLES / "probes.py")], env, port)
    assert http_get(port, "/livez") == (200, b'{"status":"OK"}')
    assert http_get(port, "/api/status", {"X-Status-Token": "change-me"})[0] == 401


def test_probes_serves_on_loopback_with_the_default_token(
    database: Path, start: Start
) -> None:
    env = probes_environ(PORT=str(free_port()))
    subprocess.run(  # the operator's step, as the docstring gives it
        [sys.executable, "-m", "flask", "--app", "probes", "init-db"],
        env=env,
        cwd=EXAMPLES,
        capture_output=True,
        check=True,
    )
    port = int(env["PORT"])  # and no HOST: 127.0.0.1
    start([sys.executable, str(EXAMPLES / "probes.py")], env, port)
    code, body = http_get(port, "/api/status", {"X-Status-Token": "change-me"})
    payload = json.loads(body)
    assert (code, payload["status"], payload["database"]) == (200, "WARN", True)
    assert payload["errors"]["cache"] == REFUSED_CONNECTION


@pytest.fixture
def demo_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo's database under tmp_path, not created."""
    path = tmp_path / "demo.sqlite3"
    monkeypatch.setenv("DEMO_DATABASE", str(path))
    return path


def test_demo_fails_and_recovers_as_it_says(
    demo_database: Path, caplog: pytest.LogCaptureFixture
) -> None:
    demo = load("demo.py")
    app = demo["app"]
    client = app.test_client()
    assert client.get("/readyz").status_code == 503  # created only when served
    demo["create_database"]()
    assert (client.get("/readyz").status_code, client.get("/livez").status_code) == (
        200,
        200,
    )
    demo_database.rename(demo_database.with_name("demo.sqlite3.away"))
    response = client.get("/api/status")
    assert (response.status_code, response.get_json()) == (
        503,
        {
            "status": "FAIL",
            "version": "1.0",
            "database": False,
            "errors": {"database": CANNOT_OPEN},
        },
    )
    assert not demo_database.exists()  # mode=rw: the check creates no file
    demo_database.with_name("demo.sqlite3.away").rename(demo_database)
    response = client.get("/readyz")
    assert (response.status_code, response.get_json()) == (200, {"status": "OK"})
    page = client.get("/api/status?format=html")
    assert (page.status_code, page.mimetype) == (200, "text/html")
    lines = [
        (r.levelname, r.getMessage()) for r in caplog.records if r.name == app.name
    ]
    failed = (
        "ERROR",
        StartsWith(
            "Check 'database' of /api/status failed: sqlite3.OperationalError: "
        ),
    )
    passes = ("INFO", "Check 'database' of /api/status passes again.")
    assert lines == [failed, passes] * 2  # before the file was made, and moved


def test_demo_prints_the_urls_and_the_hint_it_serves(
    demo_database: Path, start: Start, tmp_path: Path
) -> None:
    """The README's first command, as a newcomer follows it: open each
    printed URL, run the printed moves, see 503 and then 200."""
    port = free_port()
    env = dict(os.environ, PORT=str(port))
    env.pop("HOST", None)
    start([sys.executable, str(EXAMPLES / "demo.py")], env, port)
    printed = (tmp_path / "server-0.log").read_text()
    urls = re.findall(rf"http://127\.0\.0\.1:{port}(/\S*)", printed)
    assert urls == ["/livez", "/readyz", "/api/status", "/api/status?format=html"]
    assert [http_get(port, url)[0] for url in urls] == [200, 200, 200, 200]
    moves = re.findall(r"^  mv (\S+) (\S+)$", printed, re.M)
    assert [Path(a) for a, _ in moves] == [
        demo_database,
        demo_database.with_name("demo.sqlite3.away"),
    ]
    os.rename(*moves[0])
    assert http_get(port, "/readyz") == (503, b'{"status":"FAIL"}')
    os.rename(*moves[1])
    assert http_get(port, "/readyz") == (200, b'{"status":"OK"}')
