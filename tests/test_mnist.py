"""MNIST data: IDX parsing, checksum refusal, and never replacing a good copy with a bad one."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from host import mnist
from host.errors import DataError, DownloadError


def _idx(arr: np.ndarray) -> bytes:
    return mnist._to_idx(arr)


def test_parse_idx_reads_images_and_labels():
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([7, 1], dtype=np.uint8)
    assert np.array_equal(mnist.parse_idx(_idx(images)), images)
    assert np.array_equal(mnist.parse_idx(_idx(labels)), labels)


def test_parse_idx_refuses_truncated_file():
    data = _idx(np.zeros((5, 28, 28), dtype=np.uint8))
    with pytest.raises(DataError, match="truncated"):
        mnist.parse_idx(data[:-10], "train-images")


def test_parse_idx_refuses_wrong_magic():
    data = bytearray(_idx(np.zeros((2, 2), dtype=np.uint8)))
    data[0] = 0x1F
    with pytest.raises(DataError, match="bad magic"):
        mnist.parse_idx(bytes(data))


def test_parse_idx_refuses_counts_that_disagree_with_the_body():
    data = bytearray(_idx(np.zeros((3, 2), dtype=np.uint8)))
    data[4:8] = (4).to_bytes(4, "big")  # header claims 4 items, body holds 3
    with pytest.raises(DataError, match="header says"):
        mnist.parse_idx(bytes(data))


def test_parse_idx_refuses_unknown_type_code():
    data = bytearray(_idx(np.zeros((2,), dtype=np.uint8)))
    data[2] = 0x42
    with pytest.raises(DataError, match="unknown IDX type"):
        mnist.parse_idx(bytes(data))


def test_verify_file_names_file_and_expected_hash(tmp_path: Path):
    bad = tmp_path / "train-labels-idx1-ubyte"
    bad.write_bytes(b"not mnist")
    expected = mnist.FILES["train-labels-idx1-ubyte"]
    with pytest.raises(DataError) as err:
        mnist.verify_file(bad, expected)
    assert str(bad) in str(err.value) and expected in str(err.value)


def test_verify_file_accepts_gzip_of_the_right_bytes(tmp_path: Path):
    payload = b"hello idx"
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(payload))
    assert mnist.verify_file(path, mnist.sha256_bytes(payload)) == payload


def test_local_dir_with_corrupt_file_never_replaces_good_copy(tmp_path: Path, monkeypatch):
    """A corrupt file from MNIST_DIR is refused and the verified copy stays byte-identical."""
    good = mnist.DATA_DIR
    dest = tmp_path / "mnist"
    dest.mkdir()
    for name in mnist.FILES:
        (dest / name).write_bytes((good / name).read_bytes())
    # Corrupt one file in dest so ensure_mnist must look for sources; all of them fail here.
    (dest / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01" + b"\x00" * 10)
    before = (dest / "train-images-idx3-ubyte").read_bytes()
    src = tmp_path / "src"
    src.mkdir()
    for name in mnist.FILES:
        (src / name).write_bytes(b"garbage")
    monkeypatch.setattr(
        mnist, "_from_keras_mirror", lambda d: (_ for _ in ()).throw(OSError("offline"))
    )
    monkeypatch.setattr(
        mnist, "_from_npm", lambda d: (_ for _ in ()).throw(DownloadError("no npm"))
    )
    with pytest.raises(DownloadError, match="MNIST_DIR"):
        mnist.ensure_mnist(dest, local_dir=str(src))
    assert (dest / "train-images-idx3-ubyte").read_bytes() == before
    assert not list(dest.glob("*.part"))


def test_local_dir_source_installs_verified_files(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(mnist, "_from_keras_mirror", lambda d: (_ for _ in ()).throw(OSError("x")))
    dest = tmp_path / "mnist"
    assert mnist.ensure_mnist(dest, local_dir=str(mnist.DATA_DIR)) == dest
    for name, digest in mnist.FILES.items():
        assert mnist.sha256_bytes((dest / name).read_bytes()) == digest


def test_load_mnist_shapes():
    data = mnist.load_mnist()
    assert data.x_train.shape == (60000, 28, 28) and data.x_test.shape == (10000, 28, 28)
    assert data.y_train.max() == 9 and data.y_test.dtype == np.uint8
