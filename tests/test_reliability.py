"""Issue 8, section 2: a result is never lost, and nothing that is not ours is touched.

One test per principle or example of section 2 (items 1 to 5 and 7; the image, memory and
weights-file cases live with those modules' tests). Most run in-process on the tiny random model,
driven by `tf_nst.run.run_job` as `tf-nst stylize` drives it; the cases that only
the real process shows (closed pipes, hang-ups, refusals before TensorFlow loads, export) run the
real CLI with the shared VGG16 weights, at 32 px and a few steps.

Every test checks the exit status, that a refusal is exactly one `tf-nst: error: ...` line, that
there is no traceback, that the best image is written when the principle says so, and that files
the run did not create are untouched.
"""

from __future__ import annotations

import io
import os
import pathlib
import shlex
import signal
import subprocess
import sys
import threading
import time

import pytest
from cli_checks import cli_lines, error_line, leftovers, smooth_picture, snapshot
from conftest import run_cli
from PIL import Image

START_TIMEOUT = 180  # seconds until the first steps run, generous for a loaded 2-core machine
TINY_SETTINGS = {"size": 32, "steps": 4, "optimizer": "adam", "precision": "fp32", "seed": 1}


# --- helpers ---------------------------------------------------------------------------------


def save_pair(directory: pathlib.Path) -> tuple[str, str]:
    """A content image (64x48) and a style image (40x40) in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    Image.fromarray(smooth_picture(48, 64, seed=11)).save(directory / "content.png")
    Image.fromarray(smooth_picture(40, 40, seed=12)).save(directory / "style.png")
    return str(directory / "content.png"), str(directory / "style.png")


@pytest.fixture()
def pair(tmp_path) -> tuple[str, str]:
    """The content and style images, in `tmp_path/inputs`."""
    return save_pair(tmp_path / "inputs")


def assert_untouched(before: dict[str, str], after: dict[str, str]) -> None:
    """Every file and folder of `before` is still there with the same content."""
    changed = {
        name: after.get(name, "(deleted)") for name in before if after.get(name) != before[name]
    }
    assert not changed, f"files the run did not create were changed or deleted: {changed}"


def assert_image(path: pathlib.Path, size: tuple[int, int] | None = None) -> None:
    """`path` is a complete, valid image (of `size`, if given)."""
    assert path.is_file(), f"{path} was not written"
    with Image.open(path) as image:
        image.verify()
    if size is not None:
        with Image.open(path) as image:
            assert image.size == size


def warnings_in(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("tf-nst: warning: ")]


def run_tiny(
    extractor, pair, workdir: pathlib.Path, at_step=None, config=None, before_run=None,
    **output_options,
):  # fmt: skip
    """Runs a stylization in-process on the tiny model through `tf_nst.run.run_job`, as the CLI.

    Args:
        extractor: The tiny random feature extractor.
        pair: The content and style image paths.
        workdir: Where `out.png` and `logs/` go (unless `output_options` say otherwise).
        at_step: {step: action}: each action runs just before that step's result reaches the
            run loop (so the step's side outputs already see what it did).
        config: The StyleConfig; `TINY_SETTINGS` by default.
        before_run: Runs once the signal handler is in place, before the job is built.
        output_options: OutputOptions fields.

    Returns:
        The run's `Outcome` and the lines it wrote to its console (the final line included).
    """
    from tf_nst import run
    from tf_nst.config import OutputOptions, StyleConfig
    from tf_nst.image import decoding
    from tf_nst.optimize import job as job_module

    config = config or StyleConfig(**TINY_SETTINGS)
    options = OutputOptions(
        **{"output": str(workdir / "out.png"), "logdir": str(workdir / "logs"), **output_options}
    )
    content_path, style_path = pair
    key = job_module.optimization_resume_key(config, content_path, [style_path])
    stream = io.StringIO()
    console = run.Console(stream=stream)
    content = decoding.load_image(content_path)
    style = decoding.load_image(style_path)

    def build():
        if before_run:
            before_run()
        built = job_module.OptimizationJob(content, [style], config, extractor=extractor)
        if at_step:
            original = built.steps

            def steps():
                for result in original():
                    if result.step in at_step:
                        at_step[result.step]()
                    yield result

            built.steps = steps
        return built

    outcome = run.run_job(build, options, key, console=console)
    return outcome, stream.getvalue().splitlines()


def sigterm_myself() -> None:
    """A real SIGTERM to this process; the run's handler (entered in run_tiny) takes it."""
    os.kill(os.getpid(), signal.SIGTERM)


def interrupt_tiny(extractor, pair, workdir, at=2, **output_options):
    """A tiny run stopped by SIGTERM at step `at`: the image and a checkpoint are saved."""
    outcome, lines = run_tiny(
        extractor, pair, workdir, at_step={at: sigterm_myself}, **output_options
    )
    assert outcome.status == 143, lines
    assert "SIGTERM received: saved the best result" in outcome.message
    return outcome, lines


def stylize_arguments(pair, weights, *extra) -> list[str]:
    """`stylize CONTENT STYLE -o out.png --logdir logs` with the real VGG16, at 32 px."""
    return [
        "stylize", *pair, "-o", "out.png", "--logdir", "logs", "--backbone", "vgg16",
        "--weights", str(weights), "--size", "32", "--optimizer", "adam", *extra,
    ]  # fmt: skip


def start_cli(workdir: pathlib.Path, arguments: list[str]) -> subprocess.Popen:
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen(
        [sys.executable, "-m", "tf_nst", *map(str, arguments)],
        cwd=workdir,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(found, process: subprocess.Popen, what: str, timeout: float = START_TIMEOUT):
    """Polls `found()` until it is true; fails if the process ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while not found():
        if process.poll() is not None:
            pytest.fail(f"the process ended before {what} appeared:\n{process.stderr.read()}")
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            pytest.fail(f"{what} did not appear within {timeout} s")
        time.sleep(0.01)


def finish(process: subprocess.Popen, timeout: float = 180) -> str:
    try:
        return process.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise


def interrupt_cli(workdir, arguments, signal_number=signal.SIGTERM) -> tuple[int, str]:
    """Starts the real CLI with `--save-every 1`, signals it once step 2 is saved."""
    process = start_cli(workdir, [*arguments, "--save-every", "1"])
    wait_until((workdir / "out_00002.png").exists, process, "out_00002.png")
    process.send_signal(signal_number)
    stderr = finish(process)
    return process.returncode, stderr


def main_until(path: pathlib.Path, arguments: list[str], timeout: float = START_TIMEOUT) -> int:
    """Runs `cli.main(arguments)` in-process and sends this process SIGTERM once `path` exists.

    The run's own handler takes the signal (it is installed while steps run, which is when
    `path`, an intermediate, can appear).
    """
    from tf_nst import cli

    done = threading.Event()

    def watch():
        deadline = time.monotonic() + timeout
        while not done.is_set() and time.monotonic() < deadline:
            if path.exists():
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        return cli.main([str(argument) for argument in arguments])
    finally:
        done.set()
        watcher.join()


def assert_single_refusal(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit 2, exactly one `tf-nst: error:` line, no traceback; returns the line.

    A refusal made after TensorFlow loads may follow the run's notes (`tf-nst: 32x24 px, ...`),
    but no warning, no progress and nothing that is not the CLI's own.
    """
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    line = error_line(result.stderr)
    lines = cli_lines(result.stderr)
    assert lines[-1] == line, result.stderr
    assert all(
        other.startswith("tf-nst: ") and not other.startswith("tf-nst: warning")
        for other in lines[:-1]
    ), result.stderr
    for fragment in fragments:
        assert fragment in line, line
    return line


def assert_refused_before_tensorflow(result: subprocess.CompletedProcess, *fragments) -> str:
    """A refusal made before TensorFlow loads: stderr is exactly the one line."""
    line = assert_single_refusal(result, *fragments)
    assert result.stderr.splitlines() == [line], result.stderr
    assert result.stdout == ""
    return line


# --- 1. A failing side output never loses the result -----------------------------------------


def test_full_log_disk_warns_once_and_still_saves_the_image(
    tiny_extractor, pair, tmp_path, monkeypatch
):
    from tf_nst.run import summaries

    def disk_full(self, step, values):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(summaries.RunLog, "scalars", disk_full)
    before = snapshot(tmp_path)
    outcome, lines = run_tiny(tiny_extractor, pair, tmp_path)

    assert outcome.status == 0, lines
    assert outcome.message.startswith("tf-nst: saved "), lines
    (warning,) = warnings_in(lines)
    assert "TensorBoard" in warning and "No space left on device" in warning
    assert not any("Traceback" in line for line in lines)
    assert_image(tmp_path / "out.png", (32, 24))
    assert_untouched(before, snapshot(tmp_path))
    assert leftovers(tmp_path) == []


def test_file_at_the_checkpoint_path_mid_run_warns_and_still_saves_the_image(
    tiny_extractor, pair, tmp_path
):
    blocker = tmp_path / "out.png.checkpoint"

    def block():
        blocker.write_text("not a checkpoint")

    outcome, lines = run_tiny(
        tiny_extractor, pair, tmp_path, at_step={1: block}, checkpoint_every=2
    )

    assert outcome.status == 0, lines
    (warning,) = warnings_in(lines)
    assert "checkpoint" in warning and str(blocker) in warning, warning
    assert_image(tmp_path / "out.png", (32, 24))
    assert blocker.read_text() == "not a checkpoint"
    assert leftovers(tmp_path) == []


def test_blocked_checkpoint_then_sigterm_warns_once_and_still_saves_the_image(
    tiny_extractor, pair, tmp_path
):
    """The periodic checkpoint fails (a file took its path), then SIGTERM: the image is saved,
    the final line says no checkpoint could be written, and the failure is warned about once."""
    blocker = tmp_path / "out.png.checkpoint"

    def block():
        blocker.write_text("mine")

    outcome, lines = run_tiny(
        tiny_extractor, pair, tmp_path, at_step={1: block, 3: sigterm_myself}, checkpoint_every=2
    )

    assert outcome.status == 143, lines
    assert outcome.message.startswith("tf-nst: SIGTERM received: saved the best result"), lines
    assert "no checkpoint could be written" in outcome.message, lines
    assert_image(tmp_path / "out.png", (32, 24))
    assert blocker.read_text() == "mine"
    assert len(warnings_in(lines)) == 1, lines


def test_folder_at_an_intermediate_path_mid_run_warns_and_still_saves_the_image(
    tiny_extractor, pair, tmp_path
):
    blocker = tmp_path / "out_00003.png"
    inside = blocker / "keep.txt"

    def block():
        blocker.mkdir()
        inside.write_text("mine")

    outcome, lines = run_tiny(tiny_extractor, pair, tmp_path, at_step={2: block}, save_every=1)

    assert outcome.status == 0, lines
    (warning,) = warnings_in(lines)
    assert "--save-every" in warning and "out_00003.png" in warning, warning
    assert_image(tmp_path / "out.png", (32, 24))
    assert_image(tmp_path / "out_00002.png")
    assert inside.read_text() == "mine" and sorted(blocker.iterdir()) == [inside]
    assert leftovers(tmp_path) == []


def test_folder_made_at_the_checkpoint_path_mid_run_is_not_written_into(
    tiny_extractor, pair, tmp_path
):
    """A folder that appears at `OUT.png.checkpoint` after the up-front check is not ours: the
    run must neither write its checkpoint files into it nor leave it looking like a checkpoint
    of an interrupted run (the next run would then be told to add --resume)."""
    folder = tmp_path / "out.png.checkpoint"

    def block():
        folder.mkdir()
        (folder / "notes.txt").write_text("mine")

    outcome, lines = run_tiny(
        tiny_extractor, pair, tmp_path, at_step={1: block}, checkpoint_every=2
    )

    assert outcome.status == 0, lines
    assert_image(tmp_path / "out.png", (32, 24))
    assert len(warnings_in(lines)) == 1, lines
    assert sorted(path.name for path in folder.iterdir()) == ["notes.txt"]
    assert (folder / "notes.txt").read_text() == "mine"


def test_unwritable_output_keeps_the_checkpoint_and_resume_writes_the_image(
    tiny_extractor, pair, tmp_path
):
    output = tmp_path / "out.png"
    marker = output / "keep.txt"

    def block_output():
        output.mkdir()
        marker.write_text("mine")

    outcome, lines = run_tiny(tiny_extractor, pair, tmp_path, at_step={4: block_output})

    assert outcome.status != 0, lines
    assert "could not be saved" in outcome.message and "--resume" in outcome.message, lines
    assert str(output) in outcome.message
    assert len(warnings_in(lines)) == 1, lines
    assert marker.read_text() == "mine"
    checkpoint = tmp_path / "out.png.checkpoint"
    assert (checkpoint / "run.json").is_file() and list(checkpoint.glob("ckpt-*.index"))

    marker.unlink()
    output.rmdir()
    before = snapshot(tmp_path / "inputs")
    outcome, lines = run_tiny(tiny_extractor, pair, tmp_path, resume=True)

    assert outcome.status == 0, lines
    assert_image(output, (32, 24))
    assert not checkpoint.exists()  # the result is saved: nothing is left to resume
    assert_untouched(before, snapshot(tmp_path / "inputs"))


# --- 2. Closing the terminal or the pipe does not lose the run --------------------------------


def test_closed_pipe_does_not_lose_the_run(vgg16_weights, pair, tmp_path):
    command = shlex.join(
        [sys.executable, "-m", "tf_nst", *stylize_arguments(pair, vgg16_weights, "--steps", "5")]
    )
    script = f'{command} 2>&1 | head -3; echo "${{PIPESTATUS[0]}}" > status'
    before = snapshot(tmp_path / "inputs")
    result = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip

    assert (tmp_path / "status").read_text().strip() == "0", result.stdout + result.stderr
    assert len(result.stdout.splitlines()) == 3, result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert "BrokenPipeError" not in result.stdout + result.stderr
    assert_image(tmp_path / "out.png", (32, 24))
    assert not (tmp_path / "out.png.checkpoint").exists()
    assert_untouched(before, snapshot(tmp_path / "inputs"))
    assert leftovers(tmp_path) == []


def test_sighup_saves_like_sigterm(vgg16_weights, pair, tmp_path):
    before = snapshot(tmp_path / "inputs")
    status, stderr = interrupt_cli(
        tmp_path, stylize_arguments(pair, vgg16_weights, "--steps", "2000"), signal.SIGHUP
    )

    assert status == 129, stderr
    assert "Traceback" not in stderr
    (message,) = [line for line in cli_lines(stderr) if "received" in line]
    checkpoint = tmp_path / "out.png.checkpoint"
    assert message.startswith("tf-nst: SIGHUP received: saved the best result"), message
    assert f"to {tmp_path / 'out.png'} and a checkpoint to {checkpoint}" in message, message
    assert_image(tmp_path / "out.png", (32, 24))
    assert (checkpoint / "run.json").is_file()
    assert len(list(checkpoint.glob("ckpt-*.index"))) == 1
    assert_untouched(before, snapshot(tmp_path / "inputs"))
    assert leftovers(tmp_path) == []


def test_sighup_with_the_terminal_gone_still_saves(vgg16_weights, pair, tmp_path):
    """A closed terminal: the hang-up comes and stderr is gone, so the last lines cannot be
    written. The image and the checkpoint must be saved all the same."""
    arguments = stylize_arguments(pair, vgg16_weights, "--steps", "2000", "--save-every", "1")
    process = start_cli(tmp_path, arguments)
    wait_until((tmp_path / "out_00002.png").exists, process, "out_00002.png")
    process.stderr.close()  # the terminal is gone: writing the final line fails (EPIPE)
    process.send_signal(signal.SIGHUP)
    try:
        status = process.wait(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()

    assert status == 129
    assert_image(tmp_path / "out.png", (32, 24))
    checkpoint = tmp_path / "out.png.checkpoint"
    assert (checkpoint / "run.json").is_file()
    assert len(list(checkpoint.glob("ckpt-*.index"))) == 1
    assert leftovers(tmp_path) == []


def test_signal_before_the_first_step_saves_nothing_and_leaves_no_logdir(
    tiny_extractor, pair, tmp_path
):
    before = snapshot(tmp_path)
    outcome, lines = run_tiny(
        tiny_extractor, pair, tmp_path, before_run=sigterm_myself, checkpoint_every=1
    )

    assert outcome.status == 143, lines
    assert "SIGTERM received before the first step; nothing was saved" in outcome.message
    assert snapshot(tmp_path) == before  # no image, no checkpoint, no --logdir


def test_export_with_its_output_pipe_closed_still_succeeds(vgg16_weights, tmp_path):
    """`tf-nst export OUT | true`: the "exported ..." line cannot be written; the export is
    complete all the same and the exit status must say so."""
    command = shlex.join(
        [sys.executable, "-m", "tf_nst", "export", "model", "--backbone", "vgg16",
         "--weights", str(vgg16_weights)]
    )  # fmt: skip
    script = f'{command} 2> stderr.txt | true; echo "${{PIPESTATUS[0]}}" > status'
    result = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip
    stderr = (tmp_path / "stderr.txt").read_text()

    assert (tmp_path / "model" / "saved_model.pb").is_file(), stderr + result.stderr
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert (tmp_path / "status").read_text().strip() == "0", stderr
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []


# --- 3. Never overwrite or delete a file the run did not create -------------------------------


def test_save_every_over_an_existing_intermediate_name_is_refused_up_front(
    vgg16_weights, pair, tmp_path
):
    existing = tmp_path / "out_00002.png"
    Image.fromarray(smooth_picture(20, 20, seed=3)).save(existing)
    before = snapshot(tmp_path)
    result = run_cli(
        *stylize_arguments(pair, vgg16_weights, "--steps", "4", "--save-every", "2"),
        cwd=tmp_path,
    )

    assert_refused_before_tensorflow(result, "out_00002.png", "exists already")
    assert snapshot(tmp_path) == before  # untouched, and nothing written


def test_a_checkpoint_folder_with_foreign_ckpt_files_is_refused_and_left_alone(
    vgg16_weights, pair, tmp_path
):
    folder = tmp_path / "out.png.checkpoint"
    (folder / "ckpt-old").mkdir(parents=True)
    (folder / "ckpt-old" / "notes.txt").write_text("mine")
    (folder / "ckpt-7.index").write_bytes(b"not ours")
    (folder / "ckpt-7.data-00000-of-00001").write_bytes(b"not ours either")
    before = snapshot(tmp_path)
    result = run_cli(*stylize_arguments(pair, vgg16_weights, "--steps", "3"), cwd=tmp_path)

    assert_refused_before_tensorflow(result, str(folder))
    assert snapshot(tmp_path) == before


@pytest.mark.slow  # two runs: 2-3 s
def test_resumed_run_never_deletes_ckpt_files_it_did_not_write(tiny_extractor, pair, tmp_path):
    interrupt_tiny(tiny_extractor, pair, tmp_path)
    folder = tmp_path / "out.png.checkpoint"
    (folder / "ckpt-backup").mkdir()
    (folder / "ckpt-backup" / "notes.txt").write_text("mine")
    (folder / "ckpt-2.index.bak").write_bytes(b"my copy")
    (folder / "ckpt-notes.txt").write_text("mine too")
    before = {
        name: digest
        for name, digest in snapshot(tmp_path).items()
        if "backup" in name or name.endswith((".bak", "ckpt-notes.txt")) or "inputs" in name
    }
    outcome, lines = run_tiny(tiny_extractor, pair, tmp_path, resume=True)

    assert outcome.status == 0, lines
    assert_image(tmp_path / "out.png", (32, 24))
    assert_untouched(before, snapshot(tmp_path))
    # Only this run's own files went: run.json, the index and the ckpt-N files it wrote.
    assert sorted(path.name for path in folder.iterdir()) == [
        "ckpt-2.index.bak", "ckpt-backup", "ckpt-notes.txt"
    ]  # fmt: skip


@pytest.mark.slow  # four runs: ~5 s
def test_png_and_jpg_outputs_keep_separate_checkpoints(tiny_extractor, pair, tmp_path):
    interrupt_tiny(tiny_extractor, pair, tmp_path, output=str(tmp_path / "res.png"))
    png_checkpoint = snapshot(tmp_path / "res.png.checkpoint")
    assert "run.json" in png_checkpoint

    interrupt_tiny(tiny_extractor, pair, tmp_path, at=3, output=str(tmp_path / "res.jpg"))
    assert snapshot(tmp_path / "res.png.checkpoint") == png_checkpoint
    assert "run.json" in snapshot(tmp_path / "res.jpg.checkpoint")

    for name in ("res.png", "res.jpg"):
        outcome, lines = run_tiny(
            tiny_extractor, pair, tmp_path, output=str(tmp_path / name), resume=True
        )
        assert outcome.status == 0, lines
        assert "after 4 steps" in outcome.message, lines
        assert_image(tmp_path / name, (32, 24))
        assert not (tmp_path / f"{name}.checkpoint").exists()


# --- 4. Every path is checked up front --------------------------------------------------------


def _long_output(tmp_path):
    # 250 bytes fit a file system, but not with the temporary name `.NAME.XXXXXXXX.tmp`.
    return ["-o", "o" * 246 + ".png"], ["is 250 bytes long"]


def _symlink_output(tmp_path):
    (tmp_path / "elsewhere.png").write_bytes(b"someone else's file")
    (tmp_path / "link.png").symlink_to("elsewhere.png")
    return ["-o", "link.png"], ["symbolic link"]


def _long_run_name(tmp_path):
    return ["--run-name", "r" * 300], ["--run-name"]


def _logdir_is_a_file(tmp_path):
    (tmp_path / "afile").write_text("mine")
    return ["--logdir", "afile"], ["--logdir", "is a file"]


def _logdir_under_a_file(tmp_path):
    (tmp_path / "afile").write_text("mine")
    return ["--logdir", "afile/logs"], ["--logdir", "under the file"]


def _checkpoint_folder_is_a_file(tmp_path):
    (tmp_path / "out.png.checkpoint").write_text("mine")
    return [], ["out.png.checkpoint", "in the way"]


def _long_intermediate(tmp_path):
    # 240 bytes fit with the temporary name, but `_00001` makes the intermediates too long.
    return ["-o", "o" * 236 + ".png"], ["intermediate", "o" * 20]


def _long_logdir_component(tmp_path):
    return ["--logdir", "logs/" + "l" * 300], ["--logdir"]


def _run_directory_is_a_file(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "myrun").write_text("mine")
    return ["--run-name", "myrun"], ["myrun", "blocked by a file"]


@pytest.mark.parametrize(
    "setup",
    [
        _long_output,
        _long_intermediate,
        _long_logdir_component,
        _run_directory_is_a_file,
        _symlink_output,
        _long_run_name,
        _logdir_is_a_file,
        _logdir_under_a_file,
        _checkpoint_folder_is_a_file,
    ],
    ids=lambda setup: setup.__name__.strip("_"),
)
def test_stylize_paths_are_checked_before_anything_is_written(setup, vgg16_weights, pair, tmp_path):
    extra, fragments = setup(tmp_path)
    before = snapshot(tmp_path)
    result = run_cli(
        *stylize_arguments(pair, vgg16_weights, "--steps", "3", "--save-every", "1"),
        *extra,
        cwd=tmp_path,
    )

    assert_refused_before_tensorflow(result, *fragments)
    assert snapshot(tmp_path) == before


def test_export_into_a_file_says_it_is_a_file(vgg16_weights, tmp_path):
    (tmp_path / "afile").write_text("mine")
    before = snapshot(tmp_path)
    result = run_cli(
        "export", "afile/model", "--backbone", "vgg16", "--weights", vgg16_weights, cwd=tmp_path
    )

    line = assert_refused_before_tensorflow(result, "is a file")
    assert "does not exist" not in line
    assert snapshot(tmp_path) == before


# --- 5. No traceback without --debug, ever ----------------------------------------------------


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--init", "noise", "--seed", "-1"], "--seed"),
        (["-o", "a" * 296 + ".png"], "output"),
        (["--run-name", "b" * 300], "--run-name"),
    ],
    ids=["seed-minus-one", "300-char-output", "300-char-run-name"],
)
def test_bad_values_give_one_line_not_a_traceback(extra, fragment, vgg16_weights, pair, tmp_path):
    before = snapshot(tmp_path)
    result = run_cli(*stylize_arguments(pair, vgg16_weights, "--steps", "3"), *extra, cwd=tmp_path)

    assert_single_refusal(result, fragment)
    assert snapshot(tmp_path) == before


