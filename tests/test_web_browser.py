"""The status page in headless Chromium: the preview loads, readings show, the token form works.

Set DIGIT_READER_WEB_SCREENSHOT=reports/web.png to refresh the README's screenshot.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fixtures_mqtt import free_port

from device.config import WebConfig
from device.events import ReadingEvent, Status
from device.reading import DigitResult, Reading
from device.web import WebServer

CHROMIUM = next(
    (p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and os.path.exists(p)),
    None,
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)"
)
TOKEN = "browser-test-token-0123456789"
TIMEOUT_MS = 10_000
ROI = (40, 40, 560, 220)


def meter_frame() -> tuple[np.ndarray, Reading]:
    """A paper-coloured frame with a handwritten-looking number and its reading."""
    img = np.full((300, 640, 3), (205, 215, 220), np.uint8)
    digits = []
    for i, d in enumerate("2718"):
        x = 90 + 120 * i
        cv2.putText(img, d, (x, 215), cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, 5, (40, 30, 30), 9)
        digits.append(DigitResult(int(d), 0.991 - 0.02 * i, (x - 8, 90, 100, 140)))
    reading = Reading("2718", tuple(digits), True, timings_ms={"segment": 3.1, "classify": 1.9})
    return img, reading


def feed(server: WebServer) -> ReadingEvent:
    img, reading = meter_frame()
    server.on_frame(img, reading)
    for value in ("2716", "2717"):
        server.on_event(ReadingEvent(replace(reading, text=value), accepted=True))
    event = ReadingEvent(reading, accepted=True)
    server.on_event(event)
    server.on_status(
        Status(
            uptime_s=3725,
            frames=11170,
            fps=3.0,
            latency_ms={"capture": 4.2, "segment": 3.1, "normalize": 0.6, "classify": 1.9},
            model_version="5f3a9c1e",
        )
    )
    return event


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-dev-shm-usage",
            ],
            timeout=30_000,
        )
        yield b
        b.close()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Any]:
    servers: list[WebServer] = []

    def make(token: str | None = None, **kw: Any) -> WebServer:
        cfg = replace(WebConfig(), enabled=True, port=free_port(), preview_fps=5.0)
        if token:
            (tmp_path / "token").write_text(token)
            (tmp_path / "token").chmod(0o600)
            cfg = replace(cfg, token_file=str(tmp_path / "token"))
        server = WebServer(cfg, kw.pop("on_trigger", lambda: None), roi=ROI, **kw)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 720})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    pg.console_messages = []
    pg.on("console", lambda msg: pg.console_messages.append(msg.text))
    yield pg
    context.close()


def wait_for_preview(page: Any) -> int:
    page.wait_for_function("() => document.getElementById('preview').naturalWidth > 0")
    return int(page.evaluate("() => document.getElementById('preview').naturalWidth"))


def test_page_shows_the_live_preview_and_the_last_reading(
    make_server: Any, page: Any, tmp_path: Path
) -> None:
    server = make_server(
        extra_status=lambda: {"mqtt": {"connected": True, "queued": 0, "reconnects": 0}}
    )
    feed(server)
    # The MJPEG image never finishes loading, so wait for the DOM, not the load event.
    page.goto(server.url + "/", wait_until="domcontentloaded")
    assert wait_for_preview(page) == 640
    page.wait_for_function("() => document.getElementById('value').textContent === '2718'")
    history = page.locator("#history li").all_text_contents()
    assert [h.split(" ")[0] for h in history] == ["2718", "2717", "2716"]
    page.wait_for_function("() => document.getElementById('health').textContent === 'reading'")
    status_text = page.locator("#status").inner_text()
    assert "5f3a9c1e" in status_text and "classify" in status_text
    assert not [m for m in page.console_messages if "Content Security Policy" in m]
    shot = Path(os.environ.get("DIGIT_READER_WEB_SCREENSHOT") or tmp_path / "web.png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    tmp = shot.with_suffix(".tmp.png")
    page.screenshot(path=str(tmp), full_page=True)
    tmp.replace(shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_read_now_button_triggers_a_reading(make_server: Any, page: Any) -> None:
    calls: list[int] = []
    server = make_server(on_trigger=lambda: calls.append(1))
    feed(server)
    page.goto(server.url + "/", wait_until="domcontentloaded")
    page.click("#trigger")
    page.wait_for_function(
        "() => document.getElementById('trigger-result').textContent === 'requested'"
    )
    assert calls == [1]


def test_token_form_signs_in_and_opens_the_page(make_server: Any, page: Any) -> None:
    server = make_server(token=TOKEN)
    feed(server)
    response = page.goto(server.url + "/", wait_until="domcontentloaded")
    assert response.status == 401
    page.fill("#token", "not-the-token")
    page.click("button[type=submit]")
    page.wait_for_selector("#token")  # still the form
    assert page.locator("#preview").count() == 0

    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    assert wait_for_preview(page) == 640
    page.wait_for_function("() => document.getElementById('value').textContent === '2718'")
    cookies = page.context.cookies()
    assert len(cookies) == 1
    assert cookies[0]["httpOnly"] is True
    assert cookies[0]["sameSite"] == "Strict"
    assert TOKEN not in cookies[0]["value"]
