"""Cheap checks of a --weights path, importable without TensorFlow.

The CLI calls them before TensorFlow loads, so a typo fails in milliseconds; the feature extractor
calls them again before loading (a library user may not come through the CLI).
"""

from __future__ import annotations

import os
import stat

from tf_nst.errors import StyleTransferError

WEIGHTS_EXTENSIONS = (".weights.h5", ".h5")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def check_weights_file(weights: str, backbone: str) -> None:
    """Checks that `weights` is "imagenet" or a readable, complete Keras weights (HDF5) file.

    Only Keras weight files are accepted, and they are read by h5py: nothing is unpickled and no
    code in the file is ever run. The extension is compared case-insensitively (`.H5` is an HDF5
    file too). Only a regular file is opened: a FIFO or a device could block forever. A file
    shorter than its HDF5 superblock says (an interrupted download) is refused here, before
    loading could misreport it as a file of another network. Whether the file fits the backbone
    is checked on loading.

    Args:
        weights: "imagenet" or a path.
        backbone: The backbone the file is for, named in the messages.

    Raises:
        StyleTransferError: If the path is missing, a directory, of another kind, unreadable,
            not HDF5, or truncated.
    """
    if weights == "imagenet":
        return
    try:
        status = os.stat(weights)
    except FileNotFoundError:
        raise StyleTransferError(
            f"weights file {weights} does not exist: check the --weights path"
        ) from None
    except OSError as error:
        raise StyleTransferError(
            f"weights file {weights} cannot be accessed ({error.strerror or error}): check the "
            "--weights path"
        ) from None
    if stat.S_ISDIR(status.st_mode) or not weights.lower().endswith(WEIGHTS_EXTENSIONS):
        raise StyleTransferError(
            f"--weights {weights} is not a Keras weights file: pass a .weights.h5 or .h5 file "
            f"of the {backbone} backbone without its top"
        )
    if not stat.S_ISREG(status.st_mode):
        raise StyleTransferError(
            f"weights file {weights} is not a regular file (a pipe or a device?): pass the path "
            "of a .weights.h5 file"
        )
    try:
        with open(weights, "rb") as file:
            complete = _complete_hdf5(file, os.fstat(file.fileno()).st_size)
    except OSError as error:
        raise StyleTransferError(
            f"weights file {weights} cannot be read ({error.strerror or error}): check its "
            "permissions"
        ) from None
    if not complete:
        raise corrupt_weights_error(weights)


def corrupt_weights_error(weights: str) -> StyleTransferError:
    """The error for a weights file that is damaged, truncated or not HDF5 at all."""
    return StyleTransferError(
        f"weights file {weights} is not a readable HDF5 file (corrupt or truncated?): download "
        "it again or pass another --weights file"
    )


def keras_weights_name(weights: str) -> str:
    """Returns the file name Keras needs to pick the loader: the extension in lower case.

    Keras chooses between its `.weights.h5` and legacy `.h5` readers by a case-sensitive suffix.
    """
    name = os.path.basename(weights)
    for extension in WEIGHTS_EXTENSIONS:
        if name.lower().endswith(extension):
            return name[: -len(extension)] + extension
    return name


def _complete_hdf5(file, size: int) -> bool:
    """Whether `file` starts with an HDF5 superblock whose end-of-file address fits its size.

    The superblock is at offset 0, or 512, 1024, 2048, ... after a user block. Its end-of-file
    address is where the library wrote the file's last byte; a shorter file lost its tail.
    """
    offset = 0
    while offset + len(HDF5_SIGNATURE) <= size:
        file.seek(offset)
        if file.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
            header = file.read(64)
            stored_end, base = _stored_end_of_file(header)
            return stored_end is None or size + base >= stored_end
        offset = 512 if offset == 0 else offset * 2
    return False


def _stored_end_of_file(header: bytes) -> tuple[int | None, int]:
    """Reads (end-of-file address, base address) from the superblock after the signature.

    Versions 0 and 1 list the base, free-space, end-of-file and driver addresses after 16 (or 20)
    bytes of versions and sizes; versions 2 and 3 list the base, extension and end-of-file
    addresses after 4. Returns None for the end when the header is too short or undefined.
    """
    if len(header) < 4:
        return None, 0
    version = header[0]
    if version in (0, 1):
        offset_size, start, end_index = header[5], 16 if version == 0 else 20, 2
    elif version in (2, 3):
        offset_size, start, end_index = header[1], 4, 2
    else:
        return None, 0
    if offset_size not in (2, 4, 8):
        return None, 0
    addresses = []
    for index in range(end_index + 1):
        field = header[start + index * offset_size : start + (index + 1) * offset_size]
        if len(field) < offset_size:
            return None, 0
        addresses.append(int.from_bytes(field, "little"))
    undefined = 2 ** (8 * offset_size) - 1
    base, stored_end = addresses[0], addresses[end_index]
    if stored_end == undefined:
        return None, 0
    return stored_end, 0 if base == undefined else base
