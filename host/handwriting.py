"""Handwritten digit glyphs for rendered frames: MNIST digits restyled (stroke weight, variants).

MNIST under-represents some ways people write digits, so ``GlyphBank`` can draw them onto real
MNIST digits: the continental 1 (long upstroke), the crossed 7 (a bar through the stem) and the
open / closed 4. Glyphs are float32 alpha maps (1 = ink) cropped tight to the ink, at a working
resolution high enough that strokes can be thickened or thinned before scaling to frame size.
"""

from __future__ import annotations

import cv2
import numpy as np

# Working height of a glyph (pixels): MNIST's ~20 px digits are upscaled to this before
# restyling, so a 1-px dilate or a drawn stroke is a small, smooth change.
WORK_HEIGHT = 64
# MNIST pixels below this value (0..1) are background when cropping a digit to its ink.
CROP_LEVEL = 0.08
# Alpha is pushed through a contrast curve after upscaling so edges are not mushy:
# alpha' = clip((alpha - EDGE_MID) * EDGE_GAIN + EDGE_MID, 0, 1).
EDGE_MID = 0.45
EDGE_GAIN = 1.6

STROKES = ("normal", "marker", "thin")
VARIANTS = ("continental_1", "crossed_7", "open_4", "closed_4")
VARIANT_LABEL = {"continental_1": 1, "crossed_7": 7, "open_4": 4, "closed_4": 4}


