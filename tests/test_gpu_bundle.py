"""host/gpu: the offline GPU training bundle refuses what it cannot work with, in one sentence.

(Building a bundle needs PyPI and training needs a GPU machine: both were run by hand, see
the README's "Training on an offline GPU machine".)"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _run(script: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / "host" / "gpu" / script), *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_bundle_refuses_without_mnist_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    done = _run("bundle.sh", str(out), env={"MNIST_SOURCE": str(tmp_path / "no-mnist")})
    assert done.returncode == 1
    assert "no-mnist/train-images-idx3-ubyte is missing: run `make data` first" in done.stderr
    assert not out.exists()


def test_bundle_refuses_without_the_venv(tmp_path: Path) -> None:
    done = _run("bundle.sh", str(tmp_path / "b"), env={"PYTHON": str(tmp_path / "python")})
    assert done.returncode == 1 and "run `make setup` first" in done.stderr


def test_train_refuses_a_missing_bundle_naming_how_to_make_it(tmp_path: Path) -> None:
    done = _run("train.sh", "--epochs", "1", env={"BUNDLE": str(tmp_path / "none")})
    assert done.returncode == 1
    assert f"no bundle in {tmp_path / 'none'}: run host/gpu/bundle.sh" in done.stderr
