#!/usr/bin/env python
"""tf_nst against the TensorFlow tutorial "Neural style transfer", on this machine, in one run.

Usage:
    python benchmarks/benchmark.py [--quick] [--profile] [--output table.md]

What is measured (benchmarks/README.md explains how to read every table):

* Seconds per step of a faithful re-implementation of the tutorial (the *baseline*,
  tutorial_baseline.py, which does not import tf_nst) and of tf_nst's candidate configurations
  (precision fp32/bf16 x XLA off/on) at 256 and 512 px, and their ratio.
* The wall time tf_nst needs (Adam and L-BFGS) to reach the objective value the baseline has after
  `--baseline-steps` steps at 256 px, the objective always computed with the tutorial's formulas
  by `tutorial_objective` in float32.
* Peak resident memory of every configuration, each measured in its own process.
* Achieved GFLOP/s of the tf_nst step against a large float32 and bfloat16 matmul.
* Peak memory of one tf_nst step at 256 to 2048 px, against
  `tf_nst.optimize.memory.estimate_peak_bytes`.
* With `--profile`, where the time of one tf_nst step goes, by op.

Every measurement runs in a child process (harness.py running benchmark_jobs.py), so each peak
resident memory is that configuration's own; `--quick` batches them into two processes to stay
fast, and says so. All tf_nst runs optimise the tutorial's objective (same layers, weights and
"tutorial" loss normalisation) so that the baseline and tf_nst do the same work per step.
benchmark_plan.py chooses the jobs and benchmark_report.py prints the tables.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time

import benchmark_plan
import harness
from benchmark_report import report

JOB_FILE = pathlib.Path(__file__).resolve().parent / "benchmark_jobs.py"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark tf_nst against the TensorFlow tutorial's neural style transfer."
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few steps (smoke)")
    parser.add_argument(
        "--steps-per-size", type=int, default=None, help="timed steps per speed measurement (5)"
    )
    parser.add_argument("--warmup", type=int, default=None, help="untimed warm-up steps (2)")
    parser.add_argument(
        "--baseline-steps", type=int, default=None, help="baseline steps at 256 px (500)"
    )
    parser.add_argument("--output", help="also write the tables as markdown to this file")
    parser.add_argument("--profile", action="store_true", help="profile one tf_nst step by op")
    parser.add_argument("--weights", default=str(harness.WEIGHTS), help="VGG16 Keras weights")
    parser.add_argument("--random-weights", action="store_true", help="use a random VGG16")
    parser.add_argument("--content", default=str(harness.CONTENT), help="content image")
    parser.add_argument("--style", default=str(harness.STYLE), help="style image")
    parser.add_argument(
        "--race-cap",
        type=float,
        default=0.4,
        help="give up a tf_nst race after this fraction of the baseline's time (0.4)",
    )
    parser.add_argument("--eval-every", type=int, default=None, help="race evaluation period (10)")
    parser.add_argument(
        "--memory-sizes", default=None, help="comma-separated long sides (256,512,1024,2048)"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "steps_per_size": 2 if quick else 5,
        "warmup": 1 if quick else 2,
        "baseline_steps": 12 if quick else 500,
        "eval_every": 3 if quick else 10,
        "memory_sizes": "48,64" if quick else "256,512,1024,2048",
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.memory_sizes = [int(size) for size in str(args.memory_sizes).split(",") if size]
    args.speed_sizes = (48, 64) if quick else (256, 512)
    args.matmul_n = 512 if quick else 4096
    for name in ("steps_per_size", "baseline_steps", "eval_every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def choose_images(args) -> tuple[str, str, str]:
    """The content and style paths, falling back to tf_nst's examples; and a note saying which."""
    content, style = args.content, args.style
    if os.path.isfile(content) and os.path.isfile(style):
        return content, style, f"content {content}, style {style}"
    from tf_nst import examples

    content, style = str(examples.content_path()), str(examples.style_path())
    return (
        content,
        style,
        f"shared images not found; using tf_nst's example images {content}, {style}",
    )


def choose_weights(args, folder: str) -> tuple[str, str, list[dict]]:
    """The weights path, a note for the output, and the job that writes random weights if needed.

    The job goes first in the first stage, so every later job (in any process) finds the file.
    """
    if not args.random_weights and os.path.isfile(args.weights):
        return args.weights, f"VGG16 weights {args.weights}", []
    why = "--random-weights" if args.random_weights else f"{args.weights} not found"
    weights = os.path.join(folder, "random_vgg16.weights.h5")
    job = {"id": "weights", "label": "random weights", "kind": "random_weights", "path": weights}
    note = f"RANDOM VGG16 weights ({why}): timings are valid, objective values are not"
    return weights, note, [job]


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    content, style, image_note = choose_images(args)
    with tempfile.TemporaryDirectory(prefix="tf_nst_benchmark_") as folder:
        weights, weights_note, weights_jobs = choose_weights(args, folder)
        runner = harness.Runner(
            JOB_FILE,
            spec={"content": content, "style": style, "weights": weights},
            batch=args.quick,
            describe=benchmark_plan.describe_result,
            started=started,
        )
        results = runner.run(weights_jobs + benchmark_plan.first_stage(args))
        best = benchmark_plan.best_configurations(args, results)
        results = runner.run(benchmark_plan.second_stage(args, results, best))
    lines = report(args, results, best, image_note, weights_note)
    lines += ["", f"Total benchmark wall time: {time.perf_counter() - started:.0f} s."]
    print("\n".join(lines), flush=True)
    if args.output:
        pathlib.Path(args.output).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
