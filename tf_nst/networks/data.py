"""The photo pipeline of fast style network training: find, check, split and stream photos.

`scan_photos` finds the photos under a folder (recursively), decodes each once to sort out the
unreadable ones, and holds out the validation photos. `training_dataset` streams random crops of
the rest as a `tf.data.Dataset` of batches.

The stream is a pure function of (seed, example index): example i of epoch e is photo
`index_shuffle(i, [seed, e])`, and its crop, scale and flip come from stateless random ops seeded
by (seed, i). So a run resumed at step s starts the stream at example s * batch and sees exactly
what the uninterrupted run saw, with no iterator state to checkpoint, and the parallel map can
decode out of order without changing the result.

Photos are decoded by `tf_nst.image.decoding.load_image` (through `tf.numpy_function`), so
training reads exactly what stylization reads: EXIF orientation, grayscale, alpha on white, 16-bit.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import pathlib
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tf_nst.errors import StyleTransferError
from tf_nst.image import decoding
from tf_nst.text import printable

SMALLEST_CROP_FRACTION = 0.5
"""Scale jitter: a crop's side is this to 1 times the photo's short side, before resizing.

Crops of half the short side up to all of it show the network objects at up to twice the scale
it would see with whole photos only, which it must handle when applied at a larger size.
"""

# Stateless random ops take int32/int64 seeds; a user's seed is folded into this range.
SEED_MODULUS = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class PhotoSet:
    """The usable photos of a folder, split into training and validation.

    Attributes:
        training: Paths of the photos to train on, sorted.
        validation: Paths of the held-out photos, sorted; never in `training`.
        skipped: `(path, one-line reason)` of every photo file that could not be decoded.
    """

    training: tuple[str, ...]
    validation: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]


def find_photos(photos: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Returns the photo files under a folder, or under each of several paths, sorted.

    Folders are searched recursively; hidden files and folders (names starting with ".") and files
    whose extension is not in `tf_nst.image.decoding.IMAGE_EXTENSIONS` are ignored. A path given
    explicitly in a list is taken whatever its extension.

    Args:
        photos: A folder, or a list of files and folders.

    Returns:
        Sorted, de-duplicated paths.

    Raises:
        StyleTransferError: If the folder (or a listed path) does not exist, a single path is a
            file rather than a folder, or there are no photos at all.
    """
    if isinstance(photos, (str, os.PathLike)):
        folder = pathlib.Path(photos)
        label = printable(os.fspath(photos))
        if not folder.exists():
            raise StyleTransferError(f"photos folder {label} does not exist: check the path")
        if not folder.is_dir():
            raise StyleTransferError(
                f"photos path {label} is a file, not a folder: pass a folder of photos"
            )
        found = _photos_under(folder)
        if not found:
            raise StyleTransferError(
                f"photos folder {label} holds no photos "
                f"({', '.join(decoding.IMAGE_EXTENSIONS)}, searched recursively): "
                "pass a folder of photos"
            )
        return found
    found = []
    for path in photos:
        entry = pathlib.Path(path)
        if entry.is_dir():
            found.extend(_photos_under(entry))
        elif entry.exists():
            found.append(os.fspath(entry))
        else:
            label = printable(os.fspath(path))
            raise StyleTransferError(f"photo path {label} does not exist: check the path")
    if not found:
        raise StyleTransferError("no photos were given: pass a folder of photos")
    return sorted(set(found))


def _photos_under(folder: pathlib.Path) -> list[str]:
    return [os.fspath(path) for path in decoding.find_images(folder)]


def scan_photos(
    photos: str | os.PathLike | Sequence[str | os.PathLike],
    validation: int,
    batch_size: int,
    workers: int | None = None,
) -> PhotoSet:
    """Finds the photos, decodes each once to skip unreadable ones, and holds out validation.

    Decoding everything up front costs one pass over the folder (in threads, as Pillow releases
    the GIL while decoding) but reports every bad file before training starts, rather than
    hours into it.

    The validation photos are spread evenly over the sorted usable photos, independent of the
    seed, so runs with different seeds are compared on the same photos.

    Args:
        photos: A folder, or a list of files and folders.
        validation: How many photos to hold out.
        batch_size: The global batch; at least this many photos must remain for training.
        workers: Decoding threads; None for the CPU count.

    Returns:
        The split, and the skipped files with their reasons.

    Raises:
        StyleTransferError: If there are no photos, or too few usable ones for one batch plus
            the validation photos.
    """
    paths = find_photos(photos)
    workers = workers or os.cpu_count() or 1
    with concurrent.futures.ThreadPoolExecutor(workers) as executor:
        problems = list(executor.map(_decode_problem, paths))
    usable = [path for path, problem in zip(paths, problems, strict=True) if problem is None]
    skipped = tuple(
        (path, problem) for path, problem in zip(paths, problems, strict=True) if problem
    )
    if len(usable) < batch_size + validation:
        where = (
            printable(os.fspath(photos))
            if isinstance(photos, (str, os.PathLike))
            else "the photos given"
        )
        raise StyleTransferError(
            f"{where} has {len(usable)} usable photos ({len(skipped)} unreadable skipped) but "
            f"training needs at least {batch_size + validation}: a batch of {batch_size} plus "
            f"{validation} validation photos; add photos or lower --batch-size or --validation"
        )
    held_out = set(_spread(len(usable), validation))
    return PhotoSet(
        training=tuple(path for index, path in enumerate(usable) if index not in held_out),
        validation=tuple(path for index, path in enumerate(usable) if index in held_out),
        skipped=skipped,
    )


