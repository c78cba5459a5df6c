"""Colour control for style transfer, after Gatys et al. 2016.

"Preserving Color in Neural Artistic Style Transfer" (Gatys, Bethge, Hertzmann, Shechtman, 2016)
offers two ways to keep the content image's colours:

* Luminance-only transfer: run style transfer on the luminance channel alone (after matching the
  style's luminance statistics to the content's with `match_luminance`), then put the content's
  chroma back with `combine_luminance_with_chroma`.
* Colour histogram matching: before the run, recolour the style image so that its pixel mean and
  covariance equal the content's (`match_color_histogram`).

`network_inputs` and `restore_colors` apply a `--preserve-colors` mode ("none", "luminance" or
"histogram") before and after a run. The same affine map the other way round gives the default
start of the optimisation, `--init recolored`: the content in the styles' colour statistics
(`blended_color_statistics`, then `recolor`).

Everything here is plain numpy on float images of shape HxWx3 (RGB in [0, 1]) or HxW (a luminance
channel). Results are float32. Shape problems raise `StyleTransferError`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tf_nst.config import PRESERVE_COLORS
from tf_nst.errors import StyleTransferError

# NTSC (FCC 1953) RGB -> YIQ matrix; rows give Y, I and Q.
_RGB_TO_YIQ = np.array(
    [
        [0.299, 0.587, 0.114],
        [0.595716, -0.274453, -0.321263],
        [0.211456, -0.522591, 0.311135],
    ],
    dtype=np.float64,
)
# The published inverse is rounded to 3-4 digits, so a round trip would drift by ~1e-4; inverting
# numerically makes the pair exact to float precision.
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)

# Below this spread a channel is treated as flat; real 8-bit images are far above it.
_FLAT_STD = 1e-12


def _as_color_image(image: np.ndarray, name: str) -> np.ndarray:
    """Return `image` as a float64 HxWx3 array, or raise if its shape is wrong."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3 or array.shape[0] == 0 or array.shape[1] == 0:
        raise StyleTransferError(
            f"{name} must be an HxWx3 RGB image, got shape {array.shape}; "
            "pass one image with 3 colour channels"
        )
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise StyleTransferError(f"{name} must hold real numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise StyleTransferError(f"{name} contains NaN or infinite values; pass a finite image")
    return array


def _as_luminance(channel: np.ndarray, name: str) -> np.ndarray:
    """Return `channel` as a float64 HxW array, or raise if its shape is wrong."""
    array = np.asarray(channel)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise StyleTransferError(
            f"{name} must be an HxW luminance channel, got shape {array.shape}; "
            "use luminance(image) to get one"
        )
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise StyleTransferError(f"{name} must hold real numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise StyleTransferError(f"{name} contains NaN or infinite values; pass a finite image")
    return array


def _require_same_size(first: np.ndarray, second: np.ndarray, names: str) -> None:
    """Raise unless two HxWx3 images have the same height and width."""
    if first.shape != second.shape:
        raise StyleTransferError(
            f"{names} must have the same size, got {first.shape[:2]} and {second.shape[:2]}; "
            "resize one to match the other"
        )


def rgb_to_yiq(image: np.ndarray) -> np.ndarray:
    """Convert an RGB image to NTSC YIQ.

    Args:
        image: HxWx3 RGB image, nominally in [0, 1].

    Returns:
        HxWx3 float32 image with channels Y (luminance, in [0, 1] for inputs in [0, 1]), I and Q
        (chroma, signed).

    Raises:
        StyleTransferError: If `image` is not a finite HxWx3 array.
    """
    rgb = _as_color_image(image, "image")
    return (rgb @ _RGB_TO_YIQ.T).astype(np.float32)


def yiq_to_rgb(image: np.ndarray) -> np.ndarray:
    """Convert an NTSC YIQ image back to RGB; the exact inverse of `rgb_to_yiq`.

    Args:
        image: HxWx3 image with channels Y, I, Q.

    Returns:
        HxWx3 float32 RGB image. Not clipped, so a round trip is lossless; YIQ triples that no RGB
        colour in [0, 1] produces come out of range.

    Raises:
        StyleTransferError: If `image` is not a finite HxWx3 array.
    """
    yiq = _as_color_image(image, "image")
    return (yiq @ _YIQ_TO_RGB.T).astype(np.float32)


def luminance(image: np.ndarray) -> np.ndarray:
    """Return the luminance (the YIQ Y channel) of an RGB image.

    Args:
        image: HxWx3 RGB image in [0, 1].

    Returns:
        HxW float32 array; 1 for white, 0 for black.

    Raises:
        StyleTransferError: If `image` is not a finite HxWx3 array.
    """
    rgb = _as_color_image(image, "image")
    return (rgb @ _RGB_TO_YIQ[0]).astype(np.float32)


def luminance_image(image: np.ndarray) -> np.ndarray:
    """Return a grey RGB image whose three channels all equal the luminance of `image`.

    This is what the network sees in luminance-only transfer: the VGG expects three channels, and
    a grey image carries no chroma for the style to act on.

    Args:
        image: HxWx3 RGB image in [0, 1].

    Returns:
        HxWx3 float32 image with identical channels.

    Raises:
        StyleTransferError: If `image` is not a finite HxWx3 array.
    """
    channel = luminance(image)
    return np.repeat(channel[:, :, np.newaxis], 3, axis=2)


def match_luminance(style_luminance: np.ndarray, content_luminance: np.ndarray) -> np.ndarray:
    """Shift and scale the style's luminance to the content's mean and standard deviation.

    Gatys et al. 2016, eq. 1: L_s' = (L_s - mu_s) * sigma_c / sigma_s + mu_c. Without it, a dark
    style painted onto a bright photo would change the photo's overall brightness.

    Args:
        style_luminance: HxW luminance of the style image.
        content_luminance: Luminance of the content image; any size.

    Returns:
        Float32 array shaped like `style_luminance` with exactly the content's mean and standard
        deviation. Not clipped (clipping would change those statistics), so a few values may leave
        [0, 1]. A flat style luminance (sigma_s == 0) has no contrast to scale and comes back as
        the content mean everywhere.

    Raises:
        StyleTransferError: If either input is not a finite 2-D array.
    """
    style = _as_luminance(style_luminance, "style_luminance")
    content = _as_luminance(content_luminance, "content_luminance")
    style_mean, style_std = style.mean(), style.std()
    content_mean, content_std = content.mean(), content.std()
    if style_std <= _FLAT_STD:
        return np.full(style.shape, content_mean, dtype=np.float32)
    matched = (style - style_mean) * (content_std / style_std) + content_mean
    return matched.astype(np.float32)


def combine_luminance_with_chroma(
    luminance_source: np.ndarray, chroma_source: np.ndarray
) -> np.ndarray:
    """Join the luminance of one image with the chroma of another.

    The last step of luminance-only transfer: `luminance_source` is the stylized output, and
    `chroma_source` is the content image whose colours should be kept.

    Args:
        luminance_source: HxWx3 RGB image that provides Y.
        chroma_source: HxWx3 RGB image of the same size that provides I and Q.

    Returns:
        HxWx3 float32 RGB image clipped to [0, 1].

    Raises:
        StyleTransferError: If either input is not a finite HxWx3 array or their sizes differ.
    """
    luminance_rgb = _as_color_image(luminance_source, "luminance_source")
    chroma_rgb = _as_color_image(chroma_source, "chroma_source")
    _require_same_size(luminance_rgb, chroma_rgb, "luminance_source and chroma_source")
    yiq = chroma_rgb @ _RGB_TO_YIQ.T
    yiq[:, :, 0] = luminance_rgb @ _RGB_TO_YIQ[0]
    rgb = yiq @ _YIQ_TO_RGB.T
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)


def _symmetric_power(matrix: np.ndarray, power: float, ridge: float = 0.0) -> np.ndarray:
    """Return (matrix + ridge * I) ** power for a symmetric positive semi-definite matrix."""
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    # Round-off can make the eigenvalues of a singular covariance slightly negative; clamping
    # before adding the ridge keeps a negative power finite.
    eigenvalues = np.maximum(eigenvalues, 0.0) + ridge
    return (eigenvectors * eigenvalues**power) @ eigenvectors.T


def match_color_histogram(
    source: np.ndarray, target: np.ndarray, epsilon: float = 1e-5
) -> np.ndarray:
    """Recolour `source` so that its pixel mean and colour covariance match `target`'s.

    The colour histogram matching of Gatys et al. 2016: an affine map x' = A x + b applied to
    every pixel, with A Sigma_s A^T = Sigma_t and b = mu_t - A mu_s. In style transfer `source`
    is the style image and `target` the content image, so the style takes on the content's
    colours before the run.

    Args:
        source: HxWx3 RGB image in [0, 1] to recolour.
        target: HxWx3 RGB image in [0, 1] whose colour statistics to copy; any size.
        epsilon: Added to the diagonal of the source covariance so that a grey or flat source
            (a singular covariance) gives finite results. Must be positive.

    Returns:
        Float32 image shaped like `source`, clipped to [0, 1]. Away from clipping, its mean equals
        the target's and its covariance equals the target's up to a relative error of about
        epsilon / (smallest source colour variance).

    Raises:
        StyleTransferError: If either input is not a finite HxWx3 array or `epsilon` is not
            positive.
    """
    source_rgb = _as_color_image(source, "source")  # a bad source is named before a bad target
    target_mean, target_covariance = color_statistics(target, "target")
    return _recolor_checked(source_rgb, target_mean, target_covariance, epsilon)


def color_statistics(image: np.ndarray, name: str = "image") -> tuple[np.ndarray, np.ndarray]:
    """Returns the pixel mean (3,) and population colour covariance (3, 3) of an RGB image.

    `name` is the image's name in the error message.

    Raises:
        StyleTransferError: If `image` is not a finite HxWx3 array.
    """
    pixels = _as_color_image(image, name).reshape(-1, 3).astype(np.float64)
    mean = pixels.mean(axis=0)
    centered = pixels - mean
    # Population covariance (divide by N), so the statistics match np.cov(bias=True).
    return mean, centered.T @ centered / len(pixels)


def blended_color_statistics(
    images: Sequence[np.ndarray], weights: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Returns the colour mean and covariance of the mixture of `images` with `weights`.

    The mixture's pixels are image k's with probability weights[k] (normalised to sum 1), so a
    blend of styles has one colour distribution whatever the images' sizes.
    """
    total = float(sum(weights))
    if not total > 0:
        raise StyleTransferError(f"blend weights must have a positive sum, got {list(weights)}")
    mean = np.zeros(3)
    second_moment = np.zeros((3, 3))
    for image, weight in zip(images, weights, strict=True):
        image_mean, image_covariance = color_statistics(image)
        mean += weight / total * image_mean
        second_moment += weight / total * (image_covariance + np.outer(image_mean, image_mean))
    return mean, second_moment - np.outer(mean, mean)


def recolor(
    source: np.ndarray, mean: np.ndarray, covariance: np.ndarray, epsilon: float = 1e-5
) -> np.ndarray:
    """Maps `source`'s pixels affinely so that their colour mean and covariance are the given.

    Args:
        source: HxWx3 RGB image in [0, 1].
        mean: The target colour mean, shape (3,).
        covariance: The target colour covariance, shape (3, 3), symmetric positive semi-definite.
        epsilon: Added to the diagonal of the source covariance, so that a grey or flat source
            (a singular covariance) gives finite results. Must be positive.

    Returns:
        Float32 image shaped like `source`, clipped to [0, 1].
    """
    return _recolor_checked(_as_color_image(source, "source"), mean, covariance, epsilon)


def _recolor_checked(
    source_rgb: np.ndarray, mean: np.ndarray, covariance: np.ndarray, epsilon: float
) -> np.ndarray:
    """`recolor` of a source that `_as_color_image` has already checked and converted."""
    if not (np.isfinite(epsilon) and epsilon > 0):
        raise StyleTransferError(f"epsilon must be a positive number, got {epsilon!r}")
    source_mean, source_covariance = color_statistics(source_rgb)
    source_centered = source_rgb.reshape(-1, 3) - source_mean
    # The symmetric square root (the "Image Analogies" variant) rather than Cholesky: Cholesky
    # factors depend on the channel order, so they treat R, G and B unequally and can rotate
    # colours needlessly; the symmetric roots are unique and order-independent. Gatys et al.
    # report both give similar images.
    transform = _symmetric_power(np.asarray(covariance, np.float64), 0.5) @ _symmetric_power(
        source_covariance, -0.5, ridge=epsilon
    )
    matched = source_centered @ transform.T + np.asarray(mean, np.float64)
    return np.clip(matched, 0.0, 1.0).reshape(source_rgb.shape).astype(np.float32)


def chroma_distance(first: np.ndarray, second: np.ndarray) -> float:
    """Measure how different the colours of two images are, ignoring brightness.

    Args:
        first: HxWx3 RGB image.
        second: HxWx3 RGB image of the same size.

    Returns:
        Mean absolute difference of the YIQ I and Q channels over all pixels; 0 for identical
        chroma.

    Raises:
        StyleTransferError: If either input is not a finite HxWx3 array or their sizes differ.
    """
    first_rgb = _as_color_image(first, "first")
    second_rgb = _as_color_image(second, "second")
    _require_same_size(first_rgb, second_rgb, "first and second")
    chroma_matrix = _RGB_TO_YIQ[1:]
    difference = (first_rgb - second_rgb) @ chroma_matrix.T
    return float(np.abs(difference).mean())


def network_inputs(
    content: np.ndarray, styles: list[np.ndarray] | tuple[np.ndarray, ...], mode: str
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Returns the content and style images the network sees under a --preserve-colors mode.

    * "none": the images unchanged (as float32).
    * "histogram": each style recoloured to the content's colour statistics
      (`match_color_histogram`); the content unchanged.
    * "luminance": grey images. The content becomes its luminance; each style becomes its
      luminance matched to the content's mean and spread (`match_luminance`) and clipped to
      [0, 1], the range the network's input has. The colour comes back in `restore_colors`.

    Args:
        content: HxWx3 RGB content image in [0, 1].
        styles: HxWx3 RGB style images in [0, 1], any sizes.
        mode: One of `PRESERVE_COLORS`.

    Returns:
        (content, styles) as float32 HxWx3 images.

    Raises:
        StyleTransferError: For an unknown mode or an image that is not a finite HxWx3 array.
    """
    _check_mode(mode)
    if mode == "histogram":
        return np.asarray(content, np.float32), [
            match_color_histogram(style, content) for style in styles
        ]
    if mode == "luminance":
        content_luminance = luminance(content)
        grey_styles = [
            np.clip(match_luminance(luminance(style), content_luminance), 0.0, 1.0)
            for style in styles
        ]
        return luminance_image(content), [
            np.repeat(grey[:, :, np.newaxis], 3, axis=2) for grey in grey_styles
        ]
    return np.asarray(content, np.float32), [np.asarray(style, np.float32) for style in styles]


def restore_colors(image: np.ndarray, content: np.ndarray, mode: str) -> np.ndarray:
    """Undoes `network_inputs` on a result: puts the content's chroma back after "luminance".

    Args:
        image: HxWx3 RGB result of the run, in [0, 1].
        content: HxWx3 RGB content image of the same size, in [0, 1].
        mode: One of `PRESERVE_COLORS`.

    Returns:
        The float32 HxWx3 image to save: the result's luminance with the content's chroma for
        "luminance", else the result unchanged.

    Raises:
        StyleTransferError: For an unknown mode or, with "luminance", images that are not finite
            HxWx3 arrays of the same size.
    """
    _check_mode(mode)
    if mode == "luminance":
        return combine_luminance_with_chroma(image, content)
    return np.asarray(image, np.float32)


def keep_colors(stylized: np.ndarray, photo: np.ndarray, mode: str) -> np.ndarray:
    """Gives a finished stylization the photo's colours, as `tf-nst apply --preserve-colors` does.

    Unlike `network_inputs` and `restore_colors`, which the optimisation applies before and after
    it runs, this works on a result alone: "luminance" keeps the stylization's luminance with the
    photo's chroma, "histogram" recolours it to the photo's colour mean and covariance.

    Raises:
        StyleTransferError: For an unknown mode, or images that are not finite HxWx3 arrays of
            the same size.
    """
    _check_mode(mode)
    if mode == "luminance":
        return combine_luminance_with_chroma(stylized, photo)
    if mode == "histogram":
        return match_color_histogram(stylized, photo)
    return np.asarray(stylized, np.float32)


def _check_mode(mode: str) -> None:
    if mode not in PRESERVE_COLORS:
        raise StyleTransferError(
            f"unknown --preserve-colors {mode!r}: choose one of {', '.join(PRESERVE_COLORS)}"
        )
