"""Tests for tf_nst.features.extractor: layer names, preprocessing, the extractor and weight
resolution."""

import os
import socket
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_nst.config import StyleConfig
from tf_nst.errors import StyleTransferError
from tf_nst.features.extractor import (
    VGGPreprocess,
    build_feature_extractor,
    layer_names,
    minimum_input_side,
    validate_layers,
)
from tf_nst.features.weights_file import check_weights_file, keras_weights_name

TINY_LAYERS = (
    "block4_conv2",
    "block1_conv1",
    "block2_conv1",
    "block3_conv1",
    "block4_conv1",
    "block5_conv1",
)


def _images(seed, shape):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def _relative_error(actual, expected):
    """max |actual - expected| / max |expected|, the error relative to the map's scale."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    return np.max(np.abs(actual - expected)) / np.max(np.abs(expected))


def _tiny(layers=TINY_LAYERS, **kwargs):
    return build_feature_extractor(layers, "vgg19", None, width_scale=1 / 16, **kwargs)


# --- layer names ---------------------------------------------------------------------------------


def test_layer_names_of_vgg16_are_its_13_convolutions():
    """VGG16 has blocks of 2, 2, 3, 3, 3 convolutions: 13 in all."""
    names = layer_names("vgg16")
    assert len(names) == 13
    assert names[:3] == ("block1_conv1", "block1_conv2", "block2_conv1")
    assert names[-1] == "block5_conv3"
    assert "block5_conv4" not in names


def test_layer_names_of_vgg19_are_its_16_convolutions():
    """VGG19 has blocks of 2, 2, 4, 4, 4 convolutions: 16 in all."""
    names = layer_names("vgg19")
    assert len(names) == 16
    assert len(set(names)) == 16
    assert names[-1] == "block5_conv4"
    assert "block3_conv4" in names


def test_unknown_backbone_raises():
    with pytest.raises(StyleTransferError, match="resnet50") as raised:
        layer_names("resnet50")
    assert "vgg16" in str(raised.value)
    assert "vgg19" in str(raised.value)


def test_unknown_layer_raises_listing_valid_names():
    with pytest.raises(StyleTransferError) as raised:
        validate_layers("vgg19", ["block1_conv1", "block9_conv1"])
    message = str(raised.value)
    assert "block9_conv1" in message
    assert all(name in message for name in layer_names("vgg19"))
    assert "\n" not in message


def test_vgg19_only_layer_with_vgg16_gives_the_backbone_hint():
    with pytest.raises(StyleTransferError, match="pass --backbone vgg19") as raised:
        validate_layers("vgg16", ["block5_conv4"])
    assert "block5_conv3" in str(raised.value)


def test_validate_layers_keeps_the_given_order():
    assert validate_layers("vgg16", ["block3_conv1", "block1_conv1"]) == (
        "block3_conv1",
        "block1_conv1",
    )


def test_minimum_input_side_is_two_to_the_pooling_count():
    """A layer of block N sits behind N - 1 halvings, so it needs 2^(N - 1) pixels to be 1x1."""
    assert minimum_input_side(["block1_conv2"]) == 1
    assert minimum_input_side(["block1_conv1", "block3_conv1"]) == 4
    assert minimum_input_side(TINY_LAYERS) == 16


# --- preprocessing -------------------------------------------------------------------------------


def test_preprocess_equals_keras_vgg19_preprocess_input():
    """The layer must map [0, 1] RGB exactly as Keras' VGG19 expects 0..255 RGB to be mapped."""
    images = _images(0, (2, 5, 7, 3))
    expected = keras.applications.vgg19.preprocess_input(images.copy() * 255.0)
    actual = VGGPreprocess()(tf.constant(images))
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=1e-6, atol=1e-4)


# --- the extractor (tiny random VGG19) -----------------------------------------------------------


