"""Camera-like training digits: render frames from MNIST *training* digits, segment them with the
device's own segmenter, and keep each crop normalised exactly as the device will see it.

This closes the gap between MNIST and what the device actually feeds the model (blur, JPEG,
shadows, paper texture, stroke styles, imperfect masks) where it belongs: in the training data.
Every crop the segmenter offers the reader (its digits and the alternative readings of
ambiguous blobs) is labelled by the renderer's per-digit boxes: a crop that frames one digit
gets that digit; one that frames two touching digits as one, a short piece of a digit, or no
digit at all gets NOT_A_DIGIT_INDEX (label 10, the "none" output), so the model learns to reject
what the reader must not read as a digit; anything in between is left out.
Test-split digits are never used here; they are reserved for the rendered evaluation frames.
"""

from __future__ import annotations

import itertools
import logging
import time
from pathlib import Path

import cv2
import numpy as np

from device.contract import NOT_A_DIGIT_INDEX
from device.normalize import normalize_digit
from device.segment import Segmenter, SegmenterConfig
from host.mnist import ROOT
from host.reading_score import box_overlap

logger = logging.getLogger(__name__)

CACHE_DIR = ROOT / "data" / "crops"
# The modules a crop depends on: the segmenter, the normalisation and the renderer, with
# everything of ours they import (tests/test_crops.py checks). The cache key hashes their
# source, so a change to any of them renders new crops. (Until session 18 the key named the
# segmenter's modules by hand: it missed device.contrast when that was split from
# device.segment, and the renderer, so a change to either would have reused stale crops.)
CROP_MODULES = (
    "device.atomic",
    "device.blobs",
    "device.contract",
    "device.contrast",
    "device.digest",
    "device.errors",
    "device.lines",
    "device.normalize",
    "device.order",
    "device.pooled",
    "device.reading",
    "device.segment",
    "device.touching",
    "host.errors",
    "host.frames",
    "host.handwriting",
)
# The modules whose imports CROP_MODULES must cover.
CROP_ROOTS = ("device.segment", "device.normalize", "host.frames", "host.handwriting")
FRAME_SIZE = (640, 480)
# Sizes of host.train's --hd-frames frames: the reader's stroke-sized settings scale with the
# rows, its digit sizes do not, so crops from taller frames differ (finer strokes, other blurs).
HD_SIZES = ((1280, 720), (1920, 1080))


# A crop is a digit's when it covers this much of the digit's truth box and is mostly that
# digit (the segmenter's box is often a little smaller than the renderer's: faint ends) ...
_DIGIT_COVER, _DIGIT_PURITY = 0.6, 0.5
# ... and covers no more than this of any other digit.
_OTHER_COVER = 0.25
# Two digits each covered this much: one crop of touching digits.
_PAIR_COVER = 0.5
# A piece of one digit (most of the crop inside its box) covering less than this of it is not a
# digit, unless it is nearly as tall as the digit and narrow: the stem of a 4 cut from its bar
# looks exactly like a 1, and teaching the model to reject it would reject real 1s.
_FRAGMENT_COVER = 0.4
_ONE_LIKE_HEIGHT, _ONE_LIKE_ASPECT = 0.75, 0.45


# The device offers split alternatives from w/h 0.75; training crops take them from 1.3 only.
# Crops from 0.75 add a third more "none" examples (halves of single digits), and that model
# rejected real digits: exact match 0.789 vs 0.807 on 900 rendered frames. Tighter digit labels
# (cover 0.8, purity 0.7) were worse still (0.764).
TRAINING_ALTERNATIVE_ASPECT = 1.3


def label_crop(box, truth_boxes, truth_labels) -> int | None:
    """The training label of a crop at ``box`` (x, y, w, h) given the frame's digit boxes:
    a digit 0-9, NOT_A_DIGIT_INDEX, or None when the crop is too ambiguous to label."""
    area = max(1, box[2] * box[3])
    cover = [box_overlap(box, t) / max(1, t[2] * t[3]) for t in truth_boxes]
    if not cover:
        return NOT_A_DIGIT_INDEX
    order = sorted(range(len(cover)), key=lambda i: -cover[i])
    best = order[0]
    second = cover[order[1]] if len(order) > 1 else 0.0
    purity = box_overlap(box, truth_boxes[best]) / area
    if cover[best] >= _DIGIT_COVER and purity >= _DIGIT_PURITY and second <= _OTHER_COVER:
        return int(truth_labels[best])
    if second >= _PAIR_COVER:
        return NOT_A_DIGIT_INDEX
    if cover[best] < _FRAGMENT_COVER:
        t = truth_boxes[best]
        one_like = box[3] >= _ONE_LIKE_HEIGHT * t[3] and box[2] < _ONE_LIKE_ASPECT * box[3]
        return None if one_like else NOT_A_DIGIT_INDEX
    return None


