"""An any-style network loaded from its SavedModel: photos, paintings and a strength in.

`tf_nst.networks.stylizer.load_stylizer` returns an `AnyStyleNetwork` for a model folder whose
metadata says `"kind": "any-style"`. It needs only the SavedModel.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tf_nst.errors import StyleTransferError
from tf_nst.networks.any_style.export import SIGNATURES, any_style_signature_names
from tf_nst.networks.stylizer import available_precision, check_signatures

# `tf-nst apply` plans memory with the per-style network's figures; the decoder at this width
# costs about as much as a per-style network of width 32 plus VGG to relu4_1.
APPLY_PLANNING_WIDTH = 64


def _as_batch(images) -> tf.Tensor:
    batch = tf.convert_to_tensor(images, tf.float32)
    if batch.shape.rank == 3:
        batch = batch[None]
    if batch.shape.rank != 4 or batch.shape[-1] != 3:
        raise StyleTransferError(
            f"an any-style network takes RGB images [batch, height, width, 3], not shape "
            f"{batch.shape}: convert the images to RGB"
        )
    return batch


def normalized_blend(count: int, blend: Sequence[float] | None) -> tuple[float, ...]:
    """The blend weights of `count` styles, summing to 1 (equal when None).

    Raises:
        StyleTransferError: If the number of weights differs from `count`, or they sum to 0.
    """
    if blend is None:
        return (1.0 / count,) * count
    if len(blend) != count:
        raise StyleTransferError(
            f"`style_blend` has {len(blend)} weights but {count} styles were given: give one "
            "weight per --style"
        )
    total = float(sum(blend))
    if total <= 0:
        raise StyleTransferError("`style_blend` sums to 0: give at least one positive weight")
    return tuple(float(weight) / total for weight in blend)


@dataclasses.dataclass(frozen=True)
class AnyStyleNetwork:
    """A loaded any-style network: `network(photos, styles, strength)` stylizes.

    Attributes:
        path: The SavedModel directory.
        metadata: The export's metadata; the training's own facts are under "training".
        precision: The precision of the signatures it calls ("fp32" or "bf16"); exports from
            before bf16 signatures have only "fp32".
        saved_model: The loaded SavedModel.
    """

    path: str
    metadata: dict
    saved_model: object = dataclasses.field(repr=False, compare=False)
    precision: str = "fp32"
    kind = "any-style"

    def with_precision(self, precision: str) -> AnyStyleNetwork:
        """The same network computing at `precision` ("auto", "fp32" or "bf16").

        Raises:
            StyleTransferError: If the export has no signatures at that precision.
        """
        precision = available_precision(precision, self.metadata, self.path)
        return dataclasses.replace(self, precision=precision)

    def _signature(self, role: str):
        name = any_style_signature_names(self.precision)[role]
        return self.saved_model.signatures[name]

    def style_representation(self, styles) -> tf.Tensor:
        """The representation of each style image, `[styles, 2C]`.

        Args:
            styles: One image `[h, w, 3]`, a batch, or a list of images of different sizes.
        """
        signature = self._signature("represent")
        if isinstance(styles, (list, tuple)):
            rows = [signature(styles=_as_batch(style))["representation"] for style in styles]
            return tf.concat(rows, axis=0)
        return signature(styles=_as_batch(styles))["representation"]

    def blended_representation(self, styles, style_blend: Sequence[float] | None = None):
        """One representation `[1, 2C]` mixing the styles' with `style_blend` (equal if None)."""
        representations = self.style_representation(styles)
        weights = normalized_blend(int(representations.shape[0]), style_blend)
        weights = tf.constant(weights, tf.float32)[:, None]
        return tf.reduce_sum(representations * weights, axis=0, keepdims=True)

    def stylize_with_representation(self, photos, representation, strength=1.0) -> tf.Tensor:
        """Stylizes photos with a representation of 1 or `batch` rows."""
        return self._signature("stylize")(
            photos=_as_batch(photos),
            representation=tf.convert_to_tensor(representation, tf.float32),
            strength=tf.constant(float(strength), tf.float32),
        )["stylized"]

    def __call__(self, photos, styles, strength: float = 1.0, style_blend=None) -> tf.Tensor:
        """Stylizes `photos` with `styles` (several are blended) at `strength` from 0 to 1.

        Returns:
            float32 `[batch, height, width, 3]` in [0, 1].
        """
        if not 0.0 <= float(strength) <= 1.0:
            raise StyleTransferError(f"`strength` must be from 0 to 1, got {strength!r}")
        representation = self.blended_representation(styles, style_blend)
        return self.stylize_with_representation(photos, representation, strength)

    def with_styles(self, styles, strength: float = 1.0, style_blend=None) -> BoundStyle:
        """The network with its style fixed: a callable from photos to stylized photos."""
        return BoundStyle(
            self, self.blended_representation(styles, style_blend), float(strength), self.precision
        )


@dataclasses.dataclass(frozen=True)
class BoundStyle:
    """An any-style network with a fixed representation and strength, used like a per-style one.

    `tf-nst apply` stylizes files with it through `tf_nst.networks.apply.apply_to_files`.
    """

    network: AnyStyleNetwork
    representation: tf.Tensor
    strength: float
    precision: str = "fp32"
    width: int = APPLY_PLANNING_WIDTH

    def __call__(self, images_batch) -> tf.Tensor:
        """Stylizes a batch (or one image)."""
        return self.network.stylize_with_representation(
            images_batch, self.representation, self.strength
        )

    def stylize_image(self, image: np.ndarray, **_) -> np.ndarray:
        """Stylizes one `[height, width, 3]` image whole (AdaIN's statistics are global)."""
        return self(np.asarray(image, np.float32)[None]).numpy()[0]


def load_any_style(
    directory, metadata: dict, label: str, precision: str = "fp32"
) -> AnyStyleNetwork:
    """Loads an any-style SavedModel whose metadata was read already (by `load_stylizer`).

    Args:
        directory: The SavedModel directory.
        metadata: Its metadata.
        label: The directory as the messages name it.
        precision: "fp32", "bf16" or "auto" (bf16 where the hardware computes it natively and
            the export has it, else fp32).

    Raises:
        StyleTransferError: If it does not load, lacks the any-style signatures, or has none at
            an explicitly asked precision.
    """
    hint = "pass a directory written by tf-nst train --paintings"
    precision = available_precision(precision, metadata, label)
    try:
        saved_model = tf.saved_model.load(os.fspath(directory))
    except Exception as error:  # TensorFlow raises many types for a damaged SavedModel.
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise StyleTransferError(
            f"stylizer {label} cannot be loaded ({first_line}): re-export it"
        ) from None
    missing = [name for name in SIGNATURES if name not in saved_model.signatures]
    if missing:
        raise StyleTransferError(
            f"{label} is not an any-style network (no {', '.join(missing)} signature): {hint}"
        )
    check_signatures(saved_model, any_style_signature_names(precision).values(), label)
    return AnyStyleNetwork(os.fspath(directory), metadata, saved_model, precision)
