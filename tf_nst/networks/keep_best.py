"""What both network trainings share: the step loop, the time limit, keep-best and the state.

`KeepBestTrainer` is the base of `tf_nst.networks.training.NetworkTrainer` (one painting) and
`tf_nst.networks.any_style.training.AnyStyleTrainer` (any painting). It owns the loop that
`steps()` runs: one compiled step per batch, a validation every `validation_every` steps, at the
last step and when the time limit ends the run, and a copy of the weights with the lowest
validation loss. It also owns the state an exact resume needs and its checkpoint. The subclass
builds the network, the optimizer and the data, and answers the hooks below.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping

import keras
import numpy as np
import tensorflow as tf

from tf_nst.errors import StyleTransferError


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


class KeepBestTrainer(abc.ABC):
    """The training loop and resumable state of a network trainer.

    A subclass builds `config`, `model`, `optimizer` and `global_batch_size` in its `__init__`,
    creates the data seed with `make_seed_variable` inside its strategy's scope, then calls
    `start_state()`; and it provides:

    - `build_network()`: a new network of the trained shape, for `best_model`;
    - `open_batches(stack)`: the batch source, a callable returning the next batch or None when
      a signal stopped the stream; cleanups go on the `contextlib.ExitStack`;
    - `train_on(batch)`: one compiled step, returning (loss, terms);
    - `validation_count`: held-out examples (0 turns validation off);
    - `validate()`: (mean validation loss, stylized validation images).

    Attributes:
        step: Steps done so far.
        best_loss: Lowest validation loss so far.
        stop_reason: Why `steps()` ended early ("time limit", a non-finite loss), else None.
    """

    RESUME_HINT = "resume with the same settings"
    """What `restore` tells the user to keep when a checkpoint does not fit."""
    STEPS_NAME = "`steps`"
    """How `restore`'s message names the steps setting."""

    def make_seed_variable(self, seed: int) -> None:
        """Creates the checkpointed data seed; call it inside the strategy's scope.

        Created there, multi-worker training broadcasts the chief's value: every worker then
        streams the same data, even when each drew its own seed.
        """
        self._seed_variable = tf.Variable(seed, dtype=tf.int64, trainable=False, name="seed")
        self.seed = int(self._seed_variable.numpy())

    def start_state(self) -> None:
        """Creates the step, the best loss and the best weights, once `model` is built.

        They are kept current after every step, so a checkpoint can be written at any time. The
        best weights live outside the strategy: every task keeps its own copy.
        """
        self.step = 0
        self.best_loss = math.inf
        self.stop_reason: str | None = None
        self._step_variable = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self._best_loss_variable = tf.Variable(
            math.inf, dtype=tf.float64, trainable=False, name="best_loss"
        )
        self._best_weights = [
            tf.Variable(weight, trainable=False, name=f"best_{index}")
            for index, weight in enumerate(self.model.get_weights())
        ]

    # --- the hooks ---------------------------------------------------------------------------

    @abc.abstractmethod
    def build_network(self) -> keras.Model:
        """A new, untrained network of the trained shape."""

    @abc.abstractmethod
    def open_batches(self, stack: contextlib.ExitStack) -> Callable[[], object]:
        """The batch source for one `steps()` run."""

    @abc.abstractmethod
    def train_on(self, batch) -> tuple[tf.Tensor, Mapping[str, tf.Tensor]]:
        """One training step on `batch`: (loss, named terms)."""

    @property
    @abc.abstractmethod
    def validation_count(self) -> int:
        """Held-out examples that `validate` evaluates."""

    @abc.abstractmethod
    def validate(self) -> tuple[float, np.ndarray]:
        """(Mean validation loss, the stylized validation images)."""

    # --- checkpoint and resume -------------------------------------------------------------

    def checkpoint(self) -> tf.train.Checkpoint:
        """Returns a `tf.train.Checkpoint` of everything an exact resume needs.

        It holds the network, the optimizer's state (moments and iteration count), the step, the
        best validation loss and the best weights, and the data seed. The data streams need no
        state of their own: they are pure functions of (seed, step), so `steps()` after
        `restore()` continues them where they stopped. The object stays current as training
        runs: write it (or give it to a `tf.train.CheckpointManager`) at any step. In
        multi-worker training every worker must write it (see `output_path`).
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
            # read(), not restore(): it also accepts `Checkpoint.write()` files, which have no
            # save_counter; expect_partial() silences the unused save_counter of `save()` files.
            self.checkpoint().read(label).assert_existing_objects_matched().expect_partial()
        except (ValueError, AssertionError, tf.errors.OpError) as error:
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            raise StyleTransferError(
                f"checkpoint {label} does not fit this run ({first_line}): {self.RESUME_HINT}"
            ) from None
        self.step = int(self._step_variable.numpy())
        self.best_loss = float(self._best_loss_variable.numpy())
        self.seed = int(self._seed_variable.numpy())
        if self.step > self.config.steps:
            raise StyleTransferError(
                f"checkpoint {label} is at step {self.step}, past {self.STEPS_NAME} "
                f"{self.config.steps}: raise {self.STEPS_NAME} to continue"
            )

    # --- the loop ----------------------------------------------------------------------------

    def steps(self) -> Iterator[TrainStepResult]:
        """Trains, yielding one `TrainStepResult` per step.

        The validation set is evaluated every `config.validation_every` steps and at the last
        step (also when the time limit ends the run); a lower validation loss replaces the best
        weights. The loop ends when all steps are done, when `config.time_limit` runs out
        (`stop_reason` says "time limit"), when the batch source stops, or at a non-finite loss
        (`stop_reason` says so; the best weights are those of the last finite validation).
        Breaking out of the loop is safe at any step.
        """
        config = self.config
        self.stop_reason = None
        started = time.perf_counter()
        deadline = None if config.time_limit is None else started + config.time_limit
        with contextlib.ExitStack() as stack:
            next_batch = self.open_batches(stack)
            while self.step < config.steps:
                step_started = time.perf_counter()
                batch = next_batch()
                if batch is None:
                    return
                loss, terms = self.train_on(batch)
                loss = float(loss)
                seconds = time.perf_counter() - step_started
                self.step += 1
                self._step_variable.assign(self.step)
                finite = math.isfinite(loss)
                if not finite:
                    self.stop_reason = f"non-finite loss at step {self.step}"
                out_of_time = deadline is not None and time.perf_counter() >= deadline
                validation_loss = stylized = None
                due = (
                    self.step % config.validation_every == 0
                    or self.step == config.steps
                    or out_of_time
                )
                if finite and self.validation_count and due:
                    validation_loss, stylized = self.validate()
                    self._keep_if_best(validation_loss)
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
                if out_of_time:
                    self.stop_reason = "time limit"
                    return

    def _keep_if_best(self, validation_loss: float) -> None:
        if validation_loss < self.best_loss:
            self.best_loss = validation_loss
            self._best_loss_variable.assign(validation_loss)
            for best, weight in zip(self._best_weights, self.model.weights, strict=True):
                best.assign(weight)

    def _learning_rate(self):
        optimizer = getattr(self.optimizer, "inner_optimizer", self.optimizer)
        return optimizer.learning_rate

    def best_model(self) -> keras.Model:
        """Returns a new network with the best weights: lowest validation loss so far.

        Without validation examples, or before the first validation, that is the current
        network.
        """
        model = self.build_network()
        if math.isfinite(self.best_loss):
            model.set_weights([weight.numpy() for weight in self._best_weights])
        else:
            model.set_weights(self.model.get_weights())
        return model
