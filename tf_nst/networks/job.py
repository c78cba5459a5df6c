"""A style network's training as a job of the run machinery (`tf_nst.run`)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import pathlib
import secrets
import stat
from collections.abc import Sequence

from tf_nst.errors import StyleTransferError
from tf_nst.run import ResumeKey
from tf_nst.run.job import LoopJob, array_digest, file_digest
from tf_nst.text import printable, setting_text

# The stylizer's metadata file, inside its SavedModel directory (TensorFlow ignores extra files).
# Defined here, without TensorFlow, so that the CLI can check a model folder before it loads.
STYLIZER_METADATA = "tf_nst_stylizer.json"

# Settings that change a training's trajectory: a resumed run must keep them.
TRAIN_RESUME_SETTINGS = (
    "size", "batch_size", "steps", "learning_rate", "content_weight", "style_weight", "tv_weight",
    "content_layers", "style_layers", "style_layer_weights", "style_blend", "style_size",
    "width", "backbone", "weights", "pooling", "precision", "seed", "validation",
    "validation_every", "distribute",
)  # fmt: skip


def photos_digest(paths: Sequence[str]) -> str:
    """SHA-256 of the photos, by path and content, so a resume can tell the folder changed.

    Each file is read once per command, in blocks, so the cost is that of reading the folder
    (hashing is faster than most disks). A file that cannot be read, or is not a regular file (a
    FIFO would block), is named by what is wrong with it: decoding skips it later, and it must
    not stop the digest.
    """
    digest = hashlib.sha256()
    for path in sorted(paths):
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):
                content = "not a regular file"
            else:
                content = file_digest(path)
        except OSError as error:
            content = f"unreadable ({error.strerror or type(error).__name__})"
        digest.update(f"{os.path.abspath(path)}\0{content}\n".encode())
    return digest.hexdigest()


def train_resume_key(config, photo_paths: Sequence[str], style_paths: Sequence[str]) -> ResumeKey:
    """What a training's checkpoint records and `--resume` compares, for image files."""
    inputs = {"photos": photos_digest(photo_paths)}
    inputs.update(
        {f"style {index + 1}": file_digest(path) for index, path in enumerate(style_paths)}
    )
    return ResumeKey("train", _resume_settings(config), inputs)


def _resume_settings(config) -> dict:
    settings = {name: setting_text(getattr(config, name)) for name in TRAIN_RESUME_SETTINGS}
    if config.weights != "imagenet":
        settings["weights"] = os.path.abspath(config.weights)
    return settings


