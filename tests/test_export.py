"""Tests for tf_nst.networks.export and `tf-nst export`: the SavedModel must stand on its own.

Each exported model is reloaded in a fresh Python process that never imports tf_nst, called on
two input sizes through its `serving_default` signature, and compared with the Keras model it came
from. The tiny random VGG19 always runs; the real VGG16 runs when ../shared holds its weights.
"""

import re
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import run_cli

from tf_nst.errors import StyleTransferError
from tf_nst.features.export import export_feature_extractor
from tf_nst.features.extractor import build_feature_extractor

REAL_LAYERS = ("block1_conv1", "block3_conv1", "block5_conv3")
# Two batches of different sizes; 37 and 53 are odd so every pooling rounds down.
INPUT_SHAPES = {"small": (1, 37, 53, 3), "batch": (2, 64, 48, 3)}

# Runs in a fresh interpreter: only TensorFlow and numpy, never tf_nst.
LOAD_AND_CALL = """
import sys

import numpy as np
import tensorflow as tf

directory, inputs_path, outputs_path = sys.argv[1:]
serving = tf.saved_model.load(directory).signatures["serving_default"]
inputs = np.load(inputs_path)
outputs = {}
for size in inputs.files:
    for name, value in serving(images=tf.constant(inputs[size])).items():
        outputs[size + "__" + name] = value.numpy()
loaded = sorted(module for module in sys.modules if module.split(".")[0] == "tf_nst")
assert not loaded, f"tf_nst was imported: {loaded}"
np.savez(outputs_path, **outputs)
"""


def _relative_error(actual, expected):
    """max |actual - expected| / max |expected|, the error relative to the map's scale."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    return np.max(np.abs(actual - expected)) / np.max(np.abs(expected))


def _leftover_staging(directory):
    """Temporary `.NAME.*` directories that an export left beside `directory`."""
    return sorted(directory.parent.glob(f".{directory.name}.*"))


@pytest.fixture(
    scope="module", params=["tiny", pytest.param("vgg16", marks=pytest.mark.real_weights)]
)
def exported(request, tmp_path_factory):
    """Exports a model, reloads it in a fresh process and returns (model, directory, outputs)."""
    if request.param == "tiny":
        model = request.getfixturevalue("tiny_extractor")
    else:
        model = build_feature_extractor(
            REAL_LAYERS, "vgg16", request.getfixturevalue("vgg16_weights")
        )
    work = tmp_path_factory.mktemp(f"export_{request.param}")
    directory = work / "features"
    export_feature_extractor(model, directory)
    generator = np.random.default_rng(0)
    inputs = {
        size: generator.random(shape, dtype=np.float32) for size, shape in INPUT_SHAPES.items()
    }
    np.savez(work / "inputs.npz", **inputs)
    completed = subprocess.run(
        [sys.executable, "-c", LOAD_AND_CALL, directory, work / "inputs.npz", work / "outputs.npz"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=work,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    with np.load(work / "outputs.npz") as saved:
        outputs = {key: saved[key] for key in saved.files}
    return model, directory, inputs, outputs


@pytest.mark.slow
def test_export_leaves_only_the_saved_model(exported):
    _, directory, _, _ = exported
    assert (directory / "saved_model.pb").is_file()
    assert _leftover_staging(directory) == []


@pytest.mark.slow
def test_reloaded_outputs_are_named_by_layer(exported):
    model, _, _, outputs = exported
    expected = {f"{size}__{name}" for size in INPUT_SHAPES for name in model.output}
    assert set(outputs) == expected


@pytest.mark.slow
def test_reloaded_model_matches_keras_on_two_input_sizes(exported):
    """Two sizes and batch sizes through one signature prove the input is fully dynamic; each
    layer must match the Keras model to 1e-4 of its scale (float32 reordering is ~1e-6)."""
    model, _, inputs, outputs = exported
    for size, images in inputs.items():
        expected = model(images)
        for name, value in expected.items():
            reloaded = outputs[f"{size}__{name}"]
            assert reloaded.dtype == np.float32
            assert reloaded.shape == tuple(value.shape)
            assert np.max(np.abs(np.asarray(value))) > 0.0
            assert _relative_error(reloaded, value) < 1e-4, (size, name)


def _saved_model_cli():
    executable = shutil.which("saved_model_cli")
    if executable:
        return [executable]
    return [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]


@pytest.mark.slow
def test_saved_model_cli_shows_the_signature(exported):
    model, directory, _, _ = exported
    completed = subprocess.run(
        [*_saved_model_cli(), "show", "--dir", str(directory), "--all"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    shown = completed.stdout
    assert "signature_def['serving_default']" in shown
    assert re.search(
        r"inputs\['images'\] tensor_info:\s+dtype: DT_FLOAT\s+shape: \(-1, -1, -1, 3\)", shown
    ), shown
    for name in model.output:
        assert re.search(rf"outputs\['{name}'\] tensor_info:\s+dtype: DT_FLOAT", shown), name


# --- library errors (tiny model, no subprocess) --------------------------------------------------


def test_export_onto_existing_directory_raises_one_line(tiny_extractor, tmp_path):
    directory = tmp_path / "features"
    directory.mkdir()
    (directory / "keep.txt").write_text("not overwritten")
    with pytest.raises(StyleTransferError, match="already exists") as raised:
        export_feature_extractor(tiny_extractor, directory)
    assert "\n" not in str(raised.value)
    assert sorted(path.name for path in directory.iterdir()) == ["keep.txt"]
    assert _leftover_staging(directory) == []


def test_failed_export_leaves_nothing_behind(tiny_extractor, tmp_path, monkeypatch):
    """A crash while writing must remove the staging directory and never create the target."""

    def crash(*arguments, **keyword_arguments):
        raise RuntimeError("disk full")

    # ExportArchive() returns an instance of a backend subclass: patch that class.
    monkeypatch.setattr(type(keras.export.ExportArchive()), "write_out", crash)
    directory = tmp_path / "features"
    with pytest.raises(RuntimeError, match="disk full"):
        export_feature_extractor(tiny_extractor, directory)
    assert not directory.exists()
    assert _leftover_staging(directory) == []
    assert list(tmp_path.iterdir()) == []


# --- the command line ----------------------------------------------------------------------------


def _only_message(stderr):
    """Our one error line; TensorFlow's C++ start-up lines may precede it on stderr."""
    assert "Traceback" not in stderr
    messages = [line for line in stderr.splitlines() if line.startswith("tf-nst:")]
    assert len(messages) == 1, stderr
    return messages[0]


@pytest.mark.slow
@pytest.mark.real_weights
def test_cli_export_writes_a_saved_model(vgg16_weights, tmp_path):
    directory = tmp_path / "features"
    completed = run_cli(
        "export", directory, "--backbone", "vgg16", "--weights", vgg16_weights,
        "--layers", "block1_conv1,block3_conv1", "--precision", "fp32",
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert (directory / "saved_model.pb").is_file()
    assert "block1_conv1, block3_conv1" in completed.stdout
    assert _leftover_staging(directory) == []


@pytest.mark.slow
def test_cli_export_onto_existing_directory_fails_with_one_line(tmp_path):
    """The CLI checks OUT_DIR before it loads any weights, so this needs neither ../shared nor
    the network."""
    directory = tmp_path / "features"
    directory.mkdir()
    completed = run_cli("export", directory, "--backbone", "vgg16", "--layers", "block1_conv1")
    assert completed.returncode == 2
    message = _only_message(completed.stderr)
    assert "already exists" in message
    assert str(directory) in message
    assert list(directory.iterdir()) == []
    assert _leftover_staging(directory) == []