def _crops_of(segments):
    """Every crop the reader would classify: the segments and their alternatives."""
    for seg in segments:
        yield seg
        for alternative in seg.alternatives:
            yield from alternative


def _render_range(
    args: tuple[int, int, int, np.ndarray, tuple[int, int]],
) -> tuple[list[np.ndarray], list[int], int]:
    from host.frames import NoiseBank, render_frame
    from host.handwriting import GlyphBank
    from host.mnist import load_mnist

    seed, start, stop, indices, size = args
    data = load_mnist()
    # Only the digits the model trains on: held-out validation digits must not leak in.
    bank = GlyphBank(data.x_train[indices], data.y_train[indices])
    noise = NoiseBank(*size, seed)
    segmenter = Segmenter(SegmenterConfig(alternative_aspect=TRAINING_ALTERNATIVE_ASPECT))
    xs: list[np.ndarray] = []
    ys: list[int] = []
    rendered = 0
    for i in range(start, stop):
        rng = np.random.default_rng([seed, i])
        try:
            data, record, _ = render_frame(bank, noise, rng, *size)
        except RuntimeError as e:
            # The renderer gives up on a rare layout ("layout placed no number"): skip the frame.
            logger.debug("frame %d skipped: %s", i, e)
            continue
        frame = cv2.imdecode(data, cv2.IMREAD_COLOR)
        boxes = [b for number in record["boxes"] for b in number]
        labels = [int(ch) for number in record["numbers"] for ch in number]
        rendered += 1
        for seg in _crops_of(segmenter.segment(frame)):
            label = label_crop(seg.box, boxes, labels)
            if label is not None:
                xs.append(normalize_digit(seg.ink))
                ys.append(label)
    return xs, ys, rendered


def render_crops(
    frames: int,
    seed: int,
    indices: np.ndarray,
    workers: int | None = None,
    size: tuple[int, int] = FRAME_SIZE,
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Render ``frames`` frames of ``size`` (width, height) from the MNIST training digits at
    ``indices`` and return the labelled, normalised crops (labels 0-9 and NOT_A_DIGIT_INDEX).

    Frame i depends only on (seed, i), so splitting the range over worker processes gives the
    same crops in the same order as one process.
    """
    import multiprocessing
    import os

    workers = workers or min(16, os.cpu_count() or 1)
    bounds = np.linspace(0, frames, workers + 1).astype(int)
    jobs = [(seed, int(a), int(b), indices, size) for a, b in itertools.pairwise(bounds)]
    started = time.monotonic()
    if workers == 1:
        parts = [_render_range(jobs[0])]
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            parts = pool.map(_render_range, jobs)
    xs = [x for part in parts for x in part[0]]
    ys = [y for part in parts for y in part[1]]
    rendered = sum(part[2] for part in parts)
    stats = {
        "frames": frames,
        "rendered_frames": rendered,
        "crops": len(xs),
        "seconds": round(time.monotonic() - started, 1),
    }
    if not xs:
        return np.zeros((0, 28, 28), np.float32), np.zeros((0,), np.uint8), stats
    return np.stack(xs).astype(np.float32), np.asarray(ys, np.uint8), stats


def camera_crops(
    frames: int,
    seed: int,
    indices: np.ndarray,
    cache_dir: Path = CACHE_DIR,
    size: tuple[int, int] = FRAME_SIZE,
):
    """``render_crops`` with an on-disk cache keyed by frames, size, seed, digits and code."""
    import hashlib
    import importlib

    code = [importlib.import_module(name) for name in CROP_MODULES]
    source = (
        b"".join(Path(str(m.__file__)).read_bytes() for m in code)
        + Path(__file__).read_bytes()
        + np.asarray(indices, np.int64).tobytes()
    )
    key = hashlib.sha256(source).hexdigest()[:12]
    path = cache_dir / f"crops-{frames}-{size[0]}x{size[1]}-{seed}-{key}.npz"
    if path.is_file():
        with np.load(path) as cached:
            logger.info("camera crops: %d from cache %s", len(cached["y"]), path)
            return cached["x"], cached["y"], {"cached": 1.0, "crops": float(len(cached["y"]))}
    x, y, stats = render_crops(frames, seed, indices, size=size)
    logger.info(
        "camera crops: %d crops from %d of %d frames in %.0f s",
        stats["crops"], stats["rendered_frames"], frames, stats["seconds"],
    )  # fmt: skip
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez_compressed(tmp, x=x, y=y)
    tmp.replace(path)
    return x, y, stats
