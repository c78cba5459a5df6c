"""Hostile environments (issue 14, parts 3-6): closed standard streams, container memory limits,
runs refused up front rather than killed, one-line failures with the right status, and messages
that say what happened.

In-process where the behaviour is the library's or the CLI's own (`tf_nst.cli.parser.main`,
with TensorFlow's import made to fail so that a refusal provably comes before it); real
processes only where it is the process's: descriptors closed before Python starts, and a fake
cgroup tree seen by a fresh CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import slow_setup
from PIL import Image

from tf_nst.cli import commands
from tf_nst.cli.parser import main
from tf_nst.config import ApplyConfig, TrainConfig
from tf_nst.errors import StyleTransferError
from tf_nst.image import decoding, writing
from tf_nst.memory import (
    CGROUP_ROOT_VARIABLE,
    RUNTIME_BASE_BYTES,
    available_bytes,
    cgroup_available_bytes,
)
from tf_nst.networks import apply as apply_module
from tf_nst.networks.architecture import parameter_count
from tf_nst.networks.memory import check_train_fits, estimate_train_bytes, plan_photo
from tf_nst.run.outputs import (
    CHECKPOINT_PREFIX,
    RUN_STATE,
    STATE_FORMAT,
    ResumeKey,
    read_resume_state,
)
from tf_nst.sizes import MAX_PIXELS

GIB = 2**30
# cgroup v1's "no limit": the largest page-aligned signed 64-bit number.
V1_UNLIMITED = 9223372036854771712


def _picture(path, height, width, seed=0):
    pixels = (np.random.default_rng(seed).random((height, width, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture()
def no_tensorflow(monkeypatch):
    """Makes the CLI's TensorFlow import fail loudly: a refusal must come before it."""

    def refuse(verbose):
        raise AssertionError("TensorFlow was imported before the refusal")

    monkeypatch.setattr(commands, "import_tensorflow", refuse)


@pytest.fixture()
def cli(capsys):
    """Runs the CLI in-process; returns (status, stderr lines)."""

    def run(*arguments):
        status = main([str(argument) for argument in arguments])
        return status, capsys.readouterr().err.strip().splitlines()

    return run


# --- 3. closed standard streams ------------------------------------------------------------------

_REPORT_DESCRIPTORS = """
import json, os, sys
from tf_nst.cli.parser import restore_standard_streams
restore_standard_streams()
report = open(sys.argv[1], "w")
null = os.stat(os.devnull)
json.dump({
    "devnull": [os.fstat(n).st_rdev == null.st_rdev for n in (0, 1, 2)],
    "streams": [stream is not None for stream in (sys.stdin, sys.stdout, sys.stderr)],
    "next": report.fileno(),
    "inheritable": [os.get_inheritable(n) for n in (0, 1, 2)],
}, report)
print("to a closed stdout"); print("to a closed stderr", file=sys.stderr)
"""


def _closing(*descriptors):
    """A preexec_fn that closes `descriptors` in the child before Python starts."""

    def close():
        for descriptor in descriptors:
            os.close(descriptor)

    return close


@pytest.mark.light_subprocess
def test_closed_standard_descriptors_get_dev_null_and_streams(tmp_path):
    """Started with 0, 1 and 2 closed, Python sets sys.stdin/stdout/stderr to None and the next
    file opened would take descriptor 0. After `restore_standard_streams` all three are
    /dev/null, the streams exist and the next file gets 3."""
    report = tmp_path / "report.json"
    completed = subprocess.run(
        [sys.executable, "-c", _REPORT_DESCRIPTORS, report],
        close_fds=True,
        preexec_fn=_closing(0, 1, 2),
        timeout=60,
    )
    assert completed.returncode == 0
    seen = json.loads(report.read_text())
    assert seen == {
        "devnull": [True, True, True],
        "streams": [True, True, True],
        "next": 3,
        "inheritable": [True, True, True],
    }


