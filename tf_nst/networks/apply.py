"""Applying a trained style network: load its SavedModel, stylize arrays and files, tile.

`load_stylizer(path)` returns a `StyleNetwork`, a callable from images to stylized images. It needs
only the SavedModel that `tf_nst.networks.export.export_stylizer` writes, not the Keras model.

Tiling. Instance normalisation makes every pixel depend on the statistics of the whole image, so
a tile normalised by its own statistics comes out in a different tone from the same region of the
untiled result, and its seams show however they are blended. Instead, the statistics of every
instance norm are measured once on the whole image (the SavedModel's `statistics` signature),
scaled down to a size that fits if need be, and every tile is stylized with those fixed
statistics (`stylize_with_statistics`). What is left is the convolutions' view past the tile's
edge: every tile is extended by `TILE_HALO` pixels, more than the network's receptive-field
radius, and pixels that close to a tile's edge get weight 0. Neighbouring tiles cross-fade with
linear ramps over `2 * TILE_BLEND` pixels around each seam, with weights summing to 1. Tiles start
on multiples of 4 so that the stride-2 convolutions sample the same grid as for the whole image.
With the statistics of the full-size image, the tiled result then equals the untiled one
everywhere up to float32 rounding (measured 1.2e-7 for widths 4 and 32; tested to 1e-4).

An image is tiled only when it does not fit whole, and then its statistics come from the largest
scaled-down copy that fits. The tiles still agree with each other (no seams), but the picture
drifts from the untiled one by the statistics' change with scale: on a 1024 px photo with a
random width-32 network, statistics from a 768 px copy gave a mean absolute difference of 0.018
(99th percentile 0.089), from a 512 px copy 0.028 (0.136). Re-measuring the statistics on the
full-size image tile by tile, with the norms fixed to the previous estimate, does not help: the
iteration moves away from the true statistics (measured: 0.066 after one pass, 0.35 after two),
because each norm's error feeds the inputs of the next; exact statistics would take one tiled
pass per norm (15).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import time
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from tf_nst.errors import StyleTransferError
from tf_nst.image import colors, decoding, writing
from tf_nst.networks.export import STYLIZER_FORMAT, STYLIZER_METADATA, stylizer_signature_names
from tf_nst.networks.transform import SIZE_MULTIPLE
from tf_nst.optimize.memory import available_bytes, format_bytes
from tf_nst.precision import resolve_precision

# Receptive-field radius of the network, rounded up to a multiple of 4: 4 (9x9 output) + 1
# (3x3 at full size) + 2 x 3 (3x3 at half size, upsampled) + 4 x 13 (ten 3x3 residual
# convolutions and one upsampling convolution at quarter size) + ... = 59 pixels.
TILE_HALO = 64
# Half the width of the cross-fade around each seam.
TILE_BLEND = 32
# Share of the available memory one image may use; the rest is headroom for the decoded inputs,
# the outputs and the other processes of the machine.
MEMORY_FRACTION = 0.7
# Peak memory of applying the network: a fixed runtime base (TensorFlow and the loaded SavedModel)
# plus bytes per padded pixel, growing with the network's width. Fitted to the peak resident
# memory of one call at 1024 and 2048 px for widths 4, 16 and 32 on the CPU (per pixel above the
# base: fp32 156, 420, 785-883 bytes; bf16 104, 220, 421-533 bytes), rounded up so that every
# measured run stays under the estimate; benchmarks/apply_benchmark.py re-measures it.
APPLY_BASE_BYTES = 800 * 2**20
APPLY_BYTES_PER_PIXEL = 100.0
APPLY_BYTES_PER_PIXEL_CHANNEL = {"fp32": 28.0, "bf16": 16.0, "fp16": 16.0}
# The tiled path's full-size float32 buffers besides the network: the image, the blended result
# and its weight sum (3 + 3 + 1 values), plus the copy a caller holds of the result.
TILED_BYTES_PER_PIXEL = 40
PRESERVE_COLORS = ("none", "luminance", "histogram")
# Extensions searched for in input folders; every format `tf_nst.image.decoding.load_image` reads.
INPUT_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif", ".bmp", ".tif", ".tiff")


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
    pixels = batch * _padded(height) * _padded(width)
    per_pixel = APPLY_BYTES_PER_PIXEL + APPLY_BYTES_PER_PIXEL_CHANNEL[precision] * network_width
    return int(APPLY_BASE_BYTES + pixels * per_pixel)


def _padded(side: int) -> int:
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
    `tf_nst.optimize.memory` reads it). A tile is a square whose core plus its halo on both sides fits
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
    per_pixel = APPLY_BYTES_PER_PIXEL + APPLY_BYTES_PER_PIXEL_CHANNEL[precision] * network_width
    network_budget = budget - APPLY_BASE_BYTES - TILED_BYTES_PER_PIXEL * height * width
    side = math.isqrt(max(0, int(network_budget / per_pixel)))
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


@dataclasses.dataclass(frozen=True)
class StyleNetwork:
    """A loaded stylizer: call it on images to stylize them.

    Attributes:
        path: The SavedModel directory.
        metadata: The export's metadata (`tf_nst.networks.export.export_stylizer`); the training run's own
            facts are under "training".
        precision: The compute precision of the signatures this object calls.
    """

    path: str
    metadata: dict
    precision: str
    _saved_model: object = dataclasses.field(repr=False, compare=False)

    @property
    def width(self) -> int:
        """The network's width (channels of its first layer)."""
        return int(self.metadata["width"])

    def with_precision(self, precision: str) -> StyleNetwork:
        """Returns the same stylizer computing at `precision` ("auto", "fp32", "bf16", ...).

        Raises:
            StyleTransferError: If the export has no signatures at that precision.
        """
        precision = _available_precision(precision, self.metadata, self.path)
        return dataclasses.replace(self, precision=precision)

    def _signature(self, role: str):
        return self._saved_model.signatures[stylizer_signature_names(self.precision)[role]]

    def __call__(self, images_batch) -> tf.Tensor:
        """Stylizes `[batch, height, width, 3]` (or one `[height, width, 3]`) RGB in [0, 1].

        The whole batch is computed at once, without tiling; see `stylize_image` for that.

        Returns:
            float32 `[batch, height, width, 3]` in [0, 1].
        """
        batch = _as_batch(images_batch)
        return self._signature("stylize")(images=batch)["stylized"]

    def statistics(self, images_batch) -> tf.Tensor:
        """Returns every instance norm's mean and variance on these images, `[batch, values]`."""
        return self._signature("statistics")(images=_as_batch(images_batch))["statistics"]

    def stylize_with_statistics(self, images_batch, statistics) -> tf.Tensor:
        """Stylizes images with the instance norms using `statistics` from `statistics()`."""
        return self._signature("stylize_with_statistics")(
            images=_as_batch(images_batch), statistics=tf.convert_to_tensor(statistics, tf.float32)
        )["stylized"]

    def stylize_image(
        self,
        image: np.ndarray,
        tile_size: int | None = None,
        statistics_side: int | None = None,
        available: int | None = None,
    ) -> np.ndarray:
        """Stylizes one `[height, width, 3]` image, in tiles if it does not fit in memory.

        Args:
            image: float RGB in [0, 1].
            tile_size: The tiles' core side (a multiple of 4, at least `2 * TILE_BLEND`); None
                chooses by memory (`choose_tile_size`), which also decides whether to tile at all.
            statistics_side: Long side at which the normalisation statistics are measured when
                tiling; None measures them on the full image if that fits, else at the largest
                size that fits.
            available: Bytes of memory to plan for; None reads MemAvailable.

        Returns:
            float32 `[height, width, 3]` in [0, 1].
        """
        image = np.asarray(image, np.float32)
        height, width = image.shape[:2]
        if tile_size is None:
            tile_size = choose_tile_size(height, width, self.width, self.precision, available)
            if tile_size is None:
                return self(image[None]).numpy()[0]
        if statistics_side is None:
            statistics_side = self._largest_fitting_side(height, width, available)
        return self._stylize_tiled(image, tile_size, statistics_side)

    def _largest_fitting_side(self, height: int, width: int, available: int | None) -> int:
        available = available_bytes() if available is None else available
        long_side = max(height, width)
        if available is None:
            return long_side
        budget = MEMORY_FRACTION * available
        per_pixel = (
            APPLY_BYTES_PER_PIXEL + APPLY_BYTES_PER_PIXEL_CHANNEL[self.precision] * self.width
        )
        network_budget = budget - APPLY_BASE_BYTES - TILED_BYTES_PER_PIXEL * height * width
        fitting_pixels = max(64.0, network_budget / per_pixel)
        scale = min(1.0, math.sqrt(fitting_pixels / (height * width)))
        return max(SIZE_MULTIPLE, int(long_side * scale))

    def _stylize_tiled(self, image: np.ndarray, tile_size: int, statistics_side: int):
        if tile_size % SIZE_MULTIPLE or tile_size < 2 * TILE_BLEND:
            raise StyleTransferError(
                f"tile size {tile_size} must be a multiple of {SIZE_MULTIPLE} and at least "
                f"{2 * TILE_BLEND}: choose another"
            )
        height, width = image.shape[:2]
        source = image
        if statistics_side < max(height, width):
            source = decoding.resize_to_long_side(image, statistics_side)
        statistics = self.statistics(source[None])
        result = np.zeros((height, width, 3), np.float32)
        total = np.zeros((height, width, 1), np.float32)
        margin = TILE_HALO + TILE_BLEND
        for top in range(0, height, tile_size):
            bottom = min(height, top + tile_size)
            rows = slice(max(0, top - margin), min(height, bottom + margin))
            row_weights = _tile_weights(rows, top, bottom, height)
            for left in range(0, width, tile_size):
                right = min(width, left + tile_size)
                columns = slice(max(0, left - margin), min(width, right + margin))
                column_weights = _tile_weights(columns, left, right, width)
                tile = self.stylize_with_statistics(image[None, rows, columns], statistics)
                weights = (row_weights[:, None] * column_weights[None, :])[..., None]
                result[rows, columns] += tile.numpy()[0] * weights
                total[rows, columns] += weights
        return result / total


