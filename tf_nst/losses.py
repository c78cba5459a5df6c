"""Loss functions: pure functions of tensors, with sizes read from `tf.shape`.

Two normalisations are offered (README.md, "Loss formulas", gives every formula):

* "normalized" (the default): each style layer's squared Gram error is divided by the squared norm
  of its target Gram, and each content layer's squared feature error by the squared norm of its
  target features. Both are then dimensionless, so the same weights work whatever the backbone's
  activation scale (VGG19 or VGG16, any weights file) and whatever the image size.
* "tutorial": exactly the objective of the TensorFlow tutorial "Neural style transfer": mean
  squared errors, Gram divided by the number of locations, `tf.image.total_variation`.

Every loss is per example: it returns one value per image of the batch, `[batch]`, and the caller
reduces. The optimisation has a batch of one; a distributed training step divides the sum by the
global batch (`tf.nn.compute_average_loss`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """The weights and normalisation of the total loss.

    Attributes:
        content: Weight of the content term.
        style: Weight of the style term.
        total_variation: Weight of the total-variation term.
        style_layers: Style layer name to its weight inside the style term.
        content_layers: Content layer names; each weighs 1 / their count.
        normalization: "normalized" or "tutorial".
    """

    content: float
    style: float
    total_variation: float
    style_layers: Mapping[str, float]
    content_layers: tuple[str, ...]
    normalization: str = "normalized"


def gram_matrix(features: tf.Tensor) -> tf.Tensor:
    """Returns the Gram matrices of a batch of feature maps, divided by the number of locations.

    Computed as one batched matmul of the flattened features, with a hand-written gradient: the
    `einsum` form and its two-matmul autodiff gradient were a large share of a step in the
    profile, and this form halves their time (benchmarks/README.md, "Gram matrix").

    Args:
        features: `[batch, height, width, channels]`.

    Returns:
        `[batch, channels, channels]`: G[b, c, d] = sum_ij F[b, i, j, c] F[b, i, j, d] / (H W).
    """
    features = tf.cast(features, tf.float32)
    shape = tf.shape(features)
    flat = tf.reshape(features, [shape[0], shape[1] * shape[2], shape[3]])
    return _flat_gram(flat, tf.cast(shape[1] * shape[2], tf.float32))


@tf.custom_gradient
def _flat_gram(flat: tf.Tensor, locations: tf.Tensor):
    """G = Fᵀ F / M for F of shape [batch, M, C]; dL/dF = F (U + Uᵀ) / M for upstream U."""
    gram = tf.matmul(flat, flat, transpose_a=True) / locations

    def gradient(upstream):
        symmetric = upstream + tf.transpose(upstream, [0, 2, 1])
        return tf.matmul(flat, symmetric) / locations, tf.zeros_like(locations)

    return gram, gradient


def style_layer_loss(gram: tf.Tensor, target_gram: tf.Tensor, normalization: str) -> tf.Tensor:
    """Returns one layer's style error of each example, `[batch]`.

    "normalized": sum((G - A)^2) / sum(A^2). "tutorial": mean((G - A)^2). A target of batch 1
    (`[1, C, C]`) is compared with every example.
    """
    squared_error = tf.square(gram - target_gram)
    if normalization == "tutorial":
        return tf.reduce_mean(squared_error, axis=[-2, -1])
    return tf.reduce_sum(squared_error, axis=[-2, -1]) / (
        tf.reduce_sum(tf.square(target_gram), axis=[-2, -1]) + 1e-12
    )


def content_layer_loss(features: tf.Tensor, target: tf.Tensor, normalization: str) -> tf.Tensor:
    """Returns one layer's content error of each example, `[batch]`.

    "normalized": sum((F - P)^2) / sum(P^2). "tutorial": mean((F - P)^2).
    """
    features = tf.cast(features, tf.float32)
    target = tf.cast(target, tf.float32)
    squared_error = tf.square(features - target)
    if normalization == "tutorial":
        return tf.reduce_mean(squared_error, axis=[1, 2, 3])
    return tf.reduce_sum(squared_error, axis=[1, 2, 3]) / (
        tf.reduce_sum(tf.square(target), axis=[1, 2, 3]) + 1e-12
    )


def total_variation_loss(images: tf.Tensor, normalization: str) -> tf.Tensor:
    """Returns the total variation of each image of a batch, `[batch]`.

    "normalized": mean of squared neighbour differences, vertical plus horizontal, so it does not
    grow with the image size. "tutorial": `tf.image.total_variation`, the sum of absolute neighbour
    differences.
    """
    if normalization == "tutorial":
        return tf.image.total_variation(images)
    vertical = images[:, 1:, :, :] - images[:, :-1, :, :]
    horizontal = images[:, :, 1:, :] - images[:, :, :-1, :]
    return tf.reduce_mean(tf.square(vertical), axis=[1, 2, 3]) + tf.reduce_mean(
        tf.square(horizontal), axis=[1, 2, 3]
    )


def total_loss(
    features: Mapping[str, tf.Tensor],
    content_targets: Mapping[str, tf.Tensor],
    style_gram_targets: Mapping[str, tf.Tensor],
    images: tf.Tensor,
    weights: LossWeights,
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Returns the weighted total loss of each example and its named terms.

    Args:
        features: The extractor's output for `images`.
        content_targets: Content layer name to target feature map.
        style_gram_targets: Style layer name to target Gram matrix.
        images: The images being optimised, `[batch, height, width, 3]` in [0, 1].
        weights: The weights and normalisation.

    Returns:
        `(loss, terms)`, each `[batch]`: `terms` maps "style/LAYER", "content/LAYER" and "tv" to
        their weighted contributions, which sum to `loss`.
    """
    terms = style_terms(features, style_gram_targets, weights)
    content_share = 1.0 / len(weights.content_layers)
    for name in weights.content_layers:
        error = content_layer_loss(features[name], content_targets[name], weights.normalization)
        terms[f"content/{name}"] = weights.content * content_share * error
    terms["tv"] = weights.total_variation * total_variation_loss(images, weights.normalization)
    return tf.add_n(list(terms.values())), terms