@pytest.mark.parametrize("closed", [(2,), (0, 1, 2)], ids=["2>&-", "<&- >&- 2>&-"])
def test_stylize_with_closed_descriptors_writes_its_image(closed, vgg16_weights, tmp_path):
    """Before: `2>&-` stopped at once with "unexpected AttributeError: 'NoneType' object has no
    attribute 'flush'", exit 1, and with every descriptor closed no image was written."""
    content = _picture(tmp_path / "content.png", 40, 48, seed=1)
    style = _picture(tmp_path / "style.png", 48, 48, seed=2)
    command = [
        sys.executable, "-m", "tf_nst", "stylize", content, style, "-o", "out.png",
        "--size", "32", "--steps", "2", "--backbone", "vgg16", "--weights", vgg16_weights,
    ]  # fmt: skip
    completed = subprocess.run(
        command,
        cwd=tmp_path,
        close_fds=True,
        preexec_fn=_closing(*closed),
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        **({} if 1 in closed else {"stdout": subprocess.DEVNULL}),
    )
    assert completed.returncode == 0
    with Image.open(tmp_path / "out.png") as written:
        assert written.size == (32, 27)
        written.load()


# --- 4. memory: the cgroup limit -----------------------------------------------------------------


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_cgroup_v2_limit_is_read_without_the_inactive_file_cache(tmp_path, monkeypatch):
    """memory.max minus memory.current, where the inactive file cache counts as free (the kernel
    reclaims it first); "max" is no limit."""
    _write(tmp_path / "memory.max", f"{5 * GIB}\n")
    _write(tmp_path / "memory.current", f"{2 * GIB}\n")
    _write(tmp_path / "memory.stat", f"anon 1\nfile 9\ninactive_file {GIB // 2}\n")
    assert cgroup_available_bytes(tmp_path) == 5 * GIB - (2 * GIB - GIB // 2)
    monkeypatch.setenv(CGROUP_ROOT_VARIABLE, str(tmp_path))
    assert available_bytes() <= 3.5 * GIB

    _write(tmp_path / "memory.max", "max\n")
    assert cgroup_available_bytes(tmp_path) is None


def test_a_cgroup_v1_limit_is_read_and_its_no_limit_is_none(tmp_path, monkeypatch):
    memory = tmp_path / "memory"
    _write(memory / "memory.limit_in_bytes", f"{GIB}\n")
    _write(memory / "memory.usage_in_bytes", f"{GIB // 4}\n")
    _write(memory / "memory.stat", f"cache 5\ntotal_inactive_file {GIB // 8}\n")
    assert cgroup_available_bytes(tmp_path) == GIB - (GIB // 4 - GIB // 8)
    monkeypatch.setenv(CGROUP_ROOT_VARIABLE, str(tmp_path))
    assert available_bytes() == GIB - (GIB // 4 - GIB // 8)

    _write(memory / "memory.limit_in_bytes", f"{V1_UNLIMITED}\n")
    assert cgroup_available_bytes(tmp_path) is None


def test_a_full_cgroup_leaves_nothing_rather_than_no_reading(tmp_path, monkeypatch):
    _write(tmp_path / "memory.max", f"{GIB}\n")
    _write(tmp_path / "memory.current", f"{2 * GIB}\n")
    monkeypatch.setenv(CGROUP_ROOT_VARIABLE, str(tmp_path))
    assert available_bytes() == 0


@pytest.mark.light_subprocess
def test_train_under_a_container_limit_is_refused_before_tensorflow(tmp_path):
    """The issue's case: `train --size 2048` under a 5 GiB cgroup limit was killed by the kernel
    with no estimate and no refusal. Now a fresh CLI reads the (fake) cgroup tree and refuses in
    one line, exit 2, before TensorFlow loads and with nothing written."""
    cgroup = tmp_path / "cgroup"
    _write(cgroup / "memory.max", f"{5 * GIB}\n")
    _write(cgroup / "memory.current", f"{GIB // 2}\n")
    photos = tmp_path / "photos"
    photos.mkdir()
    for index in range(4):
        _picture(photos / f"photo_{index}.png", 40, 48, seed=index)
    style = _picture(tmp_path / "style.png", 48, 48, seed=9)
    command = [
        sys.executable, "-c", "import sys; from tf_nst.cli.parser import main; code = main(); "
        "assert 'tensorflow' not in sys.modules; sys.exit(code)",
        "train", style, "--photos", photos, "-o", tmp_path / "model", "--size", "2048",
        "--validation", "1", "--logdir", tmp_path / "logs",
    ]  # fmt: skip
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, CGROUP_ROOT_VARIABLE: str(cgroup)},
    )
    assert completed.returncode == 2, completed.stderr
    [line] = completed.stderr.strip().splitlines()
    assert line.startswith("tf-nst: error: --size 2048 with --batch-size 4 needs about"), line
    assert "but only 4.5 GiB is available" in line
    assert not (tmp_path / "model").exists() and not (tmp_path / "logs").exists()


# --- 4. memory: training refused up front ---------------------------------------------------------


@pytest.fixture()
def train_inputs(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for index in range(4):
        _picture(photos / f"photo_{index}.png", 40, 48, seed=index)
    return photos, _picture(tmp_path / "style.png", 64, 96, seed=9)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--size", "99999999"], "--size 99999999 makes training crops of 99999999x99999999 px"),
        (["--size", "5000000"], "--size 5000000 makes training crops"),
        (["--style-size", "1000000"], "--style-size 1000000 makes style image 1"),
        (["--width", "100000"], "--width 100000 needs about"),
        (["--batch-size", "100000"], "--size 256 with --batch-size 100000 needs about"),
    ],
)
def test_train_refuses_what_cannot_fit_before_tensorflow(
    flags, expected, train_inputs, tmp_path, cli, no_tensorflow
):
    """Before: `--size 99999999` and `--style-scale 1e6` (now `--style-size`) said "out of
    memory" with exit 1, `--size 5000000` grew to 17.7 GB and `--width 100000` failed after
    14 s with an unexpected ResourceExhaustedError; all of them once TensorFlow had loaded."""
    photos, style = train_inputs
    status, lines = cli(
        "train", style, "--photos", photos, "-o", tmp_path / "model", "--validation", "1",
        "--logdir", tmp_path / "logs", *flags,
    )  # fmt: skip
    assert status == 2, lines
    [line] = lines
    assert line.startswith(f"tf-nst: error: {expected}"), line
    assert not (tmp_path / "model").exists() and not (tmp_path / "logs").exists()


