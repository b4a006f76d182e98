"""The two CNNs: the tutorial's seed network (reference) and the compact default for the Pi.

``count_macs`` counts multiply-accumulates per image for the layer types used here, so the
report compares architectures on the axis that decides speed on a Pi.
"""

from __future__ import annotations

import keras
import numpy as np
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
# The default network's channels at width 1: c1 (full conv), s2, s3, s4 (separable).
BASE_CHANNELS = (32, 64, 128, 128)


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


def default_model(width: float = 1.0) -> keras.Model:
    """Compact net: full conv at 28x28, separable convs at 14x14 and 7x7, a 3x3x128 head.

    Fewer parameters (~43k vs ~225k) and fewer MACs (~2.0M vs ~2.6M) than the seed; batch norm
    folds into the convolutions at conversion, so the int8 model is a plain conv stack.
    Eleven outputs: the ten digits and "none" (not a digit). ``width`` multiplies every layer's
    channels (``BASE_CHANNELS``): 2.0 gives ~141k parameters and ~7.2M MACs.
    """
    if width <= 0:
        raise ValueError(f"width must be positive, not {width}")

    def channels(n: int) -> int:
        return max(1, round(n * width))

    c1, s2, s3, s4 = (channels(n) for n in BASE_CHANNELS)
    inputs = keras.Input(INPUT_SHAPE, name="digit")
    x = _conv_bn(inputs, c1, "c1")
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = _sep_bn(x, s2, "s2")
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = _sep_bn(x, s3, "s3")
    x = _sep_bn(x, s4, "s4")
    # A 3x3 grid rather than global pooling: where a stroke is matters for digits (4 vs 9).
    x = layers.MaxPooling2D(2, name="pool3")(x)
    x = layers.Flatten(name="flat")(x)
    x = layers.Dropout(0.3, name="drop")(x)
    outputs = layers.Dense(NUM_CLASSES + 1, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="default")


def network_width(model: keras.Model) -> float | None:
    """The channel multiplier a default network was built with: c1_conv's filters over
    ``BASE_CHANNELS[0]``.

    None for a network without the default's ``c1_conv`` (the seed). Read from the model, so a
    continuation (``--init-from``) records the width it actually trained.
    """
    try:
        filters = model.get_layer("c1_conv").filters
    except ValueError:
        return None
    return round(filters / BASE_CHANNELS[0], 3)


def build(arch: str, width: float = 1.0) -> keras.Model:
    if arch == "seed":
        return seed_model()
    if arch == "default":
        return default_model(width)
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


# On x86 (XNNPACK), an int8 convolution with one input channel runs at a fraction of the speed
# of the others: the shipped network's first conv took 25 of its 41 us per digit for 11% of its
# MACs (the float one: 7 us); its kernels work on several input channels at once, and one
# channel wastes most of each step. ``for_int8`` hands the converter the same network with that
# conv on four channels: the image folded into 2x2 blocks (space to depth), a 3x3 conv over the
# blocks that computes the four pixels of each block at once, unfolded again (depth to space).
# Exact in float (4x the first conv's MACs, all of them zero-padded taps); 41 -> 30 us per digit.
S2D_BLOCK = 2


def _first_conv_on_blocks(kernel, scale, bias):
    """The weights of a 3x3, ``same``-padded conv on one channel (``kernel`` (3, 3, 1, F), each
    filter times ``scale`` plus ``bias``: a batch norm folded in) as a 3x3 conv over 2x2 blocks:
    (3, 3, 4, 4F) and its bias. Output channel (dy * 2 + dx) * F + f is filter f at pixel
    (dy, dx) of the block, the order depth-to-space unfolds; input channel sy * 2 + sx is
    pixel (sy, sx) of a block, the order space-to-depth folds."""
    f = kernel.shape[-1]
    b = S2D_BLOCK
    out = np.zeros((3, 3, b * b, b * b * f), np.float32)
    for dy in range(b):
        for dx in range(b):
            o = (dy * b + dx) * f
            for i in (-1, 0, 1):
                for j in (-1, 0, 1):
                    # Pixel (2Y + dy + i, 2X + dx + j) lies in block (Y + by, X + bx).
                    by, sy = divmod(dy + i, b)
                    bx, sx = divmod(dx + j, b)
                    out[by + 1, bx + 1, sy * b + sx, o : o + f] = kernel[i + 1, j + 1, 0] * scale
    return out, np.tile(bias, b * b).astype(np.float32)


def for_int8(model: keras.Model) -> keras.Model:
    """The model to convert to int8: the default network with its first conv (and its batch
    norm and ReLU) on 2x2 blocks, see S2D_BLOCK; any other model as it is. Built for
    conversion only (it holds TensorFlow ops), never saved."""
    import tensorflow as tf

    names = [layer.name for layer in model.layers]
    if model.name != "default" or names[1:4] != ["c1_conv", "c1_bn", "c1_relu"]:
        return model
    conv, bn = model.get_layer("c1_conv"), model.get_layer("c1_bn")
    gamma, beta, mean, var = bn.get_weights()
    scale = gamma / np.sqrt(var + bn.epsilon)
    kernel, bias = _first_conv_on_blocks(conv.get_weights()[0], scale, beta - mean * scale)
    inputs = keras.Input(INPUT_SHAPE, name="digit")
    x = layers.Lambda(lambda t: tf.nn.space_to_depth(t, S2D_BLOCK), name="c1_fold")(inputs)
    blocks = layers.Conv2D(kernel.shape[-1], 3, padding="same", activation="relu", name="c1_blocks")
    x = blocks(x)
    blocks.set_weights([kernel, bias])
    x = layers.Lambda(lambda t: tf.nn.depth_to_space(t, S2D_BLOCK), name="c1_unfold")(x)
    for layer in model.layers[4:]:  # a chain: each layer takes the one before
        x = layer(x)
    return keras.Model(inputs, x, name="default_int8")
