"""The long jobs that `tf_nst.run` drives: each maps a library loop onto the run's hooks.

`StylizeJob` wraps `optimize.Stylizer`: it says how the best image is saved, what goes to
TensorBoard (through the tags `tf_nst.summaries` owns) and what a resumed run must match.
"""

from __future__ import annotations

import hashlib
import math
import os
import pathlib
import secrets
from collections.abc import Sequence

from tf_nst import images, writing
from tf_nst.config import HPARAMS_FIRST, StyleConfig, choices_of
from tf_nst.errors import StyleTransferError
from tf_nst.run import ResumeKey, command_line
from tf_nst.text import one_line, printable, setting_text

# Settings that change a stylization's trajectory: a resumed run must keep them.
STYLIZE_RESUME_SETTINGS = (
    "size", "steps", "scales", "backbone", "weights", "pooling", "optimizer", "learning_rate",
    "content_weight", "style_weight", "tv_weight", "content_layers", "style_layers",
    "style_layer_weights", "style_blend", "preserve_colors", "style_scale", "loss_normalization",
    "precision", "init", "seed",
)  # fmt: skip


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file, so that a resumed run can tell its inputs are the same."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stylize_resume_key(
    config: StyleConfig, content_path: str, style_paths: Sequence[str]
) -> ResumeKey:
    """What a stylization's checkpoint records and `--resume` compares."""
    settings = {name: setting_text(getattr(config, name)) for name in STYLIZE_RESUME_SETTINGS}
    if config.weights != "imagenet":
        settings["weights"] = os.path.abspath(config.weights)
    inputs = {"content": file_digest(content_path)}
    inputs.update(
        {f"style {index + 1}": file_digest(path) for index, path in enumerate(style_paths)}
    )
    return ResumeKey("stylize", settings, inputs)


def intermediate_image_name(output: pathlib.Path, step: int) -> pathlib.Path:
    """`OUT_00050.png` beside `OUT.png`, for the result of step 50."""
    return output.with_name(f"{output.stem}_{step:05d}{output.suffix}")


class _LoopJob:
    """What a job reads from its library loop (a `Stylizer` or a `NetworkTrainer`): `loop`."""

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

    def _log_command_settings_and_styles(self, log, config_class, **hparams_options) -> None:
        """The command line, the hparams (`self.hparams()`) and the style pictures."""
        from tf_nst import summaries

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


class StylizeJob(_LoopJob):
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
        from tf_nst.optimize import Stylizer

        if config.seed is None:
            config = config.replace(seed=secrets.randbelow(2**32))
        self.config = config
        self.content = content
        self.styles = styles
        self.stylizer = self.loop = Stylizer(
            content, styles, config, extractor=extractor, init_image=init_image
        )

    def restore(self, path: str) -> None:
        """Restores a checkpoint; anything unreadable becomes one line telling to start over."""
        import tensorflow as tf

        try:
            self.stylizer.restore(path)
        except StyleTransferError:
            raise
        except (tf.errors.OpError, ValueError, KeyError, AssertionError, IndexError) as error:
            raise StyleTransferError(
                f"checkpoint {printable(path)} cannot be restored ({one_line(error)}): run "
                "without --resume to start over"
            ) from None

    def has_result(self) -> bool:
        """Whether a finite step produced an image."""
        return self.stylizer.best_image is not None

    def save_result(self, path: pathlib.Path) -> None:
        """Writes the best image at the output size, post-processed, atomically."""
        writing.save_image(self.stylizer.final_image(), path)

    def save_intermediate(self, result, path: pathlib.Path) -> None:
        """Writes the image of one step, atomically."""
        writing.save_image(self.stylizer.postprocess(result.image), path)

    def intermediate_name(self, output: pathlib.Path, step: int) -> pathlib.Path:
        """Where `--save-every` writes step `step`."""
        return intermediate_image_name(output, step)

    def progress_note(self, result) -> str:
        """The scale, when there are several."""
        if result.scale_count == 1:
            return ""
        return f"scale {result.scale_index + 1}/{result.scale_count}"

    def hparams(self) -> dict:
        """The settings as run, with what "auto" resolved to: scales, precision and seed."""
        values = self.config.hparams()
        values["scales"] = len(self.stylizer.scales)
        values["precision"] = self.stylizer.precision
        return values

    def log_start(self, log) -> None:
        """Command line, hparams and the input pictures."""
        from tf_nst import summaries

        self._log_command_settings_and_styles(log, StyleConfig, leading=HPARAMS_FIRST)
        log.image(summaries.PICTURE_CONTENT, 0, self.stylizer.postprocess(self.content))
        log.flush()

    def log_step(self, log, result, with_images: bool) -> None:
        """The step's losses and timing; the current image when asked."""
        from tf_nst import summaries

        scale = self.stylizer.scales[result.scale_index]
        log.scalars(
            result.step,
            summaries.stylize_step_scalars(
                result, scale.long_side, final_scale=result.scale_index == result.scale_count - 1
            ),
        )
        if with_images:
            log.image(
                summaries.PICTURE_CURRENT, result.step, self.stylizer.postprocess(result.image)
            )

    def log_end(self, log) -> None:
        """The final image."""
        from tf_nst import summaries

        log.image(summaries.PICTURE_FINAL, self.step, self.stylizer.final_image())
        log.flush()


def load_stylize_inputs(content_path: str, style_paths: Sequence[str], init_path: str | None):
    """Loads the content, style and init images as float RGB arrays."""
    content = images.load_image(content_path)
    styles = [images.load_image(path) for path in style_paths]
    init_image = images.load_image(init_path) if init_path else None
    return content, styles, init_image


