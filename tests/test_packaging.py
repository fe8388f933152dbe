"""The module vendors alone, and the wheel and sdist hold what they should."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import flask_status

ROOT = Path(__file__).resolve().parent.parent


def test_vendored_copy_imports_alone(tmp_path: Path) -> None:
    shutil.copy(ROOT / "flask_status.py", tmp_path)
    script = tmp_path / "main.py"
    script.write_text(
        "import flask, flask_status\n"
        "app = flask.Flask(__name__)\n"
        "flask_status.FlaskStatus(app).add_field('vendored', True)\n"
        "print(flask_status.__file__)\n"
        "print(app.test_client().get('/api/status').get_data(as_text=True))\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    path, body = result.stdout.splitlines()
    assert Path(path) == tmp_path / "flask_status.py"
    assert body == '{"status":"OK","vendored":true}'


def test_module_metadata() -> None:
    checks = [n for n in dir(flask_status) if n.endswith("_check") and n[0] != "_"]
    exported = ["FlaskStatus", "Health", "StatusChange", *sorted(checks)]
    assert flask_status.__all__ == exported
    assert len(checks) == 7  # sql, redis, celery, http, tcp, disk, memory
    assert flask_status.__version__.count(".") == 2
    first_line = (ROOT / "flask_status.py").read_text().splitlines()[0]
    assert first_line == "# SPDX-License-Identifier: MIT"


def _build(kind: str, out: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    buildapi = pytest.importorskip("flit_core.buildapi")
    monkeypatch.chdir(ROOT)
    return out / str(getattr(buildapi, f"build_{kind}")(str(out)))


def test_wheel_holds_only_the_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = _build("wheel", tmp_path, monkeypatch)
    version = flask_status.__version__
    assert wheel.name == f"flask_status-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(f"flask_status-{version}.dist-info/METADATA").decode()
    assert [n for n in names if ".dist-info/" not in n] == ["flask_status.py"]
    assert "Requires-Dist: flask>=2.2" in metadata
    assert "Requires-Python: >=3.9" in metadata


def test_sdist_holds_tests_and_docs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sdist = _build("sdist", tmp_path, monkeypatch)
    prefix = sdist.name.removesuffix(".tar.gz")
    with tarfile.open(sdist) as archive:
        names = set(archive.getnames())
    for name in (
        "flask_status.py",
        "pyproject.toml",
        "README.md",
        "LICENSE",
        "CHANGES.md",
        "tests/test_api.py",
        "tests/conftest.py",
        "docs/_static/status-page.png",  # the README shows it
        "docs/conf.py",  # the manual builds from the sdist
        "docs/index.md",
        "benchmarks/README.md",  # the README links to it
    ):
        assert f"{prefix}/{name}" in names
    assert not any("/.ci/" in name for name in names)


def test_wheel_metadata_names_the_licence_and_the_urls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = _build("wheel", tmp_path, monkeypatch)
    info = f"flask_status-{flask_status.__version__}.dist-info"
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(f"{info}/METADATA").decode()
        licence = archive.read(f"{info}/licenses/LICENSE").decode()
    headers = metadata.split("\n\n", 1)[0].splitlines()
    assert [h for h in headers if h.startswith(("License", "Project-URL"))] == [
        "License-Expression: MIT",
        "License-File: LICENSE",
        "Project-URL: Changes, https://github.com/flask-status/flask-status/blob/main/CHANGES.md",
        "Project-URL: Issues, https://github.com/flask-status/flask-status/issues",
        "Project-URL: Source, https://github.com/flask-status/flask-status",
    ]
    assert licence == (ROOT / "LICENSE").read_text()