@pytest.mark.parametrize("height, width", [(32, 48), (40, 40)])
def test_tiny_extractor_returns_float32_maps_of_the_right_sizes(tiny_extractor, height, width):
    """A map of block N has passed N - 1 floor-halving poolings: floor(H / 2^(N - 1)) rows.

    For 40 px that is 40, 20, 10, 5 (blocks 1 to 4, the default layers); for 32 x 48 it is
    32 x 48 down to 4 x 6. The channel count is 1/16 of VGG's 64, 128, 256, 512, 512.
    """
    features = tiny_extractor(_images(1, (2, height, width, 3)))
    assert isinstance(features, dict)
    config = StyleConfig()
    assert set(features) == set(config.content_layers + config.style_layers)
    channels = {1: 4, 2: 8, 3: 16, 4: 32, 5: 32}
    for name, feature_map in features.items():
        block = int(name[len("block")])
        assert feature_map.dtype == "float32"
        assert tuple(feature_map.shape) == (
            2,
            height // 2 ** (block - 1),
            width // 2 ** (block - 1),
            channels[block],
        )


def test_extractor_graph_is_truncated_at_the_deepest_requested_layer():
    """Asking for block2_conv1 only builds preprocess, block1's two convolutions and pool, and
    block2_conv1: nothing deeper."""
    model = _tiny(("block2_conv1",))
    names = [layer.name for layer in model.layers if layer.name != "images"]
    assert names == ["preprocess", "block1_conv1", "block1_conv2", "block1_pool", "block2_conv1"]
    assert list(model.output) == ["block2_conv1"]


def test_tiny_extractor_is_truncated_after_the_deepest_default_layer(tiny_extractor):
    conv_names = [
        layer.name for layer in tiny_extractor.layers if isinstance(layer, keras.layers.Conv2D)
    ]
    vgg19 = layer_names("vgg19")
    config = StyleConfig()
    deepest = max(vgg19.index(name) for name in config.content_layers + config.style_layers)
    assert conv_names == list(vgg19[: deepest + 1])
    assert conv_names[-1] == "block4_conv2"  # the content layer; no block 5 at all
    assert "block4_pool" not in [layer.name for layer in tiny_extractor.layers]


def test_extractor_is_frozen(tiny_extractor):
    assert not tiny_extractor.trainable
    assert tiny_extractor.trainable_weights == []


def test_avg_pooling_replaces_every_max_pooling():
    max_model = _tiny(pooling="max")
    avg_model = _tiny(pooling="avg")

    def pooling_types(model):
        return [
            type(layer).__name__
            for layer in model.layers
            if isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D))
        ]

    assert pooling_types(max_model) == ["MaxPooling2D"] * 4
    assert pooling_types(avg_model) == ["AveragePooling2D"] * 4
    assert [layer.name for layer in max_model.layers] == [layer.name for layer in avg_model.layers]


def test_bf16_precision_gives_float32_outputs_close_to_fp32():
    """bfloat16 keeps 8 significant bits (7 stored plus the implicit one), so each rounding is
    off by at most 2^-8, about 0.4 %, relative: roughly 2 to 3 significant decimal digits. The
    convolutions accumulate in float32, so through the tiny net's 9 convolutions the error stays
    a few rounding steps, far under 5 % of each map's scale; a wrong weight, layer or cast would be
    off by order 100 %.
    """
    images = _images(2, (1, 32, 32, 3))
    full = _tiny(precision="fp32")
    half = _tiny(precision="bf16")
    half.set_weights(full.get_weights())
    assert half.get_layer("block1_conv1").compute_dtype == "bfloat16"
    assert half.get_layer("preprocess").compute_dtype == "float32"
    expected = full(images)
    actual = half(images)
    for name in TINY_LAYERS:
        assert actual[name].dtype == "float32"
        assert _relative_error(actual[name], expected[name]) < 5e-2, name


# --- weight resolution ---------------------------------------------------------------------------


@pytest.mark.real_weights
def test_real_vgg16_features_equal_keras_applications_vgg16(vgg16_weights):
    """Our VGG16 on [0, 1] RGB must equal Keras' own VGG16 with the same file on
    `vgg16.preprocess_input(x * 255)`, layer by layer."""
    layers = ("block1_conv1", "block3_conv2", "block5_conv3")
    images = _images(3, (2, 32, 48, 3))
    ours = build_feature_extractor(layers, "vgg16", vgg16_weights)(images)
    reference = keras.applications.VGG16(include_top=False, weights=str(vgg16_weights))
    inputs = keras.applications.vgg16.preprocess_input(images.copy() * 255.0)
    for name in layers:
        truncated = keras.Model(reference.input, reference.get_layer(name).output)
        expected = np.asarray(truncated(inputs))
        assert np.max(np.abs(expected)) > 0.0
        assert _relative_error(ours[name], expected) < 1e-4, name


