"""MNIST-style normalisation, and the promise that host and device preprocess digits alike."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from device.contract import Preprocessing
from device.normalize import ink_from_gray, normalize_batch, normalize_digit
from host.augment import renormalize
from host.mnist import load_mnist


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_mnist()
    return data.x_test[:50], data.y_test[:50]


def test_digit_fits_20px_box_with_centre_of_mass_at_14(digits):
    big = cv2.resize(digits[0][3], (140, 140), interpolation=cv2.INTER_LINEAR)
    out = normalize_digit(big)
    rows = np.flatnonzero((out > 0.1).any(axis=1))
    cols = np.flatnonzero((out > 0.1).any(axis=0))
    assert max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) in (20, 21, 22)
    m = cv2.moments(out)
    assert abs(m["m10"] / m["m00"] - 14) < 0.6 and abs(m["m01"] / m["m00"] - 14) < 0.6
    assert out.dtype == np.float32 and out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("width", [4, 5, 6, 7, 9])
def test_a_thin_one_fitted_two_pixels_wide_is_centred_whole(width):
    # A 75 px stroke 4-9 px wide fits the 20 px box 1-2 px wide. OpenCV reads a float array two
    # columns wide as a list of points, not an image: such a 1 was pushed half off the canvas.
    stroke = np.zeros((75, width), np.float32)
    stroke[:, 1 : width - 1] = 1.0
    out = normalize_digit(stroke)
    rows = np.flatnonzero((out > 0.1).any(axis=1))
    assert 19 <= rows[-1] - rows[0] + 1 <= 21 and 3 <= rows[0] <= 5
    ys, xs = np.mgrid[:28, :28]
    mass = out.sum()
    assert abs((out * xs).sum() / mass - 14) < 0.6 and abs((out * ys).sum() / mass - 14) < 0.6


def test_wide_digit_keeps_its_aspect_ratio():
    crop = np.zeros((10, 40), dtype=np.uint8)
    crop[3:7, :] = 255
    out = normalize_digit(crop)
    cols = np.flatnonzero((out > 0.1).any(axis=0))
    rows = np.flatnonzero((out > 0.1).any(axis=1))
    assert 19 <= cols[-1] - cols[0] + 1 <= 21
    assert rows[-1] - rows[0] + 1 <= 4


def test_blank_crop_gives_blank_canvas():
    assert not normalize_digit(np.zeros((5, 5), dtype=np.uint8)).any()
    assert normalize_batch([], Preprocessing()).shape == (0, 28, 28)


def test_ink_from_gray_detects_dark_ink_on_light_paper():
    paper = np.full((30, 30), 200, dtype=np.uint8)
    paper[10:20, 14:16] = 40
    ink = ink_from_gray(paper, "auto")
    assert ink[15, 15] == pytest.approx(1.0) and ink[2, 2] == pytest.approx(0.0)


def test_ink_from_gray_detects_light_ink_on_dark_background():
    board = np.full((30, 30), 30, dtype=np.uint8)
    board[10:20, 14:16] = 220
    ink = ink_from_gray(board, "auto")
    assert ink[15, 15] == pytest.approx(1.0) and ink[2, 2] == pytest.approx(0.0)


def test_deskew_straightens_a_slanted_stroke():
    img = np.zeros((28, 28), dtype=np.float32)
    cv2.line(img, (8, 24), (18, 4), 1.0, 2)
    straight = normalize_digit(img, Preprocessing(deskew=True))
    m = cv2.moments(straight)
    assert abs(m["mu11"] / m["mu02"]) < 0.1


def _similarity(x: np.ndarray, host: np.ndarray, pre: Preprocessing) -> list[float]:
    corr = []
    for i in range(len(x)):
        # The same digit as a 4x larger crop of dark ink on light paper, as a camera sees it.
        photo = 255 - cv2.resize(x[i], (112, 112), interpolation=cv2.INTER_CUBIC)
        device = normalize_digit(ink_from_gray(photo, "dark_on_light"), pre)
        corr.append(float(np.corrcoef(device.ravel(), host[i].ravel())[0, 1]))
    return corr


def test_host_training_input_matches_device_input_for_the_same_digit(digits):
    """The host trains on renormalize(MNIST); the device normalises a photographed crop. Only
    resampling may differ (measured: median correlation 0.984, worst 0.936 over 50 digits)."""
    x, _ = digits
    corr = _similarity(x, renormalize(x), Preprocessing())
    assert np.median(corr) > 0.97 and min(corr) > 0.9


def test_a_contract_mismatch_is_caught_by_the_same_check(digits):
    """Negative control: a device fitting digits into 16 px instead of 20 px fails the check."""
    x, _ = digits
    corr = _similarity(x, renormalize(x), Preprocessing(box=16))
    assert not (np.median(corr) > 0.97 and min(corr) > 0.9)


def test_user_training_images_get_exactly_the_device_tensor(tmp_path, digits):
    """`host.train --extra` loads a saved crop exactly as the device normalises it."""
    from host.train import load_extra

    x, y = digits
    photo = 255 - cv2.resize(x[0], (90, 90), interpolation=cv2.INTER_CUBIC)
    (tmp_path / str(y[0])).mkdir()
    cv2.imwrite(str(tmp_path / str(y[0]) / "crop.png"), photo)
    loaded, labels = load_extra(tmp_path)
    device = normalize_digit(ink_from_gray(photo, "auto"))
    assert labels.tolist() == [y[0]]
    assert np.array_equal(loaded[0], device)