def test_resume_from_a_truncated_checkpoint_is_one_line(
    vgg16_weights, pair, tmp_path, monkeypatch, capsys
):
    """In-process through `cli.main` (TensorFlow is loaded once): a real SIGTERM stops the first
    run, half of its checkpoint data is cut off, and `--resume` must refuse in one line."""
    monkeypatch.chdir(tmp_path)
    arguments = stylize_arguments(pair, vgg16_weights, "--steps", "2000", "--save-every", "1")
    status = main_until(tmp_path / "out_00002.png", arguments)
    assert status == 143, capsys.readouterr().err
    capsys.readouterr()
    (data,) = (tmp_path / "out.png.checkpoint").glob("ckpt-*.data-*")
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    before = snapshot(tmp_path)
    from tf_nst import cli

    # --time-limit is not part of the resume key: it only bounds a resume that wrongly works.
    status = cli.main([*arguments, "--resume", "--time-limit", "20"])
    stderr = capsys.readouterr().err

    line = assert_single_refusal(
        subprocess.CompletedProcess([], status, "", stderr), "cannot be restored", "--resume"
    )
    # The message is whole: the checkpoint's full path and its advice, not cut mid-word.
    assert str(data.parent / data.name.split(".data-")[0]) in line, line
    assert line.endswith("or choose another -o/--output, and run without --resume"), line
    assert snapshot(tmp_path) == before


