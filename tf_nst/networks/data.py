"""The photo pipeline of fast style network training: random crops of the photos as `tf.data`.

Finding, checking and splitting the photos, and decoding them, is `tf_nst.networks.photos` (which
needs no TensorFlow); its names are importable from here too. `training_dataset` streams random
crops of the training photos as a `tf.data.Dataset` of batches.

The stream is a pure function of (seed, example index): example i of epoch e is photo
`index_shuffle(i, [seed, e])`, and its crop, scale and flip come from stateless random ops seeded
by (seed, i). So a run resumed at step s starts the stream at example s * batch and sees exactly
what the uninterrupted run saw, with no iterator state to checkpoint, and the parallel map can
decode out of order without changing the result.

Photos are decoded by a `tf_nst.networks.photos.PhotoLoader` (through `tf.numpy_function`), so
training reads exactly what stylization reads: EXIF orientation, grayscale, alpha on white, 16-bit;
reduced while decoding to what the crops need.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from tf_nst.errors import StyleTransferError
from tf_nst.networks.photos import (
    SMALLEST_CROP_FRACTION,
    PhotoLoader,
    PhotoSet,
    find_photos,
    scan_photos,
    validation_images,
)

__all__ = [
    "SEED_MODULUS",
    "SMALLEST_CROP_FRACTION",
    "PhotoLoader",
    "PhotoSet",
    "find_photos",
    "random_crop",
    "scan_photos",
    "training_dataset",
    "validation_images",
]

# Stateless random ops take int32/int64 seeds; a user's seed is folded into this range.
SEED_MODULUS = 2**31 - 1


def training_dataset(
    paths: Sequence[str],
    size: int,
    batch_size: int,
    seed: int,
    start_step: int = 0,
    loader: PhotoLoader | None = None,
) -> tf.data.Dataset:
    """Returns an endless dataset of batches of random square crops of `paths`.

    Each photo is decoded (reduced to what the crops need), cropped to a random square of
    `SMALLEST_CROP_FRACTION` to 1 times its short side at a random place, resized to `size`
    (antialiased), and flipped left-right with probability 1/2. Every epoch visits every photo
    once, in a fresh order. A photo that fails to load (changed on disk since the scan) is
    skipped; once every photo has failed, or the loader is stopped, iterating raises
    `tf.errors.OpError` (see `PhotoLoader`).

    Args:
        paths: The training photos.
        size: Side of the crops, in pixels.
        batch_size: Crops per batch: the global batch of a distributed run (the strategy splits
            it over the replicas).
        seed: Seed of the order, crops and flips.
        start_step: Batches to skip; resuming at step s with the same seed continues the stream
            exactly, at no cost.
        loader: What decodes the photos; a `PhotoLoader` of `paths` at `size` if None. Pass your
            own to read its `failure` or `stop()` it.

    Returns:
        A `tf.data.Dataset` of float32 `[batch_size, size, size, 3]` in [0, 1].
    """
    if not paths:
        raise StyleTransferError("no training photos: pass a folder of photos")
    path_table = tf.constant(list(paths))
    count = len(paths)
    seed = int(seed) % SEED_MODULUS
    loader = loader or PhotoLoader(count, size)

    def load(index):
        epoch = index // count
        position = tf.random.experimental.index_shuffle(
            index % count, tf.stack([tf.constant(seed, tf.int64), epoch]), count - 1
        )
        pixels = tf.numpy_function(loader, [path_table[position], position], tf.float32)
        pixels.set_shape([None, None, 3])
        return index, pixels

    def crop(index, pixels):
        return random_crop(pixels, size, tf.stack([tf.constant(seed, tf.int64), index]))

    dataset = tf.data.Dataset.range(int(start_step) * batch_size, 2**62)
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    # A photo that decoded during the scan but not now (changed on disk) is skipped, not fatal;
    # the loader ends the stream once every photo fails.
    dataset = dataset.filter(lambda index, pixels: tf.size(pixels) > 0)
    dataset = dataset.map(crop, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    options = tf.data.Options()
    options.deterministic = True
    # The stream has no files to shard by; each worker takes its part of every global batch.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


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
