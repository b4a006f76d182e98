"""Write a file so that readers see either the old content or the new, never half of it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Files we write are read by other users (the Pi's service user reads models and frames);
# mkstemp alone would leave them 0600.
DEFAULT_MODE = 0o644


def atomic_write_bytes(
    path: Path, data: bytes, *, mode: int = DEFAULT_MODE, durable: bool = False
) -> None:
    """Write ``data`` to a temp file beside ``path`` and rename it over ``path``.

    ``durable`` fsyncs the file before the rename (use it for results that must survive a
    power cut); the temp file is removed if anything fails.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
