#!/usr/bin/env python
"""The fast style network at apply time, on this machine, in one run.

Usage:
    python benchmarks/apply_benchmark.py [--quick] [--optimization] [--output table.md]

What is measured (benchmarks/README.md, "Fast style networks: apply", explains the tables):

* Milliseconds per image of applying an exported stylizer (the SavedModel, through
  `tf_nst.networks.stylizer.load_stylizer`, as `tf-nst apply` does) at 256, 512, 1024 and 2048 px (long side,
  4:3 landscape), for `--width 32` (Johnson's network) and 16, in fp32 and bf16; best of a few
  calls after a warm-up call at the same size.
* Batched images/s at 512 px (`--batch` images per call).
* Peak resident memory of each (width, precision), which is reached at the largest size, against
  `tf_nst.networks.memory.estimate_apply_bytes`.
* Achieved GFLOP/s, from the network's convolutions counted analytically
  (`tf_nst.networks.transform.count_flops`), against a large float32 and bfloat16 matmul measured in the
  same run.
* With `--optimization`, the optimisation's default run at 512 px (`tf_nst.optimize.optimization.Optimization`,
  VGG16 weights from ../shared, Tübingen and The Starry Night), once, and the ratio of its time
  to the network's time per image at 512 px.

The networks are randomly initialised: the time and memory do not depend on the weights. Every
configuration runs in its own child process (`--worker`, internal), so each peak is its own.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import subprocess
import sys
import tempfile
import time

REPOSITORY = pathlib.Path(__file__).resolve().parent.parent
SHARED = pathlib.Path(os.environ.get("TF_NST_SHARED", REPOSITORY.parent / "shared"))
DEFAULT_WEIGHTS = SHARED / "weights" / "vgg16_imagenet_keras_convention_notop.weights.h5"
DEFAULT_CONTENT = SHARED / "images" / "tubingen.jpg"
DEFAULT_STYLE = SHARED / "images" / "starry_night.jpg"
SIZES = (256, 512, 1024, 2048)
WIDTHS = (32, 16)
PRECISIONS = ("fp32", "bf16")
# Calls timed after the warm-up, by size: the big sizes take seconds each.
REPEATS = {256: 5, 512: 3, 1024: 2, 2048: 1}


def _peak_rss_bytes() -> int:
    """Returns this process's peak resident memory (VmHWM), or ru_maxrss where /proc is absent."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _shape(size: int) -> tuple[int, int]:
    """A 4:3 landscape photo with long side `size`."""
    return size * 3 // 4, size


def _job_export(job: dict) -> dict:
    from tf_nst.networks.export import export_stylizer
    from tf_nst.networks.transform import build_transform_network

    export_stylizer(build_transform_network(job["width"]), job["path"], {"benchmark": True})
    return {}


def _job_apply(job: dict) -> dict:
    import numpy as np

    from tf_nst.networks.memory import estimate_apply_bytes
    from tf_nst.networks.stylizer import load_stylizer
    from tf_nst.networks.transform import count_flops

    stylizer = load_stylizer(job["path"], job["precision"])
    generator = np.random.default_rng(0)
    result = {"per_image": {}}
    for size in job["sizes"]:
        height, width = _shape(size)
        image = generator.random((1, height, width, 3), dtype=np.float32)
        stylizer(image).numpy()
        best = math.inf
        for _ in range(job["repeats"][str(size)]):
            started = time.perf_counter()
            stylizer(image).numpy()
            best = min(best, time.perf_counter() - started)
        result["per_image"][str(size)] = {
            "ms": 1000 * best,
            "gflops": count_flops(height, width, stylizer.width) / best / 1e9,
        }
    height, width = _shape(512)
    batch = generator.random((job["batch"], height, width, 3), dtype=np.float32)
    stylizer(batch).numpy()
    best = math.inf
    for _ in range(2):
        started = time.perf_counter()
        stylizer(batch).numpy()
        best = min(best, time.perf_counter() - started)
    result["batched_images_per_second"] = job["batch"] / best
    result["peak_rss"] = _peak_rss_bytes()
    largest = max(job["sizes"])
    result["estimate"] = max(
        estimate_apply_bytes(*_shape(largest), stylizer.width, stylizer.precision),
        estimate_apply_bytes(height, width, stylizer.width, stylizer.precision, job["batch"]),
    )
    return result


