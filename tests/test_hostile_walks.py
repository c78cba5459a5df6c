"""Hostile photo folders and pipelines (issue 14): nothing hangs, a signal always ends the run.

Folder walks with symbolic-link loops, second links, hard links and dangling links; a training
pipeline whose photos are emptied under it; signals while the main thread waits inside
TensorFlow, during the photo scan and during the CLI's checks; photos decoded at the size the run
needs; train's checks before TensorFlow loads. In-process where the behaviour is the library's
(the signals are real ones, sent to this process by a timer thread while the main thread is busy
elsewhere), with the real CLI where it is the process's.
"""

from __future__ import annotations

import contextlib
import faulthandler
import io
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
import tracemalloc

import keras
import numpy as np
import pytest
from cli_checks import cli_lines, error_line, leftovers, smooth_picture
from conftest import slow_setup
from PIL import Image

from tf_nst.errors import StyleTransferError
from tf_nst.image import decoding, folders
from tf_nst.networks import photos
from tf_nst.run.console import SignalHandler, call_on_signal

SIGNAL_BOUND = 20  # seconds: "honoured within seconds", generous for a loaded 2-core machine


def make_photos(folder: pathlib.Path, count: int, size=(44, 36), start: int = 0) -> list:
    """`count` small smooth photos `photo_NN.png` in `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(start, start + count):
        path = folder / f"photo_{index:02d}.png"
        Image.fromarray(smooth_picture(size[1], size[0], seed=index)).save(path)
        paths.append(path)
    return paths


def send_later(number: int, seconds: float) -> threading.Timer:
    """Sends signal `number` to this process from a timer thread after `seconds`."""
    timer = threading.Timer(seconds, os.kill, (os.getpid(), number))
    timer.start()
    return timer


def finishes_within(function, seconds: float):
    """Runs `function` in a daemon thread: (finished in time, its result or None)."""
    result = []
    thread = threading.Thread(target=lambda: result.append(function()), daemon=True)
    thread.start()
    thread.join(seconds)
    return (not thread.is_alive()), (result[0] if result else None)


# --- 1. folder walks: loops, second links, hard links, dangling links --------------------------


def test_a_folder_with_two_links_to_itself_is_walked_once_and_the_repeats_are_counted(tmp_path):
    made = make_photos(tmp_path, 3)
    (tmp_path / "a").symlink_to(".")
    (tmp_path / "b").symlink_to(".")

    # Before: os.walk(followlinks=True) went round a/b/a/b/... for ever, memory growing.
    finished, walk = finishes_within(lambda: folders.walk_images(tmp_path), 20)

    assert finished, "the walk of a folder holding two links to itself did not end"
    assert walk.files == tuple(made)
    assert walk.repeats == 2
    assert folders.find_images(tmp_path) == made


def test_a_photo_reached_through_a_self_link_counts_once_and_never_validates_on_training(
    tmp_path,
):
    make_photos(tmp_path, 12)
    (tmp_path / "again").symlink_to(".")

    photo_set = photos.scan_photos(tmp_path, validation=2, batch_size=4)

    # Before: "490 training and 2 validation", the 2 also among the training photos.
    assert len(photo_set.training) == 10 and len(photo_set.validation) == 2
    real = {os.path.realpath(path) for path in photo_set.training}
    assert len(real) == 10
    assert not real & {os.path.realpath(path) for path in photo_set.validation}
    assert photo_set.repeats == 1
    assert all("again" not in path for path in photo_set.training + photo_set.validation)
    (warning,) = photos.skipped_warnings(photo_set)
    assert warning.startswith("left out 1 folder(s) or file(s) reached a second time")


def test_second_links_and_hard_links_are_one_photo_under_its_real_path(tmp_path):
    real = tmp_path / "real"
    made = make_photos(real, 2)
    (tmp_path / "alias").symlink_to("real")  # sorts before "real": must not win
    (tmp_path / "link.png").symlink_to(made[0])
    os.link(made[1], tmp_path / "hard.png")

    walk = folders.walk_images(tmp_path)

    assert walk.files == (tmp_path / "hard.png", made[0])  # "hard.png" < "real/..." by path
    assert walk.repeats == 3  # the folder link, the file link, the hard link
    assert photos.find_photos([made[0], tmp_path / "link.png", real]) == [str(p) for p in made]


def test_a_dangling_link_is_skipped_and_counted_like_an_unreadable_photo(tmp_path):
    from tf_nst.config import TrainConfig
    from tf_nst.networks.job import train_resume_key

    folder = tmp_path / "photos"
    make_photos(folder, 6)
    (folder / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    style = make_photos(tmp_path / "style", 1)[0]

    found = photos.find_photos(folder)
    # Before: the CLI's resume key stat-ed every found photo: FileNotFoundError, "a bug".
    train_resume_key(TrainConfig(), found, [style])
    photo_set = photos.scan_photos(folder, validation=0, batch_size=2)

    assert len(found) == 6 and len(photo_set.training) == 6
    ((path, reason),) = photo_set.skipped
    assert path == str(folder / "gone.jpg")
    assert "symbolic link" in reason and "does not exist" in reason and "\n" not in reason
    (warning,) = photos.skipped_warnings(photo_set)
    assert warning.startswith("skipped 1 unusable photo(s), e.g. ")


def test_an_apply_folder_of_ppm_files_holds_images(tmp_path):
    from tf_nst.networks.apply import list_inputs

    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(2):
        Image.fromarray(smooth_picture(20, 24, seed=index)).save(folder / f"frame{index}.ppm")

    listed = list_inputs([folder])

    assert [source.name for source, _ in listed] == ["frame0.ppm", "frame1.ppm"]


# --- 2. photos decoded at the size the run needs ------------------------------------------------


def test_a_twenty_thousand_by_one_photo_is_skipped_and_counted_not_fatal(tmp_path):
    make_photos(tmp_path, 4)
    Image.new("RGB", (20000, 1), (200, 10, 10)).save(tmp_path / "strip.png")

    photo_set = photos.scan_photos(tmp_path, 2, 2, size=64, minimum_side=16)

    assert len(photo_set.training) + len(photo_set.validation) == 4
    ((path, reason),) = photo_set.skipped
    assert path.endswith("strip.png")
    assert "20000x1 px" in reason and "16 px" in reason


def test_validation_of_a_long_thin_photo_stays_small(tmp_path):
    path = tmp_path / "long.png"
    Image.new("RGB", (20000, 16), (10, 200, 10)).save(path)

    tracemalloc.start()
    try:
        (crop,) = photos.validation_images([str(path)], 64)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    # Before: the whole strip was scaled to 80000x64 first: several arrays of 61 MB.
    assert peak < 40 * 2**20, peak
    assert crop.shape == (64, 64, 3)
    np.testing.assert_allclose(
        crop, np.broadcast_to([10 / 255, 200 / 255, 10 / 255], crop.shape), atol=1e-3
    )


def test_validation_crops_equal_those_of_the_whole_photo_scaled(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(smooth_picture(300, 400, seed=3)).save(path)

    (crop,) = photos.validation_images([str(path)], 48)

    # What validation did before: the whole photo, short side scaled to 48, centre square.
    whole = decoding.resize(decoding.load_image(path), 48, 64)[:, 8:56]
    assert np.abs(crop - whole).mean() < 0.01


def test_training_photos_are_decoded_reduced_and_crop_alike(tmp_path):
    from tf_nst.networks.data import random_crop

    path = tmp_path / "big.png"
    y, x = np.mgrid[0:600, 0:800] / 800
    waves = [np.sin(2 * np.pi * (x + y / 2) + phase) for phase in (0, 1, 2)]
    Image.fromarray(((0.5 + 0.4 * np.stack(waves, axis=-1)) * 255).astype(np.uint8)).save(path)

    reduced = photos.load_photo(path, size=32)
    full = decoding.load_image(path)

    # The smallest crop (half the short side) still has 32 px: 64 px on the short side.
    assert reduced.shape == (64, 86, 3)
    # The same crops, up to where the reduced photo's pixel edges fall (half an output pixel).
    for seed in range(5):
        seeds = np.array([seed, 1], np.int64)
        small = random_crop(reduced, 32, seeds).numpy()
        large = random_crop(full, 32, seeds).numpy()
        assert np.abs(small - large).mean() < 0.02


# --- 3. the training pipeline never spins for ever ---------------------------------------------


@pytest.fixture()
def pipeline_photos(tmp_path):
    return [str(path) for path in make_photos(tmp_path / "photos", 4)]


def test_a_pipeline_whose_photos_are_all_emptied_ends_with_the_reason(pipeline_photos):
    import tensorflow as tf

    from tf_nst.networks import data

    loader = photos.PhotoLoader(len(pipeline_photos), 16)
    iterator = iter(data.training_dataset(pipeline_photos, 16, 2, seed=0, loader=loader))
    next(iterator)
    for path in pipeline_photos:
        open(path, "wb").close()

    def drain():
        with contextlib.suppress(tf.errors.OpError):
            for _ in range(10**6):
                next(iterator)
        return loader.failure

    finished, failure = finishes_within(drain, 60)
    iterator = None  # the pipeline's threads go now, not at interpreter exit

    # Before: the filter dropped every photo and `next` never returned, at full CPU.
    assert finished, "the pipeline kept spinning with every photo emptied"
    assert failure.startswith("none of the 4 training photos can be loaded any more")
    assert "is empty (0 bytes)" in failure


def test_a_pipeline_goes_on_while_some_photos_still_load(pipeline_photos):
    from tf_nst.networks import data

    for path in pipeline_photos[:3]:
        open(path, "wb").close()
    loader = photos.PhotoLoader(len(pipeline_photos), 16)

    batches = list(
        data.training_dataset(pipeline_photos, 16, 2, seed=0, loader=loader)
        .take(6)
        .as_numpy_iterator()
    )

    assert len(batches) == 6 and loader.failure is None


class NeverGivesUp(photos.PhotoLoader):
    """A loader that keeps a pipeline of failing photos spinning, as before the give-up bound.

    It gives up `SPIN_LIMIT` seconds after its first failure all the same, so that a broken
    signal path fails the test instead of hanging it.
    """

    SPIN_LIMIT = 90.0

    def __init__(self, count, size, minimum_side=1):
        super().__init__(10**12, size, minimum_side)
        self.first_failure = None

    def __call__(self, path, position):
        pixels = super().__call__(path, position)
        if pixels.size == 0:
            self.first_failure = self.first_failure or time.monotonic()
            if time.monotonic() - self.first_failure > self.SPIN_LIMIT:
                self.failure = "spun for too long: the signal did not stop the pipeline"
        return pixels


def test_a_signal_reaches_a_main_thread_waiting_in_a_spinning_pipeline(pipeline_photos):
    import tensorflow as tf

    from tf_nst.networks import data

    for path in pipeline_photos:
        open(path, "wb").close()
    loader = NeverGivesUp(len(pipeline_photos), 16)
    iterator = iter(data.training_dataset(pipeline_photos, 16, 2, seed=0, loader=loader))

    with SignalHandler() as interrupts, call_on_signal(loader.stop):
        timer = send_later(signal.SIGTERM, 1.0)
        started = time.monotonic()
        with pytest.raises(tf.errors.OpError):
            next(iterator)  # the main thread waits inside TensorFlow
        waited = time.monotonic() - started
    timer.join()
    del iterator

    assert waited < SIGNAL_BOUND, waited
    assert loader.stopped and loader.failure is None
    assert interrupts.signal_name == "SIGTERM"


def test_call_on_signal_restores_the_previous_wakeup_descriptor():
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    previous = signal.set_wakeup_fd(write_end)
    calls = []
    try:
        with SignalHandler(), call_on_signal(lambda: calls.append(1)):
            os.kill(os.getpid(), signal.SIGHUP)
            deadline = time.monotonic() + SIGNAL_BOUND
            while not calls and time.monotonic() < deadline:
                time.sleep(0.01)
        assert signal.set_wakeup_fd(previous) == write_end
        assert calls
        assert os.read(read_end, 16) == bytes([signal.SIGHUP])  # forwarded to the old one
    finally:
        os.close(read_end)
        os.close(write_end)


# --- 4. a run: stops with its best network and a checkpoint; a signal always ends it ------------


TRAIN_SETTINGS = dict(
    size=16, batch_size=2, steps=100000, learning_rate=1e-2, width=4, validation=2,
    validation_every=1, seed=3, precision="fp32", distribute="none",
)  # fmt: skip


@pytest.fixture(scope="module")
@slow_setup  # builds a trainer: ~10 s on 2 cores
def trainer(tmp_path_factory):
    """A tiny trainer on 6 photos (4 training), with the photos' bytes to restore them."""
    from tf_nst.config import TrainConfig
    from tf_nst.features.extractor import build_feature_extractor
    from tf_nst.networks.training import NetworkTrainer

    config = TrainConfig(
        size=16, batch_size=2, steps=100000, width=4, validation=2, validation_every=2, seed=3,
        precision="fp32", distribute="none",
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("train_photos")
    paths = make_photos(folder, 6)
    keras.utils.set_random_seed(0)
    extractor = build_feature_extractor(
        config.content_layers + config.style_layers, "vgg19", None, width_scale=1 / 16
    )
    style = smooth_picture(32, 32, seed=50).astype(np.float32) / 255
    built = NetworkTrainer(folder, [style], config, extractor=extractor)
    built.originals = {path: path.read_bytes() for path in paths}
    yield built
    for path, content in built.originals.items():
        path.write_bytes(content)


@contextlib.contextmanager
def photos_emptied(trainer):
    """Empties every photo of `trainer` (the bytes come back afterwards)."""
    for path in trainer.originals:
        open(path, "wb").close()
    try:
        yield
    finally:
        for path, content in trainer.originals.items():
            path.write_bytes(content)


def test_emptied_photos_end_the_steps_with_the_reason(trainer):
    steps = trainer.steps()
    next(steps)
    reached = trainer.step

    # Before: the step stopped advancing for ever, at full CPU; only kill -9 ended it. Should
    # that come back, this ends the test run with a traceback rather than hanging it.
    faulthandler.dump_traceback_later(300, exit=True)
    try:
        with photos_emptied(trainer), pytest.raises(StyleTransferError) as raised:
            for _ in steps:
                pass
    finally:
        faulthandler.cancel_dump_traceback_later()

    assert trainer.step >= reached  # the batches already prefetched were trained on
    message = str(raised.value)
    assert f"training stopped after step {trainer.step}: " in message
    assert "none of the 4 training photos can be loaded any more" in message
    assert "is empty (0 bytes)" in message and "restore them" in message


def test_sigterm_ends_the_steps_while_the_pipeline_spins(trainer, monkeypatch):
    from tf_nst.networks import data

    monkeypatch.setattr(data, "PhotoLoader", NeverGivesUp)
    with SignalHandler() as interrupts:
        steps = trainer.steps()
        next(steps)
        with photos_emptied(trainer):
            timer = send_later(signal.SIGTERM, 2.0)  # by then the run waits for a batch
            started = time.monotonic()
            rest = list(steps)  # ends when the signal stops the pipeline
            waited = time.monotonic() - started
            timer.join()

    # Before: SIGINT, a second SIGINT and SIGTERM were all ignored.
    assert waited < SIGNAL_BOUND, waited
    assert interrupts.signal_name == "SIGTERM"
    assert trainer.stop_reason is None  # a signal is the caller's business, not a divergence
    assert all(result.step <= trainer.step for result in rest)


def test_an_error_that_stops_the_steps_keeps_the_best_result_and_a_checkpoint(
    tiny_extractor, random_images, tmp_path
):
    from tf_nst import run
    from tf_nst.config import OutputOptions, StyleConfig
    from tf_nst.optimize.job import OptimizationJob

    content, style = random_images
    config = StyleConfig(size=32, steps=50, optimizer="adam", scales=1, seed=1)
    job = OptimizationJob(content, [style], config, extractor=tiny_extractor)
    original = job.steps

    def steps():
        for result in original():
            yield result
            if result.step == 3:
                raise StyleTransferError("the photos went away: restore them")

    job.steps = steps
    output = tmp_path / "out.png"
    options = OutputOptions(output=str(output), logdir=str(tmp_path / "logs"))
    stream = io.StringIO()

    with pytest.raises(StyleTransferError, match="the photos went away"):
        run.run_job(job, options, console=run.Console(stream=stream))

    # Before: the best result was saved but the checkpoint removed: nothing to resume from.
    checkpoint = tmp_path / "out.png.checkpoint"
    (line,) = [line for line in stream.getvalue().splitlines() if "an error stopped" in line]
    assert line == (
        f"tf-nst: an error stopped the run after 3 steps; its best result so far was saved to "
        f"{output} and a checkpoint to {checkpoint}: fix the error below, then continue with "
        "the same command plus --resume"
    )
    assert output.is_file()
    assert (checkpoint / "ckpt-3.index").is_file() and (checkpoint / "run.json").is_file()
    assert leftovers(tmp_path) == []


# --- 5. a signal during the photo scan or the CLI's checks stops at once -----------------------


def test_sigterm_during_the_photo_scan_stops_at_once(tmp_path, monkeypatch):
    from tf_nst import run
    from tf_nst.config import OutputOptions
    from tf_nst.run.outputs import ResumeKey

    make_photos(tmp_path / "photos", 40, size=(8, 8))
    original = photos.load_photo

    def slow_load(*arguments, **keywords):
        time.sleep(0.5)  # 40 photos on 2 threads: a 10 s scan
        return original(*arguments, **keywords)

    monkeypatch.setattr(photos, "load_photo", slow_load)

    def build():
        photos.scan_photos(tmp_path / "photos", 0, 2, workers=2)
        raise AssertionError("the scan was not stopped")

    options = OutputOptions(output=str(tmp_path / "model"), logdir=str(tmp_path / "logs"))
    stream = io.StringIO()
    timer = send_later(signal.SIGTERM, 1.0)
    started = time.monotonic()
    outcome = run.run_job(
        build, options, ResumeKey("train", {}, {}), console=run.Console(stream=stream)
    )
    elapsed = time.monotonic() - started
    timer.join()

    # Before: the first signal only set a flag, read once the whole scan was done.
    assert elapsed < 5, elapsed
    assert outcome.status == 143
    assert outcome.message == "tf-nst: SIGTERM received before the first step; nothing was saved"
    assert not (tmp_path / "logs").exists() and not (tmp_path / "model").exists()


def test_sigterm_during_the_cli_walk_stops_at_once_with_its_status(tmp_path, monkeypatch, capsys):
    from tf_nst.cli import commands
    from tf_nst.cli.parser import build_parser

    make_photos(tmp_path / "photos", 2)
    style = make_photos(tmp_path / "style", 1)[0]

    def endless_walk(folder):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
        return []

    monkeypatch.setattr(photos, "find_photos", endless_walk)
    arguments = build_parser().parse_args(
        ["train", str(style), "--photos", str(tmp_path / "photos"), "-o", str(tmp_path / "m")]
    )
    # Today's handler of this process is kept, so that a walk deaf to the signal fails the
    # test rather than ending pytest.
    previous = signal.signal(signal.SIGTERM, lambda number, frame: None)
    try:
        started = time.monotonic()
        status = commands.run_train(arguments)
        elapsed = time.monotonic() - started
    finally:
        signal.signal(signal.SIGTERM, previous)

    assert elapsed < 10, elapsed
    assert status == 143
    assert capsys.readouterr().err == (
        "tf-nst: SIGTERM received before the run started; nothing was saved\n"
    )
    assert not (tmp_path / "m").exists()


# --- 6. train checks its paths before TensorFlow loads -----------------------------------------


@pytest.mark.light_subprocess
def test_train_with_a_missing_photos_folder_prints_one_line_and_no_tensorflow_log(tmp_path):
    script = (
        "import sys\n"
        "from tf_nst.cli.parser import main\n"
        "status = main(['train', 'style.png', '--photos', '/nonexistent', '-o', 'm'])\n"
        "assert 'tensorflow' not in sys.modules, 'train imported TensorFlow before its checks'\n"
        "sys.exit(status)\n"
    )
    environment = {
        name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"
    }
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
        timeout=60, env=environment,
    )  # fmt: skip

    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        "tf-nst: error: --photos /nonexistent does not exist: pass a folder of photos\n"
    )


