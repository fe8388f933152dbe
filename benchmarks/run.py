"""Benchmarks for flask-status, as ratios against bare Flask routes in this run.

    python benchmarks/run.py            # the full run, about three minutes
    python benchmarks/run.py --quick    # a smoke run, about twenty-five seconds
    python benchmarks/run.py --only hung --only storm   # some rows only

Each set of routes is measured in this process, interleaved round by round,
and a ratio is the median time of one over the median time of the other, so
the machine's speed and noise cancel out as far as they can.

Three baselines:

- bare: a Flask route that builds the same payload with ``jsonify`` and calls
  the checks inline. Nothing that calls checks inline can time out a hung one.
- the floor: the least any design that can time out a hung check must pay. The
  route hands its checks in one batch to one long-lived thread (which runs them
  in an application context), then waits once, with a deadline.
- bare static: for scheduled checks, which cost nothing per request, a route
  that answers the same payload without calling anything.

The gunicorn rows serve the routes from a real gunicorn (one gthread worker,
eight threads) on 127.0.0.1, loaded by keep-alive clients in this process.

The share rows weigh a shared store (``share=``, issue 26): what it costs a
request, in this process and under gunicorn, against the same checks
without one; and what it buys four gunicorn sync workers, counted from the
lines their checks and listener append to files, with and without a store.
Their stores live in temporary directories.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import inspect
import json
import os
import queue
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import NamedTuple

from flask import Flask
from flask import Response
from flask import current_app
from flask import jsonify

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from flask_status import FlaskStatus

if TYPE_CHECKING:  # new in 2.0.0; the benchmarks run older versions too
    from flask_status import StatusChange

MESSAGE = {"status": "OK", "service": "bench"}
STATIC = {"version": "1.2.3", "region": "eu"}
COUNTS = {"three": 3, "five": 5}
EVERY = 5.0  # seconds between the runs of a scheduled check
TIMEOUT = 0.8  # flask-status's default timeout, for the floor's one wait
CLIENTS = 8  # keep-alive client threads against gunicorn's 8 threads
NO_EVERY = "skipped (this flask_status has no every=)"
NO_SHARE = "skipped (this flask_status has no share=)"

Row = tuple[str, str, str, str]  # scenario, target, measured, met
Checks = dict[str, Callable[[], Any]]
Job = tuple[Flask, Checks, dict[str, Any], threading.Lock]


def trivial() -> bool:
    return True


def checks(count: int, check: Callable[[], Any] = trivial) -> Checks:
    return {f"check{n}": check for n in range(count)}


class Floor:
    """One long-lived daemon thread that runs batches of checks, each batch in
    an application context, and releases each batch's latch when it is done."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        threading.Thread(target=self._work, name="floor", daemon=True).start()

    def run(self, app: Flask, batch: Checks) -> dict[str, Any] | None:
        """The checks' results, or None if they outlast the timeout."""
        latch = threading.Lock()
        latch.acquire()
        results: dict[str, Any] = {}
        self._jobs.put((app, batch, results, latch))
        return results if latch.acquire(timeout=TIMEOUT) else None

    def _work(self) -> None:
        while True:
            app, batch, results, latch = self._jobs.get()
            with app.app_context():
                for key, check in batch.items():
                    try:
                        results[key] = check()
                    except Exception:
                        results[key] = False
            latch.release()


def add_static(app: Flask) -> None:
    """/status/static, a message and static fields with no callables, and
    /bare/static, the same payload from ``jsonify``."""
    plain = FlaskStatus(app, url="/status/static", message=MESSAGE)
    for key, value in STATIC.items():
        plain.add_field(key, value)

    @app.get("/bare/static")
    def bare_static() -> Any:
        return jsonify({**MESSAGE, **STATIC})


