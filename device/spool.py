"""A bounded on-disk FIFO queue that survives restarts: accepted readings wait here until the
MQTT broker has acknowledged them.

One file per item, named by a zero-padded sequence number, so the order is the file-name order
and a restart only needs a directory listing. Each item is written to a temporary name, fsynced
and renamed (then the directory is fsynced), so a power cut leaves either the whole item or
nothing; leftover temporary files are deleted on open.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import deque
from pathlib import Path

from device.errors import OutputError
from device.lifecycle import Closeable

logger = logging.getLogger(__name__)

SUFFIX = ".msg"
TMP_SUFFIX = ".tmp"
# 20 digits hold any 64-bit sequence number, so lexical order equals numeric order.
_SEQ_DIGITS = 20


class Spool(Closeable):
    """Items (bytes) kept in ``directory`` in append order, at most ``max_items`` of them.

    When full, ``append`` drops the oldest item with a warning: for a meter, the newest
    readings matter more than the oldest. Thread-safe.
    """

    def __init__(self, directory: str | os.PathLike[str], max_items: int) -> None:
        if max_items < 1:
            raise OutputError(f"queue size must be at least 1 (got {max_items}); raise queue_max")
        self.directory = Path(directory)
        self.max_items = max_items
        self._lock = threading.Lock()
        self._closed = False
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            names = sorted(os.listdir(self.directory))
        except OSError as e:
            raise OutputError(
                f"cannot use queue directory {self.directory} ({e.strerror}); create it writable "
                "for the daemon's user or set queue_dir to another path"
            ) from e
        self._seqs: deque[int] = deque()
        for name in names:
            path = self.directory / name
            if name.endswith(TMP_SUFFIX):
                # Written but never renamed: the process died mid-append, so it was never queued.
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            stem = name.removesuffix(SUFFIX)
            if name.endswith(SUFFIX) and stem.isdigit():
                self._seqs.append(int(stem))
            else:
                logger.warning("ignoring unexpected file %s in queue directory", path)
        self._next = self._seqs[-1] + 1 if self._seqs else 0
        if self._seqs:
            logger.info("queue %s holds %d item(s) from before", self.directory, len(self._seqs))
        while len(self._seqs) > self.max_items:
            self._drop_oldest()

    def _path(self, seq: int) -> Path:
        return self.directory / f"{seq:0{_SEQ_DIGITS}d}{SUFFIX}"

    def _drop_oldest(self) -> None:
        seq = self._seqs.popleft()
        logger.warning(
            "queue %s is full (%d items); dropped the oldest item #%d",
            self.directory,
            self.max_items,
            seq,
        )
        with contextlib.suppress(FileNotFoundError):
            self._path(seq).unlink()

    def append(self, data: bytes) -> int:
        """Store ``data`` durably (fsynced) and return its sequence number."""
        with self._lock:
            if self._closed:
                raise OutputError("the queue is closed")
            seq = self._next
            path = self._path(seq)
            tmp = path.with_suffix(TMP_SUFFIX)
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    os.write(fd, data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, path)
                self._fsync_dir()
            except OSError as e:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise OutputError(
                    f"cannot write to queue directory {self.directory} ({e.strerror}); "
                    "free some space or fix its permissions"
                ) from e
            self._next = seq + 1
            self._seqs.append(seq)
            while len(self._seqs) > self.max_items:
                self._drop_oldest()
            return seq

    def _fsync_dir(self) -> None:
        # The rename is only durable once the directory entry itself is on disk.
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def seqs(self) -> list[int]:
        """Sequence numbers of the queued items, oldest first."""
        with self._lock:
            return list(self._seqs)

    def read(self, seq: int) -> bytes | None:
        """The data of item ``seq``, or None if it is no longer queued."""
        try:
            return self._path(seq).read_bytes()
        except FileNotFoundError:
            return None

    def items(self) -> list[tuple[int, bytes]]:
        """All queued items, oldest first, as (sequence number, data)."""
        out: list[tuple[int, bytes]] = []
        for seq in self.seqs():
            data = self.read(seq)
            if data is not None:  # None: removed (acknowledged or dropped) since we listed it
                out.append((seq, data))
        return out

    def remove(self, seq: int) -> bool:
        """Delete item ``seq`` (it was delivered); False if it was not queued."""
        with self._lock:
            try:
                self._seqs.remove(seq)
            except ValueError:
                return False
            with contextlib.suppress(FileNotFoundError):
                self._path(seq).unlink()
            return True

    def __contains__(self, seq: object) -> bool:
        with self._lock:
            return seq in self._seqs

    def __len__(self) -> int:
        with self._lock:
            return len(self._seqs)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop accepting items; what is queued stays on disk for the next start."""
        with self._lock:
            self._closed = True
