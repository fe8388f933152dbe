"""``?exclude=`` and ``flask status --exclude`` (#14): excluded fields neither
run nor show, and a name that no field has is warned about once, in a
bounded number of lines."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from helpers import build_readyz
from helpers import warnings

from flask_status import FlaskStatus


def test_excluded_fields_neither_run_nor_show(app: Flask, client: FlaskClient) -> None:
    calls: list[str] = []
    build_readyz(app, calls)
    response = client.get("/readyz?exclude=queue")
    assert (response.status_code, response.data) == (
        200,
        b'{"status":"WARN","version":"1.2.3","db":3,"cache":false}',
    )
    assert sorted(calls) == ["cache", "db"]
    calls.clear()
    response = client.get("/readyz?exclude=queue,cache&exclude=version")
    assert (response.status_code, response.data) == (200, b'{"status":"OK","db":3}')
    assert calls == ["db"]
    calls.clear()
    response = client.get("/readyz?exclude= db , queue,&exclude=")  # spaces, empties
    assert (response.status_code, response.data) == (
        200,
        b'{"status":"WARN","version":"1.2.3","cache":false}',
    )
    assert calls == ["cache"]
    assert client.get("/readyz").status_code == 503  # nothing excluded


def test_unknown_exclude_is_warned_once_per_name(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    build_readyz(app, [])
    for _ in range(3):
        response = client.get("/readyz?exclude=nope,queue")
        assert (response.status_code, response.data) == (
            200,
            b'{"status":"WARN","version":"1.2.3","db":3,"cache":false}',
        )
    client.get("/readyz?exclude=nope&exclude=other,zzz,queue")
    assert warnings(caplog, app) == [
        "Cannot exclude 'nope' from /readyz: there is no such field.",
        "Cannot exclude 'other', 'zzz' from /readyz: there is no such field.",
    ]


def test_unknown_exclude_warnings_are_bounded(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    build_readyz(app, [])
    for number in range(100):  # a client inventing names cannot flood the log
        assert client.get(f"/readyz?exclude=x{number}").status_code == 503
    assert len(warnings(caplog, app)) == 64


def test_one_request_logs_at_most_64_unknown_names(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    build_readyz(app, [])
    names = [f"n{number}" for number in range(5000)]
    assert client.get(f"/readyz?exclude={','.join(names)}").status_code == 503
    assert client.get("/readyz?exclude=more,names").status_code == 503
    listed = ", ".join(map(repr, sorted(names)[:64]))
    assert warnings(caplog, app) == [
        f"Cannot exclude {listed} from /readyz: there is no such field."
    ]


def test_cli_exclude(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []
    build_readyz(app, calls)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["status", "--exclude", "queue"])
    assert (result.exit_code, result.output) == (
        0,
        '/readyz {"status":"WARN","version":"1.2.3","db":3,"cache":false}\n',
    )
    assert sorted(calls) == ["cache", "db"]
    calls.clear()
    args = ["status", "--exclude", "queue,cache", "--exclude", "version"]
    result = runner.invoke(args=args)
    assert (result.exit_code, result.output) == (0, '/readyz {"status":"OK","db":3}\n')
    assert calls == ["db"]
    result = runner.invoke(args=["status", "--exclude", "nope"])
    assert (result.exit_code, result.output) == (
        1,
        '/readyz {"status":"FAIL","version":"1.2.3","db":3,"cache":false,'
        '"queue":false}\n',
    )
    assert warnings(caplog, app) == [
        "Cannot exclude 'nope': no endpoint has such a field."
    ]


def test_cli_exclude_warns_only_of_names_no_endpoint_has(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    FlaskStatus(app, url="/livez")
    FlaskStatus(app, url="/readyz").add_field("db", lambda: 1)
    result = app.test_cli_runner().invoke(args=["status", "--exclude", "db,dbb"])
    assert (result.exit_code, result.output) == (
        0,
        '/livez {"status":"OK"}\n/readyz {"status":"OK"}\n',
    )
    assert warnings(caplog, app) == [
        "Cannot exclude 'dbb': no endpoint has such a field."
    ]
