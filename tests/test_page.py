"""The HTML status page: which requests get it, its headers and text through
the test client, and how a real headless Chromium renders it from a real
server: the rows, a hostile value shown as text, no script run, the style
applied."""

from __future__ import annotations

import collections
import html
import re
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from helpers import build_readyz
from servers import require
from servers import served

from flask_status import FlaskStatus
from flask_status import Health

# What Chromium and Firefox send for a page.
BROWSER = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
    "image/webp,image/apng,*/*;q=0.8"
)
HOSTILE = "<script>document.title='pwned'</script>"
TIME = r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d\.\d{3}Z"  # as the page and health+json say
AGE = r" \(\d+ (s|min|h|d) ago\)"  # after the time in a Since cell


class Page(HTMLParser):
    """What a page says: its title, the status word (``<strong>``), each
    table row's cell texts, and every tag it has."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.title = self.status = ""
        self.rows: list[list[str]] = []
        self.tags: list[str] = []
        self.inside: collections.Counter[str] = collections.Counter()
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.inside[tag] += 1
        if tag == "tr":
            self.rows.append([])
        elif tag in ("th", "td"):
            self.rows[-1].append("")

    def handle_endtag(self, tag: str) -> None:
        self.inside[tag] -= 1

    def handle_data(self, data: str) -> None:
        if self.inside["title"] > 0:
            self.title += data
        if self.inside["strong"] > 0:
            self.status += data
        if self.inside["th"] > 0 or self.inside["td"] > 0:
            self.rows[-1][-1] += data


def page(client: FlaskClient, path: str, code: int) -> Page:
    response = client.get(path, headers={"Accept": BROWSER})
    assert (response.status_code, response.mimetype) == (code, "text/html")
    return Page(response.get_data(as_text=True))


def timeless(rows: list[list[str]]) -> list[list[str]]:
    """Rows with durations as ``D`` and times as ``T``, a Since cell's age
    with its time."""
    return [
        [
            re.sub(r"^\d+\.\d{3} ms$", "D", re.sub(f"^{TIME}({AGE})?$", "T", c))
            for c in row
        ]
        for row in rows
    ]


# -- which requests get the page ----------------------------------------------


@pytest.mark.parametrize(
    ("accept", "mimetype"),
    [
        (None, "application/json"),
        ("*/*", "application/json"),  # kubelet
        ("application/json", "application/json"),
        ("text/html;q=0.5, application/json", "application/json"),
        ("text/*", "application/json"),  # names no html: not parsed
        ("application/health+json", "application/health+json"),
        ("application/health+json, text/html;q=0.9", "application/health+json"),
        (BROWSER, "text/html"),
        ("text/html", "text/html"),
        ("application/json;q=0.5, text/html", "text/html"),
    ],
)
def test_accept_header_chooses_the_format(
    app: Flask, client: FlaskClient, accept: str | None, mimetype: str
) -> None:
    build_readyz(app, [])
    headers = {} if accept is None else {"Accept": accept}
    assert client.get("/readyz", headers=headers).mimetype == mimetype


@pytest.mark.parametrize("setting", ["argument", "config"])
def test_html_false_keeps_json_for_browsers(
    app: Flask, client: FlaskClient, setting: str
) -> None:
    if setting == "config":
        app.config["STATUS_HTML"] = False
        build_readyz(app, [])
    else:
        build_readyz(app, [], html=False)
    response = client.get("/readyz", headers={"Accept": BROWSER})
    assert (response.status_code, response.mimetype) == (503, "application/json")
    assert response.get_json()["queue"] is False
    page = client.get("/readyz?format=html", headers={"Accept": BROWSER})
    assert page.mimetype == "text/html"


def test_format_beats_a_browsers_accept(app: Flask, client: FlaskClient) -> None:
    build_readyz(app, [])
    for name, mimetype in [("json", "application/json"), ("html", "text/html")]:
        headers = {"Accept": BROWSER if name == "json" else "application/json"}
        response = client.get(f"/readyz?format={name}", headers=headers)
        assert response.mimetype == mimetype


# -- headers and text -----------------------------------------------------------


@pytest.mark.parametrize(("queue", "code"), [(True, 200), (False, 503)])
def test_page_headers(app: Flask, client: FlaskClient, queue: bool, code: int) -> None:
    status = FlaskStatus(app, url="/readyz")
    status.add_field("queue", lambda: queue)
    response = client.get("/readyz?format=html")
    assert response.status_code == code
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert re.fullmatch(
        r"default-src 'none'; style-src 'sha256-[A-Za-z0-9+/]{43}='; base-uri"
        r" 'none'; form-action 'none'; frame-ancestors 'none'",
        response.headers["Content-Security-Policy"],
    )
    head = client.head("/readyz", headers={"Accept": BROWSER})
    assert (head.status_code, head.mimetype, head.data) == (code, "text/html", b"")


EXPECTED = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>FAIL - /readyz</title>
<style>STYLE</style>
</head>
<body>
<h1>/readyz</h1>
<p>Status: <strong class="FAIL">FAIL</strong></p>
<p class="summary">3 checks: 1 OK, 1 WARN, 1 FAIL</p>
<div class="scroll"><table>
<thead><tr><th scope="col">Field</th><th scope="col">State</th>\
<th scope="col">Value</th><th scope="col">Duration</th><th scope="col">Since</th>\
<th scope="col">Reason</th></tr></thead>
<tbody>
<tr><th scope="row">service</th><td data-label="State"></td><td data-label="Value">\
<code>&quot;shop&quot;</code></td><td data-label="Duration"></td>\
<td data-label="Since"></td><td data-label="Reason"></td></tr>
<tr><th scope="row">version</th><td data-label="State"></td><td data-label="Value">\
<code>&quot;1.2.3&quot;</code></td><td data-label="Duration"></td>\
<td data-label="Since"></td><td data-label="Reason"></td></tr>
<tr><th scope="row">db</th><td data-label="State"><span class="OK">OK</span></td>\
<td data-label="Value"><code>3</code></td><td data-label="Duration">D</td>\
<td data-label="Since"><time datetime="T">T</time> (0 s ago)</td>\
<td data-label="Reason"></td></tr>
<tr><th scope="row">cache</th>\
<td data-label="State"><span class="WARN">WARN</span></td>\
<td data-label="Value"><code>false</code></td><td data-label="Duration">D</td>\
<td data-label="Since"><time datetime="T">T</time> (0 s ago)</td>\
<td data-label="Reason">returned False</td></tr>
<tr><th scope="row">queue</th>\
<td data-label="State"><span class="FAIL">FAIL</span></td>\
<td data-label="Value"><code>false</code></td><td data-label="Duration">D</td>\
<td data-label="Since"><time datetime="T">T</time> (0 s ago)</td>\
<td data-label="Reason">returned False</td></tr>
</tbody>
</table></div>
<p>Made at <time datetime="T">T</time>.</p>
</body>
</html>
"""


