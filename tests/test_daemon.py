"""The daemon loop with fakes (clock, source, reader, outputs) and as a real process."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory
from mockpins import pin_states

from device.config import PROJECT_ROOT, Config, DaemonConfig, DecisionConfig, SourceConfig
from device.daemon import EXIT_CAMERA, EXIT_OK, Daemon
from device.decision import Decider
from device.errors import SourceEnded, SourceError
from device.events import ReadingEvent, Status
from device.leds import GpioLeds, LedsConfig, NullLeds
from device.outputs import FileOutput, StdoutOutput
from device.reading import DigitResult, Reading
from device.sdnotify import Notifier

# --- fakes ------------------------------------------------------------------------------------


class FakeClock:
    """Monotonic time that only moves when the test (or the daemon's wait) moves it."""

    def __init__(self) -> None:
        self.now = 100.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return False


def frame_for(code: int) -> np.ndarray:
    """A tiny frame whose first pixel says which reading the fake reader returns."""
    img = np.random.default_rng(code).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    img[0, 0, 0] = code
    return img


Step = np.ndarray | BaseException


class FakeSource:
    """Plays a script of frames and exceptions; advances the clock per read (a camera's pace)."""

    def __init__(self, steps: list[Step], clock: FakeClock, dt: float = 0.1) -> None:
        self.steps = steps
        self.clock = clock
        self.dt = dt
        self.closed = False

    def read(self) -> np.ndarray:
        assert not self.closed
        self.clock.now += self.dt
        if not self.steps:
            raise SourceEnded("fake: no more frames")
        step = self.steps.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step

    def close(self) -> None:
        self.closed = True


class Opener:
    """open_source factory: each call returns the next fake source or raises."""

    def __init__(self, clock: FakeClock, *sources: FakeSource | BaseException) -> None:
        self.clock = clock
        self.sources = list(sources)
        self.calls: list[float] = []
        self.opened: list[FakeSource] = []

    def __call__(self) -> FakeSource:
        self.calls.append(self.clock.now)
        item = self.sources.pop(0) if len(self.sources) > 1 else self.sources[0]
        if isinstance(item, BaseException):
            raise item
        self.opened.append(item)
        return item


def reading(text: str, confident: bool = True) -> Reading:
    digits = tuple(
        DigitResult(int(c), 0.99 if confident else 0.3, (5 * i, 2, 4, 8))
        for i, c in enumerate(text)
    )
    return Reading(
        text,
        digits,
        confident,
        "" if confident else "low confidence",
        timings_ms={"segment": 1.0, "classify": 2.0},
    )


class FakeReader:
    def __init__(self, table: dict[int, Reading | BaseException]) -> None:
        self.table = table

    def read(self, frame: np.ndarray) -> Reading:
        result = self.table[int(frame[0, 0, 0])]
        if isinstance(result, BaseException):
            raise result
        return result


EMPTY, R42, R43, UNSURE, BROKEN = 0, 1, 2, 3, 4
TABLE: dict[int, Reading | BaseException] = {
    EMPTY: Reading("", (), False, "no digits"),
    R42: reading("42"),
    R43: reading("43"),
    UNSURE: reading("8", confident=False),
    BROKEN: RuntimeError("segmenter exploded"),
}


class RecordingOutput:
    def __init__(self) -> None:
        self.events: list[ReadingEvent] = []
        self.statuses: list[Status] = []
        self.frames = 0
        self.closed = False

    def on_event(self, event: ReadingEvent) -> None:
        self.events.append(event)

    def on_status(self, status: Status) -> None:
        self.statuses.append(status)

    def on_frame(self, frame: np.ndarray, reading: Reading | None) -> None:
        self.frames += 1

    def close(self) -> None:
        self.closed = True


class RecordingNotifier(Notifier):
    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env or {})
        self.messages: list[str] = []

    def notify(self, message: str) -> bool:
        self.messages.append(message)
        return True


class RecordingLeds(NullLeds):
    def __init__(self) -> None:
        self.errors: list[bool] = []
        self.was_off = False

    def set_error(self, error: bool) -> None:
        self.errors.append(error)

    def off(self) -> None:
        self.was_off = True


