"""How much memory the style networks take: applying one (and when to tile), and training one.

Applying: a fixed runtime base plus bytes per padded pixel that grow with the network's width;
`benchmarks/apply_benchmark.py` re-measures it. `plan_photo` adds decoding the photo at the size
the run needs, and refuses a photo that cannot be stylized even in tiles.

Training: the step's activations (the backbone's forward and backward pass on the stylized batch
through the deepest layer, the photos' content features, and the transform network's activations
at its width), the weights with their gradients, Adam moments and copies, the validation photos,
and the style images' forward pass at their working size; `check_train_fits` refuses a training
that cannot fit before TensorFlow loads, as `tf_nst.optimize.memory.check_fits` does for the
optimisation. Nothing here needs TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from tf_nst.errors import StyleTransferError
from tf_nst.image import decoding
from tf_nst.memory import (
    BYTES_PER_ELEMENT,
    JIT_FACTOR,
    RUNTIME_BASE_BYTES,
    available_bytes,
    backbone_elements,
    format_bytes,
    forward_pass_bytes,
)
from tf_nst.networks.architecture import (
    SIZE_MULTIPLE,
    channel_pixels,
    padded_side,
    parameter_count,
)
from tf_nst.networks.tiling import TILE_BLEND, TILE_HALO
from tf_nst.sizes import (
    MAX_PIXELS,
    check_style_sizes,
    floor_reason,
    minimum_working_side,
    working_shape,
)

# Share of the available memory one image may use; the rest is headroom for the decoded inputs,
# the outputs and the other processes of the machine.
MEMORY_FRACTION = 0.7
# Peak memory of applying the network: a fixed runtime base (TensorFlow and the loaded SavedModel)
# plus bytes per padded pixel, growing with the network's width. Fitted to the peak resident
# memory of one call at 1024 and 2048 px for widths 4, 16 and 32 on the CPU (per pixel above the
# base: fp32 156, 420, 785-883 bytes; bf16 104, 220, 421-533 bytes), rounded up so that every
# measured run stays under the estimate; benchmarks/apply_benchmark.py re-measures it.
APPLY_BYTES_PER_PIXEL = 100.0
APPLY_BYTES_PER_PIXEL_CHANNEL = {"fp32": 28.0, "bf16": 16.0, "fp16": 16.0}
# The tiled path's full-size float32 buffers besides the network: the image, the blended result
# and its weight sum (3 + 3 + 1 values), plus the copy a caller holds of the result.
TILED_BYTES_PER_PIXEL = 40


def estimate_apply_bytes(
    height: int, width: int, network_width: int = 32, precision: str = "fp32", batch: int = 1
) -> int:
    """Returns the estimated peak resident memory of stylizing `batch` images of this size.

    Args:
        height: Image height in pixels.
        width: Image width in pixels.
        network_width: The network's `width` (channels of its first layer).
        precision: "fp32", "bf16" or "fp16".
        batch: Images per call.
    """
    pixels = batch * padded_side(height) * padded_side(width)
    return int(RUNTIME_BASE_BYTES + pixels * _bytes_per_pixel(network_width, precision))


def _bytes_per_pixel(network_width: int, precision: str) -> float:
    return APPLY_BYTES_PER_PIXEL + APPLY_BYTES_PER_PIXEL_CHANNEL[precision] * network_width


def _fitting_pixels(
    height: int, width: int, network_width: int, precision: str, available: int
) -> float:
    """The pixels one call may take beside the tiled path's full-size buffers."""
    budget = MEMORY_FRACTION * available - RUNTIME_BASE_BYTES
    budget -= TILED_BYTES_PER_PIXEL * height * width
    return budget / _bytes_per_pixel(network_width, precision)


