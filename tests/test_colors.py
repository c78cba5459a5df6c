"""Tests for tf_nst.image.colors (colour preservation after Gatys et al. 2016)."""

import numpy as np
import pytest

from tf_nst.errors import StyleTransferError
from tf_nst.image import colors


def _random_image(seed, height=24, width=32):
    return np.random.default_rng(seed).random((height, width, 3), dtype=np.float32)


def _mean_and_covariance(image):
    pixels = np.asarray(image, dtype=np.float64).reshape(-1, 3)
    return pixels.mean(axis=0), np.cov(pixels, rowvar=False, bias=True)


# --- YIQ ---------------------------------------------------------------------------------------


def test_yiq_round_trip_is_lossless():
    image = _random_image(0)
    round_trip = colors.yiq_to_rgb(colors.rgb_to_yiq(image))
    np.testing.assert_allclose(round_trip, image, atol=1e-6)


def test_yiq_round_trip_starting_from_yiq():
    yiq = colors.rgb_to_yiq(_random_image(1))
    np.testing.assert_allclose(colors.rgb_to_yiq(colors.yiq_to_rgb(yiq)), yiq, atol=1e-6)


def test_yiq_returns_float32_of_same_shape():
    image = _random_image(2, height=5, width=7)
    yiq = colors.rgb_to_yiq(image)
    assert yiq.shape == (5, 7, 3)
    assert yiq.dtype == np.float32


def test_grey_has_no_chroma():
    grey = np.full((3, 4, 3), 0.4, dtype=np.float32)
    yiq = colors.rgb_to_yiq(grey)
    np.testing.assert_allclose(yiq[..., 0], 0.4, atol=1e-6)
    np.testing.assert_allclose(yiq[..., 1:], 0.0, atol=1e-6)


def test_pure_red_has_standard_yiq():
    red = np.zeros((1, 1, 3), dtype=np.float32)
    red[..., 0] = 1.0
    np.testing.assert_allclose(colors.rgb_to_yiq(red)[0, 0], [0.299, 0.595716, 0.211456], atol=1e-6)


# --- luminance ---------------------------------------------------------------------------------


def test_luminance_of_white_is_one_and_of_black_is_zero():
    white = np.ones((4, 6, 3), dtype=np.float32)
    black = np.zeros((4, 6, 3), dtype=np.float32)
    np.testing.assert_allclose(colors.luminance(white), 1.0, atol=1e-6)
    np.testing.assert_allclose(colors.luminance(black), 0.0, atol=1e-7)
    assert colors.luminance(white).shape == (4, 6)


def test_luminance_weights_green_most():
    pure = np.eye(3, dtype=np.float32).reshape(1, 3, 3)  # red, green, blue pixels
    red, green, blue = colors.luminance(pure)[0]
    assert green > red > blue


def test_luminance_image_replicates_y_channel():
    image = _random_image(3)
    replicated = colors.luminance_image(image)
    assert replicated.shape == image.shape
    for channel in range(3):
        np.testing.assert_array_equal(replicated[..., channel], colors.luminance(image))
    assert colors.chroma_distance(replicated, np.full_like(image, 0.5)) < 1e-6


# --- match_luminance ---------------------------------------------------------------------------


def test_match_luminance_gives_target_mean_and_std():
    rng = np.random.default_rng(4)
    style = rng.random((20, 30)).astype(np.float32) * 0.3 + 0.1
    content = rng.random((40, 10)).astype(np.float32) * 0.8 + 0.15
    matched = colors.match_luminance(style, content)
    assert matched.shape == style.shape
    assert matched.mean() == pytest.approx(content.mean(), abs=1e-5)
    assert matched.std() == pytest.approx(content.std(), abs=1e-5)
    # An affine map with positive slope keeps the ordering of the style's pixels.
    np.testing.assert_array_equal(np.argsort(matched, axis=None), np.argsort(style, axis=None))


def test_match_luminance_of_flat_style_is_content_mean():
    style = np.full((5, 5), 0.3, dtype=np.float32)
    content = np.random.default_rng(5).random((6, 7)).astype(np.float32)
    matched = colors.match_luminance(style, content)
    assert np.isfinite(matched).all()
    np.testing.assert_allclose(matched, content.mean(), atol=1e-6)


def test_match_luminance_rejects_colour_images():
    with pytest.raises(StyleTransferError, match="HxW luminance"):
        colors.match_luminance(_random_image(6), np.zeros((4, 4)))


# --- match_color_histogram ---------------------------------------------------------------------


def _correlated_target(seed):
    # A narrow, strongly correlated (mostly bluish-teal) colour cloud in the middle of the cube,
    # so that mapping a uniform source onto it does not clip.
    rng = np.random.default_rng(seed)
    mixing = np.array([[0.3, 0.1, 0.0], [0.2, 0.5, 0.1], [0.1, 0.3, 0.4]])
    pixels = rng.random((30 * 40, 3)) @ mixing.T * 0.5
    return (pixels + [0.3, 0.3, 0.35]).reshape(30, 40, 3).astype(np.float32)


