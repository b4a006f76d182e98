"""``python -m host.score_frames``: the reader scored on folders of rendered frames."""

from __future__ import annotations

import ast
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from device.contract import DEFAULT_MODEL
from host.reading_score import GlyphSplit, error_kind, glyph_split
from host.score_frames import compare, comparison_report, main, mnist_misread

FRAMES = Path(__file__).resolve().parent / "frames"


def test_scores_the_committed_frames_and_lists_each_wrong_reading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    failures = tmp_path / "failures.tsv"
    assert main([str(FRAMES), "--failures", str(failures)]) == 0
    out = capsys.readouterr().out
    head = re.search(r"frames (\d+): exact match (\d+)", out)
    conf = re.search(r"confident (\d+) .*right among them (\d+)", out)
    assert head and conf, out
    frames, exact = map(int, head.groups())
    confident, right = map(int, conf.groups())
    truth = json.loads((FRAMES / "truth.json").read_text())["frames"]
    assert frames == len(truth)
    rows = [line.split("\t") for line in failures.read_text().splitlines()]
    assert len(rows) == frames - exact  # one line per wrong reading
    assert all(Path(r[0]).is_file() and r[1] != r[2] for r in rows)
    assert 0 <= right <= confident <= frames
    digits = sum(len(n) for f in truth for n in f["numbers"])
    assert f"truth digits {digits}:" in out
    # The segmenter's ceiling: every exact reading counts, and a perfect classifier would
    # also read the frames whose only fault is a misread digit.
    found = re.search(r"perfect classifier on the reader's own boxes .*: (\d+) of (\d+)", out)
    assert found, out
    boxed, of = map(int, found.groups())
    misread_only = sum(
        error_kind(ast.literal_eval(r[1]), ast.literal_eval(r[2])) == "misread" for r in rows
    )
    assert of == frames and exact < boxed <= frames and boxed - exact <= misread_only


