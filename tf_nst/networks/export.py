"""SavedModel export of a trained style network (a "stylizer").

The SavedModel takes `images`, float32 `[batch, height, width, 3]`, RGB in [0, 1], of any size,
through its `serving_default` signature and returns `stylized`, float32 of the same shape in
[0, 1]. It is written through Keras 3's `keras.export.ExportArchive` into a temporary directory
beside the target and renamed into place (`tf_nst.image.writing.staged_directory`), so a crash
never leaves half a SavedModel.
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

from tf_nst.errors import StyleTransferError
from tf_nst.features.export import IMAGES_SPEC
from tf_nst.image.writing import atomic_write_bytes, staged_directory
from tf_nst.networks.job import STYLIZER_METADATA
from tf_nst.networks.transform import (
    build_transform_network,
    layers_by_name,
    normalization_layers,
    transform,
)
from tf_nst.text import printable

STYLIZER_FORMAT = "tf_nst stylizer"
STYLIZER_FORMAT_VERSION = 1


def stylizer_signature_names(precision: str) -> dict[str, str]:
    """Returns the signature names of a stylizer's three functions at `precision`.

    fp32 is the `serving_default` contract; other precisions are optional extra signatures.
    """
    if precision == "fp32":
        return {
            "stylize": "serving_default",
            "statistics": "statistics",
            "stylize_with_statistics": "stylize_with_statistics",
        }
    return {
        "stylize": f"stylize_{precision}",
        "statistics": f"statistics_{precision}",
        "stylize_with_statistics": f"stylize_with_statistics_{precision}",
    }


def export_stylizer(
    model: keras.Model,
    directory: str | os.PathLike,
    metadata: dict,
    precisions: tuple[str, ...] = ("fp32", "bf16"),
) -> None:
    """Writes a style network as a SavedModel at `directory`, atomically, with its metadata.

    Signatures (see `stylizer_signature_names`), for each precision:

    - `serving_default` (fp32) or `stylize_PRECISION`: `images` -> `stylized`, the contract;
    - `statistics[_PRECISION]`: `images` -> `statistics`, float32 `[batch, 2 * channels]`, every
      instance norm's mean then variance, in network order;
    - `stylize_with_statistics[_PRECISION]`: `images`, `statistics` -> `stylized`, with the
      instance norms using the given statistics: how `tf_nst.networks.tiling` makes tiles agree.

    The metadata file `STYLIZER_METADATA` inside the directory holds `metadata` (the caller's:
    style names and SHA-256, settings, steps, validation loss, tf_nst version) under
    "training", and what the export itself knows (format, width, precisions, signatures).

    Args:
        model: A network from `build_transform_network`, at any precision; its weights are
            copied into one float32-variable network per entry of `precisions`.
        directory: The SavedModel directory to create; it must not exist yet.
        metadata: JSON-serialisable facts about the training run.
        precisions: The compute precisions to export; must include "fp32".

    Raises:
        StyleTransferError: If `directory` exists, its parent is not writable, the export cannot
            be written (a full disk: TensorFlow's `ResourceExhaustedError`, or any `OSError` or
            `OpError` of writing), the metadata is not JSON-serialisable, or "fp32" is missing
            from `precisions`. Nothing is left at `directory` then.
    """
    if "fp32" not in precisions:
        raise StyleTransferError("a stylizer export needs the fp32 signature: add fp32")
    width = model.get_layer("stem").filters
    layers = [layer.name for layer in normalization_layers(model)]
    channels = [model.get_layer(name).gamma.shape[0] for name in layers]
    description = {
        "format": STYLIZER_FORMAT,
        "format_version": STYLIZER_FORMAT_VERSION,
        "kind": "per-style",
        "width": width,
        "precisions": list(precisions),
        "signatures": {precision: stylizer_signature_names(precision) for precision in precisions},
        # A list, not a dict: the order is that of the statistics vector, and JSON sorts keys.
        "statistics_layers": [list(pair) for pair in zip(layers, channels, strict=True)],
        "training": metadata,
    }
    try:
        document = json.dumps(description, indent=2, sort_keys=True, allow_nan=False) + "\n"
    except (TypeError, ValueError) as error:
        raise StyleTransferError(
            f"the stylizer metadata is not JSON-serialisable ({error}): pass plain values"
        ) from None

    try:
        with staged_directory(directory) as target:
            archive = keras.export.ExportArchive()
            for precision in precisions:
                network = build_transform_network(width, precision)
                network.set_weights(model.get_weights())
                archive.track(network)
                _add_stylizer_endpoints(archive, network, layers, channels, precision)
            archive.write_out(str(target), verbose=False)
            atomic_write_bytes(document.encode("utf-8"), target / STYLIZER_METADATA)
    except (OSError, tf.errors.OpError) as error:
        # What TensorFlow's file system raises for a full disk (ResourceExhaustedError) and
        # other write failures; `staged_directory` has removed the partial export.
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise StyleTransferError(
            f"cannot write the stylizer to {printable(os.fspath(directory))} "
            f"({printable(reason[:300])}): check that the disk has space and the directory is "
            "writable"
        ) from None


def _add_stylizer_endpoints(archive, network, layers, channels, precision) -> None:
    names = stylizer_signature_names(precision)
    by_name = layers_by_name(network)
    statistics_spec = tf.TensorSpec([None, 2 * sum(channels)], tf.float32, name="statistics")

    def stylize(images):
        return {"stylized": network(images, training=False)}

    def statistics(images):
        _, recorded = transform(by_name, images, record=True)
        means = [recorded[name][0] for name in layers]
        variances = [recorded[name][1] for name in layers]
        return {"statistics": tf.concat(means + variances, axis=-1)}

    def stylize_with_statistics(images, statistics):
        means, variances = tf.split(statistics, 2, axis=-1)
        given = dict(
            zip(
                layers,
                zip(
                    tf.split(means, channels, axis=-1),
                    tf.split(variances, channels, axis=-1),
                    strict=True,
                ),
                strict=True,
            )
        )
        return {"stylized": transform(by_name, images, statistics=given)}

    archive.add_endpoint(names["stylize"], stylize, input_signature=[IMAGES_SPEC])
    archive.add_endpoint(names["statistics"], statistics, input_signature=[IMAGES_SPEC])
    archive.add_endpoint(
        names["stylize_with_statistics"],
        stylize_with_statistics,
        input_signature=[IMAGES_SPEC, statistics_spec],
    )
