"""`tf-nst train` and `tf-nst apply` through the real CLI, on a tiny network and tiny photos.

The runs use the shared VGG16 weights (the CLI builds the real extractor) and skip without them;
the refusals that need no network run everywhere. The library's own tests (test_training.py,
test_apply.py, test_distribute.py) cover the numbers; these cover what a user sees: exit
statuses, one-line errors, files written and files left alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from cli_checks import cli_lines, error_line, leftovers, smooth_picture, snapshot
from conftest import run_cli
from PIL import Image

TINY = [
    "--size", "32", "--width", "4", "--batch-size", "2", "--validation", "2",
    "--validation-every", "2", "--seed", "5",
]  # fmt: skip


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder of 8 small photos (one in a subfolder) and a style image beside it."""
    directory = tmp_path_factory.mktemp("photos")
    (directory / "more").mkdir()
    for index in range(8):
        folder = directory / "more" if index == 7 else directory
        Image.fromarray(smooth_picture(40, 48, seed=index)).save(folder / f"photo_{index}.png")
    style = tmp_path_factory.mktemp("style") / "style.png"
    Image.fromarray(smooth_picture(48, 48, seed=99)).save(style)
    return directory, style


def _weights(vgg16_weights) -> list[str]:
    return ["--backbone", "vgg16", "--weights", str(vgg16_weights)]


# --- refusals: one line, exit 2, nothing written ----------------------------------------------


@pytest.mark.parametrize("case", ["missing", "file", "empty"])
def test_train_refuses_bad_photo_folders_in_one_line(case, photos, tmp_path):
    folder, style = photos
    target = {
        "missing": tmp_path / "nowhere",
        "file": style,
        "empty": tmp_path / "empty",
    }[case]
    if case == "empty":
        target.mkdir()
    before = snapshot(tmp_path)

    result = run_cli("train", style, "--photos", target, "-o", tmp_path / "model", cwd=tmp_path)

    assert result.returncode == 2, result.stderr
    line = error_line(result.stderr)
    expected = {
        "missing": "does not exist: pass a folder of photos",
        "file": "is a file: pass a folder of photos",
        "empty": "no photos",
    }[case]
    assert expected in line, line
    assert "Traceback" not in result.stderr
    assert snapshot(tmp_path) == before


def test_train_refuses_an_existing_model_dir(photos, tmp_path):
    folder, style = photos
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "keep.txt").write_text("mine")

    result = run_cli("train", style, "--photos", folder, "-o", tmp_path / "model")

    assert result.returncode == 2
    assert "already exists: choose a new MODEL_DIR" in error_line(result.stderr)
    assert (tmp_path / "model" / "keep.txt").read_text() == "mine"


def test_apply_refuses_a_folder_that_is_not_a_stylizer(photos, tmp_path):
    folder, _ = photos

    result = run_cli("apply", folder, folder / "photo_0.png", "-o", tmp_path / "out.png")

    assert result.returncode == 2
    assert "is not a tf_nst stylizer" in error_line(result.stderr)
    assert not (tmp_path / "out.png").exists()


# --- a real training run, then apply -----------------------------------------------------------


@pytest.fixture(scope="module")
def trained(photos, vgg16_weights, tmp_path_factory):
    """Trains 4 steps and returns (model directory, workdir, completed process)."""
    folder, style = photos
    workdir = tmp_path_factory.mktemp("train")
    result = run_cli(
        "train", style, "--photos", folder, "-o", "model", "--steps", "4", *TINY,
        *_weights(vgg16_weights), "--logdir", "logs", cwd=workdir,
    )  # fmt: skip
    return workdir / "model", workdir, result


