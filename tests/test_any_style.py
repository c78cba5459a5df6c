"""Tests of the any-style (AdaIN) path: tf_nst.networks.any_style, its CLI, SavedModel and TFLite.

Fast tests check the AdaIN operation against its formula, strength and blends at the feature
level, the decoder's shape, the losses, and the one-line refusals of bad `--paintings` folders
and of `--style` on the wrong kind of network. Slower ones (a fixture trains a tiny network)
check an exact resume, the SavedModel's signatures and the TFLite files against it.
"""

from __future__ import annotations

import json
import math
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import shared_photos, slow_setup, square
from PIL import Image

from tf_nst.cli import parser as cli
from tf_nst.config import AnyStyleConfig, ApplyConfig
from tf_nst.errors import StyleTransferError
from tf_nst.features.extractor import build_feature_extractor
from tf_nst.losses import statistics_style_loss
from tf_nst.networks.any_style import adain
from tf_nst.networks.any_style.data import find_paintings, scan_paintings
from tf_nst.networks.any_style.export import (
    ANY_STYLE_KIND,
    TFLITE_PHOTO_SIDE,
    TFLITE_STYLE_SIDE,
    at_precision,
    export_any_style,
    export_tflite,
    run_tflite,
    tflite_interpreter,
)
from tf_nst.networks.any_style.training import (
    IDENTITY_EVERY,
    AnyStyleTrainer,
    encoder_layers,
    make_losses,
)
from tf_nst.networks.export import STYLIZER_METADATA
from tf_nst.networks.stylizer import load_stylizer
from tf_nst.precision import resolve_precision

CONFIG = AnyStyleConfig(
    size=16,
    batch_size=2,
    steps=6,
    learning_rate=1e-3,
    decoder_width=4,
    validation=2,
    validation_paintings=2,
    validation_every=1,
    seed=3,
    precision="fp32",
    distribute="none",
)
CHECKPOINT_STEP = 3
RESUMED_UNTIL = 5


def _features(seed: int, shape=(2, 5, 6, 4)) -> np.ndarray:
    return np.random.default_rng(seed).normal(1.0, 2.0, shape).astype(np.float32)


# --- the operation, strength, blends ------------------------------------------------------------


def test_adain_is_its_formula():
    """AdaIN(x, mu_s, sigma_s) = sigma_s (x - mu(x)) / sqrt(var(x) + eps) + mu_s, per channel."""
    content = _features(0)
    style_mean = np.random.default_rng(1).normal(size=(2, 4)).astype(np.float32)
    style_deviation = np.random.default_rng(2).uniform(0.5, 2, size=(2, 4)).astype(np.float32)
    mean = content.mean(axis=(1, 2), keepdims=True)
    deviation = np.sqrt(content.var(axis=(1, 2), keepdims=True) + adain.ADAIN_EPSILON)
    expected = (content - mean) / deviation * style_deviation[:, None, None] + style_mean[
        :, None, None
    ]
    result = adain.adain(content, style_mean, style_deviation).numpy()
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-4)
    # The output carries the style's statistics.
    out_mean, out_deviation = (value.numpy() for value in adain.channel_statistics(result, 0.0))
    np.testing.assert_allclose(out_mean, style_mean, atol=1e-4)
    np.testing.assert_allclose(out_deviation, style_deviation, rtol=1e-3)


def test_strength_interpolates_from_the_photos_features_to_the_adain_target():
    content, style = _features(0), _features(1)
    representation = adain.style_representation(style)
    mean, deviation = tf.split(representation, 2, axis=-1)
    target = adain.adain(content, mean, deviation).numpy()
    at = {s: adain.stylized_features(content, representation, s).numpy() for s in (0, 0.25, 1)}
    np.testing.assert_array_equal(at[0], content)  # strength 0: the photo's own features
    np.testing.assert_allclose(at[1], target, atol=1e-5)
    np.testing.assert_allclose(at[0.25], 0.75 * content + 0.25 * target, atol=1e-5)


def test_a_blend_mixes_the_statistics_and_so_the_adain_targets():
    """AdaIN is linear in (mean, deviation): blending the representations with weights w blends
    the AdaIN targets with the same weights (the paper's interpolation of feature maps)."""
    content = _features(0, (1, 5, 6, 4))
    representations = tf.concat(
        [adain.style_representation(_features(seed, (1, 7, 7, 4))) for seed in (1, 2)], axis=0
    )
    blended = adain.blend_representations(representations, [1.0, 3.0])
    np.testing.assert_allclose(
        blended.numpy(), (0.25 * representations[:1] + 0.75 * representations[1:]).numpy(), 1e-6
    )
    targets = [adain.stylized_features(content, representations[i : i + 1]) for i in (0, 1)]
    np.testing.assert_allclose(
        adain.stylized_features(content, blended).numpy(),
        (0.25 * targets[0] + 0.75 * targets[1]).numpy(),
        atol=1e-4,
    )


