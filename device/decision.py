"""When is a reading worth publishing: stability over frames, once per scene, meter rules.

Pure logic with an injected clock. The per-digit threshold and count/pattern rules were already
applied by the reader (``Reading.confident``); here a confident text must be seen in K of the
last N frames before it is accepted, it is emitted once until the scene changes (another
accepted text, or no digits for ``clear_after_s``), and in meter mode the number may only grow,
and by at most ``max_rate_per_hour``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from device.config import DecisionConfig
from device.events import ReadingEvent
from device.reading import Reading

logger = logging.getLogger(__name__)

SECONDS_PER_HOUR = 3600.0


class Light(Enum):
    """What the frame looks like, for the LEDs."""

    EMPTY = "empty"  # no digits in view
    UNSURE = "unsure"  # digits seen, not confidently read (red)
    PENDING = "pending"  # confident, but not yet stable
    STABLE = "stable"  # the accepted reading is in view


@dataclass(frozen=True)
class Decision:
    """The verdict on one frame: its light and, at most once per scene, an event to publish."""

    light: Light
    event: ReadingEvent | None = None
    stable_text: str | None = None  # the accepted text currently in view

    @property
    def accepted(self) -> bool:
        """True when this frame produced a new accepted reading (green)."""
        return self.event is not None and self.event.accepted


def meter_value(text: str) -> int | None:
    """The number a meter reading shows; groups are joined (a meter shows one number)."""
    digits = text.replace(" ", "")
    return int(digits) if digits.isdigit() else None


class Decider:
    """Turns a stream of readings into accepted (or rejected) events."""

    def __init__(self, config: DecisionConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._window: deque[str | None] = deque(maxlen=config.stable_n)
        self._emitted: str | None = None  # text decided on in this scene (accepted or rejected)
        self._emitted_ok = False  # whether that text was accepted
        self._unsure_reported = False
        self._last_digits_at: float | None = None
        # Meter: the last published value and when; a violation is never stored here.
        self._meter_value: int | None = None
        self._meter_at: float = 0.0

    @property
    def last_meter_value(self) -> int | None:
        return self._meter_value

    def reset_scene(self) -> None:
        """Forget the scene (e.g. after a trigger): the reading in view may be sent again."""
        self._window.clear()
        self._emitted = None
        self._emitted_ok = False
        self._unsure_reported = False

    def update(self, reading: Reading) -> Decision:
        now = self._clock()
        if reading.empty:
            self._window.append(None)
            if (
                self._last_digits_at is not None
                and now - self._last_digits_at >= self._config.clear_after_s
            ):
                self._last_digits_at = None
                if self._emitted is not None or self._unsure_reported:
                    logger.debug("scene cleared: no digits for %.1f s", self._config.clear_after_s)
                self.reset_scene()
            return Decision(Light.EMPTY)

        self._last_digits_at = now
        if not reading.confident:
            self._window.append(None)
            return Decision(Light.UNSURE, self._maybe_report_unsure(reading))

        text = reading.text
        self._window.append(text)
        seen = Counter(t for t in self._window if t is not None)[text]
        if seen < self._config.stable_k:
            return Decision(Light.PENDING)
        if text == self._emitted:
            if self._emitted_ok:
                return Decision(Light.STABLE, stable_text=text)
            return Decision(Light.UNSURE)

        # A new stable text: the scene changed (or started); decide on it once.
        self._emitted = text
        self._unsure_reported = False
        reason = self._meter_violation(text, now) if self._config.meter else ""
        self._emitted_ok = not reason
        if reason:
            logger.warning("rejected %r: %s", text, reason)
            return Decision(Light.UNSURE, ReadingEvent(reading, accepted=False, reason=reason))
        if self._config.meter:
            self._meter_value = meter_value(text)
            self._meter_at = now
        return Decision(Light.STABLE, ReadingEvent(reading, accepted=True), stable_text=text)

    def _maybe_report_unsure(self, reading: Reading) -> ReadingEvent | None:
        """One rejected event per scene once a whole window of frames was unreadable, so a
        consumer (and the frame saver) learns why nothing is being published."""
        window_full = len(self._window) == self._window.maxlen
        if self._unsure_reported or self._emitted is not None or not window_full:
            return None
        if any(t is not None for t in self._window):
            return None
        self._unsure_reported = True
        return ReadingEvent(reading, accepted=False, reason=reading.reason or "low confidence")

    def _meter_violation(self, text: str, now: float) -> str:
        value = meter_value(text)
        if value is None:
            return f"meter reading {text!r} is not one number"
        last = self._meter_value
        if last is None:
            return ""
        if value < last:
            return f"meter went backwards (from {last} to {value})"
        rate = self._config.max_rate_per_hour
        hours = (now - self._meter_at) / SECONDS_PER_HOUR
        if rate > 0 and value - last > rate * hours:
            return (
                f"meter rose too fast (from {last} to {value} in {hours * 60:.1f} min; "
                f"at most {rate:g} per hour)"
            )
        return ""
