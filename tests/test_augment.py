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
