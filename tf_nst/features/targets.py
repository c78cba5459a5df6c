"""The style targets both paths match: the blended Gram matrices of the style images."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from tf_nst.image.decoding import resize
from tf_nst.losses import gram_matrix
from tf_nst.sizes import working_shape


def style_gram_targets(
    extractor: keras.Model,
    styles: Sequence[np.ndarray],
    long_side: int,
    layers: Sequence[str],
    blend: Sequence[float],
) -> Mapping[str, tf.Tensor]:
    """Returns each style layer's target Gram, `sum_k blend[k] * gram(features of style k)`.

    Each style image is resized (Lanczos, `tf_nst.image.decoding.resize`) so that its long side
    is `long_side`, and its features are dropped as soon as its Grams are added: a style at a
    large size has large activations.

    Args:
        extractor: The feature extractor; it must return `layers`.
        styles: The style images, float `[height, width, 3]` RGB in [0, 1].
        long_side: The long side of every style image in the loss, in pixels.
        layers: The style layers.
        blend: One weight per style image, summing to 1.

    Returns:
        Layer name to `[1, channels, channels]`.
    """
    targets: dict[str, tf.Tensor] = {}
    for style, weight in zip(styles, blend, strict=True):
        height, width = working_shape(np.shape(style), long_side)
        pixels = resize(np.asarray(style, np.float32), height, width)[None]
        features = extractor(pixels, training=False)
        for name in layers:
            gram = weight * gram_matrix(features[name])
            targets[name] = gram if name not in targets else targets[name] + gram
        del features
    return targets
