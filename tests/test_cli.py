"""``flask status``: the checks from the command line, for HEALTHCHECK."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from flask import Flask

from flask_status import FlaskStatus


def test_ok_prints_payload_and_exits_0(app: Flask) -> None:
    FlaskStatus(app).add_field("db", lambda: True)
    result = app.test_cli_runner().invoke(args=["status"])
    assert (result.exit_code, result.output) == (
        0,
        '/api/status {"status":"OK","db":true}\n',
    )


def test_warn_exits_0_and_fail_exits_1(app: Flask) -> None:
    status = FlaskStatus(app)
    status.add_field("cache", lambda: False, critical=False)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["status"]).exit_code == 0
    status.add_field("db", lambda: False)
    result = runner.invoke(args=["status"])
    assert (result.exit_code, result.output) == (
        1,
        '/api/status {"status":"FAIL","cache":false,"db":false}\n',
    )


def test_several_instances_and_url(app: Flask) -> None:
    FlaskStatus(app, url="/livez")
    FlaskStatus(app, url="/readyz").add_field("db", lambda: False)
    runner = app.test_cli_runner()
    everything = runner.invoke(args=["status"])
    assert (everything.exit_code, everything.output) == (
        1,
        '/livez {"status":"OK"}\n/readyz {"status":"FAIL","db":false}\n',
    )
    livez = runner.invoke(args=["status", "--url", "livez"])
    assert (livez.exit_code, livez.output) == (0, '/livez {"status":"OK"}\n')
    readyz = runner.invoke(args=["status", "--url", "/readyz"])
    assert readyz.exit_code == 1


def test_unknown_url_is_a_usage_error(app: Flask) -> None:
    FlaskStatus(app, url="/livez")
    result = app.test_cli_runner().invoke(args=["status", "--url", "/nope"])
    assert result.exit_code == 2  # click's usage error, which names --url
    assert "--url" in result.output
    assert (
        "'/nope' is not served by flask-status; choose one of '/livez', or one of"
        " their per-check routes." in result.output
    )


def test_cli_skips_the_authenticator(app: Flask) -> None:
    FlaskStatus(app, authenticator=lambda view: lambda: ("no", 401))
    result = app.test_cli_runner().invoke(args=["status"])
    assert (result.exit_code, result.output) == (0, '/api/status {"status":"OK"}\n')


def test_real_process_with_a_hung_check_exits_on_time(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(
        "import threading\n"
        "from flask import Flask\n"
        "from flask_status import FlaskStatus\n"
        "app = Flask(__name__)\n"
        "status = FlaskStatus(app, timeout=0.3)\n"
        "status.add_field('hung', threading.Event().wait)\n"
        "status.add_field('fine', lambda: True)\n"
    )
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "main", "status"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    elapsed = time.monotonic() - start
    assert (result.returncode, result.stdout) == (
        1,
        '/api/status {"status":"FAIL","hung":false,"fine":true}\n',
    )
    assert "Check 'hung' of /api/status failed: timed out after 0.3 s" in result.stderr
    assert elapsed < 10  # a joined pool would wait for the hung check forever


def test_apps_own_status_command_is_left_alone(app: Flask) -> None:
    @app.cli.command("status")
    def status() -> None:
        print("the app's own")

    FlaskStatus(app)
    result = app.test_cli_runner().invoke(args=["status"])
    assert (result.exit_code, result.output) == (0, "the app's own\n")


def test_blank_url_is_a_usage_error(app: Flask) -> None:
    FlaskStatus(app)
    result = app.test_cli_runner().invoke(args=["status", "--url", " "])
    assert result.exit_code == 2  # click's usage error, which names --url
    assert "--url" in result.output
    assert (
        "The status URL ' ' is empty or has surrounding spaces; give a path such"
        " as '/api/status'." in result.output
    )


ROOT = Path(__file__).resolve().parent.parent


def flask_cli(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flask", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_where_the_readme_runs_flask_status_from() -> None:
    ok = (0, '/api/status {"status":"OK"}\n')
    in_examples = flask_cli(ROOT / "examples", "--app", "main", "status")
    assert (in_examples.returncode, in_examples.stdout) == ok
    by_path = flask_cli(ROOT, "--app", "examples/main.py", "status")
    assert (by_path.returncode, by_path.stdout) == ok
    from_root = flask_cli(ROOT, "--app", "main", "status")
    # Flask's usage error, in its words (the manual quotes them)
    assert (from_root.returncode, from_root.stdout) == (2, "")
    assert "'main'" in from_root.stderr


FACTORY = """\
from flask import Flask

from flask_status import FlaskStatus

status = FlaskStatus(url="/readyz")
status.add_field("db", lambda: True)


def create_app():
    app = Flask(__name__)
    status.init_app(app)
    return app
"""


def test_the_readme_forms_for_an_installed_package(tmp_path: Path) -> None:
    package = tmp_path / "site" / "yourpackage"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(FACTORY)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}  # as if installed
    factory = flask_cli(
        elsewhere,
        "--app",
        "yourpackage:create_app()",
        "status",
        "--url",
        "/readyz",
        env=env,
    )
    assert (factory.returncode, factory.stdout) == (
        0,
        '/readyz {"status":"OK","db":true}\n',
    )
    by_env = flask_cli(elsewhere, "status", env={**env, "FLASK_APP": "yourpackage"})
    assert (by_env.returncode, by_env.stdout) == (
        0,
        '/readyz {"status":"OK","db":true}\n',
    )


def test_help_gives_the_healthcheck_the_readme_gives(app: Flask) -> None:
    """Docker reserves exit status 2, which a usage error gives: both say
    ``|| exit 1``."""
    FlaskStatus(app)
    result = app.test_cli_runner().invoke(args=["status", "--help"])
    line = "HEALTHCHECK CMD flask --app main status || exit 1"
    assert f"    {line}\n" in result.output  # on a line of its own, to copy
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert line in readme


def test_a_whole_url_is_taken_for_its_path(app: Flask) -> None:
    FlaskStatus(app, url="/livez")
    FlaskStatus(app, url="/readyz").add_field("db", lambda: False)
    runner = app.test_cli_runner()
    url = "http://127.0.0.1:8000/readyz"
    result = runner.invoke(args=["status", "--url", url])
    assert (result.exit_code, result.output) == (
        1,
        '/readyz {"status":"FAIL","db":false}\n',
    )


def test_a_whole_url_with_a_query_is_refused_as_a_path_with_one_is(app: Flask) -> None:
    FlaskStatus(app, url="/readyz").add_field("db", lambda: True)
    runner = app.test_cli_runner()
    for url in ("http://127.0.0.1:8000/readyz?exclude=db", "/readyz?exclude=db"):
        result = runner.invoke(args=["status", "--url", url])
        assert result.exit_code == 2
        assert (
            "The status URL '/readyz?exclude=db' has a variable part, a query or a"
            " fragment" in " ".join(result.output.split())
        )