def add_trivial(app: Flask, floor: Floor, name: str) -> None:
    """/status/<name>, /bare/<name> and /floor/<name>: the same payload for
    ``COUNTS[name]`` trivial checks, from flask-status, inline and the floor."""
    batch = checks(COUNTS[name])
    status = FlaskStatus(app, url=f"/status/{name}")
    for key, check in batch.items():
        status.add_field(key, check)

    def bare() -> Any:
        return jsonify({"status": "OK", **{k: check() for k, check in batch.items()}})

    def floored() -> Any:
        results = floor.run(current_app._get_current_object(), batch)  # type: ignore[attr-defined]
        if results is None:  # timed out: every check shows false
            return jsonify({"status": "FAIL", **dict.fromkeys(batch, False)}), 503
        failed = False in results.values()
        return jsonify({"status": "FAIL" if failed else "OK", **results}), (
            503 if failed else 200
        )

    app.add_url_rule(f"/bare/{name}", f"bare_{name}", bare)
    app.add_url_rule(f"/floor/{name}", f"floor_{name}", floored)


def add_scheduled(app: Flask, check: Callable[[], Any] = trivial) -> bool:
    """/scheduled/five, five trivial checks (``check``) run every ``EVERY`` s
    in the background, and /bare/five-static, the same payload without
    calling them. False, and no routes, if this flask_status has no
    ``every=``."""
    batch = checks(5, check)
    make: Any = FlaskStatus  # Any: every= is new, and may not be there yet
    status = make(url="/scheduled/five")
    try:  # every= for each check, as add_field(key, func, every=10) ...
        for key, check in batch.items():
            status.add_field(key, check, every=EVERY)
    except TypeError as error:
        if "every" not in str(error):
            raise
        try:  # ... or for the endpoint, as FlaskStatus(app, every=5)
            status = make(url="/scheduled/five", every=EVERY)
        except TypeError as error:
            if "every" not in str(error):
                raise
            return False
        for key, check in batch.items():
            status.add_field(key, check)
    status.init_app(app)
    payload = {"status": "OK", **{key: True for key in batch}}
    app.add_url_rule("/bare/five-static", "bare_five_static", lambda: jsonify(payload))
    return True


def build_app() -> Flask:
    """The app measured in this process."""
    app = Flask(__name__)
    add_static(app)
    add_trivial(app, Floor(), "five")

    def sleeper() -> bool:
        time.sleep(0.05)
        return True

    one_slow = FlaskStatus(app, url="/status/one-slow")
    one_slow.add_field("slow", sleeper)
    five_slow = FlaskStatus(app, url="/status/five-slow")
    for n in range(5):
        five_slow.add_field(f"slow{n}", sleeper)
    return app


def build_served_app() -> Flask:
    """The app gunicorn serves: /status/three, /floor/three, /bare/three, and
    /scheduled/five with /bare/five-static when there is ``every=``."""
    app = Flask(__name__)
    add_trivial(app, Floor(), "three")
    add_scheduled(app)
    return app


def build_shared_app(store: str) -> Flask:
    """The app gunicorn serves for the store's cost: /scheduled/five, five
    trivial checks run every ``EVERY`` s, and /shared/five, the same with a
    shared store at ``store``."""
    app = Flask(__name__)
    add_scheduled(app)
    shared = FlaskStatus(app, url="/shared/five", share=store)
    for key, check in checks(5).items():
        shared.add_field(key, check, every=EVERY)
    return app


def note(folder: Path, name: str, text: str = "") -> None:
    """Append ``pid time text`` to ``folder/name``, in one write, which
    O_APPEND keeps whole when processes append at once."""
    with open(folder / name, "a") as file:
        file.write(f"{os.getpid()} {time.time()!r} {text}\n")


def build_coherent_app(folder: str, store: str | None) -> Flask:
    """The app four gunicorn workers serve for the coherence rows, as issue 26
    measured: /readyz with a scheduled check (every=1), a cached one
    (cache=2) and a dependency (fail_after=3) that reads the file ``dep``,
    and a listener; each run and each change heard is a line in a file of
    ``folder``. With ``store``, the workers share it."""
    where = Path(folder)
    app = Flask(__name__)
    status = FlaskStatus(app, url="/readyz", share=store)

    def tick() -> bool:
        note(where, "tick.runs")
        return True

    def cached() -> bool:
        note(where, "cached.runs")
        return True

    def dep() -> str:
        note(where, "dep.runs", "ok" if (where / "dep").exists() else "fail")
        return (where / "dep").read_text()  # FileNotFoundError once it is gone

    status.add_field("tick", tick, every=1)
    status.add_field("cached", cached, cache=2)
    status.add_field("dep", dep, fail_after=3)

    @status.on_change
    def heard(change: StatusChange) -> None:
        note(where, "heard", f"{change.check} {change.old} {change.new}")

    @app.after_request
    def say_pid(response: Response) -> Response:
        response.headers["X-Pid"] = str(os.getpid())
        return response

    return app


