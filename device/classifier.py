"""The digit classifier: one LiteRT interpreter, loaded once, classifying a whole batch per call.

``LiteRTClassifier`` checks the model against its manifest (sha256 and the interpreter's real
input/output tensors), quantises with ``device.contract.to_input_tensor`` and dequantises with
``device.contract.dequantize``, so the model contract is applied in exactly one place.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from device.contract import (
    DEFAULT_MODEL,
    NOT_A_DIGIT,
    NOT_A_DIGIT_LABEL,
    ModelContract,
    TensorSpec,
    dequantize,
    load_contract,
    manifest_path_for,
    to_input_tensor,
)
from device.errors import ModelError, ModelMismatchError
from device.lifecycle import Closeable

logger = logging.getLogger(__name__)

Labels = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float32]

# Relative tolerance when comparing the interpreter's quantisation scale with the manifest's:
# both come from the same float32 value, so anything beyond rounding means another model.
_SCALE_RTOL = 1e-5
# Output rows summing to 1 within this (int8 softmax: 10 classes x 1/256 rounding) are
# already probabilities; otherwise they are logits and get a softmax.
_PROB_SUM_TOL = 0.06
# Characters of the sha256 shown as the model version (as git shows commits).
VERSION_CHARS = 12
MAX_THREADS = 16
# Each one-pixel shift of a second look: right, left, down, up (rows, columns).
_VIEW_SHIFTS = ((0, 1), (0, -1), (1, 0), (-1, 0))
# Unsure crops whose views go into one invoke: 28 inputs, within the batches the first look
# already needs (at most 29 crops on the bench's 500 frames). The interpreter's arena grows
# with the largest batch it has seen and never shrinks: all views of a frame in one call
# (up to 72 inputs) raised the daemon's peak RSS by 3 MB.
_VIEWS_PER_CALL = 7


class Classifier(Protocol):
    """Classifies normalised digits: (N, 28, 28) float32 in [0, 1], ink bright."""

    def classify(self, batch: Floats) -> tuple[Labels, Floats]:
        """Labels (N,) and their confidences (N,) for a batch of digits; a model with a
        "none" output labels what it takes for no digit at all NOT_A_DIGIT (-1)."""
        ...

    def probabilities(self, batch: Floats) -> Floats:
        """Class probabilities (N, classes) for a batch of digits."""
        ...

    def best_digits(self, batch: Floats) -> tuple[Labels, Floats]:
        """The most likely digit (0-9, never NOT_A_DIGIT) of each of a batch of crops, and
        its probability."""
        ...


def _interpreter_class() -> Any:
    """The first LiteRT interpreter available: ai-edge-litert, tflite-runtime, then TensorFlow.

    TensorFlow is the host-only last resort; the device never installs it.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter
    except ImportError:
        pass
    try:
        import tensorflow as tf
    except ImportError as e:
        raise ModelError(
            "no LiteRT interpreter is installed; `pip install ai-edge-litert` "
            "(or `make setup` in the project)"
        ) from e
    return tf.lite.Interpreter


def _spec_from_details(details: dict[str, Any]) -> TensorSpec:
    scale, zero_point = details.get("quantization", (0.0, 0))
    return TensorSpec(
        tuple(int(s) for s in details["shape"]),
        np.dtype(details["dtype"]).name,
        float(scale),
        int(zero_point),
    )


def _check_spec(name: str, actual: TensorSpec, expected: TensorSpec, model: Path) -> None:
    problems = []
    if actual.shape[1:] != expected.shape[1:]:
        problems.append(f"shape {list(actual.shape[1:])} vs {list(expected.shape[1:])}")
    if actual.dtype != expected.dtype:
        problems.append(f"dtype {actual.dtype} vs {expected.dtype}")
    if expected.quantized and not np.isclose(actual.scale, expected.scale, rtol=_SCALE_RTOL):
        problems.append(f"scale {actual.scale:g} vs {expected.scale:g}")
    if expected.quantized and actual.zero_point != expected.zero_point:
        problems.append(f"zero_point {actual.zero_point} vs {expected.zero_point}")
    if problems:
        raise ModelMismatchError(
            f"{model}: the model's {name} tensor does not match its manifest "
            f"(model vs manifest: {'; '.join(problems)}); run `make convert` again or restore "
            "both files together"
        )


