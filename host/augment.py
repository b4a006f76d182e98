"""Training-time augmentation that makes MNIST look like camera crops, plus style variants.

Two kinds: (1) static style variants drawn once on copies of MNIST digits — crossed 7s,
continental 1s with a long upstroke — because MNIST (US census writers) has few of them;
(2) random per-batch distortions in a Keras layer that runs on any Keras backend: small
rotation/scale/shift (segmentation and normalisation are never exact), optionally an elastic
bend (other writers' proportions), stroke thickness (marker vs pencil), blur and sensor noise.
"""

from __future__ import annotations

import cv2
import keras
import numpy as np
from keras import ops

from device.normalize import normalize_digit

# Share of the 7s and 1s that get a style variant added as an extra training sample.
STYLE_VARIANT_FRACTION = 0.35
MAX_ROTATION_DEG = 10.0
SCALE_RANGE = (0.9, 1.1)
MAX_SHIFT_PX = 2.0
THICKEN_PROB = 0.2
THIN_PROB = 0.15
BLUR_PROB = 0.2
NOISE_STD_MAX = 0.04
# Elastic distortion (Simard et al. 2003, the classic way past 99.5% on MNIST): each pixel moves
# by a smooth random field, drawn as a GRID x GRID lattice of displacements up to ALPHA px
# across and down and interpolated (bicubic) to 28x28: strokes bend and proportions change the
# way two writers' digits differ, which an affine map cannot do. Off unless asked for
# (``--elastic P``): the share of digits that get it.
ELASTIC_ALPHA_PX = 2.0
ELASTIC_GRID = 4


