"""Bad input to `tf-nst stylize`: one line, exit 2, nothing written; odd images that must work.

Every refusal is checked through a real subprocess (`run_cli`): exit status 2, exactly one
`tf-nst: error: ...` line naming the problem and the fix, no traceback, no output file, no run
directory under --logdir and no change to the inputs. Problems that need no network ("early"
cases) must be refused before TensorFlow is even imported: their stderr is that one line and
nothing else (TensorFlow always logs on import), which is how these tests check that nothing heavy
happens before validation.

The runs that must succeed use the real VGG16 weights from ../shared and skip without them.
"""

from __future__ import annotations

import io
import os
import pathlib
import pickle
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from cli_checks import (
    cli_lines,
    error_line,
    leftovers,
    real_weights_outputs,
    run_directories,
    smooth_picture,
    snapshot,
)
from conftest import run_cli
from PIL import Image

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


# --- generated inputs ----------------------------------------------------------------------------


def _png_declaring_size(width: int, height: int) -> bytes:
    """A real 1x1 PNG whose header (with a valid CRC) is rewritten to declare width x height."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


class _Canary:
    """Unpickling this creates the file `path`: proof that something was unpickled."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    """Every input file the tests use, generated once, by name."""
    directory = tmp_path_factory.mktemp("inputs")
    paths = {}

    def path(name: str) -> str:
        paths[name.split(".")[0]] = str(directory / name)
        return str(directory / name)

    photo = Image.fromarray(smooth_picture(48, 64, seed=1))
    photo.save(path("content.png"))
    Image.fromarray(smooth_picture(40, 40, seed=2)).save(path("style.png"))
    photo.save(path("photo.jpg"), quality=90)
    os.mkdir(path("folder"))
    os.mkdir(directory / "folder.png")
    paths["folder_png"] = str(directory / "folder.png")
    open(path("empty.png"), "wb").close()
    with open(path("random.jpg"), "wb") as file:
        file.write(np.random.default_rng(3).bytes(3000))
    jpeg = (directory / "photo.jpg").read_bytes()
    (directory / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    paths["truncated"] = str(directory / "truncated.jpg")
    (directory / "notes.txt").write_text("this is not a picture\n")
    paths["notes"] = str(directory / "notes.txt")
    Image.new("RGB", (1, 1), (200, 30, 30)).save(path("one_pixel.png"))
    Image.fromarray(smooth_picture(20, 1000, seed=4)).save(path("thin.png"))
    (directory / "bomb.png").write_bytes(_png_declaring_size(100_000, 100_000))
    paths["bomb"] = str(directory / "bomb.png")
    # Weights files: a fake that passes the CLI's cheap checks (HDF5 signature) and is never
    # loaded because every case that uses it fails earlier, and several bad ones.
    (directory / "fake.weights.h5").write_bytes(HDF5_SIGNATURE + bytes(1000))
    paths["fake_weights"] = str(directory / "fake.weights.h5")
    (directory / "corrupt.weights.h5").write_bytes(np.random.default_rng(5).bytes(5000))
    paths["corrupt_weights"] = str(directory / "corrupt.weights.h5")
    (directory / "model.keras").write_bytes(b"PK\x03\x04" + bytes(100))
    paths["keras_model"] = str(directory / "model.keras")
    canary = directory / "unpickled.flag"
    (directory / "weights.pkl").write_bytes(pickle.dumps(_Canary(str(canary))))
    paths["pickle_weights"] = str(directory / "weights.pkl")
    paths["canary"] = str(canary)
    os.symlink(directory / "style.png", directory / "link_to_style.png")
    paths["link_to_style"] = str(directory / "link_to_style.png")
    paths["directory"] = str(directory)
    return paths


@pytest.fixture(scope="module")
def odd_formats(tmp_path_factory) -> dict[str, str]:
    """Images in modes and containers that must simply work, by name."""
    directory = tmp_path_factory.mktemp("formats")
    rgb = Image.fromarray(smooth_picture(40, 48, seed=6))
    alpha = Image.fromarray(np.tile(np.linspace(0, 255, 48, dtype=np.uint8), (40, 1)))
    paths = {}
    gray = rgb.convert("L")
    gray.save(directory / "gray_L.png")
    gray_alpha = gray.copy()
    gray_alpha.putalpha(alpha)
    gray_alpha.save(directory / "gray_alpha_LA.png")
    rgba = rgb.copy()
    rgba.putalpha(alpha)
    rgba.save(directory / "rgba.png")
    rgb.quantize(16).save(directory / "palette_P.png")
    rgb.convert("CMYK").save(directory / "cmyk.jpg", quality=90)
    sixteen = (np.asarray(gray, np.uint16) * 257).astype(np.uint16)
    Image.fromarray(sixteen).save(directory / "sixteen_bit.png")
    frames = [rgb, Image.fromarray(255 - np.asarray(rgb))]
    frames[0].save(directory / "animated.gif", save_all=True, append_images=frames[1:], loop=0)
    for name in (
        "gray_L.png",
        "gray_alpha_LA.png",
        "rgba.png",
        "palette_P.png",
        "cmyk.jpg",
        "sixteen_bit.png",
        "animated.gif",
    ):
        paths[name] = str(directory / name)
    # Stored 64 wide and 40 high, top half red and bottom half blue, with EXIF orientation 6
    # ("rotate 90 degrees clockwise to view"): upright it is 40 wide, 64 high, blue on the left.
    stored = np.zeros((40, 64, 3), np.uint8)
    stored[:20] = (220, 30, 30)
    stored[20:] = (30, 30, 220)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(directory / "exif_rotated.jpg", exif=exif, quality=95)
    paths["exif_rotated.jpg"] = str(directory / "exif_rotated.jpg")
    assert Image.open(directory / "sixteen_bit.png").mode.startswith("I;16")
    assert Image.open(directory / "cmyk.jpg").mode == "CMYK"
    assert Image.open(directory / "animated.gif").n_frames == 2
    return paths


def _fake_weights(inputs) -> list[str]:
    return ["--backbone", "vgg16", "--weights", inputs["fake_weights"]]


# --- the refusals --------------------------------------------------------------------------------

COMMON = ["-o", "out.png", "--logdir", "logs", "--size", "32", "--steps", "2", "--quiet"]
IMAGES = ["{content}", "{style}"]

# (arguments after the common ones, fragments the error line must contain, refused before
# TensorFlow loads). Later options win in argparse, so a case can override a common one.
REFUSALS = {
    # Input images.
    "missing-file": (["{directory}/missing.png", "{style}"], ["missing.png does not exist"], True),
    "directory-as-image": (["{folder}", "{style}"], ["is a directory, not an image file"], True),
    "zero-byte-file": (["{empty}", "{style}"], ["empty.png is empty (0 bytes)"], True),
    "random-bytes-jpg": (
        ["{random}", "{style}"],
        ["random.jpg is not an image in a supported format", "convert it"],
        True,
    ),
    "truncated-jpeg": (
        ["{truncated}", "{style}"],
        ["truncated.jpg is truncated or corrupt", "re-export"],
        True,
    ),
    "text-file": (["{notes}", "{style}"], ["notes.txt is not an image"], True),
    "decompression-bomb": (
        ["{bomb}", "{style}"],
        ["100000x100000", "over the limit of 89478485", "smaller image"],
        True,
    ),
    "bad-second-style": (
        ["{content}", "{style}", "{notes}"],
        ["notes.txt is not an image"],
        True,
    ),
    "init-path-missing": (
        [*IMAGES, "--init", "nose"],
        ["--init 'nose' is neither content, recolored, noise, style nor an existing image"],
        True,
    ),
    "init-image-corrupt": (
        [*IMAGES, "--init", "{truncated}"],
        ["truncated.jpg is truncated or corrupt"],
        True,
    ),
    "one-pixel-image": (
        ["{one_pixel}", "{style}"],
        ["content image", "only 1x1 px", "at least 8 px", "larger image"],
        False,
    ),
    "one-pixel-style": (
        ["{content}", "{one_pixel}"],
        ["style image", "only 1x1 px"],
        False,
    ),
    # Output paths.
    "output-directory-missing": (
        [*IMAGES, "-o", "nowhere/out.png"],
        ["nowhere does not exist", "create it"],
        True,
    ),
    "output-parent-is-a-file": (
        [*IMAGES, "-o", "{content}/out.png"],
        ["is not a directory", "choose another output path"],
        True,
    ),
    "output-unknown-extension": (
        [*IMAGES, "-o", "out.xyz"],
        ["unknown extension .xyz", ".png"],
        True,
    ),
    "output-no-extension": ([*IMAGES, "-o", "out"], ["has no file extension"], True),
    "output-is-a-directory": (
        [*IMAGES, "-o", "{folder_png}"],
        ["folder.png is a directory", "give a file name"],
        True,
    ),
    "output-is-the-content": (
        [*IMAGES, "-o", "{content}"],
        ["refusing to overwrite the input", "choose another output path"],
        True,
    ),
    "output-is-the-style-by-symlink": (
        [*IMAGES, "-o", "{link_to_style}"],
        ["refusing to overwrite the input"],
        True,
    ),
    # Numbers.
    "steps-zero": ([*IMAGES, "--steps", "0"], ["--steps must be a positive integer, got 0"], True),
    "steps-negative": ([*IMAGES, "--steps", "-1"], ["--steps must be a positive integer"], True),
    "size-zero": ([*IMAGES, "--size", "0"], ["--size must be a positive integer, got 0"], True),
    "style-weight-negative": (
        [*IMAGES, "--style-weight", "-1"],
        ["--style-weight must be a number from 0"],
        True,
    ),
    "learning-rate-zero": (
        [*IMAGES, "--learning-rate", "0"],
        ["--learning-rate must be a positive number"],
        True,
    ),
    "learning-rate-negative": (
        [*IMAGES, "--learning-rate", "-1"],
        ["--learning-rate must be a positive number"],
        True,
    ),
    "tv-weight-nan": ([*IMAGES, "--tv-weight", "nan"], ["--tv-weight", "got nan"], True),
    "content-weight-inf": (
        [*IMAGES, "--content-weight", "inf"],
        ["--content-weight", "got inf"],
        True,
    ),
    "style-weight-beyond-float32": (
        [*IMAGES, "--style-weight", "1e41"],
        ["--style-weight must be a number from 0 to 3.403e+38", "got 1e+41"],
        True,
    ),
    "style-blend-wrong-count": (
        [*IMAGES, "--style-blend", "1,2"],
        ["--style-blend has 2 weights but 1 style images", "one weight per style image"],
        True,
    ),
    "style-layer-weights-wrong-count": (
        [*IMAGES, "--style-layer-weights", "1,2"],
        ["--style-layer-weights has 2 values", "one weight per layer"],
        True,
    ),
    "save-every-negative": ([*IMAGES, "--save-every", "-1"], ["--save-every must be >= 0"], True),
    "checkpoint-every-negative": (
        [*IMAGES, "--checkpoint-every", "-5"],
        ["--checkpoint-every must be >= 0"],
        True,
    ),
    # Image arguments.
    "no-style-image": (["{content}"], ["give at least one STYLE image"], True),
    "example-with-images": ([*IMAGES, "--example"], ["--example takes no CONTENT"], True),
    # Layers.
    "unknown-layer": (
        [*IMAGES, "--style-layers", "block1_conv1,block9_conv9"],
        ["unknown layer block9_conv9", "valid layers: block1_conv1, block1_conv2"],
        False,
    ),
    "layer-of-the-other-backbone": (
        [*IMAGES, "--content-layers", "block5_conv4"],
        ["unknown layer block5_conv4 for backbone vgg16", "pass --backbone vgg19"],
        False,
    ),
    # Weights files (the wrong-architecture case needs the real file: see below).
    "weights-missing": (
        [*IMAGES, "--weights", "{directory}/nope.weights.h5"],
        ["nope.weights.h5 does not exist", "check the --weights path"],
        True,
    ),
    "weights-corrupt": (
        [*IMAGES, "--weights", "{corrupt_weights}"],
        ["is not a readable HDF5 file", "download it again"],
        True,
    ),
    "weights-keras-model": (
        [*IMAGES, "--weights", "{keras_model}"],
        ["is not a Keras weights file", ".weights.h5 or .h5"],
        True,
    ),
    "weights-pickle": (
        [*IMAGES, "--weights", "{pickle_weights}"],
        ["weights.pkl is not a Keras weights file"],
        True,
    ),
    "weights-directory": (
        [*IMAGES, "--weights", "{folder}"],
        ["is not a Keras weights file"],
        True,
    ),
    # Resume.
    "resume-without-checkpoint": (
        [*IMAGES, "--resume"],
        ["nothing to resume: no checkpoint in", "run without --resume"],
        True,
    ),
}


def assert_refused(
    result, fragments, *, early: bool, workdir, before: dict, inputs_before: dict, inputs
) -> str:
    """Checks the whole contract of a refusal and returns the error line."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    line = error_line(result.stderr)
    for fragment in fragments:
        assert fragment in line, line
    # One line, and nothing else from the CLI (or from Python warnings) around it.
    assert cli_lines(result.stderr) == [line], result.stderr
    if early:
        # Not even TensorFlow's import-time log: nothing heavy ran before the refusal.
        assert result.stderr.strip() == line, result.stderr
    assert result.stdout == ""
    # Nothing written: no output, no run directory (no --logdir even), inputs unchanged.
    assert snapshot(workdir) == before
    assert not (workdir / "logs").exists()
    assert snapshot(pathlib.Path(inputs["directory"])) == inputs_before
    return line


