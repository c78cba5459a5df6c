"""The paintings' pipeline: find, check and split the paintings; stream augmented crops.

The paintings stream follows the photo stream's design (`tf_nst.networks.data`): example i of
epoch e is painting `index_shuffle(i, [seed, e])`, and its crop from stateless random ops seeded
by (seed, i), so a resumed run continues it exactly from the step alone. A few hundred
paintings would teach the decoder a few hundred textures; random crops of a quarter to all of
the short side, at random places, flipped half the time, show it each painting's strokes at a
range of scales and placements, so that it learns to render statistics rather than paintings.
"""

from __future__ import annotations

import concurrent.futures
import os
import pathlib
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tf_nst.errors import StyleTransferError
from tf_nst.image import decoding, folders
from tf_nst.networks import data
from tf_nst.networks.data import PhotoSet
from tf_nst.text import printable

PAINTING_SMALLEST_CROP_FRACTION = 0.25
"""Scale augmentation: a painting crop's side is this to 1 times its short side."""
DECODE_LONG_SIDE_FACTOR = 4
"""Paintings are decoded reduced to this times the crop size: the largest crop needs no more."""


def find_paintings(paintings: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Returns the painting files under one or more folders (recursively), sorted.

    Raises:
        StyleTransferError: If a folder does not exist, is a file, or holds no images.
    """
    painting_folders = [paintings] if isinstance(paintings, (str, os.PathLike)) else list(paintings)
    if not painting_folders:
        raise StyleTransferError("no paintings were given: pass --paintings DIR")
    found = []
    for folder in painting_folders:
        path = pathlib.Path(folder)
        label = printable(os.fspath(folder))
        if not path.exists():
            raise StyleTransferError(
                f"`paintings` {label} does not exist: pass a folder of paintings"
            )
        if not path.is_dir():
            raise StyleTransferError(
                f"`paintings` {label} is a file, not a folder: pass a folder of paintings"
            )
        images = folders.find_images(path)
        if not images:
            raise StyleTransferError(
                f"`paintings` {label} holds no images ({', '.join(decoding.IMAGE_EXTENSIONS)}, "
                "searched recursively): pass a folder of paintings"
            )
        found.extend(os.fspath(image) for image in images)
    return sorted(set(found))


def scan_paintings(
    paintings: str | os.PathLike | Sequence[str | os.PathLike],
    validation: int,
    batch_size: int,
    workers: int | None = None,
) -> PhotoSet:
    """Finds the paintings, skips unreadable ones, and holds out `validation` of them.

    The held-out paintings are spread evenly over the sorted usable ones, independent of the
    seed, and are never trained on.

    Raises:
        StyleTransferError: For no paintings, or too few usable ones for a batch plus validation.
    """
    paths = find_paintings(paintings)
    workers = workers or os.cpu_count() or 1
    with concurrent.futures.ThreadPoolExecutor(workers) as executor:
        problems = list(executor.map(_decode_problem, paths))
    usable = [path for path, problem in zip(paths, problems, strict=True) if problem is None]
    skipped = tuple(
        (path, problem) for path, problem in zip(paths, problems, strict=True) if problem
    )
    needed = batch_size + validation
    if len(usable) < needed:
        raise StyleTransferError(
            f"`paintings` has {len(usable)} usable paintings ({len(skipped)} unreadable skipped) "
            f"but training needs at least {needed}: a batch of {batch_size} plus {validation} "
            "held out; add paintings or lower `batch_size` or `validation_paintings`"
        )
    held_out = {int((index + 0.5) * len(usable) / validation) for index in range(validation)}
    return PhotoSet(
        training=tuple(path for index, path in enumerate(usable) if index not in held_out),
        validation=tuple(path for index, path in enumerate(usable) if index in held_out),
        skipped=skipped,
    )


def _decode_problem(path: str) -> str | None:
    try:
        decoding.load_image(path, long_side=64)
    except StyleTransferError as error:
        return str(error)
    return None


def paintings_dataset(
    paths: Sequence[str],
    size: int,
    batch_size: int,
    seed: int,
    start_step: int = 0,
) -> tf.data.Dataset:
    """Returns an endless dataset of batches of augmented painting crops.

    Each painting is decoded reduced to `DECODE_LONG_SIDE_FACTOR * size`, cropped to a random
    square of `PAINTING_SMALLEST_CROP_FRACTION` to 1 times its short side, resized to `size` and
    flipped left-right with probability 1/2.

    Returns:
        A `tf.data.Dataset` of float32 `[batch_size, size, size, 3]` in [0, 1].
    """
    if not paths:
        raise StyleTransferError("no training paintings: pass --paintings DIR")
    path_table = tf.constant(list(paths))
    count = len(paths)
    seed = int(seed) % data.SEED_MODULUS
    long_side = DECODE_LONG_SIDE_FACTOR * int(size)

    def load(index):
        epoch = index // count
        position = tf.random.experimental.index_shuffle(
            index % count, tf.stack([tf.constant(seed, tf.int64), epoch]), count - 1
        )
        pixels = tf.numpy_function(
            lambda path: _load_or_empty(path, long_side), [path_table[position]], tf.float32
        )
        pixels.set_shape([None, None, 3])
        return index, pixels

    def crop(index, pixels):
        return painting_crop(pixels, size, tf.stack([tf.constant(seed, tf.int64), index]))

    dataset = tf.data.Dataset.range(int(start_step) * batch_size, 2**62)
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.filter(lambda index, pixels: tf.size(pixels) > 0)
    dataset = dataset.map(crop, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _load_or_empty(path: bytes, long_side: int) -> np.ndarray:
    try:
        return decoding.load_image(path.decode(), long_side=long_side)
    except StyleTransferError:
        return np.zeros((0, 0, 3), np.float32)


def painting_crop(pixels: tf.Tensor, size: int, seed: tf.Tensor) -> tf.Tensor:
    """Returns a random square crop of a painting at a random scale, resized, maybe flipped.

    A pure function of its arguments: the same seed gives the same crop.
    """
    shape = tf.shape(pixels)
    height, width = shape[0], shape[1]
    short_side = tf.minimum(height, width)
    uniforms = tf.random.stateless_uniform([4], seed=seed)
    smallest = PAINTING_SMALLEST_CROP_FRACTION
    fraction = smallest + (1.0 - smallest) * uniforms[0]
    side = tf.maximum(1, tf.cast(tf.round(fraction * tf.cast(short_side, tf.float32)), tf.int32))
    top = tf.minimum(
        tf.cast(uniforms[1] * tf.cast(height - side + 1, tf.float32), tf.int32), height - side
    )
    left = tf.minimum(
        tf.cast(uniforms[2] * tf.cast(width - side + 1, tf.float32), tf.int32), width - side
    )
    cropped = pixels[top : top + side, left : left + side]
    resized = tf.image.resize(cropped, [size, size], method="bilinear", antialias=True)
    resized = tf.where(uniforms[3] < 0.5, tf.reverse(resized, axis=[1]), resized)
    return tf.clip_by_value(tf.ensure_shape(resized, [size, size, 3]), 0.0, 1.0)


def pair_datasets(
    photos: tf.data.Dataset,
    paintings: tf.data.Dataset,
    batch_size: int,
    start_step: int = 0,
    identity_every: int = 0,
) -> tf.data.Dataset:
    """Zips the photo and painting streams into (photos, paintings, identity) batches, prefetched.

    Example i of the run (counted over all steps from 0) is an identity pair when
    `identity_every` divides i: its painting is its own photo, so the decoder also learns to give
    the photo back from the photo's features (what `--strength 0` asks of it). `identity` is the
    float mask of those examples; 0 turns them off. Like the streams, the mask is a function of
    the step, so a resumed run sees the same pairs.
    """
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    steps = tf.data.Dataset.counter(start_step)

    def with_identity(photo_batch, painting_batch, step):
        index = step * batch_size + tf.range(batch_size, dtype=tf.int64)
        if identity_every:
            identity = tf.equal(index % identity_every, 0)
        else:
            identity = tf.zeros([batch_size], tf.bool)
        painting_batch = tf.where(identity[:, None, None, None], photo_batch, painting_batch)
        return photo_batch, painting_batch, tf.cast(identity, tf.float32)

    zipped = tf.data.Dataset.zip((photos, paintings, steps)).map(with_identity)
    return zipped.with_options(options).prefetch(tf.data.AUTOTUNE)


def validation_paintings(paths: Sequence[str], size: int) -> np.ndarray:
    """The held-out paintings as centred square crops at `size` (as the validation photos)."""
    return data.validation_images(paths, size)
