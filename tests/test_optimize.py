"""Tests for tf_nst.optimize.optimization: the loop, keep-best, scales, inits, L-BFGS, stops and
resume.

All runs use the tiny random VGG19 (`tiny_extractor`) on 24x32 images at size 32, for a few
steps each, so the whole file stays fast on a shared CPU.
"""

import threading

import numpy as np
import pytest
import tensorflow as tf

from tf_nst import losses
from tf_nst.config import StyleConfig
from tf_nst.errors import StyleTransferError
from tf_nst.image import colors, decoding
from tf_nst.optimize.optimization import Optimization, stylize
from tf_nst.sizes import working_shape


def _config(**changes):
    settings = {"size": 32, "steps": 10, "optimizer": "adam"}
    settings.update(changes)
    return StyleConfig(**settings)


def _run(content, styles, extractor, init_image=None, **changes):
    """Runs a whole stylization; returns the optimization and every StepResult."""
    optimization = Optimization(content, styles, _config(**changes), extractor, init_image)
    return optimization, list(optimization.steps())


def _assert_final_is_best(optimization, results):
    """final_image() must be the post-processed evaluated image of lowest loss."""
    losses_seen = [result.loss for result in results]
    best = int(np.argmin(losses_seen))
    assert optimization.best_loss == losses_seen[best]
    np.testing.assert_array_equal(
        optimization.final_image(), optimization.postprocess(results[best].image)
    )
    return best


# --- Adam ----------------------------------------------------------------------------------------


def test_adam_loss_falls_over_30_steps(tiny_extractor, random_images):
    content, style = random_images
    optimization, results = _run(content, [style], tiny_extractor, steps=30)
    assert len(results) == 30
    assert [result.step for result in results] == list(range(1, 31))
    assert results[-1].loss < results[0].loss
    assert optimization.best_loss < results[0].loss
    assert optimization.stop_reason is None


def test_keep_best_returns_the_lowest_loss_image_not_the_last(tiny_extractor, random_images):
    """A learning rate of 5 (the image lives in [0, 1]) overshoots: the loss jumps up after the
    first step, and the result must be the best image, never a worse later one."""
    content, style = random_images
    optimization, results = _run(content, [style], tiny_extractor, steps=12, learning_rate=5.0)
    losses_seen = [result.loss for result in results]
    assert losses_seen[1] > losses_seen[0]  # the premise: the loss rises after the first step
    best = _assert_final_is_best(optimization, results)
    # Which later steps come back down depends on the tiny extractor's random weights (its
    # fixture is unseeded, so the test order decides them); the images of every step worse than
    # the best, the last one among them whenever it is worse, must differ from the result.
    worse = [index for index, loss in enumerate(losses_seen) if loss > losses_seen[best]]
    assert 1 in worse
    for index in worse:
        assert not np.allclose(
            optimization.final_image(), optimization.postprocess(results[index].image)
        ), index
    for result in results:
        assert np.isfinite(result.image.numpy()).all()
        assert float(tf.reduce_min(result.image)) >= 0.0
        assert float(tf.reduce_max(result.image)) <= 1.0
    assert np.isfinite(optimization.final_image()).all()


@pytest.mark.slow  # two runs of 15 steps: 2-3 s; the fast tier stays about a minute
def test_step_results_track_the_best_so_far(tiny_extractor, random_images):
    """At every step best_loss is the minimum of the losses so far and best_image is the image
    that had it: kept while the loss is higher, replaced when it falls below. A small learning
    rate makes the loss fall (the best changes); a large one makes it jump up after the first
    step (an older best is kept), so together the two runs exercise both branches."""
    content, style = random_images
    kept_an_older_best = changed_the_best = False
    for learning_rate in (0.01, 0.5):
        _, results = _run(
            content, [style], tiny_extractor, steps=15, learning_rate=learning_rate,
            style_weight=1.0,
        )  # fmt: skip
        best_indices = []
        for index, result in enumerate(results):
            best = int(np.argmin([earlier.loss for earlier in results[: index + 1]]))
            best_indices.append(best)
            assert result.best_loss == results[best].loss
            np.testing.assert_array_equal(result.best_image.numpy(), results[best].image.numpy())
        kept_an_older_best |= any(best != index for index, best in enumerate(best_indices))
        changed_the_best |= len(set(best_indices)) > 1
    assert kept_an_older_best and changed_the_best


