"""The README's quick start: ``python examples/main.py``, then open
http://127.0.0.1:5000/api/status."""

from flask import Flask

from flask_status import FlaskStatus

app = Flask(__name__)
FlaskStatus(app)

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=5000)