def choose_tile_size(
    height: int,
    width: int,
    network_width: int = 32,
    precision: str = "fp32",
    available: int | None = None,
) -> int | None:
    """Returns the tile side for stylizing a `height` x `width` image, or None if it fits whole.

    The budget is `MEMORY_FRACTION` of `available` (by default Linux's MemAvailable, as
    `tf_nst.memory` reads it). A tile is a square whose core plus its halo on both sides fits
    beside the full-size buffers of the tiled path (`TILED_BYTES_PER_PIXEL`).

    Raises:
        StyleTransferError: If not even the smallest tile fits.
    """
    available = available_bytes() if available is None else available
    if available is None:
        return None
    budget = MEMORY_FRACTION * available
    if estimate_apply_bytes(height, width, network_width, precision) <= budget:
        return None
    fitting = _fitting_pixels(height, width, network_width, precision, available)
    side = math.isqrt(max(0, int(fitting)))
    core = (side - 2 * (TILE_HALO + TILE_BLEND)) // SIZE_MULTIPLE * SIZE_MULTIPLE
    if core < 2 * TILE_BLEND:
        raise StyleTransferError(
            f"only {format_bytes(available)} of memory is available, too little to stylize even "
            "one tile: close other programs or use a smaller --size"
        )
    return core


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
    """How an image will be stylized and its estimated peak memory (`plan_memory`).

    Attributes:
        whole_bytes: The estimated peak of stylizing the image in one call.
        tile_size: The tiles' core side, or None when the image is stylized whole.
        peak_bytes: The estimated peak of the chosen way (whole, or tiles plus the full-size
            buffers and the statistics pass), or of decoding the image if that is more.
        available: The memory planned for, or None if it could not be read.
    """

    whole_bytes: int
    tile_size: int | None
    peak_bytes: int
    available: int | None


def plan_memory(
    height: int,
    width: int,
    network_width: int = 32,
    precision: str = "fp32",
    available: int | None = None,
    decode_bytes: int = 0,
) -> MemoryPlan:
    """Decides whether a `height` x `width` image is tiled, and estimates the peak memory.

    Args:
        height: The image's height as stylized, in pixels.
        width: Its width.
        network_width: The network's `width`.
        precision: "fp32", "bf16" or "fp16".
        available: Bytes of memory to plan for; None reads `tf_nst.memory.available_bytes`.
        decode_bytes: The peak of decoding the image (`decoding.decode_peak_bytes`), which comes
            before the stylization and beside the same runtime.

    Raises:
        StyleTransferError: If not even the smallest tile fits.
    """
    available = available_bytes() if available is None else available
    whole = estimate_apply_bytes(height, width, network_width, precision)
    decode = RUNTIME_BASE_BYTES + decode_bytes
    tile_size = choose_tile_size(height, width, network_width, precision, available)
    if tile_size is None:
        return MemoryPlan(whole, None, max(whole, decode), available)
    extent = tile_size + 2 * (TILE_HALO + TILE_BLEND)
    tiles = estimate_apply_bytes(extent, extent, network_width, precision)
    # The statistics pass runs at the largest size that fits the same budget as a tile.
    statistics = int(MEMORY_FRACTION * available) - TILED_BYTES_PER_PIXEL * height * width
    peak = max(tiles, statistics) + TILED_BYTES_PER_PIXEL * height * width
    return MemoryPlan(whole, tile_size, max(peak, decode), available)


def plan_photo(
    info: decoding.ImageInfo,
    size: int | None,
    network_width: int = 32,
    precision: str = "fp32",
    available: int | None = None,
    label: str = "the image",
) -> MemoryPlan:
    """Plans stylizing one photo at `size` before anything is decoded, from its header.

    The photo is decoded reduced to `size` (`decoding.load_image(path, long_side=size)`) and a
    smaller one is then scaled up, so the estimate counts that decoding, and the float work of
    scaling up, beside the stylization.

    Args:
        info: The photo's header (`decoding.read_image_info`).
        size: The long side of the output (`size` of `ApplyConfig`); None keeps the photo's.
        network_width: The network's `width`.
        precision: "fp32", "bf16" or "fp16".
        available: Bytes of memory to plan for; None reads `tf_nst.memory.available_bytes`.
        label: How to name the photo in messages.

    Raises:
        StyleTransferError: If the output would have more than `tf_nst.sizes.MAX_PIXELS` pixels,
            or cannot be decoded or stylized (even in tiles) in the memory available.
    """
    height, width = info.shape if size is None else working_shape(info.shape, size)
    if height * width > MAX_PIXELS:
        raise StyleTransferError(
            f"`size` {size} makes {label} {width}x{height} px, over the limit of {MAX_PIXELS} "
            "pixels for any working image: lower `size`"
        )
    decode = decoding.decode_peak_bytes(info, size)
    if size is not None and size > max(info.shape):
        decode += decoding.FLOAT_WORK_BYTES_PER_PIXEL * height * width
    plan = plan_memory(height, width, network_width, precision, available, decode)
    if plan.available is not None and plan.peak_bytes > plan.available:
        raise StyleTransferError(
            f"{label} needs about {format_bytes(plan.peak_bytes)} to decode and stylize at "
            f"{width}x{height} px but only {format_bytes(plan.available)} is available: "
            "lower `size`, or close other programs"
        )
    return plan


