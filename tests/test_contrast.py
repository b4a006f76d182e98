"""The ink contrast image: ink bright on a flat ground whatever the light, and the ink level."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from device.contrast import ink_contrast, ink_level

H, W = 120, 160
KERNEL = 56  # the segmenter's background filter at 480 rows


def _contrast(gray: np.ndarray, polarity: str = "auto") -> tuple[np.ndarray, str, bool]:
    background = np.empty_like(gray)
    out = np.empty_like(gray)
    found, sure = ink_contrast(gray, polarity, KERNEL, background, out)
    return out, found, sure


def _page(paper: int, ink: int) -> np.ndarray:
    """Paper (with a little sensor noise) and two 3-px strokes: a vertical one at x 40 and a
    horizontal one at y 80."""
    noise = np.random.default_rng(0).normal(0, 3, (H, W))
    page = np.clip(paper + noise, 0, 255).astype(np.uint8)
    page[20:100, 40:43] = ink
    page[80:83, 60:140] = ink
    return page


def test_dark_ink_on_paper_is_bright_on_a_flat_ground() -> None:
    out, polarity, sure = _contrast(_page(paper=200, ink=60))
    assert (polarity, sure) == ("dark_on_light", True)
    assert out[50, 41] > 150  # on the stroke
    assert out[50, 100] <= 12  # paper


def test_chalk_on_a_dark_board_is_detected_and_read_bright() -> None:
    out, polarity, sure = _contrast(_page(paper=40, ink=220))
    assert (polarity, sure) == ("light_on_dark", True)
    assert out[50, 41] > 150
    assert out[50, 100] <= 12


def test_a_shadow_dims_paper_and_ink_alike_and_the_contrast_stays() -> None:
    # A soft shadow over the right half: paper and ink fall to 45% of their light over 40 px.
    light = np.clip(1.0 - 0.55 * (np.arange(W) - 60) / 40, 0.45, 1.0)
    shadowed = (_page(paper=200, ink=60) * light).astype(np.uint8)
    out, _, _ = _contrast(shadowed, "dark_on_light")
    in_light, in_shadow = int(out[81, 65]), int(out[81, 130])
    assert in_light > 150
    assert abs(in_light - in_shadow) <= 0.1 * in_light
    # The shadow itself is no ink, away from the strokes.
    assert out[20:60, 60:150].max() < 0.25 * in_light


def test_a_stroke_wider_than_the_background_filter_is_taken_for_paper() -> None:
    page = np.full((H, W), 200, np.uint8)
    page[:, 40:43] = 60  # a pen stroke
    page[:, 80:150] = 60  # a band far wider than the filter
    out, _, _ = _contrast(page, "dark_on_light")
    assert out[60, 41] > 150
    assert out[60, 115] < 30


def test_the_ink_level_is_otsus_above_the_floor_and_the_floor_below() -> None:
    out, _, _ = _contrast(_page(paper=200, ink=60))
    otsu, _ = cv2.threshold(np.ascontiguousarray(out[::2, ::2]), 0, 255, cv2.THRESH_OTSU)
    assert ink_level(out, floor=10) == pytest.approx(otsu)
    assert ink_level(out, floor=otsu + 20) == pytest.approx(otsu + 20)
    # A floor over 254 would let no pixel count: it stops at 254.
    assert ink_level(np.zeros((H, W), np.uint8), floor=400) == 254