def interleaved(app: Flask, urls: list[str], rounds: int, batch: int) -> list[float]:
    """Median seconds per request of each URL, measured round by round."""
    client = app.test_client()
    times: dict[str, list[float]] = {url: [] for url in urls}
    for url in urls:  # warm up: workers, caches, code paths
        for _ in range(batch):
            assert client.get(url).status_code == 200
    for _ in range(rounds):
        for url in urls:
            start = time.perf_counter()
            for _ in range(batch):
                client.get(url)
            times[url].append((time.perf_counter() - start) / batch)
    return [statistics.median(times[url]) for url in urls]


def same_payload(app: Flask, first: str, second: str) -> None:
    client = app.test_client()
    mine, base = client.get(first).get_json(), client.get(second).get_json()
    assert mine == base, f"{first} answers {mine}, but {second} answers {base}"


def ratio_row(name: str, target: float, mine: float, base: float) -> Row:
    note = f"{mine / base:.2f}x ({mine * 1e6:.0f} us vs {base * 1e6:.0f} us)"
    return name, f"<= {target:.2f}x", note, "yes" if mine / base <= target else "NO"


def clients(
    app: Flask, url: str, threads: int, seconds: float = 0.0, requests: int = 0
) -> list[float]:
    """Each thread gets ``url`` until ``seconds`` pass or ``requests`` are made
    in all; returns every request's duration."""
    durations: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    budget = [requests]

    def client() -> None:
        http = app.test_client()
        while True:
            with lock:
                if requests and budget[0] <= 0:
                    return
                budget[0] -= 1
            if seconds and time.monotonic() >= stop:
                return
            start = time.perf_counter()
            http.get(url)
            with lock:
                durations.append(time.perf_counter() - start)

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return durations


def counted(runs: list[int]) -> Callable[[], bool]:
    """A check that takes 20 ms and counts its runs in ``runs[0]``."""

    def check() -> bool:
        runs[0] += 1
        time.sleep(0.02)
        return True

    return check


def storm(seconds: float, cache: float) -> tuple[int, int]:
    """16 clients against one 20 ms check: (requests answered, check runs)."""
    app = Flask(__name__)
    runs = [0]
    FlaskStatus(app, cache=cache).add_field("db", counted(runs))
    return len(clients(app, "/api/status", 16, seconds=seconds)), runs[0]