def test_stylize_yields_step_results(tiny_extractor, random_images):
    content, style = random_images
    results = list(stylize(content, [style], _config(steps=3), tiny_extractor))
    assert [result.step for result in results] == [1, 2, 3]
    assert all(result.total_steps == 3 for result in results)
    assert results[-1].progress == pytest.approx(1.0)


# --- style blend and initialisation --------------------------------------------------------------


@pytest.mark.slow  # two runs: 2-3 s; the fast tier stays about a minute
def test_blend_one_zero_equals_the_first_style_alone(tiny_extractor, random_images):
    """Blend (1, 0) makes the target Gram 1 * G_A + 0 * G_B = G_A, the single-style target."""
    content, style = random_images
    other_style = np.random.default_rng(5).random((40, 30, 3), dtype=np.float32)
    blended, _ = _run(
        content, [style, other_style], tiny_extractor, style_blend=(1, 0), init="noise", seed=3
    )
    alone, _ = _run(content, [style], tiny_extractor, init="noise", seed=3)
    np.testing.assert_allclose(blended.final_image(), alone.final_image(), atol=1e-5)


def _first_image(content, style, extractor, init_image=None, **changes):
    _, results = _run(content, [style], extractor, init_image, steps=1, **changes)
    return results[0].image.numpy()


@pytest.mark.slow  # three runs: 2-3 s; the fast tier stays about a minute
def test_noise_init_is_reproducible_by_seed(tiny_extractor, random_images):
    content, style = random_images
    first = _first_image(content, style, tiny_extractor, init="noise", seed=7)
    again = _first_image(content, style, tiny_extractor, init="noise", seed=7)
    other = _first_image(content, style, tiny_extractor, init="noise", seed=8)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    assert not np.allclose(first, content)
    assert first.shape == (24, 32, 3)


def test_content_init_starts_from_the_content_image(tiny_extractor, random_images):
    content, style = random_images
    first = _first_image(content, style, tiny_extractor, init="content")
    np.testing.assert_allclose(first, content, atol=1e-6)


def test_style_init_starts_from_the_style_image(tiny_extractor, random_images):
    content, style = random_images
    first = _first_image(content, style, tiny_extractor, init="style")
    np.testing.assert_allclose(first, decoding.resize(style, 24, 32), atol=1e-6)


def test_recolored_init_starts_from_the_content_in_the_styles_colours(tiny_extractor):
    generator = np.random.default_rng(11)
    # A pale content and a dark, reddish style whose colours are well inside [0, 1], so that
    # clipping does not move the statistics.
    content = (0.55 + 0.1 * generator.random((24, 32, 3))).astype(np.float32)
    style = np.stack(
        [0.35 + 0.1 * generator.random((30, 40)), 0.2 + 0.05 * generator.random((30, 40)),
         np.full((30, 40), 0.15)], axis=-1,
    ).astype(np.float32)  # fmt: skip
    style[..., 2] += 0.5 * (style[..., 0] - 0.35)
    first = _first_image(content, style, tiny_extractor, init="recolored")
    mean, covariance = colors.color_statistics(first)
    style_mean, style_covariance = colors.color_statistics(style)
    np.testing.assert_allclose(mean, style_mean, atol=1e-4)
    np.testing.assert_allclose(covariance, style_covariance, atol=1e-5)
    # The content's layout is kept: the start is an affine recolouring of it.
    flat_first, flat_content = first.reshape(-1, 3), content.reshape(-1, 3)
    design = np.hstack([flat_content, np.ones((len(flat_content), 1))])
    _, residual, *_ = np.linalg.lstsq(design, flat_first, rcond=None)
    assert residual.max() < 1e-6


