"""Touching digits: where to cut a blob that may hold two or more of them.

A blob much wider than a digit is cut at the weakest columns of its vertical ink profile near
where the digits should meet; a blob that may or may not be two digits is offered cut several
ways (a narrow pair at a column crossed by one thin stroke, wider ones at their weakest columns,
a touching "1" cut off at either side), and the reader keeps what classifies best.
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import numpy.typing as npt

from device.blobs import Blob

# 3x3 structuring element (a mask's edge pixels).
_SQUARE3 = np.ones((3, 3), np.uint8)
# Clean cuts (narrow touching pairs) are looked for in the middle of the blob, not within
# this fraction of its width from either side ...
_CLEAN_CUT_WINDOW = 0.2
# ... at a column crossed once, by at most this many stroke widths of ink ...
_CLEAN_CUT_STROKES = 1.5
# ... with both sides at least this fraction of the blob's inked rows tall.
_CLEAN_CUT_TALL = 0.8
# A cut is not made where the right part reaches lower than the left by this fraction of
# the height (a 4 whose bar meets its stem; touching digits share a baseline).
_STEM_DROP = 0.12
# A blob at least this wide for its height may also be cut where two strokes cross ...
_VALLEY_ASPECT = 1.1
# ... if the column has at most this fraction of the ink of the columns either side.
_VALLEY_DEPTH = 0.5
# ("either side": within this fraction of the blob's width.)
_VALLEY_REACH = 0.15
# A blob split for its width is offered whole to the reader only up to this w/h: MNIST's
# single digits reach 1.43 (99th percentile), none comes near 2.
_WHOLE_MAX_ASPECT = 2.0
# A whole blob's two-digit alternatives are cut at the weakest column within each of these
# windows (fractions of its width): overlapping digits rarely meet at the weakest column
# overall, and a pair with a "1" ("16") meets well off centre. Two windows read 900 rendered
# frames as well as three did (exact 0.807 both) with a fifth fewer crops to classify.
_ALTERNATIVE_WINDOWS = (0.3, 0.5, 0.7)
# A "1" touching the digit beside it is a stem at the blob's edge, outside those windows: a blob
# at least _EDGE_MIN_ASPECT as wide as tall is also cut at the weakest column this far in from
# each side (fractions of its width), where the part cut off is a stem (at least _STEM_TALL of
# the blob's height and at most _STEM_ASPECT as wide as tall) and the rest is as tall: a 9's
# stem cut from its loop read "01" confidently. With the classifier's second look, 3,400
# rendered frames 2,938 -> 2,947 exact, 1,800 held-out 1,520 -> 1,525, 550 HD 422 -> 425
# (windows 0.06-0.25 / 0.35, blob aspect from 0.4 / 0.6, stems from 0.6 / 0.8 of the height:
# 2,945-2,947 before the rule for the rest). Without the second look the cut-off 1s mostly
# read as "none": +2 only.
_EDGE_WINDOW = (0.06, 0.3)
_EDGE_MIN_ASPECT = 0.5
_STEM_TALL, _STEM_ASPECT = 0.7, 0.45


def weakness(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """Per column: ink count plus the column's ink span (low where digits touch).

    Where two round digits touch, their sides make a tall column of ink, but the span there
    is short: the top and bottom contours dip towards the contact point.
    """
    count = cv2.reduce(mask.view(np.uint8), 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S)[0]
    top = np.argmax(mask, axis=0)
    bottom = mask.shape[0] - np.argmax(mask[::-1], axis=0)
    return (count + np.where(count > 0, bottom - top, 0)).astype(np.int64)


def clean_cut(mask: npt.NDArray[np.bool_]) -> int | None:
    """Column where a narrow pair ("11", "71") touches, or None for a single digit.

    The column must be crossed by one stroke no thicker than the digit's strokes, and both
    sides must reach nearly the full height: a 4's bar fails that (its left part is short),
    a 0 fails the single stroke.
    """
    h, w = mask.shape
    lo, hi = int(_CLEAN_CUT_WINDOW * w), int((1 - _CLEAN_CUT_WINDOW) * w) + 1
    if hi - lo < 1:
        return None
    m8 = mask.view(np.uint8)
    # Strokes crossing each column: the rows where a run of ink starts (saturating 1 - 0).
    starts = cv2.reduce(cv2.subtract(m8[1:], m8[:-1]), 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S)[0]
    starts += m8[0]
    wide = w >= _VALLEY_ASPECT * h
    mid_starts = starts[lo:hi]
    if int(mid_starts.min()) > (2 if wide else 1):
        # Every middle column is crossed by more strokes than a cut allows (most 0s, 2s,
        # 3s, 8s): settled without the stroke-width estimate below.
        return None
    count = cv2.reduce(m8, 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S)[0]
    area = int(count.sum())
    edge = area - cv2.countNonZero(cv2.erode(m8, _SQUARE3, borderValue=0))
    stroke = max(1.0, 2.0 * area / max(1, edge))
    mid_count = count[lo:hi]
    ok = (mid_starts == 1) & (mid_count <= _CLEAN_CUT_STROKES * stroke)
    if wide:
        ok |= (mid_starts <= 2) & (mid_count <= 2 * _CLEAN_CUT_STROKES * stroke)
    cols = np.flatnonzero(ok)
    if cols.size == 0:
        return None
    cols = cols[np.argsort(mid_count[cols], kind="stable")] + lo
    # Each candidate's left part (rows inked before the column) and right part (rows inked
    # after it), from each row's first and last inked column: one pass for all candidates.
    rows_any = mask.any(axis=1)
    first = np.where(rows_any, np.argmax(mask, axis=1), w)
    last = np.where(rows_any, w - 1 - np.argmax(mask[:, ::-1], axis=1), -1)
    left = first[None, :] < cols[:, None]
    right = last[None, :] > cols[:, None]
    top_l, top_r = np.argmax(left, axis=1), np.argmax(right, axis=1)
    bot_l = h - 1 - np.argmax(left[:, ::-1], axis=1)
    bot_r = h - 1 - np.argmax(right[:, ::-1], axis=1)
    inked = int(np.count_nonzero(rows_any))
    tall = _CLEAN_CUT_TALL * inked
    ok = (
        left.any(axis=1)
        & right.any(axis=1)
        & (bot_l + 1 - top_l >= tall)
        & (bot_r + 1 - top_r >= tall)
        # The left part stops well above the right one: a 4's bar ending at its stem.
        & (bot_r - bot_l <= _STEM_DROP * inked)
    )
    for c in cols[ok].tolist():
        if starts[c] > 1:
            # Two strokes cross here: only a cut if the digits either side are much
            # inkier per column (a wide 0 is two strokes all along, no valley).
            d = max(2, int(_VALLEY_REACH * w))
            body = min(int(count[max(0, c - d) : c].max()), int(count[c + 1 : c + 1 + d].max()))
            if count[c] > _VALLEY_DEPTH * body:
                continue
        return int(c)
    return None


def two_way_cuts(profile: npt.NDArray[np.int64]) -> list[int]:
    """Candidate columns where a blob may be two touching digits, one per window, from its
    ``weakness`` profile.

    Where touching digits overlap, the weakest column is often inside one of them, so the
    reader is offered a cut left of, at and right of the middle and keeps what reads best.
    """
    w = profile.size
    cuts: list[int] = []
    for lo_frac, hi_frac in itertools.pairwise(_ALTERNATIVE_WINDOWS):
        lo, hi = int(lo_frac * w), max(int(lo_frac * w) + 1, int(hi_frac * w))
        c = lo + int(np.argmin(profile[lo:hi]))
        if 0 < c < w and c not in cuts:
            cuts.append(c)
    return cuts


def edge_cuts(profile: npt.NDArray[np.int64]) -> list[tuple[int, int]]:
    """The weakest column near each side of a blob (from its ``weakness`` profile), where a
    touching "1" would be cut off: (column, index of the side's part: 0 left, 1 right)."""
    w = profile.size
    out: list[tuple[int, int]] = []
    lo, hi = max(1, int(_EDGE_WINDOW[0] * w)), int(_EDGE_WINDOW[1] * w) + 1
    if hi > lo:
        out.append((lo + int(np.argmin(profile[lo:hi])), 0))
        right = profile[w - hi : w - lo]
        out.append((w - hi + int(np.argmin(right)), 1))
    return out


def is_stem(part: Blob, height: int) -> bool:
    """A part nearly as tall as its blob and narrow: shaped like a "1"."""
    return part.h >= _STEM_TALL * height and part.w <= _STEM_ASPECT * part.h


def pieces_at(b: Blob, cuts: list[int], min_height: int) -> list[Blob]:
    """The parts of ``b`` between consecutive cut columns, trimmed to their ink."""
    out: list[Blob] = []
    for c0, c1 in itertools.pairwise(cuts):
        part = b.mask[:, c0:c1]
        k0, r0, kw, rh = cv2.boundingRect(part.view(np.uint8))
        if rh < min_height:  # (an empty part has a zero box)
            continue
        m = part[r0 : r0 + rh, k0 : k0 + kw].copy()
        out.append(Blob(b.x + c0 + k0, b.y + r0, kw, rh, m, cv2.countNonZero(m.view(np.uint8))))
    return out


def cut(b: Blob, count: int, search: float, min_height: int) -> list[Blob]:
    """Cut ``b`` into ``count`` digits at the weakest columns near the expected places,
    looking ``search`` digit widths either side of each; parts under ``min_height`` go."""
    profile = weakness(b.mask)
    step = b.w / count
    cuts = [0]
    for k in range(1, count):
        centre = k * step
        lo = max(cuts[-1] + 1, int(centre - search * step))
        hi = min(b.w - 1, int(centre + search * step) + 1)
        if hi <= lo:
            continue
        window = profile[lo:hi]
        # Weakest column; among equals the one nearest the expected cut.
        weakest = np.flatnonzero(window == window.min()) + lo
        cuts.append(int(weakest[np.argmin(np.abs(weakest - centre))]))
    cuts.append(b.w)
    return pieces_at(b, cuts, min_height)


def recount(b: Blob, count: int, search: float, min_height: int) -> list[list[Blob]]:
    """Another reading of a blob ``cut`` into ``count`` digits for its width: whole (unless
    far too wide for one digit), and cut into one digit fewer or more."""
    # The count is a guess from the width: narrow digits ("117") fit one more, wide ones
    # one fewer. A part holding two digits reads as none, and the reader then weighs
    # these cuts too.
    others = [[b]] if b.w / b.h <= _WHOLE_MAX_ASPECT else []
    return others + [
        parts
        for k in (count - 1, count + 1)
        if k >= 2 and len(parts := cut(b, k, search, min_height)) == k
    ]


def two_way(b: Blob, alternative_aspect: float, min_height: int) -> list[list[Blob]]:
    """A whole blob that may be two touching digits, cut in two (several ways): at its clean
    cut, at its weakest columns if at least ``alternative_aspect`` as wide as tall, and where
    a stem ("1") at either side comes off."""
    cuts = []
    clean = clean_cut(b.mask)
    if clean is not None:
        cuts.append(clean)
    aspect = b.w / b.h
    edge: list[tuple[int, int]] = []
    if aspect >= min(alternative_aspect, _EDGE_MIN_ASPECT):
        profile = weakness(b.mask)  # both kinds of cut look for its weakest columns
        if aspect >= alternative_aspect:
            cuts += [c for c in two_way_cuts(profile) if c != clean]
        if aspect >= _EDGE_MIN_ASPECT:
            edge = edge_cuts(profile)
    out = [parts for c in cuts if len(parts := pieces_at(b, [0, c, b.w], min_height)) == 2]
    for c, stem_side in edge:
        if c in cuts:
            continue
        parts = pieces_at(b, [0, c, b.w], min_height)
        if (
            len(parts) == 2
            and is_stem(parts[stem_side], b.h)
            and parts[1 - stem_side].h >= _STEM_TALL * b.h
        ):
            out.append(parts)
    return out