def test_match_color_histogram_matches_mean_and_covariance():
    source = _random_image(7, height=50, width=60)
    target = _correlated_target(8)
    matched = colors.match_color_histogram(source, target)
    assert matched.shape == source.shape
    assert matched.dtype == np.float32
    # The premise of an exact match: nothing was clipped.
    assert matched.min() > 0.0 and matched.max() < 1.0

    matched_mean, matched_covariance = _mean_and_covariance(matched)
    target_mean, target_covariance = _mean_and_covariance(target)
    np.testing.assert_allclose(matched_mean, target_mean, atol=1e-3)
    np.testing.assert_allclose(matched_covariance, target_covariance, atol=1e-3)
    # The statistics moved: before matching they were far from the target's.
    source_mean, source_covariance = _mean_and_covariance(source)
    assert np.abs(source_covariance - target_covariance).max() > 1e-2


def test_match_color_histogram_covariance_is_tight_relative_to_scale():
    # atol=1e-3 alone would pass for tiny covariances; check the relative error too.
    source = _random_image(9, height=40, width=40)
    target = _correlated_target(10)
    matched = colors.match_color_histogram(source, target)
    _, matched_covariance = _mean_and_covariance(matched)
    _, target_covariance = _mean_and_covariance(target)
    relative_error = (
        np.abs(matched_covariance - target_covariance).max() / np.abs(target_covariance).max()
    )
    assert relative_error < 1e-2