def test_path_init_starts_from_the_given_image(tiny_extractor, random_images):
    content, style = random_images
    start = np.random.default_rng(9).random((48, 64, 3), dtype=np.float32)
    first = _first_image(content, style, tiny_extractor, start, init="start.png")
    np.testing.assert_allclose(first, decoding.resize(start, 24, 32), atol=1e-6)


def test_path_init_without_image_raises(tiny_extractor, random_images):
    content, style = random_images
    with pytest.raises(StyleTransferError, match="init_image"):
        Optimization(content, [style], _config(init="start.png"), tiny_extractor)


# --- validation: one line, before anything runs ------------------------------------------------


def test_a_negative_seed_is_refused_in_one_line():
    """Old behaviour: numpy's default_rng(-1) raised ValueError, a traceback from the CLI. The
    config refuses it, before any network is built."""
    with pytest.raises(StyleTransferError, match=r"^`seed` must be an integer from 0 to \d+"):
        _config(init="noise", seed=-1)


def test_a_style_layer_named_twice_is_refused_not_half_dropped():
    """Old behaviour: the weights went into a dict keyed by layer name, so the second
    block1_conv1 silently replaced the first one's weight. The config refuses it."""
    with pytest.raises(StyleTransferError, match="`style_layers` names block1_conv1 more than"):
        _config(
            style_layers=("block1_conv1", "block1_conv1", "block2_conv1"),
            style_layer_weights=(1.0, 2.0, 3.0),
        )


def test_a_layer_may_be_both_content_and_style(tiny_extractor, random_images):
    """block2_conv1 as the only content layer and the only style layer gives both terms, each
    computed from its own target: the content term compares the image's features with the
    content's, the style term its Gram with the style's (to 1e-4 relative), both non-zero (a noise
    start, so the content term is not the zero of a content start). Each moves with its own weight
    only: content weight x2 and style weight x3 double one term and triple the other."""
    content, style = random_images
    layer = "block2_conv1"

    def first_step(**weights):
        config = _config(
            content_layers=(layer,), style_layers=(layer,), steps=1, init="noise", seed=2,
            **weights,
        )  # fmt: skip
        return config, next(Optimization(content, [style], config, tiny_extractor).steps())

    config, result = first_step()
    assert set(result.terms) == {f"content/{layer}", f"style/{layer}", "tv"}
    features = tiny_extractor(result.image.numpy()[None])[layer]
    expected_content = config.content_weight * losses.content_layer_loss(
        features, tiny_extractor(content[None])[layer], config.loss_normalization
    )
    expected_style = config.style_weight * losses.style_layer_loss(
        losses.gram_matrix(features),
        losses.gram_matrix(tiny_extractor(style[None])[layer]),
        config.loss_normalization,
    )
    content_term, style_term = result.terms[f"content/{layer}"], result.terms[f"style/{layer}"]
    assert content_term > 0 and style_term > 0
    assert content_term == pytest.approx(float(np.sum(expected_content)), rel=1e-4)
    assert style_term == pytest.approx(float(np.sum(expected_style)), rel=1e-4)
    _, reweighted = first_step(
        content_weight=2 * config.content_weight, style_weight=3 * config.style_weight
    )
    assert reweighted.terms[f"content/{layer}"] == pytest.approx(2 * content_term, rel=1e-4)
    assert reweighted.terms[f"style/{layer}"] == pytest.approx(3 * style_term, rel=1e-4)


def test_a_working_image_one_pixel_thin_is_a_size_error_not_a_nan(tiny_extractor):
    """Old behaviour: a 3x300 content at size 100 with block1 layers worked at 1x100 px, the TV
    term's mean over no neighbour pairs was NaN and the run stopped as "non-finite", which the
    CLI turned into "lower --learning-rate". Now the size is refused up front."""
    generator = np.random.default_rng(3)
    content = generator.random((3, 300, 3), dtype=np.float32)
    style = generator.random((32, 32, 3), dtype=np.float32)
    config = _config(size=100, content_layers=("block1_conv2",), style_layers=("block1_conv1",))
    with pytest.raises(
        StyleTransferError, match=r"works at 100x1 px.*below the 2 px the total-variation term"
    ):
        Optimization(content, [style], config, tiny_extractor)


