"""Tests for the second looks at another scale (device.looks and the reader's use of them):
the coarse look at large digits, the fine look at the others."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import pytest
from test_reader import FakeClassifier, FakeSegment, FakeSegmenter, _blob

from device import looks
from device.contract import DEFAULT_MODEL, NOT_A_DIGIT, Preprocessing
from device.errors import ConfigError
from device.images import load_image
from device.reader import Reader, ReaderConfig
from device.reading import DigitResult

# --- the shrunk view and its coordinates ----------------------------------------------------


def test_a_vga_frame_is_read_at_half_size() -> None:
    frame = np.zeros((480, 640, 3), np.uint8)
    view = looks.coarse_view(frame, None)
    assert view.image.shape == (240, 320, 3)
    assert view.factor == (2.0, 2.0) and view.origin == (0, 0)


def test_an_hd_frame_is_shrunk_to_240_rows() -> None:
    view = looks.coarse_view(np.zeros((1080, 1920), np.uint8), None)
    assert view.image.shape == (240, 427)
    assert view.factor == pytest.approx((1920 / 427, 4.5))


@pytest.mark.parametrize(
    ("make_view", "shape", "box"),
    [
        # A roi under 480 rows is halved by the coarse look ...
        (looks.coarse_view, (100, 150), (280, 220, 60, 100)),
        # ... and doubled by the fine one.
        (looks.fine_view, (400, 600), (220, 130, 15, 25)),
    ],
    ids=["coarse", "fine"],
)
def test_the_roi_is_cut_out_before_resizing(
    make_view: Any, shape: tuple[int, int], box: tuple[int, int, int, int]
) -> None:
    frame = np.zeros((480, 640), np.uint8)
    frame[100:300, 200:500] = 255  # the roi, white
    view = make_view(frame, (200, 100, 300, 200))
    # Nothing outside the roi comes along.
    assert view.image.shape == shape and (view.image == 255).all()
    assert view.origin == (200, 100)
    # A digit read in the view maps back into the frame, roi offset included.
    digits = (DigitResult(3, 0.99, (40, 60, 30, 50), 0),)
    assert view.to_frame(digits) == (DigitResult(3, 0.99, box, 0),)


def test_boxes_read_in_the_view_map_back_to_frame_coordinates() -> None:
    view = looks.ScaledView(np.zeros((100, 150), np.uint8), (2.0, 2.0), (200, 100))
    digits = (DigitResult(8, 0.99, (10, 20, 30, 40), 1),)
    assert view.to_frame(digits) == (DigitResult(8, 0.99, (220, 140, 60, 80), 1),)


def test_a_vga_frame_is_read_again_at_twice_its_size() -> None:
    frame = np.zeros((480, 640), np.uint8)
    frame[100:200, 300:310] = 200
    view = looks.fine_view(frame, None)
    assert view.image.shape == (960, 1280)
    assert view.factor == (0.5, 0.5) and view.origin == (0, 0)
    # The stroke is where it was, twice as large.
    assert (view.image[204:396, 602:618] > 150).all()
    assert (view.image[:, :590] == 0).all() and (view.image[:, 630:] == 0).all()


@pytest.mark.parametrize(
    ("look", "tallest", "rows", "wanted"),
    [
        # The coarse look: blobs tall for the frame (scaled with taller frames), none for none.
        ("coarse", 80, 480, True),
        ("coarse", 79, 480, False),
        ("coarse", 80, 300, True),
        ("coarse", 179, 1080, False),
        ("coarse", 180, 1080, True),
        ("coarse", 0, 480, False),
        # The fine look: the rest, in frames of up to 480 rows.
        ("fine", 40, 480, True),
        ("fine", 79, 480, True),
        ("fine", 80, 480, False),
        ("fine", 20, 300, True),
        ("fine", 20, 481, False),
    ],
)
def test_which_frames_ask_for_each_look(look: str, tallest: int, rows: int, wanted: bool) -> None:
    assert getattr(looks, f"{look}_wanted")(tallest, rows) is wanted


# --- the reader's second looks, with fakes ---------------------------------------------------

FRAME = np.full((480, 640), 230, np.uint8)


def _tall(n: int, h: int, x0: int = 10) -> list[FakeSegment]:
    return [FakeSegment((x0 + 60 * i, 10, 40, h), _blob(h, 40)) for i in range(n)]


def _looks_reader(
    labels: list[int],
    confidences: list[float],
    first: list[FakeSegment],
    coarse: list[FakeSegment] | None = None,
    fine: list[FakeSegment] | None = None,
    **config: Any,
) -> tuple[Reader, FakeClassifier, FakeSegmenter, FakeSegmenter]:
    """A reader of fakes: ``first`` is what the frame holds, ``coarse`` / ``fine`` what the
    shrunk / enlarged frame holds (None: the reader has no such segmenter). Returns the reader,
    its classifier, and its coarse and fine segmenters (an unused one records no frames)."""
    classifier = FakeClassifier(labels, confidences)
    small, big = FakeSegmenter(coarse or []), FakeSegmenter(fine or [])
    reader = Reader(
        classifier,
        FakeSegmenter(first),
        ReaderConfig(threshold=0.9, **config),
        Preprocessing(),
        coarse_segmenter=small if coarse is not None else None,
        fine_segmenter=big if fine is not None else None,
    )
    return reader, classifier, small, big


class Look(NamedTuple):
    """One second look as the fakes play it: digits this tall in the frame, read ``first`` and
    unsure; twice this tall (shrunk) or half (enlarged) in the view, read ``second``."""

    name: str
    height: int
    view_height: int
    first: str
    second: str
    shape: tuple[int, int]  # the view of FRAME
    boxes: list[tuple[int, int, int, int]]  # the view's digits, in frame coordinates


COARSE = Look("coarse", 120, 60, "45", "84", (240, 320), [(20, 20, 80, 120), (140, 20, 80, 120)])
FINE = Look("fine", 20, 40, "71", "74", (960, 1280), [(5, 5, 20, 20), (35, 5, 20, 20)])
LOOKS = pytest.mark.parametrize("look", [COARSE, FINE], ids=lambda look: look.name)


def _reader_for(
    look: Look, confidences: list[float], **config: Any
) -> tuple[Reader, FakeClassifier, FakeSegmenter]:
    """A reader whose frame holds ``look``'s digits, read with ``confidences`` (the first
    look's two, then the second look's two); returns the segmenter of that look too."""
    labels = [int(c) for c in look.first + look.second]
    view = _tall(2, look.view_height)
    kind = {look.name: view}
    reader, classifier, small, big = _looks_reader(
        labels[: len(confidences)], confidences, _tall(2, look.height), **kind, **config
    )
    return reader, classifier, small if look.name == "coarse" else big


@LOOKS
def test_an_unsure_reading_takes_the_second_looks_reading_when_it_is_confident(
    look: Look,
) -> None:
    reader, _, other = _reader_for(look, [0.99, 0.6, 0.99, 0.98])
    reading = reader.read(FRAME)
    assert reading.text == look.second and reading.confident and not reading.reason
    assert [f.shape for f in other.frames] == [look.shape]
    # Boxes in frame coordinates: the view's, scaled back.
    assert [d.box for d in reading.digits] == look.boxes
    assert reading.frame_shape == (480, 640)


@LOOKS
@pytest.mark.parametrize(
    ("second", "kept"),
    [
        # Mean log confidence -0.26 first; -0.18 / -0.16 (less than 0.1 better): first kept.
        ([0.99, 0.7], "first"),
        ([0.85, 0.85], "first"),
        # -0.12: POLARITY_MARGIN better, unsure as it is.
        ([0.89, 0.89], "second"),
    ],
)
def test_of_two_unsure_readings_the_second_look_wins_only_if_much_surer(
    look: Look, second: list[float], kept: str
) -> None:
    reader, classifier, other = _reader_for(look, [0.99, 0.6, *second])
    reading = reader.read(FRAME)
    assert not reading.confident
    assert reading.text == (look.first if kept == "first" else look.second)
    assert len(other.frames) == 1 and [len(b) for b in classifier.batches] == [2, 2]


@LOOKS
def test_a_confident_reading_takes_no_second_look(look: Look) -> None:
    reader, classifier, other = _reader_for(look, [0.99, 0.99])
    assert reader.read(FRAME).text == look.first
    assert other.frames == [] and len(classifier.batches) == 1


@LOOKS
def test_a_second_look_reads_only_the_roi(look: Look) -> None:
    reader, _, other = _reader_for(look, [0.99, 0.6, 0.99, 0.98], roi=(40, 30, 400, 300))
    reading = reader.read(FRAME)
    factor = look.shape[0] / 480
    assert [f.shape for f in other.frames] == [(round(300 * factor), round(400 * factor))]
    x, y, w, h = look.boxes[0]
    assert reading.digits[0].box == (40 + x, 30 + y, w, h)


def test_large_blobs_the_model_reads_as_no_digit_still_ask_for_the_coarse_look() -> None:
    # Read whole, the hollow marker digits are "none": nothing is left to measure but the blobs.
    reader, _, small, _ = _looks_reader(
        [NOT_A_DIGIT, NOT_A_DIGIT, 8, 4],
        [0.99, 0.99, 0.99, 0.98],
        _tall(2, 120),
        coarse=_tall(2, 60),
    )
    reading = reader.read(FRAME)
    assert len(small.frames) == 1
    assert reading.text == "84" and reading.confident


def test_small_digits_take_no_coarse_look() -> None:
    reader, _, small, _ = _looks_reader([4, 5], [0.99, 0.6], _tall(2, 79), coarse=_tall(2, 40))
    assert not reader.read(FRAME).confident
    assert small.frames == []


def test_a_reader_without_second_look_segmenters_reads_once() -> None:
    classifier = FakeClassifier([4, 5], [0.99, 0.6])
    segmenter = FakeSegmenter(_tall(2, 120))
    reader = Reader(classifier, segmenter, ReaderConfig(threshold=0.9), Preprocessing())
    assert reader.read(FRAME).text == "45" and len(segmenter.frames) == 1


def test_large_digits_take_the_coarse_look_not_the_fine_one() -> None:
    reader, _, small, big = _looks_reader(
        [4, 5, 8, 4], [0.99, 0.6, 0.99, 0.98], _tall(2, 120), _tall(2, 60), _tall(2, 240)
    )
    assert reader.read(FRAME).text == "84"
    assert len(small.frames) == 1 and big.frames == []


def test_a_frame_where_nothing_was_read_takes_no_fine_look() -> None:
    reader, _, _, big = _looks_reader([], [], [], coarse=[], fine=_tall(2, 40))
    reading = reader.read(FRAME)
    assert reading.text == "" and big.frames == []


def test_frames_over_480_rows_take_no_fine_look() -> None:
    reader, _, _, big = _looks_reader([7, 1], [0.99, 0.6], _tall(2, 20), [], _tall(2, 40))
    reading = reader.read(np.full((720, 1280), 230, np.uint8))
    assert reading.text == "71" and big.frames == []


def test_from_model_builds_a_fine_segmenter_only_when_asked() -> None:
    with Reader.from_model(DEFAULT_MODEL) as plain:
        assert plain.fine_segmenter is None and plain.coarse_segmenter is not None
    with Reader.from_model(DEFAULT_MODEL, ReaderConfig(fine_look=True)) as fine:
        assert fine.fine_segmenter is not None


def test_fine_look_must_be_true_or_false() -> None:
    with pytest.raises(ConfigError, match="fine_look must be true or false"):
        ReaderConfig(fine_look="yes")  # type: ignore[arg-type]


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


# --- end to end: small digits on ruled paper ------------------------------------------------


def test_small_digits_read_unsure_are_read_confidently_by_the_fine_look() -> None:
    """tests/frames/f0032.jpg: three numbers of 15-20 px digits on ruled paper."""
    frames = Path(__file__).parent / "frames"
    truth = {f["file"]: f for f in json.loads((frames / "truth.json").read_text())["frames"]}
    frame = load_image(frames / "f0032.jpg", grey=True)
    expected = truth["f0032.jpg"]["text"]
    with Reader.from_model(DEFAULT_MODEL) as plain:
        first = plain.read(frame)
    assert not first.confident, "the first look alone is sure: pick another frame"
    with Reader.from_model(DEFAULT_MODEL, ReaderConfig(fine_look=True)) as reader:
        reading = reader.read(frame)
    assert reading.text == expected and reading.confident, reading.reason
    # Boxes in the frame's coordinates: where the first look found the same digits.
    assert len(first.digits) == len(reading.digits)
    for a, b in zip(first.digits, reading.digits, strict=True):
        assert abs(a.box[0] - b.box[0]) <= 3 and abs(a.box[1] - b.box[1]) <= 3
