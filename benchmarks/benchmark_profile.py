"""Where the time of one tf_nst step goes, by op: the `--profile` job of benchmark.py.

A `tf.profiler` trace is parsed from its XPlane protobuf with `tensorflow.tsl`'s own module (no
TensorBoard profile plugin needed) and the kernel time on TensorFlow's executor threads is summed
by op type. Where that module is missing, the parts of the step are timed as separate
`tf.function`s instead.
"""

from __future__ import annotations

import pathlib
import tempfile
import time

# Op type (as the oneDNN/TensorFlow kernel names it) to the part of the step it belongs to.
PROFILE_GROUPS = (
    ("conv forward (+bias+ReLU)", ("Conv2D", "FusedConv2D")),
    ("conv backward, input gradient", ("Conv2DBackpropInput",)),
    ("Gram matrices, forward + backward (Einsum/BatchMatMul)", ("Einsum", "BatchMatMul")),
    ("ReLU / pooling backward", ("ReluGrad", "MaxPoolGrad", "AvgPoolGrad")),
    ("pooling forward", ("MaxPool", "AvgPool")),
    ("casts fp32<->bf16", ("Cast",)),
)
OTHER_GROUP = "loss, optimizer and other element-wise ops"
SLOWEST_OPS = 12
# Calls of each part timed by the fallback, after one untimed call that traces it.
FALLBACK_REPEATS = 3


def profile_group(op_type: str) -> str:
    """The part of the step an op type belongs to, whatever prefix oneDNN gave its kernel."""
    bare = op_type.removeprefix("_MklNative").removeprefix("_Mkl").removeprefix("_")
    for group, kinds in PROFILE_GROUPS:
        if bare in kinds:
            return group
    return OTHER_GROUP


def profile_steps(optimization, warmup: int, steps: int) -> dict:
    """Runs `warmup` untimed, then `steps` traced steps of `optimization` and sums them by op."""
    import tensorflow as tf

    iterator = optimization.steps()
    for _ in range(warmup):
        next(iterator)
    try:
        from tensorflow.tsl.profiler.protobuf import xplane_pb2
    except ImportError:
        return profile_by_parts(optimization)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        started = time.perf_counter()
        for _ in range(steps):
            next(iterator)
        wall = time.perf_counter() - started
        tf.profiler.experimental.stop()
        planes = list(pathlib.Path(logdir).rglob("*.xplane.pb"))
        if not planes:
            return profile_by_parts(optimization)
        space = xplane_pb2.XSpace()
        space.ParseFromString(planes[0].read_bytes())
    by_type, by_op = op_seconds(space, steps)
    groups: dict[str, float] = {}
    for op_type, seconds in by_type.items():
        group = profile_group(op_type)
        groups[group] = groups.get(group, 0.0) + seconds
    return {
        "method": "tf.profiler.experimental trace, XPlane parsed with tensorflow.tsl xplane_pb2 "
        "(op kernel time on the executor threads)",
        "wall_seconds_per_step": wall / steps,
        "groups": sorted(groups.items(), key=lambda item: -item[1]),
        "op_types": sorted(by_type.items(), key=lambda item: -item[1])[:SLOWEST_OPS],
        "top_ops": sorted(by_op.items(), key=lambda item: -item[1])[:SLOWEST_OPS],
    }


def op_seconds(space, steps: int) -> tuple[dict[str, float], dict[str, float]]:
    """Kernel seconds per step on the CPU's executor threads, by op type and by op."""
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
    return by_type, by_op


def profile_by_parts(optimization) -> dict:
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
        for _ in range(FALLBACK_REPEATS):
            started = time.perf_counter()
            tf.nest.map_structure(lambda tensor: tensor.numpy(), function(argument))
            times.append(time.perf_counter() - started)
        return min(times)

    forward_seconds = best_time(forward, image)
    full_seconds = best_time(forward_backward, image)
    loss_seconds = best_time(loss_only, features)
    return {
        "method": "separate timing of small tf.functions (no profiler trace available)",
        "wall_seconds_per_step": full_seconds,
        "groups": [
            ("VGG forward", forward_seconds),
            (
                "VGG backward (input gradient)",
                max(0.0, full_seconds - forward_seconds - loss_seconds),
            ),
            ("Gram matrices + loss, forward + backward", loss_seconds),
        ],
        "op_types": [],
        "top_ops": [],
    }
