"""Makes the README's pictures: `python scripts/make_figures.py --weights VGG16.weights.h5`.

Every picture is a row of labelled panels produced by tf_nst itself. Inputs are the bundled
example pair (our own generated images) and the public-domain paintings in ../shared/images
(Van Gogh's "The Starry Night", 1889; Turner's "The Shipwreck", c. 1805); the headline and the
2048 px pictures stylize the Tübingen photo of Gatys et al., which is shown only stylized. The
pictures are written as JPEG into docs/images/.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from tf_nst import examples
from tf_nst.config import StyleConfig  # noqa: E402
from tf_nst.image import decoding  # noqa: E402
from tf_nst.optimize.optimization import Optimization  # noqa: E402

REPOSITORY = pathlib.Path(__file__).resolve().parent.parent
OUTPUT = REPOSITORY / "docs" / "images"
PANEL_HEIGHT = 256


def run(content, styles, config: StyleConfig, init_image=None):
    """Stylizes and returns (image, seconds, best loss, steps)."""
    optimization = Optimization(content, styles, config, init_image=init_image)
    started = time.perf_counter()
    for _ in optimization.steps():
        pass
    seconds = time.perf_counter() - started
    return optimization.final_image(), seconds, optimization.best_loss, optimization.step


def labelled(image: np.ndarray, label: str, height: int = PANEL_HEIGHT) -> Image.Image:
    """Returns `image` scaled to `height` with `label` on a strip below it."""
    picture = Image.fromarray(decoding.to_uint8(image))
    width = max(1, round(picture.width * height / picture.height))
    picture = picture.resize((width, height), Image.LANCZOS)
    panel = Image.new("RGB", (width, height + 22), "white")
    panel.paste(picture, (0, 0))
    draw = ImageDraw.Draw(panel)
    font = ImageFont.load_default(size=13)
    draw.text((4, height + 4), label, fill="black", font=font)
    return panel


def row(panels: list[Image.Image], name: str) -> None:
    """Writes the panels side by side as docs/images/NAME.jpg."""
    gap = 6
    width = sum(panel.width for panel in panels) + gap * (len(panels) - 1)
    strip = Image.new("RGB", (width, max(panel.height for panel in panels)), "white")
    left = 0
    for panel in panels:
        strip.paste(panel, (left, 0))
        left += panel.width + gap
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / f"{name}.jpg"
    strip.save(path, quality=88, optimize=True)
    print(f"wrote {path.relative_to(REPOSITORY)}", flush=True)


def scaled_weights(source: pathlib.Path, target: pathlib.Path, factor: float) -> None:
    """Copies a VGG weights file with every activation multiplied by `factor`.

    Scaling the first kernel and every bias by `factor` scales every activation by it, because
    ReLU and pooling are positively homogeneous: the same network at another activation scale,
    as different backbones and weights files have.
    """
    with h5py.File(source) as original, h5py.File(target, "w") as copy:
        original.copy(original["layers"], copy, "layers")
        original.copy(original["vars"], copy, "vars")
        for key, value in original.attrs.items():
            copy.attrs[key] = value
        first = True
        for name in sorted(
            copy["layers"],
            key=lambda text: (
                int(text.rsplit("_", 1)[-1]) if text.rsplit("_", 1)[-1].isdigit() else 0
            ),
        ):
            group = copy["layers"][name]
            if not name.startswith("conv2d"):
                continue
            variables = group["vars"]
            if first:
                variables["0"][...] = variables["0"][...] * factor
                first = False
            variables["1"][...] = variables["1"][...] * factor


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="the VGG16 weights file")
    parser.add_argument("--shared", default=str(REPOSITORY.parent / "shared" / "images"))
    parser.add_argument("--only", default=None, help="comma-separated figure names")
    parser.add_argument("--size", type=int, default=256, help="size of the option figures")
    parser.add_argument("--steps", type=int, default=150, help="steps of the option figures")
    parser.add_argument(
        "--hires-image",
        default=None,
        help="a 2048 px output of `tf-nst stylize tubingen.jpg starry_night.jpg --size 2048`: "
        "adds the hires figure (the whole picture and a 1:1 crop)",
    )
    arguments = parser.parse_args()
    shared = pathlib.Path(arguments.shared)
    chosen = set(arguments.only.split(",")) if arguments.only else None
    wanted = lambda name: chosen is None or name in chosen  # noqa: E731

    base = StyleConfig(backbone="vgg16", weights=arguments.weights, seed=0)
    small = base.replace(size=arguments.size, steps=arguments.steps)
    village = decoding.load_image(examples.content_path())
    example_style = decoding.load_image(examples.style_path())
    starry = decoding.load_image(shared / "starry_night.jpg")
    shipwreck = decoding.load_image(shared / "shipwreck.jpg")
    timings = {}

    if wanted("headline"):
        # The photo itself stays in ../shared: only the painting (public domain) and our result
        # are shown.
        tubingen = decoding.load_image(shared / "tubingen.jpg")
        result, seconds, loss, steps = run(tubingen, [starry], base)
        timings["headline"] = {"seconds": round(seconds, 1), "loss": loss, "steps": steps}
        row(
            [
                labelled(starry, "style: The Starry Night (Van Gogh, 1889)", 384),
                labelled(result, f"tf_nst defaults, 512 px, {steps} steps, {seconds:.0f} s", 384),
            ],
            "headline",
        )
    if wanted("example"):
        result, seconds, _, steps = run(village, [example_style], base.replace(size=384))
        timings["example"] = {"seconds": round(seconds, 1), "steps": steps}
        row(
            [
                labelled(village, "bundled content"),
                labelled(example_style, "bundled style"),
                labelled(result, f"tf-nst stylize --example --size 384 ({seconds:.0f} s)"),
            ],
            "example",
        )
    if wanted("blend"):
        panels = [labelled(village, "content")]
        for blend in ((1.0, 0.0), (0.5, 0.5), (0.0, 1.0)):
            result, *_ = run(village, [starry, shipwreck], small.replace(style_blend=blend))
            panels.append(labelled(result, f"--style-blend {blend[0]:g},{blend[1]:g}"))
        row(panels, "blend")
    if wanted("colors"):
        panels = [labelled(village, "content")]
        for mode in ("none", "luminance", "histogram"):
            result, *_ = run(village, [starry], small.replace(preserve_colors=mode))
            panels.append(labelled(result, f"--preserve-colors {mode}"))
        row(panels, "colors")
    if wanted("init"):
        panels = []
        for init in ("recolored", "content", "noise", "style"):
            result, *_ = run(village, [starry], small.replace(init=init))
            panels.append(labelled(result, f"--init {init}"))
        row(panels, "init")
    if wanted("style_scale"):
        panels = []
        for scale in (0.5, 1.0, 2.0):
            result, *_ = run(village, [starry], small.replace(style_scale=scale))
            panels.append(labelled(result, f"--style-scale {scale:g}"))
        row(panels, "style_scale")
    if wanted("pooling"):
        panels = []
        for pooling in ("max", "avg"):
            result, *_ = run(village, [starry], small.replace(pooling=pooling))
            panels.append(labelled(result, f"--pooling {pooling}"))
        row(panels, "pooling")
    if wanted("layer_weights"):
        panels = []
        # The figure weighs five layers, block5_conv1 included, as it did when it was made; the
        # defaults have four since issue 10.
        five_layers = tuple(f"block{block}_conv1" for block in range(1, 6))
        for weights, label in (
            ((4, 4, 1, 0.2, 0.2), "fine: 4,4,1,0.2,0.2"),
            ((1, 1, 1, 1, 1), "equal"),
            ((0.2, 0.2, 1, 4, 4), "coarse: 0.2,0.2,1,4,4"),
        ):
            total = sum(weights)
            normalised = tuple(weight / total for weight in weights)
            result, *_ = run(
                village,
                [starry],
                small.replace(style_layers=five_layers, style_layer_weights=normalised),
            )
            panels.append(labelled(result, f"--style-layer-weights {label}"))
        row(panels, "layer_weights")
    if wanted("optimizers"):
        panels = []
        for optimizer in ("adam", "lbfgs"):
            result, seconds, loss, steps = run(
                village, [starry], small.replace(optimizer=optimizer, scales=1)
            )
            timings[f"optimizer_{optimizer}"] = {"seconds": round(seconds, 1), "loss": loss}
            panels.append(labelled(result, f"{optimizer}: loss {loss:.3f}, {seconds:.0f} s"))
        row(panels, "optimizers")
    if wanted("normalization"):
        scaled = pathlib.Path(tempfile.mkdtemp()) / "vgg16_scaled.weights.h5"
        scaled_weights(pathlib.Path(arguments.weights), scaled, 1 / 90)
        panels = []
        try:
            for mode in ("normalized", "tutorial"):
                for weights, label in ((arguments.weights, "VGG16"), (str(scaled), "VGG16 / 90")):
                    config = small.replace(
                        loss_normalization=mode,
                        weights=weights,
                        content_weight=None,
                        style_weight=None,
                        tv_weight=None,
                    )
                    result, *_ = run(village, [starry], config)
                    panels.append(labelled(result, f"{mode}, {label}"))
        finally:
            shutil.rmtree(scaled.parent, ignore_errors=True)
        row(panels, "normalization")
    if arguments.hires_image and wanted("hires"):
        picture = decoding.load_image(arguments.hires_image)
        height, width = picture.shape[:2]
        top, left = round(height * 0.12), round(width * 0.52)
        crop = picture[top : top + 384, left : left + 512]
        row(
            [
                labelled(picture, f"{width}x{height}, 4 scales", 384),
                labelled(crop, "1:1 crop", 384),
            ],
            "hires",
        )
    if timings:
        print(json.dumps(timings, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