def _write_state(folder: pathlib.Path, arguments: list[str], pair) -> None:
    """A `run.json` whose settings and inputs match what `arguments` would run."""
    import json

    from tf_nst import cli
    from tf_nst.cli import options
    from tf_nst.config import StyleConfig
    from tf_nst.optimize import job
    from tf_nst.run.outputs import STATE_FORMAT

    config = options.from_arguments(StyleConfig, cli.build_parser().parse_args(arguments))
    key = job.optimization_resume_key(config, pair[0], [pair[1]])
    state = {"format": STATE_FORMAT, "kind": key.kind, "run_name": None}
    state.update(settings=dict(key.settings), inputs=dict(key.inputs))
    folder.mkdir(exist_ok=True)
    (folder / "run.json").write_text(json.dumps(state))


def _truncated_state(folder, arguments, pair):
    _write_state(folder, arguments, pair)
    (folder / "run.json").write_bytes((folder / "run.json").read_bytes()[:40])
    return ["unreadable"]


def _garbage_index(folder, arguments, pair):
    _write_state(folder, arguments, pair)
    (folder / "checkpoint").write_bytes(bytes(range(256)))
    return ["incomplete"]


def _index_naming_an_odd_save(folder, arguments, pair):
    _write_state(folder, arguments, pair)
    (folder / "checkpoint").write_text('model_checkpoint_path: "ckpt-final"\n')
    (folder / "ckpt-final.index").write_bytes(b"not an index")
    return ["--resume"]