def test_style_representation_is_the_means_then_the_deviations():
    features = _features(4)
    representation = adain.style_representation(features).numpy()
    np.testing.assert_allclose(representation[:, :4], features.mean(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(
        representation[:, 4:], np.sqrt(features.var(axis=(1, 2)) + 1e-5), rtol=1e-4
    )


def test_the_style_loss_is_zero_for_matching_statistics_and_per_example():
    features = _features(5)
    mean, deviation = adain.channel_statistics(features)
    matching = statistics_style_loss(features, mean, deviation).numpy()
    np.testing.assert_allclose(matching, 0, atol=1e-6)
    other = statistics_style_loss(features, mean + 1.0, deviation).numpy()
    np.testing.assert_allclose(other, [1.0, 1.0], rtol=1e-5)  # mean_c(1^2) per example


# --- the decoder -------------------------------------------------------------------------------


def test_a_fresh_decoder_starts_on_the_scale_of_images():
    """relu4_1 features of the encoder (Caffe's 0-255 range) have a mean near 140 and a
    deviation near 400 on real photos. Before `DECODER_INPUT_SCALE`, a fresh decoder turned them
    into outputs with a deviation near 150, for images in [0, 1]: its ReLUs died while Adam
    shrank that, and the trained network painted black. Now it starts within a few units."""
    keras.utils.set_random_seed(0)
    decoder = adain.build_decoder(16, "vgg16")
    generator = np.random.default_rng(0)
    features = np.maximum(generator.normal(0.0, 400.0, (2, 8, 8, 512)), 0.0).astype(np.float32)
    outputs = decoder(features).numpy()
    assert np.all(np.isfinite(outputs))
    assert 1e-3 < outputs.std() < 3.0, outputs.std()


@pytest.mark.parametrize(("backbone", "convolutions"), [("vgg19", 9), ("vgg16", 8)])
def test_the_decoder_mirrors_vgg_to_relu4_1(backbone, convolutions, tmp_path):
    decoder = adain.build_decoder(width=4, backbone=backbone, channels=12)
    kinds = [type(layer).__name__ for layer in decoder.layers]
    assert kinds.count("Conv2D") == convolutions  # VGG's to block4_conv1, mirrored
    assert kinds.count("ReflectionPadding2D") == convolutions
    assert kinds.count("UpSampling2D") == 3
    assert not [kind for kind in kinds if "Normalization" in kind]
    assert all(
        layer.interpolation == "nearest"
        for layer in decoder.layers
        if isinstance(layer, keras.layers.UpSampling2D)
    )
    features = _features(6, (1, 3, 5, 12))
    images = decoder(features)
    assert images.shape == (1, 24, 40, 3)
    path = tmp_path / "decoder.keras"
    decoder.save(path)
    np.testing.assert_allclose(keras.models.load_model(path)(features), images, atol=1e-6)


# --- configuration and bad inputs --------------------------------------------------------------


def test_the_defaults_are_the_adain_papers_gpu_recipe():
    config = AnyStyleConfig()
    assert (config.size, config.batch_size, config.learning_rate, config.steps) == (
        256, 8, 1e-4, 160_000,
    )  # fmt: skip
    assert config.content_layers == ("block4_conv1",)
    assert config.style_layers == ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1")
    with pytest.raises(StyleTransferError, match="`style_blend`"):
        AnyStyleConfig(style_blend=(1.0,))
    with pytest.raises(StyleTransferError, match="`strength` must be from 0 to 1"):
        ApplyConfig(strength=1.5)


def _image_folder(root, count, name="image"):
    root.mkdir(parents=True, exist_ok=True)
    generator = np.random.default_rng(count)
    for index in range(count):
        pixels = (generator.random((24, 32, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / f"{name}{index}.png")
    return root


def test_bad_paintings_folders_are_one_line_errors(tmp_path):
    (tmp_path / "file.png").write_bytes(b"not an image")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images")
    cases = {
        tmp_path / "missing": "does not exist",
        tmp_path / "file.png": "is a file, not a folder",
        tmp_path / "empty": "holds no images",
    }
    for folder, message in cases.items():
        with pytest.raises(StyleTransferError, match=message) as raised:
            find_paintings(folder)
        assert "\n" not in str(raised.value) and "`paintings`" in str(raised.value)
    broken = _image_folder(tmp_path / "few", 3)
    (broken / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(StyleTransferError, match="3 usable paintings .1 unreadable skipped.") as e:
        scan_paintings(broken, validation=2, batch_size=2)
    assert "\n" not in str(e.value)


def _main(argv, capsys) -> tuple[int, str]:
    status = cli.main([str(item) for item in argv])
    return status, capsys.readouterr().err.strip()


def test_the_train_command_refuses_bad_paintings_in_one_line(tmp_path, capsys):
    photos = _image_folder(tmp_path / "photos", 2)
    for paintings, message in [
        (tmp_path / "missing", "--paintings .*missing does not exist"),
        (photos / "image0.png", "is a file, not a folder"),
    ]:
        status, error = _main(
            ["train", "--paintings", paintings, "--photos", photos, "-o", tmp_path / "model"],
            capsys,
        )
        assert status == 2 and len(error.splitlines()) == 1
        assert error.startswith("tf-nst: error: ") and re.search(message, error)
    status, error = _main(
        ["train", "style.jpg", "--paintings", photos, "--photos", photos, "-o", tmp_path / "m"],
        capsys,
    )
    assert status == 2 and "exclude each other" in error
    status, error = _main(["train", "--photos", photos, "-o", tmp_path / "m"], capsys)
    assert status == 2 and "--paintings DIR" in error
    status, error = _main(
        ["train", "--paintings", photos, "--photos", photos, "--width", "8", "-o", tmp_path / "m"],
        capsys,
    )
    assert status == 2 and "--width sets a per-style network" in error
    for flag, value in (("--style-size", "256"), ("--coarse-style-weight", "1")):
        status, error = _main(
            ["train", "--paintings", photos, "--photos", photos, flag, value, "-o", tmp_path / "m"],
            capsys,
        )
        assert status == 2 and f"{flag} sets a per-style network; with --paintings leave" in error
    assert not (tmp_path / "m").exists() and not (tmp_path / "model").exists()


def _fake_model(folder, kind):
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"")
    metadata = {"format": "tf_nst stylizer", "format_version": 1}
    if kind:
        metadata["kind"] = kind
    (folder / STYLIZER_METADATA).write_text(json.dumps(metadata))
    return folder


def test_apply_refuses_style_for_a_per_style_network_and_needs_it_for_an_any_style_one(
    tmp_path, capsys
):
    photo = _image_folder(tmp_path / "photos", 1) / "image0.png"
    per_style = _fake_model(tmp_path / "per_style", None)  # older exports have no kind
    any_style = _fake_model(tmp_path / "any_style", ANY_STYLE_KIND)
    out = tmp_path / "out.png"
    cases = [
        ([per_style, photo, "--style", photo], "is a per-style network.*drop --style"),
        ([per_style, photo, "--strength", "0.5"], "--strength needs an any-style network"),
        ([any_style, photo], "is an any-style network: give the painting.*--style PAINTING"),
    ]
    for arguments, message in cases:
        status, error = _main(["apply", *arguments, "-o", out], capsys)
        assert status == 2 and len(error.splitlines()) == 1, error
        assert re.search(message, error), error
    assert not out.exists()


# --- training, resume, export, TFLite (a tiny network) --------------------------------------


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("any_style")
    generator = np.random.default_rng(0)
    rows, columns = np.mgrid[0:36, 0:44] / 44.0
    for kind, count in (("photos", 6), ("paintings", 6)):
        (root / kind).mkdir()
        for index in range(count):
            base = np.stack([rows, columns, (rows + columns) / 2], axis=-1)
            noise = generator.random((36, 44, 3))
            pixels = np.clip(base * generator.random(3) + 0.4 * noise, 0, 1)
            Image.fromarray((pixels * 255).astype(np.uint8)).save(root / kind / f"{index}.png")
    return root


@pytest.fixture(scope="module")
def encoder():
    keras.utils.set_random_seed(0)
    return build_feature_extractor(encoder_layers(CONFIG), "vgg19", None, width_scale=1 / 16)


@pytest.fixture(scope="module")
@slow_setup  # it trains a tiny network and exports it
def story(folders, encoder, tmp_path_factory):
    """Trains to RESUMED_UNTIL with a checkpoint at CHECKPOINT_STEP, then exports the network."""
    checkpoint = str(tmp_path_factory.mktemp("checkpoint") / "state")
    trainer = AnyStyleTrainer(folders / "photos", folders / "paintings", CONFIG, encoder=encoder)
    results, weights = [], []
    steps = trainer.steps()
    for result in steps:
        results.append(result)
        weights.append(trainer.model.get_weights())
        if result.step == CHECKPOINT_STEP:
            trainer.checkpoint().write(checkpoint)
        if result.step == RESUMED_UNTIL:
            break
    steps.close()
    model = tmp_path_factory.mktemp("models") / "any_style"
    export_any_style(trainer.encoder, trainer.best_model(), model, {"steps": trainer.step})
    return {
        "trainer": trainer,
        "results": results,
        "weights": weights,
        "checkpoint": checkpoint,
        "model": model,
    }


def test_training_holds_out_paintings_and_lowers_nothing_it_should_not(story):
    trainer = story["trainer"]
    assert not set(trainer.paintings.validation) & set(trainer.paintings.training)
    assert len(trainer.paintings.validation) == CONFIG.validation_paintings
    results = story["results"]
    assert all(math.isfinite(result.loss) for result in results)
    assert set(results[0].terms) == {
        "content/block4_conv1", *(f"style/{name}" for name in CONFIG.style_layers), "tv",
        "identity",
    }  # fmt: skip
    assert math.isclose(sum(results[0].terms.values()), results[0].loss, rel_tol=1e-4)
    assert results[0].validation_images.shape == (2, 16, 16, 3)
    assert results[-1].best_loss == min(result.validation_loss for result in results)


def test_one_pair_in_four_is_an_identity_pair_whatever_the_step(story):
    trainer = story["trainer"]
    batch = trainer.global_batch_size
    trainer_step = trainer.step
    try:
        for start in (0, 3):
            trainer.step = start
            photos, paintings, identity = next(iter(trainer.dataset()))
            index = start * batch + np.arange(batch)
            np.testing.assert_array_equal(identity.numpy(), (index % IDENTITY_EVERY == 0) * 1.0)
            same = np.all(photos.numpy() == paintings.numpy(), axis=(1, 2, 3))
            np.testing.assert_array_equal(same, identity.numpy() > 0)
    finally:
        trainer.step = trainer_step


def test_the_identity_term_is_the_pixel_error_on_identity_pairs_only(encoder):
    weights = CONFIG.loss_weights()
    decoder = adain.build_decoder(CONFIG.decoder_width, "vgg19", "fp32", 512 // 16)
    losses = make_losses(encoder, decoder, weights, 2.0, training=False)
    photos = tf.random.stateless_uniform([2, 16, 16, 3], seed=[0, 1])
    identity = tf.constant([1.0, 0.0])
    loss, terms, images = losses(photos, photos, identity)
    expected = 2.0 * np.mean(np.square(255.0 * (images.numpy()[0] - photos.numpy()[0])))
    np.testing.assert_allclose(terms["identity"].numpy(), [expected, 0.0], rtol=1e-5)
    without, _, _ = losses(photos, photos)
    np.testing.assert_allclose(loss.numpy() - without.numpy(), [expected, 0.0], rtol=1e-4)


def test_a_resumed_training_equals_the_uninterrupted_one(story, folders, encoder):
    resumed = AnyStyleTrainer(folders / "photos", folders / "paintings", CONFIG, encoder=encoder)
    resumed.restore(story["checkpoint"])
    assert resumed.step == CHECKPOINT_STEP
    expected = story["results"][CHECKPOINT_STEP - 1]
    assert resumed.best_loss == expected.best_loss
    continued = []
    steps = resumed.steps()
    for result in steps:
        continued.append((result, resumed.model.get_weights()))
        if result.step == RESUMED_UNTIL:
            break
    steps.close()
    for (result, weights), original, original_weights in zip(
        continued,
        story["results"][CHECKPOINT_STEP:],
        story["weights"][CHECKPOINT_STEP:],
        strict=True,
    ):
        assert result.step == original.step
        assert result.loss == pytest.approx(original.loss, rel=1e-5)
        for weight, original_weight in zip(weights, original_weights, strict=True):
            np.testing.assert_allclose(weight, original_weight, rtol=1e-5, atol=1e-6)


def test_the_savedmodel_signatures_and_the_split(story):
    network = load_stylizer(story["model"])
    metadata = network.metadata
    assert metadata["kind"] == ANY_STYLE_KIND and metadata["training"] == {"steps": 5}
    size = metadata["representation_size"]
    saved = tf.saved_model.load(str(story["model"]))  # without tf_nst's classes
    generator = np.random.default_rng(7)
    photos = tf.constant(generator.random((2, 20, 28, 3)), tf.float32)  # not multiples of 8
    styles = tf.constant(generator.random((1, 24, 40, 3)), tf.float32)
    strength = tf.constant(0.7)
    served = saved.signatures["serving_default"](photos=photos, styles=styles, strength=strength)
    assert served["stylized"].shape == (2, 20, 28, 3)
    representation = saved.signatures["style_representation"](styles=styles)["representation"]
    assert representation.shape == (1, size)
    split = saved.signatures["stylize_with_representation"](
        photos=photos, representation=representation, strength=strength
    )["stylized"]
    np.testing.assert_allclose(split, served["stylized"], atol=1e-5)
    # The Python API: photos, styles and the strength.
    np.testing.assert_allclose(network(photos, styles, 0.7), split, atol=1e-5)


def test_the_export_has_bf16_signatures_beside_fp32_ones_whatever_the_training(story):
    fp32 = load_stylizer(story["model"], precision="fp32")
    bf16 = load_stylizer(story["model"], precision="bf16")
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    assert fp32.metadata["precisions"] == ["fp32", "bf16"]
    generator = np.random.default_rng(9)
    photos = generator.random((1, 24, 32, 3)).astype(np.float32)
    styles = generator.random((1, 24, 24, 3)).astype(np.float32)
    exact, rounded = fp32(photos, styles, 0.8).numpy(), bf16(photos, styles, 0.8).numpy()
    assert rounded.dtype == np.float32 and rounded.shape == exact.shape
    # bfloat16 keeps 8 bits of mantissa: close to the fp32 output, but not equal to it.
    assert 0 < np.abs(rounded - exact).mean() < 0.05
    assert fp32.with_precision("auto").precision == resolve_precision("auto")


def test_a_copy_at_another_precision_keeps_the_weights_and_computes_at_it(encoder):
    decoder = adain.build_decoder(4, "vgg19", "bf16", 32)
    copy = at_precision(decoder, "fp32")
    assert {layer.dtype_policy.name for layer in copy.layers} == {"float32"}
    for weight, original in zip(copy.get_weights(), decoder.get_weights(), strict=True):
        np.testing.assert_array_equal(weight, original)
    features = tf.random.stateless_uniform([1, 4, 4, 32], seed=[2, 3], maxval=200.0)
    reference = adain.build_decoder(4, "vgg19", "fp32", 32)
    reference.set_weights(decoder.get_weights())
    np.testing.assert_allclose(copy(features), reference(features), rtol=1e-5, atol=1e-6)


def test_strength_zero_gives_the_photo_and_blends_lie_between(story):
    network = load_stylizer(story["model"])
    trainer = story["trainer"]
    generator = np.random.default_rng(8)
    photos = generator.random((1, 24, 32, 3)).astype(np.float32)
    styles = [generator.random((24, 24, 3)).astype(np.float32) for _ in range(2)]
    # A few steps from random: the decoder's own reconstruction is far from the photo, so only
    # the detail term can make strength 0 the photo.
    content = trainer.encoder(photos)[adain.ENCODER_LAYER]
    reconstruction = trainer.best_model()(content).numpy()
    assert np.abs(np.clip(reconstruction, 0, 1) - photos).mean() > 0.05
    np.testing.assert_allclose(network(photos, styles[:1], 0.0), photos, atol=1e-5)
    # Full strength is the paper's AdaIN, untouched by the detail term.
    representation = network.style_representation(styles[:1])
    target = adain.stylized_features(content, representation, 1.0)
    full = adain.clip_images(trainer.best_model()(target)).numpy()
    np.testing.assert_allclose(network(photos, styles[:1], 1.0), full, atol=1e-5)
    # In between, the photo's detail returns in proportion to 1 - strength.
    half_features = adain.stylized_features(content, representation, 0.5)
    half = trainer.best_model()(half_features).numpy() + 0.5 * (photos - reconstruction)
    np.testing.assert_allclose(network(photos, styles[:1], 0.5), np.clip(half, 0, 1), atol=1e-4)
    # A blend's representation is the weighted mean of the two paintings'.
    representations = network.style_representation(styles).numpy()
    blended = network.blended_representation(styles, [1.0, 1.0]).numpy()
    np.testing.assert_allclose(blended[0], representations.mean(axis=0), rtol=1e-5, atol=1e-6)


# Largest mean absolute difference from the SavedModel, on images in [0, 1]: float32 conversion
# is exact up to rounding, fp16 weights lose about 3 decimal digits. int8 is checked here for
# being a working, smaller model; tests/test_any_style_int8.py holds it to its own tolerance.
TFLITE_TOLERANCE = {"none": 1e-4, "fp16": 5e-3}


@pytest.fixture(scope="module")
@slow_setup  # it exports a network
def contrasted_model(story, tmp_path_factory):
    """The story's network with its last layer rescaled so that, on a real photo, its output
    has mean 0.5 and deviation 0.25: a few steps from random leave it nearly flat, where any
    converter would match it and clipping would hide differences."""
    trainer = story["trainer"]
    decoder = trainer.best_model()
    photo = square(shared_photos(1, TFLITE_PHOTO_SIDE)[0], TFLITE_PHOTO_SIDE)
    raw = decoder(trainer.encoder(photo, training=False)[adain.ENCODER_LAYER]).numpy()
    factor = 0.25 / max(float(raw.std()), 1e-12)
    last = decoder.get_layer("block1_deconv1")
    kernel, bias = last.get_weights()
    last.set_weights([kernel * factor, (bias - raw.mean()) * factor + 0.5])
    model = tmp_path_factory.mktemp("models") / "contrasted"
    export_any_style(trainer.encoder, decoder, model, {"steps": trainer.step})
    return model


def test_tflite_of_an_any_style_network_matches_the_savedmodel(contrasted_model, tmp_path):
    images = shared_photos(4, TFLITE_PHOTO_SIDE)
    network = load_stylizer(contrasted_model)
    photo = square(images[0], TFLITE_PHOTO_SIDE)
    style = square(images[1], TFLITE_STYLE_SIDE)
    expected_representation = network.style_representation(style).numpy()
    expected = network.stylize_with_representation(photo, expected_representation, 0.8).numpy()
    assert expected.std() > 0.05  # not a saturated, trivially matching image
    sizes = {}
    for quantize in ("none", "fp16", "int8"):
        output = tmp_path / quantize
        description = export_tflite(contrasted_model, output, quantize, images, images)
        assert sorted(description["files"]) == [
            "style_representation.tflite", "stylize_with_representation.tflite",
        ]  # fmt: skip
        assert json.loads((output / "tflite.json").read_text())["quantize"] == quantize
        sizes[quantize] = description["files"]["stylize_with_representation.tflite"]["bytes"]
        representation = run_tflite(
            tflite_interpreter(output / "style_representation.tflite"), {"styles": style}
        )
        assert representation.shape == expected_representation.shape
        stylized = run_tflite(
            tflite_interpreter(output / "stylize_with_representation.tflite"),
            {"photos": photo, "representation": expected_representation, "strength": 0.8},
        )
        assert stylized.shape == expected.shape == (1, TFLITE_PHOTO_SIDE, TFLITE_PHOTO_SIDE, 3)
        assert np.isfinite(stylized).all() and 0 <= stylized.min() <= stylized.max() <= 1
        if quantize in TFLITE_TOLERANCE:
            relative = (
                np.abs(representation - expected_representation).mean()
                / np.abs(expected_representation).mean()
            )
            assert relative < TFLITE_TOLERANCE[quantize]
            assert np.abs(stylized - expected).mean() < TFLITE_TOLERANCE[quantize]
    assert sizes["int8"] < sizes["fp16"] < sizes["none"]


def test_tflite_of_a_per_style_network_matches_the_savedmodel(tmp_path):
    from tf_nst.networks.export import export_stylizer
    from tf_nst.networks.transform import build_transform_network

    keras.utils.set_random_seed(1)
    export_stylizer(build_transform_network(4), tmp_path / "per_style", {"steps": 0}, ("fp32",))
    output = tmp_path / "tflite"
    description = export_tflite(tmp_path / "per_style", output, "none")
    assert list(description["files"]) == ["stylize.tflite"]
    photo = square(shared_photos(1, TFLITE_PHOTO_SIDE)[0], TFLITE_PHOTO_SIDE)
    stylized = run_tflite(tflite_interpreter(output / "stylize.tflite"), {"images": photo})
    expected = load_stylizer(tmp_path / "per_style")(photo).numpy()
    assert np.abs(stylized - expected).mean() < TFLITE_TOLERANCE["none"]
