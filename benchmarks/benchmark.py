#!/usr/bin/env python
"""tf_nst against the TensorFlow tutorial "Neural style transfer", on this machine, in one run.

Usage:
    python benchmarks/benchmark.py [--quick] [--profile] [--output table.md]

What is measured (benchmarks/README.md explains how to read every table):

* Seconds per step of a faithful re-implementation of the tutorial (the *baseline*, written here
  and independent of tf_nst's losses and step) and of tf_nst's candidate configurations
  (precision fp32/bf16 x XLA off/on) at 256 and 512 px, and their ratio.
* The wall time tf_nst needs (Adam and L-BFGS) to reach the objective value the baseline has after
  `--baseline-steps` steps at 256 px, the objective always computed with the tutorial's formulas
  by `tutorial_objective` in float32.
* Peak resident memory of every configuration, each measured in its own process.
* Achieved GFLOP/s of the tf_nst step against a large float32 and bfloat16 matmul.
* Peak memory of one tf_nst step at 256 to 2048 px, against `tf_nst.optimize.memory.estimate_peak_bytes`.
* With `--profile`, where the time of one tf_nst step goes, by op.

Every measurement runs in a child process of this script (`--worker`, internal), so each peak
resident memory is that configuration's own; `--quick` batches them into two processes to stay
fast, and says so. All tf_nst runs optimise the tutorial's objective (same layers, weights and
"tutorial" loss normalisation) so that the baseline and tf_nst do the same work per step.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

REPOSITORY = pathlib.Path(__file__).resolve().parent.parent
SHARED = pathlib.Path(os.environ.get("TF_NST_SHARED", REPOSITORY.parent / "shared"))
DEFAULT_WEIGHTS = SHARED / "weights" / "vgg16_imagenet_keras_convention_notop.weights.h5"
DEFAULT_CONTENT = SHARED / "images" / "tubingen.jpg"
DEFAULT_STYLE = SHARED / "images" / "starry_night.jpg"

# The tutorial's objective and optimizer.
STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
CONTENT_LAYERS = ("block5_conv2",)
STYLE_WEIGHT = 1e-2
CONTENT_WEIGHT = 1e4
TV_WEIGHT = 30.0
LEARNING_RATE = 0.02
BETA_1 = 0.99
EPSILON = 1e-1

# VGG16's convolutions: (block, filters) in network order; a 2x2 pooling ends every block.
VGG16_CONVS = tuple(
    (block, filters)
    for block, (depth, filters) in enumerate(
        zip((2, 2, 3, 3, 3), (64, 128, 256, 512, 512), strict=True), start=1
    )
    for _ in range(depth)
)
VGG16_NAMES = tuple(
    f"block{block}_conv{index}"
    for block, depth in enumerate((2, 2, 3, 3, 3), start=1)
    for index in range(1, depth + 1)
)

# tf_nst's candidate step configurations: (precision, XLA).
CANDIDATES = (("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True))
OPTIMIZERS = ("lbfgs", "adam")
RESULT_MARK = "@@RESULT "
MB = 2**20


# =================================================================================================
# Worker side: everything below up to "Parent side" runs in a child process.
# =================================================================================================


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


def _images(spec: dict, size: int):
    from tf_nst.image.decoding import load_image, resize_to_long_side

    content = resize_to_long_side(load_image(spec["content"]), size)
    style = resize_to_long_side(load_image(spec["style"]), size)
    return content, style


class TutorialStyleTransfer:
    """The TensorFlow tutorial "Neural style transfer", re-implemented on VGG16.

    The extractor is the tutorial's `StyleContentModel` (a Keras VGG model cut at the style and
    content layers, `preprocess_input(inputs * 255)`, Gram matrices of the style outputs); the loss
    is its `style_content_loss` plus `total_variation_weight * tf.image.total_variation`; the step
    is its `@tf.function train_step` (GradientTape, `opt.apply_gradients`, clip to [0, 1]). The one
    change: `train_step` returns the loss, so the caller can wait for the step to finish.
    """

    def __init__(self, weights: str, content, style):
        import keras
        import tensorflow as tf

        self.tf = tf
        self.keras = keras
        vgg = keras.applications.VGG16(include_top=False, weights=weights)
        vgg.trainable = False
        outputs = [vgg.get_layer(name).output for name in STYLE_LAYERS + CONTENT_LAYERS]
        self.vgg = keras.Model([vgg.input], outputs)
        self.vgg.trainable = False
        self.content = tf.constant(content[None], tf.float32)
        self.style = tf.constant(style[None], tf.float32)
        self.style_targets = None
        self.content_targets = None
        self.tutorial_objective = tf.function(self._objective)

    @staticmethod
    def gram_matrix(input_tensor):
        import tensorflow as tf

        result = tf.linalg.einsum("bijc,bijd->bcd", input_tensor, input_tensor)
        input_shape = tf.shape(input_tensor)
        num_locations = tf.cast(input_shape[1] * input_shape[2], tf.float32)
        return result / num_locations

    def extractor(self, inputs):
        """The tutorial's `StyleContentModel.call`; inputs are RGB in [0, 1]."""
        inputs = inputs * 255.0
        preprocessed_input = self.keras.applications.vgg16.preprocess_input(inputs)
        outputs = self.vgg(preprocessed_input)
        style_outputs = outputs[: len(STYLE_LAYERS)]
        content_outputs = outputs[len(STYLE_LAYERS) :]
        style_outputs = [self.gram_matrix(style_output) for style_output in style_outputs]
        content_dict = dict(zip(CONTENT_LAYERS, content_outputs, strict=True))
        style_dict = dict(zip(STYLE_LAYERS, style_outputs, strict=True))
        return {"content": content_dict, "style": style_dict}

    def compute_targets(self) -> None:
        """The tutorial's `style_targets` and `content_targets`."""
        self.style_targets = self.extractor(self.style)["style"]
        self.content_targets = self.extractor(self.content)["content"]

    def style_content_loss(self, outputs):
        tf = self.tf
        style_outputs = outputs["style"]
        content_outputs = outputs["content"]
        style_loss = tf.add_n(
            [
                tf.reduce_mean((style_outputs[name] - self.style_targets[name]) ** 2)
                for name in style_outputs
            ]
        )
        style_loss *= STYLE_WEIGHT / len(STYLE_LAYERS)
        content_loss = tf.add_n(
            [
                tf.reduce_mean((content_outputs[name] - self.content_targets[name]) ** 2)
                for name in content_outputs
            ]
        )
        content_loss *= CONTENT_WEIGHT / len(CONTENT_LAYERS)
        return style_loss + content_loss

    def _objective(self, image):
        """The tutorial's objective of `image` ([1, h, w, 3] or [h, w, 3]), a scalar."""
        tf = self.tf
        image = tf.convert_to_tensor(image, tf.float32)
        if image.shape.rank == 3:
            image = image[None]
        loss = self.style_content_loss(self.extractor(image))
        loss += TV_WEIGHT * tf.image.total_variation(image)
        return tf.reduce_sum(loss)

    def make_train_step(self):
        """Returns `(image, train_step)` as the tutorial builds them: init = content image."""
        tf = self.tf
        image = tf.Variable(self.content)
        opt = self.keras.optimizers.Adam(
            learning_rate=LEARNING_RATE, beta_1=BETA_1, epsilon=EPSILON
        )

        @tf.function()
        def train_step(image):
            with tf.GradientTape() as tape:
                outputs = self.extractor(image)
                loss = self.style_content_loss(outputs)
                loss += TV_WEIGHT * tf.image.total_variation(image)
            grad = tape.gradient(loss, image)
            opt.apply_gradients([(grad, image)])
            image.assign(tf.clip_by_value(image, clip_value_min=0.0, clip_value_max=1.0))
            return loss

        return image, train_step


