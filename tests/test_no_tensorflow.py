"""The device package must import without TensorFlow or Keras (the Pi never installs them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Installed first on sys.meta_path in a fresh interpreter: any import of tensorflow, keras or
# their submodules fails as if they were not installed.
BLOCKER = """
import importlib.abc, sys

BLOCKED = ("tensorflow", "keras", "tf_keras")

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked: the device must not need it")
        return None

sys.meta_path.insert(0, Blocker())
"""

IMPORT_ALL = """
import importlib, pkgutil, sys
import device

names = sorted(m.name for m in pkgutil.walk_packages(device.__path__, "device."))
for name in names:
    importlib.import_module(name)
leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
assert not leaked, leaked
print(len(names), " ".join(names))
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_blocker_really_blocks_tensorflow_and_keras() -> None:
    for module in ("tensorflow", "keras", "tensorflow.lite"):
        result = _run(f"import {module}")
        assert result.returncode != 0
        assert "is blocked" in result.stderr, result.stderr[-2000:]


def test_every_device_module_imports_without_tensorflow() -> None:
    result = _run(IMPORT_ALL)
    assert result.returncode == 0, result.stderr[-4000:]
    count, _, names = result.stdout.strip().partition(" ")
    found = set(names.split())
    # pkgutil discovered the package's modules, including new ones, not an empty list.
    expected = {f"device.{p.stem}" for p in (ROOT / "device").glob("*.py") if p.stem != "__init__"}
    assert expected <= found, sorted(expected - found)
    assert int(count) == len(found)


def test_the_litert_classifier_runs_without_tensorflow() -> None:
    code = """
import numpy as np
from device.classifier import LiteRTClassifier
with LiteRTClassifier() as c:
    labels, conf = c.classify(np.zeros((3, 28, 28), np.float32))
assert labels.shape == (3,)
assert not [m for m in sys.modules if m.split(".")[0] in BLOCKED]
print("ok")
"""
    result = _run(code)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-4000:]