def make_daemon(
    steps: list[Step] | None = None,
    *,
    opener: Opener | None = None,
    clock: FakeClock | None = None,
    kind: str = "recorded",
    leds: Any = None,
    outputs: list[Any] | None = None,
    notifier: RecordingNotifier | None = None,
    daemon_cfg: DaemonConfig | None = None,
    **kw: Any,
) -> tuple[Daemon, FakeClock, Opener, RecordingOutput]:
    clock = clock or FakeClock()
    opener = opener or Opener(clock, FakeSource(list(steps or []), clock))
    out = RecordingOutput()
    source_cfg = SourceConfig(kind=kind, path="x", uri="0")
    config = Config(source=source_cfg, daemon=daemon_cfg or DaemonConfig())
    daemon = Daemon(
        open_source=opener,
        reader=FakeReader(TABLE),
        decider=Decider(DecisionConfig(stable_k=2, stable_n=3, clear_after_s=0.5), clock),
        leds=leds if leds is not None else RecordingLeds(),
        outputs=[out, *(outputs or [])],
        notifier=notifier or RecordingNotifier(),
        config=config,
        clock=clock,
        wait=clock.wait,
        **kw,
    )
    return daemon, clock, opener, out


def frames(*codes: int) -> list[Step]:
    return [frame_for(c) for c in codes]


# --- the loop -----------------------------------------------------------------------------------


def test_loop_publishes_stable_readings_once_and_drives_leds(mock_factory: MockFactory) -> None:
    leds = GpioLeds(LedsConfig(green_hold_s=0.25))
    script = frames(EMPTY, R42, R42, R42, R42, UNSURE, UNSURE, EMPTY, R43, R43, EMPTY, EMPTY)
    daemon, _, opener, out = make_daemon(script, leds=leds)
    assert daemon.run() == EXIT_OK  # the recorded source ended
    leds.close()
    assert [(e.accepted, e.value) for e in out.events] == [(True, "42"), (True, "43")]
    assert out.frames == 12 and daemon.frames == 12
    assert opener.opened[0].closed
    # Green: on at the 2nd "42" (K=2), off 0.25 s later; on again for "43", off at the end.
    assert pin_states(mock_factory, 17) == [False, True, False, True, False]
    # Red while the unsure "8" is in view.
    assert pin_states(mock_factory, 27) == [False, True, False]
    assert pin_states(mock_factory, 22)[-1] is False  # status LED off after stop


def test_ready_once_after_first_frame_then_status_and_stopping() -> None:
    notifier = RecordingNotifier({"WATCHDOG_USEC": "1000000"})
    script = frames(*([R42] * 30))
    daemon, _, _, out = make_daemon(script, notifier=notifier)
    assert daemon.run() == EXIT_OK
    msgs = notifier.messages
    assert msgs.count("READY=1") == 1
    assert msgs.index("READY=1") < msgs.index("WATCHDOG=1")
    # 30 frames at 0.1 s = 3 s: a watchdog ping each 0.5 s, a status each 1 s.
    assert 5 <= msgs.count("WATCHDOG=1") <= 7
    statuses = [m for m in msgs if m.startswith("STATUS=")]
    assert 3 <= len(statuses) <= 4
    assert statuses[-1] == "STATUS=last reading 42, 10.0 fps"
    assert msgs[-1] == "STOPPING=1"
    assert out.statuses[-1].last_reading == "42"
    assert out.statuses[-1].latency_ms["classify"] == pytest.approx(2.0)
    assert daemon.ready_at is not None


def test_unprocessable_frame_is_counted_and_skipped() -> None:
    leds = RecordingLeds()
    daemon, _, _, out = make_daemon(frames(R42, BROKEN, R42, R42), leds=leds)
    assert daemon.run() == EXIT_OK
    assert daemon.rejected_frames == 1
    assert [e.value for e in out.events] == ["42"]
    assert leds.errors == [False]  # one bad frame is not an error state


