"""device.order: reading order of boxes."""

from __future__ import annotations

from device.order import reading_order


def test_reading_order_puts_rows_first_then_x() -> None:
    boxes = [(200, 10, 30, 30), (10, 100, 30, 30), (10, 12, 30, 30)]
    assert reading_order(boxes) == [2, 0, 1]