@pytest.mark.parametrize(
    "case",
    [
        # Every case starts the CLI, so conftest's hook marks them all slow; the late ones also
        # import TensorFlow (seconds each), which the explicit mark records.
        pytest.param(case, marks=() if early else pytest.mark.slow)
        for case, (_, _, early) in REFUSALS.items()
    ],
)
def test_bad_input_is_refused_in_one_line_and_writes_nothing(case, inputs, tmp_path):
    arguments, fragments, early = REFUSALS[case]
    arguments = [argument.format(**inputs) for argument in arguments]
    before = snapshot(tmp_path)
    inputs_before = snapshot(pathlib.Path(inputs["directory"]))
    result = run_cli(
        "stylize", *COMMON, *_fake_weights(inputs), *arguments, cwd=tmp_path, timeout=120
    )
    assert_refused(
        result,
        fragments,
        early=early,
        workdir=tmp_path,
        before=before,
        inputs_before=inputs_before,
        inputs=inputs,
    )
    if case == "weights-pickle":
        assert not os.path.exists(inputs["canary"]), "the .pkl file was unpickled"


def test_output_in_an_unwritable_directory_is_refused(inputs, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root may write anywhere, so os.access reports every directory writable")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = run_cli(
            "stylize",
            *COMMON,
            *_fake_weights(inputs),
            inputs["content"],
            inputs["style"],
            "-o",
            str(locked / "out.png"),
            cwd=tmp_path,
        )
        assert result.returncode == 2, result.stderr
        assert "is not writable" in error_line(result.stderr)
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_unreadable_resume_state_is_refused(inputs, tmp_path):
    (tmp_path / "out.png.checkpoint").mkdir()
    (tmp_path / "out.png.checkpoint" / "run.json").write_text("{not json")
    before = snapshot(tmp_path)
    result = run_cli(
        "stylize",
        *COMMON,
        *_fake_weights(inputs),
        inputs["content"],
        inputs["style"],
        "--resume",
        cwd=tmp_path,
    )
    assert_refused(
        result,
        ["run.json is unreadable", "run without --resume"],
        early=True,
        workdir=tmp_path,
        before=before,
        inputs_before=snapshot(pathlib.Path(inputs["directory"])),
        inputs=inputs,
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--steps", "abc"], "invalid int value: 'abc'"),
        (["--backbone", "resnet"], "invalid choice: 'resnet'"),
        (["--no-such-option"], "unrecognized arguments: --no-such-option"),
    ],
)
def test_argparse_errors_exit_2_without_traceback(arguments, message, inputs, tmp_path):
    result = run_cli("stylize", inputs["content"], inputs["style"], *arguments, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_debug_shows_the_traceback(inputs, tmp_path):
    result = run_cli(
        "stylize", *COMMON, inputs["content"], inputs["style"], "--steps", "0", "--debug",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert "StyleTransferError: `steps` must be a positive integer" in result.stderr


# --- refusals that need the real network -------------------------------------------------------


@pytest.mark.slow
@pytest.mark.real_weights
def test_image_too_thin_at_the_chosen_size_is_refused(inputs, vgg16_weights, tmp_path):
    # 1000x20 px passes the source check (8 px per side) but works at 64x1 px at --size 64.
    before = snapshot(tmp_path)
    result = run_cli(
        "stylize",
        *COMMON,
        "--backbone",
        "vgg16",
        "--weights",
        vgg16_weights,
        inputs["thin"],
        inputs["style"],
        "--size",
        "64",
        cwd=tmp_path,
    )
    assert_refused(
        result,
        ["works at 64x1 px", "below the 8 px", "raise --size"],
        early=False,
        workdir=tmp_path,
        before=before,
        inputs_before=snapshot(pathlib.Path(inputs["directory"])),
        inputs=inputs,
    )


@pytest.mark.slow
@pytest.mark.real_weights
def test_weights_of_the_wrong_architecture_are_refused(inputs, vgg16_weights, tmp_path):
    before = snapshot(tmp_path)
    result = run_cli(
        "stylize",
        *COMMON,
        "--backbone",
        "vgg19",
        "--weights",
        vgg16_weights,
        inputs["content"],
        inputs["style"],
        cwd=tmp_path,
    )
    assert_refused(
        result,
        ["does not fit the vgg19 backbone", "pass --backbone vgg16"],
        early=False,
        workdir=tmp_path,
        before=before,
        inputs_before=snapshot(pathlib.Path(inputs["directory"])),
        inputs=inputs,
    )


# --- a failure after the run directory was made -------------------------------------------------


class _FailingStylizer:
    """Stands in for `Optimization`: builds fine, then fails at the first step."""

    error: BaseException = RuntimeError("simulated Keras failure")
    precision = "fp32"

    def __init__(self, content, styles, config, init_image=None, extractor=None):
        del styles, config, init_image, extractor
        self.step = 0
        self.best_image = None
        self.stop_reason = None

    def postprocess(self, image):
        return image

    def steps(self):
        raise self.error
        yield  # a generator, like the real one


@pytest.mark.slow
@pytest.mark.parametrize("error", ["bug", "user"])
def test_a_run_that_fails_before_its_first_step_leaves_no_run_directory(
    error, inputs, tmp_path, monkeypatch, capsys
):
    from tf_nst import cli
    from tf_nst.errors import StyleTransferError
    from tf_nst.optimize import optimization

    failing = type(
        "Failing",
        (_FailingStylizer,),
        {
            "error": RuntimeError("simulated Keras failure")
            if error == "bug"
            else StyleTransferError("simulated problem: fix it")
        },
    )
    monkeypatch.setattr(optimization, "Optimization", failing)
    logdir = tmp_path / "logs"
    argv = [
        "stylize",
        inputs["content"],
        inputs["style"],
        "-o",
        str(tmp_path / "out.png"),
        "--logdir",
        str(logdir),
        *_fake_weights(inputs),
        "--size",
        "32",
        "--quiet",
    ]
    if error == "bug":
        with pytest.raises(RuntimeError, match="simulated Keras failure"):
            cli.main([*argv, "--debug"])  # a bug keeps its traceback with --debug ...
        assert not logdir.exists()
        assert cli.main(argv) == 1  # ... and is one line without it
        assert "unexpected RuntimeError: simulated Keras failure" in capsys.readouterr().err
    else:
        assert cli.main(argv) == 2
    # The run directory it had made (and logged the inputs into) is gone, and so is the
    # --logdir it had to create.
    assert not logdir.exists()
    assert not (tmp_path / "out.png").exists()


# --- inputs that must simply work, and atomic outputs -------------------------------------------


@pytest.mark.slow
@pytest.mark.real_weights
def test_odd_image_formats_work(odd_formats, vgg16_weights, tmp_path):
    # One run reads them all: the EXIF-rotated JPEG as CONTENT (its output shape shows the
    # orientation) and the seven others as STYLE images, which go through the same loader.
    # tests/test_images.py checks each decoding pixel by pixel.
    styles = [path for name, path in odd_formats.items() if name != "exif_rotated.jpg"]
    result = run_cli(
        "stylize",
        odd_formats["exif_rotated.jpg"],
        *styles,
        *real_weights_outputs(vgg16_weights),
        "--size",
        "32",
        "--steps",
        "2",
        "--quiet",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert cli_lines(result.stderr) == []
    output = np.asarray(Image.open(tmp_path / "out.png").convert("RGB"), np.float32)
    # Upright the content is 40 wide and 64 high, so 20x32 at --size 32 ...
    assert output.shape == (32, 20, 3)
    # ... with the stored top half (red) on the right: turned clockwise, not mirrored.
    left, right = output[:, :8].mean(axis=(0, 1)), output[:, -8:].mean(axis=(0, 1))
    assert left[2] > left[0] + 50
    assert right[0] > right[2] + 50
    assert len(run_directories(tmp_path / "logs")) == 1


@pytest.mark.slow
@pytest.mark.real_weights
def test_a_run_leaves_no_temporary_files(inputs, vgg16_weights, tmp_path):
    result = run_cli(
        "stylize",
        inputs["content"],
        inputs["style"],
        *real_weights_outputs(vgg16_weights),
        "--size",
        "32",
        "--steps",
        "3",
        "--save-every",
        "1",
        "--checkpoint-every",
        "1",
        "--quiet",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert leftovers(tmp_path) == []
    for step in (1, 2, 3):
        Image.open(tmp_path / f"out_{step:05d}.png").verify()
    Image.open(tmp_path / "out.png").verify()
    # The run finished and its image is saved: the checkpoint it wrote is gone with it.
    assert not (tmp_path / "out.png.checkpoint").exists()


def test_cli_module_imports_without_tensorflow():
    # The early refusals above rely on this: validation happens before TensorFlow loads.
    code = "import sys, tf_nst.cli, tf_nst.image.decoding; sys.exit('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
