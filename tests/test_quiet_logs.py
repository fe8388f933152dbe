"""quiet_access_log: successful probes of the status URLs stay out of the
access logs of a real gunicorn (with and without --preload) and of the
development server; every other line stays."""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from helpers import wait_for
from servers import Gunicorn
from servers import http_get
from servers import served

from flask_status import FlaskStatus

SERVED = """\
import os

from flask import Flask
from flask_status import FlaskStatus

app = Flask(__name__)
database = {"up": True}
status = FlaskStatus(app, url="/readyz", per_check=True, quiet_access_log=True)
status.add_field("db", lambda: database["up"])
FlaskStatus(app, url="/livez")  # not quiet


@app.get("/down")
def down():
    database["up"] = False
    return "down"


@app.get("/hello")
def hello():
    return "hello"


@app.get("/pid")
def pid():
    return str(os.getpid())
"""

# Each request with the code it answers, and whether its line stays.
REQUESTS = [
    ("/readyz", 200, False),
    ("/readyz?format=html", 200, False),
    ("/readyz/db", 200, False),
    ("/livez", 200, True),  # another endpoint, not quiet
    ("/hello", 200, True),
    ("/readyz?format=xml", 400, True),
    ("/readyz/nope", 404, True),
    ("/down", 200, True),
    ("/readyz", 503, True),
    ("/readyz/db", 503, True),
]


def lines_of(log: str) -> list[tuple[str, int]]:
    """The request targets and codes in an access log, without the colours
    the development server gives some."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", log)
    found = re.findall(r'"GET (\S+) HTTP/1\.[01]" (\d{3})', plain)
    return [(target, int(code)) for target, code in found]


def probe(port: int) -> None:
    """Send ``REQUESTS`` in order, checking each code, then ``/hello?end``."""
    for path, code, _ in REQUESTS:
        assert (path, http_get(port, path)[0]) == (path, code)
    assert http_get(port, "/hello?end")[0] == 200


@pytest.mark.parametrize("preload", [False, True], ids=["no-preload", "preload"])
def test_gunicorn_access_log_keeps_all_but_successful_probes(
    gunicorn: Gunicorn, tmp_path: Path, preload: bool
) -> None:
    access = tmp_path / "access.log"
    options = ["--access-logfile", str(access)] + ["--preload"] * preload
    _, port = gunicorn(SERVED, *options)
    probe(port)
    wait_for(lambda: "/hello?end" in access.read_text(), "the last access line")
    expected = [(path, code) for path, code, stays in REQUESTS if stays]
    assert lines_of(access.read_text()) == [*expected, ("/hello?end", 200)]


def test_gunicorn_access_log_stays_quiet_after_a_reload(
    gunicorn: Gunicorn, tmp_path: Path
) -> None:
    """On SIGHUP gunicorn's master sets its log handlers up anew, and with
    --preload it does not import the app again: a filter on the handlers
    would be gone for the new workers. The one on the logger stays."""
    access = tmp_path / "access.log"
    master, port = gunicorn(SERVED, "--access-logfile", str(access), "--preload")
    before = http_get(port, "/pid")[1]
    os.kill(master.pid, signal.SIGHUP)
    wait_for(lambda: http_get(port, "/pid")[1] != before, "a new worker", timeout=30)
    probe(port)
    wait_for(lambda: "/hello?end" in access.read_text(), "the last access line")
    expected = [(path, code) for path, code, stays in REQUESTS if stays]
    logged = [line for line in lines_of(access.read_text()) if line[0] != "/pid"]
    assert logged == [*expected, ("/hello?end", 200)]


@pytest.fixture
def werkzeug_log(caplog: pytest.LogCaptureFixture) -> Callable[[], str]:
    """The development server's access lines so far, one a line."""
    caplog.set_level(logging.INFO, logger="werkzeug")

    def lines() -> str:
        records = caplog.records
        return "\n".join(r.getMessage() for r in records if r.name == "werkzeug")

    return lines


def development_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Flask:
    """The app that gunicorn serves, imported in this process."""
    path = tmp_path / "quiet_served.py"
    path.write_text(SERVED)
    spec = importlib.util.spec_from_file_location("quiet_served", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # where Flask looks
    spec.loader.exec_module(module)
    app: Flask = module.app
    return app


def test_development_server_log_keeps_all_but_successful_probes(
    werkzeug_log: Callable[[], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with served(development_app(tmp_path, monkeypatch)) as port:
        probe(port)
        wait_for(lambda: "/hello?end" in werkzeug_log(), "the last access line")
    expected = [(path, code) for path, code, stays in REQUESTS if stays]
    assert lines_of(werkzeug_log()) == [*expected, ("/hello?end", 200)]


def test_quiet_is_off_by_default(app: Flask, werkzeug_log: Callable[[], str]) -> None:
    FlaskStatus(app, url="/loud")
    with served(app) as port:
        assert http_get(port, "/loud")[0] == 200
        wait_for(lambda: "/loud" in werkzeug_log(), "the access line of /loud")
    assert lines_of(werkzeug_log()) == [("/loud", 200)]


def test_config_key_turns_it_on(app: Flask, werkzeug_log: Callable[[], str]) -> None:
    app.config["STATUS_QUIET_ACCESS_LOG"] = True
    FlaskStatus(app, url="/hushed")
    app.add_url_rule("/after", "after", lambda: "after")
    with served(app) as port:
        assert http_get(port, "/hushed")[0] == 200
        assert http_get(port, "/after")[0] == 200
        wait_for(lambda: "/after" in werkzeug_log(), "the access line of /after")
    assert lines_of(werkzeug_log()) == [("/after", 200)]


def test_the_filter_is_installed_once_per_logger() -> None:
    loggers = [logging.getLogger(n) for n in ("werkzeug", "gunicorn.access")]
    first = Flask("first")
    status = FlaskStatus(first, url="/a", quiet_access_log=True)
    installed = [list(logger.filters) for logger in loggers]
    for filters in installed:
        assert sum(type(f).__module__ == "flask_status" for f in filters) == 1
    second = Flask("second")
    status.init_app(second)  # the same instance on another app
    FlaskStatus(first, url="/b", quiet_access_log=True)  # another instance
    assert [list(logger.filters) for logger in loggers] == installed


def test_a_url_that_is_not_ascii_is_quiet_as_it_is_logged(app: Flask) -> None:
    """Servers log the path as the client sent it, percent-encoded."""
    FlaskStatus(app, url="/santé", quiet_access_log=True)

    def kept(line: str, code: str) -> bool:
        record = logging.LogRecord(
            "werkzeug",
            logging.INFO,
            __file__,
            1,
            '127.0.0.1 - - [02/Dec/2026 08:00:00] "%s" %s %s',
            (line, code, "-"),
            None,
        )
        return bool(logging.getLogger("werkzeug").filter(record))

    assert not kept("GET /sant%C3%A9 HTTP/1.1", "200")
    assert kept("GET /sant%C3%A9 HTTP/1.1", "503")
    assert kept("GET /other HTTP/1.1", "200")