@pytest.mark.real_weights
def test_avg_pooling_keeps_the_same_convolution_weights(vgg16_weights):
    """The pooling choice must not touch the weights: block 1 (before any pooling) is identical,
    and block 2 differs because it sees average instead of max pooling."""
    layers = ("block1_conv2", "block2_conv1")
    max_model = build_feature_extractor(layers, "vgg16", vgg16_weights, pooling="max")
    avg_model = build_feature_extractor(layers, "vgg16", vgg16_weights, pooling="avg")
    for name in ("block1_conv1", "block1_conv2", "block2_conv1"):
        for max_weight, avg_weight in zip(
            max_model.get_layer(name).get_weights(),
            avg_model.get_layer(name).get_weights(),
            strict=True,
        ):
            np.testing.assert_array_equal(max_weight, avg_weight)
    images = _images(4, (1, 16, 16, 3))
    max_features, avg_features = max_model(images), avg_model(images)
    np.testing.assert_array_equal(max_features["block1_conv2"], avg_features["block1_conv2"])
    assert not np.allclose(max_features["block2_conv1"], avg_features["block2_conv1"])


@pytest.mark.real_weights
def test_vgg16_file_with_vgg19_backbone_raises_naming_vgg16(vgg16_weights):
    with pytest.raises(StyleTransferError, match="vgg16") as raised:
        build_feature_extractor(("block1_conv1",), "vgg19", vgg16_weights)
    assert "\n" not in str(raised.value)


def _bad_weights_paths(directory):
    text_file = directory / "weights.txt"
    text_file.write_text("not weights")
    corrupt = directory / "corrupt.weights.h5"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    return {
        "missing": (directory / "missing.weights.h5", "does not exist"),
        "directory": (directory, "not a Keras weights file"),
        "text": (text_file, "not a Keras weights file"),
        "corrupt": (corrupt, "not a readable HDF5 file"),
    }


@pytest.mark.parametrize("kind", ["missing", "directory", "text", "corrupt"])
def test_bad_weights_path_raises_one_line(tmp_path, kind):
    path, expected = _bad_weights_paths(tmp_path)[kind]
    with pytest.raises(StyleTransferError, match=expected) as raised:
        build_feature_extractor(("block1_conv1",), "vgg16", path)
    message = str(raised.value)
    assert "\n" not in message
    assert str(path) in message


def _small_hdf5(path):
    import h5py

    with h5py.File(path, "w") as file:
        file.create_dataset("kernel", data=np.arange(50_000, dtype=np.float32))
    return path


