"""Footprint of the device process vs a TensorFlow process: memory, start-up time, disk.

Each probe is a fresh Python subprocess (so nothing the benchmark already imported is counted)
that reports its own import / load / first-inference times and its peak resident memory
(VmHWM from /proc/self/status). Installed sizes are summed from the wheel RECORDs of each
side's dependency closure in the running environment.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 180.0
# What the Pi installs (pyproject: dependencies + the "device" extra) vs the TensorFlow stack
# the tutorial runs on.
DEVICE_ROOTS = ("ai-edge-litert", "numpy", "opencv-python-headless", "gpiozero", "paho-mqtt")
TF_ROOTS = ("tensorflow", "keras")

_PEAK = r"""
def _peak_mb():
    import re
    text = open("/proc/self/status", encoding="ascii").read()
    return int(re.search(r"VmHWM:\s+(\d+) kB", text).group(1)) / 1024.0
"""

DEVICE_PROBE = (
    _PEAK
    + r"""
import json, sys, time
t0 = time.perf_counter()
from device.images import load_image
from device.reader import Reader
t1 = time.perf_counter()
reader = Reader.from_model(sys.argv[1])
t2 = time.perf_counter()
reading = reader.read(load_image(sys.argv[2]))
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_s": t3 - t2,
                  "peak_mb": _peak_mb(), "tensorflow_loaded": "tensorflow" in sys.modules,
                  "text": reading.text}))
"""
)

TF_PROBE = (
    _PEAK
    + r"""
import json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
t0 = time.perf_counter()
import numpy as np
import tensorflow as tf
import keras
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
t1 = time.perf_counter()
model = keras.models.load_model(sys.argv[1])
t2 = time.perf_counter()
model.predict(np.zeros((1, 28, 28, 1), np.float32), verbose=0)
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_s": t3 - t2,
                  "peak_mb": _peak_mb(), "tensorflow_loaded": True, "text": ""}))
"""
)


@dataclass(frozen=True)
class ProbeResult:
    wall_s: float  # process start to exit, as a service start would see it
    import_s: float
    load_s: float
    first_s: float
    peak_mb: float
    tensorflow_loaded: bool


def run_probe(script: str, args: list[str], cwd: Path) -> ProbeResult:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(cwd)}
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT_S,
        cwd=cwd,
        env=env,
    )
    wall = time.perf_counter() - start
    if out.returncode != 0:
        tail = out.stderr.strip().splitlines()[-3:]
        raise RuntimeError(f"probe exited {out.returncode}: {' | '.join(tail)}")
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return ProbeResult(
        wall,
        data["import_s"],
        data["load_s"],
        data["first_s"],
        data["peak_mb"],
        bool(data["tensorflow_loaded"]),
    )


# --- installed size ---------------------------------------------------------------------------


def _dist(name: str) -> metadata.Distribution | None:
    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None


def closure(roots: tuple[str, ...]) -> dict[str, metadata.Distribution]:
    """Installed distributions needed by ``roots`` (requirements followed, extras skipped)."""
    seen: dict[str, metadata.Distribution] = {}
    todo = list(roots)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        dist = _dist(name)
        if dist is None:
            continue
        seen[name] = dist
        for line in dist.requires or []:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            # A marker that needs an extra belongs to an optional feature, not the package.
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            todo.append(req.name)
    return seen


def installed_bytes(dist: metadata.Distribution) -> int:
    total = 0
    for f in dist.files or []:
        try:
            total += Path(str(dist.locate_file(f))).stat().st_size
        except OSError:
            continue
    return total


@dataclass(frozen=True)
class InstalledSize:
    label: str
    packages: dict[str, int]  # name -> bytes

    @property
    def total(self) -> int:
        return sum(self.packages.values())


def installed_sizes() -> tuple[InstalledSize, InstalledSize]:
    """(device closure, TensorFlow closure) in this environment."""
    device = {n: installed_bytes(d) for n, d in closure(DEVICE_ROOTS).items()}
    tf = {n: installed_bytes(d) for n, d in closure(TF_ROOTS).items()}
    return InstalledSize("device", device), InstalledSize("tensorflow", tf)


# --- the daemon over recorded frames ----------------------------------------------------------

_STOPPED = re.compile(
    r"stopped: (\d+) frames in ([\d.]+) s \(([\d.]+) fps\).*peak rss ([\d.]+) MB"
    r"(?:, anonymous ([\d.]+) MB at stop)?"
)


def daemon_config(frames_dir: Path, model: Path) -> str:
    return f"""# written by host.bench: the daemon over fresh recorded frames, no LEDs, no outputs
[source]
kind = "recorded"
path = "{frames_dir}"
repeat = 1
fps = 0
grey = true

[reader]
model = "{model}"

[leds]
enabled = false

[output]
stdout = false

[daemon]
log_level = "INFO"
log_interval_s = 3600.0
"""


def run_daemon(config: Path, max_frames: int, cwd: Path) -> dict[str, Any]:
    """Run ``python -m device.daemon`` to the end of the frames; its own summary line."""
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    start = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "device.daemon",
            "--config",
            str(config),
            "--max-frames",
            str(max_frames),
        ],
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT_S,
        cwd=cwd,
        env=env,
    )
    wall = time.perf_counter() - start
    m = _STOPPED.search(out.stderr)
    if out.returncode != 0 or m is None:
        tail = out.stderr.strip().splitlines()[-3:]
        raise RuntimeError(f"daemon exited {out.returncode}: {' | '.join(tail)}")
    return {
        "frames": int(m.group(1)),
        "loop_s": float(m.group(2)),
        "fps": float(m.group(3)),
        "peak_mb": float(m.group(4)),
        "anon_mb": float(m.group(5)) if m.group(5) else None,
        "wall_s": wall,
    }
