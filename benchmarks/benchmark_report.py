"""The tables of benchmark.py: one function per table, each returning its markdown lines.

benchmarks/README.md, "Reading the output", explains every table. Every function takes the parsed
command line (`args`), the results by job id (`harness.Results`: a job that did not run reads as
failed) and `best`, the fastest (precision, XLA) candidate at each speed size.
"""

from __future__ import annotations

import os

from benchmark_plan import OPTIMIZERS, candidate_id, candidates, config_name
from harness import MB, Results, cpu_name, format_value, markdown_table
from tutorial_baseline import CONTENT_LAYERS

from tf_nst.features.backbones import BLOCK_DEPTHS, BLOCK_FILTERS

# The targets checked: the speed-up of a step at the large size, and the share of the baseline's
# time tf_nst may take to reach the baseline's objective at the small size.
SPEEDUP_TARGET = 4.0
TIME_SHARE_TARGET = 1 / 3


def conv_flops(height: int, width: int, deepest: str = CONTENT_LAYERS[0]) -> float:
    """Forward FLOPs of VGG16's convolutions up to `deepest` at `height` x `width`.

    2 * H * W * Cin * Cout * 9 per 3x3 convolution ('same' padding), at the layer's resolution.
    """
    total, channels = 0.0, 3
    blocks = zip(BLOCK_DEPTHS["vgg16"], BLOCK_FILTERS, strict=True)
    for block, (depth, filters) in enumerate(blocks, start=1):
        # A 2x2 pooling with stride 2 ends every block; floor division composes.
        block_height, block_width = height // 2 ** (block - 1), width // 2 ** (block - 1)
        for index in range(1, depth + 1):
            total += 2.0 * block_height * block_width * channels * filters * 9
            channels = filters
            if f"block{block}_conv{index}" == deepest:
                return total
    return total


def linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """Least squares y = a + b x; returns (a, b, R^2)."""
    count = len(xs)
    mean_x, mean_y = sum(xs) / count, sum(ys) / count
    sxx = sum((x - mean_x) ** 2 for x in xs)
    if sxx == 0:
        return mean_y, 0.0, 0.0
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = mean_y - slope * mean_x
    total = sum((y - mean_y) ** 2 for y in ys)
    residual = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    return intercept, slope, (1.0 - residual / total) if total else 1.0


def megabytes(result: dict, key: str = "peak_rss") -> str:
    return format_value(result[key] / MB if result["ok"] else None, "{:.0f}")


def header(args, weights_note: str, image_note: str) -> list[str]:
    """The title and what every table shares: weights, images, CPU, process isolation."""
    isolation = (
        "all jobs of a stage share ONE process (--quick): peak memory is cumulative"
        if args.quick
        else "every configuration ran in its own process"
    )
    return [
        "# tf_nst benchmark",
        "",
        f"- {weights_note}",
        f"- {image_note}; both resized to the long side of each size",
        f"- CPU: {cpu_name()}, {os.cpu_count()} logical cores; {isolation}",
        "- seconds per step: median of the timed steps after the warm-up steps, wall clock",
        "- all tf_nst runs optimise the tutorial's objective: style block1..5_conv1, content "
        "block5_conv2, weights 1e-2 / 1e4 / 30, --loss-normalization tutorial, one scale",
    ]


def speed_table(args, results: Results, best: dict) -> list[str]:
    """Seconds per step of the baseline and of tf_nst's fastest candidate, and their ratio."""
    rows = []
    for size in args.speed_sizes:
        base = results[f"baseline/{size}"]
        mine = results[candidate_id(size, *best[size])]
        base_seconds = base["seconds_per_step"] if base["ok"] else None
        mine_seconds = mine["seconds_per_step"] if mine["ok"] else None
        speedup = base_seconds / mine_seconds if base_seconds and mine_seconds else None
        shape = base.get("shape") or mine.get("shape") or ["?", "?"]
        rows.append(
            [
                f"{size} px ({shape[1]}x{shape[0]})",
                format_value(base_seconds),
                config_name(*best[size]),
                format_value(mine_seconds),
                format_value(speedup, "{:.2f}x"),
                megabytes(base),
                megabytes(mine),
            ]
        )
    headers = [
        "size",
        "baseline s/step",
        "tf_nst best",
        "tf_nst s/step",
        "speed-up",
        "baseline peak MB",
        "tf_nst peak MB",
    ]
    title = (
        f"## Seconds per step (median of {args.steps_per_size} steps after {args.warmup} warm-up)"
    )
    return [title, ""] + markdown_table(headers, rows)