def probe_rounds(rounds: int, groups: bool) -> float:
    """Three URLs probed at the same moment, round after round, by three
    client threads, over one 20 ms check with no cache: the check's runs per
    round. With ``groups`` the URLs are one instance's; else one instance
    each, as before groups."""
    app = Flask(__name__)
    runs = [0]
    check = counted(runs)
    urls = ("/api/status", "/readyz", "/livez")
    if groups:
        status = FlaskStatus(app)
        status.add_field("db", check)
        for url in urls[1:]:
            status.group(url)
    else:
        for url in urls:
            FlaskStatus(app, url=url).add_field("db", check)
    start = threading.Barrier(len(urls))

    def probe(url: str) -> None:
        client = app.test_client()
        for _ in range(rounds):
            start.wait()
            assert client.get(url).status_code == 200

    threads = [threading.Thread(target=probe, args=(url,)) for url in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return runs[0] / rounds


def hung(requests: int) -> tuple[float, int]:
    """A check that never returns, timeout 0.2 s, from 8 threads: (slowest
    response, most threads alive at once beyond those alive before)."""
    app = Flask(__name__)
    release = threading.Event()
    FlaskStatus(app).add_field("hung", release.wait, timeout=0.2)
    before = threading.active_count()
    most = [before]
    watching = threading.Event()

    def watch() -> None:
        while not watching.wait(0.01):
            most[0] = max(most[0], threading.active_count())

    watcher = threading.Thread(target=watch)
    watcher.start()
    durations = clients(app, "/api/status", 8, requests=requests)
    watching.set()
    watcher.join()
    release.set()
    return max(durations), most[0] - before - 1  # less the watcher


SERVED = """\
import importlib.util
import sys

spec = importlib.util.spec_from_file_location("flask_status_benchmarks", {path!r})
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
app = module.{call}
"""
ONE_BY_EIGHT = ["--workers", "1", "--worker-class", "gthread", "--threads", "8"]


def no_control_socket() -> list[str]:
    """``--no-control-socket`` where gunicorn has it (newer releases), which
    otherwise writes its socket to ``~/.gunicorn``, outside the clone."""
    settings = importlib.import_module("gunicorn.config").KNOWN_SETTINGS
    names = {s.name for s in settings}
    return ["--no-control-socket"] if "control_socket_disable" in names else []


class Gunicorn:
    """gunicorn serving the app ``call`` of this module returns (by default,
    ``build_served_app()``) on 127.0.0.1, at a free port, stopped by its PID:
    with ``options``, by default one gthread worker with 8 threads. Up once
    ``up`` answers 200."""

    def __init__(
        self,
        folder: Path,
        call: str = "build_served_app()",
        options: list[str] = ONE_BY_EIGHT,
        up: str = "/bare/three",
    ) -> None:
        source = SERVED.format(path=str(Path(__file__)), call=call)
        (folder / "served.py").write_text(source)
        self._up = up
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self._log = folder / "gunicorn.log"
        command = [sys.executable, "-m", "gunicorn", "--chdir", str(folder)]
        command += no_control_socket()
        command += ["--bind", f"127.0.0.1:{self.port}", *options]
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                [*command, "served:app"], stdout=log, stderr=subprocess.STDOUT
            )

    def wait_until_up(self) -> None:
        deadline = time.monotonic() + 30
        while self._process.poll() is None and time.monotonic() < deadline:
            try:
                if self.get(self._up)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not come up:\n{self._log.read_text()}")

    def get(self, url: str) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", url)
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    def stop(self) -> None:
        if self._process.poll() is None:
            os.kill(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self._process.pid, signal.SIGKILL)
            self._process.wait()


def load(port: int, url: str, threads: int, seconds: float) -> float:
    """Requests per second that ``threads`` keep-alive clients get from ``url``
    in about ``seconds``."""
    counts: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    window = [0.0, 0.0]  # start, deadline

    def begin() -> None:  # run by one thread once every client has connected
        window[0] = time.perf_counter()
        window[1] = window[0] + seconds

    ready = threading.Barrier(threads, action=begin)

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        done = 0
        try:
            conn.request("GET", url)  # connect before the clock starts
            conn.getresponse().read()
            ready.wait()
            while time.perf_counter() < window[1]:
                conn.request("GET", url)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"{url} answered {response.status}")
                done += 1
        except BaseException as error:  # reported, not lost in the thread
            ready.abort()
            with lock:
                errors.append(error)
        finally:
            conn.close()
            with lock:
                counts.append(done)

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - window[0]
    if errors:
        raise RuntimeError(f"load on {url} failed") from errors[0]
    return sum(counts) / elapsed


def served_rates(
    server: Gunicorn, pairs: list[tuple[str, str]], quick: bool
) -> dict[str, float]:
    """The median requests per second of each URL of ``pairs`` (each one and
    its baseline) that ``server`` serves, measured round by round; stops the
    server."""
    urls = list(dict.fromkeys(url for pair in pairs for url in pair))
    rounds, seconds = (2, 0.5) if quick else (5, 2.0)
    rates: dict[str, list[float]] = {url: [] for url in urls}
    try:
        server.wait_until_up()
        for mine, base in pairs:  # the same code and payload as its baseline
            assert server.get(mine) == server.get(base), f"{mine} != {base}"
        for url in urls:  # warm up
            load(server.port, url, CLIENTS, 0.2)
        for n in range(rounds):  # every other round in reverse, against drift
            for url in urls if n % 2 == 0 else urls[::-1]:
                rates[url].append(load(server.port, url, CLIENTS, seconds))
    finally:
        server.stop()
    return {url: statistics.median(r) for url, r in rates.items()}


