"""Peak-memory estimate of a run, and the check that refuses runs that cannot fit.

The estimate is analytic: it counts the activations of every convolution the step runs at the
working size (they dominate), multiplies by how many copies the forward and backward pass keep
alive, and adds the weights and a fixed base for the runtime. `ACTIVATION_COPIES` and
`BASE_BYTES` were fitted to peak resident memory measured on the CPU at 256 to 2048 px, in bf16
and fp32 (`benchmarks/` re-measures it): peak = 799 MB + 1828 MB per megapixel in bf16,
R² = 0.9998, and these constants over-estimate every measured run by 2-10%. Memory grows
linearly in pixel count, so a coarse-to-fine run peaks at its largest scale.
"""

from __future__ import annotations

import os

from tf_nst.backbones import BLOCK_DEPTHS, BLOCK_FILTERS, layer_names
from tf_nst.errors import StyleTransferError

# Live copies of each activation during a training step: forward output, ReLU mask, gradient and
# the workspace of the convolution's backward pass. Fitted on the CPU; see the module docstring.
ACTIVATION_COPIES = 3.5
# TensorFlow, Keras and Python themselves: the intercept of the fit.
BASE_BYTES = 800 * 2**20
# XLA keeps more buffers alive: two benchmark runs measured 1.13-1.72x the non-XLA estimate.
JIT_FACTOR = 1.8
BYTES_PER_ELEMENT = {"fp32": 4, "bf16": 2, "fp16": 2}


def estimate_peak_bytes(
    height: int,
    width: int,
    backbone: str,
    layers,
    precision: str = "fp32",
    jit: bool = False,
    lbfgs_history: int = 0,
) -> int:
    """Returns the estimated peak resident memory of one step at `height` x `width`.

    Args:
        height: Working height in pixels.
        width: Working width in pixels.
        backbone: "vgg19" or "vgg16".
        layers: The layers the run reads; the network is cut after the deepest.
        precision: "fp32", "bf16" or "fp16" for the convolutions.
        jit: Whether the step is compiled with XLA.
        lbfgs_history: The correction pairs L-BFGS keeps, 0 for Adam. scipy holds them, and
            working vectors, in float64 on the host: (2 * history + 12) values per pixel and
            channel, fitted to the default 2048 px run (peak 8.74 GiB; estimate 8.75 GiB).
    """
    names = layer_names(backbone)
    deepest = max(names.index(name) for name in layers)
    activation_elements = 0
    weight_elements = 0
    block_height, block_width, channels_in = height, width, 3
    index = 0
    for block, depth in enumerate(BLOCK_DEPTHS[backbone]):
        filters = BLOCK_FILTERS[block]
        for _ in range(depth):
            if index > deepest:
                break
            activation_elements += block_height * block_width * filters
            weight_elements += 9 * channels_in * filters + filters
            channels_in = filters
            index += 1
        block_height, block_width = max(1, block_height // 2), max(1, block_width // 2)
    element_bytes = BYTES_PER_ELEMENT.get(precision, 4)
    # The image, its Adam moments and gradient stay float32 whatever the precision.
    image_bytes = 6 * height * width * 3 * 4
    lbfgs_bytes = (2 * lbfgs_history + 12) * height * width * 3 * 8 if lbfgs_history else 0
    return int(
        BASE_BYTES
        + ACTIVATION_COPIES * (JIT_FACTOR if jit else 1.0) * activation_elements * element_bytes
        + weight_elements * 4 * (1 if precision == "fp32" else 1.5)
        + image_bytes
        + lbfgs_bytes
    )


def available_bytes() -> int | None:
    """Returns the memory available to a new allocation (Linux MemAvailable), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError):
        return None


def check_fits(estimate: int, size: int, available: int | None = None) -> None:
    """Refuses a run whose estimated peak exceeds the available memory.

    Raises:
        StyleTransferError: With the estimate, what is available and what to change.
    """
    available = available_bytes() if available is None else available
    if available is not None and estimate > available:
        raise StyleTransferError(
            f"--size {size} needs about {format_bytes(estimate)} but only "
            f"{format_bytes(available)} is available: use a smaller --size, --precision bf16, "
            "or fewer deep layers (with --scales the peak is at the largest scale)"
        )


def format_bytes(count: float) -> str:
    """Formats a byte count as e.g. "1.5 GiB"."""
    for unit in ("B", "KiB", "MiB"):
        if abs(count) < 1024:
            return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1024
    return f"{count:.1f} GiB"
