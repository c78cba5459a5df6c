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

Every figure is one of tf_nst's own losses, unweighted, with the optimisation's definition
(content at block4_conv2, style over its five default layers, "normalized"), on the first
`--photos` of the trainer's validation photos (never trained on) at `--size` long side:

* content: the normalised content error of the output against the photo; the quality goal is at
  most 1.2 times the optimisation's;
* style ratio: the style error of the output over the style error of the photo itself; the goal
  is at most 1/3.

WORK is $TF_NST_QUALITY_DIR or /tmp/tf_nst_quality.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

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
    """tf_nst's losses with the optimisation's layers, on the VGG16 weights."""

    def __init__(self):
        from tf_nst.config import StyleConfig
        from tf_nst.features.extractor import build_feature_extractor

        self.defaults = StyleConfig()
        layers = tuple(dict.fromkeys(self.defaults.content_layers + self.defaults.style_layers))
        self.extractor = build_feature_extractor(layers, "vgg16", str(WEIGHTS), "max", "fp32")

    def features(self, image):
        import tensorflow as tf

        return self.extractor(tf.convert_to_tensor(image, tf.float32)[None], training=False)

    def measure(self, photo, output, style) -> dict[str, float]:
        """Content and style errors of `output` (and the photo's own style error)."""
        from tf_nst.losses import content_layer_loss, gram_matrix, style_layer_loss

        grams = {name: gram_matrix(value) for name, value in self.features(style).items()}
        photo_features, output_features = self.features(photo), self.features(output)

        # The losses give one value per example of the batch; every batch here is one image.
        def style_error(features):
            return sum(
                float(style_layer_loss(gram_matrix(features[name]), grams[name], "normalized")[0])
                for name in self.defaults.style_layers
            ) / len(self.defaults.style_layers)

        content_layer = self.defaults.content_layers[0]
        return {
            "content": float(
                content_layer_loss(
                    output_features[content_layer], photo_features[content_layer], "normalized"
                )[0]
            ),
            "style_output": style_error(output_features),
            "style_photo": style_error(photo_features),
        }


def resized(image, long_side: int):
    from tf_nst.image.decoding import resize_to_long_side

    return resize_to_long_side(image, long_side)


def summary(rows: list[dict[str, float]]) -> dict[str, float]:
    mean = {key: sum(row[key] for row in rows) / len(rows) for key in rows[0]}
    mean["style_ratio"] = mean["style_output"] / mean["style_photo"]
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
