"""The photos of fast style network training: found, checked, split and decoded at the run's size.

`scan_photos` finds the photos under a folder (recursively, each real file once), decodes each
once to sort out the ones that cannot be used, and holds out the validation photos.
`validation_images` turns those into one batch; `PhotoLoader` decodes the training photos for the
`tf.data` pipeline of `tf_nst.networks.data`.

Only numpy and Pillow are imported (no TensorFlow), so the CLI can check the photos folder and
compute its resume key before TensorFlow loads.

Photos are decoded by `tf_nst.image.decoding.load_image`, so training reads exactly what
stylization reads (EXIF orientation, grayscale, alpha on white, 16-bit), and reduced while
decoding to what the crops need: a 48 MP photo never exists in memory at full size as floats.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math
import os
import pathlib
import threading
from collections.abc import Callable, Sequence

import numpy as np

from tf_nst.errors import StyleTransferError
from tf_nst.image import decoding, folders
from tf_nst.text import printable

SMALLEST_CROP_FRACTION = 0.5
"""Scale jitter: a crop's side is this to 1 times the photo's short side, before resizing.

Crops of half the short side up to all of it show the network objects at up to twice the scale
it would see with whole photos only, which it must handle when applied at a larger size.
"""


@dataclasses.dataclass(frozen=True)
class PhotoSet:
    """The usable photos of a folder, split into training and validation.

    Attributes:
        training: Paths of the photos to train on, sorted.
        validation: Paths of the held-out photos, sorted; never in `training`, not even as
            another path to the same file.
        skipped: `(path, one-line reason)` of every photo file that cannot be used: it does not
            decode, is a dangling symbolic link, is too small to crop, or sits in a folder that
            cannot be read.
        repeats: Folders and files left out because the walk reached them a second time
            (a symbolic-link loop, a second link to a folder or photo, a hard link).
    """

    training: tuple[str, ...]
    validation: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]
    repeats: int = 0


def find_photos(photos: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Returns the photo files under a folder, or under each of several paths, sorted.

    Folders are searched recursively by `tf_nst.image.folders.walk_images`: hidden files and
    folders (names starting with ".") and files whose extension is not in
    `tf_nst.image.decoding.IMAGE_EXTENSIONS` are ignored, each real folder is walked once (a
    symbolic-link loop ends) and each real file is listed once. A path given explicitly in a list
    is taken whatever its extension. Dangling symbolic links are left out (`scan_photos` reports
    them).

    Args:
        photos: A folder, or a list of files and folders.

    Returns:
        Sorted paths, one per real file.

    Raises:
        StyleTransferError: If the folder (or a listed path) does not exist, a single path is a
            file rather than a folder, or there are no photos at all.
    """
    return _gather(photos).files


@dataclasses.dataclass(frozen=True)
class _Gathered:
    files: list[str]
    repeats: int
    unreadable: list[tuple[str, str]]


