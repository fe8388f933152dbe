"""The tests leave nothing outside the clone and the temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from servers import Gunicorn
from servers import http_get

SERVED = """
from flask import Flask
from flask_status import FlaskStatus

app = Flask(__name__)
FlaskStatus(app)
"""


def test_gunicorn_writes_no_control_socket_into_home(
    gunicorn: Gunicorn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gunicorn as the tests start it, with a home of its own: newer
    releases would put ``.gunicorn/gunicorn.ctl`` there."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    _, port = gunicorn(SERVED)
    assert http_get(port, "/api/status") == (200, b'{"status":"OK"}')
    assert list(home.iterdir()) == []
