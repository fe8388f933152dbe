"""For operators (#14) under a real gunicorn on 127.0.0.1: a per-check route
as a probe would call it, and a Prometheus scrape, over real HTTP, with a
real SQLite database."""

from __future__ import annotations

import http.client
import os
import sqlite3
import textwrap
from pathlib import Path

import pytest
from servers import Start
from servers import free_port
from servers import gunicorn_command
from servers import http_get

APP = textwrap.dedent(
    """\
    import os
    import sqlite3
    from contextlib import closing

    from flask import Flask

    from flask_status import FlaskStatus

    app = Flask(__name__)
    status = FlaskStatus(app, url="/readyz", per_check=True, timeout=2)
    status.add_field("version", "1.2.3")


    @status.field
    def db():
        uri = f"file:{os.environ['OPS_DATABASE']}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True)) as connection:
            return connection.execute("SELECT count(*) FROM jobs").fetchone()[0]


    @status.field(critical=False)
    def spool():
        return os.path.isdir(os.environ["OPS_SPOOL"])
    """
)
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


class Served:
    def __init__(self, port: int, database: Path, spool: Path) -> None:
        self.port, self.database, self.spool = port, database, spool


@pytest.fixture
def served(tmp_path: Path, start: Start) -> Served:
    pytest.importorskip("gunicorn")
    (tmp_path / "opsapp.py").write_text(APP)
    database, spool = tmp_path / "ops.sqlite3", tmp_path / "spool"
    spool.mkdir()
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE jobs (id INTEGER)")
        connection.execute("INSERT INTO jobs VALUES (1), (2)")
    connection.close()
    port = free_port()
    env = dict(os.environ, OPS_DATABASE=str(database), OPS_SPOOL=str(spool))
    command = gunicorn_command(tmp_path)
    command += ["--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4"]
    start([*command, "opsapp:app"], env, port)
    return Served(port, database, spool)


def fetch(port: int, path: str) -> tuple[int, str, str, bytes]:
    """GET path: the code, Content-Type, Cache-Control and body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        content_type = response.getheader("Content-Type", "")
        return (
            response.status,
            content_type,
            response.getheader("Cache-Control", ""),
            response.read(),
        )
    finally:
        conn.close()


def test_per_check_route_over_http(served: Served) -> None:
    port = served.port
    assert http_get(port, "/readyz/db") == (200, b'{"status":"OK","db":2}')
    assert http_get(port, "/readyz/version") == (
        200,
        b'{"status":"OK","version":"1.2.3"}',
    )
    assert http_get(port, "/readyz/nope")[0] == 404
    served.spool.rmdir()  # not critical: WARN, for the whole and for itself
    assert http_get(port, "/readyz/spool") == (200, b'{"status":"WARN","spool":false}')
    assert http_get(port, "/readyz/db") == (200, b'{"status":"OK","db":2}')
    served.database.unlink()
    for _ in range(4):  # no cache: whichever worker answers runs the check
        assert http_get(port, "/readyz/db") == (503, b'{"status":"FAIL","db":false}')
    assert http_get(port, "/readyz?exclude=db") == (
        200,
        b'{"status":"WARN","version":"1.2.3","spool":false}',
    )


def test_prometheus_scrape_over_http(served: Served) -> None:
    parser = pytest.importorskip("prometheus_client.parser")

    def scrape() -> dict[str, dict[str, float]]:
        code, content_type, cache_control, body = fetch(
            served.port, "/readyz?format=prometheus"
        )
        assert (code, content_type, cache_control) == (200, PROMETHEUS, "no-store")
        return {
            family.name: {
                sample.labels.get("check", ""): sample.value
                for sample in family.samples
            }
            for family in parser.text_string_to_metric_families(body.decode())
        }

    metrics = scrape()
    assert list(metrics) == [
        "flask_status_up",
        "flask_status_check_up",
        "flask_status_check_duration_seconds",
    ]
    assert metrics["flask_status_up"] == {"": 1}
    assert metrics["flask_status_check_up"] == {"db": 1, "spool": 1}
    durations = metrics["flask_status_check_duration_seconds"]
    assert list(durations) == ["db", "spool"]
    assert all(0 <= value < 2 for value in durations.values())
    served.database.unlink()  # the scrape still answers 200, and says FAIL
    metrics = scrape()
    assert metrics["flask_status_up"] == {"": 0}
    assert metrics["flask_status_check_up"] == {"db": 0, "spool": 1}
    assert http_get(served.port, "/readyz")[0] == 503
