"""The optimisation: a compiled step and the Python loop around it.

`Optimization` owns one run: the targets at each scale, the image variable, the optimizer and
the best image so far. `Optimization.steps()` yields a `StepResult` per step; what to print,
save or log is the caller's business, so this module does no file I/O.

The compiled step (`make_adam_step`, `make_loss_and_gradient`) takes the extractor, optimizer and
targets as arguments instead of closing over globals, so a second run in the same process needs no
re-initialisation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from tf_nst.config import INITS, StyleConfig
from tf_nst.errors import StyleTransferError
from tf_nst.features.backbones import validate_layer_choice
from tf_nst.features.extractor import build_feature_extractor
from tf_nst.features.targets import style_gram_targets
from tf_nst.image import colors, decoding
from tf_nst.losses import LossWeights, total_loss
from tf_nst.optimize.lbfgs import LbfgsDriver
from tf_nst.optimize.scales import (
    check_image_sizes,
    style_long_side,
    working_shape,
)
from tf_nst.precision import resolve_precision
from tf_nst.run.outputs import start_over


@dataclasses.dataclass(frozen=True)
class StepResult:
    """What one optimisation step produced.

    Attributes:
        step: Steps done so far, over all scales (1-based).
        total_steps: Steps planned over all scales.
        scale_index: Index of the current scale, 0 for the coarsest.
        scale_count: Number of scales.
        loss: Total loss of `image`.
        terms: Named loss terms of `image` ("style/LAYER", "content/LAYER", "tv").
        best_loss: Lowest total loss seen at this scale.
        image: The image this step evaluated, `[height, width, 3]`, in working space (luminance
            only with `preserve_colors="luminance"`; see `Optimization.postprocess`). In [0, 1] with
            Adam; L-BFGS runs unbounded, so its iterates may stray slightly outside and are
            clipped by `Optimization.postprocess`.
        best_image: The lowest-loss image at this scale so far.
        step_seconds: Wall time of this step.
        elapsed_seconds: Wall time since the run started.
        progress: Fraction of the planned work done, weighted by pixels per step.
    """

    step: int
    total_steps: int
    scale_index: int
    scale_count: int
    loss: float
    terms: Mapping[str, float]
    best_loss: float
    image: tf.Tensor
    best_image: tf.Tensor
    step_seconds: float
    elapsed_seconds: float
    progress: float


def _resize(image, height: int, width: int) -> np.ndarray:
    """Resizes an `[height, width, 3]` image, numpy or tensor, with `decoding.resize`.

    That is the package's one resizer (Lanczos, in numpy and Pillow, so the CLI can use it before
    TensorFlow loads). Its clip to [0, 1] also bounds L-BFGS's unbounded iterates.
    """
    pixels = image.numpy() if isinstance(image, tf.Tensor | tf.Variable) else image
    return decoding.resize(np.asarray(pixels, np.float32), height, width)


def make_adam_step(
    extractor: keras.Model, optimizer: keras.optimizers.Optimizer, weights: LossWeights, jit: bool
):
    """Returns a compiled Adam step over an image variable.

    The step evaluates the loss of the image as it is, applies one Adam update and clips the image
    to [0, 1]. It returns `(loss, terms, evaluated_image, finite)`: the loss and terms belong to
    `evaluated_image`, the image before the update, which is what keep-best must store.

    Args:
        extractor: The feature extractor.
        optimizer: The Adam optimizer; its state belongs to this scale's image variable.
        weights: Loss weights and normalisation.
        jit: Compile with XLA.
    """

    @tf.function(jit_compile=jit, reduce_retracing=True)
    def step(image, content_targets, style_gram_targets):
        evaluated = tf.identity(image)
        loss, terms, gradient = _loss_and_gradient(
            extractor, weights, image, content_targets, style_gram_targets
        )
        finite = tf.logical_and(tf.math.is_finite(loss), tf.reduce_all(tf.math.is_finite(gradient)))
        optimizer.apply_gradients([(gradient, image)])
        image.assign(tf.clip_by_value(image, 0.0, 1.0))
        return loss, terms, evaluated, finite

    return step


def make_loss_and_gradient(extractor: keras.Model, weights: LossWeights, jit: bool):
    """Returns a compiled function image -> (loss, terms, gradient), for L-BFGS."""

    @tf.function(jit_compile=jit, reduce_retracing=True)
    def loss_and_gradient(image, content_targets, style_gram_targets):
        return _loss_and_gradient(extractor, weights, image, content_targets, style_gram_targets)

    return loss_and_gradient


def _loss_and_gradient(extractor, weights, image, content_targets, style_gram_targets):
    """The total loss of `image` (a batch of one), its terms and its gradient."""
    with tf.GradientTape() as tape:
        tape.watch(image)
        losses, terms = total_loss(
            extractor(image, training=False), content_targets, style_gram_targets, image, weights
        )
        loss = losses[0]
    return loss, {name: value[0] for name, value in terms.items()}, tape.gradient(loss, image)


class Optimization:
    """One style-transfer run: targets, image variable, optimizer, best image.

    Args:
        content: Content image, float `[height, width, 3]` RGB in [0, 1].
        styles: One or more style images of the same form.
        config: The run's settings.
        extractor: A feature extractor returning at least the config's layers; built from the
            config when None (tests pass a tiny random one).
        init_image: The starting image when `config.init` is a path (the caller loads it).

    Raises:
        StyleTransferError: For images too small for the layers, a blend that does not match the
            style count, or an init path without `init_image`.
    """

    def __init__(
        self,
        content: np.ndarray,
        styles: Sequence[np.ndarray],
        config: StyleConfig,
        extractor: keras.Model | None = None,
        init_image: np.ndarray | None = None,
    ):
        if not styles:
            raise StyleTransferError("no style image given: pass at least one STYLE image")
        self.config = config
        self.blend = config.normalized_style_blend(len(styles))
        layers = validate_layer_choice(config.backbone, config.content_layers, config.style_layers)
        self.scales = check_image_sizes(config, content.shape, [style.shape for style in styles])
        if config.init not in INITS and init_image is None:
            raise StyleTransferError(f"--init {config.init} is a path: load it and pass init_image")
        self.precision = resolve_precision(config.precision)
        if extractor is None:
            extractor = build_feature_extractor(
                layers, config.backbone, config.weights, config.pooling, self.precision
            )
        self.extractor = extractor
        self.weights = config.loss_weights()
        self.output_shape = working_shape(content.shape, config.size)
        self.content = np.asarray(content, np.float32)
        self._content_for_network, self.styles = colors.network_inputs(
            self.content, styles, config.preserve_colors
        )
        self._init_image = init_image
        self._output_content: np.ndarray | None = None
        self.step = 0
        self.scale_index = 0
        self.best_loss = math.inf
        self.best_image: tf.Tensor | None = None
        self.stop_reason: str | None = None
        self._image: tf.Variable | None = None
        self._optimizer: keras.optimizers.Optimizer | None = None
        self._scale_ready = -1
        self._restored_step_in_scale = 0

    # --- per-scale setup -------------------------------------------------------------------

    def _prepare_scale(self, index: int, start_image=None) -> None:
        scale = self.scales[index]
        height, width = working_shape(self.content.shape, scale.long_side)
        content = _resize(self._content_for_network, height, width)
        self.style_gram_targets = style_gram_targets(
            self.extractor,
            self.styles,
            style_long_side(scale.long_side, self.config.style_scale),
            self.config.style_layers,
            self.blend,
        )
        content_features = self.extractor(content[None], training=False)
        self.content_targets = {name: content_features[name] for name in self.config.content_layers}
        if start_image is None:
            start_image = self._initial_image(index, content, height, width)
        self._image = tf.Variable(
            _resize(start_image, height, width)[None], name="image", dtype=tf.float32
        )
        self._optimizer = keras.optimizers.Adam(learning_rate=self.config.learning_rate)
        self._optimizer.build([self._image])
        self._adam_step = make_adam_step(
            self.extractor, self._optimizer, self.weights, self.config.jit
        )
        self.scale_index = index
        self.best_loss = math.inf
        self._scale_ready = index

    def _initial_image(self, index, content, height, width):
        if index > 0:
            return self.best_image
        init = self.config.init
        if init == "content":
            return content
        if init == "recolored":
            mean, covariance = colors.blended_color_statistics(self.styles, self.blend)
            return colors.recolor(content, mean, covariance)
        if init == "noise":
            generator = np.random.default_rng(self.config.seed)
            return generator.uniform(0.0, 1.0, (height, width, 3)).astype(np.float32)
        if init == "style":
            return _resize(self.styles[0], height, width)
        return _resize(self._init_image, height, width)

    # --- checkpoint and resume -------------------------------------------------------------

    def checkpoint(self) -> tf.train.Checkpoint:
        """Returns a `tf.train.Checkpoint` of the run's current state.

        It holds the image variable, the Adam state, the step, the scale, the best image and the
        best loss; `restore` reads it back. The caller decides where to write it.
        """
        if self._scale_ready < 0:
            self._prepare_scale(0)
        best = self.best_image if self.best_image is not None else self._image[0]
        return tf.train.Checkpoint(
            image=self._image,
            optimizer=self._optimizer,
            step=tf.Variable(self.step, dtype=tf.int64),
            scale_index=tf.Variable(self.scale_index, dtype=tf.int64),
            best_loss=tf.Variable(self.best_loss, dtype=tf.float64),
            best_image=tf.Variable(best),
        )

    def restore(self, path: str) -> None:
        """Restores the state saved by `checkpoint()` at `path`, so that `steps()` continues.

        Everything is read through `tf.train.Checkpoint` objects: first a small one holding only
        the scale index and the image (of any shape), which say how to build this run's state at
        that scale; then the full `checkpoint()` structure, restored in place.

        Raises:
            StyleTransferError: If the checkpoint does not belong to this run's settings, or
                cannot be read (missing, truncated or corrupt), in one line.
        """
        layout = tf.train.Checkpoint(
            scale_index=tf.Variable(-1, dtype=tf.int64),
            image=tf.Variable(tf.zeros([0, 0, 0, 3]), shape=tf.TensorShape(None)),
        )
        with _unreadable_checkpoint(path):
            layout.read(path).expect_partial().assert_existing_objects_matched()
        scale_index = int(layout.scale_index.numpy())
        image_shape = [int(side) for side in tf.shape(layout.image).numpy()]
        del layout
        if not 0 <= scale_index < len(self.scales):
            raise StyleTransferError(
                f"checkpoint {path} is at scale {scale_index + 1} but this run has "
                f"{len(self.scales)}: resume with the same --size, --steps and --scales"
            )
        height, width = working_shape(self.content.shape, self.scales[scale_index].long_side)
        if image_shape != [1, height, width, 3]:
            raise StyleTransferError(
                f"checkpoint {path} holds a {image_shape[2]}x{image_shape[1]} image but this run "
                f"works at {width}x{height}: resume with the same content image and --size"
            )
        self._prepare_scale(scale_index, start_image=np.zeros((height, width, 3), np.float32))
        state = self.checkpoint()
        # read(), not restore(): it also accepts `Checkpoint.write()` files, which have no
        # save_counter; expect_partial() silences the unused save_counter of `save()` files.
        with _unreadable_checkpoint(path):
            state.read(path).assert_existing_objects_matched().expect_partial()
        self.step = int(state.step.numpy())
        self.best_loss = float(state.best_loss.numpy())
        self.best_image = tf.convert_to_tensor(state.best_image)
        self._restored_step_in_scale = self.step - sum(
            scale.steps for scale in self.scales[:scale_index]
        )

    # --- the loop ----------------------------------------------------------------------------

    def steps(self) -> Iterator[StepResult]:
        """Runs the optimisation, yielding one `StepResult` per step.

        The loop ends when all planned steps are done, when `config.time_limit` runs out
        (`stop_reason` says "time limit"), or at a non-finite loss or gradient (`stop_reason`
        says so; the best finite image is kept). Breaking out of the loop is safe at any point:
        `final_image()` then returns the best image so far.
        """
        started = time.perf_counter()
        deadline = None if self.config.time_limit is None else started + self.config.time_limit
        costs = [
            scale.steps * math.prod(working_shape(self.content.shape, scale.long_side))
            for scale in self.scales
        ]
        first_scale = max(self.scale_index, 0)
        for index in range(first_scale, len(self.scales)):
            if self._scale_ready != index:
                self._prepare_scale(index, start_image=None if index == 0 else self.best_image)
                done_in_scale = 0
            else:
                done_in_scale = self._restored_step_in_scale
            # The last scale runs to the run's own deadline, so running out there says so.
            scale_deadline = None
            if deadline is not None and index + 1 < len(self.scales):
                remaining_cost = sum(costs[index:])
                share = costs[index] / remaining_cost if remaining_cost else 1.0
                now = time.perf_counter()
                scale_deadline = now + (deadline - now) * share
            iterate = self._lbfgs_scale if self.config.optimizer == "lbfgs" else self._adam_scale
            for loss, terms, image, seconds in iterate(self.scales[index].steps - done_in_scale):
                self.step += 1
                done_in_scale += 1
                if loss < self.best_loss:
                    self.best_loss = loss
                    self.best_image = image
                done_cost = sum(costs[:index]) + costs[index] * done_in_scale / max(
                    1, self.scales[index].steps
                )
                yield StepResult(
                    step=self.step,
                    total_steps=sum(scale.steps for scale in self.scales),
                    scale_index=index,
                    scale_count=len(self.scales),
                    loss=loss,
                    terms=terms,
                    best_loss=self.best_loss,
                    image=image,
                    best_image=self.best_image,
                    step_seconds=seconds,
                    elapsed_seconds=time.perf_counter() - started,
                    progress=done_cost / sum(costs),
                )
                if self.stop_reason:
                    return
                now = time.perf_counter()
                if deadline is not None and now >= deadline:
                    self.stop_reason = "time limit"
                    return
                if scale_deadline is not None and now >= scale_deadline:
                    break
            self._restored_step_in_scale = 0

    def _adam_scale(self, count: int):
        """Yields (loss, terms, evaluated image, seconds) for `count` Adam steps."""
        for _ in range(count):
            started = time.perf_counter()
            loss, terms, evaluated, finite = self._adam_step(
                self._image, self.content_targets, self.style_gram_targets
            )
            loss = float(loss)
            seconds = time.perf_counter() - started
            if not bool(finite):
                self.stop_reason = f"non-finite loss or gradient at step {self.step + 1}"
                if not math.isfinite(loss):
                    return
            yield loss, {name: float(value) for name, value in terms.items()}, evaluated[0], seconds
            if self.stop_reason:
                return

    def _lbfgs_scale(self, count: int):
        """Yields (loss, terms, evaluated image, seconds) for `count` L-BFGS evaluations."""
        function = make_loss_and_gradient(self.extractor, self.weights, self.config.jit)
        driver = LbfgsDriver(self._image[0].numpy(), count)
        try:
            for _ in range(count):
                started = time.perf_counter()
                point = driver.next_point()
                if point is None:
                    return
                image = tf.convert_to_tensor(point[None])
                loss, terms, gradient = function(
                    image, self.content_targets, self.style_gram_targets
                )
                loss = float(loss)
                gradient = gradient.numpy()
                if not (math.isfinite(loss) and np.isfinite(gradient).all()):
                    self.stop_reason = f"non-finite loss or gradient at step {self.step + 1}"
                    if not math.isfinite(loss):
                        return
                driver.answer(loss, gradient)
                self._image.assign(image)
                yield (
                    loss,
                    {name: float(value) for name, value in terms.items()},
                    image[0],
                    time.perf_counter() - started,
                )
                if self.stop_reason:
                    return
        finally:
            driver.close()

    # --- results -------------------------------------------------------------------------------

    def postprocess(self, image) -> np.ndarray:
        """Returns `image` at the output size, in RGB, as float32 numpy in [0, 1].

        With `preserve_colors="luminance"` the optimised luminance is recombined with the
        content's chroma here; otherwise the image is only resized.
        """
        height, width = self.output_shape
        if self._output_content is None:  # resized once, not at every intermediate save
            self._output_content = _resize(self.content, height, width)
        return colors.restore_colors(
            _resize(image, height, width), self._output_content, self.config.preserve_colors
        )

    def final_image(self) -> np.ndarray:
        """Returns the best image of the latest scale, at the output size, post-processed.

        Raises:
            StyleTransferError: If no step has run yet.
        """
        if self.best_image is None:
            raise StyleTransferError("no step has run yet, so there is no image to save")
        return self.postprocess(self.best_image)


def stylize(
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    config: StyleConfig | None = None,
    extractor: keras.Model | None = None,
    init_image: np.ndarray | None = None,
) -> Iterator[StepResult]:
    """Yields the steps of a style-transfer run; the notebook-friendly entry point.

    Example:
        >>> results = list(stylize(content, [style], StyleConfig(steps=100)))
        >>> best = results[-1].best_image

    For the output at full size with colour post-processing, use `Optimization` and its
    `final_image()`.
    """
    return Optimization(content, styles, config or StyleConfig(), extractor, init_image).steps()


@contextlib.contextmanager
def _unreadable_checkpoint(path: str):
    """Turns any failure to read a checkpoint into a one-line `StyleTransferError`.

    A truncated or corrupt checkpoint makes TensorFlow raise many types (`OpError`, `ValueError`,
    `AssertionError`, and `IndexError` for a short data file), much like corrupt image bytes do.
    """
    try:
        yield
    except StyleTransferError:
        raise
    except Exception as error:
        lines = (str(error).strip() or type(error).__name__).splitlines()
        reason = f"{type(error).__name__}: {lines[0].rstrip(' :.')}"
        raise StyleTransferError(
            f"checkpoint {path} cannot be restored ({reason}; is it truncated or corrupt?): "
            + start_over(os.path.dirname(os.path.abspath(path)))
        ) from None
