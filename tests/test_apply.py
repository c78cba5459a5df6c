"""Tests for the stylizer export (`tf_nst.networks.export`) and its use
(`tf_nst.networks.stylizer`, `tiling`, `memory`, `apply`).

One `width=4` network is exported once per module. The SavedModel is reloaded in a fresh Python
process that never imports tf_nst; tiling, memory and file handling run on small images, except
the 4096x3072 memory test, which is what that test is about.
"""

import json
import re
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import slow_setup
from PIL import Image

from tf_nst.config import ApplyConfig
from tf_nst.errors import StyleTransferError
from tf_nst.networks.apply import apply_to_files
from tf_nst.networks.export import STYLIZER_METADATA, export_stylizer
from tf_nst.networks.memory import estimate_apply_bytes
from tf_nst.networks.stylizer import load_stylizer
from tf_nst.networks.tiling import TILE_BLEND, TILE_HALO
from tf_nst.networks.transform import build_transform_network

INPUT_SHAPES = {"odd": (1, 37, 53, 3), "batch": (2, 64, 48, 3)}
METADATA = {"styles": [{"name": "starry_night.jpg", "sha256": "0" * 64}], "steps": 3}

# Runs in a fresh interpreter: only TensorFlow and numpy, never tf_nst.
LOAD_AND_CALL = """
import sys

import numpy as np
import tensorflow as tf

directory, inputs_path, outputs_path = sys.argv[1:]
serving = tf.saved_model.load(directory).signatures["serving_default"]
inputs = np.load(inputs_path)
outputs = {size: serving(images=tf.constant(inputs[size]))["stylized"].numpy() for size in inputs}
loaded = sorted(module for module in sys.modules if module.split(".")[0] == "tf_nst")
assert not loaded, f"tf_nst was imported: {loaded}"
np.savez(outputs_path, **outputs)
"""

# Stylizes a 4096x3072 image in a fresh process and prints its peak RSS and the estimate.
LARGE_IMAGE = """
import resource
import sys

import numpy as np

from tf_nst.networks.memory import estimate_apply_bytes
from tf_nst.networks.stylizer import load_stylizer

stylizer = load_stylizer(sys.argv[1])
image = np.random.default_rng(0).random((3072, 4096, 3), dtype=np.float32)
stylized = stylizer.stylize_image(image)
assert stylized.shape == image.shape and 0.0 <= stylized.min() and stylized.max() <= 1.0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(peak, estimate_apply_bytes(3072, 4096, stylizer.width, stylizer.precision))
"""


@pytest.fixture(scope="module")
def network():
    keras.utils.set_random_seed(0)
    return build_transform_network(width=4)


@pytest.fixture(scope="module")
@slow_setup  # tracing the export's signatures: ~8 s on 2 cores, so its tests are slow
def exported(network, tmp_path_factory):
    directory = tmp_path_factory.mktemp("stylizer") / "model"
    # fp32 only: each precision adds three traced signatures to the export's time; the bf16
    # network itself is tested in test_transform.py and timed by benchmarks/apply_benchmark.py.
    export_stylizer(network, directory, METADATA, precisions=("fp32",))
    return directory


@pytest.fixture(scope="module")
def stylizer(exported):
    return load_stylizer(exported)


