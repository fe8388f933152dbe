"""The README's demo: ``python examples/demo.py``, then open the URLs it prints.

- ``/api/status``: every field, with the reasons for failures
  (``show_errors``); a browser gets it as a page, as does ``?format=html``.
- ``/livez``: liveness, a group with no checks: the process answers, so it
  is alive.
- ``/readyz``: readiness, a public group: the status of the critical check
  on a real SQLite database, and nothing more, as kubelet sees it.

The three URLs are one instance's: probed at once, the check runs once.

The demo creates its database, ``demo.sqlite3`` beside this file (or
``DEMO_DATABASE``), when it starts, and prints how to make the check fail and
recover: move the file away, then back. The check opens the file with
``mode=rw``, so a missing file is a failure, never a new empty database.
Failures are logged at ERROR and recoveries at INFO, both shown here.
``HOST`` and ``PORT`` change where it serves (default ``127.0.0.1:5000``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from pathlib import Path

from flask import Flask

from flask_status import FlaskStatus

DATABASE = Path(
    os.environ.get("DEMO_DATABASE") or Path(__file__).with_name("demo.sqlite3")
).resolve()

app = Flask(__name__)
app.logger.setLevel(logging.INFO)  # show the recovery lines, which are INFO
status = FlaskStatus(app, show_errors=True)  # /api/status


def database() -> bool:
    """The database file opens and its schema can be read."""
    uri = f"{DATABASE.as_uri()}?mode=rw"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=0.5)) as db:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return True


status.add_field("version", "1.0")
status.add_field("database", database)
status.group("/livez", include=[])
status.group("/readyz", include=["database"], public=True)


def create_database() -> None:
    """Create the demo's database, if it is missing."""
    sqlite3.connect(DATABASE).close()


def guide(base: str) -> str:
    """What the demo prints: the URLs to open and how to see a failure."""
    away = DATABASE.with_name(DATABASE.name + ".away")
    return f"""\
flask-status demo, with a check on the SQLite database {DATABASE}

Open:
  {base}/livez                  liveness: no checks
  {base}/readyz                 readiness: the status alone, as kubelet sees it
  {base}/api/status             the details, with the reasons for failures
  {base}/api/status?format=html the status page (a browser gets it anyway)

Make the check fail: move the database away, then reload /readyz (503, FAIL)
  mv {DATABASE} {away}
Make it recover: move it back, then reload (200, OK)
  mv {away} {DATABASE}

Stop the demo with Ctrl+C.
"""


if __name__ == "__main__":
    host = os.environ.get("HOST") or "127.0.0.1"
    port = int(os.environ.get("PORT") or 5000)
    create_database()
    print(guide(f"http://{host}:{port}"), flush=True)
    app.run(host=host, port=port)
