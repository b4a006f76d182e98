"""The model contract: the shipped manifest matches its model, and bad manifests are refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from device.contract import (
    DEFAULT_MODEL,
    NOT_A_DIGIT_LABEL,
    TensorSpec,
    dequantize,
    load_contract,
    parse_contract,
    sha256_file,
    to_input_tensor,
)
from device.errors import ContractError, ModelMismatchError, ModelMissingError


def test_shipped_manifest_matches_shipped_model():
    contract = load_contract(DEFAULT_MODEL)
    assert contract.sha256 == sha256_file(DEFAULT_MODEL)
    assert contract.input.shape[1:] == (28, 28, 1)
    assert contract.input.dtype in ("int8", "uint8")
    # Ten digits and "none": the model rejects crops that are no digit.
    assert contract.labels == (*"0123456789", NOT_A_DIGIT_LABEL)
    assert contract.output.shape[-1] == len(contract.labels)
    assert contract.preprocessing.polarity == "light_on_dark"
    assert DEFAULT_MODEL.stat().st_size <= 100 * 1024


def test_shipped_manifest_records_accuracy_and_provenance():
    data = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    for key in ("accuracy", "training", "dataset_sha256", "versions", "recommended_threshold"):
        assert key in data, key
    assert 0.5 <= data["recommended_threshold"] <= 1.0
    assert data["accuracy"]["litert_int8"] > 0.9


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    model = tmp_path / "digits.tflite"
    shutil.copy(DEFAULT_MODEL, model)
    shutil.copy(DEFAULT_MODEL.with_suffix(".json"), model.with_suffix(".json"))
    return model


def test_sha256_mismatch_is_refused(model_copy: Path):
    with model_copy.open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelMismatchError, match="sha256"):
        load_contract(model_copy)


def test_missing_model_names_path_and_command(tmp_path: Path):
    with pytest.raises(ModelMissingError) as err:
        load_contract(tmp_path / "nope.tflite")
    assert "nope.tflite" in str(err.value) and "make train convert" in str(err.value)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("labels"), "labels"),
        (lambda d: d["labels"].__setitem__(3, "x"), "labels must be the distinct digits"),
        (lambda d: d["labels"].__setitem__(3, "2"), "labels must be the distinct digits"),
        (lambda d: d["labels"].__setitem__(3, "none"), "labels must be the distinct digits"),
        (lambda d: d["labels"].pop(), "classes"),
        (lambda d: d.update(format_version=99), "format_version 99"),
        (lambda d: d["input"].update(dtype="int4"), "dtype"),
        (lambda d: d["input"].update(scale=0), "positive scale"),
        (lambda d: d["preprocessing"].update(colour="red"), "unknown preprocessing"),
        (lambda d: d["input"].update(shape=[1, 32, 32, 1]), "canvas"),
    ],
)
def test_malformed_manifest_is_refused_with_the_key(edit, message):
    data = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    edit(data)
    with pytest.raises(ContractError, match=message):
        parse_contract(data)


def test_quantisation_round_trip():
    spec = TensorSpec((1, 28, 28, 1), "int8", 1 / 255, -128)
    x = np.linspace(0, 1, 28 * 28, dtype=np.float32).reshape(1, 28, 28)
    q = to_input_tensor(x, spec)
    assert q.dtype == np.int8 and q.shape == (1, 28, 28, 1)
    assert q.min() == -128 and q.max() == 127
    assert np.abs(dequantize(q, spec)[..., 0] - x).max() <= 0.5 / 255 + 1e-6
