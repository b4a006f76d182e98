"""Read every recorded frame with the device reader; used by host/arm64/run.sh on both sides.

    python read_frames.py PROJECT FRAMES --out results.json            # on the host (x86)
    python read_frames.py PROJECT FRAMES --reference results.json      # in the arm64 rootfs

Prints one summary line (frames read exactly as truth.json says, median time per frame). With
``--reference`` it also compares every reading with the host's. A reading that either side
called confident must be the same text on both architectures (exit status 1 otherwise); an
unconfident one may differ, because the host and the Pi may run other OpenCV/NumPy versions and
a near-tie between two classes can tip either way; those are listed but allowed.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path


def read_all(project: Path, frames: Path) -> dict[str, object]:
    sys.path.insert(0, str(project))
    from device.images import load_image
    from device.reader import Reader, ReaderConfig

    truth = json.loads((frames / "truth.json").read_text(encoding="utf-8"))
    entries = truth["frames"] if isinstance(truth, dict) else truth
    texts: dict[str, str] = {}
    confident: dict[str, bool] = {}
    times: list[float] = []
    exact = 0
    with Reader.from_model(project / "models" / "digits.tflite", ReaderConfig()) as reader:
        for entry in entries:
            frame = load_image(frames / entry["file"])
            start = time.perf_counter()
            reading = reader.read(frame)
            times.append((time.perf_counter() - start) * 1000)
            texts[entry["file"]] = reading.text
            confident[entry["file"]] = reading.confident
            exact += reading.text == entry["text"]
    return {
        "machine": platform.machine(),
        "texts": texts,
        "confident": confident,
        "exact": exact,
        "total": len(entries),
        "median_ms": statistics.median(times) if times else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", type=Path)
    parser.add_argument("frames", type=Path)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--reference", type=Path, help="results of another machine to compare")
    args = parser.parse_args(argv)
    result = read_all(args.project, args.frames)
    print(
        f"{result['machine']} reading: {result['exact']}/{result['total']} frames exact; "
        f"median {result['median_ms']:.1f} ms per frame"
    )
    if args.out:
        args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    if args.reference:
        ref = json.loads(args.reference.read_text(encoding="utf-8"))
        texts: dict[str, str] = result["texts"]  # type: ignore[assignment]
        sure: dict[str, bool] = result["confident"]  # type: ignore[assignment]
        differ = [f for f, text in ref["texts"].items() if texts.get(f) != text]
        bad = [f for f in differ if ref["confident"][f] or sure.get(f, False)]
        for name in differ:
            kind = "CONFIDENT, must agree" if name in bad else "unconfident on both, allowed"
            print(
                f"  {name}: {ref['machine']} {ref['texts'][name]!r}, "
                f"here {texts.get(name)!r} ({kind})"
            )
        print(
            f"{len(differ)} of {len(ref['texts'])} readings differ from {ref['machine']}, "
            f"{len(bad)} of them confident"
        )
        return 1 if bad or not ref["texts"] else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