@pytest.fixture()
def photos(tmp_path):
    """A folder of three small photos of two sizes, as PNG and JPEG."""
    folder = tmp_path / "photos"
    folder.mkdir()
    generator = np.random.default_rng(5)
    for name, (height, width) in {"a.png": (24, 40), "b.jpg": (24, 40), "c.png": (33, 21)}.items():
        pixels = (generator.random((height, width, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / name)
    return folder


def test_reload_in_fresh_process_without_tf_nst_equals_the_model(network, exported, tmp_path):
    generator = np.random.default_rng(0)
    inputs = {
        name: generator.random(shape, dtype=np.float32) for name, shape in INPUT_SHAPES.items()
    }
    np.savez(tmp_path / "inputs.npz", **inputs)
    arguments = [exported, tmp_path / "inputs.npz", tmp_path / "outputs.npz"]
    completed = subprocess.run(
        [sys.executable, "-c", LOAD_AND_CALL, *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    with np.load(tmp_path / "outputs.npz") as outputs:
        for name, images in inputs.items():
            reloaded = outputs[name]
            assert reloaded.dtype == np.float32 and reloaded.shape == images.shape
            np.testing.assert_allclose(reloaded, np.asarray(network(images)), atol=1e-5)


def test_saved_model_cli_lists_the_signature(exported):
    executable = shutil.which("saved_model_cli")
    if executable is None:
        pytest.skip("saved_model_cli is not on PATH")
    completed = subprocess.run(
        [executable, "show", "--dir", exported, "--tag_set", "serve", "--signature_def"]
        + ["serving_default"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert re.search(r"inputs\['images'\].*?DT_FLOAT.*?\(-1, -1, -1, 3\)", completed.stdout, re.S)
    assert re.search(
        r"outputs\['stylized'\].*?DT_FLOAT.*?\(-1, -1, -1, 3\)", completed.stdout, re.S
    )


def test_metadata_is_written_inside_with_the_callers_facts(exported):
    metadata = json.loads((exported / STYLIZER_METADATA).read_text())
    assert metadata["training"] == METADATA
    assert metadata["width"] == 4 and metadata["precisions"] == ["fp32"]
    assert sorted(path.name for path in exported.parent.glob(".model.*")) == []


def test_export_refuses_an_existing_directory(network, exported):
    with pytest.raises(StyleTransferError, match="already exists"):
        export_stylizer(network, exported, METADATA)


def test_loaded_stylizer_takes_arrays_of_any_shape(stylizer, network):
    for shape in [(5, 9, 3), (2, 17, 31, 3)]:
        images = np.random.default_rng(1).random(shape, dtype=np.float32)
        stylized = stylizer(images).numpy()
        assert stylized.shape == (shape if len(shape) == 4 else (1, *shape))
        expected = np.asarray(network(images.reshape(-1, *shape[-3:])))
        np.testing.assert_allclose(stylized, expected, atol=1e-5)


def test_a_precision_the_export_lacks_is_refused_unless_auto(stylizer):
    with pytest.raises(StyleTransferError, match="has no bf16 signatures"):
        stylizer.with_precision("bf16")
    assert stylizer.with_precision("auto").precision == "fp32"


def test_tiled_result_equals_the_untiled_one(stylizer):
    """Tiles use the whole image's normalisation statistics and drop their halo (wider than the
    receptive field), so the only difference left is float32 rounding: measured 1.2e-7; 1e-4
    leaves room for other convolution kernels and still fails for any visible seam (1/255)."""
    generator = np.random.default_rng(3)
    # Smooth structure plus noise, so a seam or a tone shift would show.
    rows, columns = np.mgrid[0:203, 0:157].astype(np.float32)
    image = 0.5 + 0.3 * np.sin(rows[..., None] / 17.0 + columns[..., None] / 23.0 + np.arange(3))
    image = np.clip(image + 0.1 * generator.random(image.shape), 0, 1).astype(np.float32)
    untiled = stylizer(image).numpy()[0]
    tiled = stylizer.stylize_image(image, tile_size=2 * TILE_BLEND)
    assert image.shape[0] > 2 * TILE_BLEND + TILE_HALO  # several tiles in both directions
    assert np.max(np.abs(tiled - untiled)) < 1e-4


def test_tiles_normalised_on_their_own_would_differ(stylizer):
    """The reason for the shared statistics: a tile's own statistics change its pixels."""
    image = np.random.default_rng(4).random((96, 96, 3), dtype=np.float32)
    image[:, 48:] *= 0.3
    whole = stylizer(image).numpy()[0]
    alone = stylizer(image[:, :48]).numpy()[0]
    assert np.max(np.abs(alone[:, :24] - whole[:, :24])) > 1e-3


@pytest.mark.slow
def test_4096_by_3072_image_stylizes_within_the_memory_estimate(exported):
    completed = subprocess.run(
        [sys.executable, "-c", LARGE_IMAGE, exported],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    peak, estimate = map(int, completed.stdout.split()[-2:])
    assert peak <= estimate, (peak, estimate)


def test_apply_to_a_folder_skips_and_reports_a_bad_file(stylizer, photos, tmp_path):
    (photos / "broken.jpg").write_bytes(b"not an image at all")
    output = tmp_path / "out"
    result = apply_to_files(stylizer, [photos], output, ApplyConfig(batch_size=2))
    assert len(result.written) == 3
    assert [source for source, _ in result.failed] == [str(photos / "broken.jpg")]
    message = result.failed[0][1]
    assert "broken.jpg" in message and "\n" not in message
    assert not result.ok and result.exit_status == 1
    written = sorted(path.name for path in (output / "photos").iterdir())
    assert written == ["a.png", "b.jpg", "c.png"]
    assert Image.open(output / "photos" / "c.png").size == (21, 33)


def test_apply_to_one_file_writes_that_file_at_the_given_size(stylizer, photos, tmp_path):
    output = tmp_path / "stylized.png"
    for mode in ("none", "luminance", "histogram"):
        result = apply_to_files(
            stylizer, [photos / "a.png"], output, ApplyConfig(size=20, preserve_colors=mode)
        )
        assert result.exit_status == 0 and result.written == [(str(photos / "a.png"), str(output))]
        assert Image.open(output).size == (20, 12)


def test_batched_and_single_results_agree(stylizer, photos, tmp_path):
    single = apply_to_files(stylizer, [photos], tmp_path / "single", ApplyConfig(batch_size=1))
    batched = apply_to_files(stylizer, [photos], tmp_path / "batched", ApplyConfig(batch_size=3))
    assert single.ok and batched.ok
    for name in ("a.png", "c.png"):
        first = np.asarray(Image.open(tmp_path / "single" / "photos" / name), np.int16)
        second = np.asarray(Image.open(tmp_path / "batched" / "photos" / name), np.int16)
        assert np.max(np.abs(first - second)) <= 1


def test_output_that_would_overwrite_an_input_is_refused(stylizer, photos):
    before = (photos / "a.png").read_bytes()
    with pytest.raises(StyleTransferError, match="overwrite the input"):
        apply_to_files(stylizer, [photos / "a.png"], photos / "a.png")
    # A folder written into its own parent would land on the inputs themselves.
    with pytest.raises(StyleTransferError, match="overwrite the input"):
        apply_to_files(stylizer, [photos], photos.parent)
    assert (photos / "a.png").read_bytes() == before


def test_a_directory_that_is_not_a_stylizer_is_refused(exported, tmp_path):
    not_stylizer = tmp_path / "plain_saved_model"
    shutil.copytree(exported, not_stylizer)
    (not_stylizer / STYLIZER_METADATA).unlink()
    foreign = tmp_path / "foreign"
    shutil.copytree(exported, foreign)
    (foreign / STYLIZER_METADATA).write_text(json.dumps({"format": "something else"}))
    (tmp_path / "file").write_text("x")
    for path in (not_stylizer, foreign, tmp_path / "missing", tmp_path / "file", tmp_path):
        with pytest.raises(StyleTransferError, match="stylizer") as raised:
            load_stylizer(path)
        assert "\n" not in str(raised.value)


def test_memory_estimate_grows_with_pixels_and_width():
    small = estimate_apply_bytes(512, 512, 16)
    assert estimate_apply_bytes(1024, 1024, 16) - small == pytest.approx(
        3 * (small - estimate_apply_bytes(1, 1, 16)), rel=0.01
    )
    assert estimate_apply_bytes(1024, 1024, 32) > estimate_apply_bytes(1024, 1024, 16)
