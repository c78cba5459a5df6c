"""Which jobs benchmark.py runs, in two stages, and how its configurations are named.

The first stage holds everything that depends on no other measurement: the matmul peak, the
baseline at both sizes and every tf_nst candidate. The second needs the first's results: the races
(against the baseline's objective, with the fastest step at the small size), the memory points and
the profile (with the fastest step at the large size).
"""

from __future__ import annotations

import harness

# tf_nst's candidate step configurations: (precision, XLA).
CANDIDATES = (("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True))
OPTIMIZERS = ("lbfgs", "adam")
# A race stops at the time cap; this bound on its steps only keeps the loop's plan finite.
RACE_MAX_STEPS = 100_000


def config_name(precision: str, jit: bool, optimizer: str | None = None) -> str:
    """E.g. "bf16+XLA adam"."""
    name = f"{precision}{'+XLA' if jit else ''}"
    return f"{name} {optimizer}" if optimizer else name


def candidates(args, size: int) -> tuple[tuple[str, bool], ...]:
    """The (precision, XLA) candidates measured at `size`: all, but --quick skips XLA when small."""
    if args.quick and size == args.speed_sizes[0]:
        return tuple(candidate for candidate in CANDIDATES if not candidate[1])
    return CANDIDATES


def candidate_id(size: int, precision: str, jit: bool) -> str:
    return f"tf_nst/{size}/{config_name(precision, jit)}"


def first_stage(args) -> list[dict]:
    """The matmul peak, the baseline at both sizes and every tf_nst candidate."""
    small, large = args.speed_sizes
    steps, warmup = args.steps_per_size, args.warmup
    jobs = [
        {
            "id": "matmul",
            "label": "matmul peak",
            "kind": "matmul",
            "n": args.matmul_n,
            "repeats": 3 if args.quick else 4,
        },
        {
            "id": f"baseline/{small}",
            "label": f"baseline {small} px x{args.baseline_steps}",
            "kind": "baseline",
            "size": small,
            "steps": args.baseline_steps,
            "warmup": min(warmup, args.baseline_steps - 1),
            "objective": True,
        },
        {
            "id": f"baseline/{large}",
            "label": f"baseline {large} px",
            "kind": "baseline",
            "size": large,
            "steps": warmup + steps,
            "warmup": warmup,
        },
    ]
    for size in (large, small):
        for precision, jit in candidates(args, size):
            jobs.append(
                {
                    "id": candidate_id(size, precision, jit),
                    "label": f"tf_nst {size} px {config_name(precision, jit)}",
                    "kind": "tf_nst",
                    "size": size,
                    "precision": precision,
                    "jit": jit,
                    "steps": steps,
                    "warmup": warmup,
                }
            )
    return jobs


def best_configurations(args, results: harness.Results) -> dict[int, tuple[str, bool]]:
    """The fastest (precision, XLA) candidate at each speed size; fp32 where all failed."""
    best = {}
    for size in args.speed_sizes:
        timed = [
            (results[candidate_id(size, precision, jit)], (precision, jit))
            for precision, jit in candidates(args, size)
        ]
        timed = [(result["seconds_per_step"], config) for result, config in timed if result["ok"]]
        best[size] = min(timed)[1] if timed else ("fp32", False)
    return best


def second_stage(args, results: harness.Results, best: dict) -> list[dict]:
    """The races, the memory points and the profile."""
    small, large = args.speed_sizes
    best_precision, best_jit = best[large]
    baseline_race = results[f"baseline/{small}"]
    jobs = []
    if baseline_race["ok"]:
        race_precision, race_jit = best[small]
        for optimizer in OPTIMIZERS:
            jobs.append(
                {
                    "id": f"race/{optimizer}",
                    "label": f"race {small} px {optimizer}",
                    "kind": "race",
                    "size": small,
                    "precision": race_precision,
                    "jit": race_jit,
                    "optimizer": optimizer,
                    "target": baseline_race["objective"],
                    "cap_seconds": args.race_cap * baseline_race["total_seconds"],
                    "eval_every": args.eval_every,
                    "max_steps": RACE_MAX_STEPS,
                }
            )
    for size in args.memory_sizes:
        jobs.append(
            {
                "id": f"memory/{size}",
                "label": f"memory {size} px",
                "kind": "tf_nst",
                "size": size,
                "precision": best_precision,
                "jit": best_jit,
                "steps": 1,
                "warmup": 0,
            }
        )
    if args.profile:
        jobs.append(
            {
                "id": "profile",
                "label": f"profile {large} px",
                "kind": "profile",
                "size": large,
                "precision": best_precision,
                "jit": best_jit,
                "steps": 2,
                "warmup": 1 if args.quick else 2,
            }
        )
    return jobs


def describe_result(result: dict) -> str:
    """The progress line's summary of a finished job."""
    parts = []
    if "seconds_per_step" in result:
        parts.append(f"{result['seconds_per_step']:.3f} s/step")
    if "reached" in result:
        state = "reached" if result["reached"] else "not reached"
        parts.append(f"{state} after {result['steps']} steps, {result['seconds']:.1f} s")
    if "objective" in result:
        parts.append(f"objective {result['objective']:.4g}")
    if "fp32" in result and "bf16" in result:
        parts.append(f"fp32 {result['fp32']:.0f} GFLOP/s, bf16 {result['bf16']:.0f} GFLOP/s")
    parts.append(harness.describe_peak(result))
    return ", ".join(parts)
