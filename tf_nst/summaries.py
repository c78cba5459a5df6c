"""All TensorBoard writing for one stylization run.

A run lives in its own subdirectory of the log directory (`make_run_directory`), so TensorBoard
shows each run as a separate line and runs never overwrite each other. `RunLog` owns that run's
event-file writer: losses and timings go to the Scalars dashboard, intermediate and final images to
Images, the command line to Text, and the run's settings to the HParams dashboard, where they are
plotted against the scalars `loss/final` and `loss/best`.

Every write happens inside `with writer.as_default():`, so nothing here touches TensorFlow's global
default writer and two `RunLog`s can coexist in one process.
"""

from __future__ import annotations

import datetime
import itertools
import os
import pathlib
import re
from collections.abc import Mapping

import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

from tf_nst.errors import StyleTransferError

FINAL_LOSS_METRIC = "loss/final"
BEST_LOSS_METRIC = "loss/best"

_TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"


def make_run_directory(logdir: str | os.PathLike, run_name: str | None = None) -> pathlib.Path:
    """Create a new, empty directory for one run under `logdir`.

    Args:
        logdir: The TensorBoard log directory; created (with parents) if missing.
        run_name: Name of the run's directory. Defaults to the current local time, e.g.
            `20261128-213455`. If a directory of that name already exists, `-2`, `-3`, ... is
            appended until the name is free.

    Returns:
        The path of the newly created run directory.

    Raises:
        StyleTransferError: If `run_name` is not a plain directory name, or `logdir` cannot be
            created.
    """
    if run_name is not None:
        _check_run_name(run_name)
    logdir = pathlib.Path(logdir)
    try:
        logdir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StyleTransferError(
            f"cannot create log directory {str(logdir)!r} ({error.strerror}): "
            "pass a writable directory as --logdir"
        ) from error
    base_name = run_name or datetime.datetime.now().strftime(_TIMESTAMP_FORMAT)
    for attempt in itertools.count(1):
        candidate = logdir / (base_name if attempt == 1 else f"{base_name}-{attempt}")
        # `os.mkdir` checks and creates in one step, so two runs started in the same second (or
        # given the same name) cannot both claim a directory, unlike exists-then-create.
        try:
            os.mkdir(candidate)
        except FileExistsError:
            continue
        return candidate
    raise AssertionError("unreachable: itertools.count never ends")


def _check_run_name(run_name: str) -> None:
    separators = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
    if (
        not run_name
        or run_name == "."
        or ".." in run_name
        or any(separator in run_name for separator in separators)
    ):
        raise StyleTransferError(
            f"--run-name {run_name!r} is not a plain directory name: "
            "use a name without '/', '\\' or '..'"
        )


class RunLog:
    """TensorBoard event-file writer for one run.

    Use as a context manager, or call `close()` when the run ends:

        with RunLog(make_run_directory("logs")) as run_log:
            run_log.hparams(config.hparams(), trial_id=run_directory.name)
            run_log.scalars(step, {"loss/total": total})
            ...
            run_log.scalars(step, {"loss/final": final, "loss/best": best})

    Args:
        run_directory: The run's directory, normally from `make_run_directory`.
    """

    def __init__(self, run_directory: str | os.PathLike):
        self.run_directory = pathlib.Path(run_directory)
        self._writer = tf.summary.create_file_writer(str(self.run_directory))
        self._closed = False

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        """Write one scalar per item of `values` at `step`.

        Args:
            step: The optimisation step the values belong to.
            values: Tag to value, e.g. `{"loss/total": 1.5, "time/step_seconds": 0.02}`.
        """
        with self._writer.as_default():
            for tag, value in values.items():
                tf.summary.scalar(tag, float(value), step=step)

    def image(self, tag: str, step: int, image) -> None:
        """Write one RGB image at `step`.

        Args:
            tag: The image's tag, e.g. `images/current`.
            step: The optimisation step the image belongs to.
            image: Float HxWx3 array or tensor with values in [0, 1]; values outside are clipped.
        """
        pixels = tf.clip_by_value(tf.convert_to_tensor(image, dtype=tf.float32), 0.0, 1.0)
        with self._writer.as_default():
            tf.summary.image(tag, pixels[tf.newaxis], step=step, max_outputs=1)

    def text(self, tag: str, step: int, text: str) -> None:
        """Write `text` at `step`; TensorBoard renders it as markdown.

        Args:
            tag: The text's tag, e.g. `run/command_line`.
            step: The step the text belongs to.
            text: Markdown. Wrap a command line in a fenced code block (as `markdown_code_block`
                does) so markdown does not eat its `*`, `_` and `--`.
        """
        with self._writer.as_default():
            tf.summary.text(tag, text, step=step)

    def hparams(self, hparams: Mapping[str, float | int | str | bool], trial_id: str) -> None:
        """Record the run's settings for the HParams dashboard.

        Writes the experiment config (every name in `hparams`, plus the metrics `loss/final` and
        `loss/best`) and this run's values. The dashboard takes a metric's value from the last
        scalar of that tag in the run, so the caller must later write the scalars `loss/final`
        and `loss/best` with `scalars()`; until it does, the metric columns stay empty.

        The config declares no value domains: every run writes its own config and TensorBoard
        shows just one of them for the whole log directory, so a domain taken from this run's
        values would be wrong for the others.

        Args:
            hparams: Setting name to value, e.g. `StyleConfig.hparams()`. Values TensorBoard cannot
                store (None, tuples, lists, anything else) are converted to strings.
            trial_id: Name of this run in the dashboard, normally the run directory's name.
        """
        values = {name: _hparam_value(value) for name, value in hparams.items()}
        with self._writer.as_default():
            hp.hparams_config(
                hparams=[hp.HParam(name) for name in values],
                metrics=[
                    hp.Metric(FINAL_LOSS_METRIC, display_name="final loss"),
                    hp.Metric(BEST_LOSS_METRIC, display_name="best loss"),
                ],
            )
            hp.hparams(values, trial_id=trial_id)

    def flush(self) -> None:
        """Write buffered events to disk so a running TensorBoard sees them."""
        if not self._closed:
            self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file; later calls do nothing."""
        if not self._closed:
            self._closed = True
            self._writer.close()

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        self.close()


def markdown_code_block(text: str) -> str:
    """Return `text` as a fenced markdown code block, so TensorBoard shows it verbatim.

    Args:
        text: Text to show as-is, e.g. a command line.
    """
    # A fence longer than any backtick run inside the text cannot be closed early by the text.
    longest_backtick_run = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * max(3, longest_backtick_run + 1)
    return f"{fence}\n{text}\n{fence}"


def _hparam_value(value) -> float | int | str | bool:
    # The hparams plugin stores only bools, numbers and strings; anything else (None, tuples from
    # a config not built by `StyleConfig.hparams()`) becomes a readable string instead of failing.
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (bool, int, float, str)):
        return value
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return ",".join(str(item) for item in value)
    return str(value)
