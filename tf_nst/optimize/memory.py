"""Peak-memory estimate of a run, and the check that refuses runs that cannot fit.

`estimate_run_bytes` covers a whole run: the runtime, decoding the images, the images it keeps,
the colour pre-processing, the style's features at --style-scale and the optimisation step at the
largest scale. It needs only the images' headers and the config, and imports neither TensorFlow
nor the network, so the CLI calls it before TensorFlow loads.

The step's part (`estimate_peak_bytes`) is analytic: it counts the activations of every
convolution the step runs at the working size (they dominate), multiplies by how many copies the
forward and backward pass keep alive, and adds the weights and a fixed base for the runtime. Its
constants were fitted to peak resident memory measured on the CPU (benchmarks/README.md,
"Memory", has the figures; `benchmarks/` re-measures them) so that they over-estimate every
measured run a little. Memory grows linearly in pixel count, so a coarse-to-fine run peaks at
its largest scale.
"""

from __future__ import annotations

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
from tf_nst.optimize.lbfgs import LBFGS_HISTORY
from tf_nst.optimize.scales import plan_scales
from tf_nst.sizes import style_long_side, working_shape

# Live copies of each activation during a training step: forward output, ReLU mask, gradient and
# the workspace of the convolution's backward pass. Fitted on the CPU; see the module docstring.
ACTIVATION_COPIES = 3.5
# Bytes per pixel of a float32 RGB image, which is how the run holds every image.
FLOAT_IMAGE_BYTES = 12
# Bytes per pixel of the colour pre-processing of --preserve-colors luminance or histogram, which
# works in float64 (colors.py): the image, its centred pixels, the matched result, and copies.
COLOR_WORK_BYTES = 120


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
            channel, fitted to the default 2048 px run (benchmarks/README.md, "Memory").
    """
    activation_elements, weight_elements = backbone_elements(height, width, backbone, layers)
    element_bytes = BYTES_PER_ELEMENT.get(precision, 4)
    # The image, its Adam moments and gradient stay float32 whatever the precision.
    image_bytes = 6 * height * width * 3 * 4
    lbfgs_bytes = (2 * lbfgs_history + 12) * height * width * 3 * 8 if lbfgs_history else 0
    return int(
        RUNTIME_BASE_BYTES
        + ACTIVATION_COPIES * (JIT_FACTOR if jit else 1.0) * activation_elements * element_bytes
        + weight_elements * 4 * (1 if precision == "fp32" else 1.5)
        + image_bytes
        + lbfgs_bytes
    )


def estimate_run_bytes(
    config,
    content: decoding.ImageInfo,
    styles: Sequence[decoding.ImageInfo],
    init: decoding.ImageInfo | None = None,
    precision: str | None = None,
) -> int:
    """Returns the estimated peak resident memory of a whole run, before anything is decoded.

    It assumes the images are loaded as the run needs them: `decoding.load_image(path,
    long_side=config.size)` for the content and an init image, and `long_side=style_long_side(
    config.size, config.style_scale)` for the styles (`load_sides` gives both). It counts

    * the runtime (`RUNTIME_BASE_BYTES`), always;
    * the images the run keeps, as float32, at their loaded sizes;
    * the largest of these moments: decoding the largest image (`decoding.decode_peak_bytes`);
      the colour pre-processing; extracting a style's features at its working size at the
      largest scale (the --style-scale term, forward pass only); the step at the largest scale
      (`estimate_peak_bytes`, with the L-BFGS history when the optimizer is L-BFGS).

    Args:
        config: The run's `StyleConfig`.
        content: The content image's header (`decoding.read_image_info`), or `ImageInfo(h, w)`.
        styles: The style images' headers.
        init: The header of an --init image, if the run starts from one.
        precision: The resolved precision; by default the config's, with "auto" counted as the
            larger "fp32" (telling bf16 hardware apart needs TensorFlow).

    Returns:
        The estimate in bytes.
    """
    if precision is None:
        precision = "fp32" if config.precision == "auto" else config.precision
    layers = tuple(config.content_layers) + tuple(config.style_layers)
    content_side, style_side = load_sides(config)
    loads = [(content, content_side)] + [(style, style_side) for style in styles]
    if init is not None:
        loads.append((init, content_side))
    kept = sum(math.prod(decoding.loaded_shape(info, side)) for info, side in loads)
    decode_peak = max(decoding.decode_peak_bytes(info, side) for info, side in loads)
    colour = 0
    if config.preserve_colors != "none":
        colour = COLOR_WORK_BYTES * max(
            math.prod(decoding.loaded_shape(info, side)) for info, side in loads
        )
    largest = plan_scales(config.size, config.steps, config.scales)[-1].long_side
    style_features = max(
        forward_pass_bytes(
            working_shape(decoding.loaded_shape(style, style_side), style_side),
            config.backbone,
            layers,
            precision,
        )
        for style in styles
    )
    height, width = working_shape(decoding.loaded_shape(content, content_side), largest)
    step = estimate_peak_bytes(
        height,
        width,
        config.backbone,
        layers,
        precision,
        config.jit,
        LBFGS_HISTORY if config.optimizer == "lbfgs" else 0,
    )
    return int(
        RUNTIME_BASE_BYTES
        + FLOAT_IMAGE_BYTES * kept
        + max(decode_peak, colour, style_features, step - RUNTIME_BASE_BYTES)
    )


def load_sides(config) -> tuple[int, int]:
    """Returns the long sides to load the (content and init, style) images at for `config`."""
    return config.size, style_long_side(config.size, config.style_scale)


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