# Settings that change a training's trajectory: a resumed run must keep them.
TRAIN_RESUME_SETTINGS = (
    "size", "batch_size", "steps", "learning_rate", "content_weight", "style_weight", "tv_weight",
    "content_layers", "style_layers", "style_layer_weights", "style_blend", "style_scale",
    "width", "backbone", "weights", "pooling", "precision", "seed", "validation",
    "validation_every", "distribute",
)  # fmt: skip


def photos_digest(paths: Sequence[str]) -> str:
    """SHA-256 of the photo list (names and sizes), so a resume can tell the folder changed."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(f"{os.path.abspath(path)}\0{os.path.getsize(path)}\n".encode())
    return digest.hexdigest()


def train_resume_key(config, photo_paths: Sequence[str], style_paths: Sequence[str]) -> ResumeKey:
    """What a training's checkpoint records and `--resume` compares."""
    settings = {name: setting_text(getattr(config, name)) for name in TRAIN_RESUME_SETTINGS}
    if config.weights != "imagenet":
        settings["weights"] = os.path.abspath(config.weights)
    inputs = {"photos": photos_digest(photo_paths)}
    inputs.update(
        {f"style {index + 1}": file_digest(path) for index, path in enumerate(style_paths)}
    )
    return ResumeKey("train", settings, inputs)


class TrainJob(_LoopJob):
    """A fast style network's training as a `tf_nst.run.Job`.

    The result is the network with the lowest validation loss, exported as a SavedModel with its
    metadata (`tf_nst.export.export_stylizer`).

    Args:
        trainer: The `training.NetworkTrainer`, built (and restored, on `--resume`).
        styles: The style images, for TensorBoard.
        style_paths: Their files, named with their SHA-256 in the model's metadata.
    """

    kind = "train"

    def __init__(self, trainer, styles, style_paths: Sequence[str], resumed: bool = False):
        self.trainer = self.loop = trainer
        self.styles = styles
        self.style_paths = list(style_paths)
        self.resumed = resumed

    def restore(self, path: str) -> None:
        """Restores a checkpoint (the trainer turns any failure into one line)."""
        self.trainer.restore(path)

    def has_result(self) -> bool:
        """Whether a network worth saving exists.

        A step ran, and either a validation was finite or nothing diverged.
        """
        return self.step > 0 and (math.isfinite(self.best_loss) or not self.stop_reason)

    def metadata(self) -> dict:
        """What the model folder records about its training."""
        import tf_nst

        return {
            "styles": [
                {"name": os.path.basename(path), "sha256": file_digest(path)}
                for path in self.style_paths
            ],
            "settings": {
                name: setting_text(value) for name, value in self.trainer.config.hparams().items()
            },
            "seed": self.trainer.seed,
            "steps": self.step,
            "validation_loss": self.best_loss if self.best_loss != float("inf") else None,
            "tf_nst_version": tf_nst.__version__,
        }

    def save_result(self, path: pathlib.Path) -> None:
        """Exports the best network to the model folder, atomically.

        A resumed run replaces the model its interrupted run saved there: the new export is
        written beside it first and swapped in by renames.
        """
        import shutil

        from tf_nst.export import export_stylizer

        model = self.trainer.best_model()
        if not (self.resumed and is_stylizer(path)):
            export_stylizer(model, path, self.metadata())
            return
        token = secrets.token_hex(4)
        fresh, old = (path.with_name(f".{path.name}.{kind}-{token}") for kind in ("new", "old"))
        export_stylizer(model, fresh, self.metadata())
        os.rename(path, old)
        os.rename(fresh, path)
        shutil.rmtree(old, ignore_errors=True)

    def save_intermediate(self, result, path: pathlib.Path) -> None:
        """Training has no numbered intermediates: `--save-every` is not one of its options."""
        raise StyleTransferError("training writes no intermediates")

    def intermediate_name(self, output: pathlib.Path, step: int) -> pathlib.Path:
        """Not used: see `save_intermediate`."""
        return output.with_name(f"{output.name}_{step:06d}")

    def progress_note(self, result) -> str:
        """Training speed."""
        return f"{result.images_per_second:.1f} img/s"

    def hparams(self) -> dict:
        """The settings as run, with the seed, precision and replicas resolved."""
        values = self.trainer.config.hparams()
        values["seed"] = self.trainer.seed
        values["precision"] = self.trainer._precision
        values["replicas"] = self.trainer.global_batch_size // self.trainer.config.batch_size
        return values

    def log_start(self, log) -> None:
        """Command line, hparams, the styles and the validation photos."""
        from tf_nst import summaries
        from tf_nst.config import TrainConfig

        self._log_command_settings_and_styles(
            log,
            TrainConfig,
            metrics=(summaries.LOSS_BEST, summaries.LOSS_VALIDATION),
            leading=("style_weight", "size", "steps", "width"),
        )
        photos = self.trainer._validation_photos
        if photos.shape[0]:
            log.image(summaries.PICTURE_CONTENT, 0, photos)
        log.flush()

    def log_step(self, log, result, with_images: bool) -> None:
        """Losses, speed and learning rate; validation loss and pictures on validation steps."""
        from tf_nst import summaries

        log.scalars(result.step, summaries.train_step_scalars(result))
        if result.validation_images is not None:
            log.image(summaries.PICTURE_VALIDATION, result.step, result.validation_images)

    def log_end(self, log) -> None:
        """Nothing beyond the last validation."""
        log.flush()


def is_stylizer(path: str | os.PathLike) -> bool:
    """Whether `path` is a model folder that `tf-nst train` wrote."""
    from tf_nst.export import STYLIZER_METADATA

    return (pathlib.Path(path) / STYLIZER_METADATA).is_file()