def _job_matmul(job: dict) -> dict:
    """Best-of-3 GFLOP/s of an n x n matmul in float32 and bfloat16."""
    import tensorflow as tf

    size = job["n"]
    result = {}
    for name, dtype in (("fp32", tf.float32), ("bf16", tf.bfloat16)):
        a = tf.cast(tf.random.normal((size, size), seed=1), dtype)
        b = tf.cast(tf.random.normal((size, size), seed=2), dtype)

        @tf.function
        def product(a, b):
            return tf.reduce_sum(tf.cast(tf.matmul(a, b)[:, :8], tf.float32))

        float(product(a, b))
        best = math.inf
        for _ in range(3):
            started = time.perf_counter()
            float(product(a, b))
            best = min(best, time.perf_counter() - started)
        result[name] = 2.0 * size**3 / best / 1e9
    return result


def _job_optimization(job: dict) -> dict:
    """The optimisation's default run at 512 px, timed from the images to the final image."""
    from tf_nst.config import StyleConfig
    from tf_nst.image.decoding import load_image
    from tf_nst.optimize.optimization import Optimization

    content, style = load_image(job["content"]), load_image(job["style"])
    started = time.perf_counter()
    config = StyleConfig(size=512, backbone="vgg16", weights=job["weights"])
    stylizer = Optimization(content, [style], config)
    for _ in stylizer.steps():
        pass
    final = stylizer.final_image()
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "shape": list(final.shape[:2]),
        "precision": stylizer.precision,
        "peak_rss": _peak_rss_bytes(),
    }


JOBS = {
    "export": _job_export,
    "apply": _job_apply,
    "matmul": _job_matmul,
    "optimization": _job_optimization,
}


