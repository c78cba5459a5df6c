"""Tests of the photo pipeline (tf_nst.networks.data): finding, checking, splitting and streaming
photos."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tf_nst.errors import StyleTransferError
from tf_nst.networks import data

# Distinct flat colours: every crop of photo k is colour k, so a batch names the photos it shows.
COLOURS = [(index * 20 + 10, 255 - index * 20, (index * 97) % 256) for index in range(12)]


def take(dataset, count: int) -> list[np.ndarray]:
    """The first `count` batches, with the iterator consumed and gone before returning."""
    return list(dataset.take(count).as_numpy_iterator())


def colour_of(crop: np.ndarray) -> tuple[int, int, int]:
    return tuple(int(value) for value in np.rint(crop.mean(axis=(0, 1)) * 255))


@pytest.fixture(scope="module")
def flat_photos(tmp_path_factory):
    """12 flat-coloured photos of different sizes, half of them in a nested folder."""
    root = tmp_path_factory.mktemp("flat")
    (root / "nested" / "deeper").mkdir(parents=True)
    for index, colour in enumerate(COLOURS):
        folder = root if index % 2 else root / "nested" / "deeper"
        size = (40 + index, 30 + 2 * index)
        Image.new("RGB", size, colour).save(folder / f"photo{index:02d}.png")
    (root / "README.txt").write_text("not a photo, ignored")
    return root


@pytest.fixture(scope="module")
def mixed_photos(tmp_path_factory):
    """Good photos in several modes, plus two unreadable files with photo extensions."""
    root = tmp_path_factory.mktemp("mixed")
    generator = np.random.default_rng(0)
    Image.fromarray((generator.random((30, 40, 3)) * 255).astype(np.uint8)).save(root / "rgb.jpg")
    Image.fromarray((generator.random((30, 40)) * 255).astype(np.uint8), "L").save(
        root / "gray.png"
    )
    rgba = (generator.random((30, 40, 4)) * 255).astype(np.uint8)
    rgba[..., 3] = 0  # fully transparent: must come out white
    Image.fromarray(rgba, "RGBA").save(root / "transparent.png")
    sixteen = np.full((30, 40), 1000, np.uint16)  # 1000 / 65535: between two 8-bit levels
    Image.fromarray(sixteen).save(root / "sixteen.png")
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff this is not really a JPEG")
    good = (root / "rgb.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(good[: len(good) // 3])
    return root


def test_finds_photos_recursively_and_ignores_other_files(flat_photos):
    found = data.find_photos(flat_photos)
    assert len(found) == 12
    assert any("deeper" in path for path in found)
    assert not any(path.endswith(".txt") for path in found)


def test_skips_and_counts_unreadable_files(mixed_photos):
    photos = data.scan_photos(mixed_photos, validation=0, batch_size=2)
    assert sorted(path.rsplit("/", 1)[1] for path, _ in photos.skipped) == [
        "corrupt.jpg",
        "truncated.jpg",
    ]
    assert all("\n" not in reason for _, reason in photos.skipped)
    assert len(photos.training) == 4


def test_reads_grayscale_transparent_and_sixteen_bit_photos(mixed_photos):
    by_name = {
        name: str(mixed_photos / name) for name in ("gray.png", "transparent.png", "sixteen.png")
    }
    for name, path in by_name.items():
        (batch,) = take(data.training_dataset([path], 16, 2, seed=0), 1)
        assert batch.shape == (2, 16, 16, 3) and batch.dtype == np.float32
        assert batch.min() >= 0.0 and batch.max() <= 1.0
        if name == "gray.png":
            np.testing.assert_allclose(batch[..., 0], batch[..., 1], atol=1e-6)
        if name == "transparent.png":
            np.testing.assert_allclose(batch, 1.0, atol=1e-6)
        if name == "sixteen.png":
            # Scaled by 65535, not clipped at 255 nor rounded to 8 bits.
            np.testing.assert_allclose(batch, 1000 / 65535, atol=1e-6)


def test_stream_is_deterministic_under_the_seed_and_resumes_exactly(flat_photos):
    paths = data.find_photos(flat_photos)
    first = take(data.training_dataset(paths, 16, 4, seed=7), 5)
    again = take(data.training_dataset(paths, 16, 4, seed=7), 5)
    other = take(data.training_dataset(paths, 16, 4, seed=8), 5)
    resumed = take(data.training_dataset(paths, 16, 4, seed=7, start_step=3), 2)
    for batch, same in zip(first, again, strict=True):
        np.testing.assert_array_equal(batch, same)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other, strict=True))
    np.testing.assert_array_equal(resumed[0], first[3])
    np.testing.assert_array_equal(resumed[1], first[4])


def test_every_epoch_shows_every_photo_once_in_a_new_order(flat_photos):
    paths = data.find_photos(flat_photos)
    batches = take(data.training_dataset(paths, 8, 4, seed=1), 6)  # 2 epochs of 12
    colours = [colour_of(crop) for batch in batches for crop in batch]
    assert sorted(colours[:12]) == sorted(colours[12:]) == sorted(COLOURS)
    assert colours[:12] != colours[12:]


def test_validation_photos_are_never_in_the_training_stream(flat_photos):
    photos = data.scan_photos(flat_photos, validation=3, batch_size=4)
    assert len(photos.validation) == 3 and len(photos.training) == 9
    assert not set(photos.validation) & set(photos.training)
    batches = take(data.training_dataset(photos.training, 8, 4, seed=3), 9)  # 4 epochs
    seen = {colour_of(crop) for batch in batches for crop in batch}
    validation_colours = {
        colour_of(image) for image in data.validation_images(photos.validation, 8)
    }
    assert len(validation_colours) == 3
    assert not seen & validation_colours
    assert len(seen) == 9


def test_validation_split_does_not_depend_on_the_seed_or_order(flat_photos):
    first = data.scan_photos(flat_photos, validation=3, batch_size=4)
    again = data.scan_photos(list(reversed(data.find_photos(flat_photos))), 3, 4)
    assert first.validation == again.validation


@pytest.mark.parametrize(
    "validation, batch_size, needed", [(0, 5, "at least 5"), (2, 4, "at least 6")]
)
def test_too_few_usable_photos_is_a_one_line_error(mixed_photos, validation, batch_size, needed):
    with pytest.raises(StyleTransferError) as raised:
        data.scan_photos(mixed_photos, validation=validation, batch_size=batch_size)
    message = str(raised.value)
    assert "\n" not in message
    assert "4 usable photos" in message and "2 unreadable" in message and needed in message
    assert "--batch-size" in message


def test_empty_folder_missing_folder_and_file_are_one_line_errors(tmp_path, mixed_photos):
    (tmp_path / "notes.txt").write_text("no photos here")
    cases = {
        tmp_path: "holds no photos",
        tmp_path / "missing": "does not exist",
        mixed_photos / "rgb.jpg": "is a file, not a folder",
    }
    for path, expected in cases.items():
        with pytest.raises(StyleTransferError, match=expected) as raised:
            data.find_photos(path)
        assert "\n" not in str(raised.value)


def test_random_crop_is_a_pure_function_of_its_seed():
    pixels = np.random.default_rng(0).random((50, 70, 3), dtype=np.float32)
    first = data.random_crop(pixels, 20, np.array([4, 9], np.int64)).numpy()
    again = data.random_crop(pixels, 20, np.array([4, 9], np.int64)).numpy()
    other = data.random_crop(pixels, 20, np.array([4, 10], np.int64)).numpy()
    np.testing.assert_array_equal(first, again)
    assert first.shape == (20, 20, 3) and not np.array_equal(first, other)