def _output_activation(model_path: Path) -> str | None:
    """The manifest's output.activation ("softmax" or "none"), if it says."""
    try:
        data = json.loads(manifest_path_for(model_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # load_contract already read it; a race here is not worth an error
    activation = data.get("output", {}).get("activation")
    return str(activation) if activation is not None else None


def shifted_views(batch: Floats, background: float = 0.0) -> Floats:
    """Each (H, W) image of ``batch`` moved one pixel right, left, down and up: (4N, H, W),
    the views in that order, each a block of N. Uncovered pixels get ``background``.

    A digit is centred by its centre of mass, to a pixel or so; a model unsure of it is often
    sure of it a pixel away, and the mean over the views is steadier than any one of them.
    """
    n, h, w = batch.shape
    out = np.full((len(_VIEW_SHIFTS), n, h, w), background, dtype=np.float32)
    for view, (dy, dx) in zip(out, _VIEW_SHIFTS, strict=True):
        view[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = batch[
            :, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
        ]
    return out.reshape(-1, h, w)


def softmax(logits: Floats) -> Floats:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


class LiteRTClassifier(Closeable):
    """A LiteRT (TFLite) digit model; load once, then ``classify`` batches with one invoke each."""

    def __init__(
        self, model_path: str | Path = DEFAULT_MODEL, num_threads: int = 1, views_below: float = 0.0
    ) -> None:
        """``views_below``: a crop whose best output is below this probability is read again
        shifted by one pixel each way (one more invoke for all such crops of a call), and its
        probabilities are the mean of the five views. 0 (the default) reads each crop once:
        the model's own output, as the host evaluates it."""
        if not 1 <= num_threads <= MAX_THREADS:
            raise ModelError(f"num_threads must be 1..{MAX_THREADS}, got {num_threads}")
        if not 0.0 <= views_below <= 1.0:
            raise ModelError(f"views_below must be 0..1, got {views_below}")
        self.views_below = views_below
        self.model_path = Path(model_path)
        self.contract: ModelContract = load_contract(self.model_path)
        # Label of each output: its digit, or NOT_A_DIGIT (-1) for the "none" output.
        self.label_values = np.array(
            [NOT_A_DIGIT if x == NOT_A_DIGIT_LABEL else int(x) for x in self.contract.labels],
            dtype=np.int64,
        )
        # The outputs best_digits chooses among: every one but "none".
        self._digit_columns = np.flatnonzero(self.label_values != NOT_A_DIGIT)
        interpreter_class = _interpreter_class()
        try:
            self._interp: Any = interpreter_class(
                model_path=str(self.model_path), num_threads=num_threads
            )
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ModelError(
                f"{self.model_path} cannot be loaded by the LiteRT interpreter ({e}); "
                "run `make convert` again"
            ) from e
        inputs = self._interp.get_input_details()
        outputs = self._interp.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelMismatchError(
                f"{self.model_path} has {len(inputs)} inputs and {len(outputs)} outputs; "
                "a digit model has one of each"
            )
        self._in_index = int(inputs[0]["index"])
        self._out_index = int(outputs[0]["index"])
        self.input_spec = _spec_from_details(inputs[0])
        self.output_spec = _spec_from_details(outputs[0])
        _check_spec("input", self.input_spec, self.contract.input, self.model_path)
        _check_spec("output", self.output_spec, self.contract.output, self.model_path)
        self._canvas = tuple(self.contract.input.shape[1:3])
        self._batch = int(self.input_spec.shape[0])
        activation = _output_activation(self.model_path)
        # None: unknown, decided per batch from the values.
        self._outputs_probabilities: bool | None = (
            None if activation is None else activation == "softmax"
        )
        # The interpreter is not thread-safe; the daemon and the web page may share one.
        self._lock = threading.Lock()
        self._closed = False
        logger.info(
            "loaded %s (version %s, %s input, %d thread(s))",
            self.model_path,
            self.model_version,
            self.input_spec.dtype,
            num_threads,
        )

    @property
    def model_version(self) -> str:
        return self.contract.sha256[:VERSION_CHARS]

    @property
    def closed(self) -> bool:
        return self._closed

    def _resize(self, n: int) -> None:
        """Give the input tensor a batch of ``n``; tensors are reallocated only on a change."""
        if n == self._batch:
            return
        self._interp.resize_tensor_input(self._in_index, [n, *self.contract.input.shape[1:]])
        self._interp.allocate_tensors()
        self._batch = n

    def probabilities(self, batch: Floats) -> Floats:
        x = np.asarray(batch, dtype=np.float32)
        if x.ndim == 4 and x.shape[-1] == 1:
            x = x[..., 0]
        if x.ndim != 3 or tuple(x.shape[1:]) != self._canvas:
            raise ValueError(f"expected a batch of shape (N, {self._canvas}), got {x.shape}")
        probs = self._invoke(x)
        if self.views_below > 0 and len(probs):
            unsure = np.flatnonzero(probs.max(axis=1) < self.views_below)
            background = self.contract.preprocessing.value_range[0]
            for start in range(0, unsure.size, _VIEWS_PER_CALL):
                rows = unsure[start : start + _VIEWS_PER_CALL]
                views = self._invoke(shifted_views(x[rows], background))
                views = views.reshape(len(_VIEW_SHIFTS), rows.size, -1)
                probs[rows] = (probs[rows] + views.sum(axis=0)) / (1 + len(_VIEW_SHIFTS))
        return probs

    def _invoke(self, x: Floats) -> Floats:
        """Class probabilities of a checked (N, H, W) batch, one interpreter call."""
        n = int(x.shape[0])
        classes = int(self.contract.output.shape[-1])
        if n == 0:
            return np.zeros((0, classes), dtype=np.float32)
        with self._lock:
            if self._closed:
                raise ModelError("the classifier is closed")
            self._resize(n)
            self._interp.set_tensor(self._in_index, to_input_tensor(x, self.contract.input))
            self._interp.invoke()
            raw = np.array(self._interp.get_tensor(self._out_index))
        values = dequantize(raw, self.contract.output).reshape(n, classes)
        if self._outputs_probabilities is None:
            looks_like = bool(
                (values >= -_PROB_SUM_TOL).all()
                and np.allclose(values.sum(axis=1), 1.0, atol=_PROB_SUM_TOL)
            )
            return values if looks_like else softmax(values)
        return values if self._outputs_probabilities else softmax(values)

    def classify(self, batch: Floats) -> tuple[Labels, Floats]:
        probs = self.probabilities(batch)
        return self._best(probs, probs.argmax(axis=1))

    def best_digits(self, batch: Floats) -> tuple[Labels, Floats]:
        probs = self.probabilities(batch)
        columns = self._digit_columns
        return self._best(probs, columns[probs[:, columns].argmax(axis=1)])

    def _best(self, probs: Floats, best: Labels) -> tuple[Labels, Floats]:
        """The labels of the outputs ``best`` (one per row of ``probs``) and their
        probabilities."""
        confidences = np.clip(probs[np.arange(len(best)), best], 0.0, 1.0).astype(np.float32)
        return self.label_values[best], confidences

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._interp = None
