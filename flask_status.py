# SPDX-License-Identifier: MIT
"""A health and status endpoint for Flask, in one file.

.. code-block:: python

    from flask import Flask
    from flask_status import FlaskStatus

    app = Flask(__name__)
    status = FlaskStatus(app)

    @status.field("database")
    def database():
        return db.ping()

``GET /api/status`` then answers ``{"status": "OK", "database": true}``, or
``{"status": "FAIL", "database": false}`` with HTTP 503 if the check raises,
returns ``False`` or outlasts its timeout. ``flask status`` runs the same
checks from the command line.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import datetime
import functools
import inspect
import json
import logging
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from typing import Any
from typing import NamedTuple
from typing import TypeVar
from typing import Union
from typing import overload

import click
from flask import Flask
from flask import Response
from flask import current_app
from flask import request
from flask.cli import with_appcontext

__version__ = "2.0.0"
__all__ = ["FlaskStatus"]

View = Callable[..., Any]
Authenticator = Callable[[View], View]
Message = Union[str, dict[str, Any]]
F = TypeVar("F", bound=Callable[..., Any])
A = TypeVar("A", bound=Authenticator)


class FlaskStatus:
    """Serve the status of a Flask app as JSON at one URL.

    Every setting left as ``None`` is read from the app's config key named
    in brackets, which defaults to the value given.

    :param app: the app to serve; or leave it out and call :meth:`init_app`.
    :param url: where to serve it [``STATUS_URL``, ``"/api/status"``].
    :param message: the base payload: a dict, or a string that becomes
        ``{"message": "..."}`` [``STATUS_MESSAGE``, ``{"status": "OK"}``].
    :param authenticator: a view decorator that guards the route, as :meth:`auth`.
    :param timeout: seconds a check may take, counted from the start of the
        request [``STATUS_TIMEOUT``, ``0.8``].
    :param cache: seconds a check's result is reused [``STATUS_CACHE``, ``0``].
    :param show_errors: show why checks failed in the response
        [``STATUS_SHOW_ERRORS``, ``False``].
    :param workers: threads that may run checks at once [``STATUS_WORKERS``, ``8``].

    .. code-block:: python

        status = FlaskStatus(url="/readyz")

        def create_app():
            app = Flask(__name__)
            status.init_app(app)
            return app
    """

    def __init__(
        self,
        app: Flask | None = None,
        url: str | None = None,
        message: Message | None = None,
        authenticator: Authenticator | None = None,
        *,
        timeout: float | None = None,
        cache: float | None = None,
        show_errors: bool | None = None,
        workers: int | None = None,
    ) -> None:
        given = dict(
            url=url,
            message=message,
            timeout=timeout,
            cache=cache,
            show_errors=show_errors,
            workers=workers,
        )
        self._given = {k: _SETTINGS[k][1](v) for k, v in given.items() if v is not None}
        self._fields: dict[str, _Field] = {}
        self._guarded: View = self._respond
        # Per-app state; weak keys, so the extension never keeps an app alive.
        self._apps: weakref.WeakKeyDictionary[Flask, _Endpoint] = (
            weakref.WeakKeyDictionary()
        )
        if authenticator is not None:
            self.auth(authenticator)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the status route on ``app``, reading its ``STATUS_*`` config.

        :param app: the app to serve. One instance may serve many apps.
        :raises TypeError: if a config value is of the wrong kind.
        :raises ValueError: if a config value is invalid, or the URL is taken.
        :raises RuntimeError: if this instance already serves ``app``.
        """
        if app in self._apps:
            raise RuntimeError(
                f"This FlaskStatus already serves {app!r}; create another"
                " FlaskStatus to serve a second URL."
            )
        settings = {}
        for name, (default, check) in _SETTINGS.items():
            key = f"STATUS_{name.upper()}"
            app.config.setdefault(key, copy.copy(default))
            given = name in self._given
            settings[name] = self._given[name] if given else check(app.config[key])
        url = settings.pop("url")
        served: dict[str, FlaskStatus] = app.extensions.setdefault("status", {})
        if url in served or any(rule.rule == url for rule in app.url_map.iter_rules()):
            raise ValueError(
                f"The URL {url!r} is already routed on {app!r}; give this"
                " FlaskStatus another url."
            )
        app.add_url_rule(
            url,
            f"status:{url}",
            self._view,
            methods=["GET"],  # and HEAD; anything else is 405, OPTIONS too
            provide_automatic_options=False,
        )
        if "status" not in app.cli.commands:  # the app's own command stays
            app.cli.add_command(_status_command)
        served[url] = self
        self._apps[app] = _Endpoint(**settings)

    def add_field(
        self,
        key: str,
        value: Any,
        *,
        critical: bool = True,
        timeout: float | None = None,
        cache: float | None = None,
    ) -> None:
        """Add ``key`` to the payload: a static JSON value, or a check.

        A check is a callable (``async def`` too) run on every request, in an
        application context; its return value is shown. It fails when it
        raises, returns ``False``, outlasts its timeout or returns something
        JSON cannot encode: then its field shows ``false``, and the status
        becomes ``"FAIL"`` (HTTP 503) if it is critical, else ``"WARN"``.

        :param key: the payload key; fields follow the message's keys in the
            order they were added.
        :param value: a JSON-encodable value, or a callable taking no arguments.
        :param critical: a check whose failure fails the whole status.
        :param timeout: seconds this check may take; default: the instance's.
        :param cache: seconds this check's result is reused; default: the
            instance's.
        :raises TypeError: if ``key`` is not a string, ``value`` is neither
            JSON-encodable nor callable, or the callable needs arguments.
        :raises ValueError: if ``key`` is empty, reserved or already added,
            or an option is out of range.

        .. code-block:: python

            status.add_field("version", "1.4.2")
            status.add_field("cache", ping_cache, critical=False, timeout=0.2)
        """
        if not isinstance(key, str):
            raise TypeError(f"A field key must be a string, not {key!r}.")
        if not key or key in _RESERVED:
            raise ValueError(
                f"The field key {key!r} is empty or reserved; choose another key."
            )
        if key in self._fields:
            raise ValueError(
                f"A field {key!r} is already added; choose another key or"
                " another FlaskStatus."
            )
        if callable(value):
            _needs_no_arguments(key, value)
        elif (critical, timeout, cache) != (True, None, None):
            raise TypeError(
                f"critical, timeout and cache apply to checks, but field {key!r}"
                f" is the static value {value!r}; pass a callable instead."
            )
        else:
            _json_value(f"The value of field {key!r}", value)
        field = _Field(
            value,
            _bool("critical", critical),
            None if timeout is None else _timeout(timeout),
            None if cache is None else _cache(cache),
        )
        # A new dict, not an update: requests under way keep the one they read.
        self._fields = {**self._fields, key: field}

    @overload
    def field(self, name: F) -> F: ...

    @overload
    def field(
        self,
        name: str | None = None,
        *,
        critical: bool = True,
        timeout: float | None = None,
        cache: float | None = None,
    ) -> Callable[[F], F]: ...

    def field(self, name: str | F | None = None, **options: Any) -> Any:
        """Register the decorated function as a check; see :meth:`add_field`.

        Used bare, the field takes the function's ``__name__``; the function
        is returned unchanged.

        :param name: the payload key.
        :param options: ``critical``, ``timeout`` and ``cache``, as for
            :meth:`add_field`.

        .. code-block:: python

            @status.field("cache", critical=False, timeout=0.2)
            async def cache():
                return await redis.ping()
        """
        if callable(name):
            return self.field(**options)(name)

        def register(func: F) -> F:
            key = getattr(func, "__name__", None) if name is None else name
            if key is None:
                raise TypeError(
                    f"{func!r} has no __name__; name the field: @status.field('name')."
                )
            self.add_field(key, func, **options)
            return func

        return register

    def auth(self, authenticator: A) -> A:
        """Guard the status route with ``authenticator``, a view decorator.

        It runs before any check, so its responses, including ``abort(401)``
        and ``abort(403)``, reach the client untouched. It may be set after
        :meth:`init_app`; it is returned unchanged, so it can guard other
        views too.

        :param authenticator: a callable that takes a view and returns a view.
        :raises TypeError: if it is not callable or does not return a callable.

        .. code-block:: python

            @status.auth
            def login_required(view):
                @functools.wraps(view)
                def wrapper(*args, **kwargs):
                    if not current_user.is_authenticated:
                        abort(401)
                    return view(*args, **kwargs)
                return wrapper
        """
        guarded = authenticator(self._respond) if callable(authenticator) else None
        if not callable(guarded):
            raise TypeError(
                f"The authenticator {authenticator!r} must be a view decorator:"
                " a callable that takes a view function and returns one."
            )
        self._guarded = guarded
        return authenticator

    def _view(self) -> Any:
        return self._guarded()

    def _respond(self) -> Response:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        health = "health+json" in request.headers.get("Accept", "") and (
            request.accept_mimetypes.best_match(_MIMETYPES) == _MIMETYPES[1]
        )
        code, body = self._report(app, health)
        return app.response_class(  # type: ignore[no-any-return]
            body, code, {"Cache-Control": "no-store"}, _MIMETYPES[health]
        )

    def _report(self, app: Flask, health: bool = False) -> tuple[int, str]:
        """Run the checks for ``app``: the HTTP code and the JSON body, in
        the 1.0 format or, with ``health``, in application/health+json."""
        endpoint, fields = self._apps[app], self._fields
        outcomes = endpoint.check(app, fields)
        failed = [fields[k].critical for k, o in outcomes.items() if not o.ok]
        state = "FAIL" if any(failed) else "WARN" if failed else "OK"
        payload = dict(endpoint.message)
        for key, field in fields.items():
            if not field.check:
                payload[key] = field.value
            elif health:
                payload.setdefault("checks", {})[key] = [
                    _health_check(outcomes[key], field.critical, endpoint.show_errors)
                ]
            else:
                payload[key] = outcomes[key].value
        if health:
            payload["status"] = _HEALTH[state]
        elif state != "OK" and "status" in payload:
            payload["status"] = state
        if endpoint.show_errors and failed and not health:
            payload["errors"] = {k: o.reason for k, o in outcomes.items() if not o.ok}
        body = json.dumps(payload, separators=(",", ":"))
        return (503 if state == "FAIL" else 200), body


