"""Training augmentation (host.augment.CameraAugment): a Keras layer that distorts digits like
camera crops while training and leaves them alone at inference, on any Keras backend."""

from __future__ import annotations

import numpy as np
import pytest

from host.mnist import load_mnist


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    data = load_mnist()
    return (data.x_train[:256] / 255.0).astype(np.float32)[..., None]


def _centre_of_mass(batch: np.ndarray) -> np.ndarray:
    ys, xs = np.mgrid[:28, :28]
    ink = batch[..., 0]
    mass = ink.sum(axis=(1, 2))
    return np.stack([(ink * xs).sum((1, 2)) / mass, (ink * ys).sum((1, 2)) / mass], axis=1)


def test_augment_is_the_identity_at_inference(digits: np.ndarray):
    from host.augment import CameraAugment

    layer = CameraAugment(seed=1)
    assert np.array_equal(np.asarray(layer(digits, training=False)), digits)
    assert np.array_equal(np.asarray(layer(digits)), digits)


def test_augment_moves_and_restyles_each_digit_while_training(digits: np.ndarray):
    from host.augment import MAX_SHIFT_PX, CameraAugment

    layer = CameraAugment(seed=1)
    first = np.asarray(layer(digits, training=True))
    second = np.asarray(layer(digits, training=True))
    assert first.shape == digits.shape and first.dtype == np.float32
    assert first.min() >= 0.0 and np.allclose(first.max(axis=(1, 2, 3)), 1.0)
    # Every digit changed, and each call draws new distortions.
    assert (np.abs(first - digits).mean(axis=(1, 2, 3)) > 0.01).all()
    assert np.abs(first - second).mean() > 0.05
    # Shifts spread the centre of mass by up to MAX_SHIFT_PX (plus rotation and scale), no more.
    moved = _centre_of_mass(first) - _centre_of_mass(digits)
    assert moved.std(axis=0).min() > 0.5 and np.abs(moved).max() < MAX_SHIFT_PX + 2.5


def test_augment_layer_is_repeatable_for_a_seed(digits: np.ndarray):
    from host.augment import CameraAugment

    a = np.asarray(CameraAugment(seed=7)(digits, training=True))
    b = np.asarray(CameraAugment(seed=7)(digits, training=True))
    c = np.asarray(CameraAugment(seed=8)(digits, training=True))
    assert np.allclose(a, b) and not np.allclose(a, c)


def test_elastic_bend_moves_ink_a_few_pixels_smoothly_and_only_when_asked(digits: np.ndarray):
    import cv2

    from host.augment import ELASTIC_ALPHA_PX, CameraAugment

    unbent = np.asarray(CameraAugment(seed=3, elastic=0.0)._bend(digits, len(digits)))
    assert np.allclose(unbent, digits, atol=1e-6)  # a zero field samples every pixel in place
    bent = np.asarray(CameraAugment(seed=3, elastic=1.0)._bend(digits, len(digits)))
    assert bent.shape == digits.shape
    # Every digit is reshaped (a field drawn near zero barely changes one, hence 95%).
    assert (np.abs(bent - digits).mean(axis=(1, 2, 3)) > 0.02).mean() > 0.95
    # ... but no ink lands further than ALPHA px (plus interpolation) from where it was, and
    # the amount of ink changes only as much as stretching a stroke here and squeezing it
    # there does (nothing torn off or doubled).
    reach = 2 * int(np.ceil(ELASTIC_ALPHA_PX)) + 3
    for before, after in zip(digits[..., 0], bent[..., 0], strict=True):
        near = cv2.dilate((before > 0.05).astype(np.uint8), np.ones((reach, reach), np.uint8))
        assert not ((after > 0.05) & (near == 0)).any()
    ratio = bent.sum(axis=(1, 2, 3)) / digits.sum(axis=(1, 2, 3))
    assert ratio.min() > 0.6 and ratio.max() < 1.5 and 0.9 < np.median(ratio) < 1.1
    half = np.asarray(CameraAugment(seed=3, elastic=0.5)._bend(digits, len(digits)))
    same = np.isclose(half, digits, atol=1e-6).all(axis=(1, 2, 3))
    assert 0.3 < same.mean() < 0.7  # about half the digits are left alone


def test_elastic_share_is_checked_and_saved_with_the_layer():
    from host.augment import CameraAugment

    with pytest.raises(ValueError, match="elastic is the share of digits"):
        CameraAugment(seed=1, elastic=2.0)
    layer = CameraAugment.from_config(CameraAugment(seed=1, elastic=0.25).get_config())
    assert layer.elastic == 0.25 and layer.seed == 1
