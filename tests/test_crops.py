"""Tests for host.crops: how the segmenter's crops of rendered frames are labelled for training."""

from __future__ import annotations

import numpy as np

from device.contract import NOT_A_DIGIT_INDEX
from host.crops import CROP_MODULES, CROP_ROOTS, label_crop, render_crops

# Two digits side by side, 20x30 each, 4 px apart: a "3" then a "7".
TRUTH = [(100, 50, 20, 30), (124, 50, 20, 30)]
LABELS = [3, 7]


def test_a_crop_framing_one_digit_gets_its_label() -> None:
    assert label_crop((100, 50, 20, 30), TRUTH, LABELS) == 3
    # The segmenter's box is often a little smaller (faint stroke ends) or grazes a neighbour.
    assert label_crop((102, 53, 17, 24), TRUTH, LABELS) == 3
    assert label_crop((123, 50, 22, 30), TRUTH, LABELS) == 7


def test_touching_digits_read_as_one_blob_are_not_a_digit() -> None:
    assert label_crop((100, 50, 44, 30), TRUTH, LABELS) == NOT_A_DIGIT_INDEX


def test_a_short_piece_of_a_digit_or_a_smudge_is_not_a_digit() -> None:
    assert label_crop((100, 50, 20, 8), TRUTH, LABELS) == NOT_A_DIGIT_INDEX  # the bar of a 5
    # Nowhere near a digit:
    assert label_crop((300, 200, 15, 20), TRUTH, LABELS) == NOT_A_DIGIT_INDEX
    assert label_crop((300, 200, 15, 20), [], []) == NOT_A_DIGIT_INDEX


def test_a_tall_narrow_piece_that_looks_like_a_one_is_left_out() -> None:
    # The stem of a 4 cut from its bar: rejecting it would teach the model to reject 1s.
    assert label_crop((112, 50, 6, 30), TRUTH, LABELS) is None


def test_half_of_a_digit_is_too_ambiguous_to_label() -> None:
    assert label_crop((100, 50, 10, 30), TRUTH, LABELS) is None


def test_rendered_training_frames_give_digits_and_rejects() -> None:
    x, y, stats = render_crops(12, seed=3, indices=np.arange(2000), workers=1)
    assert stats["rendered_frames"] == 12 and len(x) == len(y) == stats["crops"]
    assert x.shape[1:] == (28, 28) and x.min() >= 0.0 and x.max() <= 1.0
    digits = y[y != NOT_A_DIGIT_INDEX]
    # Most crops are digits (the segmenter is mostly right, and a split alternative of a single
    # digit leaves most of it on one side); the rest are rejects.
    assert len(digits) >= 0.5 * len(y) and len(set(digits.tolist())) >= 8
    assert NOT_A_DIGIT_INDEX in y


def test_hd_training_frames_give_crops_too() -> None:
    x, y, stats = render_crops(3, seed=4, indices=np.arange(2000), workers=1, size=(1920, 1080))
    assert stats["rendered_frames"] == 3 and len(x) == len(y) > 0
    assert len(y[y != NOT_A_DIGIT_INDEX]) >= 0.5 * len(y)


def test_the_crop_cache_key_covers_every_module_a_crop_depends_on() -> None:
    """A module the segmenter, the normalisation or the renderer imports, left out of the
    cache key, would let a change to it reuse crops made by the old code."""
    import subprocess
    import sys
    from pathlib import Path

    script = (
        f"import importlib, sys\nfor m in {CROP_ROOTS!r}: importlib.import_module(m)\n"
        "print(' '.join(m for m in sys.modules if m.split('.')[0] in ('device', 'host')))"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, check=True
    )
    imported = set(out.stdout.split()) - {"device", "host"}
    assert imported <= set(CROP_MODULES), sorted(imported - set(CROP_MODULES))
