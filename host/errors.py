"""Host-side errors; the root derives from the device root so one ``except`` catches both."""

from __future__ import annotations

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
