"""Read the numbers in image files once: `python -m device.read [options] IMAGE...`.

One line per image (``path: 0349 (confident)``), or with ``--json`` one JSON object per line.
An image read unsurely is read again enlarged (the fine look, ``device.looks``): about 9 ms
more per such 640x480 image, and more of them read confidently; ``--no-fine-look`` skips it.
A file that cannot be read gets its own error and the others are still processed; the exit
status is 0 when every file was read, 1 when any failed, 2 for usage errors or an unusable model.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2

from device.annotate import annotate
from device.atomic import atomic_write_bytes
from device.contract import DEFAULT_MODEL, POLARITIES
from device.errors import ConfigError, ImageError, ModelError, OutputError
from device.images import load_image
from device.reader import Reader, ReaderConfig
from device.reading import Box, Reading

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FILE_FAILED = 1
EXIT_USAGE = 2
# Milliseconds are reported to this many decimals (the clock is not finer than ~1 µs anyway).
MS_DECIMALS = 2
CONFIDENCE_DECIMALS = 4


def _roi(text: str) -> Box:
    parts = text.split(",")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or min(values) < 0 or values[2] == 0 or values[3] == 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not x,y,w,h (four whole numbers, width and height above 0)"
        )
    return values


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number in (0, 1]")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m device.read",
        description="Read the handwritten numbers in image files with the LiteRT digit model.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="model (.tflite + .json)")
    p.add_argument("--roi", type=_roi, help="region of interest x,y,w,h in pixels")
    p.add_argument(
        "--threshold", type=_threshold, help="confidence each digit needs (default: the model's)"
    )
    p.add_argument("--polarity", choices=POLARITIES, default="auto", help="ink vs paper")
    p.add_argument(
        "--no-fine-look",
        dest="fine_look",
        action="store_false",
        help="do not read unsure frames again enlarged (faster, fewer confident readings)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--annotate", type=Path, metavar="OUTDIR", help="write annotated PNGs here")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    return p


def result_dict(path: str, reading: Reading) -> dict[str, Any]:
    """The --json object for one image."""
    return {
        "image": path,
        "reading": reading.text,
        "confident": reading.confident,
        "digits": [
            {
                "label": d.label,
                "confidence": round(d.confidence, CONFIDENCE_DECIMALS),
                "box": list(d.box),
            }
            for d in reading.digits
        ],
        "ms": round(reading.total_ms, MS_DECIMALS),
    }


def result_line(path: str, reading: Reading) -> str:
    """The plain-text line for one image."""
    text = reading.text or "-"
    verdict = "confident" if reading.confident else f"not confident: {reading.reason}"
    return f"{path}: {text} ({verdict})"


def write_png_atomically(path: Path, image: Any) -> None:
    """Encode to PNG and rename into place, so a reader never sees half a file."""
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise OutputError(f"cannot encode {path.name} as PNG")
    atomic_write_bytes(path, buf.tobytes())


def _annotated_path(outdir: Path, image: str, used: set[Path]) -> Path:
    stem = Path(image).stem
    candidate = outdir / f"{stem}.annotated.png"
    n = 1
    while candidate in used:  # two inputs with the same name from different folders
        n += 1
        candidate = outdir / f"{stem}-{n}.annotated.png"
    used.add(candidate)
    return candidate


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on usage errors, 0 for --help
        return int(e.code) if isinstance(e.code, int) else EXIT_USAGE
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.annotate is not None:
        try:
            args.annotate.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            print(f"error: cannot create {args.annotate} ({e.strerror})", file=sys.stderr)
            return EXIT_USAGE
    try:
        config = ReaderConfig(
            threshold=args.threshold,
            roi=args.roi,
            polarity=args.polarity,
            fine_look=args.fine_look,
        )
        reader = Reader.from_model(args.model, config)
    except (ModelError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    failed = 0
    used: set[Path] = set()
    with reader:
        for image in args.images:
            try:
                start = time.perf_counter()
                # Grey is all the reader needs (and decodes a JPEG in half the time); the
                # annotated copy is drawn on the grey photo.
                frame = load_image(image, grey=True)
                decode_ms = (time.perf_counter() - start) * 1000.0
                reading = reader.read(frame)
                reading.timings_ms["decode"] = decode_ms
                if args.annotate is not None:
                    out = annotate(frame, reading, args.roi)
                    write_png_atomically(_annotated_path(args.annotate, image, used), out)
            except (ImageError, OutputError, OSError) as e:
                failed += 1
                message = str(e) if isinstance(e, ImageError) else f"{image}: {e}"
                if args.json:
                    print(json.dumps({"image": image, "error": message}), flush=True)
                else:
                    print(f"error: {message}", file=sys.stderr)
                continue
            if args.json:
                print(json.dumps(result_dict(image, reading)), flush=True)
            else:
                print(result_line(image, reading), flush=True)
    return EXIT_FILE_FAILED if failed else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