def _garbage_save(folder, arguments, pair):
    _write_state(folder, arguments, pair)
    (folder / "checkpoint").write_text('model_checkpoint_path: "ckpt-2"\n')
    (folder / "ckpt-2.index").write_bytes(b"not an index")
    (folder / "ckpt-2.data-00000-of-00001").write_bytes(b"not data")
    return ["cannot be restored", "--resume"]


@pytest.mark.parametrize(
    "damage",
    [_truncated_state, _garbage_index, _index_naming_an_odd_save, _garbage_save],
    ids=lambda damage: damage.__name__.strip("_"),
)
def test_resume_from_a_damaged_checkpoint_is_one_line(
    damage, vgg16_weights, pair, tmp_path, monkeypatch, capsys
):
    """In-process through `cli.main`: a damaged `OUT.png.checkpoint/` is a one-line exit 2."""
    from tf_nst import cli

    monkeypatch.chdir(tmp_path)
    arguments = stylize_arguments(pair, vgg16_weights, "--steps", "3")
    fragments = damage(tmp_path / "out.png.checkpoint", arguments, pair)
    before = snapshot(tmp_path)
    status = cli.main([*arguments, "--resume"])
    stderr = capsys.readouterr().err

    assert_single_refusal(subprocess.CompletedProcess([], status, "", stderr), *fragments)
    assert snapshot(tmp_path) == before


