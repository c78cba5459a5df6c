"""The job protocol: what `run_job` drives, and the part every job shares."""

from __future__ import annotations

import hashlib
import os
import pathlib
from collections.abc import Iterator
from typing import Any, Protocol

from tf_nst.config import choices_of
from tf_nst.run.console import command_line


class Job(Protocol):
    """What `run_job` drives. `tf_nst.optimize.job` has one per kind of long job.

    Attributes:
        step: Steps done so far.
        best_loss: The loss of the best result so far (inf while there is none to compare, as in
            a training without validation photos).
        stop_reason: Why `steps()` ended early ("time limit", a non-finite loss), or None.
        run_id: The run's identity, set by `run_job` before the first step: a random token that
            its checkpoint records and its resumes keep. A job whose result is a folder records
            it there, so that a resume replaces only what its own run wrote.
        checkpoint_first: Optional, False if absent. True for a result that takes long to save
            (a network's export): `run_job` then writes the final checkpoint before the result,
            so that a failure or a second signal while saving still leaves something to resume.
            A result saved in a moment (an image) goes first, so that a second signal most
            likely finds it complete.

    A job that writes numbered intermediates (`save_every`) also has
    `save_intermediate(result, path)`, which writes one step's result atomically, and
    `total_steps`, which names them before the run starts.
    """

    step: int
    best_loss: float
    stop_reason: str | None
    run_id: str

    def steps(self) -> Iterator[Any]:
        """Runs the job, yielding one result per step.

        Each result has `step`, `total_steps`, `loss`, `best_loss`, `progress` and
        `elapsed_seconds`.
        """

    def checkpoint(self):
        """Returns a `tf.train.Checkpoint` of the whole state."""

    def restore(self, path: str) -> None:
        """Restores the state that `checkpoint()` saved at `path`."""

    def has_result(self) -> bool:
        """Whether a best result exists (at least one finite step)."""

    def save_result(self, path: pathlib.Path) -> None:
        """Writes the best result to `path`, atomically."""

    def resume_key(self):
        """The `ResumeKey` of this job's settings and inputs (for callers that pass none)."""

    def progress_note(self, result) -> str:
        """Job-specific words for the progress line, e.g. "scale 1/2" or "12 img/s"."""

    def log_start(self, log) -> None:
        """Writes the settings, inputs and command line to TensorBoard."""

    def log_step(self, log, result, with_images: bool) -> None:
        """Writes one step's scalars, and its images if `with_images`."""

    def log_end(self, log) -> None:
        """Writes the final result to TensorBoard."""


def array_digest(array) -> str:
    """SHA-256 of an image array's shape and pixels, for jobs built from arrays in Python."""
    import numpy as np

    pixels = np.ascontiguousarray(array, np.float32)
    digest = hashlib.sha256(repr(pixels.shape).encode())
    digest.update(pixels.tobytes())
    return digest.hexdigest()


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file, so that a resumed run can tell its inputs are the same."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class LoopJob:
    """What a job reads from its library loop (a `Optimization` or a `NetworkTrainer`): `loop`."""

    loop = None

    @property
    def step(self) -> int:
        """Steps done so far."""
        return self.loop.step

    @property
    def best_loss(self) -> float:
        """The lowest loss so far (the stylizer's at its scale, the trainer's on validation)."""
        return self.loop.best_loss

    @property
    def stop_reason(self) -> str | None:
        """Why the loop ended early, if it did."""
        return self.loop.stop_reason

    def steps(self):
        """The loop's steps."""
        return self.loop.steps()

    def checkpoint(self):
        """The loop's whole state as a `tf.train.Checkpoint`."""
        return self.loop.checkpoint()

    def log_command_settings_and_styles(self, log, config_class, **hparams_options) -> None:
        """The command line, the hparams (`self.hparams()`) and the style pictures."""
        from tf_nst.run import summaries

        log.text(summaries.COMMAND_LINE, 0, summaries.markdown_code_block(command_line()))
        log.hparams(
            self.hparams(),
            trial_id=log.run_directory.name,
            domains=choices_of(config_class),
            **hparams_options,
        )
        for index, style in enumerate(self.styles):
            suffix = "" if index == 0 else f"_{index + 1}"
            log.image(summaries.PICTURE_STYLE + suffix, 0, style)
