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
from collections.abc import Mapping, Sequence

import tensorflow as tf
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import summary as hparams_summary

from tf_nst.errors import StyleTransferError
from tf_nst.run.outputs import check_run_name
from tf_nst.text import setting_text

# Tag groups. TensorBoard's Time Series dashboard shows groups (the part before the first "/")
# in alphabetical order, so the loss curves come first and the pictures after them.
LOSS_TOTAL = "loss/total"
LOSS_BEST = "loss/best"
LOSS_VALIDATION = "loss/validation"
WORKING_SIZE = "loss/working_long_side"
STEP_SECONDS = "time/step_seconds"
IMAGES_PER_SECOND = "time/images_per_second"
LEARNING_RATE = "optimizer/learning_rate"
PICTURE_CURRENT = "pictures/current"
PICTURE_FINAL = "pictures/final"
PICTURE_CONTENT = "pictures/content"
PICTURE_STYLE = "pictures/style"
PICTURE_VALIDATION = "pictures/validation"
COMMAND_LINE = "run/command_line"
STATUS = "run/status"

DESCRIPTIONS = {
    LOSS_TOTAL: "Total loss of the image evaluated at this step: the weighted sum of the "
    "content, style and total-variation terms, each normalised as the README's formulas say.",
    LOSS_BEST: "Lowest total loss so far at the final, full-size scale (coarser scales are not "
    "comparable, so it starts there); for training, the lowest validation loss so far.",
    LOSS_VALIDATION: "Total loss of the held-out validation photos, weighted and normalised "
    "like the training loss.",
    WORKING_SIZE: "Long side of the working image, in pixels: the loss jumps where it changes, "
    "because each coarse-to-fine scale is a new problem.",
    STEP_SECONDS: "Wall-clock seconds of this step.",
    IMAGES_PER_SECOND: "Training photos processed per second, over all replicas.",
    LEARNING_RATE: "Adam's learning rate at this step.",
    "loss/content": "Weighted content terms summed over the content layers.",
    "loss/style": "Weighted style terms summed over the style layers.",
    "loss/tv": "Weighted total-variation term.",
}
"""Short descriptions shown under each chart; per-layer terms are described by their group."""

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
        check_run_name(run_name)
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
                tf.summary.scalar(tag, float(value), step=step, description=_description(tag))

    def image(self, tag: str, step: int, image) -> None:
        """Write one RGB image, or a batch of them, at `step`.

        Args:
            tag: The image's tag, e.g. `pictures/current`.
            step: The step the image belongs to.
            image: Float HxWx3 (or NxHxWx3) array or tensor in [0, 1]; values outside are clipped.
        """
        pixels = tf.clip_by_value(tf.convert_to_tensor(image, dtype=tf.float32), 0.0, 1.0)
        if pixels.shape.rank == 3:
            pixels = pixels[tf.newaxis]
        with self._writer.as_default():
            tf.summary.image(tag, pixels, step=step, max_outputs=int(pixels.shape[0]))

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

    def hparams(
        self,
        hparams: Mapping[str, float | int | str | bool],
        trial_id: str,
        domains: Mapping[str, Sequence] | None = None,
        metrics: Sequence[str] = (LOSS_BEST, LOSS_TOTAL),
        leading: Sequence[str] = (),
    ) -> None:
        """Record the run's settings for the HParams dashboard, with a type for each.

        The dashboard takes a metric's value from the last scalar of that tag in the run, so the
        metrics are tags the run writes anyway (`loss/best`, `loss/total`): their last values are
        the run's final best and final loss. The dashboard orders its columns by whether a
        setting "differs" between runs, then by name, and shows the first ones; the `leading`
        settings are marked as differing so that they always lead.

        Args:
            hparams: Setting name to value. Values TensorBoard cannot store (None, tuples, lists,
                anything else) are converted to strings.
            trial_id: Name of this run in the dashboard, normally the run directory's name.
            domains: Setting name to its allowed values, for settings with a fixed choice.
            metrics: Scalar tags to show as the dashboard's metric columns.
            leading: Settings to show first, e.g. the style weight and the size.
        """
        values = {name: _hparam_value(value) for name, value in hparams.items()}
        domains = domains or {}
        infos = [
            _hparam_info(name, value, domains.get(name), name in leading)
            for name, value in values.items()
        ]
        metric_infos = [
            api_pb2.MetricInfo(
                name=api_pb2.MetricName(tag=tag),
                display_name=tag.split("/")[-1] + " loss",
                description=_description(tag),
            )
            for tag in metrics
        ]
        experiment = hparams_summary.experiment_pb(infos, metric_infos)
        session = hparams_summary.session_start_pb(values, group_name=trial_id)
        with self._writer.as_default():
            tf.summary.experimental.write_raw_pb(experiment.SerializeToString(), step=0)
            tf.summary.experimental.write_raw_pb(session.SerializeToString(), step=0)

    def end(self, status: str, step: int) -> None:
        """Record how the run ended: in the HParams dashboard's status and as text.

        Args:
            status: "success", or why it stopped early ("SIGINT", "non-finite loss", ...).
                TensorBoard knows only Success and Failure, so every early stop is a Failure;
                the text says which.
            step: The last step.
        """
        code = api_pb2.STATUS_SUCCESS if status == "success" else api_pb2.STATUS_FAILURE
        session_end = hparams_summary.session_end_pb(code)
        with self._writer.as_default():
            tf.summary.experimental.write_raw_pb(session_end.SerializeToString(), step=step)
            tf.summary.text(STATUS, status, step=step)

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