def _tile_weights(span: slice, start: int, stop: int, length: int) -> np.ndarray:
    """Blend weights along one axis for a tile whose core is [start, stop) and extent `span`.

    Around an inner seam at position c the weight ramps linearly from 0 at c - TILE_BLEND to 1 at
    c + TILE_BLEND (and the neighbour's falls from 1 to 0), so the two sum to 1; the tile's halo
    beyond the ramp gets 0. At the image's edges there is no neighbour and the weight stays 1.
    """
    positions = np.arange(span.start, span.stop, dtype=np.float32) + 0.5
    weights = np.ones_like(positions)
    if start > 0:
        weights = np.minimum(weights, (positions - (start - TILE_BLEND)) / (2 * TILE_BLEND))
    if stop < length:
        weights = np.minimum(weights, ((stop + TILE_BLEND) - positions) / (2 * TILE_BLEND))
    return np.clip(weights, 0.0, 1.0)


def _as_batch(images_batch) -> tf.Tensor:
    batch = tf.convert_to_tensor(images_batch, tf.float32)
    if batch.shape.rank == 3:
        batch = batch[None]
    if batch.shape.rank != 4 or batch.shape[-1] != 3:
        raise StyleTransferError(
            f"a stylizer takes RGB images [batch, height, width, 3], not shape {batch.shape}: "
            "convert the images to RGB"
        )
    return batch


