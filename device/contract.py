"""The model contract: models/digits.json, written by the host and obeyed by the device.

It says everything the device needs to feed the model: input shape, dtype, scale and
zero-point, output quantisation, labels and the exact preprocessing (polarity, box size,
centring). ``load_contract`` validates it; ``to_input_tensor`` is the one function that turns
normalised digits into the model's input tensor.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.digest import sha256
from device.errors import ContractError, ModelMismatchError, ModelMissingError

# Ink relative to the paper: a crop's (and the model's input's) polarity, and what the
# reader may be configured with ("auto": detected per frame).
INK_POLARITIES = ("dark_on_light", "light_on_dark")
POLARITIES = ("auto", *INK_POLARITIES)

FORMAT_VERSION = 1
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "digits.tflite"
MAKE_HINT = "run `make train convert` on the host (or `git checkout models/`) to create it"

_DTYPES: dict[str, Any] = {"int8": np.int8, "uint8": np.uint8, "float32": np.float32}


# The manifest label of a "not a digit" output (a touching pair read as one, a piece of a
# digit, a smudge): the classifier reports it as label NOT_A_DIGIT and the reader drops it.
NOT_A_DIGIT_LABEL = "none"
DIGIT_LABELS = [str(d) for d in range(10)]
NOT_A_DIGIT = -1
# Where "none" sits among the outputs (after the ten digits): also its label in host training.
NOT_A_DIGIT_INDEX = len(DIGIT_LABELS)


@dataclass(frozen=True)
class TensorSpec:
    """Shape, dtype and affine quantisation of one model tensor (scale 0 means not quantised)."""

    shape: tuple[int, ...]
    dtype: str
    scale: float = 0.0
    zero_point: int = 0

    @property
    def np_dtype(self) -> Any:
        return _DTYPES[self.dtype]

    @property
    def quantized(self) -> bool:
        return self.dtype != "float32"


@dataclass(frozen=True)
class Preprocessing:
    """How a digit crop becomes a model input; mirrors how MNIST itself was made."""

    polarity: str = "light_on_dark"  # ink is bright (1.0), background dark (0.0), as in MNIST
    canvas: int = 28  # output image side, pixels
    box: int = 20  # the digit's longer side is scaled to fit this box, aspect preserved
    centering: str = "center_of_mass"  # centre of mass moved to the canvas centre
    deskew: bool = False  # shear by second moments before fitting (both host and device)
    value_range: tuple[float, float] = (0.0, 1.0)  # float pixel values before quantisation


@dataclass(frozen=True)
class ModelContract:
    """Validated content of models/digits.json."""

    format_version: int
    model_file: str
    sha256: str
    labels: tuple[str, ...]
    input: TensorSpec
    output: TensorSpec
    preprocessing: Preprocessing
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format_version": self.format_version,
            "model_file": self.model_file,
            "sha256": self.sha256,
            "labels": list(self.labels),
            "input": _spec_dict(self.input),
            "output": _spec_dict(self.output),
            "preprocessing": asdict(self.preprocessing),
        }
        data["preprocessing"]["value_range"] = list(self.preprocessing.value_range)
        data.update(self.extra)
        return data


def _spec_dict(spec: TensorSpec) -> dict[str, Any]:
    return {
        "shape": list(spec.shape),
        "dtype": spec.dtype,
        "scale": spec.scale,
        "zero_point": spec.zero_point,
    }


def manifest_path_for(model_path: Path) -> Path:
    """The manifest sits beside the model with the same stem: digits.tflite -> digits.json."""
    return model_path.with_suffix(".json")


def _require(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise ContractError(f"{where}: missing key {key!r}; regenerate it with `make convert`")
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ContractError(f"{where}: key {key!r} has the wrong type ({type(value).__name__})")
    return value


def _parse_spec(data: Any, where: str) -> TensorSpec:
    if not isinstance(data, dict):
        raise ContractError(f"{where} must be an object")
    shape = _require(data, "shape", list, where)
    dtype = _require(data, "dtype", str, where)
    if dtype not in _DTYPES:
        raise ContractError(f"{where}: dtype {dtype!r} is not one of {sorted(_DTYPES)}")
    scale = float(_require(data, "scale", (int, float), where))
    zero_point = int(_require(data, "zero_point", int, where))
    if dtype != "float32" and scale <= 0:
        raise ContractError(f"{where}: a quantised tensor needs a positive scale")
    return TensorSpec(tuple(int(s) for s in shape), dtype, scale, zero_point)


def parse_contract(data: Any, where: str = "manifest") -> ModelContract:
    """Validate a decoded manifest; raises ContractError naming the first problem."""
    if not isinstance(data, dict):
        raise ContractError(f"{where}: expected a JSON object")
    version = _require(data, "format_version", int, where)
    if version != FORMAT_VERSION:
        raise ContractError(
            f"{where}: format_version {version} is not supported (expected {FORMAT_VERSION}); "
            "update the device code or regenerate the model with `make convert`"
        )
    labels = _require(data, "labels", list, where)
    in_spec = _parse_spec(data.get("input"), f"{where}: input")
    out_spec = _parse_spec(data.get("output"), f"{where}: output")
    pre = _require(data, "preprocessing", dict, where)
    known = set(Preprocessing.__dataclass_fields__)
    unknown = set(pre) - known
    if unknown:
        raise ContractError(f"{where}: unknown preprocessing key(s) {sorted(unknown)}")
    pre = dict(pre)
    if "value_range" in pre:
        pre["value_range"] = tuple(pre["value_range"])
    preprocessing = Preprocessing(**pre)
    if preprocessing.polarity not in INK_POLARITIES:
        raise ContractError(f"{where}: preprocessing.polarity {preprocessing.polarity!r} unknown")
    if in_spec.shape[1:] != (preprocessing.canvas, preprocessing.canvas, 1):
        raise ContractError(f"{where}: input shape {in_spec.shape} does not match the canvas")
    if labels not in (DIGIT_LABELS, [*DIGIT_LABELS, NOT_A_DIGIT_LABEL]):
        raise ContractError(
            f"{where}: labels must be the distinct digits '0'-'9' in order, optionally followed "
            f"by '{NOT_A_DIGIT_LABEL}' (not a digit); got {labels}"
        )
    if out_spec.shape[-1] != len(labels):
        raise ContractError(
            f"{where}: output has {out_spec.shape[-1]} classes, {len(labels)} labels"
        )
    core = {"format_version", "model_file", "sha256", "labels", "input", "output", "preprocessing"}
    return ModelContract(
        format_version=version,
        model_file=str(_require(data, "model_file", str, where)),
        sha256=str(_require(data, "sha256", str, where)),
        labels=tuple(str(label) for label in labels),
        input=in_spec,
        output=out_spec,
        preprocessing=preprocessing,
        extra={k: v for k, v in data.items() if k not in core},
    )


def sha256_file(path: Path) -> str:
    digest = sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_contract(model_path: Path, verify_sha256: bool = True) -> ModelContract:
    """Read and validate the manifest beside ``model_path``; check the model file's sha256."""
    model_path = Path(model_path)
    manifest = manifest_path_for(model_path)
    if not model_path.is_file():
        raise ModelMissingError(f"model {model_path} does not exist; {MAKE_HINT}")
    if not manifest.is_file():
        raise ModelMissingError(f"model manifest {manifest} does not exist; {MAKE_HINT}")
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ContractError(
            f"{manifest} is not valid JSON ({e}); regenerate it with `make convert`"
        ) from e
    contract = parse_contract(data, str(manifest))
    if verify_sha256:
        actual = sha256_file(model_path)
        if actual != contract.sha256:
            raise ModelMismatchError(
                f"{model_path} has sha256 {actual[:12]}… but {manifest.name} expects "
                f"{contract.sha256[:12]}…; the model and its manifest are from different builds, "
                "run `make convert` again or restore both files together"
            )
    return contract


def to_input_tensor(digits: npt.NDArray[np.float32], spec: TensorSpec) -> npt.NDArray[Any]:
    """Turn normalised digits (N, 28, 28) floats in [0, 1] into the model's input tensor.

    This is the single place where the device applies the input quantisation.
    """
    x = np.asarray(digits, dtype=np.float32)
    if x.ndim == 3:
        x = x[..., np.newaxis]
    if not spec.quantized:
        return x
    info = np.iinfo(spec.np_dtype)
    q = np.round(x / spec.scale) + spec.zero_point
    return np.clip(q, info.min, info.max).astype(spec.np_dtype)


def dequantize(values: npt.NDArray[Any], spec: TensorSpec) -> npt.NDArray[np.float32]:
    """Model output (quantised or float) to float32."""
    if not spec.quantized:
        return np.asarray(values, dtype=np.float32)
    return ((values.astype(np.float32) - spec.zero_point) * spec.scale).astype(np.float32)
