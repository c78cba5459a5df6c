"""SavedModel export of the feature extractor (`tf-nst export`).

The SavedModel's `serving_default` takes `images`, float32 `[batch, height, width, 3]`, RGB in
[0, 1], of any size, and returns one float32 output per layer, named by layer. It is written
through Keras 3's `keras.export.ExportArchive` into a temporary directory beside the target and
renamed into place, so a crash never leaves half a SavedModel.
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf

from tf_nst.image.writing import staged_directory

IMAGES_SPEC = tf.TensorSpec([None, None, None, 3], tf.float32, name="images")
"""The input of every tf_nst SavedModel: a batch of RGB images in [0, 1], any size."""


def export_feature_extractor(extractor: keras.Model, directory: str | os.PathLike) -> None:
    """Writes `extractor` as a SavedModel at `directory`, atomically.

    Args:
        extractor: A model from `build_feature_extractor`.
        directory: The SavedModel directory to create; it must not exist yet.

    Raises:
        StyleTransferError: If `directory` exists or its parent is not writable.
    """
    with staged_directory(directory) as target:
        archive = keras.export.ExportArchive()
        archive.track(extractor)
        archive.add_endpoint(
            name="serving_default",
            fn=lambda images: dict(extractor(images, training=False)),
            input_signature=[IMAGES_SPEC],
        )
        archive.write_out(str(target), verbose=False)
