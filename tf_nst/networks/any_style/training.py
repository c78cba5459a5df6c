"""Training an any-style (AdaIN) network: the distributed step and the loop.

`AnyStyleTrainer` has the shape of `tf_nst.networks.training.NetworkTrainer`: it owns the photos
and paintings (each split into training and held-out), the fixed VGG encoder, the decoder and
its Adam state under a `tf.distribute` strategy, and the best decoder on the validation pairs
(held-out photo, held-out painting); `steps()` yields a `TrainStepResult` per step. The step is
the TensorFlow distributed-training guide's (`strategy.run`, `tf.nn.compute_average_loss` over
the global batch), and the data streams are pure functions of (seed, step), so a restored run
continues exactly.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from tf_nst.config import AnyStyleConfig
from tf_nst.errors import StyleTransferError
from tf_nst.features.extractor import build_feature_extractor, minimum_input_side
from tf_nst.losses import any_style_loss
from tf_nst.networks import data
from tf_nst.networks.any_style import data as painting_data
from tf_nst.networks.any_style.adain import (
    ENCODER_LAYER,
    adain,
    build_decoder,
    channel_statistics,
    clip_images,
)
from tf_nst.networks.distribute import make_strategy, replica_count
from tf_nst.networks.keep_best import KeepBestTrainer
from tf_nst.precision import resolve_precision

SIZE_MULTIPLE = 8
"""The encoder pools three times and the decoder upsamples three times."""

IDENTITY_EVERY = 4
"""One training pair in this many is an identity pair (its painting is its photo)."""


def encoder_layers(config: AnyStyleConfig) -> tuple[str, ...]:
    """The encoder's outputs: the style layers and relu4_1."""
    return tuple(dict.fromkeys((*config.style_layers, ENCODER_LAYER)))


def make_losses(
    encoder: keras.Model, decoder: keras.Model, weights, identity_weight: float, training: bool
):
    """Returns `losses(photos, paintings, identity) -> (per-example loss, terms, images)`.

    `identity` marks the pairs whose painting is their photo (`pair_datasets`); on them an
    "identity" term, `identity_weight` times the squared pixel error on the 0-255 scale of the
    encoder's features (SANet's identity loss), asks the decoder to give the photo back.
    """
    style_layers = tuple(weights.style_layers)

    def losses(photos, paintings, identity=None):
        content = encoder(photos, training=False)[ENCODER_LAYER]
        painting_features = encoder(paintings, training=False)
        statistics = {name: channel_statistics(painting_features[name]) for name in style_layers}
        mean, deviation = channel_statistics(painting_features[ENCODER_LAYER])
        target = tf.stop_gradient(adain(content, mean, deviation))
        images = decoder(target, training=training)
        features = encoder(images, training=False)
        loss, terms = any_style_loss(features, target, statistics, images, weights)
        if identity is not None and identity_weight:
            pixel_error = tf.reduce_mean(
                tf.square(255.0 * (tf.cast(images, tf.float32) - photos)), axis=[1, 2, 3]
            )
            terms["identity"] = identity_weight * identity * pixel_error
            loss = loss + terms["identity"]
        return loss, terms, images

    return losses


def make_train_step(
    encoder, decoder, optimizer, weights, identity_weight, strategy, global_batch_size, jit=False
):
    """Returns the compiled distributed step `(photos, paintings, identity) -> (loss, terms)`."""
    losses = make_losses(encoder, decoder, weights, identity_weight, training=True)
    loss_scaling = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

    @tf.function(jit_compile=jit, reduce_retracing=True)
    def loss_and_gradients(photos, paintings, identity):
        with tf.GradientTape() as tape:
            per_example, terms, _ = losses(photos, paintings, identity)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)
            scaled = optimizer.scale_loss(loss) if loss_scaling else loss
        gradients = tape.gradient(scaled, decoder.trainable_variables)
        terms = {
            name: tf.nn.compute_average_loss(value, global_batch_size=global_batch_size)
            for name, value in terms.items()
        }
        return loss, terms, gradients

    def replica_step(photos, paintings, identity):
        loss, terms, gradients = loss_and_gradients(photos, paintings, identity)
        optimizer.apply_gradients(zip(gradients, decoder.trainable_variables, strict=True))
        return loss, terms

    @tf.function(reduce_retracing=True)
    def train_step(batch):
        loss, terms = strategy.run(replica_step, args=batch)
        total = strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
        terms = {
            name: strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
            for name, value in terms.items()
        }
        return total, terms

    return train_step