def served_rows(quick: bool, scheduled: bool) -> list[Row]:
    """The gunicorn rows: req/s of flask-status over the floor's, for 3
    trivial checks, and of 5 scheduled checks over a static route."""
    names = (
        "gunicorn 1x8, 3 trivial checks: req/s vs the floor",
        "gunicorn 1x8, 5 scheduled checks: req/s vs bare",
    )
    targets = (">= 0.90x", ">= 0.95x")
    if importlib.util.find_spec("gunicorn") is None:
        return [(n, t, "skipped (no gunicorn)", "-") for n, t in zip(names, targets)]
    pairs = [("/status/three", "/floor/three"), ("/status/three", "/bare/three")]
    if scheduled:
        pairs.append(("/scheduled/five", "/bare/five-static"))
    with tempfile.TemporaryDirectory() as folder:
        rate = served_rates(Gunicorn(Path(folder)), pairs, quick)
    three = rate["/status/three"] / rate["/floor/three"]
    rows: list[Row] = [
        (
            names[0],
            targets[0],
            f"{three:.2f}x ({rate['/status/three']:.0f} vs"
            f" {rate['/floor/three']:.0f} req/s; bare {rate['/bare/three']:.0f})",
            "yes" if three >= 0.90 else "NO",
        )
    ]
    if not scheduled:
        rows.append((names[1], targets[1], NO_EVERY, "-"))
        return rows
    five = rate["/scheduled/five"] / rate["/bare/five-static"]
    rows.append(
        (
            names[1],
            targets[1],
            f"{five:.2f}x ({rate['/scheduled/five']:.0f} vs"
            f" {rate['/bare/five-static']:.0f} req/s)",
            "yes" if five >= 0.95 else "NO",
        )
    )
    return rows


def sizes(quick: bool) -> tuple[int, int]:
    """Rounds, and requests a batch, of the interleaved in-process rows."""
    return (3, 50) if quick else (15, 400)


def request_rows(quick: bool) -> list[Row]:
    """In-process: what a request costs, against bare Flask and the floor."""
    rounds, batch = sizes(quick)
    app = build_app()
    rows: list[Row] = []

    same_payload(app, "/status/static", "/bare/static")
    mine, base = interleaved(app, ["/status/static", "/bare/static"], rounds, batch)
    rows.append(ratio_row("0 callables vs bare jsonify", 1.05, mine, base))

    five = ["/status/five", "/bare/five", "/floor/five"]
    same_payload(app, five[0], five[1])
    same_payload(app, five[0], five[2])
    mine, bare, floor = interleaved(app, five, rounds, batch)
    rows.append(ratio_row("5 trivial callables vs bare calling them", 2.0, mine, bare))
    rows.append(ratio_row("5 trivial checks vs the floor", 1.15, mine, floor))

    page = ["/status/five?format=html", "/status/five"]  # the same checks and run
    mine, base = interleaved(app, page, rounds, batch)
    rows.append(ratio_row("5 trivial checks: the HTML page vs JSON", 1.5, mine, base))

    slow = ["/status/five-slow", "/status/one-slow"]
    mine, base = interleaved(app, slow, rounds, 2 if quick else 10)
    rows.append(ratio_row("5 checks sleeping 50 ms vs one", 1.2, mine, base))
    return rows


