"""Training a fast style network (Johnson et al. 2016): the distributed step and the loop.

`NetworkTrainer` owns one training run: the photos, the style Gram targets, the transform network
and its Adam state under a `tf.distribute` strategy, and the best network on the held-out
validation photos. `NetworkTrainer.steps()` yields a `TrainStepResult` per step, like
`Optimization.steps()`; what to print, log or save is the caller's business, so this module reads
photos and nothing else.

The compiled step follows the TensorFlow distributed-training guide: the model and optimizer are
built in `strategy.scope()`, batches come from `strategy.experimental_distribute_dataset`, the
step runs under `strategy.run`, and each replica divides the sum of its per-example losses by the
GLOBAL batch (`tf.nn.compute_average_loss`), so the gradients the optimizer sums over replicas are
those of the mean over the global batch, whatever the number of replicas.
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

from tf_nst.config import TrainConfig
from tf_nst.errors import StyleTransferError
from tf_nst.features.extractor import build_feature_extractor, minimum_input_side
from tf_nst.features.targets import style_gram_targets
from tf_nst.losses import LossWeights, style_terms, total_loss
from tf_nst.networks import data
from tf_nst.networks.distribute import make_strategy, replica_count
from tf_nst.networks.memory import check_train_sizes
from tf_nst.precision import resolve_precision
from tf_nst.run.console import call_on_signal
from tf_nst.sizes import minimum_working_side


@dataclasses.dataclass(frozen=True)
class TrainStepResult:
    """What one training step produced.

    Attributes:
        step: Steps done so far (1-based), counting those before a resume.
        total_steps: Steps planned.
        loss: Total loss of this step's global batch.
        terms: Named loss terms of this batch ("style/LAYER", "content/LAYER", "tv"), summing to
            `loss`.
        validation_loss: Mean total loss over the validation photos after this step, on
            validation steps; None otherwise.
        best_loss: Lowest validation loss so far (inf before the first validation).
        validation_images: The validation photos stylized after this step, float32
            `[photos, size, size, 3]` in [0, 1], on validation steps; None otherwise.
        images_per_second: Training photos per second of this step (global batch / step time).
        learning_rate: Adam's learning rate at this step.
        elapsed_seconds: Wall time since `steps()` started.
        progress: Fraction of the planned steps done.
    """

    step: int
    total_steps: int
    loss: float
    terms: Mapping[str, float]
    validation_loss: float | None
    best_loss: float
    validation_images: np.ndarray | None
    images_per_second: float
    learning_rate: float
    elapsed_seconds: float
    progress: float


# --- the losses and the compiled step ----------------------------------------------------------


def make_train_step(
    model: keras.Model,
    extractor: keras.Model,
    content_extractor: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    weights: LossWeights,
    strategy: tf.distribute.Strategy,
    global_batch_size: int,
    jit: bool = False,
    coarse_style_weight: float = 0.0,
):
    """Returns the compiled distributed training step.

    The step takes a distributed batch of photos, the style Gram targets and the coarse ones
    (at half the style size; empty when `coarse_style_weight` is 0), runs one Adam update
    of `model` on every replica (the optimizer sums the replicas' gradients), and returns the
    global batch's mean loss and terms.

    XLA compiles the per-replica loss and gradient only: the optimizer's cross-replica sum is a
    `merge_call`, which XLA cannot compile.
    """
    loss_scaling = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    losses_of = make_losses(extractor, weights, coarse_style_weight)

    @tf.function(jit_compile=jit, reduce_retracing=True)
    def loss_and_gradients(photos, style_gram_targets, coarse_gram_targets):
        photo_features = content_extractor(photos, training=False)
        content_targets = {
            name: tf.stop_gradient(photo_features[name]) for name in weights.content_layers
        }
        with tf.GradientTape() as tape:
            stylized = model(photos, training=True)
            losses, terms = losses_of(
                stylized, content_targets, style_gram_targets, coarse_gram_targets
            )
            loss = tf.nn.compute_average_loss(losses, global_batch_size=global_batch_size)
            scaled = optimizer.scale_loss(loss) if loss_scaling else loss
        gradients = tape.gradient(scaled, model.trainable_variables)
        terms = {
            name: tf.nn.compute_average_loss(value, global_batch_size=global_batch_size)
            for name, value in terms.items()
        }
        return loss, terms, gradients

    def replica_step(photos, style_gram_targets, coarse_gram_targets):
        loss, terms, gradients = loss_and_gradients(photos, style_gram_targets, coarse_gram_targets)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss, terms

    @tf.function(reduce_retracing=True)
    def train_step(photos, style_gram_targets, coarse_gram_targets):
        loss, terms = strategy.run(
            replica_step, args=(photos, style_gram_targets, coarse_gram_targets)
        )
        total = strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
        terms = {
            name: strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
            for name, value in terms.items()
        }
        return total, terms

    return train_step


def make_losses(extractor: keras.Model, weights: LossWeights, coarse_style_weight: float = 0.0):
    """Returns `losses(stylized, content targets, Gram targets, coarse Gram targets)`.

    It gives `(per-example loss, terms)`: `total_loss` on the stylized photos, plus, when
    `coarse_style_weight` is above 0, "coarse_style/LAYER" terms: the Gram errors of the stylized
    photos reduced to half their size (2x2 means) against the style images' Gram matrices
    at half the style size, weighted by `coarse_style_weight` times the style weight. Those ask
    for the painting's structures at twice the scale that the full-size terms see.
    """

    def losses(stylized, content_targets, style_gram_targets, coarse_gram_targets):
        features = extractor(stylized, training=False)
        total, terms = total_loss(features, content_targets, style_gram_targets, stylized, weights)
        if coarse_style_weight:
            # A 2x2 mean is area resizing by half, and has a gradient (ResizeArea has none).
            coarse = tf.nn.avg_pool2d(stylized, 2, 2, "VALID")
            coarse_features = extractor(coarse, training=False)
            coarse_terms = style_terms(
                coarse_features, coarse_gram_targets, weights, coarse_style_weight, "coarse_style"
            )
            terms.update(coarse_terms)
            total = total + tf.add_n(list(coarse_terms.values()))
        return total, terms

    return losses


def make_validation(
    model: keras.Model,
    extractor: keras.Model,
    content_extractor: keras.Model,
    weights: LossWeights,
    jit: bool = False,
    coarse_style_weight: float = 0.0,
):
    """Returns a compiled function photos -> (per-example losses, stylized photos).

    It runs on this task alone, outside `strategy.run`: every task holds the same synchronised
    weights and the same validation photos, so every task reaches the same keep-best decision.
    """
    losses_of = make_losses(extractor, weights, coarse_style_weight)

    @tf.function(jit_compile=jit, reduce_retracing=True)
    def validate(photos, style_gram_targets, coarse_gram_targets):
        stylized = model(photos, training=False)
        photo_features = content_extractor(photos, training=False)
        content_targets = {name: photo_features[name] for name in weights.content_layers}
        losses, _ = losses_of(stylized, content_targets, style_gram_targets, coarse_gram_targets)
        return losses, stylized

    return validate


def content_submodel(extractor: keras.Model, layers: Sequence[str]) -> keras.Model:
    """Returns the part of `extractor` that computes `layers` only.

    The content targets need shallow layers only; cutting the graph there saves the deeper
    layers' cost on every photo. Falls back to `extractor` itself if it is not a functional model
    with named outputs.
    """
    try:
        outputs = extractor.output
        return keras.Model(extractor.inputs, {name: outputs[name] for name in layers})
    except (AttributeError, KeyError, TypeError, ValueError):
        return extractor


# --- the trainer -------------------------------------------------------------------------------


class NetworkTrainer:
    """Trains one fast style network; `steps()` runs it step by step.

    Example:
        >>> trainer = NetworkTrainer("photos/", [starry_night], TrainConfig(size=128, width=16))
        >>> for result in trainer.steps():
        ...     print(result.step, result.loss, result.validation_loss)
        >>> network = trainer.best_model()

    Attributes:
        config: The settings.
        strategy: The `tf.distribute` strategy the step runs under.
        photos: The usable photos, split into training and validation, and the skipped files.
        global_batch_size: `config.batch_size` times the replicas.
        seed: The seed of the data stream (drawn at random when `config.seed` is None).
        model: The transform network being trained.
        optimizer: Its Adam optimizer.
        step: Steps done so far.
        best_loss: Lowest validation loss so far.
        stop_reason: Why `steps()` ended early ("time limit", a non-finite loss), else None.
    """

    def __init__(
        self,
        photos: str | os.PathLike | Sequence[str | os.PathLike],
        styles: Sequence[np.ndarray],
        config: TrainConfig | None = None,
        extractor: keras.Model | None = None,
        strategy: tf.distribute.Strategy | None = None,
    ):
        """Finds and checks the photos, builds the networks and computes the style targets.

        Args:
            photos: A folder of photos (searched recursively) or a list of files and folders.
            styles: One or more style images, float32 `[height, width, 3]` in [0, 1].
            config: The settings; defaults if None.
            extractor: A feature extractor returning at least the content and style layers;
                built from `config` (backbone, weights, pooling, precision) if None.
            strategy: The `tf.distribute` strategy; `make_strategy(config.distribute)` if None.

        Raises:
            StyleTransferError: For no or too few usable photos, no style image, a style image
                or size too small for the layers, or an extractor without the needed layers.
        """
        self.config = config = config or TrainConfig()
        if not styles:
            raise StyleTransferError("no style image was given: pass at least one STYLE image")
        self.strategy = strategy or make_strategy(config.distribute)
        self.global_batch_size = config.batch_size * replica_count(self.strategy)
        layers = tuple(dict.fromkeys(config.content_layers + config.style_layers))
        # A photo thinner than the layers' floor would be a blur with nothing to match, as for
        # stylize's content image; it is skipped, not fatal.
        self._minimum_photo_side = minimum_working_side(layers)
        self.photos = data.scan_photos(
            photos,
            config.validation,
            self.global_batch_size,
            size=config.size,
            minimum_side=self._minimum_photo_side,
        )
        self.weights = config.loss_weights()
        self._blend = config.normalized_style_blend(len(styles))
        self.precision = resolve_precision(config.precision)
        self._check_sizes(styles)
        self.seed = (
            config.seed
            if config.seed is not None
            else int(np.random.SeedSequence().entropy % data.SEED_MODULUS)
        )
        if config.seed is not None:
            keras.utils.set_random_seed(config.seed)
        with self.strategy.scope():
            if extractor is None:
                extractor = build_feature_extractor(
                    layers,
                    config.backbone,
                    config.weights,
                    config.pooling,
                    self.precision,
                )
            self.model = self._build_network()
            optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
            if self.precision == "fp16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            self.optimizer = optimizer
            self.optimizer.build(self.model.trainable_variables)
            # Created in the scope, so multi-worker training broadcasts the chief's value: every
            # worker then streams the same photos, even when each drew its own seed.
            self._seed_variable = tf.Variable(
                self.seed, dtype=tf.int64, trainable=False, name="seed"
            )
        self.seed = int(self._seed_variable.numpy())
        side = minimum_input_side(layers)
        produced = extractor(tf.zeros([1, side, side, 3]), training=False)
        missing = [name for name in layers if name not in produced]
        if missing:
            raise StyleTransferError(
                f"the feature extractor does not return {', '.join(missing)}: build it with "
                "the content and style layers"
            )
        self.extractor = extractor
        self._content_extractor = content_submodel(extractor, config.content_layers)
        self.style_gram_targets = style_gram_targets(
            extractor, styles, self.style_side, config.style_layers, self._blend
        )
        self.coarse_gram_targets = (
            style_gram_targets(
                extractor, styles, self.style_side // 2, config.style_layers, self._blend
            )
            if config.coarse_style_weight
            else {}
        )
        self.validation_photos = tf.constant(
            data.validation_images(self.photos.validation, config.size)
        )
        self.step = 0
        self.best_loss = math.inf
        self.stop_reason: str | None = None
        # Checkpointed state, kept current after every step so a checkpoint can be written at
        # any time. The best weights live outside the strategy: every task keeps its own copy.
        self._step_variable = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self._best_loss_variable = tf.Variable(
            math.inf, dtype=tf.float64, trainable=False, name="best_loss"
        )
        self._best_weights = [
            tf.Variable(weight, trainable=False, name=f"best_{index}")
            for index, weight in enumerate(self.model.get_weights())
        ]
        self._train_step = make_train_step(
            self.model,
            self.extractor,
            self._content_extractor,
            self.optimizer,
            self.weights,
            self.strategy,
            self.global_batch_size,
            config.jit,
            config.coarse_style_weight,
        )
        self._validate = make_validation(
            self.model,
            self.extractor,
            self._content_extractor,
            self.weights,
            config.jit,
            config.coarse_style_weight,
        )

    @property
    def skipped_count(self) -> int:
        """Photo files that could not be decoded and were left out."""
        return len(self.photos.skipped)

    def _build_network(self) -> keras.Model:
        from tf_nst.networks.transform import build_transform_network

        return build_transform_network(self.config.width, self.precision)

    def _check_sizes(self, styles) -> None:
        check_train_sizes(self.config, [np.shape(style) for style in styles])

    @property
    def style_side(self) -> int:
        """The long side of the style images in the loss, in pixels."""
        return self.config.style_side

    # --- checkpoint and resume -------------------------------------------------------------

    def checkpoint(self) -> tf.train.Checkpoint:
        """Returns a `tf.train.Checkpoint` of everything an exact resume needs.

        It holds the network, the Adam state (moments and iteration count), the step, the best
        validation loss and the best weights, and the data seed. The data stream needs no state
        of its own: it is a pure function of (seed, step), so `steps()` after `restore()`
        continues it where it stopped. The object stays current as training runs: write it (or
        give it to a `tf.train.CheckpointManager`) at any step. In multi-worker training every
        worker must write it (see `output_path`).
        """
        return tf.train.Checkpoint(
            model=self.model,
            optimizer=self.optimizer,
            step=self._step_variable,
            best_loss=self._best_loss_variable,
            best_weights=self._best_weights,
            seed=self._seed_variable,
        )

    def restore(self, path: str | os.PathLike) -> None:
        """Restores the state written from `checkpoint()`, so that `steps()` continues exactly.

        Raises:
            StyleTransferError: If the checkpoint cannot be read or belongs to other settings.
        """
        label = os.fspath(path)
        try:
            state = self.checkpoint()
            # read(), not restore(): it also accepts `Checkpoint.write()` files, which have no
            # save_counter; expect_partial() silences the unused save_counter of `save()` files.
            state.read(label).assert_existing_objects_matched().expect_partial()
        except (ValueError, AssertionError, tf.errors.OpError) as error:
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            raise StyleTransferError(
                f"checkpoint {label} does not fit this run ({first_line}): resume with the same "
                "--width, --precision and loss layers"
            ) from None
        self.step = int(self._step_variable.numpy())
        self.best_loss = float(self._best_loss_variable.numpy())
        self.seed = int(self._seed_variable.numpy())
        if self.step > self.config.steps:
            raise StyleTransferError(
                f"checkpoint {label} is at step {self.step}, past --steps {self.config.steps}: "
                "raise --steps to continue"
            )

    # --- the loop ----------------------------------------------------------------------------

    def steps(self) -> Iterator[TrainStepResult]:
        """Trains, yielding one `TrainStepResult` per step.

        The validation photos are evaluated every `config.validation_every` steps and at the last
        step (also when the time limit ends the run); a lower validation loss replaces the best
        weights. The loop ends when all steps are done, when `config.time_limit` runs out
        (`stop_reason` says "time limit"), or at a non-finite loss (`stop_reason` says so; the
        best weights are those of the last finite validation). Breaking out of the loop is safe
        at any step.

        It never waits for a batch forever: a signal (with a Python handler, as under
        `tf_nst.run.SignalHandler`) reaches the main thread even while it waits inside the
        `tf.data` pipeline, and ends the loop there, with no step taken for the pending batch
        (the handler decides the rest: SignalHandler's first signal saves and stops, SIGINT's
        default raises KeyboardInterrupt); and a pipeline in which every photo fails
        (`PhotoLoader`) raises.

        Raises:
            StyleTransferError: If no training photo can be loaded any more (the photos were
                emptied, deleted or moved during training); the state is that of the last step.
        """
        config = self.config
        self.stop_reason = None
        started = time.perf_counter()
        deadline = None if config.time_limit is None else started + config.time_limit
        loader = data.PhotoLoader(len(self.photos.training), config.size, self._minimum_photo_side)
        dataset = data.training_dataset(
            self.photos.training,
            config.size,
            self.global_batch_size,
            self.seed,
            start_step=self.step,
            loader=loader,
        )
        iterator = iter(self.strategy.experimental_distribute_dataset(dataset))
        # Open for as long as the generator lives, so a signal reaches it during any wait.
        signals = contextlib.ExitStack()
        signals.enter_context(call_on_signal(loader.stop))
        try:
            while self.step < config.steps:
                step_started = time.perf_counter()
                batch = self._next_batch(iterator, loader)
                if batch is None:
                    return
                loss, terms = self._train_step(
                    batch, self.style_gram_targets, self.coarse_gram_targets
                )
                loss = float(loss)
                seconds = time.perf_counter() - step_started
                self.step += 1
                self._step_variable.assign(self.step)
                finite = math.isfinite(loss)
                if not finite:
                    self.stop_reason = f"non-finite loss at step {self.step}"
                out_of_time = deadline is not None and time.perf_counter() >= deadline
                validation_loss = stylized = None
                if (
                    finite
                    and len(self.photos.validation)
                    and (
                        self.step % config.validation_every == 0
                        or self.step == config.steps
                        or out_of_time
                    )
                ):
                    validation_loss, stylized = self.validate()
                    if validation_loss < self.best_loss:
                        self.best_loss = validation_loss
                        self._best_loss_variable.assign(validation_loss)
                        for best, weight in zip(
                            self._best_weights, self.model.weights, strict=True
                        ):
                            best.assign(weight)
                yield TrainStepResult(
                    step=self.step,
                    total_steps=config.steps,
                    loss=loss,
                    terms={name: float(value) for name, value in terms.items()},
                    validation_loss=validation_loss,
                    best_loss=self.best_loss,
                    validation_images=stylized,
                    images_per_second=self.global_batch_size / seconds,
                    learning_rate=float(keras.ops.convert_to_numpy(self._learning_rate())),
                    elapsed_seconds=time.perf_counter() - started,
                    progress=self.step / config.steps,
                )
                if self.stop_reason:
                    return
                if deadline is not None and time.perf_counter() >= deadline:
                    self.stop_reason = "time limit"
                    return
        finally:
            signals.close()
            # Drops the pipeline's threads now: a tf.data iterator over numpy_function left to
            # interpreter shutdown can hang the exit.
            del iterator

    def _next_batch(self, iterator, loader):
        """The next batch, or None if a signal stopped the pipeline (the caller's handler has it).

        Raises:
            StyleTransferError: If the pipeline gave up because no photo can be loaded any more.
        """
        try:
            return next(iterator)
        except tf.errors.OpError:
            if loader.failure is not None:
                raise StyleTransferError(
                    f"training stopped after step {self.step}: {loader.failure}; the photos "
                    "changed or went away during training: restore them"
                ) from None
            if loader.stopped:
                return None
            raise

    def _learning_rate(self):
        optimizer = getattr(self.optimizer, "inner_optimizer", self.optimizer)
        return optimizer.learning_rate

    def validate(self) -> tuple[float, np.ndarray]:
        """Returns the mean total loss over the validation photos and their stylized versions.

        Raises:
            StyleTransferError: If no photos are held out (`config.validation` is 0).
        """
        photos = self.validation_photos
        if photos.shape[0] == 0:
            raise StyleTransferError("no validation photos: raise --validation")
        losses, outputs = [], []
        for start in range(0, photos.shape[0], self.config.batch_size):
            chunk_losses, chunk_outputs = self._validate(
                photos[start : start + self.config.batch_size],
                self.style_gram_targets,
                self.coarse_gram_targets,
            )
            losses.append(chunk_losses.numpy())
            outputs.append(chunk_outputs.numpy())
        return float(np.mean(np.concatenate(losses))), np.concatenate(outputs)

    def best_model(self) -> keras.Model:
        """Returns a new network with the best weights: lowest validation loss so far.

        Without validation photos, or before the first validation, that is the current network.
        """
        model = self._build_network()
        if math.isfinite(self.best_loss):
            model.set_weights([weight.numpy() for weight in self._best_weights])
        else:
            model.set_weights(self.model.get_weights())
        return model
