"""SavedModel export of the feature extractor.

The SavedModel's `serving_default` signature takes `images`, float32 `[batch, height, width, 3]`,
RGB in [0, 1], of any size, and returns one float32 output per layer, named by layer. It is written
through Keras 3's `keras.export.ExportArchive` into a temporary directory beside the target and
renamed into place, so a crash never leaves half a SavedModel.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile

import keras
import tensorflow as tf

from tf_nst.errors import StyleTransferError


def export_feature_extractor(extractor: keras.Model, directory: str | os.PathLike) -> None:
    """Writes `extractor` as a SavedModel at `directory`, atomically.

    Args:
        extractor: A model from `build_feature_extractor`.
        directory: The SavedModel directory to create; it must not exist yet.

    Raises:
        StyleTransferError: If `directory` exists or its parent is not writable.
    """
    directory = pathlib.Path(directory)
    if directory.exists():
        raise StyleTransferError(f"{directory} already exists: choose a new export directory")
    parent = directory.absolute().parent
    try:
        staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=parent))
    except OSError as error:
        raise StyleTransferError(
            f"cannot write in {parent} ({error.strerror}): choose a writable export directory"
        ) from None
    try:
        archive = keras.export.ExportArchive()
        archive.track(extractor)
        archive.add_endpoint(
            name="serving_default",
            fn=lambda images: dict(extractor(images, training=False)),
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")],
        )
        target = staging / "saved_model"
        try:
            archive.write_out(str(target), verbose=False)
            os.replace(target, directory)
        except OSError as error:
            raise StyleTransferError(
                f"cannot write the export to {directory} ({error.strerror or error}): check "
                "that it does not exist yet and that the disk has space"
            ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
