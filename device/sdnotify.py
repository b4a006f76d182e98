"""systemd notifications (READY, WATCHDOG, STATUS, STOPPING) over $NOTIFY_SOCKET, no dependencies.

Outside systemd ``$NOTIFY_SOCKET`` is unset and every call is a no-op. The environment is read
when the ``Notifier`` is made (in ``main()``), never at import.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

from device.lifecycle import Closeable

logger = logging.getLogger(__name__)

MICROSECONDS = 1_000_000


class Notifier(Closeable):
    """Sends sd_notify datagrams to the socket systemd named in ``$NOTIFY_SOCKET``."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET", "")
        # An abstract socket is written '@name'; its kernel address starts with a NUL byte.
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._watchdog_s = _watchdog_seconds(env)
        self._sock: socket.socket | None = None
        self._failed = False

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings: half of ``$WATCHDOG_USEC``; None without one."""
        return self._watchdog_s / 2 if self._watchdog_s else None

    def ready(self) -> None:
        self.notify("READY=1")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def status(self, text: str) -> None:
        # STATUS is one line; a newline would start a new (bogus) assignment.
        self.notify("STATUS=" + " ".join(text.splitlines()))

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def notify(self, message: str) -> bool:
        """Send one message; False (logged once) when it could not be sent."""
        if not self._address:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message.encode("utf-8"), self._address)
        except OSError as e:
            if not self._failed:
                logger.warning("cannot notify systemd at %s: %s", self._address, e)
            self._failed = True
            return False
        self._failed = False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _watchdog_seconds(env: Mapping[str, str]) -> float | None:
    """``$WATCHDOG_USEC`` in seconds, if it is meant for this process (``$WATCHDOG_PID``)."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec:
        return None
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        logger.warning("ignoring WATCHDOG_USEC=%r: not a whole number", usec)
        return None
    return value / MICROSECONDS if value > 0 else None
