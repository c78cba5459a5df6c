"""Tests for tf_nst.losses: Gram matrices, the loss terms and both normalisations.

Every expectation is derived by hand in the test's docstring or written out independently of the
module (with numpy or the TensorFlow tutorial's formula), never copied from a run.
"""

import numpy as np
import pytest
import tensorflow as tf

from tf_nst import losses
from tf_nst.features.targets import style_gram_targets

NORMALIZATIONS = ("normalized", "tutorial")


def _random_features(seed, shape):
    return tf.constant(np.random.default_rng(seed).random(shape, dtype=np.float32))


def _numpy_gram(features):
    """The tutorial's Gram of one `[height, width, channels]` map: F^T F / (H W)."""
    height, width, channels = features.shape
    flat = np.asarray(features, np.float64).reshape(height * width, channels)
    return flat.T @ flat / (height * width)


# --- gram_matrix ---------------------------------------------------------------------------------


def test_gram_of_known_tensor_equals_hand_computed_value():
    """A 2x2 map with 2 channels; the channel vectors at the four locations are

        (1, 2), (3, 0), (-1, 1), (0, 2).

    G[c, d] = sum over locations of F[c] F[d], divided by H W = 4:
        G[0, 0] = (1 + 9 + 1 + 0) / 4 = 11 / 4 = 2.75
        G[0, 1] = (2 + 0 - 1 + 0) / 4 =  1 / 4 = 0.25 = G[1, 0]
        G[1, 1] = (4 + 0 + 1 + 4) / 4 =  9 / 4 = 2.25
    """
    features = tf.constant([[[[1.0, 2.0], [3.0, 0.0]], [[-1.0, 1.0], [0.0, 2.0]]]])
    assert features.shape == (1, 2, 2, 2)
    gram = losses.gram_matrix(features)
    np.testing.assert_allclose(gram.numpy(), [[[2.75, 0.25], [0.25, 2.25]]], rtol=1e-6)


def test_gram_divides_by_locations_not_by_channels():
    """A 1x3 map of ones with 2 channels: every product is 1, three locations sum to 3, and
    dividing by H W = 3 gives exactly 1 everywhere (dividing by C = 2 would give 1.5).
    """
    gram = losses.gram_matrix(tf.ones([1, 1, 3, 2]))
    np.testing.assert_allclose(gram.numpy(), np.ones([1, 2, 2]), rtol=1e-6)


def test_gram_is_symmetric_and_computed_per_batch_item():
    """G = F^T F / (H W) is symmetric; each batch item's Gram depends only on that item."""
    features = _random_features(1, (3, 4, 5, 6))
    gram = losses.gram_matrix(features).numpy()
    assert gram.shape == (3, 6, 6)
    np.testing.assert_allclose(gram, np.transpose(gram, (0, 2, 1)), rtol=1e-6)
    for index in range(3):
        np.testing.assert_allclose(gram[index], _numpy_gram(features[index]), rtol=1e-5)
        alone = losses.gram_matrix(features[index : index + 1]).numpy()[0]
        np.testing.assert_allclose(gram[index], alone, rtol=1e-6)


def test_gram_casts_bfloat16_features_to_float32():
    features = tf.cast(_random_features(2, (1, 3, 3, 4)), tf.bfloat16)
    assert losses.gram_matrix(features).dtype == tf.float32


def _only(value) -> float:
    """The one per-example value of a batch of one (every loss returns `[batch]`)."""
    value = np.asarray(value)
    assert value.shape == (1,), f"expected one value per example of a batch of 1, got {value.shape}"
    return float(value[0])


# --- total variation -----------------------------------------------------------------------------


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_total_variation_of_constant_image_is_zero(normalization):
    """Every neighbour difference of a constant image is 0, so both the sum of absolute
    differences and the mean of squared differences are 0.
    """
    images = tf.fill([2, 5, 7, 3], 0.37)
    np.testing.assert_array_equal(losses.total_variation_loss(images, normalization), [0.0, 0.0])


def _two_by_two_image():
    """The 2x2 image [[0.0, 0.2], [0.5, 1.0]], the same value in all 3 channels."""
    grey = tf.constant([[0.0, 0.2], [0.5, 1.0]])
    return tf.repeat(grey[None, :, :, None], 3, axis=-1)


