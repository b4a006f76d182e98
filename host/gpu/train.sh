#!/usr/bin/env bash
# Run host.train on an offline GPU machine from a bundle made by host/gpu/bundle.sh.
# From the repository root there:   BUNDLE=build/gpu host/gpu/train.sh [host.train options]
# e.g. the shipped recipe:  host/gpu/train.sh --camera-frames 20000 --epochs 40 --mnist-repeat 2 --out /tmp/digits.keras
# Bring back the .keras file and the .train.json beside it; `python -m host.convert --keras FILE`
# on the laptop makes the int8 model.
set -euo pipefail

bundle=${BUNDLE:-build/gpu}
site=${SITE:-/tmp/digit-reader-site}
python=${PYTHON:-python3}

[[ -d $bundle/wheels && -d $bundle/mnist ]] \
    || { echo "gpu train: no bundle in $bundle: run host/gpu/bundle.sh on the laptop and bring it along" >&2; exit 1; }
"$python" -m pip install --quiet --no-index --no-deps --no-compile --upgrade \
    --target "$site" "$bundle"/wheels/*.whl
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
export MNIST_DIR="$bundle/mnist"
export KERAS_BACKEND="${KERAS_BACKEND:-jax}"
exec "$python" -m host.train "$@"