def test_many_unprocessable_frames_light_the_error_pattern() -> None:
    leds = RecordingLeds()
    daemon, _, _, _ = make_daemon(frames(*([BROKEN] * 10), R42), leds=leds)
    assert daemon.run() == EXIT_OK
    assert daemon.rejected_frames == 10
    assert leds.errors == [False, True, False]


def test_max_frames_stops_cleanly() -> None:
    daemon, _, opener, _ = make_daemon(frames(*([R42] * 50)), max_frames=7)
    assert daemon.run() == EXIT_OK
    assert daemon.frames == 7 and opener.opened[0].closed


def test_stop_event_ends_the_loop_and_turns_leds_off() -> None:
    leds = RecordingLeds()
    daemon, _, _, _ = make_daemon(frames(*([R42] * 50)), leds=leds)
    original = daemon._reader.read

    def read_then_stop(frame: np.ndarray) -> Reading:
        if daemon.frames == 5:
            daemon.stop()
        return original(frame)

    daemon._reader.read = read_then_stop  # type: ignore[method-assign]
    assert daemon.run() == EXIT_OK
    assert daemon.frames == 5 and leds.was_off


def test_trigger_publishes_the_reading_in_view_again() -> None:
    daemon, _, _, out = make_daemon(frames(*([R42] * 10)))
    original = daemon._reader.read

    def read_and_trigger(frame: np.ndarray) -> Reading:
        if daemon.frames == 6:
            daemon.trigger()
        return original(frame)

    daemon._reader.read = read_and_trigger  # type: ignore[method-assign]
    daemon.run()
    assert [e.value for e in out.events] == ["42", "42"]


def test_full_disk_does_not_stop_readings_on_stdout() -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full to fake a full disk")
    stream = io.StringIO()
    outputs = [FileOutput("/dev/full"), StdoutOutput(stream)]
    daemon, _, _, _ = make_daemon(frames(R42, R42, EMPTY, R43, R43), outputs=outputs)
    assert daemon.run() == EXIT_OK
    assert [json.loads(line)["value"] for line in stream.getvalue().splitlines()] == ["42", "43"]


# --- camera faults ------------------------------------------------------------------------------


def test_camera_that_never_opens_backs_off_then_exits_3() -> None:
    clock = FakeClock()
    opener = Opener(clock, SourceError("no camera"))
    leds = RecordingLeds()
    cfg = DaemonConfig(give_up_after_s=30.0)
    daemon, _, _, _ = make_daemon(opener=opener, clock=clock, leds=leds, daemon_cfg=cfg)
    assert daemon.run() == EXIT_CAMERA
    tries = [round(t - 100.0, 3) for t in opener.calls]
    # 0.5 s, doubling, at most 10 s, and a last try exactly at the 30 s deadline.
    assert tries == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 25.5, 30.0]
    assert leds.errors == [False, True] and leds.was_off


def test_camera_that_fails_then_recovers_counts_a_reconnect() -> None:
    clock = FakeClock()
    first = FakeSource([*frames(R42, R42), SourceError("timeout")], clock)
    second = FakeSource(frames(R42, R43, R43), clock)
    opener = Opener(clock, first, SourceError("busy"), second)
    leds = RecordingLeds()
    daemon, _, _, out = make_daemon(opener=opener, clock=clock, leds=leds)
    assert daemon.run() == EXIT_OK
    assert daemon.reconnects == 1
    assert first.closed and second.closed
    assert leds.errors == [False, True, False]
    assert [e.value for e in out.events] == ["42", "43"]
    # Read fails at t=0.3: reopen after 0.5 s (busy), then after 1 s more (works).
    assert [round(t - 100.0, 3) for t in opener.calls] == [0.0, 0.8, 1.8]
    assert any(not s.camera_ok and s.error == "timeout" for s in out.statuses)