def largest_fitting_side(
    height: int,
    width: int,
    network_width: int = 32,
    precision: str = "fp32",
    available: int | None = None,
) -> int:
    """Returns the long side of the largest copy of an image that one call can stylize.

    The tiled path measures its normalisation statistics on that copy.
    """
    available = available_bytes() if available is None else available
    long_side = max(height, width)
    if available is None:
        return long_side
    fitting_pixels = max(64.0, _fitting_pixels(height, width, network_width, precision, available))
    scale = min(1.0, math.sqrt(fitting_pixels / (height * width)))
    return max(SIZE_MULTIPLE, int(long_side * scale))


# --- training ------------------------------------------------------------------------------------

# Live copies of each backbone activation in a training step: the stylized batch's forward pass
# kept for the backward pass, the crops' content features, the gradients and the convolutions'
# workspaces. Fitted on the CPU to the peak resident memory of short trainings, rounded up.
TRAIN_BACKBONE_COPIES = 2.5
# Bytes per output element of the transform network's convolutions in a training step, by
# precision: the outputs, their normalised and rectified copies, their gradients, and the
# unfolded input of the widest convolution's weight gradient. Fitted as above, rounded up.
TRAIN_TRANSFORM_BYTES = {"fp32": 72.0, "bf16": 48.0, "fp16": 48.0}
# Float32 copies of every transform network weight alive at once: the variables, their
# gradients, Adam's two moments, the best weights, the best network rebuilt at the end and one
# network per exported precision, and the arrays that carry the weights between them.
TRAIN_WEIGHT_COPIES = 10
# Float32 copies of the validation photos: the decoded batch, its tensor, the stylized results
# and their TensorBoard pictures.
VALIDATION_COPIES = 4
# Batches of photo crops the input pipeline holds ahead of the step.
PREFETCHED_BATCHES = 4


@dataclasses.dataclass(frozen=True)
class TrainMemory:
    """A training's estimated peak memory and its parts (`estimate_train_bytes`), in bytes.

    Attributes:
        peak_bytes: The estimated peak of the whole run.
        step_bytes: One training step's activations and the input pipeline's batches.
        weight_bytes: The networks' weights and their copies (gradients, Adam moments, best).
        style_bytes: Decoding the style images and their forward pass at the working size.
    """

    peak_bytes: int
    step_bytes: int
    weight_bytes: int
    style_bytes: int


