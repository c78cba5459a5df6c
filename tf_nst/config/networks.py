"""Settings of the two network trainings (`tf-nst train`): per-style and any-style."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import ClassVar

from tf_nst.config.fields import (
    check_non_negative_number,
    check_positive_int,
    check_run_length,
    distribute_setting,
    setting,
)
from tf_nst.config.optimization import DEFAULT_STYLE_LAYERS
from tf_nst.config.shared import LossSettings, path_defaults
from tf_nst.errors import StyleTransferError

# A feed-forward network starts from noise rather than from the photo, so the content term must
# pin the scene's shapes: with the optimisation's deep block4_conv2 and style weight the scene
# dissolved under the texture. Johnson et al. use relu2_2; on held-out photos block3_conv2 kept
# the scene as well as block2_conv2 at a lower style error (benchmarks/train_quality.py).
DEFAULT_TRAIN_CONTENT_LAYERS = ("block3_conv2",)
# (content, style, total variation). Chosen with benchmarks/train_quality.py on held-out photos
# with the CPU recipe: style weight 3 keeps the content error within 1.2x the optimisation's
# while the style error falls well below a third of the photo's own; 4 and 10 lost the scene.
DEFAULT_TRAIN_LOSS_WEIGHTS = (1.0, 3.0, 1.0)
# The five layers the training defaults were measured with (README, "Fast style networks").
# The optimisation dropped block5_conv1; without it the network keeps more of the scene but
# loses the painting's coarse structure (benchmarks/README.md), so the network keeps it.
DEFAULT_TRAIN_STYLE_LAYERS = (*DEFAULT_STYLE_LAYERS, "block5_conv1")


@dataclasses.dataclass(frozen=True)
class NetworkTrainingSettings(LossSettings):
    """The settings both network trainings share, on the loss settings.

    Attributes:
        validation: Photos held out of training, for the validation loss that picks the best
            network.
        validation_every: Steps between validations.
        distribute: "auto", "none", "mirrored" or "multiworker".
    """

    validation: int = setting(
        8, "photos held out of training, for the validation loss that picks the best network"
    )
    validation_every: int = setting(100, "steps between validations")
    distribute: str = distribute_setting()

    def __post_init__(self):
        super().__post_init__()
        check_run_length(self)
        check_positive_int("validation_every", self.validation_every)
        check_held_out_count("validation", self.validation)


def check_held_out_count(name: str, value) -> None:
    """Checks a count of held-out images: a whole number from 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StyleTransferError(f"`{name}` must be a whole number from 0, got {value!r}")


@dataclasses.dataclass(frozen=True)
class TrainConfig(NetworkTrainingSettings):
    """Settings of one fast style network's training (`tf-nst train`), on the shared ones.

    Attributes:
        size: Side of the square training crops, in pixels.
        steps: Training steps.
        learning_rate: Adam's learning rate.
        batch_size: Photos per replica per step; the global batch is this times the replicas.
        width: Channels of the transform network's first layer.
        style_size: Long side of the style images in the loss, in pixels, whatever `size`; None
            for `size` (see `style_side`).
        coarse_style_weight: Weight, as a share of `style_weight`, of the style loss of the
            output reduced to half its size against the style images at half `style_side`
            (`tf_nst.networks.training.make_losses`); 0 turns it off.
    """

    PATH_DEFAULTS: ClassVar[Mapping[str, object]] = path_defaults(
        DEFAULT_TRAIN_LOSS_WEIGHTS, DEFAULT_TRAIN_CONTENT_LAYERS, DEFAULT_TRAIN_STYLE_LAYERS
    )
    HPARAMS_FIRST: ClassVar[tuple[str, ...]] = ("style_weight", "size", "steps", "width")

    size: int = setting(256, "side of the square training crops, in pixels")
    steps: int = setting(
        40_000, "training steps (Johnson et al.: 40000 at batch 4, two epochs of COCO)"
    )
    learning_rate: float = setting(1e-3, "Adam's learning rate")
    batch_size: int = setting(
        4, "photos per replica per step; the global batch is this times the replicas"
    )
    width: int = setting(
        32,
        "channels of the network's first layer: 32 is Johnson's network, 16 is about 4x cheaper",
    )
    style_size: int | None = setting(
        None,
        "long side of the style images in the loss, in pixels, whatever --size (Johnson et "
        "al.'s style_image_size): larger paints larger strokes (default: --size)",
    )
    coarse_style_weight: float = setting(
        0.0,
        "weight, relative to --style-weight, of a second style loss on the output reduced to half "
        "its size against the style images at half --style-size: the painting's structures at "
        "twice the scale (0: off)",
    )

    def __post_init__(self):
        super().__post_init__()
        for name in ("batch_size", "width"):
            check_positive_int(name, getattr(self, name))
        if self.style_size is not None:
            check_positive_int("style_size", self.style_size)
        check_non_negative_number("coarse_style_weight", self.coarse_style_weight)

    @property
    def style_side(self) -> int:
        """The long side of the style images in the loss: `style_size`, or `size` if None."""
        return self.size if self.style_size is None else self.style_size


