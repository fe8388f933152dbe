"""Check options and settings that are refused at setup, with messages that
say what to do instead."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask

from flask_status import FlaskStatus


@pytest.mark.parametrize(
    ("options", "kind", "text"),
    [
        (
            {"timeout": 0},
            ValueError,
            "The timeout 0 is out of range; give a finite number of seconds above 0.",
        ),
        (
            {"timeout": "1"},
            TypeError,
            "The timeout must be a number of seconds, not '1'.",
        ),
        (
            {"cache": -1},
            ValueError,
            "The cache -1 is out of range; give a finite number of seconds from 0.",
        ),
        (
            {"critical": "yes"},
            TypeError,
            "The critical option must be True or False, not 'yes'.",
        ),
    ],
)
def test_bad_check_options(
    app: Flask, options: dict[str, Any], kind: type[Exception], text: str
) -> None:
    with pytest.raises(kind) as error:
        FlaskStatus(app).add_field("db", lambda: True, **options)
    assert str(error.value) == text


def test_options_on_a_static_value_are_refused(app: Flask) -> None:
    with pytest.raises(TypeError) as error:
        FlaskStatus(app).add_field("version", "1.0", timeout=1)
    assert str(error.value) == (
        "critical, timeout, cache and every apply to checks, but field 'version'"
        " is the static value '1.0'; pass a callable instead."
    )


@pytest.mark.parametrize(
    ("key", "value", "kind", "text"),
    [
        (
            "STATUS_TIMEOUT",
            float("inf"),
            ValueError,
            "The config key STATUS_TIMEOUT inf is out of range; give a finite number"
            " of seconds above 0.",
        ),
        (
            "STATUS_TIMEOUT",
            "fast",
            TypeError,
            "The config key STATUS_TIMEOUT must be a number of seconds, not 'fast'."
            " Config values from environment variables are strings:"
            " app.config.from_prefixed_env() parses numbers and booleans.",
        ),
        (
            "STATUS_TIMEOUT",
            1e10,
            ValueError,
            "The config key STATUS_TIMEOUT 10000000000.0 is more seconds than Python"
            f" can wait (threading.TIMEOUT_MAX, {threading.TIMEOUT_MAX:.0f});"
            " give fewer.",
        ),
        (
            "STATUS_CACHE",
            10**400,
            ValueError,
            "The config key STATUS_CACHE 1" + "0" * 400 + " is more seconds than"
            f" Python can wait (threading.TIMEOUT_MAX, {threading.TIMEOUT_MAX:.0f});"
            " give fewer.",
        ),
        (
            "STATUS_WORKERS",
            0,
            ValueError,
            "The config key STATUS_WORKERS 0 must be 1 or more.",
        ),
        (
            "STATUS_WORKERS",
            2.5,
            TypeError,
            "The config key STATUS_WORKERS must be an int, not 2.5.",
        ),
        (
            "STATUS_SHOW_ERRORS",
            "yes",
            TypeError,
            "The config key STATUS_SHOW_ERRORS must be True or False, not 'yes'."
            " Config values from environment variables are strings:"
            " app.config.from_prefixed_env() parses numbers and booleans.",
        ),
        (
            "STATUS_URL",
            "/status/<name>",
            ValueError,
            "The config key STATUS_URL '/status/<name>' has a variable part, a query"
            " or a fragment, which a status route can never answer; give a plain"
            " path such as '/api/status'.",
        ),
        (
            "STATUS_MESSAGE",
            {"checks": {}},
            ValueError,
            "The config key STATUS_MESSAGE has the key 'checks', which the status"
            " endpoint writes itself; rename that key.",
        ),
        (
            "STATUS_LOG",
            "all",
            ValueError,
            "The config key STATUS_LOG 'all' is not a log mode; give 'transitions'"
            " (log when a check starts failing and when it recovers) or 'every'"
            " (each failed run).",
        ),
    ],
)
def test_bad_config_fails_at_init_app(
    app: Flask, key: str, value: Any, kind: type[Exception], text: str
) -> None:
    app.config[key] = value
    with pytest.raises(kind) as error:
        FlaskStatus(app)
    assert str(error.value) == text


def test_bad_constructor_option_fails_at_once() -> None:
    with pytest.raises(ValueError, match=r"^The cache -0.5 is out of range"):
        FlaskStatus(cache=-0.5)
