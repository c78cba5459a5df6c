"""Decode, orient, convert, resize and atomically save images.

Everything here works on float32 arrays of shape (height, width, 3), RGB, with values in [0, 1].
Only numpy and Pillow are imported, so the CLI can validate its inputs and outputs before paying for
a TensorFlow import.

Every problem with a user's file (missing, unreadable, not an image, truncated, too large) becomes
a `StyleTransferError` with a one-line message; arbitrary bytes never leak another exception type.
"""

from __future__ import annotations

import contextlib
import io
import os
import pathlib
import stat
import tempfile
import traceback
import warnings
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from tf_nst.errors import StyleTransferError

MAX_PIXELS: int = 89_478_485
"""Largest width * height an image may declare; Pillow's own default decompression-bomb limit."""

OUTPUT_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
"""File extensions `save_image` can write, lower case."""

# Only well-known raster formats with a magic number are tried. Pillow would otherwise also try
# formats such as EPS (which runs Ghostscript on the bytes) and header-less formats that happily
# misread random bytes as a picture. JPEG also opens multi-picture (MPO) camera files.
_INPUT_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "AVIF", "BMP", "TIFF", "PPM")

# Signatures long enough that text or random bytes practically never start with them.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)

_SAVE_FORMATS = {
    ".png": ("PNG", {}),
    ".jpg": ("JPEG", {"quality": 95, "subsampling": 0}),
    ".jpeg": ("JPEG", {"quality": 95, "subsampling": 0}),
    ".webp": ("WEBP", {"quality": 95}),
    ".bmp": ("BMP", {}),
    ".tif": ("TIFF", {}),
    ".tiff": ("TIFF", {}),
}

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_PREMULTIPLIED_MODES = {"La": "LA", "RGBa": "RGBA"}


