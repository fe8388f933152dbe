# SPDX-License-Identifier: MIT
"""A health and status endpoint for Flask, in one file.

.. code-block:: python

    from flask import Flask
    from flask_status import FlaskStatus

    app = Flask(__name__)
    status = FlaskStatus(app, url="/readyz")

    @status.field("database")
    def database():
        return db.ping()

``GET /readyz`` then answers ``{"status": "OK", "database": true}``, or
``{"status": "FAIL", "database": false}`` with HTTP 503 if the check raises,
returns ``False`` or outlasts its timeout. ``flask status`` runs the same
checks from the command line.

The module reads top to bottom as a status flows: the public API, whose
view answers each request; the settings, the check options and their
validators, and the registry the engine reads them from; the monitor,
where requests join runs of checks and runs settle, in transitions taken
under one lock; the log lines it writes; the listeners' queue and its
delivery; the threads, the scheduler and the fork handling; the payload,
one writer per format; the filter that keeps probes out of access logs;
the command line; and ready-made checks for the services an app depends
on.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import copy
import datetime
import enum
import functools
import hashlib
import heapq
import html
import inspect
import itertools
import json
import logging
import math
import os
import stat
import threading
import time
import urllib.parse
import warnings
import weakref
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Coroutine
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any
from typing import NamedTuple
from typing import Protocol
from typing import TypeVar
from typing import Union
from typing import cast
from typing import overload

import click
from flask import Flask
from flask import Response
from flask import abort
from flask import current_app
from flask import has_app_context
from flask import request
from flask.cli import with_appcontext
from flask.json.provider import DefaultJSONProvider

if TYPE_CHECKING:  # imported when a store is used: see _Store
    import sqlite3

__version__ = "2.0.0"
__all__ = [
    "FlaskStatus",
    "Health",
    "StatusChange",
    "celery_check",
    "disk_check",
    "http_check",
    "memory_check",
    "redis_check",
    "sql_check",
    "tcp_check",
]

View = Callable[..., Any]
Authenticator = Callable[[View], View]
Message = Union[str, dict[str, Any]]
F = TypeVar("F", bound=Callable[..., Any])
A = TypeVar("A", bound=Authenticator)
L = TypeVar("L", bound=Callable[["StatusChange"], Any])
P = TypeVar("P", bound=Callable[[], Any])
T = TypeVar("T")


# -- the public API: FlaskStatus, whose view answers each request -------------


class StatusChange(NamedTuple):
    """A status that differs from the one before, as passed to the
    listeners of :meth:`FlaskStatus.on_change`.

    .. code-block:: python

        StatusChange(url="/readyz", check="database", old="OK", new="FAIL",
                     reason="sqlite3.OperationalError: unable to open database file",
                     at=1764092402.1)
    """

    url: str
    """The URL of the endpoint."""
    check: str | None
    """The field key of the check, or ``None`` for the endpoint's status."""
    old: str | None
    """``"OK"``, ``"WARN"`` or ``"FAIL"``; ``None`` for the first result."""
    new: str
    """``"OK"``, ``"WARN"`` or ``"FAIL"``."""
    reason: str | None
    """Why the check failed or warns, as ``show_errors`` shows it: at most
    500 characters, and a marker if it was cut; else ``None``."""
    at: float
    """When the result was observed, in seconds since the epoch."""


class Health:
    """What a check may return to say more than pass or fail: the status of
    this run, a value with its unit, and why it is not OK.

    A WARN result makes the check's status WARN, whatever ``critical``
    says; a FAIL result is a failed run, which a non-critical check counts
    as WARN. The field shows the value, or ``true`` (``false`` for FAIL)
    when there is none; the reason goes where failures' reasons go. For
    ``fail_after`` and ``recover_after`` a WARN run is a run that passed.
    Made by :meth:`ok`, :meth:`warn` and :meth:`fail`; a plain return
    value keeps its meaning.

    .. code-block:: python

        from flask_status import Health

        @status.field("queue", component_type="component")
        def queue_depth():
            depth = queue.size()
            if depth > 10_000:
                reason = f"{depth} messages waiting"
                return Health.warn(reason, value=depth, unit="messages")
            return Health.ok(depth, unit="messages")
    """

    __slots__ = ("reason", "status", "unit", "value")

    status: str
    """``"OK"``, ``"WARN"`` or ``"FAIL"``: the status of this run."""
    value: Any
    """What the field shows, or ``None`` for ``true`` (``false`` for FAIL)."""
    unit: str | None
    """The value's unit, such as ``"bytes"`` or ``"s"``; or ``None``."""
    reason: str | None
    """Why the run is not OK; ``None`` for OK."""

    def __init__(
        self,
        status: str,
        value: Any = None,
        unit: str | None = None,
        reason: str | None = None,
    ) -> None:
        if status not in ("OK", "WARN", "FAIL"):
            raise ValueError(
                f"The status {status!r} of a Health is none of 'OK', 'WARN' and"
                " 'FAIL'; make one with Health.ok, Health.warn or Health.fail."
            )
        if status != "OK":
            reason = _health_text(reason, "The reason")
        elif reason is not None:
            raise ValueError(
                f"Health.ok takes no reason, but got {reason!r}; an OK run has"
                " nothing to explain, so return Health.warn for one that has."
            )
        self.status = status
        self.value = value
        self.unit = None if unit is None else _health_text(unit, "The unit")
        self.reason = reason

    @classmethod
    def ok(cls, value: Any = None, *, unit: str | None = None) -> Health:
        """An OK run, showing ``value`` (``true`` when it is ``None``).

        :param value: a JSON value, as a check's return value.
        :param unit: the value's unit, such as ``"bytes"`` or ``"s"``.
        """
        return cls("OK", value, unit)

    @classmethod
    def warn(cls, reason: str, *, value: Any = None, unit: str | None = None) -> Health:
        """A degraded run: the check's status is WARN, at once.

        :param reason: why, as the response and the log show it.
        :param value: a JSON value, shown instead of ``true``.
        :param unit: the value's unit, such as ``"bytes"`` or ``"s"``.
        """
        return cls("WARN", value, unit, reason)

    @classmethod
    def fail(cls, reason: str, *, value: Any = None, unit: str | None = None) -> Health:
        """A failed run, as if the check raised: FAIL if it is critical,
        else WARN, once ``fail_after`` such runs come in a row.

        :param reason: why, as the response and the log show it.
        :param value: a JSON value, shown instead of ``false``.
        :param unit: the value's unit, such as ``"bytes"`` or ``"s"``.
        """
        return cls("FAIL", value, unit, reason)

    def __repr__(self) -> str:
        given = [] if self.reason is None else [repr(self.reason)]
        if self.value is not None:
            given.append(f"value={self.value!r}" if given else repr(self.value))
        if self.unit is not None:
            given.append(f"unit={self.unit!r}")
        return f"Health.{self.status.lower()}({', '.join(given)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Health):
            return NotImplemented
        mine = (self.status, self.value, self.unit, self.reason)
        return mine == (other.status, other.value, other.unit, other.reason)

    __hash__ = None  # type: ignore[assignment]  # its value may be a list


def _health_text(text: object, what: str) -> str:
    """A Health's reason or unit: a string with some text."""
    if not isinstance(text, str):
        raise TypeError(f"{what} of a Health must be a string, not {text!r}.")
    if not text.strip():
        raise ValueError(f"{what} of a Health {text!r} is empty; say something.")
    return text


class FlaskStatus:
    """Serve the status of a Flask app as JSON at one URL.

    Every setting left as ``None`` is read from the app's config key named
    in brackets, which defaults to the value given.

    :param app: the app to serve; or leave it out and call :meth:`init_app`.
    :param url: where to serve it [``STATUS_URL``, ``"/api/status"``].
    :param message: the base payload: a dict, or a string that becomes
        ``{"message": "..."}`` [``STATUS_MESSAGE``, ``{"status": "OK"}``].
    :param authenticator: a view decorator that guards the route, as :meth:`auth`.
    :param timeout: seconds a run of a check may take
        [``STATUS_TIMEOUT``, ``0.8``].
    :param cache: seconds a check's result is reused [``STATUS_CACHE``, ``0``].
    :param every: run checks in the background every so many seconds, and
        answer requests with the latest result; ``0`` runs them on request
        [``STATUS_EVERY``, ``0``].
    :param fail_after: failed runs in a row after which a check that passed
        counts as failing [``STATUS_FAIL_AFTER``, ``1``].
    :param recover_after: passing runs in a row after which a check that
        failed counts as passing again [``STATUS_RECOVER_AFTER``, ``1``].
    :param show_errors: show why checks failed in the response
        [``STATUS_SHOW_ERRORS``, ``False``].
    :param workers: checks of this endpoint that may run at once
        [``STATUS_WORKERS``, ``8``].
    :param log: ``"transitions"`` logs a check when it starts failing and when
        it recovers; ``"every"`` logs each failed run
        [``STATUS_LOG``, ``"transitions"``].
    :param per_check: also serve ``<url>/<key>`` for each field
        [``STATUS_PER_CHECK``, ``False``].
    :param html: answer an HTML page to requests whose ``Accept`` header
        prefers ``text/html`` to JSON, as browsers' does; ``False`` keeps JSON
        for them, and ``?format=html`` still answers the page
        [``STATUS_HTML``, ``True``].
    :param quiet_access_log: keep successful (2xx) requests to this
        instance's URLs out of the access logs of Flask's development server
        and of gunicorn [``STATUS_QUIET_ACCESS_LOG``, ``False``].
    :param share: the path of a SQLite file that the app's processes on this
        host share, so that each check runs once per host and every worker
        answers the same; ``None`` keeps state per process
        [``STATUS_SHARE``, ``None``]. See :doc:`workers`.
    :param status_codes: the HTTP code of each status, any of them given:
        OK a 2xx, FAIL a 4xx or 5xx, WARN any from 200 to 599
        [``STATUS_CODES``, ``{"OK": 200, "WARN": 200, "FAIL": 503}``].

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
        every: float | None = None,
        fail_after: int | None = None,
        recover_after: int | None = None,
        show_errors: bool | None = None,
        workers: int | None = None,
        log: str | None = None,
        per_check: bool | None = None,
        html: bool | None = None,
        quiet_access_log: bool | None = None,
        share: str | os.PathLike[str] | None = None,
        status_codes: Mapping[str, int] | None = None,
    ) -> None:
        given = dict(
            url=url,
            message=message,
            timeout=timeout,
            cache=cache,
            every=every,
            fail_after=fail_after,
            recover_after=recover_after,
            show_errors=show_errors,
            workers=workers,
            log=log,
            per_check=per_check,
            html=html,
            quiet_access_log=quiet_access_log,
            share=share,
            status_codes=status_codes,
        )
        self._given = {
            s.name: s.validate(given[s.name], s.label)
            for s in _SETTINGS
            if given[s.name] is not None
        }
        self._registry = _Registry()
        self._guarded: View = self._respond_here
        self._authenticator: Authenticator | None = None
        self._details: Callable[[], Any] | None = None
        if authenticator is not None:
            self.auth(authenticator)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the status route on ``app``, reading its ``STATUS_*`` config.

        Config keys you did not set are left unset: the defaults apply.

        :param app: the app to serve. One instance may serve many apps.
        :raises TypeError: if a config value is of the wrong kind.
        :raises ValueError: if a config value is invalid, or the URL is taken.
        :raises RuntimeError: if this instance already serves ``app``.
        """
        registry = self._registry
        if app in registry.monitors:
            raise RuntimeError(
                f"This FlaskStatus already serves {app!r}; create another"
                " FlaskStatus to serve a second URL."
            )
        _warn_unknown_keys(app.config)
        settings = _Settings(**{s.name: self._setting(app, s) for s in _SETTINGS})
        monitor = _Monitor(registry, settings, app.import_name)
        groups = monitor.groups()
        rules = _rules(app)
        for group in groups:  # each refused before any is routed
            what = "this FlaskStatus" if group is groups[0] else "the group"
            _refuse_taken(app, rules, group.url, settings.per_check, what)
            rules += _planned(group.url, settings.per_check)
        for group in groups:
            self._add_routes(app, monitor, group)
        if "status" not in app.cli.commands:  # the app's own command stays
            app.cli.add_command(_status_command)
        registry.monitors[app] = monitor
        _MONITORS.add(monitor)
        _quiet_access.watch(monitor)

    def _add_routes(self, app: Flask, monitor: _Monitor, group: _Group) -> None:
        """Route ``group``'s URL, and with ``per_check`` the URLs below it,
        to a view of this instance that knows the group and the monitor,
        so that a request looks neither up."""
        served = weakref.ref(app)  # the app holds its views: they must not hold it

        def view(**kwargs: Any) -> Any:
            if self._authenticator is None or group.public:
                app = cast(Flask, served())  # alive: it is serving this request
                return self._respond(app, monitor, group, **kwargs)
            return self._guarded(**kwargs)

        options: dict[str, Any] = dict(
            methods=["GET"],  # and HEAD; anything else is 405, OPTIONS too
            provide_automatic_options=False,
        )
        for rule, endpoint in _planned(group.url, monitor.settings.per_check):
            app.add_url_rule(rule, endpoint, view, **options)
            self._registry.routes[endpoint] = group
        app.extensions.setdefault("status", {})[group.url] = self

    def group(
        self,
        url: str,
        *,
        include: Iterable[str] | None = None,
        exclude: Iterable[str] | None = None,
        public: bool = False,
    ) -> None:
        """Serve ``url`` too, over the same runs of the same checks.

        A group shares the instance's message, settings, runs, cache,
        schedule, history and listeners; its status, HTTP code and every
        format are judged from its own fields only, and with ``per_check``
        it answers ``<url>/<key>`` for its own fields. It is served on every
        app the instance serves, now and after later :meth:`init_app` calls.

        :param url: where to serve it: a plain path.
        :param include: the only fields it shows, in the order they were
            added; an empty list shows none, only the message.
        :param exclude: the fields it leaves out; fields added later are in.
        :param public: serve it without the authenticator and never with
            details: every format answers with the status alone, and the
            same HTTP code.
        :raises TypeError: if ``include`` or ``exclude`` is not a list of
            field keys, or ``public`` not a bool.
        :raises ValueError: if both ``include`` and ``exclude`` are given, a
            name is no field yet, or the URL is not a plain path or is taken
            on an app the instance serves.

        .. code-block:: python

            status = FlaskStatus(app)  # /api/status: every field
            status.add_field("database", check_database)
            status.add_field("billing", check_billing)
            status.group("/livez", include=[], public=True)  # no checks
            status.group("/readyz", exclude=["billing"], public=True)
        """
        group = _Group(
            _url(url, "The group URL"),
            *_selection(include, exclude, self._registry.fields),
            _bool(public, "The public option"),
        )
        registry = self._registry
        if group.url in registry.groups:
            raise ValueError(
                f"This FlaskStatus already serves the group {group.url!r}; give"
                " the group another url."
            )
        served = list(registry.monitors.items())
        for app, monitor in served:  # each refused before any is routed
            _refuse_late(app, group.url)
            per_check = monitor.settings.per_check
            _refuse_taken(app, _rules(app), group.url, per_check, "the group")
        for app, monitor in served:
            self._add_routes(app, monitor, group)
        registry.groups = {**registry.groups, group.url: group}

    def _setting(self, app: Flask, setting: _Setting) -> Any:
        if setting.name in self._given:
            return self._given[setting.name]
        if setting.key not in app.config:
            return copy.deepcopy(setting.default)
        return setting.validate(
            app.config[setting.key], f"The config key {setting.key}"
        )

    def add_field(
        self,
        key: str,
        value: Any,
        *,
        critical: bool = True,
        timeout: float | None = None,
        cache: float | None = None,
        every: float | None = None,
        fail_after: int | None = None,
        recover_after: int | None = None,
        component_type: str | None = None,
    ) -> None:
        """Add ``key`` to the payload: a static JSON value, or a check.

        A check is a callable (``async def`` too) taking no arguments, run
        in an application context; its return value is shown. It fails when
        it raises, returns ``False``, outlasts its timeout or returns
        something JSON cannot encode: then its field shows ``false``, and the
        status becomes ``"FAIL"`` (HTTP 503) if it is critical, else ``"WARN"``.
        A check may also return a :class:`Health`, which says its status, a
        value with its unit, and why.

        :param key: the payload key; fields follow the message's keys in the
            order they were added.
        :param value: a JSON value (str, int, finite float, bool, None, or
            lists and dicts of them), or a callable taking no arguments.
        :param critical: a check whose failure fails the whole status.
        :param timeout: seconds this check may take; default: the endpoint's.
        :param cache: seconds this check's result is reused; a check with its
            own ``cache`` runs on request. Default: the endpoint's.
        :param every: run this check in the background every so many
            seconds; ``0`` runs it on request. Default: the endpoint's.
        :param fail_after: failed runs in a row after which a passing check
            counts as failing; until then its field shows ``false`` but the
            status stays ``"OK"``. Default: the endpoint's.
        :param recover_after: passing runs in a row after which a failing
            check counts as passing again. Default: the endpoint's.
        :param component_type: what the check watches, as
            ``application/health+json``'s ``componentType`` says it, such
            as ``"datastore"``, ``"component"`` or ``"system"``.
        :raises TypeError: if ``key`` is not a string, ``value`` is neither
            JSON nor callable, or the callable needs arguments.
        :raises ValueError: if ``key`` is empty, reserved or already added,
            an option is out of range, or both ``cache`` and ``every`` are given.

        .. code-block:: python

            status.add_field("version", "1.4.2")
            status.add_field("cache", ping_cache, critical=False, timeout=0.2)
            status.add_field("billing", ping_billing, every=30)
            status.add_field("search", ping_search, fail_after=3)
        """
        registry = self._registry
        _new_key(key, registry.fields)
        given = dict(
            critical=critical,
            timeout=timeout,
            cache=cache,
            every=every,
            fail_after=fail_after,
            recover_after=recover_after,
            component_type=component_type,
        )
        field = _Field.make(key, value, given)
        # A new dict, not an update: requests under way keep the one they read.
        registry.fields = {**registry.fields, key: field}

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
        every: float | None = None,
        fail_after: int | None = None,
        recover_after: int | None = None,
        component_type: str | None = None,
    ) -> Callable[[F], F]: ...

    def field(self, name: str | F | None = None, **options: Any) -> Any:
        """Register the decorated function as a check; see :meth:`add_field`.

        Used bare, the field takes the function's ``__name__``; the function
        is returned unchanged.

        :param name: the payload key.
        :param options: ``critical``, ``timeout``, ``cache``, ``every``,
            ``fail_after``, ``recover_after`` and ``component_type``, as
            for :meth:`add_field`.

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
        """Guard the status routes with ``authenticator``, a view decorator.

        It runs before anything else, so its responses, including
        ``abort(401)`` and ``abort(403)``, reach the client untouched, and a
        request it turns away runs no check and learns no check's name. It
        may be set after :meth:`init_app`, once; it is returned unchanged, so
        it can guard other views too. The view it wraps takes the per-check
        route's ``key`` as a keyword argument: pass ``**kwargs`` through.

        :param authenticator: a callable that takes a view and returns a view.
        :raises TypeError: if it is not callable or does not return a callable.
        :raises RuntimeError: if this FlaskStatus has an authenticator already.

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
        if self._authenticator is not None:
            raise RuntimeError(
                f"This FlaskStatus is already guarded by {self._authenticator!r};"
                f" it cannot also take {authenticator!r}. Combine them into one"
                " decorator that applies both, and pass that once."
            )
        guarded = None
        if callable(authenticator) and _takes_one_argument(authenticator):
            guarded = authenticator(self._respond_here)
        if not callable(guarded):
            raise TypeError(
                f"The authenticator {authenticator!r} must be a view decorator:"
                " a callable that takes a view function and returns one."
            )
        self._authenticator, self._guarded = authenticator, guarded
        return authenticator

    def on_change(self, listener: L) -> L:
        """Call ``listener`` with a :class:`StatusChange` whenever a check's
        status, or the endpoint's, differs from the one before.

        Listeners run on a worker thread in an application context, one
        change at a time in the order they happened, never in a request's
        thread: a slow listener delays other listeners, not responses. One
        that raises is logged and the others still run. ``flask status``
        calls no listener. Returns ``listener`` unchanged.

        :param listener: a callable taking one :class:`StatusChange`.
        :raises TypeError: if it is not callable.

        .. code-block:: python

            @status.on_change
            def page_someone(change):
                if change.check == "database" and change.new == "FAIL":
                    alert(change.reason)
        """
        if not callable(listener):
            raise TypeError(
                f"The listener {listener!r} must be a callable taking one StatusChange."
            )
        self._registry.listeners = (*self._registry.listeners, listener)
        return listener

    def details_when(self, predicate: P) -> P:
        """Show checks and errors only to requests for which ``predicate()``
        is true; others get just the status, with the same HTTP code.

        The predicate takes no arguments and runs in the request context,
        after the authenticator; an ``async def`` one is awaited. One that
        raises anything, ``SystemExit`` included, is logged and counts as
        false. A public group never shows details. Returns ``predicate``
        unchanged.

        :param predicate: a callable taking no arguments.
        :raises TypeError: if it is not callable.
        :raises RuntimeError: if a predicate is set already.

        .. code-block:: python

            @status.details_when
            def is_operator():
                sent = request.headers.get("Authorization", "")
                return sent == f"Bearer {current_app.config['OPS_TOKEN']}"
        """
        if not callable(predicate):
            raise TypeError(
                f"The details predicate {predicate!r} must be a callable taking"
                " no arguments."
            )
        if self._details is not None:
            raise RuntimeError(
                f"This FlaskStatus already shows details when {self._details!r}"
                f" is true; combine it with {predicate!r} into one predicate."
            )
        _import_asyncio_for(predicate)
        self._details = predicate
        return predicate

    # The operator's hold.

    def hold(
        self, reason: str, seconds: float | None = None, url: str | None = None
    ) -> None:
        """Hold a URL of this instance on the current app: it answers FAIL
        in every format, saying that it is held, why and until when, while
        the checks go on running and logging. The hold ends with
        :meth:`release`, or by itself after ``seconds``. Its reason is shown
        to every client of the URL, with or without details: say nothing
        secret in it.

        With a shared store (``share``), every process of the app on this
        host holds the URL within a second, and the hold outlives their
        restarts; ``flask status hold`` sets it from a shell. Without one,
        the hold is this process's alone.

        :param reason: why, in one line, for whoever reads the status.
        :param seconds: how long it lasts; ``None``, until released.
        :param url: the instance's own URL (the default) or one of its
            groups'. Its per-check routes are not held.
        :raises TypeError: if the reason is not a string.
        :raises ValueError: if the reason is blank or too long, ``seconds``
            is out of range, or the URL is none of this instance's.
        :raises RuntimeError: outside an app context, or on an app this
            instance does not serve.

        .. code-block:: python

            with app.app_context():
                status.hold("database migration", seconds=600)
                upgrade_database()
                status.release()
        """
        app, monitor = self._serving("hold")
        url = self._held_url(monitor, url)
        now = time.time()
        until = None
        if seconds is not None:
            until = now + _duration(seconds, "The hold's seconds")
        monitor.hold(app, url, _Hold(_hold_reason(reason), until, now))

    def release(self, url: str | None = None) -> None:
        """End the hold on a URL of this instance on the current app, set by
        :meth:`hold` here or, with a shared store, by any process.

        :param url: the instance's own URL (the default) or one of its groups'.
        :raises ValueError: if the URL is none of this instance's.
        :raises RuntimeError: outside an app context, or on an app this
            instance does not serve.

        .. code-block:: python

            with app.app_context():
                status.release()
        """
        app, monitor = self._serving("release")
        monitor.hold(app, self._held_url(monitor, url), None)

    def _serving(self, what: str) -> tuple[Flask, _Monitor]:
        """The current app and its monitor, for :meth:`hold` and :meth:`release`."""
        if not has_app_context():
            raise RuntimeError(
                f"FlaskStatus.{what}() needs the app: call it in an app context,"
                " as in 'with app.app_context():'."
            )
        app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
        monitor = self._registry.monitors.get(app)
        if monitor is None:
            raise RuntimeError(
                f"This FlaskStatus does not serve {app!r}; call init_app(app) first."
            )
        return app, monitor

    def _held_url(self, monitor: _Monitor, url: str | None) -> str:
        """``url``, checked to be one the monitor serves; its own by default."""
        urls = [group.url for group in monitor.groups()]
        if url is None:
            return urls[0]
        if url not in urls:
            raise ValueError(
                f"{url!r} is not a URL of this FlaskStatus; hold one of"
                f" {', '.join(map(repr, urls))}."
            )
        return url

    def instrument(self, meter: Any) -> None:
        """Publish each check's latest result through ``meter``, an
        OpenTelemetry ``Meter``, as observable gauges: read from the latest
        results when the meter's reader collects, never by running a check.

        ``flask_status.check.status`` is 1 for OK, 0.5 for WARN and 0 for
        FAIL; ``flask_status.check.duration`` is the seconds the latest run
        took; ``flask_status.check.value`` is the number a check gave in a
        :class:`Health`, with its unit as the attribute ``unit``. Each
        observation has the attributes ``url`` (the instance's URL) and
        ``check`` (the field key), once per app served; a check that has not
        run yet has none. ``opentelemetry`` is imported here, and only here.

        :param meter: an ``opentelemetry.metrics.Meter``, such as
            ``metrics.get_meter("my-app")``.
        :raises TypeError: if ``meter`` is no Meter.

        .. code-block:: python

            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import InMemoryMetricReader

            reader = InMemoryMetricReader()  # or a PeriodicExportingMetricReader
            provider = MeterProvider(metric_readers=[reader])
            status.instrument(provider.get_meter("flask-status"))
        """
        if not callable(getattr(meter, "create_observable_gauge", None)):
            raise TypeError(
                f"{meter!r} is no OpenTelemetry Meter; pass one, such as"
                " metrics.get_meter('my-app') or provider.get_meter('my-app')."
            )
        from opentelemetry.metrics import Observation  # type: ignore[import-not-found,unused-ignore]

        registry = self._registry

        def statuses(options: Any) -> list[Any]:
            return [
                Observation(_LEVELS[outcome.status], labels)
                for labels, outcome in _latest(registry)
            ]

        def durations(options: Any) -> list[Any]:
            return [
                Observation(outcome.duration, labels)
                for labels, outcome in _latest(registry)
            ]

        def values(options: Any) -> list[Any]:
            observed = []
            for labels, outcome in _latest(registry):
                number = _measure(outcome)
                if number is not None:
                    unit = outcome.health.unit  # type: ignore[union-attr]
                    extra = {} if unit is None else {"unit": unit}
                    observed.append(Observation(number, {**labels, **extra}))
            return observed

        meter.create_observable_gauge(
            "flask_status.check.status",
            callbacks=[statuses],
            unit="1",
            description="1 if the check's status is OK, 0.5 if WARN, 0 if FAIL.",
        )
        meter.create_observable_gauge(
            "flask_status.check.duration",
            callbacks=[durations],
            unit="s",
            description="How long the check's latest run took.",
        )
        meter.create_observable_gauge(
            "flask_status.check.value",
            callbacks=[values],
            description="The number the check's latest run gave, in its unit.",
        )

    # The request: the view the authenticator wraps, and what it answers.

    def _respond_here(self, key: str | None = None) -> Response:
        """The view the authenticator guards: it finds the request's app,
        monitor and group, then answers."""
        app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
        registry = self._registry
        group = registry.routes[request.endpoint]
        return self._respond(app, registry.monitors[app], group, key)

    def _respond(
        self, app: Flask, monitor: _Monitor, group: _Group, key: str | None = None
    ) -> Response:
        # Most probes send no query: then nothing is parsed.
        sent = request._get_current_object()  # type: ignore[attr-defined]
        args = sent.args if sent.environ.get("QUERY_STRING") else None
        chosen = self._chosen(app, monitor, group, key, args)
        name = _negotiate(sent, args, monitor.settings.html)
        report = monitor.report(app, group.url, chosen, key is None)
        details = not group.public and (
            self._details is None or self._shows_details(app)
        )
        if name == "html" and details:
            report.history = monitor.changes_of(app, [c.key for c in chosen.checks])
        writer = _FORMATS[name]
        response: Response = app.response_class(
            writer.write(report, monitor.parts(app), details),
            200 if name == "prometheus" else report.code,  # a scrape never fails
            content_type=writer.content_type,
        )
        # Added one by one: given to the constructor, they would go through
        # Headers.extend, whose generic walk over any mapping or iterable
        # costs every response about a third of what making it does.
        for header, value in writer.headers:
            response.headers.add(header, value)
        return response

    def _chosen(
        self, app: Flask, monitor: _Monitor, group: _Group, key: str | None, args: Any
    ) -> _Plan:
        """The fields of ``group`` a request asks for: one per-check route's,
        all but those ``?exclude=`` names, or all."""
        if key is None and (args is None or "exclude" not in args):
            return monitor.plan(group)
        fields = group.select(self._registry.fields)
        if key is not None:
            if key not in fields:
                abort(404)
            return _Plan.of([fields[key]], monitor.checks())
        excluded = monitor.exclusions(app, group.url, args.getlist("exclude"))
        chosen = [f for k, f in fields.items() if k not in excluded]
        return _Plan.of(chosen, monitor.checks())

    def _shows_details(self, app: Flask) -> bool:
        """Whether the predicate shows this request the details: an ``async
        def`` one is awaited, and one that raises anything, ``SystemExit``
        included, is logged and shows nothing."""
        shown = None
        try:
            shown = self._details()  # type: ignore[misc]
            if inspect.isawaitable(shown):  # a Future too: never truthy unread
                shown = _run_async(_awaited(shown))
            return bool(shown)
        except BaseException as error:
            if inspect.iscoroutine(shown):
                shown.close()  # never awaited: say nothing more of it
            message = "The details predicate %r of %s raised."
            url = self._registry.routes[request.endpoint].url
            _emit(app, logging.ERROR, message, self._details, url, error=error)
            return False


