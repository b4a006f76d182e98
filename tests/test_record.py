"""Tests for `python -m device.record`: lossless PNG frames + sidecars, replayable later."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.record import main
from device.sources import RecordedSource


def _source_folder(tmp_path: Path, count: int) -> tuple[Path, list[np.ndarray]]:
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(5)
    frames = []
    for i in range(count):
        # Noise is the hardest case for a lossy format: any loss would change pixels.
        frame = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        assert cv2.imwrite(str(src / f"in_{i}.png"), frame)
        frames.append(frame)
    return src, frames


def test_recorded_frames_round_trip_losslessly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, frames = _source_folder(tmp_path, 3)
    out = tmp_path / "out"
    code = main(["--source", "recorded", "--uri", str(src), "--out", str(out), "--count", "3"])
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"frame_{i:06d}.{ext}" for i in range(3) for ext in ("json", "png")]
    for i, frame in enumerate(frames):
        meta = json.loads((out / f"frame_{i:06d}.json").read_text())
        assert meta["source"] == f"recorded:{src}"
        assert (meta["width"], meta["height"]) == (64, 48)
        datetime.fromisoformat(meta["time"].replace("Z", "+00:00"))  # a valid ISO time
        np.testing.assert_array_equal(cv2.imread(str(out / f"frame_{i:06d}.png")), frame)
    # And the folder replays as a recorded source, sidecars skipped.
    with RecordedSource(out) as replay:
        np.testing.assert_array_equal(replay.read(), frames[0])


def test_numbering_continues_after_existing_frames(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, _ = _source_folder(tmp_path, 2)
    out = tmp_path / "out"
    args = ["--source", "recorded", "--uri", str(src), "--out", str(out), "--count", "2"]
    assert main(args) == 0
    assert main(args) == 0
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == [f"frame_{i:06d}.png" for i in range(4)]
    assert not list(out.glob(".*")), "no temporary files are left behind"


def test_a_source_that_ends_early_keeps_what_was_saved(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, _ = _source_folder(tmp_path, 2)
    out = tmp_path / "out"
    code = main(["--source", "recorded", "--uri", str(src), "--out", str(out), "--count", "5"])
    assert code == 0
    assert len(list(out.glob("*.png"))) == 2
    assert "ended after 2 of 5" in capsys.readouterr().err


def test_video_file_can_be_recorded_from_with_opencv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for value in (40, 200):
        writer.write(np.full((48, 64, 3), value, np.uint8))
    writer.release()
    out = tmp_path / "out"
    code = main(["--source", "opencv", "--uri", str(video), "--out", str(out), "--count", "2"])
    assert code == 0
    second = cv2.imread(str(out / "frame_000001.png"))
    assert abs(int(second[10, 10, 0]) - 200) <= 3


@pytest.mark.parametrize(
    "args",
    [
        ["--source", "recorded", "--out", "X", "--count", "1"],  # no --uri
        ["--source", "webcam", "--uri", "0", "--out", "X", "--count", "1"],
        ["--source", "recorded", "--uri", "SRC", "--out", "X", "--count", "0"],
        ["--source", "recorded", "--uri", "SRC", "--out", "X"],  # no --count
    ],
)
def test_usage_errors_exit_2(
    tmp_path: Path, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    src, _ = _source_folder(tmp_path, 1)
    args = [str(src) if a == "SRC" else str(tmp_path / "o") if a == "X" else a for a in args]
    assert main(args) == 2
    assert list(tmp_path.glob("o/*.png")) == []


def test_missing_source_exits_1_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "--source",
            "recorded",
            "--uri",
            str(tmp_path / "nope"),
            "--out",
            str(tmp_path / "o"),
            "--count",
            "1",
        ]
    )
    assert code == 1
    assert "do not exist" in capsys.readouterr().err
