"""The two CNNs: the tutorial's seed network (reference) and the compact default for the Pi.

``count_macs`` counts multiply-accumulates per image for the layer types used here, so the
report compares architectures on the axis that decides speed on a Pi.
"""

from __future__ import annotations

import keras
from keras import layers

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
# The default net has one more output, "not a digit" (device.contract.NOT_A_DIGIT_INDEX in
# training, "none" in the manifest): trained on the segmenter's crops of touching pairs, pieces
# of digits and smudges, so the reader can reject them instead of reading them as a digit.
ARCHS = ("default", "seed")
# Faster than the Keras default (0.99) so that short runs (tests, --limit) get usable moving
# statistics; over a full run both settle to the same values.
BN_MOMENTUM = 0.95


def seed_model() -> keras.Model:
    """Exactly the tutorial's network: Conv32 → Pool → Conv64 → Pool → Dense128 → Dense10."""
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(NUM_CLASSES, activation="softmax"),
        ],
        name="seed",
    )


def _conv_bn(x, filters: int, name: str):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _sep_bn(x, filters: int, name: str):
    # Depthwise 3x3 then pointwise 1x1: ~8x fewer MACs than a full 3x3 conv at these widths.
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_dwbn")(x)
    x = layers.ReLU(name=f"{name}_dwrelu")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_pwbn")(x)
    return layers.ReLU(name=f"{name}_pwrelu")(x)


def default_model() -> keras.Model:
    """Compact net: full conv at 28x28, separable convs at 14x14 and 7x7, a 3x3x128 head.

    Fewer parameters (~43k vs ~225k) and fewer MACs (~2.0M vs ~2.6M) than the seed; batch norm
    folds into the convolutions at conversion, so the int8 model is a plain conv stack.
    Eleven outputs: the ten digits and "none" (not a digit).
    """
    inputs = keras.Input(INPUT_SHAPE, name="digit")
    x = _conv_bn(inputs, 32, "c1")
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = _sep_bn(x, 64, "s2")
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = _sep_bn(x, 128, "s3")
    x = _sep_bn(x, 128, "s4")
    # A 3x3 grid rather than global pooling: where a stroke is matters for digits (4 vs 9).
    x = layers.MaxPooling2D(2, name="pool3")(x)
    x = layers.Flatten(name="flat")(x)
    x = layers.Dropout(0.3, name="drop")(x)
    outputs = layers.Dense(NUM_CLASSES + 1, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="default")


def build(arch: str) -> keras.Model:
    if arch == "seed":
        return seed_model()
    if arch == "default":
        return default_model()
    raise ValueError(f"unknown --arch {arch!r}; choose one of {', '.join(ARCHS)}")


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates for one image through Conv2D, DepthwiseConv2D and Dense layers."""
    total = 0
    for layer in model.layers:
        out = layer.output.shape
        if isinstance(layer, layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            total += out[1] * out[2] * out[3] * kh * kw
        elif isinstance(layer, layers.Conv2D):
            kh, kw = layer.kernel_size
            cin = layer.input.shape[-1]
            total += out[1] * out[2] * out[3] * kh * kw * cin
        elif isinstance(layer, layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return int(total)