def test_two_pixels_thin_is_enough_for_block1_layers():
    """The floor is exactly what the TV term needs: at 2 px thin every term is finite."""
    from tf_nst.features.extractor import build_feature_extractor

    shallow = build_feature_extractor(("block1_conv1", "block1_conv2"), "vgg19", None, "max")
    generator = np.random.default_rng(3)
    content = generator.random((6, 300, 3), dtype=np.float32)
    style = generator.random((32, 32, 3), dtype=np.float32)
    config = _config(
        size=100, steps=2, content_layers=("block1_conv2",), style_layers=("block1_conv1",)
    )
    optimization = Optimization(content, [style], config, shallow)
    results = list(optimization.steps())
    assert optimization.stop_reason is None
    assert all(np.isfinite(result.loss) for result in results)


# --- stopping ------------------------------------------------------------------------------------


def test_a_run_that_runs_out_of_time_says_so_whenever_the_clock_ticks(
    tiny_extractor, random_images, monkeypatch
):
    """A clock advancing 0.01 s a reading, against limits at every phase of a step's readings."""
    from tf_nst.optimize import optimization as optimization_module

    class TickingClock:
        now = 0.0

        def perf_counter(self):
            self.now += 0.01
            return self.now

    content, style = random_images
    for time_limit in (0.5, 0.51, 0.52, 0.53, 0.54):
        monkeypatch.setattr(optimization_module, "time", TickingClock())
        optimization, results = _run(
            content, [style], tiny_extractor, steps=1000, time_limit=time_limit
        )
        assert optimization.stop_reason == "time limit", time_limit
        assert 1 <= len(results) < 1000


def test_time_limit_stops_early_with_a_final_image(tiny_extractor, random_images):
    content, style = random_images
    optimization, results = _run(content, [style], tiny_extractor, steps=100_000, time_limit=1.0)
    assert optimization.stop_reason == "time limit"
    assert 1 <= len(results) < 100_000
    final = optimization.final_image()
    assert final.shape == (24, 32, 3)
    assert np.isfinite(final).all()


class _PoisonableExtractor:
    """Wraps an extractor; once `poison` is set, every feature map it returns is NaN."""

    def __init__(self, extractor):
        self.extractor = extractor
        self.poison = tf.Variable(False)

    def __call__(self, images, training=False):
        features = self.extractor(images, training=training)
        return {
            name: tf.where(self.poison, tf.fill(tf.shape(value), np.nan), value)
            for name, value in features.items()
        }


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_non_finite_loss_stops_and_keeps_the_best_finite_image(
    tiny_extractor, random_images, optimizer
):
    content, style = random_images
    extractor = _PoisonableExtractor(tiny_extractor)
    optimization = Optimization(content, [style], _config(steps=20, optimizer=optimizer), extractor)
    results = []
    for result in optimization.steps():
        results.append(result)
        if result.step == 5:
            extractor.poison.assign(True)
    assert len(results) == 5
    assert "non-finite" in optimization.stop_reason
    assert np.isfinite([result.loss for result in results]).all()
    final = optimization.final_image()
    assert np.isfinite(final).all()
    _assert_final_is_best(optimization, results)


# --- L-BFGS --------------------------------------------------------------------------------------


def test_lbfgs_loss_falls_and_keeps_the_best(tiny_extractor, random_images):
    content, style = random_images
    threads_before = threading.active_count()
    optimization = Optimization(
        content, [style], _config(steps=15, optimizer="lbfgs"), tiny_extractor
    )
    results = []
    threads_during = []
    for result in optimization.steps():
        results.append(result)
        threads_during.append(threading.active_count())
    assert threads_during[0] == threads_before + 1  # the L-BFGS worker was running
    assert threading.active_count() == threads_before
    assert 1 < len(results) <= 15
    assert optimization.best_loss < results[0].loss
    _assert_final_is_best(optimization, results)


