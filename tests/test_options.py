"""Check options and settings that are refused at setup, with messages that
say what to do instead."""

from __future__ import annotations

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
        ({"fail_after": 0}, ValueError, "The fail_after option 0 must be 1 or more."),
        (
            {"recover_after": True},
            TypeError,
            "The recover_after option must be an int, not True.",
        ),
        (
            {"fail_after": 2.0},
            TypeError,
            "The fail_after option must be an int, not 2.0.",
        ),
        (
            {"recover_after": "2"},
            TypeError,
            "The recover_after option must be an int, not '2'.",
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
        "critical, timeout, cache, every, fail_after, recover_after and"
        " component_type apply to checks, but field 'version' is the static value"
        " '1.0'; pass a callable instead."
    )


def test_bad_constructor_option_fails_at_once() -> None:
    with pytest.raises(ValueError, match=r"^The cache -0.5 is out of range"):
        FlaskStatus(cache=-0.5)
