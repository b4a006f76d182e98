"""Local outputs: JSON lines on stdout, a rotating fsync'ed event file, a bounded frame folder.

All implement ``device.events.Output``. Problems at start (an unwritable path) raise
``OutputError`` so the daemon refuses to start; problems while running (disk full) are logged
once and the output keeps trying, so one failing output never stops the others.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt

from device.errors import OutputError
from device.events import ReadingEvent, Status
from device.lifecycle import Closeable
from device.reading import Reading

logger = logging.getLogger(__name__)

Frame = npt.NDArray[np.uint8]
Annotator = Callable[[Frame, Reading], Frame]

FRAME_SUFFIX = ".jpg"
JPEG_QUALITY = 90  # saved frames are for people debugging a reading; detail beats size


def event_json(event: ReadingEvent) -> str:
    """One compact JSON line (no newline) for an event."""
    return json.dumps(event.to_dict(), separators=(",", ":"), ensure_ascii=False)


class StdoutOutput(Closeable):
    """One JSON line per accepted reading on stdout (or any text stream), flushed at once so a
    pipe (``digit-reader | jq``) or the journal sees it immediately."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream
        self._failed = False

    def on_event(self, event: ReadingEvent) -> None:
        if not event.accepted:
            return
        stream = self._stream if self._stream is not None else sys.stdout
        try:
            stream.write(event_json(event) + "\n")
            stream.flush()
        except (OSError, ValueError) as e:  # closed pipe or stream
            if not self._failed:
                logger.error("cannot write readings to stdout: %s", e)
            self._failed = True
        else:
            self._failed = False

    def on_status(self, status: Status) -> None:
        pass

    def on_frame(self, frame: Frame, reading: Reading | None) -> None:
        pass

    def close(self) -> None:
        stream = self._stream if self._stream is not None else sys.stdout
        # A stream that is already gone has nothing left to save.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()


class FileOutput(Closeable):
    """Every event (accepted and rejected) appended as a JSON line, flushed and fsync'ed so a
    power cut loses at most the line being written; rotated by size keeping ``backups`` files
    (``events.jsonl.1`` is the newest)."""

    def __init__(self, path: Path | str, max_bytes: int = 1_000_000, backups: int = 3) -> None:
        self.path = Path(path)
        self._max_bytes = max_bytes
        self._backups = backups
        self._failing = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: IO[bytes] | None = open(self.path, "ab")  # noqa: SIM115 - kept open
        except OSError as e:
            raise OutputError(
                f"cannot write the event file {self.path} ({e.strerror or e}); "
                "fix its folder's permissions or change output.file"
            ) from e

    def on_event(self, event: ReadingEvent) -> None:
        data = (event_json(event) + "\n").encode("utf-8")
        try:
            self._write(data)
        except OSError as e:
            # Disk full or a vanished folder: log once, keep running, retry on the next event.
            if not self._failing:
                logger.error("cannot append to %s (%s); events are not being saved", self.path, e)
            self._failing = True
            self._reopen_later()
        else:
            if self._failing:
                logger.info("appending to %s again", self.path)
            self._failing = False

    def _write(self, data: bytes) -> None:
        if self._file is None:
            self._file = open(self.path, "ab")  # noqa: SIM115 - kept open
        if self._file.tell() > 0 and self._file.tell() + len(data) > self._max_bytes:
            self._rotate()
        assert self._file is not None
        self._file.write(data)
        self._file.flush()
        os.fsync(self._file.fileno())

    def _rotate(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._backups == 0:
            self.path.unlink(missing_ok=True)
        else:
            for n in range(self._backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{n}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{n + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._file = open(self.path, "ab")  # noqa: SIM115 - kept open

    def _reopen_later(self) -> None:
        if self._file is not None:
            # The buffered bytes could not be written; that error is already logged.
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def on_status(self, status: Status) -> None:
        pass

    def on_frame(self, frame: Frame, reading: Reading | None) -> None:
        pass

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
            except OSError as e:
                logger.error("cannot close %s cleanly: %s", self.path, e)
            self._file = None


def _plain_frame(frame: Frame, reading: Reading) -> Frame:
    return frame


class FrameSaver(Closeable):
    """Annotated frames of accepted and rejected readings, written temp-then-rename into a
    folder that holds at most ``max_saved`` of them (oldest deleted first).

    The daemon calls ``on_frame`` for every frame and ``on_event`` after it for the same frame,
    so the saver keeps a reference to the latest frame (no copy) and encodes it only on events.
    """

    def __init__(
        self,
        folder: Path | str,
        max_saved: int = 200,
        annotate: Annotator | None = None,
    ) -> None:
        self.folder = Path(folder)
        self._max_saved = max_saved
        self._annotate = annotate or _plain_frame
        self._frame: Frame | None = None
        self._reading: Reading | None = None
        self._failing = False
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            probe = self.folder / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise OutputError(
                f"cannot save frames in {self.folder} ({e.strerror or e}); "
                "fix its permissions or change output.save_frames"
            ) from e
        self._saved = sorted(self.folder.glob(f"*{FRAME_SUFFIX}"))

    @property
    def saved(self) -> list[Path]:
        return list(self._saved)

    def on_frame(self, frame: Frame, reading: Reading | None) -> None:
        self._frame = frame
        self._reading = reading

    def on_event(self, event: ReadingEvent) -> None:
        import cv2

        if self._frame is None:
            return
        kind = "accepted" if event.accepted else "rejected"
        stamp = event.time.replace(":", "").replace("-", "")
        value = event.value.replace(" ", "_") or "none"
        name = f"{stamp}-{kind}-{value}-{event.id[:8]}{FRAME_SUFFIX}"
        target = self.folder / name
        temp = self.folder / f".{name}.tmp"
        try:
            image = self._annotate(self._frame, self._reading or event.reading)
            ok, encoded = cv2.imencode(
                FRAME_SUFFIX, image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
            )
            if not ok:
                raise OSError("JPEG encoding failed")
            with open(temp, "wb") as f:
                f.write(encoded.tobytes())
            os.replace(temp, target)
        except OSError as e:
            if not self._failing:
                logger.error("cannot save frame %s: %s", target, e)
            self._failing = True
            temp.unlink(missing_ok=True)
            return
        self._failing = False
        self._saved.append(target)
        self._prune()

    def _prune(self) -> None:
        while len(self._saved) > self._max_saved:
            oldest = self._saved.pop(0)
            oldest.unlink(missing_ok=True)

    def on_status(self, status: Status) -> None:
        pass

    def close(self) -> None:
        self._frame = None
        self._reading = None
