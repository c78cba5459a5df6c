"""Every setting of every path, with its default, validated once.

The configs are frozen dataclasses: the CLI builds one from its flags (`tf_nst.cli.options`), the
Python API takes one, and TensorBoard's hparams dashboard records `hparams()` of it. Validation
happens in `__post_init__`, so an invalid config never exists.

`LossSettings` declares, once, the settings that the optimisation (`StyleConfig`) and the
training of style networks (`TrainConfig`) share: the loss weights and layers, the style images'
blend, the backbone, the precision, the seed and the time limit. Where the two paths
want different defaults (the loss weights and layers), the field's default is None and each path
fills it in from its `PATH_DEFAULTS`; `shown_default` says what `--help` and the README show.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import ClassVar

from tf_nst.errors import StyleTransferError
from tf_nst.features.backbones import check_distinct

BACKBONES = ("vgg19", "vgg16")
INITS = ("content", "noise", "style")
POOLINGS = ("max", "avg")
OPTIMIZERS = ("adam", "lbfgs")
PRESERVE_COLORS = ("none", "luminance", "histogram")
LOSS_NORMALIZATIONS = ("normalized", "tutorial")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
APPLY_PRECISIONS = ("auto", "fp32", "bf16")
DISTRIBUTE_MODES = ("auto", "none", "mirrored", "multiworker")
FLOAT32_MAX = 3.4028234663852886e38

# Not block5_conv1: matching its Gram matrix copies the painting's objects (a sitter's eyes and
# face) into the photo, and costs the photo's structure; blocks 1-4 carry the brushwork and the
# palette (README.md, "Defaults on many paintings").
DEFAULT_STYLE_LAYERS = (
    "block1_conv1",
    "block2_conv1",
    "block3_conv1",
    "block4_conv1",
)
DEFAULT_CONTENT_LAYERS = ("block4_conv2",)
# Default (content, style, total-variation) weights of each loss normalisation. The tutorial's are
# the TensorFlow tutorial's own, so that mode reproduces it without extra flags.
DEFAULT_LOSS_WEIGHTS = {
    "normalized": (1.0, 20.0, 1.0),
    "tutorial": (1e4, 1e-2, 30.0),
}
LOSS_WEIGHT_FIELDS = ("content_weight", "style_weight", "tv_weight")
# A feed-forward network starts from noise rather than from the photo, so the content term must
# pin the scene's shapes: with the optimisation's deep block4_conv2 and style weight the scene
# dissolved under the texture. Johnson et al. use relu2_2; on held-out photos block3_conv2 kept
# the scene as well as block2_conv2 at a lower style error (benchmarks/train_quality.py).
DEFAULT_TRAIN_CONTENT_LAYERS = ("block3_conv2",)
# (content, style, total variation). Chosen with benchmarks/train_quality.py on held-out photos
# with the CPU recipe: style weight 3 keeps the content error within 1.2x the optimisation's
# while the style error falls well below a third of the photo's own; 4 and 10 lost the scene.
DEFAULT_TRAIN_LOSS_WEIGHTS = (1.0, 3.0, 1.0)
# The five layers the training defaults were measured with (README, "Fast style networks");
# the optimisation dropped block5_conv1 later, and the network was not re-measured without it.
DEFAULT_TRAIN_STYLE_LAYERS = (*DEFAULT_STYLE_LAYERS, "block5_conv1")




def setting(default, help: str, **options):
    """Declares a config field with its command-line help.

    The CLI builds its flags from these fields (`tf_nst.cli`), so a field's default, help and
    choices exist once, here. `options` are passed to argparse (`choices`, `metavar`).
    """
    return dataclasses.field(default=default, metadata={"help": help, **options})


def preserve_colors_setting(help: str):
    """The `preserve_colors` field of a path that can keep the photo's colours."""
    return setting("none", help, choices=PRESERVE_COLORS)


def distribute_setting():
    """The `distribute` field of both network trainings: how the step is spread over devices."""
    return setting(
        "auto",
        "auto: all GPUs when there are several; mirrored: all local devices; multiworker: the "
        "cluster in TF_CONFIG; none: one device",
        choices=DISTRIBUTE_MODES,
    )


def own_fields_first(config_class) -> list[dataclasses.Field]:
    """The fields of `config_class`, those it declares itself before those of its bases.

    That is the order of `--help`, the README's tables and the hparams dashboard: a path's own
    settings (its size, steps, ...) lead, the shared loss settings follow.
    """
    inherited = set()
    for base in config_class.__mro__[1:]:
        if dataclasses.is_dataclass(base):
            inherited.update(field.name for field in dataclasses.fields(base))
    fields = dataclasses.fields(config_class)
    own = [field for field in fields if field.name not in inherited]
    return own + [field for field in fields if field.name in inherited]


