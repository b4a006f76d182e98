"""device.lines on blob masks drawn with NumPy: a rule the line finder missed."""

from __future__ import annotations

import numpy as np

from device.blobs import Blob
from device.lines import strip_rule


def test_digits_joined_by_a_rule_the_line_finder_missed_are_stripped_apart() -> None:
    """One blob far too wide for its height, because digits sit on a rule: the rule's rows
    go where nothing else is inked, and the digits come back as their own pieces."""
    mask = np.zeros((22, 200), bool)
    mask[20:22, :] = True  # the rule, under the digits
    for x in (20, 60, 100, 140):
        mask[2:21, x : x + 3] = True  # a stem touching the rule
        mask[2:5, x : x + 12] = True  # a bar: each digit 12 px wide
    blob = Blob(0, 100, 200, 22, mask, int(mask.sum()))
    parts = sorted(strip_rule(blob), key=lambda b: b.x)
    assert [(b.x, b.w) for b in parts] == [(20, 12), (60, 12), (100, 12), (140, 12)]
    assert all(b.y == 102 and b.h >= 18 for b in parts)  # each keeps its full height
    # A blob without a rule row is left alone.
    assert strip_rule(Blob(0, 0, 10, 20, np.ones((20, 10), bool), 200)) == []


def test_digits_joined_by_a_slanted_rule_are_stripped_apart() -> None:
    """Perspective tilts the rule: it drifts 8 rows over the blob, so no straight row is
    filled, but a row slanted with it is."""
    mask = np.zeros((32, 200), bool)
    rule_top = [20 + (8 * x) // 200 for x in range(200)]  # 3 px thick, rows 20 down to 29
    for x, top in enumerate(rule_top):
        mask[top : top + 3, x] = True
    for x in (20, 60, 100, 140):
        mask[2 : rule_top[x], x : x + 3] = True  # a stem down to the rule
        mask[2:5, x : x + 12] = True  # a bar: each digit 12 px wide
    assert (mask.mean(axis=1) < 0.6).all()  # no straight row is the rule's
    blob = Blob(0, 100, 200, 32, mask, int(mask.sum()))
    parts = sorted(strip_rule(blob), key=lambda b: b.x)
    assert [(b.x, b.w) for b in parts] == [(20, 12), (60, 12), (100, 12), (140, 12)]
    assert all(b.y == 102 and b.h >= 18 for b in parts)
    # A slanted band of ink as tall as its blob is no rule (paper between two rules, read
    # light on dark): left alone, not cut into slivers.
    band = np.zeros((32, 200), bool)
    for x, top in enumerate(rule_top):
        band[top - 18 : top + 3, x] = True
    assert strip_rule(Blob(0, 0, 200, 32, band, int(band.sum()))) == []
