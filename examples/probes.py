"""Kubernetes-style probes with real dependency checks.

- ``/livez``: liveness. No dependencies: if the process answers, it is alive.
- ``/readyz``: readiness. A SQLite database (critical) and a cache server
  reached over TCP (not critical: without it the app is slower, not broken).
- ``/api/status``: the same checks in detail, with the reasons for failures,
  for operators holding the token in the ``X-Status-Token`` header.

Settings come from the environment: ``PROBES_DATABASE`` (a SQLite file,
created if missing), ``PROBES_CACHE`` (``host:port``) and ``PROBES_TOKEN``.

    gunicorn --chdir examples --bind 127.0.0.1:8000 --threads 8 probes:app
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import os
import socket
import sqlite3
from typing import Any
from typing import Callable

from flask import Flask
from flask import abort
from flask import request

from flask_status import FlaskStatus

DATABASE = os.environ.get("PROBES_DATABASE", "probes.sqlite3")
CACHE = os.environ.get("PROBES_CACHE", "127.0.0.1:6379")
TOKEN = os.environ.get("PROBES_TOKEN", "change-me")

app = Flask(__name__)
with contextlib.suppress(sqlite3.Error):  # create it if missing; /readyz tells
    sqlite3.connect(DATABASE).close()  # if that failed

FlaskStatus(app, url="/livez")
readyz = FlaskStatus(app, url="/readyz", timeout=0.5)
detailed = FlaskStatus(app, timeout=0.5, show_errors=True)


def database() -> bool:
    """The database file opens and its schema can be read (mode=rw: no file,
    no database; a long lock shows as a timeout)."""
    uri = f"file:{DATABASE}?mode=rw"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as db:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return True


def cache() -> bool:
    """The cache server accepts a TCP connection."""
    host, port = CACHE.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=0.2):
        return True


for status in (readyz, detailed):
    status.add_field("database", database)
    status.add_field("cache", cache, critical=False, timeout=0.3)


@detailed.auth
def token_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        token = request.headers.get("X-Status-Token", "")
        if not hmac.compare_digest(token.encode(), TOKEN.encode()):
            abort(401)
        return view(*args, **kwargs)

    return guarded


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=5000)
