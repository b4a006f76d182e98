"""Draw a reading onto a copy of its frame: digit boxes, labels, confidences and the ROI."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from device.reading import Box, Reading

# BGR colours: green for a confident reading, red for one that is not, amber for the ROI.
CONFIDENT = (0, 170, 0)
UNSURE = (0, 0, 220)
ROI_COLOUR = (0, 190, 255)
TEXT_ON = (255, 255, 255)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
# Text and line sizes grow with the frame so labels stay legible on 640 px and 4000 px images.
_REFERENCE_SIDE = 640.0
# Digit labels are scaled to the digit: font scale = box height / this, at least the minimum.
_DIGIT_TEXT_RATIO = 40.0
_MIN_TEXT_SCALE = 0.35


def annotate(
    frame: npt.NDArray[np.uint8], reading: Reading, roi: Box | None = None
) -> npt.NDArray[np.uint8]:
    """A BGR copy of ``frame`` with the reading drawn on it; the input is not modified."""
    image = np.asarray(frame)
    gray = image.ndim == 2
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if gray else image[:, :, :3].copy()
    side = max(out.shape[0], out.shape[1])
    scale = max(0.4, side / _REFERENCE_SIDE * 0.5)
    thick = max(1, round(side / _REFERENCE_SIDE * 2))
    colour = CONFIDENT if reading.confident else UNSURE
    if roi is not None:
        x, y, w, h = roi
        cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), ROI_COLOUR, thick)
    for digit in reading.digits:
        x, y, w, h = digit.box
        cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), colour, thick)
        # Label above, confidence in percent below: neighbouring digits' texts then do not
        # overlap even when the digits almost touch. Text size follows the digit's size.
        small = min(max(h / _DIGIT_TEXT_RATIO, _MIN_TEXT_SCALE), scale)
        small_thick = 1 if small < 1 else thick
        _label(out, str(digit.label), (x, y), colour, small, small_thick)
        percent = min(99, int(digit.confidence * 100))
        _label(out, f"{percent}", (x, y + h), colour, small * 0.8, small_thick, above=False)
    summary = reading.text or "no digits"
    summary += " (confident)" if reading.confident else " (not confident)"
    _label(out, summary, (0, out.shape[0]), colour, scale, thick)
    return np.ascontiguousarray(out, dtype=np.uint8)


def _label(
    img: npt.NDArray[np.uint8],
    text: str,
    corner: tuple[int, int],
    colour: tuple[int, int, int],
    scale: float,
    thick: int,
    above: bool = True,
) -> None:
    """Text on a filled background above (or below) ``corner``, kept inside the image."""
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thick)
    x, y = corner
    pad = thick
    top = y - th - base - 2 * pad if above else y + 1
    if top < 0:
        top = y
    x = min(max(0, x), max(0, img.shape[1] - tw - 2 * pad))
    top = min(max(0, top), max(0, img.shape[0] - th - base - 2 * pad))
    cv2.rectangle(img, (x, top), (x + tw + 2 * pad, top + th + base + 2 * pad), colour, -1)
    cv2.putText(img, text, (x + pad, top + pad + th), _FONT, scale, TEXT_ON, thick, cv2.LINE_AA)
