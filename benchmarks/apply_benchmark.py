#!/usr/bin/env python
"""The fast style network at apply time, on this machine, in one run.

Usage:
    python benchmarks/apply_benchmark.py [--quick] [--optimization] [--output table.md]

What is measured (benchmarks/README.md, "Fast style networks: apply", explains the tables):

* Milliseconds per image of applying an exported stylizer (the SavedModel, through
  `tf_nst.networks.stylizer.load_stylizer`, as `tf-nst apply` does) at 256, 512, 1024 and 2048 px
  (long side, 4:3 landscape), for `--width 32` (Johnson's network) and 16, in fp32 and bf16; best
  of a few calls after a warm-up call at the same size.
* Batched images/s at 512 px (`--batch` images per call).
* Peak resident memory of each (width, precision), which is reached at the largest size, against
  `tf_nst.networks.memory.estimate_apply_bytes`.
* Achieved GFLOP/s, from the network's convolutions counted analytically
  (`tf_nst.networks.transform.count_flops`), against a large float32 and bfloat16 matmul measured
  in the same run.
* With `--optimization`, the optimisation's default run at 512 px
  (`tf_nst.optimize.optimization.Optimization`, VGG16 weights from ../shared, Tübingen and The
  Starry Night), once, and the ratio of its time to the network's time per image at 512 px.

The networks are randomly initialised: the time and memory do not depend on the weights. Every
configuration runs in its own child process (harness.py running this file's `JOBS`), so each peak
is its own.
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import sys
import tempfile
import time

import harness

SIZES = (256, 512, 1024, 2048)
WIDTHS = (32, 16)
PRECISIONS = ("fp32", "bf16")
# Calls timed after the warm-up, by size: the big sizes take seconds each.
REPEATS = {256: 5, 512: 3, 1024: 2, 2048: 1}
# The long side of the batched calls' images, and of the network time the optimisation is
# compared with.
BATCHED_SIDE = 512
BATCH_REPEATS = 2
MATMUL_REPEATS = 3


def shape_of(size: int) -> tuple[int, int]:
    """A 4:3 landscape photo with long side `size`."""
    return size * 3 // 4, size


def export_job(job: dict) -> dict:
    """Exports a randomly initialised network of `job["width"]` to `job["path"]`."""
    from tf_nst.networks.export import export_stylizer
    from tf_nst.networks.transform import build_transform_network

    export_stylizer(build_transform_network(job["width"]), job["path"], {"benchmark": True})
    return {}


def apply_job(job: dict) -> dict:
    """Times the exported stylizer at every size, then batched at BATCHED_SIDE px."""
    import numpy as np

    from tf_nst.networks.memory import estimate_apply_bytes
    from tf_nst.networks.stylizer import load_stylizer
    from tf_nst.networks.transform import count_flops

    stylizer = load_stylizer(job["path"], job["precision"])
    generator = np.random.default_rng(0)
    result = {"per_image": {}}
    for size in job["sizes"]:
        height, width = shape_of(size)
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
    height, width = shape_of(BATCHED_SIDE)
    batch = generator.random((job["batch"], height, width, 3), dtype=np.float32)
    stylizer(batch).numpy()
    best = math.inf
    for _ in range(BATCH_REPEATS):
        started = time.perf_counter()
        stylizer(batch).numpy()
        best = min(best, time.perf_counter() - started)
    result["batched_images_per_second"] = job["batch"] / best
    largest = max(job["sizes"])
    result["estimate"] = max(
        estimate_apply_bytes(*shape_of(largest), stylizer.width, stylizer.precision),
        estimate_apply_bytes(height, width, stylizer.width, stylizer.precision, job["batch"]),
    )
    return result


def optimization_job(job: dict) -> dict:
    """The optimisation's default run at 512 px, timed from the images to the final image."""
    from tf_nst.config import StyleConfig
    from tf_nst.image.decoding import load_image
    from tf_nst.optimize.optimization import Optimization

    content, style = load_image(job["content"]), load_image(job["style"])
    started = time.perf_counter()
    config = StyleConfig(size=512, backbone="vgg16", weights=job["weights"])
    optimization = Optimization(content, [style], config)
    for _ in optimization.steps():
        pass
    final = optimization.final_image()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "shape": list(final.shape[:2]), "precision": optimization.precision}


JOBS = {
    "export": export_job,
    "apply": apply_job,
    "matmul": harness.matmul_job,
    "optimization": optimization_job,
}


def mebibytes(count: float) -> str:
    return f"{count / harness.MB:.0f} MiB"


def per_image(result: dict, size: int) -> dict | None:
    """One configuration's measurement at `size`, or None where it failed."""
    return result.get("per_image", {}).get(str(size)) if result["ok"] else None


def column_names(results: dict) -> list[str]:
    return [f"w{width} {precision}" for width, precision in results]


def milliseconds_table(results: dict, args) -> list[str]:
    """Milliseconds per image, one row per size, one column per (width, precision)."""
    rows = []
    for size in args.sizes:
        measured = [per_image(result, size) for result in results.values()]
        rows.append([str(size)] + [f"{m['ms']:.0f}" if m else "failed" for m in measured])
    lines = ["## Milliseconds per image", ""]
    return lines + harness.markdown_table(["size"] + column_names(results), rows)