def candidates_table(args, results: Results, best: dict) -> list[str]:
    """Every precision/XLA candidate: speed, memory, estimate and achieved conv throughput."""
    matmul = results["matmul"]
    rows = []
    for size in args.speed_sizes:
        base = results[f"baseline/{size}"]
        for precision, jit in candidates(args, size):
            result = results[candidate_id(size, precision, jit)]
            if not result["ok"]:
                rows.append([f"{size} px", config_name(precision, jit), "failed"] + [""] * 6)
                continue
            seconds = result["seconds_per_step"]
            fastest = min(result["step_times"][args.warmup :] or result["step_times"])
            gflops = 2.0 * conv_flops(*result["shape"]) / seconds / 1e9
            peak = matmul.get(precision) if matmul["ok"] else None
            marker = " (best)" if best[size] == (precision, jit) else ""
            speedup = base["seconds_per_step"] / seconds if base["ok"] else None
            rows.append(
                [
                    f"{size} px",
                    config_name(precision, jit) + marker,
                    format_value(seconds),
                    format_value(fastest),
                    format_value(speedup, "{:.2f}x"),
                    f"{result['peak_rss'] / MB:.0f}",
                    f"{result['estimate'] / MB:.0f}",
                    f"{gflops:.0f}",
                    format_value(100.0 * gflops / peak if peak else None, "{:.0f}%"),
                ]
            )
    headers = [
        "size",
        "config",
        "s/step",
        "min s/step",
        "vs baseline",
        "peak MB",
        "estimate MB",
        "conv GFLOP/s",
        "of matmul peak",
    ]
    lines = ["## tf_nst candidates (Adam step; L-BFGS costs the same per evaluation)", ""]
    lines += markdown_table(headers, rows) + [""]
    if matmul["ok"]:
        lines.append(
            f"Practical peak, {matmul['n']}x{matmul['n']} tf.matmul, best of several: "
            f"fp32 {matmul['fp32']:.0f} GFLOP/s, bf16 {matmul['bf16']:.0f} GFLOP/s."
        )
    large = args.speed_sizes[1]
    shape = results[candidate_id(large, "fp32", False)].get("shape")
    if shape:
        forward = conv_flops(*shape)
        lines.append(
            f"Conv FLOPs per step at {large} px ({shape[1]}x{shape[0]}), counted analytically: "
            f"forward {forward / 1e9:.1f} GFLOP (2*H*W*Cin*Cout*9 per conv, 12 convs up to "
            f"block5_conv2) + backward {forward / 1e9:.1f} GFLOP. The backward pass computes only "
            "the input gradient (the VGG weights are frozen, so no weight gradients), which costs "
            "the same as the forward conv; total = 2x forward. Gram, loss, pooling and "
            "element-wise FLOPs are not counted. GFLOP/s is compared with the matmul peak of the "
            "same dtype."
        )
    return lines


