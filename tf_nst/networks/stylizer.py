"""A trained style network loaded from its SavedModel: a callable from photos to paintings.

`load_stylizer(path)` returns a `StyleNetwork`. It needs only the SavedModel that
`tf_nst.networks.export.export_stylizer` writes, not the Keras model or tf_nst's training code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib

import numpy as np
import tensorflow as tf

from tf_nst.errors import StyleTransferError
from tf_nst.networks.architecture import convolutions
from tf_nst.networks.export import (
    STYLIZER_FORMAT,
    STYLIZER_FORMAT_VERSION,
    STYLIZER_METADATA,
    stylizer_signature_names,
)
from tf_nst.networks.memory import choose_tile_size, largest_fitting_side
from tf_nst.networks.tiling import stylize_tiled
from tf_nst.precision import PRECISION_POLICIES, resolve_precision
from tf_nst.text import printable


@dataclasses.dataclass(frozen=True)
class StyleNetwork:
    """A loaded stylizer: call it on images to stylize them.

    Attributes:
        path: The SavedModel directory.
        metadata: The export's metadata (`tf_nst.networks.export.export_stylizer`); the
            training run's own facts are under "training".
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
        precision = available_precision(precision, self.metadata, self.path)
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
            statistics_side = largest_fitting_side(
                height, width, self.width, self.precision, available
            )
        return stylize_tiled(self, image, tile_size, statistics_side)


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


def check_signatures(saved_model, names, label: str) -> None:
    """Checks that a loaded SavedModel has the signatures its metadata lists.

    Raises:
        StyleTransferError: Naming the missing ones.
    """
    missing = [name for name in names if name not in saved_model.signatures]
    if missing:
        raise StyleTransferError(
            f"stylizer {label} lacks the signatures {', '.join(missing)} its metadata lists: "
            "re-export it"
        )


def available_precision(precision: str, metadata: dict, path: str) -> str:
    """`precision` resolved ("auto" by the hardware) among the export's precisions.

    "auto" falls back to fp32 when the export lacks the hardware's choice.

    Raises:
        StyleTransferError: If an explicit precision was not exported.
    """
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


def _not_a_stylizer(directory: pathlib.Path) -> str:
    """What a folder without a stylizer's two files is, as far as its files tell."""
    if not (directory / "saved_model.pb").is_file():
        missing = "" if (directory / STYLIZER_METADATA).is_file() else f" or {STYLIZER_METADATA}"
        return f"is not a tf_nst stylizer (it has no saved_model.pb{missing})"
    from tensorflow.core.protobuf import saved_model_pb2

    from tf_nst.features.backbones import layer_names

    outputs = set()
    with contextlib.suppress(Exception):  # a damaged file is simply not recognised
        saved_model = saved_model_pb2.SavedModel.FromString(
            (directory / "saved_model.pb").read_bytes()
        )
        outputs = set(saved_model.meta_graphs[0].signature_def["serving_default"].outputs)
    # `tf-nst export` maps images to one output per backbone layer, named by layer.
    if outputs and outputs <= {*layer_names("vgg16"), *layer_names("vgg19")}:
        return "is a feature-extractor export (tf-nst export), not a style network"
    return f"is a SavedModel without {STYLIZER_METADATA}, not a tf_nst stylizer"


# The widest network a stylizer may declare: a wider one would have more weights than any machine
# trains, so a larger number is damage, not a network.
MAX_STYLIZER_WIDTH = 2048


