"""The frame renderer (host.frames) and the segmenter on freshly rendered frames."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import device.segment as segment_module
from device.contract import DEFAULT_MODEL
from device.reader import Reader
from device.segment import Segment, Segmenter
from host.frames import load_bank, main, render_set
from host.handwriting import VARIANT_LABEL, VARIANTS, GlyphBank, _stroke_width, continental_1
from host.reading_score import box_overlap

# How often the reader finds as many digits per number as the truth has (the shipped model
# settling the segmenter's doubtful blobs). The segmenter's own count alone matched 0.783 of
# these 60 frames (seed 21) in session 1 and 0.800 after the shadow-residue rule; since
# session 4 the segmenter leaves narrow touching pairs whole with their clean cut offered
# as an alternative, so its own count (0.733) no longer says what is read. The reader's
# count matches 0.983 (59 of 60). The target is exact readings; this floor only
# catches regressions.
MIN_COUNT_MATCH = 0.95


@pytest.fixture(scope="module")
def bank() -> GlyphBank:
    return load_bank("test")


def test_renderer_is_deterministic_per_seed(tmp_path: Path, bank: GlyphBank) -> None:
    a = render_set(tmp_path / "a", 6, seed=5, bank=bank)
    b = render_set(tmp_path / "b", 6, seed=5, bank=bank)
    c = render_set(tmp_path / "c", 6, seed=6, bank=bank)
    assert a == b
    for f in a["frames"]:
        assert (tmp_path / "a" / f["file"]).read_bytes() == (
            tmp_path / "b" / f["file"]
        ).read_bytes()
    assert [f["text"] for f in a["frames"]] != [f["text"] for f in c["frames"]]


def test_truth_matches_written_files(tmp_path: Path, bank: GlyphBank) -> None:
    render_set(tmp_path, 12, seed=9, size=(320, 240), bank=bank)
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert truth["seed"] == 9 and truth["source"] == "MNIST test"
    listed = {f["file"] for f in truth["frames"]}
    on_disk = {p.name for p in tmp_path.iterdir() if p.suffix in (".png", ".jpg")}
    assert listed == on_disk and len(listed) == 12
    for f in truth["frames"]:
        img = cv2.imread(str(tmp_path / f["file"]), cv2.IMREAD_UNCHANGED)
        assert img is not None and img.shape[:2] == (240, 320)
        assert f["text"] == " ".join(f["numbers"])
        assert f["digits"] == sum(len(n) for n in f["numbers"])
        assert all(n.isdigit() and 1 <= len(n) <= 8 for n in f["numbers"])
        assert 1 <= len(f["numbers"]) <= 3
        assert f["polarity"] in ("dark_on_light", "light_on_dark")
    assert not list(tmp_path.glob("*.part"))


def test_truth_names_the_mnist_digit_drawn_for_each_digit(tmp_path: Path, bank: GlyphBank) -> None:
    truth = render_set(tmp_path, 30, seed=11, size=(320, 240), bank=bank)
    restyled = 0
    for f in truth["frames"]:
        assert [len(n) for n in f["mnist"]] == [len(n) for n in f["numbers"]]
        for number, indices in zip(f["numbers"], f["mnist"], strict=True):
            for ch, index in zip(number, indices, strict=True):
                if index == -1:  # a handwriting variant restyled this digit
                    restyled += 1
                    assert any(v in f["tags"] and VARIANT_LABEL[v] == int(ch) for v in VARIANTS)
                else:
                    assert bank.labels[index] == int(ch)
        # At most one variant is planted per frame.
        assert sum(i == -1 for n in f["mnist"] for i in n) <= 1
    indices = [i for f in truth["frames"] for n in f["mnist"] for i in n if i >= 0]
    assert len(set(indices)) > 0.9 * len(indices)  # random test digits, not one per label
    assert restyled < len(indices)


def test_rerender_with_fewer_frames_removes_stale_ones(tmp_path: Path, bank: GlyphBank) -> None:
    render_set(tmp_path, 5, seed=1, size=(320, 240), bank=bank)
    render_set(tmp_path, 2, seed=1, size=(320, 240), bank=bank)
    frames = sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".png", ".jpg"))
    assert [n.split(".")[0] for n in frames] == ["f0000", "f0001"]


def test_style_variants_keep_their_digit_label(bank: GlyphBank) -> None:
    rng = np.random.default_rng(0)
    for v in VARIANTS:
        g = bank.glyph(VARIANT_LABEL[v], rng, variant=v)
        assert g.ndim == 2 and g.max() > 0.9 and min(g.shape) > 5
    with pytest.raises(ValueError, match="does not apply"):
        bank.glyph(3, rng, variant="crossed_7")


def test_a_1_that_fills_its_box_gets_a_continental_flag() -> None:
    # A thick straight 1 whose crop is all ink has no background to measure its stroke
    # against: the width was FLT_MAX and cv2.line refused it (crop seed 1515, frame 5655).
    stem = np.ones((20, 3), np.float32)
    assert 1.0 <= _stroke_width(stem) <= 4.0
    flagged = continental_1(stem, np.random.default_rng(0))
    assert flagged.shape[0] >= 20 and flagged.shape[1] > 3 + 4  # the flag reaches left


def test_cli_rejects_bad_size(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path), "--size", "640by480"])
    assert exc.value.code != 0
    assert "640x480" in capsys.readouterr().err


@pytest.fixture(scope="module")
def reader() -> Reader:
    with Reader.from_model(DEFAULT_MODEL) as r:
        yield r


def _digits_per_number(reading) -> list[int]:  # type: ignore[no-untyped-def]
    counts: list[int] = []
    for d in reading.digits:
        while d.group >= len(counts):
            counts.append(0)
        counts[d.group] += 1
    # A number whose every blob was read as no digit leaves an empty group.
    return [c for c in counts if c]


def test_reader_counts_digits_per_number_on_rendered_frames(
    tmp_path: Path, bank: GlyphBank, reader: Reader
) -> None:
    truth = render_set(tmp_path, 60, seed=21, bank=bank)
    good = 0
    for f in truth["frames"]:
        img = cv2.imread(str(tmp_path / f["file"]), cv2.IMREAD_UNCHANGED)
        good += _digits_per_number(reader.read(img)) == [len(n) for n in f["numbers"]]
    rate = good / len(truth["frames"])
    print(f"digits per number match the truth on {rate:.1%} of 60 frames")
    assert rate >= MIN_COUNT_MATCH


def test_segmenter_drops_shadow_edge_residue(
    tmp_path: Path, bank: GlyphBank, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Frame 9 of seed 101: pencil digits on ruled paper under a hard shadow, whose edge the
    # threshold traces as a wide faint blob that was read as two extra digits.
    truth = render_set(tmp_path, 10, seed=101, bank=bank)
    f = truth["frames"][9]
    img = cv2.imread(str(tmp_path / f["file"]), cv2.IMREAD_UNCHANGED)
    digits = [b for number in f["boxes"] for b in number]

    def off_digits(segments: list[Segment]) -> int:
        """Segments on no digit's ink: no truth box shares a third of the segment's box."""
        return sum(
            all(box_overlap(s.box, t) < s.box[2] * s.box[3] / 3 for t in digits) for s in segments
        )

    assert off_digits(Segmenter().segment(img)) == 0
    # The frame still shows the problem the rule is for (else this test proves nothing).
    monkeypatch.setattr(segment_module, "_RESIDUE_EDGE", 0.0)
    assert off_digits(Segmenter().segment(img)) >= 1


def test_truth_boxes_frame_each_digit(tmp_path: Path, bank: GlyphBank) -> None:
    """Every digit has an ink box in the frame, left to right within its number, and the
    boxes hold the ink: far more pixels stand out from the paper inside them than outside."""
    truth = render_set(tmp_path, 12, seed=5, bank=bank)
    inside_ratio = []
    for f in truth["frames"]:
        img = cv2.imread(str(tmp_path / f["file"]), cv2.IMREAD_GRAYSCALE)
        h, w = img.shape
        assert [len(b) for b in f["boxes"]] == [len(n) for n in f["numbers"]]
        inside = np.zeros((h, w), bool)
        for number in f["boxes"]:
            assert [b[0] for b in number] == sorted(b[0] for b in number)
            for x, y, bw, bh in number:
                assert min(x, y) >= 0 and x + bw <= w and y + bh <= h and bw > 0 and bh > 0
                inside[y : y + bh, x : x + bw] = True
        paper = cv2.medianBlur(img, 31).astype(np.int16)
        stands_out = np.abs(img.astype(np.int16) - paper) > 40
        inside_ratio.append(stands_out[inside].mean() / max(stands_out[~inside].mean(), 1e-4))
    assert float(np.median(inside_ratio)) > 10