def _gather(photos: str | os.PathLike | Sequence[str | os.PathLike]) -> _Gathered:
    if isinstance(photos, (str, os.PathLike)):
        folder = pathlib.Path(photos)
        label = printable(os.fspath(photos))
        if not folder.exists():
            raise StyleTransferError(f"photos folder {label} does not exist: check the path")
        if not folder.is_dir():
            raise StyleTransferError(
                f"photos path {label} is a file, not a folder: pass a folder of photos"
            )
        walk = folders.walk_images(folder)
        if not walk.files and not walk.unreadable:
            raise StyleTransferError(
                f"photos folder {label} holds no photos "
                f"({', '.join(decoding.IMAGE_EXTENSIONS)}, searched recursively): "
                "pass a folder of photos"
            )
        return _Gathered(
            [os.fspath(path) for path in walk.files],
            walk.repeats,
            [(os.fspath(path), reason) for path, reason in walk.unreadable],
        )
    candidates, repeats, unreadable = [], 0, []
    for path in photos:
        entry = pathlib.Path(path)
        if entry.is_dir():
            walk = folders.walk_images(entry)
            candidates.extend(walk.files)
            repeats += walk.repeats
            unreadable.extend((os.fspath(where), reason) for where, reason in walk.unreadable)
        elif entry.exists():
            candidates.append(entry)
        else:
            label = printable(os.fspath(path))
            raise StyleTransferError(f"photo path {label} does not exist: check the path")
    if not candidates and not unreadable:
        raise StyleTransferError("no photos were given: pass a folder of photos")
    # The same file named twice, or inside a folder also given, or through a link, is one
    # photo; a path that is not a symbolic link is kept where there is one.
    chosen: dict[tuple[int, int] | str, tuple[bool, str]] = {}
    for candidate in map(os.fspath, candidates):
        try:
            status = os.stat(candidate)
            key: tuple[int, int] | str = (status.st_dev, status.st_ino)
        except OSError:
            key = candidate  # gone since the walk: the scan says why
        rank = (os.path.islink(candidate), candidate)
        if key in chosen:
            repeats += candidate != chosen[key][1]
            rank = min(rank, chosen[key])
        chosen[key] = rank
    return _Gathered(sorted(path for _, path in chosen.values()), repeats, unreadable)


def scan_photos(
    photos: str | os.PathLike | Sequence[str | os.PathLike],
    validation: int,
    batch_size: int,
    workers: int | None = None,
    *,
    size: int | None = None,
    minimum_side: int = 1,
) -> PhotoSet:
    """Finds the photos, decodes each once to skip the unusable ones, and holds out validation.

    Decoding everything up front costs one pass over the folder (in threads, as Pillow releases
    the GIL while decoding) but reports every bad file before training starts, rather than
    hours into it. With `size`, each photo is decoded as the training pipeline will decode it
    (`load_photo`: reduced while decoding), which costs little more than reading its header.

    The validation photos are spread evenly over the sorted usable photos, independent of the
    seed, so runs with different seeds are compared on the same photos. Each real file counts
    once (see `find_photos`), so validation and training never share a photo.

    An exception in the calling thread (a signal's, say) stops the scan at once: the photos not
    yet started are not decoded.

    Args:
        photos: A folder, or a list of files and folders.
        validation: How many photos to hold out.
        batch_size: The global batch; at least this many photos must remain for training.
        workers: Decoding threads; None for the CPU count.
        size: The side of the training crops, to decode at; None decodes at full size.
        minimum_side: The fewest pixels a photo's short side may have; a thinner photo (a
            20000x1 strip) is skipped.

    Returns:
        The split, the skipped files with their reasons, and the count of repeats left out.

    Raises:
        StyleTransferError: If there are no photos, or too few usable ones for one batch plus
            the validation photos.
    """
    gathered = _gather(photos)
    paths = gathered.files
    check = functools.partial(_decode_problem, size=size, minimum_side=minimum_side)
    problems = _map_promptly(check, paths, workers or os.cpu_count() or 1)
    usable = [path for path, problem in zip(paths, problems, strict=True) if problem is None]
    skipped = tuple(
        sorted(
            gathered.unreadable
            + [(path, problem) for path, problem in zip(paths, problems, strict=True) if problem]
        )
    )
    if len(usable) < batch_size + validation:
        where = (
            printable(os.fspath(photos))
            if isinstance(photos, (str, os.PathLike))
            else "the photos given"
        )
        raise StyleTransferError(
            f"{where} has {len(usable)} usable photos ({len(skipped)} unreadable or too small "
            f"skipped) but training needs at least {batch_size + validation}: a batch of "
            f"{batch_size} plus {validation} validation photos; add photos or lower "
            "--batch-size or --validation"
        )
    held_out = set(_spread(len(usable), validation))
    return PhotoSet(
        training=tuple(path for index, path in enumerate(usable) if index not in held_out),
        validation=tuple(path for index, path in enumerate(usable) if index in held_out),
        skipped=skipped,
        repeats=gathered.repeats,
    )


