"""An any-style network's training as a job of the run machinery (`tf_nst.run`)."""

from __future__ import annotations

import math
import os
import pathlib

from tf_nst.networks.job import is_stylizer, photos_digest
from tf_nst.run import ResumeKey
from tf_nst.run.job import LoopJob
from tf_nst.text import setting_text

RESUME_KIND = "train-any-style"
# Settings that change a training's trajectory: a resumed run must keep them.
ANY_STYLE_RESUME_SETTINGS = (
    "size", "batch_size", "steps", "learning_rate", "learning_rate_decay", "content_weight",
    "style_weight", "tv_weight", "style_layers", "style_layer_weights", "decoder_width",
    "backbone", "weights", "pooling", "precision", "seed", "validation", "validation_paintings",
    "validation_every", "distribute",
)  # fmt: skip


def any_style_resume_key(config, photo_paths, painting_paths) -> ResumeKey:
    """What an any-style training's checkpoint records and `--resume` compares."""
    settings = {name: setting_text(getattr(config, name)) for name in ANY_STYLE_RESUME_SETTINGS}
    if config.weights != "imagenet":
        settings["weights"] = os.path.abspath(config.weights)
    inputs = {"photos": photos_digest(photo_paths), "paintings": photos_digest(painting_paths)}
    return ResumeKey(RESUME_KIND, settings, inputs)


class AnyStyleJob(LoopJob):
    """An any-style network's training as a `tf_nst.run.Job`.

    The result is the decoder with the lowest validation loss, exported with the encoder as a
    SavedModel (`tf_nst.networks.any_style.export.export_any_style`).

    Args:
        trainer: The `AnyStyleTrainer`, built.
        photos: The photos argument, recorded in the metadata (int8 TFLite calibrates on them).
        paintings: The paintings argument, likewise.
    """

    kind = "train"

    def __init__(self, trainer, photos=None, paintings=None):
        self.trainer = self.loop = trainer
        self.photos_argument = photos
        self.paintings_argument = paintings
        # The held-out paintings, for TensorBoard's style pictures.
        self.styles = list(trainer.validation_pairs[1].numpy()[: len(trainer.paintings.validation)])
        self.resumed = False

    def restore(self, path: str) -> None:
        """Restores a checkpoint; the restored run replaces its interrupted run's export."""
        self.trainer.restore(path)
        self.resumed = True

    def resume_key(self) -> ResumeKey:
        """The settings and the photos' and paintings' digests."""
        trainer = self.trainer
        return any_style_resume_key(
            trainer.config,
            [*trainer.photos.training, *trainer.photos.validation],
            [*trainer.paintings.training, *trainer.paintings.validation],
        )

    def has_result(self) -> bool:
        """A step ran, and either a validation was finite or nothing diverged."""
        return self.step > 0 and (math.isfinite(self.best_loss) or not self.stop_reason)

    def metadata(self) -> dict:
        """What the model folder records about its training."""
        import tf_nst

        trainer = self.trainer

        def folders(argument):
            if argument is None:
                return None
            items = [argument] if isinstance(argument, (str, os.PathLike)) else list(argument)
            return [os.path.abspath(os.fspath(item)) for item in items]

        return {
            "photos": folders(self.photos_argument),
            "paintings": folders(self.paintings_argument),
            "training_photos": len(trainer.photos.training),
            "training_paintings": len(trainer.paintings.training),
            "held_out_photos": [os.path.basename(path) for path in trainer.photos.validation],
            "held_out_paintings": [os.path.basename(path) for path in trainer.paintings.validation],
            "settings": {
                name: setting_text(value) for name, value in trainer.config.hparams().items()
            },
            "seed": trainer.seed,
            "steps": self.step,
            "validation_loss": self.best_loss if self.best_loss != float("inf") else None,
            "tf_nst_version": tf_nst.__version__,
        }

    def save_result(self, path: pathlib.Path) -> None:
        """Exports the best network to the model folder, atomically (as `TrainJob` does)."""
        from tf_nst.image.writing import replace_directory
        from tf_nst.networks.any_style.export import export_any_style

        decoder = self.trainer.best_model()
        encoder = self.trainer.encoder
        if not (self.resumed and is_stylizer(path)):
            export_any_style(encoder, decoder, path, self.metadata())
            return
        replace_directory(
            path, lambda fresh: export_any_style(encoder, decoder, fresh, self.metadata())
        )

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
        """Command line, hparams, the held-out paintings and photos of the validation pairs."""
        from tf_nst.config import AnyStyleConfig
        from tf_nst.run import summaries

        self.log_command_settings_and_styles(
            log,
            AnyStyleConfig,
            metrics=(summaries.LOSS_BEST, summaries.LOSS_VALIDATION),
            leading=AnyStyleConfig.HPARAMS_FIRST,
        )
        photos, _ = self.trainer.validation_pairs
        if photos.shape[0]:
            log.image(summaries.PICTURE_CONTENT, 0, photos.numpy())
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
