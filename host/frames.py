"""Render realistic camera frames of handwritten numbers from MNIST test digits (`make frames`).

Each frame is a page photographed by a camera: paper (or chalkboard / LCD) texture, 1-3
numbers of 1-8 digits, optional ruled lines or a table with borders, perspective, uneven
light and shadows, blur, sensor noise and JPEG artefacts. Ground truth goes to
``DIR/truth.json``; ``text`` lists the numbers in the segmenter's reading order (rows top to
bottom, then left to right). The same seed always gives the same frames.

    python -m host.frames --out tests/frames --count 40 --seed 7
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from device.atomic import atomic_write_bytes
from device.order import reading_order
from host.errors import DataError, OutputPathError
from host.handwriting import VARIANT_LABEL, VARIANTS, GlyphBank

logger = logging.getLogger(__name__)

DEFAULT_SIZE = (640, 480)
# Frame sizes outside this range are refused: too small to hold a 15-px digit with margins,
# or so large that one frame takes seconds.
MIN_SIZE, MAX_SIZE = 160, 4096
MAX_COUNT = 1_000_000
FRAME_NAME = re.compile(r"^f\d{4,}\.(png|jpg)$")

# Digit heights (pixels at 640x480; scaled with the frame's height) per size class.
SMALL_H = (15, 20)
MEDIUM_H = (22, 90)
LARGE_FRAC = (0.25, 0.5)  # of the frame height: "large" digits reach half the frame
SIZE_CLASS_P = {"small": 0.2, "medium": 0.6, "large": 0.2}
LAYOUT_P = {"free": 0.45, "ruled": 0.25, "table": 0.30}
LIGHT_ON_DARK_P = 0.2
MAX_DIGITS, MAX_NUMBERS = 8, 3
# Gap between digits of one number, as a fraction of digit height; touching digits overlap.
DIGIT_GAP = (0.06, 0.3)
TOUCH_OVERLAP = (0.0, 0.06)
TOUCHING_P = 0.25
# Clear gap between two numbers on one row, as a fraction of digit height.
NUMBER_GAP = (1.6, 3.0)
# Vertical gap between rows of numbers, as a fraction of digit height.
ROW_GAP = (0.6, 1.5)
VARIANT_P = 0.35
MARGIN_FRAC = 0.05  # of the frame's smaller side kept free of digits
# Perspective: each corner moves by up to this fraction of the frame size.
PERSPECTIVE_MAX = 0.04
NOISE_SIGMA = (1.5, 6.0)  # sensor noise, grey levels
BLUR_SIGMA = (0.3, 1.4)
JPEG_P = 0.8  # the rest are PNG, saved as camera grey (Y plane), as a lores stream gives it
JPEG_QUALITY = (40, 92)
SHADOW_P = 0.35
GRADIENT_P = 0.6
# Precomputed noise fields (2x the frame each way) sliced at random offsets: drawing fresh
# normal noise for every pixel of every frame would cost more than the rest of the render.
NOISE_FIELDS = 4

# BGR colours.
PAPER = ((236, 240, 242), (215, 228, 235), (240, 238, 230), (225, 232, 225))
INKS = {
    "black_pen": ((35, 30, 30), (0.85, 0.97)),
    "blue_pen": ((150, 60, 25), (0.8, 0.95)),
    "pencil": ((105, 105, 110), (0.55, 0.8)),
}
RULE_COLOURS = ((200, 170, 140), (170, 170, 175), (215, 160, 150))
BORDER_COLOURS = ((40, 40, 40), (90, 90, 90), (120, 60, 30))
CHALKBOARD = ((55, 70, 50), (45, 50, 55))
CHALK = (225, 230, 230)
LCD_BG = (28, 32, 26)
LCD_INK = (170, 245, 200)


@dataclass
class Number:
    """One number laid out in its own alpha canvas (ink = 1)."""

    text: str
    alpha: np.ndarray
    digit_height: int
    styles: tuple[str, ...] = ()  # handwriting variants drawn in this number
    x: int = 0
    y: int = 0
    # Each digit's ink box (x, y, w, h) in the canvas, left to right (float: scaled copies).
    boxes: tuple[tuple[float, float, float, float], ...] = ()
    # Each digit's MNIST index in the bank's split; -1 where a handwriting variant restyled it.
    glyphs: tuple[int, ...] = ()


@dataclass
class Scene:
    numbers: list[Number]
    lines: list[tuple[tuple[float, float], tuple[float, float], float]] = field(
        default_factory=list
    )  # (p0, p1, thickness) of ruled lines / table borders, in frame pixels
    tags: set[str] = field(default_factory=set)


class NoiseBank:
    """A few large normal-noise fields made once per run from the seed, sliced per frame."""

    def __init__(self, width: int, height: int, seed: int) -> None:
        rng = np.random.default_rng([seed, 0xA11CE])
        self.fields = [
            rng.standard_normal((2 * height, 2 * width), dtype=np.float32)
            for _ in range(NOISE_FIELDS)
        ]

    def take(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        f = self.fields[int(rng.integers(len(self.fields)))]
        y = int(rng.integers(f.shape[0] - height + 1))
        x = int(rng.integers(f.shape[1] - width + 1))
        return f[y : y + height, x : x + width]


def _pick(rng: np.random.Generator, probs: dict[str, float]) -> str:
    keys = list(probs)
    p = np.array([probs[k] for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _resize_alpha(alpha: np.ndarray, height: int) -> np.ndarray:
    h, w = alpha.shape
    scale = height / h
    size = (max(1, round(w * scale)), max(1, height))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(alpha, size, interpolation=interp)


def _make_number(
    text: str,
    height: int,
    bank: GlyphBank,
    rng: np.random.Generator,
    stroke: str,
    variants: dict[int, str],
    touching: bool,
) -> Number:
    """Render the digits of ``text`` side by side into one alpha canvas."""
    glyphs = []
    indices = []
    for i, ch in enumerate(text):
        index = bank.pick(int(ch), rng)
        g = bank.glyph(int(ch), rng, stroke=stroke, variant=variants.get(i), index=index)
        indices.append(-1 if i in variants else index)
        # Handwriting varies in size and sits unevenly on its baseline.
        gh = max(SMALL_H[0], round(height * rng.uniform(0.9, 1.05)))
        glyphs.append((_resize_alpha(g, gh), round(height * rng.uniform(-0.05, 0.05))))
    touch_at = int(rng.integers(len(text) - 1)) if touching and len(text) > 1 else -1
    xs, x = [], 0
    for i, (g, _) in enumerate(glyphs):
        xs.append(x)
        if i == touch_at:
            gap = -round(height * rng.uniform(*TOUCH_OVERLAP))
        else:
            gap = max(2, round(height * rng.uniform(*DIGIT_GAP)))
        x += g.shape[1] + gap
    width = max(xs[i] + g.shape[1] for i, (g, _) in enumerate(glyphs))
    top = min(height - g.shape[0] + dy for g, dy in glyphs)
    bottom = max(height + dy for g, dy in glyphs)
    canvas = np.zeros((bottom - top, width), np.float32)
    boxes = []
    for (g, dy), gx in zip(glyphs, xs, strict=True):
        gy = height - g.shape[0] + dy - top
        region = canvas[gy : gy + g.shape[0], gx : gx + g.shape[1]]
        np.maximum(region, g, out=region)
        boxes.append((float(gx), float(gy), float(g.shape[1]), float(g.shape[0])))
    return Number(
        text, canvas, height, tuple(variants.values()), boxes=tuple(boxes), glyphs=tuple(indices)
    )


def _random_texts(
    rng: np.random.Generator, count: int, max_digits: int, allow_variant: bool
) -> tuple[list[str], list[dict[int, str]]]:
    """Digit strings for ``count`` numbers, with handwriting variants planted in some."""
    texts = [
        "".join(str(d) for d in rng.integers(0, 10, int(rng.integers(1, max_digits + 1))))
        for _ in range(count)
    ]
    variants: list[dict[int, str]] = [{} for _ in texts]
    if allow_variant and rng.random() < VARIANT_P:
        variant = VARIANTS[int(rng.integers(len(VARIANTS)))]
        n = int(rng.integers(count))
        i = int(rng.integers(len(texts[n])))
        texts[n] = texts[n][:i] + str(VARIANT_LABEL[variant]) + texts[n][i + 1 :]
        variants[n][i] = variant
    return texts, variants


def _scaled(num: Number, factor: float) -> Number:
    h, w = num.alpha.shape
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    alpha = cv2.resize(num.alpha, size, interpolation=cv2.INTER_AREA)
    fx, fy = size[0] / w, size[1] / h
    boxes = tuple((x * fx, y * fy, bw * fx, bh * fy) for x, y, bw, bh in num.boxes)
    return Number(
        num.text,
        alpha,
        max(1, round(num.digit_height * factor)),
        num.styles,
        boxes=boxes,
        glyphs=num.glyphs,
    )


def _digit_height(rng: np.random.Generator, size_class: str, height: int) -> int:
    k = height / DEFAULT_SIZE[1]
    if size_class == "small":
        return int(rng.integers(SMALL_H[0], SMALL_H[1] + 1))
    if size_class == "large":
        return round(height * rng.uniform(*LARGE_FRAC))
    lo, hi = MEDIUM_H
    return round(k * np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _fit_row(numbers: list[Number], gaps: list[int], avail: int) -> list[Number]:
    """Shrink a row of numbers (never below 15-px digits) until it fits ``avail`` pixels."""
    total = sum(n.alpha.shape[1] for n in numbers) + sum(gaps)
    if total <= avail:
        return numbers
    factor = avail / total
    return [_scaled(n, factor) for n in numbers]


def _layout_free(
    rng: np.random.Generator, w: int, h: int, make: Any, n_numbers: int, dh: int
) -> Scene:
    margin = round(MARGIN_FRAC * min(w, h))
    rows: list[list[int]] = []
    for i in range(n_numbers):
        if rows and rng.random() < 0.5:
            rows[-1].append(i)
        else:
            rows.append([i])
    numbers: list[Number] = []
    placed_rows: list[list[Number]] = []
    for row in rows:
        nums = [make(i) for i in row]
        gaps = [round(dh * rng.uniform(*NUMBER_GAP)) for _ in nums[1:]]
        nums = _fit_row(nums, gaps, w - 2 * margin)
        placed_rows.append(nums)
    row_heights = [max(n.alpha.shape[0] for n in r) for r in placed_rows]
    row_gap = round(dh * rng.uniform(*ROW_GAP))
    total_h = sum(row_heights) + row_gap * (len(rows) - 1)
    if total_h > h - 2 * margin:
        # Too tall: keep the first row only (its number texts are dropped from the truth too).
        placed_rows, row_heights = placed_rows[:1], row_heights[:1]
        total_h = row_heights[0]
    y = margin + int(rng.integers(0, max(1, h - 2 * margin - total_h + 1)))
    for nums, rh in zip(placed_rows, row_heights, strict=True):
        widths = [n.alpha.shape[1] for n in nums]
        gaps = [round(max(n.digit_height for n in nums) * rng.uniform(*NUMBER_GAP)) for _ in nums]
        span = sum(widths) + sum(gaps[1:])
        if span > w - 2 * margin:
            gaps = [round(max(n.digit_height for n in nums) * NUMBER_GAP[0])] * len(nums)
            span = sum(widths) + sum(gaps[1:])
        x = margin + int(rng.integers(0, max(1, w - 2 * margin - span + 1)))
        for n, gap in zip(nums, [0, *gaps[1:]], strict=True):
            x += gap
            n.x, n.y = x, y + (rh - n.alpha.shape[0]) // 2
            x += n.alpha.shape[1]
            numbers.append(n)
        y += rh + row_gap
    return Scene(numbers, tags={"free"})


def _layout_ruled(
    rng: np.random.Generator, w: int, h: int, make: Any, n_numbers: int, dh: int
) -> Scene:
    margin = round(MARGIN_FRAC * min(w, h))
    spacing = max(dh * rng.uniform(1.5, 2.0), 12.0)
    first = rng.uniform(0.3, 1.0) * spacing
    rule_ys = list(np.arange(first, h, spacing))
    thickness = float(rng.choice([1, 1, 2, 3]))
    tilt = rng.uniform(-0.01, 0.01) * w
    scene = Scene([], tags={"ruled"})
    for y in rule_ys:
        scene.lines.append(((0.0, y - tilt), (float(w), y + tilt), thickness))
    # Numbers sit on lines (baseline on or a little through the rule), one per line, lines
    # chosen top to bottom with at least one line between them.
    usable = [i for i, y in enumerate(rule_ys) if y - dh * 1.2 > margin and y < h - margin]
    if not usable:
        usable = [len(rule_ys) // 2]
    picks: list[int] = []
    for i in usable:
        if len(picks) < n_numbers and (not picks or i - picks[-1] >= 2) and rng.random() < 0.7:
            picks.append(i)
    if not picks:
        picks = [usable[int(rng.integers(len(usable)))]]
    for k, li in enumerate(picks):
        num = _fit_row([make(k)], [], w - 2 * margin)[0]
        x = margin + int(rng.integers(0, max(1, w - 2 * margin - num.alpha.shape[1] + 1)))
        baseline = rule_ys[li] + rng.uniform(-0.05, 0.1) * num.digit_height
        # Follow the rule's tilt so the number sits on it.
        baseline += tilt * ((x + num.alpha.shape[1] / 2) / w * 2 - 1)
        num.x, num.y = x, round(baseline - num.alpha.shape[0])
        num.y = max(0, min(h - num.alpha.shape[0], num.y))
        scene.numbers.append(num)
    return scene


def _layout_table(
    rng: np.random.Generator, w: int, h: int, make_h: Any, n_numbers: int, size_class: str
) -> Scene:
    cols, rows = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    while cols * rows < n_numbers:
        cols += 1
    margin = round(MARGIN_FRAC * min(w, h))
    tw = rng.uniform(0.75, 1.0) * (w - 2 * margin)
    th = rng.uniform(0.75, 1.0) * (h - 2 * margin)
    x0 = margin + rng.uniform(0, w - 2 * margin - tw)
    y0 = margin + rng.uniform(0, h - 2 * margin - th)
    cw, ch = tw / cols, th / rows
    thickness = float(rng.choice([1, 2, 2, 3]))
    scene = Scene([], tags={"table"})
    for c in range(cols + 1):
        x = x0 + c * cw
        scene.lines.append(((x, y0), (x, y0 + th), thickness))
    for r in range(rows + 1):
        y = y0 + r * ch
        scene.lines.append(((x0, y), (x0 + tw, y), thickness))
    cells = sorted(rng.choice(cols * rows, size=n_numbers, replace=False).tolist())
    if size_class == "small":
        dh = int(rng.integers(SMALL_H[0], SMALL_H[1] + 1))
    else:
        dh = round(ch * rng.uniform(0.35, 0.6))
    dh = max(SMALL_H[0], min(dh, round(ch * 0.6)))
    pad = max(4.0, thickness * 3 + 2)
    for k, cell in enumerate(cells):
        r, c = divmod(cell, cols)
        num = make_h(k, dh, max(1, int((cw - 2 * pad) / (0.75 * dh))))
        num = _fit_row([num], [], int(cw - 2 * pad))[0]
        if num.digit_height < SMALL_H[0]:
            continue
        nh, nw = num.alpha.shape
        free_x = cw - 2 * pad - nw
        free_y = ch - 2 * pad - nh
        num.x = round(x0 + c * cw + pad + rng.uniform(0.2, 0.8) * max(0.0, free_x))
        num.y = round(y0 + r * ch + pad + rng.uniform(0.35, 0.65) * max(0.0, free_y))
        scene.numbers.append(num)
    return scene


def _illumination(rng: np.random.Generator, w: int, h: int, tags: set[str]) -> np.ndarray:
    """Low-frequency light field (multiplier ~0.4..1.1): gradient, vignette, soft shadow."""
    sw, sh = max(2, w // 8), max(2, h // 8)
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    xx, yy = xx / sw - 0.5, yy / sh - 0.5
    light = np.ones((sh, sw), np.float32) * rng.uniform(0.85, 1.05)
    if rng.random() < GRADIENT_P:
        angle = rng.uniform(0, 2 * np.pi)
        strength = rng.uniform(0.15, 0.45)
        light *= 1 + strength * (np.cos(angle) * xx + np.sin(angle) * yy)
        light *= 1 - rng.uniform(0.0, 0.35) * (xx**2 + yy**2)
        tags.add("gradient")
    if rng.random() < SHADOW_P:
        # A hand or phone shadow: a half-plane or a blob, darkened and softened.
        mask = np.zeros((sh, sw), np.float32)
        if rng.random() < 0.5:
            angle = rng.uniform(0, 2 * np.pi)
            offset = rng.uniform(-0.3, 0.3)
            mask[(np.cos(angle) * xx + np.sin(angle) * yy) > offset] = 1.0
        else:
            centre = (int(rng.integers(sw)), int(rng.integers(sh)))
            axes = (
                int(rng.integers(sw // 6, sw // 2 + 1)),
                int(rng.integers(sh // 6, sh // 2 + 1)),
            )
            cv2.ellipse(mask, centre, axes, rng.uniform(0, 180), 0, 360, 1.0, -1)
        # Penumbra of 15-40 px: a hand or phone a hand's breadth above the page.
        soft = rng.uniform(2.0, 5.0)
        mask = cv2.GaussianBlur(mask, (0, 0), soft)
        light *= 1 - rng.uniform(0.25, 0.55) * mask
        tags.add("shadow")
    return cv2.resize(light, (w, h), interpolation=cv2.INTER_LINEAR)


def _perspective(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    jitter = rng.uniform(-PERSPECTIVE_MAX, PERSPECTIVE_MAX, (4, 2)) * np.float32([w, h])
    return cv2.getPerspectiveTransform(src, (src + jitter).astype(np.float32))


def render_frame(
    bank: GlyphBank, noise: NoiseBank, rng: np.random.Generator, width: int, height: int
) -> tuple[np.ndarray, dict[str, Any], str]:
    """One frame: (image, truth record without "file", extension "png" or "jpg")."""
    w, h = width, height
    tags: set[str] = set()
    light_on_dark = rng.random() < LIGHT_ON_DARK_P
    size_class = _pick(rng, SIZE_CLASS_P)
    layout = _pick(rng, LAYOUT_P)
    if size_class == "large" and layout == "table":
        layout = "free"
    dh = _digit_height(rng, size_class, h)
    if light_on_dark:
        ink_name = "chalk" if rng.random() < 0.6 else "lcd"
        stroke = str(rng.choice(["normal", "marker"]))
    else:
        ink_name = str(rng.choice(list(INKS)))
        stroke = str(rng.choice(["normal", "normal", "marker", "thin"]))
        if ink_name == "pencil" and stroke == "marker":
            stroke = "thin"
    n_numbers = 1 if size_class == "large" else int(rng.integers(1, MAX_NUMBERS + 1))
    per_row_fit = max(1, int((w * (1 - 2 * MARGIN_FRAC)) / (0.8 * dh)))
    texts, variants = _random_texts(
        rng, n_numbers, min(MAX_DIGITS, per_row_fit), allow_variant=True
    )
    touching = rng.random() < TOUCHING_P

    def make(k: int) -> Number:
        return _make_number(texts[k], dh, bank, rng, stroke, variants[k], touching)

    def make_h(k: int, digit_h: int, max_digits: int) -> Number:
        if len(texts[k]) > max_digits:
            texts[k] = texts[k][:max_digits]
            variants[k] = {i: v for i, v in variants[k].items() if i < max_digits}
        return _make_number(texts[k], digit_h, bank, rng, stroke, variants[k], touching)

    if layout == "table":
        scene = _layout_table(rng, w, h, make_h, n_numbers, size_class)
    elif layout == "ruled":
        scene = _layout_ruled(rng, w, h, make, n_numbers, dh)
    else:
        scene = _layout_free(rng, w, h, make, n_numbers, dh)
    tags |= scene.tags
    if touching and any(len(n.text) > 1 for n in scene.numbers):
        tags.add("touching")
    if not scene.numbers:
        raise RuntimeError("layout placed no number")  # a bug, never bad input
    for n in scene.numbers:
        tags.update(n.styles)

    ink = np.zeros((h, w), np.float32)
    for n in scene.numbers:
        nh, nw = n.alpha.shape
        x0, y0 = max(0, n.x), max(0, n.y)
        x1, y1 = min(w, n.x + nw), min(h, n.y + nh)
        region = ink[y0:y1, x0:x1]
        np.maximum(region, n.alpha[y0 - n.y : y1 - n.y, x0 - n.x : x1 - n.x], out=region)
    rules = np.zeros((h, w), np.uint8)
    shift = 4  # sub-pixel line endpoints: coordinates are in 1/16 pixel
    for p0, p1, thick in scene.lines:
        a = (round(p0[0] * (1 << shift)), round(p0[1] * (1 << shift)))
        b = (round(p1[0] * (1 << shift)), round(p1[1] * (1 << shift)))
        cv2.line(rules, a, b, 255, int(thick), cv2.LINE_AA, shift)
    rules_a = rules.astype(np.float32) / 255.0

    m = np.eye(3)
    if rng.random() < 0.7:
        m = _perspective(rng, w, h)
        ink = cv2.warpPerspective(ink, m, (w, h), flags=cv2.INTER_LINEAR)
        rules_a = cv2.warpPerspective(rules_a, m, (w, h), flags=cv2.INTER_LINEAR)
        tags.add("perspective")
    blur = rng.uniform(*BLUR_SIGMA)
    ink = cv2.GaussianBlur(ink, (0, 0), blur)
    rules_a = cv2.GaussianBlur(rules_a, (0, 0), blur)
    if blur > 1.0:
        tags.add("blur")

    if light_on_dark:
        tags.add("light_on_dark")
        tags.add("chalkboard" if ink_name == "chalk" else "lcd")
        if ink_name == "chalk":
            paper = np.float32(CHALKBOARD[int(rng.integers(len(CHALKBOARD)))])
            grain = noise.take(rng, h, w)
            ink = ink * np.clip(0.8 + 0.25 * grain, 0.3, 1.0) * rng.uniform(0.75, 0.95)
            ink_colour = np.float32(CHALK)
        else:
            paper = np.float32(LCD_BG)
            glow = cv2.GaussianBlur(ink, (0, 0), 3.0)
            ink = np.clip(ink * rng.uniform(0.8, 1.0) + 0.25 * glow, 0.0, 1.0)
            ink_colour = np.float32(LCD_INK)
        rule_colour = np.float32((200, 200, 200))
    else:
        tags.add(ink_name)
        colour, opacity = INKS[ink_name]
        ink = ink * rng.uniform(*opacity)
        paper = np.float32(PAPER[int(rng.integers(len(PAPER)))])
        ink_colour = np.float32(colour)
        rule_colour = np.float32(
            BORDER_COLOURS[int(rng.integers(len(BORDER_COLOURS)))]
            if layout == "table"
            else RULE_COLOURS[int(rng.integers(len(RULE_COLOURS)))]
        )
    if stroke != "normal":
        tags.add(stroke)

    # Paper texture: blotchy low-frequency reflectance variation.
    blotch = rng.standard_normal((max(2, h // 40), max(2, w // 40))).astype(np.float32)
    texture = 1 + rng.uniform(0.01, 0.04) * cv2.resize(
        blotch, (w, h), interpolation=cv2.INTER_CUBIC
    )
    light = _illumination(rng, w, h, tags) * texture
    # Reflectance mix: paper under rules under ink, then lit.
    img = np.empty((h, w, 3), np.float32)
    for c in range(3):
        ch = paper[c] + (rule_colour[c] - paper[c]) * rules_a
        ch += (ink_colour[c] - ch) * ink
        img[..., c] = ch * light
    sigma = rng.uniform(*NOISE_SIGMA)
    img += (sigma * noise.take(rng, h, w))[..., None]
    if sigma > 4.5:
        tags.add("noisy")
    out = np.clip(img, 0, 255).astype(np.uint8)

    if rng.random() < JPEG_P:
        ext = "jpg"
        quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
        tags.add("jpeg")
    else:
        ext = "png"
        out = cv2.cvtColor(out, cv2.COLOR_BGR2GRAY)
        ok, buf = cv2.imencode(".png", out, [cv2.IMWRITE_PNG_COMPRESSION, 3])
        tags.add("png")
    if not ok:
        raise RuntimeError("OpenCV could not encode the frame")
    tags.add(size_class if size_class != "medium" else "medium")

    boxes = [(n.x, n.y, n.alpha.shape[1], n.alpha.shape[0]) for n in scene.numbers]
    order = reading_order(boxes)
    numbers = [scene.numbers[i].text for i in order]
    record = {
        "numbers": numbers,
        "boxes": [_digit_boxes(scene.numbers[i], m, w, h) for i in order],
        # Which MNIST digit drew each digit (-1: restyled), to tell the model's own errors
        # on clean MNIST apart from what the camera and the segmenter add.
        "mnist": [list(scene.numbers[i].glyphs) for i in order],
        "text": " ".join(numbers),
        "digits": sum(len(t) for t in numbers),
        "polarity": "light_on_dark" if light_on_dark else "dark_on_light",
        "tags": sorted(tags),
    }
    return np.frombuffer(buf.tobytes(), np.uint8), record, ext


def _digit_boxes(num: Number, m: np.ndarray, w: int, h: int) -> list[list[int]]:
    """Each digit's ink box in the frame: canvas box + number offset, through the perspective
    warp (the box of the four warped corners), clipped to the frame."""
    out = []
    for bx, by, bw, bh in num.boxes:
        x0, y0 = num.x + bx, num.y + by
        corners = np.float32([[x0, y0], [x0 + bw, y0], [x0 + bw, y0 + bh], [x0, y0 + bh]])
        warped = cv2.perspectiveTransform(corners[None], m.astype(np.float64))[0]
        lx, ly = max(0.0, float(warped[:, 0].min())), max(0.0, float(warped[:, 1].min()))
        rx, ry = min(float(w), float(warped[:, 0].max())), min(float(h), float(warped[:, 1].max()))
        out.append([round(lx), round(ly), max(0, round(rx - lx)), max(0, round(ry - ly))])
    return out


def render_set(
    out_dir: Path,
    count: int,
    seed: int,
    size: tuple[int, int] = DEFAULT_SIZE,
    split: str = "test",
    bank: GlyphBank | None = None,
) -> dict[str, Any]:
    """Render ``count`` frames into ``out_dir`` and write ``truth.json``; return the truth."""
    width, height = size
    if bank is None:
        bank = load_bank(split)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputPathError(
            f"cannot create {out_dir} ({e.strerror}); choose another --out"
        ) from e
    noise = NoiseBank(width, height, seed)
    frames = []
    for i in range(count):
        # One generator per frame: frame i is the same whatever --count is.
        rng = np.random.default_rng([seed, i])
        data, record, ext = render_frame(bank, noise, rng, width, height)
        name = f"f{i:04d}.{ext}"
        atomic_write_bytes(out_dir / name, data.tobytes())
        frames.append({"file": name, **record})
    keep = {f["file"] for f in frames}
    for old in out_dir.iterdir():
        # Frames from an earlier, larger or differently seeded run would be left unlisted.
        if FRAME_NAME.match(old.name) and old.name not in keep:
            old.unlink()
    truth = {
        "frames": frames,
        "seed": seed,
        "size": [width, height],
        "source": f"MNIST {split}",
    }
    atomic_write_bytes(out_dir / "truth.json", (json.dumps(truth, indent=1) + "\n").encode())
    return truth


def load_bank(split: str = "test") -> GlyphBank:
    from host.mnist import load_mnist

    data = load_mnist()
    if split == "test":
        return GlyphBank(data.x_test, data.y_test)
    if split == "train":
        return GlyphBank(data.x_train, data.y_train)
    raise ValueError(f"unknown split {split!r}; use 'test' or 'train'")


def _size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)x(\d+)", text)
    if not m:
        raise argparse.ArgumentTypeError(f"--size {text!r} must look like 640x480")
    w, h = int(m.group(1)), int(m.group(2))
    if not (MIN_SIZE <= w <= MAX_SIZE and MIN_SIZE <= h <= MAX_SIZE):
        raise argparse.ArgumentTypeError(
            f"--size {text}: both sides must be between {MIN_SIZE} and {MAX_SIZE} pixels"
        )
    return w, h


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if not 1 <= n <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"--count {text!r} must be a whole number 1..{MAX_COUNT}")
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--count", type=_count, default=40, help="number of frames")
    parser.add_argument("--seed", type=int, default=7, help="random seed (same seed, same frames)")
    parser.add_argument("--size", type=_size, default=DEFAULT_SIZE, help="WxH, default 640x480")
    parser.add_argument(
        "--split", choices=("test", "train"), default="test", help="MNIST digits to draw from"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    start = time.monotonic()
    try:
        bank = load_bank(args.split)
        loaded = time.monotonic()
        truth = render_set(args.out, args.count, args.seed, args.size, args.split, bank)
    except (DataError, OutputPathError) as e:
        logger.error("%s", e)
        return 1
    except OSError as e:
        logger.error("cannot write frames to %s (%s); check the folder and free space", args.out, e)
        return 1
    spent = time.monotonic() - loaded
    digits = sum(f["digits"] for f in truth["frames"])
    print(
        f"{len(truth['frames'])} frames ({digits} digits) in {args.out} "
        f"in {spent:.1f} s ({len(truth['frames']) / max(spent, 1e-9):.0f} frames/s, "
        f"data load {loaded - start:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