def _map_promptly(function: Callable, items: Sequence, workers: int) -> list:
    """`function` over `items` in threads; an exception here cancels what has not started."""
    executor = concurrent.futures.ThreadPoolExecutor(workers)
    try:
        return list(executor.map(function, items))
    finally:
        # Not the `with` statement: its exit would wait for every queued photo.
        executor.shutdown(wait=True, cancel_futures=True)


def skipped_warnings(photo_set: PhotoSet) -> list[str]:
    """The warning lines (without `tf-nst: warning:`) about what a scan left out, if anything."""
    lines = []
    if photo_set.skipped:
        path, reason = photo_set.skipped[0]
        lines.append(
            f"skipped {len(photo_set.skipped)} unusable photo(s), e.g. {printable(path)}: "
            f"{printable(reason)}"
        )
    if photo_set.repeats:
        lines.append(
            f"left out {photo_set.repeats} folder(s) or file(s) reached a second time through "
            "symbolic or hard links (a link loop, or two links to the same place): each photo "
            "counts once"
        )
    return lines


def _decode_problem(path: str, size: int | None, minimum_side: int) -> str | None:
    """Returns why `path` cannot be used, or None if it can."""
    try:
        load_photo(path, size, minimum_side)
    except StyleTransferError as error:
        return str(error)
    return None


def _spread(count: int, chosen: int) -> list[int]:
    """Returns `chosen` distinct indices spread evenly over `range(count)`."""
    return [int((index + 0.5) * count / chosen) for index in range(chosen)]


# --- decoding at the size a run needs ----------------------------------------------------------


def decode_long_side(shape: Sequence[int], size: int) -> int | None:
    """Returns the long side to decode a photo of `shape` at for crops of `size`, or None.

    The smallest training crop is `SMALLEST_CROP_FRACTION` of the short side, resized to `size`;
    so the photo needs `size / SMALLEST_CROP_FRACTION` pixels on its short side, and any more
    are thrown away by the resize. The long side keeps the photo's aspect ratio. A crop's place
    and side are drawn as fractions of the photo's sides, so a reduced photo gives the same crops
    (in distribution, and up to the resampling) as the full one. None: the photo is no larger.

    Args:
        shape: (height, width) of the photo (either way round: only the sides' lengths count).
        size: The side of the crops.

    Returns:
        The long side for `decoding.load_image(..., long_side=)`, or None for the full size.
    """
    short, long = min(shape[:2]), max(shape[:2])
    needed = math.ceil(size / SMALLEST_CROP_FRACTION)
    if short <= needed:
        return None
    # Rounded up: `working_shape` then gives the short side at least `needed` pixels.
    return min(long, math.ceil(long * needed / short))


def load_photo(path: str | os.PathLike, size: int | None = None, minimum_side: int = 1):
    """Reads a photo's header, checks it is thick enough, and decodes it for crops of `size`.

    Args:
        path: The photo file.
        size: The side of the crops (see `decode_long_side`); None for the full size.
        minimum_side: The fewest pixels the photo's short side may have.

    Returns:
        float32 `[height, width, 3]` in [0, 1], reduced to what crops of `size` need.

    Raises:
        StyleTransferError: If the file cannot be read or decoded, or is too thin.
    """
    info = decoding.read_image_info(path)
    if min(info.shape) < minimum_side:
        raise StyleTransferError(
            f"{printable(os.fspath(path))} is only {info.width}x{info.height} px: a training "
            f"photo needs at least {minimum_side} px on its short side"
        )
    long_side = None if size is None else decode_long_side(info.shape, size)
    return decoding.load_image(path, long_side=long_side)


