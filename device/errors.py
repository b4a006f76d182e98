"""The one exceptions module of the device package: all our errors derive from DigitReaderError.

Leaves also subclass the matching builtin, so callers that only know ``ValueError`` or
``OSError`` still catch them (the gpiozero ``exc.py`` pattern).
"""

from __future__ import annotations


class DigitReaderError(Exception):
    """Root of all Digit Reader errors."""


class ModelError(DigitReaderError):
    """The model or its contract cannot be used."""


class ModelMissingError(ModelError, FileNotFoundError):
    """The model file or its manifest does not exist."""


class ModelMismatchError(ModelError, ValueError):
    """The model file does not match its manifest (sha256, tensor spec)."""


class ContractError(ModelError, ValueError):
    """The manifest (models/digits.json) is malformed or of an unknown format version."""


class ImageError(DigitReaderError, ValueError):
    """An image cannot be read or is unsuitable (not an image, empty, too large, odd format)."""


class SourceError(DigitReaderError, OSError):
    """A frame source cannot be opened or stopped delivering frames."""


class SourceEnded(DigitReaderError):
    """A finite frame source (recorded frames, a video file) has no more frames."""


class ConfigError(DigitReaderError, ValueError):
    """The configuration is invalid; the message names the key."""


class PinError(DigitReaderError, RuntimeError):
    """GPIO pins cannot be used on this machine."""


class OutputError(DigitReaderError, OSError):
    """An output (file, MQTT, web) cannot be written or started."""