class AnyStyleTrainer(KeepBestTrainer):
    """Trains one any-style network (its decoder); `steps()` runs it step by step.

    Example:
        >>> trainer = AnyStyleTrainer("photos/", "paintings/", AnyStyleConfig(size=128))
        >>> for result in trainer.steps():
        ...     print(result.step, result.loss, result.validation_loss)
        >>> decoder = trainer.best_model()

    Attributes:
        config: The settings.
        strategy: The `tf.distribute` strategy.
        photos: The usable photos, split into training and validation, and the skipped files.
        paintings: The usable paintings, split likewise; the held-out ones are never trained on.
        global_batch_size: `config.batch_size` times the replicas.
        seed: The seed of the data streams.
        encoder: The fixed VGG encoder (style layers and relu4_1).
        model: The decoder being trained.
        optimizer: Its Adam optimizer.
        step: Steps done so far.
        best_loss: Lowest validation loss so far.
        stop_reason: Why `steps()` ended early, else None.
    """

    RESUME_HINT = "resume with the same `decoder_width`, `backbone` and `precision`"

    def __init__(
        self,
        photos: str | os.PathLike | Sequence[str | os.PathLike],
        paintings: str | os.PathLike | Sequence[str | os.PathLike],
        config: AnyStyleConfig | None = None,
        encoder: keras.Model | None = None,
        strategy: tf.distribute.Strategy | None = None,
    ):
        """Finds and checks the photos and paintings, and builds the networks.

        Args:
            photos: A folder of photos (searched recursively) or a list of files and folders.
            paintings: A folder of paintings (searched recursively) or a list of folders.
            config: The settings; defaults if None.
            encoder: A feature extractor returning the style layers and block4_conv1; built
                from `config` if None.
            strategy: The `tf.distribute` strategy; `make_strategy(config.distribute)` if None.

        Raises:
            StyleTransferError: For missing, empty or too small photo or painting folders, a
                size the network cannot take, or an encoder without the needed layers.
        """
        self.config = config = config or AnyStyleConfig()
        layers = encoder_layers(config)
        minimum = max(minimum_input_side(layers), SIZE_MULTIPLE)
        if config.size % SIZE_MULTIPLE or config.size < minimum:
            raise StyleTransferError(
                f"`size` {config.size} must be a multiple of {SIZE_MULTIPLE} and at least "
                f"{minimum}: the encoder pools three times and the decoder upsamples back"
            )
        self.strategy = strategy or make_strategy(config.distribute)
        self.global_batch_size = config.batch_size * replica_count(self.strategy)
        self.paintings = painting_data.scan_paintings(
            paintings, config.validation_paintings, self.global_batch_size
        )
        self.photos = data.scan_photos(photos, config.validation, self.global_batch_size)
        self.weights = config.loss_weights()
        self.precision = resolve_precision(config.precision)
        self.seed = (
            config.seed
            if config.seed is not None
            else int(np.random.SeedSequence().entropy % data.SEED_MODULUS)
        )
        if config.seed is not None:
            keras.utils.set_random_seed(config.seed)
        with self.strategy.scope():
            if encoder is None:
                encoder = build_feature_extractor(
                    layers, config.backbone, config.weights, config.pooling, self.precision
                )
            self._channels = int(
                encoder(tf.zeros([1, minimum, minimum, 3]), training=False)[ENCODER_LAYER].shape[-1]
            )
            self.model = self.build_network()
            schedule = keras.optimizers.schedules.InverseTimeDecay(
                config.learning_rate, decay_steps=1, decay_rate=config.learning_rate_decay
            )
            optimizer = keras.optimizers.Adam(learning_rate=schedule)
            if self.precision == "fp16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            self.optimizer = optimizer
            self.optimizer.build(self.model.trainable_variables)
            self.make_seed_variable(self.seed)
        produced = encoder(tf.zeros([1, minimum, minimum, 3]), training=False)
        missing = [name for name in layers if name not in produced]
        if missing:
            raise StyleTransferError(
                f"the encoder does not return {', '.join(missing)}: build it with the style "
                f"layers and {ENCODER_LAYER}"
            )
        self.encoder = encoder
        photos_held_out = data.validation_images(self.photos.validation, config.size)
        paintings_held_out = painting_data.validation_paintings(
            self.paintings.validation, config.size
        )
        self.validation_pairs = validation_pairs(photos_held_out, paintings_held_out)
        self.start_state()
        self._train_step = make_train_step(
            self.encoder, self.model, self.optimizer, self.weights, config.identity_weight,
            self.strategy, self.global_batch_size, config.jit,
        )  # fmt: skip
        validation_losses = make_losses(
            self.encoder, self.model, self.weights, config.identity_weight, training=False
        )

        @tf.function(jit_compile=config.jit, reduce_retracing=True)
        def validate(photos, paintings):
            losses, _, images = validation_losses(photos, paintings)
            return losses, clip_images(images)

        self._validate = validate

    @property
    def skipped_count(self) -> int:
        """Photo and painting files that could not be decoded and were left out."""
        return len(self.photos.skipped) + len(self.paintings.skipped)

    def build_network(self) -> keras.Model:
        """A new, untrained decoder of the configured width, backbone and precision."""
        return build_decoder(
            self.config.decoder_width, self.config.backbone, self.precision, self._channels
        )

    def dataset(self) -> tf.data.Dataset:
        """The (photos, paintings) batches from the current step on."""
        config = self.config
        photos = data.training_dataset(
            self.photos.training, config.size, self.global_batch_size, self.seed, self.step
        )
        paintings = painting_data.paintings_dataset(
            self.paintings.training,
            config.size,
            self.global_batch_size,
            # Another seed than the photos': a painting's crop is not tied to a photo's.
            (self.seed + 1) % data.SEED_MODULUS,
            self.step,
        )
        return painting_data.pair_datasets(
            photos,
            paintings,
            self.global_batch_size,
            self.step,
            IDENTITY_EVERY if config.identity_weight else 0,
        )

    # --- the loop's hooks (the loop is `KeepBestTrainer.steps`) ------------------------------

    def open_batches(self, stack):
        """The training batches from (seed, step) on, as a callable returning the next one."""
        iterators = [iter(self.strategy.experimental_distribute_dataset(self.dataset()))]
        stack.callback(iterators.clear)
        return lambda: next(iterators[0])

    def train_on(self, batch):
        """One compiled step on a distributed batch of pairs: (loss, named terms)."""
        return self._train_step(batch)

    @property
    def validation_count(self) -> int:
        """The validation pairs (held-out photo, held-out painting)."""
        return int(self.validation_pairs[0].shape[0])

    def validate(self) -> tuple[float, np.ndarray]:
        """The mean loss over the validation pairs and their stylized photos.

        Raises:
            StyleTransferError: If no photos or no paintings are held out.
        """
        photos, paintings = self.validation_pairs
        if photos.shape[0] == 0:
            raise StyleTransferError(
                "no validation pairs: raise `validation` and `validation_paintings`"
            )
        losses, outputs = [], []
        for start in range(0, photos.shape[0], self.config.batch_size):
            end = start + self.config.batch_size
            chunk_losses, chunk_outputs = self._validate(photos[start:end], paintings[start:end])
            losses.append(chunk_losses.numpy())
            outputs.append(chunk_outputs.numpy())
        return float(np.mean(np.concatenate(losses))), np.concatenate(outputs)


def validation_pairs(photos: np.ndarray, paintings: np.ndarray) -> tuple[tf.Tensor, tf.Tensor]:
    """Pairs held-out photos with held-out paintings: photo k with painting k.

    The shorter list cycles, so every held-out photo and painting is in some pair.
    """
    count = max(len(photos), len(paintings)) if len(photos) and len(paintings) else 0
    if not count:
        empty = np.zeros((0, *photos.shape[1:]), np.float32)
        return tf.constant(empty), tf.constant(empty)
    photo_index = [index % len(photos) for index in range(count)]
    painting_index = [index % len(paintings) for index in range(count)]
    return tf.constant(photos[photo_index]), tf.constant(paintings[painting_index])
