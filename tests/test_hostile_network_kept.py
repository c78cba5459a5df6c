"""Issue 14, section 2 and part of 6: a trained network is never lost, and the advice around it
leads somewhere that works.

The trainings run in-process through `tf_nst.run.run_job`, as `tf-nst train` drives them, with
two stand-ins that keep them quick: `QuickTrainer` (a tiny transform network nudged at each step
and checkpointed for real, in place of the compiled training step) and `QuickArchive` (in place
of `keras.export.ExportArchive`, whose tracing makes even a tiny stylizer's export slow; it
writes its files through TensorFlow's file system as the real one does, so a full disk raises
TensorFlow's own errors, or fails as a test says). What is tested is everything
around them: `export_stylizer`, `TrainJob`, the checkpoints and the run loop. The CLI's checks run
through `cli.main` with TensorFlow's loading replaced by `ChecksPassed`, so that a refusal is
known to come before it, and a command that passes every check is known to.
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import pathlib
import shutil
import signal
import subprocess
import threading

import numpy as np
import pytest
from cli_checks import error_line, leftovers, smooth_picture, snapshot
from PIL import Image

from tf_nst.config import OutputOptions, TrainConfig
from tf_nst.errors import StyleTransferError

CONFIG = TrainConfig(
    size=16, batch_size=2, steps=3, width=4, validation=2, validation_every=1, seed=3,
    precision="fp32", distribute="none",
)  # fmt: skip
# The same settings on the command line.
CLI_SETTINGS = [
    "--size", "16", "--batch-size", "2", "--steps", "3", "--width", "4", "--validation", "2",
    "--validation-every", "1", "--seed", "3", "--precision", "fp32", "--distribute", "none",
]  # fmt: skip
DISK_FULL = "saved_model.pb; No space left on device"


# --- the stand-ins -------------------------------------------------------------------------------

_NETWORKS = {}


def network(width: int, precision: str):
    """A transform network, built once per width and precision (building one is slow): the
    stand-ins only need one whose weights can be checkpointed and copied."""
    from tf_nst.networks.transform import build_transform_network

    if (width, precision) not in _NETWORKS:
        _NETWORKS[width, precision] = build_transform_network(width, precision)
    return _NETWORKS[width, precision]


class QuickTrainer:
    """What `TrainJob` reads from a `NetworkTrainer`, without the costly compiled step.

    Each step nudges a tiny transform network; the validation loss is 1/step (none without
    validation photos). `actions[step]()` runs just before that step's result reaches the run
    loop, as a signal arriving during the step would.
    """

    def __init__(self, config: TrainConfig, actions=None):
        import tensorflow as tf

        self.config = config
        self.seed = config.seed
        self.precision = "fp32"
        self.global_batch_size = config.batch_size
        self.validation_photos = np.zeros((0, config.size, config.size, 3), np.float32)
        self.model = network(config.width, "fp32")
        self.actions = actions or {}
        self.step = 0
        self.best_loss = math.inf
        self.stop_reason = None
        self._step = tf.Variable(0, dtype=tf.int64)
        self._best_loss = tf.Variable(math.inf, dtype=tf.float64)

    def checkpoint(self):
        import tensorflow as tf

        return tf.train.Checkpoint(model=self.model, step=self._step, best_loss=self._best_loss)

    def restore(self, path: str) -> None:
        self.checkpoint().read(path).assert_existing_objects_matched().expect_partial()
        self.step = int(self._step.numpy())
        self.best_loss = float(self._best_loss.numpy())

    def steps(self):
        from tf_nst.networks.keep_best import TrainStepResult

        while self.step < self.config.steps:
            self.step += 1
            self._step.assign(self.step)
            kernel = self.model.trainable_weights[0]
            kernel.assign(kernel + 0.01)
            validation = 1.0 / self.step if self.config.validation else None
            if validation is not None and validation < self.best_loss:
                self.best_loss = validation
                self._best_loss.assign(validation)
            if self.step in self.actions:
                self.actions[self.step]()
            yield TrainStepResult(
                step=self.step, total_steps=self.config.steps, loss=1.0, terms={"tv": 1.0},
                validation_loss=validation, best_loss=self.best_loss, validation_images=None,
                images_per_second=10.0, learning_rate=1e-3, elapsed_seconds=0.1,
                progress=self.step / self.config.steps,
            )  # fmt: skip

    def best_model(self):
        return self.model


class QuickArchive:
    """`keras.export.ExportArchive` without the tracing.

    `write_out` runs the class's `before_write` (a failure, or signals), then writes a
    SavedModel-shaped folder of `payload` bytes through TensorFlow's file system.
    """

    before_write = None
    payload = 4096

    def track(self, resource) -> None:
        del resource

    def add_endpoint(self, *arguments, **options) -> None:
        del arguments, options

    def write_out(self, path: str, verbose: bool = True) -> None:
        import tensorflow as tf

        del verbose
        if type(self).before_write is not None:
            type(self).before_write()
        tf.io.gfile.makedirs(f"{path}/variables")
        with tf.io.gfile.GFile(f"{path}/saved_model.pb", "wb") as file:
            file.write(b"\0" * self.payload)


@pytest.fixture()
def archive(monkeypatch):
    """`QuickArchive` in place of Keras' ExportArchive, and `network` in place of the export's
    own builds; set the archive's `before_write` and `payload`."""
    import keras

    import tf_nst.networks.export

    quick = type("Archive", (QuickArchive,), {})
    monkeypatch.setattr(keras.export, "ExportArchive", quick)
    monkeypatch.setattr(tf_nst.networks.export, "build_transform_network", network)
    return quick