def storm_rows(quick: bool) -> list[Row]:
    """In-process: how often 16 clients make a 20 ms check run."""
    seconds = 1.0 if quick else 5.0
    answered, runs = storm(seconds, cache=0)
    rows: list[Row] = [
        (
            f"storm: 16 clients, {seconds:g} s, 20 ms check, no cache",
            "runs <= requests / 4",
            f"{runs} runs for {answered} requests",
            "yes" if runs <= answered / 4 else "NO",
        )
    ]
    answered, runs = storm(seconds, cache=1)
    rows.append(
        (
            "storm as above with cache=1",
            f"runs <= {seconds:g} + 2",
            f"{runs} runs for {answered} requests",
            "yes" if runs <= seconds + 2 else "NO",
        )
    )
    return rows


def group_rows(quick: bool) -> list[Row]:
    """In-process: three URLs of one instance probed at once."""
    name = "3 URLs of one instance probed at once, 20 ms check, no cache"
    target = "runs per round <= 1.0"
    if not hasattr(FlaskStatus, "group"):
        return [(name, target, "skipped (this flask_status has no groups)", "-")]
    rounds = 20 if quick else 100
    mine, base = probe_rounds(rounds, True), probe_rounds(rounds, False)
    measured = f"{mine:.2f} runs per round (one instance per URL: {base:.2f})"
    return [(name, target, measured, "yes" if mine <= 1.0 else "NO")]


def hung_rows(quick: bool) -> list[Row]:
    """In-process: a check that never returns, and the threads it costs."""
    count = 40 if quick else 200
    slowest, threads = hung(count)
    return [
        (
            f"hung check, timeout 0.2 s, {count} requests, 8 threads",
            "each <= 0.3 s; threads: 8 clients + 1 worker",
            f"slowest {slowest:.3f} s; at most {threads} more threads",
            "yes" if slowest <= 0.3 and threads <= 8 + 1 else "NO",
        )
    ]


def scheduled_rows(quick: bool) -> list[Row]:
    """In-process: scheduled checks against a static route. After the hung
    check, whose thread count any scheduler thread would spoil."""
    name = "5 scheduled trivial checks vs bare"
    scheduled_app = Flask(__name__)
    if not add_scheduled(scheduled_app):
        return [(name, "<= 1.10x", NO_EVERY, "-")]
    urls = ["/scheduled/five", "/bare/five-static"]
    same_payload(scheduled_app, *urls)
    mine, base = interleaved(scheduled_app, urls, *sizes(quick))
    return [ratio_row(name, 1.10, mine, base)]


def share_rows(quick: bool) -> list[Row]:
    """In-process: 5 trivial checks on request with a shared store (share=)
    against the same checks without one, interleaved round by round."""
    name = "5 trivial checks on request: share= vs no store"
    if not has_option("share"):
        return [(name, "<= 1.30x", NO_SHARE, "-")]
    with tempfile.TemporaryDirectory() as folder:
        app = Flask(__name__)
        make: Any = FlaskStatus  # Any: share= is new, and may not be there yet
        for url, share in (("/five", None), ("/shared/five", store_in(folder))):
            status = make(app, url=url, share=share)
            for key, check in checks(5).items():
                status.add_field(key, check)
        urls = ["/shared/five", "/five"]
        same_payload(app, *urls)
        mine, base = interleaved(app, urls, *sizes(quick))
    return [ratio_row(name, 1.30, mine, base)]


def store_in(folder: str | Path) -> str:
    """The shared store's path in ``folder``, a temporary directory."""
    return str(Path(folder) / "status.sqlite3")


def shared_served_rows(quick: bool) -> list[Row]:
    """The gunicorn row of the store's cost: req/s of 5 scheduled checks with
    a shared store over the same without one, from one gthread worker."""
    name = "gunicorn 1x8, 5 scheduled checks: req/s with share= vs no store"
    target = ">= 0.90x"
    if importlib.util.find_spec("gunicorn") is None:
        return [(name, target, "skipped (no gunicorn)", "-")]
    if not has_option("share"):
        return [(name, target, NO_SHARE, "-")]
    pair = ("/shared/five", "/scheduled/five")
    with tempfile.TemporaryDirectory() as folder:
        call = f"build_shared_app({store_in(folder)!r})"
        server = Gunicorn(Path(folder), call, up="/bare/five-static")
        rate = served_rates(server, [pair], quick)
    mine, base = rate[pair[0]], rate[pair[1]]
    measured = f"{mine / base:.2f}x ({mine:.0f} vs {base:.0f} req/s)"
    return [(name, target, measured, "yes" if mine / base >= 0.90 else "NO")]


