#!/usr/bin/env python
"""Training speed of the fast style network, on this machine, in one run.

Usage:
    python benchmarks/train_benchmark.py [--sizes 128,256] [--widths 16,32]
        [--precisions fp32,bf16] [--steps 5] [--output table.md]

For each (size, width, precision) a `tf_nst.networks.training.NetworkTrainer` trains on
../shared/photos with The Starry Night and the shared VGG16 weights, batch 4, one device. After two
warm-up steps (the first one traces and compiles the step), `--steps` steps are timed; the
table gives training photos per second (the global batch over the mean step time, the data
pipeline included) and the step time. The photo pipeline alone is timed too, to show it is not
the bottleneck.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

import harness
from harness import PHOTOS, STYLE, WEIGHTS

WARM_UP_STEPS = 2
BATCH_SIZE = 4
PIPELINE_BATCHES = 20
HEADERS = ("size", "width", "precision", "photos/s", "s/step")


def parse_arguments(arguments=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="128,256", help="crop sizes (default: %(default)s)")
    parser.add_argument("--widths", default="16,32", help="network widths (default: %(default)s)")
    parser.add_argument(
        "--precisions", default="fp32,bf16", help="precisions (default: %(default)s)"
    )
    parser.add_argument("--steps", type=int, default=5, help="timed steps (default: %(default)s)")
    parser.add_argument("--output", help="also write the table to this Markdown file")
    return parser.parse_args(arguments)


def time_training(size: int, width: int, precision: str, steps: int) -> tuple[float, float]:
    """Returns (photos per second, seconds per step) of `steps` timed training steps."""
    from tf_nst.config import TrainConfig
    from tf_nst.image.decoding import load_image
    from tf_nst.networks.training import NetworkTrainer

    config = TrainConfig(
        size=size,
        width=width,
        precision=precision,
        backbone="vgg16",
        weights=str(WEIGHTS),
        steps=WARM_UP_STEPS + steps,
        batch_size=BATCH_SIZE,
        validation=0,
        seed=0,
        distribute="none",
    )
    trainer = NetworkTrainer(PHOTOS, [load_image(STYLE)], config)
    results = list(trainer.steps())[WARM_UP_STEPS:]
    seconds = sum(trainer.global_batch_size / result.images_per_second for result in results)
    return trainer.global_batch_size * len(results) / seconds, seconds / len(results)


def time_pipeline(size: int, batches: int = PIPELINE_BATCHES) -> float:
    """Returns the photo pipeline's photos per second alone (decode, crop, resize, batch)."""
    from tf_nst.networks import data

    photos = data.scan_photos(PHOTOS, validation=0, batch_size=BATCH_SIZE)
    dataset = data.training_dataset(photos.training, size, BATCH_SIZE, seed=0).take(batches + 1)
    iterator = iter(dataset)
    next(iterator)  # the first batch pays for starting the pipeline: not timed.
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    rate = BATCH_SIZE * batches / (time.perf_counter() - started)
    del iterator
    return rate


def main(arguments=None) -> int:
    options = parse_arguments(arguments)
    if not (WEIGHTS.is_file() and PHOTOS.is_dir() and STYLE.is_file()):
        print(f"needs {WEIGHTS}, {PHOTOS} and {STYLE} (set TF_NST_SHARED)", file=sys.stderr)
        return 2
    sizes = [int(value) for value in options.sizes.split(",")]
    widths = [int(value) for value in options.widths.split(",")]
    precisions = options.precisions.split(",")
    lines = [
        f"Training, batch {BATCH_SIZE}, one device, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} at the start",
        "",
        *harness.table_header(HEADERS),
    ]
    for size in sizes:
        for width in widths:
            for precision in precisions:
                rate, step = time_training(size, width, precision, options.steps)
                lines.append(
                    harness.table_row([size, width, precision, f"{rate:.2f}", f"{step:.2f}"])
                )
                print(lines[-1], flush=True)
    lines.append("")
    for size in sizes:
        lines.append(f"Photo pipeline alone at {size} px: {time_pipeline(size):.0f} photos/s")
    lines.append(f"Load average at the end: {os.getloadavg()[0]:.1f}")
    table = "\n".join(lines)
    print(table)
    if options.output:
        pathlib.Path(options.output).write_text(table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
