"""Which `tf.distribute` strategy a training runs under, and which task writes its outputs.

`--distribute auto|none|mirrored|multiworker`, as the TensorFlow distributed-training guides
prescribe: MirroredStrategy over the local devices, MultiWorkerMirroredStrategy configured by
TF_CONFIG, and only the chief keeping summaries, checkpoints and the export.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile

import tensorflow as tf

from tf_nst.errors import StyleTransferError


def make_strategy(name: str) -> tf.distribute.Strategy:
    """Returns the `tf.distribute` strategy of `--distribute NAME`.

    "auto" is MirroredStrategy over the local GPUs when there are several, else the default
    (one-device) strategy; "none" is the default strategy; "mirrored" is MirroredStrategy over
    every local GPU (or the CPU when there is none); "multiworker" is
    MultiWorkerMirroredStrategy, configured from the `TF_CONFIG` environment variable. Create the
    strategy first thing in the program: MultiWorkerMirroredStrategy must start its server before
    TensorFlow runs anything else.

    Raises:
        StyleTransferError: For an unknown name, or "multiworker" without a valid `TF_CONFIG`.
    """
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "auto":
        if len(tf.config.list_logical_devices("GPU")) > 1:
            return tf.distribute.MirroredStrategy()
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise StyleTransferError(
        f"--distribute must be one of auto, none, mirrored, multiworker; got {name!r}"
    )


def _check_tf_config() -> None:
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise StyleTransferError(
            "--distribute multiworker needs the TF_CONFIG environment variable on every worker "
            '(e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": '
            '"worker", "index": 0}}): set it, or use --distribute auto'
        )
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        task["type"], task["index"]  # noqa: B018 -- presence is what is checked
        if not isinstance(cluster, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise StyleTransferError(
            "TF_CONFIG is not JSON with a 'cluster' of addresses and a 'task' with 'type' and "
            "'index': fix it (see the README's multi-worker example)"
        ) from None


def is_chief(strategy: tf.distribute.Strategy | None = None) -> bool:
    """Tells whether this task writes the run's outputs (summaries, checkpoints, the export).

    Without a cluster (one machine, any strategy) the task is the chief. In a cluster it is the
    task of type "chief" if the cluster has one, else worker 0, as the TensorFlow multi-worker
    guide prescribes.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if "chief" in resolver.cluster_spec().as_dict():
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and resolver.task_id == 0


@contextlib.contextmanager
def output_path(path: str | os.PathLike, strategy: tf.distribute.Strategy | None = None):
    """Yields where this task writes the output `path`: `path` itself on the chief.

    In multi-worker training every worker must take part in writing a checkpoint or a model (the
    variables' values are gathered collectively), but only the chief's copy is kept. A non-chief
    worker gets a path in a fresh temporary directory, which is deleted when the block ends, as
    the TensorFlow multi-worker guide prescribes.

    Example:
        >>> with output_path("run/checkpoint", strategy) as path:
        ...     trainer.checkpoint().write(path)
    """
    if is_chief(strategy):
        yield os.fspath(path)
        return
    task_id = getattr(getattr(strategy, "cluster_resolver", None), "task_id", 0)
    temporary = tempfile.mkdtemp(prefix=f"tf_nst_worker{task_id}_")
    try:
        yield os.path.join(temporary, os.path.basename(os.fspath(path)) or "output")
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def replica_count(strategy: tf.distribute.Strategy) -> int:
    """Replicas in sync: the global batch is the per-replica batch times this."""
    return int(strategy.num_replicas_in_sync)
