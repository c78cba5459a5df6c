"""The measurements of benchmark.py: what its child processes run (`JOBS`, see harness.py).

Every job gets the images' and weights' paths ("content", "style", "weights") with its own fields,
and returns a JSON-able dict. tf_nst always optimises the tutorial's objective here (same layers,
weights and "tutorial" loss normalisation, one scale), so that it does the same work per step as
the baseline (tutorial_baseline.py).
"""

from __future__ import annotations

import math
import statistics
import time

import benchmark_profile
import harness
from tutorial_baseline import (
    CONTENT_LAYERS,
    CONTENT_WEIGHT,
    LEARNING_RATE,
    STYLE_LAYERS,
    STYLE_WEIGHT,
    TV_WEIGHT,
    TutorialStyleTransfer,
    run_tutorial,
    tutorial_objective,
)


def load_images(job: dict):
    """The job's content and style images, resized to its long side "size"."""
    from tf_nst.image.decoding import load_image, resize_to_long_side

    content = resize_to_long_side(load_image(job["content"]), job["size"])
    style = resize_to_long_side(load_image(job["style"]), job["size"])
    return content, style


def tf_nst_config(job: dict, optimizer: str, steps: int):
    """The StyleConfig of the tutorial's objective at the job's size, precision and XLA choice."""
    from tf_nst.config import StyleConfig

    return StyleConfig(
        size=job["size"],
        steps=steps,
        learning_rate=LEARNING_RATE,
        content_weight=CONTENT_WEIGHT,
        style_weight=STYLE_WEIGHT,
        tv_weight=TV_WEIGHT,
        content_layers=CONTENT_LAYERS,
        style_layers=STYLE_LAYERS,
        backbone="vgg16",
        weights=job["weights"],
        optimizer=optimizer,
        scales=1,
        loss_normalization="tutorial",
        init="content",  # the tutorial's start, so that both race from the same image
        precision=job["precision"],
        jit=job["jit"],
    )


def memory_estimate(height: int, width: int, precision: str) -> dict:
    """Returns tf_nst's estimate of one step and its parts, to refit its constants to a peak.

    "activation_bytes" is one copy of every activation, "fixed_bytes" what the estimate adds
    besides the activations and the runtime base.
    """
    from tf_nst.memory import RUNTIME_BASE_BYTES
    from tf_nst.optimize import memory

    layers = STYLE_LAYERS + CONTENT_LAYERS
    estimate = memory.estimate_peak_bytes(height, width, "vgg16", layers, precision)
    copies = memory.ACTIVATION_COPIES
    try:  # the estimate is linear in the copies: read one copy's bytes off by setting them.
        memory.ACTIVATION_COPIES = 1.0
        one_copy = memory.estimate_peak_bytes(height, width, "vgg16", layers, precision)
        memory.ACTIVATION_COPIES = 0.0
        no_copy = memory.estimate_peak_bytes(height, width, "vgg16", layers, precision)
    finally:
        memory.ACTIVATION_COPIES = copies
    return {
        "estimate": estimate,
        "activation_bytes": one_copy - no_copy,
        "fixed_bytes": no_copy - RUNTIME_BASE_BYTES,
        "activation_copies": copies,
        "base_bytes": RUNTIME_BASE_BYTES,
    }


def baseline_job(job: dict) -> dict:
    """The tutorial's loop at the job's size; with "objective", its final objective too."""
    content, style = load_images(job)
    return run_tutorial(
        job["weights"], content, style, job["steps"], job["warmup"], job.get("objective", False)
    )


def tf_nst_job(job: dict) -> dict:
    """Times `warmup + steps` steps of tf_nst; wall time between the steps the loop yields."""
    from tf_nst.optimize.optimization import Optimization

    content, style = load_images(job)
    total = job["warmup"] + job["steps"]
    optimization = Optimization(
        content, [style], tf_nst_config(job, job.get("optimizer", "adam"), total)
    )
    times, losses = [], []
    last = time.perf_counter()
    for result in optimization.steps():
        now = time.perf_counter()
        times.append(now - last)
        losses.append(result.loss)
        last = now
    timed = times[job["warmup"] :] or times
    height, width = content.shape[:2]
    return {
        "shape": [height, width],
        "step_times": times,
        "seconds_per_step": statistics.median(timed),
        "losses": losses,
        "precision": optimization.precision,
        **memory_estimate(height, width, optimization.precision),
    }


def race_job(job: dict) -> dict:
    """Runs tf_nst until the tutorial objective of its best image reaches `job["target"]`.

    Only the time spent inside tf_nst's loop counts; evaluating the objective every
    `eval_every` steps is excluded from the clock.
    """
    from tf_nst.optimize.optimization import Optimization

    content, style = load_images(job)
    judge = TutorialStyleTransfer(job["weights"], content, style)
    judge.compute_targets()
    tutorial_objective(judge, content)  # traces the objective before the clock starts.
    config = tf_nst_config(job, job["optimizer"], job["max_steps"])
    optimization = Optimization(content, [style], config)
    steps = optimization.steps()
    clock, step, curve = 0.0, 0, []
    reached_seconds = reached_step = None
    best_objective = math.inf
    try:
        # At least one evaluation, however short the cap.
        while clock < job["cap_seconds"] or step < job["eval_every"]:
            started = time.perf_counter()
            try:
                result = next(steps)
            except StopIteration:
                break
            clock += time.perf_counter() - started
            step += 1
            if step % job["eval_every"] == 0:
                value = tutorial_objective(judge, result.best_image)
                best_objective = min(best_objective, value)
                curve.append([step, round(clock, 3), value])
                if value <= job["target"]:
                    reached_seconds, reached_step = clock, step
                    break
    finally:
        steps.close()
    return {
        "reached": reached_seconds is not None,
        "seconds": reached_seconds if reached_seconds is not None else clock,
        "steps": reached_step if reached_step is not None else step,
        "best_objective": best_objective,
        "curve": curve,
        "precision": optimization.precision,
        "stop_reason": optimization.stop_reason,
    }


def random_weights_job(job: dict) -> dict:
    """Writes a seeded random VGG16 (Keras layout) to `job["path"]`, for when none is shared."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.VGG16(include_top=False, weights=None)
    model.save_weights(job["path"])
    return {"path": job["path"]}


def profile_job(job: dict) -> dict:
    """Profiles tf_nst's Adam step at the job's size by op (benchmark_profile.py)."""
    from tf_nst.optimize.optimization import Optimization

    content, style = load_images(job)
    config = tf_nst_config(job, "adam", job["warmup"] + job["steps"])
    return benchmark_profile.profile_steps(
        Optimization(content, [style], config), job["warmup"], job["steps"]
    )


JOBS = {
    "baseline": baseline_job,
    "tf_nst": tf_nst_job,
    "race": race_job,
    "matmul": harness.matmul_job,
    "random_weights": random_weights_job,
    "profile": profile_job,
}
