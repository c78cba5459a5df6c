#!/usr/bin/env python
"""Per-style networks applied at one size, with the style measured at 1, 1/2 and 1/4 of it.

Usage:
    python benchmarks/network_scales.py MODEL_DIR=PAINTING [MODEL_DIR=PAINTING ...]
        [--photos 4] [--size 512] [--pictures DIR]

Each MODEL_DIR is a network saved by `tf-nst train`, PAINTING the style image it was trained on.
Every network is applied at `--size` to the first `--photos` of the photos the trainer holds out
for validation (never trained on) and measured with `benchmarks/measures.py`: style error at the
three sizes on layers no network optimises (the painting resized to the output's long side at
each size), the photo's own style error, content error, outline recall, palette distance and
lightness. It printed the table "Per-style networks: style size" of benchmarks/README.md.
`--pictures` saves the outputs, for looking at them.

MODEL_DIR may also be the word `optimization`: then `tf-nst stylize`'s defaults (with the shared
VGG16, seed 0) stylize the same photos with PAINTING at `--size`, the reference of issue 15's goal
for networks (content error within 1.2 times the optimisation's on the same photos).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np
from harness import PHOTOS, WEIGHTS

STYLE_LAYERS = ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3")
CONTENT_LAYERS = ("block4_conv2",)
# The trainer's defaults: which photos it holds out depends on them.
VALIDATION, BATCH_SIZE = 8, 4


OPTIMIZATION = "optimization"


def optimization_stylizer(painting: np.ndarray, size: int):
    """A callable like a loaded network's, stylizing each photo by the optimisation's defaults."""
    from tf_nst.config import StyleConfig
    from tf_nst.optimize.optimization import Optimization

    config = StyleConfig(size=size, backbone="vgg16", weights=str(WEIGHTS), seed=0)

    def stylize(photos):
        optimization = Optimization(photos[0], [painting], config)
        for _ in optimization.steps():
            pass
        return optimization.final_image()[None]

    return stylize


def measure(model_dir: str, painting_path: str, count: int, size: int, pictures) -> dict:
    import measures

    from tf_nst.features.extractor import build_feature_extractor
    from tf_nst.image.decoding import load_image, resize_to_long_side
    from tf_nst.image.writing import save_image
    from tf_nst.networks.photos import scan_photos
    from tf_nst.networks.stylizer import load_stylizer

    layers = tuple(dict.fromkeys(STYLE_LAYERS + CONTENT_LAYERS))
    extractor = build_feature_extractor(layers, "vgg16", str(WEIGHTS), "max", "fp32")
    painting = load_image(painting_path)
    network = (
        optimization_stylizer(painting, size)
        if model_dir == OPTIMIZATION
        else load_stylizer(model_dir)
    )
    rows = []
    for path in scan_photos(PHOTOS, VALIDATION, BATCH_SIZE).validation[:count]:
        photo = resize_to_long_side(load_image(path), size)
        output = np.asarray(network(photo[None]))[0]
        row = measures.style_at_sizes(extractor, output, photo, painting, STYLE_LAYERS)
        row["content"] = measures.content_error(
            measures.features_of(extractor, output),
            measures.features_of(extractor, photo),
            CONTENT_LAYERS,
        )
        row["outlines"] = measures.outline_recall(output, photo)
        row.update(measures.palette_measures(output, photo, painting))
        rows.append(row)
        if pictures is not None:
            name = f"{pathlib.Path(model_dir).name}_{pathlib.Path(path).stem}.png"
            save_image(output, pathlib.Path(pictures) / name)
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}


def main(arguments=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("networks", nargs="+", metavar="MODEL_DIR=PAINTING")
    parser.add_argument("--photos", type=int, default=4, help="held-out photos to measure on")
    parser.add_argument("--size", type=int, default=512, help="long side of the outputs")
    parser.add_argument("--pictures", help="folder to save the outputs in")
    options = parser.parse_args(arguments)
    if not (WEIGHTS.is_file() and PHOTOS.is_dir()):
        print(f"needs {WEIGHTS} and {PHOTOS} (set TF_NST_SHARED)", file=sys.stderr)
        return 2
    if options.pictures is not None:
        pathlib.Path(options.pictures).mkdir(parents=True, exist_ok=True)
    for pair in options.networks:
        model_dir, _, painting = pair.partition("=")
        if not painting:
            print(f"{pair}: give MODEL_DIR=PAINTING", file=sys.stderr)
            return 2
        row = measure(model_dir, painting, options.photos, options.size, options.pictures)
        print(model_dir, json.dumps({key: round(value, 3) for key, value in row.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
