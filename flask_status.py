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

``GET /api/status`` then answers ``{"status": "OK", "database": true}``.
"""

from __future__ import annotations

import inspect
import json
import weakref
from collections.abc import Callable
from typing import Any
from typing import NamedTuple
from typing import TypeVar
from typing import Union
from typing import overload

from flask import Flask
from flask import Response
from flask import current_app

__version__ = "2.0.0"
__all__ = ["FlaskStatus"]

View = Callable[..., Any]
Authenticator = Callable[[View], View]
Message = Union[str, dict[str, Any]]
F = TypeVar("F", bound=Callable[..., Any])
A = TypeVar("A", bound=Authenticator)


class FlaskStatus:
    """Serve the status of a Flask app as JSON at one URL.

    :param app: the app to serve; or leave it out and call :meth:`init_app` later.
    :param url: where to serve it. Default: config ``STATUS_URL``, else ``/api/status``.
    :param message: the base payload: a dict, or a string that becomes
        ``{"message": "..."}``. Default: config ``STATUS_MESSAGE``, else
        ``{"status": "OK"}``.
    :param authenticator: a view decorator that guards the route, as :meth:`auth`.

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
    ) -> None:
        self._url = url
        self._message = message
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
        :raises ValueError: if the URL or message is invalid, or the URL is taken.
        :raises RuntimeError: if this instance already serves ``app``.
        """
        if app in self._apps:
            raise RuntimeError(
                f"This FlaskStatus already serves {app!r}; create another"
                " FlaskStatus to serve a second URL."
            )
        app.config.setdefault("STATUS_URL", "/api/status")
        app.config.setdefault("STATUS_MESSAGE", {"status": "OK"})
        url = _url(self._url if self._url is not None else app.config["STATUS_URL"])
        message = self._message
        endpoint = _Endpoint(
            _message(app.config["STATUS_MESSAGE"] if message is None else message)
        )
        served: dict[str, FlaskStatus] = app.extensions.setdefault("status", {})
        if url in served or any(rule.rule == url for rule in app.url_map.iter_rules()):
            raise ValueError(
                f"The URL {url!r} is already routed on {app!r}; give this"
                " FlaskStatus another url."
            )
        app.add_url_rule(url, f"status:{url}", self._view, methods=["GET"])
        served[url] = self
        self._apps[app] = endpoint

    def add_field(self, key: str, value: Any) -> None:
        """Add ``key`` to the payload: a static JSON value, or a callable run
        on every request whose return value is shown.

        :param key: the payload key; fields follow the message's keys in the
            order they were added.
        :param value: a JSON-encodable value, or a callable taking no arguments.
        :raises TypeError: if ``key`` is not a string, ``value`` is neither
            JSON-encodable nor callable, or the callable needs arguments.
        :raises ValueError: if ``key`` is empty, reserved or already added.

        .. code-block:: python

            status.add_field("version", "1.4.2")
            status.add_field("database", check_database)
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
        else:
            _json_value(f"The value of field {key!r}", value)
        self._fields[key] = _Field(value, callable(value))

    @overload
    def field(self, name: F) -> F: ...

    @overload
    def field(self, name: str | None = None) -> Callable[[F], F]: ...

    def field(self, name: str | F | None = None) -> F | Callable[[F], F]:
        """Register the decorated function as a field, run on every request.

        Used bare, the field takes the function's ``__name__``; the function
        is returned unchanged. This is :meth:`add_field` as a decorator.

        :param name: the payload key.

        .. code-block:: python

            @status.field("database")
            def database():
                return db.ping()
        """
        if callable(name):
            return self.field()(name)

        def register(func: F) -> F:
            key = getattr(func, "__name__", None) if name is None else name
            if key is None:
                raise TypeError(
                    f"{func!r} has no __name__; name the field: @status.field('name')."
                )
            self.add_field(key, func)
            return func

        return register

    def auth(self, authenticator: A) -> A:
        """Guard the status route with ``authenticator``, a view decorator.

        It runs before any field is computed, so its responses, including
        ``abort(401)`` and ``abort(403)``, reach the client untouched. It may
        be set after :meth:`init_app`; it is returned unchanged, so it can
        guard other views too.

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
        endpoint = self._apps[current_app._get_current_object()]  # type: ignore[attr-defined]
        payload = dict(endpoint.message)
        for key, field in self._fields.items():
            payload[key] = field.value() if field.check else field.value
        return current_app.response_class(
            json.dumps(payload, separators=(",", ":")),
            mimetype="application/json",
        )


_RESERVED = frozenset({"status"})


class _Field(NamedTuple):
    value: Any
    check: bool


class _Endpoint(NamedTuple):
    """What one FlaskStatus serves on one app."""

    message: dict[str, Any]


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
