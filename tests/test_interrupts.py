"""SIGINT/SIGTERM, checkpoint and resume, and non-finite losses, through the real `tf-nst` CLI.

The signal tests start `python -m tf_nst.cli stylize` with `subprocess.Popen`, wait until steps
are really running (a `--save-every 1` image or a `--checkpoint-every` checkpoint appears) and
then signal it. They need the real VGG16 weights from ../shared and skip without them.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from cli_checks import (
    cli_lines,
    error_line,
    leftovers,
    logged_steps,
    real_weights_outputs,
    run_directories,
    smooth_picture,
    snapshot,
    step_from_message,
)
from conftest import run_cli
from PIL import Image

pytestmark = [pytest.mark.slow, pytest.mark.real_weights]

START_TIMEOUT = 180  # seconds until the first steps run, generous for a loaded 2-core machine


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[str, str]:
    """A content image (64x48) and a style image (40x40)."""
    directory = tmp_path_factory.mktemp("pair")
    Image.fromarray(smooth_picture(48, 64, seed=11)).save(directory / "content.png")
    Image.fromarray(smooth_picture(40, 40, seed=12)).save(directory / "style.png")
    return str(directory / "content.png"), str(directory / "style.png")


@pytest.fixture()
def stylize_arguments(pair, vgg16_weights) -> list[str]:
    """`stylize CONTENT STYLE -o out.png --logdir logs` with the real VGG16, relative to cwd."""
    return [
        "stylize",
        *pair,
        *real_weights_outputs(vgg16_weights),
        # Adam: its whole state is checkpointed, so resume is exact (L-BFGS restarts its history).
        "--optimizer",
        "adam",
    ]


def checkpoint_files(directory: pathlib.Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def checkpoint_files_at(step: int) -> list[str]:
    """What a checkpoint folder holds after a complete save at `step`, and nothing else."""
    return sorted(
        ["checkpoint", f"ckpt-{step}.data-00000-of-00001", f"ckpt-{step}.index", "run.json"]
    )


def start(workdir: pathlib.Path, arguments: list[str]) -> subprocess.Popen:
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen(
        [sys.executable, "-m", "tf_nst.cli", *arguments],
        cwd=workdir,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: pathlib.Path, process: subprocess.Popen, timeout: float = START_TIMEOUT):
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"the run ended before {path.name} appeared:\n{process.stderr.read()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{path.name} did not appear within {timeout} s")
        time.sleep(0.01)


def finish(process: subprocess.Popen) -> str:
    try:
        return process.communicate(timeout=120)[1]
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def check_saved_on_signal(stderr, status, expected_status, name, workdir, size) -> int:
    """Checks what the first SIGINT/SIGTERM must leave behind; returns the step reached."""
    assert status == expected_status, stderr
    assert "Traceback" not in stderr
    output = workdir / "out.png"
    checkpoint = workdir / "out.png.checkpoint"
    message = [line for line in cli_lines(stderr) if "received" in line]
    assert len(message) == 1, stderr
    for fragment in (
        f"tf-nst: {name} received: saved the best result",
        f"to {output.resolve()} and a checkpoint to {checkpoint.resolve()}",
        "plus --resume",
    ):
        assert fragment in message[0]
    step = step_from_message(message[0])
    # The output is a complete, valid image of the right size.
    with Image.open(output) as image:
        image.verify()
    with Image.open(output) as image:
        assert image.size == size
    # The checkpoint is at exactly that step, complete, and nothing else is left over.
    assert checkpoint_files(checkpoint) == checkpoint_files_at(step)
    assert leftovers(workdir) == []
    # TensorBoard was flushed: every step up to the last is in the one run directory.
    (run_directory,) = run_directories(workdir / "logs")
    state = json.loads((checkpoint / "run.json").read_text())
    assert state["run_name"] == run_directory.name
    assert logged_steps(run_directory) == list(range(1, step + 1))
    return step


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_sigint_saves_the_best_image_and_a_checkpoint_and_exits_130(
    stylize_arguments, tmp_path, optimizer
):
    """With L-BFGS, scipy runs in a worker thread: the signal must still end the process
    promptly with everything saved (a worker left waiting would hang the exit)."""
    arguments = [*stylize_arguments, "--optimizer", optimizer]  # the last --optimizer wins
    process = start(tmp_path, [*arguments, "--size", "64", "--steps", "2000", "--save-every", "1"])
    wait_for(tmp_path / "out_00002.png", process)
    process.send_signal(signal.SIGINT)
    stderr = finish(process)
    step = check_saved_on_signal(stderr, process.returncode, 130, "SIGINT", tmp_path, (64, 48))
    assert 2 <= step < 2000


def test_second_sigint_exits_at_once_without_partial_files(stylize_arguments, tmp_path):
    process = start(
        tmp_path, [*stylize_arguments, "--size", "64", "--steps", "2000", "--save-every", "1"]
    )
    wait_for(tmp_path / "out_00002.png", process)
    process.send_signal(signal.SIGINT)
    # The output appears once the first signal was handled; the second then lands while the
    # checkpoint is written (or, on a fast machine, after everything was saved).
    wait_for(tmp_path / "out.png", process, timeout=60)
    process.send_signal(signal.SIGINT)
    stderr = finish(process)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    at_once = "stopped at once by a second signal" in stderr
    assert at_once or "SIGINT received: saved" in stderr, stderr
    assert leftovers(tmp_path) == []
    with Image.open(tmp_path / "out.png") as image:
        image.verify()
    checkpoint = tmp_path / "out.png.checkpoint"
    if (checkpoint / "checkpoint").exists():  # only complete checkpoints, named by the index
        index = (checkpoint / "checkpoint").read_text()
        step = int(re.search(r'model_checkpoint_path: "ckpt-(\d+)"', index).group(1))
        assert checkpoint_files(checkpoint) == checkpoint_files_at(step)


def test_second_signal_while_checkpointing_removes_the_unfinished_checkpoint(
    stylize_arguments, tmp_path, monkeypatch, capsys
):
    # Deterministic twin of the test above, in-process: the first SIGINT arrives after step 2,
    # the second after the checkpoint's files were written but before its index names them.
    import tensorflow as tf

    from tf_nst import cli, run

    def progress(self, result, note=""):
        if result.step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    # The manager records a save in its index only after the files are complete.
    record_state = tf.train.CheckpointManager._record_state

    def interrupted_record_state(self):
        os.kill(os.getpid(), signal.SIGINT)
        return record_state(self)

    monkeypatch.setattr(run.Console, "progress", progress)
    monkeypatch.setattr(tf.train.CheckpointManager, "_record_state", interrupted_record_state)
    monkeypatch.chdir(tmp_path)
    handler_before = signal.getsignal(signal.SIGINT)

    status = cli.main([*stylize_arguments, "--size", "32", "--steps", "50", "--quiet"])

    assert status == 130
    assert "stopped at once by a second signal" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is handler_before
    with Image.open(tmp_path / "out.png") as image:  # saved before the checkpoint began
        image.verify()
    # The cut-short checkpoint is gone, and with it the folder this run had made for it.
    assert not (tmp_path / "out.png.checkpoint").exists()
    assert leftovers(tmp_path) == []


def test_resume_after_sigterm_ends_with_the_image_of_an_uninterrupted_run(
    stylize_arguments, tmp_path
):
    settings = ["--size", "32", "--steps", "50", "--init", "noise", "--seed", "3"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    straight.mkdir()
    resumed.mkdir()
    # Both runs at once, to halve the wall time; they share nothing but the inputs.
    uninterrupted = start(straight, [*stylize_arguments, *settings])
    interrupted = start(resumed, [*stylize_arguments, *settings, "--checkpoint-every", "2"])
    wait_for(resumed / "out.png.checkpoint" / "checkpoint", interrupted)
    interrupted.send_signal(signal.SIGTERM)
    stderr = finish(interrupted)
    # The interrupt checkpoint holds the exact step reached, whatever step that was.
    reached = check_saved_on_signal(
        stderr, interrupted.returncode, 143, "SIGTERM", resumed, (32, 24)
    )
    assert 2 <= reached < 50
    stderr = finish(uninterrupted)
    assert uninterrupted.returncode == 0, stderr
    assert step_from_message(stderr) == 50

    # Changed settings are refused in one line that lists them, and nothing is touched.
    before = snapshot(resumed)
    changed = run_cli(
        *stylize_arguments, *settings, "--steps", "51", "--learning-rate", "0.03", "--resume",
        cwd=resumed,
    )  # fmt: skip
    assert changed.returncode == 2, changed.stderr
    line = error_line(changed.stderr)
    assert "--steps (was 50, now 51)" in line
    assert "--learning-rate (was 0.02, now 0.03)" in line
    assert cli_lines(changed.stderr) == [line]
    assert snapshot(resumed) == before

    result = run_cli(*stylize_arguments, *settings, "--resume", cwd=resumed)
    assert result.returncode == 0, result.stderr
    assert step_from_message(result.stderr) == 50
    # Same image: Adam's moments, its step counter, the image and the best-so-far come back
    # bit for bit, so on one machine the runs are identical (measured: difference 0). One
    # 8-bit level is allowed for a float that rounds the other way should a kernel order its
    # sums differently in the second process; a wrong resume differs by far more.
    first = np.asarray(Image.open(straight / "out.png"), np.int16)
    second = np.asarray(Image.open(resumed / "out.png"), np.int16)
    assert first.shape == second.shape == (24, 32, 3)
    assert np.abs(first - second).max() <= 1
    # The resumed run appended to the interrupted run's TensorBoard run: every step once.
    (run_directory,) = run_directories(resumed / "logs")
    assert logged_steps(run_directory) == list(range(1, 51))


def test_non_finite_loss_stops_and_saves_the_best_finite_image(stylize_arguments, pair, tmp_path):
    # A style weight near float32's maximum: step 1 is finite (about 1e36), the loss overflows
    # a couple of steps later as the image moves.
    result = run_cli(
        *stylize_arguments, "--size", "32", "--steps", "8", "--style-weight", "1e38", "--quiet",
        "--init", "content", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = cli_lines(result.stderr)
    assert line.startswith("tf-nst: stopped: non-finite loss or gradient at step ")
    assert "saved the best finite result" in line
    assert "lower --learning-rate or the loss weights" in line
    # The saved image is the best finite one: from the content, still close to it.
    output = np.asarray(Image.open(tmp_path / "out.png").convert("RGB"), np.float32)
    content = np.asarray(Image.open(pair[0]).convert("RGB").resize((32, 24)), np.float32)
    assert output.shape == content.shape
    assert np.abs(output - content).mean() < 25
    (run_directory,) = run_directories(tmp_path / "logs")
    assert logged_steps(run_directory)
    assert leftovers(tmp_path) == []


def test_non_finite_first_step_saves_nothing(stylize_arguments, tmp_path):
    # Every weight at float32's maximum: already the first loss is infinite.
    result = run_cli(
        *stylize_arguments, "--size", "32", "--steps", "3", "--init", "noise", "--seed", "1",
        "--content-weight", "3.4e38", "--style-weight", "3.4e38", "--tv-weight", "3.4e38",
        "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    (line,) = cli_lines(result.stderr)
    assert "non-finite loss or gradient at step 1" in line
    assert "nothing was saved" in line
    assert not (tmp_path / "out.png").exists()
    assert run_directories(tmp_path / "logs") == []
    assert leftovers(tmp_path) == []
