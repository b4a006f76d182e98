"""The local web page and JSON API: live annotated preview, last readings, status, metrics, trigger.

A stdlib ``ThreadingHTTPServer`` on a daemon thread. It listens on 127.0.0.1 by default; any
other address needs an access token (``web.token_file``), and with a token every route except
``/healthz``, ``/login`` and ``/style.css`` needs it, as a ``Bearer`` header or the cookie the login
form sets. Only a fixed set of routes exists (no file-system paths), requests are bounded in size
and time, and every response carries restrictive security headers.

Routes: ``/`` page, ``/stream.mjpg`` MJPEG preview, ``/api/reading`` last accepted reading,
``/api/history`` recent accepted readings, ``/api/status``, ``/api/snapshot.jpg``, ``/healthz``,
``/metrics`` (Prometheus text), ``POST /api/trigger`` (202) and ``GET/POST /login``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np
import numpy.typing as npt

from device.annotate import ROI_COLOUR, annotate
from device.errors import OutputError
from device.events import ReadingEvent, Status
from device.lifecycle import Closeable
from device.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from device.metrics import Metric, render
from device.reading import Box, Reading

if TYPE_CHECKING:
    from device.config import WebConfig

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "web"
# The only files served; the request path is looked up here, never joined onto a directory.
STATIC_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
LOGIN_PAGE = "login.html"
# Reachable without the token: the login form needs its stylesheet, monitors need /healthz.
PUBLIC_PATHS = frozenset({"/healthz", "/login", "/style.css"})

MAX_BODY_BYTES = 4096  # a login form or an empty trigger POST; anything bigger is refused
REQUEST_TIMEOUT_S = 10.0  # a client that stalls mid-request is dropped (slowloris)
MAX_CONNECTIONS = 32  # concurrent connections; more are closed at once
MAX_STREAMS = 4  # concurrent MJPEG viewers: each one costs a JPEG encode per preview frame
CLOSE_TIMEOUT_S = 1.0
PREVIEW_MAX_WIDTH = 960  # larger frames are scaled down for the preview
JPEG_QUALITY = 80
FAILED_LOGIN_DELAY_S = 0.2  # slows down guessing without locking anyone out
SESSION_COOKIE = "dr_session"
BOUNDARY = "digitreaderframe"

SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    (
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "object-src 'none'",
    ),
    ("Cache-Control", "no-store"),
)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost' (names are not resolved: unknown = exposed)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_token(path: str) -> str:
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as e:
        raise OutputError(
            f"cannot read the web token file {path} ({e.strerror}); create it (mode 600) with "
            "a long random token, e.g. `openssl rand -hex 24 > FILE`"
        ) from e
    if len(token) < 16:
        raise OutputError(
            f"the web token in {path} is {'empty' if not token else 'too short'}; write at least "
            "16 random characters, e.g. `openssl rand -hex 24 > FILE`"
        )
    with contextlib.suppress(OSError):
        if os.stat(path).st_mode & 0o077:
            logger.warning("web token file %s is readable by other users; chmod 600 it", path)
    return token


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client must never keep the daemon from exiting

    def __init__(self, address: tuple[str, int], app: WebServer) -> None:
        self.app = app
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The stdlib prints tracebacks to stderr; a client hanging up is routine, not an error.
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            logger.debug("web: client %s went away (%s)", client_address, exc)
        else:
            logger.exception("web: error while answering %s", client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class WebServer(Closeable):
    """An ``Output`` serving the status page and API.

    The constructor reads the token, binds the socket (so a busy port or a missing token is an
    error at start) and, unless ``autostart=False``, starts serving on a daemon thread.
    ``roi`` (x, y, w, h) is outlined on the preview; ``extra_status`` adds sections (e.g.
    ``{"mqtt": mqtt.health()}``) to ``/api/status`` and the page.
    """

    def __init__(
        self,
        config: WebConfig,
        on_trigger: Callable[[], None],
        *,
        roi: Box | None = None,
        extra_status: Callable[[], dict[str, Any]] | None = None,
        autostart: bool = True,
    ) -> None:
        self.config = config
        self._on_trigger = on_trigger
        self._roi = roi
        self._extra_status = extra_status
        self.token: str | None = read_token(config.token_file) if config.token_file else None
        if self.token is None and not is_loopback(config.host):
            raise OutputError(
                f"web.host is {config.host}, which other machines can reach; set web.token_file "
                "to a file holding an access token, or set web.host to 127.0.0.1"
            )
        self.session = (
            hmac.new(self.token.encode(), b"digit-reader web session", hashlib.sha256).hexdigest()
            if self.token
            else None
        )
        self._static: dict[str, bytes] = {}
        for name in {name for name, _ in STATIC_FILES.values()} | {LOGIN_PAGE}:
            try:
                self._static[name] = (STATIC_DIR / name).read_bytes()
            except OSError as e:
                raise OutputError(
                    f"the web page file {STATIC_DIR / name} is missing ({e.strerror}); "
                    "reinstall the package"
                ) from e

        self._lock = threading.Lock()
        self._encode_lock = threading.Lock()
        self.closing = threading.Event()
        self._started_at = time.time()
        self._status: Status | None = None
        self._status_at = 0.0
        self._last: ReadingEvent | None = None
        self._history: deque[dict[str, Any]] = deque(maxlen=config.history)
        self._accepted = 0
        self._rejected = 0
        self._triggers = 0
        self._frame: npt.NDArray[np.uint8] | None = None
        self._frame_reading: Reading | None = None
        self._frame_seq = 0
        self._frame_at = 0.0
        self._jpeg: bytes | None = None
        self._jpeg_seq = -1
        self._streams: set[socket.socket] = set()
        self._thread: threading.Thread | None = None
        self._closed = False
        try:
            self._server = _Server((config.host, config.port), self)
        except OSError as e:
            raise OutputError(
                f"cannot listen on {config.host}:{config.port} ({e.strerror}); pick another "
                "web.port or stop the program using it"
            ) from e
        if autostart:
            self.start()

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = self.config.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Serve on a daemon thread (idempotent)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="web",
            daemon=True,
        )
        self._thread.start()
        logger.info(
            "web page on %s%s", self.url, " (token required)" if self.token else " (no token)"
        )

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop serving; open previews are cut, and this returns within about a second."""
        if self._closed:
            return
        self._closed = True
        self.closing.set()
        with self._lock:
            streams = list(self._streams)
        for sock in streams:
            # Unblocks a stream handler stuck writing to a client that stopped reading.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(CLOSE_TIMEOUT_S)
        self._server.server_close()

    # -- Output protocol ------------------------------------------------------------------

    def on_event(self, event: ReadingEvent) -> None:
        with self._lock:
            if event.accepted:
                self._accepted += 1
                self._last = event
                self._history.appendleft(event.to_dict())
            else:
                self._rejected += 1

    def on_status(self, status: Status) -> None:
        with self._lock:
            self._status = status
            self._status_at = time.monotonic()

    def on_frame(self, frame: npt.NDArray[np.uint8], reading: Reading | None) -> None:
        now = time.monotonic()
        # Keep only what the preview can show: the copy (the caller may reuse its buffer) and
        # the later JPEG encode happen at preview_fps at most, not at camera rate.
        if now - self._frame_at < 1.0 / self.config.preview_fps:
            return
        copy = np.array(frame, dtype=np.uint8, copy=True)
        with self._lock:
            self._frame = copy
            self._frame_reading = reading
            self._frame_seq += 1
            self._frame_at = now

    # -- data for the handlers ------------------------------------------------------------

    def preview_jpeg(self) -> tuple[bytes | None, int]:
        """The newest frame, annotated and JPEG-encoded (cached per frame), and its number."""
        with self._encode_lock:
            with self._lock:
                frame, reading, seq = self._frame, self._frame_reading, self._frame_seq
                if seq == self._jpeg_seq:
                    return self._jpeg, seq
            if frame is None:
                return None, 0
            jpeg = self._encode(frame, reading)
            with self._lock:
                self._jpeg, self._jpeg_seq = jpeg, seq
            return jpeg, seq

    def _encode(self, frame: npt.NDArray[np.uint8], reading: Reading | None) -> bytes | None:
        if reading is not None:
            image = annotate(frame, reading, roi=self._roi)
        else:
            # Grey frames become BGR; picamera2's XRGB frames lose the padding channel.
            if frame.ndim == 2:
                image = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
            else:
                image = frame[:, :, :3].copy()
            if self._roi is not None:
                x, y, w, h = self._roi
                cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), ROI_COLOUR, 2)
        if image.shape[1] > PREVIEW_MAX_WIDTH:
            scale = PREVIEW_MAX_WIDTH / image.shape[1]
            size = (PREVIEW_MAX_WIDTH, max(1, round(image.shape[0] * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            logger.warning("could not encode a preview frame of shape %s", frame.shape)
            return None
        return bytes(buf)

    def last_reading(self) -> dict[str, Any] | None:
        with self._lock:
            return self._last.to_dict() if self._last else None

    def history(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._history)

    def status(self) -> dict[str, Any]:
        with self._lock:
            status = self._status
            age = time.monotonic() - self._status_at if status else None
            data: dict[str, Any] = status.to_dict() if status else {}
            data["status_age_s"] = round(age, 1) if age is not None else None
            data["readings"] = {"accepted": self._accepted, "rejected": self._rejected}
            data["web"] = {
                "uptime_s": round(time.time() - self._started_at, 1),
                "streams": len(self._streams),
                "triggers": self._triggers,
            }
        if self._extra_status is not None:
            try:
                data.update(self._extra_status())
            except Exception:
                # A broken status source must not take the page down with it.
                logger.exception("web: extra status source failed")
        return data

    def metrics(self) -> str:
        with self._lock:
            status = self._status or Status(started_at=self._started_at)
            accepted, rejected = self._accepted, self._rejected
            streams, triggers = len(self._streams), self._triggers
            last_time = self._last.time if self._last else None
        m = [
            Metric("digit_reader_uptime_seconds", "gauge", "Seconds since the daemon started.").add(
                status.uptime_s
            ),
            Metric("digit_reader_frames_total", "counter", "Frames read from the camera.").add(
                status.frames
            ),
            Metric("digit_reader_fps", "gauge", "Frames processed per second (running mean).").add(
                status.fps
            ),
            Metric(
                "digit_reader_rejected_frames_total", "counter", "Frames that could not be read."
            ).add(status.rejected_frames),
            Metric(
                "digit_reader_camera_reconnects_total", "counter", "Times the camera was reopened."
            ).add(status.reconnects),
            Metric("digit_reader_camera_ok", "gauge", "1 while the camera delivers frames.").add(
                1.0 if status.camera_ok else 0.0
            ),
            Metric("digit_reader_readings_total", "counter", "Reading events by verdict.")
            .add(accepted, result="accepted")
            .add(rejected, result="rejected"),
            Metric("digit_reader_triggers_total", "counter", "Read-now requests from the web.").add(
                triggers
            ),
            Metric("digit_reader_web_streams", "gauge", "Open MJPEG preview streams.").add(streams),
            Metric("digit_reader_model_info", "gauge", "The loaded model (sha256 prefix).").add(
                1, version=status.model_version or "unknown"
            ),
        ]
        latency = Metric(
            "digit_reader_stage_latency_seconds", "gauge", "Mean time per pipeline stage."
        )
        for stage, ms in sorted(status.latency_ms.items()):
            latency.add(ms / 1000.0, stage=stage)
        m.append(latency)
        if last_time is not None:
            m.append(
                Metric(
                    "digit_reader_last_reading_info", "gauge", "Time of the last accepted reading."
                ).add(1, time=last_time)
            )
        return render(m)

    def trigger(self) -> None:
        with self._lock:
            self._triggers += 1
        self._on_trigger()

    def static(self, name: str) -> bytes:
        return self._static[name]

    def add_stream(self, sock: socket.socket) -> bool:
        with self._lock:
            if len(self._streams) >= MAX_STREAMS or self.closing.is_set():
                return False
            self._streams.add(sock)
            return True

    def remove_stream(self, sock: socket.socket) -> None:
        with self._lock:
            self._streams.discard(sock)


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class _Handler(BaseHTTPRequestHandler):
    server_version = "digit-reader"
    sys_version = ""
    timeout = REQUEST_TIMEOUT_S
    # Garbage requests still get a status line (the stdlib default, HTTP/0.9, sends none).
    default_request_version = "HTTP/1.0"

    @property
    def app(self) -> WebServer:
        return cast(_Server, self.server).app

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("web %s: " + format, self.address_string(), *args)

    def end_headers(self) -> None:
        for name, value in SECURITY_HEADERS:
            self.send_header(name, value)
        super().end_headers()

    # -- responses ------------------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _text(self, status: int, text: str) -> None:
        self._send(status, text.encode(), "text/plain; charset=utf-8")

    def _unauthorized(self, path: str) -> None:
        # No detail about what was wrong; browsers asking for the page get the login form.
        headers = (("WWW-Authenticate", 'Bearer realm="digit-reader"'),)
        if path in ("/", "/index.html"):
            self._send(401, self.app.static(LOGIN_PAGE), "text/html; charset=utf-8", headers)
        else:
            self._send(401, b"unauthorized\n", "text/plain; charset=utf-8", headers)

    # -- checks ---------------------------------------------------------------------------

    def _authorized(self) -> bool:
        app = self.app
        if app.token is None or app.session is None:
            return True
        auth = self.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            return _same(auth[7:].strip(), app.token)
        try:
            cookie = SimpleCookie(self.headers.get("Cookie", ""))
        except CookieError:
            return False
        morsel = cookie.get(SESSION_COOKIE)
        return morsel is not None and _same(morsel.value, app.session)

    def _host_allowed(self) -> bool:
        """Without a token, only loopback Host names: a DNS-rebinding page cannot read the API."""
        if self.app.token is not None:
            return True
        host = self.headers.get("Host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return not host or is_loopback(name) or name == self.app.config.host

    def _same_origin(self) -> bool:
        """A POST with an Origin header must come from this server's own page ("null" is not)."""
        origin = self.headers.get("Origin")
        if origin is None:
            return True
        return urlsplit(origin).netloc == self.headers.get("Host", "")

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering 411/400/413 for a bad or big one."""
        raw = self.headers.get("Content-Length")
        if raw is None:
            if self.headers.get("Transfer-Encoding"):
                self.close_connection = True
                self._text(411, "a Content-Length is required\n")
                return None
            return b""
        try:
            length = int(raw)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._text(400, "bad Content-Length\n")
            return None
        if length > MAX_BODY_BYTES:
            self.close_connection = True  # do not read (or wait for) the oversized body
            self._text(413, f"request body over {MAX_BODY_BYTES} bytes\n")
            return None
        return self.rfile.read(length)

    # -- methods --------------------------------------------------------------------------

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if not self._host_allowed():
            self._text(403, "forbidden\n")
            return
        if path == "/healthz":
            self._text(200, "ok\n")
            return
        if path == "/login":
            if self.app.token is None:
                self._send(303, b"", "text/plain", (("Location", "/"),))
            else:
                self._send(200, self.app.static(LOGIN_PAGE), "text/html; charset=utf-8")
            return
        if path not in PUBLIC_PATHS and not self._authorized():
            self._unauthorized(path)
            return
        if path in STATIC_FILES:
            name, content_type = STATIC_FILES[path]
            self._send(200, self.app.static(name), content_type)
        elif path == "/api/reading":
            self._json(200, self.app.last_reading())
        elif path == "/api/history":
            self._json(200, self.app.history())
        elif path == "/api/status":
            self._json(200, self.app.status())
        elif path == "/api/snapshot.jpg":
            jpeg, _ = self.app.preview_jpeg()
            if jpeg is None:
                self._text(503, "no frame yet\n")
            else:
                self._send(200, jpeg, "image/jpeg")
        elif path == "/metrics":
            self._send(200, self.app.metrics().encode(), METRICS_CONTENT_TYPE)
        elif path == "/stream.mjpg":
            self._stream()
        else:
            self._text(404, "not found\n")

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if not self._host_allowed():
            self.close_connection = True
            self._text(403, "forbidden\n")
            return
        if path == "/login":
            # No Origin check here: with Referrer-Policy no-referrer the browser sends
            # "Origin: null" for our own form, and a forged login only yields the same session.
            self._login()
            return
        if not self._same_origin():
            self.close_connection = True
            self._text(403, "forbidden\n")
            return
        if path != "/api/trigger":
            self.close_connection = True
            self._text(404, "not found\n")
            return
        if not self._authorized():
            self.close_connection = True
            self._unauthorized(path)
            return
        if self._read_body() is None:
            return
        self.app.trigger()
        self._json(202, {"accepted": True})

    def _login(self) -> None:
        app = self.app
        body = self._read_body()
        if body is None:
            return
        if app.token is None or app.session is None:
            self._send(303, b"", "text/plain", (("Location", "/"),))
            return
        try:
            fields = parse_qs(body.decode("utf-8"), max_num_fields=4)
        except (UnicodeDecodeError, ValueError):
            fields = {}
        candidate = (fields.get("token") or [""])[0].strip()
        if not _same(candidate, app.token):
            time.sleep(FAILED_LOGIN_DELAY_S)
            self._unauthorized("/")
            return
        cookie = f"{SESSION_COOKIE}={app.session}; HttpOnly; SameSite=Strict; Path=/"
        self._send(303, b"", "text/plain", (("Location", "/"), ("Set-Cookie", cookie)))

    def _stream(self) -> None:
        app = self.app
        sock = cast(socket.socket, self.connection)
        if not app.add_stream(sock):
            self._text(503, "too many preview streams\n")
            return
        try:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command == "HEAD":
                return
            # Each image is followed at once by the next part's boundary and headers: Chromium
            # shows a part only when the next one has begun, so sending the headers early (and
            # hence without a Content-Length) avoids a one-frame lag.
            part_head = f"\r\n--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n\r\n".encode()
            self.wfile.write(part_head[2:])
            interval = 1.0 / app.config.preview_fps
            sent = -1
            while not app.closing.is_set():
                jpeg, seq = app.preview_jpeg()
                if jpeg is not None and seq != sent:
                    self.wfile.write(jpeg + part_head)
                    self.wfile.flush()
                    sent = seq
                app.closing.wait(interval)
        except OSError:
            pass  # the viewer went away (or close() cut the stream): nothing to report
        finally:
            self.close_connection = True
            app.remove_stream(sock)
