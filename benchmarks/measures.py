"""The measures the quality benchmarks share (issue 15), on one output, its photo and its painting.

* **Style at three sizes** (`style_at_sizes`): the Gram-matrix style error of the output at its
  working size, and at 1/2 and 1/4 of it, with the photo and the painting reduced in proportion.
  At the working size a fine texture can score as well as the painting's own strokes; at the
  reduced sizes only structures several times larger than a brush dot count, so a wallpaper of
  small dots scores badly there. The photo's own error at each size (`photo_style_S`) is the
  baseline that a ratio divides by.
* **Palette** (`palette_measures`): a sliced Wasserstein distance between the pixel colour
  distributions in CIE Lab (D65), in Lab units, and the Lab lightness percentiles on the 0-255
  scale, of the output, the photo and the painting.
* **Per-eye leak** (`eye_leak`): the best match of each eye of a portrait painting, as deep
  features, anywhere in the output; the photo's own best match is the baseline of an eye that is
  not there. One template per eye (boxes in `portraits.json`), so that a single reproduced eye
  shows, which a whole-face template misses.
* **Content error** (`content_error`): tf_nst's normalised content error.
* **Outline recall** (`outline_recall`): the share of the photo's outlines (its strongest edges
  at 1/4 size) that the output still draws among its own strongest edges. A deep-feature content
  error can fall while long strokes run across the scene's outlines; this sees the outlines.

Colour and matching are numpy; only the functions that run a network import TensorFlow, so the
benchmarks that import this module stay free of it until they measure.
"""

from __future__ import annotations

import json
import math
import pathlib
import statistics
from collections.abc import Mapping, Sequence

import numpy as np

SCALES = (1, 2, 4)
LIGHTNESS_PERCENTILES = (5, 50, 95)
# The sliced Wasserstein distance: 64 directions spread evenly over the sphere (a Fibonacci
# lattice: their mean |cos| to any direction is within 1.4% of the exact 1/2, where 64 random
# ones can be 15% off), 512 quantile levels, and at most 65536 pixels of an image (a fixed random
# sample of larger ones: sorting every pixel of a 512 px image on every direction takes seconds).
PALETTE_DIRECTIONS = 64
PALETTE_QUANTILES = 512
PALETTE_PIXELS = 65536
PALETTE_SEED = 0
# The layer of the eye templates: an eye spans a few of its cells (stride 8) at working sizes,
# where block 5's cells are larger than the eye. Of block3_conv3, block4_conv1 and block4_conv3
# it separated best the eyes that today's defaults paint into the Golden Gate's water from the
# bare photo and from Matisse's strokes away from the face (benchmarks/README.md, "Measures").
EYE_LAYER = "block4_conv3"
PORTRAITS = pathlib.Path(__file__).resolve().with_name("portraits.json")
# Outlines: edges at 1/4 of the size (a 512 px picture's at 128 px), the strongest 10% of cells.
OUTLINE_SCALE = 4
OUTLINE_FRACTION = 0.1

# sRGB (IEC 61966-2-1) linear RGB to CIE XYZ; its rows sum to the D65 white point, which is
# used as the reference white so that sRGB white maps to a = b = 0 exactly.
SRGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
D65_WHITE = SRGB_TO_XYZ.sum(axis=1)
LAB_DELTA = 6 / 29


# --- colour ---------------------------------------------------------------------------------------


def srgb_to_lab(image: np.ndarray) -> np.ndarray:
    """Converts sRGB in [0, 1] (any shape ending in 3) to CIE Lab (D65), float64.

    L is in [0, 100]; a and b are about in [-128, 127]. Values outside [0, 1] are clipped first.
    """
    rgb = np.clip(np.asarray(image, np.float64), 0.0, 1.0)
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ SRGB_TO_XYZ.T / D65_WHITE
    f = np.where(xyz > LAB_DELTA**3, np.cbrt(xyz), xyz / (3 * LAB_DELTA**2) + 4 / 29)
    lightness = 116 * f[..., 1] - 16
    a = 500 * (f[..., 0] - f[..., 1])
    b = 200 * (f[..., 1] - f[..., 2])
    return np.stack([lightness, a, b], axis=-1)


def lightness_255(image: np.ndarray) -> np.ndarray:
    """The Lab lightness of every pixel on the 0-255 scale (L * 255 / 100), as issue 15 reports."""
    return srgb_to_lab(image)[..., 0] * (255 / 100)


def lightness_percentiles(
    image: np.ndarray, percentiles: Sequence[float] = LIGHTNESS_PERCENTILES
) -> np.ndarray:
    """The 5th, 50th and 95th percentiles of an image's Lab lightness, on 0-255."""
    return np.percentile(lightness_255(image), percentiles)


