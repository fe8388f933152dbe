"""Benchmarks for flask-status, as ratios against bare Flask routes in this run.

    python benchmarks/run.py            # the full run, about a minute
    python benchmarks/run.py --quick    # a smoke run, a few seconds

Each pair of routes is measured in this process, interleaved round by round,
and a ratio is the median time of one over the median time of the other, so
the machine's speed and noise cancel out as far as they can.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from flask import Flask
from flask import jsonify

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from flask_status import FlaskStatus

MESSAGE = {"status": "OK", "service": "bench"}
STATIC = {"version": "1.2.3", "region": "eu"}


def trivial() -> bool:
    return True


def build_app() -> Flask:
    app = Flask(__name__)

    plain = FlaskStatus(app, url="/status/static", message=MESSAGE)
    for key, value in STATIC.items():
        plain.add_field(key, value)

    @app.get("/bare/static")
    def bare_static() -> Any:
        return jsonify({**MESSAGE, **STATIC})

    five = FlaskStatus(app, url="/status/five")
    for n in range(5):
        five.add_field(f"check{n}", trivial)

    @app.get("/bare/five")
    def bare_five() -> Any:
        return jsonify({"status": "OK", **{f"check{n}": trivial() for n in range(5)}})

    def sleeper() -> bool:
        time.sleep(0.05)
        return True

    one_slow = FlaskStatus(app, url="/status/one-slow")
    one_slow.add_field("slow", sleeper)
    five_slow = FlaskStatus(app, url="/status/five-slow")
    for n in range(5):
        five_slow.add_field(f"slow{n}", sleeper)
    return app


def interleaved(
    app: Flask, first: str, second: str, rounds: int, batch: int
) -> tuple[float, float]:
    """Median seconds per request of two URLs, measured round by round."""
    client = app.test_client()
    times: dict[str, list[float]] = {first: [], second: []}
    for url in (first, second):  # warm up: workers, caches, code paths
        for _ in range(batch):
            assert client.get(url).status_code == 200
    for _ in range(rounds):
        for url in (first, second):
            start = time.perf_counter()
            for _ in range(batch):
                client.get(url)
            times[url].append((time.perf_counter() - start) / batch)
    return statistics.median(times[first]), statistics.median(times[second])


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


def storm(seconds: float, cache: float) -> tuple[int, int]:
    """16 clients against one 20 ms check: (requests answered, check runs)."""
    app = Flask(__name__)
    runs = [0]

    def check() -> bool:
        runs[0] += 1
        time.sleep(0.02)
        return True

    FlaskStatus(app, cache=cache).add_field("db", check)
    return len(clients(app, "/api/status", 16, seconds=seconds)), runs[0]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    quick = parser.parse_args().quick
    rounds, batch = (3, 50) if quick else (15, 400)
    app = build_app()
    rows: list[tuple[str, str, str, bool]] = []

    def ratio(name: str, target: float, a: str, b: str, r: int, n: int) -> None:
        mine, base = interleaved(app, a, b, r, n)
        note = f"{mine / base:.2f}x ({mine * 1e6:.0f} us vs {base * 1e6:.0f} us)"
        rows.append((name, f"<= {target:.2f}x", note, mine / base <= target))

    ratio(
        "0 callables vs bare jsonify",
        1.10,
        "/status/static",
        "/bare/static",
        rounds,
        batch,
    )
    ratio(
        "5 trivial callables vs bare calling them",
        2.0,
        "/status/five",
        "/bare/five",
        rounds,
        batch,
    )
    ratio(
        "5 checks sleeping 50 ms vs one",
        1.2,
        "/status/five-slow",
        "/status/one-slow",
        rounds,
        2 if quick else 10,
    )

    seconds = 1.0 if quick else 5.0
    answered, runs = storm(seconds, cache=0)
    rows.append(
        (
            f"storm: 16 clients, {seconds:g} s, 20 ms check, no cache",
            "runs <= requests / 4",
            f"{runs} runs for {answered} requests",
            runs <= answered / 4,
        )
    )
    answered, runs = storm(seconds, cache=1)
    rows.append(
        (
            "storm as above with cache=1",
            f"runs <= {seconds:g} + 2",
            f"{runs} runs for {answered} requests",
            runs <= seconds + 2,
        )
    )
    count = 40 if quick else 200
    slowest, threads = hung(count)
    rows.append(
        (
            f"hung check, timeout 0.2 s, {count} requests, 8 threads",
            "each <= 0.3 s; threads: 8 clients + 1 worker",
            f"slowest {slowest:.3f} s; at most {threads} more threads",
            slowest <= 0.3 and threads <= 8 + 1,
        )
    )

    print("| scenario | target | measured | met |")
    print("|---|---|---|---|")
    for name, target, measured, met in rows:
        print(f"| {name} | {target} | {measured} | {'yes' if met else 'NO'} |")


if __name__ == "__main__":
    main()
