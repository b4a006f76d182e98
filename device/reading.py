"""What a reading is: the digits found in one frame, their confidences and the verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Box = tuple[int, int, int, int]  # x, y, w, h in pixels (a reading's boxes: frame coordinates)


@dataclass(frozen=True)
class DigitResult:
    """One classified digit."""

    label: int
    confidence: float
    box: Box
    group: int = 0  # index of the number (line / cell) this digit belongs to

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "confidence": round(self.confidence, 4),
            "box": list(self.box),
            "group": self.group,
        }


@dataclass(frozen=True)
class Reading:
    """The result of reading one frame.

    ``text`` is the digit string, numbers (groups) separated by single spaces; ``confident`` is
    True only when every digit reached the threshold and the count/pattern rules (if any) hold.
    """

    text: str
    digits: tuple[DigitResult, ...]
    confident: bool
    reason: str = ""  # why it is not confident ("" when confident)
    timings_ms: dict[str, float] = field(default_factory=dict)  # decode/segment/normalize/classify
    frame_shape: tuple[int, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.digits

    @property
    def min_confidence(self) -> float:
        return min((d.confidence for d in self.digits), default=0.0)

    @property
    def total_ms(self) -> float:
        return sum(self.timings_ms.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "reading": self.text,
            "confident": self.confident,
            "reason": self.reason,
            "digits": [d.to_dict() for d in self.digits],
            "ms": round(self.total_ms, 3),
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
        }
