"""Host-side errors; the root derives from the device root so one ``except`` catches both."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from device.errors import DigitReaderError


class HostError(DigitReaderError):
    """Root of host-side errors."""


class DataError(HostError, ValueError):
    """A dataset file is missing, truncated, corrupt or has the wrong checksum."""


class DownloadError(HostError, OSError):
    """No source could provide the dataset."""


class TrainingError(HostError, ValueError):
    """Bad training arguments or an unusable model file."""


class OutputPathError(HostError, OSError):
    """An output directory cannot be written."""


class ScoreError(HostError, ValueError):
    """A folder of rendered frames cannot be scored (no truth.json, or an image missing)."""


def run_command(action: Callable[[], object]) -> int:
    """Run a host command's body and return its exit status: the body's own when it returns an
    int, else 0; a HostError becomes one line on stderr and status 2."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = action()
    except HostError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else 0
