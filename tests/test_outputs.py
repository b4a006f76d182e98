"""Stdout JSON lines, the rotating fsync'ed event file and the bounded frame folder."""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.errors import OutputError
from device.events import ReadingEvent
from device.outputs import FileOutput, FrameSaver, StdoutOutput
from device.reading import DigitResult, Reading


def event(text: str, accepted: bool = True, reason: str = "") -> ReadingEvent:
    digits = tuple(DigitResult(int(c), 0.97, (i * 20, 5, 15, 25)) for i, c in enumerate(text))
    return ReadingEvent(Reading(text, digits, accepted), accepted=accepted, reason=reason)


def test_stdout_writes_one_flushed_json_line_per_accepted_reading() -> None:
    stream = io.StringIO()
    out = StdoutOutput(stream)
    out.on_event(event("42"))
    out.on_event(event("7", accepted=False, reason="low confidence"))
    out.on_event(event("43"))
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["value"] for line in lines] == ["42", "43"]
    first = json.loads(lines[0])
    assert first["event"] == "reading" and first["digits"] == [4, 2]
    assert first["confidences"] == [0.97, 0.97]


def test_stdout_survives_a_closed_stream(caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    stream.close()
    out = StdoutOutput(stream)
    with caplog.at_level(logging.ERROR):
        out.on_event(event("1"))
        out.on_event(event("2"))
    assert len([r for r in caplog.records if "stdout" in r.getMessage()]) == 1


def test_file_output_appends_every_event_as_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "events.jsonl"
    path.parent.mkdir()
    path.write_text('{"old": true}\n')
    with FileOutput(path) as out:
        out.on_event(event("12"))
        out.on_event(event("9", accepted=False, reason="meter went backwards"))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows[0] == {"old": True}
    assert [(r["event"], r["value"], r["reason"]) for r in rows[1:]] == [
        ("reading", "12", ""),
        ("rejected", "9", "meter went backwards"),
    ]


def test_file_output_rotates_by_size_keeping_backups(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    line_len = len((json.dumps(event("1234").to_dict(), separators=(",", ":"))) + "\n")
    with FileOutput(path, max_bytes=line_len * 2 + 10, backups=2) as out:
        values = [f"{n:04d}" for n in range(7)]
        for v in values:
            out.on_event(event(v))

    def values_in(p: Path) -> list[str]:
        return [json.loads(line)["value"] for line in p.read_text().splitlines()]

    assert values_in(path) == ["0006"]
    assert values_in(tmp_path / "events.jsonl.1") == ["0004", "0005"]
    assert values_in(tmp_path / "events.jsonl.2") == ["0002", "0003"]
    assert not (tmp_path / "events.jsonl.3").exists()
    assert all(p.stat().st_size <= line_len * 2 + 10 for p in tmp_path.iterdir())


def test_unwritable_event_file_is_an_output_error_at_start(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(OutputError, match=r"cannot write the event file .*output.file"):
        FileOutput(blocker / "events.jsonl")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full to fake a full disk")
def test_disk_full_is_logged_once_and_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    out = FileOutput("/dev/full")
    with caplog.at_level(logging.ERROR):
        for n in range(3):
            out.on_event(event(str(n)))
    errors = [r for r in caplog.records if "cannot append to /dev/full" in r.getMessage()]
    assert len(errors) == 1
    out.close()


def frame() -> np.ndarray:
    img = np.full((48, 64, 3), 255, np.uint8)
    cv2.putText(img, "7", (20, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 0), 2)
    return img


def test_frame_saver_writes_annotated_frames_of_events_only(tmp_path: Path) -> None:
    calls: list[str] = []

    def annotate(img: np.ndarray, reading: Reading) -> np.ndarray:
        calls.append(reading.text)
        out = img.copy()
        out[0:4, 0:4] = (0, 0, 255)
        return out

    saver = FrameSaver(tmp_path / "frames", max_saved=10, annotate=annotate)
    reading = event("7").reading
    saver.on_frame(frame(), reading)
    saver.on_frame(frame(), reading)
    saver.on_event(event("7"))
    saver.on_frame(frame(), reading)
    saver.on_event(event("1", accepted=False, reason="low confidence"))
    files = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert len(files) == 2 and calls == ["7", "7"]
    assert any("-accepted-7-" in f for f in files) and any("-rejected-1-" in f for f in files)
    assert all(f.endswith(".jpg") and not f.startswith(".") for f in files)
    img = cv2.imread(str(tmp_path / "frames" / files[0]))
    assert img.shape == (48, 64, 3) and img[1, 1, 2] > 200 and img[1, 1, 0] < 60


def test_frame_saver_keeps_at_most_max_saved_deleting_oldest(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "00000000T000000.000Z-accepted-1-old.jpg").write_bytes(b"x")
    saver = FrameSaver(folder, max_saved=3)
    names = []
    for n in range(4):
        saver.on_frame(frame(), None)
        e = ReadingEvent(event(str(n)).reading, accepted=True, time=f"2030-01-01T00:00:0{n}.000Z")
        saver.on_event(e)
        names.append(e.id[:8])
    left = sorted(p.name for p in folder.iterdir())
    assert len(left) == 3
    assert [n.split("-")[-1].removesuffix(".jpg") for n in left] == names[1:]


def test_frame_saver_in_unwritable_folder_is_an_output_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputError, match=r"output\.save_frames"):
        FrameSaver(blocker / "frames")
