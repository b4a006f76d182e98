"""Reading order: digits chained into numbers left to right, numbers into rows."""

from __future__ import annotations

from typing import NamedTuple

from device import lines
from device.blobs import Blob, union
from device.reading import Box


class Extent(NamedTuple):
    """A box by its edges: what ``between`` needs of a blob."""

    x: int
    y: int
    x1: int
    y1: int


def between(a: Blob | Extent, b: Blob | Extent, sep: lines.Separator) -> bool:
    """True when a vertical separator runs between a (left) and b across their rows.

    Where the line is on their rows, not its box: a border slanted by perspective has a box
    wider than the gap between two digits. The box test (its centre, give or take its width)
    split 9 numbers of 3,400 rendered frames at a border beside them, 4 read confidently.
    """
    top, bottom = min(a.y, b.y), max(a.y1, b.y1)
    if not (sep.y < bottom and sep.y + sep.h > top):
        return False
    x = sep.x_at((top + bottom) / 2)
    return (a.x + a.x1) / 2 < x < (b.x + b.x1) / 2


def reading_order(boxes: list[Box], row_overlap: float = 0.5, tilt: float = 0.0) -> list[int]:
    """Indices of boxes in reading order: rows top to bottom, then left to right.

    A box joins a row when its vertical span overlaps a box of that row by ``row_overlap``
    of the shorter of the two (the host's frame renderer uses the same rule for its truth,
    on the page before the camera tilts it). ``tilt`` (rows per column: the page's ruled lines
    or table borders as the camera sees them) levels the rows first: in a table seen at an
    angle, numbers in one row of cells but at different heights within their cells had been
    read as two rows, the higher one first (one of them confidently, "1757 084321 4127").
    Levelled by the mean slope of the frame's horizontal lines: 3,039 -> 3,041 of 3,400
    rendered frames exact; held-out and HD frames unchanged.
    """
    if tilt:
        boxes = [(x, round(y - tilt * (x + w / 2)), w, h) for x, y, w, h in boxes]
    order = sorted(range(len(boxes)), key=lambda i: boxes[i][1] + boxes[i][3] / 2)
    rows: list[list[int]] = []
    for i in order:
        _, y, _, h = boxes[i]
        for row in rows:
            # Single linkage: sharing the row with any member is enough, so a long, slightly
            # tilted row stays one row.
            if any(
                min(y + h, boxes[j][1] + boxes[j][3]) - max(y, boxes[j][1])
                >= row_overlap * min(h, boxes[j][3])
                for j in row
            ):
                row.append(i)
                break
        else:
            rows.append([i])
    return [i for row in rows for i in sorted(row, key=lambda j: boxes[j][0])]


def chain_numbers(
    blobs: list[Blob],
    separators: list[lines.Separator],
    group_gap: float,
    row_overlap: float,
    tilt: float = 0.0,
) -> list[list[Blob]]:
    """Chain digits into numbers, then order numbers by rows and x (rows levelled by
    ``tilt``, see reading_order).

    Each digit links to the nearest digit on its right that shares its row (``row_overlap``
    of the shorter one's height) within ``group_gap`` times the taller one's height, with no
    vertical separator between them.
    """
    blobs = sorted(blobs, key=lambda b: b.x)
    nxt: dict[int, int] = {}
    prev: dict[int, int] = {}
    pairs = []
    for i, a in enumerate(blobs):
        for j in range(i + 1, len(blobs)):
            b = blobs[j]
            gap = b.x - a.x1
            size = max(a.h, b.h)
            if gap > group_gap * size:
                continue
            overlap = min(a.y1, b.y1) - max(a.y, b.y)
            if overlap < row_overlap * min(a.h, b.h):
                continue
            if any(between(a, b, s) for s in separators):
                continue
            pairs.append((max(gap, 0), i, j))
    for _, i, j in sorted(pairs):
        if i not in nxt and j not in prev:
            nxt[i], prev[j] = j, i
    chains = []
    for i in range(len(blobs)):
        if i in prev:
            continue
        chain = [i]
        while chain[-1] in nxt:
            chain.append(nxt[chain[-1]])
        chains.append([blobs[k] for k in chain])
    boxes = [union(c) for c in chains]
    return [chains[i] for i in reading_order(boxes, row_overlap, tilt)]
