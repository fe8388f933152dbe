"""FlaskStatus.instrument: OpenTelemetry gauges read through the SDK's
in-memory reader, from the latest results, without running a check; and
nothing imports opentelemetry until it is called."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from flask import Flask
from helpers import Switch
from helpers import get

from flask_status import FlaskStatus
from flask_status import Health


def reader_and_meter() -> tuple[Any, Any]:
    metrics = pytest.importorskip("opentelemetry.sdk.metrics")
    export = pytest.importorskip("opentelemetry.sdk.metrics.export")
    reader = export.InMemoryMetricReader()
    provider = metrics.MeterProvider(metric_readers=[reader])
    return reader, provider.get_meter("tests")


def collected(reader: Any) -> dict[str, tuple[str, list[tuple[dict[str, Any], Any]]]]:
    """Each metric the reader collects: its unit and its points' attributes
    and values."""
    data = reader.get_metrics_data()
    found = {}
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if not metric.name.startswith("flask_status."):
                    continue  # the SDK's own, such as its collection's duration
                points = [
                    (dict(p.attributes), p.value) for p in metric.data.data_points
                ]
                found[metric.name] = (metric.unit, points)
    return found


def test_gauges_say_each_checks_latest_status_duration_and_value(app: Flask) -> None:
    reader, meter = reader_and_meter()
    status = FlaskStatus(app, url="/readyz")
    db, cache, disk = Switch(True), Switch(Health.warn("slow")), Switch(False)
    status.add_field("db", db)
    status.add_field("cache", cache, critical=False)
    status.add_field("disk", lambda: Health.ok(2_000_000, unit="bytes"))
    status.add_field("queue", disk)
    status.instrument(meter)
    assert collected(reader) == {}  # no check has run: nothing to say
    get(app.test_client(), "/readyz")
    calls = (db.calls, cache.calls, disk.calls)
    metrics = collected(reader)
    metrics = collected(reader)  # a second collection, to count the calls again
    assert (db.calls, cache.calls, disk.calls) == calls  # collecting runs no check
    unit, statuses = metrics["flask_status.check.status"]
    assert unit == "1"
    assert sorted((a["check"], v) for a, v in statuses) == [
        ("cache", 0.5),
        ("db", 1.0),
        ("disk", 1.0),
        ("queue", 0.0),
    ]
    assert all(a["url"] == "/readyz" for a, _ in statuses)
    unit, durations = metrics["flask_status.check.duration"]
    assert unit == "s" and len(durations) == 4
    assert all(0 <= v < 1 for _, v in durations)
    assert metrics["flask_status.check.value"][1] == [
        ({"url": "/readyz", "check": "disk", "unit": "bytes"}, 2_000_000)
    ]


def test_gauges_follow_the_latest_results(app: Flask) -> None:
    reader, meter = reader_and_meter()
    db = Switch(True)
    status = FlaskStatus(app)
    status.add_field("db", db)
    status.instrument(meter)
    client = app.test_client()
    get(client)
    db.result = False
    get(client)
    [(_, value)] = collected(reader)["flask_status.check.status"][1]
    assert value == 0.0


def test_importing_flask_status_imports_no_opentelemetry() -> None:
    code = (
        "import sys, flask, flask_status\n"
        "flask_status.FlaskStatus(flask.Flask('a')).add_field('db', lambda: True)\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout == "[]\n"


def test_something_else_than_a_meter_is_refused(app: Flask) -> None:
    status = FlaskStatus(app)
    with pytest.raises(TypeError) as error:
        status.instrument(42)
    assert str(error.value) == (
        "42 is no OpenTelemetry Meter; pass one, such as"
        " metrics.get_meter('my-app') or provider.get_meter('my-app')."
    )