def test_the_training_estimate_counts_width_batch_size_style_size_and_coarse_pass():
    config = TrainConfig(size=256, batch_size=4, width=32, validation=2, precision="fp32")
    style = decoding.ImageInfo(600, 800, "RGB", 100_000)
    base = estimate_train_bytes(config, [style])
    assert base.peak_bytes > RUNTIME_BASE_BYTES + base.step_bytes
    narrower = estimate_train_bytes(config.replace(width=16), [style])
    wider = estimate_train_bytes(config.replace(width=64), [style])
    # The weights grow with the square of the width, the activations linearly.
    growth = (wider.weight_bytes - base.weight_bytes) / (base.weight_bytes - narrower.weight_bytes)
    expected = (parameter_count(64) - parameter_count(32)) / (
        parameter_count(32) - parameter_count(16)
    )
    assert growth == pytest.approx(expected) and 3.5 < growth < 4.1
    assert wider.step_bytes - base.step_bytes == pytest.approx(
        2 * (base.step_bytes - narrower.step_bytes), rel=0.01
    )
    batch = estimate_train_bytes(config.replace(batch_size=8), [style])
    assert batch.step_bytes > 1.9 * base.step_bytes
    assert estimate_train_bytes(config.replace(precision="bf16"), [style]).peak_bytes < (
        base.peak_bytes
    )
    scaled = estimate_train_bytes(config.replace(style_size=4096), [style])
    assert scaled.style_bytes > 10 * base.style_bytes
    # The coarse style loss's pass of the output at half size: a quarter of the pixels, through
    # the style layers only, so less than a quarter of the step more.
    coarse = estimate_train_bytes(config.replace(coarse_style_weight=1.0), [style])
    assert coarse.peak_bytes > base.peak_bytes
    assert 0.02 < (coarse.step_bytes - base.step_bytes) / base.step_bytes < 0.25
    # Refusals name what takes the memory.
    with pytest.raises(StyleTransferError, match=r"^`style_size` 4096 needs about"):
        check_train_fits(config.replace(style_size=4096), [style], available=scaled.step_bytes)
    check_train_fits(config, [style], available=base.peak_bytes)  # fits exactly: no error


