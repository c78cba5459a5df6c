"""Decode, orient, convert and resize images (writing them is `tf_nst.image.writing`).

Everything here works on float32 arrays of shape (height, width, 3), RGB, with values in [0, 1].
Only numpy and Pillow are imported, so the CLI can validate its inputs before paying for a
TensorFlow import.

Every problem with a user's file (missing, unreadable, not an image, truncated, too large) becomes
a `StyleTransferError` with a one-line message; arbitrary bytes never leak another exception type.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import pathlib
import stat
import traceback
import warnings
from collections.abc import Iterator

import numpy as np
from PIL import Image

from tf_nst.errors import StyleTransferError
from tf_nst.sizes import MAX_PIXELS, working_shape
from tf_nst.text import printable

REDUCING_GAP = 2.0
"""A large image is box-reduced while decoding only down to this multiple of the side a run needs;
the last step is Lanczos. Pillow's `thumbnail` uses the same gap, and at 2 the box stage leaves no
visible trace."""

FLOAT_WORK_BYTES_PER_PIXEL = 64
"""Peak bytes per (reduced) pixel of turning decoded pixels into the float image: an RGBA copy
(4), the uint8 array (4), float32 arrays for the conversion, compositing and clipping (3 x 12) and
the Lanczos resize (per channel, then stacked and clipped), rounded up."""

# Bytes per pixel of Pillow's storage of a decoded image, by mode; every other mode takes 4.
_STORAGE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}


# Only well-known raster formats with a magic number are tried. Pillow would otherwise also try
# formats such as EPS (which runs Ghostscript on the bytes) and header-less formats that happily
# misread random bytes as a picture. JPEG also opens multi-picture (MPO) camera files.
_INPUT_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "AVIF", "BMP", "TIFF", "PPM")

IMAGE_EXTENSIONS = (
    ".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif", ".bmp", ".tif", ".tiff",
    ".ppm", ".pgm", ".pbm", ".pnm",
)  # fmt: skip
"""File extensions (lower case) of the formats `load_image` reads: what a folder walk picks up."""

# Signatures long enough that text or random bytes practically never start with them.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_PREMULTIPLIED_MODES = {"La": "LA", "RGBa": "RGBA"}


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    """What an image header says, read without decoding the pixels (`read_image_info`).

    Attributes:
        height: Height in pixels as stored (before any EXIF rotation; the long and short sides,
            which are all the size checks and the memory estimate need, do not change with it).
        width: Width in pixels as stored.
        mode: Pillow's mode of the decoded pixels ("RGB", "L", "P", "I;16", ...).
        file_bytes: Size of the encoded file, which `load_image` holds in memory while decoding.
    """

    height: int
    width: int
    mode: str = "RGB"
    file_bytes: int = 0

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width), the form `scales` takes."""
        return self.height, self.width