def test_lbfgs_worker_thread_ends_when_the_consumer_breaks_early(tiny_extractor, random_images):
    content, style = random_images
    threads_before = threading.active_count()
    optimization = Optimization(
        content, [style], _config(steps=50, optimizer="lbfgs"), tiny_extractor
    )
    results = []
    threads_during = None
    for result in optimization.steps():
        results.append(result)
        if result.step == 3:
            threads_during = threading.active_count()
            break
    assert threads_during == threads_before + 1  # the L-BFGS worker was running
    # Leaving the loop drops the generator, which closes it and its L-BFGS worker.
    assert threading.active_count() == threads_before
    assert len(results) == 3
    _assert_final_is_best(optimization, results)


# --- style scale, colours, multi-scale -----------------------------------------------------------


@pytest.mark.slow  # two runs: 2-3 s; the fast tier stays about a minute
def test_style_scale_resizes_the_style_before_its_gram(tiny_extractor, random_images):
    """With style_scale 0.5 at long side 32 the 32x32 style is seen at round(32 * 0.5) = 16 px.

    The first step evaluates the content image (content init), so its style term for a layer is
    style_weight * layer weight * sum((G - A)^2) / sum(A^2), with G the content's Gram and A the
    Gram of the style resized to 16x16. It must differ from the term at style_scale 1.
    """
    content, style = random_images
    config = _config(init="content")
    half = Optimization(content, [style], config.replace(style_scale=0.5), tiny_extractor)
    full = Optimization(content, [style], config, tiny_extractor)
    half_terms = next(half.steps()).terms
    full_terms = next(full.steps()).terms
    content_features = tiny_extractor(content[None])
    style_features = tiny_extractor(decoding.resize(style, 16, 16)[None])
    layer_weights = config.loss_weights().style_layers
    for name in config.style_layers:
        expected = (
            config.style_weight
            * layer_weights[name]
            * losses.style_layer_loss(
                losses.gram_matrix(content_features[name]),
                losses.gram_matrix(style_features[name]),
                "normalized",
            )
        )
        assert half_terms[f"style/{name}"] == pytest.approx(float(expected[0]), rel=1e-4)
        assert half_terms[f"style/{name}"] != pytest.approx(full_terms[f"style/{name}"], rel=1e-3)
    for name in config.content_layers:
        assert half_terms[f"content/{name}"] == full_terms[f"content/{name}"]


def test_preserve_colors_luminance_keeps_the_content_chroma(tiny_extractor, random_images):
    """The output is the optimised luminance Y with the content's I and Q. Clipping to [0, 1]
    changes I and Q only at pixels with a clipped channel, so at every pixel strictly inside
    (0, 1) the output's I and Q equal the content's."""
    content, style = random_images
    optimization, _ = _run(content, [style], tiny_extractor, steps=5, preserve_colors="luminance")
    final = optimization.final_image()
    assert final.shape == (24, 32, 3)
    assert final.dtype == np.float32
    assert final.min() >= 0.0 and final.max() <= 1.0
    inside = np.all((final > 0.0) & (final < 1.0), axis=-1)
    assert inside.any()
    np.testing.assert_allclose(
        colors.rgb_to_yiq(final)[inside][:, 1:],
        colors.rgb_to_yiq(content)[inside][:, 1:],
        atol=1e-5,
    )


def _color_statistics(image):
    """The pixel mean and (population) colour covariance of an HxWx3 image, in float64."""
    pixels = np.asarray(image, np.float64).reshape(-1, 3)
    return pixels.mean(axis=0), np.cov(pixels, rowvar=False, bias=True)