def _decode_problem(path: str) -> str | None:
    """Returns why `path` cannot be decoded, or None if it can."""
    try:
        decoding.load_image(path)
    except StyleTransferError as error:
        return str(error)
    return None


def _spread(count: int, chosen: int) -> list[int]:
    """Returns `chosen` distinct indices spread evenly over `range(count)`."""
    return [int((index + 0.5) * count / chosen) for index in range(chosen)]


def training_dataset(
    paths: Sequence[str],
    size: int,
    batch_size: int,
    seed: int,
    start_step: int = 0,
) -> tf.data.Dataset:
    """Returns an endless dataset of batches of random square crops of `paths`.

    Each photo is decoded, cropped to a random square of `SMALLEST_CROP_FRACTION` to 1 times its
    short side at a random place, resized to `size` (antialiased), and flipped left-right with
    probability 1/2. Every epoch visits every photo once, in a fresh order.

    Args:
        paths: The training photos.
        size: Side of the crops, in pixels.
        batch_size: Crops per batch: the global batch of a distributed run (the strategy splits
            it over the replicas).
        seed: Seed of the order, crops and flips.
        start_step: Batches to skip; resuming at step s with the same seed continues the stream
            exactly, at no cost.

    Returns:
        A `tf.data.Dataset` of float32 `[batch_size, size, size, 3]` in [0, 1].
    """
    if not paths:
        raise StyleTransferError("no training photos: pass a folder of photos")
    path_table = tf.constant(list(paths))
    count = len(paths)
    seed = int(seed) % SEED_MODULUS

    def load(index):
        epoch = index // count
        position = tf.random.experimental.index_shuffle(
            index % count, tf.stack([tf.constant(seed, tf.int64), epoch]), count - 1
        )
        pixels = tf.numpy_function(_load_or_empty, [path_table[position]], tf.float32)
        pixels.set_shape([None, None, 3])
        return index, pixels

    def crop(index, pixels):
        return random_crop(pixels, size, tf.stack([tf.constant(seed, tf.int64), index]))

    dataset = tf.data.Dataset.range(int(start_step) * batch_size, 2**62)
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    # A photo that decoded during the scan but not now (changed on disk) is skipped, not fatal.
    dataset = dataset.filter(lambda index, pixels: tf.size(pixels) > 0)
    dataset = dataset.map(crop, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    options = tf.data.Options()
    options.deterministic = True
    # The stream has no files to shard by; each worker takes its part of every global batch.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def _load_or_empty(path: bytes) -> np.ndarray:
    try:
        return decoding.load_image(path.decode())
    except StyleTransferError:
        return np.zeros((0, 0, 3), np.float32)


def random_crop(pixels: tf.Tensor, size: int, seed: tf.Tensor) -> tf.Tensor:
    """Returns a random square crop of `pixels`, resized to `size`, maybe flipped.

    A pure function of its arguments: the same seed gives the same crop.

    Args:
        pixels: `[height, width, 3]` float32 in [0, 1].
        size: Side of the output.
        seed: Shape [2] integer seed of the stateless random ops.

    Returns:
        `[size, size, 3]` float32 in [0, 1].
    """
    shape = tf.shape(pixels)
    height, width = shape[0], shape[1]
    short_side = tf.minimum(height, width)
    uniforms = tf.random.stateless_uniform([4], seed=seed)
    fraction = SMALLEST_CROP_FRACTION + (1.0 - SMALLEST_CROP_FRACTION) * uniforms[0]
    side = tf.maximum(1, tf.cast(tf.round(fraction * tf.cast(short_side, tf.float32)), tf.int32))
    top = tf.cast(uniforms[1] * tf.cast(height - side + 1, tf.float32), tf.int32)
    left = tf.cast(uniforms[2] * tf.cast(width - side + 1, tf.float32), tf.int32)
    top = tf.minimum(top, height - side)
    left = tf.minimum(left, width - side)
    cropped = pixels[top : top + side, left : left + side]
    resized = tf.image.resize(cropped, [size, size], method="bilinear", antialias=True)
    resized = tf.where(uniforms[3] < 0.5, tf.reverse(resized, axis=[1]), resized)
    return tf.clip_by_value(tf.ensure_shape(resized, [size, size, 3]), 0.0, 1.0)


def validation_images(paths: Sequence[str], size: int) -> np.ndarray:
    """Returns the validation photos as one batch of centred square crops at `size`.

    Each photo is scaled so its short side is `size` (Lanczos) and cropped to the centre, so the
    validation loss sees whole scenes at the training scale.

    Args:
        paths: The validation photos.
        size: Side of the crops.

    Returns:
        float32 `[len(paths), size, size, 3]` in [0, 1]; `[0, size, size, 3]` for no paths.
    """
    crops = []
    for path in paths:
        pixels = decoding.load_image(path)
        height, width = pixels.shape[:2]
        scale = size / min(height, width)
        new_height = max(size, round(height * scale))
        new_width = max(size, round(width * scale))
        resized = decoding.resize(pixels, new_height, new_width)
        top = (new_height - size) // 2
        left = (new_width - size) // 2
        crops.append(resized[top : top + size, left : left + size])
    if not crops:
        return np.zeros((0, size, size, 3), np.float32)
    return np.stack(crops).astype(np.float32)