def tutorial_objective(model: TutorialStyleTransfer, image) -> float:
    """The tutorial's objective (style + content + total variation) of `image`, in float32."""
    return float(model.tutorial_objective(image))


def _job_baseline(spec: dict, job: dict) -> dict:
    content, style = _images(spec, job["size"])
    model = TutorialStyleTransfer(spec["weights"], content, style)
    started = time.perf_counter()
    model.compute_targets()
    image, train_step = model.make_train_step()
    times, losses = [], []
    last = time.perf_counter()
    for _ in range(job["steps"]):
        loss = float(train_step(image)[0])
        now = time.perf_counter()
        times.append(now - last)
        losses.append(loss)
        last = now
    total = time.perf_counter() - started
    result = {
        "shape": list(content.shape[:2]),
        "step_times": times,
        "seconds_per_step": statistics.median(times[job["warmup"] :]),
        "total_seconds": total,
        "losses": losses[:: max(1, len(losses) // 50)],
    }
    if job.get("objective"):
        result["objective"] = tutorial_objective(model, image)
        result["initial_objective"] = losses[0]
    return result


def _tf_nst_config(spec: dict, size: int, precision: str, jit: bool, optimizer: str, steps: int):
    from tf_nst.config import StyleConfig

    return StyleConfig(
        size=size,
        steps=steps,
        learning_rate=LEARNING_RATE,
        content_weight=CONTENT_WEIGHT,
        style_weight=STYLE_WEIGHT,
        tv_weight=TV_WEIGHT,
        content_layers=CONTENT_LAYERS,
        style_layers=STYLE_LAYERS,
        backbone="vgg16",
        weights=spec["weights"],
        optimizer=optimizer,
        scales=1,
        loss_normalization="tutorial",
        precision=precision,
        jit=jit,
    )


def _memory_estimate(height: int, width: int, precision: str) -> dict:
    """Returns tf_nst.optimize.memory's estimate and its parts (one activation copy, fixed bytes)."""
    from tf_nst.optimize import memory

    layers = STYLE_LAYERS + CONTENT_LAYERS
    estimate = memory.estimate_peak_bytes(height, width, "vgg16", layers, precision)
    copies, base = memory.ACTIVATION_COPIES, memory.BASE_BYTES
    try:  # the estimate is linear in its two constants: read its parts off by setting them.
        memory.ACTIVATION_COPIES, memory.BASE_BYTES = 1.0, 0
        one_copy = memory.estimate_peak_bytes(height, width, "vgg16", layers, precision)
        memory.ACTIVATION_COPIES = 0.0
        fixed = memory.estimate_peak_bytes(height, width, "vgg16", layers, precision)
    finally:
        memory.ACTIVATION_COPIES, memory.BASE_BYTES = copies, base
    return {
        "estimate": estimate,
        "activation_bytes": one_copy - fixed,
        "fixed_bytes": fixed,
        "activation_copies": copies,
        "base_bytes": base,
    }


def _job_tf_nst(spec: dict, job: dict) -> dict:
    """Times `warmup + steps` steps of tf_nst; wall time between the steps the loop yields."""
    from tf_nst.optimize.optimization import Optimization

    content, style = _images(spec, job["size"])
    total = job["warmup"] + job["steps"]
    config = _tf_nst_config(
        spec, job["size"], job["precision"], job["jit"], job.get("optimizer", "adam"), total
    )
    optimization = Optimization(content, [style], config)
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
        **_memory_estimate(height, width, optimization.precision),
    }


def _job_race(spec: dict, job: dict) -> dict:
    """Runs tf_nst until the tutorial objective of its best image reaches `job["target"]`.

    Only the time spent inside tf_nst's loop counts; evaluating the objective every
    `eval_every` steps is excluded from the clock.
    """
    from tf_nst.optimize.optimization import Optimization

    content, style = _images(spec, job["size"])
    judge = TutorialStyleTransfer(spec["weights"], content, style)
    judge.compute_targets()
    tutorial_objective(judge, content)  # traces the objective before the clock starts.
    config = _tf_nst_config(
        spec, job["size"], job["precision"], job["jit"], job["optimizer"], job["max_steps"]
    )
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


def _job_matmul(spec: dict, job: dict) -> dict:
    """Best-of-`repeats` GFLOP/s of an n x n matmul in float32 and bfloat16."""
    import tensorflow as tf

    size = job["n"]
    result = {"n": size}
    for name, dtype in (("fp32", tf.float32), ("bf16", tf.bfloat16)):
        a = tf.cast(tf.random.normal((size, size), seed=1), dtype)
        b = tf.cast(tf.random.normal((size, size), seed=2), dtype)

        @tf.function
        def product(a, b):
            return tf.reduce_sum(tf.cast(tf.matmul(a, b)[:, :8], tf.float32))

        float(product(a, b))
        best = math.inf
        for _ in range(job["repeats"]):
            started = time.perf_counter()
            float(product(a, b))
            best = min(best, time.perf_counter() - started)
        result[name] = 2.0 * size**3 / best / 1e9
    return result


def _job_random_weights(spec: dict, job: dict) -> dict:
    """Writes a seeded random VGG16 (Keras layout) to `job["path"]`, for when none is shared."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.VGG16(include_top=False, weights=None)
    model.save_weights(job["path"])
    return {"path": job["path"]}


# --- the profile ---------------------------------------------------------------------------------

# Op type (as the oneDNN/TensorFlow kernel names it) to the part of the step it belongs to.
PROFILE_GROUPS = (
    ("conv forward (+bias+ReLU)", ("Conv2D", "FusedConv2D")),
    ("conv backward, input gradient", ("Conv2DBackpropInput",)),
    ("Gram matrices, forward + backward (Einsum/BatchMatMul)", ("Einsum", "BatchMatMul")),
    ("ReLU / pooling backward", ("ReluGrad", "MaxPoolGrad", "AvgPoolGrad")),
    ("pooling forward", ("MaxPool", "AvgPool")),
    ("casts fp32<->bf16", ("Cast",)),
)


def _profile_group(op_type: str) -> str:
    bare = op_type.removeprefix("_MklNative").removeprefix("_Mkl").removeprefix("_")
    for group, kinds in PROFILE_GROUPS:
        if bare in kinds:
            return group
    return "loss, optimizer and other element-wise ops"


def _job_profile(spec: dict, job: dict) -> dict:
    """Profiles tf_nst steps by op: a tf.profiler trace parsed from its XPlane protobuf."""
    import tensorflow as tf

    from tf_nst.optimize.optimization import Optimization

    content, style = _images(spec, job["size"])
    steps = job["steps"]
    config = _tf_nst_config(
        spec, job["size"], job["precision"], job["jit"], "adam", job["warmup"] + steps
    )
    optimization = Optimization(content, [style], config)
    iterator = optimization.steps()
    for _ in range(job["warmup"]):
        next(iterator)
    try:
        from tensorflow.tsl.profiler.protobuf import xplane_pb2
    except ImportError:
        xplane_pb2 = None
    if xplane_pb2 is None:
        return _profile_by_parts(optimization, iterator, steps)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        started = time.perf_counter()
        for _ in range(steps):
            next(iterator)
        wall = time.perf_counter() - started
        tf.profiler.experimental.stop()
        planes = list(pathlib.Path(logdir).rglob("*.xplane.pb"))
        if not planes:
            return _profile_by_parts(optimization, iterator, 0)
        space = xplane_pb2.XSpace()
        space.ParseFromString(planes[0].read_bytes())
    by_type: dict[str, float] = {}
    by_op: dict[str, float] = {}
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                metadata = plane.event_metadata[event.metadata_id]
                # Op kernels are named "graph/op/name:OpType"; the rest is executor bookkeeping.
                if ":" not in metadata.name or not metadata.display_name:
                    continue
                seconds = event.duration_ps / 1e12 / steps
                by_type[metadata.display_name] = by_type.get(metadata.display_name, 0.0) + seconds
                by_op[metadata.name] = by_op.get(metadata.name, 0.0) + seconds
    groups: dict[str, float] = {}
    for op_type, seconds in by_type.items():
        group = _profile_group(op_type)
        groups[group] = groups.get(group, 0.0) + seconds
    top_ops = sorted(by_op.items(), key=lambda item: -item[1])[:12]
    return {
        "method": "tf.profiler.experimental trace, XPlane parsed with tensorflow.tsl xplane_pb2 "
        "(op kernel time on the executor threads)",
        "wall_seconds_per_step": wall / steps,
        "groups": sorted(groups.items(), key=lambda item: -item[1]),
        "op_types": sorted(by_type.items(), key=lambda item: -item[1])[:12],
        "top_ops": top_ops,
    }


def _profile_by_parts(optimization, iterator, steps: int) -> dict:
    """Fallback profile: times the forward pass, forward + backward, and the loss alone."""
    import tensorflow as tf

    from tf_nst.losses import total_loss

    image = tf.Variable(optimization.best_image[None])
    extractor = optimization.extractor
    targets = (optimization.content_targets, optimization.style_gram_targets)

    @tf.function
    def forward(image):
        return extractor(image, training=False)

    @tf.function
    def forward_backward(image):
        with tf.GradientTape() as tape:
            features = extractor(image, training=False)
            loss, _ = total_loss(features, *targets, image, optimization.weights)
        return tape.gradient(loss, image)

    features = forward(image)

    @tf.function
    def loss_only(features):
        with tf.GradientTape() as tape:
            tape.watch(features)
            loss, _ = total_loss(features, *targets, image, optimization.weights)
        return tape.gradient(loss, features)

    def best_time(function, argument):
        function(argument)
        times = []
        for _ in range(3):
            started = time.perf_counter()
            tf.nest.map_structure(lambda tensor: tensor.numpy(), function(argument))
            times.append(time.perf_counter() - started)
        return min(times)

    forward_s = best_time(forward, image)
    full_s = best_time(forward_backward, image)
    loss_s = best_time(loss_only, features)
    return {
        "method": "separate timing of small tf.functions (no profiler trace available)",
        "wall_seconds_per_step": full_s,
        "groups": [
            ("VGG forward", forward_s),
            ("VGG backward (input gradient)", max(0.0, full_s - forward_s - loss_s)),
            ("Gram matrices + loss, forward + backward", loss_s),
        ],
        "op_types": [],
        "top_ops": [],
    }


JOBS = {
    "baseline": _job_baseline,
    "tf_nst": _job_tf_nst,
    "race": _job_race,
    "matmul": _job_matmul,
    "random_weights": _job_random_weights,
    "profile": _job_profile,
}


def run_worker(payload: str) -> int:
    """Runs the jobs of `payload` in this process, printing one result line per job."""
    request = json.loads(payload)
    spec = request["spec"]
    for job in request["jobs"]:
        started = time.perf_counter()
        try:
            result = JOBS[job["kind"]](spec, job)
            result["ok"] = True
        except Exception as error:  # a failed job is reported, the others still run.
            result = {"ok": False, "error": f"{type(error).__name__}: {error}"[:500]}
        result["peak_rss"] = _peak_rss_bytes()
        result["job_seconds"] = time.perf_counter() - started
        print(RESULT_MARK + json.dumps({"id": job["id"], **result}), flush=True)
    return 0


# =================================================================================================
# Parent side: plans the jobs, runs them in child processes, prints the tables.
# =================================================================================================


class Runner:
    """Runs jobs in child processes: one process per job, or one per batch with `--quick`."""

    def __init__(self, spec: dict, batch: bool, started: float):
        self.spec = spec
        self.batch = batch
        self.started = started
        self.results: dict[str, dict] = {}

    def log(self, message: str) -> None:
        elapsed = time.perf_counter() - self.started
        print(f"[{elapsed:6.0f} s] {message}", file=sys.stderr, flush=True)

    def run(self, jobs: list[dict]) -> None:
        groups = [jobs] if self.batch else [[job] for job in jobs]
        for group in groups:
            if not group:
                continue
            self.log("running " + ", ".join(job["label"] for job in group))
            payload = json.dumps({"spec": self.spec, "jobs": group})
            environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
            process = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--worker", payload],
                capture_output=True,
                text=True,
                env=environment,
                check=False,
            )
            seen = set()
            for line in process.stdout.splitlines():
                if line.startswith(RESULT_MARK):
                    result = json.loads(line[len(RESULT_MARK) :])
                    self.results[result["id"]] = result
                    seen.add(result["id"])
                    self.log(f"  {result['id']}: {_summary(result)}")
            for job in group:
                if job["id"] not in seen:
                    tail = " | ".join(process.stderr.strip().splitlines()[-3:])
                    self.results[job["id"]] = {
                        "ok": False,
                        "error": f"worker exited with {process.returncode}: {tail}"[:500],
                    }
                    self.log(f"  {job['id']}: FAILED ({self.results[job['id']]['error']})")

    def get(self, job_id: str) -> dict:
        return self.results.get(job_id, {"ok": False, "error": "not run"})


def _summary(result: dict) -> str:
    if not result.get("ok"):
        return f"FAILED: {result.get('error')}"
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
    parts.append(f"peak {result['peak_rss'] / MB:.0f} MB")
    return ", ".join(parts)


def candidates(args, size: int) -> tuple[tuple[str, bool], ...]:
    """The (precision, XLA) candidates measured at `size`: all, but --quick skips XLA when small."""
    if args.quick and size == args.speed_sizes[0]:
        return tuple(candidate for candidate in CANDIDATES if not candidate[1])
    return CANDIDATES


def conv_flops(height: int, width: int, deepest: str = CONTENT_LAYERS[0]) -> float:
    """Forward FLOPs of VGG16's convolutions up to `deepest` at `height` x `width`.

    2 * H * W * Cin * Cout * 9 per 3x3 convolution ('same' padding), at the layer's resolution.
    """
    total, channels, block_height, block_width, previous_block = 0.0, 3, height, width, 1
    for name, (block, filters) in zip(VGG16_NAMES, VGG16_CONVS, strict=True):
        if block != previous_block:  # a 2x2 pooling with stride 2 between blocks.
            block_height, block_width, previous_block = block_height // 2, block_width // 2, block
        total += 2.0 * block_height * block_width * channels * filters * 9
        channels = filters
        if name == deepest:
            break
    return total


def _config_name(precision: str, jit: bool, optimizer: str | None = None) -> str:
    name = f"{precision}{'+XLA' if jit else ''}"
    return f"{name} {optimizer}" if optimizer else name


def _fmt(value, pattern: str = "{:.3f}", missing: str = "failed") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    return pattern.format(value)


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [
        line(row) for row in rows
    ]


def _linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
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
    parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS), help="VGG16 Keras weights")
    parser.add_argument("--random-weights", action="store_true", help="use a random VGG16")
    parser.add_argument("--content", default=str(DEFAULT_CONTENT), help="content image")
    parser.add_argument("--style", default=str(DEFAULT_STYLE), help="style image")
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
    parser.add_argument("--worker", help=argparse.SUPPRESS)
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


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return run_worker(args.worker)
    started = time.perf_counter()
    lines: list[str] = []

    def out(text: str = "") -> None:
        lines.append(text)
        print(text, flush=True)

    content, style = args.content, args.style
    image_note = f"content {content}, style {style}"
    if not (os.path.isfile(content) and os.path.isfile(style)):
        from tf_nst import examples

        content, style = str(examples.content_path()), str(examples.style_path())
        image_note = f"shared images not found; using tf_nst's example images {content}, {style}"
    temporary = tempfile.TemporaryDirectory(prefix="tf_nst_benchmark_")
    weights = args.weights
    random_weights = args.random_weights or not os.path.isfile(weights)
    spec = {"content": content, "style": style, "weights": weights}
    runner = Runner(spec, batch=args.quick, started=started)
    jobs = []
    if random_weights:
        why = "--random-weights" if args.random_weights else f"{weights} not found"
        weights = os.path.join(temporary.name, "random_vgg16.weights.h5")
        spec["weights"] = weights
        # First job of the first stage, so every later job (in any process) finds the file.
        jobs.append(
            {"id": "weights", "label": "random weights", "kind": "random_weights", "path": weights}
        )
        weights_note = f"RANDOM VGG16 weights ({why}): timings are valid, objective values are not"
    else:
        weights_note = f"VGG16 weights {weights}"

    small, large = args.speed_sizes
    steps, warmup = args.steps_per_size, args.warmup

    # Stage 1: everything that does not depend on another measurement.
    jobs += [
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
            name = _config_name(precision, jit)
            jobs.append(
                {
                    "id": f"tf_nst/{size}/{name}",
                    "label": f"tf_nst {size} px {name}",
                    "kind": "tf_nst",
                    "size": size,
                    "precision": precision,
                    "jit": jit,
                    "steps": steps,
                    "warmup": warmup,
                }
            )
    runner.run(jobs)

    def best_config(size: int) -> tuple[str, bool]:
        timed = [
            (runner.get(f"tf_nst/{size}/{_config_name(p, j)}"), (p, j))
            for p, j in candidates(args, size)
        ]
        timed = [(r["seconds_per_step"], config) for r, config in timed if r.get("ok")]
        return min(timed)[1] if timed else ("fp32", False)

    best = {size: best_config(size) for size in (small, large)}
    best_precision, best_jit = best[large]

    # Stage 2: the races (they need the baseline's objective), memory and the profile.
    baseline_race = runner.get(f"baseline/{small}")
    jobs = []
    if baseline_race.get("ok"):
        cap = args.race_cap * baseline_race["total_seconds"]
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
                    "cap_seconds": cap,
                    "eval_every": args.eval_every,
                    "max_steps": 100000,
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
    runner.run(jobs)

    report(args, runner, out, best, image_note, weights_note)
    out()
    out(f"Total benchmark wall time: {time.perf_counter() - started:.0f} s.")
    if args.output:
        pathlib.Path(args.output).write_text("\n".join(lines) + "\n", encoding="utf-8")
    temporary.cleanup()
    return 0


def report(args, runner: Runner, out, best, image_note: str, weights_note: str) -> None:
    """Prints every table from the collected results."""
    small, large = args.speed_sizes
    steps, warmup = args.steps_per_size, args.warmup
    isolation = (
        "all jobs of a stage share ONE process (--quick): peak memory is cumulative"
        if args.quick
        else "every configuration ran in its own process"
    )
    out("# tf_nst benchmark")
    out()
    out(f"- {weights_note}")
    out(f"- {image_note}; both resized to the long side of each size")
    out(f"- CPU: {_cpu_name()}, {os.cpu_count()} logical cores; {isolation}")
    out("- seconds per step: median of the timed steps after the warm-up steps, wall clock")
    out(
        "- all tf_nst runs optimise the tutorial's objective: style block1..5_conv1, content "
        "block5_conv2, weights 1e-2 / 1e4 / 30, --loss-normalization tutorial, one scale"
    )

    # --- speed ----------------------------------------------------------------------------------
    out()
    out(f"## Seconds per step (median of {steps} steps after {warmup} warm-up)")
    out()
    rows = []
    for size in (small, large):
        base = runner.get(f"baseline/{size}")
        precision, jit = best[size]
        mine = runner.get(f"tf_nst/{size}/{_config_name(precision, jit)}")
        base_s = base.get("seconds_per_step") if base.get("ok") else None
        mine_s = mine.get("seconds_per_step") if mine.get("ok") else None
        shape = base.get("shape") or mine.get("shape") or ["?", "?"]
        rows.append(
            [
                f"{size} px ({shape[1]}x{shape[0]})",
                _fmt(base_s),
                _config_name(precision, jit),
                _fmt(mine_s),
                _fmt(base_s / mine_s if base_s and mine_s else None, "{:.2f}x"),
                _fmt(base.get("peak_rss", 0) / MB if base.get("ok") else None, "{:.0f}"),
                _fmt(mine.get("peak_rss", 0) / MB if mine.get("ok") else None, "{:.0f}"),
            ]
        )
    for line in _table(
        [
            "size",
            "baseline s/step",
            "tf_nst best",
            "tf_nst s/step",
            "speed-up",
            "baseline peak MB",
            "tf_nst peak MB",
        ],
        rows,
    ):
        out(line)

    matmul = runner.get("matmul")
    out()
    out("## tf_nst candidates (Adam step; L-BFGS costs the same per evaluation)")
    out()
    rows = []
    for size in (small, large):
        base = runner.get(f"baseline/{size}")
        for precision, jit in candidates(args, size):
            result = runner.get(f"tf_nst/{size}/{_config_name(precision, jit)}")
            if not result.get("ok"):
                rows.append([f"{size} px", _config_name(precision, jit), "failed"] + [""] * 6)
                continue
            seconds = result["seconds_per_step"]
            fastest = min(result["step_times"][warmup:] or result["step_times"])
            height, width = result["shape"]
            gflops = 2.0 * conv_flops(height, width) / seconds / 1e9
            peak = matmul.get(precision) if matmul.get("ok") else None
            marker = " (best)" if best[size] == (precision, jit) else ""
            rows.append(
                [
                    f"{size} px",
                    _config_name(precision, jit) + marker,
                    _fmt(seconds),
                    _fmt(fastest),
                    _fmt(base["seconds_per_step"] / seconds if base.get("ok") else None, "{:.2f}x"),
                    f"{result['peak_rss'] / MB:.0f}",
                    f"{result['estimate'] / MB:.0f}",
                    f"{gflops:.0f}",
                    _fmt(100.0 * gflops / peak if peak else None, "{:.0f}%"),
                ]
            )
    for line in _table(
        [
            "size",
            "config",
            "s/step",
            "min s/step",
            "vs baseline",
            "peak MB",
            "estimate MB",
            "conv GFLOP/s",
            "of matmul peak",
        ],
        rows,
    ):
        out(line)
    out()
    if matmul.get("ok"):
        out(
            f"Practical peak, {matmul['n']}x{matmul['n']} tf.matmul, best of several: "
            f"fp32 {matmul['fp32']:.0f} GFLOP/s, bf16 {matmul['bf16']:.0f} GFLOP/s."
        )
    shape = runner.get(f"tf_nst/{large}/fp32").get("shape")
    if shape:
        forward = conv_flops(*shape)
        out(
            f"Conv FLOPs per step at {large} px ({shape[1]}x{shape[0]}), counted analytically: "
            f"forward {forward / 1e9:.1f} GFLOP (2*H*W*Cin*Cout*9 per conv, 12 convs up to "
            f"block5_conv2) + backward {forward / 1e9:.1f} GFLOP. The backward pass computes only "
            "the input gradient (the VGG weights are frozen, so no weight gradients), which costs "
            "the same as the forward conv; total = 2x forward. Gram, loss, pooling and "
            "element-wise FLOPs are not counted. GFLOP/s is compared with the matmul peak of the "
            "same dtype."
        )

    # --- race -----------------------------------------------------------------------------------
    out()
    baseline_race = runner.get(f"baseline/{small}")
    out(f"## Time to the baseline's objective at {small} px")
    out()
    race_results = {}
    if not baseline_race.get("ok"):
        out(f"Baseline run failed: {baseline_race.get('error')}")
    else:
        target = baseline_race["objective"]
        baseline_seconds = baseline_race["total_seconds"]
        out(
            f"Baseline: {args.baseline_steps} tutorial Adam steps in {baseline_seconds:.1f} s "
            "(targets, tracing and every step), tutorial objective "
            f"{baseline_race['initial_objective']:.4g} -> {target:.4g}. tf_nst runs until "
            f"tutorial_objective(best image) <= {target:.4g}, "
            f"checked every {args.eval_every} steps (checks not timed), giving up at "
            f"{args.race_cap:.2f} x the baseline's time."
        )
        out()
        rows = []
        for optimizer in OPTIMIZERS:
            result = runner.get(f"race/{optimizer}")
            precision, jit = best[small]
            name = _config_name(precision, jit, optimizer)
            if not result.get("ok"):
                rows.append([name, "failed", "", "", "", "", ""])
                continue
            race_results[optimizer] = result
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
        for line in _table(
            [
                "tf_nst config",
                "reached",
                "steps",
                "seconds",
                "time / baseline time",
                "best objective",
                "peak MB",
            ],
            rows,
        ):
            out(line)

    # --- memory ---------------------------------------------------------------------------------
    out()
    precision, jit = best[large]
    out(f"## Peak memory of one tf_nst step ({_config_name(precision, jit)}, own process each)")
    out()
    rows, points = [], []
    for size in args.memory_sizes:
        result = runner.get(f"memory/{size}")
        if not result.get("ok"):
            rows.append([f"{size} px", "", "failed", "", ""])
            continue
        height, width = result["shape"]
        megapixels = height * width / 1e6
        points.append((megapixels, result))
        rows.append(
            [
                f"{size} px ({width}x{height})",
                f"{megapixels:.3f}",
                f"{result['peak_rss'] / MB:.0f}",
                f"{result['estimate'] / MB:.0f}",
                f"{result['peak_rss'] / result['estimate']:.2f}",
            ]
        )
    for line in _table(
        ["size", "megapixels", "peak RSS MB", "estimate MB", "measured / estimate"], rows
    ):
        out(line)
    if len(points) >= 2:
        intercept, slope, r2 = _linear_fit(
            [mp for mp, _ in points], [r["peak_rss"] / MB for _, r in points]
        )
        out()
        out(
            f"Linear fit: peak RSS = {intercept:.0f} MB + {slope:.0f} MB per megapixel "
            f"(R^2 = {r2:.4f})."
        )
        base_fit, copies_fit, r2_fit = _linear_fit(
            [r["activation_bytes"] for _, r in points],
            [r["peak_rss"] - r["fixed_bytes"] for _, r in points],
        )
        current = points[0][1]
        out(
            f"tf_nst.optimize.memory now: ACTIVATION_COPIES = {current['activation_copies']}, "
            f"BASE_BYTES = {current['base_bytes'] / MB:.0f} MiB. Refitted to these points "
            f"(peak - fixed = BASE + COPIES * activation bytes, R^2 = {r2_fit:.4f}): "
            f"ACTIVATION_COPIES = {copies_fit:.2f}, BASE_BYTES = {base_fit / MB:.0f} * 2**20."
        )
    # The candidate runs (warm-up + timed steps) add fp32 points and show what XLA costs.
    sweep = [
        (size, precision, jit, runner.get(f"tf_nst/{size}/{_config_name(precision, jit)}"))
        for size in args.speed_sizes
        for precision, jit in candidates(args, size)
    ]
    plain = [r for _, _, jit, r in sweep if r.get("ok") and not jit] + [r for _, r in points]
    if len({r["precision"] for r in plain}) > 1:
        base_all, copies_all, r2_all = _linear_fit(
            [r["activation_bytes"] for r in plain],
            [r["peak_rss"] - r["fixed_bytes"] for r in plain],
        )
        out(
            f"Refitted to every non-XLA run of this benchmark ({len(plain)} points, fp32 and bf16,"
            f" R^2 = {r2_all:.4f}): ACTIVATION_COPIES = {copies_all:.2f}, "
            f"BASE_BYTES = {base_all / MB:.0f} * 2**20."
        )
    with_xla = [
        f"{_config_name(precision, jit)} {size} px {r['peak_rss'] / r['estimate']:.2f}"
        for size, precision, jit, r in sweep
        if r.get("ok") and jit
    ]
    if with_xla:
        out(
            "measured / estimate of the XLA runs (the estimate does not model XLA's buffers): "
            + ", ".join(with_xla)
            + "."
        )
    if args.quick:
        out("(--quick: one process for all memory points, so these peaks are cumulative.)")

    # --- targets --------------------------------------------------------------------------------
    out()
    out("## Targets")
    out()
    base = runner.get(f"baseline/{large}")
    mine = runner.get(f"tf_nst/{large}/{_config_name(*best[large])}")
    if base.get("ok") and mine.get("ok"):
        speedup = base["seconds_per_step"] / mine["seconds_per_step"]
        verdict = "MET" if speedup >= 4 else "NOT MET"
        out(
            f"- >= 4x steps/s at {large} px: {verdict} ({speedup:.2f}x, "
            f"{_config_name(*best[large])})"
        )
    if race_results and baseline_race.get("ok"):
        optimizer, result = min(
            race_results.items(),
            key=lambda item: (not item[1]["reached"], item[1]["seconds"]),
        )
        ratio = result["seconds"] / baseline_race["total_seconds"]
        verdict = "MET" if result["reached"] and ratio <= 1 / 3 else "NOT MET"
        shown = f"{ratio:.3f}" if result["reached"] else f"not reached within {ratio:.3f}"
        out(
            f"- baseline's {args.baseline_steps}-step objective in <= 1/3 of its time at {small}"
            f" px: {verdict} ({shown}, {_config_name(*best[small], optimizer)})"
        )
        out(
            f"- fastest tf_nst configuration: {_config_name(*best[large], optimizer)} "
            f"(step: {_config_name(*best[large])} at {large} px, "
            f"{_config_name(*best[small])} at {small} px; optimizer by time to target)"
        )

    # --- profile --------------------------------------------------------------------------------
    if args.profile:
        out()
        result = runner.get("profile")
        out(f"## Profile of one tf_nst step at {large} px ({_config_name(*best[large])})")
        out()
        if not result.get("ok"):
            out(f"Profile failed: {result.get('error')}")
            return
        total = sum(seconds for _, seconds in result["groups"]) or 1.0
        out(
            f"Method: {result['method']}. Wall time per step {result['wall_seconds_per_step']:.3f}"
            f" s; op time {total:.3f} s per step (ops can overlap on the executor threads)."
        )
        out()
        for line in _table(
            ["part of the step", "seconds", "share"],
            [[group, f"{s:.3f}", f"{100 * s / total:.1f}%"] for group, s in result["groups"]],
        ):
            out(line)
        if result["top_ops"]:
            out()
            for line in _table(
                ["slowest ops", "seconds"],
                [[name, f"{seconds:.4f}"] for name, seconds in result["top_ops"]],
            ):
                out(line)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            text = cpuinfo.read()
    except OSError:
        return "unknown CPU"
    name = next(
        (line.split(":", 1)[1].strip() for line in text.splitlines() if "model name" in line),
        "unknown CPU",
    )
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    features = [flag for flag in ("avx512f", "avx512_bf16", "amx_bf16") if f" {flag}" in flags]
    return f"{name} ({', '.join(features) or 'no AVX-512'})"


if __name__ == "__main__":
    sys.exit(main())
