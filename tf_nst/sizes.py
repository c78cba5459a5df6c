"""Image sizes that both paths share: working shapes, the size floor and the pixel ceiling.

Pure Python (no numpy, no TensorFlow), so the CLI can check a run's sizes from the images' headers
before anything is decoded or TensorFlow loads.
"""

from __future__ import annotations

from collections.abc import Sequence

from tf_nst.errors import StyleTransferError
from tf_nst.features.backbones import deepest_layer, minimum_input_side

MAX_PIXELS = 89_478_485
"""The most pixels an image may have: as decoded (Pillow's own decompression-bomb limit), and at
any working size. A style at a huge --style-scale would otherwise build tensors of billions of
elements before the memory check could say anything useful."""

# The total-variation term compares each pixel with its neighbour below and to the right; an
# image 1 pixel thin has no such pair, and the mean over none of them is NaN.
MINIMUM_WORKING_SIDE = 2


def working_shape(image_shape: Sequence[int], long_side: int) -> tuple[int, int]:
    """Returns (height, width) of an image of `image_shape` scaled to `long_side`."""
    height, width = int(image_shape[0]), int(image_shape[1])
    factor = long_side / max(height, width)
    return max(1, round(height * factor)), max(1, round(width * factor))


def style_long_side(long_side: int, style_scale: float) -> int:
    """Returns the long side of the style images at a working long side and `style_scale`."""
    return max(1, round(long_side * style_scale))


def minimum_working_side(layers: Sequence[str]) -> int:
    """Returns the smallest side any working image of a run over `layers` may have."""
    return max(MINIMUM_WORKING_SIDE, minimum_input_side(layers))


def floor_reason(layers: Sequence[str]) -> str:
    """What sets the size floor of `layers`, for messages: the deepest layer or the TV term."""
    if minimum_input_side(layers) >= minimum_working_side(layers):
        return f"the layer {deepest_layer(layers)}"
    return "the total-variation term"


def check_style_sizes(
    style_shapes: Sequence[Sequence[int]],
    smallest_long_side: int,
    largest_long_side: int,
    field: str,
    value: float,
    layers: Sequence[str],
) -> None:
    """Checks every style image at the smallest and largest long side a run gives it.

    Args:
        style_shapes: (height, width, ...) of each style image.
        smallest_long_side: The style's long side at the run's smallest working size.
        largest_long_side: Its long side at the largest.
        field: The config field that sets the style's size, named in the messages:
            "style_scale" (the optimisation, which also scales with `size`) or "style_size".
        value: Its value.
        layers: The run's content and style layers, which set the floor.

    Raises:
        StyleTransferError: Naming the style image, its working size and what to change.
    """
    remedy = f"`{field}`" + (" or `size`" if field == "style_scale" else "")
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    minimum = minimum_working_side(layers)
    for index, shape in enumerate(style_shapes, start=1):
        low = working_shape(shape, smallest_long_side)
        if min(low) < minimum:
            raise StyleTransferError(
                f"style image {index} works at {low[1]}x{low[0]} px, below the {minimum} px "
                f"{floor_reason(layers)} needs: raise {remedy}"
            )
        high = working_shape(shape, largest_long_side)
        if high[0] * high[1] > MAX_PIXELS:
            raise StyleTransferError(
                f"`{field}` {shown} makes style image {index} "
                f"{high[1]}x{high[0]} px, over the limit of {MAX_PIXELS} pixels for "
                f"any working image: lower {remedy}"
            )
