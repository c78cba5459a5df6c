"""Settings of the optimisation (`tf-nst stylize`): `StyleConfig` and its defaults."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import ClassVar

from tf_nst.config.fields import (
    LOSS_NORMALIZATIONS,
    LOSS_WEIGHT_FIELDS,
    OPTIMIZERS,
    check_choice,
    check_positive_int,
    check_positive_number,
    check_run_length,
    preserve_colors_setting,
    setting,
)
from tf_nst.config.shared import LossSettings
from tf_nst.errors import StyleTransferError

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
# Block 4 of a portrait's Gram matrices asks for its eyes and mouth, and the photo's smooth sky
# and water are where the optimiser paints them; blocks 1-3 carry the strokes and the palette.
# Block 4 kept light and blocks 1-3 raised keep the strokes without the painting's objects
# (README.md, "Eyes of real portraits"). Only the normalized loss with the default style
# layers takes them; other layers are weighted equally.
DEFAULT_STYLE_LAYER_WEIGHTS = (1.95, 1.95, 1.95, 0.12)
# Default (content, style, total-variation) weights of each loss normalisation. The tutorial's are
# the TensorFlow tutorial's own, so that mode reproduces it without extra flags.
DEFAULT_LOSS_WEIGHTS = {
    "normalized": (1.0, 20.0, 1.0),
    "tutorial": (1e4, 1e-2, 30.0),
}


@dataclasses.dataclass(frozen=True)
class StyleConfig(LossSettings):
    """Settings of one stylization by optimisation (`tf-nst stylize`), on the shared ones.

    Attributes:
        size: Longest side of the output in pixels.
        steps: Total optimisation steps, summed over all scales.
        learning_rate: Adam learning rate, in image units (the image lives in [0, 1]).
        init: "recolored", "content", "noise", "style" or a path to an image.
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
        **{
            name: ", ".join(
                f"{weights[index]:g} {normalization}"
                for normalization, weights in DEFAULT_LOSS_WEIGHTS.items()
            )
            for index, name in enumerate(LOSS_WEIGHT_FIELDS)
        },
        "style_layer_weights": (
            ",".join(f"{weight:g}" for weight in DEFAULT_STYLE_LAYER_WEIGHTS)
            + " with the default style layers and normalized loss; else equal"
        ),
    }
    HPARAMS_FIRST: ClassVar[tuple[str, ...]] = ("style_weight", "size", "steps", "optimizer")

    size: int = setting(512, "long side of the output, in pixels")
    steps: int = setting(300, "optimisation steps, summed over all scales")
    learning_rate: float = setting(
        0.02, "Adam's step size, in image units (the image lives in [0, 1])"
    )
    init: str = setting(
        "recolored",
        "starting image: recolored (the content in the style's colour mean and covariance, so "
        "that the result takes the painting's palette and tone), content, noise, style or PATH "
        "to an image",
    )
    preserve_colors: str = preserve_colors_setting("keep the content's colours (Gatys et al. 2016)")
    style_scale: float = setting(
        1.0,
        "style image size relative to the working size (--size); larger means larger brush strokes",
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
        check_choice("loss_normalization", self.loss_normalization, LOSS_NORMALIZATIONS)
        defaults = DEFAULT_LOSS_WEIGHTS[self.loss_normalization]
        for name, default in zip(LOSS_WEIGHT_FIELDS, defaults, strict=True):
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)
        if (
            self.style_layer_weights is None
            and tuple(self.style_layers or DEFAULT_STYLE_LAYERS) == DEFAULT_STYLE_LAYERS
            and self.loss_normalization == "normalized"
        ):
            object.__setattr__(self, "style_layer_weights", DEFAULT_STYLE_LAYER_WEIGHTS)
        super().__post_init__()
        check_run_length(self)
        check_positive_number("style_scale", self.style_scale)
        if not self.init:
            raise StyleTransferError(
                "`init` is empty: pass content, noise, style or the path of an image"
            )
        if self.scales is not None:
            check_positive_int("scales", self.scales)

    def replace(self, **changes) -> StyleConfig:
        """Returns a copy with `changes` applied, validated again.

        A loss weight still at its normalisation's default follows a change of
        `loss_normalization` to the new default, as it would in a fresh config; the style layer
        weights still at their default follow a change of `style_layers` or of the
        normalisation the same way.
        """
        normalization = changes.get("loss_normalization", self.loss_normalization)
        if normalization != self.loss_normalization:
            defaults = DEFAULT_LOSS_WEIGHTS[self.loss_normalization]
            for name, default in zip(LOSS_WEIGHT_FIELDS, defaults, strict=True):
                if name not in changes and getattr(self, name) == default:
                    changes[name] = None
        if (
            "style_layer_weights" not in changes
            and self.style_layer_weights == DEFAULT_STYLE_LAYER_WEIGHTS
        ):
            changes["style_layer_weights"] = None
        return dataclasses.replace(self, **changes)