def test_total_variation_tutorial_of_known_image():
    """The image [[0.0, 0.2], [0.5, 1.0]] in each of 3 channels.

    Vertical differences: 0.5 - 0.0 = 0.5 and 1.0 - 0.2 = 0.8.
    Horizontal differences: 0.2 - 0.0 = 0.2 and 1.0 - 0.5 = 0.5.
    `tf.image.total_variation` sums their absolute values over pixels and channels:
    3 * (0.5 + 0.8 + 0.2 + 0.5) = 3 * 2.0 = 6.0.
    """
    value = losses.total_variation_loss(_two_by_two_image(), "tutorial")
    assert _only(value) == pytest.approx(6.0, rel=1e-6)


def test_total_variation_normalized_of_known_image():
    """The same image: mean of squared vertical differences (0.25 + 0.64) / 2 = 0.445, plus mean
    of squared horizontal differences (0.04 + 0.25) / 2 = 0.145, gives 0.59. Means over channels
    of equal values do not change them, so the channel count does not enter.
    """
    value = losses.total_variation_loss(_two_by_two_image(), "normalized")
    assert _only(value) == pytest.approx(0.59, rel=1e-6)


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_every_loss_is_per_example(normalization):
    """A batch of the known image (TV 6.0 tutorial, 0.59 normalized) and a constant image (TV 0)
    gives each its own value, not their mean; so do the content and style terms, where the second
    example equals its target and the first does not.
    """
    batch = tf.concat([_two_by_two_image(), tf.zeros([1, 2, 2, 3])], axis=0)
    expected = {"tutorial": 6.0, "normalized": 0.59}[normalization]
    np.testing.assert_allclose(
        losses.total_variation_loss(batch, normalization), [expected, 0.0], rtol=1e-6
    )
    target = _random_features(9, (2, 3, 3, 4))
    features = tf.concat([2.0 * target[:1], target[1:]], axis=0)
    content = losses.content_layer_loss(features, target, normalization).numpy()
    assert content.shape == (2,) and content[0] > 0.0 and content[1] == 0.0
    style = losses.style_layer_loss(
        losses.gram_matrix(features), losses.gram_matrix(target), normalization
    ).numpy()
    assert style.shape == (2,) and style[0] > 0.0 and style[1] == pytest.approx(0.0, abs=1e-6)


# --- content and style layer losses --------------------------------------------------------------


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_content_loss_of_identical_features_is_zero(normalization):
    features = _random_features(3, (1, 4, 6, 8))
    assert _only(losses.content_layer_loss(features, features, normalization)) == 0.0


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_content_loss_of_different_features_is_positive(normalization):
    features = _random_features(4, (1, 4, 6, 8))
    target = _random_features(5, (1, 4, 6, 8))
    assert _only(losses.content_layer_loss(features, target, normalization)) > 0.0


def test_content_loss_normalized_of_known_features():
    """F = 2 P with P all ones: sum((F - P)^2) / sum(P^2) = N * 1 / (N * 1) = 1."""
    target = tf.ones([1, 2, 3, 4])
    value = losses.content_layer_loss(2.0 * target, target, "normalized")
    assert _only(value) == pytest.approx(1.0, rel=1e-6)


def test_normalized_style_loss_is_scale_invariant_and_tutorial_is_not():
    """Scaling both feature maps by s = 90 (as the ../shared VGG16 file scales torchvision's
    activations) scales every Gram entry by s^2, since G is quadratic in F.

    normalized: sum((s^2 G - s^2 A)^2) / sum((s^2 A)^2) = s^4 sum((G - A)^2) / (s^4 sum(A^2)), the
    same loss. tutorial: mean((s^2 G - s^2 A)^2) = s^4 mean((G - A)^2), so the loss grows by
    90^4 = 65,610,000.
    """
    features = _random_features(6, (1, 5, 5, 4))
    target_features = _random_features(7, (1, 5, 5, 4))
    scale = 90.0

    def loss(normalization, factor):
        gram = losses.gram_matrix(factor * features)
        target = losses.gram_matrix(factor * target_features)
        return _only(losses.style_layer_loss(gram, target, normalization))

    assert loss("normalized", 1.0) > 0.0
    assert loss("normalized", scale) == pytest.approx(loss("normalized", 1.0), rel=1e-4)
    assert loss("tutorial", scale) == pytest.approx(loss("tutorial", 1.0) * scale**4, rel=1e-3)


