"""Settings of applying and exporting networks, and where every long job writes."""

from __future__ import annotations

import dataclasses

from tf_nst.config.fields import (
    APPLY_PRECISIONS,
    TFLITE_QUANTIZATIONS,
    check_blend,
    check_choices,
    check_positive_int,
    is_finite_number,
    preserve_colors_setting,
    setting,
)
from tf_nst.errors import StyleTransferError


@dataclasses.dataclass(frozen=True)
class ApplyConfig:
    """Settings of `tf-nst apply`: stylizing files with a trained network.

    Attributes:
        size: Long side of the outputs in pixels; None keeps each input's size.
        batch_size: Images of the same size stylized per call.
        preserve_colors: "none", "luminance" or "histogram".
        precision: "auto", "fp32" or "bf16" (the stylizer exports both).
        strength: Any-style networks: from 0 (the photo) to 1 (the full style).
        style_blend: Any-style networks: one weight per style painting, normalised to sum to 1.
    """

    size: int | None = setting(None, "long side of the outputs in pixels (default: the input's)")
    batch_size: int = setting(1, "images of the same size stylized per call")
    preserve_colors: str = preserve_colors_setting(
        "keep each photo's colours: luminance or histogram"
    )
    precision: str = setting(
        "auto",
        "compute precision; auto picks bf16 where the hardware has it natively",
        choices=APPLY_PRECISIONS,
    )
    strength: float = setting(
        1.0, "any-style networks: 0 gives the photo, 1 the full style (--style)"
    )
    style_blend: tuple[float, ...] | None = setting(
        None,
        "any-style networks: comma-separated weights of the --style paintings, mixed in the "
        "style representation (default: equal)",
    )

    def __post_init__(self):
        check_choices(self)
        if self.size is not None:
            check_positive_int("size", self.size)
        check_positive_int("batch_size", self.batch_size)
        if not is_finite_number(self.strength) or not 0 <= self.strength <= 1:
            raise StyleTransferError(f"`strength` must be from 0 to 1, got {self.strength!r}")
        if self.style_blend is not None:
            check_blend("style_blend", self.style_blend)


@dataclasses.dataclass(frozen=True)
class TfliteConfig:
    """Settings of `tf-nst export --format tflite` (`tf_nst.networks.any_style.export`).

    Attributes:
        quantize: "none" (float32), "fp16" (float16 weights) or "int8" (weights and
            activations, calibrated on training photos and paintings).
    """

    quantize: str = setting(
        "none",
        "with --format tflite: none (float32), fp16 (float16 weights) or int8 (weights and "
        "activations, calibrated on the training photos)",
        choices=TFLITE_QUANTIZATIONS,
    )

    def __post_init__(self):
        check_choices(self)


@dataclasses.dataclass(frozen=True)
class OutputOptions:
    """Where a long job writes: its result, intermediates, checkpoints and TensorBoard run.

    Every job that `tf_nst.run` drives (stylize, train) takes one. The paths are checked by
    `tf_nst.run.check_outputs` before the job starts.

    Attributes:
        output: The job's result: an image file (stylize) or a model directory (train).
        logdir: TensorBoard root; each run gets its own subdirectory.
        run_name: Name of this run's subdirectory; None names it by the time.
        save_every: Save a numbered intermediate result every N steps; 0 turns it off.
        image_every: Log the current image to TensorBoard every N steps; 0 turns it off.
        checkpoint_every: Save a resumable checkpoint every N steps; 0 turns it off.
        resume: Continue from the checkpoint beside the output.
        quiet: No progress bar and no notes, only warnings and errors.
    """

    output: str = setting("stylized.png", "where the result goes")
    logdir: str = setting("logs", "TensorBoard root; each run gets its own subdirectory")
    run_name: str | None = setting(
        None, "name of this run's TensorBoard subdirectory (default: the time)"
    )
    save_every: int = setting(0, "save a numbered intermediate result every N steps (0: off)")
    image_every: int = setting(25, "log the current image to TensorBoard every N steps (0: off)")
    checkpoint_every: int = setting(
        0, "save a resumable checkpoint beside the output every N steps (0: off)"
    )
    resume: bool = setting(
        False, "continue from the checkpoint beside the output", action="store_true"
    )
    quiet: bool = setting(
        False, "no progress bar and no notes, only warnings and errors", action="store_true"
    )

    def __post_init__(self):
        if not self.output:
            raise StyleTransferError("`output` is empty: give the path of the result")
        if not self.logdir:
            raise StyleTransferError("`logdir` is empty: give a directory for TensorBoard")
        for name in ("save_every", "image_every", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise StyleTransferError(f"`{name}` must be >= 0 (0 turns it off), got {value!r}")