def disk_full() -> None:
    import tensorflow as tf

    raise tf.errors.ResourceExhaustedError(None, None, DISK_FULL)


def two_signals() -> None:
    """Ctrl-C twice: the run's handler stops the run at the second, wherever it is."""
    signal.raise_signal(signal.SIGINT)
    signal.raise_signal(signal.SIGINT)


def train(workdir: pathlib.Path, config=CONFIG, key=None, actions=None, output=None, **options):
    """Runs a quick training through `run_job` into `workdir/model`; returns (outcome, lines)."""
    from tf_nst import run
    from tf_nst.networks.job import TrainJob

    options = OutputOptions(
        output=str(output or workdir / "model"), logdir=str(workdir / "logs"), **options
    )
    key = key or run.ResumeKey("train", {"steps": config.steps}, {"photos": "quick"})
    stream = io.StringIO()
    style = np.full((16, 16, 3), 0.5, np.float32)
    outcome = run.run_job(
        lambda: TrainJob(QuickTrainer(config, actions), [style]), options, key,
        console=run.Console(stream=stream),
    )  # fmt: skip
    return outcome, stream.getvalue().splitlines()


def warnings_in(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("tf-nst: warning: ")]


def latest_step(checkpoint_directory: pathlib.Path) -> int | None:
    from tf_nst.run.outputs import latest_checkpoint

    latest = latest_checkpoint(checkpoint_directory)
    return None if latest is None else int(latest.rsplit("-", 1)[-1])


def trained_steps(model: pathlib.Path) -> int:
    return json.loads((model / "tf_nst_stylizer.json").read_text())["training"]["steps"]


# --- the CLI's checks --------------------------------------------------------------------------


class ChecksPassed(BaseException):
    """Raised where `tf-nst` would load TensorFlow: every check before it has passed."""


@pytest.fixture()
def checks_only(monkeypatch):
    from tf_nst.cli import commands

    def loading_tensorflow(verbose: bool) -> None:
        raise ChecksPassed

    monkeypatch.setattr(commands, "import_tensorflow", loading_tensorflow)


def cli(arguments: list[str], capsys) -> tuple[int | str, str]:
    """`cli.main(arguments)`: its exit status, or "checks passed"; and its stderr."""
    from tf_nst import cli as command_line

    try:
        status = command_line.main([str(argument) for argument in arguments])
    except ChecksPassed:
        status = "checks passed"
    return status, capsys.readouterr().err


@pytest.fixture()
def inputs(tmp_path) -> pathlib.Path:
    """`tmp_path` with a style image and a folder of four photos."""
    (tmp_path / "photos").mkdir()
    for index in range(4):
        Image.fromarray(smooth_picture(20, 24, seed=index)).save(tmp_path / f"photos/{index}.png")
    Image.fromarray(smooth_picture(24, 24, seed=9)).save(tmp_path / "style.png")
    return tmp_path


def train_arguments(workdir: pathlib.Path, *extra) -> list[str]:
    return [
        "train", workdir / "style.png", "--photos", workdir / "photos", "-o", workdir / "model",
        "--logdir", workdir / "logs", *CLI_SETTINGS, *extra,
    ]  # fmt: skip


