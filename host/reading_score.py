"""Scoring readings against ground truth, the same way for every reader (ours or a peer OCR).

Texts are normalised identically for both sides (any run of whitespace, newlines included,
becomes one space; ends trimmed), so a peer is not penalised for printing rows on separate
lines. Exact match compares the normalised texts; digit accuracy uses the edit distance of
the digits alone, so a missed or extra digit costs one, not every digit after it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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


DIGIT_OUTCOMES = ("read right", "misread", "merged with a neighbour", "split", "missed")
Box = tuple[int, int, int, int]


def box_overlap(a: Sequence[int], b: Sequence[int]) -> int:
    """Area shared by two (x, y, w, h) boxes."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0, w) * max(0, h)


def digit_outcomes(
    truth_boxes: Sequence[Sequence[int]],
    truth_labels: Sequence[int],
    read_boxes: Sequence[Sequence[int]],
    read_labels: Sequence[int],
) -> dict[str, int]:
    """Where each truth digit went, by box overlap (the renderer records every digit's box).

    A read box *covers* a truth digit when it holds over half of the digit's box. "read right"
    / "misread": exactly one read box covers the digit and covers no other; "merged with a
    neighbour": a read box covers it and another digit; "split": no read box covers it but some
    lie mostly inside it (pieces); "missed": nothing was read there (not found, or dropped as
    no digit). Read boxes on no digit at all are counted as "extra".
    """
    counts = dict.fromkeys((*DIGIT_OUTCOMES, "extra"), 0)
    covers = _covers(truth_boxes, read_boxes)
    for i, (t, label) in enumerate(zip(truth_boxes, truth_labels, strict=True)):
        mine = [j for j, c in enumerate(covers) if i in c]
        if len(mine) == 1 and covers[mine[0]] == [i]:
            counts["read right" if read_labels[mine[0]] == label else "misread"] += 1
        elif any(len(covers[j]) > 1 for j in mine):
            counts["merged with a neighbour"] += 1
        elif mine or any(box_overlap(r, t) > 0.5 * max(1, r[2] * r[3]) for r in read_boxes):
            counts["split"] += 1
        else:
            counts["missed"] += 1
    for r, c in zip(read_boxes, covers, strict=True):
        if not c and not any(box_overlap(r, t) > 0.5 * max(1, r[2] * r[3]) for t in truth_boxes):
            counts["extra"] += 1
    return counts


def _covers(
    truth_boxes: Sequence[Sequence[int]], read_boxes: Sequence[Sequence[int]]
) -> list[list[int]]:
    """For each read box, the truth digits it covers (holds over half of the digit's box)."""
    return [
        [i for i, t in enumerate(truth_boxes) if box_overlap(r, t) > 0.5 * max(1, t[2] * t[3])]
        for r in read_boxes
    ]


def boxes_right(truth: Mapping[str, Any], digits: Sequence[Any]) -> bool:
    """Whether a reading's digit boxes are the truth's digits, one box each, grouped as the
    truth's numbers: what a perfect classifier reading those boxes would read exactly.

    ``truth`` is a rendered frame's record (``host.frames``: numbers and per-digit boxes),
    ``digits`` a reading's (each with ``box`` and ``group``, in reading order). Every read
    box must cover exactly one truth digit (``digit_outcomes``' "covers") that no other read
    box covers; the reading's text with each digit's label replaced by its truth digit's must
    then equal the truth's text, which checks the digit count, their order and the grouping.
    """
    truth_boxes = [b for number in truth["boxes"] for b in number]
    truth_digits = "".join(truth["numbers"])
    covers = _covers(truth_boxes, [d.box for d in digits])
    taken = [i for c in covers for i in c]
    if any(len(c) != 1 for c in covers) or len(set(taken)) != len(taken):
        return False
    groups: dict[int, str] = {}
    for d, (i,) in zip(digits, covers, strict=True):
        groups[d.group] = groups.get(d.group, "") + truth_digits[i]
    return " ".join(groups.values()) == normalise_text(truth["text"])


def frame_outcomes(truth: Mapping[str, Any], digits: Sequence[Any]) -> dict[str, int]:
    """``digit_outcomes`` for one rendered frame: its truth record (``host.frames``: numbers
    and their per-digit boxes) and a reading's digits (each with ``box`` and ``label``)."""
    return digit_outcomes(
        [b for number in truth["boxes"] for b in number],
        [int(ch) for number in truth["numbers"] for ch in number],
        [d.box for d in digits],
        [d.label for d in digits],
    )


@dataclass(frozen=True)
class GlyphSplit:
    """Frames split by whether they hold an MNIST digit the model misreads even clean.

    Such a frame is usually read wrong whatever the camera and the segmenter do, so the
    share of the others bounds exact match from above (loosely: the restyled, rendered
    digit is sometimes read right after all).
    """

    frames: int  # frames whose truth names the MNIST digits drawn
    hard: int  # of them, frames holding at least one digit the model misreads clean
    hard_right: int  # hard frames read right anyway
    clean_right: int  # the other frames read right

    @property
    def clean_share(self) -> float:
        return (self.frames - self.hard) / self.frames if self.frames else float("nan")


def glyph_split(
    truth: Sequence[Mapping[str, Any]], right: Sequence[bool], misread: np.ndarray
) -> GlyphSplit | None:
    """``GlyphSplit`` of frames rendered from MNIST test digits (``host.frames`` records each
    digit's index as ``mnist``, -1 where a handwriting variant restyled it), given which
    readings were right and ``misread``: a boolean per MNIST test digit, True where the model
    gets the clean digit wrong. None when no frame records its digits."""
    frames = hard = hard_right = clean_right = 0
    for f, ok in zip(truth, right, strict=True):
        if "mnist" not in f:
            continue
        frames += 1
        if any(i >= 0 and misread[i] for number in f["mnist"] for i in number):
            hard += 1
            hard_right += bool(ok)
        else:
            clean_right += bool(ok)
    return GlyphSplit(frames, hard, hard_right, clean_right) if frames else None