def read_image_info(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> ImageInfo:
    """Reads an image file's header: its size and pixel mode, without decoding the pixels.

    Args:
        path: Path of the image file.
        max_pixels: Largest width * height the image may declare.

    Returns:
        The `ImageInfo`.

    Raises:
        StyleTransferError: For the same files `load_image` refuses, as far as a header shows.
    """
    label = printable(os.fspath(path))
    status = _check_image_file(path, label)
    try:
        with open(path, "rb") as file:
            head = file.read(16)
    except OSError as error:
        raise _read_error(label, error) from error
    with _decode_errors(label, head, max_pixels), Image.open(path, formats=_INPUT_FORMATS) as image:
        _check_declared_size(image.size, label, max_pixels)
        return ImageInfo(image.height, image.width, image.mode, status.st_size)


def decode_image(
    data: bytes, name: str = "image", max_pixels: int = MAX_PIXELS, long_side: int | None = None
) -> np.ndarray:
    """Decodes encoded image bytes into an RGB float image, reduced to what a run needs.

    The EXIF orientation is applied, so a rotated phone photo comes out the right way up. Of an
    animated GIF, PNG or WebP only the first frame is used. Transparent pixels (LA, RGBA, PA,
    palette or colour-key transparency) are composited onto a WHITE background. Grayscale and
    bilevel images become three equal channels; 16-bit images are scaled by 65535, 32-bit integer
    images (mode I) by 65535 as well (their usual source is a 16-bit PNG or TIFF) and float images
    (mode F) are taken to be in [0, 1] already; both are clipped to [0, 1]. PNG text chunks are
    metadata: one too large for Pillow's safety limit is dropped, not taken for corruption.

    With `long_side`, an image whose long side is longer is reduced while it is decoded, so the
    full-size float image never exists: a JPEG is decoded at 1/2, 1/4 or 1/8 size by its DCT
    (`draft`), other formats are box-filtered by an integer factor (`Image.reduce`) while still
    8 or 16 bits, both keeping at least `REDUCING_GAP` times `long_side`; the float image is then
    resized with `resize` (Lanczos) to exactly `tf_nst.sizes.working_shape(full size, long_side)`.
    Smaller images come back at their own size: upscaling is the run's business.

    Args:
        data: The encoded file contents (PNG, JPEG, GIF, WebP, AVIF, BMP, TIFF or PPM).
        name: How to refer to the image in error messages, usually its path.
        max_pixels: Largest width * height the header may declare. It can only tighten Pillow's
            process-wide limit `PIL.Image.MAX_IMAGE_PIXELS`, which is checked as well.
        long_side: The longest side the caller needs, or None for the full size.

    Returns:
        A C-contiguous float32 array of shape (height, width, 3) with values in [0, 1].

    Raises:
        StyleTransferError: If the data is empty, not an image in a supported format, truncated or
            corrupt, declares a side of 0 pixels or more than `max_pixels` pixels, does not fit
            in memory, or is in the (unsupported) CIELAB colour space.
    """
    label = printable(name)
    if len(data) == 0:
        raise StyleTransferError(f"{label} is empty (0 bytes): pass a PNG or JPEG image")
    if long_side is not None:
        _check_positive_size("long_side", long_side)
    try:
        with _decode_errors(label, data, max_pixels):
            return _decode(data, label, max_pixels, long_side)
    except StyleTransferError as error:
        if not _is_text_chunk_error(error.__cause__):
            raise
    # Only the text was too large; the same pixels without the text chunks decode normally.
    with _decode_errors(label, data, max_pixels):
        return _decode(_without_png_text_chunks(data), label, max_pixels, long_side)


def _decode(data: bytes, label: str, max_pixels: int, long_side: int | None) -> np.ndarray:
    # Turns Pillow's DecompressionBombWarning (declared size between its limit and twice it)
    # into an exception for this decode only; catch_warnings restores the filters afterwards.
    # Before Python 3.14 that save/restore is process-wide, so it is not thread-safe.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        opened = Image.open(io.BytesIO(data), formats=_INPUT_FORMATS)
        try:
            _check_declared_size(opened.size, label, max_pixels)
            full_size = opened.size
            if long_side is not None and opened.format == "JPEG":
                opened.draft(None, _reduced_size(full_size, long_side))
            # Decodes everything now, so truncated data fails here instead of yielding a
            # partly grey picture.
            opened.load()
            orientation = _exif_orientation(opened)
            image = opened if long_side is None else _reduce(opened, long_side)
            if image is not opened:
                opened.close()  # frees the full-size pixels before any float copy exists
            stored_size = image.size
            image = _orient(image, orientation)
            if image.size != stored_size:  # a quarter turn: the full size turns with the image
                full_size = full_size[::-1]
            pixels = _to_rgb_float(image, label)
        finally:
            opened.close()
    del image
    if long_side is not None and max(full_size) > long_side:
        height, width = working_shape((full_size[1], full_size[0]), long_side)
        pixels = resize(pixels, height, width)
    return pixels


@contextlib.contextmanager
def _decode_errors(label: str, data: bytes, max_pixels: int) -> Iterator[None]:
    """Turns whatever decoding `data` raises into a one-line `StyleTransferError`."""
    try:
        yield
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
            f"{label} is truncated or corrupt ({type(error).__name__}: {printable(str(error))}): "
            "re-export or re-download it"
        ) from error


