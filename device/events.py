"""What the daemon tells its outputs: accepted/rejected reading events and periodic status.

Outputs (journal/stdout, file, MQTT, web) implement ``Output``; the daemon calls them from its
loop, so every method must return quickly (queue work, never block on the network).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from device.reading import Reading


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class ReadingEvent:
    """One accepted (or rejected) reading, with a unique id so consumers can de-duplicate."""

    reading: Reading
    accepted: bool
    reason: str = ""  # why rejected ("low confidence", "meter went backwards", ...)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    time: str = field(default_factory=_now_iso)

    @property
    def value(self) -> str:
        return self.reading.text

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": self.time,
            "event": "reading" if self.accepted else "rejected",
            "value": self.reading.text,
            "confident": self.reading.confident,
            "reason": self.reason,
            "digits": [d.label for d in self.reading.digits],
            "confidences": [round(d.confidence, 4) for d in self.reading.digits],
            "boxes": [list(d.box) for d in self.reading.digits],
        }


@dataclass(frozen=True)
class Status:
    """A snapshot of the daemon's health, published about once a second."""

    started_at: float = field(default_factory=time.time)
    uptime_s: float = 0.0
    frames: int = 0
    fps: float = 0.0
    rejected_frames: int = 0  # frames that could not be processed
    reconnects: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)  # mean per stage
    last_reading: str | None = None
    camera_ok: bool = True
    error: str | None = None
    model_version: str = ""  # sha256 prefix of the model

    def to_dict(self) -> dict[str, Any]:
        return {
            "uptime_s": round(self.uptime_s, 1),
            "frames": self.frames,
            "fps": round(self.fps, 2),
            "rejected_frames": self.rejected_frames,
            "reconnects": self.reconnects,
            "latency_ms": {k: round(v, 3) for k, v in self.latency_ms.items()},
            "last_reading": self.last_reading,
            "camera_ok": self.camera_ok,
            "error": self.error,
            "model_version": self.model_version,
        }


class Output(Protocol):
    """Something that publishes readings. All methods must be fast and must not raise for
    transient problems (log and retry internally); ``close`` flushes and releases resources."""

    def on_event(self, event: ReadingEvent) -> None: ...

    def on_status(self, status: Status) -> None: ...

    def on_frame(self, frame: npt.NDArray[np.uint8], reading: Reading | None) -> None: ...

    def close(self) -> None: ...