class TrainJob(LoopJob):
    """A fast style network's training as a `tf_nst.run.Job`.

    The result is the network with the lowest validation loss, exported as a SavedModel with its
    metadata (`tf_nst.networks.export.export_stylizer`).

    Args:
        trainer: The `NetworkTrainer`, built.
        styles: The style images, for TensorBoard.
        style_paths: Their files, named with their SHA-256 in the model's metadata and the resume
            key; None names the style images by their pixels' SHA-256.
    """

    kind = "train"
    checkpoint_first = True  # an export takes seconds: see `tf_nst.run.Job`

    def __init__(self, trainer, styles, style_paths: Sequence[str] | None = None):
        self.trainer = self.loop = trainer
        self.styles = styles
        self.style_paths = None if style_paths is None else list(style_paths)
        # `run_job` sets the run's own (kept across resumes); this one serves a direct caller.
        self.run_id = secrets.token_hex(8)

    def restore(self, path: str) -> None:
        """Restores a checkpoint (the trainer turns any failure into one line)."""
        self.trainer.restore(path)

    def resume_key(self) -> ResumeKey:
        """The settings, the photos and the style images' digests (for Python callers)."""
        photos = self.trainer.photos
        inputs = {"photos": photos_digest([*photos.training, *photos.validation])}
        inputs.update(
            {f"style {index + 1}": digest for index, digest in enumerate(self._style_digests())}
        )
        return ResumeKey("train", _resume_settings(self.trainer.config), inputs)

    def _style_names(self) -> list[str]:
        if self.style_paths is None:
            return [f"style {index + 1}" for index in range(len(self.styles))]
        return [os.path.basename(path) for path in self.style_paths]

    def _style_digests(self) -> list[str]:
        if self.style_paths is None:
            return [array_digest(style) for style in self.styles]
        return [file_digest(path) for path in self.style_paths]

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
                {"name": name, "sha256": digest}
                for name, digest in zip(self._style_names(), self._style_digests(), strict=True)
            ],
            "settings": {
                name: setting_text(value) for name, value in self.trainer.config.hparams().items()
            },
            "seed": self.trainer.seed,
            "steps": self.step,
            "validation_loss": self.best_loss if self.best_loss != float("inf") else None,
            "run_id": self.run_id,
            "tf_nst_version": tf_nst.__version__,
        }

    def save_result(self, path: pathlib.Path) -> None:
        """Exports the best network to the model folder, atomically.

        A model folder there is replaced only if this run wrote it (before an interrupt that this
        run resumes): the new export is written beside it first and swapped in by renames.

        Raises:
            StyleTransferError: If the export cannot be written, or `path` holds anything else.
        """
        from tf_nst.image.writing import replace_directory
        from tf_nst.networks.export import export_stylizer

        if not os.path.lexists(path):
            export_stylizer(self.trainer.best_model(), path, self.metadata())
            return
        check_own_model(path, self.run_id)
        model = self.trainer.best_model()
        replace_directory(path, lambda fresh: export_stylizer(model, fresh, self.metadata()))

    def progress_note(self, result) -> str:
        """Training speed."""
        return f"{result.images_per_second:.1f} img/s"

    def hparams(self) -> dict:
        """The settings as run, with the seed, precision and replicas resolved."""
        values = self.trainer.config.hparams()
        values["seed"] = self.trainer.seed
        values["precision"] = self.trainer.precision
        values["replicas"] = self.trainer.global_batch_size // self.trainer.config.batch_size
        return values

    def log_start(self, log) -> None:
        """Command line, hparams, the styles and the validation photos."""
        from tf_nst.config import TrainConfig
        from tf_nst.run import summaries

        self.log_command_settings_and_styles(
            log,
            TrainConfig,
            metrics=(summaries.LOSS_BEST, summaries.LOSS_VALIDATION),
            leading=TrainConfig.HPARAMS_FIRST,
        )
        photos = self.trainer.validation_photos
        if photos.shape[0]:
            log.image(summaries.PICTURE_CONTENT, 0, photos)
        log.flush()

    def log_step(self, log, result, with_images: bool) -> None:
        """Losses, speed and learning rate; validation loss and pictures on validation steps."""
        from tf_nst.run import summaries

        log.scalars(result.step, summaries.train_step_scalars(result))
        if result.validation_images is not None:
            log.image(summaries.PICTURE_VALIDATION, result.step, result.validation_images)

    def log_end(self, log) -> None:
        """Nothing beyond the last validation."""
        log.flush()


def is_stylizer(path: str | os.PathLike) -> bool:
    """Whether `path` is a model folder that `tf-nst train` wrote."""
    return (pathlib.Path(path) / STYLIZER_METADATA).is_file()


def stylizer_run_id(path: str | os.PathLike) -> str | None:
    """The identity of the training run that exported the model folder `path`, if it says."""
    try:
        metadata = json.loads((pathlib.Path(path) / STYLIZER_METADATA).read_text("utf-8"))
        run_id = metadata["training"]["run_id"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None
    return run_id if isinstance(run_id, str) else None


def check_own_model(path: str | os.PathLike, run_id: str) -> None:
    """Refuses to replace `path` unless it is the model that the run `run_id` exported.

    A resumed training replaces the network its interrupted run exported; a model folder that
    another run finished (two trainings into the same folder at once), or anything else, is never
    replaced without the user saying so.

    Raises:
        StyleTransferError: If `path` exists and is not the run's own model.
    """
    if not os.path.lexists(path) or stylizer_run_id(path) == run_id:
        return
    label = printable(os.fspath(path))
    what = (
        "holds a network that this run did not write"
        if is_stylizer(path)
        else "exists and is not this run's network"
    )
    raise StyleTransferError(
        f"MODEL_DIR {label} {what}, and this run does not replace it: move it away and run this "
        "training's command with --resume to finish it there, or start over with another "
        "MODEL_DIR (without --resume)"
    )
