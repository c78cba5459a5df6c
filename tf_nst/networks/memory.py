"""How much memory applying a style network takes, and when an image must be tiled.

The estimate is a fixed runtime base plus bytes per padded pixel that grow with the network's
width; `benchmarks/apply_benchmark.py` re-measures it. It needs no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math

from tf_nst.errors import StyleTransferError
from tf_nst.memory import RUNTIME_BASE_BYTES, available_bytes, format_bytes
from tf_nst.networks.tiling import TILE_BLEND, TILE_HALO
from tf_nst.networks.transform import SIZE_MULTIPLE

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


def padded_side(side: int) -> int:
    """The side the network pads an image side to: a multiple of 4, at least 8."""
    return max(8, -(-side // SIZE_MULTIPLE) * SIZE_MULTIPLE)


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
            buffers and the statistics pass).
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
) -> MemoryPlan:
    """Decides whether a `height` x `width` image is tiled, and estimates the peak memory.

    Raises:
        StyleTransferError: If not even the smallest tile fits.
    """
    available = available_bytes() if available is None else available
    whole = estimate_apply_bytes(height, width, network_width, precision)
    tile_size = choose_tile_size(height, width, network_width, precision, available)
    if tile_size is None:
        return MemoryPlan(whole, None, whole, available)
    extent = tile_size + 2 * (TILE_HALO + TILE_BLEND)
    tiles = estimate_apply_bytes(extent, extent, network_width, precision)
    # The statistics pass runs at the largest size that fits the same budget as a tile.
    statistics = int(MEMORY_FRACTION * available) - TILED_BYTES_PER_PIXEL * height * width
    peak = max(tiles, statistics) + TILED_BYTES_PER_PIXEL * height * width
    return MemoryPlan(whole, tile_size, peak, available)


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