def _color_errors(image, reference):
    """(largest channel mean difference, covariance difference relative to the reference's, in
    Frobenius norm) between two images' colour statistics."""
    (mean, covariance), (reference_mean, reference_covariance) = map(
        _color_statistics, (image, reference)
    )
    return (
        float(np.abs(mean - reference_mean).max()),
        float(
            np.linalg.norm(covariance - reference_covariance) / np.linalg.norm(reference_covariance)
        ),
    )


def test_preserve_colors_histogram_gives_the_output_the_photos_colours(
    tiny_extractor, random_images
):
    """A bluish photo and an orange painting whose channels move together, of the same 24x32 size
    (no resizing blurs the statistics). With --preserve-colors histogram the network sees the
    painting recoloured to the photo's colour mean and covariance, so a run started from that
    style image (--init style; 5 steps change it little) ends with the photo's colours: every
    channel mean within 0.02 and the covariance within 10 % (relative, Frobenius). The same run
    without the option keeps the painting's colours, far outside both tolerances."""
    photo = ((0.25 + 0.5 * random_images[0]) * np.array([0.9, 1.0, 1.2])).astype(np.float32)
    rows, columns = np.mgrid[0:24, 0:32] / 32
    wave = (np.sin(3 * columns + 2 * rows)[..., None] + 1) / 2
    noise = np.random.default_rng(4).random((24, 32, 3))
    painting = np.clip(0.1 + wave * [0.8, 0.5, 0.15] + 0.08 * noise, 0, 1).astype(np.float32)
    assert min(_color_errors(painting, photo)) > 0.3  # the premise: the colours differ

    def final_image(mode):
        optimization, results = _run(
            photo, [painting], tiny_extractor, steps=5, init="style", preserve_colors=mode
        )
        assert len(results) == 5
        final = optimization.final_image()
        assert final.shape == (24, 32, 3) and final.dtype == np.float32
        assert final.min() >= 0.0 and final.max() <= 1.0
        return optimization, final

    matched, final = final_image("histogram")
    mean_error, covariance_error = _color_errors(matched.styles[0], photo)  # what the network sees
    assert mean_error < 1e-3 and covariance_error < 0.05
    mean_error, covariance_error = _color_errors(final, photo)
    assert mean_error < 0.02 and covariance_error < 0.1
    _, unmatched = final_image("none")
    mean_error, covariance_error = _color_errors(unmatched, photo)
    assert mean_error > 0.1 and covariance_error > 0.5


@pytest.mark.slow  # two scales, two traces: 2-3 s; the fast tier stays about a minute
def test_multiscale_runs_coarse_then_fine_and_ends_at_output_size(tiny_extractor, random_images):
    """size 64 with 2 scales: long side 32 (24x32 working) then 64 (48x64, the output size)."""
    content, style = random_images
    optimization, results = _run(content, [style], tiny_extractor, size=64, scales=2, steps=10)
    indices = [result.scale_index for result in results]
    assert indices == sorted(indices)
    assert indices[0] == 0 and indices[-1] == 1
    assert all(result.scale_count == 2 for result in results)
    for result in results:
        expected = working_shape(content.shape, optimization.scales[result.scale_index].long_side)
        assert tuple(result.image.shape) == (*expected, 3)
    assert optimization.final_image().shape == (48, 64, 3)
    assert results[-1].progress == pytest.approx(1.0)


# --- checkpoint and restore ----------------------------------------------------------------------


def _write_checkpoint(optimization, directory):
    """A bare `Checkpoint.write`, as a Python user might save one."""
    return optimization.checkpoint().write(str(directory / "state"))


def _save_with_the_run_machinery(optimization, directory):
    """The product's way: `tf_nst.run.Checkpoints.save`, through `CheckpointManager.save`."""
    from tf_nst.run import Checkpoints, ResumeKey
    from tf_nst.run.outputs import latest_checkpoint

    checkpoints = Checkpoints(
        directory / "out.png.checkpoint", ResumeKey("stylize", {}, {}), "run", resumed=False
    )
    checkpoints.save(optimization)  # a Optimization has what a job needs: `step` and `checkpoint()`
    return latest_checkpoint(directory / "out.png.checkpoint")