def _crop(alpha: np.ndarray) -> np.ndarray:
    mask = alpha > CROP_LEVEL
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return alpha
    return alpha[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _stroke_width(alpha: np.ndarray) -> float:
    """Typical stroke width (pixels): twice the largest distance from ink to background."""
    mask = (alpha > 0.5).astype(np.uint8)
    if not mask.any():
        return 1.0
    if mask.all():
        # No background inside the crop (a thick straight 1 fills its box): measure to the
        # crop's edge. Without one, every distance is FLT_MAX, and cv2.line refused the width.
        mask = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    dist = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    return max(1.0, 2.0 * float(np.percentile(dist[mask > 0], 90)))


def _line(
    alpha: np.ndarray, p0: tuple[float, float], p1: tuple[float, float], width: float
) -> None:
    """Draw an anti-aliased stroke into ``alpha`` in place (sub-pixel endpoints)."""
    shift = 4
    scale = 1 << shift
    a = (round(p0[0] * scale), round(p0[1] * scale))
    b = (round(p1[0] * scale), round(p1[1] * scale))
    layer = np.zeros(alpha.shape, np.uint8)
    cv2.line(layer, a, b, 255, max(1, round(width)), cv2.LINE_AA, shift)
    np.maximum(alpha, layer.astype(np.float32) / 255.0, out=alpha)


def continental_1(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add the long diagonal upstroke (flag) of a continental-style 1 to the stem's top."""
    h, _w = alpha.shape
    width = _stroke_width(alpha)
    pad = int(0.45 * h)
    out = cv2.copyMakeBorder(alpha, 0, 0, pad, 0, cv2.BORDER_CONSTANT, value=0.0)
    top_row = np.flatnonzero(out.max(axis=1) > 0.5)[0]
    xs = np.flatnonzero(out[top_row] > 0.5)
    x_top = float(xs.mean())
    length = rng.uniform(0.3, 0.45) * h
    angle = np.deg2rad(rng.uniform(35, 55))
    end = (x_top - length * np.sin(angle), top_row + length * np.cos(angle))
    _line(out, (x_top, float(top_row)), end, width)
    return _crop(out)


def crossed_7(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw a short bar across the 7's stem at about mid height."""
    h, _w = alpha.shape
    width = _stroke_width(alpha)
    y = int(rng.uniform(0.45, 0.6) * h)
    xs = np.flatnonzero(alpha[y] > 0.5)
    if xs.size == 0:
        return alpha
    pad = int(0.2 * h)
    out = cv2.copyMakeBorder(alpha, 0, 0, pad, pad, cv2.BORDER_CONSTANT, value=0.0)
    cx = float(xs.mean()) + pad
    half = rng.uniform(0.22, 0.32) * h
    tilt = rng.uniform(-0.06, 0.06) * h
    _line(out, (cx - half, y + tilt), (cx + half, y - tilt), width)
    return _crop(out)


def _four_parts(alpha: np.ndarray) -> tuple[int, int, int, int]:
    """(top row, bar row, stem column, stem top row) of a 4, from projections of its ink."""
    h, w = alpha.shape
    mask = alpha > 0.5
    rows = np.flatnonzero(mask.any(axis=1))
    top = int(rows[0])
    # The crossbar is the widest row in the middle band of the digit.
    lo, hi = int(0.35 * h), int(0.8 * h)
    extent = [np.ptp(np.flatnonzero(r)) if r.any() else 0 for r in mask[lo:hi]]
    bar = lo + int(np.argmax(extent))
    # The stem is the right-half column with the most ink below the bar.
    below = mask[bar:, w // 2 :].sum(axis=0)
    stem = w // 2 + int(np.argmax(below))
    stem_rows = np.flatnonzero(mask[:, max(0, stem - 2) : stem + 3].any(axis=1))
    return top, bar, stem, int(stem_rows[0])


def open_4(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Open the top of a 4: the left stroke stops short of the stem, leaving a gap at the top."""
    _h, _w = alpha.shape
    top, bar, stem, _ = _four_parts(alpha)
    width = _stroke_width(alpha)
    out = alpha.copy()
    cut = top + int(rng.uniform(0.2, 0.3) * (bar - top))
    right = max(0, int(stem - width))
    out[:cut, :right] = 0.0
    return _crop(out)


def closed_4(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Close a 4 into a triangle: a diagonal from the stem's top to the crossbar's left end."""
    _top, bar, stem, stem_top = _four_parts(alpha)
    width = _stroke_width(alpha)
    xs = np.flatnonzero(alpha[bar] > 0.5)
    if xs.size == 0:
        return alpha
    out = alpha.copy()
    _line(out, (float(stem), float(stem_top)), (float(xs[0]), float(bar)), width)
    return _crop(out)


_VARIANT_FUNCS = {
    "continental_1": continental_1,
    "crossed_7": crossed_7,
    "open_4": open_4,
    "closed_4": closed_4,
}


class GlyphBank:
    """MNIST digits indexed by label, restyled on demand."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        if images.ndim != 3 or len(images) != len(labels) or len(images) == 0:
            raise ValueError("GlyphBank needs N 2-D images and N labels")
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)
        self.by_label = [np.flatnonzero(self.labels == d) for d in range(10)]
        self._cache: dict[int, np.ndarray] = {}

    def _base(self, index: int) -> np.ndarray:
        """The digit upscaled to WORK_HEIGHT, cropped to its ink (cached: it never changes)."""
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        alpha = _crop(self.images[index].astype(np.float32) / 255.0)
        h, w = alpha.shape
        scale = WORK_HEIGHT / h
        size = (max(1, round(w * scale)), WORK_HEIGHT)
        big = cv2.resize(alpha, size, interpolation=cv2.INTER_CUBIC)
        big = np.clip((big - EDGE_MID) * EDGE_GAIN + EDGE_MID, 0.0, 1.0).astype(np.float32)
        self._cache[index] = big
        return big

    def pick(self, label: int, rng: np.random.Generator) -> int:
        """The index (in this bank's split) of a random MNIST ``label``."""
        return int(rng.choice(self.by_label[label]))

    def glyph(
        self,
        label: int,
        rng: np.random.Generator,
        stroke: str = "normal",
        variant: str | None = None,
        index: int | None = None,
    ) -> np.ndarray:
        """A float32 alpha map (ink = 1) of MNIST digit ``index`` (default: a random
        ``label``, as ``pick`` draws it), styled, cropped to ink."""
        if index is None:
            index = self.pick(label, rng)
        alpha = self._base(index)
        if variant is not None:
            if VARIANT_LABEL[variant] != label:
                raise ValueError(f"variant {variant} does not apply to digit {label}")
            alpha = _VARIANT_FUNCS[variant](alpha, rng)
        if stroke == "marker":
            k = int(rng.integers(3, 6))
            alpha = cv2.dilate(alpha, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
        elif stroke == "thin":
            alpha = cv2.erode(alpha, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
        elif stroke != "normal":
            raise ValueError(f"unknown stroke {stroke!r}; use one of {STROKES}")
        return _crop(alpha)