_RESERVED = frozenset({"status", "errors", "checks"})
_MIMETYPES = ("application/json", "application/health+json")
_HEALTH = {"OK": "pass", "WARN": "warn", "FAIL": "fail"}
_SPREAD_AFTER = 0.001  # seconds a request waits before queued checks get workers


class _Field(NamedTuple):
    value: Any  # the static value, or the check
    critical: bool = True
    timeout: float | None = None
    cache: float | None = None

    @property
    def check(self) -> bool:
        return callable(self.value)


class _Outcome(NamedTuple):
    """What one run of a check came to."""

    ok: bool
    value: Any  # shown in the payload: the check's result, or False
    reason: str | None = None  # why it failed
    at: float = 0.0  # when, in seconds since the epoch


class _Run:
    """One call of a check, which any number of requests may wait for."""

    __slots__ = ("done", "expires", "late", "outcome")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.expires = 0.0  # monotonic time from which the outcome is stale
        self.late = False  # a request has logged that it timed out
        self.outcome = _Outcome(False, False, "did not finish")


class _Endpoint:
    """What one FlaskStatus serves on one app: its settings and its runs."""

    def __init__(
        self,
        message: dict[str, Any],
        timeout: float,
        cache: float,
        show_errors: bool,
        workers: int,
    ) -> None:
        self.message = message
        self.timeout = timeout
        self.cache = cache
        self.show_errors = show_errors
        self._pool = _Pool(workers)
        self._runs: dict[str, _Run] = {}  # the latest run of each check
        self._lock = threading.Lock()

    def check(self, app: Flask, fields: dict[str, _Field]) -> dict[str, _Outcome]:
        """Run the checks among ``fields`` at once, each joining a run already
        under way or still fresh, and wait for each until its deadline."""
        start = time.monotonic()
        runs: dict[str, tuple[_Field, _Run]] = {}
        new: list[tuple[Flask, Callable[[], None]]] = []
        with self._lock:
            for key, field in fields.items():
                if not field.check:
                    continue
                run = self._runs.get(key)
                if run is None or (run.done.is_set() and run.expires <= start):
                    run = self._runs[key] = _Run()
                    cache = self.cache if field.cache is None else field.cache
                    new.append((app, functools.partial(_call, run, key, field, cache)))
                runs[key] = field, run
        if new:
            self._pool.submit(new)
        outcomes = {}
        for key, (field, run) in runs.items():
            timeout = field.timeout or self.timeout  # never 0
            deadline = start + timeout
            done = run.done.is_set() or run.done.wait(
                max(0.0, min(_SPREAD_AFTER, deadline - time.monotonic()))
            )
            if not done:  # a slow check: the queued ones get workers of their own
                self._pool.spread()
                done = run.done.wait(max(0.0, deadline - time.monotonic()))
            if done:
                outcomes[key] = run.outcome
                continue
            reason = f"timed out after {float(timeout)} s"
            outcomes[key] = _Outcome(False, False, reason, time.time())
            if not run.late:
                run.late = True
                _log(key, field.critical, reason + "; it has not returned yet")
        return outcomes