def estimate_train_bytes(
    config, styles: Sequence[decoding.ImageInfo], precision: str | None = None
) -> TrainMemory:
    """Estimates the peak resident memory of a training, from the config and the styles' headers.

    It assumes the style images are loaded as the CLI loads them, at their working size
    (`decoding.load_image(path, long_side=config.style_side)`), and counts

    * the runtime (`RUNTIME_BASE_BYTES`);
    * the weights: the backbone's, and every copy of the transform network's
      (`TRAIN_WEIGHT_COPIES`);
    * the validation photos at `size`, and the style images kept;
    * the largest of these moments: decoding a style image and its forward pass at its working
      size; one training step on `batch_size` crops of `size` x `size` (the backbone's forward
      and backward pass through the deepest layer with the crops' content features, and the
      transform network's activations at its `width`, with `jit` scaling the activations as for
      the optimisation; with `coarse_style_weight`, the backbone's pass of the output at half
      size as well) beside the input pipeline's prefetched batches.

    Args:
        config: The `TrainConfig`.
        styles: The style images' headers (`decoding.read_image_info`).
        precision: The resolved precision; by default the config's, with "auto" counted as the
            larger "fp32" (telling bf16 hardware apart needs TensorFlow).
    """
    if precision is None:
        precision = "fp32" if config.precision == "auto" else config.precision
    element_bytes = BYTES_PER_ELEMENT.get(precision, 4)
    size, batch = config.size, config.batch_size
    layers = tuple(dict.fromkeys(tuple(config.content_layers) + tuple(config.style_layers)))
    backbone, backbone_weights = backbone_elements(size, size, config.backbone, layers)
    if config.coarse_style_weight:
        # The coarse style loss sends the output, reduced to half its size, through the style
        # layers as well, forward and backward.
        half = max(1, size // 2)
        backbone += backbone_elements(half, half, config.backbone, config.style_layers)[0]
    transform = channel_pixels(size, size, config.width)
    activations = (
        TRAIN_BACKBONE_COPIES * backbone * element_bytes
        + TRAIN_TRANSFORM_BYTES.get(precision, TRAIN_TRANSFORM_BYTES["fp32"]) * transform
    ) * (JIT_FACTOR if config.jit else 1.0)
    step = batch * (activations + PREFETCHED_BATCHES * size * size * 3 * 4)
    weights = (
        # The backbone's variables (and their cast copies under mixed precision), and the arrays
        # read from the weights file while they load.
        backbone_weights * 4 * (2 if precision == "fp32" else 2.5)
        + TRAIN_WEIGHT_COPIES * parameter_count(config.width) * 4
    )
    validation = VALIDATION_COPIES * config.validation * size * size * 3 * 4
    style_side = config.style_side
    kept = sum(4 * 3 * math.prod(decoding.loaded_shape(style, style_side)) for style in styles)
    style = max(
        (
            max(
                decoding.decode_peak_bytes(style, style_side),
                forward_pass_bytes(
                    working_shape(style.shape, style_side), config.backbone, layers, precision
                ),
            )
            for style in styles
        ),
        default=0,
    )
    peak = RUNTIME_BASE_BYTES + weights + validation + kept + max(step, style)
    return TrainMemory(int(peak), int(step), int(weights), int(style))


def check_train_sizes(config, style_shapes: Sequence[Sequence[int]]) -> None:
    """Checks a training's crop size and its style images' working sizes, before any decoding.

    Args:
        config: The `TrainConfig`.
        style_shapes: (height, width, ...) of each style image.

    Raises:
        StyleTransferError: For crops below the size the layers need or over
            `tf_nst.sizes.MAX_PIXELS`, or a style image too small or too large at `style_size`.
    """
    layers = tuple(config.content_layers) + tuple(config.style_layers)
    minimum = minimum_working_side(layers)
    if config.size < minimum:
        raise StyleTransferError(
            f"`size` {config.size} is below the {minimum} px {floor_reason(layers)} needs: "
            "raise `size`"
        )
    if config.size * config.size > MAX_PIXELS:
        raise StyleTransferError(
            f"`size` {config.size} makes training crops of {config.size}x{config.size} px, over "
            f"the limit of {MAX_PIXELS} pixels for any working image: lower `size`"
        )
    side = config.style_side
    check_style_sizes(style_shapes, side, side, "style_size", side, layers)
    if config.coarse_style_weight:
        style_layers = tuple(config.style_layers)
        style_minimum = minimum_working_side(style_layers)
        if config.size // 2 < style_minimum or side // 2 < style_minimum:
            raise StyleTransferError(
                f"`coarse_style_weight` compares the crops and style images at half size "
                f"({config.size // 2} and {side // 2} px), below the {style_minimum} px "
                f"{floor_reason(style_layers)} needs: raise `size` and `style_size`, or set "
                "`coarse_style_weight` 0"
            )


def check_train_fits(
    config,
    styles: Sequence[decoding.ImageInfo],
    precision: str | None = None,
    available: int | None = None,
) -> TrainMemory:
    """Refuses a training whose estimated peak exceeds the memory available.

    The sizes are checked first (`check_train_sizes`); the message names the setting whose part
    of the estimate (`estimate_train_bytes`) is the largest.

    Returns:
        The estimate.

    Raises:
        StyleTransferError: With the estimate, what is available and what to change.
    """
    check_train_sizes(config, [style.shape for style in styles])
    estimate = estimate_train_bytes(config, styles, precision)
    available = available_bytes() if available is None else available
    if available is None or estimate.peak_bytes <= available:
        return estimate
    needs = (
        f"needs about {format_bytes(estimate.peak_bytes)} but only {format_bytes(available)} is "
        "available"
    )
    largest = max(estimate.step_bytes, estimate.weight_bytes, estimate.style_bytes)
    if largest == estimate.weight_bytes:
        message = (
            f"`width` {config.width} {needs} (its weights and their training copies alone take "
            f"{format_bytes(estimate.weight_bytes)}): lower `width` (32 is Johnson's network)"
        )
    elif largest == estimate.style_bytes:
        message = (
            f"`style_size` {config.style_side} {needs} (the style images' pass at that size "
            f"takes {format_bytes(estimate.style_bytes)}): lower `style_size`"
        )
    else:
        message = (
            f"`size` {config.size} with `batch_size` {config.batch_size} {needs}: lower `size` "
            "or `batch_size`, or use `precision` bf16 or a smaller `width`"
        )
    raise StyleTransferError(message)
