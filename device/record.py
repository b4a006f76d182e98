"""Record camera frames for tests and tuning: `python -m device.record --source ... --out DIR`.

Frames are saved as lossless PNGs ``frame_000000.png`` with a JSON sidecar
``frame_000000.json`` (capture time, source, size). Each file is written under a temporary
name and renamed when complete, and numbering continues after frames already in DIR, so a
folder can be filled in several sessions and replayed with ``RecordedSource``.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2

from device.atomic import atomic_write_bytes
from device.errors import ConfigError, OutputError, SourceEnded, SourceError
from device.sources import SOURCE_KINDS, STREAMS, open_source

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
FRAME_NAME = "frame_{:06d}"
_FRAME_RE = re.compile(r"frame_(\d{6,})\.png")
# PNG compression 1..9 only trades CPU for size (always lossless); 3 keeps a Pi Zero near
# camera rate at 640x480.
PNG_COMPRESSION = 3
MAX_COUNT = 1_000_000


def next_index(out: Path) -> int:
    """The first frame number not yet used in ``out``."""
    numbers = [int(m.group(1)) for p in out.iterdir() if (m := _FRAME_RE.fullmatch(p.name))]
    return max(numbers, default=-1) + 1


def save_frame(out: Path, index: int, frame: Any, source: str) -> Path:
    """Write frame ``index`` as PNG, then its sidecar; returns the PNG path."""
    ok, buf = cv2.imencode(".png", frame, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise OutputError(f"frame {index} cannot be encoded as PNG")
    name = FRAME_NAME.format(index)
    png = out / f"{name}.png"
    meta = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "source": source,
        "width": int(frame.shape[1]),
        "height": int(frame.shape[0]),
    }
    atomic_write_bytes(png, buf.tobytes())
    atomic_write_bytes(out / f"{name}.json", (json.dumps(meta) + "\n").encode("utf-8"))
    return png


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number 1..{MAX_COUNT}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m device.record",
        description="Save camera frames as lossless PNGs with JSON sidecars.",
    )
    p.add_argument("--source", choices=SOURCE_KINDS, required=True, help="frame source kind")
    p.add_argument(
        "--uri", default="", help="opencv: index, file or URL; recorded: folder or video file"
    )
    p.add_argument("--width", type=int, default=640, help="frame width (cameras)")
    p.add_argument("--height", type=int, default=480, help="frame height (cameras)")
    p.add_argument("--fps", type=float, default=None, help="capture rate (cameras) or pacing")
    p.add_argument("--stream", choices=STREAMS, default="main", help="picamera stream")
    p.add_argument("--out", type=Path, required=True, help="folder for the frames")
    p.add_argument("--count", type=_count, required=True, help="frames to save")
    p.add_argument("-v", "--verbose", action="store_true", help="log every frame")
    return p


def _source_options(args: argparse.Namespace) -> dict[str, Any]:
    if args.source == "picamera":
        options: dict[str, Any] = {
            "width": args.width,
            "height": args.height,
            "stream": args.stream,
        }
        if args.fps is not None:
            options["fps"] = args.fps
        return options
    if not args.uri:
        raise ConfigError(f"--uri is required for --source {args.source}")
    if args.source == "opencv":
        return {"uri": args.uri, "width": args.width, "height": args.height, "fps": args.fps}
    return {"path": args.uri, "fps": args.fps}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else EXIT_USAGE
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        first = next_index(args.out)
    except OSError as e:
        print(f"error: cannot use {args.out} as the output folder ({e.strerror})", file=sys.stderr)
        return EXIT_USAGE
    try:
        source = open_source(args.source, **_source_options(args))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except SourceError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    label = f"{args.source}:{args.uri}" if args.uri else args.source
    saved = 0
    with source:
        try:
            while saved < args.count:
                frame = source.read()
                path = save_frame(args.out, first + saved, frame, label)
                saved += 1
                logger.info("saved %s", path)
        except SourceEnded:
            print(f"the source ended after {saved} of {args.count} frames", file=sys.stderr)
        except (SourceError, OutputError, OSError) as e:
            print(f"error after {saved} frames: {e}", file=sys.stderr)
            return EXIT_FAILED
    print(f"saved {saved} frame(s) to {args.out}", file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