def _available_precision(precision: str, metadata: dict, path: str) -> str:
    exported = metadata.get("precisions", ["fp32"])
    resolved = resolve_precision(precision)
    if resolved in exported:
        return resolved
    if precision == "auto":
        return "fp32"
    raise StyleTransferError(
        f"the stylizer {path} has no {precision} signatures (it has {', '.join(exported)}): "
        "choose one of those with --precision"
    )


def load_stylizer(path: str | os.PathLike, precision: str = "fp32") -> StyleNetwork:
    """Loads a stylizer written by `tf_nst.networks.export.export_stylizer`.

    Args:
        path: The SavedModel directory (`tf-nst train -o MODEL_DIR`).
        precision: "fp32", "bf16", "fp16", or "auto" (bf16 where the hardware computes it natively
            and the export has it, else fp32).

    Returns:
        A `StyleNetwork`: `stylizer(images)` maps float32 `[batch, height, width, 3]` in [0, 1]
        to stylized images of the same shape.

    Raises:
        StyleTransferError: If `path` is not a tf_nst stylizer or is damaged, or the precision is
            not exported.
    """
    label = decoding._printable(os.fspath(path))
    directory = pathlib.Path(path)
    hint = "pass a directory written by tf-nst train -o MODEL_DIR"
    if not directory.is_dir():
        missing = "does not exist" if not directory.exists() else "is not a directory"
        raise StyleTransferError(f"stylizer {label} {missing}: {hint}")
    metadata_path = directory / STYLIZER_METADATA
    if not (directory / "saved_model.pb").is_file() or not metadata_path.is_file():
        raise StyleTransferError(
            f"{label} is not a tf_nst stylizer (no saved_model.pb and {STYLIZER_METADATA}): {hint}"
        )
    try:
        metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StyleTransferError(
            f"the metadata of stylizer {label} cannot be read ({error}): re-export it"
        ) from None
    if not isinstance(metadata, dict) or metadata.get("format") != STYLIZER_FORMAT:
        raise StyleTransferError(f"{label} is not a tf_nst stylizer (unknown metadata): {hint}")
    precision = _available_precision(precision, metadata, label)
    try:
        saved_model = tf.saved_model.load(os.fspath(directory))
    except Exception as error:  # TensorFlow raises many types for a damaged SavedModel.
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise StyleTransferError(
            f"stylizer {label} cannot be loaded ({first_line}): re-export it"
        ) from None
    serving = saved_model.signatures.get("serving_default")
    if (
        serving is None
        or list(serving.structured_input_signature[1]) != ["images"]
        or list(serving.structured_outputs) != ["stylized"]
    ):
        raise StyleTransferError(
            f"{label} is not a tf_nst stylizer (its serving_default does not map images to "
            f"stylized): {hint}"
        )
    return StyleNetwork(os.fspath(directory), metadata, precision, saved_model)