def test_page_text_with_details(app: Flask, client: FlaskClient) -> None:
    build_readyz(app, [], message={"service": "shop", "status": "up"}, show_errors=True)
    text = client.get("/readyz?format=html").get_data(as_text=True)
    text = re.sub(r"<style>.*?</style>", "<style>STYLE</style>", text)
    text = re.sub(r"\d+\.\d{3} ms", "D", text)
    assert re.sub(TIME, "T", text) == EXPECTED


def test_durations_and_times_are_health_jsons(app: Flask, client: FlaskClient) -> None:
    build_readyz(app, [], cache=60)
    health = client.get("/readyz", headers={"Accept": "application/health+json"})
    rows = {row[0]: row for row in page(client, "/readyz", 503).rows[1:]}
    for key, [entry] in health.get_json()["checks"].items():
        assert rows[key][3] == f"{entry['duration'] * 1000:.3f} ms"
        assert re.fullmatch(
            re.escape(entry["time"].replace("T", " ")) + AGE, rows[key][4]
        )


def test_reasons_only_with_show_errors(app: Flask, client: FlaskClient) -> None:
    build_readyz(app, [])
    rows = page(client, "/readyz", 503).rows
    assert rows[0] == ["Field", "State", "Value", "Duration", "Since"]
    assert timeless(rows[1:]) == [
        ["version", "", '"1.2.3"', "", ""],
        ["db", "OK", "3", "D", "T"],
        ["cache", "WARN", "false", "D", "T"],
        ["queue", "FAIL", "false", "D", "T"],
    ]


@pytest.mark.parametrize(
    ("query", "state", "code"), [("exclude=queue", "WARN", 200), ("", "FAIL", 503)]
)
def test_without_details_only_the_status(
    app: Flask, client: FlaskClient, query: str, state: str, code: int
) -> None:
    build_readyz(app, [], show_errors=True).details_when(lambda: False)
    shown = page(client, f"/readyz?{query}", code)
    assert (shown.title, shown.status, shown.rows) == (f"{state} - /readyz", state, [])
    text = client.get(f"/readyz?{query}&format=html").text
    assert "<table>" not in text and "cache" not in text and "returned" not in text


