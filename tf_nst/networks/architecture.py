"""The transform network's shape as plain numbers, without Keras.

`tf_nst.networks.transform` builds the network from these constants; the memory plans
(`tf_nst.networks.memory`) and the tiling (`tf_nst.networks.tiling`) count with them before
TensorFlow loads.
"""

from __future__ import annotations

RESIDUAL_BLOCKS = 5
# The two stride-2 convolutions divide the size by 4.
SIZE_MULTIPLE = 4
# Reflection padding needs a side of at least 2 at quarter resolution (3x3 convolutions) and of
# 5 at full resolution (9x9): padding to 8 covers both.
MINIMUM_SIDE = 8


def padded_side(side: int) -> int:
    """The side the network pads an image side to: a multiple of 4, at least 8."""
    return max(MINIMUM_SIDE, -(-side // SIZE_MULTIPLE) * SIZE_MULTIPLE)


def convolutions(network_width: int) -> list[tuple[int, int, int, int]]:
    """(kernel side, input channels, output channels, pixel divisor) of every convolution.

    The pixel divisor is 1 at full resolution, 4 at half and 16 at quarter resolution.
    """
    channels = (network_width, 2 * network_width, 4 * network_width)
    return [
        (9, 3, channels[0], 1),
        (3, channels[0], channels[1], 4),
        (3, channels[1], channels[2], 16),
        *[(3, channels[2], channels[2], 16)] * (2 * RESIDUAL_BLOCKS),
        (3, channels[2], channels[1], 4),
        (3, channels[1], channels[0], 1),
        (9, channels[0], 3, 1),
    ]


def parameter_count(network_width: int) -> int:
    """The network's weights: kernels, plus a scale and an offset per normalised channel."""
    layers = convolutions(network_width)
    kernels = sum(side * side * inputs * outputs for side, inputs, outputs, _ in layers)
    # Every convolution but the last is normalised; the last has a bias instead.
    norms = sum(2 * outputs for _, _, outputs, _ in layers[:-1])
    return kernels + norms + 3


def channel_pixels(height: int, width: int, network_width: int) -> int:
    """Output elements of all convolutions of one forward pass on one padded image."""
    pixels = padded_side(height) * padded_side(width)
    layers = convolutions(network_width)
    return sum(pixels // divisor * outputs for _, _, outputs, divisor in layers)
