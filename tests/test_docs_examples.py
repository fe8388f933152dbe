"""Every Python example in the README, the manual (docs/) and the docstrings
that the manual's API page shows runs, and the endpoints it sets up answer.

An example runs alone, in a namespace of its own, with a stand-in for each
name it uses but leaves undefined (its free names), and only for those:

- ``app``: a new ``Flask`` app; ``Flask``, ``FlaskStatus``, ``StatusChange``,
  ``request``, ``abort``, ``current_app`` and ``functools``: the real ones,
  for examples that leave their imports out;
- ``status``: ``FlaskStatus(app)``;
- ``db`` and ``redis``: clients whose ``ping()`` returns True (awaitable, for
  an example that awaits it); ``queue``: one whose ``size()`` is 0;
  ``model``: one whose ``loaded`` is True; ``current_user``: an
  authenticated user;
- ``check_database``, ``check_cache``, ``ping_cache`` and ``ping_billing``:
  checks that pass; ``alert``: a function that notes its message;
- ``login_required`` and ``require_vpn``: view decorators that let every
  request through; ``TOKEN``: a token, which each request sends as
  ``X-Token``.

Each runs in a temporary folder that holds an empty SQLite database,
``app.sqlite3``, for the examples that open one.

A free name with no stand-in fails its example's test: give it a stand-in
here, or define it in the example. An example that cannot run alone is
marked in its page with ``<!-- not run: why -->`` on the line before it;
``test_marks_are_few`` keeps such marks few.
"""

from __future__ import annotations

import ast
import builtins
import functools
import inspect
import re
import sqlite3
import textwrap
from pathlib import Path
from typing import Any
from typing import Callable

import flask
import pytest
from flask import Flask

import flask_status
from flask_status import FlaskStatus
from flask_status import StatusChange

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_RUN = "<!-- not run: "


class Example:
    def __init__(self, where: str, code: str, marked: bool = False) -> None:
        self.where, self.code, self.marked = where, code, marked

    def __repr__(self) -> str:
        return self.where


def page_examples(pages: list[Path] = PAGES) -> list[Example]:
    """Each ```python block of the README and the docs' pages."""
    found = []
    for page in pages:
        text = page.read_text()
        for match in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
            line = text.count("\n", 0, match.start()) + 1
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            base = ROOT if page.is_relative_to(ROOT) else page.parent.parent
            where = f"{page.relative_to(base)}:{line}"
            found.append(Example(where, match.group(1), before.startswith(NOT_RUN)))
    return found


def docstring_examples() -> list[Example]:
    """Each ``.. code-block:: python`` of the docstrings docs/api.rst shows:
    the module's, and those of everything in ``__all__`` and its methods."""
    objects: dict[str, Any] = {"flask_status": flask_status}
    for name in flask_status.__all__:
        exported = getattr(flask_status, name)
        objects[name] = exported
        for attr, member in vars(exported).items():
            if inspect.isfunction(member) and not attr.startswith("_"):
                objects[f"{name}.{attr}"] = member
    found = []
    for name, obj in objects.items():
        doc = (inspect.getdoc(obj) or "") + "\n"
        blocks = re.findall(r"\.\. code-block:: python\n\n((?:(?: {4}.*)?\n)+)", doc)
        found += [Example(f"{name} docstring", textwrap.dedent(b)) for b in blocks]
    return found


EXAMPLES = page_examples() + docstring_examples()


def free_names(code: str) -> set[str]:
    """The names an example uses but neither defines nor imports."""
    defined, used = set(dir(builtins)), set[str]()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Name):
            (used if isinstance(node.ctx, ast.Load) else defined).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
    return used - defined


class Client:
    """A client of a dependency that answers."""

    def __init__(self, awaitable: bool = False) -> None:
        self.awaitable = awaitable
        self.loaded = True
        self.is_authenticated = True

    def ping(self) -> Any:
        if self.awaitable:

            async def pong() -> bool:
                return True

            return pong()
        return True

    def size(self) -> int:
        return 0


def passes() -> bool:
    return True


def let_through(view: Callable[..., Any]) -> Callable[..., Any]:
    return view


