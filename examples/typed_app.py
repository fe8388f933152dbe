"""An app that type-checks against flask-status under ``mypy --strict``.

flask-status is one module, and a wheel can mark only a package as typed
(``py.typed``), so mypy skips an installed ``flask_status`` ("missing library
stubs or py.typed marker") unless told to read it: see ``mypy.ini`` beside
this file (mypy 1.14 or newer). CI checks this file against the installed
wheel, from a folder outside the source tree:

    mypy --config-file mypy.ini typed_app.py
"""

from __future__ import annotations

from flask import Flask

from flask_status import FlaskStatus

app = Flask(__name__)
status = FlaskStatus(app, url="/readyz", timeout=0.5, cache=1.0)
status.add_field("version", "1.4.2")


@status.field("queue", critical=False, timeout=0.2)
def queue_depth() -> int:
    return 0


@status.field
def database() -> bool:
    return True


# Typed, not Any: the decorators hand the functions back as they were.
depth: int = queue_depth()
up: bool = database()
