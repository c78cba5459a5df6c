"""The peak-memory estimate and the refusal of runs that cannot fit."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image, ImageDraw

from tf_nst.config import StyleConfig
from tf_nst.errors import StyleTransferError
from tf_nst.image import decoding
from tf_nst.memory import RUNTIME_BASE_BYTES, format_bytes
from tf_nst.optimize.memory import check_fits, estimate_peak_bytes, estimate_run_bytes

LAYERS = StyleConfig().style_layers + StyleConfig().content_layers


def test_estimate_grows_linearly_in_pixel_count():
    """Every activation is proportional to the pixel count when both sides are multiples of 16
    (no rounding in the four poolings), and the base and the weights do not grow, so doubling both
    sides quadruples the growth: e(4s) - e(2s) = 4 (e(2s) - e(s))."""
    sizes = [(96 * factor, 128 * factor) for factor in (1, 2, 4)]
    small, medium, large = (estimate_peak_bytes(*size, "vgg19", LAYERS, "bf16") for size in sizes)
    assert small > RUNTIME_BASE_BYTES
    assert large - medium == pytest.approx(4 * (medium - small), abs=4)


def test_bf16_needs_less_than_fp32_and_lbfgs_more_than_adam():
    fp32 = estimate_peak_bytes(768, 1024, "vgg19", LAYERS, "fp32")
    bf16 = estimate_peak_bytes(768, 1024, "vgg19", LAYERS, "bf16")
    lbfgs = estimate_peak_bytes(768, 1024, "vgg19", LAYERS, "bf16", lbfgs_history=10)
    jit = estimate_peak_bytes(768, 1024, "vgg19", LAYERS, "bf16", jit=True)
    assert bf16 < fp32
    # 32 float64 values per pixel and channel: 768 * 1024 * 3 * 8 * 32 bytes.
    assert lbfgs - bf16 == 768 * 1024 * 3 * 8 * 32
    assert jit > bf16


def test_shallower_layers_need_less():
    deep = estimate_peak_bytes(768, 1024, "vgg19", LAYERS)
    shallow = estimate_peak_bytes(768, 1024, "vgg19", ("block1_conv1", "block2_conv1"))
    assert shallow < deep


def test_check_fits_refuses_with_the_figures_and_the_fixes():
    with pytest.raises(StyleTransferError) as raised:
        check_fits(30 * 2**30, 4096, available=8 * 2**30)
    message = str(raised.value)
    assert "--size 4096 needs about 30.0 GiB but only 8.0 GiB is available" in message
    assert "smaller --size" in message and "\n" not in message
    check_fits(2 * 2**30, 512, available=8 * 2**30)  # fits: no error


def test_format_bytes():
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536 * 2**20) == "1.5 GiB"


@pytest.mark.slow
@pytest.mark.real_weights
def test_cli_refuses_a_run_that_cannot_fit(vgg16_weights, tmp_path):
    result = run_cli(
        "stylize", "--example", "-o", tmp_path / "out.png", "--backbone", "vgg16",
        "--weights", vgg16_weights, "--size", "9000", "--logdir", tmp_path / "logs",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    [line] = [text for text in result.stderr.splitlines() if text.startswith("tf-nst: error:")]
    assert "--size 9000 needs about" in line and "is available" in line
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.png").exists()
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").iterdir())


# --- the whole run: estimate_run_bytes against measured peaks ------------------------------------

_MEASURE_RUN = """
import json, sys
spec = json.loads(sys.argv[1])
from tf_nst.image import decoding
from tf_nst.optimize import memory
from tf_nst.config import StyleConfig
config = StyleConfig(**spec["config"])
infos = [decoding.read_image_info(path) for path in [spec["content"], *spec["styles"]]]
estimate = memory.estimate_run_bytes(config, infos[0], infos[1:])
content_side, style_side = memory.load_sides(config)
content = decoding.load_image(spec["content"], long_side=content_side)
styles = [decoding.load_image(path, long_side=style_side) for path in spec["styles"]]
from tf_nst.features.extractor import build_feature_extractor
from tf_nst.optimize.optimization import Optimization
layers = config.content_layers + config.style_layers
extractor = build_feature_extractor(layers, config.backbone, None, "max", config.precision)
optimization = Optimization(content, styles, config, extractor)
for result in optimization.steps():
    pass
