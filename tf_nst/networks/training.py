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
import os
from collections.abc import Sequence

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
from tf_nst.networks.keep_best import KeepBestTrainer
from tf_nst.networks.memory import check_train_sizes
from tf_nst.precision import resolve_precision
from tf_nst.run.console import call_on_signal
from tf_nst.sizes import minimum_working_side

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


class NetworkTrainer(KeepBestTrainer):
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

    RESUME_HINT = "resume with the same --width, --precision and loss layers"
    STEPS_NAME = "--steps"

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
            self.model = self.build_network()
            optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
            if self.precision == "fp16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            self.optimizer = optimizer
            self.optimizer.build(self.model.trainable_variables)
            self.make_seed_variable(self.seed)
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
        self.start_state()
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

    def build_network(self) -> keras.Model:
        """A new, untrained transform network of the configured width and precision."""
        from tf_nst.networks.transform import build_transform_network

        return build_transform_network(self.config.width, self.precision)

    def _check_sizes(self, styles) -> None:
        check_train_sizes(self.config, [np.shape(style) for style in styles])

    @property
    def style_side(self) -> int:
        """The long side of the style images in the loss, in pixels."""
        return self.config.style_side

    # --- the loop's hooks (the loop is `KeepBestTrainer.steps`) ------------------------------

    def open_batches(self, stack: contextlib.ExitStack):
        """The training batches from (seed, step) on, as a callable returning the next one.

        It never waits for a batch forever: a signal (with a Python handler, as under
        `tf_nst.run.SignalHandler`) reaches the main thread even while it waits inside the
        `tf.data` pipeline, and ends the stream there, with no step taken for the pending batch
        (the handler decides the rest: SignalHandler's first signal saves and stops, SIGINT's
        default raises KeyboardInterrupt); and a pipeline in which every photo fails
        (`PhotoLoader`) raises `StyleTransferError` from the callable: no training photo can be
        loaded any more (the photos were emptied, deleted or moved during training), and the
        state is that of the last step.
        """
        config = self.config
        loader = data.PhotoLoader(len(self.photos.training), config.size, self._minimum_photo_side)
        dataset = data.training_dataset(
            self.photos.training,
            config.size,
            self.global_batch_size,
            self.seed,
            start_step=self.step,
            loader=loader,
        )
        iterators = [iter(self.strategy.experimental_distribute_dataset(dataset))]
        # Drops the pipeline's threads when the loop ends: a tf.data iterator over
        # numpy_function left to interpreter shutdown can hang the exit.
        stack.callback(iterators.clear)
        # Open for as long as the loop lives, so a signal reaches it during any wait.
        stack.enter_context(call_on_signal(loader.stop))
        return lambda: self._next_batch(iterators[0], loader)

    def train_on(self, batch):
        """One compiled step on a distributed batch of photos: (loss, named terms)."""
        return self._train_step(batch, self.style_gram_targets, self.coarse_gram_targets)

    @property
    def validation_count(self) -> int:
        """The held-out validation photos."""
        return len(self.photos.validation)

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
