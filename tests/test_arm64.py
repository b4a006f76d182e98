"""make test-arm64 through pytest: the device suite and a reading of the recorded frames in a
Debian Bookworm arm64 rootfs under qemu-user (host/arm64/run.sh). Minutes on a first run, so it
only runs when asked: DIGIT_READER_ARM64=1 pytest -m arm64 tests/test_arm64.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "host" / "arm64" / "run.sh"
TIMEOUT_S = 3600  # a first run builds the rootfs and installs wheels under emulation

pytestmark = [
    pytest.mark.arm64,
    pytest.mark.skipif(
        os.environ.get("DIGIT_READER_ARM64") != "1",
        reason="builds an arm64 rootfs under qemu (minutes): set DIGIT_READER_ARM64=1 to run",
    ),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for chroot and mount"),
    pytest.mark.skipif(
        shutil.which("debootstrap") is None or shutil.which("qemu-aarch64-static") is None,
        reason="needs Debian packages debootstrap, qemu-user-static and binfmt-support",
    ),
]


def test_device_suite_and_recorded_frames_pass_on_arm64() -> None:
    result = subprocess.run(
        [str(SCRIPT)], capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "test-arm64: OK" in out
    assert re.search(r"^aarch64$", out, re.MULTILINE), out  # uname -m inside the rootfs
    assert re.search(r"^aarch64 reading: \d+/\d+ frames exact", out, re.MULTILINE), out
    # Confident readings agree with this machine's (read_frames.py --reference).
    assert re.search(r"readings differ from \S+, 0 of them confident", out), out
