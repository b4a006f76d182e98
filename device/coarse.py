"""A coarse look at frames with large digits: the frame shrunk, read again.

The segmenter estimates the paper's brightness with a filter 56 px wide (at 480 rows): a
stroke thicker than about half of that is taken for paper. A marker digit filling a third of
the frame has such strokes, and comes out hollow, in pieces or not at all (a closed 4 dropped
from "945", a thick 1 cut into slivers). Shrunk so that the frame has 240 rows (half of a
640x480 frame; the segmenter's size settings are those of 480 rows at any larger size), the
same filter covers twice the stroke width, and large digits are still over 40 px tall.

The reader takes this look only at an unsure reading of a frame holding a blob at least
``COARSE_FROM`` px tall at 480 rows (scaled with taller frames, like the segmenter's stroke
sizes), and keeps its reading only if it is confident.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import cv2
import numpy as np
import numpy.typing as npt

from device.reading import Box, DigitResult
from device.segment import size_scale

# An unsure reading gets the coarse look if the frame holds a blob at least this tall (px at
# 480 rows), read as a digit or not. The coarse reading replaces only an unsure one, and only
# if it is confident. Rendered frames read exactly (3,400 / 1,800 held-out / 300 HD): 3,039
# -> 3,053 / 1,585 -> 1,595 / 257 -> 259, with 1 / 1 / 0 of the new confident readings wrong;
# 6% of 640x480 frames take the look. From 60 px: +14 / +11, 9% of frames; at any height:
# -10 / +0, with 41 / 24 new confident readings wrong (small digits shrunk to 8 px). Counting
# the blobs the model read as no digit too (a bold digit read as none leaves nothing to
# measure): 206 looks instead of 203 on the 3,400, exact +0 / +1 / +0 (with the ink kept on
# rules).
COARSE_FROM = 80


class CoarseView(NamedTuple):
    """The shrunk frame and how its coordinates map back to the frame's."""

    image: npt.NDArray[np.uint8]
    factor: tuple[float, float]  # frame px per shrunk px, across and down
    origin: tuple[int, int]  # the (roi's) top-left corner in the frame

    def to_frame(self, digits: tuple[DigitResult, ...]) -> tuple[DigitResult, ...]:
        """``digits`` read from ``image`` with their boxes in frame coordinates."""
        return tuple(DigitResult(d.label, d.confidence, self._box(d.box), d.group) for d in digits)

    def _box(self, box: Box) -> Box:
        x, y, w, h = box
        (fx, fy), (ox, oy) = self.factor, self.origin
        return (ox + round(x * fx), oy + round(y * fy), round(w * fx), round(h * fy))


def wanted(tallest: int, rows: int) -> bool:
    """Whether a frame (or roi) of ``rows`` rows whose tallest blob is ``tallest`` px high
    (read as a digit or not: a hollow marker digit may be read as none) is worth the coarse
    look."""
    return tallest >= COARSE_FROM * size_scale(rows)


def rows_read(frame: npt.NDArray[Any], roi: Box | None) -> int:
    """The rows the segmenter reads of ``frame``: the roi's, if one is set."""
    return roi[3] if roi is not None else int(frame.shape[0])


def coarse_view(frame: npt.NDArray[np.uint8], roi: Box | None) -> CoarseView:
    """``frame`` (its roi, if set) shrunk by twice the segmenter's size scale: 240 rows for
    a frame of 480 rows or more, half the rows for a smaller one."""
    x, y = (roi[0], roi[1]) if roi is not None else (0, 0)
    view = frame[y : y + roi[3], x : x + roi[2]] if roi is not None else frame
    h, w = view.shape[:2]
    factor = 2.0 * size_scale(h)
    size = (max(1, round(w / factor)), max(1, round(h / factor)))
    small = cv2.resize(view, size, interpolation=cv2.INTER_AREA)
    return CoarseView(small, (w / size[0], h / size[1]), (x, y))
