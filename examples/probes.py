"""Kubernetes-style probes with real dependency checks, from one set of checks.

One ``FlaskStatus`` serves three URLs over the same runs of the same checks:

- ``/api/status``: every field in detail, with the reasons for failures, for
  operators holding the token in the ``X-Status-Token`` header.
- ``/livez``: liveness, a group with no checks (``include=[]``): if the
  process answers, it is alive.
- ``/readyz``: readiness, a group of every check: a SQLite database
  (critical) and a cache server reached over TCP (not critical: without it
  the app is slower, not broken). It is public, so that kubelet and load
  balancers need no token, and so it answers the status alone
  (``{"status": "OK"}``) with the HTTP code: the details are for
  ``/api/status``.

Each check runs once for every URL that shows it: in a worker process, a
probe of ``/readyz`` and an operator's request to ``/api/status`` at the same
moment share one run of the database check, one cache and one history. The
database's result is reused for 2 s (``cache=2``) on every URL, so an
operator sees a result at most 2 s old (each check's ``time`` in the
``application/health+json`` format says when it ran). The cache check
tolerates blips (``fail_after=3``): once it has passed, it turns the status
to WARN only after 3 failed runs in a row; until then its field shows
``false``, and ``/api/status`` says why, but the status stays OK and nothing
is logged at WARNING. (A cache down at the first run is WARN at once.)

Each check also has a route of its own (``per_check=True``):
``/readyz/database`` for a readiness probe that leaves the cache server out,
and ``/api/status/database`` in detail. Like ``/readyz``, ``/readyz/<key>``
is public: anyone may learn which checks there are and whether each passes,
never a value or a reason. ``flask --app probes status`` runs the checks
once without a server: every URL, one with ``--url /readyz``, or one check
with ``--url /readyz/database``.

Settings come from the environment:

- ``PROBES_DATABASE``: the SQLite file (default ``probes.sqlite3``). Neither
  importing nor serving the app creates it: creating it is the operator's
  job, with ``flask --app probes init-db``. Until then ``/readyz`` fails.
- ``PROBES_CACHE``: the cache server, ``host:port`` (default
  ``127.0.0.1:6379``).
- ``PROBES_TOKEN``: the token for ``/api/status`` and the routes below it.
  Unset or empty, it is ``change-me``, which is for local use only.
- ``HOST`` and ``PORT``: where ``python probes.py`` serves (default
  ``127.0.0.1`` and ``5000``). A WSGI server has its own setting: gunicorn's
  ``--bind``.

The default token is refused beyond loopback. ``python probes.py`` will not
start (exit status 1, before it listens) when ``HOST`` is not a loopback
address and ``PROBES_TOKEN`` is unset, empty or ``change-me``. Under gunicorn
or another WSGI server, the address the app will listen on is not known when
it is imported (it may come from ``--bind``, a config file,
``GUNICORN_CMD_ARGS``, ``PORT`` or an inherited socket), so there it is
checked on each request instead: ``/api/status`` accepts the default token
only from a client on a loopback address, and refuses it from anywhere else
as it refuses a wrong token (401), with a warning in the log. A reverse proxy
on the same host makes every request come from loopback: behind one, or on
any address but loopback, set ``PROBES_TOKEN``.

    cd examples
    flask --app probes init-db
    export PROBES_TOKEN=...  # a secret: the default is refused beyond loopback
    gunicorn --bind 0.0.0.0:8000 --threads 8 probes:app
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import os
import sqlite3
from typing import Any
from typing import Callable

import click
from flask import Flask
from flask import abort
from flask import request

from flask_status import FlaskStatus
from flask_status import sql_check
from flask_status import tcp_check

DEFAULT_TOKEN = "change-me"
DATABASE = os.environ.get("PROBES_DATABASE", "probes.sqlite3")
CACHE = os.environ.get("PROBES_CACHE", "127.0.0.1:6379")
TOKEN = os.environ.get("PROBES_TOKEN") or DEFAULT_TOKEN  # empty: the default

app = Flask(__name__)
# /api/status: every field, with the reasons for failures, behind the token.
status = FlaskStatus(app, timeout=0.5, show_errors=True, per_check=True)


# The database file opens and its schema can be read (mode=rw: no file, no
# database; reading sqlite_master notices a lock that SELECT 1 would not, and
# a long lock shows as a timeout).
database = sql_check(
    lambda: sqlite3.connect(f"file:{DATABASE}?mode=rw", uri=True, timeout=5),
    "SELECT count(*) FROM sqlite_master",
)
# The cache server accepts a TCP connection.
cache_host, cache_port = CACHE.rsplit(":", 1)
cache = tcp_check(cache_host, int(cache_port), timeout=0.2)


# Every replica is probed by the kubelet and by each load balancer, and all of
# them keep asking while the database struggles. cache=2 reuses the database's
# last result, pass or fail, for 2 s, on every URL: a probe storm costs a slow
# database one query every 2 s per worker process, not one per probe, and an
# operator at /api/status sees a result at most 2 s old.
status.add_field("database", database, cache=2)
# One refused connection is a blip, not a degraded app: the cache check turns
# the status to WARN (and logs it) only after 3 failed runs in a row.
status.add_field("cache", cache, critical=False, timeout=0.3, fail_after=3)

# Public groups skip the token and answer the status alone, with its code.
status.group("/livez", include=[], public=True)  # no checks at all
status.group("/readyz", public=True)  # every check


def is_loopback(host: str) -> bool:
    """``localhost``, or an address in 127.0.0.0/8 or ``::1``. Any other
    name counts as not loopback: it could resolve anywhere."""
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped.is_loopback  # ::ffff:127.0.0.1
    return address.is_loopback


@status.auth
def token_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        token = request.headers.get("X-Status-Token", "")
        if not hmac.compare_digest(token.encode(), TOKEN.encode()):
            abort(401)
        client = request.remote_addr or ""
        if TOKEN == DEFAULT_TOKEN and not is_loopback(client):
            app.logger.warning(
                "Refused the default token from %s: it is for local use only;"
                " set PROBES_TOKEN to a secret.",
                client,
            )
            abort(401)
        return view(*args, **kwargs)

    return guarded


@app.cli.command("init-db")
def init_db() -> None:
    """Create the SQLite database PROBES_DATABASE, if it is missing."""
    existed = os.path.exists(DATABASE)
    try:
        sqlite3.connect(DATABASE).close()
    except sqlite3.Error as error:
        raise click.ClickException(f"Cannot create {DATABASE}: {error}") from None
    click.echo(f"{'Found' if existed else 'Created'} {os.path.abspath(DATABASE)}")


def refuse_default_token(host: str) -> None:
    """Exit if serving on ``host`` would accept the default token from afar."""
    if TOKEN == DEFAULT_TOKEN and not is_loopback(host):
        raise SystemExit(
            f"Refusing to serve on HOST={host} with the default token"
            f" {DEFAULT_TOKEN!r}, which is for local use only: set PROBES_TOKEN"
            " to a secret (clients send it in the X-Status-Token header), or"
            " serve on a loopback address such as HOST=127.0.0.1."
        )


if __name__ == "__main__":
    host = os.environ.get("HOST") or "127.0.0.1"
    refuse_default_token(host)
    app.run(host=host, port=int(os.environ.get("PORT") or 5000))