def gunicorn_rows(quick: bool) -> list[Row]:
    return served_rows(quick, has_option("every"))


def has_option(name: str) -> bool:
    """Whether this flask_status takes ``name`` for the endpoint or a check."""
    return any(
        name in inspect.signature(function).parameters
        for function in (FlaskStatus.__init__, FlaskStatus.add_field)
    )


class Answer(NamedTuple):
    """A probe's answer."""

    at: float  # time.monotonic() when it came
    code: int
    pid: int  # of the worker that answered
    body: Any


PROBES = ("/readyz", "/readyz?format=health")  # JSON and health+json, by turns


def probe(port: int, url: str) -> Answer:
    """GET ``url`` on a connection of its own, as a probe does."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", url)
        response = conn.getresponse()
        body = json.loads(response.read())
        pid = int(response.getheader("X-Pid", "0"))
        return Answer(time.monotonic(), response.status, pid, body)
    finally:
        conn.close()


def probing(
    port: int, threads: int, seconds: float = 0.0, each: int = 0
) -> list[Answer]:
    """``threads`` clients probe ``PROBES`` by turns, for ``seconds`` or
    ``each`` probes each: every answer, in the order they came."""
    answers: list[Answer] = []
    stop = time.monotonic() + seconds

    def client(turn: int) -> None:
        made = 0
        while (made < each) if each else (time.monotonic() < stop):
            answers.append(probe(port, PROBES[(turn + made) % 2]))
            made += 1

    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sorted(answers, key=lambda answer: answer.at)


class Line(NamedTuple):
    """A line that note() appended."""

    pid: int
    at: float  # time.time()
    text: str


def lines(path: Path) -> list[Line]:
    """The whole lines of a file note() appends to; none if there is none."""
    if not path.exists():
        return []
    found = []
    for line in path.read_text().split("\n")[:-1]:  # the last may be partial
        pid, at, text = line.split(" ", 2)
        found.append(Line(int(pid), float(at), text))
    return found


class Coherence(NamedTuple):
    """What four workers of build_coherent_app() did, in one run."""

    scheduled: float  # runs of tick per interval (every=1) while probed
    cached: float  # runs of cached per ttl (cache=2) while probed
    flips: int  # changes between 200 and 503 after the 3rd failed run of dep
    passed: int  # answers of 200 among them
    probes: int  # how many answers those are
    heard: int  # listener calls for dep's OK -> FAIL
    since: tuple[int, int]  # distinct dep since values, passing and failing
    workers: int  # that answered the probes


def coherence(folder: Path, store: str | None, window: float) -> Coherence:
    """Serve build_coherent_app() from 4 sync workers: 8 clients probe for
    ``window`` seconds and a little more, and the runs in ``window`` count;
    the dependency breaks; one probe at a time until the host made 3 failed
    runs of it; then 4 clients probe 10 times each.

    ``window`` is a multiple of every= and of cache=. The probe that found
    the server up started the first runs, so the next fall due at whole
    seconds from just before the probing began: the counted window begins
    half a second after it, so that no run is due at either of its ends,
    where a millisecond would decide whether it counts."""
    (folder / "dep").write_text("up")
    call = f"build_coherent_app({str(folder)!r}, {store!r})"
    four = ["--workers", "4", "--worker-class", "sync"]
    server = Gunicorn(folder, call, four, up="/readyz")
    try:
        server.wait_until_up()
        begun = time.time() + 0.5  # of the counted window
        passing = probing(server.port, 8, seconds=window + 1.0)
        (folder / "dep").unlink()
        for _ in range(20):
            if [r.text for r in lines(folder / "dep.runs")].count("fail") >= 3:
                break
            probe(server.port, PROBES[0])
        else:
            raise RuntimeError("the dependency did not run 3 times in 20 probes")
        failing = probing(server.port, 4, each=10)
        deadline = time.monotonic() + 3  # listeners run on a worker thread
        while time.monotonic() < deadline and not heard(folder):
            time.sleep(0.01)
        time.sleep(0.5)  # and one in another worker would come by now
    finally:
        server.stop()

    def per_interval(name: str, interval: float) -> float:
        ran = [r for r in lines(folder / name) if begun <= r.at < begun + window]
        return len(ran) / (window / interval)

    def since(answers: list[Answer]) -> int:
        health = [a.body for a in answers if "checks" in a.body]
        return len({h["checks"]["dep"][0]["since"] for h in health})

    codes = [a.code for a in failing]
    return Coherence(
        scheduled=per_interval("tick.runs", 1),
        cached=per_interval("cached.runs", 2),
        flips=sum(a != b for a, b in zip(codes, codes[1:])),
        passed=codes.count(200),
        probes=len(codes),
        heard=len(heard(folder)),
        since=(since(passing), since(failing)),
        workers=len({a.pid for a in passing}),
    )


def heard(folder: Path) -> list[Line]:
    """The listener calls for the dependency's OK -> FAIL."""
    return [line for line in lines(folder / "heard") if line.text == "dep OK FAIL"]