def test_normalized_style_loss_of_known_grams():
    """G = 2 A: sum((2A - A)^2) / sum(A^2) = sum(A^2) / sum(A^2) = 1, whatever A."""
    target = losses.gram_matrix(_random_features(8, (1, 3, 3, 5)))
    value = losses.style_layer_loss(2.0 * target, target, "normalized")
    assert _only(value) == pytest.approx(1.0, rel=1e-5)


# --- total_loss ----------------------------------------------------------------------------------

STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1")
CONTENT_LAYERS = ("block2_conv2", "block3_conv1")
SHAPES = {
    "block1_conv1": (1, 8, 12, 4),
    "block2_conv1": (1, 4, 6, 8),
    "block2_conv2": (1, 4, 6, 8),
    "block3_conv1": (1, 2, 3, 16),
}


def _loss_inputs():
    """Features of the image, content targets, style Gram targets and the image itself."""
    features = {
        name: _random_features(10 + index, shape)
        for index, (name, shape) in enumerate(SHAPES.items())
    }
    content_targets = {
        name: _random_features(20 + index, SHAPES[name])
        for index, name in enumerate(CONTENT_LAYERS)
    }
    style_grams = {
        name: losses.gram_matrix(_random_features(30 + index, SHAPES[name]))
        for index, name in enumerate(STYLE_LAYERS)
    }
    images = _random_features(40, (1, 16, 24, 3))
    return features, content_targets, style_grams, images


def _weights(normalization, style_layer_weights=None):
    style_layer_weights = style_layer_weights or (1.0 / len(STYLE_LAYERS),) * len(STYLE_LAYERS)
    return losses.LossWeights(
        content=2.5,
        style=0.7,
        total_variation=0.01,
        style_layers=dict(zip(STYLE_LAYERS, style_layer_weights, strict=True)),
        content_layers=CONTENT_LAYERS,
        normalization=normalization,
    )


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_total_loss_terms_have_the_named_keys_and_sum_to_the_loss(normalization):
    features, content_targets, style_grams, images = _loss_inputs()
    loss, terms = losses.total_loss(
        features, content_targets, style_grams, images, _weights(normalization)
    )
    expected_keys = (
        {f"style/{name}" for name in STYLE_LAYERS}
        | {f"content/{name}" for name in CONTENT_LAYERS}
        | {"tv"}
    )
    assert set(terms) == expected_keys
    assert all(_only(value) > 0.0 for value in terms.values())
    assert _only(loss) == pytest.approx(sum(_only(value) for value in terms.values()), rel=1e-6)


def test_total_loss_tutorial_equals_the_tensorflow_tutorial_formula():
    """The TensorFlow tutorial "Neural style transfer" writes the objective as

        style_weight / num_style_layers * sum_l mean((G_l - A_l)^2)
        + content_weight / num_content_layers * sum_l mean((F_l - P_l)^2)
        + total_variation_weight * tf.image.total_variation(image)

    with G = einsum("bijc,bijd->bcd", F, F) / (H W). Here it is written out with numpy (only the
    TV term uses TensorFlow, as the tutorial does), with equal style-layer weights 1 / 3.
    """
    features, content_targets, style_grams, images = _loss_inputs()
    style_weight, content_weight, tv_weight = 0.7, 2.5, 0.01

    style_sum = sum(
        np.mean((_numpy_gram(features[name][0]) - style_grams[name].numpy()[0]) ** 2)
        for name in STYLE_LAYERS
    )
    content_sum = sum(
        np.mean((features[name].numpy() - content_targets[name].numpy()) ** 2)
        for name in CONTENT_LAYERS
    )
    expected = (
        style_weight / len(STYLE_LAYERS) * style_sum
        + content_weight / len(CONTENT_LAYERS) * content_sum
        + tv_weight * float(tf.image.total_variation(images[0]))
    )
    loss, _ = losses.total_loss(
        features, content_targets, style_grams, images, _weights("tutorial")
    )
    assert _only(loss) == pytest.approx(expected, rel=1e-5)