def test_frozen_camera_is_a_fault_after_stale_after_s() -> None:
    clock = FakeClock()
    frozen = FakeSource([frame_for(R42)] * 40, clock, dt=0.125)  # exact in binary
    live = FakeSource(frames(R43, R43), clock)
    opener = Opener(clock, frozen, live)
    cfg = DaemonConfig(stale_after_s=2.0)
    daemon, _, _, out = make_daemon(opener=opener, clock=clock, kind="opencv", daemon_cfg=cfg)
    assert daemon.run() == EXIT_OK
    assert frozen.closed and daemon.reconnects == 1
    # 2 s of identical frames at 8 fps (16), then the new camera's two.
    assert daemon.frames == 16 + 2
    assert [e.value for e in out.events] == ["42", "43"]


def test_recorded_frames_may_repeat_without_being_stale() -> None:
    daemon, _, _, _ = make_daemon(
        [frame_for(R42)] * 40, kind="recorded", daemon_cfg=DaemonConfig(stale_after_s=1.0)
    )
    assert daemon.run() == EXIT_OK
    assert daemon.frames == 40 and daemon.reconnects == 0


# --- the real daemon: main() and as a process -------------------------------------------------

MODEL = PROJECT_ROOT / "models" / "digits.tflite"
needs_model = pytest.mark.skipif(
    not MODEL.exists(), reason="models/digits.tflite is missing; run `make train convert`"
)


