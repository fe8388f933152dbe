"""What the README quotes the code as saying, the code says: each error
block, and the reasons and log lines quoted in its text."""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import logged
from flask import Flask

from flask_status import FlaskStatus

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def error_blocks() -> list[str]:
    """The README's ```text blocks that quote an exception, one line each."""
    blocks = re.findall(r"```text\n(.*?)```", README, re.S)
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
    raised = [
        refused(lambda: FlaskStatus(message={"errors": []})),
        refused(lambda: FlaskStatus().add_field("tags", {"a"})),
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
    shown = {
        reasons(disk_full),
        reasons(empty),
        reasons(missing_table),
        reasons(missing_database(tmp_path)),
        reasons(gate.wait),
        reasons(lambda: False),
        reasons(lambda: b"raw"),
    }
    quoted = {
        "ValueError: disk full",
        "ValueError",
        "sqlite3.OperationalError: no such table: missing",
        "sqlite3.OperationalError: unable to open database file",
        "timed out after 0.8 s; still running",
        "returned False",
        "returned a bytes object that JSON cannot encode",
    }
    assert shown == quoted
    for text in quoted:
        assert f"`{text}`" in README or f'"{text}"' in README, text


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
    assert f"`{line}`" in README