def test_counts_the_frames_holding_a_digit_the_model_misreads_even_clean(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([str(FRAMES)]) == 0
    out = capsys.readouterr().out
    m = re.search(
        r"misreads even clean: (\d+) of (\d+) .*read right anyway (\d+); exact match on "
        r"the other (\d+): (\d+)",
        out,
    )
    assert m, out
    hard, frames, hard_right, others, others_right = map(int, m.groups())
    exact = int(re.search(r"exact match (\d+)", out).group(1))  # type: ignore[union-attr]
    assert frames == 40 and others == frames - hard
    assert hard_right + others_right == exact


def test_truth_boxes_read_the_frames_as_a_perfect_segmenter_would(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Read from the truth's own digit boxes, no digit is missed, merged or split: digit
    accuracy is then the classifier's alone, at least the reader's on the same frames."""
    assert main([str(FRAMES), "--truth-boxes"]) == 0
    out = capsys.readouterr().out
    reader = re.search(r"digit accuracy (\d+)/(\d+)", out)
    boxed = re.search(
        r"truth's digit boxes .*: exact match (\d+) of (\d+) .*digit accuracy (\d+)/(\d+)", out
    )
    assert reader and boxed, out
    right, digits = map(int, reader.groups())
    exact, frames, boxed_right, boxed_digits = map(int, boxed.groups())
    assert frames == 40 and 0 < exact <= frames and boxed_digits == digits
    assert right <= boxed_right < digits  # (a few committed digits the model misreads clean)
    assert "truth's digit boxes" not in _report_without_flag(capsys)


def _report_without_flag(capsys: pytest.CaptureFixture[str]) -> str:
    assert main([str(FRAMES)]) == 0
    return capsys.readouterr().out


def test_glyph_split_sorts_frames_by_the_digits_drawn() -> None:
    misread = np.zeros(10, bool)
    misread[3] = True
    truth = [
        {"mnist": [[1, 2], [3]]},  # holds digit 3, which the model misreads
        {"mnist": [[4, -1]]},  # a restyled digit (-1) says nothing
        {"mnist": [[3]]},
        {"text": "7"},  # renders that predate the field are left out
    ]
    g = glyph_split(truth, [False, True, True, False], misread)
    assert g == GlyphSplit(frames=3, hard=2, hard_right=1, clean_right=1)
    assert g.clean_share == pytest.approx(1 / 3)
    assert glyph_split([{"text": "7"}], [True], misread) is None


def test_mnist_misread_matches_the_manifests_int8_accuracy() -> None:
    """The device's normalisation + classifier err on exactly as many MNIST test digits as
    host.convert measured for the manifest."""
    from device.classifier import LiteRTClassifier

    manifest = json.loads(Path(DEFAULT_MODEL).with_suffix(".json").read_text())
    with LiteRTClassifier(DEFAULT_MODEL) as c:
        wrong = int(mnist_misread(c).sum())
    assert wrong == round((1.0 - manifest["accuracy"]["litert_int8"]) * 10_000)


def test_a_folder_without_truth_says_how_to_render_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "has no truth.json" in err and "python -m host.frames --out" in err


def test_a_missing_image_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = json.loads((FRAMES / "truth.json").read_text())
    shutil.copy(FRAMES / truth["frames"][0]["file"], tmp_path)
    (tmp_path / "truth.json").write_text(json.dumps({"frames": truth["frames"][:2]}))
    assert main([str(tmp_path)]) == 2
    assert truth["frames"][1]["file"] in capsys.readouterr().err


def _one_frame(tmp_path: Path, name: str = "f0032.jpg") -> Path:
    folder = tmp_path / "one"
    folder.mkdir()
    shutil.copy(FRAMES / name, folder)
    truth = json.loads((FRAMES / "truth.json").read_text())
    frame = next(f for f in truth["frames"] if f["file"] == name)
    (folder / "truth.json").write_text(json.dumps({**truth, "frames": [frame]}))
    return folder


def test_fine_look_scores_as_device_read_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The committed frame of small digits read unsure at its own size (tests/test_looks.py):
    with --fine-look it is one more confident reading, and the text is the same."""
    one = _one_frame(tmp_path)

    def confident(*flags: str) -> tuple[int, int]:
        assert main([str(one), *flags]) == 0
        out = capsys.readouterr().out
        m = re.search(r"exact match (\d+).*\nconfident (\d+)", out)
        assert m, out
        return int(m.group(1)), int(m.group(2))

    assert confident() == (1, 0)
    assert confident("--fine-look") == (1, 1)


def test_a_saved_run_shows_which_readings_a_change_moved(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """f0032 reads unsure without the fine look and confident with it (test above): saved
    without, compared with, that frame is the one change, and the same run compared with
    itself changes nothing."""
    one = _one_frame(tmp_path)
    saved = tmp_path / "before.json"
    assert main([str(one), "--save", str(saved)]) == 0
    before = json.loads(saved.read_text())["readings"]
    assert [r["image"] for r in before] == [str(one / "f0032.jpg")]
    assert before[0]["confident"] is False
    capsys.readouterr()

    assert main([str(one), "--fine-look", "--against", str(saved)]) == 0
    out = capsys.readouterr().out
    assert "against the saved run: 1 reading(s) changed" in out
    assert re.search(r"f0032\.jpg: truth .*\(unsure\) -> .*\(confident\)", out), out

    assert main([str(one), "--against", str(saved)]) == 0
    assert "0 reading(s) changed, 0 to right, 0 to wrong" in capsys.readouterr().out


def test_compare_counts_readings_gone_right_and_wrong() -> None:
    def run(*readings: tuple[str, str, bool]) -> list[dict[str, object]]:
        return [
            {"image": f"f{i}", "truth": "12 3", "reading": text, "confident": sure}
            for i, (_, text, sure) in enumerate(readings)
        ]

    before = run(("a", "12 3", True), ("b", "17 3", False), ("c", "12 3", False), ("d", "1", True))
    after = run(("a", "12 3", True), ("b", "12 3", False), ("c", "12 8", True), ("d", "1", True))
    changes = compare(before, after)
    assert [c.image for c in changes] == ["f1", "f2"]
    text = comparison_report(changes)
    assert text.startswith("against the saved run: 2 reading(s) changed, 1 to right, 1 to wrong")
    assert "confident wrong readings +1" in text


def test_against_a_file_that_is_no_saved_run_is_refused_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    assert main([str(FRAMES), "--against", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad} is not a run saved by `host.score_frames --save`" in err


def test_against_a_run_over_other_frames_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "other.json"
    saved.write_text(
        json.dumps(
            {
                "format": 1,
                "readings": [
                    {"image": "/elsewhere/f.jpg", "truth": "1", "reading": "1", "confident": True}
                ],
            }
        )
    )
    assert main([str(_one_frame(tmp_path)), "--against", str(saved)]) == 2
    assert "the saved run read none of these frames" in capsys.readouterr().err