def unit_directions(count: int = PALETTE_DIRECTIONS) -> np.ndarray:
    """`count` unit vectors spread evenly over the sphere (a Fibonacci lattice), `[count, 3]`."""
    index = np.arange(count) + 0.5
    z = 1 - 2 * index / count
    angle = np.pi * (1 + 5**0.5) * index
    radius = np.sqrt(1 - z**2)
    return np.stack([radius * np.cos(angle), radius * np.sin(angle), z], axis=-1)


def quantiles_along(points: np.ndarray, directions: np.ndarray, count: int) -> np.ndarray:
    """The quantiles of the points' projections on each direction, at `count` levels.

    `[count, directions]`, at the levels (i + 1/2) / count, interpolated linearly between order
    statistics as `np.quantile` does (sorting once is faster than its selection).
    """
    projections = np.sort(np.asarray(points, np.float64) @ directions.T, axis=0)
    positions = (np.arange(count) + 0.5) / count * (len(projections) - 1)
    lower = np.floor(positions).astype(int)
    upper = np.minimum(lower + 1, len(projections) - 1)
    fraction = (positions - lower)[:, None]
    return projections[lower] * (1 - fraction) + projections[upper] * fraction


def sliced_wasserstein(
    first: np.ndarray,
    second: np.ndarray,
    directions: np.ndarray | None = None,
    quantiles: int = PALETTE_QUANTILES,
) -> float:
    """The sliced Wasserstein-1 distance between two point sets `[N, 3]` and `[M, 3]`.

    Both sets are projected on each direction; the 1-D distance is the mean absolute difference
    of their quantiles at `quantiles` evenly spaced levels (the quantile functions' L1 distance,
    which is W1), so the sets may differ in size; the result is the mean over the directions, in
    the points' own units (Lab units for `palette_distance`).
    """
    directions = unit_directions() if directions is None else np.asarray(directions, np.float64)
    difference = quantiles_along(first, directions, quantiles) - quantiles_along(
        second, directions, quantiles
    )
    return float(np.abs(difference).mean())


def palette_pixels(image: np.ndarray, limit: int = PALETTE_PIXELS) -> np.ndarray:
    """An image's pixels in Lab, `[N, 3]`: all of them, or a fixed random `limit` of them."""
    pixels = srgb_to_lab(image).reshape(-1, 3)
    if len(pixels) <= limit:
        return pixels
    chosen = np.random.default_rng(PALETTE_SEED).choice(len(pixels), limit, replace=False)
    return pixels[chosen]


def palette_distance(image: np.ndarray, reference: np.ndarray) -> float:
    """The sliced Wasserstein distance between two images' pixel colours in Lab, in Lab units.

    0 for the same colours in any arrangement (exactly up to `PALETTE_PIXELS` pixels, within the
    sampling error beyond); a uniform shift of every colour by a Lab vector d gives the mean over
    the directions of |<d, direction>|, |d| / 2 within 1.4%.
    """
    return sliced_wasserstein(palette_pixels(image), palette_pixels(reference))


def palette_measures(output: np.ndarray, photo: np.ndarray, painting: np.ndarray) -> dict:
    """The palette distances to the painting (output's and photo's) and the three lightnesses."""
    row = {
        "palette": palette_distance(output, painting),
        "photo_palette": palette_distance(photo, painting),
    }
    for name, image in (("", output), ("photo_", photo), ("painting_", painting)):
        for percentile, value in zip(
            LIGHTNESS_PERCENTILES, lightness_percentiles(image), strict=True
        ):
            row[f"{name}lightness_{percentile}"] = float(value)
    return row


# --- style and content, on a feature extractor -------------------------------------------------


def features_of(extractor, image: np.ndarray) -> dict:
    """The extractor's feature maps of one float RGB image, each `[1, height, width, channels]`."""
    import tensorflow as tf

    return extractor(tf.convert_to_tensor(np.asarray(image, np.float32))[None], training=False)


def style_error(features: Mapping, target_features: Mapping, layers: Sequence[str]) -> float:
    """tf_nst's normalised Gram style error, ‖G − A‖² / ‖A‖², averaged over `layers`."""
    from tf_nst.losses import gram_matrix, style_layer_loss

    # The losses give one value per example of the batch; every batch here is one image.
    return statistics.fmean(
        float(
            style_layer_loss(
                gram_matrix(features[name]), gram_matrix(target_features[name]), "normalized"
            )[0]
        )
        for name in layers
    )


