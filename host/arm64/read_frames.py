"""Read every recorded frame with the device reader; used by host/arm64/run.sh on both sides.

    python read_frames.py PROJECT FRAMES --out results.json            # on the host (x86)
    python read_frames.py PROJECT FRAMES --reference results.json      # in the arm64 rootfs

Prints one summary line (frames read exactly as truth.json says, median time per frame). With
``--reference`` it also compares every reading with the host's: the same int8 model must give
the same text on both architectures; any difference is listed and the exit status is 1.
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
    times: list[float] = []
    exact = 0
    with Reader.from_model(project / "models" / "digits.tflite", ReaderConfig()) as reader:
        for entry in entries:
            frame = load_image(frames / entry["file"])
            start = time.perf_counter()
            reading = reader.read(frame)
            times.append((time.perf_counter() - start) * 1000)
            texts[entry["file"]] = reading.text
            exact += reading.text == entry["text"]
    return {
        "machine": platform.machine(),
        "texts": texts,
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
        differ = [f for f, text in ref["texts"].items() if texts.get(f) != text]
        for name in differ:
            print(f"  {name}: {ref['machine']} {ref['texts'][name]!r}, here {texts.get(name)!r}")
        print(f"{len(differ)} of {len(ref['texts'])} readings differ from {ref['machine']}")
        return 1 if differ or not ref["texts"] else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