def test_a_truncated_weights_file_says_corrupt_or_truncated(tmp_path):
    """Old behaviour: the HDF5 signature was there, so the file passed the check and Keras'
    loading error was reported as "does not fit the vgg16 backbone ... is it a vgg19 file?".
    The superblock's end-of-file address shows the file lost its tail; the message is the one
    README's Troubleshooting table promises."""
    path = _small_hdf5(tmp_path / "cut.weights.h5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StyleTransferError) as raised:
        build_feature_extractor(("block1_conv1",), "vgg16", path)
    assert str(raised.value) == (
        f"weights file {path} is not a readable HDF5 file (corrupt or truncated?): download it "
        "again or pass another --weights file"
    )


def test_a_complete_hdf5_file_passes_the_truncation_check(tmp_path):
    check_weights_file(str(_small_hdf5(tmp_path / "whole.weights.h5")), "vgg16")


def test_a_fifo_named_h5_is_refused_without_blocking(tmp_path):
    """Old behaviour: open() on a FIFO with no writer blocks forever. The check runs in a
    thread here so that, if it blocked, the test would fail instead of hanging."""
    fifo = tmp_path / "weights.h5"
    os.mkfifo(fifo)
    outcome = []

    def check():
        try:
            check_weights_file(str(fifo), "vgg16")
        except StyleTransferError as error:
            outcome.append(str(error))

    worker = threading.Thread(target=check, daemon=True)
    worker.start()
    worker.join(timeout=20)
    if worker.is_alive():
        with open(fifo, "wb"):  # releases the blocked reader
            pass
        pytest.fail("check_weights_file blocked on a FIFO")
    assert outcome and "is not a regular file" in outcome[0]


def test_an_uppercase_h5_extension_is_accepted(tmp_path):
    """Old behaviour: ".H5" was refused as "not a Keras weights file"."""
    check_weights_file(str(_small_hdf5(tmp_path / "MODEL.H5")), "vgg16")
    assert keras_weights_name("/x/VGG16.WEIGHTS.H5") == "VGG16.weights.h5"
    assert keras_weights_name("/x/Model.H5") == "Model.h5"


@pytest.mark.real_weights
def test_real_weights_load_under_an_uppercase_name(vgg16_weights, tmp_path):
    """Keras picks its loader by a case-sensitive suffix; the loader sees a lower-case link."""
    upper = tmp_path / "VGG16.WEIGHTS.H5"
    upper.symlink_to(vgg16_weights)
    model = build_feature_extractor(("block1_conv1",), "vgg16", upper)
    reference = build_feature_extractor(("block1_conv1",), "vgg16", vgg16_weights)
    np.testing.assert_array_equal(
        model.get_layer("block1_conv1").get_weights()[0],
        reference.get_layer("block1_conv1").get_weights()[0],
    )


@pytest.fixture()
def network_attempts(monkeypatch):
    """Records (and refuses) every DNS lookup or socket connection the test makes."""
    attempts = []

    def refuse(*arguments, **keyword_arguments):
        attempts.append(arguments)
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


def _offline(*arguments, **keyword_arguments):
    # Keras raises exactly this bare Exception when a download fails.
    raise Exception(
        "URL fetch failure on https://storage.googleapis.com/tensorflow/keras-applications/"
        "vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5: None -- [Errno -3] "
        "Temporary failure in name resolution"
    )


@pytest.mark.parametrize("where", ["get_file", "application"])
def test_imagenet_weights_offline_tells_to_pass_weights(monkeypatch, network_attempts, where):
    """Offline, Keras' download fails with a bare Exception. Patching `get_file` (which Keras'
    VGG19 calls even when ~/.keras/models holds the file) or the application itself guarantees
    that failure, and the network guard proves no request left the process."""
    if where == "get_file":
        monkeypatch.setattr("keras.src.utils.file_utils.get_file", _offline)
        monkeypatch.setattr("keras.utils.get_file", _offline)
    else:
        monkeypatch.setattr(keras.applications, "VGG19", _offline)
    with pytest.raises(StyleTransferError, match="pass --weights PATH") as raised:
        build_feature_extractor(("block1_conv1",), "vgg19", "imagenet")
    message = str(raised.value)
    assert "URL fetch failure" in message
    assert "\n" not in message
    assert network_attempts == []


@pytest.mark.parametrize(
    "gpus, flags, expected",
    [
        ([], {"avx512f", "avx512_bf16"}, "bf16"),  # this machine: Zen 4 with AVX512-BF16
        ([], {"avx2", "amx_bf16", "amx_tile"}, "bf16"),  # Sapphire Rapids
        ([], {"avx2", "fma"}, "fp32"),  # no native bfloat16
        ([(8, 0)], set(), "bf16"),  # A100
        ([(9, 0), (8, 6)], set(), "bf16"),  # H100 + RTX 3090
        ([(7, 0)], {"avx512_bf16"}, "fp32"),  # a V100 decides, whatever the CPU
        ([(8, 0), (7, 5)], set(), "fp32"),  # one pre-Ampere GPU is enough to fall back
    ],
)
def test_auto_precision_follows_the_hardware(gpus, flags, expected):
    from tf_nst.precision import precision_for_hardware

    assert precision_for_hardware(gpus, flags) == expected