def validation_images(paths: Sequence[str], size: int) -> np.ndarray:
    """Returns the validation photos as one batch of centred square crops at `size`.

    Each photo is scaled so its short side is `size` (Lanczos) and cropped to the centre, so the
    validation loss sees whole scenes at the training scale. The photo is decoded reduced (as for
    training) and only the centre square is resampled, so neither a large photo nor a long, thin
    one ever exists at full size: memory stays about `size` squared per photo.

    Args:
        paths: The validation photos.
        size: Side of the crops.

    Returns:
        float32 `[len(paths), size, size, 3]` in [0, 1]; `[0, size, size, 3]` for no paths.
    """
    crops = []
    for path in paths:
        pixels = load_photo(path, size)
        height, width = pixels.shape[:2]
        scale = size / min(height, width)
        # The centre square of the photo scaled to a short side of `size`, in the photo's pixels.
        top = (max(size, round(height * scale)) - size) // 2 / scale
        left = (max(size, round(width * scale)) - size) // 2 / scale
        box = (left, top, min(width, left + size / scale), min(height, top + size / scale))
        crops.append(decoding.resize(pixels, size, size, box=box))
    if not crops:
        return np.zeros((0, size, size, 3), np.float32)
    return np.stack(crops).astype(np.float32)


# --- the training pipeline's loader ------------------------------------------------------------


class PipelineStoppedError(Exception):
    """Raised by `PhotoLoader` inside the pipeline: it gave up, or a signal stopped it."""


class PhotoLoader:
    """Decodes training photos for the `tf.data` pipeline, and ends a pipeline that cannot go on.

    The pipeline (`tf_nst.networks.data.training_dataset`) calls it through `tf.numpy_function`
    from its threads and drops the photos it returns empty, so that a photo changed on disk since
    the scan costs one example, not the run. Two things would then keep the main thread waiting
    in `next(iterator)` forever, at full CPU, deaf to signals (Python runs a signal's handler in
    the main thread only, once that thread is back from TensorFlow):

    * Every photo failing (all emptied, deleted, the folder moved): the pipeline would filter
      forever. Once every training photo has failed since the last one that loaded, the loader
      records why in `failure` and raises, and every later call raises too, so `next` ends with
      an error (bounded: at most two passes over the photos, each failure as fast as a `stat`).
    * A signal: `stop()` (from `tf_nst.run.console.call_on_signal`'s thread) makes every later
      call raise, so `next` returns and the main thread can run the signal's handler.

    Raising is the one way to make `next` return from inside the pipeline; the caller tells the
    two apart by `failure` and `stopped`.

    Args:
        count: The number of training photos (the give-up bound).
        size: The side of the crops (photos are decoded at `decode_long_side`).
        minimum_side: The fewest pixels a photo's short side may have (as in `scan_photos`).
    """

    def __init__(self, count: int, size: int | None, minimum_side: int = 1):
        self._count = count
        self._size = size
        self._minimum_side = minimum_side
        self._lock = threading.Lock()
        self._failed: set[int] = set()  # photo positions failed since the last photo that loaded
        self._stopped = threading.Event()
        self.failure: str | None = None

    @property
    def stopped(self) -> bool:
        """Whether `stop()` was called."""
        return self._stopped.is_set()

    def stop(self) -> None:
        """Makes every later call raise (safe from any thread, and from a signal watcher)."""
        self._stopped.set()

    def __call__(self, path: bytes, position) -> np.ndarray:
        """Returns the decoded photo, or `[0, 0, 3]` if it fails; raises once it must stop."""
        if self._stopped.is_set():
            raise PipelineStoppedError("stopped by a signal")
        if self.failure is not None:
            raise PipelineStoppedError(self.failure)
        try:
            pixels = load_photo(path.decode(), self._size, self._minimum_side)
        except StyleTransferError as error:
            with self._lock:
                self._failed.add(int(position))
                if len(self._failed) >= self._count and self.failure is None:
                    self.failure = (
                        f"none of the {self._count} training photos can be loaded any more "
                        f"(the last: {error})"
                    )
            if self.failure is not None:
                raise PipelineStoppedError(self.failure) from None
            return np.zeros((0, 0, 3), np.float32)
        with self._lock:
            self._failed.clear()
        return pixels