def test_everything_from_the_app_is_escaped(app: Flask, client: FlaskClient) -> None:
    status = FlaskStatus(
        app, url="/a&b", message={"<i>note</i>": "<b>&amp;</b>"}, show_errors=True
    )
    status.add_field("<em>static</em>", "<u>x</u>")
    status.add_field("script", lambda: HOSTILE)

    @status.field("<b>broken</b>")
    def broken() -> None:
        raise RuntimeError("<img src=x onerror=alert(1)>")

    response = client.get("/a&b?format=html")
    text = response.get_data(as_text=True)
    assert "<script>" not in text and "<img" not in text and "<b>" not in text
    assert "<i>" not in text and "<em>" not in text and "<u>" not in text
    assert "<title>FAIL - /a&amp;b</title>" in text
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in text
    shown = Page(text)
    assert (shown.title, shown.status) == ("FAIL - /a&b", "FAIL")
    assert [row[:3] for row in shown.rows[1:]] == [
        ["<i>note</i>", "", '"<b>&amp;</b>"'],
        ["<em>static</em>", "", '"<u>x</u>"'],
        ["script", "OK", f'"{HOSTILE}"'],
        ["<b>broken</b>", "FAIL", "false"],
    ]
    assert shown.rows[4][5] == "RuntimeError: <img src=x onerror=alert(1)>"


def test_per_check_routes_and_exclude_answer_pages(
    app: Flask, client: FlaskClient
) -> None:
    build_readyz(app, [], per_check=True)
    assert timeless(page(client, "/readyz/cache", 200).rows[1:]) == [
        ["cache", "WARN", "false", "D", "T"]
    ]
    shown = page(client, "/readyz?exclude=queue", 200)
    assert (shown.status, [row[0] for row in shown.rows[1:]]) == (
        "WARN",
        ["version", "db", "cache"],
    )


# -- ?refresh= ------------------------------------------------------------------


@pytest.mark.parametrize("seconds", ["1", "30", "3600"])
def test_refresh_reloads_the_page(
    app: Flask, client: FlaskClient, seconds: str
) -> None:
    build_readyz(app, [])
    text = client.get(f"/readyz?refresh={seconds}", headers={"Accept": BROWSER}).text
    assert f'<meta http-equiv="refresh" content="{seconds}">\n<title>' in text
    assert "refresh" not in client.get("/readyz?format=html").text


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("0", "'0'"),
        ("3601", "'3601'"),
        ("1.5", "'1.5'"),
        ("-5", "'-5'"),
        ("", "''"),
        ("ten", "'ten'"),
        ("%D9%A3", "'\u0663'"),  # an Arabic-Indic three
        ("0" * 30 + "1", f"'{'0' * 30}1'"),
        ("<b>", "'<b>'"),
    ],
)
def test_another_refresh_is_400_naming_it(
    app: Flask, client: FlaskClient, value: str, shown: str
) -> None:
    calls: list[str] = []
    build_readyz(app, calls)
    response = client.get(f"/readyz?format=html&refresh={value}")
    assert response.status_code == 400
    # Werkzeug's error page, which escapes our message in its own way
    assert "<b>" not in response.text
    assert (
        f"The refresh {shown} is not a whole number of seconds from 1 to 3600;"
        " give one such as ?refresh=10."
    ) in html.unescape(response.text)
    assert calls == []  # refused before any check ran


def test_refresh_is_ignored_by_other_formats(app: Flask, client: FlaskClient) -> None:
    build_readyz(app, [])
    assert client.get("/readyz?refresh=no").status_code == 503


# -- in a real Chromium ---------------------------------------------------------


def chromium(tmp_path: Path, *arguments: str) -> str:
    """Run headless Chromium with ``arguments``; what it prints."""
    command = [
        require("chromium", "chromium"),
        "--headless",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'chromium'}",
        *arguments,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def failing_app(app: Flask) -> None:
    """/readyz: a static field, a passing check, a tolerated failure (WARN)
    and a failing critical check with its reason; and /control, a page whose
    script sets the title, to show that scripts run in this Chromium."""
    status = FlaskStatus(app, url="/readyz", show_errors=True)
    status.add_field("version", "1.2.3")
    status.add_field("database", lambda: {"latency_ms": 3})
    status.add_field("cache", lambda: False, critical=False)

    @status.field
    def queue() -> None:
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    control = f"<!DOCTYPE html><title>before</title>{HOSTILE}"
    app.add_url_rule("/control", "control", lambda: control)


