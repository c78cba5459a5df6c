"""Distribution tests on the CPU: MirroredStrategy over 2 logical devices, and 2 local workers.

Each job runs tests/distributed_worker.py in fresh processes (see its docstring for why).
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

# Each test starts fresh TensorFlow processes that build and trace the training step.
pytestmark = pytest.mark.slow

WORKER = pathlib.Path(__file__).resolve().parent / "distributed_worker.py"
TIMEOUT_SECONDS = 600


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """8 small random photos."""
    root = tmp_path_factory.mktemp("photos")
    generator = np.random.default_rng(0)
    for index in range(8):
        pixels = (generator.random((24, 28, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / f"photo{index}.png")
    return root


def environment(**extra) -> dict[str, str]:
    repository = str(pathlib.Path(__file__).resolve().parent.parent)
    path = os.pathsep.join(filter(None, [repository, os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def last_json_line(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def free_ports(count: int) -> list[int]:
    """Ports free on the loopback interface now (the OS picks them)."""
    sockets = []
    try:
        for _ in range(count):
            handle = socket.socket()
            handle.bind(("127.0.0.1", 0))
            sockets.append(handle)
        return [handle.getsockname()[1] for handle in sockets]
    finally:
        for handle in sockets:
            handle.close()


def test_mirrored_over_two_devices_equals_one_device(photos):
    completed = subprocess.run(
        [sys.executable, str(WORKER), "mirrored", str(photos)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        env=environment(),
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    outcome = last_json_line(completed.stdout)
    single, mirrored = outcome["single"], outcome["mirrored"]
    assert (single["replicas"], mirrored["replicas"]) == (1, 2)
    assert single["global_batch"] == mirrored["global_batch"] == 4
    np.testing.assert_allclose(mirrored["losses"], single["losses"], rtol=1e-4)
    # Two SGD updates; the weights agree to a small fraction of how far they moved.
    assert outcome["largest_update"] > 0
    assert outcome["largest_difference"] <= 1e-3 * outcome["largest_update"] + 1e-6


def test_two_workers_train_in_step_and_only_the_chief_writes(photos, tmp_path):
    ports = free_ports(2)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    output = tmp_path / "output"
    output.mkdir()
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), "multiworker", str(photos), str(output)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(
                TF_CONFIG=json.dumps(
                    {"cluster": cluster, "task": {"type": "worker", "index": index}}
                )
            ),
        )
        for index in range(2)
    ]
    try:
        finished = [worker.communicate(timeout=TIMEOUT_SECONDS) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    for worker, (_, stderr) in zip(workers, finished, strict=True):
        assert worker.returncode == 0, stderr[-3000:]
    chief, other = (last_json_line(stdout) for stdout, _ in finished)
    assert (chief["chief"], other["chief"]) == (True, False)
    assert chief["replicas"] == other["replicas"] == 2
    assert chief["global_batch"] == 4
    # Synchronous training: both workers saw the same global losses.
    np.testing.assert_allclose(chief["losses"], other["losses"], rtol=1e-5)
    assert chief["best_loss"] == pytest.approx(other["best_loss"], rel=1e-5)
    assert chief["model_path"] == str(output / "model.keras")
    assert chief["checkpoint_path"] == str(output / "checkpoint")
    # The other worker wrote into a temporary directory that is gone; nothing else was written.
    assert not pathlib.Path(other["model_path"]).parent.exists()
    assert not pathlib.Path(other["checkpoint_path"]).parent.exists()
    assert not str(other["model_path"]).startswith(str(output))
    assert sorted(path.name for path in output.iterdir()) == [
        "checkpoint.data-00000-of-00001",
        "checkpoint.index",
        "model.keras",
    ]
