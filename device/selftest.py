"""Health check of an installed release: ``python -m device.selftest [--config FILE] [--camera]``.

Loads the model and checks its manifest, reads the bundled test image (``selftest.png`` beside
this module) and compares the reading with the text it shows, and with ``--camera`` opens the
configured camera and reads one frame. One line per check (PASS / FAIL / SKIP name: detail);
exit status 0 when every check passed, 1 otherwise. The deploy script runs it inside a new
release before switching to it, so a broken model or missing dependency never goes live.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from device.config import Config, default_config, load_config
from device.errors import DigitReaderError

logger = logging.getLogger(__name__)

SELFTEST_IMAGE = Path(__file__).resolve().with_name("selftest.png")
# What selftest.png shows: MNIST test images #11, #4, #3, #7 (6 4 0 9) as dark ink on grey
# paper, scaled x4, one row; digits the segmenter and model read with a wide margin.
SELFTEST_TEXT = "6409"

EXIT_OK = 0
EXIT_FAILED = 1


@dataclass
class Check:
    """The outcome of one check: status is PASS, FAIL or SKIP."""

    name: str
    status: str
    detail: str

    def line(self) -> str:
        return f"{self.status} {self.name}: {self.detail}"


class SelfTest:
    """Runs the checks in order; later checks are skipped when what they need has failed."""

    def __init__(
        self,
        config: Config,
        image: Path = SELFTEST_IMAGE,
        expected: str = SELFTEST_TEXT,
        report: Callable[[Check], None] | None = None,
    ) -> None:
        self.config = config
        self.image = image
        self.expected = expected
        self.checks: list[Check] = []
        # Called as each check ends, so a hanging camera still shows the checks before it.
        self._report = report
        self._reader: Any = None

    @property
    def passed(self) -> bool:
        return all(c.status != "FAIL" for c in self.checks)

    def _record(self, check: Check) -> bool:
        self.checks.append(check)
        if self._report is not None:
            self._report(check)
        return check.status == "PASS"

    def _run(self, name: str, needs: bool, why_skipped: str, body: Callable[[], str]) -> bool:
        if not needs:
            return self._record(Check(name, "SKIP", why_skipped))
        try:
            detail = body()
        except (DigitReaderError, OSError, ImportError, ValueError, RuntimeError) as e:
            # The health check reports every failure as one line; it must not stop at the first.
            return self._record(Check(name, "FAIL", str(e) or type(e).__name__))
        return self._record(Check(name, "PASS", detail))

    def run(self, camera: bool = False) -> list[Check]:
        try:
            manifest_ok = self._run("manifest", True, "", self.check_manifest)
            model_ok = self._run("model", manifest_ok, "needs a valid manifest", self.load_model)
            self._run("reading", model_ok, "needs the model", self.check_reading)
            if camera:
                self._run("camera", True, "", self.check_camera)
        finally:
            self.close()
        return self.checks

    def check_manifest(self) -> str:
        from device.contract import load_contract, manifest_path_for

        model = self.config.model_path
        contract = load_contract(model)
        shape = "x".join(str(s) for s in contract.input.shape)
        accuracy = contract.extra.get("accuracy")
        if isinstance(accuracy, dict):  # {"keras_float": .., "litert_int8": .., "dataset": ..}
            accuracy = accuracy.get("litert_int8")
        acc = f", int8 accuracy {accuracy}" if accuracy is not None else ""
        return (
            f"{manifest_path_for(model).name} matches {model.name} "
            f"(sha256 {contract.sha256[:12]}), input {shape} {contract.input.dtype}, "
            f"{len(contract.labels)} labels{acc}"
        )

    def load_model(self) -> str:
        from device.reader import Reader, ReaderConfig

        # Default reading rules, not the configured ones: a region of interest or a pattern
        # tuned for the real camera says nothing about the bundled image.
        reader_config = ReaderConfig(num_threads=self.config.reader.num_threads)
        start = time.perf_counter()
        self._reader = Reader.from_model(self.config.model_path, reader_config)
        return f"{self.config.model_path} loaded in {(time.perf_counter() - start) * 1000:.0f} ms"

    def check_reading(self) -> str:
        from device.images import load_image

        frame = load_image(self.image)
        reading = self._reader.read(frame)
        # The digits decide, not how they are grouped into numbers: grouping is the segmenter's
        # tuning (tested there), while this check guards the model and the pipeline end to end.
        if "".join(reading.text.split()) != self.expected:
            raise ValueError(
                f"{self.image.name} reads {reading.text!r}, expected {self.expected!r}; "
                "the model or the reader is broken (redeploy, or run `make test` on the host)"
            )
        sure = "confident" if reading.confident else f"not confident: {reading.reason}"
        return (
            f"{self.image.name} reads {reading.text!r} ({sure}, lowest confidence "
            f"{reading.min_confidence:.3f}) in {reading.total_ms:.1f} ms"
        )

    def check_camera(self) -> str:
        from device.daemon import source_factory

        start = time.perf_counter()
        source = source_factory(self.config)()
        try:
            frame = source.read()
        finally:
            source.close()
        height, width = frame.shape[:2]
        return (
            f"{self.config.source.kind} delivered a {width}x{height} frame in "
            f"{(time.perf_counter() - start) * 1000:.0f} ms"
        )

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m device.selftest",
        description="Check that this installation can load its model and read digits.",
    )
    parser.add_argument("--config", type=Path, help="TOML config file (default: built-in defaults)")
    parser.add_argument(
        "--camera", action="store_true", help="also open the configured camera and read a frame"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        config = load_config(args.config) if args.config else default_config()
    except DigitReaderError as e:
        print(Check("config", "FAIL", str(e)).line(), file=out)
        return EXIT_FAILED
    print(Check("config", "PASS", str(args.config or "built-in defaults")).line(), file=out)
    test = SelfTest(config, report=lambda check: print(check.line(), file=out, flush=True))
    test.run(camera=args.camera)
    return EXIT_OK if test.passed else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
