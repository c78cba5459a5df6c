"""Tests of tf_nst.image.decoding: every test image is generated here, in memory or in tmp_path."""

import io
import os
import stat
import struct
import warnings
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tf_nst.errors import StyleTransferError
from tf_nst.image import decoding, writing
from tf_nst.image.decoding import (
    MAX_PIXELS,
    decode_image,
    load_image,
    resize,
    resize_to_long_side,
    to_uint8,
)
from tf_nst.image.writing import (
    OUTPUT_EXTENSIONS,
    atomic_write_bytes,
    check_output_path,
    save_image,
)

# --- helpers -----------------------------------------------------------------------------------


def encode(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def assert_rgb_float(array: np.ndarray, height: int, width: int) -> None:
    assert array.dtype == np.float32
    assert array.shape == (height, width, 3)
    assert array.flags["C_CONTIGUOUS"]
    assert np.all(np.isfinite(array))
    assert array.min() >= 0.0
    assert array.max() <= 1.0


def assert_one_line(error_info: pytest.ExceptionInfo) -> str:
    message = str(error_info.value)
    assert message
    assert "\n" not in message
    assert "\r" not in message
    return message


def png_chunk(chunk_type: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + chunk_type
        + data
        + struct.pack(">I", zlib.crc32(chunk_type + data))
    )


def png_declaring_size(width: int, height: int) -> bytes:
    """A tiny real PNG whose IHDR is rewritten (with a valid CRC) to declare width x height."""
    data = bytearray(encode(Image.new("RGB", (1, 1), (1, 2, 3)), "PNG"))
    # Signature (8) + IHDR length (4) + type (4); then width, height, and the CRC at 29..33.
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- decoding: modes ---------------------------------------------------------------------------


def test_rgb_png_decodes_to_exact_values():
    pixels = np.array([[[0, 128, 255], [10, 20, 30]]], dtype=np.uint8)
    decoded = decode_image(encode(Image.fromarray(pixels), "PNG"))
    assert_rgb_float(decoded, 1, 2)
    np.testing.assert_allclose(decoded, pixels / 255.0, atol=1e-7)


def test_grayscale_becomes_three_equal_channels():
    decoded = decode_image(encode(Image.new("L", (3, 2), 100), "PNG"))
    assert_rgb_float(decoded, 2, 3)
    np.testing.assert_allclose(decoded, 100 / 255.0, atol=1e-7)


def test_grayscale_alpha_is_composited_on_white():
    pixels = np.array([[[50, 255], [50, 0], [50, 128]]], dtype=np.uint8)
    decoded = decode_image(encode(Image.fromarray(pixels, "LA"), "PNG"))
    assert_rgb_float(decoded, 1, 3)
    np.testing.assert_allclose(decoded[0, 0], 50 / 255.0, atol=1e-6)
    np.testing.assert_allclose(decoded[0, 1], 1.0, atol=1e-6)
    alpha = 128 / 255.0
    np.testing.assert_allclose(decoded[0, 2], 50 / 255.0 * alpha + 1.0 - alpha, atol=1e-6)


def test_rgba_transparent_pixel_becomes_white_and_half_alpha_blends():
    pixels = np.array([[[255, 0, 0, 255], [0, 0, 0, 0], [0, 0, 0, 128]]], dtype=np.uint8)
    decoded = decode_image(encode(Image.fromarray(pixels, "RGBA"), "PNG"))
    assert_rgb_float(decoded, 1, 3)
    np.testing.assert_allclose(decoded[0, 0], [1.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(decoded[0, 1], [1.0, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(decoded[0, 2], 1.0 - 128 / 255.0, atol=1e-6)


def test_palette_image_uses_palette_colours():
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.putpixel((1, 0), 1)
    decoded = decode_image(encode(image, "PNG"))
    assert_rgb_float(decoded, 1, 2)
    np.testing.assert_allclose(decoded[0], [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], atol=1e-6)


def test_palette_transparency_becomes_white():
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    image.putpixel((1, 0), 1)
    decoded = decode_image(encode(image, "PNG", transparency=0))
    assert_rgb_float(decoded, 1, 2)
    np.testing.assert_allclose(decoded[0], [[1.0, 1.0, 1.0], [0.0, 1.0, 0.0]], atol=1e-6)


def test_gif_transparency_becomes_white():
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    image.putpixel((1, 0), 1)
    decoded = decode_image(encode(image, "GIF", transparency=0))
    np.testing.assert_allclose(decoded[0], [[1.0, 1.0, 1.0], [0.0, 0.0, 1.0]], atol=1e-6)


def test_rgb_colour_key_transparency_becomes_white():
    pixels = np.array([[[10, 20, 30], [40, 50, 60]]], dtype=np.uint8)
    data = encode(Image.fromarray(pixels), "PNG", transparency=(10, 20, 30))
    decoded = decode_image(data)
    np.testing.assert_allclose(decoded[0, 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(decoded[0, 1], np.array([40, 50, 60]) / 255.0, atol=1e-6)


def test_cmyk_jpeg_of_cyan_is_cyan():
    data = encode(Image.new("CMYK", (16, 16), (255, 0, 0, 0)), "JPEG", quality=95)
    # Pillow writes CMYK JPEGs the Adobe way (inverted), so this exercises that path.
    assert Image.open(io.BytesIO(data)).info.get("adobe") is not None
    decoded = decode_image(data)
    assert_rgb_float(decoded, 16, 16)
    np.testing.assert_allclose(decoded[8, 8], [0.0, 1.0, 1.0], atol=0.03)


def test_16_bit_png_is_scaled_by_65535_not_clipped_at_255():
    values = np.array([[0, 255, 32768, 65535]], dtype=np.uint16)
    data = encode(Image.fromarray(values), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    decoded = decode_image(data)
    assert_rgb_float(decoded, 1, 4)
    np.testing.assert_allclose(decoded[0, :, 0], values[0] / 65535.0, atol=1e-6)
    # Clipping at 255 would have made the 255 pixel white.
    assert decoded[0, 1, 0] < 0.01
    assert np.all(decoded[0, :, 0] == decoded[0, :, 1])
    assert np.all(decoded[0, :, 1] == decoded[0, :, 2])


def test_16_bit_big_endian_tiff_is_scaled_by_65535():
    values = np.array([[0, 32768, 65535]], dtype=">u2")
    data = encode(Image.fromarray(values), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "I;16B"
    decoded = decode_image(data)
    np.testing.assert_allclose(decoded[0, :, 0], [0.0, 32768 / 65535.0, 1.0], atol=1e-6)


def test_16_bit_png_colour_key_becomes_white():
    values = np.array([[0, 1000]], dtype=np.uint16)
    decoded = decode_image(encode(Image.fromarray(values), "PNG", transparency=0))
    np.testing.assert_allclose(decoded[0, 0], 1.0)
    np.testing.assert_allclose(decoded[0, 1], 1000 / 65535.0, atol=1e-6)


def test_32_bit_integer_image_is_scaled_by_65535_and_clipped():
    values = np.array([[-5, 0, 32768, 65535, 70000]], dtype=np.int32)
    data = encode(Image.fromarray(values), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "I"
    decoded = decode_image(data)
    assert_rgb_float(decoded, 1, 5)
    np.testing.assert_allclose(decoded[0, :, 0], [0.0, 0.0, 32768 / 65535.0, 1.0, 1.0], atol=1e-6)


def test_float_image_is_taken_as_unit_range_and_made_finite():
    values = np.array([[0.25, -1.0, 1.5, np.nan, np.inf]], dtype=np.float32)
    data = encode(Image.fromarray(values), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "F"
    decoded = decode_image(data)
    assert_rgb_float(decoded, 1, 5)
    np.testing.assert_allclose(decoded[0, :, 0], [0.25, 0.0, 1.0, 0.0, 1.0], atol=1e-6)


def test_bilevel_image_is_black_and_white():
    image = Image.new("1", (2, 1), 0)
    image.putpixel((1, 0), 1)
    data = encode(image, "PNG")
    assert Image.open(io.BytesIO(data)).mode == "1"
    decoded = decode_image(data)
    np.testing.assert_array_equal(decoded[0], [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])


def test_exif_orientation_6_jpeg_is_turned_upright():
    # Stored 40 wide x 20 tall with red in the top-left corner; orientation 6 means "rotate 90
    # degrees clockwise to display", which moves that corner to the top right.
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6
    decoded = decode_image(encode(stored, "JPEG", exif=exif, quality=95))
    assert_rgb_float(decoded, 40, 20)
    np.testing.assert_allclose(decoded[3, 16], [1.0, 0.0, 0.0], atol=0.06)
    np.testing.assert_allclose(decoded[3, 3], [0.0, 0.0, 1.0], atol=0.06)
    np.testing.assert_allclose(decoded[36, 16], [0.0, 0.0, 1.0], atol=0.06)


def test_corrupt_exif_does_not_reject_the_picture():
    broken_exif = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff\x01"
    data = encode(Image.new("RGB", (4, 4), (200, 200, 200)), "JPEG", exif=broken_exif)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        decoded = decode_image(data)
    np.testing.assert_allclose(decoded, 200 / 255.0, atol=0.02)


@pytest.mark.parametrize(
    ("image_format", "options"),
    [("GIF", {}), ("PNG", {}), ("WEBP", {"lossless": True})],
)
def test_animated_image_uses_first_frame(image_format, options):
    first = Image.new("RGB", (8, 6), (255, 0, 0))
    second = Image.new("RGB", (8, 6), (0, 255, 0))
    data = encode(
        first,
        image_format,
        save_all=True,
        append_images=[second],
        duration=100,
        loop=0,
        **options,
    )
    assert Image.open(io.BytesIO(data)).n_frames == 2
    decoded = decode_image(data)
    assert_rgb_float(decoded, 6, 8)
    np.testing.assert_allclose(decoded, np.broadcast_to([1.0, 0.0, 0.0], (6, 8, 3)), atol=1e-6)


def test_lab_image_is_rejected_rather_than_miscoloured():
    data = encode(Image.new("LAB", (2, 2), (50, 0, 0)), "TIFF")
    with pytest.raises(StyleTransferError) as error_info:
        decode_image(data, "lab.tif")
    assert "lab.tif" in assert_one_line(error_info)


def test_load_image_reads_a_file(tmp_path):
    path = write(tmp_path, "photo.png", encode(Image.new("RGB", (5, 3), (0, 255, 0)), "PNG"))
    loaded = load_image(path)
    assert_rgb_float(loaded, 3, 5)
    np.testing.assert_allclose(loaded, np.broadcast_to([0.0, 1.0, 0.0], (3, 5, 3)))
    assert load_image(str(path)).shape == (3, 5, 3)


# --- decoding: errors --------------------------------------------------------------------------


def test_missing_file_says_check_the_path(tmp_path):
    with pytest.raises(StyleTransferError) as error_info:
        load_image(tmp_path / "missing.png")
    message = assert_one_line(error_info)
    assert "missing.png" in message
    assert "does not exist" in message


def test_directory_is_rejected(tmp_path):
    with pytest.raises(StyleTransferError) as error_info:
        load_image(tmp_path)
    assert "is a directory" in assert_one_line(error_info)


def test_zero_byte_file_is_empty(tmp_path):
    path = write(tmp_path, "empty.png", b"")
    with pytest.raises(StyleTransferError) as error_info:
        load_image(path)
    message = assert_one_line(error_info)
    assert "empty.png" in message
    assert "is empty" in message


def test_zero_bytes_are_empty():
    with pytest.raises(StyleTransferError) as error_info:
        decode_image(b"", "content image")
    assert "content image is empty" in assert_one_line(error_info)


def test_fifo_is_not_read(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    path = tmp_path / "pipe.png"
    os.mkfifo(path)
    with pytest.raises(StyleTransferError) as error_info:
        load_image(path)
    assert "not a regular file" in assert_one_line(error_info)


def test_unreadable_file_is_rejected(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root can read a chmod 000 file, so there is no honest failing case")
    path = write(tmp_path, "secret.png", encode(Image.new("RGB", (1, 1)), "PNG"))
    path.chmod(0)
    try:
        with pytest.raises(StyleTransferError) as error_info:
            load_image(path)
        assert "permission" in assert_one_line(error_info)
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_random_bytes_named_jpg_are_not_an_image(tmp_path):
    data = np.random.default_rng(1).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    path = write(tmp_path, "noise.jpg", data)
    with pytest.raises(StyleTransferError) as error_info:
        load_image(path)
    message = assert_one_line(error_info)
    assert "noise.jpg" in message
    assert "not an image" in message


def test_text_file_is_not_an_image(tmp_path):
    path = write(tmp_path, "notes.png", b"these are my notes\nnot a picture\n")
    with pytest.raises(StyleTransferError) as error_info:
        load_image(path)
    assert "not an image" in assert_one_line(error_info)


def test_truncated_jpeg_is_rejected(tmp_path):
    noise = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), "JPEG")
    path = write(tmp_path, "half.jpg", data[: len(data) // 2])
    with pytest.raises(StyleTransferError) as error_info:
        load_image(path)
    message = assert_one_line(error_info)
    assert "half.jpg" in message
    assert "truncated" in message


def test_truncated_png_is_rejected():
    noise = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), "PNG")
    with pytest.raises(StyleTransferError) as error_info:
        decode_image(data[: len(data) // 2], "half.png")
    assert "truncated" in assert_one_line(error_info)


def test_decompression_bomb_is_rejected_before_decoding():
    filters_before = list(warnings.filters)
    with pytest.raises(StyleTransferError) as error_info:
        decode_image(png_declaring_size(100_000, 100_000), "bomb.png")
    message = assert_one_line(error_info)
    assert "100000x100000" in message
    assert str(MAX_PIXELS) in message
    assert warnings.filters == filters_before


def test_size_between_pillow_limit_and_twice_it_is_an_error_not_a_warning():
    # Pillow only warns here; decode_image must still refuse, and leave warnings as they were.
    filters_before = list(warnings.filters)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(StyleTransferError) as error_info:
            decode_image(png_declaring_size(10_000, 10_000), "big.png")
    message = assert_one_line(error_info)
    assert "10000x10000 = 100000000" in message
    assert str(MAX_PIXELS) in message
    assert warnings.filters == filters_before


def test_max_pixels_argument_tightens_the_limit():
    data = encode(Image.new("RGB", (200, 100)), "PNG")
    with pytest.raises(StyleTransferError) as error_info:
        decode_image(data, "photo.png", max_pixels=1000)
    message = assert_one_line(error_info)
    assert "200x100 = 20000 pixels" in message
    assert "limit of 1000" in message
    assert decode_image(data, max_pixels=20_000).shape == (100, 200, 3)


@pytest.mark.parametrize(("width", "height"), [(0, 5), (5, 0)])
def test_zero_sized_png_is_rejected(width, height):
    with pytest.raises(StyleTransferError) as error_info:
        decode_image(png_declaring_size(width, height), "flat.png")
    message = assert_one_line(error_info)
    assert "flat.png" in message
    assert "PNG" in message


def test_name_with_newline_still_gives_one_line():
    with pytest.raises(StyleTransferError) as error_info:
        decode_image(b"nonsense", "evil\nname.png")
    assert "evil\\nname.png" in assert_one_line(error_info)


# --- decoding reduced to what the run needs -----------------------------------------------------


def _gradient_picture(width: int, height: int) -> Image.Image:
    """A smooth colour picture, so box reduction and Lanczos agree closely with each other."""
    x = np.linspace(0.0, 1.0, width)[None, :, None]
    y = np.linspace(0.0, 1.0, height)[:, None, None]
    rgb = np.concatenate(
        [
            np.broadcast_to(x, (height, width, 1)),
            np.broadcast_to(y, (height, width, 1)),
            np.broadcast_to(0.5 * (x + y), (height, width, 1)),
        ],
        axis=2,
    )
    return Image.fromarray(np.rint(rgb * 255).astype(np.uint8))


@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
def test_long_side_gives_the_working_shape_of_the_full_image(image_format):
    """A 1000x600 picture needed at long side 100 comes back at exactly 100x60 (the working
    shape of the full size, so a run plans the same sizes as from the full image), and close to
    the full-size decode resized with Lanczos: the box stage (PNG) or DCT scaling (JPEG) happen
    at >= 2x the target, where they leave no visible trace."""
    data = encode(_gradient_picture(1000, 600), image_format, quality=95)
    reduced = decode_image(data, long_side=100)
    assert_rgb_float(reduced, 60, 100)
    reference = resize(decode_image(data), 60, 100)
    assert np.abs(reduced - reference).mean() < 0.01


def test_long_side_never_upscales():
    data = encode(_gradient_picture(40, 30), "PNG")
    assert_rgb_float(decode_image(data, long_side=400), 30, 40)
    assert_rgb_float(decode_image(data, long_side=40), 30, 40)


def test_reduced_palette_image_averages_colours_not_palette_indices():
    """reduce() on a palette image would average the indices, giving unrelated colours; the
    palette is resolved first. Left half red, right half blue: every pixel stays a mix of them."""
    picture = Image.new("RGB", (800, 400), (255, 0, 0))
    picture.paste((0, 0, 255), (400, 0, 800, 400))
    palette = picture.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    decoded = decode_image(encode(palette, "PNG"), long_side=50)
    assert_rgb_float(decoded, 25, 50)
    np.testing.assert_allclose(decoded[..., 1], 0.0, atol=0.02)  # never any green
    np.testing.assert_allclose(decoded[..., 0] + decoded[..., 2], 1.0, atol=0.05)


def test_reduced_transparent_palette_is_white_where_transparent():
    picture = Image.new("P", (800, 400), 0)
    picture.putpalette([0, 0, 0, 255, 0, 0])
    picture.paste(1, (400, 0, 800, 400))
    decoded = decode_image(encode(picture, "PNG", transparency=0), long_side=50)
    np.testing.assert_allclose(decoded[:, :20], 1.0, atol=1e-6)
    np.testing.assert_allclose(
        decoded[:, 30:], np.broadcast_to([1.0, 0.0, 0.0], (25, 20, 3)), atol=0.02
    )


def test_reduced_16_bit_image_keeps_its_scale():
    picture = Image.fromarray(np.full((400, 800), 40000, np.uint16))
    decoded = decode_image(encode(picture, "PNG"), long_side=50)
    np.testing.assert_allclose(decoded, 40000 / 65535, atol=1e-4)


def test_reduced_exif_rotated_jpeg_is_upright_at_the_turned_working_shape():
    """Stored 800 wide and 400 tall with orientation 6 (turn 90 degrees clockwise): upright it
    is 400 wide and 800 tall, so at long side 100 it must be 50x100 (height 100)."""
    stored = _gradient_picture(800, 400)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(stored, "JPEG", exif=exif, quality=95)
    reduced = decode_image(data, long_side=100)
    assert_rgb_float(reduced, 100, 50)
    np.testing.assert_allclose(reduced, resize(decode_image(data), 100, 50), atol=0.03)


def test_read_image_info_reads_the_header_only(tmp_path):
    path = write(tmp_path, "big.png", encode(Image.new("L", (3000, 20)), "PNG"))
    info = decoding.read_image_info(path)
    assert (info.height, info.width, info.mode) == (20, 3000, "L")
    assert info.file_bytes == path.stat().st_size
    assert decoding.loaded_shape(info, 300) == (2, 300)
    assert decoding.loaded_shape(info, 5000) == (20, 3000)


@pytest.mark.parametrize(
    "name, data, expected",
    [
        ("missing.png", None, "does not exist"),
        ("text.png", b"hello, this is not a picture", "not an image in a supported format"),
    ],
)
def test_read_image_info_refuses_what_load_image_refuses(tmp_path, name, data, expected):
    path = tmp_path / name if data is None else write(tmp_path, name, data)
    with pytest.raises(StyleTransferError, match=expected) as raised:
        decoding.read_image_info(path)
    assert_one_line(raised)


def test_decode_peak_bound_counts_full_size_storage_and_reduced_floats():
    """A 9000x9000 RGB PNG at long side 512: 81 M pixels in Pillow's 4-byte storage, and the
    float work at the reduced 1125x1125 (factor 8 keeps >= 2 x 512)."""
    info = decoding.ImageInfo(9000, 9000, "RGB", 258_000)
    expected = 258_000 + 81_000_000 * 4 + 1125 * 1125 * decoding.FLOAT_WORK_BYTES_PER_PIXEL
    assert decoding.decode_peak_bytes(info, 512) == expected
    assert decoding.decode_peak_bytes(info) > 81_000_000 * decoding.FLOAT_WORK_BYTES_PER_PIXEL


# --- decoding: metadata ------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_type", [b"zTXt", b"iTXt"])
def test_a_20_mb_compressed_text_chunk_is_not_called_corrupt(chunk_type):
    """Old behaviour: Pillow refuses to decompress text over MAX_TEXT_CHUNK (1 MB) with a
    ValueError, which was reported as "truncated or corrupt". The text is metadata we never use:
    the picture now decodes without it."""
    text = zlib.compress(b"x" * (20 * 2**20))
    payload = b"Comment\0\0" + text if chunk_type == b"zTXt" else b"Comment\0\1\0\0\0" + text
    plain = encode(Image.new("RGB", (4, 3), (10, 20, 30)), "PNG")
    end = plain.index(b"IEND") - 4
    data = plain[:end] + png_chunk(chunk_type, payload) + plain[end:]
    decoded = decode_image(data)
    assert_rgb_float(decoded, 3, 4)
    np.testing.assert_allclose(decoded[0, 0], np.array([10, 20, 30]) / 255, atol=1e-6)


# --- resizing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "long_side", "expected"),
    [
        ((100, 200), 50, (25, 50)),
        ((200, 100), 50, (50, 25)),
        ((30, 30), 90, (90, 90)),
        ((3, 1000), 100, (1, 100)),
        ((10, 15), 300, (200, 300)),
    ],
)
def test_resize_to_long_side_keeps_aspect(shape, long_side, expected):
    image = np.random.default_rng(4).random((*shape, 3), dtype=np.float32)
    resized = resize_to_long_side(image, long_side)
    assert_rgb_float(resized, *expected)


def test_resize_keeps_a_constant_image_constant():
    image = np.full((37, 53, 3), [0.2, 0.5, 0.9], dtype=np.float32)
    resized = resize(image, 20, 11)
    assert_rgb_float(resized, 20, 11)
    np.testing.assert_allclose(resized, np.broadcast_to([0.2, 0.5, 0.9], (20, 11, 3)), atol=1e-5)


def test_resize_clips_lanczos_overshoot():
    image = np.zeros((8, 8, 3), dtype=np.float32)
    image[:, 4:] = 1.0
    resized = resize(image, 8, 32)
    assert resized.min() >= 0.0
    assert resized.max() <= 1.0
    # Lanczos rings below 0 just before the edge and above 1 just after it; those are clipped
    # to exactly 0 and 1 rather than left out of range.
    np.testing.assert_array_equal(resized[:, 10:14], 0.0)
    np.testing.assert_array_equal(resized[:, 18:22], 1.0)
    assert 0.0 < resized[0, 15, 0] < 1.0


def test_resize_keeps_float_precision():
    ramp = np.linspace(0.0, 1.0, 1000, dtype=np.float32)
    image = np.repeat(ramp[np.newaxis, :, np.newaxis], 3, axis=2)
    resized = resize(image, 1, 1000)
    np.testing.assert_allclose(resized[0, :, 0], ramp, atol=1e-6)


@pytest.mark.parametrize("bad_size", [0, -3, 2.5, True])
def test_resize_rejects_bad_sizes(bad_size):
    image = np.zeros((4, 4, 3), dtype=np.float32)
    with pytest.raises(ValueError):
        resize_to_long_side(image, bad_size)
    with pytest.raises(ValueError):
        resize(image, bad_size, 4)


# --- to_uint8 ----------------------------------------------------------------------------------


def test_to_uint8_clips_and_rounds():
    image = np.array([[[-0.5, 0.0, 0.6 / 255], [0.4 / 255, 1.0, 7.0]]], dtype=np.float32)
    np.testing.assert_array_equal(to_uint8(image), [[[0, 0, 1], [0, 255, 255]]])
    assert to_uint8(image).dtype == np.uint8


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_to_uint8_refuses_non_finite_values(bad_value):
    image = np.zeros((2, 2, 3), dtype=np.float32)
    image[1, 1, 2] = bad_value
    with pytest.raises(StyleTransferError) as error_info:
        to_uint8(image)
    assert "NaN" in assert_one_line(error_info)


def test_to_uint8_refuses_integer_images():
    with pytest.raises(ValueError):
        to_uint8(np.zeros((2, 2, 3), dtype=np.uint8))


# --- check_output_path -------------------------------------------------------------------------


def test_check_output_path_returns_resolved_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert check_output_path("out.PNG") == (tmp_path / "out.PNG").resolve()


def test_check_output_path_rejects_missing_directory(tmp_path):
    with pytest.raises(StyleTransferError) as error_info:
        check_output_path(tmp_path / "nope" / "out.png")
    message = assert_one_line(error_info)
    assert "does not exist" in message
    assert "create it first" in message


def test_check_output_path_rejects_parent_that_is_a_file(tmp_path):
    write(tmp_path, "file.txt", b"x")
    with pytest.raises(StyleTransferError) as error_info:
        check_output_path(tmp_path / "file.txt" / "out.png")
    assert "not a directory" in assert_one_line(error_info)


def test_check_output_path_rejects_unwritable_directory(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("os.access reports every directory writable for root")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(StyleTransferError) as error_info:
            check_output_path(locked / "out.png")
        assert "not writable" in assert_one_line(error_info)
    finally:
        locked.chmod(stat.S_IRWXU)


def test_check_output_path_asks_os_access_for_write_permission(tmp_path, monkeypatch):
    # Runs even as root: proves the verdict of os.access is what decides, for the right directory.
    asked = []

    def deny(path, mode, **options):
        asked.append((os.fspath(path), mode))
        return False

    monkeypatch.setattr(os, "access", deny)
    with pytest.raises(StyleTransferError) as error_info:
        check_output_path(tmp_path / "out.png")
    assert "not writable" in assert_one_line(error_info)
    assert asked == [(os.fspath(tmp_path), os.W_OK | os.X_OK)]


@pytest.mark.parametrize("name", ["out.gif", "out.png.bak", "out.heic"])
def test_check_output_path_rejects_unknown_extension_and_lists_known(tmp_path, name):
    with pytest.raises(StyleTransferError) as error_info:
        check_output_path(tmp_path / name)
    message = assert_one_line(error_info)
    assert all(extension in message for extension in OUTPUT_EXTENSIONS)


def test_check_output_path_rejects_missing_extension(tmp_path):
    with pytest.raises(StyleTransferError) as error_info:
        check_output_path(tmp_path / "output")
    assert "no file extension" in assert_one_line(error_info)


def test_check_output_path_rejects_existing_directory(tmp_path):
    (tmp_path / "looks_like.png").mkdir()
    with pytest.raises(StyleTransferError) as error_info:
        check_output_path(tmp_path / "looks_like.png")
    assert "is a directory" in assert_one_line(error_info)


def test_check_output_path_refuses_to_overwrite_input(tmp_path):
    content = write(tmp_path, "content.png", b"not read")
    with pytest.raises(StyleTransferError) as error_info:
        check_output_path(content, [tmp_path / "style.png", content])
    message = assert_one_line(error_info)
    assert "refusing to overwrite the input" in message
    assert "choose another output path" in message


def test_check_output_path_sees_through_relative_spelling(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    write(tmp_path, "content.png", b"not read")
    monkeypatch.chdir(tmp_path / "sub")
    with pytest.raises(StyleTransferError) as error_info:
        check_output_path("../sub/../content.png", [tmp_path / "content.png"])
    assert "refusing to overwrite" in assert_one_line(error_info)


def test_check_output_path_sees_through_symlink(tmp_path):
    content = write(tmp_path, "content.png", b"not read")
    link = tmp_path / "link.png"
    link.symlink_to(content)
    with pytest.raises(StyleTransferError):
        check_output_path(link, [content])
    with pytest.raises(StyleTransferError):
        check_output_path(content, [link])


def test_check_output_path_refuses_an_output_that_is_a_symlink(tmp_path):
    """Decided and documented in check_output_path: saving renames a new file over the path, so
    it would replace the link rather than write where it points. Old behaviour: the path was
    resolved through the link and the caller overwrote the link's target, any file of the user's."""
    target = write(tmp_path, "notes.png", b"the user's own file")
    link = tmp_path / "out.png"
    link.symlink_to(target)
    with pytest.raises(StyleTransferError, match="is a symbolic link") as raised:
        check_output_path(link)
    assert_one_line(raised)
    dangling = tmp_path / "dangling.png"
    dangling.symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(StyleTransferError, match="is a symbolic link"):
        check_output_path(dangling)


def test_check_output_path_follows_symlinked_directories(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "via").symlink_to(real)
    assert check_output_path(tmp_path / "via" / "out.png") == real.resolve() / "out.png"


def test_check_output_path_names_a_file_that_blocks_the_directory(tmp_path):
    """Old behaviour: "output directory .../notes.txt/sub does not exist: create it first",
    which cannot be done while notes.txt is a file."""
    write(tmp_path, "notes.txt", b"text")
    with pytest.raises(StyleTransferError) as raised:
        check_output_path(tmp_path / "notes.txt" / "sub" / "out.png")
    message = assert_one_line(raised)
    assert f"{tmp_path / 'notes.txt'} is a file, not a directory" in message


def test_check_output_path_refuses_a_name_whose_temporary_name_is_too_long(tmp_path):
    """The image is written first as .NAME.xxxxxxxx.tmp, 14 bytes longer than NAME. Old
    behaviour: a 250-byte name passed the check and the save failed at the end of the run."""
    with pytest.raises(StyleTransferError) as raised:
        check_output_path(tmp_path / ("a" * 246 + ".png"))
    message = assert_one_line(raised)
    assert "is 250 bytes long" in message and "at most 241 bytes" in message


def test_the_longest_accepted_name_can_really_be_saved(tmp_path):
    longest = tmp_path / ("b" * 237 + ".png")  # 241 bytes
    output = check_output_path(longest)
    save_image(np.zeros((2, 2, 3), np.float32), output)
    assert longest.is_file()


def test_check_output_path_sees_through_hard_link(tmp_path):
    content = write(tmp_path, "content.png", b"not read")
    hard_link = tmp_path / "hard.png"
    os.link(content, hard_link)
    with pytest.raises(StyleTransferError):
        check_output_path(hard_link, [content])


def test_check_output_path_accepts_a_different_output(tmp_path):
    content = write(tmp_path, "content.png", b"not read")
    assert check_output_path(tmp_path / "out.jpg", [content]) == (tmp_path / "out.jpg").resolve()


# --- saving ------------------------------------------------------------------------------------


def random_image(height=12, width=17, seed=5):
    return np.random.default_rng(seed).random((height, width, 3), dtype=np.float32)


def leftovers(directory):
    return sorted(path.name for path in directory.iterdir() if path.name.endswith(".tmp"))


def test_png_round_trip_equals_uint8_rounding(tmp_path):
    image = random_image()
    path = tmp_path / "out.png"
    save_image(image, path)
    np.testing.assert_array_equal(load_image(path), to_uint8(image) / np.float32(255.0))
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("extension", OUTPUT_EXTENSIONS)
def test_every_output_extension_round_trips(tmp_path, extension):
    image = np.full((8, 8, 3), [0.2, 0.6, 0.9], dtype=np.float32)
    path = tmp_path / f"out{extension.upper()}"
    save_image(image, path)
    np.testing.assert_allclose(load_image(path), image, atol=0.02)
    assert leftovers(tmp_path) == []


def test_jpeg_is_saved_at_high_quality(tmp_path):
    image = random_image(64, 64)
    save_image(image, tmp_path / "out.jpg")
    loaded = load_image(tmp_path / "out.jpg")
    # Noise is the worst case for JPEG; quality 95 without chroma subsampling stays close.
    assert np.abs(loaded - image).mean() < 0.04


def test_saved_file_gets_normal_permissions_not_mkstemp_0600(tmp_path):
    path = tmp_path / "out.png"
    save_image(random_image(), path)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_save_replaces_existing_file(tmp_path):
    path = tmp_path / "out.png"
    path.write_bytes(b"old")
    save_image(random_image(), path)
    assert Image.open(path).size == (17, 12)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("exception", "expected"),
    [
        (RuntimeError("encoder exploded"), RuntimeError),
        (OSError(28, "No space"), StyleTransferError),
    ],
)
def test_failed_encode_keeps_old_content_and_removes_temp(
    tmp_path, monkeypatch, exception, expected
):
    path = tmp_path / "out.png"
    path.write_bytes(b"old content")
    temp_names = []

    def failing_save(self, file, *args, **kwargs):
        temp_names.extend(leftovers(tmp_path))
        file.write(b"\x89PNG half written")
        file.flush()
        raise exception

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(expected):
        save_image(random_image(), path)
    assert path.read_bytes() == b"old content"
    assert leftovers(tmp_path) == []
    # The encoder really was writing into a temporary file next to the destination.
    assert len(temp_names) == 1
    assert temp_names[0].startswith(".out.png.")


def test_non_finite_image_writes_nothing(tmp_path):
    image = random_image()
    image[0, 0, 0] = np.nan
    with pytest.raises(StyleTransferError):
        save_image(image, tmp_path / "out.png")
    assert list(tmp_path.iterdir()) == []


def test_save_rejects_unknown_extension(tmp_path):
    with pytest.raises(StyleTransferError) as error_info:
        save_image(random_image(), tmp_path / "out.gif")
    assert ".png" in assert_one_line(error_info)
    assert list(tmp_path.iterdir()) == []


def test_save_into_missing_directory_is_a_project_error(tmp_path):
    with pytest.raises(StyleTransferError) as error_info:
        save_image(random_image(), tmp_path / "nope" / "out.png")
    assert "cannot write" in assert_one_line(error_info)


def test_atomic_write_bytes_writes_and_replaces(tmp_path):
    path = tmp_path / "data.bin"
    atomic_write_bytes(b"first", path)
    atomic_write_bytes(b"second", path)
    assert path.read_bytes() == b"second"
    assert leftovers(tmp_path) == []


def test_atomic_write_bytes_shares_the_save_mechanism(tmp_path, monkeypatch):
    # One atomic mechanism: save_image must go through the same helper as atomic_write_bytes.
    used = []
    original = writing._atomic_file

    def spy(path):
        used.append(os.fspath(path))
        return original(path)

    monkeypatch.setattr(writing, "_atomic_file", spy)
    save_image(random_image(), tmp_path / "out.png")
    atomic_write_bytes(b"x", tmp_path / "data.bin")
    assert used == [os.fspath(tmp_path / "out.png"), os.fspath(tmp_path / "data.bin")]


# --- property tests ----------------------------------------------------------------------------


def _seed_files() -> list[bytes]:
    rng = np.random.default_rng(6)
    rgb = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
    rgba = Image.fromarray(rng.integers(0, 256, (9, 7, 4), dtype=np.uint8), "RGBA")
    deep = Image.fromarray(rng.integers(0, 65536, (6, 5), dtype=np.uint16))
    exif = Image.Exif()
    exif[0x0112] = 6
    return [
        encode(rgb, "PNG"),
        encode(rgba, "PNG"),
        encode(deep, "PNG"),
        encode(rgb.convert("P"), "PNG", transparency=3),
        encode(rgb, "JPEG", exif=exif),
        encode(rgb.convert("CMYK"), "JPEG"),
        encode(rgb, "GIF", save_all=True, append_images=[rgba.convert("RGB")]),
        encode(rgb, "WEBP", lossless=True),
        encode(rgb, "BMP"),
        encode(rgb, "TIFF"),
        encode(rgb, "PPM"),
    ]


SEED_FILES = _seed_files()
PNG_SEEDS = [data for data in SEED_FILES if data.startswith(b"\x89PNG")]


def assert_decodes_or_raises_project_error(data: bytes, **options) -> None:
    try:
        decoded = decode_image(data, "fuzz", **options)
    except StyleTransferError as error:
        assert "\n" not in str(error)
        return
    assert decoded.dtype == np.float32
    assert decoded.ndim == 3
    assert decoded.shape[2] == 3
    assert decoded.flags["C_CONTIGUOUS"]
    assert np.all(np.isfinite(decoded))
    assert decoded.min() >= 0.0
    assert decoded.max() <= 1.0


@st.composite
def mutated_files(draw):
    data = bytearray(draw(st.sampled_from(SEED_FILES)))
    edits = draw(
        st.lists(
            st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), min_size=1, max_size=8
        )
    )
    for position, value in edits:
        data[position] = value
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@st.composite
def pngs_with_mutated_chunk(draw):
    """PNGs with one chunk's data changed and its CRC fixed, so the damage gets past the CRC."""
    data = draw(st.sampled_from(PNG_SEEDS))
    chunks = []
    position = 8
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        chunks.append(
            [data[position + 4 : position + 8], data[position + 8 : position + 8 + length]]
        )
        position += 12 + length
    index = draw(st.integers(0, len(chunks) - 1))
    body = bytearray(chunks[index][1])
    if body:
        for offset, value in draw(
            st.lists(st.tuples(st.integers(0, len(body) - 1), st.integers(0, 255)), max_size=6)
        ):
            body[offset] = value
    if draw(st.booleans()):
        body = body[: draw(st.integers(0, len(body)))]
    chunks[index][1] = bytes(body)
    return data[:8] + b"".join(png_chunk(chunk_type, body) for chunk_type, body in chunks)


@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_decode_or_raise_project_error(data):
    assert_decodes_or_raises_project_error(data)


@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=300, deadline=None)
@given(mutated_files())
def test_mutated_images_decode_or_raise_project_error(data):
    # A small limit keeps a mutated header from making Pillow allocate hundreds of megabytes.
    assert_decodes_or_raises_project_error(data, max_pixels=10_000)


@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=300, deadline=None)
@given(pngs_with_mutated_chunk())
def test_pngs_with_valid_crc_but_bad_chunks_decode_or_raise_project_error(data):
    assert_decodes_or_raises_project_error(data, max_pixels=10_000)


def test_seed_files_are_valid():
    # Otherwise the mutation tests would only ever see broken input.
    for data in SEED_FILES:
        assert_rgb_float(decode_image(data), *decode_image(data).shape[:2])
