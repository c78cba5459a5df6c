"""int8 TFLite of an any-style network: it runs, and it matches the SavedModel.

The network is random, not trained (a tiny VGG19 encoder and decoder, no fixture training it), its
last layer scaled so the output spans [0, 1]; the calibration and comparison images are real
photos from ../shared/photos, the compared ones held out of the calibration. Quantising every op
(the code before selective int8) gave a representation mostly wrong and an output off by the
image's own spread, or stopped at the division by a deviation rounded to 0 (`div.cc data[i] !=
0`, Node DIV) when one of the int8 deviations happened to be 0.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import shared_photos, slow_setup, square

from tf_nst.features.extractor import build_feature_extractor
from tf_nst.networks.any_style.adain import DECODER_INPUT_SCALE, ENCODER_LAYER, build_decoder
from tf_nst.networks.any_style.export import (
    INT8_OPS,
    LAYOUT_OPS,
    TFLITE_PHOTO_SIDE,
    TFLITE_STYLE_SIDE,
    export_any_style,
    export_tflite,
    run_tflite,
    tflite_interpreter,
)
from tf_nst.networks.stylizer import load_stylizer

CALIBRATION_PHOTOS = 6
# int8 against the SavedModel: the representation's mean relative difference, and the stylized
# images' mean absolute difference in [0, 1]. About twice what int8 convolutions with float
# statistics measure here (the rounding of the activations), and far below what quantising every
# op gives (an error as large as the image's spread).
REPRESENTATION_TOLERANCE = 0.02
STYLIZED_TOLERANCE = 0.06
STRENGTH = 0.8


@pytest.fixture(scope="module")
@slow_setup  # it exports a network and converts it to int8
def int8_export(tmp_path_factory):
    keras.utils.set_random_seed(0)
    encoder = build_feature_extractor((ENCODER_LAYER,), "vgg19", None, width_scale=1 / 16)
    decoder = build_decoder(width=4, channels=encoder.get_layer(ENCODER_LAYER).filters)
    last = decoder.get_layer("block1_deconv1")
    kernel, bias = last.get_weights()
    # Random weights leave the output near 0.5; this also undoes the decoder's input scale.
    last.set_weights([kernel * 50.0 / DECODER_INPUT_SCALE, bias + 0.5])
    root = tmp_path_factory.mktemp("int8")
    export_any_style(encoder, decoder, root / "model", {"steps": 0})
    images = shared_photos(CALIBRATION_PHOTOS + 2, TFLITE_PHOTO_SIDE)
    calibration = images[:CALIBRATION_PHOTOS]
    description = export_tflite(root / "model", root / "tflite", "int8", calibration, calibration)
    return {
        "model": root / "model",
        "tflite": root / "tflite",
        "description": description,
        "held_out": images[CALIBRATION_PHOTOS:],
    }


def test_int8_tflite_of_an_any_style_network_runs_and_matches_the_savedmodel(int8_export):
    network = load_stylizer(int8_export["model"])
    folder = int8_export["tflite"]
    represent = tflite_interpreter(folder / "style_representation.tflite")
    transfer = tflite_interpreter(folder / "stylize_with_representation.tflite")
    first, second = int8_export["held_out"]
    for photo, style in ((first, second), (second, first)):
        photo = square(photo, TFLITE_PHOTO_SIDE)
        style = square(style, TFLITE_STYLE_SIDE)
        expected_representation = network.style_representation(style).numpy()
        expected = network.stylize_with_representation(
            photo, expected_representation, STRENGTH
        ).numpy()
        assert expected.std() > 0.1  # not a flat image that any model would match
        representation = run_tflite(represent, {"styles": style})
        assert np.isfinite(representation).all()
        relative = (
            np.abs(representation - expected_representation).mean()
            / np.abs(expected_representation).mean()
        )
        assert relative < REPRESENTATION_TOLERANCE, relative
        for given in (expected_representation, representation):
            stylized = run_tflite(
                transfer, {"photos": photo, "representation": given, "strength": STRENGTH}
            )
            assert np.isfinite(stylized).all() and 0 <= stylized.min() <= stylized.max() <= 1
            difference = np.abs(stylized - expected).mean()
            assert difference < STYLIZED_TOLERANCE, difference


def test_int8_is_where_it_reaches_a_convolution_and_the_statistics_are_float(int8_export):
    """Only convolutions, pooling and the moves of values between them are int8: a quantised
    representation, or quantised statistics, lose the small channels."""
    for name in ("style_representation.tflite", "stylize_with_representation.tflite"):
        interpreter = tf.lite.Interpreter(
            model_path=str(int8_export["tflite"] / name),
            experimental_op_resolver_type=(
                tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            ),
        )
        tensors = {tensor["index"]: tensor for tensor in interpreter.get_tensor_details()}
        operations = interpreter._get_ops_details()  # the graph; TF has no public accessor
        kinds = {operation["index"]: operation["op_name"] for operation in operations}
        consumers = {}
        for operation in operations:
            for tensor in operation["inputs"]:
                consumers.setdefault(int(tensor), []).append(operation["index"])
        int8_kinds = set()
        for operation in operations:
            outputs = [tensors[int(tensor)] for tensor in operation["outputs"]]
            if not any(tensor["dtype"] == np.int8 for tensor in outputs):
                continue
            kind = operation["op_name"]
            int8_kinds.add(kind)
            assert kind in INT8_OPS | LAYOUT_OPS | {"QUANTIZE"}, (name, kind, outputs[0]["name"])
            if kind in LAYOUT_OPS | {"QUANTIZE"}:  # it must lead to a convolution
                users = [
                    kinds[user]
                    for tensor in operation["outputs"]
                    for user in consumers.get(int(tensor), [])
                ]
                assert users and "DEQUANTIZE" not in users, (name, kind, outputs[0]["name"])
        assert "CONV_2D" in int8_kinds, name
        statistics = [
            tensor for tensor in tensors.values() if tensor["name"].startswith("moments/")
        ]
        assert statistics and all(tensor["dtype"] == np.float32 for tensor in statistics), name
    assert int8_export["description"]["quantize"] == "int8"
