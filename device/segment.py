"""Find the handwritten digits in a camera frame and group them into numbers.

The pipeline, for one grey frame:

1. Estimate the paper (background) brightness on a 1/8-scale copy with a morphological close
   (open for light ink), so shadows and uneven light cancel out; ink contrast is the
   difference from that background, divided by it for dark ink (shadows scale both).
2. Auto-detect polarity (dark ink on paper, or chalk / LCD light on dark) by which side of the
   background holds more strongly deviating pixels.
3. Smooth sensor noise with a small Gaussian (it keeps more of a thin pencil stroke than a
   box filter), threshold (Otsu, never below a minimum contrast) at full resolution, then
   label connected components on a 2x2 max-pooled copy (a quarter of the pixels); each
   component is cut back out of the full-resolution image and labelled again there when it
   could hold two digits.
4. Remove long thin components (ruled lines, table borders) with a directional opening, keeping
   the vertical ones to separate table cells, and keeping line pixels where a strong stroke
   crosses or sits on the line (a digit on a rule keeps its full height). Lines are found on
   the half-resolution copy (widened across first in frames taller than 480 rows, where a
   border slanted by perspective has short straight runs); full resolution is touched only in
   a narrow strip along each (``device.lines``).
5. Drop specks, merge pieces that overlap strongly in x (a two-stroke 4 or 5, strokes cut by a
   ruled line), drop blobs of the wrong size or shape, split too-wide blobs (touching digits)
   at the weakest columns of the vertical projection. Blobs that may or may not be touching
   digits come with other ways to cut them, made only if the reader asks (it asks when the
   model is unsure of the segmenter's choice): narrow pairs ("11", "71") at a column crossed
   by one thin stroke (or two, at a deep ink valley) with full-height parts on both sides,
   wider ones at their weakest columns. Drop shadow-edge residue: wide, faint blobs with
   smooth sides (a pen stroke has a steep edge).
6. Chain digits into numbers left to right (close enough, vertically overlapping, no border in
   between), then order the numbers by rows top to bottom and left to right. A member over
   2x its number's median height (a border's remnant) is no digit of it and makes the number
   doubtful; a member under half the height of its number's tallest digit is a fragment, not
   a digit, and is dropped.
   Digit-sized ink beside a number that was traced but never reached the ink level (faint
   pencil) makes the number doubtful: ``last_doubts`` says so, and the reader's verdict with it.

The parts live in their own modules: the contrast image and the ink level (steps 1-2, and the
threshold of step 3) in ``device.contrast``, lines and rules in ``device.lines``, the cuts of
touching digits in ``device.touching``, chaining and reading order in ``device.order``, the
digit candidate itself in ``device.blobs``.

Each digit comes back as an MNIST-like ink crop (bright strokes on 0, neighbours masked out),
ready for ``device.normalize.normalize_digit``. A ``Segmenter`` reuses its frame-sized buffers,
so one instance must not be shared between threads.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import cv2
import numpy as np
import numpy.typing as npt

from device import lines, touching
from device.blobs import Blob, union
from device.contract import POLARITIES
from device.contrast import ink_contrast, ink_level
from device.errors import ConfigError, ImageError
from device.order import Extent, between, chain_numbers, reading_order
from device.pooled import POOL, up2
from device.reading import Box

logger = logging.getLogger(__name__)

U8 = npt.NDArray[np.uint8]
I32 = npt.NDArray[np.int32]
F32 = npt.NDArray[np.float32]


# Sizes that grow with the camera's resolution (stroke and line widths: the background filter,
# the thickest line) are given in px at this many rows and scaled up for taller frames. Digit
# sizes are not: a small number stays small at any resolution. On 150 rendered 1920x1080
# frames (seed 404): exact 55.3% -> 66.7%, split digits 28 -> 10, but blobs of shadowed
# paper read as digits 35 -> 65 (the wider filter follows shadows less closely); scaling the
# filter by the root of the factor: 64.7% and 46; the line thickness alone: 56.0%.
_REFERENCE_ROWS = 480
# The wider background filter of a taller frame follows shadows and paper texture less
# closely, so its noise floor is higher: min_contrast is raised by (rows / 480) ** this.
# Rendered frames, exact match (paper texture read as digits): 1920x1080 seed 404 66.7% ->
# 67.3% (65 -> 20 blobs), seed 606 68.7% -> 72.0% (59 -> 23); 1280x720 seed 505 80.0% ->
# 80.7%. An exponent of 0.4: 66.7%, 71.3%, 79.3%. 640x480 is unchanged (factor 1).
_FLOOR_EXPONENT = 0.5
# Ink crops are scaled so that this quantile of their stroke pixels becomes 1.0: MNIST strokes
# have a saturated core, a single hot pixel should not set the scale.
_INK_QUANTILE = 0.9
# The stroke mask is grown by this many pixels so the anti-aliased fringe stays in the crop.
_FRINGE = 1
# A piece shorter than this fraction of a neighbouring blob cannot be a digit by itself ...
_FRAGMENT_FRAC = 0.5
# ... and joins the blob it overlaps in x by at least this fraction of its own width.
_FRAGMENT_MIN_OVERLAP = 0.15
# Pieces shorter than this (px) are dropped before merging unless ... they are never digits
# alone, but may be a cut-off part of one; kept small so the merge sees them.
_MIN_PIECE = 2
# Pieces narrower than this w/h (at half resolution) cannot hold two digits that pooling
# joined, so they are not labelled again at full resolution.
_SUBLABEL_ASPECT = 0.5
# Shadow-edge residue: the hysteresis threshold traces a hard shadow's edge as a wide, low
# blob that barely reaches the ink level and whose sides ramp up smoothly, where a pen stroke
# has a steep edge. A blob wider than this w/h ...
_RESIDUE_ASPECT = 1.8
# ... whose ink (90th percentile) is at most this many times the ink level ...
_RESIDUE_CONTRAST = 1.0
# ... and whose edge gradient times its stroke width, relative to its ink, is below this is
# residue (measured on seed 101: residue 0.51-0.52, faint digits mostly above 0.55, bold
# and blurred ones 0.8-2; the product is independent of a stroke's width and blur).
_RESIDUE_EDGE = 0.56
# When erasing lines lowers the contrast image's Otsu level below this fraction of the first
# level, the frame is thresholded again at the lower one: faint pencil in a table with thick
# borders (900 rendered frames: 42 looked at twice, digits missed 164 -> 131, exact 82.0% ->
# 82.6%; at 0.6: 82.2%, at 0.9 or 1: 82.4%).
_RELEVEL_FRAC = 0.8
# Digit-sized ink beside a number that never reached the ink level (faint pencil, part of a
# number under a shadow): the number may be missing digits, and the reading is not trusted.
# Faint ink counts when its height is within these fractions of the number's median digit
# height and its w/h within _FAINT_ASPECT.
_FAINT_HEIGHT = (0.6, 1.5)
_FAINT_ASPECT = (0.15, 1.6)
# A number's member shorter than this fraction of its tallest digit is not a digit.
_SHORT_FRAC = 0.5
# ... but one of at least this fraction of its height, and this fraction of its height squared
# in area, may be what the threshold left of a faint or broken digit (a pencil 6 in three
# pieces between a 9 and a 1 read "2369 1" confidently): the number is then read unsure. On
# 3,400 rendered frames this took 4 wrong readings out of the confident ones and 1 right one
# (2,281 confident, 2,259 right -> 2,276, 2,258); held-out 1,800: 1 and 1; 500 HD: none.
# (0.25 / 0.04: 4 and 2 on the 3,400; 0.3 / 0.06: 2 and 0; 0.35 with no area floor: 4 and 3.)
_BROKEN_FRAC = (0.2, 0.05)
# A number's member taller than this many times its median member is not one of its digits
# (a slanted table border's remnant beside a 1080p row made its digits "short" and the whole
# number vanished). Rendered frames: 550 HD 438 -> 447 exact (digits 91.4 -> 93.6%), 1,800
# held-out 1,577 -> 1,580, 3,400 unchanged (3,033). A digit touching the border is merged
# into the remnant and lost with it, so such a number is read unsure: confident readings right
# 98.9 / 98.9 / 94.8% -> 98.9 / 98.9 / 95.8% (3,400 / held-out / HD; 4 wrong readings caught,
# 7 right ones made unsure, of 3,793 confident). 2.0 (= 1 / _SHORT_FRAC: a number's digits lie
# within a factor two of its median) instead of 2.5 also drops a 48-px blob that held a 1080p
# number's 21-px digits to half its height: exact 3,037 / 1,583 / 464 (2.5: 3,037 / 1,582 /
# 464), digits right +3 / +12 / +4; 1.7: 3,037 / 1,583 / 465.
_TALL_FRAC = 2.0
# The denoising filter's sigma per px of its size (config ``denoise``): 3 px -> 0.6, the
# [1, 4, 1] / 6 kernel. A 1-px pencil stroke keeps 2/3 of its contrast under it, 1/3 under the
# 3x3 box filter used before, while white noise keeps half its std against a third: small thin
# digits the box filter pushed below the ink level are found. On 3,400 rendered frames exact
# match 3,016 -> 3,033, digits missed 216 -> 165 (misread 258 -> 255, extra 5 -> 8); 1,800
# held-out frames 1,562 -> 1,577; 550 HD frames 439 -> 438. Sigma 0.5 / 0.55 / 0.7 / 0.8 (the
# [1, 2, 1] / 4 binomial) / 1.0: 3,017 / 3,025 / 3,033 / 3,029 / 3,023 exact; missed digits
# fall with sigma (156 at 0.5) while extra blobs (40) and misreads (270) rise below 0.6. Costs
# about 100 us a frame at 640x480 against the box's 45 (only sigma 0.8 takes OpenCV's faster
# fixed-point path: 62 us).
_DENOISE_SIGMA = 0.2
# 3x3 structuring element (fringe growth, edge pixels), made once.
_SQUARE3 = np.ones((3, 3), np.uint8)


def size_scale(rows: int) -> float:
    """How much larger than at _REFERENCE_ROWS the stroke-sized settings are for a frame (or
    roi) of ``rows`` rows: rows / _REFERENCE_ROWS, at least 1."""
    return max(1.0, rows / _REFERENCE_ROWS)


def _check(cond: bool, name: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"segmenter config: {name} {message}")


@dataclass(frozen=True)
class SegmenterConfig:
    """How digits are found; every field is validated and documented."""

    roi: tuple[int, int, int, int] | None = None  # x, y, w, h crop before anything else
    polarity: str = "auto"  # "auto" | "dark_on_light" | "light_on_dark"
    min_digit_height: int = 12  # px; smaller blobs are specks
    max_digit_height_frac: float = 0.9  # of the (roi) frame height; taller blobs are not digits
    # px at 480 rows (scaled up with taller frames, like strokes and lines): background filter
    # size, wider than the thickest stroke
    background_kernel: int = 56
    # px; Gaussian filter against sensor noise before thresholding (1 = off); see _DENOISE_SIGMA
    denoise: int = 3
    min_contrast: int = 40  # 0..255; weakest ink contrast that counts (relative for dark ink)
    hysteresis: float = 0.5  # strokes are traced down to this fraction of the ink level
    speck_area: int = 8  # px; components smaller than this are noise, dropped before merging
    merge_overlap: float = 0.5  # x-overlap (fraction of the narrower) that merges two pieces
    merge_gap: float = 0.35  # max vertical gap between merged pieces, fraction of the taller
    min_aspect: float = 0.06  # w/h; thinner blobs are line fragments (a "1" is wider)
    max_aspect: float = 8.0  # w/h; wider blobs are line fragments, not touching digits
    max_fill: float = 0.9  # ink area / box area; fuller blobs (w >= h/2) are smudges
    # w/h above which a blob is taken as touching digits; MNIST's single digits reach 1.43
    # (99th percentile), so lower values split wide 0s, 2s and 5s
    split_aspect: float = 1.55
    # w/h from which a blob the model is unsure of is also read as a narrow touching pair
    # ("11", "71") cut at a clean contact column
    clean_split_aspect: float = 0.3
    # w/h from which a blob left whole also comes with a two-digit split as an alternative
    # for the reader to weigh by classifier confidence (touching "29" looks like a wide 0).
    # Half of the touching pairs in rendered frames are narrower than 1.07 ("11", "17"); the
    # model's "none" output rejects the whole of a pair, so the split can win.
    alternative_aspect: float = 0.75
    digit_aspect: float = 0.75  # typical digit w/h, to estimate how many digits a blob holds
    split_search: float = 0.3  # search +- this fraction of one digit width for the cut
    line_kernel_frac: float = 0.08  # of frame width/height: opening length that finds lines
    line_min_length_frac: float = 0.25  # of frame width/height: shorter runs are not lines
    # px at 480 rows (scaled up with taller frames): thicker straight runs are strokes of big
    # digits, not lines
    max_line_thickness: int = 10
    group_gap: float = 0.9  # digits farther apart than this x their height start a new number
    row_overlap: float = 0.5  # vertical overlap (of the shorter) that puts two on one row

    def __post_init__(self) -> None:
        if self.roi is not None:
            _check(
                len(self.roi) == 4
                and all(isinstance(v, int) for v in self.roi)
                and self.roi[0] >= 0
                and self.roi[1] >= 0
                and self.roi[2] > 0
                and self.roi[3] > 0,
                "roi",
                f"must be four whole numbers x, y, w, h with w, h > 0 (got {self.roi!r})",
            )
        _check(self.polarity in POLARITIES, "polarity", f"must be one of {POLARITIES}")
        _check(2 <= self.min_digit_height <= 1000, "min_digit_height", "must be 2..1000 px")
        _check(
            0.05 < self.max_digit_height_frac <= 1.0,
            "max_digit_height_frac",
            "must be in (0.05, 1]",
        )
        _check(8 <= self.background_kernel <= 1024, "background_kernel", "must be 8..1024 px")
        _check(
            1 <= self.denoise <= 9 and self.denoise % 2 == 1, "denoise", "must be 1, 3, 5, 7 or 9"
        )
        _check(1 <= self.min_contrast <= 254, "min_contrast", "must be 1..254")
        _check(0.1 <= self.hysteresis <= 1.0, "hysteresis", "must be 0.1..1")
        _check(0 <= self.speck_area <= 10_000, "speck_area", "must be 0..10000 px")
        _check(0.0 < self.merge_overlap <= 1.0, "merge_overlap", "must be in (0, 1]")
        _check(0.0 <= self.merge_gap <= 2.0, "merge_gap", "must be 0..2")
        _check(0.0 <= self.min_aspect < 1.0, "min_aspect", "must be 0..1")
        _check(2.0 <= self.max_aspect <= 100.0, "max_aspect", "must be 2..100")
        _check(0.3 <= self.max_fill <= 1.0, "max_fill", "must be 0.3..1")
        _check(0.5 <= self.split_aspect <= 10.0, "split_aspect", "must be 0.5..10")
        _check(0.2 <= self.clean_split_aspect <= 10.0, "clean_split_aspect", "must be 0.2..10")
        _check(0.2 <= self.alternative_aspect <= 10.0, "alternative_aspect", "must be 0.2..10")
        _check(0.2 <= self.digit_aspect <= 2.0, "digit_aspect", "must be 0.2..2")
        _check(0.0 <= self.split_search <= 0.5, "split_search", "must be 0..0.5")
        _check(0.01 <= self.line_kernel_frac <= 1.0, "line_kernel_frac", "must be 0.01..1")
        _check(
            self.line_kernel_frac <= self.line_min_length_frac <= 1.0,
            "line_min_length_frac",
            "must be between line_kernel_frac and 1",
        )
        _check(1 <= self.max_line_thickness <= 100, "max_line_thickness", "must be 1..100 px")
        _check(0.0 <= self.group_gap <= 20.0, "group_gap", "must be 0..20")
        _check(0.0 < self.row_overlap <= 1.0, "row_overlap", "must be in (0, 1]")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegmenterConfig:
        """Build from a config table; unknown keys are errors that name the key."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"segmenter config: unknown key(s) {unknown}; known keys are {sorted(known)}"
            )
        values = dict(data)
        if values.get("roi") is not None:
            roi = values["roi"]
            if not isinstance(roi, (list, tuple)):
                raise ConfigError("segmenter config: roi must be a list [x, y, w, h]")
            values["roi"] = tuple(roi)
        try:
            return cls(**values)
        except TypeError as e:
            raise ConfigError(f"segmenter config: {e}") from e