def test_chromium_renders_the_page_and_runs_no_script(
    app: Flask, tmp_path: Path
) -> None:
    failing_app(app)
    app.extensions["status"]["/readyz"].add_field("motd", lambda: HOSTILE)
    with served(app) as port:
        url = f"http://127.0.0.1:{port}"
        control = Page(chromium(tmp_path, "--dump-dom", f"{url}/control"))
        shown = Page(chromium(tmp_path, "--dump-dom", f"{url}/readyz?format=html"))
    assert control.title == "pwned"  # this Chromium runs scripts
    assert (shown.title, shown.status) == ("FAIL - /readyz", "FAIL")
    assert "script" not in shown.tags
    assert timeless(shown.rows) == [
        ["Field", "State", "Value", "Duration", "Since", "Reason"],
        ["version", "", '"1.2.3"', "", "", ""],
        ["database", "OK", '{"latency_ms":3}', "D", "T", ""],
        ["cache", "WARN", "false", "D", "T", "returned False"],
        [
            "queue",
            "FAIL",
            "false",
            "D",
            "T",
            "ConnectionRefusedError: [Errno 111] Connection refused",
        ],
        ["motd", "OK", f'"{HOSTILE}"', "D", "T", ""],
    ]


def test_chromium_applies_the_style(app: Flask, tmp_path: Path) -> None:
    failing_app(app)
    screenshot = tmp_path / "status-page.png"
    with served(app) as port:
        chromium(
            tmp_path,
            f"--screenshot={screenshot}",
            "--window-size=800,440",
            f"http://127.0.0.1:{port}/readyz?format=html",
        )
    counts = colours(screenshot.read_bytes())
    # The states' backgrounds, from the page's own style, which the
    # Content-Security-Policy lets apply by its hash.
    assert counts[(0xFF, 0xB3, 0xB3)] > 500  # FAIL, twice
    assert counts[(0xFF, 0xDF, 0x80)] > 200  # WARN
    assert counts[(0xBF, 0xEA, 0xBF)] > 200  # OK, twice


def colours(png: bytes) -> collections.Counter[tuple[int, int, int]]:
    """How many pixels of each colour a PNG has: 8-bit RGB or RGBA, not
    interlaced, as Chromium writes its screenshots."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    chunks: dict[bytes, bytes] = collections.defaultdict(bytes)
    at = 8
    while at < len(png):
        length, kind = struct.unpack(">I4s", png[at : at + 8])
        chunks[kind] += png[at + 8 : at + 8 + length]
        at += 12 + length
    width, height, depth, kind, _, _, interlace = struct.unpack(
        ">IIBBBBB", chunks[b"IHDR"]
    )
    assert (depth, kind, interlace) in [(8, 2, 0), (8, 6, 0)]
    size = 3 if kind == 2 else 4
    data = zlib.decompress(chunks[b"IDAT"])
    counts: collections.Counter[tuple[int, int, int]] = collections.Counter()
    above = bytearray(width * size)
    for y in range(height):
        start = y * (width * size + 1)
        line = unfilter(
            data[start], data[start + 1 : start + 1 + width * size], above, size
        )
        counts.update(zip(line[0::size], line[1::size], line[2::size]))
        above = line
    return counts


def unfilter(kind: int, raw: bytes, above: bytearray, size: int) -> bytearray:
    """One scanline of a PNG, its filter undone."""
    line = bytearray(raw)
    for i in range(len(line)):
        left = line[i - size] if i >= size else 0
        corner = above[i - size] if i >= size else 0
        guess = (0, left, above[i], (left + above[i]) // 2)[kind] if kind < 4 else 0
        if kind == 4:
            p = left + above[i] - corner
            near = min((abs(p - left), 0), (abs(p - above[i]), 1), (abs(p - corner), 2))
            guess = (left, above[i], corner)[near[1]]
        line[i] = (line[i] + guess) & 0xFF
    return line


def test_chromium_shows_units_ages_and_a_summary(app: Flask, tmp_path: Path) -> None:
    status = FlaskStatus(app, url="/readyz", show_errors=True)
    status.add_field("disk", lambda: Health.ok(84_134_076_416, unit="bytes"))
    status.add_field("db", lambda: Health.warn("slow", value=0.0032, unit="s"))
    status.add_field("queue", lambda: Health.ok(12, unit="messages"))
    with served(app) as port:
        url = f"http://127.0.0.1:{port}/readyz?format=html"
        text = chromium(tmp_path, "--dump-dom", url)
    shown = Page(text)
    assert (shown.title, shown.status) == ("WARN - /readyz", "WARN")
    assert [row[:3] for row in shown.rows[1:]] == [
        ["disk", "OK", "84.1 GB"],
        ["db", "WARN", "3.2 ms"],
        ["queue", "OK", "12 messages"],
    ]
    assert all(re.fullmatch(f"{TIME}{AGE}", row[4]) for row in shown.rows[1:])
    assert '<p class="summary">3 checks: 2 OK, 1 WARN</p>' in text
    assert re.search(f'<p>Made at <time datetime="{TIME}">{TIME}</time>.</p>', text)
