#!/usr/bin/env python
"""Quality of a fast style network on held-out photos, against the optimisation's defaults.

Usage:
    python benchmarks/train_quality.py train NAME SECONDS [JSON_SETTINGS]
    python benchmarks/train_quality.py reference [--photos 4] [--size 128]
    python benchmarks/train_quality.py evaluate NAME [NAME ...] [--photos 4] [--size 128]

`train` trains a network with the CPU recipe (`--size 128 --width 16`, the given time budget) on
../shared/photos with The Starry Night and the shared VGG16 weights, plus any TrainConfig fields
as JSON (e.g. '{"style_weight": 3}'), and saves the best network to WORK/NAME.keras. `reference`
runs the optimisation with its default settings on the same held-out photos. `evaluate` measures
saved networks.

Every figure is one of the shared measures (`measures.py`), with the optimisation's definition
of the losses (content at block4_conv2, style over its default layers, "normalized"), on the
first `--photos` of the trainer's validation photos (never trained on) at `--size` long side:

* content: the normalised content error of the output against the photo; the quality goal is at
  most 1.2 times the optimisation's;
* style_1, style_2, style_4: the style error at the working size and at 1/2 and 1/4 of it (the
  output, the photo and the painting reduced alike), beside the photo's own (`photo_style_S`);
  style_ratio_S is the output's over the photo's (the goal: at most 1/3);
* palette: the sliced Wasserstein distance in Lab between the colours of output and painting
  (Lab units), beside the photo's own (`photo_palette`); lightness_5/50/95 (and the photo's and
  the painting's): Lab lightness percentiles on 0-255.

WORK is $TF_NST_QUALITY_DIR or /tmp/tf_nst_quality.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

import measures
from harness import PHOTOS, STYLE, WEIGHTS

WORK = pathlib.Path(os.environ.get("TF_NST_QUALITY_DIR", "/tmp/tf_nst_quality"))
VALIDATION = 8
# TrainConfig's default batch: scanning the photos checks that a batch remains for training.
BATCH_SIZE = 4


def held_out_photos(count: int) -> list[str]:
    """The first `count` of the photos the trainer holds out for validation (never trained on)."""
    from tf_nst.networks import data

    return list(data.scan_photos(PHOTOS, VALIDATION, BATCH_SIZE).validation[:count])


class Evaluator:
    """tf_nst's losses with the optimisation's layers, on the VGG16 weights (`measures`)."""

    def __init__(self):
        from tf_nst.config import StyleConfig
        from tf_nst.features.extractor import build_feature_extractor

        self.defaults = StyleConfig()
        layers = tuple(dict.fromkeys(self.defaults.content_layers + self.defaults.style_layers))
        self.extractor = build_feature_extractor(layers, "vgg16", str(WEIGHTS), "max", "fp32")

    def measure(self, photo, output, style) -> dict[str, float]:
        """Content error, style errors at three sizes (and the photo's own), palette, lightness.

        The photo is taken at the output's size and the painting at the output's long side, at
        each of `measures.SCALES` (see `measures.style_at_sizes`).
        """
        from tf_nst.image.decoding import resize, resize_to_long_side

        photo = resize(photo, *output.shape[:2])
        painting = resize_to_long_side(style, max(output.shape[:2]))
        content = measures.content_error(
            measures.features_of(self.extractor, output),
            measures.features_of(self.extractor, photo),
            self.defaults.content_layers[:1],
        )
        return {
            "content": content,
            **measures.style_at_sizes(
                self.extractor, output, photo, painting, self.defaults.style_layers
            ),
            **measures.palette_measures(output, photo, painting),
        }


def resized(image, long_side: int):
    from tf_nst.image.decoding import resize_to_long_side

    return resize_to_long_side(image, long_side)


def summary(rows: list[dict[str, float]]) -> dict[str, float]:
    """The mean of every measure, and `style_ratio_S`: the output's style error over the photo's."""
    mean = {key: sum(row[key] for row in rows) / len(rows) for key in rows[0]}
    for scale in measures.SCALES:
        mean[f"style_ratio_{scale}"] = mean[f"style_{scale}"] / mean[f"photo_style_{scale}"]
    return mean


def train(name: str, seconds: float, settings: dict) -> None:
    from tf_nst.config import TrainConfig
    from tf_nst.image.decoding import load_image
    from tf_nst.networks.training import NetworkTrainer

    values = {
        "size": 128,
        "width": 16,
        "backbone": "vgg16",
        "weights": str(WEIGHTS),
        "seed": 0,
        "steps": 1_000_000,
        "time_limit": seconds,
        "validation": VALIDATION,
    }
    values.update(settings)
    for key in ("content_layers", "style_layers"):
        if key in values:
            values[key] = tuple(values[key])
    trainer = NetworkTrainer(PHOTOS, [load_image(STYLE)], TrainConfig(**values))
    last = None
    for last in trainer.steps():
        if last.validation_loss is not None:
            print(
                f"step {last.step}: loss {last.loss:.3f}, validation {last.validation_loss:.3f}, "
                f"{last.images_per_second:.2f} photos/s",
                flush=True,
            )
    WORK.mkdir(parents=True, exist_ok=True)
    trainer.best_model().save(WORK / f"{name}.keras")
    print(f"{name}: {last.step} steps in {last.elapsed_seconds:.0f} s ({trainer.stop_reason})")


def reference(count: int, size: int) -> None:
    from tf_nst.config import StyleConfig
    from tf_nst.image.decoding import load_image
    from tf_nst.optimize.optimization import Optimization

    evaluator = Evaluator()
    style = load_image(STYLE)
    rows = []
    for path in held_out_photos(count):
        photo = resized(load_image(path), size)
        started = time.perf_counter()
        optimization = Optimization(
            photo, [style], StyleConfig(size=size, backbone="vgg16", weights=str(WEIGHTS))
        )
        for _ in optimization.steps():
            pass
        seconds = time.perf_counter() - started
        rows.append(
            {
                **evaluator.measure(photo, optimization.final_image(), resized(style, size)),
                "seconds": seconds,
            }
        )
        print(path, json.dumps(rows[-1]), flush=True)
    print("optimisation", json.dumps(summary(rows)))


def evaluate(names: list[str], count: int, size: int) -> None:
    import keras

    import tf_nst.networks.transform  # noqa: F401 -- registers the network's layers for loading
    from tf_nst.image.decoding import load_image

    evaluator = Evaluator()
    style = load_image(STYLE)
    photos = [resized(load_image(path), size) for path in held_out_photos(count)]
    for name in names:
        model = keras.saving.load_model(WORK / f"{name}.keras")
        rows = []
        for photo in photos:
            started = time.perf_counter()
            output = model(photo[None], training=False)[0].numpy()
            seconds = time.perf_counter() - started
            rows.append(
                {**evaluator.measure(photo, output, resized(style, size)), "seconds": seconds}
            )
        print(name, json.dumps(summary(rows)))


def main(arguments=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("train", "reference", "evaluate"))
    parser.add_argument("names", nargs="*", help="train: NAME SECONDS [JSON]; evaluate: NAMEs")
    parser.add_argument("--photos", type=int, default=4, help="held-out photos to measure on")
    parser.add_argument("--size", type=int, default=128, help="long side of the measured images")
    options = parser.parse_args(arguments)
    if not (WEIGHTS.is_file() and PHOTOS.is_dir() and STYLE.is_file()):
        print(f"needs {WEIGHTS}, {PHOTOS} and {STYLE} (set TF_NST_SHARED)", file=sys.stderr)
        return 2
    if options.command == "train":
        name, seconds, *settings = options.names
        train(name, float(seconds), json.loads(settings[0]) if settings else {})
    elif options.command == "reference":
        reference(options.photos, options.size)
    else:
        evaluate(options.names, options.photos, options.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
