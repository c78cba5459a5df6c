"""The feed-forward style network of Johnson et al. 2016, with the field's later fixes.

Layout for `width` w (Johnson's network is w = 32, 1.68 M parameters):

    stem        reflection pad 4, 9x9 conv, w channels,  instance norm, ReLU
    down1, 2    reflection pad 1, 3x3 conv stride 2, 2w then 4w channels, instance norm, ReLU
    residual1-5 two reflection-padded 3x3 convs of 4w channels with instance norm, plus the input
    up1, 2      nearest 2x upsampling, reflection pad 1, 3x3 conv, 2w then w channels, norm, ReLU
    output      reflection pad 4, 9x9 conv to 3 channels, sigmoid

The changes from the paper: resize-then-convolve upsampling instead of transposed convolutions,
which leave a checkerboard (Odena et al. 2016); instance normalisation instead of batch
normalisation (Ulyanov et al. 2016); reflection padding instead of zeros, so the borders carry no
dark frame; and no ReLU after a residual sum (Gross and Wilber 2016).

Contract: float32 RGB in [0, 1], `[batch, height, width, 3]`, any height and width. The network
pads its input to a multiple of 4 (so the two stride-2 convolutions and the two upsamplings
return to the same size) and to at least `MINIMUM_SIDE`, and crops the result back. The output
is float32 in [0, 1] whatever the precision.

Instance normalisation is our own layer rather than `keras.layers.GroupNormalization`: it computes
the same thing (in float32 under mixed precision), but its statistics are an explicit, optional
input (`InstanceNormalization.call(inputs, statistics)`). `transform` wires the network so that
every norm either measures its own input's statistics and reports them, or uses given ones. That
is what lets `tf_nst.networks.tiling` process a huge image in tiles that all see the whole
image's statistics, so the tiles agree with the untiled result instead of each normalising
itself.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras
from keras import ops

from tf_nst.errors import StyleTransferError
from tf_nst.networks.architecture import (
    MINIMUM_SIDE,
    RESIDUAL_BLOCKS,
    SIZE_MULTIPLE,
    convolutions,
    padded_side,
)
from tf_nst.precision import PRECISION_POLICIES

INSTANCE_NORM_EPSILON = 1e-5


@keras.saving.register_keras_serializable(package="tf_nst")
class ReflectionPadding2D(keras.layers.Layer):
    """Pads height and width by `padding` pixels on each side, mirroring the image."""

    def __init__(self, padding: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, inputs):
        """Returns `inputs` reflected by `padding` pixels at each border."""
        size = self.padding
        return ops.pad(inputs, [[0, 0], [size, size], [size, size], [0, 0]], mode="reflect")

    def compute_output_shape(self, input_shape):
        """Returns the shape grown by the padding on both sides."""
        batch, height, width, channels = input_shape
        grow = 2 * self.padding
        return (
            batch,
            None if height is None else height + grow,
            None if width is None else width + grow,
            channels,
        )

    def get_config(self):
        """Returns the layer's configuration for serialisation."""
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package="tf_nst")
class PadToMultiple(keras.layers.Layer):
    """Pads height and width at the bottom and right to a multiple of `multiple`, >= `minimum`.

    The padding mirrors the image (periodically, so that even a 1-pixel side can grow to
    `minimum`); `CropToReference` removes it again at the end.
    """

    def __init__(self, multiple: int = SIZE_MULTIPLE, minimum: int = MINIMUM_SIDE, **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)
        self.minimum = int(minimum)

    def _mirror(self, inputs, axis):
        length = ops.shape(inputs)[axis]
        target = ops.maximum(self.minimum, -(-length // self.multiple) * self.multiple)
        period = 2 * length
        positions = ops.arange(target) % period
        indices = ops.where(positions < length, positions, period - 1 - positions)
        return ops.take(inputs, indices, axis=axis)

    def call(self, inputs):
        """Returns `inputs` padded to the next valid size."""
        return self._mirror(self._mirror(inputs, 1), 2)

    def compute_output_shape(self, input_shape):
        """Returns the shape with unknown height and width."""
        return (input_shape[0], None, None, input_shape[3])

    def get_config(self):
        """Returns the layer's configuration for serialisation."""
        return {**super().get_config(), "multiple": self.multiple, "minimum": self.minimum}


@keras.saving.register_keras_serializable(package="tf_nst")
class CropToReference(keras.layers.Layer):
    """Crops `[images, reference]` to the reference's height and width, from the top left."""

    def call(self, inputs):
        """Returns the top-left part of `inputs[0]` the size of `inputs[1]`."""
        images, reference = inputs
        shape = ops.shape(reference)
        return images[:, : shape[1], : shape[2], :]

    def compute_output_shape(self, input_shape):
        """Returns the images' shape with the reference's height and width."""
        images_shape, reference_shape = input_shape
        return (images_shape[0], reference_shape[1], reference_shape[2], images_shape[3])


@keras.saving.register_keras_serializable(package="tf_nst")
class InstanceNormalization(keras.layers.Layer):
    """Normalises each channel of each image over its height and width, then scales and shifts.

    The mean and variance are computed in float32 even under a mixed policy: over a 2048 px image
    a bfloat16 sum has too few bits. `call` takes them as an optional input instead, which is how
    tiles of one image share the whole image's statistics.
    """

    def __init__(self, epsilon: float = INSTANCE_NORM_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        """Creates the per-channel scale and shift."""
        channels = input_shape[-1]
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")

    def moments(self, inputs):
        """Returns the per-image, per-channel mean and variance, float32 `[batch, channels]`."""
        return ops.moments(ops.cast(inputs, "float32"), axes=(1, 2))

    def call(self, inputs, statistics=None):
        """Returns the normalised `inputs`, in the layer's compute dtype.

        Args:
            inputs: `[batch, height, width, channels]`.
            statistics: None to normalise by the inputs' own statistics, or `(mean, variance)`,
                each `[batch or 1, channels]`, to use instead (`moments` of another image).
        """
        values = ops.cast(inputs, "float32")
        mean, variance = self.moments(inputs) if statistics is None else statistics
        channels = values.shape[-1]
        mean = ops.reshape(ops.cast(mean, "float32"), (-1, 1, 1, channels))
        variance = ops.reshape(ops.cast(variance, "float32"), (-1, 1, 1, channels))
        scale = ops.rsqrt(variance + self.epsilon) * ops.cast(self.gamma, "float32")
        shift = ops.cast(self.beta, "float32") - mean * scale
        return ops.cast(values * scale + shift, self.compute_dtype)

    def get_config(self):
        """Returns the layer's configuration for serialisation."""
        return {**super().get_config(), "epsilon": self.epsilon}


def normalization_layers(model: keras.Model) -> list[InstanceNormalization]:
    """Returns the instance norms of `model` in network order."""
    return [layer for layer in model.layers if isinstance(layer, InstanceNormalization)]


def layers_by_name(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """Returns the layers of a network from `build_transform_network`, by name, for `transform`."""
    return {layer.name: layer for layer in model.layers}


def transform(
    layers: Mapping[str, keras.layers.Layer],
    images,
    statistics: Mapping | None = None,
    record: bool = False,
):
    """Wires the network's layers, with the instance norms' statistics explicit.

    `build_transform_network` builds its functional model with it, and the SavedModel's
    statistics signatures (`tf_nst.networks.export`) call it on tensors.

    Args:
        layers: The network's layers by name (`layers_by_name`).
        images: float32 `[batch, height, width, 3]` in [0, 1].
        statistics: None, or norm layer name to `(mean, variance)` for every norm to use instead
            of its input's, as `record=True` returns them.
        record: Also return the statistics each norm used.

    Returns:
        The stylized images, float32 in [0, 1]; with `record`, also a dict of norm layer name to
        `(mean, variance)`, each float32 `[batch, channels]`.
    """
    used = {}
    layer = layers.__getitem__

    def convolve(hidden, name, normalize=True, activation=True):
        hidden = layer(name)(layer(f"{name}_pad")(hidden))
        if normalize:
            norm = layer(f"{name}_norm")
            given = None if statistics is None else statistics[norm.name]
            if given is None and record:
                given = norm.moments(hidden)
            if given is not None:
                used[norm.name] = given
            hidden = norm(hidden) if given is None else norm(hidden, statistics=given)
        if activation:
            hidden = layer(f"{name}_relu")(hidden)
        return hidden

    hidden = layer("pad_to_multiple")(images)
    for name in ("stem", "down1", "down2"):
        hidden = convolve(hidden, name)
    for block in range(1, RESIDUAL_BLOCKS + 1):
        shortcut = hidden
        hidden = convolve(hidden, f"residual{block}_conv1")
        hidden = convolve(hidden, f"residual{block}_conv2", activation=False)
        hidden = layer(f"residual{block}_add")([shortcut, hidden])
    for index in (1, 2):
        hidden = convolve(layer(f"up{index}_resize")(hidden), f"up{index}")
    hidden = convolve(hidden, "output", normalize=False, activation=False)
    stylized = layer("crop")([layer("output_sigmoid")(hidden), images])
    return (stylized, used) if record else stylized


def build_transform_network(width: int = 32, precision: str = "fp32") -> keras.Model:
    """Builds the style network (see the module docstring for its layout).

    Args:
        width: Channels of the first layer; the downsampled layers have 2x and 4x as many. 32 is
            Johnson et al.'s network (1.68 M parameters); 16 costs about a quarter.
        precision: "fp32", "bf16" or "fp16": the compute dtype of the convolutions. Variables,
            normalisation statistics and the output stay float32.

    Returns:
        An uncompiled `keras.Model` from float32 `[batch, height, width, 3]` in [0, 1] to float32
        of the same shape in [0, 1].

    Raises:
        StyleTransferError: For a width below 1 or an unknown precision.
    """
    if int(width) != width or width < 1:
        raise StyleTransferError(f"--width must be a positive integer, not {width!r}")
    if precision not in PRECISION_POLICIES:
        raise StyleTransferError(
            f"unknown precision {precision!r}: choose one of {', '.join(PRECISION_POLICIES)}"
        )
    width = int(width)
    policy = PRECISION_POLICIES[precision]
    layers = {}

    def add(layer):
        layers[layer.name] = layer

    def convolution(name, filters, kernel, strides=1, normalize=True, activation=True):
        add(ReflectionPadding2D(kernel // 2, name=f"{name}_pad", dtype=policy))
        # A bias before instance norm is subtracted again with the mean.
        add(
            keras.layers.Conv2D(
                filters, kernel, strides=strides, use_bias=not normalize, name=name, dtype=policy
            )
        )
        if normalize:
            add(InstanceNormalization(name=f"{name}_norm", dtype=policy))
        if activation:
            add(keras.layers.ReLU(name=f"{name}_relu", dtype=policy))

    add(PadToMultiple(name="pad_to_multiple", dtype="float32"))
    convolution("stem", width, 9)
    convolution("down1", 2 * width, 3, strides=2)
    convolution("down2", 4 * width, 3, strides=2)
    for block in range(1, RESIDUAL_BLOCKS + 1):
        convolution(f"residual{block}_conv1", 4 * width, 3)
        convolution(f"residual{block}_conv2", 4 * width, 3, activation=False)
        add(keras.layers.Add(name=f"residual{block}_add", dtype=policy))
    for index, filters in enumerate((2 * width, width), start=1):
        add(keras.layers.UpSampling2D(2, name=f"up{index}_resize", dtype=policy))
        convolution(f"up{index}", filters, 3)
    convolution("output", 3, 9, normalize=False, activation=False)
    # A sigmoid maps to [0, 1] exactly and keeps a gradient everywhere; it is the scaled tanh of
    # the paper in another form (sigmoid(x) = (tanh(x / 2) + 1) / 2), without a clip that would
    # zero the gradient of saturated pixels. float32, so the output is float32 under any policy.
    add(keras.layers.Activation("sigmoid", name="output_sigmoid", dtype="float32"))
    add(CropToReference(name="crop", dtype="float32"))

    images = keras.Input(shape=(None, None, 3), dtype="float32", name="images")
    return keras.Model(images, transform(layers, images), name=f"transform_width{width}")


def count_flops(height: int, width: int, network_width: int = 32) -> int:
    """Returns the floating-point operations of one forward pass at `height` x `width`.

    Counts the convolutions only (2 operations per multiply-add); the normalisations, ReLUs and
    padding add under 1%. Sizes are those after `PadToMultiple`.
    """
    pixels = padded_side(height) * padded_side(width)
    return sum(
        2 * (pixels // divisor) * side * side * inputs * outputs
        for side, inputs, outputs, divisor in convolutions(network_width)
    )