class Segment:
    """One digit found in a frame.

    ``ink`` is the (h, w) float32 crop of the box, ink bright in [0, 1], other blobs zeroed.
    ``alternatives`` are made only when first asked for (the reader asks for those of unsure
    blobs alone), from copies of the frame's pixels, so they stay right after the next frame.
    """

    __slots__ = ("_alternatives", "box", "group", "ink", "span")

    def __init__(
        self,
        box: Box,
        ink: F32,
        group: int,
        alternatives: Alternatives | functools.partial[Alternatives] = (),
        span: int = 1,
    ) -> None:
        self.box = box  # x, y, w, h in FULL-frame coordinates (roi offset added back)
        self.ink = ink
        self.group = group  # which number (row / cell / gap-separated cluster), reading order
        # Other readings of the same ink when the segmenter cannot tell by shape alone whether
        # a blob is one digit or touching ones: each alternative replaces this segment and the
        # ``span - 1`` segments after it (the other parts of a split blob). The reader keeps
        # the most confident reading.
        self._alternatives = alternatives
        self.span = span

    @property
    def alternatives(self) -> Alternatives:
        if isinstance(self._alternatives, functools.partial):
            self._alternatives = self._alternatives()
        return self._alternatives

    def __repr__(self) -> str:
        return f"Segment(box={self.box}, group={self.group}, span={self.span})"


