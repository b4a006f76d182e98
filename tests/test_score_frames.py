"""``python -m host.score_frames``: the reader scored on folders of rendered frames."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from host.score_frames import main

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
