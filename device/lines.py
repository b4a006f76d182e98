"""Ruled lines and table borders: find them among the half-resolution components, erase them
at full resolution.

Lines are straight runs much longer than thick (a directional opening finds them); a digit's
stroke that crosses or sits on a line keeps its pixels there, so a digit written on a rule
keeps its full height. Vertical lines are returned: they separate table cells, and the
segmenter does not chain digits across them.

A rule the finder misses (faint, broken, slanted) joins the digits written on it into one
blob far too wide for its height: ``strip_rule`` erases its rows from that blob.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import cv2
import numpy as np
import numpy.typing as npt

from device.blobs import Blob
from device.pooled import POOL, up2
from device.reading import Box

U8 = npt.NDArray[np.uint8]
I32 = npt.NDArray[np.int32]

# Components at least this long (fraction of the frame side) may be ruled lines or borders.
CANDIDATE_FRAC = 0.2
# A straight run is a line only if it is this many times longer than thick; the steep
# stroke of a 7 in a small roi is long for the frame but only ~10x its thickness.
_LINE_MIN_ELONGATION = 15
# A horizontal line is also longer than this many times the tallest digit allowed.
_LINE_VS_HEIGHT = 0.8
# One pixel across a horizontal / vertical line.
_ACROSS_H = np.ones((3, 1), np.uint8)
_ACROSS_V = np.ones((1, 3), np.uint8)
# How far (full px) past a line's thickness strong ink keeps the line's pixels beside it.
_REACH_PAST_LINE = 4
# A stroke lying along a line (the base of a 2 written on a rule) crosses nothing: it was
# erased with the line, and the 2 read as a 7 (the commonest misread on ruled frames). Line
# pixels with this many times the line's median contrast that connect, along such pixels, to a
# kept crossing stay: ink on the line, joined to a digit. (A stroke on the line that joins no
# crossing, such as a 1 drawn along a cell border, still goes with the line.) Rendered
# frames exact (3,400 / held-out 1,800 / 300 HD): 3,053 / 1,595 / 259 -> 3,075 / 1,606 /
# 260, right among confident 99.2% / 99.2% either way (HD 98.5 -> 98.0%, one reading).
# 1.3 / 1.7 / 2.0 read 3,051 / 3,072 / 3,072 of the 3,400; 1.5 without the connection to a
# crossing 3,021 (darker stretches of the rules stayed, as stubs joining digits).
_INK_ON_LINE = 1.5
# A slanted line (perspective) has short straight runs: the directional opening, whose length
# scales with the frame, missed thin slanted table borders in 720p and 1080p frames. There the
# mask is first widened across the line by 2 * int(this * (scale - 1)) + 1 half-res px
# (3 at 720 rows, 5 at 1080), and the opening's runs are kept only on the mask itself. Rendered
# HD frames (550): exact 447 -> 464 (84.4%), digits 93.6 -> 95.3%, right among confident
# 95.8 -> 98.3%; 300 fresh HD frames (seeds 8181 at 1080p, 8282 at 720p) 251 -> 256, 96.3
# -> 98.4%. At this factor 1: 461 and 257. At 480 rows, widening by 3 px loses 69 of 3,400
# frames (3,033 -> 2,964): nothing is widened there.
_SLANT_WIDEN = 2


@dataclass(frozen=True)
class LineRules:
    """What counts as a line in this frame (from the segmenter's config)."""

    kernel_frac: float  # of frame width/height: opening length that finds runs
    min_length_frac: float  # of frame width/height: shorter runs are not lines
    max_thickness: int  # px at this frame's resolution: thicker runs are strokes
    max_digit_height_frac: float  # of the frame height: the tallest digit allowed
    scale: float = 1.0  # the frame's rows / 480, at least 1 (the segmenter's size scale)


class Separator(NamedTuple):
    """A vertical line (a cell border): its box and where it runs, in full-resolution px.

    Perspective slants a border, so its box can be wider than the gap between two digits
    beside it; ``x_at`` says where the line itself is on a given row.
    """

    x: int
    y: int
    w: int
    h: int
    x_top: float  # the line's centre on its first row ...
    x_bottom: float  # ... and on its last

    def x_at(self, row: float) -> float:
        """The line's centre on ``row`` (beyond its ends, where it would run on)."""
        return self.x_top + (self.x_bottom - self.x_top) * (row - self.y) / max(1, self.h)


class Images(NamedTuple):
    """The full-resolution images a line is erased from (all the same shape, uint8)."""

    binary: U8  # ink traced at the hysteresis level
    contrast: U8  # ink contrast
    strong: U8  # ink above the ink level


def candidates(stats: I32, shape: tuple[int, int]) -> npt.NDArray[np.intp]:
    """Labels (1-based) of the components long enough to be lines, from their statistics."""
    hh, hw = shape
    return (
        np.flatnonzero(
            (stats[1:, cv2.CC_STAT_WIDTH] >= CANDIDATE_FRAC * hw)
            | (stats[1:, cv2.CC_STAT_HEIGHT] >= CANDIDATE_FRAC * hh)
        )
        + 1
    )


def remove_lines(
    images: Images,
    labels: I32,
    stats: I32,
    candidates: npt.NDArray[np.intp],
    rules: LineRules,
) -> tuple[list[Separator], list[float], bool]:
    """Erase ruled lines / borders among the candidate components.

    Returns the vertical lines (they separate table cells), the slope (rows per column) of
    each horizontal line (how the page is tilted) and whether any pixel was erased.

    Lines are found on the half-resolution labels and erased from the full-resolution
    binary image, except where a digit's stroke runs on across the line: a digit written
    on a rule keeps its full height instead of losing the rows the rule covered.
    """
    hh, hw = labels.shape
    st = stats[candidates]
    x0, y0 = int(st[:, 0].min()), int(st[:, 1].min())
    x1 = int((st[:, 0] + st[:, 2]).max())
    y1 = int((st[:, 1] + st[:, 3]).max())
    region = labels[y0:y1, x0:x1]
    mask = _select(region, st[:, :4] - np.array([x0, y0, 0, 0], np.int32), candidates)
    vertical: list[Separator] = []
    slopes: list[float] = []
    # Across each line's direction, see _SLANT_WIDEN.
    widen = 2 * int(_SLANT_WIDEN * (rules.scale - 1.0)) + 1
    # Per direction: (horizontal, grown half-resolution line map, line boxes, thickness).
    found_dir: list[tuple[bool, U8, I32, float]] = []
    for horizontal in (True, False):
        side = hw if horizontal else hh
        length = max(3, round(rules.kernel_frac * side))
        min_len = rules.min_length_frac * side
        if horizontal:
            # A digit's widest stroke is shorter than the tallest digit: in a small roi the
            # fraction of its width alone would take a 7's bar for a rule.
            min_len = max(min_len, _LINE_VS_HEIGHT * rules.max_digit_height_frac * hh)
        size = (length, 1) if horizontal else (1, length)
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, size)
        source = mask
        if widen > 1:
            source = cv2.dilate(mask, np.ones((widen, 1) if horizontal else (1, widen), np.uint8))
        runs = cv2.morphologyEx(source, cv2.MORPH_OPEN, kernel)
        if widen > 1:
            cv2.bitwise_and(runs, mask, dst=runs)  # the runs' own pixels, not the widening
        # Label only the runs' bounding box: labelling with statistics costs per pixel
        # scanned, and in the direction without lines only a few long strokes survive.
        rx, ry, rw, rh = cv2.boundingRect(runs)
        if rw == 0 or rh == 0:
            continue
        crop = runs[ry : ry + rh, rx : rx + rw]
        # A run's extent along the line is a stretch of inked columns (rows) in the
        # crop's projection: without one as long as a line, no run is a line.
        profile = cv2.reduce(crop, 0 if horizontal else 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S)
        if _longest_run(profile) < min_len:
            continue
        n, rl, rst, keep = _label_sparse(crop, horizontal)
        if n <= 1:
            continue
        extent = (rst[1:, 2] if horizontal else rst[1:, 3]).astype(np.float64)
        thickness = rst[1:, 4] / extent
        is_line = (
            (extent >= min_len)
            & (thickness * POOL <= rules.max_thickness)
            & (extent >= _LINE_MIN_ELONGATION * thickness)
        )
        if not is_line.any():
            continue
        others = np.flatnonzero(~is_line) + 1
        if others.size <= is_line.size // 2:
            # Mostly lines: erase the few other runs (a digit's long stroke) in their boxes.
            found = runs
            for i in others.tolist():
                bx, by, bw, bh = (int(v) for v in rst[i, :4])
                window = rl[by : by + bh, bx : bx + bw] == i
                # A run's rows (columns) are consecutive in the crop too: none was empty.
                if horizontal:
                    by = int(keep[by])
                else:
                    bx = int(keep[bx])
                crop[by : by + bh, bx : bx + bw][window] = 0
        else:
            lines = np.flatnonzero(is_line) + 1
            found = np.zeros_like(runs)
            chosen = _select(rl, rst[lines, :4], lines)
            if horizontal:
                found[ry + keep, rx : rx + rw] = chosen
            else:
                found[ry : ry + rh, rx + keep] = chosen
        boxes = rst[np.flatnonzero(is_line) + 1, :4].astype(np.int32)
        # Back from the labelled rows (columns) to the crop's.
        boxes[:, 1 if horizontal else 0] = keep[boxes[:, 1 if horizontal else 0]]
        boxes[:, 0] += rx
        boxes[:, 1] += ry
        ids = (np.flatnonzero(is_line) + 1).tolist()
        if horizontal:
            slopes += [_slope(rl, rst[line], line, keep) for line in ids]
        else:
            for line, (sx, sy, sw, sh) in zip(ids, (boxes * POOL).tolist(), strict=True):
                box = (sx + x0 * POOL, sy + y0 * POOL, sw, sh)
                vertical.append(_separator(box, rl, rst[line], line, keep, rx + x0))
        # Grow along the line by half a kernel: the opening trims line ends and leaves
        # stubs at junctions that look like 1s.
        grow = (length, 1) if horizontal else (1, length)
        found = cv2.dilate(found, np.ones(grow[::-1], np.uint8))
        # The line boxes grow the same way, so each box holds all of its grown line.
        half_len = length // 2 + 1
        boxes[:, 0 if horizontal else 1] -= half_len
        boxes[:, 2 if horizontal else 3] += 2 * half_len
        found_dir.append((horizontal, found, boxes, float(thickness[is_line].max()) * POOL))
    erased = False
    for horizontal, _, boxes, thick in found_dir:
        for box in boxes.tolist():
            erased |= _erase_line_strip(images, mask, found_dir, horizontal, box, thick, x0, y0)
    return vertical, slopes, erased


