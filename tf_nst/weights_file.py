"""Cheap checks of a --weights path, importable without TensorFlow.

The CLI calls them before TensorFlow loads, so a typo fails in milliseconds; the feature extractor
calls them again before loading (a library user may not come through the CLI).
"""

from __future__ import annotations

import os

from tf_nst.errors import StyleTransferError

WEIGHTS_EXTENSIONS = (".weights.h5", ".h5")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def check_weights_file(weights: str, backbone: str) -> None:
    """Checks that `weights` is "imagenet" or a readable Keras weights (HDF5) file.

    Only Keras weight files are accepted, and they are read by h5py: nothing is unpickled and no
    code in the file is ever run. Whether the file fits the backbone is checked on loading.

    Args:
        weights: "imagenet" or a path.
        backbone: The backbone the file is for, named in the messages.

    Raises:
        StyleTransferError: If the path is missing, a directory, of another kind, unreadable or
            not HDF5.
    """
    if weights == "imagenet":
        return
    if not os.path.exists(weights):
        raise StyleTransferError(f"weights file {weights} does not exist: check the --weights path")
    if os.path.isdir(weights) or not weights.endswith(WEIGHTS_EXTENSIONS):
        raise StyleTransferError(
            f"--weights {weights} is not a Keras weights file: pass a .weights.h5 or .h5 file "
            f"of the {backbone} backbone without its top"
        )
    try:
        with open(weights, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            # The HDF5 superblock is at offset 0, or 512, 1024, 2048, ... after a user block.
            offset = 0
            while offset + len(HDF5_SIGNATURE) <= size:
                file.seek(offset)
                if file.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                    return
                offset = 512 if offset == 0 else offset * 2
    except OSError as error:
        raise StyleTransferError(
            f"weights file {weights} cannot be read ({error.strerror or error}): check its "
            "permissions"
        ) from None
    raise StyleTransferError(
        f"weights file {weights} is not a readable HDF5 file (corrupt or truncated?): download "
        "it again or pass another --weights file"
    )