def shown_default(config_class, name: str):
    """The default of a field as `--help` and the README show it (a path's own, if it has one).

    A text in the class's `SHOWN_DEFAULTS` comes first, then the class's `PATH_DEFAULTS`, then
    the field's own default.
    """
    shown = getattr(config_class, "SHOWN_DEFAULTS", {})
    if name in shown:
        return shown[name]
    path_defaults = getattr(config_class, "PATH_DEFAULTS", {})
    if name in path_defaults:
        return path_defaults[name]
    return {field.name: field for field in dataclasses.fields(config_class)}[name].default


@dataclasses.dataclass(frozen=True)
class LossSettings:
    """The settings both paths share: the loss, the style images, the backbone, the run.

    A field whose default is None takes the path's own default (`PATH_DEFAULTS` of the subclass)
    when the config is built.

    Attributes:
        content_weight: Weight of the content term.
        style_weight: Weight of the style term.
        tv_weight: Weight of the total-variation term.
        content_layers: Backbone layers whose features the output must match.
        style_layers: Backbone layers whose Gram matrices the output must match.
        style_layer_weights: One weight per style layer; equal when None.
        style_blend: One weight per style image, normalised to sum to 1; equal when None.
        backbone: "vgg19" or "vgg16".
        weights: "imagenet" (downloaded once by Keras) or a path to a Keras weights file.
        pooling: "max" (as trained) or "avg" (as Gatys et al. recommend).
        precision: "auto", "fp32", "bf16" or "fp16" for the networks.
        jit: Compile the step with XLA.
        seed: Seed of every random choice; None draws one, which the run records.
        time_limit: Wall-clock budget in seconds; None for no limit.
    """

    PATH_DEFAULTS: ClassVar[Mapping[str, object]] = {}
    HPARAMS_FIRST: ClassVar[tuple[str, ...]] = ()

    content_weight: float | None = setting(None, "weight of the content term")
    style_weight: float | None = setting(None, "weight of the style term")
    tv_weight: float | None = setting(None, "weight of the total-variation term")
    content_layers: tuple[str, ...] | None = setting(
        None, "comma-separated layers whose features the output must match"
    )
    style_layers: tuple[str, ...] | None = setting(
        None, "comma-separated layers whose Gram matrices the output must match"
    )
    style_layer_weights: tuple[float, ...] | None = setting(
        None, "comma-separated weights, one per style layer (default: equal)"
    )
    style_blend: tuple[float, ...] | None = setting(
        None,
        "comma-separated weights of the STYLE images, normalised to sum to 1 (default: equal)",
    )
    backbone: str = setting(
        "vgg19", "the VGG network whose features define the losses", choices=BACKBONES
    )
    weights: str = setting(
        "imagenet",
        "'imagenet' (downloaded once into ~/.keras/models) or PATH to a Keras weights file "
        "of the backbone without its top; offline, pass a PATH",
    )
    pooling: str = setting(
        "max",
        "pooling between blocks: max (as trained) or avg (as Gatys et al. recommend)",
        choices=POOLINGS,
    )
    precision: str = setting(
        "auto",
        "compute precision of the networks; auto picks bf16 where the hardware has it natively "
        "and fp32 elsewhere",
        choices=PRECISIONS,
    )
    jit: bool = setting(False, "compile the step with XLA")
    seed: int | None = setting(
        None,
        "seed of every random choice (--init noise, the photo order, crops and initial network) "
        "(default: drawn at random and recorded)",
    )
    time_limit: float | None = setting(None, "stop after SECONDS, keeping the best result")

    def __post_init__(self):
        for name, default in self.PATH_DEFAULTS.items():
            if getattr(self, name) is None:
                # The one place a frozen instance is completed: before anyone can see it.
                object.__setattr__(self, name, default)
        _check_choices(self)
        for name in LOSS_WEIGHT_FIELDS:
            _non_negative_number(name, getattr(self, name))
        if not self.content_layers:
            raise StyleTransferError("`content_layers` is empty: name at least one layer")
        if not self.style_layers:
            raise StyleTransferError("`style_layers` is empty: name at least one layer")
        check_distinct(self.content_layers, "`content_layers`")
        check_distinct(self.style_layers, "`style_layers`")
        if self.style_layer_weights is not None:
            if len(self.style_layer_weights) != len(self.style_layers):
                raise StyleTransferError(
                    f"`style_layer_weights` has {len(self.style_layer_weights)} values but "
                    f"`style_layers` names {len(self.style_layers)} layers: "
                    "give one weight per layer"
                )
            for weight in self.style_layer_weights:
                _non_negative_number("style_layer_weights", weight)
        if self.style_blend is not None:
            for weight in self.style_blend:
                _non_negative_number("style_blend", weight)
            if sum(self.style_blend) <= 0:
                raise StyleTransferError(
                    "`style_blend` sums to 0: give at least one positive weight"
                )
        if self.time_limit is not None:
            _positive_number("time_limit", self.time_limit)
        if self.seed is not None:
            _seed("seed", self.seed)

    def normalized_style_blend(self, style_count: int) -> tuple[float, ...]:
        """Returns the blend weights for `style_count` styles, summing to 1.

        Raises:
            StyleTransferError: If a blend was given with a different number of weights.
        """
        if self.style_blend is None:
            return (1.0 / style_count,) * style_count
        if len(self.style_blend) != style_count:
            raise StyleTransferError(
                f"`style_blend` has {len(self.style_blend)} weights but {style_count} style "
                "images were given: give one weight per style image"
            )
        total = float(sum(self.style_blend))
        return tuple(float(weight) / total for weight in self.style_blend)

    def normalized_style_layer_weights(self) -> tuple[float, ...]:
        """Returns per-style-layer weights; equal weights of 1 / layer count by default."""
        if self.style_layer_weights is None:
            return (1.0 / len(self.style_layers),) * len(self.style_layers)
        return tuple(float(weight) for weight in self.style_layer_weights)

    def loss_weights(self):
        """The `tf_nst.losses.LossWeights` of these settings, for either path."""
        from tf_nst.losses import LossWeights

        return LossWeights(
            content=self.content_weight,
            style=self.style_weight,
            total_variation=self.tv_weight,
            style_layers=dict(
                zip(self.style_layers, self.normalized_style_layer_weights(), strict=True)
            ),
            content_layers=tuple(self.content_layers),
            normalization=getattr(self, "loss_normalization", "normalized"),
        )

    def hparams(self) -> dict:
        """Returns every setting by name, the ones a reader compares first leading.

        The order is the HParams dashboard's column order; values are as set (tuples, None),
        for `tf_nst.text.setting_text` or TensorBoard to turn into text.
        """
        return _leading_first(self, self.HPARAMS_FIRST)

    def replace(self, **changes):
        """Returns a copy with `changes` applied, validated again."""
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class StyleConfig(LossSettings):
    """Settings of one stylization by optimisation (`tf-nst stylize`), on the shared ones.

    Attributes:
        size: Longest side of the output in pixels.
        steps: Total optimisation steps, summed over all scales.
        learning_rate: Adam learning rate, in image units (the image lives in [0, 1]).
        init: "content", "noise", "style" or a path to an image.
        preserve_colors: "none", "luminance" or "histogram".
        style_scale: Size of the style images relative to the working size of each scale.
        optimizer: "adam" or "lbfgs".
        scales: Number of coarse-to-fine scales; None picks it from `size`.
        loss_normalization: "normalized" (backbone independent) or "tutorial"; its
            `DEFAULT_LOSS_WEIGHTS` fill in loss weights left at None.
    """

    PATH_DEFAULTS: ClassVar[Mapping[str, object]] = {
        "content_layers": DEFAULT_CONTENT_LAYERS,
        "style_layers": DEFAULT_STYLE_LAYERS,
    }
    # The loss weights' defaults depend on `loss_normalization`.
    SHOWN_DEFAULTS: ClassVar[Mapping[str, str]] = {
        name: ", ".join(
            f"{weights[index]:g} {normalization}"
            for normalization, weights in DEFAULT_LOSS_WEIGHTS.items()
        )
        for index, name in enumerate(LOSS_WEIGHT_FIELDS)
    }
    HPARAMS_FIRST: ClassVar[tuple[str, ...]] = ("style_weight", "size", "steps", "optimizer")

    size: int = setting(512, "long side of the output, in pixels")
    steps: int = setting(300, "optimisation steps, summed over all scales")
    learning_rate: float = setting(
        0.02, "Adam's step size, in image units (the image lives in [0, 1])"
    )
    init: str = setting("content", "starting image: content, noise, style or PATH to an image")
    preserve_colors: str = preserve_colors_setting(
        "keep the content's colours (Gatys et al. 2016)"
    )
    style_scale: float = setting(
        1.0,
        "style image size relative to the working size (--size); larger means larger brush "
        "strokes",
    )
    optimizer: str = setting(
        "lbfgs",
        "lbfgs (scipy's L-BFGS-B, one step = one evaluation) or adam",
        choices=OPTIMIZERS,
    )
    scales: int | None = setting(
        None,
        "coarse-to-fine scales (default: 1 up to 384 px, then one per doubling from 256)",
    )
    loss_normalization: str = setting(
        "normalized",
        "normalized: weights that carry across backbones; tutorial: exactly the TensorFlow "
        "tutorial's objective",
        choices=LOSS_NORMALIZATIONS,
    )

    def __post_init__(self):
        _choice("loss_normalization", self.loss_normalization, LOSS_NORMALIZATIONS)
        defaults = DEFAULT_LOSS_WEIGHTS[self.loss_normalization]
        for name, default in zip(LOSS_WEIGHT_FIELDS, defaults, strict=True):
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)
        super().__post_init__()
        _check_run_length(self)
        _positive_number("style_scale", self.style_scale)
        if not self.init:
            raise StyleTransferError(
                "`init` is empty: pass content, noise, style or the path of an image"
            )
        if self.scales is not None:
            _positive_int("scales", self.scales)

    def replace(self, **changes) -> StyleConfig:
        """Returns a copy with `changes` applied, validated again.

        A loss weight still at its normalisation's default follows a change of
        `loss_normalization` to the new default, as it would in a fresh config.
        """
        normalization = changes.get("loss_normalization", self.loss_normalization)
        if normalization != self.loss_normalization:
            defaults = DEFAULT_LOSS_WEIGHTS[self.loss_normalization]
            for name, default in zip(LOSS_WEIGHT_FIELDS, defaults, strict=True):
                if name not in changes and getattr(self, name) == default:
                    changes[name] = None
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class TrainConfig(LossSettings):
    """Settings of one fast style network's training (`tf-nst train`), on the shared ones.

    Attributes:
        size: Side of the square training crops, in pixels.
        steps: Training steps.
        learning_rate: Adam's learning rate.
        batch_size: Photos per replica per step; the global batch is this times the replicas.
        width: Channels of the transform network's first layer.
        style_size: Long side of the style images in the loss, in pixels, whatever `size`; None
            for `size` (see `style_side`).
        validation: Photos held out of training, whose loss drives keep-best.
        validation_every: Steps between validations.
        distribute: "auto", "none", "mirrored" or "multiworker".
    """

    PATH_DEFAULTS: ClassVar[Mapping[str, object]] = {
        "content_weight": DEFAULT_TRAIN_LOSS_WEIGHTS[0],
        "style_weight": DEFAULT_TRAIN_LOSS_WEIGHTS[1],
        "tv_weight": DEFAULT_TRAIN_LOSS_WEIGHTS[2],
        "content_layers": DEFAULT_TRAIN_CONTENT_LAYERS,
        "style_layers": DEFAULT_TRAIN_STYLE_LAYERS,
    }
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
    validation: int = setting(8, "photos held out of training; their loss picks the best network")
    validation_every: int = setting(100, "steps between validations")
    distribute: str = distribute_setting()

    def __post_init__(self):
        super().__post_init__()
        _check_run_length(self)
        for name in ("batch_size", "width", "validation_every"):
            _positive_int(name, getattr(self, name))
        if self.style_size is not None:
            _positive_int("style_size", self.style_size)
        if isinstance(self.validation, bool) or not isinstance(self.validation, int):
            raise StyleTransferError(
                f"`validation` must be a whole number of photos, got {self.validation!r}"
            )
        if self.validation < 0:
            raise StyleTransferError(
                f"`validation` must be 0 or more photos, got {self.validation!r}"
            )

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
class AnyStyleConfig(LossSettings):
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
        validation: Photos held out of training.
        validation_paintings: Paintings held out of training; the validation pairs (held-out
            photo, held-out painting) drive keep-best.
        validation_every: Steps between validations.
        distribute: "auto", "none", "mirrored" or "multiworker".
    """

    PATH_DEFAULTS: ClassVar[Mapping[str, object]] = {
        "content_weight": DEFAULT_ANY_STYLE_LOSS_WEIGHTS[0],
        "style_weight": DEFAULT_ANY_STYLE_LOSS_WEIGHTS[1],
        "tv_weight": DEFAULT_ANY_STYLE_LOSS_WEIGHTS[2],
        "content_layers": DEFAULT_ANY_STYLE_CONTENT_LAYERS,
        "style_layers": DEFAULT_ANY_STYLE_STYLE_LAYERS,
    }
    HPARAMS_FIRST: ClassVar[tuple[str, ...]] = ("style_weight", "size", "steps", "decoder_width")
    # Shared settings that have no meaning for a network that takes its style at apply time.
    UNUSED_FIELDS: ClassVar[tuple[str, ...]] = ("style_blend",)

    size: int = setting(256, "side of the square training crops, in pixels (AdaIN: 256)")
    steps: int = setting(160_000, "training steps (AdaIN: 160000 at batch 8)")
    learning_rate: float = setting(1e-4, "Adam's initial learning rate (AdaIN: 1e-4)")
    learning_rate_decay: float = setting(
        5e-5, "inverse-time decay: the rate at step t is rate / (1 + decay * t) (AdaIN: 5e-5)"
    )
    batch_size: int = setting(
        8, "(photo, painting) pairs per replica per step (AdaIN: 8)"
    )
    decoder_width: int = setting(
        64, "channels of the decoder's full-resolution block, VGG's 64; deeper blocks 2x, 4x"
    )
    validation: int = setting(8, "photos held out of training")
    validation_paintings: int = setting(
        8, "paintings held out of training; held-out photo x painting pairs pick the best network"
    )
    validation_every: int = setting(100, "steps between validations")
    distribute: str = distribute_setting()

    def __post_init__(self):
        super().__post_init__()
        _check_run_length(self)
        for name in ("batch_size", "decoder_width", "validation_every"):
            _positive_int(name, getattr(self, name))
        _non_negative_number("learning_rate_decay", self.learning_rate_decay)
        for name in ("validation", "validation_paintings"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise StyleTransferError(f"`{name}` must be 0 or more, got {value!r}")
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
        _check_choices(self)
        if self.size is not None:
            _positive_int("size", self.size)
        _positive_int("batch_size", self.batch_size)
        if not _is_finite_number(self.strength) or not 0 <= self.strength <= 1:
            raise StyleTransferError(f"`strength` must be from 0 to 1, got {self.strength!r}")
        if self.style_blend is not None:
            for weight in self.style_blend:
                _non_negative_number("style_blend", weight)
            if sum(self.style_blend) <= 0:
                raise StyleTransferError(
                    "`style_blend` sums to 0: give at least one positive weight"
                )


TFLITE_QUANTIZATIONS = ("none", "fp16", "int8")


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
        _check_choices(self)


def choices_of(config_class) -> dict[str, tuple]:
    """Returns each field's allowed values, for fields that have a fixed choice."""
    return {
        field.name: tuple(field.metadata["choices"])
        for field in dataclasses.fields(config_class)
        if "choices" in field.metadata
    }