def style_terms(
    features: Mapping[str, tf.Tensor],
    style_gram_targets: Mapping[str, tf.Tensor],
    weights: LossWeights,
    share: float = 1.0,
    prefix: str = "style",
) -> dict[str, tf.Tensor]:
    """The weighted style term of each style layer, `[batch]` each, named "PREFIX/LAYER".

    `share` scales `weights.style`: the coarse style terms of network training
    (`coarse_style_weight`) are the same Gram errors on the output reduced to half its size.
    """
    terms = {}
    for name, layer_weight in weights.style_layers.items():
        error = style_layer_loss(
            gram_matrix(features[name]), style_gram_targets[name], weights.normalization
        )
        # The weight last: a product of Python floats past float32's range would be cast with a
        # warning, where a float32 tensor overflows to inf as the run's non-finite check expects.
        terms[f"{prefix}/{name}"] = weights.style * (share * layer_weight * error)
    return terms


def group_totals(terms: Mapping[str, float]) -> dict[str, float]:
    """Sums named terms by their prefix: {"style": ..., "content": ..., "tv": ...}."""
    totals: dict[str, float] = {}
    for name, value in terms.items():
        group = name.split("/", 1)[0]
        totals[group] = totals.get(group, 0.0) + float(value)
    return totals


# --- the any-style (AdaIN) losses --------------------------------------------------------------


def statistics_style_loss(
    features: tf.Tensor, target_mean: tf.Tensor, target_deviation: tf.Tensor
) -> tf.Tensor:
    """One layer's AdaIN style error of each example, `[batch]`.

    mean_c((mu_c(F) - mu_c(S))^2) + mean_c((sigma_c(F) - sigma_c(S))^2), with mu and sigma the
    per-channel mean and deviation over the locations (Huang and Belongie 2017, eq. 12; squared
    errors averaged over the channels, as their code's `MSELoss` does).

    Args:
        features: `[batch, height, width, channels]`.
        target_mean: `[batch, channels]`: the painting's means.
        target_deviation: `[batch, channels]`: its deviations.
    """
    features = tf.cast(features, tf.float32)
    mean, variance = tf.nn.moments(features, axes=[1, 2])
    deviation = tf.sqrt(variance + 1e-5)
    return tf.reduce_mean(tf.square(mean - target_mean), axis=-1) + tf.reduce_mean(
        tf.square(deviation - target_deviation), axis=-1
    )


def feature_squared_error(features: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Mean squared error of feature maps of each example, `[batch]` (AdaIN's content loss)."""
    difference = tf.cast(features, tf.float32) - tf.cast(target, tf.float32)
    return tf.reduce_mean(tf.square(difference), axis=[1, 2, 3])


def any_style_loss(
    features: Mapping[str, tf.Tensor],
    content_target: tf.Tensor,
    style_statistics: Mapping[str, tuple[tf.Tensor, tf.Tensor]],
    images: tf.Tensor,
    weights: LossWeights,
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """The AdaIN training loss of each example and its named terms.

    content: the stylized image's content-layer features against the AdaIN target (the decoder's
    input); style: `statistics_style_loss` per style layer against the painting's statistics;
    tv: `total_variation_loss` (AdaIN uses none: weight 0).

    Returns:
        `(loss, terms)`, each `[batch]`; the terms ("style/LAYER", "content/LAYER", "tv") sum to
        `loss`.
    """
    terms = {}
    for name, layer_weight in weights.style_layers.items():
        mean, deviation = style_statistics[name]
        error = statistics_style_loss(features[name], mean, deviation)
        # The layers' errors are summed in AdaIN; our layer weights average them: times count.
        terms[f"style/{name}"] = weights.style * (layer_weight * len(weights.style_layers) * error)
    (content_layer,) = weights.content_layers
    terms[f"content/{content_layer}"] = weights.content * feature_squared_error(
        features[content_layer], content_target
    )
    terms["tv"] = weights.total_variation * total_variation_loss(images, "normalized")
    return tf.add_n(list(terms.values())), terms