def race_table(args, results: Results, best: dict) -> list[str]:
    """The time tf_nst (Adam and L-BFGS) needs to reach the baseline's objective."""
    small = args.speed_sizes[0]
    baseline = results[f"baseline/{small}"]
    lines = [f"## Time to the baseline's objective at {small} px", ""]
    if not baseline["ok"]:
        return lines + [f"Baseline run failed: {baseline['error']}"]
    target, baseline_seconds = baseline["objective"], baseline["total_seconds"]
    lines += [
        f"Baseline: {args.baseline_steps} tutorial Adam steps in {baseline_seconds:.1f} s "
        "(targets, tracing and every step), tutorial objective "
        f"{baseline['initial_objective']:.4g} -> {target:.4g}. tf_nst runs until "
        f"tutorial_objective(best image) <= {target:.4g}, "
        f"checked every {args.eval_every} steps (checks not timed), giving up at "
        f"{args.race_cap:.2f} x the baseline's time.",
        "",
    ]
    rows = []
    for optimizer in OPTIMIZERS:
        result = results[f"race/{optimizer}"]
        name = config_name(*best[small], optimizer)
        if not result["ok"]:
            rows.append([name, "failed", "", "", "", "", ""])
            continue
        ratio = result["seconds"] / baseline_seconds
        rows.append(
            [
                name,
                "yes" if result["reached"] else "no",
                str(result["steps"]),
                f"{result['seconds']:.1f}",
                f"{ratio:.3f}" if result["reached"] else f"> {ratio:.3f}",
                f"{result['best_objective']:.4g}",
                f"{result['peak_rss'] / MB:.0f}",
            ]
        )
    headers = [
        "tf_nst config",
        "reached",
        "steps",
        "seconds",
        "time / baseline time",
        "best objective",
        "peak MB",
    ]
    return lines + markdown_table(headers, rows)


def memory_table(args, results: Results, best: dict) -> list[str]:
    """Peak memory of one step at every memory size against the estimate, and the refits."""
    lines = [
        f"## Peak memory of one tf_nst step ({config_name(*best[args.speed_sizes[1]])}, "
        "own process each)",
        "",
    ]
    rows, points = [], []
    for size in args.memory_sizes:
        result = results[f"memory/{size}"]
        if not result["ok"]:
            rows.append([f"{size} px", "", "failed", "", ""])
            continue
        height, width = result["shape"]
        points.append(result)
        rows.append(
            [
                f"{size} px ({width}x{height})",
                f"{height * width / 1e6:.3f}",
                f"{result['peak_rss'] / MB:.0f}",
                f"{result['estimate'] / MB:.0f}",
                f"{result['peak_rss'] / result['estimate']:.2f}",
            ]
        )
    headers = ["size", "megapixels", "peak RSS MB", "estimate MB", "measured / estimate"]
    lines += markdown_table(headers, rows) + memory_fits(args, results, points)
    if args.quick:
        lines += [
            "",
            "(--quick: one process for all memory points, so these peaks are cumulative.)",
        ]
    return lines


def refit(points: list[dict]) -> tuple[float, float, float]:
    """ACTIVATION_COPIES and the base refitted: peak - fixed = base + copies * activation bytes.

    Returns (base bytes, copies, R^2).
    """
    return linear_fit(
        [point["activation_bytes"] for point in points],
        [point["peak_rss"] - point["fixed_bytes"] for point in points],
    )


def memory_fits(args, results: Results, points: list[dict]) -> list[str]:
    """The peak against megapixels, and the estimate's two constants refitted to the peaks."""
    lines = []
    if len(points) >= 2:
        intercept, slope, r2 = linear_fit(
            [point["shape"][0] * point["shape"][1] / 1e6 for point in points],
            [point["peak_rss"] / MB for point in points],
        )
        base_fit, copies_fit, r2_fit = refit(points)
        lines += [
            "",
            f"Linear fit: peak RSS = {intercept:.0f} MB + {slope:.0f} MB per megapixel "
            f"(R^2 = {r2:.4f}).",
            f"Now: tf_nst.optimize.memory.ACTIVATION_COPIES = {points[0]['activation_copies']}, "
            f"tf_nst.memory.RUNTIME_BASE_BYTES = {points[0]['base_bytes'] / MB:.0f} MiB. "
            "Refitted to these points (peak - fixed = BASE + COPIES * activation bytes, "
            f"R^2 = {r2_fit:.4f}): ACTIVATION_COPIES = {copies_fit:.2f}, "
            f"RUNTIME_BASE_BYTES = {base_fit / MB:.0f} * 2**20.",
        ]
    # The candidate runs (warm-up + timed steps) add fp32 points and show what XLA costs.
    sweep = [
        (size, precision, jit, results[candidate_id(size, precision, jit)])
        for size in args.speed_sizes
        for precision, jit in candidates(args, size)
    ]
    plain = [result for _, _, jit, result in sweep if result["ok"] and not jit] + points
    if len({result["precision"] for result in plain}) > 1:
        base_all, copies_all, r2_all = refit(plain)
        lines.append(
            f"Refitted to every non-XLA run of this benchmark ({len(plain)} points, fp32 and bf16,"
            f" R^2 = {r2_all:.4f}): ACTIVATION_COPIES = {copies_all:.2f}, "
            f"RUNTIME_BASE_BYTES = {base_all / MB:.0f} * 2**20."
        )
    with_xla = [
        f"{config_name(precision, jit)} {size} px {result['peak_rss'] / result['estimate']:.2f}"
        for size, precision, jit, result in sweep
        if result["ok"] and jit
    ]
    if with_xla:
        lines.append(
            "measured / estimate of the XLA runs (the estimate does not model XLA's buffers): "
            + ", ".join(with_xla)
            + "."
        )
    return lines


