"""A tiny distributed training job, run in its own process by tests/test_distribute.py.

Usage:
    python tests/distributed_worker.py mirrored PHOTOS
    python tests/distributed_worker.py multiworker PHOTOS OUTPUT_DIR   (TF_CONFIG set)

Both need a fresh process: "mirrored" splits the CPU into two logical devices, which TensorFlow
allows only before it initialises its devices, and "multiworker" must create its strategy (and
the server that joins the cluster) before TensorFlow runs anything else. Each prints one JSON line
of results as its last line of output.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

TINY = {
    "size": 16,
    "width": 4,
    "learning_rate": 1e-2,
    "seed": 1,
    "precision": "fp32",
}


def tiny_parts():
    """The tiny random VGG (same on every process) and a striped style image."""
    import keras
    import numpy as np

    from tf_nst.config import TrainConfig
    from tf_nst.features.extractor import build_feature_extractor

    defaults = TrainConfig()
    keras.utils.set_random_seed(0)
    extractor = build_feature_extractor(
        defaults.content_layers + defaults.style_layers, "vgg19", None, width_scale=1 / 16
    )
    stripes = (np.sin(np.arange(32) / 2.0)[None, :, None] + 1) / 2
    style = np.clip(stripes * np.array([0.9, 0.5, 0.2]) + np.zeros((32, 32, 3)), 0, 1)
    return extractor, style.astype(np.float32)


def mirrored(photos: str) -> dict:
    """One step on one device against MirroredStrategy over 2 devices, same global batch of 4.

    Adam's first update is lr * sign(gradient) whatever the gradient's scale, so it would hide a
    wrongly scaled gradient (say, each replica averaging over its own batch and the sum over
    replicas doubling it). Plain SGD's update is the gradient itself, so the comparison runs
    with Adam replaced by SGD; the loss is compared as well.
    """
    (cpu,) = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
    import keras
    import numpy as np

    from tf_nst.config import TrainConfig
    from tf_nst.networks.training import NetworkTrainer

    keras.optimizers.Adam = keras.optimizers.SGD
    extractor, style = tiny_parts()
    config = TrainConfig(
        **TINY, steps=2, validation=0, batch_size=4, validation_every=100, distribute="none"
    )
    single = NetworkTrainer(photos, [style], config, extractor, tf.distribute.get_strategy())
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    split = NetworkTrainer(photos, [style], config.replace(batch_size=2), extractor, strategy)
    split.model.set_weights(single.model.get_weights())
    initial = single.model.get_weights()
    runs = {}
    for name, trainer in (("single", single), ("mirrored", split)):
        results = list(trainer.steps())
        runs[name] = {
            "losses": [result.loss for result in results],
            "weights": trainer.model.get_weights(),
            "global_batch": trainer.global_batch_size,
            "replicas": trainer.strategy.num_replicas_in_sync,
        }
    update = max(
        float(np.max(np.abs(after - before)))
        for after, before in zip(runs["single"]["weights"], initial, strict=True)
    )
    difference = max(
        float(np.max(np.abs(a - b)))
        for a, b in zip(runs["single"]["weights"], runs["mirrored"]["weights"], strict=True)
    )
    for run in runs.values():
        del run["weights"]
    return {**runs, "largest_update": update, "largest_difference": difference}


def multiworker(photos: str, output: str) -> dict:
    """A few steps under MultiWorkerMirroredStrategy; the chief alone keeps what it writes."""
    from tf_nst.networks.distribute import make_strategy

    # First: the strategy starts this task's server and joins the cluster.
    strategy = make_strategy("multiworker")

    from tf_nst.config import TrainConfig
    from tf_nst.networks.distribute import is_chief, output_path
    from tf_nst.networks.training import NetworkTrainer

    extractor, style = tiny_parts()
    config = TrainConfig(
        **TINY,
        steps=3,
        batch_size=2,
        validation=2,
        validation_every=2,
        distribute="multiworker",
    )
    trainer = NetworkTrainer(photos, [style], config, extractor, strategy)
    results = list(trainer.steps())
    output_directory = pathlib.Path(output)
    # Every worker takes part in writing; only the chief's copy stays.
    with output_path(output_directory / "checkpoint", strategy) as path:
        trainer.checkpoint().write(path)
        checkpoint_path = path
    with output_path(output_directory / "model.keras", strategy) as path:
        trainer.best_model().save(path)
        model_path = path
    return {
        "chief": is_chief(strategy),
        "replicas": strategy.num_replicas_in_sync,
        "global_batch": trainer.global_batch_size,
        "losses": [result.loss for result in results],
        "best_loss": trainer.best_loss,
        "checkpoint_path": checkpoint_path,
        "model_path": model_path,
    }


if __name__ == "__main__":
    mode, *arguments = sys.argv[1:]
    outcome = {"mirrored": mirrored, "multiworker": multiworker}[mode](*arguments)
    print(json.dumps(outcome), flush=True)
