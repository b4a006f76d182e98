"""host.architectures: the network converted to int8 is the trained network."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras

from host.architectures import count_macs, default_model, for_int8, network_width, seed_model
from host.convert import SEED_MACS


def _trained_like(model: keras.Model, seed: int = 0) -> keras.Model:
    """Random weights everywhere, batch norms included (a fresh one is the identity)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = weights
            layer.set_weights(
                [
                    rng.uniform(0.5, 2.0, gamma.shape),
                    rng.normal(0, 0.5, beta.shape),
                    rng.normal(0, 0.5, mean.shape),
                    rng.uniform(0.2, 3.0, var.shape),
                ]
            )
        elif weights:
            layer.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in weights])
    return model


@pytest.mark.parametrize("width", [1.0, 2.0])
def test_first_conv_on_2x2_blocks_gives_the_same_outputs(width: float) -> None:
    """The first conv rewritten on blocks (space to depth, conv, depth to space) computes what
    the conv, its batch norm and ReLU did, borders included, at any width of the network."""
    model = _trained_like(default_model(width))
    blocks = for_int8(model)
    assert blocks is not model
    assert blocks.get_layer("c1_blocks").kernel.shape == (3, 3, 4, 4 * round(32 * width))
    x = np.random.default_rng(1).random((16, 28, 28, 1)).astype(np.float32)
    x[:, :3] = 1.0  # ink at the top edge: the zero padding must fall where the conv's did
    first = keras.Model(model.input, model.get_layer("c1_relu").output)
    first_blocks = keras.Model(blocks.input, blocks.get_layer("c1_unfold").output)
    np.testing.assert_allclose(first_blocks(x), first(x), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(blocks(x), model(x), rtol=1e-4, atol=1e-5)


def test_width_multiplies_every_layers_channels() -> None:
    narrow, wide = default_model(), default_model(2.0)
    for name in ("c1_conv", "s2_pw", "s3_pw", "s4_pw"):
        assert wide.get_layer(name).output.shape[-1] == 2 * narrow.get_layer(name).output.shape[-1]
    assert wide.output_shape == narrow.output_shape == (None, 11)
    with pytest.raises(ValueError, match="width must be positive"):
        default_model(0.0)


def test_network_width_is_read_from_the_model() -> None:
    assert network_width(default_model()) == 1.0
    assert network_width(default_model(1.5)) == 1.5
    assert network_width(seed_model()) is None  # no c1_conv: not the default network


def test_other_networks_convert_as_they_are() -> None:
    model = seed_model()
    assert for_int8(model) is model


def test_the_seed_networks_macs_are_the_budget_convert_checks() -> None:
    assert count_macs(seed_model()) == SEED_MACS