def decode_image(data: bytes, name: str = "image", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decodes encoded image bytes into an RGB float image.

    The EXIF orientation is applied, so a rotated phone photo comes out the right way up. Of an
    animated GIF, PNG or WebP only the first frame is used. Transparent pixels (LA, RGBA, PA,
    palette or colour-key transparency) are composited onto a WHITE background. Grayscale and
    bilevel images become three equal channels; 16-bit images are scaled by 65535, 32-bit integer
    images (mode I) by 65535 as well (their usual source is a 16-bit PNG or TIFF) and float images
    (mode F) are taken to be in [0, 1] already; both are clipped to [0, 1].

    Args:
        data: The encoded file contents (PNG, JPEG, GIF, WebP, AVIF, BMP, TIFF or PPM).
        name: How to refer to the image in error messages, usually its path.
        max_pixels: Largest width * height the header may declare. It can only tighten Pillow's
            process-wide limit `PIL.Image.MAX_IMAGE_PIXELS`, which is checked as well.

    Returns:
        A C-contiguous float32 array of shape (height, width, 3) with values in [0, 1].

    Raises:
        StyleTransferError: If the data is empty, not an image in a supported format, truncated or
            corrupt, declares a side of 0 pixels or more than `max_pixels` pixels, does not fit
            in memory, or is in the (unsupported) CIELAB colour space.
    """
    label = _printable(name)
    if len(data) == 0:
        raise StyleTransferError(f"{label} is empty (0 bytes): pass a PNG or JPEG image")
    try:
        # Turns Pillow's DecompressionBombWarning (declared size between its limit and twice it)
        # into an exception for this decode only; catch_warnings restores the filters afterwards.
        # Before Python 3.14 that save/restore is process-wide, so it is not thread-safe.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=_INPUT_FORMATS) as image:
                _check_declared_size(image.size, label, max_pixels)
                # Decodes everything now, so truncated data fails here instead of yielding a
                # partly grey picture.
                image.load()
                image = _apply_exif_orientation(image)
                pixels = _to_rgb_float(image, label)
    except StyleTransferError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise StyleTransferError(_bomb_message(error, label, max_pixels)) from error
    except Image.UnidentifiedImageError as error:
        claimed_format = _sniff_format(data)
        if claimed_format is not None:
            # Pillow reports a recognised file with a broken header (such as a side of 0 pixels)
            # as unidentified too; saying so is more useful than "unsupported format".
            raise StyleTransferError(
                f"{label} starts like a {claimed_format} file but its header is invalid or "
                "truncated: re-export or re-download it"
            ) from error
        raise StyleTransferError(
            f"{label} is not an image in a supported format ({', '.join(_INPUT_FORMATS)}): "
            "convert it to PNG or JPEG"
        ) from error
    except MemoryError as error:
        raise StyleTransferError(
            f"{label} is too large to decode in the available memory: use a smaller image"
        ) from error
    except Exception as error:
        # Pillow's decoders signal bad data with OSError, SyntaxError, ValueError, EOFError,
        # struct.error, IndexError and more; for arbitrary bytes all of them mean the same thing.
        raise StyleTransferError(
            f"{label} is truncated or corrupt ({type(error).__name__}: {_printable(str(error))}): "
            "re-export or re-download it"
        ) from error
    return pixels


def load_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Reads an image file and decodes it with `decode_image`.

    Args:
        path: Path of the image file.
        max_pixels: Largest width * height the image may declare.

    Returns:
        A C-contiguous float32 array of shape (height, width, 3) with values in [0, 1].

    Raises:
        StyleTransferError: If the file does not exist, is a directory or other non-regular file,
            cannot be read, is empty, or does not decode (see `decode_image`).
    """
    label = _printable(os.fspath(path))
    try:
        status = os.stat(path)
    except FileNotFoundError as error:
        raise StyleTransferError(f"{label} does not exist: check the path") from error
    except OSError as error:
        raise StyleTransferError(
            f"{label} cannot be accessed ({error.strerror or error}): check the path"
        ) from error
    if stat.S_ISDIR(status.st_mode):
        raise StyleTransferError(
            f"{label} is a directory, not an image file: pass the path of an image file"
        )
    if not stat.S_ISREG(status.st_mode):
        # Reading a FIFO or a device could block forever or never end.
        raise StyleTransferError(f"{label} is not a regular file: pass the path of an image file")
    if status.st_size == 0:
        raise StyleTransferError(f"{label} is empty (0 bytes): pass a PNG or JPEG image")
    try:
        data = pathlib.Path(path).read_bytes()
    except PermissionError as error:
        raise StyleTransferError(
            f"{label} cannot be read (permission denied): fix its permissions or copy it"
        ) from error
    except OSError as error:
        raise StyleTransferError(
            f"{label} cannot be read ({error.strerror or error}): check the file"
        ) from error
    return decode_image(data, name=label, max_pixels=max_pixels)


def resize_to_long_side(image: np.ndarray, long_side: int) -> np.ndarray:
    """Scales an image so its longer side is `long_side` pixels, keeping the aspect ratio.

    Upscaling is allowed. The shorter side is rounded and is at least 1 pixel.

    Args:
        image: Float array of shape (height, width, channels).
        long_side: Target length of the longer side in pixels.

    Returns:
        The resized float32 image, clipped to [0, 1].

    Raises:
        ValueError: If `image` is not (height, width, channels) or `long_side` is not positive.
    """
    height, width = _image_shape(image)[:2]
    _check_positive_size("long_side", long_side)
    scale = long_side / max(height, width)
    if height >= width:
        new_height, new_width = long_side, max(1, round(width * scale))
    else:
        new_height, new_width = max(1, round(height * scale)), long_side
    return resize(image, new_height, new_width)


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resizes an image to exactly `height` x `width` with Lanczos filtering.

    Each channel is filtered as a 32-bit float Pillow image, so no precision is lost to 8 bits.

    Args:
        image: Float array of shape (height, width, channels).
        height: Output height in pixels.
        width: Output width in pixels.

    Returns:
        The resized C-contiguous float32 image, clipped to [0, 1] (Lanczos overshoots at edges).

    Raises:
        ValueError: If `image` is not (height, width, channels) or a size is not positive.
    """
    _image_shape(image)
    _check_positive_size("height", height)
    _check_positive_size("width", width)
    pixels = np.asarray(image, dtype=np.float32)
    if pixels.shape[:2] == (height, width):
        return np.ascontiguousarray(np.clip(pixels, 0.0, 1.0))
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(pixels[:, :, channel])).resize(
                (width, height), Image.Resampling.LANCZOS
            ),
            dtype=np.float32,
        )
        for channel in range(pixels.shape[2])
    ]
    return np.ascontiguousarray(np.clip(np.stack(channels, axis=-1), 0.0, 1.0))


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Converts a float image in [0, 1] to uint8, clipping and rounding to nearest.

    Args:
        image: Float array; values outside [0, 1] are clipped.

    Returns:
        A uint8 array of the same shape.

    Raises:
        StyleTransferError: If any value is NaN or infinite (a diverged run), so such pixels are
            never written as plausible-looking black or white.
        ValueError: If `image` is not a floating-point array.
    """
    pixels = np.asarray(image)
    if not np.issubdtype(pixels.dtype, np.floating):
        raise ValueError(f"to_uint8 expects a float image in [0, 1], got dtype {pixels.dtype}")
    if not np.all(np.isfinite(pixels)):
        raise StyleTransferError(
            "the image contains NaN or infinite values, so it was not saved: the run diverged; "
            "lower --learning-rate or the loss weights"
        )
    return np.rint(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8)


def check_output_path(
    path: str | os.PathLike, input_paths: Iterable[str | os.PathLike] = ()
) -> pathlib.Path:
    """Checks, before a run starts, that an image can be saved at `path`.

    Args:
        path: Where the output image will be written.
        input_paths: Paths of the run's input images, which must not be overwritten.

    Returns:
        The resolved (absolute, symlink-free) output path.

    Raises:
        StyleTransferError: If the extension is unknown, the path is a directory, its parent
            directory is missing, not a directory or not writable, or it names one of the inputs.
    """
    label = _printable(os.fspath(path))
    output = pathlib.Path(path)
    suffix = output.suffix.lower()
    known = ", ".join(OUTPUT_EXTENSIONS)
    if not suffix:
        raise StyleTransferError(f"output path {label} has no file extension: end it with {known}")
    if suffix not in OUTPUT_EXTENSIONS:
        raise StyleTransferError(
            f"output path {label} has the unknown extension {_printable(suffix)}: "
            f"use one of {known}"
        )
    if output.is_dir():
        raise StyleTransferError(
            f"output path {label} is a directory: give a file name such as {label}/output.png"
        )
    parent = pathlib.Path(os.path.abspath(output)).parent
    parent_label = _printable(str(parent))
    if not parent.exists():
        raise StyleTransferError(f"output directory {parent_label} does not exist: create it first")
    if not parent.is_dir():
        raise StyleTransferError(
            f"output directory {parent_label} is not a directory: choose another output path"
        )
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
        if _same_file(output, pathlib.Path(input_path)):
            raise StyleTransferError(
                f"refusing to overwrite the input {_printable(os.fspath(input_path))} with the "
                f"output {label}: choose another output path"
            )
    return output.resolve()


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
    label = _printable(os.fspath(path))
    suffix = pathlib.Path(path).suffix.lower()
    if suffix not in _SAVE_FORMATS:
        raise StyleTransferError(
            f"cannot save {label}: unknown extension {_printable(suffix) or '(none)'}; use one of "
            f"{', '.join(OUTPUT_EXTENSIONS)}"
        )
    if _image_shape(image)[2] != 3:
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
    label = _printable(os.fspath(path))
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
    reason = _printable(error.strerror or str(error))
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


def _sniff_format(data: bytes) -> str | None:
    """Returns the format whose signature `data` starts with, for formats with a strong one."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    for signature, format_name in _SIGNATURES:
        if data[: len(signature)] == signature:
            return format_name
    return None


def _check_declared_size(size: tuple[int, int], label: str, max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise StyleTransferError(
            f"{label} declares a size of {width}x{height} pixels: an image needs at least one "
            "pixel; re-export it"
        )
    if width * height > max_pixels:
        raise StyleTransferError(_too_large_message(label, width, height, max_pixels))


def _too_large_message(label: str, width: int, height: int, limit: int) -> str:
    return (
        f"{label} declares {width}x{height} = {width * height} pixels, over the limit of "
        f"{limit}: use a smaller image"
    )


def _bomb_message(error: Exception, label: str, max_pixels: int) -> str:
    limit = max_pixels
    if Image.MAX_IMAGE_PIXELS is not None:
        limit = min(max_pixels, Image.MAX_IMAGE_PIXELS)
    # Pillow's exception names only the pixel count. The declared size is the `size` argument of
    # the Pillow function that raised it, which is more robust than re-parsing every header format.
    for frame, _ in traceback.walk_tb(error.__traceback__):
        if frame.f_code.co_name == "_decompression_bomb_check":
            size = frame.f_locals.get("size")
            if isinstance(size, tuple) and len(size) == 2:
                return _too_large_message(label, int(size[0]), int(size[1]), limit)
    return f"{label} declares more than {limit} pixels, over the limit: use a smaller image"


def _apply_exif_orientation(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise
    except Exception:
        # Broken EXIF metadata should not cost the user an otherwise good picture; the pixels are
        # already decoded, only the orientation hint is lost.
        return image


def _to_rgb_float(image: Image.Image, label: str) -> np.ndarray:
    """Converts a loaded Pillow image of any mode to float32 RGB in [0, 1] on white."""
    if image.mode in _SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
        return _high_depth_to_rgb_float(image)
    if image.mode == "LAB":
        # Pillow's convert() would copy the L, a, b bands into R, G, B unchanged.
        raise StyleTransferError(
            f"{label} is in the CIELAB colour space, which is not supported: convert it to RGB"
        )
    if image.mode in _PREMULTIPLIED_MODES:
        image = image.convert(_PREMULTIPLIED_MODES[image.mode])
    if image.has_transparency_data:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[:, :, 3:]
        rgb = rgba[:, :, :3] * alpha + (1.0 - alpha)
    else:
        rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return np.ascontiguousarray(np.clip(rgb, 0.0, 1.0), dtype=np.float32)


def _high_depth_to_rgb_float(image: Image.Image) -> np.ndarray:
    # Pillow's own convert("RGB") clips these modes at 255 instead of scaling them, so scale here.
    raw = np.asarray(image)
    if image.mode == "F":
        gray = np.nan_to_num(raw.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    else:
        gray = raw.astype(np.float32) / 65535.0
    gray = np.clip(gray, 0.0, 1.0)
    transparency = image.info.get("transparency")
    if isinstance(transparency, int) and not isinstance(transparency, bool):
        # A colour-key (PNG tRNS) grey level marks fully transparent pixels: show white there.
        gray = np.where(raw == transparency, np.float32(1.0), gray)
    rgb = np.repeat(gray[:, :, np.newaxis], 3, axis=2)
    return np.ascontiguousarray(rgb, dtype=np.float32)


def _image_shape(image: np.ndarray) -> tuple[int, int, int]:
    shape = np.shape(image)
    if len(shape) != 3 or shape[0] < 1 or shape[1] < 1 or shape[2] < 1:
        raise ValueError(f"expected an image of shape (height, width, channels), got {shape}")
    return shape


def _check_positive_size(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _same_file(first: pathlib.Path, second: pathlib.Path) -> bool:
    if os.path.realpath(first) == os.path.realpath(second):
        return True
    # samefile also catches hard links and case-insensitive file systems, but needs both to exist.
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False


def _printable(text: str) -> str:
    """Escapes control characters (a newline in a file name) so a message stays one line."""
    return "".join(
        character if character.isprintable() else repr(character)[1:-1] for character in text
    )