def stylize_step_scalars(result, working_long_side: int, final_scale: bool) -> dict[str, float]:
    """The scalars of one optimisation step, by tag.

    A group total (`loss/style`, `loss/content`) is written only when the group has more than
    one layer; otherwise it would be a second chart of the same curve. `loss/best` starts at the
    final scale, where losses are those of the output's size.

    Args:
        result: The step's `optimize.StepResult`.
        working_long_side: The long side of the image at this step's scale.
        final_scale: Whether this step is at the last, full-size scale.
    """
    scalars = _loss_scalars(result)
    if final_scale:
        scalars[LOSS_BEST] = result.best_loss
    if result.scale_count > 1:
        scalars[WORKING_SIZE] = working_long_side
    scalars[STEP_SECONDS] = result.step_seconds
    return scalars


def train_step_scalars(result) -> dict[str, float]:
    """The scalars of one training step, by tag (see `stylize_step_scalars`).

    `loss/validation` and `loss/best` are written on validation steps only.
    """
    scalars = _loss_scalars(result)
    if result.validation_loss is not None:
        scalars[LOSS_VALIDATION] = result.validation_loss
        scalars[LOSS_BEST] = result.best_loss
    scalars[IMAGES_PER_SECOND] = result.images_per_second
    scalars[LEARNING_RATE] = result.learning_rate
    return scalars


def _loss_scalars(result) -> dict[str, float]:
    """Every loss term, the group totals of groups with several layers, and the total."""
    scalars = {f"loss/{name}": value for name, value in result.terms.items()}
    for group in ("content", "style"):
        layers = [value for name, value in result.terms.items() if name.startswith(f"{group}/")]
        if len(layers) > 1:
            scalars[f"loss/{group}"] = sum(layers)
    scalars[LOSS_TOTAL] = result.loss
    return scalars


def _description(tag: str) -> str | None:
    if tag in DESCRIPTIONS:
        return DESCRIPTIONS[tag]
    group = tag.rsplit("/", 1)[0]
    if group in ("loss/content", "loss/style"):
        return f"Weighted {group.split('/')[1]} term of this layer."
    return None


def _hparam_info(name: str, value, domain, leading: bool) -> api_pb2.HParamInfo:
    info = api_pb2.HParamInfo(name=name, display_name=name.replace("_", " "), differs=leading)
    if isinstance(value, bool):
        info.type = api_pb2.DATA_TYPE_BOOL
        info.domain_discrete.extend([False, True])
    elif isinstance(value, (int, float)):
        info.type = api_pb2.DATA_TYPE_FLOAT64
    else:
        info.type = api_pb2.DATA_TYPE_STRING
        if domain is not None:
            info.domain_discrete.extend([str(choice) for choice in domain])
    return info


def _hparam_value(value) -> float | int | str | bool:
    # The hparams plugin stores only bools, numbers and strings; anything else (None, tuples from
    # a config not built by `StyleConfig.hparams()`) becomes a readable string instead of failing.
    return setting_text(value)
