"""Score the reader on folders of rendered frames (``python -m host.score_frames DIR...``).

Each folder is what ``python -m host.frames --out DIR --count N --seed S`` writes: images plus
``truth.json``. Prints, over all folders: exact match, digit accuracy, how many readings were
confident and how many of those were right, and where every truth digit went (the bench's
table). ``--failures FILE`` lists each wrong reading (path, truth, reading, confident, reason,
tags), tab-separated, for a closer look. This is how a change to the segmenter or the model is
measured on fresh frames before ``make bench``.

Frames rendered from MNIST test digits also name each digit drawn; the last line then counts
the frames holding a digit the reader's classifier (second look included) misreads even clean,
and exact match on the others: what the camera and the segmenter cost, apart from the
classifier's own MNIST errors.

It also counts the frames whose digits the reader boxed one each and grouped as the truth's
numbers (``host.reading_score.boxes_right``), or read right anyway: a perfect classifier on the
reader's own boxes would read those exactly, so that share is the segmenter's ceiling, as
``--truth-boxes`` gives the classifier's.

``--fine-look`` reads as ``device.read`` does by default: unsure frames of at most 480 rows are
read again enlarged (``device.looks``); without it, as the daemon reads.

``--save FILE`` writes every frame's reading (JSON); ``--against FILE`` compares this run's
readings with a saved run's, frame by frame: how many changed, how many of those went right or
wrong and which. That is how a reader change is checked for what it breaks, not only for the
net count.

``--truth-boxes`` also reads every frame as a perfect segmenter would hand it over: the ink
inside each truth digit box (``Segmenter.ink_in``), normalised and classified as the reader
does, each crop taken as its likeliest digit. Its exact match is what the classifier alone
allows on these frames; the gap to the reader's own is what segmentation costs.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from device.atomic import atomic_write_bytes
from device.contract import DEFAULT_MODEL
from host.errors import ScoreError, run_command
from host.reading_score import (
    DIGIT_OUTCOMES,
    GlyphSplit,
    boxes_right,
    frame_outcomes,
    glyph_split,
    normalise_text,
    score,
)

# The layout of a file written by --save.
READINGS_FORMAT = 1


def _frames(folder: Path) -> list[dict[str, Any]]:
    truth = folder / "truth.json"
    if not truth.is_file():
        raise ScoreError(
            f"{folder} has no truth.json; render frames with "
            f"`python -m host.frames --out {folder} --count 300 --seed 101`"
        )
    data = json.loads(truth.read_text(encoding="utf-8"))
    frames = data["frames"]
    if data.get("source") != "MNIST test":
        # The digit indices name another split: no clean test-set reading to compare with.
        frames = [{k: v for k, v in f.items() if k != "mnist"} for f in frames]
    for f in frames:
        if not (folder / f["file"]).is_file():
            raise ScoreError(f"{folder / f['file']} is listed in truth.json but missing")
    return list(frames)


def mnist_misread(classifier: Any) -> np.ndarray:
    """True for each MNIST test digit ``classifier`` (a ``device.classifier.Classifier``)
    reads wrong, the digit normalised as the device normalises a crop ("none" is wrong)."""
    from device.normalize import normalize_batch
    from host.mnist import load_mnist

    data = load_mnist()
    labels, _ = classifier.classify(normalize_batch(list(data.x_test)))
    return np.asarray(labels) != data.y_test


def _read_truth_boxes(reader: Any, frame: np.ndarray, truth: dict[str, Any]) -> str:
    """The frame read from its truth digit boxes (see the module docstring), numbers apart."""
    from device.normalize import normalize_batch

    reader.segmenter.segment(frame)
    numbers = truth["boxes"]
    inks = [reader.segmenter.ink_in(tuple(b)) for number in numbers for b in number]
    if not inks:
        return ""
    labels, _ = reader.classifier.best_digits(normalize_batch(inks, reader.preprocessing))
    digits = iter(str(int(v)) for v in labels)
    return " ".join("".join(next(digits) for _ in number) for number in numbers)


def run(
    folders: list[Path],
    model: Path,
    failures: Path | None,
    truth_boxes: bool = False,
    fine_look: bool = False,
) -> dict[str, Any]:
    from device.images import load_image
    from device.reader import Reader, ReaderConfig

    jobs = [(folder, f) for folder in folders for f in _frames(folder)]
    wrong, boxed = [], []
    # One record per frame: what --save writes, and what every count below is taken from.
    readings: list[dict[str, Any]] = []
    outcomes = dict.fromkeys((*DIGIT_OUTCOMES, "extra"), 0)
    # Frames whose digits the reader boxed one each, grouped as the truth's (or read right).
    found = boxed_frames = 0
    with Reader.from_model(model, ReaderConfig(fine_look=fine_look)) as reader:
        for folder, f in jobs:
            frame = load_image(folder / f["file"], grey=True)
            reading = reader.read(frame)
            if truth_boxes and "boxes" in f:
                boxed.append((f["text"], _read_truth_boxes(reader, frame, f)))
            readings.append(
                {
                    "image": str(folder / f["file"]),
                    "truth": f["text"],
                    "reading": reading.text,
                    "confident": reading.confident,
                }
            )
            exact = normalise_text(reading.text) == normalise_text(f["text"])
            if not exact:
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
                boxed_frames += 1
                found += exact or boxes_right(f, reading.digits)
        right = [normalise_text(r["reading"]) == normalise_text(r["truth"]) for r in readings]
        frames = [f for _, f in jobs]
        glyphs = None
        if any("mnist" in f for f in frames):
            glyphs = glyph_split(frames, right, mnist_misread(reader.classifier))
    if failures is not None:
        failures.write_text("".join("\t".join(row) + "\n" for row in wrong), encoding="utf-8")
    sc = score([r["truth"] for r in readings], [r["reading"] for r in readings])
    confident = [bool(r["confident"]) for r in readings]
    extra: dict[str, Any] = {}
    if boxed:
        by_box = score([t for t, _ in boxed], [r for _, r in boxed])
        extra["truth_boxes"] = (by_box.frames, by_box.exact, by_box.digits_right, by_box.digits)
    return {
        **extra,
        "frames": sc.frames,
        "exact": sc.exact,
        "digits": sc.digits,
        "digits_right": sc.digits_right,
        "confident": sum(confident),
        "confident_right": sum(c and r for c, r in zip(confident, right, strict=True)),
        "outcomes": outcomes,
        "boxes_right": (found, boxed_frames),
        "glyphs": glyphs,
        "readings": readings,
    }


def save_readings(path: Path, readings: list[dict[str, Any]]) -> None:
    """Write a run's readings for a later ``--against`` (a temp file renamed when complete)."""
    data = {"format": READINGS_FORMAT, "readings": readings}
    atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode("utf-8"))


