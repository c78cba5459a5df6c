"""Smoke test of benchmarks/benchmark.py: the --quick run finishes and prints every table.

No timing is asserted: the machine is shared and noisy.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

REPOSITORY = pathlib.Path(__file__).resolve().parent.parent
BENCHMARK = REPOSITORY / "benchmarks" / "benchmark.py"
SHARED = pathlib.Path(os.environ.get("TF_NST_SHARED", REPOSITORY.parent / "shared"))
VGG16_WEIGHTS = SHARED / "weights" / "vgg16_imagenet_keras_convention_notop.weights.h5"

HEADERS = (
    "# tf_nst benchmark",
    "## Seconds per step",
    "| size | baseline s/step | tf_nst best | tf_nst s/step | speed-up |",
    "## tf_nst candidates",
    "## Time to the baseline's objective",
    "| tf_nst config | reached | steps | seconds | time / baseline time |",
    "## Peak memory of one tf_nst step",
    "| size ",
    "## Targets",
    "Total benchmark wall time:",
)


@pytest.mark.slow
def test_quick_benchmark_runs_and_prints_the_tables(tmp_path):
    output = tmp_path / "table.md"
    # Uses ../shared's VGG16 when present; otherwise the benchmark falls back to random weights.
    completed = subprocess.run(
        [sys.executable, str(BENCHMARK), "--quick", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPOSITORY,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    # Table cells are padded to their column's width; compare with single spaces.
    printed = re.sub(r" +", " ", completed.stdout)
    for header in HEADERS:
        assert header in printed, f"{header!r} missing from:\n{completed.stdout}"
    assert "FAILED" not in completed.stderr, completed.stderr[-3000:]
    if not VGG16_WEIGHTS.is_file():
        assert "RANDOM VGG16 weights" in completed.stdout
    assert output.read_text(encoding="utf-8").startswith("# tf_nst benchmark")