def batched_table(results: dict, args) -> list[str]:
    """Batched and single images/s at BATCHED_SIDE px, and each configuration's peak memory."""
    rows = []
    for (width, precision), result in results.items():
        if not result["ok"]:
            rows.append([str(width), precision, "failed", "", "", ""])
            continue
        single = per_image(result, BATCHED_SIDE)
        rows.append(
            [
                str(width),
                precision,
                f"{result['batched_images_per_second']:.2f}",
                f"{1000 / single['ms']:.2f}" if single else "",
                mebibytes(result["peak_rss"]),
                mebibytes(result["estimate"]),
            ]
        )
    headers = ["width", "precision", "batched images/s", "single images/s", "peak RSS", "estimate"]
    title = f"## Batched at {BATCHED_SIDE} px ({args.batch} images per call), peak memory"
    return [title, ""] + harness.markdown_table(headers, rows)


def throughput_table(results: dict, matmul: dict, args) -> list[str]:
    """Achieved GFLOP/s of every configuration at every size, as a share of the matmul peak."""
    lines = ["## Achieved GFLOP/s (convolutions counted analytically)", ""]
    if matmul["ok"]:
        lines += [
            f"Matmul peak ({args.matmul_n}x{args.matmul_n}): fp32 {matmul['fp32']:.0f} GFLOP/s, "
            f"bf16 {matmul['bf16']:.0f} GFLOP/s.",
            "",
        ]
    rows = []
    for size in args.sizes:
        row = [str(size)]
        for (_, precision), result in results.items():
            measured = per_image(result, size)
            if not measured:
                row.append("failed")
                continue
            share = f" ({measured['gflops'] / matmul[precision]:.0%})" if matmul["ok"] else ""
            row.append(f"{measured['gflops']:.0f}{share}")
        rows.append(row)
    return lines + harness.markdown_table(["size"] + column_names(results), rows)


def optimization_table(results: dict, optimization: dict) -> list[str]:
    """The optimisation's time at 512 px over each network's time per image at BATCHED_SIDE px."""
    lines = ["## Against the optimisation's default at 512 px", ""]
    if not optimization["ok"]:
        return lines + [f"Optimisation failed: {optimization['error']}"]
    rows = []
    for (width, precision), result in results.items():
        single = per_image(result, BATCHED_SIDE)
        if single:
            ratio = optimization["seconds"] * 1000 / single["ms"]
            rows.append([f"w{width} {precision}", f"{single['ms']:.0f} ms", f"{ratio:.0f}x"])
    lines += [
        f"Optimisation (tf-nst stylize defaults, VGG16, {optimization['precision']}, "
        f"{optimization['shape'][1]}x{optimization['shape'][0]}): "
        f"{optimization['seconds']:.1f} s, peak {mebibytes(optimization['peak_rss'])}.",
        "",
    ]
    headers = ["network", f"per image at {BATCHED_SIDE} px", "optimisation / network"]
    return lines + harness.markdown_table(headers, rows)


def report(results: dict, matmul: dict, optimization: dict | None, args) -> str:
    """Every table as markdown; `results` maps (width, precision) to its apply job's result."""
    repeats = ", ".join(f"{n} at {s}" for s, n in REPEATS.items() if s in args.sizes)
    lines = [
        "# tf_nst fast style network: apply benchmark",
        "",
        f"{os.cpu_count()} CPUs visible; random networks; 4:3 images, size = long side; "
        f"best of {repeats} calls after a warm-up.",
        "",
    ]
    lines += milliseconds_table(results, args) + [""]
    lines += batched_table(results, args) + [""]
    lines += throughput_table(results, matmul, args)
    if optimization is not None:
        lines += [""] + optimization_table(results, optimization)
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
    args = parser.parse_args(argv)
    args.sizes = (256, 512) if args.quick else SIZES
    args.widths = (16,) if args.quick else WIDTHS
    args.matmul_n = 1024 if args.quick else 4096
    return args


def measure_networks(runner: harness.Runner, args, folder: str) -> dict:
    """Exports each width and applies it at each precision; (width, precision) to the result."""
    repeats = {str(size): count for size, count in REPEATS.items()}
    results = {}
    for width in args.widths:
        path = str(pathlib.Path(folder) / f"width{width}")
        export = {"id": f"export/{width}", "kind": "export", "width": width, "path": path}
        exported = runner.run([export])[export["id"]]["ok"]
        for precision in PRECISIONS:
            job = {
                "id": f"apply/{width}/{precision}",
                "label": f"width {width} {precision}",
                "kind": "apply",
                "path": path,
                "precision": precision,
                "sizes": list(args.sizes),
                "repeats": repeats,
                "batch": args.batch,
            }
            results[(width, precision)] = (
                runner.run([job])[job["id"]] if exported else {"ok": False, "error": "not exported"}
            )
    return results


def main(argv=None) -> int:
    """Runs every measurement in child processes and prints the tables."""
    args = parse_args(argv)
    runner = harness.Runner(__file__)
    with tempfile.TemporaryDirectory(prefix="apply_benchmark.") as folder:
        results = measure_networks(runner, args, folder)
    matmul_job = {"id": "matmul", "kind": "matmul", "n": args.matmul_n, "repeats": MATMUL_REPEATS}
    matmul = runner.run([matmul_job])["matmul"]
    optimization = None
    if args.optimization:
        job = {
            "id": "optimization",
            "label": "the optimisation at 512 px",
            "kind": "optimization",
            "weights": str(harness.WEIGHTS),
            "content": str(harness.CONTENT),
            "style": str(harness.STYLE),
        }
        optimization = runner.run([job])["optimization"]
    text = report(results, matmul, optimization, args)
    print(text)
    if args.output:
        pathlib.Path(args.output).write_text(text, encoding="utf-8")
    return 0 if all(result["ok"] for result in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
