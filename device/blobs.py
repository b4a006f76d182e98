"""A blob: one digit candidate found in a frame, its box and full-resolution stroke mask."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from device.reading import Box


@dataclass
class Blob:
    """A digit candidate in roi coordinates: its box and its full-resolution stroke mask."""

    x: int
    y: int
    w: int
    h: int
    mask: npt.NDArray[np.bool_]  # (h, w): this blob's stroke pixels
    area: int

    @property
    def x1(self) -> int:
        return self.x + self.w

    @property
    def y1(self) -> int:
        return self.y + self.h

    def absorb(self, other: Blob) -> None:
        """Grow to the union of both boxes and masks (a stroke fragment joins its digit)."""
        nx, ny = min(self.x, other.x), min(self.y, other.y)
        nw, nh = max(self.x1, other.x1) - nx, max(self.y1, other.y1) - ny
        mask = np.zeros((nh, nw), np.bool_)
        for b in (self, other):
            mask[b.y - ny : b.y1 - ny, b.x - nx : b.x1 - nx] |= b.mask
        self.x, self.y, self.w, self.h, self.mask = nx, ny, nw, nh, mask
        self.area += other.area


def union(blobs: list[Blob]) -> Box:
    """The box around ``blobs``."""
    x = min(b.x for b in blobs)
    y = min(b.y for b in blobs)
    return x, y, max(b.x1 for b in blobs) - x, max(b.y1 for b in blobs) - y
