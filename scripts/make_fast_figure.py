"""Makes the README's fast-network figure: held-out photos by the network and by the optimisation.

    python scripts/make_fast_figure.py --model starry_model --photos ../shared/photos \
        --names sunhays80_img_023.jpg urban100_img_048.jpg --weights VGG16.weights.h5

Each row is one photo that the network never trained on (a validation photo of its run): the
network's result, then the optimisation's default result (`tf-nst stylize` settings), each with
its time. The photos themselves stay in ../shared; only the stylized pictures are shown.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import numpy as np
from PIL import Image, ImageDraw

from tf_nst.config import StyleConfig
from tf_nst.image import decoding
from tf_nst.optimize.optimization import Optimization


def _network(path: str):
    if path.endswith(".keras"):
        import keras

        import tf_nst.networks.transform  # noqa: F401  (registers the network's layers)

        model = keras.saving.load_model(path, safe_mode=True)
        return lambda batch: np.asarray(model(batch, training=False))
    from tf_nst.networks.stylizer import load_stylizer

    stylizer = load_stylizer(path, precision="auto")
    return lambda batch: np.asarray(stylizer(batch))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="a .keras network or a tf-nst train folder")
    parser.add_argument("--photos", required=True)
    parser.add_argument("--names", nargs="+", required=True)
    parser.add_argument("--style", default="../shared/images/starry_night.jpg")
    parser.add_argument("--weights", required=True, help="the VGG16 weights file")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("-o", "--output", default="docs/images/fast.jpg")
    arguments = parser.parse_args()

    network = _network(arguments.model)
    style = decoding.load_image(arguments.style)
    config = StyleConfig(size=arguments.size, backbone="vgg16", weights=arguments.weights, seed=0)
    rows = []
    for name in arguments.names:
        photo = decoding.load_image(pathlib.Path(arguments.photos) / name, long_side=arguments.size)
        network(photo[None])  # the first call traces the graph; time the second
        started = time.perf_counter()
        fast = network(photo[None])[0]
        fast_seconds = time.perf_counter() - started
        started = time.perf_counter()
        stylizer = Optimization(photo, [style], config)
        for _ in stylizer.steps():
            pass
        slow = stylizer.final_image()
        slow_seconds = time.perf_counter() - started
        print(f"{name}: network {fast_seconds:.3f} s, optimisation {slow_seconds:.1f} s")
        rows.append(
            [
                (fast, f"network: {fast_seconds:.2f} s"),
                (slow, f"optimisation: {slow_seconds:.0f} s"),
            ]
        )
    _save_grid(rows, arguments.output)


def _save_grid(rows, path: str) -> None:
    """One row per photo, each as tall as its own pictures, with a caption over each picture."""
    caption, gap = 18, 6
    width = max(picture.shape[1] for row in rows for picture, _ in row)
    heights = [max(picture.shape[0] for picture, _ in row) for row in rows]
    sheet = Image.new("RGB", (2 * width + 10, sum(h + caption + gap for h in heights)), "white")
    draw = ImageDraw.Draw(sheet)
    top = 0
    for row, height in zip(rows, heights, strict=True):
        for column, (picture, text) in enumerate(row):
            left = column * (width + 10)
            sheet.paste(Image.fromarray(decoding.to_uint8(picture)), (left, top + caption))
            draw.text((left + 2, top + 3), text, fill="black")
        top += height + caption + gap
    sheet.save(path, quality=88)


if __name__ == "__main__":
    main()
