"""Convert the Keras model to a full-integer LiteRT model plus its contract (``make convert``).

Writes ``models/digits.tflite`` (int8 weights and activations, int8 input and output) and
``models/digits.json``, the manifest the device obeys. Accuracy of both the Keras float model and
the int8 model on the MNIST test set goes into the manifest; ``make evaluate`` reproduces it.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from device.atomic import atomic_write_bytes
from device.contract import (
    DIGIT_LABELS,
    FORMAT_VERSION,
    NOT_A_DIGIT_LABEL,
    Preprocessing,
    manifest_path_for,
    parse_contract,
    sha256_file,
)
from host.errors import OutputPathError, TrainingError, run_command
from host.mnist import ROOT, load_mnist

logger = logging.getLogger(__name__)

DEFAULT_KERAS = ROOT / "models" / "digits.keras"
DEFAULT_OUT = ROOT / "models" / "digits.tflite"
REPRESENTATIVE_SAMPLES = 1000
# The lowest confidence threshold at which, on the held-out validation digits, at most this
# fraction of accepted digits is wrong: a conservative default for the device's threshold.
TARGET_ACCEPTED_ERROR = 0.001
THRESHOLD_BOUNDS = (0.5, 0.97)
# "At most 0.1% wrong" must hold for the error rate's one-sided upper bound at this level, not
# for the rate seen. Seen on 1,000 digits, 0.1% is one wrong digit: the shipped model got
# anything from 0.5 to 0.97 with the draw of digits alone (seeds 1 and 1234), and a model at
# 0.63 read 3,400 rendered frames confidently 88% of the time, 95.3% of them right (0.97: 65%,
# 99.3%).
THRESHOLD_CONFIDENCE = 0.95
# The shipped model's budget (the host pipeline issue): at least 99.5% of the MNIST test digits
# read right by the int8 model, a file of at most 100 KB, and fewer multiply-accumulates per
# digit than the tutorial's network (``count_macs(seed_model())``; a test checks the figure).
SHIPPED_MIN_ACCURACY = 0.995
SHIPPED_MAX_BYTES = 100 * 1024
SEED_MACS = 2_631_040


def labels_for(classes: int) -> list[str]:
    """Manifest labels for a model with ``classes`` outputs: the digits, then "none"."""
    if classes == len(DIGIT_LABELS):
        return list(DIGIT_LABELS)
    if classes == len(DIGIT_LABELS) + 1:
        return [*DIGIT_LABELS, NOT_A_DIGIT_LABEL]
    raise TrainingError(f"the model has {classes} outputs; a digit model has 10 or 11")


def write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data, durable=True)


def load_keras(path: Path):
    import keras

    if not path.is_file():
        raise TrainingError(f"{path} does not exist; run `make train` first")
    try:
        return keras.models.load_model(path)
    except Exception as e:  # Keras raises many types for a file that is not a model
        raise TrainingError(
            f"{path} is not a Keras model ({type(e).__name__}); run `make train` to recreate it"
        ) from e


def model_inputs(x_uint8: np.ndarray, arch: str) -> np.ndarray:
    """The float input each architecture was trained on (see host.train.prepare_data)."""
    if arch == "seed":
        return (x_uint8 / 255.0).astype(np.float32)
    from host.augment import renormalize

    return renormalize(x_uint8)


def to_tflite(model, representative: np.ndarray, quantize: bool) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

        def gen():
            for i in range(len(representative)):
                yield [representative[i : i + 1, ..., None]]

        converter.representative_dataset = gen
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def tflite_predict(model_path: Path, x: np.ndarray, batch: int = 500) -> np.ndarray:
    """Class probabilities from a .tflite file through the LiteRT interpreter (device's path)."""
    from ai_edge_litert.interpreter import Interpreter

    from device.contract import dequantize, to_input_tensor

    interp = Interpreter(model_path=str(model_path), num_threads=os.cpu_count() or 1)
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    in_spec = _spec_from_details(inp)
    out_spec = _spec_from_details(out)
    probs = []
    current = None
    for start in range(0, len(x), batch):
        chunk = x[start : start + batch]
        if current != len(chunk):
            interp.resize_tensor_input(inp["index"], [len(chunk), 28, 28, 1])
            interp.allocate_tensors()
            current = len(chunk)
        interp.set_tensor(inp["index"], to_input_tensor(chunk, in_spec))
        interp.invoke()
        probs.append(dequantize(interp.get_tensor(out["index"]), out_spec))
    return np.concatenate(probs)


def _spec_from_details(details: dict[str, Any]):
    from device.contract import TensorSpec

    scale, zero = details["quantization"]
    dtype = np.dtype(details["dtype"]).name
    return TensorSpec(tuple(int(s) for s in details["shape"]), dtype, float(scale), int(zero))


def error_upper_bound(wrong: int, n: int, confidence: float = THRESHOLD_CONFIDENCE) -> float:
    """One-sided exact (Clopper-Pearson) upper bound on an error rate seen as ``wrong`` of ``n``:
    the rate p at which seeing ``wrong`` or fewer errors has probability 1 - ``confidence``."""
    if not 0 <= wrong <= n or n == 0:
        raise ValueError(f"need 0 <= wrong <= n and n > 0, got wrong={wrong}, n={n}")
    if wrong == n:
        return 1.0
    k = np.arange(wrong + 1)
    log_choose = np.array(
        [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in k]
    )

    def cdf(p: float) -> float:
        return float(np.exp(log_choose + k * np.log(p) + (n - k) * np.log1p(-p)).sum())

    lo, hi = 0.0, 1.0
    for _ in range(60):  # bisection: the binomial CDF falls as p rises
        mid = (lo + hi) / 2
        if cdf(mid) > 1.0 - confidence:
            lo = mid
        else:
            hi = mid
    return hi


def _accepted(conf: np.ndarray, wrong: np.ndarray, threshold: float) -> tuple[int, int, bool]:
    """Of the digits read at ``threshold`` or above: how many are wrong, how many there are,
    and whether that meets TARGET_ACCEPTED_ERROR by the error's upper bound."""
    accepted = conf >= threshold
    n, bad = int(accepted.sum()), int(wrong[accepted].sum())
    return bad, n, n > 0 and error_upper_bound(bad, n) <= TARGET_ACCEPTED_ERROR


def recommended_threshold(probs: np.ndarray, labels: np.ndarray) -> float:
    """The lowest threshold (0.01 steps, within THRESHOLD_BOUNDS) whose accepted digits are
    wrong at most TARGET_ACCEPTED_ERROR of the time, by the error's upper bound."""
    conf = probs.max(axis=1)
    wrong = probs.argmax(axis=1) != labels
    for t in np.round(np.arange(THRESHOLD_BOUNDS[0], THRESHOLD_BOUNDS[1] + 1e-9, 0.01), 2):
        if _accepted(conf, wrong, float(t))[2]:
            return float(t)
    return THRESHOLD_BOUNDS[1]


def threshold_shortfall(probs: np.ndarray, labels: np.ndarray, threshold: float) -> str:
    """What ``threshold`` misses the target by on these digits, or an empty string when it
    meets it (the top of THRESHOLD_BOUNDS is recommended when no threshold meets it: an
    undertrained model)."""
    wrong, n, met = _accepted(probs.max(axis=1), probs.argmax(axis=1) != labels, threshold)
    if met:
        return ""
    return (
        f"no threshold up to {THRESHOLD_BOUNDS[1]:.2f} meets it: at {threshold:.2f} "
        f"{wrong} of {n} accepted digits are wrong ({len(labels) - n} of {len(labels)} "
        "refused)"
    )


def _parent_seed(train_info: dict[str, Any]) -> int | None:
    """The seed of the run a continued (--init-from) model started from, if its record says."""
    init = train_info.get("init_from")
    if not init:
        return None
    record = Path(init).with_suffix(".train.json")
    try:
        seed = json.loads(record.read_text(encoding="utf-8")).get("seed")
    except (OSError, ValueError):
        return None
    return seed if isinstance(seed, int) else None


def threshold_digits(train_info: dict[str, Any], n: int) -> tuple[np.ndarray, str]:
    """MNIST training-set indices to choose the threshold on, and what they are.

    The training run's own held-out validation digits (its seed gives the split): the model
    never learned them. A model continued (--init-from) from a run with another seed may have
    learned some of them there. Without the run's record, any training digits will do, and the
    threshold may come out low.
    """
    from host.train import VALIDATION_SIZE, validation_split

    seed = train_info.get("seed")
    if isinstance(seed, int):
        val_idx, _ = validation_split(n, np.random.default_rng(seed), train_info.get("limit"))
        basis = f"the training run's held-out validation digits ({len(val_idx)}, seed {seed})"
        parent = _parent_seed(train_info)
        if parent is not None and parent != seed:
            logger.warning(
                "the model was continued from one trained with --seed %d, which learned some of "
                "this run's validation digits (--seed %d): the threshold may come out low; "
                "continue with --seed %d to keep them held out",
                parent,
                seed,
                parent,
            )
            basis += f", some of them learned by the model it continued (seed {parent})"
        return val_idx, basis
    logger.warning(
        "no training record (.train.json) beside the model: the threshold is chosen on MNIST "
        "training digits the model may have learned, so it may be too low"
    )
    # As many digits as a run holds out, so the bound is as tight as with a record.
    pick = np.random.default_rng(0).choice(n, VALIDATION_SIZE, replace=False)
    return pick, f"{VALIDATION_SIZE} MNIST training digits (no training record)"


def budget_misses(int8_accuracy: float, file_bytes: int, macs: int | None) -> list[str]:
    """What keeps a converted model from being the shipped one (empty when it fits).

    A model of your own may be larger or slower; ``make test`` holds ``models/digits.tflite``
    to this budget, so ``convert`` says early what the tests would refuse.
    """
    misses = []
    if int8_accuracy < SHIPPED_MIN_ACCURACY:
        misses.append(f"MNIST int8 accuracy {int8_accuracy:.2%} < {SHIPPED_MIN_ACCURACY:.1%}")
    if file_bytes > SHIPPED_MAX_BYTES:
        misses.append(f"file {file_bytes / 1024:.1f} KB > {SHIPPED_MAX_BYTES // 1024} KB")
    if macs is not None and macs >= SEED_MACS:
        misses.append(f"{macs:,} MACs per digit, not fewer than the seed network's {SEED_MACS:,}")
    return misses


def convert(args: argparse.Namespace) -> dict[str, Any]:
    import keras
    import tensorflow as tf

    keras_path, out = Path(args.keras), Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=".probe-"):
            pass
    except OSError as e:
        raise OutputPathError(f"cannot write to {out.parent} ({e.strerror}); choose --out") from e
    model = load_keras(keras_path)
    train_info_path = keras_path.with_suffix(".train.json")
    train_info = (
        json.loads(train_info_path.read_text(encoding="utf-8")) if train_info_path.is_file() else {}
    )
    arch = train_info.get("arch", "default")
    data = load_mnist()
    rng = np.random.default_rng(train_info.get("seed", 0))
    # Calibration samples come from the training set, never from the test set (the threshold's
    # come from the run's held-out validation digits: threshold_digits).
    pick = rng.choice(len(data.x_train), REPRESENTATIVE_SAMPLES, replace=False)
    representative = model_inputs(data.x_train[pick], arch)

    x_test = model_inputs(data.x_test, arch)
    keras_probs = model.predict(x_test[..., None], batch_size=500, verbose=0)
    # A "none" output (not a digit) counts as a wrong answer on MNIST's digits.
    labels = labels_for(int(keras_probs.shape[1]))
    keras_acc = float((keras_probs.argmax(1) == data.y_test).mean())

    from host.architectures import for_int8, network_width

    # The same network, its first conv rearranged for int8 kernels (see for_int8).
    tflite_bytes = to_tflite(for_int8(model), representative, quantize=True)
    tmp_model = out.with_name(f".{out.name}.candidate")
    write_file(tmp_model, tflite_bytes)
    try:
        int8_probs = tflite_predict(tmp_model, x_test)
        int8_acc = float((int8_probs.argmax(1) == data.y_test).mean())
        held_out, threshold_basis = threshold_digits(train_info, len(data.x_train))
        val_probs = tflite_predict(tmp_model, model_inputs(data.x_train[held_out], arch))
        threshold = recommended_threshold(val_probs, data.y_train[held_out])
        shortfall = threshold_shortfall(val_probs, data.y_train[held_out], threshold)
        if shortfall:
            logger.warning(
                "the recommended threshold misses its target (%.1f%% of accepted digits "
                "wrong at most): %s; train longer (make train-full) before deploying",
                100 * TARGET_ACCEPTED_ERROR,
                shortfall,
            )
            threshold_basis += f"; {shortfall}"

        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_path=str(tmp_model))
        in_spec = _spec_from_details(interp.get_input_details()[0])
        out_spec = _spec_from_details(interp.get_output_details()[0])
        manifest: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "model_file": out.name,
            "sha256": sha256_file(tmp_model),
            "labels": labels,
            "input": {
                "shape": [1, 28, 28, 1],
                "dtype": in_spec.dtype,
                "scale": in_spec.scale,
                "zero_point": in_spec.zero_point,
            },
            "output": {
                "shape": [1, len(labels)],
                "dtype": out_spec.dtype,
                "scale": out_spec.scale,
                "zero_point": out_spec.zero_point,
                "activation": "softmax",
            },
            "preprocessing": {
                **Preprocessing().__dict__,
                "value_range": [0.0, 1.0],
            },
            "preprocessing_notes": (
                "ink bright (1.0) on a dark (0.0) background; the digit's bounding box is scaled, "
                "aspect preserved, so its longer side is 20 px (area interpolation if shrinking); "
                "its centre of mass is moved to pixel (14, 14) of a 28x28 canvas; then "
                "q = round(x / scale) + zero_point, clipped to int8"
            ),
            "recommended_threshold": threshold,
            "threshold_basis": (
                f"lowest in {list(THRESHOLD_BOUNDS)} with at most {TARGET_ACCEPTED_ERROR:.1%} of "
                f"accepted digits wrong ({THRESHOLD_CONFIDENCE:.0%} upper bound) on "
                f"{threshold_basis}"
            ),
            "arch": arch,
            "width": network_width(model),  # channel multiplier of the default network
            "parameters": int(model.count_params()),
            "macs": train_info.get("macs"),
            "file_bytes": len(tflite_bytes),
            "accuracy": {
                "dataset": "MNIST test (10,000)",
                "keras_float": round(keras_acc, 5),
                "litert_int8": round(int8_acc, 5),
            },
            "training": {k: v for k, v in train_info.items() if k != "history"},
            "dataset_sha256": data.hashes,
            "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
        }
        parse_contract(manifest, "generated manifest")  # the device must accept what we write
        if args.float:
            write_file(
                out.with_name(f"{out.stem}_float.tflite"), to_tflite(model, representative, False)
            )
        os.replace(tmp_model, out)
    finally:
        tmp_model.unlink(missing_ok=True)
    write_file(manifest_path_for(out), (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
    misses = budget_misses(int8_acc, len(tflite_bytes), manifest["macs"])
    if misses:
        logger.warning(
            "%s is outside the shipped model's budget (%s): fine for a model of your own, "
            "but not as models/digits.tflite, which make test checks",
            out,
            "; ".join(misses),
        )
    print(
        f"wrote {out} ({len(tflite_bytes) / 1024:.1f} KB): MNIST test accuracy keras float "
        f"{keras_acc:.4%}, LiteRT int8 {int8_acc:.4%}; recommended threshold {threshold}"
    )
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keras", type=Path, default=DEFAULT_KERAS, help="trained Keras model")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output .tflite (+ .json beside)")
    p.add_argument("--float", action="store_true", help="also write <out>_float.tflite (float32)")
    args = p.parse_args(argv)
    return run_command(lambda: convert(args))


if __name__ == "__main__":
    raise SystemExit(main())