def _erase_line_strip(
    images: Images,
    mask: U8,
    found_dir: list[tuple[bool, U8, I32, float]],
    horizontal: bool,
    box: list[int],
    thick: float,
    x0: int,
    y0: int,
) -> bool:
    """Erase one line at full resolution, in a strip around its half-resolution box.

    Returns whether any pixel was erased.

    Only the strip is upsampled and compared with the contrast image: a ruled page has
    ten or more lines, but they cover a small part of the frame.
    """
    hh, hw = mask.shape
    # Line pixels within ``reach`` (full px, across the line) of other strong ink are where
    # a stroke crosses or touches the line: they stay. Reach a little past the line's own
    # thickness, no more: small digits written on a rule sit within a few px of it, and a
    # longer reach kept stubs of the rule under them that joined their neighbours (session 5:
    # 2 * thick + 3 read 75.2% of 844 ruled frames exactly, thick + 4 reads 77.6%).
    reach = round(thick) + _REACH_PAST_LINE
    # Margin (half px) across the line: the dilation by ``reach`` must see the ink on both
    # sides of every pixel it decides, plus the line's one-pixel anti-aliased edge.
    margin = reach // (2 * POOL) + 2
    bx, by, bw, bh = box
    if horizontal:
        sx0, sx1 = max(0, bx), min(hw, bx + bw)
        sy0, sy1 = max(0, by - margin), min(hh, by + bh + margin)
    else:
        sx0, sx1 = max(0, bx - margin), min(hw, bx + bw + margin)
        sy0, sy1 = max(0, by), min(hh, by + bh)
    if sx1 <= sx0 or sy1 <= sy0:
        return False
    fy0, fx0 = (y0 + sy0) * POOL, (x0 + sx0) * POOL
    size = ((sx1 - sx0) * POOL, (sy1 - sy0) * POOL)
    region = images.binary[fy0 : fy0 + size[1], fx0 : fx0 + size[0]]
    contrast = images.contrast[fy0 : fy0 + size[1], fx0 : fx0 + size[0]]
    strong = images.strong[fy0 : fy0 + size[1], fx0 : fx0 + size[0]]
    # 0/1 images throughout: 1 & 255 == 1 keeps them 0/1 when masked by the 0/255 ones.
    cand = up2(mask[sy0:sy1, sx0:sx1])
    cv2.bitwise_and(cand, region, dst=cand)
    all_lines: U8 | None = None
    own = cand
    for hz, found, _, _ in found_dir:
        half = found[sy0:sy1, sx0:sx1]
        if hz != horizontal and not cv2.countNonZero(half):
            continue  # no line of the other direction crosses this strip
        # One pixel more across the line: its anti-aliased edge.
        line = cv2.dilate(up2(half), _ACROSS_H if hz else _ACROSS_V)
        cv2.bitwise_and(line, cand, dst=line)
        all_lines = line if all_lines is None else cv2.bitwise_or(all_lines, line)
        if hz == horizontal:
            own = line
    # Only strong ink vouches for a crossing: faint paper texture between two rules
    # would otherwise keep whole stretches of them. (The lines lie inside ``cand``.)
    rest = cv2.bitwise_xor(cand, all_lines) if all_lines is not None else cand
    cv2.bitwise_and(rest, strong, dst=rest)
    if cv2.countNonZero(rest):
        kernel = np.ones((reach, 1) if horizontal else (1, reach), np.uint8)
        crossing = cv2.dilate(rest, kernel)
    else:
        crossing = rest  # all zero: nothing crosses the line
    # Decide only where the dilation saw both sides (the strip's edge rows or columns
    # belong to a neighbouring strip, if to any line).
    edge = reach // 2 + 1
    top_open = sy0 == 0 if horizontal else sx0 == 0
    far_open = (sy1 == hh) if horizontal else (sx1 == hw)
    lo = 0 if top_open else edge
    hi = None if far_open else -edge
    core = (slice(lo, hi), slice(None)) if horizontal else (slice(None), slice(lo, hi))
    # Saturating: 1 where the line is not crossed, else 0.
    erase = cv2.subtract(own[core], crossing[core])
    if not cv2.countNonZero(erase):
        return False
    if cv2.countNonZero(rest):
        erase = cv2.subtract(erase, _ink_on_line(own[core], crossing[core], contrast[core]))
        if not cv2.countNonZero(erase):
            return False
    keep = cv2.compare(erase, 0, cv2.CMP_EQ)  # 255 where the pixel stays
    for image in (region, contrast, strong):
        cv2.bitwise_and(image[core], keep, dst=image[core])
    return True


