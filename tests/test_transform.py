"""Tests for tf_nst.networks.transform: the fast style network's size, shapes, range and
serialisation.

Everything but the parameter count uses `width=4` networks (about 6 000 parameters), so each test
takes well under a second.
"""

import keras
import numpy as np
import pytest

from tf_nst.errors import StyleTransferError
from tf_nst.networks.transform import (
    InstanceNormalization,
    build_transform_network,
    count_flops,
    layers_by_name,
    transform,
)

# Johnson et al.'s network (their supplementary material) has 1.68 M parameters.
JOHNSON_PARAMETERS = 1.68e6
# Odd sizes, a 1-pixel image, sizes below the network's minimum and a batch over 1.
INPUT_SHAPES = [(1, 1, 1, 3), (1, 7, 13, 3), (2, 37, 53, 3), (3, 64, 48, 3), (1, 5, 101, 3)]


@pytest.fixture(scope="module")
def tiny_network():
    keras.utils.set_random_seed(0)
    return build_transform_network(width=4)


def test_width_32_has_johnsons_parameter_count():
    """Within 1% of 1.68 M: ours drops the biases that instance norm cancels (1 600 of them)."""
    count = build_transform_network(width=32).count_params()
    assert abs(count - JOHNSON_PARAMETERS) / JOHNSON_PARAMETERS < 0.01, count


def test_width_16_costs_about_a_quarter():
    """Every inner convolution has width^2 weights and multiply-adds; only the RGB stem and
    output layers scale with the width alone, so the ratio is just above 1/4."""
    parameters = (
        build_transform_network(16).count_params() / build_transform_network(32).count_params()
    )
    flops = count_flops(512, 512, 16) / count_flops(512, 512, 32)
    assert 0.24 < parameters < 0.27
    assert 0.24 < flops < 0.30


@pytest.mark.parametrize("shape", INPUT_SHAPES, ids=lambda shape: "x".join(map(str, shape)))
def test_any_input_size_gives_the_same_shape_in_unit_range(tiny_network, shape):
    images = np.random.default_rng(1).random(shape, dtype=np.float32)
    stylized = np.asarray(tiny_network(images))
    assert stylized.shape == shape
    assert stylized.dtype == np.float32
    assert np.all((stylized >= 0.0) & (stylized <= 1.0))


def test_mixed_precision_output_is_float32_and_close(tiny_network):
    network = build_transform_network(width=4, precision="bf16")
    network.set_weights(tiny_network.get_weights())
    images = np.random.default_rng(2).random((2, 37, 53, 3), dtype=np.float32)
    stylized = np.asarray(network(images))
    assert stylized.dtype == np.float32
    # bfloat16 keeps 8 bits of mantissa: a relative error of 2^-8 per operation.
    assert np.max(np.abs(stylized - np.asarray(tiny_network(images)))) < 0.05


def test_keras_file_round_trips_with_safe_mode(tiny_network, tmp_path):
    path = tmp_path / "network.keras"
    tiny_network.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    images = np.random.default_rng(3).random((2, 21, 30, 3), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(reloaded(images)), np.asarray(tiny_network(images)))


def test_architecture_has_no_transposed_convolutions_or_lambdas(tiny_network):
    kinds = {type(layer).__name__ for layer in tiny_network.layers}
    assert "Conv2DTranspose" not in kinds and "Lambda" not in kinds
    assert sum(isinstance(layer, InstanceNormalization) for layer in tiny_network.layers) == 15


def test_constant_image_gives_a_flat_output(tiny_network):
    """Instance norm maps a constant feature map to its shift beta, so a flat photo gives a flat
    output whatever the convolution weights: no border or padding artefact appears."""
    stylized = np.asarray(tiny_network(np.full((1, 16, 16, 3), 0.3, np.float32)))
    assert np.allclose(stylized[..., 0], stylized[0, 0, 0, 0], atol=1e-6)


def test_recorded_statistics_reproduce_the_output(tiny_network):
    """The norms' statistics are an explicit input: recorded on the images and given back, they
    give the model's own output; given another image's, they change it."""
    images = np.random.default_rng(4).random((2, 40, 44, 3), dtype=np.float32)
    layers = layers_by_name(tiny_network)
    recorded_output, recorded = transform(layers, images, record=True)
    assert len(recorded) == 15
    plain = np.asarray(tiny_network(images))
    np.testing.assert_allclose(np.asarray(recorded_output), plain, atol=1e-6)
    fixed = np.asarray(transform(layers, images, statistics=recorded))
    np.testing.assert_allclose(fixed, plain, atol=1e-6)
    _, other = transform(layers, images[::-1].copy(), record=True)
    swapped = np.asarray(transform(layers, images, statistics=other))
    assert np.abs(swapped - plain).mean() > 1e-3


@pytest.mark.parametrize("width", [0, -3, 2.5])
def test_bad_width_is_a_one_line_error(width):
    with pytest.raises(StyleTransferError, match="--width"):
        build_transform_network(width)