@pytest.fixture(scope="module")
def mnist_frames(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Six recorded 640x480 frames of three MNIST test digits each, dark ink on light paper."""
    import cv2

    from host.mnist import load_mnist

    data = load_mnist()
    folder = tmp_path_factory.mktemp("frames")
    rng = np.random.default_rng(3)
    texts = []
    for k in range(6):
        img = np.full((480, 640, 3), 230, np.uint8)
        picks = rng.integers(0, len(data.x_test), 3)
        for j, i in enumerate(picks):
            digit = cv2.resize(255 - data.x_test[i], (84, 84), interpolation=cv2.INTER_CUBIC)
            img[190:274, 200 + j * 90 : 284 + j * 90] = np.minimum(digit, 230)[..., None]
        cv2.imwrite(str(folder / f"frame{k:02d}.png"), img)
        texts.append("".join(str(int(data.y_test[i])) for i in picks))
    return folder, texts


def write_config(tmp_path: Path, frames_dir: Path, extra: str = "") -> Path:
    path = tmp_path / "daemon.toml"
    path.write_text(
        f'[source]\nkind = "recorded"\npath = "{frames_dir}"\nrepeat = 4\nfps = 0\n'
        f"[leds]\ngreen_hold_s = 0.0\n[daemon]\nlog_interval_s = 0.5\n{extra}"
    )
    return path


@needs_model
def test_main_on_recorded_frames_prints_readings_and_blinks_green(
    mnist_frames: tuple[Path, list[str]],
    tmp_path: Path,
    mock_factory: MockFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from device.daemon import main

    folder, texts = mnist_frames
    events_file = tmp_path / "events.jsonl"
    saved = tmp_path / "saved"
    config = write_config(
        tmp_path, folder, f'[output]\nfile = "{events_file}"\nsave_frames = "{saved}"\n'
    )
    assert main(["--config", str(config)]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    values = [json.loads(line)["value"].replace(" ", "") for line in lines]
    # Every accepted reading is one of the frames' true numbers, and most frames are read.
    assert set(values) <= set(texts)
    assert len(values) >= 4
    filed = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert [e["value"].replace(" ", "") for e in filed if e["event"] == "reading"] == values
    assert len(list(saved.glob("*.jpg"))) == len(filed)
    # Green (hold 0): one on/off pair per accepted reading; everything off at the end.
    assert pin_states(mock_factory, 17) == [False] + [True, False] * len(values)
    assert pin_states(mock_factory, 27)[-1] is False
    assert pin_states(mock_factory, 22)[-1] is False


def run_daemon(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "device.daemon", *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env={**os.environ, "GPIOZERO_PIN_FACTORY": "mock", **(env or {})},
        timeout=120,
    )


def test_missing_model_is_one_fatal_sentence_and_exit_2(
    mnist_frames: tuple[Path, list[str]], tmp_path: Path
) -> None:
    folder, _ = mnist_frames
    missing = tmp_path / "nope.tflite"
    proc = run_daemon("--source", str(folder), "--model", str(missing))
    assert proc.returncode == 2
    fatal = [line for line in proc.stderr.splitlines() if "CRITICAL" in line]
    assert len(fatal) == 1 and str(missing) in fatal[0] and "make train convert" in fatal[0]
    assert "Traceback" not in proc.stderr


def test_unwritable_output_file_is_fatal_at_start(
    mnist_frames: tuple[Path, list[str]], tmp_path: Path
) -> None:
    folder, _ = mnist_frames
    blocker = tmp_path / "plain-file"
    blocker.write_text("")
    config = write_config(tmp_path, folder, f'[output]\nfile = "{blocker}/events.jsonl"\n')
    proc = run_daemon("--config", str(config))
    assert proc.returncode == 2
    assert "cannot write the event file" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""


@needs_model
def test_sigterm_stops_within_2_s_with_leds_off_and_stopping_sent(
    mnist_frames: tuple[Path, list[str]], tmp_path: Path
) -> None:
    folder, _ = mnist_frames
    config = write_config(tmp_path, folder)
    config.write_text(config.read_text().replace("fps = 0", "fps = 20\nloop = true"))
    sock_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(60)
    env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock", "NOTIFY_SOCKET": sock_path}
    proc = subprocess.Popen(
        [sys.executable, "-m", "device.daemon", "--config", str(config)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        messages = []
        while "READY=1" not in messages:
            messages.append(sock.recv(4096).decode())
        time.sleep(0.5)  # let it read a few frames
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
        took = time.monotonic() - sent
        sock.settimeout(0.5)
        with contextlib.suppress(TimeoutError):
            while True:
                messages.append(sock.recv(4096).decode())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        sock.close()
    assert proc.returncode == 0, stderr
    assert took <= 2.0
    assert messages[-1] == "STOPPING=1"
    assert "SIGTERM received; stopping" in stderr
    assert "LEDs off" in stderr.split("SIGTERM received")[1]


def test_enabled_mqtt_and_web_are_wired_with_the_trigger(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import types

    import device.daemon

    made: dict[str, Any] = {}

    class FakePublisher(RecordingOutput):
        def __init__(self, config: Any, on_trigger: Any, **kw: Any) -> None:
            super().__init__()
            made[type(config).__name__] = (self, on_trigger)

    monkeypatch.setitem(sys.modules, "device.mqtt", types.SimpleNamespace(MqttOutput=FakePublisher))
    monkeypatch.setitem(sys.modules, "device.web", types.SimpleNamespace(WebServer=FakePublisher))
    from device.config import MqttConfig, OutputConfig, WebConfig

    config = Config(
        output=OutputConfig(stdout=False),
        mqtt=MqttConfig(enabled=True),
        web=WebConfig(enabled=True),
    )
    fired: list[bool] = []
    with contextlib.ExitStack() as stack:
        outputs = device.daemon.build_outputs(config, stack, lambda: fired.append(True))
        assert [type(o) for o in outputs] == [FakePublisher, FakePublisher]
        assert set(made) == {"MqttConfig", "WebConfig"}
        made["WebConfig"][1]()
    assert fired == [True]
    assert all(publisher.closed for publisher, _ in made.values())


def test_disabled_publishers_are_not_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    import device.daemon

    monkeypatch.setitem(sys.modules, "device.mqtt", None)  # importing it would fail
    monkeypatch.setitem(sys.modules, "device.web", None)
    with contextlib.ExitStack() as stack:
        outputs = device.daemon.build_outputs(Config(), stack, lambda: None)
    assert [type(o).__name__ for o in outputs] == ["StdoutOutput"]


def test_memory_reports_the_anonymous_part_of_the_resident_memory() -> None:
    from device.daemon import memory_mb

    mem = memory_mb()
    # The anonymous pages are the process's own; the rest of its RSS is mapped libraries.
    assert 0 < mem["RssAnon"] < mem["VmRSS"] <= mem["VmHWM"]