_LEVELS = {"OK": 1.0, "WARN": 0.5, "FAIL": 0.0}  # as Xabaril's publishers say it


def _latest(registry: _Registry) -> list[tuple[dict[str, str], _Outcome]]:
    """The latest outcome of each check on each app served, with its
    metric attributes: what a run settled, or what a scheduled one shows
    until it does. Read under each monitor's lock; no check is run."""
    latest = []
    for monitor in list(registry.monitors.values()):
        with monitor.lock:
            runs = [
                (key, run.outcome or run.previous) for key, run in monitor.runs.items()
            ]
        url = monitor.settings.url
        for key, outcome in runs:
            if outcome is not None:
                latest.append(({"url": url, "check": key}, outcome))
    return latest


async def _awaited(value: Awaitable[T]) -> T:
    return await value


def _import_asyncio_for(func: Callable[..., Any]) -> None:
    """Import asyncio now if ``func`` is an ``async def``, at registration,
    so that its first run does not pay for it."""
    if inspect.iscoroutinefunction(func):
        import asyncio  # noqa: F401


def _run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to its end in this thread, in an event loop of its
    own. asyncio is imported here, as only async checks and predicates
    need it: importing flask_status costs less for the rest."""
    import asyncio

    return asyncio.run(coroutine)


def _takes_one_argument(func: Callable[..., Any]) -> bool:
    """Whether ``func`` can be called with one argument, as a decorator is;
    true where its signature cannot be read."""
    try:
        inspect.signature(func).bind(None)
    except TypeError:
        return False
    except ValueError:  # no signature to inspect (some builtins)
        pass
    return True


# -- settings and routes: each setting's validator, and the URLs a route takes -


Rules = list[tuple[str, str]]  # each rule of an app, with its endpoint


def _rules(app: Flask) -> Rules:
    return [(rule.rule, rule.endpoint) for rule in app.url_map.iter_rules()]


def _planned(url: str, per_check: bool) -> Rules:
    """The rules that serve a status URL: it, and ``<url>/<key>``."""
    rules = [(url, _endpoint(url))]
    if per_check:
        rules.append((_each(url), _endpoint(_each(url))))
    return rules


def _endpoint(rule: str) -> str:
    """The Flask endpoint of a status rule: ``url_for("status:/readyz")``."""
    return f"status:{rule}"


def _each(url: str) -> str:
    """The per-check rule below ``url``."""
    return f"{_prefix(url)}<key>"


def _prefix(url: str) -> str:
    """Where the per-check routes below ``url`` answer: ``/readyz/``."""
    return f"{url.rstrip('/')}/"


def _refuse_taken(
    app: Flask, rules: Rules, url: str, per_check: bool, what: str
) -> None:
    """Refuse ``url`` if one of ``rules`` answers it, or with ``per_check``
    a path one segment below it; ``what`` is whose URL it is."""
    if per_check and url == "/":
        raise ValueError(
            "Per-check routes at the URL '/' would answer every one-segment"
            f" path of the app; give {what} another url."
        )
    below = _prefix(url)
    for rule, endpoint in rules:
        if rule == url or (per_check and _below(rule, below)):
            raise ValueError(
                f"The URL {rule!r} is already routed on {app!r}; give {what}"
                " another url."
            )
        if endpoint.startswith("status:") and _answers(rule, url):
            raise ValueError(
                f"The URL {url!r} is answered by the per-check route {rule!r}"
                f" on {app!r}; give {what} another url."
            )
    _refuse_routed(app, url, what)


def _refuse_routed(app: Flask, url: str, what: str) -> None:
    """Refuse ``url`` if a route of the app answers a GET of it, a variable
    one (``/files/<path:name>``) included: a status route there would take
    the path from it."""
    from werkzeug.exceptions import HTTPException
    from werkzeug.routing import RequestRedirect

    try:
        adapter = app.url_map.bind("localhost")
        rule, _ = adapter.match(url, method="GET", return_rule=True)
    except (HTTPException, RequestRedirect):  # no route answers a GET of it
        return
    raise ValueError(
        f"The URL {url!r} is answered by the route {rule.rule!r} (endpoint"
        f" {rule.endpoint!r}) on {app!r}; a status route there would take that"
        f" path from it. Give {what} another url, or add it before that route."
    )


def _warn_unknown_keys(config: Mapping[str, Any]) -> None:
    """Warn of each ``STATUS_*`` config key that is no setting, and so does
    nothing, naming the setting it is closest to."""
    import difflib

    names = [setting.key[len("STATUS_") :] for setting in _SETTINGS]
    for key in sorted(k for k in config if str(k).startswith("STATUS_")):
        name = key[len("STATUS_") :]
        if name in names:
            continue
        close = difflib.get_close_matches(name.upper(), names, n=1)
        hint = f"did you mean STATUS_{close[0]}?" if close else "the README lists them."
        warnings.warn(
            f"The config key {key!r} is no flask-status setting, so it does"
            f" nothing; {hint}",
            stacklevel=_outside(),
        )


def _outside() -> int:
    """The ``stacklevel`` that names the caller's first caller outside this
    file: the app's code that set flask-status up."""
    import sys

    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == __file__:
        level, frame = level + 1, frame.f_back  # type: ignore[assignment]
    return level


def _refuse_late(app: Flask, url: str) -> None:
    """Refuse a route on an app that has served, as Flask does."""
    if getattr(app, "_got_first_request", False):
        raise RuntimeError(
            f"{app!r} has served a request already, so it takes no new route"
            f" such as {url!r}; add the group before the app serves, where you"
            " add its fields."
        )


def _answers(rule: str, url: str) -> bool:
    """Whether the per-check ``rule`` (``<prefix>/<key>``) answers ``url``."""
    return rule.endswith("/<key>") and _below(url, rule[: -len("<key>")])


def _selection(
    include: Iterable[str] | None,
    exclude: Iterable[str] | None,
    fields: dict[str, _Field],
) -> tuple[tuple[str, ...] | None, frozenset[str]]:
    """A group's ``include`` and ``exclude``, checked against ``fields``."""
    if include is not None and exclude is not None:
        raise ValueError(
            f"A group takes include or exclude, not both, but got include="
            f"{include!r} and exclude={exclude!r}; list the fields it shows, or"
            " those it leaves out."
        )
    if include is not None:
        return tuple(_field_keys(include, "include", fields)), frozenset()
    return None, frozenset(_field_keys(exclude or (), "exclude", fields))


def _field_keys(names: object, option: str, fields: dict[str, _Field]) -> list[str]:
    if isinstance(names, (str, bytes)) or not isinstance(names, Iterable):
        raise TypeError(
            f"The {option} option must be a list of field keys, not {names!r};"
            f" write {option}=[{names!r}] for one."
        )
    keys = list(names)
    for key in keys:
        if not isinstance(key, str):
            raise TypeError(
                f"{key!r} in the {option} option is no field key; give the"
                " fields' keys, which are strings."
            )
        if key not in fields:
            raise ValueError(
                f"{key!r} in the {option} option is no field of this FlaskStatus"
                " yet; add the field before the group."
            )
    return keys


def _below(rule: str, prefix: str) -> bool:
    """Whether ``rule`` answers a path of one more segment below ``prefix``,
    as ``<prefix><key>`` does."""
    rest = rule[len(prefix) :] if rule.startswith(prefix) else ""
    return bool(rest) and ("/" not in rest or "<path:" in rest)


