"""The any-style network's SavedModel, and TFLite files for both kinds of network.

The SavedModel (written atomically through `keras.export.ExportArchive`, as per-style
stylizers are) needs neither tf_nst nor Keras to run. Its signatures:

- `serving_default(photos, styles, strength) -> stylized`: photos float32 `[N, H, W, 3]` and
  styles `[1 or N, h, w, 3]`, RGB in [0, 1], any sizes; strength a float32 scalar from 0 (the
  photo) to 1 (the full style); stylized `[N, H, W, 3]` in [0, 1].
- `style_representation(styles) -> representation`, float32 `[M, 2C]`: each style's relu4_1
  means then deviations (C = 512 with VGG), to compute once per painting and cache;
- `stylize_with_representation(photos, representation, strength) -> stylized`, with a
  representation of 1 or N rows (blend several paintings by a weighted mean of theirs);
- the same three computing in bfloat16 (`serving_default_bf16`, `style_representation_bf16`,
  `stylize_with_representation_bf16`), with the same float32 inputs and outputs, for hardware
  that computes bfloat16 natively (`tf-nst apply --precision auto` picks them there).

Beside `saved_model.pb`, `tf_nst_stylizer.json` records the format, `"kind": "any-style"`, the
representation size and what the network was trained on.

TFLite (`export_tflite`): the TFLite converter on fixed-size concrete functions of the SavedModel
(`TFLITE_PHOTO_SIDE` x `TFLITE_PHOTO_SIDE` photos, `TFLITE_STYLE_SIDE` squared styles, batch 1,
as Magenta's mobile models take): a per-style network gives `stylize.tflite`; an any-style
network gives its two parts, `style_representation.tflite` and
`stylize_with_representation.tflite`. "fp16" stores float16 weights; "int8" quantises weights
and activations, calibrated on a representative dataset of training photos (and paintings),
with float32 inputs and outputs. For an any-style network int8 is selective
(`selectively_quantized`): the convolutions, the pooling and the padding and upsampling between
them run in int8; the rest (the encoder's colour preprocessing, the AdaIN statistics and
normalisation, the strength mix, the clipping) in float32.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Iterable

import keras
import numpy as np
import tensorflow as tf

from tf_nst.errors import StyleTransferError
from tf_nst.image.writing import atomic_write_bytes, staged_directory
from tf_nst.networks.any_style.adain import (
    ENCODER_LAYER,
    clip_images,
    crop_to,
    pad_to_multiple,
    stylized_features,
    with_photo_detail,
)
from tf_nst.networks.any_style.adain import style_representation as representation_of
from tf_nst.networks.export import STYLIZER_FORMAT, STYLIZER_METADATA
from tf_nst.networks.training import content_submodel
from tf_nst.precision import PRECISION_POLICIES

ANY_STYLE_KIND = "any-style"
PER_STYLE_KIND = "per-style"
ANY_STYLE_FORMAT_VERSION = 1
SIGNATURES = ("serving_default", "style_representation", "stylize_with_representation")
SIGNATURE_ROLES = ("serving", "represent", "stylize")
EXPORT_PRECISIONS = ("fp32", "bf16")
"""Every export has both: bf16 halves the time where the CPU or GPU has it natively."""
TFLITE_PHOTO_SIDE = 384
TFLITE_STYLE_SIDE = 256
QUANTIZATIONS = ("none", "fp16", "int8")
TFLITE_METADATA = "tflite.json"
REPRESENTATIVE_SAMPLES = 16
INT8_OPS = frozenset(
    {"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED"}
    | {"MAX_POOL_2D", "AVERAGE_POOL_2D"}
)
"""TFLite op types that selective int8 quantises: the ones with weights, and pooling."""
LAYOUT_OPS = frozenset(
    {"MIRROR_PAD", "PAD", "RESHAPE", "TILE", "STRIDED_SLICE", "SLICE", "SPLIT", "CONCATENATION"}
    | {"RESIZE_NEAREST_NEIGHBOR", "TRANSPOSE", "SQUEEZE", "EXPAND_DIMS"}
)
"""Op types that only move values: int8 when all they feed is int8 (the decoder's padding and
upsampling), float otherwise (the slices of the representation and of the statistics)."""

PHOTOS_SPEC = tf.TensorSpec([None, None, None, 3], tf.float32, name="photos")
STYLES_SPEC = tf.TensorSpec([None, None, None, 3], tf.float32, name="styles")
STRENGTH_SPEC = tf.TensorSpec([], tf.float32, name="strength")


def stylizer_kind(metadata: dict) -> str:
    """The kind of a stylizer from its metadata: "any-style" or "per-style" (older exports)."""
    return metadata.get("kind", PER_STYLE_KIND)


def export_any_style(
    encoder: keras.Model,
    decoder: keras.Model,
    directory: str | os.PathLike,
    metadata: dict,
) -> None:
    """Writes an any-style network as a SavedModel at `directory`, atomically, with metadata.

    Args:
        encoder: The VGG extractor returning at least block4_conv1 (relu4_1).
        decoder: The trained decoder (`build_decoder`).
        directory: The SavedModel directory to create; it must not exist yet.
        metadata: JSON-serialisable facts about the training (under "training").

    Raises:
        StyleTransferError: If `directory` exists, its parent is not writable, or the metadata
            is not JSON-serialisable.
    """
    relu4_1 = content_submodel(encoder, (ENCODER_LAYER,))
    channels = int(relu4_1(tf.zeros([1, 16, 16, 3]))[ENCODER_LAYER].shape[-1])
    description = {
        "format": STYLIZER_FORMAT,
        "format_version": ANY_STYLE_FORMAT_VERSION,
        "kind": ANY_STYLE_KIND,
        "representation_size": 2 * channels,
        "precisions": list(EXPORT_PRECISIONS),
        "signatures": {
            precision: any_style_signature_names(precision) for precision in EXPORT_PRECISIONS
        },
        "training": metadata,
    }
    try:
        document = json.dumps(description, indent=2, sort_keys=True, allow_nan=False) + "\n"
    except (TypeError, ValueError) as error:
        raise StyleTransferError(
            f"the stylizer metadata is not JSON-serialisable ({error}): pass plain values"
        ) from None
    with staged_directory(directory) as target:
        archive = keras.export.ExportArchive()
        for precision in EXPORT_PRECISIONS:
            _add_endpoints(
                archive,
                at_precision(relu4_1, precision),
                at_precision(decoder, precision),
                channels,
                any_style_signature_names(precision),
            )
        archive.write_out(str(target), verbose=False)
        atomic_write_bytes(document.encode("utf-8"), target / STYLIZER_METADATA)


def any_style_signature_names(precision: str) -> dict[str, str]:
    """The signature names of the three functions at `precision`, by role.

    fp32 is the `serving_default` contract; bf16 adds the same three with a `_bf16` suffix.
    """
    if precision == "fp32":
        return dict(zip(SIGNATURE_ROLES, SIGNATURES, strict=True))
    return {
        role: f"{name}_{precision}" for role, name in zip(SIGNATURE_ROLES, SIGNATURES, strict=True)
    }


def at_precision(model: keras.Model, precision: str) -> keras.Model:
    """A copy of a functional `model` computing at `precision`, with the same weights.

    The export must not inherit the training's precision: a network trained in bf16 still gets
    float32 signatures, and one trained in fp32 gets bf16 ones. Casts keep their target type;
    the endpoints cast what the copies return to float32.
    """
    policy = PRECISION_POLICIES[precision]

    def clone(layer):
        config = layer.get_config()
        if type(layer).__name__ != "Cast":
            config["dtype"] = policy
        return type(layer).from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def _add_endpoints(archive, relu4_1, decoder, channels: int, names: dict[str, str]) -> None:
    archive.track(relu4_1)
    archive.track(decoder)
    representation_spec = tf.TensorSpec([None, 2 * channels], tf.float32, name="representation")

    def style_representation(styles):
        padded, _ = pad_to_multiple(styles)
        features = tf.cast(relu4_1(padded)[ENCODER_LAYER], tf.float32)
        return {"representation": representation_of(features)}

    def stylize_with_representation(photos, representation, strength):
        padded, size = pad_to_multiple(photos)
        content = tf.cast(relu4_1(padded)[ENCODER_LAYER], tf.float32)
        rows = tf.broadcast_to(representation, [tf.shape(content)[0], 2 * channels])
        images = decoder(stylized_features(content, rows, strength), training=False)
        # The second decoder pass is needed only below full strength.
        images = tf.cond(
            strength < 1.0,
            lambda: with_photo_detail(images, decoder(content, training=False), padded, strength),
            lambda: tf.cast(images, tf.float32),
        )
        return {"stylized": crop_to(clip_images(images), size)}

    def serving_default(photos, styles, strength):
        representation = style_representation(styles)["representation"]
        return stylize_with_representation(photos, representation, strength)

    archive.add_endpoint(
        names["serving"], serving_default, input_signature=[PHOTOS_SPEC, STYLES_SPEC, STRENGTH_SPEC]
    )
    archive.add_endpoint(names["represent"], style_representation, input_signature=[STYLES_SPEC])
    archive.add_endpoint(
        names["stylize"],
        stylize_with_representation,
        input_signature=[PHOTOS_SPEC, representation_spec, STRENGTH_SPEC],
    )


# --- TFLite ------------------------------------------------------------------------------------


def tflite_parts(saved_model, kind: str, representation_size: int | None = None) -> dict:
    """The concrete functions to convert, at the fixed TFLite sizes, by file name.

    Returns:
        File name to (concrete function, [input names]).
    """
    photo = [1, TFLITE_PHOTO_SIDE, TFLITE_PHOTO_SIDE, 3]
    if kind == PER_STYLE_KIND:
        serving = saved_model.signatures["serving_default"]

        @tf.function(input_signature=[tf.TensorSpec(photo, tf.float32, name="images")])
        def stylize(images):
            return {"stylized": serving(images=images)["stylized"]}

        return {"stylize.tflite": (stylize.get_concrete_function(), ["images"])}
    represent = saved_model.signatures["style_representation"]
    transfer = saved_model.signatures["stylize_with_representation"]
    style = [1, TFLITE_STYLE_SIDE, TFLITE_STYLE_SIDE, 3]

    @tf.function(input_signature=[tf.TensorSpec(style, tf.float32, name="styles")])
    def style_representation(styles):
        return {"representation": represent(styles=styles)["representation"]}

    @tf.function(
        input_signature=[
            tf.TensorSpec(photo, tf.float32, name="photos"),
            tf.TensorSpec([1, representation_size], tf.float32, name="representation"),
            tf.TensorSpec([], tf.float32, name="strength"),
        ]
    )
    def stylize_with_representation(photos, representation, strength):
        outputs = transfer(photos=photos, representation=representation, strength=strength)
        return {"stylized": outputs["stylized"]}

    return {
        "style_representation.tflite": (
            style_representation.get_concrete_function(),
            ["styles"],
        ),
        "stylize_with_representation.tflite": (
            stylize_with_representation.get_concrete_function(),
            ["photos", "representation", "strength"],
        ),
    }


def convert(
    concrete,
    trackable,
    quantize: str,
    representative: Iterable | None,
    selective: bool = False,
) -> bytes:
    """Runs the TFLite converter on one concrete function with a quantisation.

    Args:
        concrete: The concrete function to convert.
        trackable: The object holding its variables (the loaded SavedModel).
        quantize: "none", "fp16" or "int8".
        representative: For int8: the calibration samples, each a list of the inputs.
        selective: For int8: quantise the convolutions only (`selectively_quantized`), as
            any-style networks need; otherwise every op that has an int8 kernel.
    """
    if quantize not in QUANTIZATIONS:
        raise StyleTransferError(
            f"`quantize` must be one of {', '.join(QUANTIZATIONS)}; got {quantize!r}"
        )
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], trackable)
    if quantize == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        if representative is None:
            raise StyleTransferError("int8 needs a representative dataset: pass `photos`")
        samples = list(representative)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: iter(samples)
        if selective:
            return selectively_quantized(converter, samples)
    return converter.convert()


def selectively_quantized(converter: tf.lite.TFLiteConverter, samples: list) -> bytes:
    """int8 convolutions, float32 statistics: TFLite's selective quantisation of a converter.

    TFLite quantises an activation with one scale for all its channels. The AdaIN statistics of
    relu4_1 span orders of magnitude across channels (a dead channel's deviation is sqrt(eps)),
    so in int8 the small deviations round to 0 (the transfer model divided by them: `div.cc
    data[i] != 0`) and the normalisation amplifies the features' rounding; and the converter
    gives the encoder's RGB-to-BGR flip the scale of the `* 255` after it, which rounds each
    colour of the photo to its extremes. So only `INT8_OPS` and the `LAYOUT_OPS` between them
    are quantised; every other op is denylisted (`tf.lite.experimental.QuantizationDebugOptions`,
    the documented selective quantisation, see `float_ops`), and the converter puts
    (de)quantisations around it. Calibration runs once, on `samples`.

    Args:
        converter: A converter set up for int8 (optimizations and representative dataset).
        samples: The representative samples, for the debugger's dataset.

    Returns:
        The flatbuffer, with float32 inputs and outputs.
    """
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=lambda: iter(samples)
    )
    nodes, types = float_ops(debugger.calibrated_model)
    debugger.options = tf.lite.experimental.QuantizationDebugOptions(
        denylisted_nodes=nodes, denylisted_ops=types or None
    )
    return debugger.get_nondebug_quantized_model()


def float_ops(model: bytes) -> tuple[list[str], list[str]]:
    """The ops of a TFLite model that selective int8 leaves in float, as the quantiser names them.

    An op is quantised if its type is in `INT8_OPS`, or in `LAYOUT_OPS` with every consumer
    quantised (so the walk goes from the outputs back, TFLite's ops being in execution order).

    Returns:
        `(nodes, types)`: the output tensor names of the float ops with one output, and the types
        of those with several (the representation's split), which the quantiser matches by no
        name, so their type is denylisted instead.
    """
    interpreter = tf.lite.Interpreter(
        model_content=model,
        experimental_op_resolver_type=(
            tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        ),
    )
    names = {detail["index"]: detail["name"] for detail in interpreter.get_tensor_details()}
    operations = interpreter._get_ops_details()  # the graph; TF has no public accessor
    consumers: dict[int, list[int]] = {}
    for operation in operations:
        for tensor in operation["inputs"]:
            consumers.setdefault(int(tensor), []).append(operation["index"])
    quantized = set()
    for operation in reversed(operations):
        users = [user for tensor in operation["outputs"] for user in consumers.get(int(tensor), [])]
        if operation["op_name"] in INT8_OPS or (
            operation["op_name"] in LAYOUT_OPS
            and users
            and all(user in quantized for user in users)
        ):
            quantized.add(operation["index"])
    nodes, types = [], set()
    for operation in operations:
        outputs = operation["outputs"]
        if operation["index"] in quantized or not len(outputs):
            continue
        if len(outputs) == 1:
            nodes.append(names[int(outputs[0])])
        else:
            types.add(operation["op_name"])
    return nodes, sorted(types)


def export_tflite(
    model_directory: str | os.PathLike,
    output: str | os.PathLike,
    quantize: str = "none",
    photos: list[np.ndarray] | None = None,
    styles: list[np.ndarray] | None = None,
) -> dict:
    """Converts a stylizer's SavedModel to TFLite files in a new folder `output`, atomically.

    Args:
        model_directory: A model folder from `tf-nst train` (either kind).
        output: The folder to create, holding the `.tflite` files and `TFLITE_METADATA`.
        quantize: "none", "fp16" or "int8".
        photos: For int8: representative photos, float32 `[H, W, 3]` in [0, 1] (resized here).
        styles: For int8 of an any-style network: representative paintings.

    Returns:
        The description written to `TFLITE_METADATA`: the files, their sizes, inputs, outputs.

    Raises:
        StyleTransferError: If the model folder is not a stylizer, the output exists, int8 has
            no photos (or paintings), or the conversion fails.
    """
    from tf_nst.networks.stylizer import load_stylizer

    stylizer = load_stylizer(model_directory)
    kind = stylizer_kind(stylizer.metadata)
    saved_model = tf.saved_model.load(os.fspath(model_directory))
    size = stylizer.metadata.get("representation_size")
    parts = tflite_parts(saved_model, kind, size)
    if quantize == "int8" and (not photos or (kind == ANY_STYLE_KIND and not styles)):
        flags = "--photos DIR" if kind == PER_STYLE_KIND else "--photos DIR and --paintings DIR"
        raise StyleTransferError(
            f"int8 quantisation calibrates on representative training images: pass {flags}"
        )
    representatives = _representatives(stylizer, kind, photos, styles) if quantize == "int8" else {}
    files = {}
    converted = {}
    for name, (concrete, _) in parts.items():
        try:
            converted[name] = convert(
                concrete,
                saved_model,
                quantize,
                representatives.get(name),
                selective=kind == ANY_STYLE_KIND,
            )
        except StyleTransferError:
            raise
        except Exception as error:  # the converter raises many types
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            raise StyleTransferError(
                f"the TFLite converter failed on {name} ({first_line}): report it with --debug"
            ) from None
        files[name] = {
            "bytes": len(converted[name]),
            "inputs": {
                spec.name: spec.shape.as_list() for spec in concrete.structured_input_signature[0]
            },
        }
    description = {
        "kind": kind,
        "quantize": quantize,
        "photo_side": TFLITE_PHOTO_SIDE,
        "style_side": TFLITE_STYLE_SIDE if kind == ANY_STYLE_KIND else None,
        "files": files,
        "source": os.path.abspath(os.fspath(model_directory)),
    }
    document = json.dumps(description, indent=2, sort_keys=True) + "\n"
    with staged_directory(output) as target:
        target.mkdir()
        for name, content in converted.items():
            atomic_write_bytes(content, target / name)
        atomic_write_bytes(document.encode("utf-8"), target / TFLITE_METADATA)
    return description


def _square(image: np.ndarray, side: int) -> np.ndarray:
    resized = tf.image.resize(image[None], [side, side], antialias=True)
    return tf.clip_by_value(resized, 0.0, 1.0).numpy().astype(np.float32)


def _representatives(stylizer, kind, photos, styles) -> dict:
    photos = [_square(photo, TFLITE_PHOTO_SIDE) for photo in photos[:REPRESENTATIVE_SAMPLES]]
    if kind == PER_STYLE_KIND:
        return {"stylize.tflite": [[photo] for photo in photos]}
    styles = [_square(style, TFLITE_STYLE_SIDE) for style in styles[:REPRESENTATIVE_SAMPLES]]
    representations = [stylizer.style_representation(style).numpy() for style in styles]
    strengths = np.linspace(0.0, 1.0, len(photos)).astype(np.float32)
    return {
        "style_representation.tflite": [[style] for style in styles],
        "stylize_with_representation.tflite": [
            [photo, representations[index % len(representations)], np.float32(strength)]
            for index, (photo, strength) in enumerate(zip(photos, strengths, strict=True))
        ],
    }


def tflite_interpreter(path: str | os.PathLike):
    """A `tf.lite.Interpreter` of a `.tflite` file, its tensors allocated."""
    interpreter = tf.lite.Interpreter(model_path=os.fspath(pathlib.Path(path)))
    interpreter.allocate_tensors()
    return interpreter


def run_tflite(interpreter, inputs: dict) -> np.ndarray:
    """Runs a one-output interpreter on inputs given by name; returns the output."""
    for detail in interpreter.get_input_details():
        name = detail["name"]
        matches = [
            key
            for key in inputs
            if name == key or name.endswith(f"_{key}:0") or name.split(":")[0].endswith(key)
        ]
        if not matches:
            raise StyleTransferError(f"the TFLite model takes {name}, which was not given")
        interpreter.set_tensor(
            detail["index"], np.asarray(inputs[matches[0]], np.float32).reshape(detail["shape"])
        )
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
