"""Frame sources: the Pi camera, OpenCV captures (USB, files, network streams) and recorded frames.

Every source implements ``FrameSource``: ``read()`` returns one BGR uint8 (H, W, 3) frame,
raises ``SourceEnded`` when a finite source is exhausted and ``SourceError`` when a camera fails
or stalls. Hardware libraries are imported only inside their adapter, so this module imports
on any laptop; tests use recorded frames or small fakes implementing the same protocol.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

import cv2
import numpy as np
import numpy.typing as npt

from device.errors import ConfigError, ImageError, SourceEnded, SourceError
from device.images import IMAGE_SUFFIXES, load_image, to_bgr_uint8
from device.lifecycle import Closeable

logger = logging.getLogger(__name__)

Frame = npt.NDArray[np.uint8]

# How long read() waits for a camera frame before declaring the camera stalled. A Pi camera
# at its slowest (long exposure in the dark) still delivers several frames a second.
DEFAULT_READ_TIMEOUT_S = 5.0
# Identical consecutive frames from a live camera mean a frozen driver or stream: real sensors
# always add noise. 50 frames is several seconds at typical rates, far beyond any coincidence.
STALE_FRAME_LIMIT = 50
# Every Nth pixel in each direction is compared for staleness: cheap, and noise still shows.
_STALE_STRIDE = 4
# How long close() waits for a capture thread that is stuck inside the driver.
_JOIN_TIMEOUT_S = 2.0
STREAMS = ("main", "lores")
SOURCE_KINDS = ("picamera", "opencv", "recorded")


@runtime_checkable
class FrameSource(Protocol):
    """Something that delivers camera frames, one per ``read()``."""

    def read(self) -> Frame:
        """Next frame, BGR uint8 (H, W, 3); SourceEnded when finished, SourceError on failure."""
        ...

    def close(self) -> None: ...

    @property
    def closed(self) -> bool: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class _SourceBase(Closeable):
    """close()/closed/context-manager plumbing shared by the real sources."""

    name = "source"
    _closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._release()

    def _release(self) -> None:
        """Free the underlying device; called once by close()."""

    def _check_open(self) -> None:
        if self._closed:
            raise SourceError(f"{self.name} is closed")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}{' closed' if self._closed else ''}>"


def _check_positive(name: str, value: float | None) -> None:
    if value is not None and not value > 0:
        raise ConfigError(f"{name} must be positive, got {value}")


class PiCameraSource(_SourceBase):
    """The Raspberry Pi camera through picamera2.

    Stream choice: ``stream="main"`` (the default) configures the main stream as RGB888 at the
    requested size. picamera2's RGB888 is laid out B, G, R in memory, exactly what OpenCV
    expects, and the ISP scales the sensor image down for free, so each frame costs one copy
    and no conversion; reading digits wants this full-quality image. ``stream="lores"`` reads
    the low-resolution stream instead, which the Pi 4 and earlier ISPs only produce as YUV420
    (converted here with one cv2.cvtColor): use it when the main stream is kept large for
    something else (recording, a preview) and the reader only needs a small copy.

    Frames are taken with ``capture_array(wait=False)`` and waited on with a timeout, so a
    camera that stops delivering raises SourceError instead of hanging the daemon.
    """

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        fps: float = 10.0,
        stream: str = "main",
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        camera_num: int = 0,
    ) -> None:
        if stream not in STREAMS:
            raise ConfigError(f"stream must be one of {STREAMS}, got {stream!r}")
        _check_positive("width", width)
        _check_positive("height", height)
        _check_positive("fps", fps)
        _check_positive("read_timeout_s", read_timeout_s)
        self.name = f"picamera:{camera_num}:{stream}"
        self._stream = stream
        self._timeout_s = read_timeout_s
        try:
            from picamera2 import Picamera2
        except ImportError as e:
            raise SourceError(
                "picamera2 is not installed: on the Pi `sudo apt install python3-picamera2`, "
                "elsewhere use an OpenCV or recorded source"
            ) from e
        try:
            self._cam: Any = Picamera2(camera_num)
        except (RuntimeError, IndexError, OSError) as e:
            raise SourceError(
                f"cannot open Pi camera {camera_num} ({e}); check the ribbon cable and that no "
                "other program (another daemon, rpicam-hello) is using it"
            ) from e
        size = (int(width), int(height))
        # Frame duration limits (µs) pin the frame rate: both bounds equal.
        frame_us = int(1_000_000 / fps)
        controls = {"FrameDurationLimits": (frame_us, frame_us)}
        try:
            if stream == "main":
                config = self._cam.create_video_configuration(
                    main={"size": size, "format": "RGB888"}, controls=controls
                )
            else:
                config = self._cam.create_video_configuration(
                    main={"size": size},
                    lores={"size": size, "format": "YUV420"},
                    controls=controls,
                )
            self._cam.configure(config)
            self._cam.start()
        except Exception as e:
            # picamera2 raises bare RuntimeError/ValueError for bad sizes or a busy camera;
            # close the half-opened camera so the next attempt can open it.
            self._cam.close()
            raise SourceError(f"cannot start Pi camera with {size} at {fps} fps: {e}") from e
        logger.info(
            "Pi camera %d started: %s stream %dx%d at %.1f fps",
            camera_num,
            stream,
            size[0],
            size[1],
            fps,
        )

    def read(self) -> Frame:
        self._check_open()
        try:
            job = self._cam.capture_array(self._stream, wait=False)
            array = self._cam.wait(job, timeout=self._timeout_s)
        except TimeoutError as e:
            raise SourceError(
                f"{self.name}: no frame within {self._timeout_s:.1f} s; the camera stalled"
            ) from e
        except RuntimeError as e:
            raise SourceError(f"{self.name}: capture failed: {e}") from e
        array = np.asarray(array)
        if self._stream == "lores":
            return np.asarray(cv2.cvtColor(array, cv2.COLOR_YUV2BGR_I420), dtype=np.uint8)
        if array.ndim == 3 and array.shape[2] == 4:  # XBGR8888 if a platform ignored RGB888
            array = array[:, :, :3]
        return np.ascontiguousarray(array, dtype=np.uint8)

    def _release(self) -> None:
        try:
            self._cam.stop()
        finally:
            self._cam.close()


def _parse_uri(uri: int | str) -> tuple[int | str, bool]:
    """(value for cv2.VideoCapture, is_live): USB index, device node or URL are live."""
    if isinstance(uri, int):
        return uri, True
    text = uri.strip()
    if text.isdigit():
        return int(text), True
    if "://" in text:
        return text, True
    path = Path(text)
    if path.is_char_device():  # /dev/video0
        return text, True
    if not path.exists():
        raise SourceError(f"video source {text!r} does not exist; give a file, URL or USB index")
    return text, False


def _fingerprint(frame: Frame) -> bytes:
    return bytes(frame[::_STALE_STRIDE, ::_STALE_STRIDE].tobytes())


class OpenCVSource(_SourceBase):
    """A cv2.VideoCapture: a USB camera index, /dev/videoN, a video file or an RTSP/HTTP URL.

    Live sources are read by a background thread that keeps only the newest frame, so a slow
    reader never sees seconds-old buffered frames, and so that ``read()`` can time out when the
    driver hangs inside ``VideoCapture.read()``. A live source that delivers the very same frame
    ``stale_limit`` times in a row is declared frozen. Video files are read synchronously, every
    frame in order, and end with SourceEnded.
    """

    def __init__(
        self,
        uri: int | str = 0,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        stale_limit: int = STALE_FRAME_LIMIT,
        capture_factory: Callable[[int | str], Any] | None = None,
    ) -> None:
        _check_positive("width", width)
        _check_positive("height", height)
        _check_positive("fps", fps)
        _check_positive("read_timeout_s", read_timeout_s)
        if stale_limit < 0:
            raise ConfigError(f"stale_limit must be 0 (off) or more, got {stale_limit}")
        target, self._live = _parse_uri(uri)
        self.name = f"opencv:{target}"
        self._timeout_s = read_timeout_s
        self._stale_limit = stale_limit
        factory = capture_factory if capture_factory is not None else cv2.VideoCapture
        self._cap: Any = factory(target)
        if not self._cap.isOpened():
            self._cap.release()
            raise SourceError(
                f"OpenCV cannot open {target!r}; check the index/URL and that no other program "
                "uses the camera"
            )
        if self._live:
            for prop, value in (
                (cv2.CAP_PROP_FRAME_WIDTH, width),
                (cv2.CAP_PROP_FRAME_HEIGHT, height),
                (cv2.CAP_PROP_FPS, fps),
            ):
                if value is not None:
                    self._cap.set(prop, float(value))
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._seq = 0  # frames captured by the thread
        self._delivered = 0  # sequence number of the last frame read() returned
        self._failure: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self._live:
            self._thread = threading.Thread(
                target=self._pump, name=f"capture {self.name}", daemon=True
            )
            self._thread.start()
        logger.info("opened %s (%s)", self.name, "live" if self._live else "file")

    def _pump(self) -> None:
        """Capture thread: keep the newest frame, note failures and frozen streams."""
        previous: bytes | None = None
        repeats = 0
        while not self._stop.is_set():
            try:
                ok, raw = self._cap.read()
            except cv2.error as e:
                ok, raw = False, None
                logger.debug("%s: capture raised %s", self.name, e)
            failure: str | None = None
            frame: Frame | None = None
            if not ok or raw is None:
                failure = f"{self.name}: the camera stopped delivering frames"
            else:
                try:
                    frame = to_bgr_uint8(raw, self.name)
                except ImageError as e:
                    failure = str(e)
            if frame is not None and self._stale_limit:
                fingerprint = _fingerprint(frame)
                repeats = repeats + 1 if fingerprint == previous else 0
                previous = fingerprint
                if repeats >= self._stale_limit:
                    failure = (
                        f"{self.name}: the last {repeats + 1} frames were identical; "
                        "the camera or stream is frozen"
                    )
            with self._cond:
                if failure is not None:
                    self._failure = failure
                else:
                    self._latest = frame
                    self._seq += 1
                self._cond.notify_all()
            if failure is not None:
                return

    def read(self) -> Frame:
        self._check_open()
        if not self._live:
            return self._read_file()
        with self._cond:
            ready = self._cond.wait_for(
                lambda: self._seq > self._delivered or self._failure is not None or self._closed,
                timeout=self._timeout_s,
            )
            if self._failure is not None:
                raise SourceError(self._failure)
            self._check_open()
            if not ready or self._latest is None:
                raise SourceError(
                    f"{self.name}: no new frame within {self._timeout_s:.1f} s; "
                    "the camera or stream hangs"
                )
            self._delivered = self._seq
            return self._latest

    def _read_file(self) -> Frame:
        ok, raw = self._cap.read()
        if not ok or raw is None:
            raise SourceEnded(f"{self.name}: end of video")
        try:
            return to_bgr_uint8(raw, self.name)
        except ImageError as e:
            raise SourceError(str(e)) from e

    def _release(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(_JOIN_TIMEOUT_S)
            if self._thread.is_alive():
                # Releasing a capture while another thread is blocked inside its read() can
                # crash the backend; leave the stuck (daemon) thread and its capture behind.
                logger.warning("%s: capture thread is stuck in the driver; not released", self.name)
                return
        self._cap.release()


class RecordedSource(_SourceBase):
    """Recorded frames: a folder of images (in file-name order) or a video file.

    Non-image files in the folder are skipped with one warning (JSON sidecars written by
    ``device.record`` silently). ``loop`` restarts at the end instead of raising SourceEnded;
    ``fps`` paces ``read()`` like a real camera (None or 0: as fast as
    the caller reads); ``repeat`` delivers each frame that many times
    in a row, as a camera would while a sheet is held still in front of it; ``grey`` delivers
    images decoded as grey (the reader needs nothing else; JPEG luma only is faster to decode).
    """

    def __init__(
        self,
        path: str | Path,
        loop: bool = False,
        fps: float | None = None,
        repeat: int = 1,
        grey: bool = False,
    ) -> None:
        if fps is not None and fps < 0:
            raise ConfigError(f"fps must be 0 (unpaced) or more, got {fps}")
        if repeat < 1:
            raise ConfigError(f"repeat must be 1 or more, got {repeat}")
        self._path = Path(path)
        self.name = f"recorded:{self._path}"
        self._loop = loop
        self._interval = 1.0 / fps if fps else 0.0
        self._repeat = repeat
        self._grey = grey
        self._next_due = 0.0
        self._current: Frame | None = None
        self._left = 0  # deliveries left of the current frame
        self._files: list[Path] = []
        self._index = 0
        self._video: OpenCVSource | None = None
        if self._path.is_dir():
            self._files = self._scan(self._path)
        elif self._path.is_file() and self._path.suffix.lower() in IMAGE_SUFFIXES:
            self._files = [self._path]
        elif self._path.is_file():
            self._video = OpenCVSource(str(self._path))
        else:
            raise SourceError(f"recorded frames {self._path} do not exist; check the path")

    @staticmethod
    def _scan(folder: Path) -> list[Path]:
        entries = sorted(p for p in folder.iterdir() if p.is_file())
        images = [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES]
        stems = {p.stem for p in images}
        skipped = [
            p.name
            for p in entries
            if p not in images and not (p.suffix == ".json" and p.stem in stems)
        ]
        if skipped:
            logger.warning(
                "skipping %d non-image file(s) in %s: %s", len(skipped), folder, ", ".join(skipped)
            )
        if not images:
            raise SourceError(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return images

    def read(self) -> Frame:
        self._check_open()
        if self._left == 0:
            self._current = self._next_frame()
            self._left = self._repeat
        self._left -= 1
        self._pace()
        assert self._current is not None
        # A frame delivered again must not carry what a consumer drew on the last delivery.
        return self._current.copy() if self._repeat > 1 else self._current

    def _pace(self) -> None:
        if not self._interval:
            return
        now = time.monotonic()
        if self._next_due > now:
            time.sleep(self._next_due - now)
        # Schedule from the due time, not from now, so the rate does not drift.
        self._next_due = max(self._next_due, now) + self._interval

    def _next_frame(self) -> Frame:
        if self._video is not None:
            return self._next_video_frame()
        failures = 0
        while True:
            if self._index >= len(self._files):
                if not self._loop:
                    raise SourceEnded(f"{self.name}: all {len(self._files)} frames delivered")
                self._index = 0
            path = self._files[self._index]
            self._index += 1
            try:
                return load_image(path, grey=self._grey)
            except ImageError as e:
                failures += 1
                logger.warning("skipping unreadable recorded frame: %s", e)
                if failures >= len(self._files):
                    raise SourceError(f"{self.name}: none of the images can be read") from e

    def _next_video_frame(self) -> Frame:
        assert self._video is not None
        try:
            return self._as_wanted(self._video.read())
        except SourceEnded:
            if not self._loop:
                raise
        self._video.close()
        self._video = OpenCVSource(str(self._path))
        try:
            return self._as_wanted(self._video.read())
        except SourceEnded as e:
            raise SourceError(f"{self.name}: the video has no frames") from e

    def _as_wanted(self, frame: Frame) -> Frame:
        if self._grey and frame.ndim == 3:
            return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        return frame

    def _release(self) -> None:
        if self._video is not None:
            self._video.close()


def open_source(kind: str, **kw: Any) -> FrameSource:
    """Build a source of ``kind`` ("picamera", "opencv", "recorded"); kw go to its constructor."""
    classes: dict[str, Callable[..., FrameSource]] = {
        "picamera": PiCameraSource,
        "opencv": OpenCVSource,
        "recorded": RecordedSource,
    }
    if kind not in classes:
        raise ConfigError(f"source kind {kind!r} is unknown; use one of {', '.join(SOURCE_KINDS)}")
    accepted = inspect.signature(classes[kind]).parameters
    unknown = sorted(set(kw) - set(accepted))
    if unknown:
        raise ConfigError(
            f"{kind} source has no option(s) {', '.join(unknown)}; it accepts {', '.join(accepted)}"
        )
    return classes[kind](**kw)
