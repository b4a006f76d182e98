"""SHA-256 and BLAKE2b without OpenSSL: CPython's own built-in implementations.

``import hashlib`` loads OpenSSL's libcrypto through ``_hashlib`` even when only these two are
needed, and on this project's x86 VM that raised the daemon's peak resident memory by 3.4 MB
(80.0 -> 76.7 MB over the bench's 500 frames) with NumPy 2; NumPy 1.x (the Pi's venv, for
picamera2) imports hashlib itself, so there the saving is nil. The device hashes one 64 KB
model file at start and a strided sample of each frame, so the built-ins' speed does not
matter. Where an interpreter lacks them, ``hashlib`` is the fallback.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def _builtin(module_names: tuple[str, ...], attribute: str) -> Callable[..., Any]:
    for name in module_names:
        try:
            return getattr(importlib.import_module(name), attribute)
        except (ImportError, AttributeError):
            continue
    import hashlib

    return getattr(hashlib, attribute)


# CPython 3.12 merged _sha256 into _sha2.
sha256 = _builtin(("_sha2", "_sha256"), "sha256")
blake2b = _builtin(("_blake2",), "blake2b")