def _stroke_width(img: np.ndarray) -> int:
    ink = img > 127
    area = int(ink.sum())
    skeleton_len = max(1, int(cv2.countNonZero(cv2.Canny(img, 50, 150))) // 2)
    return int(np.clip(round(area / skeleton_len), 1, 4))


def cross_seven(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw a continental bar through the stem of a 7 at about mid-height."""
    out = img.copy()
    rows = np.flatnonzero((img > 127).any(axis=1))
    if rows.size < 8:
        return out
    y = int(rows[0] + (rows[-1] - rows[0]) * rng.uniform(0.45, 0.6))
    cols = np.flatnonzero(img[y] > 127)
    if cols.size == 0:
        return out
    cx = int(cols.mean())
    half = int(rng.integers(3, 6))
    tilt = int(rng.integers(-1, 2))
    cv2.line(
        out, (cx - half, y + tilt), (cx + half, y - tilt), 255, _stroke_width(img), cv2.LINE_AA
    )
    return out


def continental_one(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add the long flag (upstroke) of a continental 1 from the top of the stroke down-left."""
    out = img.copy()
    ys, xs = np.nonzero(img > 127)
    if ys.size < 8:
        return out
    top = int(ys.min())
    x_top = int(xs[ys <= top + 1].mean())
    length = (ys.max() - top) * rng.uniform(0.3, 0.55)
    angle = np.deg2rad(rng.uniform(25, 50))  # below the horizontal, towards the left
    end = (
        int(np.clip(x_top - length * np.cos(angle), 0, 27)),
        int(np.clip(top + length * np.sin(angle), 0, 27)),
    )
    cv2.line(out, (x_top, top), end, 255, _stroke_width(img), cv2.LINE_AA)
    return out


def style_variants(
    x: np.ndarray, y: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Extra samples: crossed 7s and continental 1s drawn on copies of MNIST digits."""
    extra_x, extra_y = [], []
    for label, draw in ((7, cross_seven), (1, continental_one)):
        idx = np.flatnonzero(y == label)
        pick = rng.choice(idx, size=int(len(idx) * STYLE_VARIANT_FRACTION), replace=False)
        for i in pick:
            extra_x.append(draw(x[i], rng))
            extra_y.append(label)
    if not extra_x:
        return x[:0], y[:0]
    return np.stack(extra_x), np.asarray(extra_y, dtype=y.dtype)


def renormalize(x: np.ndarray) -> np.ndarray:
    """Pass every digit through the device's normalisation so training sees exactly what the
    device produces (float32 in [0, 1], 20x20 box, centre of mass at 14,14)."""
    return np.stack([normalize_digit(img) for img in x]).astype(np.float32)


class CameraAugment(keras.layers.Layer):
    """Random geometric + photometric distortion of a batch (N, 28, 28, 1) float32 in [0, 1],
    applied only while training (an identity at inference).

    Written in ``keras.ops`` and ``keras.random`` so that the same training runs on any Keras
    backend: TensorFlow on a laptop, JAX or PyTorch on a GPU machine.
    """

    def __init__(self, seed: int | None = None, elastic: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= elastic <= 1.0:
            raise ValueError(f"elastic is the share of digits distorted, 0..1, not {elastic}")
        self.seed = seed
        self.elastic = float(elastic)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training:
            return images
        return self._distort(images)

    def _uniform(self, shape, low=0.0, high=1.0):
        return keras.random.uniform(shape, low, high, seed=self.seed_generator)

    def _affine(self, batch):
        angle = self._uniform((batch,), -1.0, 1.0) * np.deg2rad(MAX_ROTATION_DEG)
        scale = self._uniform((batch,), *SCALE_RANGE)
        dx = self._uniform((batch,), -MAX_SHIFT_PX, MAX_SHIFT_PX)
        dy = self._uniform((batch,), -MAX_SHIFT_PX, MAX_SHIFT_PX)
        c = 13.5
        cos, sin = ops.cos(angle) / scale, ops.sin(angle) / scale
        # Inverse map output->input around the image centre (what affine_transform expects).
        a0, a1, b0, b1 = cos, -sin, sin, cos
        a2 = c - a0 * (c + dx) - a1 * (c + dy)
        b2 = c - b0 * (c + dx) - b1 * (c + dy)
        zeros = ops.zeros_like(a0)
        return ops.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)

    def _bend(self, images, batch):
        """``images`` resampled through a smooth random displacement field (ELASTIC_*), for
        the ``elastic`` share of them; the rest come back as they were.

        Bilinear sampling written as a weighted sum of the image shifted by every whole
        offset the field can reach: no gather, so no backend needs the batch size in advance
        (TensorFlow's ``map_coordinates`` does, and a training graph has none).
        """
        reach, size = int(np.ceil(ELASTIC_ALPHA_PX)) + 1, 28
        chosen = ops.cast(self._uniform((batch, 1, 1, 1)) < self.elastic, "float32")
        coarse = self._uniform(
            (batch, ELASTIC_GRID, ELASTIC_GRID, 2), -ELASTIC_ALPHA_PX, ELASTIC_ALPHA_PX
        )
        field = ops.image.resize(coarse * chosen, (size, size), interpolation="bicubic")
        # (Bicubic overshoots its lattice a little; the offsets stop at ``reach``.)
        field = ops.clip(field, -reach, reach)
        dy, dx = field[..., :1], field[..., 1:]
        padded = ops.pad(images, [[0, 0], [reach, reach], [reach, reach], [0, 0]])
        out = ops.zeros_like(images)
        for i in range(-reach, reach + 1):
            # Linear interpolation's weight of the pixel i rows away: 1 - |dy - i|, if positive.
            wy = ops.relu(1.0 - ops.abs(dy - i))
            for j in range(-reach, reach + 1):
                wx = ops.relu(1.0 - ops.abs(dx - j))
                shifted = padded[:, reach + i : reach + i + size, reach + j : reach + j + size]
                out = out + wy * wx * shifted
        return out

    def _distort(self, images):
        batch = ops.shape(images)[0]
        x = ops.image.affine_transform(
            images, self._affine(batch), interpolation="bilinear", fill_mode="constant"
        )
        if self.elastic > 0:
            x = self._bend(x, batch)
        # Stroke thickness: max-pool dilates (marker), min-pool erodes (pencil).
        u = self._uniform((batch, 1, 1, 1))
        thick = ops.max_pool(x, 2, 1, "same")
        thin = -ops.max_pool(-x, 2, 1, "same")
        x = ops.where(u < THICKEN_PROB, thick, ops.where(u > 1.0 - THIN_PROB, 0.5 * (x + thin), x))
        # Blur: a 3x3 binomial kernel, as from a slightly defocused camera.
        kernel = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32)[:, :, None, None] / 16
        blurred = ops.conv(x, ops.convert_to_tensor(kernel), 1, "same")
        x = ops.where(self._uniform((batch, 1, 1, 1)) < BLUR_PROB, blurred, x)
        # Sensor noise, then renormalise the peak to 1 like the device's normalisation does.
        std = self._uniform((batch, 1, 1, 1), 0.0, NOISE_STD_MAX)
        x = x + std * keras.random.normal(ops.shape(x), seed=self.seed_generator)
        x = ops.clip(x, 0.0, 1.0)
        peak = ops.max(x, axis=(1, 2, 3), keepdims=True)
        return ops.divide_no_nan(x, peak)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed, "elastic": self.elastic}