optimization.final_image()
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over an exec, so it would include the RSS of
# the pytest process this one was forked from.
with open("/proc/self/status") as status:
    peak = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
print(json.dumps({"peak": peak, "estimate": estimate}))
"""


def _large_sparse_png(path, side):
    """A side x side PNG of lines on a flat background: huge in pixels, small as a file (the
    9000x9000 PNG of the issue was 258 KB)."""
    picture = Image.new("RGB", (side, side), (200, 180, 150))
    draw = ImageDraw.Draw(picture)
    for offset in range(0, side, 97):
        draw.line([(offset, 0), (side - offset, side)], fill=(offset % 255, 60, 120), width=3)
    picture.save(path)


def _noise(path, side, seed):
    pixels = np.random.default_rng(seed).random((side, side, 3)) * 255
    Image.fromarray(pixels.astype(np.uint8)).save(path, quality=90)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads VmHWM from /proc")
@pytest.mark.parametrize("case", ["large png", "style scale"])
def test_a_whole_run_peaks_below_its_estimate(tmp_path, case):
    """The issue's two cases, smaller so that each run takes seconds, in a fresh process whose
    peak resident memory (VmHWM) is the run's own; the full VGG16 (random weights, fp32).

    * "large png": a 5000x5000 PNG of about 1 MB as content at --size 64. Old behaviour: the
      content was decoded to a full-size float image (300 MB, and copies of it), so the run
      peaked near 1.5 GB against an estimate (of the step alone) under 1 GB. Now it is reduced
      while decoding, and the estimate counts the decode.
    * "style scale": a 700 px style at --style-scale 12 and --size 32, seen at 384 px: its
      forward pass dwarfs the step at 32 px, which was all the old estimate counted.

    The estimate must cover the peak and stay within 2x of it, or it would refuse runs that fit.
    """
    content, style = tmp_path / "content.png", tmp_path / "style.jpg"
    settings = {"steps": 2, "optimizer": "adam", "backbone": "vgg16", "precision": "fp32"}
    if case == "large png":
        _large_sparse_png(content, 5000)
        _noise(style, 64, 1)
        settings.update(size=64)
    else:
        _noise(content, 64, 0)
        _noise(style, 700, 1)
        settings.update(size=32, style_scale=12)
    spec = {"config": settings, "content": str(content), "styles": [str(style)]}
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE_RUN, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["peak"] <= measured["estimate"] <= 2 * measured["peak"], measured


def test_the_run_estimate_counts_decoding_the_full_size_image():
    """9000x9000 RGB PNG at --size 512, one scale: decoding it holds 81 M pixels of Pillow's
    4-byte storage (324 MB), more than the whole step, so the estimate must include that."""
    config = StyleConfig(size=512, steps=10, scales=1, precision="fp32")
    small = decoding.ImageInfo(512, 512)
    huge = decoding.ImageInfo(9000, 9000, "RGB", 258_000)
    difference = estimate_run_bytes(config, huge, [small]) - estimate_run_bytes(
        config, small, [small]
    )
    assert difference >= 9000 * 9000 * 4 - estimate_peak_bytes(512, 512, "vgg19", LAYERS)


def test_the_run_estimate_grows_with_the_style_scale():
    config = StyleConfig(size=256, steps=10, precision="fp32")
    image = decoding.ImageInfo(2000, 2000)
    small = estimate_run_bytes(config, image, [image])
    large = estimate_run_bytes(config.replace(style_scale=4), image, [image])
    # The style at 1024 px: its forward activations alone are over 1 GB in fp32.
    assert large - small > 2**30


def test_the_run_estimate_imports_no_tensorflow():
    code = (
        "import sys; from tf_nst.optimize import memory; from tf_nst.image import decoding; "
        "from tf_nst.config import StyleConfig; "
        "memory.estimate_run_bytes(StyleConfig(), decoding.ImageInfo(300, 400), "
        "[decoding.ImageInfo(300, 300)]); "
        "print(sorted({'tensorflow', 'keras', 'scipy'} & set(sys.modules)))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"
