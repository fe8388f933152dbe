"""What the README and the manual (docs/) quote the code as saying, the code
says: each error block, the reasons and log lines quoted in their text, and
the README's Kubernetes recipe, followed as written, with the Prometheus
scrape config beside it."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import sqlite3
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from helpers import StartsWith
from helpers import Switch
from helpers import logged
from servers import Start
from servers import free_port
from servers import gunicorn_command
from servers import http_get

from flask_status import FlaskStatus

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TEXT = "\n".join(page.read_text() for page in PAGES)  # README, then the manual


def error_blocks() -> list[str]:
    """The ```text blocks that quote an exception, one line each, in the
    README and then the manual's pages by name."""
    blocks = re.findall(r"```text\n(.*?)```", TEXT, re.S)
    return [" ".join(b.split()) for b in blocks if re.match(r"\w+Error: ", b)]


def refused(setup: Callable[[], object]) -> str:
    with pytest.raises((TypeError, ValueError)) as error:
        setup()
    return f"{type(error.value).__name__}: {error.value}"


def timeout_from_the_environment() -> None:
    app = Flask(__name__)
    app.config["STATUS_TIMEOUT"] = "5"
    FlaskStatus(app)


def test_each_quoted_error_is_the_one_raised() -> None:
    raised = [  # docs/checks.md, then docs/setup.md
        refused(lambda: FlaskStatus(message={"errors": []})),
        refused(lambda: FlaskStatus().add_field("tags", {"a"})),
        refused(lambda: FlaskStatus().add_field("", True)),
        refused(lambda: FlaskStatus().add_field("status", True)),
        refused(lambda: FlaskStatus(status_codes={"FAIL": 200})),
        refused(timeout_from_the_environment),
    ]
    assert error_blocks() == raised


def reasons(check: Callable[[], object], timeout: float = 0.8) -> str:
    app = Flask(__name__)
    FlaskStatus(app, show_errors=True, timeout=timeout).add_field("db", check)
    body = app.test_client().get("/api/status").get_json()
    return str(body["errors"]["db"])


def missing_database(tmp_path: Path) -> Callable[[], object]:
    def check() -> object:
        uri = f"file:{tmp_path / 'gone.sqlite3'}?mode=rw"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            return db.execute("SELECT 1").fetchone()

    return check


def missing_table() -> object:
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        return db.execute("SELECT * FROM missing").fetchone()


def disk_full() -> object:
    raise ValueError("disk full")


def empty() -> object:
    raise ValueError


def test_each_quoted_reason_is_the_one_shown(
    tmp_path: Path, gate: threading.Event
) -> None:
    shown = [
        reasons(disk_full),
        reasons(empty),
        reasons(missing_table),
        reasons(missing_database(tmp_path)),
        reasons(gate.wait),
        reasons(lambda: False),
        reasons(lambda: b"raw"),
    ]
    sqlite = StartsWith("sqlite3.OperationalError: ")  # then SQLite's words
    expected: list[str | StartsWith] = [
        "ValueError: disk full",
        "ValueError",
        sqlite,  # no such table
        sqlite,  # a missing file
        "timed out after 0.8 s; still running",
        "returned False",
        "returned a bytes object that JSON cannot encode",
    ]
    assert shown == expected
    for text in expected:
        if isinstance(text, str):
            assert f"`{text}`" in TEXT or f'"{text}"' in TEXT, text
    # the pages quote SQLite's reasons as examples; their words are SQLite's
    assert len(re.findall(r'[`"]sqlite3\.OperationalError: \w[^`"]*[`"]', TEXT)) >= 2


def test_the_quoted_recovery_line_is_the_one_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Flask(__name__)
    up = [False]
    FlaskStatus(app).add_field("db", lambda: up[0])
    client = app.test_client()
    client.get("/api/status")
    up[0] = True
    with caplog.at_level(logging.INFO, logger=app.name):
        client.get("/api/status")
    [line] = [r.getMessage() for r in logged(app, caplog) if r.levelno == logging.INFO]
    assert line == "Check 'db' of /api/status passes again."
    assert f"`{line}`" in TEXT


def test_the_logging_page_quotes_the_lines_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Flask("logging_page")
    status = FlaskStatus(app, url="/readyz")
    db, cache = Switch(False), Switch(False)
    status.add_field("db", db)
    status.add_field("cache", cache, critical=False)
    client = app.test_client()
    with caplog.at_level(logging.INFO, logger=app.name):
        client.get("/readyz")
        db.result = True
        client.get("/readyz?exclude=cahce")
    lines = [(r.levelname, r.getMessage()) for r in logged(app, caplog)]
    assert sorted(lines) == [
        ("ERROR", "Check 'db' of /readyz failed: returned False"),
        ("INFO", "Check 'db' of /readyz passes again."),
        ("WARNING", "Cannot exclude 'cahce' from /readyz: there is no such field."),
        ("WARNING", "Check 'cache' of /readyz failed: returned False"),
    ]
    page = (ROOT / "docs" / "logging.md").read_text()
    for level, line in lines:
        assert f"| {level} | `{line}` |" in page


def the_recipe() -> str:
    """The README's Kubernetes recipe: its Python block with details_when."""
    [code] = [
        block
        for block in re.findall(r"```python\n(.*?)```", README, re.S)
        if "details_when" in block
    ]
    return str(code)


def test_prometheus_gets_the_details_with_the_readme_scrape_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scrape config sends its credentials_file as Authorization: Bearer,
    which is what the recipe's is_operator reads."""
    [scrape] = re.findall(r"```yaml\n(scrape_configs:.*?)```", README, re.S)
    assert "metrics_path: /readyz" in scrape
    assert "params: {format: [prometheus]}" in scrape
    assert re.search(r"authorization:\n +credentials_file: ", scrape)
    database = tmp_path / "app.sqlite3"
    sqlite3.connect(database).close()
    monkeypatch.setenv("DATABASE", str(database))
    monkeypatch.setenv("OPS_TOKEN", "s3cret")
    monkeypatch.setenv("STATUS_SHARE", str(tmp_path / "status.sqlite3"))
    recipe: dict[str, Any] = {"__name__": "main"}
    exec(the_recipe(), recipe)
    client = recipe["app"].test_client()

    def scraped(headers: dict[str, str]) -> list[str]:
        response = client.get("/readyz?format=prometheus", headers=headers)
        text = response.get_data(as_text=True)
        return [line for line in text.splitlines() if not line.startswith("#")]

    assert scraped({"Authorization": "Bearer s3cret"}) == [
        'flask_status_up{url="/readyz"} 1',
        'flask_status_check_up{url="/readyz",check="database"} 1',
        AnyDuration(
            'flask_status_check_duration_seconds{url="/readyz",check="database"} '
        ),
    ]
    for wrong in ({}, {"Authorization": "Bearer nope"}, {"X-Operator-Token": "s3cret"}):
        assert scraped(wrong) == ['flask_status_up{url="/readyz"} 1']
    assert client.get("/livez").get_json() == {"status": "OK"}
    monkeypatch.setenv("DATABASE", str(tmp_path / "missing.sqlite3"))
    # Another deploy in this process: another store, or it would read the
    # first app's fresh result (processes tell deploys apart; see _parent).
    monkeypatch.setenv("STATUS_SHARE", str(tmp_path / "status-2.sqlite3"))
    exec(the_recipe(), recipe)
    probe = recipe["app"].test_client().get("/readyz")
    assert (probe.status_code, probe.get_json()) == (503, {"status": "FAIL"})
    assert not (tmp_path / "missing.sqlite3").exists()


class AnyDuration(str):
    """A metric line with this prefix and any number after it."""

    def __eq__(self, other: object) -> bool:
        rest = str(other).removeprefix(self)
        return (
            isinstance(other, str)
            and other.startswith(self)
            and bool(re.fullmatch(r"[0-9.e-]+", rest))
        )

    __hash__ = str.__hash__


def the_whole_recipe() -> str:
    """The README's text between the recipe's marks, as docs/deploying.md
    includes it."""
    begin = README.index("<!-- recipe: docs/deploying.md includes from here -->")
    return README[begin : README.index("<!-- recipe ends -->")]


def test_the_recipe_serves_as_its_commands_say(tmp_path: Path, start: Start) -> None:
    """A newcomer's steps: save main.py, run the recipe's commands in its
    folder (gunicorn is installed already; the port is a free one), then
    probe: no token gets the status, the token gets the checks."""
    [commands] = re.findall(r"```sh\n(.*?)```", the_whole_recipe(), re.S)
    install, *setup, serve = [
        line.split("  #")[0].strip() for line in commands.splitlines()
    ]
    assert install == "pip install gunicorn"
    pytest.importorskip("gunicorn")  # the test extra's
    (tmp_path / "main.py").write_text(the_recipe())
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE", "OPS_TOKEN")}
    env["STATUS_SHARE"] = str(tmp_path / "status.sqlite3")  # not /tmp's, as written
    script = "\n".join([*setup, 'printf %s "$OPS_TOKEN"'])
    token = subprocess.run(
        ["bash", "-euc", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert (tmp_path / "app.sqlite3").is_file() and len(token) >= 32
    program, *options = shlex.split(serve)
    assert program == "gunicorn" and "127.0.0.1:8000" in options
    port = free_port()
    options[options.index("127.0.0.1:8000")] = f"127.0.0.1:{port}"
    start([*gunicorn_command(tmp_path), *options], {**env, "OPS_TOKEN": token}, port)
    assert http_get(port, "/readyz") == (200, b'{"status":"OK"}')
    operator = {"Authorization": f"Bearer {token}"}
    assert http_get(port, "/readyz", operator) == (
        200,
        b'{"status":"OK","database":true}',
    )
    assert http_get(port, "/livez") == (200, b'{"status":"OK"}')