def test_export_to_a_full_disk_is_one_line(vgg16_weights, tmp_path, monkeypatch, capsys):
    import tensorflow as tf

    import tf_nst.features.export
    from tf_nst import cli

    def disk_full(extractor, directory):
        raise tf.errors.ResourceExhaustedError(None, None, "model.pb; No space left on device")

    monkeypatch.setattr(tf_nst.features.export, "export_feature_extractor", disk_full)
    before = snapshot(tmp_path)
    status = cli.main(
        ["export", str(tmp_path / "model"), "--backbone", "vgg16", "--weights", str(vgg16_weights)]
    )
    stderr = capsys.readouterr().err

    assert status == 2, stderr
    assert "Traceback" not in stderr
    line = error_line(stderr)
    assert "No space left on device" in line and "model" in line, line
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_signal_mid_export_leaves_no_hidden_temporary_folder(
    signal_number, vgg16_weights, tmp_path
):
    (tmp_path / "mine.txt").write_text("mine")
    before = snapshot(tmp_path)
    process = start_cli(
        tmp_path, ["export", "model", "--backbone", "vgg16", "--weights", vgg16_weights]
    )

    def staging():
        return [path for path in tmp_path.iterdir() if path.name.startswith(".model")]

    wait_until(staging, process, "the hidden .model* staging folder")
    process.send_signal(signal_number)
    stderr = finish(process)

    assert "Traceback" not in stderr and "SystemError" not in stderr, stderr
    assert staging() == []
    assert_untouched(before, snapshot(tmp_path))
    name = signal.Signals(signal_number).name
    if process.returncode == 128 + signal_number:  # it finished the export first, and says so
        assert (tmp_path / "model" / "saved_model.pb").is_file()
        assert any(f"{name} received" in line for line in cli_lines(stderr)), stderr
    else:  # or it stopped, and left nothing
        assert process.returncode != 0, stderr
        assert not (tmp_path / "model").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) in (["mine.txt"], ["mine.txt", "model"])


