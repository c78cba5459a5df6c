"""The optimisation's coarse-to-fine scale plan and the check of its image sizes.

Pure Python (no numpy, no TensorFlow), so the CLI can plan a run, check its image sizes and
estimate its memory before TensorFlow loads, from nothing but the images' headers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from tf_nst.errors import StyleTransferError
from tf_nst.sizes import (
    MAX_PIXELS,
    check_style_sizes,
    floor_reason,
    minimum_working_side,
    style_long_side,
    working_shape,
)

# Up to this long side one scale is cheap enough; above it, coarse-to-fine pays off twice: the
# coarse steps cost a quarter as much, and the strokes laid down at the coarse scale come out
# larger, closer to the painting's (benchmarks/README.md, "Scales", has the measurement).
MULTISCALE_THRESHOLD = 384
# The coarsest scale of an automatic pyramid.
COARSEST_SIDE = 256
# No scale of a pyramid gets fewer steps than this, or its upsampling artefacts stay.
MINIMUM_SCALE_STEPS = 20


@dataclasses.dataclass(frozen=True)
class Scale:
    """One level of the coarse-to-fine pyramid: its long side and its step count."""

    long_side: int
    steps: int


def plan_scales(size: int, steps: int, scales: int | None = None) -> list[Scale]:
    """Splits `steps` over a coarse-to-fine pyramid that ends at `size`.

    Each scale doubles the long side of the one before. Without an explicit `scales`, sizes up to
    `MULTISCALE_THRESHOLD` run at one scale and larger ones start near `COARSEST_SIDE`. Coarse
    steps are cheap (a quarter of the pixels of the next scale), so most steps go there: scale k of
    n gets a share proportional to 2^(n - 1 - k).

    Args:
        size: Long side of the output.
        steps: Total steps over all scales.
        scales: Number of scales, or None to choose by size.

    Returns:
        The scales, coarsest first, with steps summing to `steps`.
    """
    if scales is None:
        scales = 1
        if size > MULTISCALE_THRESHOLD:
            scales = 1 + math.ceil(math.log2(size / COARSEST_SIDE) - 1e-9)
    scales = max(1, min(scales, steps))
    sides = [max(1, round(size / 2 ** (scales - 1 - index))) for index in range(scales)]
    shares = [2 ** (scales - 1 - index) for index in range(scales)]
    minimum = min(MINIMUM_SCALE_STEPS, steps // scales)
    counts = [max(minimum, int(steps * share / sum(shares))) for share in shares]
    counts[0] += steps - sum(counts)
    if counts[0] < minimum:  # the minimums overflowed the budget: take it back from the coarsest.
        counts = [steps // scales] * scales
        counts[-1] += steps - sum(counts)
    return [Scale(side, count) for side, count in zip(sides, counts, strict=True)]


def check_image_sizes(
    config,
    content_shape: Sequence[int],
    style_shapes: Sequence[Sequence[int]],
    content_name: str | None = None,
    style_names: Sequence[str] | None = None,
) -> list[Scale]:
    """Checks every image of a run against the size floor and ceiling; the one size check.

    It needs only the images' (height, width), which an image header gives, so the CLI calls it
    before decoding anything; `Optimization` calls it again for callers of the library.

    * Floor: every image must have at least `minimum_working_side(layers)` pixels per side, as a
      source (upscaling a smaller one would hand the network a blur with nothing to match) and at
      every scale's working size: the deepest layer needs 2^(poolings) pixels to be 1x1, and the
      total-variation term needs 2.
    * Ceiling: no working image may exceed `MAX_PIXELS` (the style at --style-scale).

    Args:
        config: The run's `StyleConfig` (size, steps, scales, style_scale and layers are read).
        content_shape: (height, width, ...) of the content image as loaded.
        style_shapes: (height, width, ...) of each style image as loaded.
        content_name: The content image's path, named in the message about a small source.
        style_names: The style images' paths, likewise.

    Returns:
        The scale plan, coarsest first.

    Raises:
        StyleTransferError: Naming the image, its size at the scale that fails and what to change.
    """
    layers = tuple(config.content_layers) + tuple(config.style_layers)
    minimum = minimum_working_side(layers)
    reason = floor_reason(layers)
    plan = plan_scales(config.size, config.steps, config.scales)
    style_names = list(style_names or [""] * len(style_shapes))
    sources = [("content image", content_name or "", content_shape)] + [
        ("style image", name, shape) for name, shape in zip(style_names, style_shapes, strict=True)
    ]
    for kind, name, shape in sources:
        height, width = int(shape[0]), int(shape[1])
        if min(height, width) < minimum:
            label = f"{kind} {name}" if name else f"the {kind}"
            raise StyleTransferError(
                f"{label} is only {width}x{height} px; {reason} needs at least {minimum} px per "
                "side: use a larger image (or shallower layers)"
            )
    coarsest = working_shape(content_shape, plan[0].long_side)
    if min(coarsest) < minimum:
        raise StyleTransferError(
            f"the content image works at {coarsest[1]}x{coarsest[0]} px at the coarsest scale, "
            f"below the {minimum} px {reason} needs: raise --size, lower --scales, or use a less "
            "elongated image"
        )
    largest = working_shape(content_shape, plan[-1].long_side)
    if largest[0] * largest[1] > MAX_PIXELS:
        raise StyleTransferError(
            f"--size {config.size} makes the content image {largest[1]}x{largest[0]} px, over "
            f"the limit of {MAX_PIXELS} pixels: use a smaller --size"
        )
    check_style_sizes(
        style_shapes,
        style_long_side(plan[0].long_side, config.style_scale),
        style_long_side(plan[-1].long_side, config.style_scale),
        "style_scale",
        config.style_scale,
        layers,
    )
    return plan