class _Pool:
    """Daemon threads that run tasks, each batch in one application context.

    A submission wakes one worker, which drains quick tasks alone: a thread
    wake-up costs about as much as a small request. :meth:`spread` wakes a
    worker for each task still queued, for when one is slow. Daemon threads
    never hold up the interpreter's exit, as a hung check in a
    ``concurrent.futures`` pool would.
    """

    idle = 60.0  # seconds a worker waits for a task before it exits

    def __init__(self, size: int) -> None:
        self._size = size
        # Each task carries its app: the pool lives in the app's weakly keyed
        # state, so holding the app itself would keep that app alive.
        self._tasks: collections.deque[tuple[Flask, Callable[[], None]]] = (
            collections.deque()
        )
        self._cond = threading.Condition(threading.Lock())
        self._waiting = 0  # workers waiting for a task
        self._threads = 0  # workers alive

    def submit(self, tasks: list[tuple[Flask, Callable[[], None]]]) -> None:
        with self._cond:
            self._tasks.extend(tasks)
            self._wake(1)

    def spread(self) -> None:
        with self._cond:
            self._wake(len(self._tasks))

    def _wake(self, count: int) -> None:  # with self._cond held
        idle = min(count, self._waiting)
        self._cond.notify(idle)
        for _ in range(min(count - idle, self._size - self._threads)):
            self._threads += 1
            worker = threading.Thread(target=self._work, name="flask-status")
            worker.daemon = True
            worker.start()

    def _work(self) -> None:
        task = self._next(wait=True)
        while task is not None:
            app = task[0]
            try:
                with app.app_context():  # one context for each batch of tasks
                    while task is not None:
                        task[1]()
                        task = self._next(wait=False)
            except Exception:  # the app's teardown hooks; the worker lives on
                msg = "The application context of a status check failed to close."
                app.logger.exception(msg)
            task = self._next(wait=True)

    def _next(self, wait: bool) -> tuple[Flask, Callable[[], None]] | None:
        with self._cond:
            while wait and not self._tasks:
                self._waiting += 1
                woken = self._cond.wait(self.idle)
                self._waiting -= 1
                if not woken and not self._tasks:
                    self._threads -= 1
                    return None
            if not self._tasks:
                return None
            return self._tasks.popleft()


