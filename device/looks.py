"""Second looks at an unsure frame, read again at another scale: coarse and fine.

**Coarse (large digits).** The segmenter estimates the paper's brightness with a filter 56 px
wide (at 480 rows): a stroke thicker than about half of that is taken for paper. A marker
digit filling a third of the frame has such strokes, and comes out hollow, in pieces or not at
all (a closed 4 dropped from "945", a thick 1 cut into slivers). Shrunk so that the frame has
240 rows (half of a 640x480 frame; the segmenter's size settings are those of 480 rows at any
larger size), the same filter covers twice the stroke width, and large digits are still over
40 px tall. The reader takes this look only at an unsure reading of a frame holding a blob at
least ``COARSE_FROM`` px tall at 480 rows (scaled with taller frames, like the segmenter's
stroke sizes).

**Fine (smaller digits, one-shot reads).** The segmenter's smallest steps are whole pixels:
it labels a 2x2 max-pooled copy, smooths noise over 3 px, keeps a 1-px fringe. Enlarged
``FINE_FACTOR`` times (the stroke-sized settings follow the rows, so strokes and lines keep
their relative sizes), a frame is sampled and cut again at half those steps. The reader
takes this look at an unsure reading (something read) of a frame of at most
``FINE_MAX_ROWS`` rows that the coarse look does not take, if asked to (``ReaderConfig
.fine_look``). It costs about four frames' segmentation (a median 8.5 ms more at 640x480 on the
development host), so it is meant for one-shot reads (``device.read``); in the daemon the
next camera frame is the cheaper second look.

Either look's reading replaces the first if it is confident, or, unsure like the first, if it
is much surer of its digits (``reader.POLARITY_MARGIN``, the rule for the other polarity).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import cv2
import numpy as np
import numpy.typing as npt

from device.reading import Box, DigitResult
from device.segment import size_scale

# An unsure reading gets the coarse look if the frame holds a blob at least this tall (px at
# 480 rows), read as a digit or not. Rendered frames, when the look's reading replaced the
# first only if it was confident, read exactly (3,400 / 1,800 held-out / 300 HD): 3,039
# -> 3,053 / 1,585 -> 1,595 / 257 -> 259, with 1 / 1 / 0 of the new confident readings wrong;
# 6% of 640x480 frames take the look. From 60 px: +14 / +11, 9% of frames; at any height:
# -10 / +0, with 41 / 24 new confident readings wrong (small digits shrunk to 8 px). Counting
# the blobs the model read as no digit too (a bold digit read as none leaves nothing to
# measure): 206 looks instead of 203 on the 3,400, exact +0 / +1 / +0 (with the ink kept on
# rules).
COARSE_FROM = 80
# The fine look enlarges the frame this many times (cubic interpolation). Rendered frames
# (session 16; `host.score_frames --fine-look`), 3,400 / 1,800 held-out, 26% / 28% of which
# take the look: exact 3,077 -> 3,090 / 1,609 -> 1,622 (3,084 / 1,617 when only a confident
# reading of the look was kept); confident readings 2,353 -> 2,472 / 1,217 -> 1,283, right
# among them 99.2% -> 99.2% / 99.2% -> 99.1% (3 of the 119 / 1 of the 66 new ones wrong).
# 1.5 times: the same exact match, 20 / 6 fewer confident readings, 98.9% of the held-out ones
# right. The ink level's floor rises with the rows as for any taller frame; held at its
# 480-row value it read 3,085 / 1,618 (min_contrast 28). A prototype that looked at every
# unsure frame read +10 exact / +126 confident on the 3,400 enlarged twice, +5 / +98 at 1.25
# times and +5 / +58 from the frame merely shifted by a pixel: the gain is partly a second
# sampling of the same frame, partly the scale.
FINE_FACTOR = 2
# Only frames (rois) of at most this many rows get the fine look: enlarged, a 1080p frame
# would be 8 Mpx (a prototype that looked at HD frames too read 1 more of 300 exactly).
FINE_MAX_ROWS = 480

Point = tuple[int, int]


class ScaledView(NamedTuple):
    """A frame (its roi) resized for a second look, and how its coordinates map back."""

    image: npt.NDArray[np.uint8]
    factor: tuple[float, float]  # frame px per view px, across and down
    origin: tuple[int, int]  # the (roi's) top-left corner in the frame

    def to_frame(self, digits: tuple[DigitResult, ...]) -> tuple[DigitResult, ...]:
        """``digits`` read from ``image`` with their boxes in frame coordinates."""
        return tuple(DigitResult(d.label, d.confidence, self._box(d.box), d.group) for d in digits)

    def _box(self, box: Box) -> Box:
        x, y, w, h = box
        (fx, fy), (ox, oy) = self.factor, self.origin
        return (ox + round(x * fx), oy + round(y * fy), round(w * fx), round(h * fy))


def rows_read(frame: npt.NDArray[Any], roi: Box | None) -> int:
    """The rows the segmenter reads of ``frame``: the roi's, if one is set."""
    return roi[3] if roi is not None else int(frame.shape[0])


def coarse_wanted(tallest: int, rows: int) -> bool:
    """Whether a frame (or roi) of ``rows`` rows whose tallest blob is ``tallest`` px high
    (read as a digit or not: a hollow marker digit may be read as none) is worth the coarse
    look."""
    return tallest >= COARSE_FROM * size_scale(rows)


def fine_wanted(tallest: int, rows: int) -> bool:
    """Whether a frame (or roi) of ``rows`` rows whose tallest blob is ``tallest`` px high is
    worth the fine look: not too large to enlarge, and no coarse look's."""
    return rows <= FINE_MAX_ROWS and not coarse_wanted(tallest, rows)


def coarse_view(frame: npt.NDArray[np.uint8], roi: Box | None) -> ScaledView:
    """``frame`` (its roi, if set) shrunk by twice the segmenter's size scale: 240 rows for
    a frame of 480 rows or more, half the rows for a smaller one."""
    view, origin = _cut(frame, roi)
    h, w = view.shape[:2]
    factor = 2.0 * size_scale(h)
    size = (max(1, round(w / factor)), max(1, round(h / factor)))
    small = cv2.resize(view, size, interpolation=cv2.INTER_AREA)
    return ScaledView(small, (w / size[0], h / size[1]), origin)


def fine_view(frame: npt.NDArray[np.uint8], roi: Box | None) -> ScaledView:
    """``frame`` (its roi, if set) enlarged FINE_FACTOR times."""
    view, origin = _cut(frame, roi)
    h, w = view.shape[:2]
    size = (w * FINE_FACTOR, h * FINE_FACTOR)
    big = cv2.resize(view, size, interpolation=cv2.INTER_CUBIC)
    return ScaledView(big, (1.0 / FINE_FACTOR, 1.0 / FINE_FACTOR), origin)


def _cut(frame: npt.NDArray[np.uint8], roi: Box | None) -> tuple[npt.NDArray[np.uint8], Point]:
    """The part of ``frame`` the segmenter reads (its roi, if set) and its top-left corner."""
    if roi is None:
        return frame, (0, 0)
    x, y, w, h = roi
    return frame[y : y + h, x : x + w], (x, y)