# AdaIN (Huang and Belongie 2017): content loss on relu4_1 against the AdaIN target, style loss on
# the means and deviations of relu1_1 to relu4_1, weight 10, no total variation.
DEFAULT_ANY_STYLE_STYLE_LAYERS = DEFAULT_STYLE_LAYERS
DEFAULT_ANY_STYLE_CONTENT_LAYERS = ("block4_conv1",)
DEFAULT_ANY_STYLE_LOSS_WEIGHTS = (1.0, 10.0, 0.0)


@dataclasses.dataclass(frozen=True)
class AnyStyleConfig(NetworkTrainingSettings):
    """Settings of an any-style (AdaIN) network's training (`tf-nst train --paintings`).

    The defaults are the AdaIN paper's GPU recipe: 256 px crops of images resized to 512, batch
    8, Adam 1e-4 with inverse-time decay 5e-5, 160,000 steps (MS-COCO and WikiArt there).

    Attributes:
        size: Side of the square training crops, in pixels.
        steps: Training steps.
        learning_rate: Adam's initial learning rate.
        learning_rate_decay: Inverse-time decay: the rate at step t is
            `learning_rate / (1 + learning_rate_decay * t)`.
        batch_size: (photo, painting) pairs per replica per step.
        decoder_width: Channels of the decoder's full-resolution block (VGG's is 64); the
            deeper blocks have 2, 4 times as many.
        identity_weight: Weight of the identity loss: one training pair in four has its own
            photo as the painting, and the decoder's output is asked to be that photo (squared
            pixel error, 0-255 scale, as SANet's identity loss). It is what makes `--strength 0`
            give the photo back; 0 turns the identity pairs off (the AdaIN paper's training).
        validation_paintings: Paintings held out of training; the validation pairs (held-out
            photo, held-out painting) drive keep-best.
    """

    PATH_DEFAULTS: ClassVar[Mapping[str, object]] = path_defaults(
        DEFAULT_ANY_STYLE_LOSS_WEIGHTS,
        DEFAULT_ANY_STYLE_CONTENT_LAYERS,
        DEFAULT_ANY_STYLE_STYLE_LAYERS,
    )
    HPARAMS_FIRST: ClassVar[tuple[str, ...]] = ("style_weight", "size", "steps", "decoder_width")
    # Shared settings that have no meaning for a network that takes its style at apply time.
    UNUSED_FIELDS: ClassVar[tuple[str, ...]] = ("style_blend",)

    size: int = setting(256, "side of the square training crops, in pixels (AdaIN: 256)")
    steps: int = setting(160_000, "training steps (AdaIN: 160000 at batch 8)")
    learning_rate: float = setting(1e-4, "Adam's initial learning rate (AdaIN: 1e-4)")
    learning_rate_decay: float = setting(
        5e-5, "inverse-time decay: the rate at step t is rate / (1 + decay * t) (AdaIN: 5e-5)"
    )
    batch_size: int = setting(8, "(photo, painting) pairs per replica per step (AdaIN: 8)")
    decoder_width: int = setting(
        64, "channels of the decoder's full-resolution block, VGG's 64; deeper blocks 2x, 4x"
    )
    identity_weight: float = setting(
        1.0,
        "weight of the identity loss on the 1 in 4 training pairs whose painting is the photo "
        "itself; it makes --strength 0 give the photo back (0: none, as in AdaIN)",
    )
    validation_paintings: int = setting(
        8, "paintings held out of training; held-out photo x painting pairs pick the best network"
    )

    def __post_init__(self):
        super().__post_init__()
        for name in ("batch_size", "decoder_width"):
            check_positive_int(name, getattr(self, name))
        check_non_negative_number("learning_rate_decay", self.learning_rate_decay)
        check_non_negative_number("identity_weight", self.identity_weight)
        check_held_out_count("validation_paintings", self.validation_paintings)
        if self.style_blend is not None:
            raise StyleTransferError(
                "`style_blend` has no meaning for an any-style network: "
                "blend styles when applying it (--style-blend)"
            )
        if tuple(self.content_layers) != DEFAULT_ANY_STYLE_CONTENT_LAYERS:
            raise StyleTransferError(
                "`content_layers` of an any-style network is its encoder's output, "
                "block4_conv1 (relu4_1): leave it out"
            )
