"""Tesseract, the peer OCR the benchmark compares against, driven through its command line.

The CLI is what a script would use (Debian's ``tesseract-ocr`` package). Each call is one
process that loads the language model again, so ``startup_ms`` measures that fixed cost on a
blank image, letting the report show the per-frame time both as called and net of start-up.
Tesseract is limited to one OpenMP thread, as our reader is to one core.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass

import cv2
import numpy as np

# Page segmentation modes (tesseract --help-psm): 6 = a uniform block of text (several rows,
# as our multi-number frames have), 7 = a single text line.
PSM_BLOCK, PSM_LINE = 6, 7
WHITELIST = "0123456789"
# A frame that takes longer than this is a hung process, not a slow OCR.
TIMEOUT_S = 30.0


@dataclass(frozen=True)
class PeerResult:
    text: str
    ms: float


def tesseract_path() -> str | None:
    return shutil.which("tesseract")


def tesseract_version(path: str) -> str:
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=TIMEOUT_S)
    first = (out.stdout or out.stderr).splitlines()
    return first[0].strip() if first else "unknown"


class Tesseract:
    """Digits-only Tesseract via the CLI: image bytes on stdin, text on stdout."""

    def __init__(self, path: str, psm: int) -> None:
        self.path = path
        self.psm = psm
        self._env = {**os.environ, "OMP_THREAD_LIMIT": "1"}

    @property
    def args(self) -> list[str]:
        return [
            self.path,
            "stdin",
            "stdout",
            "--psm",
            str(self.psm),
            "-c",
            f"tessedit_char_whitelist={WHITELIST}",
        ]

    def read(self, image: bytes) -> PeerResult:
        start = time.perf_counter()
        out = subprocess.run(
            self.args, input=image, capture_output=True, timeout=TIMEOUT_S, env=self._env
        )
        ms = (time.perf_counter() - start) * 1000.0
        if out.returncode != 0:
            err = out.stderr.decode(errors="replace").strip().splitlines()
            raise RuntimeError(f"tesseract exited {out.returncode}: {err[-1] if err else ''}")
        text = out.stdout.decode(errors="replace")
        # The whitelist keeps letters out, but not stray punctuation from a form feed.
        return PeerResult(re.sub(r"[^0-9\s]", "", text), ms)

    def startup_ms(self, repeats: int = 3) -> float:
        """Median time for a blank 32x32 PNG: process start plus model load, no text to find."""
        ok, buf = cv2.imencode(".png", np.full((32, 32), 255, np.uint8))
        if not ok:
            raise RuntimeError("OpenCV could not encode a blank PNG")
        times = [self.read(buf.tobytes()).ms for _ in range(repeats)]
        return float(np.median(times))
