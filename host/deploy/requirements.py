"""Print the device's pip requirements, read from pyproject.toml so the Pi gets the same bounds.

The device needs the core ``dependencies`` plus the ``device`` extra, never the host extra
(TensorFlow); ``PI_CAPS`` narrows a bound where the Pi's apt packages demand it. ``--with NAME``
adds one named requirement from another extra (the arm64 test rootfs adds ``pytest`` from
``test``). Used by host/deploy/deploy.sh and host/arm64/run.sh.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
DEVICE_EXTRAS = ("device",)
# Extra upper bounds on the Pi. The venv sees Raspberry Pi OS's python3-picamera2 (system site
# packages), whose python3-simplejpeg is compiled against Debian's NumPy 1.24: it fails to import
# under NumPy 2 ("numpy.dtype size changed"). NumPy 1.x is forward compatible, so cap it below 2
# (pip then picks an opencv-python-headless that still supports NumPy 1.x).
PI_CAPS = {"numpy": "<2"}


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    return match.group(0).lower() if match else ""


def device_requirements(pyproject: Path, extra_names: list[str]) -> list[str]:
    """Core + device requirements, plus the named ones found in any other extra, sorted."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    extras: dict[str, list[str]] = project.get("optional-dependencies", {})
    wanted = list(project.get("dependencies", []))
    for extra in DEVICE_EXTRAS:
        wanted += extras.get(extra, [])
    for name in extra_names:
        found = [r for reqs in extras.values() for r in reqs if _name(r) == name.lower()]
        if not found:
            raise SystemExit(f"{pyproject}: no requirement named {name!r} in any extra; fix --with")
        wanted.append(found[0])
    capped = [
        f"{r.strip()},{PI_CAPS[_name(r)]}" if _name(r) in PI_CAPS else r.strip() for r in wanted
    ]
    return sorted(set(capped), key=_name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyproject", type=Path, default=PYPROJECT)
    parser.add_argument("--with", dest="extra_names", action="append", default=[], metavar="NAME")
    args = parser.parse_args(argv)
    try:
        lines = device_requirements(args.pyproject, args.extra_names)
    except (OSError, KeyError, tomllib.TOMLDecodeError) as e:
        print(f"cannot read the device requirements from {args.pyproject}: {e}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