def cli_config_and_key(arguments: list[str]):
    """The TrainConfig and resume key that `tf-nst train ARGUMENTS` computes."""
    from tf_nst.cli import build_parser
    from tf_nst.cli.options import from_arguments
    from tf_nst.networks.data import find_photos
    from tf_nst.networks.job import train_resume_key

    parsed = build_parser().parse_args([str(argument) for argument in arguments])
    config = from_arguments(TrainConfig, parsed)
    return config, train_resume_key(config, find_photos(parsed.photos), parsed.styles)


# --- 2. a trained network is never lost ---------------------------------------------------------


def test_a_full_disk_at_export_keeps_a_checkpoint_and_resume_writes_the_network(archive, tmp_path):
    """Old behaviour: `unexpected ResourceExhaustedError ... (a bug)`, exit 1, no checkpoint."""
    archive.before_write = disk_full
    outcome, lines = train(tmp_path)

    assert outcome.status == 1, lines
    (warning,) = warnings_in(lines)
    assert "No space left on device" in warning and str(tmp_path / "model") in warning, warning
    assert f"a checkpoint is kept in {tmp_path / 'model.checkpoint'}" in outcome.message
    assert "run the same command plus --resume" in outcome.message, outcome.message
    assert not (tmp_path / "model").exists()
    assert leftovers(tmp_path) == []
    assert latest_step(tmp_path / "model.checkpoint") == CONFIG.steps

    archive.before_write = None  # space was freed
    outcome, lines = train(tmp_path, resume=True)

    assert outcome.status == 0, lines
    assert trained_steps(tmp_path / "model") == CONFIG.steps
    assert not (tmp_path / "model.checkpoint").exists()
    assert leftovers(tmp_path) == []


def test_when_no_checkpoint_fits_either_the_older_one_is_kept_and_named(
    archive, tmp_path, monkeypatch
):
    """`--checkpoint-every 2`, 3 steps: the export and the last checkpoint fail on the full
    disk. The checkpoint of step 2 survives, and the last line says so (and that --resume goes
    on from there) instead of "no checkpoint could be kept"."""
    import tensorflow as tf

    save = tf.train.CheckpointManager.save
    full = {"disk": True}

    def save_unless_full(self, checkpoint_number=None, **options):
        if full["disk"] and checkpoint_number == 3:
            disk_full()
        return save(self, checkpoint_number=checkpoint_number, **options)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", save_unless_full)
    archive.before_write = disk_full
    outcome, lines = train(tmp_path, checkpoint_every=2)

    assert outcome.status == 1, lines
    checkpoint = tmp_path / "model.checkpoint"
    assert f"the checkpoint of step 2 is kept in {checkpoint}" in outcome.message
    assert "--resume" in outcome.message and "no checkpoint" not in outcome.message
    assert len(warnings_in(lines)) == 2, lines  # the export's failure, then the checkpoint's
    assert latest_step(checkpoint) == 2
    assert leftovers(tmp_path) == []

    full["disk"] = False
    archive.before_write = None
    outcome, lines = train(tmp_path, checkpoint_every=2, resume=True)

    assert outcome.status == 0, lines
    assert trained_steps(tmp_path / "model") == CONFIG.steps
    assert not checkpoint.exists()


def test_a_second_signal_during_the_final_export_leaves_a_checkpoint_to_resume(archive, tmp_path):
    """Old behaviour: no model, no checkpoint, and "files already written are complete"."""
    archive.before_write = two_signals
    outcome, lines = train(tmp_path)

    assert outcome.status == 130, lines
    assert outcome.message.startswith("tf-nst: stopped at once by a second signal"), lines
    assert f"a checkpoint is kept in {tmp_path / 'model.checkpoint'}" in outcome.message
    assert "continue with the same command plus --resume" in outcome.message
    assert not (tmp_path / "model").exists()
    assert leftovers(tmp_path) == []
    assert latest_step(tmp_path / "model.checkpoint") == CONFIG.steps

    archive.before_write = None
    outcome, lines = train(tmp_path, resume=True)

    assert outcome.status == 0, lines
    assert trained_steps(tmp_path / "model") == CONFIG.steps
    assert not (tmp_path / "model.checkpoint").exists()


@pytest.mark.parametrize(
    "checkpoint_every, kept",
    [(1, "the checkpoint of step 1 is kept in"), (0, "no result and no checkpoint were saved")],
    ids=["older-checkpoint", "nothing"],
)
def test_a_second_signal_mid_training_says_what_it_left(checkpoint_every, kept, archive, tmp_path):
    """Old behaviour: "files already written are complete", whatever there was."""
    outcome, lines = train(tmp_path, actions={2: two_signals}, checkpoint_every=checkpoint_every)

    assert outcome.status == 130, lines
    assert kept in outcome.message, outcome.message
    assert ("--resume" in outcome.message) == bool(checkpoint_every)
    assert not (tmp_path / "model").exists()
    assert latest_step(tmp_path / "model.checkpoint") == (1 if checkpoint_every else None)


