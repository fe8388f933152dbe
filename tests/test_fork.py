"""Forked processes run their own checks: the child of os.fork() or of a
fork() from C, and the workers of gunicorn --preload, after the parent served
requests or while a run was in flight in it."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path
from typing import Any
from typing import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from helpers import get
from servers import Gunicorn
from servers import Start
from servers import free_port
from servers import http_get

from flask_status import FlaskStatus

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork here")


def in_child(work: Callable[[], Any], seconds: float = 10) -> tuple[int, Any]:
    """Run ``work`` in a child of ``os.fork()``; returns the child's PID and
    what ``work`` returned, through a pipe as JSON. A child that has not
    answered within ``seconds`` is killed and fails the test: a deadlock
    must not hang the suite."""
    read, write = os.pipe()
    with warnings.catch_warnings():  # 3.12+ warns of forking with threads
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read)
            try:
                text = json.dumps(work())
            except BaseException as error:
                text = json.dumps(f"the child failed: {error!r}")
            data = text.encode()
            while data:
                data = data[os.write(write, data) :]
        finally:
            os._exit(0)
    os.close(write)
    chunks = []
    deadline = time.monotonic() + seconds
    try:
        while True:
            left = max(0.0, deadline - time.monotonic())
            if not select.select([read], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                pytest.fail(f"the child did not answer within {seconds} s")
            chunk = os.read(read, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    return pid, json.loads(b"".join(chunks))


def test_a_child_runs_checks_after_its_parent_did(
    app: Flask, client: FlaskClient
) -> None:
    # The parent's worker is parked, idle: it did not come along.
    FlaskStatus(app, timeout=2).add_field("pid", os.getpid)
    assert get(client) == (200, {"status": "OK", "pid": os.getpid()})
    child, answer = in_child(lambda: get(app.test_client()))
    assert answer == [200, {"status": "OK", "pid": child}]
    assert get(client) == (200, {"status": "OK", "pid": os.getpid()})


def test_a_child_starts_its_own_run_of_one_in_flight_in_the_parent(
    app: Flask, gate: threading.Event
) -> None:
    parent = os.getpid()
    entered = threading.Event()

    def check() -> int:
        if os.getpid() == parent:
            entered.set()
            gate.wait(5)
        return os.getpid()

    FlaskStatus(app, timeout=2).add_field("pid", check)
    answers: list[tuple[int, Any]] = []
    request = threading.Thread(target=lambda: answers.append(get(app.test_client())))
    request.start()
    try:
        assert entered.wait(5)  # the parent's run is in flight: fork now
        child, answer = in_child(lambda: get(app.test_client()))
    finally:
        gate.set()
        request.join()
    assert answer == [200, {"status": "OK", "pid": child}]
    assert answers == [(200, {"status": "OK", "pid": parent})]


# The same fork made from C, as uWSGI makes it: Python runs no at-fork hook,
# so only the process ID tells flask-status that it is in a child. It runs in
# a process of its own whose other threads are all blocked when it forks: a
# fork from C while another thread wants the GIL can leave the child waiting
# for the GIL forever, inside CPython, whatever the app does (uWSGI's
# py-call-uwsgi-fork-hooks exists for that), and pytest's process has threads
# left by other tests.
C_FORK_IN_FLIGHT = """
    import ctypes
    import json
    import os
    import signal
    import threading
    import time

    from flask import Flask

    from flask_status import FlaskStatus

    app = Flask(__name__)
    parent, entered, gate = os.getpid(), threading.Event(), threading.Event()


    def check():
        if os.getpid() == parent:
            entered.set()
            gate.wait(5)
        return os.getpid()


    FlaskStatus(app, timeout=2).add_field("pid", check)
    client = app.test_client()


    def get():
        response = client.get("/api/status")
        return [response.status_code, response.get_json()]


    answers = []
    request = threading.Thread(target=lambda: answers.append(get()))
    request.start()
    assert entered.wait(5)
    time.sleep(0.2)  # until the request and the check are blocked
    child = ctypes.PyDLL(None).fork()  # PyDLL: the GIL is held through it
    if child == 0:
        os.write(1, (json.dumps(get()) + "\\n").encode())
        os._exit(0)
    deadline = time.monotonic() + 10
    while os.waitpid(child, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:  # hung: say so rather than hang
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
            print("the child did not answer within 10 s")
            break
        time.sleep(0.01)
    gate.set()
    request.join()
    print(json.dumps([child, parent, answers]))
"""


def test_a_child_forked_from_c_starts_its_own_run_of_one_in_flight() -> None:
    script = textwrap.dedent(C_FORK_IN_FLIGHT)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    answer, (child, parent, answers) = map(json.loads, result.stdout.splitlines())
    assert answer == [200, {"status": "OK", "pid": child}]
    assert answers == [[200, {"status": "OK", "pid": parent}]]
    assert child != parent


PRELOADED = """
    import os
    import time

    from flask import Flask

    from flask_status import FlaskStatus

    app = Flask(__name__)
    status = FlaskStatus(app, url="/readyz")
    status.add_field("db", lambda: time.sleep(0.05) or "up")
    status.add_field("pid", os.getpid)

    # Served in gunicorn's master, at import, before it forks the workers.
    answer = app.test_client().get("/readyz")
    assert answer.status_code == 200, answer.data
    assert answer.get_json() == {"status": "OK", "db": "up", "pid": os.getpid()}
"""


def test_gunicorn_preload_workers_run_checks(gunicorn: Gunicorn) -> None:
    process, port = gunicorn(
        PRELOADED, "--preload", "--workers", "2", "--worker-class", "sync"
    )
    answers: list[tuple[int, bytes]] = []

    def ask() -> None:
        for _ in range(5):
            answers.append(http_get(port, "/readyz"))

    # Four clients at once: while one sync worker is busy, the other accepts.
    clients = [threading.Thread(target=ask) for _ in range(4)]
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    assert len(answers) == 20
    payloads = [(code, json.loads(body)) for code, body in answers]
    pids = {payload.get("pid") for _, payload in payloads}
    assert payloads == [
        (200, {"status": "OK", "db": "up", "pid": payload.get("pid")})
        for _, payload in payloads
    ]
    assert process.pid not in pids
    assert len(pids) == 2  # both workers answered


IN_FLIGHT_AT_FORK = """
    import os
    import threading
    import time

    from flask import Flask

    from flask_status import FlaskStatus

    app = Flask(__name__)
    status = FlaskStatus(app, url="/readyz", timeout=5)
    master, entered, gate = os.getpid(), threading.Event(), threading.Event()


    @status.field
    def pid():
        if os.getpid() == master:
            entered.set()
            gate.wait(10)  # still in flight when uWSGI forks its workers
        return os.getpid()


    client = app.test_client()  # import everything before a thread runs
    threading.Thread(target=lambda: client.get("/readyz"), daemon=True).start()
    assert entered.wait(5)  # the check is running in the master
    time.sleep(0.2)  # until it and the request are blocked, as in C_FORK_IN_FLIGHT
"""


# Without the hooks, only the process ID tells a worker that it was forked;
# with py-call-uwsgi-fork-hooks (the README's advice), os.register_at_fork.
@pytest.mark.parametrize("hooks", [[], ["--py-call-uwsgi-fork-hooks"]], ids=repr)
def test_uwsgi_workers_forked_from_c_run_checks(
    tmp_path: Path, start: Start, hooks: list[str]
) -> None:
    uwsgi = Path(sys.executable).parent / "uwsgi"
    if not uwsgi.exists():
        pytest.skip("uWSGI is not installed beside this Python")
    (tmp_path / "served.py").write_text(textwrap.dedent(IN_FLIGHT_AT_FORK))
    port = free_port()
    command = [str(uwsgi), "--http-socket", f"127.0.0.1:{port}", "--master"]
    command += ["--processes", "2", "--threads", "4", "--enable-threads", *hooks]
    command += ["--chdir", str(tmp_path), "--module", "served:app"]
    command += ["--disable-logging", "--die-on-term"]
    process = start(command, dict(os.environ), port)
    answers = [http_get(port, "/readyz") for _ in range(6)]
    payloads = [(code, json.loads(body)) for code, body in answers]
    pids = {payload["pid"] for _, payload in payloads}
    # Not 503 "timed out": each worker ran the check itself, not the master.
    assert payloads == [(200, {"status": "OK", "pid": p["pid"]}) for _, p in payloads]
    assert all(isinstance(pid, int) for pid in pids)
    assert process.pid not in pids
