"""The confidence threshold host.convert recommends to the device."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from device.contract import DEFAULT_MODEL
from host.convert import (
    SEED_MACS,
    SHIPPED_MAX_BYTES,
    THRESHOLD_BOUNDS,
    budget_misses,
    error_upper_bound,
    recommended_threshold,
    threshold_digits,
    threshold_shortfall,
)
from host.train import validation_split


def _probs(confidences: list[float], right: list[bool]) -> tuple[np.ndarray, np.ndarray]:
    """Two-class outputs whose top class has the given confidence, right or wrong."""
    conf = np.asarray(confidences)
    probs = np.stack([conf, 1.0 - conf], axis=1)
    labels = np.where(np.asarray(right), 0, 1)
    return probs, labels


def test_error_upper_bound_follows_the_rule_of_three_and_grows_with_errors():
    assert error_upper_bound(0, 3000) == pytest.approx(3 / 3000, rel=0.01)
    bounds = [error_upper_bound(k, 5000) for k in range(5)]
    assert all(a < b for a, b in itertools.pairwise(bounds))
    assert error_upper_bound(4, 4) == 1.0
    with pytest.raises(ValueError):
        error_upper_bound(3, 2)


def test_one_wrong_digit_among_a_thousand_does_not_set_a_low_threshold():
    # 999 right digits at 0.99 and one wrong at 0.6: above 0.6 none is wrong, but 999 digits
    # cannot show an error rate of at most 0.1% (the rate seen alone would recommend 0.61).
    probs, labels = _probs([0.99] * 999 + [0.6], [True] * 999 + [False])
    assert recommended_threshold(probs, labels) == THRESHOLD_BOUNDS[1]
    # 3,500 right digits can (one wrong among 3,501 could still be 0.14%): the threshold then
    # just clears the wrong one.
    probs, labels = _probs([0.99] * 3500 + [0.6], [True] * 3500 + [False])
    assert recommended_threshold(probs, labels) == 0.61


def test_threshold_is_chosen_on_the_training_runs_held_out_digits():
    n = 60000
    idx, basis = threshold_digits({"seed": 7, "limit": None}, n)
    val_idx, train_idx = validation_split(n, np.random.default_rng(7), None)
    np.testing.assert_array_equal(idx, val_idx)
    assert not np.intersect1d(idx, train_idx).size
    assert "held-out validation digits (5000, seed 7)" in basis
    limited, _ = threshold_digits({"seed": 7, "limit": 2000}, n)
    assert len(limited) == 200 and not np.intersect1d(limited, train_idx[:2000]).size


def test_threshold_without_a_training_record_says_so(caplog: pytest.LogCaptureFixture):
    idx, basis = threshold_digits({}, 60000)
    assert len(idx) == 5000 and "no training record" in basis
    assert "may be too low" in caplog.text


def test_a_continuation_with_another_seed_is_warned_of(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    parent = tmp_path / "parent.keras"
    parent.with_suffix(".train.json").write_text(json.dumps({"seed": 1234}))
    _, basis = threshold_digits({"seed": 7, "limit": None, "init_from": str(parent)}, 60000)
    assert "learned by the model it continued (seed 1234)" in basis
    assert "continue with --seed 1234" in caplog.text
    caplog.clear()
    _, basis = threshold_digits({"seed": 1234, "limit": None, "init_from": str(parent)}, 60000)
    assert "learned" not in basis and not caplog.text


def test_a_threshold_that_misses_the_target_is_said_to():
    # An undertrained model: 2% of its confident digits are wrong; 0.97 is recommended anyway
    # (the top of the range) and the shortfall says by how much.
    probs, labels = _probs([0.99] * 4900 + [0.99] * 100, [True] * 4900 + [False] * 100)
    threshold = recommended_threshold(probs, labels)
    assert threshold == THRESHOLD_BOUNDS[1]
    note = threshold_shortfall(probs, labels, threshold)
    assert "100 of 5000 accepted digits are wrong" in note
    # A model that meets it gets no note.
    probs, labels = _probs([0.99] * 5000 + [0.6], [True] * 5000 + [False])
    assert threshold_shortfall(probs, labels, recommended_threshold(probs, labels)) == ""


def test_budget_misses_names_each_limit_a_model_is_over() -> None:
    assert budget_misses(0.9950, SHIPPED_MAX_BYTES, SEED_MACS - 1) == []
    misses = budget_misses(0.9944, SHIPPED_MAX_BYTES + 1, SEED_MACS)
    assert len(misses) == 3
    assert misses[0].startswith("MNIST int8 accuracy 99.44% < 99.5%")
    assert misses[1] == "file 100.0 KB > 100 KB"
    assert "2,631,040 MACs per digit" in misses[2]
    # A wide network (session 19's width 2) is over on size and MACs, not on accuracy.
    assert [m.split()[0] for m in budget_misses(0.996, 184_000, 7_181_696)] == ["file", "7,181,696"]
    assert budget_misses(0.999, 1000, None) == []  # no MACs recorded: not judged on them


def test_the_shipped_model_fits_the_budget() -> None:
    manifest = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    size = DEFAULT_MODEL.stat().st_size
    assert manifest["file_bytes"] == size
    assert budget_misses(manifest["accuracy"]["litert_int8"], size, manifest["macs"]) == []
