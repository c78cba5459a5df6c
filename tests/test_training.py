"""Tests of fast style network training (tf_nst.networks.training) with the tiny random VGG.

One trainer runs the whole story (its compiled step is the expensive part to build): a few steps,
a checkpoint midway, keep-best against a deliberately spoiled network; a second, fresh trainer
resumes from the checkpoint and must retrace the first one's steps.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import slow_setup
from PIL import Image

from tf_nst.config import TrainConfig
from tf_nst.errors import StyleTransferError
from tf_nst.features.extractor import build_feature_extractor
from tf_nst.features.targets import style_gram_targets
from tf_nst.losses import gram_matrix, style_layer_loss
from tf_nst.networks.distribute import is_chief, make_strategy, output_path
from tf_nst.networks.keep_best import TrainStepResult
from tf_nst.networks.training import NetworkTrainer, make_losses

CONFIG = TrainConfig(
    size=16,
    batch_size=2,
    steps=8,
    learning_rate=1e-2,
    width=4,
    validation=2,
    validation_every=1,
    seed=3,
    precision="fp32",
    distribute="none",
    style_size=32,
)
CHECKPOINT_STEP = 3
RESUMED_UNTIL = 5


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """10 small random photos with some structure (smooth gradients plus noise)."""
    root = tmp_path_factory.mktemp("photos")
    generator = np.random.default_rng(0)
    rows, columns = np.mgrid[0:36, 0:44] / 44.0
    for index in range(10):
        base = np.stack([rows, columns, (rows + columns) / 2], axis=-1)
        pixels = np.clip(base * generator.random(3) + 0.3 * generator.random((36, 44, 3)), 0, 1)
        Image.fromarray((pixels * 255).astype(np.uint8)).save(root / f"photo{index}.png")
    return root


@pytest.fixture(scope="module")
def extractor():
    # Seeded: the loss landscape, and so every expectation below, depends on its random weights.
    keras.utils.set_random_seed(0)
    return build_feature_extractor(
        CONFIG.content_layers + CONFIG.style_layers, "vgg19", None, width_scale=1 / 16
    )


@pytest.fixture(scope="module")
def style():
    generator = np.random.default_rng(1)
    stripes = (np.sin(np.arange(32) / 2.0)[None, :, None] + 1) / 2
    return np.clip(stripes * generator.random(3) + 0.1 * generator.random((32, 32, 3)), 0, 1)


@pytest.fixture(scope="module")
@slow_setup  # it trains a network: ~20 s on 2 cores, so its tests are slow
def story(photos, extractor, style, tmp_path_factory):
    """Runs the first trainer: steps, a checkpoint at CHECKPOINT_STEP, then spoils the network."""
    checkpoint = str(tmp_path_factory.mktemp("checkpoint") / "state")
    trainer = NetworkTrainer(photos, [style.astype(np.float32)], CONFIG, extractor=extractor)
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
    best_before_spoiling = trainer.best_loss
    # Spoil the network: the next validation is far worse, so keep-best must not take it.
    generator = np.random.default_rng(5)
    trainer.model.set_weights(
        [weight + 3.0 * generator.standard_normal(weight.shape) for weight in trainer.model.weights]
    )
    steps = trainer.steps()
    spoiled = next(steps)
    steps.close()
    return {
        "trainer": trainer,
        "results": results,
        "weights": weights,
        "checkpoint": checkpoint,
        "best_before_spoiling": best_before_spoiling,
        "spoiled": spoiled,
    }


def test_a_few_steps_lower_the_loss(story):
    results = story["results"]
    assert all(isinstance(result, TrainStepResult) for result in results)
    assert [result.step for result in results] == list(range(1, RESUMED_UNTIL + 1))
    # The training objective on the same (held-out) photos after every step: each step's batch
    # holds different photos, whose losses differ more than a few steps change them.
    validation = [result.validation_loss for result in results]
    assert validation[-1] < validation[0]
    assert all(math.isfinite(result.loss) for result in results)


def test_step_results_carry_the_terms_images_and_rates(story):
    result = story["results"][0]
    assert set(result.terms) == {
        *(f"style/{name}" for name in CONFIG.style_layers),
        *(f"content/{name}" for name in CONFIG.content_layers),
        "tv",
    }
    assert math.isclose(sum(result.terms.values()), result.loss, rel_tol=1e-5)
    assert result.validation_images.shape == (2, 16, 16, 3)
    assert result.validation_images.min() >= 0.0 and result.validation_images.max() <= 1.0
    assert result.images_per_second > 0 and result.learning_rate == pytest.approx(1e-2)
    assert result.total_steps == CONFIG.steps and result.progress == pytest.approx(1 / 8)


def test_keep_best_follows_the_validation_loss(story):
    trainer, results, weights = story["trainer"], story["results"], story["weights"]
    validation = [result.validation_loss for result in results]
    best_index = int(np.argmin(validation))
    assert story["best_before_spoiling"] == pytest.approx(validation[best_index])
    assert story["spoiled"].validation_loss > story["best_before_spoiling"]
    assert trainer.best_loss == story["best_before_spoiling"]
    assert story["spoiled"].best_loss == trainer.best_loss
    for best, expected in zip(trainer.best_model().get_weights(), weights[best_index], strict=True):
        np.testing.assert_array_equal(best, expected)
    # The best network, evaluated afresh, has the best loss.
    trainer.model.set_weights(trainer.best_model().get_weights())
    validation_loss, _ = trainer.validate()
    assert validation_loss == pytest.approx(trainer.best_loss, rel=1e-5)


def test_checkpoint_restore_continue_equals_uninterrupted(story, photos, extractor, style):
    resumed = NetworkTrainer(photos, [style.astype(np.float32)], CONFIG, extractor=extractor)
    resumed.restore(story["checkpoint"])
    assert resumed.step == CHECKPOINT_STEP
    expected = story["results"][CHECKPOINT_STEP - 1]
    assert resumed.best_loss == expected.best_loss
    continued = []
    for result in resumed.steps():
        continued.append((result, resumed.model.get_weights()))
        if result.step == RESUMED_UNTIL:
            break
    for result, weights in continued:
        original = story["results"][result.step - 1]
        assert result.loss == pytest.approx(original.loss, rel=1e-4)
        assert result.validation_loss == pytest.approx(original.validation_loss, rel=1e-4)
        for restored, uninterrupted in zip(weights, story["weights"][result.step - 1], strict=True):
            np.testing.assert_allclose(restored, uninterrupted, rtol=1e-4, atol=1e-5)


def test_restore_of_another_width_is_a_one_line_error(story, photos, extractor, style):
    other = NetworkTrainer(
        photos, [style.astype(np.float32)], CONFIG.replace(width=8), extractor=extractor
    )
    with pytest.raises(StyleTransferError, match="does not fit this run") as raised:
        other.restore(story["checkpoint"])
    assert "\n" not in str(raised.value)
    assert "--width" in str(raised.value)


@pytest.mark.slow
def test_a_run_that_runs_out_of_time_stops_on_a_validated_step(
    photos, extractor, style, monkeypatch
):
    """Whenever the clock passes the limit within a step, the run ends validated and says why."""
    from tf_nst.networks import keep_best

    class TickingClock:
        def __init__(self, tick):
            self.now, self.tick = 0.0, tick

        def perf_counter(self):
            self.now += self.tick
            return self.now

    config = CONFIG.replace(steps=1000, validation_every=1000, time_limit=0.3)
    trainer = NetworkTrainer(photos, [style.astype(np.float32)], config, extractor=extractor)
    for tick in (0.01, 0.011, 0.013, 0.017, 0.019):
        monkeypatch.setattr(keep_best, "time", TickingClock(tick))
        results = list(trainer.steps())
        assert trainer.stop_reason == "time limit", tick
        assert 1 <= len(results) < 100, tick
        assert results[-1].validation_loss is not None, tick
        assert all(result.validation_loss is None for result in results[:-1]), tick


def test_a_single_machine_is_the_chief_and_writes_in_place(tmp_path):
    strategy = make_strategy("none")
    assert is_chief(strategy)
    with output_path(tmp_path / "model", strategy) as path:
        assert path == str(tmp_path / "model")


def test_multiworker_without_tf_config_is_a_one_line_error(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(StyleTransferError, match="TF_CONFIG") as raised:
        make_strategy("multiworker")
    assert "\n" not in str(raised.value)
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(StyleTransferError, match="TF_CONFIG is not JSON"):
        make_strategy("multiworker")


def test_the_style_is_seen_at_style_size_whatever_the_crops(photos, extractor, style):
    """`style_size` is the style's long side in the loss, in pixels, at any crop `size`.

    Before it, the style was always resized to the crop size (times `style_scale`), so 128 px
    crops saw a 128 px painting; that stays the default (None), measured in the README.
    """
    assert CONFIG.replace(style_size=None).style_side == CONFIG.size
    style = style.astype(np.float32)
    layers, blend = CONFIG.style_layers, (1.0,)
    expected = style_gram_targets(extractor, [style], 24, layers, blend)
    at_crop_size = style_gram_targets(extractor, [style], 16, layers, blend)
    for size in (16, 24):
        trainer = NetworkTrainer(
            photos, [style], CONFIG.replace(size=size, style_size=24), extractor=extractor
        )
        assert trainer.style_side == 24
        for name in layers:
            np.testing.assert_allclose(
                trainer.style_gram_targets[name].numpy(), expected[name].numpy(), rtol=1e-5
            )
    difference = max(
        float(np.abs(expected[name].numpy() - at_crop_size[name].numpy()).max()) for name in layers
    )
    assert difference > 1e-3


def test_the_coarse_style_loss_is_the_gram_error_at_half_size(photos, extractor, style):
    """`coarse_style_weight`: the same Gram error on the output and the style at half size."""
    config = CONFIG.replace(size=32, style_size=48, coarse_style_weight=0.5)
    style = style.astype(np.float32)
    trainer = NetworkTrainer(photos, [style], config, extractor=extractor)
    expected_targets = style_gram_targets(extractor, [style], 24, config.style_layers, (1.0,))
    for name in config.style_layers:
        np.testing.assert_allclose(
            trainer.coarse_gram_targets[name].numpy(),
            expected_targets[name].numpy(),
            rtol=1e-5,
        )
    stylized = tf.random.stateless_uniform([2, 32, 32, 3], seed=[4, 5])
    content = {name: extractor(stylized)[name] for name in config.content_layers}
    losses = make_losses(extractor, trainer.weights, 0.5)
    total, terms = losses(
        stylized, content, trainer.style_gram_targets, trainer.coarse_gram_targets
    )
    half = tf.image.resize(stylized, [16, 16], method="area")  # 2x2 means
    half_features = extractor(half)
    for name, layer_weight in trainer.weights.style_layers.items():
        error = style_layer_loss(
            gram_matrix(half_features[name]), expected_targets[name], "normalized"
        )
        np.testing.assert_allclose(
            terms[f"coarse_style/{name}"].numpy(),
            (0.5 * config.style_weight * layer_weight * error).numpy(),
            rtol=1e-4,
        )
    np.testing.assert_allclose(total.numpy(), sum(terms.values()).numpy(), rtol=1e-5)
    plain, plain_terms = make_losses(extractor, trainer.weights)(
        stylized, content, trainer.style_gram_targets, {}
    )
    assert not any(name.startswith("coarse_style/") for name in plain_terms)
    assert np.all(total.numpy() > plain.numpy())
    result = next(iter(trainer.steps()))
    assert {f"coarse_style/{name}" for name in config.style_layers} <= set(result.terms)
    with pytest.raises(StyleTransferError, match="`coarse_style_weight`.*half size"):
        NetworkTrainer(
            photos, [style], CONFIG.replace(coarse_style_weight=1.0), extractor=extractor
        )


def test_training_config_names_the_field_in_its_errors():
    """The library names the field (`batch_size`); the CLI shows it as the flag."""
    for changes, field in [
        ({"batch_size": 0}, "`batch_size`"),
        ({"validation": -1}, "`validation`"),
        ({"distribute": "tpu"}, "`distribute`"),
        ({"style_layer_weights": (1.0,)}, "`style_layer_weights`"),
        ({"style_size": 0}, "`style_size`"),
        ({"coarse_style_weight": -1.0}, "`coarse_style_weight`"),
    ]:
        with pytest.raises(StyleTransferError, match=field):
            TrainConfig(**changes)