def coherence_rows(quick: bool) -> list[Row]:
    """Issue 26's table: four sync workers of gunicorn with a shared store,
    and without one for contrast."""
    prefix = "gunicorn 4 sync workers, share=: "
    names = (
        "scheduled runs per interval (every=1)",
        "cached runs per ttl (cache=2), 8 clients probing",
        "200/503 flips in 40 probes after the 3rd failed run (fail_after=3)",
        "listener calls for one OK -> FAIL",
        "distinct since values of one check (health+json)",
    )
    targets = ("<= 1.2", "<= 1.2", "0", "1", "1")
    skipped = ""
    if importlib.util.find_spec("gunicorn") is None:
        skipped = "skipped (no gunicorn)"
    elif not has_option("share"):
        skipped = NO_SHARE
    if skipped:
        return [(prefix + n, t, skipped, "-") for n, t in zip(names, targets)]
    window = 2.0 if quick else 6.0
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "shared").mkdir()
        (Path(folder) / "apart").mkdir()
        mine = coherence(Path(folder) / "shared", store_in(folder), window)
        base = coherence(Path(folder) / "apart", None, window)
    measured = (
        f"{mine.scheduled:.2f} (no store: {base.scheduled:.2f}); workers"
        f" answering: {mine.workers} ({base.workers})",
        f"{mine.cached:.2f} (no store: {base.cached:.2f})",
        f"{mine.flips}, {mine.passed} of {mine.probes} answered 200"
        f" (no store: {base.flips}, {base.passed} of {base.probes})",
        f"{mine.heard} (no store: {base.heard})",
        f"{mine.since[0]} while passing, {mine.since[1]} after the break"
        f" (no store: {base.since[0]}, {base.since[1]})",
    )
    met = (
        mine.scheduled <= 1.2,
        mine.cached <= 1.2,
        mine.flips == 0 and mine.passed == 0,
        mine.heard == 1,
        mine.since == (1, 1),
    )
    return [
        (prefix + name, target, value, "yes" if ok else "NO")
        for name, target, value, ok in zip(names, targets, measured, met)
    ]


# The rows, in the order they run and print; --only picks some by name.
ROWS: dict[str, Callable[[bool], list[Row]]] = {
    "requests": request_rows,
    "storm": storm_rows,
    "groups": group_rows,
    "hung": hung_rows,
    "scheduled": scheduled_rows,
    "gunicorn": gunicorn_rows,
    "share": share_rows,
    "share-gunicorn": shared_served_rows,
    "coherence": coherence_rows,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument(
        "--only", action="append", choices=ROWS, help="these rows only (repeatable)"
    )
    args = parser.parse_args()
    rows: list[Row] = []
    for name, make_rows in ROWS.items():
        if args.only is None or name in args.only:
            rows += make_rows(args.quick)

    print("| scenario | target | measured | met |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {' | '.join(row)} |")


if __name__ == "__main__":
    main()
