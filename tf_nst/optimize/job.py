"""The optimisation as a job of the run machinery (`tf_nst.run`).

`OptimizationJob` wraps `Optimization`: it says how the best image is saved, what goes to
TensorBoard (through the tags `tf_nst.run.summaries` owns) and what a resumed run must match.
"""

from __future__ import annotations

import os
import pathlib
import secrets
from collections.abc import Sequence

from tf_nst.config import StyleConfig
from tf_nst.errors import StyleTransferError
from tf_nst.image import decoding, writing
from tf_nst.run import ResumeKey, start_over
from tf_nst.run.job import LoopJob, array_digest, file_digest
from tf_nst.text import one_line, printable, setting_text

# Settings that change a stylization's trajectory: a resumed run must keep them.
STYLIZE_RESUME_SETTINGS = (
    "size", "steps", "scales", "backbone", "weights", "pooling", "optimizer", "learning_rate",
    "content_weight", "style_weight", "tv_weight", "content_layers", "style_layers",
    "style_layer_weights", "style_blend", "preserve_colors", "style_scale", "loss_normalization",
    "precision", "init", "seed",
)  # fmt: skip


def optimization_resume_key(
    config: StyleConfig, content_path: str, style_paths: Sequence[str]
) -> ResumeKey:
    """What a stylization's checkpoint records and `--resume` compares, for image files."""
    inputs = {"content": file_digest(content_path)}
    inputs.update(
        {f"style {index + 1}": file_digest(path) for index, path in enumerate(style_paths)}
    )
    return ResumeKey("stylize", _resume_settings(config), inputs)


def _resume_settings(config: StyleConfig) -> dict:
    settings = {name: setting_text(getattr(config, name)) for name in STYLIZE_RESUME_SETTINGS}
    if config.weights != "imagenet":
        settings["weights"] = os.path.abspath(config.weights)
    return settings


class OptimizationJob(LoopJob):
    """A stylization as a `tf_nst.run.Job`.

    Args:
        content: The content image, float RGB in [0, 1].
        styles: The style images.
        config: The run's settings. An unset seed is drawn here and recorded, so that every run
            can be repeated from its TensorBoard hparams.
        init_image: The starting image when `config.init` is a path.
        extractor: A feature extractor; built from the config when None.
    """

    kind = "stylize"

    def __init__(self, content, styles, config: StyleConfig, init_image=None, extractor=None):
        from tf_nst.optimize.optimization import Optimization

        if config.seed is None:
            config = config.replace(seed=secrets.randbelow(2**32))
        self.config = config
        self.content = content
        self.styles = styles
        self.optimization = self.loop = Optimization(
            content, styles, config, extractor=extractor, init_image=init_image
        )

    def restore(self, path: str) -> None:
        """Restores a checkpoint; anything unreadable becomes one line telling to start over."""
        import tensorflow as tf

        try:
            self.optimization.restore(path)
        except StyleTransferError:
            raise
        except (tf.errors.OpError, ValueError, KeyError, AssertionError, IndexError) as error:
            raise StyleTransferError(
                f"checkpoint {printable(path)} cannot be restored ({one_line(error)}): "
                + start_over(os.path.dirname(os.path.abspath(path)))
            ) from None

    def has_result(self) -> bool:
        """Whether a finite step produced an image."""
        return self.optimization.best_image is not None

    def save_result(self, path: pathlib.Path) -> None:
        """Writes the best image at the output size, post-processed, atomically."""
        writing.save_image(self.optimization.final_image(), path)

    def save_intermediate(self, result, path: pathlib.Path) -> None:
        """Writes the image of one step, atomically."""
        writing.save_image(self.optimization.postprocess(result.image), path)

    @property
    def total_steps(self) -> int:
        """The steps the run will take, over all scales."""
        return self.config.steps

    def resume_key(self) -> ResumeKey:
        """The settings and the digests of the content and style arrays (for Python callers)."""
        inputs = {"content": array_digest(self.content)}
        inputs.update(
            {f"style {index + 1}": array_digest(style) for index, style in enumerate(self.styles)}
        )
        return ResumeKey("stylize", _resume_settings(self.config), inputs)

    def progress_note(self, result) -> str:
        """The scale, when there are several."""
        if result.scale_count == 1:
            return ""
        return f"scale {result.scale_index + 1}/{result.scale_count}"

    def hparams(self) -> dict:
        """The settings as run, with what "auto" resolved to: scales, precision and seed."""
        values = self.config.hparams()
        values["scales"] = len(self.optimization.scales)
        values["precision"] = self.optimization.precision
        return values

    def log_start(self, log) -> None:
        """Command line, hparams and the input pictures."""
        from tf_nst.run import summaries

        self.log_command_settings_and_styles(log, StyleConfig, leading=StyleConfig.HPARAMS_FIRST)
        log.image(summaries.PICTURE_CONTENT, 0, self.optimization.postprocess(self.content))
        log.flush()

    def log_step(self, log, result, with_images: bool) -> None:
        """The step's losses and timing; the current image when asked."""
        from tf_nst.run import summaries

        scale = self.optimization.scales[result.scale_index]
        log.scalars(
            result.step,
            summaries.stylize_step_scalars(
                result, scale.long_side, final_scale=result.scale_index == result.scale_count - 1
            ),
        )
        if with_images:
            log.image(
                summaries.PICTURE_CURRENT, result.step, self.optimization.postprocess(result.image)
            )

    def log_end(self, log) -> None:
        """The final image."""
        from tf_nst.run import summaries

        log.image(summaries.PICTURE_FINAL, self.step, self.optimization.final_image())
        log.flush()


def load_stylize_inputs(content_path: str, style_paths: Sequence[str], init_path: str | None):
    """Loads the content, style and init images as float RGB arrays."""
    content = decoding.load_image(content_path)
    styles = [decoding.load_image(path) for path in style_paths]
    init_image = decoding.load_image(init_path) if init_path else None
    return content, styles, init_image