def test_total_loss_applies_style_layer_weights():
    """A style layer of weight 0 contributes 0; doubling a layer's weight doubles its term."""
    features, content_targets, style_grams, images = _loss_inputs()
    _, base = losses.total_loss(
        features, content_targets, style_grams, images, _weights("normalized", (1.0, 1.0, 1.0))
    )
    _, changed = losses.total_loss(
        features, content_targets, style_grams, images, _weights("normalized", (0.0, 2.0, 1.0))
    )
    assert _only(changed["style/block1_conv1"]) == 0.0
    assert _only(changed["style/block2_conv1"]) == pytest.approx(
        2.0 * _only(base["style/block2_conv1"]), rel=1e-6
    )
    assert _only(changed["tv"]) == pytest.approx(_only(base["tv"]), rel=1e-6)


def test_group_totals_sums_terms_by_prefix():
    terms = {"style/a": 1.0, "style/b": 2.0, "content/c": 4.0, "tv": 8.0}
    assert losses.group_totals(terms) == {"style": 3.0, "content": 4.0, "tv": 8.0}


# --- style targets (tf_nst.features.targets) ------------------------------------------------------


def _styles_and_extractor():
    """Two style images, and an "extractor" that returns fixed feature maps for each of them
    (told apart by their first pixel) and records the sizes it was called at."""
    styles = [np.full((20, 30, 3), 0.25, np.float32), np.full((30, 20, 3), 0.75, np.float32)]
    features = {
        0.25: {
            name: _random_features(50 + index, SHAPES[name])
            for index, name in enumerate(STYLE_LAYERS)
        },
        0.75: {
            name: _random_features(60 + index, SHAPES[name])
            for index, name in enumerate(STYLE_LAYERS)
        },
    }
    calls = []

    def extractor(pixels, training=False):
        calls.append(tuple(pixels.shape))
        return features[round(float(pixels[0, 0, 0, 0]), 2)]

    return styles, extractor, features, calls


def test_style_targets_blend_one_zero_is_the_first_style_gram():
    """sum_k blend[k] gram(F_k) with blend (1, 0) is 1 * gram(F_1) + 0 * gram(F_2) = gram(F_1);
    each style is resized to the given long side (30 -> 15: 10x15 and 15x10)."""
    styles, extractor, features, calls = _styles_and_extractor()
    targets = style_gram_targets(extractor, styles, 15, STYLE_LAYERS, (1.0, 0.0))
    assert calls == [(1, 10, 15, 3), (1, 15, 10, 3)]
    assert set(targets) == set(STYLE_LAYERS)
    for name in STYLE_LAYERS:
        np.testing.assert_allclose(
            targets[name].numpy(), losses.gram_matrix(features[0.25][name]).numpy(), rtol=1e-6
        )


def test_style_targets_even_blend_is_the_average_gram():
    """Blend (0.5, 0.5) gives (gram(F_1) + gram(F_2)) / 2, computed here with numpy."""
    styles, extractor, features, _ = _styles_and_extractor()
    targets = style_gram_targets(extractor, styles, 15, STYLE_LAYERS, (0.5, 0.5))
    for name in STYLE_LAYERS:
        average = (_numpy_gram(features[0.25][name][0]) + _numpy_gram(features[0.75][name][0])) / 2
        np.testing.assert_allclose(targets[name].numpy()[0], average, rtol=1e-5)


def test_gram_gradient_matches_autodiff_of_the_einsum_definition():
    """The hand-written gradient F (U + Uᵀ) / M must equal TensorFlow's own derivative of
    einsum("bijc,bijd->bcd") / (H W), for an arbitrary (non-symmetric) upstream weighting."""
    generator = np.random.default_rng(4)
    features = tf.constant(generator.normal(size=(2, 5, 3, 4)), tf.float32)
    weighting = tf.constant(generator.normal(size=(2, 4, 4)), tf.float32)

    def reference(tensor):
        return tf.einsum("bijc,bijd->bcd", tensor, tensor) / 15.0

    grads = []
    for function in (losses.gram_matrix, reference):
        with tf.GradientTape() as tape:
            tape.watch(features)
            value = tf.reduce_sum(function(features) * weighting)
        grads.append(tape.gradient(value, features).numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-5, atol=1e-6)