# --- 7. Messages that mislead --------------------------------------------------------------------


@pytest.mark.slow  # two runs: 2-3 s
def test_resume_logs_under_the_given_logdir_not_the_recorded_one(tiny_extractor, pair, tmp_path):
    interrupt_tiny(tiny_extractor, pair, tmp_path, logdir=str(tmp_path / "first"))
    (first_run,) = (tmp_path / "first").iterdir()
    first = snapshot(tmp_path / "first")
    outcome, lines = run_tiny(
        tiny_extractor, pair, tmp_path, logdir=str(tmp_path / "second"), resume=True
    )

    assert outcome.status == 0, lines
    assert_image(tmp_path / "out.png", (32, 24))
    assert snapshot(tmp_path / "first") == first
    # The resumed run appends under the new --logdir, in a run directory of the same name.
    (second_run,) = (tmp_path / "second").iterdir()
    assert second_run.name == first_run.name
    assert list(second_run.glob("events.out.tfevents.*"))
    assert f"TensorBoard run {second_run}" in "\n".join(lines)


@pytest.mark.parametrize(
    "extra, fragment",
    [(["--style-layers", "block9_conv1"], "block9_conv1"), (["--size", "40000"], "--size 40000")],
    ids=["unknown-layer", "too-large-for-memory"],
)
def test_a_late_refusal_leaves_no_logdir_behind(
    extra, fragment, vgg16_weights, pair, tmp_path, monkeypatch, capsys
):
    """The layer and memory checks need TensorFlow, so they run late: in-process through
    `cli.main`, with a --logdir two levels deep that does not exist yet."""
    from tf_nst import cli

    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    status = cli.main(
        [*stylize_arguments(pair, vgg16_weights, "--steps", "3"), "--logdir", "new/logs", *extra]
    )
    stderr = capsys.readouterr().err

    assert_single_refusal(subprocess.CompletedProcess([], status, "", stderr), fragment)
    assert not (tmp_path / "new").exists()
    assert snapshot(tmp_path) == before


def test_checkpoint_error_messages_are_whole(tiny_extractor, pair, tmp_path):
    # A deep working directory makes the message long; it must still be complete.
    workdir = tmp_path / ("d" * 100) / ("e" * 100)
    workdir.mkdir(parents=True)
    blocker = workdir / "out.png.checkpoint"

    def block():
        blocker.write_text("mine")

    outcome, lines = run_tiny(tiny_extractor, pair, workdir, at_step={1: block}, checkpoint_every=1)

    assert outcome.status == 0, lines
    (warning,) = warnings_in(lines)
    assert f"cannot write a checkpoint in {blocker} (" in warning, warning
    assert "check the directory is writable and has space" in warning, warning
    assert warning.endswith("its result will be saved"), warning
    assert_image(workdir / "out.png", (32, 24))
    assert blocker.read_text() == "mine"