def run_worker(payload: str) -> int:
    """Runs one job described by the JSON `payload` and prints its result as one JSON line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    job = json.loads(payload)
    print(json.dumps(JOBS[job["kind"]](job)), flush=True)
    return 0


def _run(job: dict) -> dict | None:
    """Runs `job` in a child process; returns its result, or None (and says why) if it failed."""
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(REPOSITORY), *filter(None, [environment.get("PYTHONPATH")])]
    )
    completed = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(job)],
        capture_output=True,
        text=True,
        env=environment,
    )
    if completed.returncode != 0:
        print(f"job {job['kind']} failed: {completed.stderr.strip()[-1500:]}", file=sys.stderr)
        return None
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _mib(count: float) -> str:
    return f"{count / 2**20:.0f} MiB"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def report(results: dict, matmul: dict | None, optimization: dict | None, args) -> str:
    """Formats every measurement as markdown tables."""
    lines = [
        "# tf_nst fast style network: apply benchmark",
        "",
        f"{os.cpu_count()} CPUs visible; random networks; 4:3 images, size = long side; "
        f"best of {', '.join(f'{n} at {s}' for s, n in REPEATS.items() if s in args.sizes)} "
        "calls after a warm-up.",
        "",
        "## Milliseconds per image",
        "",
    ]
    configs = list(results)
    rows = []
    for size in args.sizes:
        row = [str(size)]
        for config in configs:
            measured = (results[config] or {}).get("per_image", {}).get(str(size))
            row.append(f"{measured['ms']:.0f}" if measured else "failed")
        rows.append(row)
    lines += _table(["size"] + [f"w{w} {p}" for w, p in configs], rows)
    lines += ["", f"## Batched at 512 px ({args.batch} images per call), peak memory", ""]
    rows = []
    for (width, precision), result in results.items():
        if not result:
            rows.append([str(width), precision, "failed", "", "", ""])
            continue
        single = result["per_image"].get("512")
        rows.append(
            [
                str(width),
                precision,
                f"{result['batched_images_per_second']:.2f}",
                f"{1000 / single['ms']:.2f}" if single else "",
                _mib(result["peak_rss"]),
                _mib(result["estimate"]),
            ]
        )
    lines += _table(
        ["width", "precision", "batched images/s", "single images/s", "peak RSS", "estimate"],
        rows,
    )
    lines += ["", "## Achieved GFLOP/s (convolutions counted analytically)", ""]
    if matmul:
        lines.append(
            f"Matmul peak ({args.matmul_n}x{args.matmul_n}): fp32 {matmul['fp32']:.0f} GFLOP/s, "
            f"bf16 {matmul['bf16']:.0f} GFLOP/s."
        )
        lines.append("")
    rows = []
    for size in args.sizes:
        row = [str(size)]
        for (_, precision), result in results.items():
            measured = (result or {}).get("per_image", {}).get(str(size))
            if not measured:
                row.append("failed")
                continue
            share = f" ({measured['gflops'] / matmul[precision]:.0%})" if matmul else ""
            row.append(f"{measured['gflops']:.0f}{share}")
        rows.append(row)
    lines += _table(["size"] + [f"w{w} {p}" for w, p in configs], rows)
    if optimization is not None:
        lines += ["", "## Against the optimisation's default at 512 px", ""]
        rows = []
        for (width, precision), result in results.items():
            single = (result or {}).get("per_image", {}).get("512")
            if single:
                ratio = optimization["seconds"] * 1000 / single["ms"]
                rows.append([f"w{width} {precision}", f"{single['ms']:.0f} ms", f"{ratio:.0f}x"])
        lines.append(
            f"Optimisation (tf-nst stylize defaults, VGG16, {optimization['precision']}, "
            f"{optimization['shape'][1]}x{optimization['shape'][0]}): "
            f"{optimization['seconds']:.1f} s, peak {_mib(optimization['peak_rss'])}."
        )
        lines.append("")
        lines += _table(["network", "per image at 512 px", "optimisation / network"], rows)
    return "\n".join(lines) + "\n"


def parse_args(argv=None) -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="256 and 512 px only, width 16")
    parser.add_argument(
        "--optimization",
        action="store_true",
        help="also time the optimisation's default at 512 px, once (minutes)",
    )
    parser.add_argument("--batch", type=int, default=8, help="images per batched call")
    parser.add_argument("--output", help="also write the tables to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.sizes = (256, 512) if args.quick else SIZES
    args.widths = (16,) if args.quick else WIDTHS
    args.matmul_n = 1024 if args.quick else 4096
    return args


def main(argv=None) -> int:
    """Runs every measurement in child processes and prints the tables."""
    args = parse_args(argv)
    if args.worker:
        return run_worker(args.worker)
    repeats = {str(size): count for size, count in REPEATS.items()}
    results = {}
    with tempfile.TemporaryDirectory(prefix="apply_benchmark.") as work:
        for width in args.widths:
            path = str(pathlib.Path(work) / f"width{width}")
            exported = _run({"kind": "export", "width": width, "path": path})
            for precision in PRECISIONS:
                job = {
                    "kind": "apply",
                    "path": path,
                    "precision": precision,
                    "sizes": list(args.sizes),
                    "repeats": repeats,
                    "batch": args.batch,
                }
                print(f"measuring width {width} {precision} ...", file=sys.stderr, flush=True)
                results[(width, precision)] = _run(job) if exported is not None else None
    matmul = _run({"kind": "matmul", "n": args.matmul_n})
    optimization = None
    if args.optimization:
        print("measuring the optimisation at 512 px ...", file=sys.stderr, flush=True)
        optimization = _run(
            {
                "kind": "optimization",
                "weights": str(DEFAULT_WEIGHTS),
                "content": str(DEFAULT_CONTENT),
                "style": str(DEFAULT_STYLE),
            }
        )
    text = report(results, matmul, optimization, args)
    print(text)
    if args.output:
        pathlib.Path(args.output).write_text(text, encoding="utf-8")
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