def stand_ins(code: str, app: Flask, alerts: list[str]) -> dict[str, Any]:
    """The stand-in for each name the example leaves undefined."""
    awaited = "await redis" in code
    known: dict[str, Callable[[], Any]] = {
        "app": lambda: app,
        "Flask": lambda: Flask,
        "FlaskStatus": lambda: FlaskStatus,
        "StatusChange": lambda: StatusChange,
        "request": lambda: flask.request,
        "abort": lambda: flask.abort,
        "current_app": lambda: flask.current_app,
        "functools": lambda: functools,
        "status": lambda: FlaskStatus(app),
        "db": Client,
        "redis": lambda: Client(awaitable=awaited),
        "queue": Client,
        "model": Client,
        "current_user": Client,
        "check_database": lambda: passes,
        "upgrade_database": lambda: passes,
        "check_cache": lambda: passes,
        "ping_cache": lambda: passes,
        "ping_billing": lambda: passes,
        "check_billing": lambda: passes,
        "ping_search": lambda: passes,
        "alert": lambda: alerts.append,
        "login_required": lambda: let_through,
        "require_vpn": lambda: let_through,
        "TOKEN": lambda: "s3cret",
    }
    names = free_names(code)
    missing = sorted(names - set(known))
    assert not missing, f"no stand-in for {missing}: add one, or define it"
    return {name: known[name]() for name in sorted(names)}


def apps_of(namespace: dict[str, Any]) -> list[Flask]:
    """The apps an example made, or its factory makes."""
    apps = [v for v in namespace.values() if isinstance(v, Flask)]
    factory = namespace.get("create_app")
    if callable(factory):
        apps.append(factory())
    return apps


@pytest.mark.parametrize("example", [e for e in EXAMPLES if not e.marked], ids=repr)
def test_example_runs_and_every_check_passes(
    example: Example, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each endpoint answers 200 and ``pass``: a check that raised, or a
    stand-in an example misuses, would make it ``fail`` or ``warn``."""
    monkeypatch.chdir(tmp_path)
    sqlite3.connect("app.sqlite3").close()  # the database the examples open
    app = Flask("docs_example", root_path=str(tmp_path))
    alerts: list[str] = []
    namespace = {"__name__": "docs_example", **stand_ins(example.code, app, alerts)}
    exec(compile(example.code, example.where, "exec"), namespace)
    served = [
        (a, url) for a in apps_of(namespace) for url in a.extensions.get("status", {})
    ]
    for served_app, url in served:
        client = served_app.test_client()
        response = client.get(f"{url}?format=health", headers={"X-Token": "s3cret"})
        answer = (response.status_code, response.get_json()["status"])
        assert answer == (200, "pass"), (url, response.data)
    assert served or "FlaskStatus" not in example.code


def test_examples_are_found() -> None:
    """The extraction finds the examples it should: a change of markup that
    hid them would make every test above pass vacuously."""
    pages = {e.where.split(":")[0] for e in EXAMPLES if ":" in e.where}
    assert {"README.md", "docs/checks.md", "docs/quickstart.md"} <= pages
    assert len([e for e in EXAMPLES if "docstring" in e.where]) >= 8
    assert len(EXAMPLES) >= 30


def test_marks_are_few() -> None:
    assert len([e for e in EXAMPLES if e.marked]) <= 2


def test_a_free_name_without_a_stand_in_is_refused() -> None:
    with pytest.raises(AssertionError, match="no stand-in for \\['undefined_thing'\\]"):
        stand_ins("undefined_thing()", Flask(__name__), [])


def test_the_api_page_documents_everything_exported() -> None:
    """docs/api.rst has an autodoc entry for each name in ``__all__``, so a
    new export appears in the API reference, its docstring checked by
    sphinx-build -W."""
    api = (ROOT / "docs" / "api.rst").read_text()
    entries = re.findall(r"^\.\. auto(?:class|function):: (\w+)$", api, re.M)
    assert sorted(entries) == sorted(flask_status.__all__)


def test_a_mark_keeps_only_the_example_after_it_from_running(tmp_path: Path) -> None:
    page = tmp_path / "docs" / "page.md"
    page.parent.mkdir()
    page.write_text(
        "<!-- not run: it needs a real Redis -->\n```python\nredis.ping()\n```\n"
        "\n```python\nFlaskStatus(app)\n```\n"
    )
    found = page_examples([page])
    assert [(e.where, e.marked) for e in found] == [
        ("docs/page.md:2", True),
        ("docs/page.md:6", False),
    ]