def _leading_first(config, first: tuple[str, ...]) -> dict:
    names = [field.name for field in own_fields_first(type(config))]
    ordered = [name for name in first if name in names]
    ordered += [name for name in names if name not in ordered]
    return {name: getattr(config, name) for name in ordered}


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


def _check_run_length(config) -> None:
    """The size, steps and learning rate that each path declares with its own meaning."""
    _positive_int("size", config.size)
    _positive_int("steps", config.steps)
    _positive_number("learning_rate", config.learning_rate)


def _seed(name: str, value) -> None:
    # numpy and TensorFlow take seeds from 0 to 2**32 - 1; anything else fails deep inside them.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise StyleTransferError(
            f"`{name}` must be an integer from 0 to {2**32 - 1}, got {value!r}"
        )


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise StyleTransferError(f"`{name}` must be a positive integer, got {value!r}")


def _positive_number(name: str, value) -> None:
    if not _is_finite_number(value) or value <= 0:
        raise StyleTransferError(
            f"`{name}` must be a positive number up to {FLOAT32_MAX:.4g}, got {value!r}"
        )


def _non_negative_number(name: str, value) -> None:
    if not _is_finite_number(value) or value < 0:
        raise StyleTransferError(
            f"`{name}` must be a number from 0 to {FLOAT32_MAX:.4g}, got {value!r}"
        )


def _is_finite_number(value) -> bool:
    # Numbers beyond float32's range would turn every loss infinite once in the graph.
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and abs(value) <= FLOAT32_MAX
    )


def _check_choices(config) -> None:
    """Checks every field declared with `choices` against them."""
    for field in dataclasses.fields(config):
        if "choices" in field.metadata:
            _choice(field.name, getattr(config, field.name), tuple(field.metadata["choices"]))


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise StyleTransferError(f"`{name}` must be one of {', '.join(choices)}; got {value!r}")