def content_error(features: Mapping, target_features: Mapping, layers: Sequence[str]) -> float:
    """tf_nst's normalised content error, ‖F − P‖² / ‖P‖², averaged over `layers`."""
    from tf_nst.losses import content_layer_loss

    return statistics.fmean(
        float(content_layer_loss(features[name], target_features[name], "normalized")[0])
        for name in layers
    )


def scaled_side(long_side: int, scale: int) -> int:
    """The long side of an image of `long_side` at 1/`scale` of its size."""
    return max(1, round(long_side / scale))


def style_at_sizes(
    extractor,
    output: np.ndarray,
    photo: np.ndarray,
    painting: np.ndarray,
    layers: Sequence[str],
    painting_side: int | None = None,
    scales: Sequence[int] = SCALES,
) -> dict[str, float]:
    """The style error of the output and of the photo at each scale, against the painting.

    At scale S the output is resized to 1/S of its long side, the photo to the same height and
    width, and the painting to 1/S of `painting_side` (its long side as the run saw it; None: the
    output's long side), so output and painting keep their relative scale.

    Returns:
        `style_S` (the output's error) and `photo_S` (the photo's) for every S of `scales`, as
        `style_1`, `style_2`, `style_4`, `photo_style_1`, ...
    """
    from tf_nst.image.decoding import resize, resize_to_long_side

    long_side = max(output.shape[:2])
    painting_side = long_side if painting_side is None else painting_side
    row = {}
    for scale in scales:
        small = resize_to_long_side(output, scaled_side(long_side, scale))
        small_photo = resize(photo, *small.shape[:2])
        small_painting = resize_to_long_side(painting, scaled_side(painting_side, scale))
        painting_features = features_of(extractor, small_painting)
        row[f"style_{scale}"] = style_error(
            features_of(extractor, small), painting_features, layers
        )
        row[f"photo_style_{scale}"] = style_error(
            features_of(extractor, small_photo), painting_features, layers
        )
    return row


# --- outlines -------------------------------------------------------------------------------------