def metadata_problem(metadata: dict) -> str | None:
    """Says what is wrong with a stylizer's metadata (`tf_nst_stylizer.json`), or None.

    It checks what loading and applying rely on: the format version (a whole number; a newer
    one than this tf_nst reads is the caller's to refuse), `width` (a whole number from 1 to
    `MAX_STYLIZER_WIDTH`), `precisions` (known names, with fp32, each once) and
    `statistics_layers` (one [name, channels] pair per instance norm, as the network of that
    width has them), and that `training` is a mapping.
    """
    version = metadata.get("format_version")
    if type(version) is not int or version < 1:
        return f"format_version is {_shown(version)}, not a version number"
    width = metadata.get("width")
    if type(width) is not int or not 1 <= width <= MAX_STYLIZER_WIDTH:
        return f"width is {_shown(width)}, not a whole number from 1 to {MAX_STYLIZER_WIDTH}"
    precisions = metadata.get("precisions")
    if (
        not isinstance(precisions, list)
        or not all(isinstance(name, str) and name in PRECISION_POLICIES for name in precisions)
        or "fp32" not in precisions
        or len(set(precisions)) != len(precisions)
    ):
        return (
            f"precisions is {_shown(precisions)}, not a list of distinct names among "
            f"{', '.join(PRECISION_POLICIES)} with fp32"
        )
    layers = metadata.get("statistics_layers")
    expected = [outputs for _, _, outputs, _ in convolutions(width)[:-1]]
    if (
        not isinstance(layers, list)
        or not all(
            isinstance(pair, list)
            and len(pair) == 2
            and isinstance(pair[0], str)
            and type(pair[1]) is int
            for pair in layers
        )
        or [channels for _, channels in layers] != expected
    ):
        return (
            f"statistics_layers is {_shown(layers)}, not the {len(expected)} [name, channels] "
            f"pairs of a width-{width} network"
        )
    if not isinstance(metadata.get("training", {}), dict):
        return f"training is {_shown(metadata.get('training'))}, not a mapping"
    return None


def _shown(value) -> str:
    text = "missing" if value is None else repr(value)
    return printable(text if len(text) <= 60 else text[:57] + "...")


def load_stylizer(path: str | os.PathLike, precision: str = "fp32") -> StyleNetwork:
    """Loads a stylizer written by `tf_nst.networks.export.export_stylizer`.

    Args:
        path: The SavedModel directory (`tf-nst train -o MODEL_DIR`).
        precision: "fp32", "bf16", "fp16", or "auto" (bf16 where the hardware computes it natively
            and the export has it, else fp32).

    Returns:
        A `StyleNetwork`: `stylizer(images)` maps float32 `[batch, height, width, 3]` in [0, 1]
        to stylized images of the same shape; for an any-style network (`tf-nst train
        --paintings`), an `AnyStyleNetwork`: `stylizer(photos, styles, strength)`.

    Raises:
        StyleTransferError: If `path` is not a tf_nst stylizer or is damaged, or the precision is
            not exported.
    """
    label = printable(os.fspath(path))
    directory = pathlib.Path(path)
    hint = "pass a directory written by tf-nst train -o MODEL_DIR"
    if not directory.is_dir():
        missing = "does not exist" if not directory.exists() else "is not a directory"
        raise StyleTransferError(f"stylizer {label} {missing}: {hint}")
    metadata_path = directory / STYLIZER_METADATA
    if not (directory / "saved_model.pb").is_file() or not metadata_path.is_file():
        raise StyleTransferError(f"{label} {_not_a_stylizer(directory)}: {hint}")
    try:
        metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StyleTransferError(
            f"the metadata of stylizer {label} cannot be read ({error}): re-export it"
        ) from None
    if not isinstance(metadata, dict) or metadata.get("format") != STYLIZER_FORMAT:
        raise StyleTransferError(f"{label} is not a tf_nst stylizer (unknown metadata): {hint}")
    if metadata.get("kind") == "any-style":
        from tf_nst.networks.any_style.stylizer import load_any_style

        return load_any_style(directory, metadata, label, precision)
    version = metadata.get("format_version")
    if type(version) is int and version > STYLIZER_FORMAT_VERSION:
        raise StyleTransferError(
            f"stylizer {label} was exported by a newer tf_nst (format version {version}; this "
            f"one reads up to {STYLIZER_FORMAT_VERSION}): upgrade tf_nst"
        )
    problem = metadata_problem(metadata)
    if problem:
        raise StyleTransferError(
            f"the metadata of stylizer {label} is damaged ({problem}): re-export it (train it "
            "again, or restore its folder from a copy)"
        )
    precision = available_precision(precision, metadata, label)
    try:
        saved_model = tf.saved_model.load(os.fspath(directory))
    except Exception as error:  # TensorFlow raises many types for a damaged SavedModel.
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise StyleTransferError(
            f"stylizer {label} cannot be loaded ({first_line}): re-export it"
        ) from None
    check_signatures(saved_model, stylizer_signature_names(precision).values(), label)
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
