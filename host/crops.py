"""Camera-like training digits: render frames from MNIST *training* digits, segment them with the
device's own segmenter, and keep each crop normalised exactly as the device will see it.

This closes the gap between MNIST and what the device actually feeds the model (blur, JPEG,
shadows, paper texture, stroke styles, imperfect masks) where it belongs: in the training data.
Only frames whose segmentation matches the truth digit for digit are used, so labels are exact.
Test-split digits are never used here; they are reserved for the rendered evaluation frames.
"""

from __future__ import annotations

import itertools
import logging
import time
from pathlib import Path

import cv2
import numpy as np

from device.normalize import normalize_digit
from device.segment import Segmenter, SegmenterConfig
from host.mnist import ROOT

logger = logging.getLogger(__name__)

CACHE_DIR = ROOT / "data" / "crops"
FRAME_SIZE = (640, 480)


def _labels_for(segments, numbers: list[str]) -> list[int] | None:
    """Truth labels for the segments, or None when segmentation does not match the truth."""
    groups: dict[int, list[int]] = {}
    for i, seg in enumerate(segments):
        groups.setdefault(seg.group, []).append(i)
    ordered = [groups[g] for g in sorted(groups)]
    if len(ordered) != len(numbers) or any(
        len(idx) != len(num) for idx, num in zip(ordered, numbers, strict=True)
    ):
        return None
    labels = [0] * len(segments)
    for idx, num in zip(ordered, numbers, strict=True):
        for i, ch in zip(idx, num, strict=True):
            labels[i] = int(ch)
    return labels


def _render_range(
    args: tuple[int, int, int, np.ndarray],
) -> tuple[list[np.ndarray], list[int], int]:
    from host.frames import NoiseBank, render_frame
    from host.handwriting import GlyphBank
    from host.mnist import load_mnist

    seed, start, stop, indices = args
    data = load_mnist()
    # Only the digits the model trains on: held-out validation digits must not leak in.
    bank = GlyphBank(data.x_train[indices], data.y_train[indices])
    noise = NoiseBank(*FRAME_SIZE, seed)
    segmenter = Segmenter(SegmenterConfig())
    xs: list[np.ndarray] = []
    ys: list[int] = []
    matched = 0
    for i in range(start, stop):
        rng = np.random.default_rng([seed, i])
        try:
            data, record, _ = render_frame(bank, noise, rng, *FRAME_SIZE)
        except RuntimeError as e:
            # The renderer gives up on a rare layout ("layout placed no number"): skip the frame.
            logger.debug("frame %d skipped: %s", i, e)
            continue
        frame = cv2.imdecode(data, cv2.IMREAD_COLOR)
        segments = segmenter.segment(frame)
        labels = _labels_for(segments, record["numbers"])
        if labels is None:
            continue
        matched += 1
        for seg, label in zip(segments, labels, strict=True):
            xs.append(normalize_digit(seg.ink))
            ys.append(label)
    return xs, ys, matched


def render_crops(
    frames: int, seed: int, indices: np.ndarray, workers: int | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Render ``frames`` frames from the MNIST training digits at ``indices`` and return the
    matched, normalised crops.

    Frame i depends only on (seed, i), so splitting the range over worker processes gives the
    same crops in the same order as one process.
    """
    import multiprocessing
    import os

    workers = workers or min(4, os.cpu_count() or 1)
    bounds = np.linspace(0, frames, workers + 1).astype(int)
    jobs = [(seed, int(a), int(b), indices) for a, b in itertools.pairwise(bounds)]
    started = time.monotonic()
    if workers == 1:
        parts = [_render_range(jobs[0])]
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            parts = pool.map(_render_range, jobs)
    xs = [x for part in parts for x in part[0]]
    ys = [y for part in parts for y in part[1]]
    matched = sum(part[2] for part in parts)
    stats = {
        "frames": frames,
        "matched_frames": matched,
        "crops": len(xs),
        "seconds": round(time.monotonic() - started, 1),
    }
    if not xs:
        return np.zeros((0, 28, 28), np.float32), np.zeros((0,), np.uint8), stats
    return np.stack(xs).astype(np.float32), np.asarray(ys, np.uint8), stats


def camera_crops(frames: int, seed: int, indices: np.ndarray, cache_dir: Path = CACHE_DIR):
    """``render_crops`` with an on-disk cache keyed by frames, seed, digits and code."""
    import hashlib

    import device.segment as segment_module

    source = (
        Path(segment_module.__file__).read_bytes()
        + Path(__file__).read_bytes()
        + np.asarray(indices, np.int64).tobytes()
    )
    key = hashlib.sha256(source).hexdigest()[:12]
    path = cache_dir / f"crops-{frames}-{seed}-{key}.npz"
    if path.is_file():
        with np.load(path) as cached:
            logger.info("camera crops: %d from cache %s", len(cached["y"]), path)
            return cached["x"], cached["y"], {"cached": 1.0, "crops": float(len(cached["y"]))}
    x, y, stats = render_crops(frames, seed, indices)
    logger.info(
        "camera crops: %d crops from %d of %d frames in %.0f s",
        stats["crops"], stats["matched_frames"], frames, stats["seconds"],
    )  # fmt: skip
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez_compressed(tmp, x=x, y=y)
    tmp.replace(path)
    return x, y, stats