def targets(args, results: Results, best: dict) -> list[str]:
    """Whether the two targets are met, and the fastest tf_nst configuration found."""
    small, large = args.speed_sizes
    lines = ["## Targets", ""]
    base = results[f"baseline/{large}"]
    mine = results[candidate_id(large, *best[large])]
    if base["ok"] and mine["ok"]:
        speedup = base["seconds_per_step"] / mine["seconds_per_step"]
        verdict = "MET" if speedup >= SPEEDUP_TARGET else "NOT MET"
        lines.append(
            f"- >= {SPEEDUP_TARGET:g}x steps/s at {large} px: {verdict} ({speedup:.2f}x, "
            f"{config_name(*best[large])})"
        )
    baseline = results[f"baseline/{small}"]
    races = {
        optimizer: results[f"race/{optimizer}"]
        for optimizer in OPTIMIZERS
        if results[f"race/{optimizer}"]["ok"]
    }
    if races and baseline["ok"]:
        optimizer, result = min(
            races.items(), key=lambda item: (not item[1]["reached"], item[1]["seconds"])
        )
        ratio = result["seconds"] / baseline["total_seconds"]
        verdict = "MET" if result["reached"] and ratio <= TIME_SHARE_TARGET else "NOT MET"
        shown = f"{ratio:.3f}" if result["reached"] else f"not reached within {ratio:.3f}"
        lines += [
            f"- baseline's {args.baseline_steps}-step objective in <= 1/3 of its time at {small}"
            f" px: {verdict} ({shown}, {config_name(*best[small], optimizer)})",
            f"- fastest tf_nst configuration: {config_name(*best[large], optimizer)} "
            f"(step: {config_name(*best[large])} at {large} px, "
            f"{config_name(*best[small])} at {small} px; optimizer by time to target)",
        ]
    return lines


def profile_table(args, results: Results, best: dict) -> list[str]:
    """Where the time of one tf_nst step goes, by part of the step, and the slowest ops."""
    large = args.speed_sizes[1]
    result = results["profile"]
    lines = [f"## Profile of one tf_nst step at {large} px ({config_name(*best[large])})", ""]
    if not result["ok"]:
        return lines + [f"Profile failed: {result['error']}"]
    total = sum(seconds for _, seconds in result["groups"]) or 1.0
    lines += [
        f"Method: {result['method']}. Wall time per step {result['wall_seconds_per_step']:.3f}"
        f" s; op time {total:.3f} s per step (ops can overlap on the executor threads).",
        "",
    ]
    lines += markdown_table(
        ["part of the step", "seconds", "share"],
        [
            [group, f"{seconds:.3f}", f"{100 * seconds / total:.1f}%"]
            for group, seconds in result["groups"]
        ],
    )
    if result["top_ops"]:
        lines += [""] + markdown_table(
            ["slowest ops", "seconds"],
            [[name, f"{seconds:.4f}"] for name, seconds in result["top_ops"]],
        )
    return lines


def report(args, results: Results, best: dict, image_note: str, weights_note: str) -> list[str]:
    """Every table, in order, separated by blank lines."""
    lines = header(args, weights_note, image_note)
    sections = [speed_table, candidates_table, race_table, memory_table, targets]
    if args.profile:
        sections.append(profile_table)
    for section in sections:
        lines += [""] + section(args, results, best)
    return lines