def test_a_resume_never_replaces_a_network_that_another_run_finished(archive, tmp_path):
    """Two trainings into the same MODEL_DIR: the loser's checkpoint is kept, and its resume
    must not replace the winner's network. Old behaviour: it silently did."""
    winner, lines = train(tmp_path)
    assert winner.status == 0, lines
    finished = snapshot(tmp_path / "model")

    loser, lines = train(tmp_path)  # it passed its checks before the winner's model existed
    assert loser.status == 1, lines
    assert "--resume" in loser.message

    resumed, lines = train(tmp_path, resume=True)

    assert resumed.status == 1, lines
    (warning,) = warnings_in(lines)
    assert "a network that this run did not write" in warning, warning
    assert "move it away" in warning, warning
    assert snapshot(tmp_path / "model") == finished
    assert latest_step(tmp_path / "model.checkpoint") == CONFIG.steps
    assert leftovers(tmp_path) == []


def test_a_resume_into_another_runs_network_is_refused_up_front(
    archive, inputs, checks_only, capsys
):
    """The same race through `tf-nst train --resume`: refused before TensorFlow loads, in one
    line that says what to do, and nothing is touched. Old behaviour: the checks passed."""
    arguments = train_arguments(inputs)
    config, key = cli_config_and_key(arguments)
    assert train(inputs, config, key)[0].status == 0  # the winner
    assert train(inputs, config, key)[0].status == 1  # the loser, with its checkpoint
    before = snapshot(inputs)

    status, stderr = cli([*arguments, "--resume"], capsys)

    assert status == 2, stderr
    line = error_line(stderr)
    assert f"MODEL_DIR {inputs / 'model'} holds a network that this run did not write" in line
    assert "move it away" in line and "another MODEL_DIR" in line, line
    assert snapshot(inputs) == before


def test_after_an_interrupt_every_piece_of_advice_leads_somewhere_that_works(
    archive, inputs, checks_only, capsys
):
    """Old behaviour: without --resume, "MODEL_DIR already exists: choose a new MODEL_DIR"; a
    refused resume said "run without --resume to start over", which led back there."""
    arguments = train_arguments(inputs)
    config, key = cli_config_and_key(arguments)
    interrupted, lines = train(
        inputs, config, key, actions={2: lambda: signal.raise_signal(signal.SIGTERM)}
    )
    assert interrupted.status == 143, lines
    model, checkpoint = inputs / "model", inputs / "model.checkpoint"
    assert (model / "saved_model.pb").is_file() and latest_step(checkpoint) == 2

    # The same command again: told to add --resume, which then passes every check (the network
    # in MODEL_DIR is this run's own, so the resume may replace it).
    status, stderr = cli(arguments, capsys)
    assert status == 2, stderr
    line = error_line(stderr)
    assert f"{checkpoint} holds the checkpoint of an interrupted run: add --resume" in line
    assert f"to start over, delete {checkpoint} and move {model} away" in line, line
    assert cli([*arguments, "--resume"], capsys)[0] == "checks passed"

    # A resume with another setting: told how to start over, and each way works.
    status, stderr = cli([*arguments, "--resume", "--steps", "5"], capsys)
    assert status == 2, stderr
    line = error_line(stderr)
    assert "--steps (was 3, now 5)" in line, line
    advice = (
        f"to start over, delete {checkpoint} and move {model} away or choose another "
        "-o/--output, and run without --resume"
    )
    assert line.endswith(advice), line
    another = [*arguments, "--steps", "5", "-o", inputs / "another"]
    assert cli(another, capsys)[0] == "checks passed"
    shutil.rmtree(checkpoint)
    model.rename(inputs / "moved")
    assert cli([*arguments, "--steps", "5"], capsys)[0] == "checks passed"