def test_blended_color_statistics_are_those_of_the_pooled_pixels():
    generator = np.random.default_rng(4)
    first = generator.random((10, 12, 3)).astype(np.float32) * 0.5
    second = 0.3 + generator.random((20, 6, 3)).astype(np.float32) * 0.7
    # Weights 2:1 and equal pixel counts: pooling the first image twice is the same mixture.
    mean, covariance = colors.blended_color_statistics([first, second], [2.0, 1.0])
    pooled = np.concatenate([first, first, second.reshape(10, 12, 3)]).reshape(-1, 3)
    np.testing.assert_allclose(mean, pooled.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(covariance, np.cov(pooled.T, bias=True), atol=1e-6)
    single = colors.blended_color_statistics([second], [1.0])
    np.testing.assert_allclose(single[1], colors.color_statistics(second)[1], atol=1e-9)


def test_match_color_histogram_of_grayscale_source_is_finite():
    grey = np.repeat(np.random.default_rng(11).random((20, 20, 1)), 3, axis=2).astype(np.float32)
    target = _random_image(12)
    matched = colors.match_color_histogram(grey, target)
    assert np.isfinite(matched).all()
    assert matched.min() >= 0.0 and matched.max() <= 1.0
    # Only one colour direction exists in the source, so the mean still moves to the target's.
    np.testing.assert_allclose(matched.reshape(-1, 3).mean(axis=0), [0.5, 0.5, 0.5], atol=0.1)


def test_match_color_histogram_of_constant_source_is_target_mean():
    flat = np.full((8, 9, 3), [0.9, 0.1, 0.2], dtype=np.float32)
    target = _random_image(13)
    matched = colors.match_color_histogram(flat, target)
    assert np.isfinite(matched).all()
    np.testing.assert_allclose(
        matched, np.broadcast_to(target.mean(axis=(0, 1)), flat.shape), atol=1e-5
    )


def test_match_color_histogram_clips_to_unit_range():
    # Black-and-white target pixels have a larger spread than a uniform source, so the affine map
    # overshoots [0, 1] at the source's extremes.
    source = _random_image(25)
    target = np.random.default_rng(26).integers(0, 2, size=(20, 20, 3)).astype(np.float32)
    matched = colors.match_color_histogram(source, target)
    assert matched.min() == 0.0 and matched.max() == 1.0


def test_match_color_histogram_onto_itself_is_identity():
    image = _correlated_target(14)
    np.testing.assert_allclose(colors.match_color_histogram(image, image), image, atol=1e-3)


def test_match_color_histogram_rejects_bad_epsilon():
    with pytest.raises(StyleTransferError, match="epsilon"):
        colors.match_color_histogram(_random_image(15), _random_image(16), epsilon=0.0)


# --- combine_luminance_with_chroma and chroma_distance -----------------------------------------


def test_combine_keeps_luminance_of_first_and_chroma_of_second():
    rng = np.random.default_rng(17)
    # Mid-grey structure for Y and mild colours for I/Q keep the combination inside [0, 1].
    luminance_source = np.repeat(rng.random((16, 12, 1)) * 0.3 + 0.35, 3, axis=2)
    chroma_source = 0.5 + (rng.random((16, 12, 3)) - 0.5) * 0.2
    combined = colors.combine_luminance_with_chroma(luminance_source, chroma_source)
    assert combined.shape == (16, 12, 3)
    assert combined.min() > 0.0 and combined.max() < 1.0

    assert colors.chroma_distance(combined, chroma_source) < 1e-6
    np.testing.assert_allclose(
        colors.luminance(combined), colors.luminance(luminance_source), atol=1e-6
    )
    # The luminance really came from the first image, not the second.
    assert np.abs(colors.luminance(combined) - colors.luminance(chroma_source)).max() > 0.05


def test_combine_clips_to_unit_range():
    white = np.ones((2, 2, 3), dtype=np.float32)
    red = np.zeros((2, 2, 3), dtype=np.float32)
    red[..., 0] = 1.0
    combined = colors.combine_luminance_with_chroma(white, red)
    assert combined.min() >= 0.0 and combined.max() <= 1.0


def test_chroma_distance_is_zero_for_identical_images():
    image = _random_image(18)
    assert colors.chroma_distance(image, image) == 0.0


def test_chroma_distance_ignores_brightness():
    image = _random_image(19) * 0.5
    brighter = image + 0.3  # adds the same amount to R, G and B: only Y changes
    assert colors.chroma_distance(image, brighter) < 1e-6


def test_chroma_distance_is_positive_for_a_hue_shift():
    image = _random_image(20)
    hue_shifted = image[..., [1, 2, 0]]  # rotate R -> G -> B
    distance = colors.chroma_distance(image, hue_shifted)
    assert isinstance(distance, float)
    assert distance > 0.05


# --- shape validation --------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 4), (4, 4, 4), (4, 4, 1), (2, 4, 4, 3), (0, 4, 3)])
@pytest.mark.parametrize(
    "function",
    [colors.rgb_to_yiq, colors.yiq_to_rgb, colors.luminance, colors.luminance_image],
)
def test_single_image_functions_reject_wrong_shapes(function, shape):
    with pytest.raises(StyleTransferError, match="HxWx3"):
        function(np.zeros(shape, dtype=np.float32))


@pytest.mark.parametrize(
    "function",
    [colors.combine_luminance_with_chroma, colors.chroma_distance, colors.match_color_histogram],
)
def test_pair_functions_reject_wrong_shapes(function):
    with pytest.raises(StyleTransferError, match="HxWx3"):
        function(np.zeros((4, 4), dtype=np.float32), np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(StyleTransferError, match="HxWx3"):
        function(np.zeros((4, 4, 3), dtype=np.float32), np.zeros((4, 4, 2), dtype=np.float32))


@pytest.mark.parametrize("function", [colors.combine_luminance_with_chroma, colors.chroma_distance])
def test_functions_needing_equal_sizes_reject_mismatched_sizes(function):
    with pytest.raises(StyleTransferError, match="same size"):
        function(np.zeros((4, 4, 3), dtype=np.float32), np.zeros((4, 5, 3), dtype=np.float32))


def test_match_color_histogram_allows_different_sizes():
    matched = colors.match_color_histogram(_random_image(21, 10, 10), _random_image(22, 7, 13))
    assert matched.shape == (10, 10, 3)


def test_non_finite_input_is_rejected():
    image = _random_image(23)
    image[0, 0, 0] = np.nan
    with pytest.raises(StyleTransferError, match="NaN"):
        colors.luminance(image)


def test_non_square_images_are_accepted():
    image = _random_image(24, height=3, width=17)
    assert colors.luminance(image).shape == (3, 17)
    assert colors.rgb_to_yiq(image).shape == (3, 17, 3)


# --- network_inputs and restore_colors: the --preserve-colors pipeline ---------------------------


def _pair():
    generator = np.random.default_rng(5)
    return generator.random((6, 8, 3)), generator.random((10, 4, 3)) * 0.5


def test_network_inputs_none_passes_the_images_through_as_float32():
    content, style = _pair()
    network_content, (network_style,) = colors.network_inputs(content, [style], "none")
    assert network_content.dtype == network_style.dtype == np.float32
    np.testing.assert_allclose(network_content, content, atol=1e-7)
    np.testing.assert_allclose(network_style, style, atol=1e-7)


def test_network_inputs_histogram_recolours_only_the_styles():
    content, style = _pair()
    network_content, (network_style,) = colors.network_inputs(content, [style], "histogram")
    np.testing.assert_allclose(network_content, content, atol=1e-7)
    np.testing.assert_array_equal(network_style, colors.match_color_histogram(style, content))


def test_network_inputs_luminance_gives_grey_images_with_the_content_statistics():
    """The grey style has the content luminance's mean (match_luminance, then a clip that leaves
    these mid-range values alone) and three equal channels, as the network needs."""
    content, style = _pair()
    network_content, (network_style,) = colors.network_inputs(content, [style], "luminance")
    for image in (network_content, network_style):
        np.testing.assert_array_equal(image[..., 0], image[..., 2])
    assert network_style[..., 0].mean() == pytest.approx(colors.luminance(content).mean(), 1e-5)


def test_restore_colors_puts_the_content_chroma_back_only_after_luminance():
    content, result = _pair()[0], np.full((6, 8, 3), 0.5)
    np.testing.assert_array_equal(colors.restore_colors(result, content, "none"), result)
    restored = colors.restore_colors(result, content, "luminance")
    assert colors.chroma_distance(restored, content) < colors.chroma_distance(result, content)


def test_an_unknown_preserve_colors_mode_is_refused():
    content, style = _pair()
    with pytest.raises(StyleTransferError, match="unknown --preserve-colors 'sepia'"):
        colors.network_inputs(content, [style], "sepia")
