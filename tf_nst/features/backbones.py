"""The VGG layer specification: names, depths and filter counts, without TensorFlow.

Everything that can be checked about a run's layers before TensorFlow loads lives here: whether a
name exists in the backbone, whether a list names a layer twice, and the smallest image the
deepest layer can see. `features` builds the network from the same specification, and `memory`
counts its activations from it.
"""

from __future__ import annotations

from collections.abc import Sequence

from tf_nst.errors import StyleTransferError

# Convolutions per block; every block ends with a 2x2 pooling layer.
BLOCK_DEPTHS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
BLOCK_FILTERS = (64, 128, 256, 512, 512)


def layer_names(backbone: str) -> tuple[str, ...]:
    """Returns the convolution layer names of `backbone`, in network order.

    Raises:
        StyleTransferError: If the backbone is unknown.
    """
    if backbone not in BLOCK_DEPTHS:
        raise StyleTransferError(
            f"unknown backbone {backbone!r}: choose one of {', '.join(BLOCK_DEPTHS)}"
        )
    return tuple(
        f"block{block}_conv{conv}"
        for block, depth in enumerate(BLOCK_DEPTHS[backbone], start=1)
        for conv in range(1, depth + 1)
    )


def validate_layers(backbone: str, layers: Sequence[str]) -> tuple[str, ...]:
    """Checks that every name in `layers` is a convolution layer of `backbone`.

    Returns:
        The layers as a tuple, in the order given.

    Raises:
        StyleTransferError: Naming the unknown layers and listing the valid ones.
    """
    valid = layer_names(backbone)
    unknown = [name for name in layers if name not in valid]
    if unknown:
        hint = ""
        if any(name in layer_names("vgg19") for name in unknown):
            hint = " (that layer exists in vgg19: pass --backbone vgg19)"
        raise StyleTransferError(
            f"unknown layer {', '.join(unknown)} for backbone {backbone}{hint}; "
            f"valid layers: {', '.join(valid)}"
        )
    return tuple(layers)


def check_distinct(layers: Sequence[str], option: str) -> None:
    """Refuses a layer list that names a layer twice.

    Each style layer carries its own weight, kept in a mapping from name to weight, so a repeated
    name would silently lose one of its weights; a repeated content layer would silently count
    twice. Neither is what the user meant.

    Args:
        layers: The layer names of one option.
        option: The option that lists them, e.g. "--style-layers", for the message.

    Raises:
        StyleTransferError: Naming the repeated layers.
    """
    repeated = sorted({name for name in layers if list(layers).count(name) > 1})
    if repeated:
        # A loss's layers have weights to point to; an export's layers (--layers) have none.
        loss = "style" in option or "content" in option
        weights = " (`style_layer_weights` sets a style layer's weight)" if loss else ""
        raise StyleTransferError(
            f"{option} names {', '.join(repeated)} more than once: list each layer once{weights}"
        )


def validate_layer_choice(
    backbone: str, content_layers: Sequence[str], style_layers: Sequence[str]
) -> tuple[str, ...]:
    """Checks a run's content and style layers together; the one check callers need.

    A layer may be both a content and a style layer, but may not repeat within either list.

    Returns:
        Every layer the run reads, each once, content layers first.

    Raises:
        StyleTransferError: For an unknown backbone or layer, or a layer named twice in one list.
    """
    validate_layers(backbone, tuple(content_layers) + tuple(style_layers))
    check_distinct(content_layers, "--content-layers")
    check_distinct(style_layers, "--style-layers")
    return tuple(dict.fromkeys(tuple(content_layers) + tuple(style_layers)))


def minimum_input_side(layers: Sequence[str]) -> int:
    """Returns the smallest image side for which every layer in `layers` is at least 1x1.

    A layer in block N sits behind N - 1 poolings that each halve the size (rounding down).
    """
    deepest_block = max(int(name[len("block")]) for name in layers)
    return 2 ** (deepest_block - 1)


def deepest_layer(layers: Sequence[str]) -> str:
    """Returns the layer of `layers` behind the most poolings (the one that sets the size floor)."""
    return max(layers)
