"""Score the reader on folders of rendered frames (``python -m host.score_frames DIR...``).

Each folder is what ``python -m host.frames --out DIR --count N --seed S`` writes: images plus
``truth.json``. Prints, over all folders: exact match, digit accuracy, how many readings were
confident and how many of those were right, and where every truth digit went (the bench's
table). ``--failures FILE`` lists each wrong reading (path, truth, reading, confident, reason,
tags), tab-separated, for a closer look. This is how a change to the segmenter or the model is
measured on fresh frames before ``make bench``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from device.contract import DEFAULT_MODEL
from host.errors import ScoreError, run_command
from host.reading_score import DIGIT_OUTCOMES, frame_outcomes, normalise_text, score


def _frames(folder: Path) -> list[dict[str, Any]]:
    truth = folder / "truth.json"
    if not truth.is_file():
        raise ScoreError(
            f"{folder} has no truth.json; render frames with "
            f"`python -m host.frames --out {folder} --count 300 --seed 101`"
        )
    frames = json.loads(truth.read_text(encoding="utf-8"))["frames"]
    for f in frames:
        if not (folder / f["file"]).is_file():
            raise ScoreError(f"{folder / f['file']} is listed in truth.json but missing")
    return list(frames)


def run(folders: list[Path], model: Path, failures: Path | None) -> dict[str, Any]:
    from device.images import load_image
    from device.reader import Reader

    jobs = [(folder, f) for folder in folders for f in _frames(folder)]
    truths, texts, confident, wrong = [], [], [], []
    outcomes = dict.fromkeys((*DIGIT_OUTCOMES, "extra"), 0)
    with Reader.from_model(model) as reader:
        for folder, f in jobs:
            reading = reader.read(load_image(folder / f["file"], grey=True))
            truths.append(f["text"])
            texts.append(reading.text)
            confident.append(reading.confident)
            if normalise_text(reading.text) != normalise_text(f["text"]):
                wrong.append(
                    [
                        str(folder / f["file"]),
                        repr(f["text"]),
                        repr(reading.text),
                        str(reading.confident),
                        reading.reason,
                        ",".join(f.get("tags", [])),
                    ]
                )
            if "boxes" in f:
                for k, v in frame_outcomes(f, reading.digits).items():
                    outcomes[k] += v
    if failures is not None:
        failures.write_text("".join("\t".join(row) + "\n" for row in wrong), encoding="utf-8")
    sc = score(truths, texts)
    right = [normalise_text(t) == normalise_text(g) for t, g in zip(truths, texts, strict=True)]
    return {
        "frames": sc.frames,
        "exact": sc.exact,
        "digits": sc.digits,
        "digits_right": sc.digits_right,
        "confident": sum(confident),
        "confident_right": sum(c and r for c, r in zip(confident, right, strict=True)),
        "outcomes": outcomes,
    }


def report(r: dict[str, Any]) -> str:
    def pct(a: int, b: int) -> str:
        return f"{100.0 * a / b:.1f}%" if b else "n/a"

    truth_digits = sum(v for k, v in r["outcomes"].items() if k != "extra")
    where = ", ".join(
        f"{k} {v} ({pct(v, truth_digits)})" for k, v in r["outcomes"].items() if k != "extra"
    )
    return "\n".join(
        [
            f"frames {r['frames']}: exact match {r['exact']} ({pct(r['exact'], r['frames'])}), "
            f"digit accuracy {r['digits_right']}/{r['digits']} "
            f"({pct(r['digits_right'], r['digits'])})",
            f"confident {r['confident']} ({pct(r['confident'], r['frames'])}), right among "
            f"them {r['confident_right']} ({pct(r['confident_right'], r['confident'])})",
            f"truth digits {truth_digits}: {where}; extra {r['outcomes']['extra']}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", type=Path, help="folders written by host.frames")
    p.add_argument("--model", type=Path, default=Path(DEFAULT_MODEL), help="the LiteRT model")
    p.add_argument("--failures", type=Path, default=None, help="write the wrong readings here")
    args = p.parse_args(argv)
    return run_command(lambda: print(report(run(args.folders, args.model, args.failures))))


if __name__ == "__main__":
    raise SystemExit(main())
