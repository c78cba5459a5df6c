"""Tests for tf_nst.optimize.scales: the scale plan and the one check of image sizes.

Everything here is pure Python, so none of it needs TensorFlow; one test checks exactly that.
"""

import subprocess
import sys

import pytest

from tf_nst.config import StyleConfig
from tf_nst.errors import StyleTransferError
from tf_nst.optimize.scales import check_image_sizes, plan_scales
from tf_nst.sizes import MAX_PIXELS, minimum_working_side, style_long_side, working_shape

SHALLOW = {"content_layers": ("block1_conv2",), "style_layers": ("block1_conv1",)}


# --- plan_scales ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size, steps, scales",
    [
        (32, 10, None),
        (512, 300, None),
        (513, 300, None),
        (2048, 300, None),
        (2048, 1000, 3),
        (1024, 40, 2),
        (4096, 7, None),
        (800, 3, 5),
    ],
)
def test_plan_scales_sums_to_steps_coarsest_first(size, steps, scales):
    plan = plan_scales(size, steps, scales)
    assert sum(scale.steps for scale in plan) == steps
    assert all(scale.steps >= 1 for scale in plan)
    sides = [scale.long_side for scale in plan]
    assert all(coarser < finer for coarser, finer in zip(sides[:-1], sides[1:], strict=True))
    assert sides[-1] == size
    assert plan[0].steps == max(scale.steps for scale in plan)


@pytest.mark.parametrize("size", [32, 256, 384])
def test_plan_scales_is_one_scale_up_to_384(size):
    assert plan_scales(size, 100) == plan_scales(size, 100, 1)
    assert len(plan_scales(size, 100)) == 1


def test_plan_scales_for_512_is_256_then_512():
    """1 + ceil(log2(512 / 256)) = 2 scales, with two thirds of the steps at the coarse one."""
    plan = plan_scales(512, 300)
    assert [scale.long_side for scale in plan] == [256, 512]
    assert [scale.steps for scale in plan] == [200, 100]


def test_plan_scales_for_2048_is_four_doublings_from_256():
    """1 + ceil(log2(2048 / 256)) = 1 + 3 = 4 scales: 256, 512, 1024, 2048."""
    plan = plan_scales(2048, 300)
    assert [scale.long_side for scale in plan] == [256, 512, 1024, 2048]


def test_plan_scales_respects_explicit_scales():
    plan = plan_scales(1000, 100, 2)
    assert [scale.long_side for scale in plan] == [500, 1000]
    assert len(plan_scales(300, 100, 3)) == 3


# --- working sizes --------------------------------------------------------------------------------


def test_working_shape_keeps_the_aspect_and_at_least_one_pixel():
    assert working_shape((300, 400), 200) == (150, 200)
    assert working_shape((1, 1000), 10) == (1, 10)
    assert style_long_side(256, 0.5) == 128
    assert style_long_side(256, 1e-9) == 1


def test_the_scale_plan_imports_without_tensorflow_or_numpy():
    """The CLI plans a run and checks its sizes before TensorFlow loads: `scales` (and the layer
    specification it reads) must not pull TensorFlow or numpy in."""
    code = (
        "import sys; import tf_nst.optimize.scales, tf_nst.features.backbones; "
        "print(sorted({'tensorflow', 'numpy', 'keras'} & set(sys.modules)))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"


# --- check_image_sizes: the floor ----------------------------------------------------------------


def test_sizes_that_fit_return_the_plan():
    config = StyleConfig(size=512, steps=300)
    plan = check_image_sizes(config, (384, 512, 3), [(600, 800, 3)])
    assert plan == plan_scales(512, 300)


def test_minimum_working_side_is_two_even_for_block1_layers():
    """block1 layers see every pixel (1 px would do for them), but the TV term's mean over the
    differences of neighbours is a mean over nothing, NaN, for an image 1 px thin."""
    assert minimum_working_side(("block1_conv1",)) == 2
    assert minimum_working_side(("block1_conv1", "block5_conv1")) == 16


def test_a_working_image_one_pixel_thin_is_refused_about_its_size():
    """Old behaviour: a 3x300 content at --size 100 with block1 layers works at 1x100; the run
    went to NaN and the user was told to lower --learning-rate. Now: one line about the size."""
    config = StyleConfig(size=100, steps=10, **SHALLOW)
    with pytest.raises(StyleTransferError) as raised:
        check_image_sizes(config, (3, 300, 3), [(64, 64, 3)])
    assert str(raised.value) == (
        "the content image works at 100x1 px at the coarsest scale, below the 2 px the "
        "total-variation term needs: raise --size, lower --scales, or use a less elongated image"
    )


# Down to block5_conv1: its 16 px floor is the one these messages name.
DEEP = {"style_layers": tuple(f"block{block}_conv1" for block in range(1, 6))}


def test_a_source_below_the_floor_is_refused_naming_the_layer_and_the_path():
    config = StyleConfig(size=512, steps=10, **DEEP)
    with pytest.raises(StyleTransferError) as raised:
        check_image_sizes(config, (400, 400), [(400, 400), (8, 8)], "c.png", ["a.png", "b.png"])
    assert str(raised.value) == (
        "style image b.png is only 8x8 px; the layer block5_conv1 needs at least 16 px per side: "
        "use a larger image (or shallower layers)"
    )
    with pytest.raises(StyleTransferError, match=r"^the content image is only 9x400 px"):
        check_image_sizes(config, (400, 9), [(400, 400)])


def test_an_elongated_content_is_refused_at_the_coarsest_scale():
    config = StyleConfig(size=512, steps=300, **DEEP)  # two scales: 256, then 512
    with pytest.raises(StyleTransferError, match=r"256x10 px at the coarsest scale.*--scales"):
        check_image_sizes(config, (20, 512), [(400, 400)])


def test_a_style_too_small_at_its_style_scale_is_refused():
    config = StyleConfig(size=64, steps=10, style_scale=0.1, **DEEP)
    with pytest.raises(StyleTransferError, match=r"style image 1 works at 6x6 px, below the 16 px"):
        check_image_sizes(config, (64, 64), [(64, 64)])


# --- check_image_sizes: the ceiling --------------------------------------------------------------


def test_a_huge_style_scale_is_refused_up_front():
    """Old behaviour: --style-scale 1e6 resized the style to ~512e6 px a side and TensorFlow
    failed building a 40M x 64M tensor with a traceback. Now: one line, before anything runs."""
    config = StyleConfig(size=512, steps=10, scales=1, style_scale=1e6)
    with pytest.raises(StyleTransferError) as raised:
        check_image_sizes(config, (384, 512), [(300, 400)])
    message = str(raised.value)
    assert "`style_scale` 1e+06" in message and str(MAX_PIXELS) in message
    assert "\n" not in message


def test_a_style_scale_just_under_the_ceiling_is_accepted():
    # 512 * 18 = 9216 px square: 84.9 M pixels, just under the 89.5 M limit.
    config = StyleConfig(size=512, steps=10, scales=1, style_scale=18)
    check_image_sizes(config, (512, 512), [(512, 512)])
    with pytest.raises(StyleTransferError, match="over the limit"):
        check_image_sizes(config.replace(style_scale=19), (512, 512), [(512, 512)])
