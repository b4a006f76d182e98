"""Tests for the coarse look at large digits (device.coarse and the reader's use of it)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest
from test_reader import FakeClassifier, FakeSegment, FakeSegmenter, _blob

from device import coarse
from device.contract import DEFAULT_MODEL, NOT_A_DIGIT, Preprocessing
from device.reader import Reader, ReaderConfig
from device.reading import DigitResult

# --- the shrunk view and its coordinates ----------------------------------------------------


def test_a_vga_frame_is_read_at_half_size() -> None:
    frame = np.zeros((480, 640, 3), np.uint8)
    view = coarse.coarse_view(frame, None)
    assert view.image.shape == (240, 320, 3)
    assert view.factor == (2.0, 2.0) and view.origin == (0, 0)


def test_an_hd_frame_is_shrunk_to_240_rows() -> None:
    view = coarse.coarse_view(np.zeros((1080, 1920), np.uint8), None)
    assert view.image.shape == (240, 427)
    assert view.factor == pytest.approx((1920 / 427, 4.5))


def test_the_roi_is_cut_out_before_shrinking() -> None:
    frame = np.zeros((480, 640), np.uint8)
    frame[100:300, 200:500] = 255  # the roi, white
    view = coarse.coarse_view(frame, (200, 100, 300, 200))
    # A roi under 480 rows is halved; nothing outside it comes along.
    assert view.image.shape == (100, 150) and (view.image == 255).all()
    assert view.origin == (200, 100)


def test_boxes_read_in_the_view_map_back_to_frame_coordinates() -> None:
    view = coarse.CoarseView(np.zeros((100, 150), np.uint8), (2.0, 2.0), (200, 100))
    digits = (DigitResult(8, 0.99, (10, 20, 30, 40), 1),)
    assert view.to_frame(digits) == (DigitResult(8, 0.99, (220, 140, 60, 80), 1),)


@pytest.mark.parametrize(
    ("height", "rows", "wanted"),
    [(80, 480, True), (79, 480, False), (80, 300, True), (179, 1080, False), (180, 1080, True)],
)
def test_only_blobs_tall_for_the_frame_ask_for_the_coarse_look(
    height: int, rows: int, wanted: bool
) -> None:
    assert coarse.wanted(height, rows) is wanted


def test_a_frame_without_blobs_asks_for_no_coarse_look() -> None:
    assert not coarse.wanted(0, 480)


# --- the reader's coarse look, with fakes ---------------------------------------------------

FRAME = np.full((480, 640), 230, np.uint8)


def _tall(n: int, h: int, x0: int = 10) -> list[FakeSegment]:
    return [FakeSegment((x0 + 60 * i, 10, 40, h), _blob(h, 40)) for i in range(n)]


def _coarse_reader(
    labels: list[int], confidences: list[float], first: list[FakeSegment], second: list[FakeSegment]
) -> tuple[Reader, FakeClassifier, FakeSegmenter, FakeSegmenter]:
    classifier = FakeClassifier(labels, confidences)
    segmenter, small = FakeSegmenter(first), FakeSegmenter(second)
    config = ReaderConfig(threshold=0.9)
    reader = Reader(classifier, segmenter, config, Preprocessing(), coarse_segmenter=small)
    return reader, classifier, segmenter, small


def test_an_unsure_reading_of_large_digits_takes_the_coarse_reading_when_it_is_confident() -> None:
    reader, _, _, small = _coarse_reader(
        [4, 5, 8, 4], [0.99, 0.6, 0.99, 0.98], _tall(2, 120), _tall(2, 60, x0=5)
    )
    reading = reader.read(FRAME)
    assert reading.text == "84" and reading.confident and not reading.reason
    assert [f.shape for f in small.frames] == [(240, 320)]
    # Boxes in frame coordinates: the shrunk frame's, doubled.
    assert [d.box for d in reading.digits] == [(10, 20, 80, 120), (130, 20, 80, 120)]
    assert reading.frame_shape == (480, 640)


def test_the_first_reading_stays_when_the_coarse_reading_is_unsure_too() -> None:
    reader, classifier, _, small = _coarse_reader(
        [4, 5, 8, 4], [0.99, 0.6, 0.99, 0.7], _tall(2, 120), _tall(2, 60)
    )
    reading = reader.read(FRAME)
    assert reading.text == "45" and not reading.confident
    assert len(small.frames) == 1 and [len(b) for b in classifier.batches] == [2, 2]


def test_large_blobs_the_model_reads_as_no_digit_still_ask_for_the_coarse_look() -> None:
    # Read whole, the hollow marker digits are "none": nothing is left to measure but the blobs.
    reader, _, _, small = _coarse_reader(
        [NOT_A_DIGIT, NOT_A_DIGIT, 8, 4], [0.99, 0.99, 0.99, 0.98], _tall(2, 120), _tall(2, 60)
    )
    reading = reader.read(FRAME)
    assert len(small.frames) == 1
    assert reading.text == "84" and reading.confident


def test_a_confident_reading_takes_no_coarse_look() -> None:
    reader, classifier, _, small = _coarse_reader([4, 5], [0.99, 0.99], _tall(2, 120), [])
    assert reader.read(FRAME).text == "45"
    assert small.frames == [] and len(classifier.batches) == 1


def test_small_digits_take_no_coarse_look() -> None:
    reader, _, _, small = _coarse_reader([4, 5], [0.99, 0.6], _tall(2, 79), _tall(2, 40))
    assert not reader.read(FRAME).confident
    assert small.frames == []


def test_a_reader_without_a_coarse_segmenter_reads_once() -> None:
    classifier = FakeClassifier([4, 5], [0.99, 0.6])
    segmenter = FakeSegmenter(_tall(2, 120))
    reader = Reader(classifier, segmenter, ReaderConfig(threshold=0.9), Preprocessing())
    assert reader.read(FRAME).text == "45" and len(segmenter.frames) == 1


def test_the_coarse_look_reads_only_the_roi() -> None:
    classifier = FakeClassifier([4, 5, 8, 4], [0.99, 0.6, 0.99, 0.98])
    segmenter, small = FakeSegmenter(_tall(2, 100)), FakeSegmenter(_tall(2, 50))
    config = ReaderConfig(threshold=0.9, roi=(40, 30, 400, 300))
    reader = Reader(classifier, segmenter, config, Preprocessing(), coarse_segmenter=small)
    reading = reader.read(FRAME)
    assert [f.shape for f in small.frames] == [(150, 200)]
    assert reading.digits[0].box == (40 + 20, 30 + 20, 80, 100)


# --- end to end: bold marker digits filling half the frame ----------------------------------


@pytest.fixture(scope="module")
def readers() -> Any:
    with Reader.from_model(DEFAULT_MODEL) as reader, Reader.from_model(DEFAULT_MODEL) as once:
        once.coarse_segmenter = None
        yield reader, once


def _marker_page(digits: str, index: int, height: int, stroke: int) -> np.ndarray:
    """MNIST test digits side by side, scaled to ``height`` px and drawn with a marker
    ``stroke`` px wider than MNIST's pen, dark grey on light paper (640x480)."""
    from host.mnist import load_mnist

    data = load_mnist()
    inks = []
    for d in digits:
        img = data.x_test[int(np.flatnonzero(data.y_test == int(d))[index])]
        inks += [img[:, img.max(axis=0) > 0], np.zeros((28, 6), np.uint8)]
    ink = np.hstack(inks[:-1])
    scale = height / 28
    big = cv2.resize(ink, (round(ink.shape[1] * scale), height), interpolation=cv2.INTER_LINEAR)
    big = cv2.dilate(big, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (stroke, stroke)))
    page = np.full((480, 640), 235, np.uint8)
    h, w = big.shape
    y0, x0 = (480 - h) // 2, (640 - w) // 2
    ink_grey = 255 - (big.astype(np.float32) * 0.8).astype(np.uint8)
    np.minimum(page[y0 : y0 + h, x0 : x0 + w], ink_grey, out=page[y0 : y0 + h, x0 : x0 + w])
    return page


@pytest.mark.parametrize(
    ("digits", "index", "height", "stroke"), [("84", 0, 240, 37), ("046", 0, 260, 43)]
)
def test_bold_marker_digits_filling_half_the_frame_are_read_confidently(
    readers: tuple[Reader, Reader], digits: str, index: int, height: int, stroke: int
) -> None:
    reader, once = readers
    page = _marker_page(digits, index, height, stroke)
    first = once.read(page)
    # Read at full size, the strokes are wider than half the background filter: hollow.
    assert not (first.confident and first.text == digits), first
    reading = reader.read(page)
    assert reading.text == digits and reading.confident, reading.reason
    # Boxes in the frame's coordinates, as tall as the digits drawn.
    assert all(0.7 * height <= d.box[3] <= height + stroke for d in reading.digits)
