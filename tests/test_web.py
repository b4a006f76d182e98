"""The web page and API over real HTTP on 127.0.0.1: routes, headers, token flow, limits, stream."""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fixtures_mqtt import free_port

from device.config import WebConfig
from device.errors import OutputError
from device.events import ReadingEvent, Status
from device.reading import DigitResult, Reading
from device.web import BOUNDARY, MAX_BODY_BYTES, SESSION_COOKIE, WebServer

TOKEN = "correct-horse-battery-staple-42"
ROI = (4, 4, 150, 110)


def reading(text: str = "42", confident: bool = True) -> Reading:
    digits = tuple(
        DigitResult(int(c), 0.95 + 0.01 * i, (20 + 40 * i, 30, 30, 50)) for i, c in enumerate(text)
    )
    return Reading(text, digits, confident)


def frame(value: int = 40) -> np.ndarray:
    return np.full((120, 160, 3), value, np.uint8)


class Calls:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., WebServer]]:
    servers: list[WebServer] = []

    def make(
        token: str | None = None, on_trigger: Callable[[], None] | None = None, **kw: Any
    ) -> WebServer:
        fields: dict[str, Any] = {"enabled": True, "port": free_port(), "preview_fps": 20.0}
        if token is not None:
            token_file = tmp_path / "token"
            token_file.write_text(token + "\n")
            token_file.chmod(0o600)
            fields["token_file"] = str(token_file)
        extra = {k: kw.pop(k) for k in ("roi", "extra_status") if k in kw}
        cfg = replace(WebConfig(), **{**fields, **kw})
        server = WebServer(cfg, on_trigger or Calls(), **extra)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def request(
    server: WebServer,
    path: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def raw(server: WebServer, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes and read the whole answer (the server closes the connection)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


# -- routes and content -------------------------------------------------------------------------


def test_page_and_assets_carry_strict_security_headers(make_server: Callable[..., WebServer]):
    server = make_server()
    for path, kind in [
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/style.css", "text/css"),
    ]:
        status, headers, body = request(server, path)
        assert status == 200, path
        assert headers["content-type"].startswith(kind)
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        csp = headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "python" not in headers["server"].lower()  # no version banner
        assert body


def test_page_has_no_inline_script_for_the_csp_to_block(make_server: Callable[..., WebServer]):
    html = request(make_server(), "/")[2].decode()
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts, "the page must load app.js"
    assert all('src="/' in attrs and not body.strip() for attrs, body in scripts)
    assert not re.search(r"\son[a-z]+=", html)  # no onclick= style handlers either
    assert 'src="/stream.mjpg"' in html


def test_api_reading_is_the_last_accepted_reading(make_server: Callable[..., WebServer]):
    server = make_server()
    assert json.loads(request(server, "/api/reading")[2]) is None
    first = ReadingEvent(reading("123"), accepted=True)
    server.on_event(first)
    server.on_event(ReadingEvent(reading("999", confident=False), accepted=False, reason="unsure"))
    status, headers, body = request(server, "/api/reading")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert headers["cache-control"] == "no-store"
    data = json.loads(body)
    assert data["id"] == first.id
    assert data["value"] == "123"
    assert data["digits"] == [1, 2, 3]


def test_history_is_newest_first_and_bounded(make_server: Callable[..., WebServer]):
    server = make_server(history=3)
    events = [ReadingEvent(reading(str(10 + i)), accepted=True) for i in range(5)]
    for event in events:
        server.on_event(event)
    values = [r["value"] for r in json.loads(request(server, "/api/history")[2])]
    assert values == ["14", "13", "12"]


def test_api_status_reports_rates_latency_reconnects_uptime_and_model(
    make_server: Callable[..., WebServer],
):
    server = make_server(extra_status=lambda: {"mqtt": {"connected": False, "queued": 3}})
    server.on_status(
        Status(
            uptime_s=61.0,
            frames=120,
            fps=2.5,
            reconnects=2,
            latency_ms={"segment": 4.5, "classify": 2.25},
            model_version="ab12cd34",
        )
    )
    server.on_event(ReadingEvent(reading(), accepted=False))
    status, headers, body = request(server, "/api/status")
    assert status == 200 and headers["cache-control"] == "no-store"
    data = json.loads(body)
    assert data["fps"] == 2.5
    assert data["latency_ms"] == {"segment": 4.5, "classify": 2.25}
    assert data["reconnects"] == 2
    assert data["uptime_s"] == 61.0
    assert data["model_version"] == "ab12cd34"
    assert data["readings"] == {"accepted": 0, "rejected": 1}
    assert data["mqtt"] == {"connected": False, "queued": 3}


def test_snapshot_is_a_jpeg_with_the_reading_drawn_on_it(make_server: Callable[..., WebServer]):
    server = make_server(roi=ROI)
    assert request(server, "/api/snapshot.jpg")[0] == 503  # no frame yet
    server.on_frame(frame(40), reading("42"))
    status, headers, body = request(server, "/api/snapshot.jpg")
    assert status == 200
    assert headers["content-type"] == "image/jpeg"
    assert headers["cache-control"] == "no-store"
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (120, 160, 3)
    # The first digit's box edge is drawn in green over the flat grey frame.
    b, g, r = (int(v) for v in image[55, 20])
    assert g > 100 and g > b + 50 and g > r + 50
    # The ROI's left edge is drawn too.
    assert abs(int(image[60, 4][2]) - 40) > 60


def test_frames_faster_than_the_preview_rate_are_not_kept(make_server: Callable[..., WebServer]):
    server = make_server(preview_fps=0.5)
    server.on_frame(frame(250), None)
    server.on_frame(frame(5), None)  # within 2 s of the first: dropped, never copied or encoded
    body = request(server, "/api/snapshot.jpg")[2]
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert image.mean() > 200


@pytest.mark.parametrize("shape", [(120, 160), (120, 160, 4)])
def test_grey_and_four_channel_frames_make_a_preview(
    make_server: Callable[..., WebServer], shape: tuple[int, ...]
):
    server = make_server(roi=ROI)
    server.on_frame(np.full(shape, 90, np.uint8), None)
    status, _, body = request(server, "/api/snapshot.jpg")
    assert status == 200
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (120, 160, 3)


class StreamReader:
    """Reads an MJPEG response from a socket, keeping what it has read between calls."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.data = b""

    def head(self) -> bytes:
        return self.data.partition(b"\r\n\r\n")[0]

    def parts(self) -> list[bytes]:
        """Complete JPEG parts: those already followed by the next boundary."""
        rest = self.data.partition(b"\r\n\r\n")[2]
        pieces = rest.split(b"--" + BOUNDARY.encode() + b"\r\nContent-Type: image/jpeg\r\n\r\n")
        return [p.removesuffix(b"\r\n") for p in pieces[1:-1]]

    def wait_parts(self, count: int, timeout: float = 5.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(self.parts()) < count:
            assert time.monotonic() < deadline, "stream did not deliver frames in time"
            self.data += self.sock.recv(65536)
        return self.parts()


def test_mjpeg_stream_sends_each_new_frame(make_server: Callable[..., WebServer]):
    server = make_server()
    server.on_frame(frame(30), reading("7"))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        stream = StreamReader(s)
        stream.wait_parts(1)
        assert b"multipart/x-mixed-replace" in stream.head()
        assert b"Cache-Control: no-store" in stream.head()
        time.sleep(0.06)  # past 1 / preview_fps
        server.on_frame(frame(220), reading("8"))
        parts = stream.wait_parts(2)
    assert all(p.startswith(b"\xff\xd8") and p.endswith(b"\xff\xd9") for p in parts)
    means = [cv2.imdecode(np.frombuffer(p, np.uint8), cv2.IMREAD_GRAYSCALE).mean() for p in parts]
    assert means[0] < 100 < means[1]


def test_close_ends_open_streams_within_a_second(make_server: Callable[..., WebServer]):
    server = make_server()
    server.on_frame(frame(), None)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        StreamReader(s).wait_parts(1)
        started = time.monotonic()
        server.close()
        assert time.monotonic() - started < 1.5
        s.settimeout(2)
        while s.recv(65536):  # the server side is closed: recv reaches end of stream
            pass
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def test_metrics_are_valid_prometheus_text(make_server: Callable[..., WebServer]):
    server = make_server()
    server.on_status(Status(frames=50, fps=3.0, latency_ms={"classify": 2.0}, model_version='a"b'))
    server.on_event(ReadingEvent(reading(), accepted=True))
    server.on_event(ReadingEvent(reading(), accepted=False))
    server.on_event(ReadingEvent(reading(), accepted=False))
    status, headers, body = request(server, "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    assert text.endswith("\n")
    sample = re.compile(r'^([a-z_]+)(\{([a-z_]+="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+]+|NaN)$')
    declared: dict[str, str] = {}
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge")
            declared[name] = kind
            continue
        m = sample.match(line)
        assert m, f"not a sample line: {line!r}"
        assert m.group(1) in declared, f"sample before its TYPE: {line!r}"
        values[line.rsplit(" ", 1)[0]] = float(m.group(4))
    assert all(name.endswith("_total") for name, k in declared.items() if k == "counter")
    assert values["digit_reader_frames_total"] == 50
    assert values['digit_reader_readings_total{result="accepted"}'] == 1
    assert values['digit_reader_readings_total{result="rejected"}'] == 2
    assert values['digit_reader_stage_latency_seconds{stage="classify"}'] == 0.002
    assert values['digit_reader_model_info{version="a\\"b"}'] == 1


def test_trigger_post_is_accepted_and_calls_back(make_server: Callable[..., WebServer]):
    calls = Calls()
    server = make_server(on_trigger=calls)
    status, _, body = request(server, "/api/trigger", "POST", b"")
    assert status == 202
    assert json.loads(body) == {"accepted": True}
    assert calls.count == 1
    assert request(server, "/api/trigger")[0] == 404  # GET does not trigger
    assert calls.count == 1


def test_healthz_answers_ok(make_server: Callable[..., WebServer]):
    status, _, body = request(make_server(), "/healthz")
    assert (status, body) == (200, b"ok\n")


# -- hostile or broken requests -----------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/../etc/passwd",
        "/%2e%2e/device/web.py",
        "/web/index.html",
        "/index.html/../../pyproject.toml",
        "//etc/passwd",
        "/app.js/",
        "/login.html",
        "/api/",
    ],
)
def test_paths_outside_the_whitelist_are_404(make_server: Callable[..., WebServer], path: str):
    status, _, body = request(make_server(), path)
    assert status == 404
    assert b"[project]" not in body and b"root:" not in body


def test_oversized_body_is_413_and_the_server_keeps_serving(
    make_server: Callable[..., WebServer],
):
    calls = Calls()
    server = make_server(on_trigger=calls)
    status, _, _ = request(server, "/api/trigger", "POST", b"x" * (MAX_BODY_BYTES + 1))
    assert status == 413
    head = raw(
        server, b"POST /api/trigger HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -5\r\n\r\n"
    )
    assert head.startswith(b"HTTP/1.0 400")
    head = raw(
        server, b"POST /api/trigger HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 9e9\r\n\r\n"
    )
    assert head.startswith(b"HTTP/1.0 400")
    assert calls.count == 0
    assert request(server, "/healthz")[0] == 200


def test_malformed_requests_get_4xx_not_a_crash(make_server: Callable[..., WebServer]):
    server = make_server()
    assert raw(server, b"\x16\x03\x01\x02\x00garbage\r\n\r\n").startswith(b"HTTP/1.0 400")
    assert raw(server, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.0 414")
    many = b"".join(b"X-%d: y\r\n" % i for i in range(150))
    assert raw(server, b"GET / HTTP/1.1\r\n" + many + b"\r\n").startswith(b"HTTP/1.0 431")
    assert raw(server, b"DELETE / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.0 501")
    assert request(server, "/healthz")[0] == 200


def test_a_silent_client_does_not_block_others(make_server: Callable[..., WebServer]):
    server = make_server()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as idle:
        idle.sendall(b"GET / HTTP/1.1\r\n")  # never finishes its request
        started = time.monotonic()
        assert request(server, "/healthz")[0] == 200
        assert time.monotonic() - started < 1


def test_foreign_host_header_is_refused_without_a_token(make_server: Callable[..., WebServer]):
    # A DNS-rebinding page would send its own host name; it must not read the API.
    server = make_server()
    status, _, _ = request(server, "/api/reading", headers={"Host": "evil.example:8080"})
    assert status == 403
    assert request(server, "/api/reading", headers={"Host": "localhost:8080"})[0] == 200


def test_cross_origin_post_is_refused(make_server: Callable[..., WebServer]):
    calls = Calls()
    server = make_server(on_trigger=calls)
    for origin in ("http://evil.example", "null", f"http://127.0.0.1:{server.port + 1}"):
        headers = {"Origin": origin, "Content-Length": "0"}
        assert request(server, "/api/trigger", "POST", b"", headers)[0] == 403
    same = {"Origin": f"http://127.0.0.1:{server.port}", "Content-Length": "0"}
    assert request(server, "/api/trigger", "POST", b"", same)[0] == 202
    assert calls.count == 1


# -- token --------------------------------------------------------------------------------------


def test_non_loopback_address_needs_a_token(make_server: Callable[..., WebServer]):
    with pytest.raises(OutputError, match=r"web\.host is 0\.0\.0\.0.*web\.token_file"):
        make_server(host="0.0.0.0")


def test_short_or_missing_token_file_is_refused(tmp_path: Path):
    short = tmp_path / "short"
    short.write_text("abc\n")
    cfg = replace(WebConfig(), port=free_port(), token_file=str(short))
    with pytest.raises(OutputError, match="too short"):
        WebServer(cfg, Calls())
    with pytest.raises(OutputError, match="cannot read the web token file"):
        WebServer(replace(cfg, token_file=str(tmp_path / "absent")), Calls())


def test_busy_port_is_a_clear_error(make_server: Callable[..., WebServer]):
    server = make_server()
    with pytest.raises(OutputError, match=rf"cannot listen on 127\.0\.0\.1:{server.port}"):
        make_server(port=server.port)


@pytest.mark.parametrize(
    "path", ["/", "/app.js", "/api/reading", "/api/status", "/api/snapshot.jpg", "/metrics",
             "/stream.mjpg"],
)  # fmt: skip
def test_with_a_token_every_route_needs_it(make_server: Callable[..., WebServer], path: str):
    server = make_server(token=TOKEN)
    server.on_frame(frame(), None)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Cookie": f"{SESSION_COOKIE}=forged"}):
        status, _, body = request(server, path, headers=headers)
        assert status == 401, (path, headers)
        assert b"wrong" not in body and TOKEN.encode() not in body
    status, _, _ = request(server, path, "HEAD", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200


def test_healthz_and_login_work_without_the_token(make_server: Callable[..., WebServer]):
    server = make_server(token=TOKEN)
    assert request(server, "/healthz")[0] == 200
    status, _, body = request(server, "/login")
    assert status == 200 and b'name="token"' in body


def test_unauthenticated_page_request_gets_the_login_form(make_server: Callable[..., WebServer]):
    status, _, body = request(make_server(token=TOKEN), "/")
    assert status == 401
    assert b'<form method="post" action="/login">' in body


def test_login_sets_an_httponly_strict_cookie_that_opens_the_api(
    make_server: Callable[..., WebServer],
):
    server = make_server(token=TOKEN)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, headers, _ = request(server, "/login", "POST", b"token=nope", form)
    assert status == 401 and "set-cookie" not in headers
    status, headers, _ = request(server, "/login", "POST", f"token={TOKEN}".encode(), form)
    assert status == 303 and headers["location"] == "/"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert TOKEN not in cookie  # the cookie is derived from the token, not the token itself
    session = cookie.split(";")[0]
    assert request(server, "/api/status", headers={"Cookie": session})[0] == 200


def test_trigger_with_a_token_needs_it(make_server: Callable[..., WebServer]):
    calls = Calls()
    server = make_server(token=TOKEN, on_trigger=calls)
    assert request(server, "/api/trigger", "POST", b"")[0] == 401
    assert calls.count == 0
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert request(server, "/api/trigger", "POST", b"", auth)[0] == 202
    assert calls.count == 1