def edge_strength(image: np.ndarray, scale: int = OUTLINE_SCALE) -> np.ndarray:
    """Sobel gradient magnitude of the Lab lightness, reduced by `scale` (means of S x S blocks).

    Reducing first leaves the structures several brush strokes wide: a photo's outlines survive,
    a fine texture averages out.
    """
    from scipy import ndimage

    grey = lightness_255(image) / 255
    height, width = (grey.shape[0] // scale) * scale, (grey.shape[1] // scale) * scale
    grey = grey[:height, :width].reshape(height // scale, scale, width // scale, scale)
    grey = grey.mean(axis=(1, 3))
    return np.hypot(
        ndimage.sobel(grey, axis=1, mode="nearest"), ndimage.sobel(grey, axis=0, mode="nearest")
    )


def strongest(strength: np.ndarray, fraction: float) -> np.ndarray:
    """The mask of the `fraction` of cells with the strongest edges (none on a flat image)."""
    threshold = np.quantile(strength, 1 - fraction)
    return (strength >= threshold) & (strength > 1e-9)


def outline_recall(
    output: np.ndarray,
    photo: np.ndarray,
    scale: int = OUTLINE_SCALE,
    fraction: float = OUTLINE_FRACTION,
) -> float:
    """The share of the photo's outlines that the output draws, from 0 to 1.

    The photo's outlines are its `fraction` strongest edge cells at 1/`scale` size
    (`edge_strength`), taken at the output's size; a cell counts as drawn when it is also among
    the output's own `fraction` strongest. The photo itself scores 1; an output whose strongest
    edges fall anywhere at random scores about `fraction`; one whose strongest edges are strokes
    across the scene scores between.
    """
    from tf_nst.image.decoding import resize

    photo = resize(np.asarray(photo, np.float32), *output.shape[:2])
    outlines = strongest(edge_strength(photo, scale), fraction)
    if not outlines.any():
        return 1.0
    drawn = strongest(edge_strength(output, scale), fraction)
    return float((outlines & drawn).sum() / outlines.sum())


# --- per-eye leak -----------------------------------------------------------------------------


def load_portraits(path: str | pathlib.Path = PORTRAITS) -> dict[str, dict]:
    """The portraits' eye boxes: {painting path under ../shared: {"eyes": {name: box}}}.

    A box is (left, top, right, bottom) as fractions of the painting's width and height.
    """
    return json.loads(pathlib.Path(path).read_text(encoding="utf-8"))["portraits"]


def eye_boxes(painting: str | pathlib.Path, path: str | pathlib.Path = PORTRAITS) -> dict | None:
    """The eye boxes of a painting named by its path or stem (`woman-with-hat-matisse`), or None."""
    stem = pathlib.PurePath(str(painting)).stem
    for name, portrait in load_portraits(path).items():
        if pathlib.PurePath(name).stem == stem:
            return portrait["eyes"]
    return None


def feature_cells(box: Sequence[float], height: int, width: int) -> tuple[int, int, int, int]:
    """The (top, left, bottom, right) cells of a `height` x `width` feature map that cover `box`.

    At least one cell each way, so that a small eye still has a template.
    """
    left, top, right, bottom = box
    first_row = min(height - 1, math.floor(top * height))
    first_column = min(width - 1, math.floor(left * width))
    last_row = max(first_row + 1, min(height, math.ceil(bottom * height)))
    last_column = max(first_column + 1, min(width, math.ceil(right * width)))
    return first_row, first_column, last_row, last_column


def best_match(features: np.ndarray, template: np.ndarray) -> tuple[float, int, int]:
    """The best cosine similarity of the flattened template to any window of `features`.

    `features` is `[H, W, C]`, `template` `[h, w, C]`; every window of the template's size is
    compared whole (cells and channels flattened), so the eye's parts must appear in their
    arrangement. Returns (score, row, column) of the best window's top-left cell, or (0, 0, 0)
    when the template is larger than the map.
    """
    features = np.asarray(features, np.float64)
    template = np.asarray(template, np.float64)
    height, width = template.shape[:2]
    rows, columns = features.shape[0] - height + 1, features.shape[1] - width + 1
    if rows < 1 or columns < 1:
        return 0.0, 0, 0
    # The window dot products and squared norms, summed cell by cell of the template: cheaper
    # than materialising every window, and exact.
    products = np.zeros((rows, columns))
    squares = np.zeros((rows, columns))
    cell_squares = np.square(features).sum(axis=-1)
    for row in range(height):
        for column in range(width):
            window = features[row : row + rows, column : column + columns]
            products += window @ template[row, column]
            squares += cell_squares[row : row + rows, column : column + columns]
    scores = products / (np.sqrt(squares) * np.linalg.norm(template) + 1e-12)
    best = np.unravel_index(np.argmax(scores), scores.shape)
    return float(scores[best]), int(best[0]), int(best[1])


def eye_matches(
    features: np.ndarray, painting_features: np.ndarray, boxes: Mapping[str, Sequence[float]]
) -> dict[str, dict[str, float]]:
    """For each eye: its best match in `features` and where, as fractions of the image.

    `painting_features` is `[H, W, C]` of the painting, `boxes` its eye boxes (fractions).
    Returns {eye: {"score", "x", "y"}}, x and y the centre of the best window.
    """
    features = np.asarray(features)
    height, width = features.shape[:2]
    matches = {}
    for eye, box in boxes.items():
        top, left, bottom, right = feature_cells(box, *painting_features.shape[:2])
        template = np.asarray(painting_features)[top:bottom, left:right]
        score, row, column = best_match(features, template)
        matches[eye] = {
            "score": score,
            "x": (column + template.shape[1] / 2) / width,
            "y": (row + template.shape[0] / 2) / height,
        }
    return matches


def eye_leak(
    extractor,
    output: np.ndarray,
    photo: np.ndarray,
    painting: np.ndarray,
    boxes: Mapping[str, Sequence[float]],
    painting_side: int | None = None,
    layer: str = EYE_LAYER,
) -> dict:
    """The per-eye leak of an output and of its photo, on `layer` of `extractor`.

    The painting is taken at `painting_side` (its long side in the run's loss; None: the output's
    long side), the photo at the output's size.

    Returns:
        `eye_leak` (the best eye's score in the output), `photo_eye_leak` (the same in the photo)
        and `eyes` ({eye: {"score", "x", "y", "photo_score"}}).
    """
    from tf_nst.image.decoding import resize, resize_to_long_side

    painting_side = max(output.shape[:2]) if painting_side is None else painting_side
    painting_features = np.asarray(
        features_of(extractor, resize_to_long_side(painting, painting_side))[layer][0]
    )
    output_matches = eye_matches(
        np.asarray(features_of(extractor, output)[layer][0]), painting_features, boxes
    )
    photo_matches = eye_matches(
        np.asarray(features_of(extractor, resize(photo, *output.shape[:2]))[layer][0]),
        painting_features,
        boxes,
    )
    eyes = {
        eye: {**match, "photo_score": photo_matches[eye]["score"]}
        for eye, match in output_matches.items()
    }
    return {
        "eye_leak": max(match["score"] for match in output_matches.values()),
        "photo_eye_leak": max(match["score"] for match in photo_matches.values()),
        "eyes": eyes,
    }