def _call(run: _Run, key: str, field: _Field, cache: float) -> None:
    """Run a check in a worker and settle its run, however the call ends."""
    try:
        value = field.value()
        if inspect.iscoroutine(value):
            value = asyncio.run(value)
        run.outcome = _judge(value)
        if not run.outcome.ok:
            _log(key, field.critical, str(run.outcome.reason))
    except BaseException as error:  # SystemExit too: a run must always settle
        reason = traceback.format_exception_only(type(error), error)[-1].strip()
        run.outcome = _Outcome(False, False, reason, time.time())
        _log(key, field.critical, reason, error)
    finally:  # logged first, so a response never comes before its log record
        run.expires = time.monotonic() + cache
        run.done.set()


def _health_check(outcome: _Outcome, critical: bool, show_errors: bool) -> Any:
    """One entry of a health+json ``checks`` object, as in the IETF draft
    draft-inadarei-api-health-check-06."""
    entry = {
        "status": "pass" if outcome.ok else "fail" if critical else "warn",
        "observedValue": outcome.value,
        "time": datetime.datetime.fromtimestamp(outcome.at, datetime.timezone.utc)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
    }
    if show_errors and not outcome.ok:
        entry["output"] = outcome.reason
    return entry


@click.command("status")
@click.option("--url", help="Run only the endpoint at this URL, such as /readyz.")
@with_appcontext
def _status_command(url: str | None) -> None:
    """Run the app's status checks and print each endpoint's payload.

    Exits 0 when every endpoint is OK or WARN, and 1 when one is FAIL, so that
    a container can use: HEALTHCHECK CMD flask --app main status
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    served: dict[str, FlaskStatus] = app.extensions["status"]
    if url is not None:
        try:
            url = _url(url)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--url") from None
        if url not in served:
            raise click.BadParameter(
                f"{url!r} is not served by flask-status; choose one of"
                f" {', '.join(map(repr, served))}.",
                param_hint="--url",
            )
        served = {url: served[url]}
    failed = False
    for path, status in served.items():
        code, body = status._report(app)
        click.echo(f"{path} {body}")
        failed = failed or code >= 500
    if failed:
        raise SystemExit(1)


def _judge(value: Any) -> _Outcome:
    reason = "returned False" if value is False else None
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        reason = f"returned a {type(value).__name__} object that JSON cannot encode"
    return _Outcome(reason is None, False if reason else value, reason, time.time())


def _log(
    key: str, critical: bool, reason: str, error: BaseException | None = None
) -> None:
    level = logging.ERROR if critical else logging.WARNING
    current_app.logger.log(level, "Check %r failed: %s", key, reason, exc_info=error)


def _url(url: object) -> str:
    if not isinstance(url, str):
        raise TypeError(f"The status URL must be a string, not {url!r}.")
    if not url.strip() or url != url.strip():
        raise ValueError(
            f"The status URL {url!r} is empty or has surrounding spaces;"
            " give a path such as '/api/status'."
        )
    return url if url.startswith("/") else f"/{url}"


def _message(message: object) -> dict[str, Any]:
    if isinstance(message, str):
        return {"message": message}
    if not isinstance(message, dict) or not all(isinstance(k, str) for k in message):
        raise TypeError(
            f"The status message must be a string or a dict with string keys,"
            f" not {message!r}."
        )
    _json_value("The status message", message)
    return dict(message)


def _seconds(name: str, value: object, least: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"The {name} must be a number of seconds, not {value!r}.")
    if not 0 <= value < float("inf") or (value == 0 and least == "above"):
        raise ValueError(
            f"The {name} {value!r} is out of range; give a finite number of"
            f" seconds {least} 0."
        )
    return float(value)


def _timeout(value: object) -> float:
    return _seconds("timeout", value, "above")


def _cache(value: object) -> float:
    return _seconds("cache", value, "from")


def _workers(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"The number of workers must be an int, not {value!r}.")
    if value < 1:
        raise ValueError(f"The number of workers {value!r} must be 1 or more.")
    return value


def _bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"The {name} option must be True or False, not {value!r}.")
    return value


# Each setting: its default, and the function that checks and normalises it.
_SETTINGS: dict[str, tuple[Any, Callable[[Any], Any]]] = {
    "url": ("/api/status", _url),
    "message": ({"status": "OK"}, _message),
    "timeout": (0.8, _timeout),
    "cache": (0.0, _cache),
    "show_errors": (False, lambda value: _bool("show_errors", value)),
    "workers": (8, _workers),
}


def _json_value(what: str, value: object) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as error:  # a wrong type, or NaN and the like
        raise type(error)(
            f"{what} {value!r} cannot be encoded as JSON; use a str, int,"
            " finite float, bool, None, or a list or dict of them."
        ) from None


def _needs_no_arguments(key: str, func: Callable[..., Any]) -> None:
    try:
        inspect.signature(func).bind()
    except TypeError:
        raise TypeError(
            f"The check {func!r} for field {key!r} requires arguments; it is"
            " called with none, so give it defaults or wrap it in a lambda."
        ) from None
    except ValueError:  # no signature to inspect (some builtins)
        pass