def load_image(
    path: str | os.PathLike, max_pixels: int = MAX_PIXELS, long_side: int | None = None
) -> np.ndarray:
    """Reads an image file and decodes it with `decode_image`.

    Args:
        path: Path of the image file.
        max_pixels: Largest width * height the image may declare.
        long_side: Reduce a larger image to this long side while decoding (see `decode_image`);
            None keeps the full size.

    Returns:
        A C-contiguous float32 array of shape (height, width, 3) with values in [0, 1].

    Raises:
        StyleTransferError: If the file does not exist, is a directory or other non-regular file,
            cannot be read, is empty, or does not decode (see `decode_image`).
    """
    label = printable(os.fspath(path))
    _check_image_file(path, label)
    try:
        data = pathlib.Path(path).read_bytes()
    except OSError as error:
        raise _read_error(label, error) from error
    return decode_image(data, name=label, max_pixels=max_pixels, long_side=long_side)


def decode_peak_bytes(info: ImageInfo, long_side: int | None = None) -> int:
    """Returns an upper bound of the memory `load_image(path, long_side=...)` peaks at.

    The encoded file, the decoded pixels at full size in Pillow's storage (1, 2 or 4 bytes per
    pixel by mode; JPEG is counted at full size although `draft` decodes it smaller), a converted
    copy where a mode must be converted before it can be reduced, and the float work at the
    reduced size (`FLOAT_WORK_BYTES_PER_PIXEL`).
    """
    pixels = info.height * info.width
    reduced = pixels // _reduction_factor((info.width, info.height), long_side) ** 2
    storage = _STORAGE_BYTES.get(info.mode, 4)
    conversion = 4 if info.mode in ("P", "PA", "I;16", "I;16L", "I;16B", "I;16N") else 0
    conversion += 1 if info.mode == "1" else 0
    return info.file_bytes + pixels * (storage + conversion) + reduced * FLOAT_WORK_BYTES_PER_PIXEL


def loaded_shape(info: ImageInfo, long_side: int | None = None) -> tuple[int, int]:
    """Returns the (height, width), up to a quarter turn, `load_image` gives for this image."""
    if long_side is None or max(info.shape) <= long_side:
        return info.shape
    return working_shape(info.shape, long_side)


def _check_image_file(path: str | os.PathLike, label: str) -> os.stat_result:
    """Returns the file's status if it is a non-empty regular file, else raises."""
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
    return status


def _read_error(label: str, error: OSError) -> StyleTransferError:
    if isinstance(error, PermissionError):
        return StyleTransferError(
            f"{label} cannot be read (permission denied): fix its permissions or copy it"
        )
    return StyleTransferError(f"{label} cannot be read ({error.strerror or error}): check the file")