@dataclasses.dataclass
class ApplyResult:
    """What `apply_to_files` did.

    Attributes:
        written: (input, output) paths of every image stylized and saved.
        failed: (input, one-line reason) of every image skipped.
        seconds: Wall time of the whole call.
    """

    written: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    failed: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every input was stylized."""
        return not self.failed

    @property
    def exit_status(self) -> int:
        """0 when every input was stylized, 1 when some failed (the CLI's exit status)."""
        return 0 if self.ok else 1


def list_inputs(inputs: Sequence[str | os.PathLike]) -> list[tuple[pathlib.Path, pathlib.Path]]:
    """Expands files and folders into (input file, output path relative to the output folder).

    Folders are searched recursively for `INPUT_EXTENSIONS` (hidden entries skipped) and keep
    their inner structure under a subfolder named after the folder; files keep their own name.

    Raises:
        StyleTransferError: If an input does not exist or a folder holds no images.
    """
    found = []
    for entry in map(pathlib.Path, inputs):
        label = decoding._printable(os.fspath(entry))
        if entry.is_dir():
            files = _images_under(entry)
            if not files:
                raise StyleTransferError(
                    f"input folder {label} holds no images ({', '.join(INPUT_EXTENSIONS)}): "
                    "pass a folder of images"
                )
            base = pathlib.Path(entry.resolve().name)
            found.extend((file, base / file.relative_to(entry)) for file in files)
        elif entry.exists():
            found.append((entry, pathlib.Path(entry.name)))
        else:
            raise StyleTransferError(f"input {label} does not exist: check the path")
    # The same file named twice (or inside a folder also given) is stylized once.
    unique = {}
    for source, relative in found:
        unique.setdefault(os.path.realpath(source), (source, relative))
    return list(unique.values())


def _images_under(folder: pathlib.Path) -> list[pathlib.Path]:
    found = []
    for root, directories, names in os.walk(folder, followlinks=True):
        directories[:] = sorted(name for name in directories if not name.startswith("."))
        found.extend(
            pathlib.Path(root, name)
            for name in names
            if not name.startswith(".") and pathlib.Path(name).suffix.lower() in INPUT_EXTENSIONS
        )
    return sorted(found)


def _output_name(relative: pathlib.Path) -> pathlib.Path:
    # Keep a writable format's extension; others (GIF, AVIF) become PNG.
    if relative.suffix.lower() in writing.OUTPUT_EXTENSIONS:
        return relative
    return relative.with_suffix(".png")


def plan_outputs(
    inputs: Sequence[str | os.PathLike], output: str | os.PathLike
) -> list[tuple[pathlib.Path, pathlib.Path]]:
    """Pairs every input image with its output path, and checks that none overwrites an input.

    One input file gives `output` as a file; anything else (several inputs, or a folder) makes
    `output` a folder, created if missing, holding one file per input named after it.

    Raises:
        StyleTransferError: If an input is missing, two inputs would write the same output, an
            output would overwrite an input, or the output cannot be written.
    """
    listed = list_inputs(inputs)
    output = pathlib.Path(output)
    if len(inputs) == 1 and len(listed) == 1 and not pathlib.Path(inputs[0]).is_dir():
        if output.is_dir():
            output = output / _output_name(listed[0][1])
        # The extension, the parent folder and the inputs are checked before anything runs.
        writing.check_output_path(output, [listed[0][0]])
        pairs = [(listed[0][0], output)]
    else:
        if output.exists() and not output.is_dir():
            raise StyleTransferError(
                f"output {decoding._printable(os.fspath(output))} is a file, but several images "
                "need an output folder: pass a folder with -o"
            )
        pairs = [(source, output / _output_name(relative)) for source, relative in listed]
    seen = {}
    for source, target in pairs:
        key = os.path.normcase(os.path.abspath(target))
        if key in seen:
            raise StyleTransferError(
                f"{decoding._printable(str(seen[key]))} and {decoding._printable(str(source))} would "
                f"both be written to {decoding._printable(str(target))}: rename one or apply them "
                "separately"
            )
        seen[key] = source
    all_inputs = [source for source, _ in listed]
    for _, target in pairs:
        for source in all_inputs:
            if writing._same_file(target, source):
                raise StyleTransferError(
                    f"the output {decoding._printable(str(target))} would overwrite the input "
                    f"{decoding._printable(str(source))}: choose another output path"
                )
    return pairs


def apply_to_files(
    stylizer: StyleNetwork | str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    size: int | None = None,
    batch_size: int = 1,
    preserve_colors: str = "none",
    precision: str | None = None,
    progress: Callable[[int, int, str, str | None], None] | None = None,
) -> ApplyResult:
    """Stylizes image files and folders with a trained stylizer (`tf-nst apply`).

    Options:

    - `inputs`: image files and folders (searched recursively for `INPUT_EXTENSIONS`).
    - `output` (`-o OUT`): a file for one input file, else a folder (created if missing) that
      gets one image per input, named after it (folders keep their structure in a subfolder).
      Outputs are written atomically, and an output that would overwrite an input is refused
      before anything runs.
    - `size` (`--size`): the long side of the outputs in pixels; None keeps each input's size.
    - `batch_size` (`--batch-size`): images of the same size stylized per call.
    - `preserve_colors` (`--preserve-colors`): "none"; "luminance" keeps the stylized luminance
      with the photo's chroma; "histogram" recolours the stylized image to the photo's colour
      mean and covariance (`tf_nst.image.colors`).
    - `precision` (`--precision`): "auto", "fp32" or "bf16" (if exported); None keeps the
      stylizer's.

    An image too large for the memory available is stylized in tiles (`StyleNetwork.stylize_image`).
    A file that cannot be read or written is reported in the result and skipped; the others go on.

    Args:
        stylizer: A `StyleNetwork` or the path of one.
        inputs: See above.
        output: See above.
        size: See above.
        batch_size: See above.
        preserve_colors: See above.
        precision: See above.
        progress: Called after each input as `progress(done, total, input, output or None)`.

    Returns:
        An `ApplyResult`; its `exit_status` is 1 if any input failed.

    Raises:
        StyleTransferError: For a problem that stops the whole run (bad options, a missing input,
            a stylizer that does not load, an output that would overwrite an input).
    """
    started = time.perf_counter()
    if preserve_colors not in PRESERVE_COLORS:
        raise StyleTransferError(
            f"unknown --preserve-colors {preserve_colors!r}: choose one of "
            f"{', '.join(PRESERVE_COLORS)}"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise StyleTransferError(f"--batch-size must be a positive integer, not {batch_size!r}")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise StyleTransferError(f"--size must be a positive integer, not {size!r}")
    if not inputs:
        raise StyleTransferError("no input images were given: pass image files or folders")
    pairs = plan_outputs(inputs, output)
    if not isinstance(stylizer, StyleNetwork):
        stylizer = load_stylizer(stylizer)
    if precision is not None:
        stylizer = stylizer.with_precision(precision)
    for target in {target.parent for _, target in pairs}:
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StyleTransferError(
                f"cannot create the output folder {decoding._printable(str(target))} "
                f"({error.strerror or error}): choose a writable output"
            ) from None

    result = ApplyResult()
    done = 0
    for start in range(0, len(pairs), batch_size):
        loaded = []
        for source, target in pairs[start : start + batch_size]:
            try:
                photo = decoding.load_image(source)
                if size is not None:
                    photo = decoding.resize_to_long_side(photo, size)
                loaded.append((source, target, photo))
            except StyleTransferError as error:
                result.failed.append((os.fspath(source), str(error)))
                done += 1
                if progress is not None:
                    progress(done, len(pairs), os.fspath(source), None)
        for source, target, photo, stylized in _stylize_group(stylizer, loaded):
            try:
                stylized = _preserve_colors(stylized, photo, preserve_colors)
                writing.save_image(stylized, target)
                result.written.append((os.fspath(source), os.fspath(target)))
                written = os.fspath(target)
            except StyleTransferError as error:
                result.failed.append((os.fspath(source), str(error)))
                written = None
            done += 1
            if progress is not None:
                progress(done, len(pairs), os.fspath(source), written)
    result.seconds = time.perf_counter() - started
    return result


def _stylize_group(stylizer: StyleNetwork, loaded):
    """Yields (source, target, photo, stylized), batching photos of equal size that fit whole."""
    by_shape = {}
    for entry in loaded:
        by_shape.setdefault(entry[2].shape, []).append(entry)
    for shape, entries in by_shape.items():
        height, width = shape[:2]
        whole = estimate_apply_bytes(
            height, width, stylizer.width, stylizer.precision, len(entries)
        )
        available = available_bytes()
        if len(entries) > 1 and (available is None or whole <= MEMORY_FRACTION * available):
            stylized = stylizer(np.stack([entry[2] for entry in entries])).numpy()
            for entry, image in zip(entries, stylized, strict=True):
                yield (*entry, image)
        else:
            for entry in entries:
                yield (*entry, stylizer.stylize_image(entry[2]))


def _preserve_colors(stylized: np.ndarray, photo: np.ndarray, mode: str) -> np.ndarray:
    if mode == "luminance":
        return colors.combine_luminance_with_chroma(stylized, photo)
    if mode == "histogram":
        return colors.match_color_histogram(stylized, photo)
    return stylized
