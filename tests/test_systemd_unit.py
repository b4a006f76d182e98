"""systemd/digit-reader.service: verify prints nothing, the exposure score stays low, and the
settings the daemon depends on (notify, watchdog, devices, writable cwd) are there."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "systemd" / "digit-reader.service"
UNIT_PI_DIR = "/opt/digit-reader"  # the path in the unit; deploy.sh substitutes PI_DIR
MAX_EXPOSURE = 1.5

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="needs systemd-analyze (Debian package systemd)",
)


def installed_copy(unit_text: str, tmp_path: Path) -> Path:
    """The unit as deploy.sh installs it, with PI_DIR in a temp dir holding venv/bin/python.

    verify checks that ExecStart= exists and is executable, so it needs a real interpreter there.
    """
    pi_dir = tmp_path / "pi"
    (pi_dir / "current" / "venv" / "bin").mkdir(parents=True)
    (pi_dir / "venv").symlink_to("current/venv")
    (pi_dir / "current" / "venv" / "bin" / "python").symlink_to(shutil.which("python3") or "")
    unit = tmp_path / "digit-reader.service"
    unit.write_text(unit_text.replace(UNIT_PI_DIR, str(pi_dir)))
    return unit


def verify(unit: Path) -> str:
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    return (result.stdout + result.stderr).strip()


def service_settings() -> dict[str, list[str]]:
    """Section.Key -> every value given (repeated keys such as DeviceAllow= add up)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings.setdefault(f"{section}.{key}", []).append(value)
    return settings


@needs_analyze
def test_verify_prints_nothing(tmp_path: Path) -> None:
    assert verify(installed_copy(UNIT.read_text(), tmp_path)) == ""


@needs_analyze
def test_verify_would_report_a_misspelt_key(tmp_path: Path) -> None:
    # Proves the check above can fail: verify exits 0 here, but it does print a warning.
    broken = UNIT.read_text().replace("NoNewPrivileges=", "NoNewPrivilege=")
    assert "NoNewPrivilege" in verify(installed_copy(broken, tmp_path))


@needs_analyze
def test_security_exposure_is_at_most_1_5() -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


def test_unit_has_what_the_daemon_and_the_hardware_need() -> None:
    s = service_settings()
    assert s["Service.Type"] == ["notify"]
    assert s["Service.Restart"] == ["on-failure"]
    assert int(s["Service.WatchdogSec"][0]) > 0
    assert "Unit.StartLimitIntervalSec" in s and "Unit.StartLimitBurst" in s
    assert s["Service.User"] == ["digit-reader"]
    assert set(s["Service.SupplementaryGroups"][0].split()) == {"video", "gpio"}
    allowed = {v.split()[0]: v.split()[1] for v in s["Service.DeviceAllow"]}
    assert allowed == {
        "char-video4linux": "rw",
        "char-media": "rw",
        "char-dma_heap": "rw",
        "char-gpiochip": "rw",
    }
    assert s["Service.DevicePolicy"] == ["closed"]
    assert "Service.PrivateDevices" not in s  # the camera and GPIO are devices
    assert "Service.ProcSubset" not in s  # LiteRT reads /proc/cpuinfo
    assert set(s["Service.RestrictAddressFamilies"][0].split()) == {
        "AF_UNIX",
        "AF_NETLINK",
        "AF_INET",
        "AF_INET6",
    }
    assert s["Service.CapabilityBoundingSet"] == [""]
    assert s["Service.ProtectSystem"] == ["strict"]
    assert "@system-service" in s["Service.SystemCallFilter"]
    assert "Service.MemoryMax" in s
    # lgpio makes pipes in the working directory: it must be the writable state directory.
    assert s["Service.WorkingDirectory"] == ["/var/lib/digit-reader"]
    assert s["Service.StateDirectory"] == ["digit-reader"]
    assert s["Service.ExecStart"][0].startswith(f"{UNIT_PI_DIR}/venv/bin/python -m device.daemon")