def order_statistic(values: U8, k: int) -> int:
    """The ``k``-th smallest of uint8 ``values`` (0-based), from their histogram: np.quantile
    costs ten times more, a partition twice as much."""
    return int(np.bincount(values, minlength=256).cumsum().searchsorted(k, side="right"))


def _ink_on_line(own: U8, crossed: U8, contrast: U8) -> U8:
    """1 on the line pixels (``own``, 0/1) that are ink lying along the line: at least
    _INK_ON_LINE times the line's median contrast and connected, through such pixels, to a
    pixel kept for a crossing (``crossed``, 0/1); else 0."""
    line = contrast[own.view(np.bool_)]
    typical = order_statistic(line, (line.size - 1) // 2)  # the median
    _, dark = cv2.threshold(contrast, _INK_ON_LINE * max(1, typical), 1, cv2.THRESH_BINARY)
    seeds = cv2.bitwise_and(own, crossed)
    joined = cv2.bitwise_or(cv2.bitwise_and(dark, own), seeds)
    n, labels = cv2.connectedComponents(joined, connectivity=8)
    reached = np.zeros(n, np.uint8)
    reached[labels[seeds.view(np.bool_)]] = 1
    reached[0] = 0
    return reached[labels]


def _separator(
    box: Box, labels: I32, stat: I32, line: int, kept: npt.NDArray[np.intp], ox: int
) -> Separator:
    """The vertical line at full-resolution ``box``: run ``line`` of ``_label_sparse`` (its
    statistics ``stat``, kept columns ``kept``, the crop ``ox`` half-res px into the frame),
    its centre measured on the rows at each end."""
    bx, by, bw, bh = (int(v) for v in stat[:4])
    run = labels[by : by + bh, bx : bx + bw] == line
    top, bottom = _end_centres(run, kept[bx : bx + bw])
    return Separator(*box, float(top + ox + 0.5) * POOL, float(bottom + ox + 0.5) * POOL)


def _slope(labels: I32, stat: I32, line: int, kept: npt.NDArray[np.intp]) -> float:
    """Rows per column of the horizontal line ``line`` of ``_label_sparse`` (its statistics
    ``stat``, kept rows ``kept``), from its centre at each end, as ``_separator`` measures a
    vertical line."""
    bx, by, bw, bh = (int(v) for v in stat[:4])
    run = labels[by : by + bh, bx : bx + bw] == line
    left, right = _end_centres(run.T, kept[by : by + bh])
    return (right - left) / max(1, bw - max(1, bw // 8))


def _end_centres(run: npt.NDArray[np.bool_], across: npt.NDArray[np.intp]) -> tuple[float, float]:
    """A line's centre across itself on its first and last eighth along it: ``run`` has one
    row per step along the line, ``across`` the coordinate of each of its columns."""
    coords = across.astype(np.float64)
    ends = max(1, run.shape[0] // 8)
    first = run[:ends].sum(axis=0) @ coords / max(1, int(run[:ends].sum()))
    last = run[-ends:].sum(axis=0) @ coords / max(1, int(run[-ends:].sum()))
    return float(first), float(last)


def _select(labels: I32, boxes: npt.NDArray[Any], ids: npt.NDArray[np.intp]) -> U8:
    """1 where ``labels`` is one of ``ids`` (each inside its box), else 0.

    Comparing inside each component's box touches a few lines' worth of pixels; a lookup
    table indexed by the whole label image costs a full gather per call.
    """
    out = np.zeros(labels.shape, np.uint8)
    for i, (bx, by, bw, bh) in zip(ids.tolist(), boxes.tolist(), strict=True):
        window = out[by : by + bh, bx : bx + bw]
        window |= (labels[by : by + bh, bx : bx + bw] == i).view(np.uint8)
    return out


def _longest_run(profile: I32) -> int:
    """Length of the longest stretch of nonzero values in a one-row or one-column image."""
    inked = np.zeros(profile.size + 2, np.int8)
    inked[1:-1] = profile.ravel() != 0
    edges = np.diff(inked)
    return int((np.flatnonzero(edges < 0) - np.flatnonzero(edges > 0)).max(initial=0))


def _label_sparse(runs: U8, horizontal: bool) -> tuple[int, I32, I32, npt.NDArray[np.intp]]:
    """Label the runs of one direction with statistics, skipping their empty rows (columns).

    Statistics cost per pixel scanned, and line runs leave most rows (for vertical lines:
    columns) empty. Each gap shrinks to one empty row, which still keeps components apart,
    so areas, widths and heights are the same. Returns (count, labels, statistics, kept):
    labels and y (x) coordinates refer to the kept rows (columns), ``kept`` maps them back.
    """
    axis = 1 if horizontal else 0
    # (A sum, not a max: OpenCV's max reduction is several times slower.)
    inked = cv2.reduce(runs, axis, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel() > 0
    # A row is kept if inked, or the first empty row after inked ones.
    wanted = inked.copy()
    wanted[1:] |= inked[:-1]
    kept = np.flatnonzero(wanted)
    part = runs[kept] if horizontal else np.ascontiguousarray(runs[:, kept])
    n, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(
        part, 8, cv2.CV_32S, cv2.CCL_GRANA
    )
    return int(n), labels, stats, kept


# A row of a wide blob is a rule's row if ink covers this fraction of the blob's width ...
_RULE_ROW_FILL = 0.6
# ... where rows may slant by up to this many px per px (perspective tilts a rule; 0.1 is
# about 6 degrees). Straight rows only: on 3,400 / 1,800 held-out / 300 HD rendered frames
# 3,037 / 1,583 / 256 read exactly, with 155 / 130 / 42 digits missed; slanted (with the rows
# either side of the rule's, at most half the blob's height): 3,039 / 1,585 / 257 and 144 /
# 119 / 29 (the same with slopes up to 0.06).
# About 120 us per such blob (0.2 per 640x480 frame) against 27 us for straight rows only.
_RULE_MAX_SLOPE = 0.1
# ... and the rule's rows are at most this fraction of the blob's height.
_RULE_MAX_ROWS = 0.5
# At most this many of a blob's pixels choose the rule's slope (all of them measure its rows).
_RULE_SAMPLE = 2000


def strip_rule(b: Blob) -> list[Blob]:
    """Digits joined by a rule the line finder missed (faint or broken): one blob far too wide
    for its height. Erase the rule's rows in columns where nothing else is inked and return
    the pieces that are left (empty when no rule rows are found)."""
    m = b.mask
    band = _rule_band(m)
    if band is None:
        return []
    # Columns inked only inside the rule's rows carry nothing but the rule.
    other = (m & ~band).any(axis=0)
    cleaned = m.copy()
    cleaned[:, ~other] &= ~band[:, ~other]
    k, sub, st, _ = cv2.connectedComponentsWithStats(cleaned.view(np.uint8), connectivity=8)
    out = []
    for j in range(1, k):
        sx, sy, sw, sh, area = (int(v) for v in st[j])
        if sw < b.w:
            out.append(Blob(b.x + sx, b.y + sy, sw, sh, sub[sy : sy + sh, sx : sx + sw] == j, area))
    return out


def _rule_band(m: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_] | None:
    """The pixels of ``m`` (a far too wide blob's mask) on the rows of a rule through it,
    those rows slanted by the slope under _RULE_MAX_SLOPE that fills one of them most; None
    when no row is filled to _RULE_ROW_FILL."""
    h, w = m.shape
    ys, xs = np.nonzero(m)
    # Slopes a row apart over the blob's width, level first: ties keep the least slant.
    steps = np.arange(int(_RULE_MAX_SLOPE * w) + 1)
    steps = np.stack([steps, -steps], axis=1).ravel()[1:]
    # The slope is chosen on a sample of the pixels: every slope costs a pass over them, and
    # a rule across a 1080p frame has tens of thousands.
    every = max(1, ys.size // _RULE_SAMPLE)
    best = int(_sheared_fill(ys[::every], xs[::every], steps, w, h).max(axis=1).argmax())
    fill = _sheared_fill(ys, xs, steps[best : best + 1], w, h)[0]
    rule_rows = fill >= _RULE_ROW_FILL * w
    # A rule is thin: a band filling most rows is ink, not digits on a rule (in a ruled page
    # read light on dark, the paper between two rules: its edges came back as slivers read as
    # confident 1s).
    if not rule_rows.any() or rule_rows.sum() > _RULE_MAX_ROWS * h:
        return None
    # And the row either side: the rule's soft edge, and where the slant steps between rows.
    grown = rule_rows.copy()
    grown[1:] |= rule_rows[:-1]
    grown[:-1] |= rule_rows[1:]
    band = np.zeros_like(m)
    on = grown[_sheared_rows(ys, xs, int(steps[best]), w)]
    band[ys[on], xs[on]] = True
    return band


def _shear_reach(w: int) -> int:
    """The most rows a pixel moves when rows drift by up to _RULE_MAX_SLOPE over the width
    ``w`` are sheared level (half the drift, measured from the middle, plus rounding)."""
    return int(_RULE_MAX_SLOPE * w) // 2 + 1


def _sheared_rows(
    ys: npt.NDArray[np.intp], xs: npt.NDArray[np.intp], step: int, w: int
) -> npt.NDArray[np.intp]:
    """Each pixel's row once rows drifting ``step`` over the width ``w`` are sheared level
    (offset by the largest drift allowed, so that rows stay >= 0)."""
    return ys - np.round(step / w * (xs - w / 2)).astype(np.intp) + _shear_reach(w)


def _sheared_fill(
    ys: npt.NDArray[np.intp], xs: npt.NDArray[np.intp], steps: npt.NDArray[np.intp], w: int, h: int
) -> npt.NDArray[np.intp]:
    """Pixels per sheared row (``_sheared_rows``), one row of counts per drift in ``steps``."""
    rows = h + 2 * _shear_reach(w)
    sheared = np.stack([_sheared_rows(ys, xs, int(s), w) for s in steps])
    flat = (sheared + rows * np.arange(len(steps))[:, None]).ravel()
    return np.bincount(flat, minlength=rows * len(steps)).reshape(len(steps), rows)