@pytest.mark.slow
@pytest.mark.real_weights
def test_train_writes_a_stylizer_with_its_metadata(trained, photos):
    model, workdir, result = trained
    _, style = photos

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    metadata = json.loads((model / "tf_nst_stylizer.json").read_text())
    training = metadata["training"]
    assert training["steps"] == 4
    assert training["styles"][0]["name"] == "style.png"
    assert len(training["styles"][0]["sha256"]) == 64
    assert training["validation_loss"] > 0
    assert training["settings"]["width"] == 4
    # The checkpoint of a finished run is gone, nothing half-written is left.
    assert not (workdir / "model.checkpoint").exists()
    assert leftovers(workdir) == []
    # It loads without tf_nst, and keeps the size of any input.
    script = (
        "import sys, tensorflow as tf; assert 'tf_nst' not in sys.modules; "
        f"model = tf.saved_model.load({str(model)!r}); "
        "out = model.signatures['serving_default'](images=tf.random.uniform([2, 21, 30, 3]))"
        "['stylized']; print(out.shape, float(tf.reduce_min(out)), float(tf.reduce_max(out)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd="/", timeout=300
    )
    assert loaded.returncode == 0, loaded.stderr
    shape, low, high = loaded.stdout.strip().rsplit(" ", 2)
    assert shape == "(2, 21, 30, 3)"
    assert 0.0 <= float(low) <= float(high) <= 1.0


@pytest.mark.slow
@pytest.mark.real_weights
def test_apply_stylizes_files_skips_a_bad_one_and_says_so(trained, photos, tmp_path):
    model, _, result = trained
    assert result.returncode == 0, result.stderr
    folder, _ = photos
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    inputs_before = snapshot(folder)

    applied = run_cli(
        "apply", model, folder / "photo_0.png", folder / "photo_1.png", tmp_path / "broken.png",
        "-o", tmp_path / "out", "--size", "40",
    )  # fmt: skip

    assert applied.returncode == 1, applied.stderr
    assert "Traceback" not in applied.stderr
    warnings = [line for line in cli_lines(applied.stderr) if "skipped" in line]
    assert len(warnings) == 1 and "broken.png" in warnings[0], applied.stderr
    assert "1 failed" in cli_lines(applied.stderr)[-1]
    for name in ("photo_0.png", "photo_1.png"):
        with Image.open(tmp_path / "out" / name) as image:
            assert max(image.size) == 40
    assert snapshot(folder) == inputs_before

    refused = run_cli("apply", model, folder / "photo_0.png", "-o", folder / "photo_0.png")
    assert refused.returncode == 2
    assert "refusing to overwrite the input" in error_line(refused.stderr)
    assert snapshot(folder) == inputs_before


@pytest.mark.slow
@pytest.mark.real_weights
def test_sigterm_keeps_the_best_network_and_resume_finishes(photos, vgg16_weights, tmp_path):
    folder, style = photos
    arguments = [
        "train", str(style), "--photos", str(folder), "-o", "model", "--steps", "40", *TINY,
        *_weights(vgg16_weights), "--logdir", "logs", "--checkpoint-every", "2",
    ]  # fmt: skip
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tf_nst", *arguments],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    index = tmp_path / "model.checkpoint" / "checkpoint"
    deadline = time.monotonic() + 240
    while not index.exists():
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    stderr = process.communicate(timeout=180)[1]

    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr
    (line,) = [line for line in cli_lines(stderr) if "received" in line]
    assert "SIGTERM received: saved the best result" in line
    assert "plus --resume" in line
    assert (tmp_path / "model" / "saved_model.pb").is_file()
    assert leftovers(tmp_path) == []

    interrupted = json.loads((tmp_path / "model" / "tf_nst_stylizer.json").read_text())
    assert 2 <= interrupted["training"]["steps"] < 40

    # The same command plus --resume finishes, replacing the interrupted run's model.
    resumed = run_cli(*arguments, "--resume", cwd=tmp_path, timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    metadata = json.loads((tmp_path / "model" / "tf_nst_stylizer.json").read_text())
    assert metadata["training"]["steps"] == 40
    assert not (tmp_path / "model.checkpoint").exists()
    assert leftovers(tmp_path) == []
