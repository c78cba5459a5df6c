"""Where an output may go, and writing it atomically.

`check_output_path` checks, before a run starts, everything that would otherwise only fail at its
end: the extension, the directory, the name's length with its temporary name, symbolic links and
the inputs it must not overwrite. `save_image` and `atomic_write_bytes` write to a temporary
file beside the destination and rename it into place, so a file appears complete or not at all.
Only numpy and Pillow are imported, so the CLI can check before TensorFlow loads.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import numpy as np
from PIL import Image

from tf_nst.errors import StyleTransferError
from tf_nst.image.decoding import checked_shape, to_uint8
from tf_nst.text import printable

OUTPUT_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
"""File extensions `save_image` can write, lower case."""


_SAVE_FORMATS = {
    ".png": ("PNG", {}),
    ".jpg": ("JPEG", {"quality": 95, "subsampling": 0}),
    ".jpeg": ("JPEG", {"quality": 95, "subsampling": 0}),
    ".webp": ("WEBP", {"quality": 95}),
    ".bmp": ("BMP", {}),
    ".tif": ("TIFF", {}),
    ".tiff": ("TIFF", {}),
}


def check_output_path(
    path: str | os.PathLike, input_paths: Iterable[str | os.PathLike] = ()
) -> pathlib.Path:
    """Checks, before a run starts, that an image can be saved at `path`.

    Beside the extension, the directory and the inputs, it checks what would otherwise only fail
    at the end of a run: the name's length including the temporary name `save_image` writes first
    (`.NAME.xxxxxxxx.tmp`, which must fit the file system's NAME_MAX), and a file standing where
    a directory of the path should be.

    Symbolic links: an output path that is itself a symbolic link is refused. Saving replaces the
    file at `path` by renaming a new file over it, so it would replace the link, not write where
    it points; refusing says so instead of surprising either way, and it can never turn into
    overwriting an input through a link. Links among the parent directories are followed.

    Args:
        path: Where the output image will be written.
        input_paths: Paths of the run's input images, which must not be overwritten.

    Returns:
        The output path with its directory resolved (absolute, symlink-free).

    Raises:
        StyleTransferError: If the extension is unknown, the path is a directory or a symbolic
            link, its name is too long, a component of its directory is a file, its parent
            directory is missing or not writable, or it names one of the inputs.
    """
    label = printable(os.fspath(path))
    output = pathlib.Path(path)
    suffix = output.suffix.lower()
    known = ", ".join(OUTPUT_EXTENSIONS)
    # Folders first: "out/" and "." name folders, which have no extension to complain about.
    # os.path.isdir, not Path.is_dir: on Python 3.11 the latter raises ENAMETOOLONG for a name
    # over 255 bytes, which `tf_nst.run.check_outputs` then refuses with a proper message.
    folder = label.rstrip("/" + os.sep) or label
    if os.path.isdir(output):
        raise StyleTransferError(
            f"output path {label} is a directory: give a file name such as {folder}/output.png"
        )
    if os.fspath(path).endswith(("/", os.sep)):
        raise StyleTransferError(
            f"output path {label} ends with / and so names a folder, but the output is one image "
            f"file: give a file name such as {folder}/output.png"
        )
    if not suffix:
        raise StyleTransferError(f"output path {label} has no file extension: end it with {known}")
    if suffix not in OUTPUT_EXTENSIONS:
        raise StyleTransferError(
            f"output path {label} has the unknown extension {printable(suffix)}: use one of {known}"
        )
    parent = pathlib.Path(os.path.abspath(output)).parent
    parent_label = printable(str(parent))
    existing = _first_existing_ancestor(parent)
    if existing == parent and not os.path.isdir(parent):
        raise StyleTransferError(
            f"output directory {parent_label} is not a directory: choose another output path"
        )
    if not os.path.isdir(existing):
        raise StyleTransferError(
            f"output directory {parent_label} cannot be created: {printable(str(existing))} is "
            "a file, not a directory; choose another output path"
        )
    if existing != parent:
        raise StyleTransferError(f"output directory {parent_label} does not exist: create it first")
    check_name_length(output, parent)
    # Writing needs W (create the temporary file) and X (reach entries) on the directory. The
    # effective ids are the ones the later open() is checked against.
    writable = os.access(
        parent, os.W_OK | os.X_OK, effective_ids=os.access in os.supports_effective_ids
    )
    if not writable:
        raise StyleTransferError(
            f"output directory {parent_label} is not writable: fix its permissions or choose "
            "another output path"
        )
    for input_path in input_paths:
        if same_file(output, pathlib.Path(input_path)):
            raise StyleTransferError(
                f"refusing to overwrite the input {printable(os.fspath(input_path))} with the "
                f"output {label}: choose another output path"
            )
    if output.is_symlink():
        raise StyleTransferError(
            f"output path {label} is a symbolic link (to {printable(os.readlink(output))}): "
            "tf-nst replaces the file it writes rather than writing through a link; give the "
            "real path or another name"
        )
    return parent.resolve() / output.name


TEMPORARY_NAME_EXTRA = len(".") + len(".") + 8 + len(".tmp")
"""Bytes `save_image`'s temporary name `.NAME.xxxxxxxx.tmp` adds to NAME (mkstemp: 8 random)."""


def check_name_length(
    path: str | os.PathLike, directory: str | os.PathLike | None = None, what: str = "output"
) -> None:
    """Refuses a file name that, with the temporary name written first, exceeds NAME_MAX.

    Args:
        path: The file to be written atomically (`save_image`, `atomic_write_bytes`).
        directory: An existing directory whose file system decides the limit; `path`'s parent
            by default.
        what: What the file is, for the message ("output", "--save-every intermediate").

    Raises:
        StyleTransferError: Naming the limit and how long the name may be.
    """
    name = pathlib.Path(path).name
    directory = pathlib.Path(os.path.abspath(path)).parent if directory is None else directory
    limit = _name_max(directory)
    length = len(os.fsencode(name))
    if length + TEMPORARY_NAME_EXTRA > limit:
        raise StyleTransferError(
            f"{what} name {printable(name[:40])}... is {length} bytes long, but it is first "
            f"written as .NAME.xxxxxxxx.tmp and this file system allows {limit} bytes per name: "
            f"use a name of at most {limit - TEMPORARY_NAME_EXTRA} bytes"
        )


def _name_max(directory) -> int:
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _first_existing_ancestor(directory: pathlib.Path) -> pathlib.Path:
    """The directory itself if it exists, else its nearest existing ancestor (maybe a file)."""
    candidate = directory
    while not os.path.exists(candidate) and candidate != candidate.parent:
        candidate = candidate.parent
    return candidate


def save_image(image: np.ndarray, path: str | os.PathLike) -> None:
    """Saves a float RGB image atomically, in the format its extension names.

    JPEG and WebP are written at quality 95 (JPEG without chroma subsampling, which would smear
    the fine coloured texture style transfer produces). The file appears complete or not at all; an
    existing file at `path` keeps its old content if anything fails.

    Args:
        image: Float array of shape (height, width, 3) with values in [0, 1].
        path: Destination; its extension must be one of `OUTPUT_EXTENSIONS`.

    Raises:
        StyleTransferError: If the extension is unknown, the image has non-finite values, or the
            file cannot be written.
        ValueError: If `image` is not a (height, width, 3) float array.
    """
    label = printable(os.fspath(path))
    suffix = pathlib.Path(path).suffix.lower()
    if suffix not in _SAVE_FORMATS:
        raise StyleTransferError(
            f"cannot save {label}: unknown extension {printable(suffix) or '(none)'}; use one of "
            f"{', '.join(OUTPUT_EXTENSIONS)}"
        )
    if checked_shape(image)[2] != 3:
        raise ValueError(f"save_image expects a (height, width, 3) image, got {np.shape(image)}")
    pixel_format, options = _SAVE_FORMATS[suffix]
    picture = Image.fromarray(to_uint8(image))
    with _atomic_file(path) as file:
        picture.save(file, format=pixel_format, **options)


def atomic_write_bytes(data: bytes, path: str | os.PathLike) -> None:
    """Writes bytes to `path` atomically: the file holds either its old content or all of `data`.

    Args:
        data: The bytes to write.
        path: Destination file; its directory must exist.

    Raises:
        StyleTransferError: If the file cannot be written (missing directory, no permission, disk
            full, ...).
    """
    with _atomic_file(path) as file:
        file.write(data)


@contextlib.contextmanager
def _atomic_file(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Yields a temporary file next to `path` that replaces `path` when the block succeeds.

    The temporary file lives in the same directory so `os.replace` is a same-filesystem rename,
    which is atomic; it is fsynced first so a crash cannot leave a renamed but empty file. On any
    failure the temporary file is removed and the destination is untouched.
    """
    destination = pathlib.Path(path)
    label = printable(os.fspath(path))
    directory = destination.parent
    try:
        descriptor, temporary_name = tempfile.mkstemp(
            dir=directory, prefix=f".{destination.name}.", suffix=".tmp"
        )
    except OSError as error:
        raise _write_error(label, error) from error
    try:
        with os.fdopen(descriptor, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        # mkstemp creates the file as 0600; give it the mode any new file would get.
        os.chmod(temporary_name, 0o666 & ~_umask())
        os.replace(temporary_name, destination)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary_name)
        if isinstance(error, OSError):
            raise _write_error(label, error) from error
        raise
    _fsync_directory(directory)


def _write_error(label: str, error: OSError) -> StyleTransferError:
    reason = printable(error.strerror or str(error))
    return StyleTransferError(
        f"cannot write {label} ({reason}): check the directory exists, is writable and has space"
    )


def _fsync_directory(directory: pathlib.Path) -> None:
    # Makes the rename itself durable; best effort, as not every platform can open a directory.
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _umask() -> int:
    # Reading the umask with os.umask() means briefly changing it for the whole process, which
    # races with other threads creating files; Linux exposes it read-only instead.
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


def same_file(first: pathlib.Path, second: pathlib.Path) -> bool:
    """Whether two paths name the same file (by real path, or by device and inode)."""
    if os.path.realpath(first) == os.path.realpath(second):
        return True
    # samefile also catches hard links and case-insensitive file systems, but needs both to exist.
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False


@contextlib.contextmanager
def staged_directory(directory: str | os.PathLike):
    """Yields an empty staging path beside `directory` that is renamed to it if the block succeeds.

    The staging directory is a hidden sibling (same file system, so the rename is atomic) and is
    removed whatever happens.

    Raises:
        StyleTransferError: If `directory` exists, its parent is not writable, or the rename fails.
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
        target = staging / "saved_model"
        try:
            yield target
            os.replace(target, directory)
        except OSError as error:
            raise StyleTransferError(
                f"cannot write the export to {directory} ({error.strerror or error}): check "
                "that it does not exist yet and that the disk has space"
            ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def replace_directory(directory: str | os.PathLike, write) -> None:
    """Replaces `directory`, which this tool wrote, by what `write(path)` exports beside it.

    The new export is written whole to a hidden sibling first and then swapped in by two renames
    on the same file system, so the old one is given up only once the new one is complete; the
    old one is then removed. The caller decides that `directory` may be replaced.
    """
    directory = pathlib.Path(directory)
    token = secrets.token_hex(4)
    fresh, old = (
        directory.with_name(f".{directory.name}.{kind}-{token}") for kind in ("new", "old")
    )
    write(fresh)
    os.rename(directory, old)
    os.rename(fresh, directory)
    shutil.rmtree(old, ignore_errors=True)