@pytest.mark.parametrize(
    "writer",
    # The bare write is slow (2-3 s): the fast tier keeps the product's way.
    [pytest.param(_write_checkpoint, marks=pytest.mark.slow), _save_with_the_run_machinery],
)
def test_restore_from_checkpoint_continues_exactly(tiny_extractor, random_images, tmp_path, writer):
    """10 steps, checkpoint, 10 more gives image A. A new Optimization restored from the checkpoint
    runs the remaining 10 steps from the same image, Adam state and best image, so it must end at
    the same image and the same step count."""
    content, style = random_images
    config = _config(steps=20)
    original = Optimization(content, [style], config, tiny_extractor)
    path = None
    for result in original.steps():
        if result.step == 10:
            path = writer(original, tmp_path)
    assert original.step == 20

    resumed = Optimization(content, [style], config, tiny_extractor)
    resumed.restore(path)
    assert resumed.step == 10
    results = list(resumed.steps())
    assert [result.step for result in results] == list(range(11, 21))
    assert resumed.step == original.step
    assert resumed.best_loss == pytest.approx(original.best_loss, rel=1e-6)
    np.testing.assert_allclose(resumed.final_image(), original.final_image(), atol=1e-6)


def _checkpoint_after_steps(tiny_extractor, random_images, directory, steps=3):
    content, style = random_images
    config = _config(steps=10)
    optimization = Optimization(content, [style], config, tiny_extractor)
    for result in optimization.steps():
        if result.step == steps:
            break
    return optimization.checkpoint().write(str(directory / "state")), config


@pytest.mark.parametrize("part", ["data", "index"])
def test_a_truncated_checkpoint_is_a_one_line_error(tiny_extractor, random_images, tmp_path, part):
    """Old behaviour: a data file cut in half made TensorFlow raise IndexError ("Read less bytes
    than requested"), which nothing caught: a traceback. Any unreadable checkpoint is now a
    StyleTransferError that says to start over."""
    path, config = _checkpoint_after_steps(tiny_extractor, random_images, tmp_path)
    target = next(tmp_path.glob(f"state.{part}*"))
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    content, style = random_images
    resumed = Optimization(content, [style], config, tiny_extractor)
    with pytest.raises(StyleTransferError) as raised:
        resumed.restore(path)
    message = str(raised.value)
    assert message.endswith("to start over, do not restore it")
    assert "truncated or corrupt" in message and "\n" not in message


def test_a_checkpoint_of_another_content_size_is_refused(tiny_extractor, random_images, tmp_path):
    """The restore first reads the scale and image shape through a small tf.train.Checkpoint, so
    a mismatch is named rather than failing inside TensorFlow."""
    path, config = _checkpoint_after_steps(tiny_extractor, random_images, tmp_path)
    content, style = random_images
    other = Optimization(content[:, :16], [style], config, tiny_extractor)
    with pytest.raises(StyleTransferError, match=r"holds a 32x24 image but this run works at"):
        other.restore(path)


def test_a_checkpoint_without_the_run_state_is_refused(tiny_extractor, random_images, tmp_path):
    path = tf.train.Checkpoint(unrelated=tf.Variable(1.0)).write(str(tmp_path / "other"))
    content, style = random_images
    optimization = Optimization(content, [style], _config(), tiny_extractor)
    with pytest.raises(StyleTransferError, match="cannot be restored"):
        optimization.restore(path)


def test_an_error_in_the_lbfgs_worker_reaches_the_caller(
    tiny_extractor, random_images, monkeypatch
):
    """scipy runs in a worker thread; an exception there must not pass for "scipy finished"."""
    from scipy import optimize

    def failing_minimize(*arguments, **options):
        raise MemoryError("simulated: no room for the L-BFGS history")

    monkeypatch.setattr(optimize, "minimize", failing_minimize)
    content, style = random_images
    optimization = Optimization(content, [style], _config(optimizer="lbfgs"), tiny_extractor)
    with pytest.raises(MemoryError, match="simulated"):
        list(optimization.steps())