# --- 7. the real CLI: emptied photos during training --------------------------------------------


@pytest.mark.slow
@pytest.mark.real_weights
def test_cli_train_with_its_photos_emptied_stops_keeps_its_network_and_a_checkpoint(
    vgg16_weights, tmp_path
):
    folder = tmp_path / "photos"
    paths = make_photos(folder, 6, size=(48, 40))
    style = make_photos(tmp_path / "style", 1, size=(48, 48), start=90)[0]
    arguments = [
        "train", str(style), "--photos", str(folder), "-o", "model", "--steps", "100000",
        "--size", "32", "--width", "4", "--batch-size", "2", "--validation", "2",
        "--validation-every", "2", "--seed", "5", "--checkpoint-every", "2", "--logdir", "logs",
        "--backbone", "vgg16", "--weights", str(vgg16_weights),
    ]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "tf_nst", *arguments], cwd=tmp_path,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    index = tmp_path / "model.checkpoint" / "checkpoint"
    deadline = time.monotonic() + 240
    try:
        while not index.exists():
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.05)
        for path in paths:
            open(path, "wb").close()
        stderr = process.communicate(timeout=120)[1]
    finally:
        if process.poll() is None:
            process.kill()

    assert process.returncode == 2, stderr
    assert "Traceback" not in stderr and "unexpected" not in stderr, stderr
    lines = cli_lines(stderr)
    assert any(
        "an error stopped the run after" in line and "and a checkpoint to" in line
        and "plus --resume" in line
        for line in lines
    ), stderr  # fmt: skip
    assert "none of the 4 training photos can be loaded any more" in error_line(stderr)
    assert (tmp_path / "model" / "saved_model.pb").is_file()
    assert list((tmp_path / "model.checkpoint").glob("ckpt-*.index"))
    assert leftovers(tmp_path) == []