def load_readings(path: Path) -> list[dict[str, Any]]:
    """A run's readings saved by ``--save``; a file that is not one is refused by name."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        readings = data["readings"] if data.get("format") == READINGS_FORMAT else None
    except (OSError, ValueError, AttributeError, KeyError, TypeError) as e:
        raise ScoreError(
            f"{path} is not a run saved by `host.score_frames --save` ({e}); save one first"
        ) from e
    if readings is None:
        raise ScoreError(f"{path} is not a run saved by `host.score_frames --save`; save one first")
    return list(readings)


@dataclass(frozen=True)
class Change:
    """One frame read differently by two runs."""

    image: str
    truth: str
    before: str
    before_confident: bool
    after: str
    after_confident: bool

    def right(self, reading: str) -> bool:
        return normalise_text(reading) == normalise_text(self.truth)


def compare(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[Change]:
    """The frames (by image path) both runs read whose text or confidence differs."""
    earlier = {r["image"]: r for r in before}
    common = [r for r in after if r["image"] in earlier]
    if not common:
        raise ScoreError(
            "the saved run read none of these frames; compare runs over the same folders"
        )
    pairs = [(earlier[a["image"]], a) for a in common]
    return [
        Change(
            a["image"],
            a["truth"],
            b["reading"],
            bool(b["confident"]),
            a["reading"],
            bool(a["confident"]),
        )
        for b, a in pairs
        if (a["reading"], a["confident"]) != (b["reading"], b["confident"])
    ]


def comparison_report(changes: list[Change]) -> str:
    """How the changed frames moved: right / wrong, confident / unsure, and each one."""
    to_right = sum(c.right(c.after) and not c.right(c.before) for c in changes)
    to_wrong = sum(c.right(c.before) and not c.right(c.after) for c in changes)
    confident_wrong = sum(c.after_confident and not c.right(c.after) for c in changes) - sum(
        c.before_confident and not c.right(c.before) for c in changes
    )
    lines = [
        f"against the saved run: {len(changes)} reading(s) changed, {to_right} to right, "
        f"{to_wrong} to wrong; confident wrong readings {confident_wrong:+d}"
    ]

    def said(text: str, sure: bool) -> str:
        return f"{text!r} ({'confident' if sure else 'unsure'})"

    lines += [
        f"  {c.image}: truth {c.truth!r}: {said(c.before, c.before_confident)} -> "
        f"{said(c.after, c.after_confident)}"
        for c in changes
    ]
    return "\n".join(lines)


def report(r: dict[str, Any]) -> str:
    def pct(a: int, b: int) -> str:
        return f"{100.0 * a / b:.1f}%" if b else "n/a"

    truth_digits = sum(v for k, v in r["outcomes"].items() if k != "extra")
    where = ", ".join(
        f"{k} {v} ({pct(v, truth_digits)})" for k, v in r["outcomes"].items() if k != "extra"
    )
    lines = [
        f"frames {r['frames']}: exact match {r['exact']} ({pct(r['exact'], r['frames'])}), "
        f"digit accuracy {r['digits_right']}/{r['digits']} "
        f"({pct(r['digits_right'], r['digits'])})",
        f"confident {r['confident']} ({pct(r['confident'], r['frames'])}), right among "
        f"them {r['confident_right']} ({pct(r['confident_right'], r['confident'])})",
        f"truth digits {truth_digits}: {where}; extra {r['outcomes']['extra']}",
    ]
    found, boxed = r.get("boxes_right", (0, 0))
    if boxed:
        lines.append(
            f"digits boxed one each and grouped as the truth's numbers (a perfect classifier "
            f"on the reader's own boxes would read these exactly): {found} of {boxed} "
            f"({pct(found, boxed)})"
        )
    g: GlyphSplit | None = r.get("glyphs")
    if g is not None:
        lines.append(glyph_line(g))
    if "truth_boxes" in r:
        frames, exact, right, digits = r["truth_boxes"]
        lines.append(
            f"read from the truth's digit boxes (a perfect segmenter): exact match {exact} of "
            f"{frames} ({pct(exact, frames)}), digit accuracy {right}/{digits} "
            f"({pct(right, digits)})"
        )
    return "\n".join(lines)


def glyph_line(g: GlyphSplit) -> str:
    """One sentence on the frames holding a digit the model misreads even clean."""
    clean = g.frames - g.hard
    return (
        f"frames holding an MNIST digit the classifier misreads even clean: {g.hard} of {g.frames} "
        f"({100.0 * g.hard / g.frames:.1f}%), read right anyway {g.hard_right}; exact match on "
        f"the other {clean}: {g.clean_right} ({100.0 * g.clean_right / max(1, clean):.1f}%)"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", type=Path, help="folders written by host.frames")
    p.add_argument("--model", type=Path, default=Path(DEFAULT_MODEL), help="the LiteRT model")
    p.add_argument("--failures", type=Path, default=None, help="write the wrong readings here")
    p.add_argument(
        "--truth-boxes",
        action="store_true",
        help="also read each frame from its truth digit boxes: what the classifier alone allows",
    )
    p.add_argument(
        "--fine-look",
        action="store_true",
        help="read as device.read does: unsure frames again enlarged (device.looks)",
    )
    p.add_argument("--save", type=Path, default=None, help="write every frame's reading here")
    p.add_argument(
        "--against", type=Path, default=None, help="compare with readings saved by --save"
    )
    args = p.parse_args(argv)

    def score() -> None:
        before = load_readings(args.against) if args.against is not None else None
        r = run(args.folders, args.model, args.failures, args.truth_boxes, args.fine_look)
        print(report(r))
        if before is not None:
            print(comparison_report(compare(before, r["readings"])))
        if args.save is not None:
            save_readings(args.save, r["readings"])

    return run_command(score)


if __name__ == "__main__":
    raise SystemExit(main())
