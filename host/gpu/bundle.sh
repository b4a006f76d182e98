#!/usr/bin/env bash
# Gather what an offline GPU machine lacks to run host.train: Keras (and its two packages that
# such images rarely hold) as wheels for that machine's Python, and MNIST as gzipped IDX files.
# The machine is assumed to have JAX (or PyTorch), NumPy, OpenCV, h5py, absl-py and rich, as
# CUDA images with JAX do. Usage (from the repository root, after `make data`):
#   host/gpu/bundle.sh [OUT_DIR] [PYTHON_VERSION]      (defaults: build/gpu 3.12)
set -euo pipefail

out=${1:-build/gpu}
pyver=${2:-3.12}
venv_python=${PYTHON:-.venv/bin/python}
mnist=${MNIST_SOURCE:-data/mnist}

die() { echo "gpu bundle: $*" >&2; exit 1; }

[[ -x $venv_python ]] || die "no $venv_python: run \`make setup\` first (or set PYTHON=)"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    [[ -f $mnist/$f ]] || die "$mnist/$f is missing: run \`make data\` first"
done

# The versions this checkout trains and converts with, so the .keras file loads back here.
mapfile -t pins < <("$venv_python" - <<'PY'
from importlib.metadata import version
for name in ("keras", "optree", "namex"):
    print(f"{name}=={version(name)}")
PY
)

mkdir -p "$(dirname "$out")"
tmp=$(mktemp -d "${out%/}.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/wheels" "$tmp/mnist"
"$venv_python" -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version "$pyver" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d "$tmp/wheels" "${pins[@]}" \
    || die "pip could not fetch ${pins[*]} for Python $pyver (is PyPI reachable?)"
for f in "$mnist"/*-ubyte; do
    gzip -c "$f" > "$tmp/mnist/$(basename "$f").gz"
done
cp host/gpu/train.sh "$tmp/"
rm -rf "$out"
chmod 755 "$tmp"
mv "$tmp" "$out"
trap - EXIT
echo "wrote $out ($(du -sh "$out" | cut -f1)): ${pins[*]} for Python $pyver, MNIST, train.sh"
