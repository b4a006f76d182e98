"""The ink contrast image of a grey frame: ink bright on a flat ground, whatever the light.

The paper's brightness is estimated on a 1/8-scale copy with a morphological close (an open
for light ink on a dark ground), so shadows and uneven light cancel out. The ink's contrast is
its difference from that background, divided by it for dark ink (a shadow dims paper and ink
alike, the ratio stays). ``ink_level`` then says how much contrast counts as ink.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]

# The background is estimated on a copy this many times smaller per side: the paper's light
# varies slowly, and a small image makes the large morphological filter cheap.
_BG_SCALE = 8
# Smallest odd kernel (in small-image pixels) of the background filter.
_BG_MIN_KERNEL = 3
# When auto-detecting polarity, a small-image pixel counts as evidence only if it deviates from
# the median background by more than this many grey levels (sensor noise stays below it).
_POLARITY_DEADBAND = 6
# The polarity is unsure when the winning side has fewer than this many times the other's
# evidence pixels: the reader then reads the frame both ways (if its reading is unsure) and
# keeps the better reading. On 3,500 rendered frames 13 were read with the wrong polarity, 9
# of them below 1.2 (22 frames in all, 0.6%), 12 below 1.5 (104 frames, 3%). Exact match on
# 3,950 frames (640x480 to 1920x1080): 3,281 without the second look, 3,292 at 1.2, 3,295 at
# 1.5; but at 1.5 the median frame took 2% longer, and reading paper texture as ink the wrong
# way raised the daemon's peak memory from 79 to 82 MB (at 1.2: 79 MB).
_POLARITY_SURE_RATIO = 1.2
# Contrast images are scaled to 0..255; dark-on-light contrast is relative to the paper.
_FULL = 255.0


def ink_contrast(
    gray: U8, polarity: str, background_kernel: int, background: U8, out: U8
) -> tuple[str, bool]:
    """Write the ink contrast of ``gray`` (0..255, ink bright) into ``out``.

    ``polarity``: "dark_on_light", "light_on_dark" or "auto" (detected from the frame).
    ``background_kernel``: the background filter's width in frame pixels; strokes narrower
    than about half of it are ink, anything wider is taken for paper. ``background`` and
    ``out`` are frame-sized buffers, reused from frame to frame. Returns the polarity read
    with and whether it is sure (always, unless detected from evidence that weighs the same
    both ways).
    """
    h, w = gray.shape
    small = cv2.resize(
        gray,
        (max(1, w // _BG_SCALE), max(1, h // _BG_SCALE)),
        interpolation=cv2.INTER_AREA,
    )
    k = max(_BG_MIN_KERNEL, background_kernel // _BG_SCALE) | 1
    sure = True
    if polarity == "auto":
        median = cv2.medianBlur(small, min(k, 5))
        darker = cv2.subtract(median, small)
        lighter = cv2.subtract(small, median)
        dark_score = int(np.count_nonzero(darker > _POLARITY_DEADBAND))
        light_score = int(np.count_nonzero(lighter > _POLARITY_DEADBAND))
        polarity = "light_on_dark" if light_score > dark_score else "dark_on_light"
        low, high = sorted((dark_score, light_score))
        sure = high >= _POLARITY_SURE_RATIO * max(1, low)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    # A close removes dark strokes narrower than the kernel and leaves the paper; an open
    # does the same for light strokes.
    op = cv2.MORPH_CLOSE if polarity == "dark_on_light" else cv2.MORPH_OPEN
    bg_small = cv2.morphologyEx(small, op, kernel, borderType=cv2.BORDER_REPLICATE)
    cv2.resize(bg_small, (w, h), dst=background, interpolation=cv2.INTER_LINEAR)
    if polarity == "dark_on_light":
        cv2.subtract(background, gray, dst=out)
        # Relative darkness: a shadow dims paper and ink alike, the ratio stays.
        cv2.divide(out, background, dst=out, scale=_FULL)
    else:
        cv2.subtract(gray, background, dst=out)
    return polarity, sure


def ink_level(contrast: U8, floor: float) -> float:
    """The contrast that counts as ink: Otsu's threshold of ``contrast``, never below
    ``floor`` (nor above 254)."""
    # Every other row and column: a quarter of the pixels, the same histogram's shape.
    sample = np.ascontiguousarray(contrast[::2, ::2])
    otsu, _ = cv2.threshold(sample, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    return max(min(floor, 254.0), otsu)