def _reduction_factor(size: tuple[int, int], long_side: int | None) -> int:
    """The integer factor that keeps at least `REDUCING_GAP * long_side` of the long side."""
    if long_side is None:
        return 1
    return max(1, int(max(size) // (REDUCING_GAP * long_side)))


def _reduced_size(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    factor = _reduction_factor(size, long_side)
    return max(1, size[0] // factor), max(1, size[1] // factor)


def _reduce(image: Image.Image, long_side: int) -> Image.Image:
    """Box-filters a loaded image by an integer factor, in its own bit depth, before floats."""
    factor = _reduction_factor(image.size, long_side)
    if factor < 2:
        return image
    if image.mode in _SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
        if "transparency" in image.info:
            return image  # a colour key must be compared with unaveraged values
        if image.mode in _SIXTEEN_BIT_MODES:
            image = image.convert("I")  # reduce() has no 16-bit modes; I keeps the values
    elif image.mode == "LAB":
        return image  # refused by _to_rgb_float; no point in reducing it first
    elif image.mode in _PREMULTIPLIED_MODES or image.mode in ("LA", "RGBA"):
        pass  # reduce() averages these premultiplied itself
    elif image.has_transparency_data:
        # Palette and colour-key transparency must become alpha before pixels are averaged.
        image = image.convert("RGBA")
    elif image.mode == "P":
        image = image.convert("RGB")  # averaging palette indices would mix unrelated colours
    elif image.mode == "1":
        image = image.convert("L")
    return image.reduce(factor)


def _is_text_chunk_error(error: BaseException | None) -> bool:
    return isinstance(error, ValueError) and "MAX_TEXT" in str(error)


def _without_png_text_chunks(data: bytes) -> bytes:
    """Returns PNG `data` without its tEXt, zTXt and iTXt chunks (or unchanged if not PNG)."""
    signature = b"\x89PNG\r\n\x1a\n"
    if not data.startswith(signature):
        return data
    kept = [signature]
    position = len(signature)
    while position + 8 <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        end = position + 12 + length
        if data[position + 4 : position + 8] not in (b"tEXt", b"zTXt", b"iTXt"):
            kept.append(data[position:end])
        position = end
    kept.append(data[position:])
    return b"".join(kept)


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
    height, width = checked_shape(image)[:2]
    _check_positive_size("long_side", long_side)
    scale = long_side / max(height, width)
    if height >= width:
        new_height, new_width = long_side, max(1, round(width * scale))
    else:
        new_height, new_width = max(1, round(height * scale)), long_side
    return resize(image, new_height, new_width)


def resize(
    image: np.ndarray,
    height: int,
    width: int,
    box: tuple[float, float, float, float] | None = None,
) -> np.ndarray:
    """Resizes an image (or a region of it) to exactly `height` x `width` with Lanczos filtering.

    Each channel is filtered as a 32-bit float Pillow image, so no precision is lost to 8 bits.

    Args:
        image: Float array of shape (height, width, channels).
        height: Output height in pixels.
        width: Output width in pixels.
        box: `(left, top, right, bottom)` in input pixels, fractions allowed: the region to
            resample (the filter still reads the pixels around it, so the result equals that part
            of resizing the whole image, without the cost of the rest); None for all of it.

    Returns:
        The resized C-contiguous float32 image, clipped to [0, 1] (Lanczos overshoots at edges).

    Raises:
        ValueError: If `image` is not (height, width, channels) or a size is not positive.
    """
    checked_shape(image)
    _check_positive_size("height", height)
    _check_positive_size("width", width)
    pixels = np.asarray(image, dtype=np.float32)
    if box is None and pixels.shape[:2] == (height, width):
        return np.ascontiguousarray(np.clip(pixels, 0.0, 1.0))
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(pixels[:, :, channel])).resize(
                (width, height), Image.Resampling.LANCZOS, box=box
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


_ORIENTATION_TAG = 0x0112
# EXIF orientation to the transposition that turns the stored pixels upright (as
# `PIL.ImageOps.exif_transpose` does, but applicable to the reduced image).
_ORIENTATION_TRANSPOSES = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _exif_orientation(image: Image.Image) -> int | None:
    try:
        return image.getexif().get(_ORIENTATION_TAG)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise
    except Exception:
        # Broken EXIF metadata should not cost the user an otherwise good picture; the pixels are
        # already decoded, only the orientation hint is lost.
        return None


def _orient(image: Image.Image, orientation: int | None) -> Image.Image:
    transpose = _ORIENTATION_TRANSPOSES.get(orientation) if isinstance(orientation, int) else None
    return image if transpose is None else image.transpose(transpose)


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


def checked_shape(image: np.ndarray) -> tuple[int, int, int]:
    """Returns the (height, width, channels) of an image array; anything else is a ValueError."""
    shape = np.shape(image)
    if len(shape) != 3 or shape[0] < 1 or shape[1] < 1 or shape[2] < 1:
        raise ValueError(f"expected an image of shape (height, width, channels), got {shape}")
    return shape


def _check_positive_size(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
