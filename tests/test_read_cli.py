"""Tests for `python -m device.read`: output shapes, per-file errors, exit codes."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from device.read import main

ROOT = Path(__file__).resolve().parent.parent
# MNIST test digits the model reads with high confidence; drawn as dark ink on paper.
SAMPLE_INDEXES = (0, 1, 3, 4)  # labels 7, 2, 0, 4


@pytest.fixture(scope="module")
def sheet() -> tuple[np.ndarray, str]:
    """A 640x240 'photo' of four handwritten digits, and the text they spell."""
    from host.mnist import load_mnist

    data = load_mnist()
    rng = np.random.default_rng(1)
    paper = np.full((240, 640), 230.0) + rng.normal(0, 3, (240, 640))
    text = ""
    for i, idx in enumerate(SAMPLE_INDEXES):
        ink = cv2.resize(data.x_test[idx], (100, 100)).astype(np.float32) / 255.0
        x = 120 + i * 90
        paper[70:170, x : x + 100] = paper[70:170, x : x + 100] * (1 - ink) + 25 * ink
        text += str(int(data.y_test[idx]))
    gray = np.clip(paper, 0, 255).astype(np.uint8)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), text


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, [line for line in out.splitlines() if line], err


def _png(path: Path, image: np.ndarray) -> str:
    ok, buf = cv2.imencode(".png", image)
    assert ok
    path.write_bytes(buf.tobytes())
    return str(path)


def test_json_output_has_the_documented_shape(
    tmp_path: Path, sheet: tuple[np.ndarray, str], capsys: pytest.CaptureFixture[str]
) -> None:
    image, text = sheet
    path = _png(tmp_path / "sheet.png", image)
    code, lines, _ = _run(["--json", path], capsys)
    assert code == 0 and len(lines) == 1
    result = json.loads(lines[0])
    assert list(result) == ["image", "reading", "confident", "digits", "ms"]
    assert result["image"] == path
    assert result["reading"] == text
    assert result["confident"] is True
    assert [d["label"] for d in result["digits"]] == [int(c) for c in text]
    for digit in result["digits"]:
        assert list(digit) == ["label", "confidence", "box"]
        assert 0 < digit["confidence"] <= 1 and len(digit["box"]) == 4
    xs = [d["box"][0] for d in result["digits"]]
    assert xs == sorted(xs)
    assert result["ms"] > 0


def test_text_output_is_one_line_per_image(
    tmp_path: Path, sheet: tuple[np.ndarray, str], capsys: pytest.CaptureFixture[str]
) -> None:
    image, text = sheet
    a = _png(tmp_path / "a.png", image)
    b = _png(tmp_path / "b.png", np.full((100, 100, 3), 230, np.uint8))
    code, lines, _ = _run([a, b], capsys)
    assert code == 0
    assert lines[0] == f"{a}: {text} (confident)"
    assert lines[1] == f"{b}: - (not confident: no digits found)"


def test_blank_image_gives_an_empty_reading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _png(tmp_path / "blank.png", np.full((120, 160, 3), 240, np.uint8))
    code, lines, _ = _run(["--json", path], capsys)
    result = json.loads(lines[0])
    assert code == 0
    assert result["reading"] == "" and result["digits"] == [] and result["confident"] is False


def test_threshold_option_is_applied(
    tmp_path: Path, sheet: tuple[np.ndarray, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path = _png(tmp_path / "sheet.png", sheet[0])
    # No int8 softmax output reaches exactly 1.0 (the largest is 255/256).
    code, lines, _ = _run(["--json", "--threshold", "1.0", path], capsys)
    assert code == 0 and json.loads(lines[0])["confident"] is False


def test_roi_limits_where_digits_are_looked_for(
    tmp_path: Path, sheet: tuple[np.ndarray, str], capsys: pytest.CaptureFixture[str]
) -> None:
    image, text = sheet
    path = _png(tmp_path / "sheet.png", image)
    # The first two digits' ink lies left of x = 312, the last two right of it.
    code, lines, _ = _run(["--json", "--roi", "0,0,312,240", path], capsys)
    assert code == 0 and json.loads(lines[0])["reading"] == text[:2]
    code, lines, _ = _run(["--json", "--roi", "312,0,328,240", path], capsys)
    result = json.loads(lines[0])
    assert code == 0 and result["reading"] == text[2:]
    assert all(d["box"][0] >= 312 for d in result["digits"])


def test_16bit_and_rgba_pngs_read_like_the_8bit_original(
    tmp_path: Path, sheet: tuple[np.ndarray, str], capsys: pytest.CaptureFixture[str]
) -> None:
    image, text = sheet
    deep = _png(tmp_path / "deep.png", image.astype(np.uint16) * 257)
    bgra = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
    bgra[:, :, 3] = 255
    bgra[:30, :, 3] = 0  # a transparent strip must read as paper, not as black ink
    rgba = _png(tmp_path / "rgba.png", bgra)
    code, lines, _ = _run(["--json", deep, rgba], capsys)
    assert code == 0
    assert [json.loads(line)["reading"] for line in lines] == [text, text]


def _huge_png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_bad_files_get_their_own_error_and_the_rest_are_read(
    tmp_path: Path, sheet: tuple[np.ndarray, str], capsys: pytest.CaptureFixture[str]
) -> None:
    image, text = sheet
    good = _png(tmp_path / "good.png", image)
    jpeg = cv2.imencode(".jpg", image)[1]
    bad: dict[str, bytes] = {
        "text.png": b"this is not an image\n" * 20,
        "cut.jpg": jpeg.tobytes()[: len(jpeg) // 2],
        "empty.png": b"",
        "dot.png": cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))[1].tobytes(),
        "huge.png": _huge_png(60_000, 60_000),
    }
    paths = []
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    missing = str(tmp_path / "missing.png")
    code, lines, _ = _run(["--json", paths[0], good, *paths[1:], missing], capsys)
    assert code == 1
    results = [json.loads(line) for line in lines]
    assert [r["image"] for r in results] == [paths[0], good, *paths[1:], missing]
    by_name = {Path(r["image"]).name: r for r in results}
    assert by_name["good.png"]["reading"] == text
    expected_words = {
        "text.png": "not an image",
        "cut.jpg": "truncated JPEG",
        "empty.png": "empty",
        "dot.png": "too small",
        "huge.png": "larger than",
        "missing.png": "no such file",
    }
    for name, words in expected_words.items():
        assert set(by_name[name]) == {"image", "error"}
        assert words in by_name[name]["error"], by_name[name]["error"]


def test_text_mode_reports_errors_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    code, lines, err = _run([str(tmp_path / "empty.png")], capsys)
    assert code == 1 and lines == []
    assert "empty.png" in err and "empty" in err


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--roi", "1,2,3", "x.png"],
        ["--roi", "0,0,0,5", "x.png"],
        ["--threshold", "1.5", "x.png"],
        ["--threshold", "high", "x.png"],
        ["--polarity", "sideways", "x.png"],
    ],
)
def test_usage_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, err = _run(args, capsys)
    assert code == 2 and lines == []
    assert "error" in err


def test_missing_model_is_one_sentence_and_exit_2(
    tmp_path: Path, sheet: tuple[np.ndarray, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path = _png(tmp_path / "sheet.png", sheet[0])
    model = tmp_path / "none" / "digits.tflite"
    code, lines, err = _run(["--model", str(model), path], capsys)
    assert code == 2 and lines == []
    assert len(err.strip().splitlines()) == 1
    assert str(model) in err and "make train convert" in err


def test_annotate_writes_one_png_per_image(
    tmp_path: Path, sheet: tuple[np.ndarray, str], capsys: pytest.CaptureFixture[str]
) -> None:
    image, _ = sheet
    a = _png(tmp_path / "a.png", image)
    sub = tmp_path / "sub"
    sub.mkdir()
    b = _png(sub / "a.png", image)  # same name, other folder: must not overwrite
    out = tmp_path / "annotated"
    code, _, _ = _run(["--annotate", str(out), a, b], capsys)
    assert code == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == ["a-2.annotated.png", "a.annotated.png"]
    drawn = cv2.imread(str(out / "a.annotated.png"))
    assert drawn.shape == image.shape
    # Green boxes (confident) were drawn: pixels the grey sheet cannot contain.
    greenish = (drawn[:, :, 1].astype(int) - drawn[:, :, 2].astype(int)) > 100
    assert greenish.sum() > 100


def test_module_runs_as_a_program(tmp_path: Path, sheet: tuple[np.ndarray, str]) -> None:
    path = _png(tmp_path / "sheet.png", sheet[0])
    result = subprocess.run(
        [sys.executable, "-m", "device.read", "--json", path],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    assert parsed["reading"] == sheet[1]


def test_annotate_draws_red_for_an_unsure_reading_and_leaves_the_frame_alone(
    sheet: tuple[np.ndarray, str],
) -> None:
    from device.annotate import annotate
    from device.reading import DigitResult, Reading

    image = sheet[0]
    before = image.copy()
    reading = Reading("7", (DigitResult(7, 0.5, (120, 70, 100, 100)),), False, "low confidence")
    drawn = annotate(image, reading, roi=(10, 10, 300, 200))
    np.testing.assert_array_equal(image, before)
    reddish = (drawn[:, :, 2].astype(int) - drawn[:, :, 1].astype(int)) > 100
    amber_roi = (drawn[10, 50:250, 2] > 200) & (drawn[10, 50:250, 0] < 50)
    assert reddish.sum() > 100 and amber_roi.all()


def test_unsure_images_get_the_fine_look_unless_asked_not_to(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """tests/frames/f0032.jpg (15-20 px digits on ruled paper) is read unsurely at its own
    size and confidently enlarged (see tests/test_looks.py)."""
    frame = str(ROOT / "tests" / "frames" / "f0032.jpg")
    truth = json.loads((ROOT / "tests" / "frames" / "truth.json").read_text())
    expected = next(f["text"] for f in truth["frames"] if f["file"] == "f0032.jpg")
    code, lines, _ = _run(["--json", frame], capsys)
    fine = json.loads(lines[0])
    code_plain, lines_plain, _ = _run(["--json", "--no-fine-look", frame], capsys)
    plain = json.loads(lines_plain[0])
    assert code == code_plain == 0
    assert fine["reading"] == expected and fine["confident"] is True
    assert plain["confident"] is False
