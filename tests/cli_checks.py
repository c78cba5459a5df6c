"""Helpers shared by test_cli_errors.py and test_interrupts.py (not a test module itself)."""

from __future__ import annotations

import hashlib
import pathlib
import re

import numpy as np

# TensorFlow's C++ start-up log goes to stderr whatever TF_CPP_MIN_LOG_LEVEL says (absl logs
# before InitializeLog), e.g. "I0000 00:00:1795901946.965073   13853 port.cc:153] oneDNN ...".
# It is not the CLI's output, so checks of the CLI's own lines skip it.
_TENSORFLOW_LOG_LINE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\)"
    r"|[IWEF]\d{4} \d+:\d+:\d+\.\d+ +\d+ [\w.\-]+:\d+\]"
    r"|To enable the following instructions:)"
)


def real_weights_outputs(vgg16_weights) -> list[str]:
    """`-o out.png --logdir logs` (relative to the run's cwd) with the real VGG16 weights."""
    return [
        "-o", "out.png", "--logdir", "logs", "--backbone", "vgg16", "--weights", str(vgg16_weights)
    ]  # fmt: skip


def cli_lines(stderr: str) -> list[str]:
    """The non-empty stderr lines that the CLI (or Python) printed, without TensorFlow's log."""
    return [line for line in stderr.splitlines() if line.strip() and not _is_tensorflow_log(line)]


def _is_tensorflow_log(line: str) -> bool:
    return bool(_TENSORFLOW_LOG_LINE.match(line))


def error_line(stderr: str) -> str:
    """The single `tf-nst: error: ...` line of stderr; fails unless there is exactly one."""
    errors = [line for line in stderr.splitlines() if line.startswith("tf-nst: error: ")]
    assert len(errors) == 1, stderr
    return errors[0]


def snapshot(directory: pathlib.Path) -> dict[str, str]:
    """Every file and directory under `directory`, relative, with a digest of each file."""
    if not directory.exists():
        return {}
    return {
        str(path.relative_to(directory)): (
            hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        )
        for path in sorted(directory.rglob("*"))
    }


def leftovers(directory: pathlib.Path) -> list[pathlib.Path]:
    """Temporary or partial files under `directory`: `*.tmp`, dot files, TF's `*_temp*`."""
    return [
        path
        for path in directory.rglob("*")
        if path.name.endswith(".tmp") or path.name.startswith(".") or "_temp" in path.name
    ]


def run_directories(logdir: pathlib.Path) -> list[pathlib.Path]:
    """The run subdirectories under a --logdir (none if it does not even exist)."""
    return sorted(path for path in logdir.iterdir() if path.is_dir()) if logdir.exists() else []


def logged_steps(run_directory: pathlib.Path, tag: str = "loss/total") -> list[int]:
    """The steps at which `tag` was written, over every event file of a run directory."""
    import tensorflow as tf

    steps = []
    for event_file in sorted(run_directory.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            steps.extend(event.step for value in event.summary.value if value.tag == tag)
    return sorted(steps)


def step_from_message(stderr: str) -> int:
    """N of the "after N steps" that the CLI's final message reports."""
    found = re.findall(r"after (\d+) steps?\b", stderr)
    assert found, stderr
    return int(found[-1])


def smooth_picture(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth colourful uint8 RGB picture with a little noise: a cheap stand-in for a photo."""
    generator = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    channels = [
        np.sin(2 * np.pi * (frequency_x * x + frequency_y * y) + phase)
        for frequency_x, frequency_y, phase in generator.uniform(0.5, 3.0, (3, 3))
    ]
    pixels = 0.5 + 0.4 * np.stack(channels, axis=-1) + generator.normal(0, 0.05, (height, width, 3))
    return (np.clip(pixels, 0, 1) * 255).astype(np.uint8)
