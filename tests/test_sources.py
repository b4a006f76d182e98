"""Tests for device.sources: recorded folders and videos, OpenCV stall/freeze detection, factory."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from device.errors import ConfigError, SourceEnded, SourceError
from device.sources import FrameSource, OpenCVSource, RecordedSource, open_source


def _frame(value: int, h: int = 48, w: int = 64) -> np.ndarray:
    img = np.full((h, w, 3), value, np.uint8)
    img[0, 0] = (value, 255 - value, 7)
    return img


def _write_png(path: Path, value: int) -> None:
    assert cv2.imwrite(str(path), _frame(value))


def _drain(source: FrameSource, limit: int = 100) -> list[np.ndarray]:
    frames = []
    for _ in range(limit):
        try:
            frames.append(source.read())
        except SourceEnded:
            return frames
    raise AssertionError("source never ended")


def test_recorded_folder_delivers_images_in_name_order_then_ends(tmp_path: Path) -> None:
    for name, value in [("b.png", 20), ("a.png", 10), ("c.bmp", 30)]:
        _write_png(tmp_path / name, value)
    with RecordedSource(tmp_path) as source:
        frames = _drain(source)
    assert [int(f[5, 5, 0]) for f in frames] == [10, 20, 30]
    assert all(f.dtype == np.uint8 and f.shape == (48, 64, 3) for f in frames)
    assert source.closed


def test_recorded_folder_skips_non_image_files_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _write_png(tmp_path / "frame_000000.png", 10)
    (tmp_path / "frame_000000.json").write_text("{}")  # a record.py sidecar: no warning
    (tmp_path / "notes.txt").write_text("not a frame")
    _write_png(tmp_path / "frame_000001.png", 20)
    with caplog.at_level(logging.WARNING, logger="device.sources"):
        source = RecordedSource(tmp_path)
    frames = _drain(source)
    assert [int(f[5, 5, 0]) for f in frames] == [10, 20]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "notes.txt" in warnings[0]
    assert "frame_000000.json" not in warnings[0]


def test_recorded_folder_skips_unreadable_images_but_keeps_going(tmp_path: Path) -> None:
    _write_png(tmp_path / "a.png", 10)
    (tmp_path / "b.png").write_bytes(b"garbage, not a png")
    _write_png(tmp_path / "c.png", 30)
    frames = _drain(RecordedSource(tmp_path))
    assert [int(f[5, 5, 0]) for f in frames] == [10, 30]


def test_recorded_folder_without_images_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(SourceError, match="no images"):
        RecordedSource(tmp_path)


def test_recorded_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="do not exist"):
        RecordedSource(tmp_path / "nope")


def test_recorded_loop_starts_again(tmp_path: Path) -> None:
    _write_png(tmp_path / "a.png", 10)
    _write_png(tmp_path / "b.png", 20)
    source = RecordedSource(tmp_path, loop=True)
    assert [int(source.read()[5, 5, 0]) for _ in range(5)] == [10, 20, 10, 20, 10]


def test_recorded_repeat_delivers_each_frame_several_times(tmp_path: Path) -> None:
    _write_png(tmp_path / "a.png", 10)
    _write_png(tmp_path / "b.png", 20)
    frames = _drain(RecordedSource(tmp_path, repeat=3))
    assert [int(f[5, 5, 0]) for f in frames] == [10, 10, 10, 20, 20, 20]
    frames[0][:] = 0  # consumers may scribble on a frame without changing the next one
    assert int(frames[1][5, 5, 0]) == 10


def test_recorded_grey_delivers_one_channel_images_and_video(tmp_path: Path) -> None:
    _write_png(tmp_path / "a.png", 10)
    (frame,) = _drain(RecordedSource(tmp_path, grey=True))
    assert frame.shape == (48, 64) and int(frame[5, 5]) == 10
    video = tmp_path / "clip.avi"
    _write_video(video, [20, 100])
    frames = _drain(RecordedSource(video, grey=True))
    assert [f.shape for f in frames] == [(48, 64)] * 2
    assert [int(f[20, 20]) for f in frames] == pytest.approx([20, 100], abs=3)


def test_recorded_fps_paces_reads(tmp_path: Path) -> None:
    _write_png(tmp_path / "a.png", 10)
    source = RecordedSource(tmp_path, loop=True, fps=50)
    start = time.monotonic()
    for _ in range(6):
        source.read()
    elapsed = time.monotonic() - start
    assert 0.09 <= elapsed < 1.0  # 5 intervals of 20 ms after the first frame


def _write_video(path: Path, values: list[int]) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    assert writer.isOpened()
    for v in values:
        writer.write(_frame(v))
    writer.release()


def test_recorded_video_file_delivers_all_frames_then_ends(tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    _write_video(video, [20, 60, 100, 140])
    with open_source("recorded", path=video) as source:
        frames = _drain(source)
    assert [int(f[20, 20, 0]) for f in frames] == pytest.approx([20, 60, 100, 140], abs=3)


def test_recorded_video_loops_and_repeats(tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    _write_video(video, [20, 100])
    source = RecordedSource(video, loop=True, repeat=2)
    values = [int(source.read()[20, 20, 0]) for _ in range(6)]
    source.close()
    assert values == pytest.approx([20, 20, 100, 100, 20, 20], abs=3)


def test_opencv_source_reads_a_video_file_synchronously(tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    _write_video(video, [50, 150])
    with OpenCVSource(str(video)) as source:
        values = [int(f[20, 20, 0]) for f in _drain(source)]
    assert values == pytest.approx([50, 150], abs=3)


class FakeCapture:
    """A cv2.VideoCapture stand-in driven by a frame function; ``hang`` blocks read()."""

    def __init__(self, make_frame: Any, hang_after: int | None = None) -> None:
        self._make = make_frame
        self._hang_after = hang_after
        self.count = 0
        self.released = False
        self.unblock = threading.Event()
        self.props: dict[int, float] = {}

    def isOpened(self) -> bool:
        return True

    def set(self, prop: int, value: float) -> bool:
        self.props[prop] = value
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self._hang_after is not None and self.count >= self._hang_after:
            self.unblock.wait(5)
            return False, None
        self.count += 1
        time.sleep(0.002)
        return True, self._make(self.count)

    def release(self) -> None:
        self.released = True


def test_opencv_live_source_delivers_new_frames_and_sets_size() -> None:
    fake = FakeCapture(lambda n: _frame(n % 256))
    with OpenCVSource(0, width=64, height=48, fps=5, capture_factory=lambda uri: fake) as source:
        first = source.read()
        second = source.read()
    assert first.shape == (48, 64, 3)
    assert not np.array_equal(first, second)
    assert fake.props[cv2.CAP_PROP_FRAME_WIDTH] == 64
    assert fake.props[cv2.CAP_PROP_FPS] == 5
    assert fake.released


def test_opencv_live_source_detects_a_frozen_stream() -> None:
    fake = FakeCapture(lambda n: _frame(42))  # the same frame forever
    source = OpenCVSource(0, stale_limit=10, capture_factory=lambda uri: fake)
    with pytest.raises(SourceError, match="identical"):
        for _ in range(200):
            source.read()
    source.close()


def test_opencv_live_source_tolerates_repeats_below_the_limit() -> None:
    # Frames repeat in runs of 5: a camera at a higher rate than the scene changes.
    fake = FakeCapture(lambda n: _frame((n // 5) % 256))
    with OpenCVSource(0, stale_limit=10, capture_factory=lambda uri: fake) as source:
        for _ in range(20):
            source.read()


def test_opencv_live_source_times_out_when_the_driver_hangs() -> None:
    fake = FakeCapture(lambda n: _frame(n), hang_after=1)
    source = OpenCVSource(0, read_timeout_s=0.2, capture_factory=lambda uri: fake)
    source.read()
    start = time.monotonic()
    with pytest.raises(SourceError, match=r"no new frame within 0\.2 s"):
        source.read()
    assert time.monotonic() - start < 2.0
    fake.unblock.set()
    source.close()


def test_opencv_live_source_reports_a_failed_camera() -> None:
    fake = FakeCapture(lambda n: None)  # read() returns (True, None): a broken driver
    source = OpenCVSource(0, capture_factory=lambda uri: fake)
    with pytest.raises(SourceError, match="stopped delivering"):
        source.read()
    source.close()


def test_opencv_source_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        OpenCVSource(str(tmp_path / "missing.avi"))


def test_read_after_close_is_an_error(tmp_path: Path) -> None:
    _write_png(tmp_path / "a.png", 10)
    source = RecordedSource(tmp_path)
    source.close()
    with pytest.raises(SourceError, match="closed"):
        source.read()


def test_open_source_rejects_unknown_kind_and_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown"):
        open_source("webcam")
    with pytest.raises(ConfigError, match="widht"):
        open_source("recorded", path=tmp_path, widht=3)


def test_picamera_source_explains_how_to_install_picamera2() -> None:
    try:
        import picamera2  # noqa: F401
    except ImportError:
        with pytest.raises(SourceError, match="sudo apt install python3-picamera2"):
            open_source("picamera", width=640, height=480, fps=10)
    else:
        pytest.skip("picamera2 is installed here; the missing-library message cannot be shown")


@pytest.mark.hardware
def test_picamera_source_delivers_bgr_frames_on_a_pi() -> None:
    pytest.importorskip("picamera2", reason="needs a Raspberry Pi with picamera2 and a camera")
    with open_source("picamera", width=640, height=480, fps=10) as source:
        frame = source.read()
    assert frame.shape == (480, 640, 3) and frame.dtype == np.uint8
