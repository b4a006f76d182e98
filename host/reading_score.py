"""Scoring readings against ground truth, the same way for every reader (ours or a peer OCR).

Texts are normalised identically for both sides (any run of whitespace, newlines included,
becomes one space; ends trimmed), so a peer is not penalised for printing rows on separate
lines. Exact match compares the normalised texts; digit accuracy uses the edit distance of
the digits alone, so a missed or extra digit costs one, not every digit after it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_SPACE = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions and substitutions each cost one)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


@dataclass(frozen=True)
class Score:
    frames: int
    exact: int
    digits: int
    digits_right: int

    @property
    def exact_rate(self) -> float:
        return self.exact / self.frames if self.frames else float("nan")

    @property
    def digit_rate(self) -> float:
        return self.digits_right / self.digits if self.digits else float("nan")


def score(truths: Sequence[str], readings: Sequence[str]) -> Score:
    """Exact-match and digit accuracy of ``readings`` against ``truths`` (same order)."""
    if len(truths) != len(readings):
        raise ValueError(f"{len(truths)} truths but {len(readings)} readings")
    exact = digits = right = 0
    for truth, got in zip(truths, readings, strict=True):
        t, g = normalise_text(truth), normalise_text(got)
        exact += t == g
        want, have = t.replace(" ", ""), g.replace(" ", "")
        digits += len(want)
        right += max(0, len(want) - edit_distance(want, have))
    return Score(len(truths), exact, digits, right)


@dataclass(frozen=True)
class CurvePoint:
    threshold: float
    accepted: float  # fraction of all frames whose reading is accepted
    error: float  # fraction of accepted readings that are wrong (nan when none accepted)
    n_accepted: int


def threshold_curve(
    correct: Sequence[bool], min_confidence: Sequence[float], thresholds: Sequence[float]
) -> list[CurvePoint]:
    """Accepted-reading rate and error among accepted, for each threshold.

    A frame's reading is accepted at threshold t when its least confident digit has
    confidence >= t; a frame with no digits has confidence 0 and is accepted only at t = 0.
    """
    ok = np.asarray(correct, dtype=bool)
    conf = np.asarray(min_confidence, dtype=np.float64)
    points = []
    for t in thresholds:
        accepted = conf >= t
        n = int(accepted.sum())
        error = float((~ok[accepted]).mean()) if n else float("nan")
        points.append(CurvePoint(float(t), n / max(1, len(ok)), error, n))
    return points


ERROR_KINDS = ("right", "digit count", "grouping", "misread")


def error_kind(truth: str, got: str) -> str:
    """Why a reading differs from the truth, as the first cause the pipeline would own.

    "digit count": digits missed or extra (segmentation); "grouping": every digit right but
    the numbers split differently; "misread": as many digits as the truth, some labelled wrong
    (classification).
    """
    t, g = normalise_text(truth), normalise_text(got)
    if t == g:
        return "right"
    td, gd = t.replace(" ", ""), g.replace(" ", "")
    if len(td) != len(gd):
        return "digit count"
    if td == gd:
        return "grouping"
    return "misread"
