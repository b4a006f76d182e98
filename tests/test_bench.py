"""Tests for `make bench`: the quick run writes every section and chart; the scoring helpers.

No timing is asserted: the figures depend on the machine. The quick run takes ~30 s.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from host import pi_estimate
from host.bench_report import CHARTS
from host.bench_timing import Contender, Summary, interleaved
from host.reading_score import (
    boxes_right,
    digit_outcomes,
    edit_distance,
    error_kind,
    normalise_text,
    score,
    threshold_curve,
)

ROOT = Path(__file__).resolve().parent.parent
QUICK_TIMEOUT_S = 240
SECTION_HEADINGS = (
    "## Figures to reach",
    "## 1. Per-digit inference",
    "## 2. Per-frame pipeline",
    "## 3. Peer OCR: Tesseract",
    "## 4. Accuracy",
    "## 5. Footprint",
    "## 6. Raspberry Pi cost model (ESTIMATE",
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [sys.executable, "-m", "host.bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=QUICK_TIMEOUT_S,
    )
    return out, proc


def test_quick_bench_exits_cleanly_and_prints_the_summary(quick_run) -> None:
    out, proc = quick_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "figures to reach" in proc.stdout
    assert "per digit, batch 1" in proc.stdout
    assert str(out / "bench.md") in proc.stdout


def test_quick_bench_report_has_every_section(quick_run) -> None:
    out, _ = quick_run
    text = (out / "bench.md").read_text(encoding="utf-8")
    positions = [text.find(h) for h in SECTION_HEADINGS]
    missing = [h for h, p in zip(SECTION_HEADINGS, positions, strict=True) if p < 0]
    assert not missing, missing
    assert positions == sorted(positions), "sections are out of order"
    # Each measured section has a table, and the runtimes compared are all named.
    for runtime in ("int8 LiteRT", "float32 LiteRT", "Keras model(x)", "Keras model.predict(x)"):
        assert runtime in text
    for size in ("640x480", "1280x720", "1920x1080"):
        assert f"| {size} |" in text
    assert "QUICK run" in text
    assert "### Where the digits went" in text and "| merged with a neighbour |" in text
    assert "ESTIMATE µs/digit" in text
    # The one-shot read (device.read's fine look) beside the daemon's reader, and its figures.
    frames = text.split("## 2. ")[1].split("## 3.")[0]
    assert "**One-shot read**" in frames and "the reader above: exact match" in frames
    assert "| exact match, one-shot read (device.read: unsure frames again enlarged) |" in text


def test_quick_bench_report_has_tesseract_figures_or_says_why_not(quick_run) -> None:
    out, _ = quick_run
    section = (out / "bench.md").read_text(encoding="utf-8").split("## 3. ")[1].split("## 4.")[0]
    if "SKIPPED" in section:
        assert "apt-get install tesseract-ocr" in section
    else:
        assert "| psm 6 | all |" in section


def test_quick_bench_writes_every_chart_as_a_valid_png(quick_run) -> None:
    out, _ = quick_run
    text = (out / "bench.md").read_text(encoding="utf-8")
    for name in CHARTS.values():
        path = out / name
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE), name
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape[0] > 100 and image.shape[1] > 100, name
        assert f"]({name})" in text, f"{name} is not linked from the report"
    assert not list(out.glob(".*tmp*")), "temporary files left behind"


def test_bench_refuses_an_unwritable_out_with_one_clear_message(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = subprocess.run(
        [sys.executable, "-m", "host.bench", "--quick", "--out", str(blocker / "reports")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "cannot write the report to" in proc.stderr
    assert "choose another --out" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bench_rejects_a_zero_frame_count() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "host.bench", "--frames", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "must be a whole number of 1 or more" in proc.stderr


# --- scoring and timing helpers ------------------------------------------------------------------


def test_texts_are_normalised_alike_for_every_reader() -> None:
    assert normalise_text(" 12\n 345\t6 \n") == "12 345 6"
    assert score(["12 345"], ["12\n345\n"]).exact == 1


def test_digit_accuracy_charges_a_missing_digit_once() -> None:
    s = score(["0349 12"], ["349 12"])
    assert (s.exact, s.digits, s.digits_right) == (0, 6, 5)
    assert edit_distance("0349", "03549") == 1
    assert score(["12"], [""]).digits_right == 0


def test_threshold_curve_accepts_by_the_least_confident_digit() -> None:
    correct = [True, False, True, False]
    min_conf = [0.99, 0.95, 0.6, 0.0]  # the last frame found no digits
    at_0, at_mid, at_high, at_top = threshold_curve(correct, min_conf, [0.0, 0.9, 0.97, 1.0])
    assert (at_0.n_accepted, at_0.error) == (4, 0.5)
    assert (at_mid.n_accepted, at_mid.error) == (2, 0.5)
    assert (at_high.n_accepted, at_high.error, at_high.accepted) == (1, 0.0, 0.25)
    assert at_top.n_accepted == 0 and at_top.error != at_top.error  # nan: nothing accepted


def test_summary_reports_median_and_quartiles() -> None:
    s = Summary.of([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s.median == 3.0 and s.p25 == 2.0 and s.p75 == 4.0
    assert s.scaled(1000).median == 3000.0
    assert Summary.of([]).n == 0


def test_interleaving_rotates_which_contender_goes_first() -> None:
    order: list[str] = []
    contenders = [Contender(n, lambda n=n: order.append(n)) for n in "abc"]
    samples = interleaved(contenders, reps=3)
    assert order == list("abcbcacab")
    assert all(len(v) == 3 for v in samples.values())


def test_pi_estimate_is_slower_on_slower_cores_and_grows_with_macs() -> None:
    by_board = {c.core: c for c in pi_estimate.CORES}
    a76, a72, a53 = by_board["Cortex-A76"], by_board["Cortex-A72"], by_board["Cortex-A53"]
    macs = 2_000_000
    assert pi_estimate.digit_us(macs, a76)[0] < pi_estimate.digit_us(macs, a72)[0]
    assert pi_estimate.digit_us(macs, a72)[0] < pi_estimate.digit_us(macs, a53)[0]
    assert pi_estimate.digit_us(2 * macs, a72)[0] > pi_estimate.digit_us(macs, a72)[0]
    est = pi_estimate.estimate(macs, host_other_ms=2.0, crops_per_frame=5, core=a72)
    assert est.frame_ms[0] < est.frame_ms[1]
    assert est.frame_ms[0] > 2.0 * a72.slowdown[0]
    # A second batch costs one more invoke overhead, nothing else.
    two = pi_estimate.estimate(macs, 2.0, 5, a72, invokes_per_frame=2)
    gap = two.frame_ms[0] - est.frame_ms[0]
    assert gap * 1000 == pytest.approx(pi_estimate.INVOKE_OVERHEAD_US[0])


def test_error_kind_separates_segmentation_grouping_and_misreads() -> None:
    assert error_kind("12 34", "12\n34") == "right"
    assert error_kind("12 34", "1234") == "grouping"
    assert error_kind("12 34", "12 3") == "digit count"
    assert error_kind("12 34", "12 35") == "misread"


def test_digit_outcomes_say_where_each_truth_digit_went() -> None:
    truth = [(0, 0, 10, 20), (12, 0, 10, 20), (24, 0, 10, 20), (36, 0, 10, 20), (48, 0, 10, 20)]
    labels = [1, 2, 3, 4, 5]
    read = [
        (0, 1, 10, 18),  # the 1, read right
        (12, 0, 9, 20),  # the 2, read as 7
        (24, 0, 22, 20),  # the 3 and the 4 as one blob
        (48, 0, 5, 20),  # the left half of the 5 ...
        (53, 0, 5, 20),  # ... and its right half
        (80, 0, 10, 20),  # nothing there
    ]
    found = digit_outcomes(truth, labels, read, [1, 7, 3, 1, 1, 8])
    assert found == {
        "read right": 1,
        "misread": 1,
        "merged with a neighbour": 2,
        "split": 1,
        "missed": 0,
        "extra": 1,
    }
    assert digit_outcomes(truth[:1], [1], [], [])["missed"] == 1


def test_boxes_right_asks_whether_a_perfect_classifier_would_read_the_boxes_exactly() -> None:
    """The segmenter's ceiling: one box per truth digit, grouped as the truth's numbers,
    whatever labels the classifier gave them."""
    from device.reading import DigitResult

    truth = {
        "numbers": ["12", "3"],
        "text": "12 3",
        "boxes": [[(0, 0, 10, 20), (12, 0, 10, 20)], [(40, 0, 10, 20)]],
    }

    def read(*boxes: tuple[tuple[int, int, int, int], int]) -> list[DigitResult]:
        return [DigitResult(7, 0.5, box, group) for box, group in boxes]

    one, two, three = (0, 1, 10, 18), (12, 0, 9, 20), (40, 0, 10, 20)
    assert boxes_right(truth, read((one, 0), (two, 0), (three, 1)))  # every label wrong
    assert not boxes_right(truth, read((one, 0), (two, 1), (three, 1)))  # grouped "1 23"
    assert not boxes_right(truth, read((one, 0), (two, 0), (three, 0)))  # grouped "123"
    assert not boxes_right(truth, read((one, 0), (three, 1)))  # the 2 missed
    assert not boxes_right(truth, read((one, 0), (two, 0), (three, 1), ((60, 0, 9, 20), 1)))
    assert not boxes_right(truth, read(((0, 0, 22, 20), 0), (three, 1)))  # 1 and 2 merged
    halves = (((12, 0, 5, 20), 0), ((17, 0, 5, 20), 0))
    assert not boxes_right(truth, read((one, 0), *halves, (three, 1)))  # the 2 split
    assert not boxes_right(truth, read((one, 0), (one, 0), (two, 0), (three, 1)))  # twice


def test_daemon_stop_line_gives_peak_and_anonymous_memory() -> None:
    from host.bench_footprint import _STOPPED

    line = (
        "stopped: 500 frames in 2.3 s (218.7 fps), 0 events, 0 rejected frames, "
        "0 reconnects, peak rss 82.5 MB, anonymous 28.1 MB at stop"
    )
    m = _STOPPED.search(line)
    assert m is not None and m.group(4, 5) == ("82.5", "28.1")
    # A daemon from before the anonymous figure still parses, without it.
    m = _STOPPED.search(line.split(", anonymous")[0])
    assert m is not None and m.group(4) == "82.5" and m.group(5) is None