def _url(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, not {value!r}.")
    if not value.strip() or value != value.strip():
        raise ValueError(
            f"{what} {value!r} is empty or has surrounding spaces; give a path"
            " such as '/api/status'."
        )
    if any(c in value for c in "<>?#"):
        raise ValueError(
            f"{what} {value!r} has a variable part, a query or a fragment, which"
            " a status route can never answer; give a plain path such as"
            " '/api/status'."
        )
    if "%" in value:
        raise ValueError(
            f"{what} {value!r} has a percent-escape, which Flask would match only"
            " as those very characters; write the path unescaped, such as"
            " '/api/status'."
        )
    _json_value(what, value)  # a lone surrogate could never be routed
    return value if value.startswith("/") else f"/{value}"


_RESERVED = frozenset({"status", "errors", "checks", "held"})


def _new_key(key: object, fields: dict[str, _Field]) -> None:
    """Refuse a field key that is no string, empty, reserved or taken."""
    if not isinstance(key, str):
        raise TypeError(f"A field key must be a string, not {key!r}.")
    if not key:
        raise ValueError(
            f"The field key {key!r} is empty; give the field a name, such as"
            " 'database'."
        )
    if key in _RESERVED:
        raise ValueError(
            f"The field key {key!r} is reserved: the status endpoint writes it"
            " itself; choose another key."
        )
    if key in fields:
        raise ValueError(
            f"A field {key!r} is already added; choose another key or"
            " another FlaskStatus."
        )
    _json_value("The field key", key)


def _message(value: object, what: str) -> dict[str, Any]:
    if isinstance(value, str):
        _json_value(what, value)
        return {"message": value}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise TypeError(
            f"{what} must be a string or a dict with string keys, not {value!r}."
        )
    taken = sorted(_RESERVED.intersection(value) - {"status"})
    if taken:
        raise ValueError(
            f"{what} has the key {taken[0]!r}, which the status endpoint writes"
            " itself; rename that key."
        )
    _json_value(what, value)
    return copy.deepcopy(value)  # the endpoint's own: later edits change nothing


def _seconds(value: object, what: str, least: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        hint = _env_hint(value, what)
        raise TypeError(f"{what} must be a number of seconds, not {value!r}.{hint}")
    if not 0 <= value < math.inf or (value == 0 and least == "above"):
        raise ValueError(
            f"{what} {value!r} is out of range; give a finite number of seconds"
            f" {least} 0."
        )
    if value > threading.TIMEOUT_MAX:
        raise ValueError(
            f"{what} {value!r} is more seconds than Python can wait"
            f" (threading.TIMEOUT_MAX, {threading.TIMEOUT_MAX:.0f}); give fewer."
        )
    return float(value)


def _env_hint(value: object, what: str) -> str:
    """For a string in the config, where such strings come from."""
    if not (isinstance(value, str) and what.startswith("The config key")):
        return ""
    return (
        " Config values from environment variables are strings:"
        " app.config.from_prefixed_env() parses numbers and booleans."
    )


def _duration(value: object, what: str) -> float:
    """Seconds something may take: above 0."""
    return _seconds(value, what, "above")


def _interval(value: object, what: str) -> float:
    """Seconds between runs, or that a result is reused: 0 or more."""
    return _seconds(value, what, "from")


def _bool(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(
            f"{what} must be True or False, not {value!r}.{_env_hint(value, what)}"
        )
    return value


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"{what} must be an int, not {value!r}.{_env_hint(value, what)}"
        )
    if value < 1:
        raise ValueError(f"{what} {value!r} must be 1 or more.")
    return value


def _store_path(value: object, what: str) -> str:
    """The shared store's path, made absolute; refused where another user
    could write it. A file not there yet is made, readable by its owner
    alone."""
    if not isinstance(value, (str, os.PathLike)) or isinstance(value, bytes):
        raise TypeError(
            f"{what} must be the path of a SQLite file, as a str or a"
            f" pathlib.Path, not {value!r}."
        )
    given = os.fspath(value)
    if not given.strip() or given == ":memory:" or given.startswith("file:"):
        raise ValueError(
            f"{what} {given!r} is no file path; give the path of a file on"
            " this host's local disk, such as '/run/myapp/status.sqlite3', or"
            " leave it unset (None) to keep state per process."
        )
    path = os.path.abspath(given)
    if given.endswith(os.sep) or os.path.isdir(path):
        raise ValueError(f"{what} {given!r} must name a file, not a directory.")
    _refuse_unsafe_store(path, what)
    _create(path)
    return path


def _create(path: str) -> None:
    """Make the store's file, if it is not there, readable by its owner
    alone; SQLite gives its -wal and -shm files the same mode."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


_LOG_MODES = ("transitions", "every")


def _log_mode(value: object, what: str) -> str:
    if value not in _LOG_MODES:
        raise ValueError(
            f"{what} {value!r} is not a log mode; give 'transitions' (log when a"
            " check starts failing and when it recovers) or 'every' (each"
            " failed run)."
        )
    return str(value)


_STATUSES = ("OK", "WARN", "FAIL")
_DEFAULT_CODES = {"OK": 200, "WARN": 200, "FAIL": 503}


def _status_codes_of(value: object, what: str) -> dict[str, int]:
    """The HTTP code of each status: ``value``'s, else the default's.
    OK must be a success, and FAIL no success or redirect, which a load
    balancer would take as healthy."""
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{what} must be a dict of statuses to HTTP codes, such as"
            f' {{"WARN": 429}}, not {value!r}.{_env_hint(value, what)}'
        )
    codes = dict(_DEFAULT_CODES)
    for status, code in value.items():
        if status not in _STATUSES:
            raise ValueError(
                f"{what} has the key {status!r}, which is no status; give codes"
                " for 'OK', 'WARN' or 'FAIL'."
            )
        if isinstance(code, bool) or not isinstance(code, int):
            raise TypeError(
                f"{what} gives {status} the code {code!r}; give an int, such as"
                f" {_DEFAULT_CODES[status]}."
            )
        codes[status] = code
    for status, code in codes.items():
        _status_code(status, code, what)
    return codes


def _status_code(status: str, code: int, what: str) -> None:
    lowest = 400 if status == "FAIL" else 200
    highest = 299 if status == "OK" else 599
    if not lowest <= code <= highest:
        why = {
            "OK": "a success (2xx), or probes would take the app as down",
            "WARN": "from 200 to 599",
            "FAIL": "an error (4xx or 5xx): with a success or a redirect a load"
            " balancer would keep sending traffic",
        }[status]
        raise ValueError(f"{what} gives {status} the code {code!r}; it must be {why}.")


def _component_type(value: object, what: str) -> str:
    """What kind of thing a check watches, as health+json names it."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, such as 'datastore', not {value!r}.")
    if not value.strip():
        raise ValueError(
            f"{what} {value!r} is empty; give one such as 'datastore',"
            " 'component' or 'system'."
        )
    _json_value(what, value)
    return value


class _Setting(NamedTuple):
    name: str
    label: str  # what an error calls it when given as an argument
    default: Any
    validate: Callable[[object, str], Any]  # (value, label) -> the value
    config: str | None = None  # its config key, if not STATUS_<NAME>

    @property
    def key(self) -> str:
        return self.config or f"STATUS_{self.name.upper()}"


# Every setting, each a keyword of FlaskStatus of the same name. A new one
# goes here, in _Settings, in FlaskStatus's signature and docstring, and in
# the README's table; tests/test_setup.py checks that they agree.
_SETTINGS = (
    _Setting("url", "The status URL", "/api/status", _url),
    _Setting("message", "The status message", {"status": "OK"}, _message),
    _Setting("timeout", "The timeout", 0.8, _duration),
    _Setting("cache", "The cache", 0.0, _interval),
    _Setting("every", "The every interval", 0.0, _interval),
    _Setting("fail_after", "The fail_after option", 1, _count),
    _Setting("recover_after", "The recover_after option", 1, _count),
    _Setting("show_errors", "The show_errors option", False, _bool),
    _Setting("workers", "The number of workers", 8, _count),
    _Setting("log", "The log mode", "transitions", _log_mode),
    _Setting("per_check", "The per_check option", False, _bool),
    _Setting("html", "The html option", True, _bool),
    _Setting("quiet_access_log", "The quiet_access_log option", False, _bool),
    _Setting("share", "The share option", None, _store_path),
    _Setting(
        "status_codes",
        "The status_codes option",
        _DEFAULT_CODES,
        _status_codes_of,
        "STATUS_CODES",
    ),
)


class _Settings(NamedTuple):
    """The settings of one FlaskStatus on one app, field for field as
    ``_SETTINGS`` lists them: each from the argument, else the app's config,
    else the default."""

    url: str
    message: dict[str, Any]
    timeout: float
    cache: float
    every: float
    fail_after: int
    recover_after: int
    show_errors: bool
    workers: int
    log: str
    per_check: bool
    html: bool
    quiet_access_log: bool
    share: str | None  # the shared store's path
    status_codes: dict[str, int]  # the HTTP code of each status


# Every option of a check, each a keyword of add_field and field of the same
# name; None (the default but for critical) takes the endpoint's setting of
# that name. A new one goes here, in _CheckOptions, in the signatures and
# docstrings of add_field and field, and in _Check.resolve; tests/test_setup.py
# checks that they agree.
_CHECK_OPTIONS = (
    _Setting("critical", "The critical option", True, _bool),
    _Setting("timeout", "The timeout", None, _duration),
    _Setting("cache", "The cache", None, _interval),
    _Setting("every", "The every interval", None, _interval),
    _Setting("fail_after", "The fail_after option", None, _count),
    _Setting("recover_after", "The recover_after option", None, _count),
    _Setting("component_type", "The component_type option", None, _component_type),
)


class _CheckOptions(NamedTuple):
    """A check's options as given, field for field as ``_CHECK_OPTIONS``
    lists them."""

    critical: bool = True
    timeout: float | None = None
    cache: float | None = None
    every: float | None = None
    fail_after: int | None = None
    recover_after: int | None = None
    component_type: str | None = None


class _Field(NamedTuple):
    key: str
    value: Any  # the static value, or the check
    is_check: bool  # the value is callable
    options: _CheckOptions = _CheckOptions()

    @classmethod
    def make(cls, key: str, value: Any, given: dict[str, Any]) -> _Field:
        """Field ``key`` of ``value``, with the check options ``given``,
        each checked; a static value takes none."""
        if not callable(value):
            if any(given[o.name] != o.default for o in _CHECK_OPTIONS):
                names = [o.name for o in _CHECK_OPTIONS]
                raise TypeError(
                    f"{', '.join(names[:-1])} and {names[-1]} apply to checks, but"
                    f" field {key!r} is the static value {value!r}; pass a"
                    " callable instead."
                )
            _json_value(f"The value of field {key!r}", value)
            return cls(key=key, value=copy.deepcopy(value), is_check=False)
        _needs_no_arguments(key, value)
        _import_asyncio_for(value)
        if given["cache"] is not None and given["every"] is not None:
            raise ValueError(
                f"Field {key!r} has both cache={given['cache']!r} and every="
                f"{given['every']!r}, which both say how its results are reused;"
                " give only one."
            )
        return cls(key=key, value=value, is_check=True, options=_checked(given))


def _checked(given: dict[str, Any]) -> _CheckOptions:
    """The check options ``given``, each validated; None takes the endpoint's."""
    checked = {}
    for option in _CHECK_OPTIONS:
        value = given[option.name]
        if value is not None or option.default is not None:
            value = option.validate(value, option.label)
        checked[option.name] = value
    return _CheckOptions(**checked)


class _Registry:
    """What a FlaskStatus registers, as its monitors, its view and the
    command line read it: one narrow interface. Each attribute is replaced,
    never changed in place, so that a request keeps what it read."""

    __slots__ = ("fields", "groups", "listeners", "monitors", "routes")

    def __init__(self) -> None:
        self.fields: dict[str, _Field] = {}  # by key, in the order added
        self.groups: dict[str, _Group] = {}  # by URL, in the order added
        self.listeners: tuple[Callable[[StatusChange], Any], ...] = ()
        # Per app; weak keys, so the extension never keeps an app alive.
        self.monitors: weakref.WeakKeyDictionary[Flask, _Monitor] = (
            weakref.WeakKeyDictionary()
        )
        # The group each route answers for, by Flask endpoint name.
        self.routes: dict[str | None, _Group] = {}


class _Group(NamedTuple):
    """A URL of a FlaskStatus and the fields it shows: the instance's own
    URL, with all of them, or a group's."""

    url: str
    include: tuple[str, ...] | None = None  # only these
    exclude: frozenset[str] = frozenset()  # all but these
    public: bool = False  # no authenticator, no details

    def select(self, fields: dict[str, _Field]) -> dict[str, _Field]:
        """The fields of ``fields`` this URL shows, in their order."""
        if self.include is not None:
            return {k: f for k, f in fields.items() if k in self.include}
        if self.exclude:
            return {k: f for k, f in fields.items() if k not in self.exclude}
        return fields


def _json_value(what: str, value: object) -> None:
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        text.encode()
    except UnicodeEncodeError:
        raise ValueError(
            f"{what} {value!r} has text that cannot be encoded as UTF-8 (a lone"
            " surrogate), as every response must be; decode it with"
            " errors='replace' first."
        ) from None
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


# -- the monitor: runs of checks, which requests join and which settle once ---
#
# A _Monitor holds what one FlaskStatus watches on one app: the latest run of
# each check, and each check's status over its runs. Its state changes only
# in four transitions, each a method that takes the monitor's lock, decides
# everything under it and returns a _Then, what must happen next:
#
#     join    a request joins a run of each check, starting those that are due
#     finish  a worker's call of a check returned
#     expire  a run's deadline passed (or, for a late run, one more timeout)
#     due     a scheduled run fell due
#
# Whoever took the transition (a request, a worker, the scheduler) hands
# the _Then to _Monitor.carry_out, which does it outside the lock, in the
# one order its docstring states. A run moves through the states of _State,
# along their moves only:
#
#     QUEUED --a worker is free--> RUNNING --its call returned--> DONE
#        |                            |                            ^  ^
#        +--its deadline passed-------)----------------------------+  |
#                                     +--its deadline passed--> LATE -+
#                                               (one more timeout: LATE again)


class _State(enum.Enum):
    """Where a run of a check is; it moves to one of its ``moves`` only,
    under its monitor's lock."""

    QUEUED = "queued"  # waiting in the monitor's backlog for one of its workers
    RUNNING = "running"  # handed to the pool, holding one of the workers
    LATE = "late"  # settled as timed out at its deadline while its call goes on
    DONE = "done"  # settled, and its call is over (or will never be made)

    moves: tuple[_State, ...]  # the states it may move to, set below


# The moves a run may make from each state, kept on the state itself: a
# tuple of members, as "in" compares them by identity, where a dict or a
# set would call Enum's __hash__, a Python function, on every move.
_State.QUEUED.moves = (
    _State.RUNNING,  # a worker is free
    _State.DONE,  # its deadline passed before one was
)
_State.RUNNING.moves = (
    _State.DONE,  # its call returned
    _State.LATE,  # its deadline passed first
)
_State.LATE.moves = (
    _State.LATE,  # still hung a timeout later: one more failed run
    _State.DONE,  # its call returned after all
)
_State.DONE.moves = ()

# The members again, as globals for the hot paths: reading an attribute of
# an Enum class costs about ten times what reading a global does, as its
# metaclass keeps the interpreter from caching the lookup.
_QUEUED, _RUNNING, _LATE, _DONE = (
    _State.QUEUED,
    _State.RUNNING,
    _State.LATE,
    _State.DONE,
)


class _Outcome(NamedTuple):
    """What one run of a check came to, as its check's status counted it;
    made once, when the run settles."""

    ok: bool  # it passed: OK, or a Health.warn (a degraded run is not down)
    value: str  # the JSON text the payload shows: the result, or false
    reason: str | None  # why it failed or warned, cut to _MOST_REASON characters
    at: float  # when, in seconds since the epoch
    duration: float  # seconds the run took, or until it was given up
    status: str  # the check's status once this run counted: OK, WARN or FAIL
    since: float  # when that status began, in seconds since the epoch
    failures: int  # failed runs in a row, this one included
    health: Health | None  # what the check returned, if a Health: unit, value


# What a call of a check came to, before its run counts it: whether it
# passed, the JSON text of its result (or false), why it failed or warned
# (whole), the seconds it took, and the Health it returned, if any. A plain
# tuple: one is made on every run, and a NamedTuple's __new__ would cost a
# Python call each time.
_Result = tuple[bool, str, Union[str, None], float, Union[Health, None]]

_MOST_REASON = 500  # characters of a reason that responses and listeners get


def _bounded(reason: str) -> str:
    """``reason``, cut to ``_MOST_REASON`` characters with a marker that
    says so if it is longer: once, where the outcome is made, so that every
    format and listener shows the same text; the log line keeps the whole."""
    left = len(reason) - _MOST_REASON
    if left <= 0:
        return reason
    return f"{reason[:_MOST_REASON]}... [{left} more characters in the log]"


class _Streak:
    """A check's status over its runs, counted under its monitor's lock.

    The first run sets the status. After it, a passing check turns failing
    only after ``fail_after`` failed runs in a row, and a failing one passes
    again only after ``recover_after`` passing runs in a row. A run that
    returned ``Health.warn`` passes, and makes a status that would be OK
    WARN: degraded is not down, so no streak delays it.
    """

    __slots__ = ("failures", "passes", "since", "status")

    def __init__(self) -> None:
        self.status: str | None = None
        self.since = 0.0
        self.failures = 0  # failed runs in a row
        self.passes = 0  # passing runs in a row

    def count(self, check: _Check, result: _Result) -> tuple[_Outcome, str | None]:
        """Count one run in: its outcome, with the check's status as
        ``fail_after`` and ``recover_after`` judge it, and the status
        before."""
        ok, value, reason, duration, health = result
        at = time.time()
        old = self.status
        if ok:
            self.passes, self.failures = self.passes + 1, 0
            new = "OK" if old is None or self.passes >= check.recover_after else old
            if new == "OK" and health is not None:
                new = health.status  # OK, or WARN: degraded at once
        else:
            self.passes, self.failures = 0, self.failures + 1
            new = (
                check.failing
                if old is None or self.failures >= check.fail_after
                else old
            )
        if new != old:
            self.status, self.since = new, at
        if reason is not None:  # a failed run's, or a warning's
            reason = _bounded(reason)
        # The fields of _Outcome in order, made into one in C: the
        # NamedTuple's own __new__ is a Python function, paid on every run.
        fields = (
            ok,
            value,
            reason,
            at,
            duration,
            new,
            self.since,
            self.failures,
            health,
        )
        return tuple.__new__(_Outcome, fields), old

    def shown(self, check: _Check, result: _Result) -> _Outcome:
        """The outcome of a run that another process counts: the status
        stays as it is (the failing one, if there is none yet)."""
        ok, value, reason, duration, health = result
        at = time.time()
        status, since = self.status or check.failing, self.since or at
        if reason is not None:
            reason = _bounded(reason)
        fields = (ok, value, reason, at, duration, status, since, self.failures, health)
        return tuple.__new__(_Outcome, fields)


class _Plan:
    """The fields a request shows, in order, and its checks among them."""

    __slots__ = ("checks", "fields")

    def __init__(self, fields: list[_Field], checks: list[_Check]) -> None:
        self.fields = fields
        self.checks = checks

    @classmethod
    def of(cls, fields: list[_Field], checks: dict[str, _Check]) -> _Plan:
        """The plan of ``fields``, each check among them as ``checks`` has it."""
        return cls(fields, [checks[f.key] for f in fields if f.is_check])


class _Report:
    """The fields of one response with their outcomes (None: static)."""

    __slots__ = ("codes", "entries", "held", "history", "show_errors", "status", "url")

    def __init__(
        self,
        url: str,
        status: str,  # "OK", "WARN" or "FAIL"
        entries: list[tuple[_Field, _Outcome | None]],
        show_errors: bool,
        codes: dict[str, int] = _DEFAULT_CODES,
    ) -> None:
        self.url = url
        self.status = status
        self.entries = entries
        self.show_errors = show_errors
        self.held: _Hold | None = None  # an operator's hold on the URL
        # The checks' last status changes, for the page alone.
        self.history: dict[str, list[_Change]] = {}
        self.codes = codes  # the HTTP code of each status

    @property
    def code(self) -> int:
        return self.codes[self.status]


class _Latch:
    """What one request waits on: it opens when every run the request waits
    for has settled and, if its call returned with a line to log, logged.

    ``pending`` changes only under the monitor's lock: it is raised by the
    request that made the latch, before any run it waits for can settle,
    and lowered as each of them settles, or (a run that logs its line
    before the responses that wait for it) once that line is written. The
    one that brings it to 0 opens the gate, outside the lock.
    """

    __slots__ = ("_gate", "pending")

    def __init__(self) -> None:
        self._gate = threading.Lock()
        self._gate.acquire()  # released once, when pending reaches 0
        self.pending = 0

    def open(self) -> None:
        self._gate.release()

    def wait(self, seconds: float) -> bool:
        """Whether the latch opened within ``seconds``."""
        return self._gate.acquire(True, max(0.0, seconds))


def _counted_down(latches: Iterable[_Latch]) -> list[_Latch]:
    """Lower each latch once, under the monitor's lock; those to open."""
    opened = []
    for latch in latches:
        latch.pending -= 1
        if not latch.pending:
            opened.append(latch)
    return opened


class _Check:
    """A registered check with its options resolved against one monitor's
    settings: made once for each monitor and set of fields, not per run.
    A class with ``__slots__``, not a NamedTuple: runs read its fields
    often, and Python 3.11 reads a NamedTuple's field through a descriptor
    it cannot specialize, at several times the cost of a slot."""

    __slots__ = (
        "cache",
        "call",
        "component_type",
        "every",
        "fail_after",
        "failing",
        "ident",
        "key",
        "recover_after",
        "timeout",
    )

    def __init__(
        self,
        *,
        key: str,
        call: Callable[[], Any],
        failing: str,
        timeout: float,
        cache: float,
        every: float,
        fail_after: int,
        recover_after: int,
        component_type: str | None = None,
    ) -> None:
        self.key = key
        self.call = call
        self.failing = failing  # its status when it fails: "FAIL", or "WARN"
        self.timeout = timeout
        self.cache = cache  # seconds a result is reused
        self.every = every  # seconds between scheduled runs; 0: on request
        self.fail_after = fail_after
        self.recover_after = recover_after
        self.ident = ""  # its key in a shared store: see _Monitor.checks
        self.component_type = component_type  # for health+json and metrics

    @classmethod
    def resolve(cls, field: _Field, settings: _Settings, policy: _Policy) -> _Check:
        """``field``'s check, each option its own or the endpoint's."""
        options = field.options
        every = options.every
        if every is None:  # a check with a cache of its own runs on request
            every = 0.0 if options.cache is not None else settings.every
        return cls(
            key=field.key,
            call=_measured(field.value),
            failing="FAIL" if options.critical else "WARN",
            timeout=options.timeout or settings.timeout,
            cache=settings.cache if options.cache is None else options.cache,
            every=every if policy.schedules else 0.0,
            fail_after=options.fail_after or settings.fail_after,
            recover_after=options.recover_after or settings.recover_after,
            component_type=options.component_type,
        )


class _Run:
    """One call of a check, which any number of requests may wait for.

    It settles on leaving QUEUED or RUNNING: its ``outcome`` is then set. A
    late run holds no worker, and its check is not run again until the call
    returns; meanwhile, from ``counts_again`` on, each further timeout it
    stays late counts as one more failed run, when a request or the
    scheduler first sees it, so that a hung dependency turns failing after
    about ``fail_after`` timeouts. Its call's return counts no more.
    """

    __slots__ = (
        "__weakref__",
        "check",
        "claim",
        "counts_again",
        "deadline",
        "expires",
        "follows",
        "latches",
        "monitor",
        "outcome",
        "previous",
        "started",
        "state",
        "token",
    )

    def __init__(
        self,
        monitor: _Monitor,
        check: _Check,
        now: float,
        last: _Run | None = None,  # the run it follows, done and expired
    ) -> None:
        self.monitor = monitor
        self.check = check
        self.state = _QUEUED
        self.started = now
        self.deadline = now + check.timeout
        self.counts_again = math.inf  # once late: when it counts as failed again
        # A scheduled check shows the last run's outcome until this one's.
        self.previous = last.outcome if last is not None and check.every else None
        self.outcome: _Outcome | None = None
        self.latches: list[_Latch] = []  # of the requests waiting for it
        self.expires = 0.0  # monotonic time from which a new run is due, once done
        # With a shared store: the claim this process holds on the check
        # while it runs it; or, following another process's run or taking
        # its outcome, that it counts nothing itself (that process counts,
        # logs and tells).
        self.token: str | None = None
        self.follows = False
        # What the store said of a run that is not to call its check here:
        # follow another process's run, or adopt its outcome (see _Claim).
        self.claim: tuple[str, _Shared] | None = None

    def move(self, state: _State) -> None:
        if state not in self.state.moves:
            raise RuntimeError(
                f"A run of check {self.check.key!r} cannot go from"
                f" {self.state.value} to {state.value}."
            )
        self.state = state

    def shown(self, now: float) -> _Outcome | None:
        """What a request that joins the run at ``now`` shows: its outcome;
        a scheduled check's previous one while it runs; or None: wait for
        it, or (past a deadline) give it up."""
        outcome = self.outcome
        if outcome is None:
            return self.previous if now < self.deadline else None
        if now >= self.counts_again:
            return None  # late for one more timeout: expire counts it
        return outcome

    def execute(self, app: Flask) -> bool:
        """Call the check in a worker thread and finish the run; whether it
        passed, so that a check that failed leaves its context to no other."""
        monitor = self.monitor
        # Read without the lock: a run given up just after this read is
        # called all the same, as a late run.
        if self.outcome is not None:  # given up before a worker took it
            monitor.carry_out(app, monitor.finish(self, None))
            return True
        if self.claim is not None and monitor.meet(app, self):
            return True  # settled from the store: another process ran it
        start = time.monotonic()
        error: BaseException | None = None
        try:
            value = self.check.call()
            if value is True:  # the commonest result: JSON needs no encoder
                result: _Result = (True, "true", None, time.monotonic() - start, None)
            else:
                result, error = _result(value, monitor.parts(app).encode, start)
        except BaseException as exc:  # SystemExit too: a run must always settle
            result, error = _failed(_describe(exc), start), exc
        try:
            monitor.carry_out(app, monitor.finish(self, result, error))
        finally:
            if error is not None:  # logged: its traceback holds this frame,
                error.__traceback__ = None  # and so the app, in a cycle
            del error
        return result[0]

    def abandon(self, app: Flask, reason: str) -> None:
        result = _failed(reason, self.started)
        self.monitor.carry_out(app, self.monitor.finish(self, result))


def _result(
    value: Any, encode: Callable[[Any], str], start: float
) -> tuple[_Result, BaseException | None]:
    """What a check that returned ``value`` (an ``async def`` one's, once
    awaited) came to, frozen as JSON text, and the error that kept it from
    being encoded, for the log."""
    if inspect.iscoroutine(value):
        value = _run_async(value)
    if value is False:
        return _failed("returned False", start), None
    health = None
    if isinstance(value, Health):  # it says its status, and why
        health = value
        value = health.value
        if value is None:
            value = health.status != "FAIL"
    try:
        text = encode(value)
        if not text.isascii():
            text.encode()  # a lone surrogate, where the provider keeps non-ASCII
    except Exception as error:  # unencodable, NaN, too deep, or the provider's
        name = type(value).__name__
        article = "an" if name[:1].lower() in "aeiou" else "a"
        reason = f"returned {article} {name} object that JSON cannot encode"
        return _failed(reason, start), error
    if health is None:
        return (True, text, None, time.monotonic() - start, None), None
    ok = health.status != "FAIL"
    why = None if health.reason is None else _utf8(health.reason)
    return (ok, text, why, time.monotonic() - start, health), None


def _failed(reason: str, start: float) -> _Result:
    return (False, "false", reason, time.monotonic() - start, None)


_STILL_RUNNING = "; still running"  # said of a late run until its call returns


def _timed_out(run: _Run, still: str = "", until: float = 0.0) -> _Result:
    """A run that outlasted its deadline: while it waited for a worker, or
    with ``still`` said while its call goes on; its duration is the time
    from its start to its deadline, or to ``until``, a later one."""
    reason = f"timed out after {run.check.timeout} s{still}"
    if run.state is _QUEUED:
        workers = run.monitor.settings.workers
        busy = "the only one was" if workers == 1 else f"all {workers} were"
        reason += f" waiting for a worker; {busy} busy"
    late = until > run.deadline
    duration = until - run.started if late else run.check.timeout
    return (False, "false", reason, duration, None)


def _describe(error: BaseException) -> str:
    """``Type: message``, as a traceback's last line without its notes."""
    kind = type(error)
    name = kind.__qualname__
    if kind.__module__ not in ("builtins", "__main__"):
        name = f"{kind.__module__}.{name}"
    try:
        text = str(error)
    except BaseException:
        text = "<exception str() failed>"
    text = _utf8(text)
    return f"{name}: {text}" if text else name


def _utf8(text: str) -> str:
    """``text``, a lone surrogate in it escaped: none may reach a response."""
    if text.isascii():
        return text
    return text.encode(errors="backslashreplace").decode()


class _Then:
    """What a transition decided must happen once the monitor's lock is
    released; :meth:`_Monitor.carry_out` does it. A transition sets only
    what applies. (Slots set in ``__init__``, not class defaults: Python
    3.11 reads a default through the class, unspecialized, at several times
    the cost of a slot, and carry_out reads all of them.)"""

    __slots__ = (
        "after_line",
        "claims",
        "line",
        "log_later",
        "next_at",
        "next_run",
        "notify",
        "opened",
        "record",
        "spread",
        "tasks",
        "watch",
    )

    def __init__(self) -> None:
        self.tasks: Sequence[tuple[Flask, _Task]] = ()  # to hand to the pool
        self.claims: Sequence[_Run] = ()  # to claim in the store first
        self.spread = False  # wake a worker for each task queued, not one
        self.watch: Iterable[_Run] = ()  # runs to settle at their deadlines
        self.next_run: _Run | None = None  # a scheduled run whose successor is due
        self.next_at = 0.0  # when, in monotonic time
        self.line: _Line | None = None  # to log
        self.log_later = False  # a worker logs the line: nobody waits for it
        self.after_line: Sequence[_Latch] = ()  # to count down once it is logged
        self.opened: Sequence[_Latch] = ()  # to open: their requests may answer
        self.notify = False  # start delivering queued changes to the listeners
        self.record: _Record | None = None  # to write to the shared store


class _Policy:
    """What differs between a monitor that serves an app's requests and
    the one that a ``flask status`` command runs once. (A plain class, as
    are the records below that need not be tuples: a NamedTuple costs
    about 0.15 ms to define, paid by every process that imports this.)"""

    __slots__ = (
        "counts_hangs",
        "logs_every_failure",
        "logs_late_later",
        "reuses_forever",
        "schedules",
        "shares_runs",
        "tells_listeners",
    )

    def __init__(
        self,
        *,
        schedules: bool,
        reuses_forever: bool,
        counts_hangs: bool,
        tells_listeners: bool,
        logs_every_failure: bool,
        logs_late_later: bool,
        shares_runs: bool,
    ) -> None:
        self.schedules = schedules  # every= runs checks in the background
        self.reuses_forever = reuses_forever  # a done run serves every request
        self.counts_hangs = counts_hangs  # a late run fails again each timeout
        self.tells_listeners = tells_listeners
        self.logs_every_failure = logs_every_failure  # whatever the settings say
        self.logs_late_later = logs_late_later  # a worker logs a timeout
        self.shares_runs = shares_runs  # with a store, runs once per host


_SERVING = _Policy(
    schedules=True,
    reuses_forever=False,
    counts_hangs=True,
    tells_listeners=True,
    logs_every_failure=False,
    logs_late_later=True,
    shares_runs=True,
)
# One run of each check for every URL of the command, so each check's streak
# counts that run alone; every failure logged before the command prints (a
# timeout by the command's own thread, which exits once it has printed); no
# schedule or listeners.
_ONCE = _Policy(
    schedules=False,
    reuses_forever=True,
    counts_hangs=False,
    tells_listeners=False,
    logs_every_failure=True,
    logs_late_later=False,
    shares_runs=False,
)


_PASSED_AGAIN = ("OK", "OK", None)  # a run's old status, its new one and reason
_SPREAD_AFTER = 0.001  # seconds a request waits before queued checks get workers
_UNKNOWN_NAMES = 64  # excluded names not served, warned about once each


class _Monitor:
    """What one FlaskStatus watches on one app: its settings and checks,
    the latest run of each check, and each check's status. It holds an app
    only while a run of it waits in the backlog; otherwise whoever has the
    app passes it.

    The counts, kept under ``lock``: ``running`` is the number of runs in
    ``runs`` that are RUNNING, at most ``settings.workers``; ``backlog``
    holds every QUEUED run, and runs that settled while they waited there,
    which are skipped when a worker is free.
    """

    def __init__(
        self,
        registry: _Registry,
        settings: _Settings,
        name: str,  # the app's import name
        policy: _Policy = _SERVING,
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.name = name
        self.policy = policy
        self.store = _store_at(settings.share) if settings.share else None
        self.shares_runs = self.store is not None and policy.shares_runs
        # Each URL's hold, by URL; with a store, as last read from it.
        self.holds: dict[str, _Hold] = {}
        self.idents: list[str] = []  # each check's key in the store
        self._url_keys: tuple[object, list[str], list[str], list[str]] = (
            None,
            [],
            [],
            [],
        )
        self.logs_every_failure = policy.logs_every_failure or settings.log == "every"
        self.main = _Group(settings.url)  # the instance's own URL on this app
        self._parts: _Parts | None = None
        # What the fields come to here, made again when they change: each
        # check resolved, and each URL's fields and checks.
        self._resolved: tuple[dict[str, _Field], dict[str, _Check]] = ({}, {})
        self._plans: dict[str, _Plan] = {}
        self.schedules = False  # whether a check of the fields is scheduled
        self._reset()

    def _reset(self) -> None:
        """Start clean: at creation, and in the child of a fork, where other
        threads' locks, runs and workers did not come along."""
        self.lock = threading.Lock()
        self.runs: dict[str, _Run] = {}  # the latest run of each check
        # Each check's status over its runs, made by its first run.
        self.streaks: collections.defaultdict[str, _Streak] = collections.defaultdict(
            _Streak
        )
        self.overall: dict[str, str] = {}  # each URL's status, for listeners
        self.running = 0
        # Runs wait here for one of this monitor's workers rather than in the
        # pool's queue: the pool serves every monitor of the process, and a
        # run given up here never took a thread.
        self.backlog: collections.deque[tuple[Flask, _Run]] = collections.deque()
        self.changes = _Changes()
        self.unknown: set[str] = set()  # excluded names already warned about
        # Resolved again in a fork's child: a store's idents name the deploy
        # by the parent process (see _parent), which the child's differs from.
        self._resolved = ({}, {})
        # Each check's last status changes, newest first, when no store has them.
        self.history: collections.defaultdict[str, collections.deque[_Change]] = (
            collections.defaultdict(lambda: collections.deque(maxlen=_HISTORY))
        )
        self.seen: dict[str, int] = {}  # each check's store row last adopted (seq)
        self.version: object = None  # of the store, when this monitor last read it
        self.looked = -math.inf  # monotonic time of that look

    def assert_counts(self) -> None:
        """Assert the invariant of the counts, which holds whenever the lock
        is free; tests/conftest.py checks it after each test."""
        with self.lock:
            states = [run.state for run in self.runs.values()]
            assert self.running == states.count(_RUNNING), self.running
            assert self.running <= self.settings.workers
            queued = {id(run) for _, run in self.backlog}
            for run in self.runs.values():
                assert run.state is not _QUEUED or id(run) in queued

    def checks(self) -> dict[str, _Check]:
        """Each registered check, resolved against this monitor's settings;
        made again when the fields change."""
        fields, checks = self._resolved
        if fields is not self.registry.fields:
            fields = self.registry.fields
            checks = {
                key: _Check.resolve(field, self.settings, self.policy)
                for key, field in fields.items()
                if field.is_check
            }
            if self.store is not None:  # before another thread may read them
                for check in checks.values():
                    check.ident = _check_ident(self.name, self.settings.url, check)
                self.idents = [check.ident for check in checks.values()]
            # Published last, whole: another thread reads them without the lock.
            self.schedules = any(check.every for check in checks.values())
            self._resolved, self._plans = (fields, checks), {}
        return checks

    def url_keys(self) -> tuple[list[str], list[str], list[str]]:
        """Each URL, and the store's keys of its status and its hold; made
        again when the groups change."""
        if self._url_keys[0] is not self.registry.groups:
            urls = [group.url for group in self.groups()]
            ids = [self.url_id(url) for url in urls]
            holds = [self.url_id(url, "hold") for url in urls]
            self._url_keys = (self.registry.groups, urls, ids, holds)
        return self._url_keys[1], self._url_keys[2], self._url_keys[3]

    def url_id(self, url: str, what: str = "status") -> str:
        """The store's key of URL ``url``'s status, or its hold."""
        return _digest(what, self.name, self.settings.url, url)

    def plan(self, group: _Group) -> _Plan:
        """The fields ``group``'s URL shows, and its checks among them;
        made once for each set of fields."""
        checks = self.checks()
        plan = self._plans.get(group.url)
        if plan is None:
            fields = list(group.select(self.registry.fields).values())
            plan = self._plans[group.url] = _Plan.of(fields, checks)
        return plan

    # The request: join runs or start them, then wait until their deadlines.

    def report(self, app: Flask, url: str, plan: _Plan, whole: bool = True) -> _Report:
        """Join or start a run of each check of ``plan``, wait for them
        until their deadlines, and judge the status of ``url``: FAIL while
        it is held, unless the report is not of the ``whole`` URL (a
        per-check route's)."""
        if self.store is not None:  # before the checks: the holds too
            self.refresh(app)
        outcomes = self._outcomes(app, plan.checks) if plan.checks else {}
        entries = [(field, outcomes.get(field.key)) for field in plan.fields]
        status = _worst(outcomes.values())
        settings = self.settings
        report = _Report(
            url, status, entries, settings.show_errors, settings.status_codes
        )
        if self.holds and whole:
            report.held = self.held(app, url)
            if report.held is not None:
                report.status = "FAIL"
        return report

    def _outcomes(self, app: Flask, checks: list[_Check]) -> dict[str, _Outcome]:
        if os.getpid() != _pid:
            _check_pid()
        outcomes, waiting, latch, then = self.join(app, checks)
        if then is not None:
            self.carry_out(app, then)
        if latch is not None:
            self._wait(app, latch, waiting)
        for run in waiting:  # settled, else past a deadline: give it up
            outcome = run.outcome
            if outcome is None or run.state is _LATE:
                outcome = self.settle_overdue(app, run)
            outcomes[run.check.key] = outcome
        return outcomes

    def join(
        self, app: Flask, checks: list[_Check]
    ) -> tuple[dict[str, _Outcome], list[_Run], _Latch | None, _Then | None]:
        """Transition: a request joins a run of each check, starting those
        that are due. Returns the outcomes known now, the runs to wait for,
        the latch they open and what must happen next."""
        known: dict[str, _Outcome] = {}
        waiting: list[_Run] = []
        started: list[_Run] = []
        latch = None
        with self.lock:
            now = time.monotonic()
            for check in checks:
                run = self.runs.get(check.key)
                if run is None or (run.state is _DONE and now >= run.expires):
                    # Made here, not by a helper, as a call costs every run.
                    run = self.runs[check.key] = _Run(self, check, now, run)
                    started.append(run)
                    outcome = run.previous  # what shown() says of a new run
                else:
                    outcome = run.shown(now)
                if outcome is not None:
                    known[check.key] = outcome
                    continue
                waiting.append(run)
                if now < run.deadline:
                    latch = latch or _Latch()
                    latch.pending += 1
                    run.latches.append(latch)
            # A request that waits spreads the runs it started once one is
            # slow; runs nobody waits for get a worker each now.
            then = self._started(app, started, latch is None) if started else None
        return known, waiting, latch, then

    def _started(self, app: Flask, runs: list[_Run], spread: bool) -> _Then:
        then = _Then()
        then.tasks = self._admit(app, runs)
        then.spread = spread
        if self.shares_runs:
            then.claims = runs
        if self.schedules:  # else no run to watch: spare the list
            then.watch = [run for run in runs if run.check.every]
        return then

    def _admit(self, app: Flask, runs: list[_Run]) -> list[tuple[Flask, _Task]]:
        """Give ``runs`` workers while fewer than ``workers`` are held; the
        rest wait in the backlog. Returns the tasks for the pool."""
        tasks: list[tuple[Flask, _Task]] = []
        for run in runs:
            if self.running < self.settings.workers:
                # Set, not move()d, as every run admitted is QUEUED (a new
                # one, or one _admit_queued found so), which may go to
                # RUNNING: the check would cost a call on every run.
                run.state = _RUNNING
                self.running += 1
                tasks.append((app, run))
            else:
                self.backlog.append((app, run))
        return tasks

    def _wait(self, app: Flask, latch: _Latch, runs: list[_Run]) -> None:
        """Wait for ``runs`` until the latch opens. For a millisecond one
        worker runs quick checks back to back; then each queued run gets a
        worker, and each run is given up at its own deadline, so that its
        worker goes to a run waiting for one. Once all have settled, a log
        line being written holds the response until the last deadline."""
        until = min([run.deadline for run in runs])
        if latch.wait(min(_SPREAD_AFTER, until - time.monotonic())):
            return
        _pool.spread()  # a slow check: the ones queued behind it get workers
        while not latch.wait(until - time.monotonic()):
            later = self._expire_overdue(app, runs, time.monotonic())
            if later is None:
                return
            until = later

    def _expire_overdue(self, app: Flask, runs: list[_Run], now: float) -> float | None:
        """Give up each of ``runs`` whose deadline passed. Returns when to
        look again: the soonest deadline of the runs still out, else the
        last deadline if it is still ahead, else None."""
        pending = []
        for run in runs:
            if run.outcome is None and run.deadline <= now:
                self.settle_overdue(app, run)
            elif run.outcome is None:
                pending.append(run.deadline)
        if pending:
            return min(pending)
        last = max(run.deadline for run in runs)
        return last if last > now else None

    def settle_overdue(self, app: Flask, run: _Run) -> _Outcome:
        """Expire ``run`` and carry that out; its outcome."""
        then = self.expire(run)
        if then is not None:
            self.carry_out(app, then)
        return run.outcome  # type: ignore[return-value]

    # The settling: a run ends once, by returning or by its deadline.

    def finish(
        self, run: _Run, result: _Result | None, error: BaseException | None = None
    ) -> _Then:
        """Transition: a worker's call of ``run`` returned ``result`` (None:
        the run was given up before a worker took it). A running run
        settles, as timed out if its deadline passed unnoticed; a late one
        is over. A run that is done already changes nothing."""
        then = _Then()
        with self.lock:
            state = run.state
            if state is _DONE:
                return then
            now = time.monotonic()
            late = state is _LATE or now > run.deadline
            if state is _RUNNING:
                if late or result is None:
                    result, error = _timed_out(run), None
                self._settle(run, result, error, _DONE, then)
            else:  # late: its outcome no longer says it is still running
                run.move(_DONE)
                outcome = cast(_Outcome, run.outcome)
                if outcome.reason is not None:  # (a follower's may be a pass)
                    reason = outcome.reason.removesuffix(_STILL_RUNNING)
                    run.outcome = outcome._replace(reason=reason)
            check = run.check
            if check.every or self.policy.reuses_forever:
                self._ended(run, now, late, then)
            else:  # _ended's commonest case, made here: a call per run spared
                run.expires = now if late else now + check.cache
        return then

    def expire(self, run: _Run) -> _Then | None:
        """Transition: ``run``'s deadline passed, unless it settled first. A
        queued run is over, never started; a running one is late and gives
        its worker back; a late one past ``counts_again`` counts as one more
        failed run. None when there is nothing to do."""
        then = _Then()
        then.log_later = self.policy.logs_late_later
        with self.lock:
            now = time.monotonic()
            state = run.state
            if state is _QUEUED:
                self._settle(run, _timed_out(run), None, _DONE, then)
                self._ended(run, now, True, then)
            elif state is _RUNNING or (state is _LATE and now >= run.counts_again):
                self._count_late(run, now, then)
            else:  # done, or late and counted for this timeout already
                return None
        return then

    def _count_late(self, run: _Run, now: float, then: _Then) -> None:
        """Settle ``run`` as late at a deadline: the first, or one more
        timeout later; then when it counts again, the first such time
        still ahead, so that a hang seen only long after counts once, as
        one run would. A scheduled run's next count is watched."""
        first = run.state is _RUNNING
        then.spread = first  # its task may still wait in the pool's queue
        since = run.deadline if first else run.counts_again
        result = _timed_out(run, _STILL_RUNNING, since)
        self._settle(run, result, None, _LATE, then)
        if self.policy.counts_hangs:
            period = run.check.timeout
            run.counts_again = since + period * (1 + max(0.0, now - since) // period)
            then.watch = (run,) if run.check.every else ()

    def _settle(
        self,
        run: _Run,
        result: _Result | None,
        error: BaseException | None,
        state: _State,
        then: _Then,
        given: _Outcome | None = None,
    ) -> None:
        """Move ``run`` to ``state`` with the outcome of ``result``, or the
        one ``given`` by another process; decide what to log, whom to tell
        and what to write to the store; and count down the latches of the
        requests waiting, or leave that until the line is logged."""
        check = run.check
        if run.follows:  # another process counts, logs and tells it all
            outcome = self._counted_elsewhere(run, result, given)
        else:
            outcome, old = self.streaks[check.key].count(check, result)  # type: ignore[arg-type]
            # A run that passed, as its check did before, changes no status
            # and logs nothing: the commonest run skips deciding either.
            if (old, outcome.status, outcome.reason) != _PASSED_AGAIN:
                self._tell_and_log(run, outcome, old, error, then, result[2])  # type: ignore[index]
            if self.shares_runs:
                then.record = self._record(run, outcome, old, state is _DONE)
        if run.state is _RUNNING:  # its worker is free, for a queued run
            self.running -= 1
            if self.backlog:
                then.tasks = self._admit_queued()
        # run.move(state), its check made here: a call per run spared.
        if state not in run.state.moves:
            run.move(state)  # raises, saying which move
        run.state = state
        run.outcome = outcome
        latches, run.latches = run.latches, []
        if then.line is not None and not then.log_later:
            then.after_line = latches  # the responses come after the line
        elif latches:
            then.opened = _counted_down(latches)

    def _counted_elsewhere(
        self, run: _Run, result: _Result | None, given: _Outcome | None
    ) -> _Outcome:
        """The outcome of a run another process counts: the one it ``given``
        (adopted); or, for a run that followed another process's and
        reached its deadline with nothing recorded (the owner records a
        timeout at its own deadline, which came first, so it could not
        write), the host's last outcome, else the timeout, counted by
        nobody."""
        if given is not None:
            return given
        last = run.claim[1].outcome if run.claim is not None else None
        if last is not None:
            return last
        return self.streaks[run.check.key].shown(run.check, cast(_Result, result))

    def _tell_and_log(
        self,
        run: _Run,
        outcome: _Outcome,
        old: str | None,
        error: BaseException | None,
        then: _Then,
        reason: str | None,  # the whole of it, for the log
    ) -> None:
        """Decide whom to tell of the status ``run`` left its check in, if it
        changed from ``old``, and what to log of it; keep the change."""
        key = run.check.key
        if outcome.status != old:
            if old is not None:
                change = _Change(outcome.at, old, outcome.status, outcome.reason)
                self.history[key].appendleft(change)
            if self.policy.tells_listeners:
                then.notify = self._tell(key, old, outcome)
        # A failure or a warning has a reason; else only a recovery is logged.
        if outcome.reason is not None or old not in (None, "OK"):
            then.line = _run_line(self, run.check, outcome, old, error, reason)

    def _admit_queued(self) -> list[tuple[Flask, _Task]]:
        """A worker is free: the first queued run still in time takes it.
        Returns the task for the pool, if any."""
        now = time.monotonic()
        while self.backlog:
            app, run = self.backlog.popleft()
            if run.state is _QUEUED and now < run.deadline:
                return self._admit(app, [run])
        return []

    def _ended(self, run: _Run, now: float, late: bool, then: _Then) -> None:
        """``run`` is done (its outcome made at ``now``, in monotonic time):
        when the next run is due, and for a scheduled check, that the
        scheduler starts it."""
        check = run.check
        if self.policy.reuses_forever:
            run.expires = math.inf  # every URL of the command reads this run
        elif check.every:  # until then the schedule runs; after, requests restart it
            run.expires = now + check.every + check.timeout + 1.0
            then.next_run, then.next_at = run, now + check.every
        else:
            run.expires = now if late else now + check.cache

    def _tell(self, key: str, old: str | None, outcome: _Outcome) -> bool:
        """Queue for the listeners the change of a check's status from
        ``old`` to ``outcome.status``, and each URL's status that changed
        with it; whether a delivery must start."""
        at = outcome.at
        change = StatusChange(
            self.settings.url, key, old, outcome.status, outcome.reason, at
        )
        changes = [change]
        for group in self.groups():
            overall = self._overall(group)
            before = self.overall.get(group.url)
            if overall is not None and overall != before:
                self.overall[group.url] = overall
                changes.append(StatusChange(group.url, None, before, overall, None, at))
        if not self.registry.listeners:
            return False
        return self.changes.add(changes)

    def _overall(self, group: _Group) -> str | None:
        """The status of ``group``'s URL, the worst of its checks'; None
        while one of them has none, or it has no check."""
        statuses = []
        for field in group.select(self.registry.fields).values():
            if field.is_check:
                streak = self.streaks.get(field.key)
                if streak is None or streak.status is None:
                    return None
                statuses.append(streak.status)
        if not statuses:
            return None
        return "FAIL" if "FAIL" in statuses else "WARN" if "WARN" in statuses else "OK"

    def groups(self) -> list[_Group]:
        """The URLs this monitor's runs serve: the instance's, then its
        groups'."""
        return [self.main, *self.registry.groups.values()]

    def due(self, app: Flask, after: _Run) -> _Then | None:
        """Transition: the scheduled run that follows ``after`` is due,
        unless a request restarted the schedule meanwhile; None then."""
        with self.lock:
            if self.runs.get(after.check.key) is not after:
                return None
            run = self.runs[after.check.key] = _Run(
                self, after.check, time.monotonic(), after
            )
            return self._started(app, [run], True)  # nobody waits: spread

    def start_due(self, app: Flask, after: _Run) -> None:
        """Carry out :meth:`due`: what the scheduler calls."""
        then = self.due(app, after)
        if then is not None:
            self.carry_out(app, then)

    # The shared store: what this process reads there, and how its runs
    # meet the other processes' (see the store's section).

    def refresh(self, app: Flask) -> None:
        """Take what other processes wrote since the last look, if they
        wrote anything: each check's latest outcome and the host's streak,
        each URL's status and the holds."""
        store = self.store
        if store is None:
            return
        now = time.monotonic()
        if now < self.looked + _LOOK_EVERY:
            return  # looked a moment ago: what others write waits as long
        self.looked = now
        self.checks()  # the idents
        urls, ids, holds = self.url_keys()
        read = store.changed(app, self.idents, [*ids, *holds], self.version)
        if read is None:
            return
        self.version, shared, statuses, held = read
        if self.shares_runs:
            with self.lock:
                for url, url_id in zip(urls, ids):
                    if url_id in statuses:
                        self.overall[url] = statuses[url_id]
                scheduled = self._adopt_rows(shared)
            # A check scheduled elsewhere is scheduled here too, from the
            # outcome taken: a process that joins (a new worker, after a
            # SIGHUP) claims it when due, rather than only once the outcome
            # expires. Its claim finds that another ran it, or runs it.
            for run, due in scheduled:
                _scheduler.after(self, app, run, due)
        for url, hold_id in zip(urls, holds):
            self._hold_news(app, url, held.get(hold_id))

    def _adopt_rows(self, shared: dict[str, _Shared]) -> list[tuple[_Run, float]]:
        """Under the lock: each check's outcome that another process
        recorded, unless a run of it is under way here. Returns the runs
        made so of scheduled checks, with when the next is due."""
        now, wall = time.monotonic(), time.time()
        scheduled = []
        for key, check in self.checks().items():
            row = shared.get(check.ident)
            if row is None or row.outcome is None or row.seq <= self.seen.get(key, 0):
                continue
            run = self.runs.get(key)
            if run is not None and run.state is not _DONE:
                continue  # this process runs it, or follows who does
            self._sync(key, row)
            outcome = row.outcome
            made = now - max(0.0, wall - outcome.at)  # in monotonic time
            if run is None:
                run = self.runs[key] = self._taken(check, made)
                if check.every:
                    scheduled.append((run, made + check.every))
            elif not check.every:  # a scheduled one keeps its schedule here
                run.expires = made + check.cache
            run.outcome = outcome
        return scheduled

    def _taken(self, check: _Check, made: float) -> _Run:
        """A run of ``check`` made done, for an outcome another process
        made at ``made`` (monotonic time): it never ran here."""
        run = _Run(self, check, made)
        run.state = _DONE
        if check.every:  # as _ended sets it: until then the schedule runs
            run.expires = made + check.every + check.timeout + 1.0
        else:
            run.expires = made + check.cache
        return run

    def _sync(self, key: str, row: _Shared) -> None:
        """Under the lock: check ``key``'s streak as the host counted it."""
        self.seen[key] = row.seq
        outcome = row.outcome
        if outcome is None:
            return
        streak = self.streaks[key]
        streak.status, streak.since = outcome.status, outcome.since
        streak.failures, streak.passes = outcome.failures, row.passes

    def claim(self, app: Flask, runs: Sequence[_Run]) -> None:
        """Claim the checks of ``runs`` in the store, in one transaction:
        a run to call its check takes the claim and the host's streak, to
        count on; the others learn whom to follow or what to adopt. If the
        store fails, they all run here alone."""
        store = cast(_Store, self.store)
        if store.alone(app):
            return
        wanted = [
            (r.check.ident, r.check.timeout, r.check.every or r.check.cache)
            for r in runs
        ]
        # Up to half the runs' time for the threads of this process that
        # use the store before this one: at once, as a server starts, they
        # would else run their checks alone.
        wait = max(_STORE_WAIT, min(r.check.timeout for r in runs) / 2)
        decided = store.claim(app, wanted, wait)
        if decided is None:
            return
        with self.lock:
            for run, (choice, row, token) in zip(runs, decided):
                if row is not None:
                    self._sync(run.check.key, row)
                if choice is _Claim.RUN:
                    run.token, run.claim = token, None
                else:
                    run.claim = (choice, cast(_Shared, row))

    def meet(self, app: Flask, run: _Run) -> bool:
        """In a worker, before ``run`` would call its check, which another
        process runs or ran: take that outcome, once recorded. Whether the
        run settled so; False: call the check here (its owner died or
        hangs, and this process claimed it)."""
        while run.claim is not None:
            choice, row = run.claim
            if choice is _Claim.FOLLOW:
                followed = self._follow(app, run, row)
                if followed is None:  # its owner died or hangs: claim it anew
                    run.claim = None
                    self.claim(app, [run])
                    continue
                row = followed
            self.carry_out(app, self.adopt(run, row))
            return True
        return False

    def _follow(self, app: Flask, run: _Run, row: _Shared) -> _Shared | None:
        """Wait, until ``run``'s deadline, for the process that holds the
        claim to record its outcome; that row, or None if it died or
        outlasted one more timeout, or the store failed here (then the
        check runs here). At the deadline, ``run`` takes the host's last
        outcome, since its owner could not record (it records a timeout at
        its own deadline, an earlier one); with none, it settles as timed
        out, counted by nobody."""
        with self.lock:
            run.follows = True
        owner, seq = row.owner, row.seq
        while time.monotonic() < run.deadline:
            time.sleep(_FOLLOW_EVERY)
            now = self.store.look(app, run.check.ident)  # type: ignore[union-attr]
            if now is not None and now.seq != seq:
                return now
            if now is None or _abandoned(now, owner, run.check.timeout):
                with self.lock:
                    run.follows = False
                return None
        if row.outcome is not None:  # its owner could not record: the last one
            return row
        self.carry_out(app, self.finish(run, _timed_out(run)))
        return row  # settled: adopting it changes nothing more

    def adopt(self, run: _Run, row: _Shared) -> _Then:
        """Transition: ``run`` takes the outcome another process recorded,
        and the host's streak; nothing is logged or told here."""
        then = _Then()
        with self.lock:
            if run.state is _DONE or row.outcome is None:
                return then
            self._sync(run.check.key, row)
            run.follows = True
            self._settle(run, None, None, _DONE, then, row.outcome)
            made = time.monotonic() - max(0.0, time.time() - row.outcome.at)
            self._ended(run, made, False, then)
        return then

    def _record(
        self, run: _Run, outcome: _Outcome, old: str | None, ends: bool
    ) -> _Record:
        """Under the lock: what the store gets of a run this process claimed."""
        check = run.check
        urls = []
        if outcome.status != old:
            urls = [(self.url_id(url), status) for url, status in self.overall.items()]
        passes = self.streaks[check.key].passes
        token = run.token
        if ends:
            run.token = None
        changed = old if old != outcome.status else None
        return _Record(check.ident, token, outcome, passes, ends, changed, urls)

    # The hold: an operator's, set here or by another process.

    def hold(self, app: Flask, url: str, hold: _Hold | None, tell: bool = True) -> bool:
        """Hold ``url`` (None: release it): in the store, for every process,
        and here. Whether the store took it (True without a store)."""
        taken = True
        if self.store is not None:
            taken = self.store.hold(app, self.url_id(url, "hold"), hold)
        if tell:
            self._hold_news(app, url, hold)
        return taken

    def held(self, app: Flask, url: str) -> _Hold | None:
        """The hold on ``url`` now; one that ran out ends here."""
        hold = self.holds.get(url)
        if hold is None or hold.active(time.time()):
            return hold
        self._hold_news(app, url, hold)
        return None

    def _hold_news(self, app: Flask, url: str, hold: _Hold | None) -> None:
        """Take ``hold`` as ``url``'s; if that starts or ends a hold, log it
        and tell the listeners, once per host: by the process that marks it
        told in the store first, or by this one without a store."""
        with self.lock:
            news = self._hold_changes(url, hold)
        if news is None or not self.policy.tells_listeners:
            return  # (the command line's checks read holds, and say nothing)
        which, starts, change = news
        if self.store is not None and not self.store.tell_once(
            app, self.url_id(url, "hold"), which, 1 if starts else 2
        ):
            return
        if starts:
            _emit(app, logging.WARNING, "%s is %s", url, change.reason, error=None)
        else:
            _emit(app, logging.INFO, "%s is held no more.", url, error=None)
        if self.registry.listeners and self.changes.add([change]):
            _pool.submit([(app, _Notice(self.changes, self.registry, url))])

    def _hold_changes(
        self, url: str, hold: _Hold | None
    ) -> tuple[_Hold, bool, StatusChange] | None:
        """Under the lock: ``url`` takes ``hold`` (an expired one is none).
        The hold that starts or ends, whether it starts, and the URL's
        change; None when no hold starts or ends."""
        now = time.time()
        before = self.holds.pop(url, None)
        overall = self.overall.get(url) or "OK"
        if hold is not None and hold.active(now):
            self.holds[url] = hold
            if hold == before:
                return None
            change = StatusChange(url, None, overall, "FAIL", hold.said(), now)
            return hold, True, change
        if before is None:
            return None
        return before, False, StatusChange(url, None, "FAIL", overall, None, now)

    def changes_of(self, app: Flask, keys: Iterable[str]) -> dict[str, list[_Change]]:
        """The last status changes of checks ``keys``, newest first: the
        host's from the store, else this process's."""
        checks = self.checks()
        keys = [key for key in keys if key in checks]
        if self.store is not None:
            ids = {checks[key].ident: key for key in keys}
            shared = self.store.history(app, list(ids))
            if shared is not None:
                return {ids[i]: changes for i, changes in shared.items()}
        with self.lock:
            return {key: list(self.history[key]) for key in keys if key in self.history}

    # What every transition leads to, done outside the lock.

    def carry_out(self, app: Flask, then: _Then) -> None:
        """Do what a transition decided, in this order: hand the admitted
        runs to the pool, so they start at once; have the scheduler watch
        deadlines and start the next scheduled run; log the line; open the
        latches, those waiting for the line once it is written, so that
        responses come after it; write the run to the shared store; and
        start telling the listeners. Before all, the runs started are
        claimed in the shared store, before any worker takes them."""
        if then.claims:
            self.claim(app, then.claims)
        if then.tasks or then.spread:
            _pool.submit(then.tasks, then.spread)
        for run in then.watch:
            _scheduler.watch(self, app, run)
        if then.next_run is not None:
            _scheduler.after(self, app, then.next_run, then.next_at)
        opened = then.opened
        if then.line is not None:
            opened = self._log(app, then, then.line)
        for latch in opened:
            latch.open()
        if then.record is not None:
            self._keep(app, then.record)
        if then.notify:
            _pool.submit(
                [(app, _Notice(self.changes, self.registry, self.settings.url))]
            )

    def _log(self, app: Flask, then: _Then, line: _Line) -> Sequence[_Latch]:
        """Log ``line``, or, after a transition a request's thread or the
        scheduler's carries out (``log_later``), have a worker log it, as a
        response never waits for a log handler; the latches to open: with
        those that waited for the line counted down."""
        if then.log_later:
            _pool.submit([(app, _Call(functools.partial(line.emit, app)))])
        else:
            line.emit(app)
        if not then.after_line:
            return then.opened
        with self.lock:
            return _counted_down(then.after_line)

    def _keep(self, app: Flask, record: _Record) -> None:
        """Have ``record`` written: with the next claim, or flushed soon: by
        a worker once the runs queued before it are done, as another
        process waits for the record to run the check again (or, alone, by
        the scheduler within ``_FLUSH_AFTER``, with the records of the
        requests meanwhile)."""
        store = cast(_Store, self.store)
        if not store.add(record):
            return  # a flush is planned already
        if store.alone(app):
            _scheduler.flush(store, app)
        else:
            _pool.submit([(app, _Call(functools.partial(store.flush, app)))])

    # What a request reads besides runs.

    def exclusions(self, app: Flask, url: str, values: list[str]) -> set[str]:
        """The field keys named by ``?exclude=`` values; a name that is no
        field is logged, once."""
        names = _names(values)
        with self.lock:  # each name is warned about once, whoever asks
            unknown = sorted(names.difference(self.registry.fields) - self.unknown)
            unknown = unknown[: max(0, _UNKNOWN_NAMES - len(self.unknown))]
            self.unknown.update(unknown)
        if unknown:
            message = "Cannot exclude %s from %s: there is no such field."
            shown = ", ".join(map(repr, unknown))
            _emit(app, logging.WARNING, message, shown, url, error=None)
        return names

    def parts(self, app: Flask) -> _Parts:
        """The static parts of the payload, encoded with the app's JSON
        provider; made again when the provider or the fields change."""
        parts, fields = self._parts, self.registry.fields
        if (
            parts is None
            or parts.provider is not app.json
            or parts.fields is not fields
        ):
            self._parts = parts = _Parts.make(app.json, fields, self.settings.message)
        return parts


def _names(values: Iterable[str]) -> set[str]:
    """The field keys in ``exclude`` values, repeated or comma-separated."""
    return {n.strip() for v in values for n in v.split(",")} - {""}


def _worst(outcomes: Iterable[_Outcome]) -> str:
    """The worst status of ``outcomes``: FAIL, else WARN, else OK."""
    worst = "OK"
    for outcome in outcomes:
        if outcome.status == "FAIL":
            return "FAIL"
        if outcome.status == "WARN":
            worst = "WARN"
    return worst


# -- log lines: what the engine says of runs, and how -------------------------


class _Line:
    """A line for ``app.logger``: its level, message and arguments, and the
    error whose traceback it shows."""

    __slots__ = ("args", "error", "level", "message")

    def __init__(
        self,
        level: int,
        message: str,
        args: tuple[Any, ...],
        error: BaseException | None = None,
    ) -> None:
        self.level = level
        self.message = message
        self.args = args
        self.error = error

    def emit(self, app: Flask) -> None:
        _emit(app, self.level, self.message, *self.args, error=self.error)


def _run_line(
    monitor: _Monitor,
    check: _Check,
    outcome: _Outcome,
    old: str | None,
    error: BaseException | None,
    reason: str | None,
) -> _Line | None:
    """The line to log for a run that settled: a failure (in "transitions"
    mode, when the check's status turns failing), a failure the check
    tolerates (only in "every" mode, at INFO), a warning, a recovery, or
    none. ``reason`` is the whole, which responses show cut."""
    url, every = monitor.settings.url, monitor.logs_every_failure
    if outcome.ok:
        return _passed_line((check.key, url), outcome, old, every, reason)
    new = outcome.status
    if new == "OK":  # tolerated: fewer than fail_after failures in a row
        if not every:
            return None
        message = "Check %r of %s failed, tolerated (%d in a row): %s"
        args = (check.key, url, outcome.failures, reason)
        return _Line(logging.INFO, message, args, error)
    if not every and old == new:
        return None
    level = logging.ERROR if check.failing == "FAIL" else logging.WARNING
    return _Line(level, "Check %r of %s failed: %s", (check.key, url, reason), error)


def _passed_line(
    what: tuple[str, str],
    outcome: _Outcome,
    old: str | None,
    every: bool,
    reason: str | None,
) -> _Line | None:
    """The line of a run that passed: a warning (a Health.warn) when the
    check's status turns to WARN, or each one in "every" mode; a recovery;
    or none. ``what`` is the check's key and URL."""
    new = outcome.status
    if reason is not None:
        if not every and old == new:
            return None
        return _Line(logging.WARNING, "Check %r of %s warns: %s", (*what, reason))
    if not every and new == "OK" and old not in (None, "OK"):
        return _Line(logging.INFO, "Check %r of %s passes again.", what)
    return None


def _emit(
    app: Flask, level: int, message: str, *args: Any, error: BaseException | None
) -> None:
    """Log through ``app.logger``; a log filter or handler that raises must
    not kill a worker, drop a change or fail a request."""
    with contextlib.suppress(BaseException):
        app.logger.log(level, message, *args, exc_info=error)


# -- the listeners: the changes they have yet to hear, and who tells them -----


_MOST_CHANGES = 1000  # changes queued for slow listeners; older ones are dropped
_SAY_DROPS_EVERY = 10.0  # seconds between warnings that changes were dropped


class _Changes:
    """The status changes a monitor's listeners have yet to hear, in order.

    Its invariant, kept under its own lock: ``delivering`` is true exactly
    while one :class:`_Notice` is queued or delivering; it alone takes
    changes from the queue. So changes are heard one at a time, in order,
    and at most ``_MOST_CHANGES`` wait: older ones are dropped and counted.
    """

    __slots__ = ("_lock", "delivering", "dropped", "drops_said_at", "queue")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.queue: collections.deque[StatusChange] = collections.deque(
            maxlen=_MOST_CHANGES
        )
        self.dropped = 0  # changes the listeners fell too far behind to hear
        self.drops_said_at = 0.0  # monotonic time before which drops go unsaid
        self.delivering = False

    def add(self, changes: list[StatusChange]) -> bool:
        """Queue ``changes``; whether a delivery must be started."""
        with self._lock:
            self.dropped += max(0, len(self.queue) + len(changes) - _MOST_CHANGES)
            self.queue.extend(changes)
            if self.delivering:
                return False
            self.delivering = True
            return True

    def take(self) -> tuple[StatusChange | None, int] | None:
        """The delivery's next step: the next change, if any, and how many
        were dropped since it last said so, said at most once in
        ``_SAY_DROPS_EVERY`` seconds and once more when the queue is empty;
        None when the delivery is over."""
        with self._lock:
            change = self.queue.popleft() if self.queue else None
            now, dropped = time.monotonic(), 0
            if self.dropped and (change is None or now >= self.drops_said_at):
                dropped, self.dropped = self.dropped, 0
                self.drops_said_at = now + _SAY_DROPS_EVERY
            if change is None and not dropped:
                self.delivering = False
                return None
            return change, dropped

    def abandon(self) -> None:
        """The delivery could not run: the next change starts another."""
        with self._lock:
            self.delivering = False


class _Notice:
    """A task that hands queued changes to the listeners."""

    def __init__(self, changes: _Changes, registry: _Registry, url: str) -> None:
        self.changes = changes
        self.registry = registry
        self.url = url

    def execute(self, app: Flask) -> bool:
        while (step := self.changes.take()) is not None:
            change, dropped = step
            if dropped:
                message = "%d status changes of %s were dropped: listeners fell behind."
                _emit(app, logging.WARNING, message, dropped, self.url, error=None)
            if change is not None:
                self._tell(app, change)
        return True

    def _tell(self, app: Flask, change: StatusChange) -> None:
        """Call each listener with ``change``."""
        for listener in self.registry.listeners:
            try:
                listener(change)
            except BaseException as error:  # SystemExit too: the others still run
                message = "The status listener %r of %s failed on %r."
                _emit(
                    app, logging.ERROR, message, listener, self.url, change, error=error
                )

    def abandon(self, app: Flask, reason: str) -> None:
        self.changes.abandon()
        message = "Status changes of %s were not delivered: %s"
        _emit(app, logging.ERROR, message, self.url, reason, error=None)


class _Call:
    """A task that makes one call: a log line nobody should wait for."""

    def __init__(self, call: Callable[[], None]) -> None:
        self.call = call

    def execute(self, app: Flask) -> bool:
        self.call()
        return True

    def abandon(self, app: Flask, reason: str) -> None:
        self.call()


# -- the threads: shared workers, the scheduler, and forks --------------------


class _Task(Protocol):
    """What the pool runs in an application context: a run of a check, a
    delivery of changes, or a log line."""

    def execute(self, app: Flask) -> bool:
        """Do the work; whether the context is still fit for the next task."""

    def abandon(self, app: Flask, reason: str) -> None:
        """Settle whatever waits for the task, which cannot run: no thread
        could start, no context could be pushed, or flask-status failed."""


class _Pool:
    """Daemon threads, shared by every monitor, that run tasks in order.

    A submission wakes one worker, which runs quick tasks back to back in
    one application context: a thread wake-up costs about as much as a
    small request. A submission that spreads wakes a worker for each task
    queued, for when one is slow or nobody waits. Idle workers park on a
    lock of their own and hold no app. Daemon threads never hold up the
    interpreter's exit, as a hung check in a ``concurrent.futures`` pool
    would.

    The invariant, kept under ``_lock``: ``_waking`` is the number of
    workers woken or started that have not yet reached the queue. The pool
    wakes a worker only for a queued task that no such worker is on its way
    to, so it grows only as far as the work needs; and a worker reaching the
    queue takes a task or parks, so a queued task always has a worker busy
    or on its way.
    """

    idle = 60.0  # seconds a worker waits for a task before it exits

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: collections.deque[tuple[Flask, _Task]] = collections.deque()
        self._parked: list[threading.Lock] = []  # one per idle worker
        self._waking = 0

    def submit(
        self, tasks: Iterable[tuple[Flask, _Task]], spread: bool = False
    ) -> None:
        """Queue ``tasks`` and wake one worker, or with ``spread`` one for
        each task queued."""
        with self._lock:
            self._tasks.extend(tasks)
            starting = self._wake(len(self._tasks) if spread else 1)
        self._start(starting)

    def spread(self) -> None:
        self.submit([], spread=True)

    def _wake(self, count: int) -> int:
        """Wake parked workers for up to ``count`` queued tasks; the number
        of workers to start for the rest."""
        count = max(min(count, len(self._tasks)) - self._waking, 0)
        woken = min(count, len(self._parked))
        for _ in range(woken):
            self._parked.pop().release()
        self._waking += count
        return count - woken

    def _start(self, count: int) -> None:
        for _ in range(count):
            try:
                worker = threading.Thread(target=self._work, name="flask-status")
                worker.daemon = True
                worker.start()
            except BaseException as error:  # no thread: settle what waits
                self._no_thread(f"could not start a thread: {_describe(error)}")

    def _no_thread(self, reason: str) -> None:
        """A worker counted in ``_waking`` will never come: when no other is
        on its way, abandon the queued tasks."""
        with self._lock:
            self._waking -= 1
            dropped = list(self._tasks) if not self._waking else []
            if dropped:
                self._tasks.clear()
        for app, task in dropped:
            task.abandon(app, reason)

    def _work(self) -> None:
        parked = threading.Lock()
        parked.acquire()
        item = self._take(parked, arriving=True)
        while item is not None:
            self._run_batch(*item)
            del item  # an idle worker holds no app
            item = self._take(parked, arriving=False)

    def _run_batch(self, app: Flask, first: _Task) -> None:
        """Run ``first``, then the tasks queued behind it for the same app,
        in one application context, until one fails."""
        context = None
        try:
            context = app.app_context()
            context.push()
        except BaseException as error:  # a receiver of appcontext_pushed, say
            if context is not None:
                with contextlib.suppress(BaseException):
                    context.pop()
            first.abandon(app, f"the app context failed: {_describe(error)}")
            return
        task: _Task | None = first
        try:
            while task is not None:
                try:
                    clean = task.execute(app)
                except BaseException as error:  # a bug here: settle it anyway
                    task.abandon(app, f"flask-status failed: {_describe(error)}")
                    clean = False
                # A failed check may leave a broken session or g behind: the
                # tasks after it get a fresh context.
                task = None
                if clean:
                    with self._lock:  # the next task, if it is for the same app
                        if self._tasks and self._tasks[0][0] is app:
                            task = self._tasks.popleft()[1]
        finally:
            try:
                context.pop()
            except BaseException as error:  # the app's teardown hooks
                message = "The application context of a status check failed to close."
                _emit(app, logging.ERROR, message, error=error)

    def _take(
        self, parked: threading.Lock, arriving: bool
    ) -> tuple[Flask, _Task] | None:
        """The next task, waiting for one while parked; None when it waited
        ``idle`` seconds in vain. ``arriving``: woken or started for a task."""
        while True:
            with self._lock:
                if arriving:
                    self._waking -= 1
                if self._tasks:
                    return self._tasks.popleft()
                self._parked.append(parked)
            arriving = parked.acquire(True, self.idle)
            if arriving:
                continue  # woken: take a task, or park again if one took it
            with self._lock:
                if parked in self._parked:  # nobody woke it: exit
                    self._parked.remove(parked)
                    return None
            parked.acquire()  # woken just as it gave up: take that wake-up
            arriving = True


class _Scheduler:
    """One daemon thread that starts scheduled runs when they are due and
    gives them up at their deadlines. It holds apps, monitors and runs
    weakly: when an app is collected, its schedule stops, and its entries
    are pruned as the heap grows."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Callable[..., Any], list[Any]]] = []
        self._order = itertools.count()
        self._prune_at = 64  # heap size at which dead entries are dropped
        self._running = False

    def retry(self, store: _Store, app: Flask) -> None:
        """Try ``store``, which failed, again in ``_STORE_RETRY`` seconds."""
        self._at(time.monotonic() + _STORE_RETRY, _Store.retry, store, app)

    def flush(self, store: _Store, app: Flask) -> None:
        """Write ``store``'s waiting outcomes in a moment, unless a claim
        takes them first: records made close together go in one
        transaction."""
        self._at(time.monotonic() + _FLUSH_AFTER, _Store.flush, store, app)

    def after(self, monitor: _Monitor, app: Flask, run: _Run, when: float) -> None:
        """Start the run that follows ``run`` at ``when``, in monotonic time."""
        self._at(when, _Monitor.start_due, monitor, app, run)

    def watch(self, monitor: _Monitor, app: Flask, run: _Run) -> None:
        """Give ``run`` up at its deadline if it has not settled by then,
        and count it again at ``counts_again`` while it is late."""
        when = run.deadline if run.state is not _LATE else run.counts_again
        self._at(when, _Monitor.settle_overdue, monitor, app, run)

    def _at(self, when: float, method: Callable[..., Any], *objects: Any) -> None:
        refs = [weakref.ref(o) for o in objects]
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._order), method, refs))
            if len(self._heap) >= self._prune_at:
                self._heap = [e for e in self._heap if _alive(e[3])]
                heapq.heapify(self._heap)
                self._prune_at = max(64, 2 * len(self._heap))
            if self._running:
                self._cond.notify()
                return
            self._running = True
        try:
            thread = threading.Thread(target=self._loop, name="flask-status-scheduler")
            thread.daemon = True
            thread.start()
        except BaseException:  # requests restart a missed schedule
            with self._cond:
                self._running = False

    def _loop(self) -> None:
        while True:
            entry = self._next_due()
            if entry is None:
                return
            method, refs = entry
            objects = [ref() for ref in refs]
            if all(o is not None for o in objects):
                with contextlib.suppress(BaseException):
                    method(*objects)
            del objects, method, refs, entry

    def _next_due(self) -> tuple[Callable[..., Any], list[Any]] | None:
        """Wait for the soonest entry to fall due and take it; None, with
        the thread marked gone, when the heap is empty."""
        with self._cond:
            while True:
                if not self._heap:
                    self._running = False
                    return None
                wait = self._heap[0][0] - time.monotonic()
                if wait <= 0:
                    _, _, method, refs = heapq.heappop(self._heap)
                    return method, refs
                self._cond.wait(min(wait, threading.TIMEOUT_MAX))


def _alive(refs: list[weakref.ref[Any]]) -> bool:
    return all(ref() is not None for ref in refs)


# Every monitor of the process, so that a forked child can start it clean.
_MONITORS: weakref.WeakSet[_Monitor] = weakref.WeakSet()
_pool = _Pool()
_scheduler = _Scheduler()
_pid = os.getpid()  # the process whose threads the pool and scheduler hold
_fork_lock = threading.Lock()  # never held in the parent, so free in a child


def _forked() -> None:
    """In the child of a fork: only the forking thread came along, so the
    workers, the scheduler, the runs in flight and any lock another thread
    held are left behind. Each monitor starts clean on its next request."""
    global _pool, _scheduler, _pid
    _pool, _scheduler = _Pool(), _Scheduler()
    for monitor in list(_MONITORS):
        monitor._reset()
    _pid = os.getpid()  # last: until now, requests wait at _fork_lock


def _check_pid() -> None:
    """Start clean after a fork that Python did not see: a server forking
    from C, as uWSGI does without lazy-apps, runs no at-fork hook."""
    with _fork_lock:
        if os.getpid() != _pid:
            _forked()


if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_forked)


# -- the shared store: one SQLite file that the processes of a host share ----
#
# With ``share=``, every process of an app on one host reads and writes one
# SQLite database, so that a check runs once per host and every worker
# answers what the host's runs came to. The in-process engine stays the
# truth of each process; the store is where the processes meet:
#
# - A run due here first *claims* its check in the store, in one write
#   transaction: it finds a result fresh enough (another process ran the
#   check), which it adopts; or another live process running it, which it
#   follows until that one records; or neither, and it runs the check,
#   having read the host's streak, so that its count is the host's next.
# - The process that ran a check *records* its outcome and the streak it
#   counted, and it alone logs the change and tells the listeners.
# - A request reads what others wrote only when ``PRAGMA data_version``
#   says that something was written, so that a quiet store costs one query.
#
# Nothing read from the store is trusted: a row of the wrong shape is a
# fault. A fault (unreadable, locked too long, corrupt, deleted, full disk)
# is said once at WARNING; until a retry works, each process goes on alone
# from the last shared results it read.

_SCHEMA = 2  # the store's layout; a file of another is made anew (see _prepare)
_STORE_WAIT = 0.1  # seconds a write may wait for another process's lock
_STORE_RETRY = 2.0  # seconds between attempts to use a store that failed
_STORE_SETUP = 1.0  # seconds a process opening a new store waits for the first
_STORE_LOOK = 1.0  # seconds between checks that the file is still the one opened
_FOLLOW_EVERY = 0.01  # seconds between looks at another process's run
_FLUSH_AFTER = 0.05  # seconds an outcome may wait to be written with others
_ALONE = 1.0  # seconds without another process's write: alone (_Store.alone)
# Seconds a monitor goes without looking for other processes' writes: they
# wait up to _FLUSH_AFTER to be written, and a request that runs a check
# reads its row anyway, in its claim.
_LOOK_EVERY = 0.01
_HISTORY = 20  # status changes kept per check
_TABLES = f"""
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('schema', {_SCHEMA});
CREATE TABLE IF NOT EXISTS checks (
    id TEXT PRIMARY KEY,
    owner INTEGER, token TEXT, started REAL, deadline REAL,
    seq INTEGER NOT NULL DEFAULT 0,
    ok INTEGER, value TEXT, reason TEXT, at REAL, duration REAL,
    status TEXT, since REAL, failures INTEGER, passes INTEGER,
    hstatus TEXT, hvalue, hunit TEXT
);
CREATE TABLE IF NOT EXISTS urls (id TEXT PRIMARY KEY, status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS holds (
    id TEXT PRIMARY KEY, reason TEXT NOT NULL, until REAL, at REAL NOT NULL,
    told INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS history (
    id TEXT NOT NULL, at REAL NOT NULL, old TEXT, new TEXT NOT NULL, reason TEXT
);
CREATE INDEX IF NOT EXISTS history_by_check ON history (id, at);
"""
_DROP = "".join(
    f"DROP TABLE IF EXISTS {name};"
    for name in ("meta", "checks", "urls", "holds", "history")
)
_ROW = (
    "owner, token, started, deadline, seq,"
    " ok, value, reason, at, duration, status, since, failures, passes,"
    " hstatus, hvalue, hunit"
)


class _Malformed(Exception):
    """A row of the store is not what this module writes."""


class _Shared:
    """A check's row in the store, validated: its claim, if a process runs
    it, and its latest outcome with the host's streak, if it ever ran. (The
    store's records are plain classes, not NamedTuples, which cost every
    process that imports this module about 0.15 ms each to define.)"""

    __slots__ = ("deadline", "outcome", "owner", "passes", "seq", "token")

    def __init__(
        self,
        owner: int | None,
        token: str | None,
        deadline: float,
        seq: int,
        outcome: _Outcome | None,
        passes: int,
    ) -> None:
        self.owner = owner  # the pid of the process running it
        self.token = token  # that run's claim
        self.deadline = deadline  # of that run, in seconds since the epoch
        self.seq = seq  # outcomes recorded so far
        self.outcome = outcome
        self.passes = passes

    @classmethod
    def read(cls, row: Sequence[Any]) -> _Shared:
        owner, token, _, deadline, seq, ok, value, reason, at, duration = row[:10]
        status, since, failures, passes, *health = row[10:]
        _of(owner, (int, type(None)))
        _of(token, (str, type(None)))
        _of(deadline, (float, int, type(None)))
        _of(seq, (int,))
        outcome = None
        if at is not None:
            _of(ok, (int,))
            _of(value, (str,))
            _of(reason, (str, type(None)))
            _of(at, (float, int))
            _of(duration, (float, int))
            _of(since, (float, int))
            _of(failures, (int,))
            _of(passes, (int,))
            if status not in ("OK", "WARN", "FAIL"):
                raise _Malformed(f"a check's status is {status!r}")
            made = _stored_health(health, reason)
            fields = (bool(ok), value, reason, at, duration, status, since, failures)
            outcome = tuple.__new__(_Outcome, (*fields, made))
        return cls(owner, token, deadline or 0.0, seq, outcome, passes or 0)


def _stored_health(columns: Sequence[Any], reason: str | None) -> Health | None:
    """The Health of a stored outcome, as far as the formats read one: its
    status, its number and its unit; None if the check returned none."""
    status, value, unit = columns
    if status is None:
        return None
    _of(value, (int, float, type(None)))
    _of(unit, (str, type(None)))
    return Health(status, value, unit, reason if status != "OK" else None)


def _health_columns(outcome: _Outcome) -> tuple[str | None, Any, str | None]:
    """What the store keeps of an outcome's Health (see _stored_health)."""
    health = outcome.health
    if health is None:
        return None, None, None
    return health.status, _measure(outcome), health.unit


def _of(value: object, kinds: tuple[type, ...]) -> None:
    if type(value) not in kinds:
        raise _Malformed(f"{value!r} where the store keeps {kinds[0].__name__}")


class _Hold:
    """An operator's hold on a URL: it answers FAIL until released or
    ``until`` (seconds since the epoch; None: until released)."""

    __slots__ = ("at", "reason", "until")

    def __init__(self, reason: str, until: float | None, at: float) -> None:
        self.reason = reason
        self.until = until
        self.at = at  # when it was set: a hold's identity in the store

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Hold) and (self.reason, self.until, self.at) == (
            other.reason,
            other.until,
            other.at,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<hold {self.said()!r}>"

    def active(self, now: float) -> bool:
        return self.until is None or now < self.until

    def said(self) -> str:
        """The hold as its reason says it, in every format."""
        until = "until released" if self.until is None else f"until {_iso(self.until)}"
        return f"held {until}: {self.reason}"


class _Claim:
    """What a run due here is to do, as its check's row in the store says:
    one of these strings, compared by identity. (Not an Enum, which costs
    every process that imports this module its class's creation.)"""

    RUN = "run"  # call the check: this process holds the claim
    ADOPT = "adopt"  # take the outcome another process recorded
    FOLLOW = "follow"  # another live process runs it: wait for its outcome


def _exists(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (and PID namespace)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's: it exists
        return True
    return True


class _Store:
    """The shared store at ``path``, as one process uses it: a connection
    of its own (opened again in the child of a fork), and whether the store
    failed. Every method returns None, or does nothing, while it is failed;
    the first that fails says so once, and the scheduler tries it again
    every ``_STORE_RETRY`` seconds (see _fail).

    A connection is used by one thread at a time, under ``lock``; the
    writes are short transactions, each bounded by ``_STORE_WAIT``.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._pid = 0  # the process that opened the connection
        self._file: tuple[int, int] | None = None  # (device, inode) opened
        self._looked = 0.0  # monotonic time the file was last looked at
        self._opened = 0  # connections opened so far, which data_version is of
        # Outcomes to write, under _pending_lock: a worker that adds one
        # never waits for another thread's use of the store.
        self._pending: list[_Record] = []
        self._pending_lock = threading.Lock()
        self._flush_planned = False  # the scheduler will write them
        # When another process last wrote, as far as this one saw: at the
        # data_version it saw change (see alone()).
        self._heard_version: object = None
        self._heard = math.inf
        self.failure: str | None = None  # why the store failed, while it has

    def __repr__(self) -> str:
        state = f"failed: {self.failure}" if self.failure else "working"
        return f"<shared store {self.path!r} ({state})>"

    # Every use goes through _use: the connection, the fault and its retry.

    def _use(
        self,
        app: Flask | None,
        work: Callable[[sqlite3.Connection], R],
        retry: bool = False,
        wait: float = _STORE_WAIT,
    ) -> R | None:
        # Another thread's use waits at most _STORE_WAIT for SQLite's lock:
        # this one waits ``wait`` for that thread, then goes on without.
        if not self.lock.acquire(True, wait):
            return None
        with _locked(self.lock):
            # A failed store is tried again by the scheduler (see _fail):
            # opening one may wait for SQLite's lock more than once, which
            # no request's deadline should pay.
            if self.failure is not None and not (retry or app is None):
                return None
            try:
                result = work(self._connect())
            except (sqlite3.Error, OSError, _Malformed, ValueError) as error:
                self._fail(app, error)
                return None
            if self.failure is not None:
                self.failure = None
                message = "The shared store %s works again; its processes share state."
                if app is not None:
                    _emit(app, logging.INFO, message, self.path, error=None)
            return result

    def _connect(self) -> sqlite3.Connection:
        connection = self._connection
        if connection is not None and self._pid == os.getpid():
            now = time.monotonic()
            if now >= self._looked + _STORE_LOOK:
                self._looked = now
                _look_at(self.path, self._file)
            return connection
        if connection is not None and self._pid == os.getpid():
            connection.close()
        # In a fork's child, the parent's connection is left unclosed: its
        # locks and file are the parent's, and closing them here would
        # release what the parent holds.
        self._connection = None
        _refuse_unsafe_store(self.path, "The shared store")
        _create(self.path)  # made again after a fault: for its owner alone
        connection = sqlite3.connect(
            self.path,
            timeout=_STORE_WAIT,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            _prepare(connection)
        except BaseException:
            connection.close()
            raise
        info = os.stat(self.path)
        self._file = (info.st_dev, info.st_ino)
        self._looked = time.monotonic()
        self._connection, self._pid = connection, os.getpid()
        self._opened += 1
        self._heard = time.monotonic()  # not alone until it has looked a while
        return connection

    def retry(self, app: Flask) -> None:
        """Try the store again, on the scheduler's thread, while it fails."""
        self._use(app, lambda connection: None, retry=True)

    def _fail(self, app: Flask | None, error: BaseException) -> None:
        if app is not None:
            _scheduler.retry(self, app)
        with self._pending_lock:  # runs this process claimed: it goes on alone
            self._pending = []
        if self._connection is not None and self._pid == os.getpid():
            with contextlib.suppress(sqlite3.Error):
                self._connection.close()
        self._connection = None
        if self.failure is None:
            self.failure = (  # a row of the wrong shape says what it found
                f"malformed: {error}"
                if isinstance(error, _Malformed)
                else _describe(error)
            )
            message = (
                "The shared store %s failed (%s); each process keeps its own"
                " state until it works again, tried every %s s."
            )
            if app is not None:
                _emit(
                    app,
                    logging.WARNING,
                    message,
                    self.path,
                    self.failure,
                    _STORE_RETRY,
                    error=None,
                )

    # Reading what other processes wrote.

    def changed(
        self, app: Flask, ids: Sequence[str], holds: Sequence[str], known: object
    ) -> tuple[object, dict[str, _Shared], dict[str, str], dict[str, _Hold]] | None:
        """The rows of checks ``ids``, URL statuses and holds ``holds``,
        with the version they are of, unless the store is still at version
        ``known``: then None. (``PRAGMA data_version`` changes when another
        connection writes; its values are this connection's own.)"""

        def read(connection: sqlite3.Connection) -> Any:
            version = self._hear(connection)
            if version == known:
                return None
            marks = ",".join("?" * len(ids))
            rows = connection.execute(
                f"SELECT id, {_ROW} FROM checks WHERE id IN ({marks})", ids
            ).fetchall()
            shared = {row[0]: _Shared.read(row[1:]) for row in rows}
            marks = ",".join("?" * len(holds))
            urls = dict(
                connection.execute(
                    f"SELECT id, status FROM urls WHERE id IN ({marks})", holds
                ).fetchall()
            )
            for status in urls.values():
                if status not in ("OK", "WARN", "FAIL"):
                    raise _Malformed(f"a URL's status is {status!r}")
            held = self._holds(connection, holds)
            return version, shared, urls, held

        return self._use(app, read)

    def _holds(
        self, connection: sqlite3.Connection, ids: Sequence[str]
    ) -> dict[str, _Hold]:
        marks = ",".join("?" * len(ids))
        held = {}
        for hold_id, reason, until, at in connection.execute(
            f"SELECT id, reason, until, at FROM holds WHERE id IN ({marks})", ids
        ):
            _of(reason, (str,))
            _of(until, (float, int, type(None)))
            _of(at, (float, int))
            held[hold_id] = _Hold(reason, until, at)
        return held

    def holds(self, app: Flask | None, ids: Sequence[str]) -> dict[str, _Hold] | None:
        """The holds on ``ids`` now, read whether or not anything changed."""
        return self._use(app, lambda connection: self._holds(connection, ids))

    # Claiming a run, following another process's, recording one.

    def claim(
        self, app: Flask, wanted: Sequence[tuple[str, float, float]], wait: float
    ) -> list[tuple[str, _Shared | None, str | None]] | None:
        """Decide, in one write transaction, what each run due here does
        (see _Claim), for ``wanted``: each check's id, timeout and the
        seconds its outcome stays fresh. Each decision comes with the row
        it read, and the claim's token when the run is to call its check.
        The outcomes waiting to be written go first, in the same
        transaction: a claim of this process's must not pass its record.
        It waits up to ``wait`` for another thread's use of the store: a
        run that could not claim would run alone."""

        def decide(connection: sqlite3.Connection) -> Any:
            now = time.time()
            with _transaction(connection):
                renewed = self._write(connection, now, wanted)
                others = [w for w in wanted if w[0] not in renewed]
                rows = _rows(connection, [check_id for check_id, _, _ in others])
                claims, decided = [], {}
                for check_id, timeout, fresh in others:
                    row = rows.get(check_id)
                    choice, token = _choose(row, timeout, fresh, now), None
                    if choice is _Claim.RUN:
                        token = os.urandom(8).hex()
                        claims.append(
                            (check_id, os.getpid(), token, now, now + timeout)
                        )
                    decided[check_id] = (choice, row, token)
                connection.executemany(
                    "INSERT INTO checks (id, owner, token, started, deadline)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                    " owner = excluded.owner, token = excluded.token,"
                    " started = excluded.started, deadline = excluded.deadline",
                    claims,
                )
            for check_id, token in renewed.items():
                decided[check_id] = (_Claim.RUN, None, token)
            return [decided[check_id] for check_id, _, _ in wanted]

        return self._use(app, decide, wait=wait)

    def alone(self, app: Flask) -> bool:
        """Whether no other process has written for ``_ALONE`` seconds: then
        this one claims nothing (its runs are the only ones), and writes its
        outcomes in batches. It is asked before each claim, and looks again
        when it has not heard from another process for that long, so only
        a run started as another process's first write lands can run
        twice."""
        if time.monotonic() - self._heard < _ALONE:
            return False
        self._use(app, self._hear)
        return time.monotonic() - self._heard >= _ALONE

    def _hear(self, connection: sqlite3.Connection) -> object:
        """The store's version now (``PRAGMA data_version``, which another
        connection's write changes), noting when it last changed."""
        (number,) = connection.execute("PRAGMA data_version").fetchone()
        version = (self._opened, number)
        if version != self._heard_version:  # another process wrote
            self._heard_version, self._heard = version, time.monotonic()
        return version

    def add(self, record: _Record) -> bool:
        """Keep ``record`` to write with the next claim or flush; whether a
        flush must be arranged (none is)."""
        if self.failure is not None:  # each process goes on alone meanwhile
            return False
        with self._pending_lock:
            self._pending.append(record)
            planned, self._flush_planned = self._flush_planned, True
            return not planned

    def flush(self, app: Flask) -> None:
        """Write the records waiting, in one transaction."""
        self._flush_planned = False
        if not self._pending:  # a claim took them
            return

        def write(connection: sqlite3.Connection) -> None:
            with _transaction(connection):
                self._write(connection, time.time(), ())

        self._use(app, write)

    def _write(
        self,
        connection: sqlite3.Connection,
        now: float,
        wanted: Sequence[tuple[str, float, float]],
    ) -> dict[str, str]:
        """Write the records waiting, in the transaction under way. A run
        ``wanted`` again whose last record waits here takes its claim on
        in the same write (a renewal: no process could take the check
        between the two, and it saves a read and a write). Returns the
        renewed claims' tokens by check id. A record of a claim another
        process took since (it found this one dead or late) is not written
        over that one's."""
        with self._pending_lock:
            records, self._pending = self._pending, []
        last = {entry.check_id: entry for entry in records}
        again = {check_id: timeout for check_id, timeout, _ in wanted}
        renewed = {}
        for entry in records:
            claim: tuple[str | None, float | None, float | None] = (
                entry.token if not entry.ends else None,
                None,
                None,
            )
            renew = entry.token and entry.ends and last[entry.check_id] is entry
            if renew and entry.check_id in again:
                token = os.urandom(8).hex()
                claim = token, now, now + again[entry.check_id]
                if _write_record(connection, entry, claim):
                    renewed[entry.check_id] = token
                continue
            _write_record(connection, entry, claim)
        return renewed

    def look(self, app: Flask, check_id: str) -> _Shared | None:
        """A check's row as it is now: what a follower polls."""

        def read(connection: sqlite3.Connection) -> _Shared | None:
            row = connection.execute(
                f"SELECT {_ROW} FROM checks WHERE id = ?", (check_id,)
            ).fetchone()
            return _Shared.read(row) if row is not None else None

        return self._use(app, read)

    def history(
        self, app: Flask, ids: Sequence[str]
    ) -> dict[str, list[_Change]] | None:
        """The last status changes of checks ``ids``, newest first."""

        def read(connection: sqlite3.Connection) -> dict[str, list[_Change]]:
            marks = ",".join("?" * len(ids))
            changes: dict[str, list[_Change]] = {}
            for check_id, at, old, new, reason in connection.execute(
                f"SELECT id, at, old, new, reason FROM history WHERE id IN ({marks})"
                " ORDER BY at DESC",
                ids,
            ):
                _of(at, (float, int))
                _of(old, (str, type(None)))
                _of(new, (str,))
                _of(reason, (str, type(None)))
                changes.setdefault(check_id, []).append(_Change(at, old, new, reason))
            return changes

        return self._use(app, read)

    # The hold: set and released by any process, the command line's too.

    def hold(self, app: Flask | None, hold_id: str, hold: _Hold | None) -> bool:
        """Set (or with None, release) the hold ``hold_id``; whether the
        store took it."""

        def write(connection: sqlite3.Connection) -> bool:
            if hold is None:  # ended, not deleted: who tells of it marks it
                connection.execute(
                    "UPDATE holds SET until = ? WHERE id = ? AND (until IS NULL"
                    " OR until > ?)",
                    (time.time(), hold_id, time.time()),
                )
            else:
                connection.execute(
                    "INSERT INTO holds VALUES (?, ?, ?, ?, 0) ON CONFLICT (id) DO"
                    " UPDATE SET reason = excluded.reason, until = excluded.until,"
                    " at = excluded.at, told = 0",
                    (hold_id, hold.reason, hold.until, hold.at),
                )
            return True

        return bool(self._use(app, write))

    def tell_once(
        self, app: Flask, hold_id: str, hold: _Hold | None, told: int
    ) -> bool:
        """Whether this process is the one to log and tell the listeners of
        the hold's state ``told`` (1: set, 2: over): the first to ask."""

        def mark(connection: sqlite3.Connection) -> bool:
            if hold is None:  # released: nothing is left to mark
                return True
            cursor = connection.execute(
                "UPDATE holds SET told = ? WHERE id = ? AND at = ? AND told < ?",
                (told, hold_id, hold.at, told),
            )
            return bool(cursor.rowcount)

        return bool(self._use(app, mark))


def _look_at(path: str, opened: tuple[int, int] | None) -> None:
    """Raise if the file at ``path`` is not the database ``opened`` (its
    device and inode) any more: deleted or replaced. Looked at with stat(),
    never opened: closing any descriptor of a file drops every POSIX lock
    the process holds on it, SQLite's included, and another process would
    then take this one's WAL for unused and delete it."""
    info = os.stat(path)  # deleted: FileNotFoundError
    if (info.st_dev, info.st_ino) != opened:
        raise OSError(f"{path} was replaced by another file")


def _prepare(connection: sqlite3.Connection) -> None:
    """Make a new connection ready: WAL mode and the tables, made by the
    first process to open the store. The workers of a server open it at
    once, and the first makes them while the others wait: for that, and
    only then, a wait for SQLite's lock of up to ``_STORE_SETUP``."""
    connection.execute("PRAGMA synchronous=NORMAL")
    (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
    made = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE name = 'history'"
    ).fetchone()
    if mode != "wal" or made is None:
        connection.execute(f"PRAGMA busy_timeout = {int(_STORE_SETUP * 1000)}")
        connection.execute("PRAGMA journal_mode=WAL")
        connection.executescript(_TABLES)
        connection.execute(f"PRAGMA busy_timeout = {int(_STORE_WAIT * 1000)}")
    (schema,) = connection.execute(
        "SELECT value FROM meta WHERE name = 'schema'"
    ).fetchone()
    if schema != _SCHEMA:  # another version's: what it holds is made anew
        connection.execute(f"PRAGMA busy_timeout = {int(_STORE_SETUP * 1000)}")
        connection.executescript(f"BEGIN IMMEDIATE;{_DROP}{_TABLES}COMMIT;")
        connection.execute(f"PRAGMA busy_timeout = {int(_STORE_WAIT * 1000)}")


def _choose(shared: _Shared | None, timeout: float, fresh: float, now: float) -> str:
    """What a run due here does, as the row ``shared`` of its check says:
    follow a live process's run until one more timeout after its deadline
    (or adopt the timed-out outcome it recorded meanwhile); adopt an
    outcome still fresh; else run the check."""
    if shared is None:
        return _Claim.RUN
    outcome = shared.outcome
    if _runs_elsewhere(shared, timeout, now):
        late = outcome is not None and outcome.at >= shared.deadline - timeout
        return _Claim.ADOPT if late else _Claim.FOLLOW
    if outcome is not None and now < outcome.at + fresh:
        return _Claim.ADOPT
    return _Claim.RUN


def _abandoned(row: _Shared, owner: int | None, timeout: float) -> bool:
    """Whether the run a follower waits for is given up: its claim ended
    or passed to another process, its owner died, or one more timeout
    passed after its deadline."""
    return (
        row.token is None
        or row.owner != owner
        or not _exists(owner or 0)
        or time.time() >= row.deadline + timeout
    )


def _runs_elsewhere(shared: _Shared, timeout: float, now: float) -> bool:
    """Whether another process holds the claim on the check and may still
    be running it: it lives, and one more timeout has not passed since the
    run's deadline."""
    owner = shared.owner
    return (
        shared.token is not None
        and owner is not None
        and owner != os.getpid()
        and now < shared.deadline + timeout
        and _exists(owner)
    )


_STORES: dict[str, _Store] = {}  # one per path in a process, for its monitors


def _store_at(path: str) -> _Store:
    """The process's store at ``path``; sqlite3 is imported for the first."""
    global sqlite3
    import sqlite3

    store = _STORES.get(path)
    if store is None:
        store = _STORES[path] = _Store(path)
    return store


def _digest(*parts: str) -> str:
    """A key of the store: parts that cannot run into each other, hashed."""
    return hashlib.sha256("\0".join(parts).encode(errors="surrogatepass")).hexdigest()[
        :32
    ]


def _parent() -> str:
    """The process that started this one, as the store tells deploys apart:
    the workers of one gunicorn or uWSGI master, restarted or not, share
    it; the next deploy's master is another process. Its PID, and its start
    time where /proc has it, as a PID is used again."""
    parent = os.getppid()
    try:
        with open(f"/proc/{parent}/stat") as file:
            started = file.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        started = ""
    return f"{parent}:{started}"


def _check_ident(name: str, url: str, check: _Check) -> str:
    """A check's key in the store: its app, URL, key and options, its code,
    and the deploy (see _parent), so that a check of that key another
    deploy ran starts afresh here."""
    call = check.call
    code = getattr(call, "__code__", None)
    body = (
        repr(call)
        if isinstance(call, _ReadyCheck)
        else f"{getattr(call, '__module__', '')}.{getattr(call, '__qualname__', '')}"
    )
    if code is not None:
        body += code.co_code.hex() + repr(code.co_consts)
    options = (
        check.failing,
        check.timeout,
        check.cache,
        check.every,
        check.fail_after,
        check.recover_after,
    )
    return _digest("check", name, url, check.key, repr(options), body, _parent())


@contextlib.contextmanager
def _locked(lock: threading.Lock) -> Iterator[None]:
    """Release ``lock``, acquired already, on leaving."""
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """A write transaction, taken at once (BEGIN IMMEDIATE): the reads in
    it decide what it writes, so no other writer may come between."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if connection.in_transaction:  # after an I/O error, SQLite rolled back
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _write_record(
    connection: sqlite3.Connection,
    entry: _Record,
    claim: tuple[str | None, float | None, float | None],
) -> bool:
    """Write one run's outcome and the host's streak over its claim, and
    the claim that follows: its token (None: none), start and deadline
    (None: as they were). Whether the claim was still this process's."""
    token, started, deadline = claim
    outcome = entry.outcome
    if entry.token is None:  # a run of a process alone: its row may be new
        connection.execute(
            "INSERT INTO checks (id) VALUES (?) ON CONFLICT (id) DO NOTHING",
            (entry.check_id,),
        )
    cursor = connection.execute(
        "UPDATE checks SET seq = seq + 1, ok = ?, value = ?, reason = ?,"
        " at = ?, duration = ?, status = ?, since = ?, failures = ?,"
        " passes = ?, hstatus = ?, hvalue = ?, hunit = ?, token = ?, owner = ?,"
        " started = COALESCE(?, started), deadline = COALESCE(?, deadline)"
        " WHERE id = ? AND token IS ?",
        (
            int(outcome.ok),
            outcome.value,
            outcome.reason,
            outcome.at,
            outcome.duration,
            outcome.status,
            outcome.since,
            outcome.failures,
            entry.passes,
            *_health_columns(outcome),
            token,
            None if token is None else _pid,
            started,
            deadline,
            entry.check_id,
            entry.token,
        ),
    )
    if not cursor.rowcount:
        return False
    if entry.old is not None:
        _add_history(connection, entry)
    if entry.urls:
        connection.executemany(
            "INSERT INTO urls VALUES (?, ?) ON CONFLICT (id)"
            " DO UPDATE SET status = excluded.status",
            entry.urls,
        )
    return True


def _rows(connection: sqlite3.Connection, ids: Sequence[str]) -> dict[str, _Shared]:
    """The rows of checks ``ids`` that the store has, validated."""
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    return {
        row[0]: _Shared.read(row[1:])
        for row in connection.execute(
            f"SELECT id, {_ROW} FROM checks WHERE id IN ({marks})", ids
        )
    }


def _add_history(connection: sqlite3.Connection, entry: _Record) -> None:
    outcome = entry.outcome
    connection.execute(
        "INSERT INTO history VALUES (?, ?, ?, ?, ?)",
        (entry.check_id, outcome.at, entry.old, outcome.status, outcome.reason),
    )
    connection.execute(
        "DELETE FROM history WHERE id = ? AND rowid NOT IN (SELECT rowid FROM"
        " history WHERE id = ? ORDER BY at DESC LIMIT ?)",
        (entry.check_id, entry.check_id, _HISTORY),
    )


class _Change:
    """One change of a check's status, as the page's history shows it."""

    __slots__ = ("at", "new", "old", "reason")

    def __init__(self, at: float, old: str | None, new: str, reason: str | None):
        self.at = at
        self.old = old
        self.new = new
        self.reason = reason


class _Record:
    """What a run of this process came to, for the store."""

    __slots__ = ("check_id", "ends", "old", "outcome", "passes", "token", "urls")

    def __init__(
        self,
        check_id: str,
        token: str | None,  # the run's claim; None: a process alone's (_Store.alone)
        outcome: _Outcome,
        passes: int,
        ends: bool,  # the run is over: its claim ends
        old: str | None,  # the status it changed from, if it changed one
        urls: list[tuple[str, str]],  # URL statuses it changed, by URL id
    ) -> None:
        self.check_id = check_id
        self.token = token
        self.outcome = outcome
        self.passes = passes
        self.ends = ends
        self.old = old
        self.urls = urls


def _refuse_unsafe_store(path: str, what: str) -> None:
    """Refuse a store another user could write: they could forge results.
    ``what`` names the setting in the error."""
    folder = os.path.dirname(path)
    try:
        info = os.stat(folder)
    except FileNotFoundError:
        raise ValueError(
            f"{what} {path!r} is in a directory that does not exist; create"
            f" {folder!r} first, or choose a path in one that does."
        ) from None
    if info.st_mode & 0o002 and not info.st_mode & 0o1000:
        raise ValueError(
            f"{what} {path!r} is in {folder!r}, which any user may write to;"
            " choose a directory only the app's user can write, or one with"
            " the sticky bit, as /tmp has."
        )
    for name in (path, f"{path}-wal", f"{path}-shm"):
        with contextlib.suppress(FileNotFoundError):
            _refuse_unsafe_file(os.lstat(name), name, path, what)


def _refuse_unsafe_file(info: os.stat_result, name: str, path: str, what: str) -> None:
    """Refuse file ``name`` of the store at ``path`` (its ``lstat``) unless it
    is a regular file of this process's user that others cannot write."""
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(
            f"{what} {path!r}: {name!r} is not a regular file (a symlink or"
            " a directory); give the path of a file, or of none yet."
        )
    if info.st_uid != os.geteuid():
        raise ValueError(
            f"{what} {path!r}: {name!r} belongs to user {info.st_uid}, not"
            f" to this process's user {os.geteuid()}; remove it, or run the"
            " app as its owner."
        )
    if name == path and info.st_mode & 0o022:
        raise ValueError(
            f"{what} {path!r} may be written by other users (mode"
            f" {info.st_mode & 0o777:o}); make it 0600: chmod 600 {path}."
        )


# -- the payload: encoded parts, and one writer per format --------------------


class _Parts(NamedTuple):
    """What an endpoint's payloads share, encoded once per provider and
    fields: each key's JSON text, the message's values and static fields."""

    provider: Any
    fields: dict[str, _Field]
    encode: Callable[[Any], str]
    names: dict[str, str]
    message: dict[str, str]
    static: dict[str, str]

    @classmethod
    def make(
        cls, provider: Any, fields: dict[str, _Field], message: dict[str, Any]
    ) -> _Parts:
        encode = _encoder(provider)
        names = {k: encode(k) for k in (*message, *fields, *_RESERVED, "output")}
        values = {k: encode(v) for k, v in message.items()}
        static = {k: encode(f.value) for k, f in fields.items() if not f.is_check}
        return cls(provider, fields, encode, names, values, static)


def _encoder(provider: Any) -> Callable[[Any], str]:
    """A function that encodes a value as ``provider`` does, in compact form,
    keeping the order of keys and refusing NaN and the infinities."""
    if isinstance(provider, DefaultJSONProvider) and (
        type(provider).dumps is DefaultJSONProvider.dumps
    ):
        encode = json.JSONEncoder(
            default=provider.default,
            ensure_ascii=provider.ensure_ascii,
            allow_nan=False,
            separators=(",", ":"),
        ).encode

        def default(value: Any) -> str:
            if value is True:
                return "true"
            if value is None:
                return "null"
            if type(value) is int:
                return int.__repr__(value)
            return encode(value)

        return default

    def custom(value: Any) -> str:
        text: str = provider.dumps(value)
        json.loads(text, parse_constant=_not_json)  # its output must be JSON
        return text

    return custom


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _object(names: dict[str, str], payload: dict[str, str]) -> str:
    return "{" + ",".join([f"{names[k]}:{v}" for k, v in payload.items()]) + "}"


def _write_json(report: _Report, parts: _Parts, details: bool) -> str:
    """The 1.0 payload: the message, then the fields; ``status`` says the
    status unless all is well, ``errors`` why checks failed, and ``held``
    why an operator holds the URL, details or not."""
    said = parts.message.get("status") if report.status == "OK" else None
    status = said or f'"{report.status}"'
    if not details:
        text = f'{{"status":{status}}}'
    else:
        payload = dict(parts.message)
        for field, outcome in report.entries:
            payload[field.key] = outcome.value if outcome else parts.static[field.key]
        if "status" in payload:
            payload["status"] = status
        errors = _errors(report) if report.show_errors else None
        if errors:
            payload["errors"] = parts.encode(errors)
        text = _object(parts.names, payload)
    if report.held is None:
        return text
    return f'{text[:-1]},"held":{_held_json(report.held, parts)}}}'


def _hold_reason(reason: object) -> str:
    """A hold's reason, checked: one line an operator wrote."""
    if not isinstance(reason, str):
        raise TypeError(f"The hold's reason must be a string, not {reason!r}.")
    if not reason.strip() or len(reason) > 200 or not reason.isprintable():
        raise ValueError(
            f"The hold's reason {reason!r} must be one line of 1 to 200"
            " printable characters, such as 'database migration'."
        )
    return reason


def _held_json(held: _Hold, parts: _Parts) -> str:
    """A hold as JSON: its reason, and its end as ISO 8601 UTC or null."""
    until = "null" if held.until is None else f'"{_iso(held.until)}"'
    return f'{{"reason":{parts.encode(held.reason)},"until":{until}}}'


def _errors(report: _Report) -> dict[str, str | None]:
    """Why each check of ``report`` that failed or warned did."""
    return {f.key: o.reason for f, o in report.entries if o and o.reason is not None}


_HEALTH = {"OK": "pass", "WARN": "warn", "FAIL": "fail"}


def _write_health(report: _Report, parts: _Parts, details: bool) -> str:
    """application/health+json, as in draft-inadarei-api-health-check-06:
    the message and static fields, ``status``, and an entry per check."""
    status = f'"{_HEALTH[report.status]}"'
    payload = dict(parts.message) if details else {}
    checks = {}
    for field, outcome in report.entries if details else ():
        if outcome:
            entry = _health_entry(field, outcome, parts, report.show_errors)
            checks[field.key] = f"[{entry}]"
        else:
            payload[field.key] = parts.static[field.key]
    payload["status"] = status
    if report.held is not None:  # the draft's field for why the status is what it is
        payload["output"] = parts.encode(report.held.said())
    if checks:
        payload["checks"] = _object(parts.names, checks)
    return _object(parts.names, payload)


def _health_entry(
    field: _Field, outcome: _Outcome, parts: _Parts, show_errors: bool
) -> str:
    """One observation of a check, in a health+json ``checks`` entry."""
    entry = {"status": f'"{_HEALTH[outcome.status]}"'}
    kind = field.options.component_type
    if kind is not None:
        entry["componentType"] = parts.encode(kind)
    entry["observedValue"] = outcome.value
    health = outcome.health
    if health is not None and health.unit is not None:
        entry["observedUnit"] = parts.encode(health.unit)
    entry["time"] = f'"{_iso(outcome.at)}"'
    entry["duration"] = repr(round(outcome.duration, 6))
    entry["since"] = f'"{_iso(outcome.since)}"'
    entry["consecutiveFailures"] = int.__repr__(outcome.failures)
    if show_errors and outcome.reason is not None:
        entry["output"] = parts.encode(outcome.reason)
    return _object(_HEALTH_NAMES, entry)


_HEALTH_NAMES = {
    k: f'"{k}"'
    for k in (
        "status",
        "componentType",
        "observedValue",
        "observedUnit",
        "time",
        "duration",
        "since",
        "consecutiveFailures",
        "output",
    )
}


def _iso(at: float) -> str:
    moment = datetime.datetime.fromtimestamp(at, datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _write_prometheus(report: _Report, parts: _Parts, details: bool) -> str:
    """The Prometheus text format 0.0.4: gauges for the endpoint and, with
    details, for each check (static fields are no metrics)."""
    url = f'url="{_label(report.url)}"'
    lines = [
        "# HELP flask_status_up 1 unless the endpoint's status is FAIL.",
        "# TYPE flask_status_up gauge",
        f"flask_status_up{{{url}}} {int(report.status != 'FAIL')}",
    ]
    if report.held is not None:
        lines += [
            "# HELP flask_status_held 1 while an operator holds the endpoint.",
            "# TYPE flask_status_held gauge",
            f"flask_status_held{{{url}}} 1",
        ]
    checks = [(f.key, o) for f, o in report.entries if o is not None] if details else []
    if checks:
        lines += [
            "# HELP flask_status_check_up 1 unless the check's status is WARN or FAIL.",
            "# TYPE flask_status_check_up gauge",
        ]
        lines += [
            f'flask_status_check_up{{{url},check="{_label(k)}"}}'
            f" {int(o.status == 'OK')}"
            for k, o in checks
        ]
        lines += [
            "# HELP flask_status_check_duration_seconds How long the check's"
            " latest run took.",
            "# TYPE flask_status_check_duration_seconds gauge",
        ]
        lines += [
            f'flask_status_check_duration_seconds{{{url},check="{_label(k)}"}}'
            f" {round(o.duration, 6)!r}"
            for k, o in checks
        ]
        lines += _prometheus_values(url, checks)
    return "\n".join(lines) + "\n"


def _prometheus_values(url: str, checks: list[tuple[str, _Outcome]]) -> list[str]:
    """The gauge of the checks that returned a Health with a number, each
    with its unit as a label, if it has one; no lines if none did."""
    samples = []
    for key, outcome in checks:
        number = _measure(outcome)
        if number is not None:
            unit = outcome.health.unit  # type: ignore[union-attr]
            labels = f'{url},check="{_label(key)}"'
            labels += "" if unit is None else f',unit="{_label(unit)}"'
            samples.append(f"flask_status_check_value{{{labels}}} {number!r}")
    if not samples:
        return []
    return [
        "# HELP flask_status_check_value The value of the check's latest run, in"
        " its unit.",
        "# TYPE flask_status_check_value gauge",
        *samples,
    ]


def _measure(outcome: _Outcome) -> int | float | None:
    """The value of a run whose check returned a Health with a finite
    number (not a bool); else None. A plain return value is no measure: it
    may be a version, a port, a code."""
    health = outcome.health
    value = None if health is None else health.value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value):
        return None
    return int(value) if isinstance(value, int) else float(value)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _write_html(report: _Report, parts: _Parts, details: bool) -> str:
    """A page for people: the URL and the status as a word and, with
    details, a table of the fields; ``?refresh=`` reloads it. Everything
    from the app is escaped."""
    status, url = report.status, html.escape(report.url)
    seconds = _refresh()
    refresh = f'<meta http-equiv="refresh" content="{seconds}">\n' if seconds else ""
    now = time.time()
    table = ""
    if details:
        table = _html_summary(report) + _html_table(report, parts, now)
        if report.history:
            table += _html_history(report)
    held = ""
    if report.held is not None:
        held = f'<p class="held">{html.escape(report.held.said().capitalize())}</p>\n'
    made = _iso(now)
    return (
        f"{_PAGE_HEAD}{refresh}<title>{status} - {url}</title>\n{_PAGE_STYLE}"
        f'</head>\n<body>\n<h1>{url}</h1>\n<p>Status: <strong class="{status}">'
        f"{status}</strong></p>\n{held}{table}"
        f'<p>Made at <time datetime="{made}">{made.replace("T", " ")}</time>.</p>\n'
        "</body>\n</html>\n"
    )


def _html_history(report: _Report) -> str:
    """The checks' last status changes, each check's newest first, after
    the fields' table; a change's reason only with ``show_errors``."""
    reasons = report.show_errors
    rows = []
    for field, _ in report.entries:
        for change in report.history.get(field.key, ()):
            at = _iso(change.at)
            cells = (
                f'<time datetime="{at}">{at.replace("T", " ")}</time>',
                f'<span class="{change.old}">{change.old}</span>',
                f'<span class="{change.new}">{change.new}</span>',
                html.escape(change.reason or "") if reasons else "",
            )
            row = "".join(
                f'<td data-label="{name}">{cell}</td>'
                for name, cell in zip(_HISTORY_COLUMNS[1 : 4 + reasons], cells)
            )
            rows.append(
                f'<tr><th scope="row">{html.escape(field.key)}</th>{row}</tr>\n'
            )
    head = "".join(
        f'<th scope="col">{name}</th>' for name in _HISTORY_COLUMNS[: 4 + reasons]
    )
    return (
        f'<h2>Changes</h2>\n<div class="scroll"><table class="history">\n'
        f"<thead><tr>{head}</tr></thead>\n<tbody>\n{''.join(rows)}</tbody>\n"
        "</table></div>\n"
    )


_HISTORY_COLUMNS = ("Check", "When", "From", "To", "Reason")


def _html_summary(report: _Report) -> str:
    """One line that counts the checks by status: ``5 checks: 3 OK, 1 WARN,
    1 FAIL``; none without checks."""
    statuses = [o.status for _, o in report.entries if o is not None]
    if not statuses:
        return ""
    counts = [f"{statuses.count(s)} {s}" for s in _STATUSES if s in statuses]
    checks = "check" if len(statuses) == 1 else "checks"
    return f'<p class="summary">{len(statuses)} {checks}: {", ".join(counts)}</p>\n'


def _html_table(report: _Report, parts: _Parts, now: float) -> str:
    """A row per key of the JSON payload, in its order: the message's data,
    static fields and checks; a check's reason only with ``show_errors``."""
    reasons = report.show_errors
    rows = {
        k: _html_row(k, v, None, reasons, now)
        for k, v in parts.message.items()
        if k != "status"
    }
    for field, outcome in report.entries:
        value = outcome.value if outcome else parts.static[field.key]
        rows[field.key] = _html_row(field.key, value, outcome, reasons, now)
    head = "".join(f'<th scope="col">{name}</th>' for name in _COLUMNS[: 5 + reasons])
    return (
        f'<div class="scroll"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
        f"{''.join(rows.values())}</tbody>\n</table></div>\n"
    )


def _html_value(data: str, value: str, outcome: _Outcome) -> str:
    """A check's value on the page: with a unit, as people read it (bytes
    as kB to TB, seconds as ms or s), the exact number kept in a ``data``
    element; else the JSON text ``data``, and the unit after it."""
    health = outcome.health
    unit = None if health is None else health.unit
    if unit is None:
        return data
    number = _measure(outcome)
    read = None if number is None else _for_people(number, unit)
    if read is None:
        return f"{data} {html.escape(unit)}"
    return f'<data value="{html.escape(value)}">{read}</data>'


def _for_people(number: float, unit: str) -> str | None:
    """``84.1 GB`` for bytes, ``3.2 ms`` or ``1.5 s`` for seconds; None for
    another unit, or a number these do not suit."""
    if unit == "bytes" and number >= 0 and number == int(number):
        return _size(int(number))
    if unit == "s" and 0 <= number < 1:
        return f"{number * 1000:.3g} ms"
    if unit == "s" and number >= 1:
        return f"{number:.3g} s" if number < 100 else f"{number:.0f} s"
    return None


def _age(seconds: float) -> str:
    """``12 s``, ``5 min``, ``3 h`` or ``2 d``: how long ago, whole units."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


_COLUMNS = ("Field", "State", "Value", "Duration", "Since", "Reason")
_CELLS = tuple(f'<td data-label="{name}">' for name in _COLUMNS[1:])


def _html_row(
    key: str, value: str, outcome: _Outcome | None, reasons: bool, now: float
) -> str:
    """One row: the key, the status, the value as JSON text (a number with
    a unit as people read it) and, for a check, how long its run took and
    since when its status holds (as health+json's ``duration`` and
    ``since``), as a time in UTC and an age at ``now``.
    Each cell is labelled, for narrow screens, where rows become cards."""
    shown = duration = since = reason = ""
    data = f"<code>{html.escape(value)}</code>"
    if outcome is not None:
        word = outcome.status
        shown = f'<span class="{word}">{word}</span>'
        duration = f"{outcome.duration * 1000:.3f} ms"
        at = _iso(outcome.since)
        since = (
            f'<time datetime="{at}">{at.replace("T", " ")}</time>'
            f" ({_age(now - outcome.since)} ago)"
        )
        reason = html.escape(outcome.reason) if outcome.reason else ""
        data = _html_value(data, value, outcome)
    cells = (shown, data, duration, since, reason)
    row = "".join(
        [f"{td}{cell}</td>" for td, cell in zip(_CELLS[: 4 + reasons], cells)]
    )
    return f'<tr><th scope="row">{html.escape(key)}</th>{row}</tr>\n'


def _refresh() -> int | None:
    """The seconds of ``?refresh=``, whole from 1 to 3600; another value is
    a 400 naming it."""
    args = request.args if request.environ.get("QUERY_STRING") else {}
    if "refresh" not in args:  # cheaper than args.get, which raises inside
        return None
    value: str = args["refresh"]
    if not (
        value.isascii()
        and value.isdigit()
        and len(value) <= 10  # leading zeros, but no endless number
        and 1 <= int(value) <= 3600
    ):
        abort(
            400,
            f"The refresh {value!r} is not a whole number of seconds from 1 to"
            " 3600; give one such as ?refresh=10.",
        )
    return int(value)


_PAGE_HEAD = (
    '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
)
_CSS = (
    "body{margin:1em;font:1rem/1.5 system-ui,sans-serif;color:#111;background:#fff}"
    "h1{font-size:1.5em;overflow-wrap:anywhere}"
    ".scroll{overflow-x:auto}"
    "table{border-collapse:collapse}"
    "th,td{padding:.3em .6em;border:1px solid #999;text-align:left;"
    "vertical-align:top}"
    "thead th{background:#e8e8e8}"
    "td{overflow-wrap:anywhere}td:nth-child(3){min-width:10em}"
    "td:nth-child(4){white-space:nowrap}td:nth-child(5){overflow-wrap:normal}"
    ".OK,.WARN,.FAIL{padding:0 .3em;font-weight:bold;white-space:nowrap}"
    ".OK{background:#bfeabf}.WARN{background:#ffdf80}.FAIL{background:#ffb3b3}"
    "h2{font-size:1.2em}.held{border-left:.3em solid #c00;padding-left:.5em}"
    # Narrow screens: each row a card, each cell labelled, empty ones left out.
    "@media (max-width:36em){thead{display:none}"
    "table,tbody,tr,th,td{display:block}"
    "tr{margin-bottom:.6em;border:1px solid #999}th,td{border:0}td:empty{display:none}"
    "td{overflow-wrap:anywhere}"
    'td::before{content:attr(data-label) ": ";font-weight:bold}}'
)
_PAGE_STYLE = f"<style>{_CSS}</style>\n"
# No script, nothing from elsewhere, and no style but the page's own.
_PAGE_POLICY = (
    "default-src 'none'; style-src 'sha256-"
    + base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()
    + "'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class _Format(NamedTuple):
    content_type: str
    write: Callable[[_Report, _Parts, bool], str]
    headers: tuple[tuple[str, str], ...] = (("Cache-Control", "no-store"),)


# Each ?format= value; without one, what the Accept header prefers, else "json".
_FORMATS = {
    "json": _Format("application/json", _write_json),
    "health": _Format("application/health+json", _write_health),
    "prometheus": _Format(
        "text/plain; version=0.0.4; charset=utf-8", _write_prometheus
    ),
    "html": _Format(
        "text/html; charset=utf-8",
        _write_html,
        (
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
            ("Content-Security-Policy", _PAGE_POLICY),
        ),
    ),
}
_ACCEPTED = {
    "application/json": "json",
    "application/health+json": "health",
    "text/html": "html",
}
_JSON_TYPES = tuple(_ACCEPTED)[:2]
_ALL_TYPES = tuple(_ACCEPTED)


def _negotiate(sent: Any, args: Mapping[str, str] | None, pages: bool) -> str:
    """The name of the format a request gets: ``?format=``'s, else the one
    its Accept header prefers; the page only if ``pages``. The header is
    parsed only when it names health+json or html: probes send ``*/*`` or
    nothing, and get JSON for free."""
    if args is not None and "format" in args:  # it beats the Accept header
        name = args["format"]
        if name not in _FORMATS:
            formats = ", ".join(_FORMATS)
            abort(400, f"Unknown format {name!r}; use one of: {formats}.")
    else:
        accept = sent.environ.get("HTTP_ACCEPT", "").lower()
        pages = pages and "html" in accept
        name = "json"
        if pages or "health+json" in accept:
            offers = _ALL_TYPES if pages else _JSON_TYPES
            name = _ACCEPTED[sent.accept_mimetypes.best_match(offers, offers[0])]
    if name == "html":
        _refresh()  # a bad ?refresh= is refused before any check runs
    return name


# -- quiet access logs: a filter that keeps successful probes out of them ----


class _QuietAccess(logging.Filter):
    """Keeps the lines of successful (2xx) requests to the URLs of endpoints
    with ``quiet_access_log`` out of the access logs of werkzeug (the
    development server) and gunicorn. One instance, on the loggers, not on
    their handlers, which gunicorn replaces at startup and reload; it holds
    the endpoints weakly."""

    def __init__(self) -> None:
        super().__init__()
        self.watched: tuple[weakref.ref[_Monitor], ...] = ()
        self.lock = threading.Lock()  # for init_app in two threads at once

    def watch(self, endpoint: _Monitor) -> None:
        """Quiet ``endpoint``'s URLs if its settings say so."""
        if not endpoint.settings.quiet_access_log:
            return
        with self.lock:  # log lines read ``watched`` without it: one swap
            alive = tuple(ref for ref in self.watched if ref() is not None)
            self.watched = (*alive, weakref.ref(endpoint))
        for name in _ACCESS_LOGGERS:
            logging.getLogger(name).addFilter(self)  # once: it keeps no twin

    def filter(self, record: logging.LogRecord) -> bool:
        line, code = _access(record)
        if not code.startswith("2") or " " not in line:
            return True
        path = line.split(" ", 1)[1].rsplit(" ", 1)[0].partition("?")[0]
        if "%" in path:  # logged as sent: /sant%C3%A9 for /santé
            path = urllib.parse.unquote(path)
        for ref in self.watched:
            endpoint = ref()
            if endpoint is not None and _quiet(path, endpoint):
                return False
        return True


_ACCESS_LOGGERS = ("werkzeug", "gunicorn.access")


def _access(record: logging.LogRecord) -> tuple[str, str]:
    """The request line and the status code of an access log line: werkzeug
    logs ``'... "%s" %s %s'`` with the request line, the code and the size;
    gunicorn a dict of its atoms, ``r`` the request line and ``s`` the code.
    Empty strings for any other record."""
    args = record.args
    if isinstance(args, tuple) and str(record.msg).endswith('"%s" %s %s'):
        return str(args[0]), str(args[1])
    if isinstance(args, dict) and record.name == "gunicorn.access":
        return str(args.get("r", "")), str(args.get("s", ""))
    return "", ""


def _quiet(path: str, monitor: _Monitor) -> bool:
    """Whether ``path`` is one of the monitor's URLs or, with per-check
    routes, one below one of them."""
    per_check = monitor.settings.per_check
    return any(
        path == group.url or (per_check and _below(path, _prefix(group.url)))
        for group in monitor.groups()
    )


_quiet_access = _QuietAccess()


# -- the command line: flask status, which runs each endpoint's checks once ---


@click.group("status", invoke_without_command=True)
@click.option(
    "--url",
    help="Run only the endpoint at this URL, such as /readyz, or one check of"
    " a per-check route, such as /readyz/database; of a whole URL, such as"
    " http://127.0.0.1:8000/readyz, the path is used.",
)
@click.option(
    "--exclude",
    multiple=True,
    help="Leave out this field; repeat it, or separate names with commas.",
)
@click.pass_context
@with_appcontext
def _status_command(
    context: click.Context, url: str | None, exclude: tuple[str, ...]
) -> None:
    """Run the app's status checks once and print each endpoint's payload.

    Exits 0 when every endpoint is OK or WARN, and 1 when one is FAIL. A usage
    error exits 2, which Docker reserves, so a Dockerfile maps it to 1:

    \b
        HEALTHCHECK CMD flask --app main status || exit 1

    With a shared store (STATUS_SHARE), "flask status hold" takes a URL out
    of rotation in every worker, and "flask status release" ends that.
    """
    if context.invoked_subcommand is not None:
        return
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    targets = _targets(app, url)
    excluded = _names(exclude)
    unknown = excluded.difference(
        *(t.status._registry.fields for t in targets.values())
    )
    if unknown:
        message = "Cannot exclude %s: no endpoint has such a field."
        shown = ", ".join(map(repr, sorted(unknown)))
        _emit(app, logging.WARNING, message, shown, error=None)
    runs: dict[FlaskStatus, _Monitor] = {}  # one run of each check per instance
    failed = False
    for path, target in targets.items():
        status = target.status
        once = runs.get(status)
        if once is None:
            registry = status._registry
            settings = registry.monitors[app].settings
            once = runs[status] = _Monitor(registry, settings, app.import_name, _ONCE)
        plan = _Plan.of(target.fields(excluded), once.checks())
        report = once.report(app, target.group.url, plan, target.key is None)
        click.echo(f"{path} {_write_json(report, once.parts(app), True)}")
        failed = failed or report.status == "FAIL"
    if failed:
        raise SystemExit(1)


@_status_command.command("hold")
@click.option(
    "--reason",
    required=True,
    help="Why, in one line: every client of the URL is shown it, with or"
    " without details.",
)
@click.option(
    "--for",
    "seconds",
    type=float,
    help="Seconds until the hold ends by itself; without it, it lasts until released.",
)
@click.option(
    "--url",
    help="The URL to hold: the app's status URL by default, or a group's.",
)
@with_appcontext
def _hold_command(reason: str, seconds: float | None, url: str | None) -> None:
    """Hold a status URL in every worker of this host: it answers FAIL (HTTP
    503), saying it is held and why, while the checks go on running. It
    needs a shared store (STATUS_SHARE), through which it outlives the
    workers' restarts.

    \b
        kubectl exec POD -- flask status hold --for 600 --reason "db migration"
    """
    app, monitor, url = _held_target(url)
    now = time.time()
    try:
        reason = _hold_reason(reason)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--reason") from None
    try:
        until = None if seconds is None else now + _duration(seconds, "The hold of")
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--for") from None
    hold = _Hold(reason, until, now)
    _write_hold(app, monitor, url, hold)
    click.echo(f"{url} is {hold.said()}")


@_status_command.command("release")
@click.option(
    "--url",
    help="The URL to release: the app's status URL by default, or a group's.",
)
@with_appcontext
def _release_command(url: str | None) -> None:
    """End the hold on a status URL in every worker of this host."""
    app, monitor, url = _held_target(url)
    held = cast(_Store, monitor.store).holds(app, [monitor.url_id(url, "hold")])
    if held is not None and not any(h.active(time.time()) for h in held.values()):
        click.echo(f"{url} is not held.")
        return
    _write_hold(app, monitor, url, None)
    click.echo(f"{url} is held no more.")


def _held_target(url: str | None) -> tuple[Flask, _Monitor, str]:
    """The app, the monitor and the URL that ``hold`` or ``release`` act on."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    served: dict[str, FlaskStatus] = app.extensions.get("status", {})
    instances = list(dict.fromkeys(served.values()))
    if url is None and len(instances) != 1:
        raise click.UsageError(
            f"This app serves {', '.join(map(repr, served)) or 'no status URL'};"
            " give --url to say which to hold or release."
        )
    status = instances[0] if url is None else served.get(url)
    if status is None:
        raise click.BadParameter(
            f"{url!r} is not served by flask-status; choose one of"
            f" {', '.join(map(repr, served))}.",
            param_hint="--url",
        )
    monitor = status._registry.monitors[app]
    if monitor.store is None:
        raise click.UsageError(
            "A hold from the command line needs a shared store, or it would"
            " hold this command's process alone: set STATUS_SHARE (or"
            " FlaskStatus(share=...)) to a file that every worker of the app uses."
        )
    return app, monitor, url or monitor.settings.url


def _write_hold(app: Flask, monitor: _Monitor, url: str, hold: _Hold | None) -> None:
    store = cast(_Store, monitor.store)
    if not monitor.hold(app, url, hold, tell=False):
        raise click.ClickException(
            f"The shared store {store.path} could not be written: {store.failure}"
        )


class _Target:
    """What ``flask status`` runs for one URL: a group's fields, or one."""

    __slots__ = ("group", "key", "status")

    def __init__(
        self, status: FlaskStatus, group: _Group, key: str | None = None
    ) -> None:
        self.status = status
        self.group = group
        self.key = key  # a per-check route's field

    def fields(self, excluded: set[str]) -> list[_Field]:
        fields = self.group.select(self.status._registry.fields)
        if self.key is not None:
            return [fields[self.key]]
        return [f for k, f in fields.items() if k not in excluded]


def _targets(app: Flask, url: str | None) -> dict[str, _Target]:
    """What ``flask status`` runs: every URL, or the one at ``--url``."""
    served: dict[str, FlaskStatus] = app.extensions["status"]
    every = {
        u: _Target(st, st._registry.routes[_endpoint(u)]) for u, st in served.items()
    }
    if url is None:
        return every
    if "://" in url:  # a whole URL, as a probe would be given: its path
        parts = urllib.parse.urlsplit(url)  # a query stays, to be refused
        url = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        url = _url(url, "The status URL")
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--url") from None
    target = every.get(url) or _per_check_target(app, served, url)
    if target is None:
        raise click.BadParameter(
            f"{url!r} is not served by flask-status; choose one of"
            f" {', '.join(map(repr, served))}, or one of their per-check routes.",
            param_hint="--url",
        )
    return {url: target}


def _per_check_target(
    app: Flask, served: dict[str, FlaskStatus], url: str
) -> _Target | None:
    """The field of the per-check route that answers ``url``, if any."""
    parent, _, key = url.rpartition("/")
    parent = parent or "/"
    endpoint = _endpoint(_each(parent))
    status = served.get(parent)
    if status is None or endpoint not in app.view_functions:
        return None
    group = status._registry.routes[endpoint]
    fields = group.select(status._registry.fields)
    return _Target(status, group, key) if key in fields else None


# -- ready-made checks: one factory per service an app depends on -------------
#
# Each function validates its arguments at once and returns a check for
# add_field. Client libraries are the app's own: a check uses the object it
# is given, or imports its library only when it runs; the standard library
# modules used only here are imported where they are used, too, so that
# importing flask_status costs no more for an app that uses none of them.

R = TypeVar("R")  # what a call returns


class _ReadyCheck:
    """A check made by one of the functions below. Its ``probe`` returns
    what the field shows, or a :class:`Health` that says it with a unit or
    warns, or raises why the service failed; ``latency`` makes the seconds
    it took the value, or a warning. The endpoint calls :meth:`measure`;
    called directly, it returns the plain value, as it always has."""

    def __init__(
        self, what: str, probe: Callable[[], Any], latency: _Latency | None = None
    ) -> None:
        self._what = what
        self._probe = probe
        self._latency = latency

    def measure(self) -> Any:
        """Run the probe: its result, judged by its latency if asked."""
        if self._latency is None:
            return self._probe()
        start = time.monotonic()
        result = self._probe()
        return self._latency.judge(result, time.monotonic() - start)

    def __call__(self) -> Any:
        result = self.measure()
        if not isinstance(result, Health):
            return result
        return result.status != "FAIL" if result.value is None else result.value

    def __repr__(self) -> str:
        return f"<{self._what}>"


def _measured(value: Any) -> Any:
    """What the engine calls for a check: a ready-made check's whole result,
    :meth:`_ReadyCheck.measure`; else the check itself."""
    return value.measure if isinstance(value, _ReadyCheck) else value


class _Latency:
    """How a network check reports the seconds it took: as its value
    (``value="latency"``), and with a warning above ``warn`` seconds."""

    def __init__(self, shows: bool, warn: float | None) -> None:
        self.shows = shows
        self.warn = warn

    @classmethod
    def of(cls, value: object, warn: object) -> _Latency | None:
        """The latency of ``value=`` and ``warn_latency=``, checked; None
        when neither asks for it."""
        if value is not None and value != "latency":
            raise ValueError(
                f"The value {value!r} is not one a check can show instead of its"
                " own; give value='latency' for the seconds it took."
            )
        seconds = None if warn is None else _seconds(warn, "warn_latency", "above")
        if value is None and seconds is None:
            return None
        return cls(value is not None, seconds)

    def judge(self, result: Any, seconds: float) -> Health:
        """The check's ``result``, which took ``seconds``, as a Health."""
        value, unit = (round(seconds, 6), "s") if self.shows else (result, None)
        if self.warn is not None and seconds > self.warn:
            reason = f"answered in {seconds:.3g} s, slower than {self.warn:g} s"
            return Health.warn(reason, value=value, unit=unit)
        return Health.ok(value, unit=unit)

    def __str__(self) -> str:
        shows = ", shows its latency" if self.shows else ""
        warns = "" if self.warn is None else f", warns above {self.warn:g} s"
        return f"{shows}{warns}"


def sql_check(
    target: Any,
    query: str = "SELECT 1",
    *,
    timeout: float = 0.5,
    value: str | None = None,
    warn_latency: float | None = None,
) -> Callable[[], bool]:
    """A check that runs ``query`` on a connection of its own, then gives the
    connection back (to the engine's pool, or closed) with no transaction
    left open; it shows ``true``.

    :param target: a SQLAlchemy ``Engine``; a Flask-SQLAlchemy extension,
        whose engine is looked up in the app context the check runs in; or a
        callable taking no arguments that returns a DB-API 2.0 connection,
        which is closed after the query.
    :param query: a query that reads, such as ``"SELECT 1"``. For SQLite,
        ``"SELECT count(*) FROM sqlite_master"`` reads the file, so it
        notices a lock that ``SELECT 1`` does not.
    :param timeout: seconds the query may take, from when the check has its
        connection. At that deadline the socket of a connection whose
        DB-API object has ``fileno()`` (psycopg 3, psycopg2) is shut down,
        so the query fails at once, even on a server that stopped, with
        ``TimeoutError: the database did not answer within 0.5 s``; the
        connection is discarded, never given back to the pool. Connecting
        is bounded by the driver's ``connect_timeout``, and a connection
        with no ``fileno()`` (sqlite3) by its own timeout, not by this.
    :param value: ``"latency"`` shows the seconds the check took, from
        connecting to the query's answer, with the unit ``s``.
    :param warn_latency: seconds above which the check warns: its status
        is WARN, with a reason that says how long it took.

    .. code-block:: python

        import sqlite3

        from flask_status import sql_check


        def database():  # read-only: a missing file fails, and is not created
            return sqlite3.connect("file:app.sqlite3?mode=ro", uri=True, timeout=0.3)


        reads = "SELECT count(*) FROM sqlite_master"  # notices a locked file
        status.add_field("database", sql_check(database, reads))
    """
    if not isinstance(query, str):
        raise TypeError(f"The query must be a string of SQL, not {query!r}.")
    if not query.strip():
        raise ValueError(f"The query {query!r} is empty; give one such as 'SELECT 1'.")
    _not_a_class(target, "sql_check", "a SQLAlchemy Engine")
    seconds = _seconds(timeout, "The timeout", "above")
    latency = _Latency.of(value, warn_latency)
    kind = type(target)
    if callable(getattr(kind, "connect", None)):  # an Engine
        probe = functools.partial(_sql_engine, lambda: target, query, seconds)
    elif hasattr(kind, "engine"):  # Flask-SQLAlchemy: .engine needs an app context
        probe = functools.partial(_sql_engine, lambda: target.engine, query, seconds)
    elif callable(target):
        _a_connect_function(target)
        probe = functools.partial(_sql_dbapi, target, query, seconds)
    else:
        raise TypeError(
            f"sql_check needs a SQLAlchemy Engine, a Flask-SQLAlchemy extension"
            f" or a callable returning a DB-API connection, not {target!r}."
        )
    what = f"sql_check {query!r} on {target!r}, within {seconds:g} s{latency or ''}"
    return _ReadyCheck(what, probe, latency)


def _not_a_class(target: object, check: str, example: str) -> None:
    """Refuse a class where a check needs an object made from one."""
    if isinstance(target, type):
        raise TypeError(
            f"{check} needs an object, such as {example}, not the class"
            f" {target.__qualname__}; make it once at startup and pass that."
        )


def _a_connect_function(connect: Callable[..., Any]) -> None:
    """Refuse what is no DB-API connect callable taking no arguments: a
    connection itself, or a callable that needs arguments, such as a
    DB-API module's own ``connect``."""
    if callable(getattr(connect, "cursor", None)):
        raise TypeError(
            f"sql_check needs a function that opens a connection, not the"
            f" connection {connect!r}, which a failed check would leave broken;"
            " pass one such as lambda: sqlite3.connect('app.sqlite3')."
        )
    try:
        inspect.signature(connect).bind()
        return
    except TypeError:
        pass
    except ValueError:  # no signature: a builtin, such as sqlite3.connect
        if getattr(connect, "__name__", "") != "connect":
            return  # nothing known against it
    raise TypeError(
        f"sql_check calls {connect!r} with no arguments, but it needs some (the"
        " database, at least); pass one that connects, such as"
        " lambda: sqlite3.connect('app.sqlite3')."
    )


def _sql_engine(engine: Callable[[], Any], query: str, seconds: float) -> bool:
    from sqlalchemy import text  # the app's own SQLAlchemy, only when checked

    # pool_pre_ping's ping runs in connect(), before the deadline is armed
    with engine().connect() as connection:  # closing rolls back, gives it back

        def run() -> None:
            result = connection.execute(text(query))
            if result.returns_rows:
                result.fetchall()

        raw = getattr(connection.connection, "dbapi_connection", None)
        _before_cutoff(raw, seconds, run, connection.invalidate)
    return True


def _sql_dbapi(connect: Callable[[], Any], query: str, seconds: float) -> bool:
    connection = connect()

    def run() -> None:
        cursor = connection.cursor()
        cursor.execute(query)
        if cursor.description is not None:
            cursor.fetchall()
        cursor.close()

    try:
        _before_cutoff(connection, seconds, run, lambda: None)  # closed anyway
    finally:
        connection.close()  # unfinished transactions are discarded
    return True


def _before_cutoff(
    connection: Any,
    seconds: float,
    run: Callable[[], None],
    discard: Callable[[], None],
) -> None:
    """``run()``, a query on the DB-API ``connection``, cut off after
    ``seconds``: a failure after the cut is raised as a TimeoutError naming
    the deadline. A connection that was cut is ``discard``-ed, also when
    the cut landed just after a good answer: that answer stands, and the
    check passes."""
    cutoff = _Cutoff.arm(connection, seconds)
    try:
        run()
    except BaseException as error:
        cut = cutoff.disarm()
        if cut:
            discard()
        if cut and isinstance(error, Exception):
            message = f"the database did not answer within {seconds:g} s"
            raise TimeoutError(message) from error
        raise
    if cutoff.disarm():
        discard()


class _Cutoff:
    """The deadline of a query on a DB-API connection whose ``fileno()`` is
    its socket. No client setting brings back a query to a server that
    stopped (its kernel still acknowledges, so keepalives see it alive, and
    it enforces no statement_timeout), and a driver's cancel waits for the
    server too; but shutting the socket down wakes the driver at once, and
    the query fails as a lost connection.

    The check holds it while the query runs; the scheduler's thread holds
    it weakly and calls :meth:`fire` at the deadline. Once disarmed and
    dropped, its entry in the scheduler is dead and skipped. It works on a
    duplicate of the socket's file descriptor, made in the check's thread,
    so ``fire`` calls no driver method and cannot block the scheduler, and
    cannot cut another socket that reuses a descriptor the driver closed."""

    def __init__(self, connection: Any) -> None:
        self._lock = threading.Lock()
        self._socket: Any = _socket_of(connection)  # None: nothing to cut
        self._cut = False

    @classmethod
    def arm(cls, connection: Any, seconds: float) -> _Cutoff:
        """A cutoff for ``connection`` at ``seconds`` from now."""
        cutoff = cls(connection)
        if cutoff._socket is not None:
            _scheduler._at(time.monotonic() + seconds, cls.fire, cutoff)
        return cutoff

    def fire(self) -> None:
        """Shut the socket down, unless disarmed."""
        import socket

        with self._lock:
            if self._socket is None:
                return
            with contextlib.suppress(OSError):  # not connected any more
                self._socket.shutdown(socket.SHUT_RDWR)
            self._cut = True

    def disarm(self) -> bool:
        """Never cut from now on; whether it was cut."""
        with self._lock:
            if self._socket is not None:
                self._socket.close()  # the duplicate: the driver's stays open
                self._socket = None
            return self._cut


def _socket_of(connection: Any) -> Any:
    """A socket on a duplicate of the file descriptor of a DB-API
    connection's ``fileno()``; None where it has none (sqlite3), is closed,
    or it is no socket (or no file descriptor, as on Windows)."""
    import socket

    fileno = getattr(connection, "fileno", None)
    if not callable(fileno):
        return None
    try:
        duplicate = os.dup(fileno())
    except Exception:  # closed, or not a file descriptor
        return None
    try:
        return socket.socket(fileno=duplicate)
    except OSError:  # no socket
        os.close(duplicate)
        return None


def redis_check(
    client: Any, *, value: str | None = None, warn_latency: float | None = None
) -> Callable[[], bool]:
    """A check that sends ``PING`` with the app's own Redis client (redis-py,
    or anything with a ``ping()`` method); it shows ``true``, and fails
    unless the answer is true.

    Give the client socket timeouts below the field's ``timeout``, and no
    retries: redis-py 8 retries a failed command with backoff, for seconds.

    :param client: the client, with its connection pool; made once, not per
        check.
    :param value: ``"latency"`` shows the seconds ``PING`` took, with the
        unit ``s``.
    :param warn_latency: seconds above which the check warns.

    .. code-block:: python

        from flask_status import redis_check

        # redis: the app's redis.Redis client, made once at startup:
        # Redis(socket_timeout=0.2, socket_connect_timeout=0.2,
        #       retry=Retry(NoBackoff(), 0))
        status.add_field("cache", redis_check(redis), critical=False)
    """
    _not_a_class(client, "redis_check", "redis.Redis(host=...)")
    ping = getattr(client, "ping", None)
    if not callable(ping):
        raise TypeError(
            f"redis_check needs a client with a ping() method, such as"
            f" redis.Redis(), not {client!r}."
        )
    latency = _Latency.of(value, warn_latency)

    def probe() -> bool:
        answer = ping()
        if inspect.iscoroutine(answer):  # redis.asyncio: truthy, never sent
            answer.close()
            raise TypeError(
                "PING gave a coroutine; give redis_check a client that answers"
                " at once, such as redis.Redis(), not an asyncio one."
            )
        if not answer:
            raise RuntimeError(f"PING answered {answer!r}")
        return True

    return _ReadyCheck(f"redis_check PING {client!r}{latency or ''}", probe, latency)


def celery_check(app: Any, *, timeout: float = 0.5) -> Callable[[], int]:
    """A check that pings the Celery workers and passes as soon as one
    replies, so it shows ``1``; it fails when none replies within
    ``timeout`` seconds.

    :param app: the Celery app, whose broker connection pool it uses.
    :param timeout: seconds to wait for a reply; keep it below the field's
        timeout. The broker's own socket timeouts bound the rest (see the
        README).

    .. code-block:: python

        from celery import Celery

        from flask_status import celery_check

        pinger = Celery(broker="redis://cache.internal:6379/0")
        workers = celery_check(pinger, timeout=0.5)  # for status.add_field
    """
    control: Any = getattr(app, "control", None)
    if not callable(getattr(control, "ping", None)):
        raise TypeError(f"celery_check needs a Celery app, not {app!r}.")
    seconds = _seconds(timeout, "The timeout", "above")

    def probe() -> int:
        # limit=1: return at the first reply, not after the whole timeout
        replies = control.ping(timeout=seconds, limit=1)
        if not replies:
            raise TimeoutError(f"no Celery worker replied within {seconds:g} s")
        return len(replies)

    return _ReadyCheck(f"celery_check ping {app!r}, within {seconds:g} s", probe)


def http_check(
    url: str,
    *,
    timeout: float = 0.5,
    expect: Iterable[int] = range(200, 400),
    value: str | None = None,
    warn_latency: float | None = None,
) -> Callable[[], int]:
    """A check that sends one ``GET`` to ``url`` with the standard library,
    following no redirect, and shows the status code; a code outside
    ``expect`` fails with the reason ``HTTP 503`` (the code).

    A user name and password in the URL (``https://user:pass@host/``) are
    sent as HTTP Basic authentication, and the password is shown as ``***``
    in the check's ``repr``. The body is never read.

    :param url: an ``http`` or ``https`` URL; ``https`` verifies the server's
        certificate against the system's.
    :param timeout: seconds the whole request may take, from connecting to
        reading the status line; keep it below the field's timeout, so that
        a dead host fails with its own reason.
    :param expect: the status codes that pass.
    :param value: ``"latency"`` shows the seconds the request took, to the
        status line, with the unit ``s``, instead of the status code.
    :param warn_latency: seconds above which the check warns.

    .. code-block:: python

        from flask_status import http_check

        payments = http_check("https://payments.internal/livez", expect=[200])
        assert repr(payments) == (
            "<http_check GET https://payments.internal/livez, expect 200>"
        )
    """
    target = _HttpTarget.parse(url)
    seconds = _seconds(timeout, "The timeout", "above")
    codes = _status_codes(expect)
    latency = _Latency.of(value, warn_latency)

    def probe() -> int:
        get = functools.partial(_http_get, target, seconds)
        code = _answered(f"{target.host}:{target.port}", seconds, get)
        if code not in codes:
            raise RuntimeError(f"HTTP {code}")
        return code

    what = f"http_check GET {target.shown}, expect {_ranges(codes)}{latency or ''}"
    return _ReadyCheck(what, probe, latency)


class _HttpTarget(NamedTuple):
    """Where an http_check sends its request, and the request itself."""

    scheme: str
    host: str
    port: int
    head: bytes  # the request line and headers
    shown: str  # the URL, its password hidden

    @classmethod
    def parse(cls, url: object) -> _HttpTarget:
        """Check an http or https URL and make its request."""
        from urllib.parse import urlsplit

        if not isinstance(url, str):
            raise TypeError(f"The URL must be a string, not {url!r}.")
        shown = _without_secrets(url)  # shown nowhere, error messages included
        try:
            parts = urlsplit(url)
        except ValueError:  # an unclosed [ of an IPv6 address: no host
            _http_port(urlsplit(""), shown)
            raise
        if shown != url and "@" not in parts.netloc:
            raise ValueError(
                f"The URL {shown!r} has an @ outside its user name and password,"
                " or a / ? or # inside them; percent-encode those characters,"
                " as %2F for /."
            )
        if any(c.isspace() or not c.isprintable() for c in url):
            raise ValueError(
                f"The URL {shown!r} has a space or a control character, which no"
                " request line can carry; percent-encode it, as %20 for a space."
            )
        port = _http_port(parts, shown)
        host = parts.netloc.rpartition("@")[2]
        head = _http_head(parts, host)
        return cls(parts.scheme, str(parts.hostname), port, head, shown)


def _without_secrets(url: str) -> str:
    """``url`` with what stands between ``//`` and the last ``@`` hidden:
    a password as ``user:***``, a user part alone (often a token) as
    ``***``. The last ``@``, as a password may hold an unencoded one."""
    scheme, slashes, rest = url.partition("//")
    userinfo, at, after = rest.rpartition("@")
    if not slashes or not at:
        return url
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}//{user + ':***' if colon else '***'}@{after}"


def _http_head(parts: Any, host: str) -> bytes:
    """The request line and headers of a GET of the URL split in ``parts``;
    a user name and password in it are sent as Basic authentication."""
    from urllib.parse import unquote

    query = f"?{parts.query}" if parts.query else ""
    head = [f"GET {parts.path or '/'}{query} HTTP/1.1", f"Host: {host}"]
    head += ["User-Agent: flask-status", "Connection: close"]
    if parts.username is not None:
        user, password = unquote(parts.username), unquote(parts.password or "")
        secret = base64.b64encode(f"{user}:{password}".encode()).decode()
        head.append(f"Authorization: Basic {secret}")
    return "".join(f"{line}\r\n" for line in head).encode() + b"\r\n"


def _http_port(parts: Any, url: str) -> int:
    """The port of an http or https URL; a ValueError says what is wrong."""
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        port = 0
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    if parts.scheme not in ("http", "https") or not parts.hostname or not port:
        raise ValueError(
            f"The URL {url!r} is not an http or https URL with a host and a"
            " valid port; give one such as 'http://127.0.0.1:8080/livez'."
        )
    return int(port)


def _status_codes(expect: object) -> frozenset[int]:
    given: list[object] = list(expect) if isinstance(expect, Iterable) else [expect]
    codes = [c for c in given if isinstance(c, int) and not isinstance(c, bool)]
    if not codes or len(codes) < len(given):
        raise TypeError(
            f"expect must be HTTP status codes (ints), such as range(200, 400),"
            f" not {expect!r}."
        )
    wrong = [c for c in codes if not 100 <= c <= 599]
    if wrong:
        raise ValueError(
            f"expect has {wrong[0]!r}, which is no HTTP status code; give codes"
            " from 100 to 599."
        )
    return frozenset(codes)


def _ranges(codes: frozenset[int]) -> str:
    """``200-399``, or ``200, 204``: the codes, runs written as ranges."""
    runs: list[list[int]] = []
    for code in sorted(codes):
        if runs and code == runs[-1][-1] + 1:
            runs[-1].append(code)
        else:
            runs.append([code])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else f"{r[0]}" for r in runs)


def _http_get(target: _HttpTarget, seconds: float) -> int:
    """Send ``target``'s request and read its status line, all within
    ``seconds``: each socket operation may take only what is left, so a
    server that drips its answer cannot hold the check past its timeout."""
    import re
    import socket

    deadline = time.monotonic() + seconds

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("timed out")
        return remaining

    sock = socket.create_connection((target.host, target.port), seconds)
    try:
        if target.scheme == "https":
            import ssl

            sock.settimeout(left())
            context = ssl.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=target.host)
        sock.settimeout(left())
        sock.sendall(target.head)
        received = b""
        while b"\n" not in received and len(received) < _MOST_STATUS_LINE:
            sock.settimeout(left())
            chunk = sock.recv(_MOST_STATUS_LINE)
            if not chunk:
                break
            received += chunk
    finally:
        sock.close()
    line = received.partition(b"\n")[0]
    found = re.match(rb"HTTP/\d(?:\.\d)? ([1-5]\d\d)(?:\s|$)", line)
    if found is None:
        where = f"{target.host}:{target.port}"
        raise ConnectionError(f"{where} answered no HTTP status line: {line[:80]!r}")
    return int(found.group(1))


_MOST_STATUS_LINE = 4096  # bytes read for the status line, at most


def _answered(where: str, seconds: float, call: Callable[[], R]) -> R:
    """``call()``, with a socket timeout raised as a TimeoutError naming
    ``where`` (before Python 3.10 it is a ``socket.timeout`` saying only
    ``timed out``)."""
    import socket

    try:
        return call()
    except socket.timeout as error:
        raise TimeoutError(f"{where} did not answer within {seconds:g} s") from error


def tcp_check(host: str, port: int, *, timeout: float = 0.5) -> Callable[[], bool]:
    """A check that connects to ``host:port`` over TCP and closes the
    connection; it shows ``true``.

    :param host: a host name or IP address.
    :param port: the TCP port, from 1 to 65535.
    :param timeout: seconds to wait for the connection; keep it below the
        field's timeout.

    .. code-block:: python

        from flask_status import tcp_check

        mail = tcp_check("mail.internal", 25, timeout=0.3)  # for status.add_field
    """
    import socket

    if not isinstance(host, str):
        raise TypeError(f"The host must be a string, not {host!r}.")
    if not host.strip():
        raise ValueError(f"The host {host!r} is empty; give a name or IP address.")
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"The port must be an int, not {port!r}.")
    if not 1 <= port <= 65535:
        raise ValueError(
            f"The port {port!r} is out of range; give one from 1 to 65535."
        )
    seconds = _seconds(timeout, "The timeout", "above")

    def probe() -> bool:
        connect = functools.partial(socket.create_connection, (host, port), seconds)
        _answered(f"{host}:{port}", seconds, connect).close()
        return True

    return _ReadyCheck(f"tcp_check {host}:{port}, within {seconds:g} s", probe)


def disk_check(
    path: str | os.PathLike[str] = "/",
    *,
    min_free: int | float,
    warn_free: int | float | None = None,
) -> Callable[[], int]:
    """A check that shows the free bytes on the disk holding ``path`` (with
    the unit ``bytes``), warns when they are fewer than ``warn_free``, and
    fails when they are fewer than ``min_free``.

    :param path: a file or folder on the disk.
    :param min_free: bytes (an int), or a fraction of the disk's size (a
        float between 0 and 1).
    :param warn_free: bytes, or a fraction, as ``min_free``, above it.

    .. code-block:: python

        from flask_status import disk_check

        status.add_field("disk", disk_check(".", min_free=100 * 2**20))  # 100 MiB
    """
    import shutil

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"The path must be a string or a path, not {path!r}.")
    where = os.fspath(path)
    minimum = _minimum(min_free, "min_free")
    warning = _warning(warn_free, "warn_free", minimum, "min_free")

    def probe() -> Health:
        usage = shutil.disk_usage(where)
        what = f"free on {where!r}"
        return _at_least(usage.free, usage.total, minimum, what, warning)

    return _ReadyCheck(
        f"disk_check at least {_share(minimum)}{_warns(warning)} free on {where!r}",
        probe,
    )


_MEMINFO = "/proc/meminfo"
_CGROUP = "/proc/self/cgroup"  # the process's control groups
_MOUNTINFO = "/proc/self/mountinfo"  # where their file systems are mounted


def memory_check(
    *, min_available: int | float, warn_available: int | float | None = None
) -> Callable[[], int]:
    """A check that shows the bytes of memory available (with the unit
    ``bytes``), warns when they are fewer than ``warn_available``, and fails
    when they are fewer than ``min_available``.

    In a container with a memory limit (a Linux control group, v1 or v2, as
    Docker and Kubernetes set), what is available is the limit less the
    memory in use that the kernel cannot reclaim, as the kubelet counts it:
    past the limit the container is killed, however much the host has free.
    Elsewhere it is the host's ``MemAvailable`` (``/proc/meminfo``, Linux
    3.14 and later). The reason says which: ``... available in the memory
    limit of 512.0 MB`` or ``... available``.

    :param min_available: bytes (an int), or a fraction of the memory (a
        float between 0 and 1): of the container's limit where it has one.
    :param warn_available: bytes, or a fraction, as ``min_available``,
        above it.
    :raises OSError: where ``/proc/meminfo`` has no ``MemAvailable``.

    .. code-block:: python

        from flask_status import memory_check

        status.add_field("memory", memory_check(min_available=64 * 2**20))
    """
    minimum = _minimum(min_available, "min_available")
    warning = _warning(warn_available, "warn_available", minimum, "min_available")
    try:
        _meminfo()
    except (OSError, KeyError, ValueError, IndexError) as error:
        raise OSError(
            f"memory_check reads MemAvailable from {_MEMINFO}, which this system"
            f" does not have ({_describe(error)}); it needs Linux 3.14 or later."
        ) from None

    def probe() -> Health:
        available, total = _meminfo()
        limited = _cgroup_memory()
        if limited is None or limited[1] >= total:  # no limit below the host's
            return _at_least(available, total, minimum, "available", warning)
        within, limit = limited
        what = f"available in the memory limit of {_size(limit)}"
        return _at_least(min(within, available), limit, minimum, what, warning)

    return _ReadyCheck(
        f"memory_check at least {_share(minimum)}{_warns(warning)} available", probe
    )


def _meminfo() -> tuple[int, int]:
    """MemAvailable and MemTotal, in bytes."""
    with open(_MEMINFO) as file:
        kib = {k: v.split()[0] for k, v in (line.split(":", 1) for line in file)}
    return int(kib["MemAvailable"]) * 1024, int(kib["MemTotal"]) * 1024


def _cgroup_memory() -> tuple[int, int] | None:
    """The bytes available within the memory limit of this process's control
    group, and that limit; None where there is none, or it cannot be read."""
    try:
        with open(_CGROUP) as file:
            groups = [line.rstrip("\n").split(":", 2) for line in file]
        with open(_MOUNTINFO) as file:
            mounts = [line.split() for line in file]
        for version, path in sorted(_memory_groups(groups)):
            folder = _mounted(mounts, version, path)
            if folder is not None and os.path.exists(folder):
                return _group_memory(version, folder)
    except (OSError, ValueError, KeyError, IndexError):
        pass  # unreadable: the host's memory is what there is
    return None


def _memory_groups(groups: list[list[str]]) -> Iterable[tuple[int, str]]:
    """The (version, path) of each group in /proc/self/cgroup that can hold
    a memory limit: the v2 one, and the v1 one with the memory controller."""
    for _, controllers, path in groups:
        if not controllers:
            yield 2, path
        elif "memory" in controllers.split(","):
            yield 1, path


def _mounted(mounts: list[list[str]], version: int, path: str) -> str | None:
    """The folder of control group ``path``, from /proc/self/mountinfo's
    lines: the mount's point, with the path below the mount's root."""
    for fields in mounts:
        rest = fields[fields.index("-") + 1 :]  # file system type, source, options
        if version == 2 and rest[0] != "cgroup2":
            continue
        if version == 1 and (rest[0] != "cgroup" or "memory" not in rest[2].split(",")):
            continue
        root, point = fields[3], fields[4]
        if path == root or path.startswith(root.rstrip("/") + "/"):
            return point + path[len(root.rstrip("/")) :]
    return None


def _group_memory(version: int, folder: str) -> tuple[int, int] | None:
    """What ``_cgroup_memory`` returns, for the group in ``folder``: the
    limit less the memory in use but for inactive file pages, which the
    kernel reclaims before it kills."""
    stat = _numbers(os.path.join(folder, "memory.stat"))
    limit: int | None
    if version == 1:  # hierarchical: the lowest limit on the way to the root
        limit = stat["hierarchical_memory_limit"]
        used = _number(os.path.join(folder, "memory.usage_in_bytes"))
        used -= stat.get("total_inactive_file", 0)
    else:
        limit = _lowest_max(folder)
        used = _number(os.path.join(folder, "memory.current"))
        used -= stat.get("inactive_file", 0)
    if limit is None:
        return None
    return max(0, limit - max(0, used)), limit


def _lowest_max(folder: str) -> int | None:
    """The lowest ``memory.max`` of a v2 group and the groups above it."""
    limits = []
    while os.path.exists(os.path.join(folder, "memory.max")):
        with open(os.path.join(folder, "memory.max")) as file:
            text = file.read().strip()
        if text != "max":
            limits.append(int(text))
        folder = os.path.dirname(folder)
    return min(limits, default=None)


def _number(path: str) -> int:
    with open(path) as file:
        return int(file.read())


def _numbers(path: str) -> dict[str, int]:
    """A ``memory.stat`` file: a name and a number a line."""
    with open(path) as file:
        return {name: int(value) for name, value in map(str.split, file)}


def _minimum(value: object, what: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{what} must be bytes (an int) or a fraction of the total (a float"
            f" between 0 and 1), not {value!r}."
        )
    if value < 0 if isinstance(value, int) else not 0 < value < 1:
        raise ValueError(
            f"{what} {value!r} is out of range; give bytes as an int from 0, or"
            " a fraction as a float between 0 and 1, such as 0.1."
        )
    return value


def _warning(
    value: object, what: str, minimum: int | float, least: str
) -> int | float | None:
    """A warning level, as ``_minimum``, above ``minimum`` where both are
    bytes or both shares; None if not given."""
    if value is None:
        return None
    warning = _minimum(value, what)
    if type(warning) is type(minimum) and warning <= minimum:
        raise ValueError(
            f"{what} {value!r} is not above {least} {minimum!r}, so it would"
            f" never warn; give more than {least}."
        )
    return warning


def _warns(warning: int | float | None) -> str:
    return "" if warning is None else f" (warns below {_share(warning)})"


def _at_least(
    have: int,
    total: int,
    minimum: int | float,
    what: str,
    warning: int | float | None = None,
) -> Health:
    """``have`` bytes, if it is at least ``minimum`` (bytes, or a share of
    ``total``), as a Health that warns below ``warning``; else raise a
    RuntimeError saying how much there is, ``what`` it is and the minimum."""
    need = _bytes(minimum, total)
    if have < need:
        share = "" if isinstance(minimum, int) else f" ({_size(need)})"
        raise RuntimeError(
            f"{_size(have)} {what}, below the minimum of {_share(minimum)}{share}"
        )
    if warning is not None and have < _bytes(warning, total):
        share = (
            "" if isinstance(warning, int) else f" ({_size(_bytes(warning, total))})"
        )
        reason = f"{_size(have)} {what}, below {_share(warning)}{share}"
        return Health.warn(reason, value=have, unit="bytes")
    return Health.ok(have, unit="bytes")


def _bytes(amount: int | float, total: int) -> int:
    """``amount`` in bytes: bytes already, or a share of ``total``."""
    return amount if isinstance(amount, int) else math.ceil(amount * total)


def _share(minimum: int | float) -> str:
    """``5.0 GB`` for bytes, ``10%`` for a fraction."""
    return _size(minimum) if isinstance(minimum, int) else f"{minimum * 100:g}%"


def _size(count: int) -> str:
    """Bytes for a reader: ``512 bytes``, ``3.2 GB`` (powers of 1000)."""
    if count < 1000:
        return f"{count} bytes"
    exponent = min(int(math.log10(count)) // 3, 4)
    return f"{count / 1000**exponent:.1f} {'kMGT'[exponent - 1]}B"
