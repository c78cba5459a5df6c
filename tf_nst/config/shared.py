"""The settings every path shares: the loss, the style images, the backbone, the run.

Where the paths want different defaults (the loss weights and layers), the field's default is
None and each path fills it in from its `PATH_DEFAULTS`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import ClassVar

from tf_nst.config.fields import (
    BACKBONES,
    LOSS_WEIGHT_FIELDS,
    POOLINGS,
    PRECISIONS,
    check_blend,
    check_choices,
    check_non_negative_number,
    check_positive_number,
    check_seed,
    leading_first,
    setting,
)
from tf_nst.errors import StyleTransferError
from tf_nst.features.backbones import check_distinct


def path_defaults(
    loss_weights: tuple[float, float, float],
    content_layers: tuple[str, ...],
    style_layers: tuple[str, ...],
) -> dict[str, object]:
    """A path's `PATH_DEFAULTS`: its (content, style, total-variation) weights and its layers."""
    return {
        **dict(zip(LOSS_WEIGHT_FIELDS, loss_weights, strict=True)),
        "content_layers": content_layers,
        "style_layers": style_layers,
    }


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
        style_layer_weights: One weight per style layer; equal when None. The optimisation
            fills in its own default for its default layers (`StyleConfig`).
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
        check_choices(self)
        for name in LOSS_WEIGHT_FIELDS:
            check_non_negative_number(name, getattr(self, name))
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
                check_non_negative_number("style_layer_weights", weight)
        if self.style_blend is not None:
            check_blend("style_blend", self.style_blend)
        if self.time_limit is not None:
            check_positive_number("time_limit", self.time_limit)
        if self.seed is not None:
            check_seed("seed", self.seed)

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
        return leading_first(self, self.HPARAMS_FIRST)

    def replace(self, **changes):
        """Returns a copy with `changes` applied, validated again."""
        return dataclasses.replace(self, **changes)