# --- 4. memory: apply plans and decodes at the size it needs --------------------------------------


def test_apply_plans_decoding_the_photo_at_its_size():
    """The issue's photo: 8000x6000 at --size 512 peaked at 1.96 GB, decoded whole, against an
    estimate of 867 MiB that left decoding out. Reduced while decoding, it needs little; the
    plan counts it, and stays below the full-size decode that is no longer done."""
    photo = decoding.ImageInfo(6000, 8000, "RGB", 12_000_000)
    plan = plan_photo(photo, 512, network_width=32, available=20 * GIB)
    assert plan.tile_size is None
    assert plan.peak_bytes >= RUNTIME_BASE_BYTES + decoding.decode_peak_bytes(photo, 512)
    full_decode = 8000 * 6000 * decoding.FLOAT_WORK_BYTES_PER_PIXEL
    assert plan.peak_bytes < RUNTIME_BASE_BYTES + full_decode


SMALL_PHOTO = decoding.ImageInfo(480, 640, "RGB", 50_000)
LARGE_PHOTO = decoding.ImageInfo(9000, 9000, "RGB", 300_000)


@pytest.mark.parametrize(
    ("photo", "size", "available", "expected"),
    [
        (SMALL_PHOTO, 100000, 4 * GIB, f"`size` 100000 makes photo.png 100000x75000 px, over the "
         f"limit of {MAX_PIXELS} pixels"),
        (SMALL_PHOTO, 9000, 4 * GIB, "too little to stylize even one tile"),
        (LARGE_PHOTO, None, 6_200_000_000, "photo.png needs about 5.9 GiB to decode and stylize "
         "at 9000x9000 px but only 5.8 GiB is available"),
    ],
    ids=["over the pixel ceiling", "tiles cannot fit", "decoding cannot fit"],
)  # fmt: skip
def test_apply_refuses_a_photo_that_cannot_fit_even_in_tiles(photo, size, available, expected):
    """`apply --size 100000` on a small photo was killed by the kernel under a 5 GiB limit. Over
    the pixel ceiling it is refused; below it, scaling the photo up, decoding it and the
    full-size buffers of tiling are counted, and what cannot fit is refused before anything is
    decoded."""
    with pytest.raises(StyleTransferError) as raised:
        plan_photo(photo, size, network_width=32, available=available, label="photo.png")
    assert expected in str(raised.value)
    assert "\n" not in str(raised.value)


def test_apply_tiles_what_fits_in_tiles():
    plan = plan_photo(SMALL_PHOTO, 4000, network_width=32, available=4 * GIB)
    assert plan.tile_size is not None and plan.peak_bytes <= 4 * GIB
    plan = plan_photo(LARGE_PHOTO, None, network_width=32, available=6_400_000_000)
    assert plan.tile_size is not None and plan.peak_bytes <= 6_400_000_000