Alternatives = tuple[tuple[Segment, ...], ...]


class _Recut(NamedTuple):
    """A blob the segmenter could not settle by shape, and how to cut it other ways."""

    blob: Blob
    cuts: functools.partial[list[list[Blob]]]


class _Pixels(NamedTuple):
    """Copies of the contrast and binary images under a blob (roi coordinates x, y), and the
    roi's offset in the frame: what its alternatives are cut from, after the frame is gone."""

    contrast: U8
    binary: U8
    x: int
    y: int
    ox: int
    oy: int
    group: int


def _late_alternatives(make: functools.partial[list[list[Blob]]], pixels: _Pixels) -> Alternatives:
    """The alternative readings ``make`` returns, as segments with their ink."""
    out = []
    for alt in make():
        if not alt:
            continue
        segs = []
        for b in alt:
            x, y = b.x - pixels.x, b.y - pixels.y
            contrast = pixels.contrast[y : y + b.h, x : x + b.w]
            binary = pixels.binary[y : y + b.h, x : x + b.w]
            box = (b.x + pixels.ox, b.y + pixels.oy, b.w, b.h)
            segs.append(Segment(box, _ink(b.mask, contrast, binary), pixels.group))
        out.append(tuple(segs))
    return tuple(out)


class _Buffers:
    """Frame-sized working arrays, reallocated only when the frame size changes."""

    def __init__(self, h: int, w: int) -> None:
        self.shape = (h, w)
        self.gray: U8 = np.empty((h, w), np.uint8)
        self.bg: U8 = np.empty((h, w), np.uint8)
        self.contrast: U8 = np.empty((h, w), np.uint8)
        self.binary: U8 = np.empty((h, w), np.uint8)
        # Half-resolution copy of the binary image (2x2 max-pool) and its labels: labelling
        # a quarter of the pixels is 4x cheaper and loses nothing a 12-px digit needs, because
        # every piece is cut back out of the full-resolution binary image afterwards.
        hh, hw = max(1, h // POOL), max(1, w // POOL)
        self.half: U8 = np.empty((hh, hw), np.uint8)
        self.labels: I32 = np.empty((hh, hw), np.int32)
        # Pixels above the ink level: which components reach it at all.
        self.strong: U8 = np.empty((h, w), np.uint8)
        # The box (x0, y0, x1, y1) of ``half`` that holds all ink and was labelled.
        self.window = (0, 0, 0, 0)


class Segmenter:
    """Splits a frame into digit crops grouped into numbers (see the module docstring)."""

    def __init__(self, config: SegmenterConfig | None = None) -> None:
        self.config = config if config is not None else SegmenterConfig()
        self._buf: _Buffers | None = None
        self.last_polarity = ""  # what the last frame was read as, for logs and the web view
        # Whether the last frame's polarity was clear (always, unless auto-detected).
        self.last_polarity_sure = True
        self.last_polarity_auto = False  # whether it was detected (config "auto", no override)
        # Why the last frame's numbers may be incomplete (for the reader's verdict).
        self.last_doubts: list[str] = []
        self._faint: list[Box] = []  # digit-sized ink that never reached the ink level
        self._scale = 1.0  # the frame's (roi's) rows / _REFERENCE_ROWS, at least 1
        self._offset: tuple[int, int] | None = None  # the last frame's roi origin (x, y)
        self._slopes: list[float] = []  # the frame's horizontal lines, rows per column

    # ---------------------------------------------------------------- frame preparation
    def _gray(self, frame: npt.NDArray[Any]) -> tuple[U8, int, int]:
        """Validate the frame, crop the roi and return (grey view, x offset, y offset)."""
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
            kind = frame.dtype if isinstance(frame, np.ndarray) else type(frame).__name__
            raise ImageError(f"frame must be a uint8 numpy image, got {kind}; decode it first")
        if frame.ndim == 3 and frame.shape[2] == 1:
            frame = frame[..., 0]
        if not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] in (3, 4))):
            raise ImageError(
                f"frame shape {frame.shape} is not grey (HxW) or colour (HxWx3 BGR / HxWx4 BGRA)"
            )
        fh, fw = frame.shape[:2]
        x0, y0, w, h = 0, 0, fw, fh
        roi = self.config.roi
        if roi is not None:
            x0, y0, w, h = roi
            if x0 + w > fw or y0 + h > fh:
                raise ImageError(
                    f"roi {roi} does not fit inside the {fw}x{fh} frame; "
                    "fix segment.roi in the config"
                )
        if h < self.config.min_digit_height or w < self.config.min_digit_height:
            raise ImageError(
                f"frame (or roi) {w}x{h} is smaller than one digit "
                f"({self.config.min_digit_height} px); use a larger frame or roi"
            )
        view = frame[y0 : y0 + h, x0 : x0 + w]
        buf = self._buffers(h, w)
        if view.ndim == 2:
            np.copyto(buf.gray, view)
        else:
            code = cv2.COLOR_BGR2GRAY if view.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
            cv2.cvtColor(view, code, dst=buf.gray)
        if self.config.denoise > 1:
            # In place: OpenCV's filters read through their own border buffer.
            k = self.config.denoise
            cv2.GaussianBlur(buf.gray, (k, k), _DENOISE_SIGMA * k, dst=buf.gray)
        return buf.gray, x0, y0

    def _scaled(self, px: int) -> int:
        """A size in px at _REFERENCE_ROWS, for this frame."""
        return round(px * self._scale)

    def _buffers(self, h: int, w: int) -> _Buffers:
        if self._buf is None or self._buf.shape != (h, w):
            self._buf = _Buffers(h, w)
        return self._buf

    def _contrast(self, gray: U8, polarity: str) -> tuple[U8, str, bool]:
        """Ink contrast image (0..255, ink bright), the polarity it was read with and whether
        that polarity is sure (``polarity`` "auto" detects it from the frame)."""
        buf = self._buffers(*gray.shape)
        kernel = self._scaled(self.config.background_kernel)
        polarity, sure = ink_contrast(gray, polarity, kernel, buf.bg, buf.contrast)
        return buf.contrast, polarity, sure

    # ---------------------------------------------------------------- main entry
    def segment(self, frame: npt.NDArray[Any], polarity: str | None = None) -> list[Segment]:
        """Digits of ``frame`` (BGR uint8 HxWx3 or grey HxW), in reading order.

        ``polarity`` overrides the config's for this frame (the reader's second look at a
        frame whose polarity was unsure).
        """
        if polarity is not None and polarity not in POLARITIES:
            raise ValueError(f"polarity must be one of {POLARITIES}, got {polarity!r}")
        gray, ox, oy = self._gray(frame)
        self._offset = (ox, oy)
        buf = self._buffers(*gray.shape)
        self._scale = size_scale(gray.shape[0])
        wanted = polarity or self.config.polarity
        contrast, polarity, sure = self._contrast(gray, wanted)
        self.last_polarity, self.last_polarity_sure = polarity, sure
        self.last_polarity_auto = wanted == "auto"
        self._faint = []
        self._slopes = []
        level = self._level(contrast)
        n, labels, stats, separators, erased = self._ink_and_lines(buf, level)
        if erased:
            # Thick borders weigh in Otsu's level; faint writing between them may lie below
            # it. With the lines gone, a much lower level is the writing's own: look again.
            relevel = self._level(contrast)
            if relevel < _RELEVEL_FRAC * level:
                level = relevel
                n, labels, stats, more, _ = self._ink_and_lines(buf, level)
                separators += more
        # How the page is tilted, from its rules and table borders (0 without any).
        tilt = sum(self._slopes) / len(self._slopes) if self._slopes else 0.0
        pieces = self._pieces(buf, n, labels, stats)
        blobs = [
            b for b in self._blobs(pieces, gray.shape[0]) if not _shadow_residue(b, contrast, level)
        ]
        if separators:
            blobs = [b for b in blobs if not self._line_stub(b, separators)]
        cfg = self.config
        chains = chain_numbers(blobs, separators, cfg.group_gap, cfg.row_overlap, tilt)
        numbers = [n for n in map(_by_height, chains) if n.kept]
        # In reading order again where a member was dropped for its height: a border's
        # remnant stretched its number's box over the rows below. (Not otherwise: without the
        # short fragments dropped, boxes order a few frames differently, 1 of 500 wrongly.)
        order = list(range(len(numbers)))
        if any(n.tall for n in numbers):
            order = reading_order([union(n.kept) for n in numbers], cfg.row_overlap, tilt)
        groups = [numbers[i].kept for i in order]
        self.last_doubts = (
            [
                f"faint digit-sized ink beside number {k + 1}: digits may be missing"
                for k, members in enumerate(groups)
                if any(self._beside(members, f, separators) for f in self._faint)
            ]
            + [
                f"a stroke far taller than number {k + 1} joined it (a table border?): "
                "a digit touching it may be missing"
                for k, i in enumerate(order)
                if numbers[i].tall
            ]
            + [
                f"a piece of ink too short for a digit was left out of number {k + 1}: "
                "a faint or broken digit may be missing"
                for k, i in enumerate(order)
                if numbers[i].broken
            ]
        )
        out: list[Segment] = []
        for g, members in enumerate(groups):
            for chosen, recut in self._split_wide(members):
                if not chosen:
                    continue
                alts: Alternatives | functools.partial[Alternatives] = ()
                span = 1
                pixels = None
                if recut is not None:
                    b = recut.blob
                    pixels = _Pixels(
                        buf.contrast[b.y : b.y1, b.x : b.x1].copy(),
                        buf.binary[b.y : b.y1, b.x : b.x1].copy(),
                        b.x,
                        b.y,
                        ox,
                        oy,
                        g,
                    )
                    alts = functools.partial(_late_alternatives, recut.cuts, pixels)
                    span = len(chosen)
                out.append(self._segment(chosen[0], buf, ox, oy, g, alts, span))
                out.extend(self._part(b, buf, ox, oy, g, pixels) for b in chosen[1:])
        return out

    def ink_in(self, box: Box) -> F32:
        """The ink of the last frame segmented inside ``box`` (x, y, w, h in frame
        coordinates), every stroke pixel in it counted: what a segmenter that found exactly
        that digit would hand over (``host.score_frames --truth-boxes`` reads the truth's
        digit boxes so, to part the classifier's errors from the segmenter's)."""
        if self._buf is None or self._offset is None:
            raise RuntimeError("ink_in needs a frame segmented first")
        ox, oy = self._offset
        h, w = self._buf.shape
        x0, y0 = max(0, box[0] - ox), max(0, box[1] - oy)
        x1, y1 = min(w, box[0] - ox + box[2]), min(h, box[1] - oy + box[3])
        if x1 <= x0 or y1 <= y0:
            return np.zeros((max(1, box[3]), max(1, box[2])), np.float32)
        binary = self._buf.binary[y0:y1, x0:x1]
        return _ink(binary > 0, self._buf.contrast[y0:y1, x0:x1], binary)

    def _level(self, contrast: U8) -> float:
        """The ink level of the contrast image (``device.contrast.ink_level``), never below
        min_contrast (raised for frames taller than _REFERENCE_ROWS, see _FLOOR_EXPONENT)."""
        return ink_level(contrast, self.config.min_contrast * self._scale**_FLOOR_EXPONENT)

    def _ink_and_lines(
        self, buf: _Buffers, level: float
    ) -> tuple[int, I32, I32, list[lines.Separator], bool]:
        """Threshold at ``level``, erase lines, label what is left.

        Returns the components (count, labels, statistics), the vertical lines (cell
        separators) and whether any line pixel was erased (from the contrast image too).
        """
        cfg = self.config
        # Hysteresis: components are traced at a lower level so faint stroke sections and
        # thin ruled lines stay connected, and kept only if they reach ``level`` somewhere.
        cv2.threshold(buf.contrast, level * cfg.hysteresis, 255, cv2.THRESH_BINARY, dst=buf.binary)
        cv2.threshold(buf.contrast, level, 255, cv2.THRESH_BINARY, dst=buf.strong)
        n, labels, stats = self._components(buf)
        candidates = lines.candidates(stats, labels.shape)
        if not candidates.size:
            return n, labels, stats, [], False
        rules = lines.LineRules(
            cfg.line_kernel_frac,
            cfg.line_min_length_frac,
            self._scaled(cfg.max_line_thickness),
            cfg.max_digit_height_frac,
            self._scale,
        )
        images = lines.Images(buf.binary, buf.contrast, buf.strong)
        separators, slopes, erased = lines.remove_lines(images, labels, stats, candidates, rules)
        self._slopes += slopes
        if erased:
            # Large digits are candidates too: label again only if a line went.
            n, labels, stats = self._components(buf)
        return n, labels, stats, separators, erased

    def _segment(
        self,
        b: Blob,
        buf: _Buffers,
        ox: int,
        oy: int,
        group: int,
        alternatives: Alternatives | functools.partial[Alternatives] = (),
        span: int = 1,
    ) -> Segment:
        box = (b.x + ox, b.y + oy, b.w, b.h)
        contrast = buf.contrast[b.y : b.y1, b.x : b.x1]
        binary = buf.binary[b.y : b.y1, b.x : b.x1]
        return Segment(box, _ink(b.mask, contrast, binary), group, alternatives, span)

    def _part(
        self, b: Blob, buf: _Buffers, ox: int, oy: int, group: int, pixels: _Pixels | None
    ) -> Segment:
        """A later part of a blob cut for its width: a part wide enough to hold two touching
        digits offers its own two-way cuts, which the reader weighs if it keeps the split."""
        if pixels is None or b.w / b.h < self.config.alternative_aspect:
            return self._segment(b, buf, ox, oy, group)
        cuts = functools.partial(self._two_way, b)
        return self._segment(
            b, buf, ox, oy, group, functools.partial(_late_alternatives, cuts, pixels)
        )

    def _components(self, buf: _Buffers) -> tuple[int, I32, I32]:
        """Label the 2x2 max-pooled binary image (any ink in a cell makes the cell ink)."""
        h, w = buf.half.shape
        # INTER_AREA over exact 2x2 cells: any 255 among four pixels averages to >= 64.
        cv2.resize(
            buf.binary[: h * POOL, : w * POOL], (w, h), dst=buf.half, interpolation=cv2.INTER_AREA
        )
        # Statistics cost per pixel scanned, background included: label only the box that
        # holds the ink (under half the frame for most). The box starts on even coordinates,
        # so BBDT's 2x2 blocks fall as in the whole image: same labels, in the same order.
        x, y, bw, bh = cv2.boundingRect(buf.half)
        buf.labels.fill(0)
        x0, y0 = x & ~1, y & ~1
        buf.window = (x0, y0, x + bw, y + bh)
        if bw == 0:
            return 1, buf.labels, np.zeros((1, 5), np.int32)
        window = buf.labels[y0 : y + bh, x0 : x + bw]
        # BBDT (Grana) measured 2-3x faster than the default on sparse, mostly empty frames.
        n, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(
            buf.half[y0 : y + bh, x0 : x + bw], 8, cv2.CV_32S, cv2.CCL_GRANA, labels=window
        )
        if not np.may_share_memory(labels, buf.labels):
            window[...] = labels  # (OpenCV allocated its own output after all)
        stats[1:, cv2.CC_STAT_LEFT] += x0
        stats[1:, cv2.CC_STAT_TOP] += y0
        return int(n), buf.labels, stats

    # ---------------------------------------------------------------- blobs
    def _pieces(self, buf: _Buffers, n: int, labels: I32, stats: I32) -> list[Blob]:
        """Half-resolution components -> full-resolution stroke pieces reaching the ink level."""
        cfg = self.config
        # A component's pooled area is at least a quarter of its full-resolution area.
        ids = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] * POOL * POOL >= cfg.speck_area) + 1
        ids = ids[stats[ids, cv2.CC_STAT_HEIGHT] * POOL >= _MIN_PIECE]
        # Most components (paper texture, shadow edges traced at the hysteresis level) never
        # reach the ink level: one pass over the pooled strong pixels finds them all, instead of
        # cutting each out at full resolution to look.
        # (Strong pixels are ink pixels: all lie in the labelled window.)
        x0, y0, x1, y1 = buf.window
        if not ids.size:
            return []
        strong_half = cv2.resize(
            buf.strong[y0 * POOL : y1 * POOL, x0 * POOL : x1 * POOL],
            (x1 - x0, y1 - y0),
            interpolation=cv2.INTER_AREA,
        )
        reaches = np.bincount(labels[y0:y1, x0:x1][strong_half > 0], minlength=n) > 0
        self._faint += _digit_sized(stats[ids[~reaches[ids]]], cfg.min_digit_height)
        ids = ids[reaches[ids]]
        out: list[Blob] = []
        for i, (x, y, w, h) in zip(ids.tolist(), stats[ids, :4].tolist(), strict=True):
            fx, fy = x * POOL, y * POOL
            own = up2((labels[y : y + h, x : x + w] == i).view(np.uint8))
            own &= buf.binary[fy : fy + h * POOL, fx : fx + w * POOL]
            if h * POOL < cfg.min_digit_height or w < _SUBLABEL_ASPECT * h:
                # A fragment, or too narrow to hold two digits side by side: one piece.
                # (It reaches the ink level: components that do not were dropped above.)
                out.extend(_whole_piece(own, fx, fy, cfg.speck_area))
                continue
            # Pooling can join strokes a pixel or two apart (close digits): label again at
            # full resolution inside the piece. Labelling without statistics costs a quarter
            # as much, and mostly finds one component, whose box and area are the piece's.
            k, sub = cv2.connectedComponentsWithAlgorithm(own, 8, cv2.CV_16U, cv2.CCL_GRANA)
            if k == 2:
                # The only component holds the pixel that put this one among ``reaches``.
                out.extend(_whole_piece(own, fx, fy, cfg.speck_area))
                continue
            k, sub, sst, _ = cv2.connectedComponentsWithStatsWithAlgorithm(
                own, 8, cv2.CV_16U, cv2.CCL_GRANA
            )
            for j, (sx, sy, sw, sh, area) in enumerate(sst.tolist()):
                if j == 0 or area < cfg.speck_area:
                    continue
                m = sub[sy : sy + sh, sx : sx + sw] == j
                if not buf.strong[fy + sy : fy + sy + sh, fx + sx : fx + sx + sw][m].any():
                    continue
                out.append(Blob(fx + sx, fy + sy, sw, sh, m, area))
        return out

    def _blobs(self, pieces: list[Blob], frame_h: int) -> list[Blob]:
        """Stroke pieces -> merged digit candidates of a plausible size and shape."""
        cfg = self.config
        pieces.sort(key=lambda b: -b.area)
        max_h = cfg.max_digit_height_frac * frame_h
        merged: list[Blob] = []
        # Greedy, biggest first: a small piece joins the blob it overlaps most in x.
        for p in pieces:
            best, best_overlap = None, 0.0
            for m in merged:
                if m.x >= p.x1 or p.x >= m.x1:
                    continue  # no overlap in x: never merged (most pairs; cheap to rule out)
                overlap = min(p.x1, m.x1) - max(p.x, m.x)
                frac = overlap / max(1, min(p.w, m.w))
                gap = max(p.y, m.y) - min(p.y1, m.y1)
                # A piece too short to be a digit (the bar of a 5, a cut-off stroke end) needs
                # only some overlap.
                fragment = p.h < _FRAGMENT_FRAC * m.h
                need = cfg.merge_overlap if not fragment else _FRAGMENT_MIN_OVERLAP
                if (
                    frac >= need
                    and gap <= cfg.merge_gap * max(p.h, m.h)
                    and max(p.y1, m.y1) - min(p.y, m.y) <= max_h
                    and frac > best_overlap
                ):
                    best, best_overlap = m, frac
            if best is None:
                merged.append(p)
            else:
                best.absorb(p)
        out = []
        # Far too wide for digits: digits joined by a rule the line finder missed?
        stripped = []
        for b in merged:
            parts = lines.strip_rule(b) if b.w > cfg.max_aspect * b.h else []
            stripped.extend(parts or [b])
        for b in stripped:
            aspect = b.w / b.h
            if b.h < cfg.min_digit_height or b.h > max_h:
                continue
            if aspect < cfg.min_aspect or aspect > cfg.max_aspect:
                continue
            if aspect >= 0.5 and b.area > cfg.max_fill * b.w * b.h:
                continue
            out.append(b)
        return out

    def _beside(self, number: list[Blob], faint: Box, separators: list[lines.Separator]) -> bool:
        """Whether ``faint`` could be a digit of ``number`` that the threshold missed: as tall
        as its digits, on its row, within the gap that chains digits, no border between."""
        cfg = self.config
        fx, fy, fw, fh = faint
        heights = sorted(b.h for b in number)
        h = heights[len(heights) // 2]
        if not _FAINT_HEIGHT[0] * h <= fh <= _FAINT_HEIGHT[1] * h:
            return False
        x0, y0, w, h_all = union(number)
        x1, y1 = x0 + w, y0 + h_all
        overlap = min(y1, fy + fh) - max(y0, fy)
        if overlap < cfg.row_overlap * min(fh, h):
            return False
        gap = max(x0 - (fx + fw), fx - x1)
        if gap > cfg.group_gap * h:
            return False
        if fx + fw <= x0 or fx >= x1:  # outside the number: no border in between
            ink, digits = Extent(fx, fy, fx + fw, fy + fh), Extent(x0, y0, x1, y1)
            left, right = (ink, digits) if fx < x0 else (digits, ink)
            if any(between(left, right, s) for s in separators):
                return False
        return True

    def _line_stub(self, b: Blob, separators: list[lines.Separator]) -> bool:
        """A thin blob in line with a vertical border, just past its end: a piece of it.

        In line: the border's path runs through the blob (give or take the thickest
        line). The test was the border's box alone, which perspective widens: a "1" written
        beside a slanted border was dropped as its stub (3,400 rendered frames 3,033 -> 3,037
        exact, 1,800 held-out 1,580 -> 1,582, HD unchanged).
        """
        cfg = self.config
        if b.w > self._scaled(cfg.max_line_thickness):
            return False
        reach = cfg.line_kernel_frac * self._buf.shape[0] if self._buf else 0.0
        slack = float(self._scaled(cfg.max_line_thickness))
        for sep in separators:
            sx, sy, sw, sh = sep.x, sep.y, sep.w, sep.h
            # On the line's own path (a slanted border's box is wide: a 1 beside it is no stub).
            if not b.x - slack <= sep.x_at(b.y + b.h / 2) <= b.x1 + slack:
                continue
            if (
                b.x >= sx - sw
                and b.x1 <= sx + 2 * sw
                and (sy - reach <= b.y1 <= sy + sh + reach or sy - reach <= b.y <= sy + sh + reach)
            ):
                return True
        return False

    # ---------------------------------------------------------------- touching digits
    def _two_way(self, b: Blob) -> list[list[Blob]]:
        """``touching.two_way`` with this segmenter's settings."""
        return touching.two_way(b, self.config.alternative_aspect, self.config.min_digit_height)

    def _split_wide(self, blobs: list[Blob]) -> list[tuple[list[Blob], _Recut | None]]:
        """Split blobs that hold touching digits; ``blobs`` is one number, left to right.

        Only a blob much wider than one digit is split here. Comparing with the width of the
        number's other digits (tried twice) split wide 0s, 2s and 4s more often than it found
        touching pairs.

        Shape alone cannot settle every blob, so each comes back as (the segmenter's choice,
        how to re-cut it): a blob split for its width offers itself whole and cut into one
        digit fewer or more; a blob left whole offers its clean cut if it looks like a narrow
        pair ("11", "71") and its two-way cuts if it is wide enough to be two touching digits.
        The reader keeps what classifies best. The re-cuts are made only if the reader asks
        (it asks for unsure blobs alone). Until session 4 a clean cut was the segmenter's
        own choice: left to the model, 900 rendered frames read 84.2% exact instead of 83.3%
        and the check runs for a few blobs per frame instead of nearly all.
        """
        cfg = self.config
        out: list[tuple[list[Blob], _Recut | None]] = []
        for b in blobs:
            aspect = b.w / b.h
            if aspect > cfg.split_aspect:
                count = max(2, round(b.w / (cfg.digit_aspect * b.h)))
                args = (b, count, cfg.split_search, cfg.min_digit_height)
                recount = functools.partial(touching.recount, *args)
                out.append((touching.cut(*args), _Recut(b, recount)))
                continue
            recut = None
            if aspect >= cfg.clean_split_aspect:
                recut = _Recut(b, functools.partial(self._two_way, b))
            out.append(([b], recut))
        return out


def _ink(own: npt.NDArray[np.bool_], crop: U8, binary: U8) -> F32:
    """A blob's contrast crop, its own strokes only, scaled to MNIST-like ink.

    ``own``: the blob's stroke mask; ``crop`` and ``binary``: the contrast and binary images
    under its box.
    """
    # The scale comes from the blob's own strokes (always inside what is kept below);
    # uint8 order statistics are cheaper than float ones.
    strokes = crop[own]
    if not strokes.size:
        return np.zeros(own.shape, np.float32)
    top = lines.order_statistic(strokes, int(_INK_QUANTILE * (strokes.size - 1)))
    if top <= 0:
        return np.zeros(own.shape, np.float32)
    grown = cv2.dilate(own.view(np.uint8), _SQUARE3)
    # The fringe, but not other blobs' strokes that reach into the box.
    keep = grown.view(np.bool_) & ((binary == 0) | own)
    # min(x, top) / top == min(x / top, 1): clipping the uint8 crop is one cheap pass.
    ink = cv2.min(crop, top)
    ink *= keep
    return np.divide(ink, np.float32(top), dtype=np.float32)


def _whole_piece(own: U8, fx: int, fy: int, speck_area: int) -> list[Blob]:
    """All of ``own`` (a piece's stroke pixels, cut out at (fx, fy)) as one blob, trimmed to
    its ink; none if it is a speck."""
    area = cv2.countNonZero(own)
    if area < speck_area:
        return []
    sx, sy, sw, sh = cv2.boundingRect(own)
    return [Blob(fx + sx, fy + sy, sw, sh, own[sy : sy + sh, sx : sx + sw].view(np.bool_), area)]


def _shadow_residue(b: Blob, contrast: U8, level: float) -> bool:
    """True for a wide, faint blob with smooth sides: a hard shadow's edge, not ink."""
    if b.w < _RESIDUE_ASPECT * b.h:
        return False
    ink = contrast[b.y : b.y1, b.x : b.x1][b.mask]
    top = float(lines.order_statistic(ink, int(_INK_QUANTILE * (ink.size - 1))))
    if top > _RESIDUE_CONTRAST * level:
        return False
    # The gradient at the blob's edge needs the paper around it: a margin of two pixels.
    h, w = contrast.shape
    y0, x0 = max(0, b.y - 2), max(0, b.x - 2)
    crop = contrast[y0 : min(h, b.y1 + 2), x0 : min(w, b.x1 + 2)]
    own = np.zeros(crop.shape, np.uint8)
    own[b.y - y0 : b.y1 - y0, b.x - x0 : b.x1 - x0] = b.mask
    edge = (own - cv2.erode(own, np.ones((3, 3), np.uint8), borderValue=0)).view(np.bool_)
    if not edge.any():
        return False
    # Sobel's 3x3 kernel weighs the centre difference 8 times: /8 gives grey levels per px.
    src = crop.astype(np.float32)
    gx = cv2.Sobel(src, cv2.CV_32F, 1, 0, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.Sobel(src, cv2.CV_32F, 0, 1, borderType=cv2.BORDER_REPLICATE)
    steep = float(cv2.magnitude(gx, gy)[edge].mean()) / 8
    stroke = 2.0 * b.area / int(np.count_nonzero(edge))
    return steep * stroke / max(1.0, top) < _RESIDUE_EDGE


def _digit_sized(stats: I32, min_height: int) -> list[Box]:
    """Full-resolution boxes of the half-resolution components (statistics rows) that are
    shaped like a digit: tall enough, not a line fragment, not a wide smear."""
    boxes = stats[:, :4] * POOL
    w, h = boxes[:, 2], boxes[:, 3]
    ok = (h >= min_height) & (w >= _FAINT_ASPECT[0] * h) & (w <= _FAINT_ASPECT[1] * h)
    return [(x, y, bw, bh) for x, y, bw, bh in boxes[ok].tolist()]


class _Heights(NamedTuple):
    """A number's digits after the height rules (``_by_height``) and what those dropped."""

    kept: list[Blob]
    tall: bool  # a member far taller than the rest went
    broken: bool  # a dropped fragment may be part of a faint or broken digit (_BROKEN_FRAC)


def _by_height(number: list[Blob]) -> _Heights:
    """``number``'s digits by height, and what was taken out (see ``_Heights``).

    Handwritten digits of one number share a height (MNIST's are all scaled to one). A member
    over ``_TALL_FRAC`` times the median height is no digit of the number (what is left of a
    slanted table border beside it, or a digit merged with it) and goes first, so that it does
    not set the height the others are held to; then a piece under ``_SHORT_FRAC`` of the
    tallest left is a stroke fragment that no digit absorbed, a dot of ink or residue at a
    shadow edge, not a digit of its own.
    """
    if len(number) < 2:
        return _Heights(number, False, False)
    median = sorted(b.h for b in number)[len(number) // 2]
    kept = [b for b in number if b.h <= _TALL_FRAC * median]
    tallest = max(b.h for b in kept)
    low, area = _BROKEN_FRAC[0] * tallest, _BROKEN_FRAC[1] * tallest * tallest
    broken = any(low <= b.h < _SHORT_FRAC * tallest and b.area >= area for b in kept)
    return _Heights(
        [b for b in kept if b.h >= _SHORT_FRAC * tallest], len(kept) < len(number), broken
    )
