"""The VGG feature extractor: layer names, preprocessing and weight resolution.

Input contract: float RGB in [0, 1], shape `[batch, height, width, 3]`, any height and width. The
Keras ("caffe") VGG preprocessing (scale to 0..255, RGB to BGR, subtract the ImageNet mean) happens
inside the model, so callers, the training loop and the exported SavedModel all share one contract.

The layer specification (names, depths, filters, the size floor) lives in `backbones`, which
needs no TensorFlow; its names stay importable from here.

The network is built here from its layer specification rather than taken from
`keras.applications` directly: that lets us swap max pooling for average pooling, cut the graph
after the deepest layer a run needs (the rest of VGG is dead weight), run the convolutions under a
mixed-precision policy, and build a tiny randomly initialised twin for tests. Pretrained weights
are read by `keras.applications` (which knows both the ImageNet download and the Keras weights file
layouts) and copied across by layer name.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import warnings

import keras
import numpy as np

from tf_nst.errors import StyleTransferError
from tf_nst.features.backbones import (  # noqa: F401  (the layer specification, re-exported from here)
    BLOCK_DEPTHS,
    BLOCK_FILTERS,
    layer_names,
    minimum_input_side,
    validate_layers,
)
from tf_nst.features.weights_file import (
    check_weights_file,
    corrupt_weights_error,
    keras_weights_name,
)
from tf_nst.precision import PRECISION_POLICIES

# The ImageNet mean in BGR order, as `keras.applications.vgg19.preprocess_input` subtracts it.
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="tf_nst")
class VGGPreprocess(keras.layers.Layer):
    """Maps RGB in [0, 1] to the Keras VGG input convention: BGR, 0..255, ImageNet mean removed."""

    def __init__(self, **kwargs):
        # Always float32: the mean subtraction loses precision in bfloat16.
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)

    def call(self, images):
        """Converts a batch of RGB images in [0, 1] to VGG inputs."""
        bgr = keras.ops.flip(images, axis=-1) * 255.0
        return bgr - keras.ops.convert_to_tensor(IMAGENET_BGR_MEAN, dtype=bgr.dtype)


def build_feature_extractor(
    layers,
    backbone: str = "vgg19",
    weights: str | os.PathLike | None = "imagenet",
    pooling: str = "max",
    precision: str = "fp32",
    width_scale: float = 1.0,
) -> keras.Model:
    """Builds a frozen VGG model that returns the feature maps of `layers`.

    Args:
        layers: Convolution layer names to return, e.g. `("block1_conv1", "block4_conv2")`.
        backbone: "vgg19" or "vgg16".
        weights: "imagenet" (downloaded once by Keras into `~/.keras/models`), a path to a Keras
            weights file of the backbone without its top (`.weights.h5` or legacy `.h5`), or None
            for random weights.
        pooling: "max" as the network was trained, or "avg" as Gatys et al. recommend; the
            weights are the same either way.
        precision: "fp32", "bf16" or "fp16": the compute dtype of the convolutions. The outputs
            are float32 whatever the precision.
        width_scale: Multiplies every layer's filter count; below 1 only with random weights, for
            fast tests.

    Returns:
        A non-trainable `keras.Model` mapping float32 RGB in [0, 1], `[batch, height, width, 3]`,
        to a dict from layer name to float32 feature map.

    Raises:
        StyleTransferError: For an unknown backbone, layer, pooling or precision, or weights that
            cannot be obtained or do not fit the backbone.
    """
    layers = tuple(dict.fromkeys(validate_layers(backbone, layers)))
    if pooling not in ("max", "avg"):
        raise StyleTransferError(f"unknown pooling {pooling!r}: choose max or avg")
    if precision not in PRECISION_POLICIES:
        raise StyleTransferError(
            f"unknown precision {precision!r}: choose one of {', '.join(PRECISION_POLICIES)}"
        )
    if width_scale != 1.0 and weights is not None:
        raise StyleTransferError("width_scale other than 1 needs weights=None (random weights)")

    policy = PRECISION_POLICIES[precision]
    pooling_layer = keras.layers.MaxPooling2D if pooling == "max" else keras.layers.AveragePooling2D
    deepest = max(layer_names(backbone).index(name) for name in layers)
    needed = layer_names(backbone)[: deepest + 1]

    images = keras.Input(shape=(None, None, 3), dtype="float32", name="images")
    hidden = VGGPreprocess(name="preprocess")(images)
    outputs = {}
    for block, depth in enumerate(BLOCK_DEPTHS[backbone], start=1):
        filters = max(1, round(BLOCK_FILTERS[block - 1] * width_scale))
        for conv in range(1, depth + 1):
            name = f"block{block}_conv{conv}"
            hidden = keras.layers.Conv2D(
                filters, 3, padding="same", activation="relu", name=name, dtype=policy
            )(hidden)
            if name in layers:
                outputs[name] = keras.ops.cast(hidden, "float32")
            if name == needed[-1]:
                break
        if needed[-1] in outputs:
            break
        hidden = pooling_layer(2, strides=2, name=f"block{block}_pool", dtype=policy)(hidden)

    model = keras.Model(
        images, {name: outputs[name] for name in layers}, name=f"{backbone}_features"
    )
    if weights is not None:
        _copy_weights(model, _pretrained_backbone(backbone, weights), needed)
    model.trainable = False
    return model


def _pretrained_backbone(backbone: str, weights) -> keras.Model:
    """Returns the `keras.applications` model of `backbone` with `weights` loaded."""
    application = {"vgg16": keras.applications.VGG16, "vgg19": keras.applications.VGG19}[backbone]
    if str(weights) == "imagenet":
        try:
            return application(include_top=False, weights="imagenet")
        except Exception as error:  # Keras raises bare Exception for a failed download.
            raise StyleTransferError(
                f"could not get the ImageNet {backbone} weights ({_first_line(error)}); if this "
                "machine is offline, pass --weights PATH to a Keras weights file of the backbone"
            ) from None
    path = os.fspath(weights)
    check_weights_file(path, backbone)
    _check_hdf5_opens(path)
    model = application(include_top=False, weights=None)
    initial = {layer.name: layer.get_weights()[0][..., :1].copy() for layer in _convolutions(model)}
    try:
        with _quiet_keras_loading(), _keras_loadable_name(path) as loadable:
            model.load_weights(loadable)
    except Exception as error:  # h5py and Keras raise many types for corrupt or foreign files.
        raise StyleTransferError(
            f"weights file {path} does not fit the {backbone} backbone: {_mismatch(error)}"
            f"{_other_backbone_hint(backbone)}"
        ) from None
    # Keras skips what it cannot match with no more than a warning; a layer that kept its random
    # initial kernel means the file is for another network.
    unchanged = [
        layer.name
        for layer in _convolutions(model)
        if np.array_equal(layer.get_weights()[0][..., :1], initial[layer.name])
    ]
    if unchanged:
        raise StyleTransferError(
            f"weights file {path} does not fit the {backbone} backbone: it sets no weights for "
            f"{', '.join(unchanged)}{_other_backbone_hint(backbone)}"
        )
    return model


def _check_hdf5_opens(path: str) -> None:
    """Refuses a file h5py cannot open: damage that the signature check could not see.

    Without this, Keras' loading error would be reported as a file of another network.
    """
    import h5py  # a Keras dependency

    try:
        with h5py.File(path, "r"):
            pass
    except Exception:  # h5py raises OSError and others for damaged files
        raise corrupt_weights_error(path) from None


@contextlib.contextmanager
def _keras_loadable_name(path: str):
    """Yields a name for `path` whose extension Keras recognises (lower case), via a symlink."""
    name = keras_weights_name(path)
    if name == os.path.basename(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="tf_nst-weights-") as directory:
        link = os.path.join(directory, name)
        os.symlink(os.path.abspath(path), link)
        yield link


def _copy_weights(model: keras.Model, source: keras.Model, names) -> None:
    for name in names:
        model.get_layer(name).set_weights(source.get_layer(name).get_weights())


def _convolutions(model: keras.Model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def _other_backbone_hint(backbone: str) -> str:
    other = "vgg16" if backbone == "vgg19" else "vgg19"
    return f" (is it a {other} file? then pass --backbone {other})"


def _mismatch(error: Exception) -> str:
    """Names the layer and shapes of a Keras weight-loading error, else its first line."""
    text = str(error)
    layer = re.search(r"name=(\w+)", text)
    shapes = re.search(r"variable\.shape=(\([^)]*\)).*?value\.shape=(\([^)]*\))", text, re.S)
    if layer and shapes:
        return (
            f"{layer.group(1)} needs a {shapes.group(1)} kernel but the file has {shapes.group(2)}"
        )
    return _first_line(error)


def _first_line(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    # Keras' multi-line errors end their first line with ":" before the details; drop it.
    return text.splitlines()[0][:300].rstrip(" :")


@contextlib.contextmanager
def _quiet_keras_loading():
    """Hides Keras' per-container warnings while loading; mismatches are reported by us."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