def test_apply_decodes_each_photo_reduced_to_the_size(tmp_path, monkeypatch):
    """Decoding a photo whole and resizing it afterwards is what made apply peak at twice its
    estimate; the photo is now decoded at `size` (and only a smaller one scaled up)."""
    photo = _picture(tmp_path / "large.png", 300, 400)
    sides = []
    load_image = decoding.load_image

    def recording(path, *arguments, long_side=None, **options):
        sides.append(long_side)
        return load_image(path, *arguments, long_side=long_side, **options)

    monkeypatch.setattr(decoding, "load_image", recording)

    class Identity:
        width, precision = 4, "fp32"

        def stylize_image(self, image):
            return image

    monkeypatch.setattr(apply_module, "StyleNetwork", Identity)
    result = apply_module.apply_to_files(
        Identity(), [photo], tmp_path / "out.png", ApplyConfig(size=100)
    )
    assert result.ok and sides == [100]
    with Image.open(tmp_path / "out.png") as written:
        assert written.size == (100, 75)


# --- 5 and 6. the stylizer: metadata, precision, one bad input, -o dir/ ---------------------------


@pytest.fixture(scope="module")
@slow_setup  # tracing the export's signatures takes seconds
def exported(tmp_path_factory):
    from tf_nst.networks.export import export_stylizer
    from tf_nst.networks.transform import build_transform_network

    keras.utils.set_random_seed(0)
    directory = tmp_path_factory.mktemp("stylizer") / "model"
    # fp32 only: what an older export, or `precisions=("fp32",)`, holds.
    export_stylizer(build_transform_network(width=4), directory, {"steps": 1}, ("fp32",))
    return directory


@pytest.fixture()
def photo(tmp_path):
    return _picture(tmp_path / "photo.png", 30, 40, seed=3)


def _damaged(exported, tmp_path, change):
    from tf_nst.networks.export import STYLIZER_METADATA

    copy = tmp_path / "damaged"
    shutil.copytree(exported, copy)
    metadata_path = copy / STYLIZER_METADATA
    metadata = json.loads(metadata_path.read_text())
    change(metadata)
    metadata_path.write_text(json.dumps(metadata))
    return copy


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda metadata: metadata.update(width="wide"), "width"),  # ValueError before
        (lambda metadata: metadata.update(width=float("inf")), "width"),  # OverflowError
        (lambda metadata: metadata.update(width=10**30), "width"),
        (lambda metadata: metadata.pop("width"), "width"),  # KeyError
        (lambda metadata: metadata.update(precisions="fp32"), "precisions"),
        (lambda metadata: metadata.update(precisions=["fp32", "fp64"]), "precisions"),
        (lambda metadata: metadata.update(statistics_layers=[["stem_norm", 4]]), "statistics"),
        (lambda metadata: metadata.update(format_version="1"), "format_version"),
    ],
    ids=["type", "infinite", "huge", "missing", "not-a-list", "unknown", "layers", "version"],
)
def test_damaged_stylizer_metadata_is_one_line_asking_to_re_export(
    change, field, exported, photo, tmp_path, cli
):
    damaged = _damaged(exported, tmp_path, change)
    status, lines = cli("apply", damaged, photo, "-o", tmp_path / "out.png", "--quiet")
    assert status == 2, lines
    [line] = lines
    assert line.startswith(f"tf-nst: error: the metadata of stylizer {damaged} is damaged")
    assert field in line and "re-export it" in line
    assert not (tmp_path / "out.png").exists()


def test_a_stylizer_from_a_newer_tf_nst_asks_for_an_upgrade(exported, photo, tmp_path, cli):
    newer = _damaged(exported, tmp_path, lambda metadata: metadata.update(format_version=99))
    status, lines = cli("apply", newer, photo, "-o", tmp_path / "out.png", "--quiet")
    assert status == 2, lines
    assert lines == [
        f"tf-nst: error: stylizer {newer} was exported by a newer tf_nst (format version 99; "
        "this one reads up to 1): upgrade tf_nst"
    ]


