"""The quick start, as in 1.0: ``python examples/main.py``, then open
http://127.0.0.1:5000/api/status. ``HOST`` and ``PORT`` in the environment
change where it serves."""

import os

from flask import Flask

from flask_status import FlaskStatus

app = Flask(__name__)
FlaskStatus(app)

if __name__ == "__main__":
    host = os.environ.get("HOST") or "127.0.0.1"
    app.run(host=host, port=int(os.environ.get("PORT") or 5000))