def test_a_real_full_disk_keeps_the_network_resumable(archive, tmp_path):
    """End to end on a real small file system (a tmpfs, which needs root to mount): TensorFlow's
    own write fails for lack of space, the checkpoint still fits, and once space is freed,
    `--resume` writes the network."""
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=640k", "tmpfs", str(small)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        archive.payload = 2 << 20  # more than the file system holds
        outcome, lines = train(tmp_path, output=small / "model")

        assert outcome.status == 1, lines
        (warning,) = warnings_in(lines)
        assert f"cannot write the stylizer to {small / 'model'}" in warning, warning
        assert "kept in" in outcome.message and "--resume" in outcome.message, outcome.message
        assert latest_step(small / "model.checkpoint") == CONFIG.steps
        assert not (small / "model").exists()
        assert leftovers(small) == []

        remounted = subprocess.run(
            ["mount", "-o", "remount,size=8m", str(small)], capture_output=True, check=False
        )
        assert remounted.returncode == 0, remounted.stderr
        outcome, lines = train(tmp_path, output=small / "model", resume=True)

        assert outcome.status == 0, lines
        assert trained_steps(small / "model") == CONFIG.steps
        assert not (small / "model.checkpoint").exists()
    finally:
        subprocess.run(["umount", str(small)], capture_output=True, check=False)


@pytest.mark.parametrize(
    "failure",
    [disk_full, lambda: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device"))],
    ids=["ResourceExhaustedError", "OSError"],
)
def test_export_stylizer_turns_a_write_failure_into_one_line(failure, archive, tmp_path):
    from tf_nst.networks.export import export_stylizer

    archive.before_write = failure
    with pytest.raises(StyleTransferError) as raised:
        export_stylizer(network(4, "fp32"), tmp_path / "model", {"steps": 1})

    message = str(raised.value)
    assert "No space left on device" in message and str(tmp_path / "model") in message, message
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == []


# --- 6. messages that mislead ---------------------------------------------------------------------


def test_a_finished_training_without_validation_says_so_instead_of_best_loss_inf(archive, tmp_path):
    outcome, lines = train(tmp_path, config=CONFIG.replace(validation=0))

    assert outcome.status == 0, lines
    assert "inf" not in outcome.message, outcome.message
    assert "no validation loss" in outcome.message, outcome.message


def test_resume_notices_a_photo_replaced_by_other_content_of_the_same_size(inputs):
    """The README promises inputs compared by SHA-256. Old behaviour: names and sizes only."""
    from tf_nst.networks.job import photos_digest

    photos = sorted(str(path) for path in (inputs / "photos").iterdir())
    before = photos_digest(photos)
    changed = pathlib.Path(photos[1])
    data = bytearray(changed.read_bytes())
    data[len(data) // 2] ^= 0xFF
    changed.write_bytes(bytes(data))

    assert photos_digest(photos) != before
    # A FIFO among the photos (which decoding skips) must not block the digest.
    os.mkfifo(inputs / "photos" / "pipe.png")
    digests = []
    digest = threading.Thread(
        target=lambda: digests.append(photos_digest([*photos, str(inputs / "photos/pipe.png")])),
        daemon=True,
    )
    digest.start()
    digest.join(20)
    assert not digest.is_alive(), "the digest blocked on a FIFO"
    assert len(digests) == 1


@pytest.mark.parametrize("below", ["notes.txt/model", "notes.txt/sub/model"])
@pytest.mark.parametrize("command", ["train", "export"])
def test_a_model_dir_under_a_file_says_the_file_is_in_the_way(
    command, below, inputs, checks_only, capsys
):
    """Old behaviour: "the directory .../notes.txt is a file: create it first" (or, one level
    deeper, "... does not exist: create it first", which mkdir cannot do)."""
    (inputs / "notes.txt").write_text("mine")
    target = inputs / below
    arguments = (
        [*train_arguments(inputs), "-o", target] if command == "train" else ["export", target]
    )
    name = "MODEL_DIR" if command == "train" else "OUT_DIR"

    status, stderr = cli(arguments, capsys)

    assert status == 2, stderr
    line = error_line(stderr)
    assert f"{inputs / 'notes.txt'} is a file, not a directory; choose another {name}" in line
    assert "create it first" not in line, line
    assert (inputs / "notes.txt").read_text() == "mine"


def test_a_feature_extractor_export_is_named_as_such_not_said_to_lack_its_files(tmp_path):
    from tf_nst.features.export import export_feature_extractor
    from tf_nst.features.extractor import build_feature_extractor
    from tf_nst.networks.stylizer import load_stylizer

    extractor = build_feature_extractor(["block1_conv1"], "vgg16", None, width_scale=1 / 16)
    export_feature_extractor(extractor, tmp_path / "features")

    with pytest.raises(StyleTransferError) as raised:
        load_stylizer(tmp_path / "features")

    message = str(raised.value)
    assert "is a feature-extractor export (tf-nst export), not a style network" in message
    assert "no saved_model.pb" not in message and "tf-nst train -o MODEL_DIR" in message, message
