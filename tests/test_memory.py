"""The peak-memory estimate and the refusal of runs that cannot fit."""

from __future__ import annotations

import pytest
from conftest import run_cli

from tf_nst.config import StyleConfig
from tf_nst.errors import StyleTransferError
from tf_nst.memory import BASE_BYTES, check_fits, estimate_peak_bytes, format_bytes

LAYERS = StyleConfig().style_layers + StyleConfig().content_layers


def test_estimate_grows_linearly_in_pixel_count():
    """Every activation is proportional to the pixel count when both sides are multiples of 16
    (no rounding in the four poolings), and the base and the weights do not grow, so doubling both
    sides quadruples the growth: e(4s) - e(2s) = 4 (e(2s) - e(s))."""
    sizes = [(96 * factor, 128 * factor) for factor in (1, 2, 4)]
    small, medium, large = (estimate_peak_bytes(*size, "vgg19", LAYERS, "bf16") for size in sizes)
    assert small > BASE_BYTES
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
        "--weights", vgg16_weights, "--size", "40000", "--logdir", tmp_path / "logs",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    [line] = [text for text in result.stderr.splitlines() if text.startswith("tf-nst: error:")]
    assert "--size 40000 needs about" in line and "is available" in line
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.png").exists()
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").iterdir())