def test_an_fp32_only_stylizer_applies_with_auto_on_bf16_hardware(
    exported, photo, tmp_path, cli, monkeypatch
):
    """The README: auto falls back to fp32 when the export lacks bf16. Before, the CLI resolved
    auto to bf16 itself and then refused: "has no bf16 signatures"."""
    from tf_nst import precision

    monkeypatch.setattr(precision, "preferred_precision", lambda: "bf16")
    status, lines = cli("apply", exported, photo, "-o", tmp_path / "out.png", "--quiet")
    assert status == 0, lines
    with Image.open(tmp_path / "out.png") as written:
        assert written.size == (40, 30)


@pytest.mark.parametrize("output", ["out.png", "out/"])
def test_a_single_bad_apply_input_is_bad_input(output, exported, tmp_path, cli):
    """Exit 2 and one line, as for stylize (before: "skipped ...", then exit 1); nothing is
    written, not even the output folder."""
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image at all")
    status, lines = cli("apply", exported, broken, "-o", f"{tmp_path}/{output}", "--quiet")
    assert status == 2, lines
    [line] = lines
    assert line.startswith(f"tf-nst: error: {broken} is not an image in a supported format")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["broken.jpg"]


def test_apply_size_over_the_pixel_ceiling_is_refused_in_one_line(exported, photo, tmp_path, cli):
    status, lines = cli("apply", exported, photo, "-o", tmp_path / "o.png", "--size", "100000")
    assert status == 2, lines
    assert lines[-1].startswith(f"tf-nst: error: --size 100000 makes {photo} 100000x75000 px")


def test_apply_one_input_into_a_folder_named_with_a_slash(exported, photo, tmp_path, cli):
    """`-o results/` means a folder, created if missing, as for several inputs; before: "output
    path results/ has no file extension"."""
    status, lines = cli("apply", exported, photo, "-o", f"{tmp_path / 'results'}/", "--quiet")
    assert status == 0, lines
    assert sorted(path.name for path in (tmp_path / "results").iterdir()) == ["photo.png"]


def test_stylize_output_with_a_slash_names_a_folder(tmp_path):
    with pytest.raises(StyleTransferError) as raised:
        writing.check_output_path(f"{tmp_path / 'results'}/")
    message = str(raised.value)
    assert "ends with / and so names a folder" in message
    assert f"such as {tmp_path / 'results'}/output.png" in message
    assert "extension" not in message


# --- 6. export and resume messages ----------------------------------------------------------------


def test_export_refuses_repeated_layers_before_tensorflow(tmp_path, cli, no_tensorflow):
    status, lines = cli(
        "export", tmp_path / "features", "--backbone", "vgg16", "--layers",
        "block1_conv1,block2_conv1,block1_conv1",
    )  # fmt: skip
    assert status == 2, lines
    assert lines == [
        "tf-nst: error: --layers names block1_conv1 more than once: list each layer once"
    ]


def test_a_changed_photos_folder_is_named_as_a_folder_on_resume(tmp_path):
    directory = tmp_path / "model.checkpoint"
    directory.mkdir()
    state = {
        "format": STATE_FORMAT,
        "kind": "train",
        "settings": {"size": 256},
        "inputs": {"photos": "before", "style 1": "same"},
        "run_name": None,
    }
    (directory / RUN_STATE).write_text(json.dumps(state))
    (directory / "checkpoint").write_text(f'model_checkpoint_path: "{CHECKPOINT_PREFIX}-5"\n')
    (directory / f"{CHECKPOINT_PREFIX}-5.index").write_bytes(b"")
    key = ResumeKey("train", {"size": 256}, {"photos": "after", "style 1": "same"})
    with pytest.raises(StyleTransferError) as raised:
        read_resume_state(directory, key)
    message = str(raised.value)
    assert "the photos folder changed (photos were added, removed or replaced)" in message
    assert "PHOTOS" not in message and "a different file" not in message
