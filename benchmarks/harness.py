#!/usr/bin/env python
"""What every benchmark shares: the inputs' paths, child-process jobs, peak memory, tables, CPU.

The worker protocol: a benchmark describes each measurement as a JSON job (a dict with an "id" and
a "kind"), and `Runner` runs the jobs in child processes, one process per job (or one for a whole
batch), so that each peak resident memory is that job's own. The child is this file run as a
script, given the path of the benchmark's job module (whose `JOBS` maps each kind to a function
of the job) and reading the request from stdin. It prints one `RESULT_MARK` line of JSON per job;
a job that raises is reported as failed and the next one still runs, and a job whose process dies
is reported failed by the parent with the tail of the child's stderr.

Nothing here imports TensorFlow at import time: the parent process of a benchmark stays small.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence

REPOSITORY = pathlib.Path(__file__).resolve().parent.parent
SHARED = pathlib.Path(os.environ.get("TF_NST_SHARED", REPOSITORY.parent / "shared"))
WEIGHTS = SHARED / "weights" / "vgg16_imagenet_keras_convention_notop.weights.h5"
IMAGES = SHARED / "images"
PHOTOS = SHARED / "photos"
CONTENT = IMAGES / "tubingen.jpg"
STYLE = IMAGES / "starry_night.jpg"

MB = 2**20
RESULT_MARK = "@@RESULT "
# The instruction-set extensions that decide how fast bfloat16 runs on a CPU.
CPU_FEATURES = ("avx512f", "avx512_bf16", "amx_bf16")
# Lines of a dead child's stderr quoted in its failure, enough for the Python exception.
STDERR_TAIL_LINES = 3
ERROR_LENGTH = 500


# --- peak memory and the CPU --------------------------------------------------------------------


def peak_rss_bytes() -> int:
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


def describe_cpu(cpuinfo: str) -> str:
    """Returns "MODEL NAME (features)" from the text of /proc/cpuinfo."""
    lines = cpuinfo.splitlines()
    name = next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
        "unknown CPU",
    )
    flags = next((line.split(":", 1)[-1].split() for line in lines if line.startswith("flags")), [])
    features = [feature for feature in CPU_FEATURES if feature in flags]
    return f"{name} ({', '.join(features) or 'no AVX-512'})"


def cpu_name() -> str:
    """Returns this machine's CPU model and its AVX-512 / bfloat16 features."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            return describe_cpu(cpuinfo.read())
    except OSError:
        return "unknown CPU"


# --- markdown tables ----------------------------------------------------------------------------


def table_row(cells: Iterable, widths: Sequence[int] | None = None) -> str:
    """One markdown table line; each cell padded to its width in `widths` when given."""
    cells = [str(cell) for cell in cells]
    if widths is not None:
        cells = [cell.ljust(width) for cell, width in zip(cells, widths, strict=True)]
    return "| " + " | ".join(cells) + " |"


def table_rule(widths: Sequence[int] | int) -> str:
    """The line under a table's header: `widths` per column, or a column count for no padding."""
    if isinstance(widths, int):
        widths = [0] * widths
    return "| " + " | ".join("-" * max(3, width) for width in widths) + " |"


def table_header(headers: Sequence[str]) -> list[str]:
    """The header and rule of a table whose rows are printed one by one as they are measured."""
    return [table_row(headers), table_rule(len(headers))]


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence]) -> list[str]:
    """Returns the lines of a markdown table, every column padded to its widest cell."""
    rows = [[str(cell) for cell in row] for row in rows]
    widths = [
        max(3, *(len(cell) for cell in column)) for column in zip(headers, *rows, strict=True)
    ]
    return [table_row(headers, widths), table_rule(widths)] + [
        table_row(row, widths) for row in rows
    ]


def format_value(value, pattern: str = "{:.3f}", missing: str = "failed") -> str:
    """Formats a measured number, or says `missing` when there is none (None, inf or NaN)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    return pattern.format(value)


# --- the worker protocol ------------------------------------------------------------------------


class Results(dict):
    """Job id to result; a job that did not run reads as a failure, so tables need no check."""

    def __missing__(self, job_id: str) -> dict:
        return {"ok": False, "error": "not run"}


def run_jobs(jobs: dict[str, Callable[[dict], dict]], request: dict) -> None:
    """Child side: runs every job of `request`, printing one `RESULT_MARK` line per job.

    Each job function gets the job merged over the request's "spec" (the fields every job of a
    benchmark shares). The line adds "ok", the process's "peak_rss" so far and "job_seconds".
    """
    spec = request.get("spec", {})
    for job in request["jobs"]:
        started = time.perf_counter()
        try:
            result = dict(jobs[job["kind"]]({**spec, **job}))
            result["ok"] = True
        except Exception as error:  # a failed job is reported, the others still run.
            result = {"ok": False, "error": f"{type(error).__name__}: {error}"[:ERROR_LENGTH]}
        result["peak_rss"] = peak_rss_bytes()
        result["job_seconds"] = time.perf_counter() - started
        try:
            line = json.dumps({**result, "id": job["id"]})
        except (TypeError, ValueError) as error:  # the job's result, not the job, is at fault.
            failure = {"ok": False, "error": f"result is not JSON: {error}"[:ERROR_LENGTH]}
            line = json.dumps({**failure, "peak_rss": result["peak_rss"], "id": job["id"]})
        print(RESULT_MARK + line, flush=True)


def load_jobs(job_file: str | os.PathLike) -> dict[str, Callable[[dict], dict]]:
    """Imports the job module at `job_file` (its folder on the path, for its siblings); its JOBS."""
    path = pathlib.Path(job_file).resolve()
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module.JOBS


def worker_main(argv: Sequence[str]) -> int:
    """The child's entry point: `harness.py JOB_FILE`, the request as JSON on stdin."""
    if len(argv) != 1:
        print("usage: harness.py JOB_FILE < request.json", file=sys.stderr)
        return 2
    run_jobs(load_jobs(argv[0]), json.loads(sys.stdin.read()))
    return 0


def parse_results(stdout: str) -> list[dict]:
    """The results a child printed, in order; other output is ignored."""
    return [
        json.loads(line[len(RESULT_MARK) :])
        for line in stdout.splitlines()
        if line.startswith(RESULT_MARK)
    ]


def describe_peak(result: dict) -> str:
    """The default progress summary of a finished job: its peak resident memory."""
    return f"peak {result['peak_rss'] / MB:.0f} MB"


class Runner:
    """Runs jobs in child processes and keeps their results by job id (`results`).

    Args:
        job_file: The module whose `JOBS` the children run.
        spec: Fields every job gets (the images, the weights).
        batch: Run all jobs of one `run` call in one process (faster; the peaks are cumulative).
        describe: Summarises a successful result for the progress line on stderr.
        started: `time.perf_counter()` at the benchmark's start, for the progress lines.
    """

    def __init__(
        self,
        job_file: str | os.PathLike,
        spec: dict | None = None,
        batch: bool = False,
        describe: Callable[[dict], str] = describe_peak,
        started: float | None = None,
    ):
        self.job_file = str(pathlib.Path(job_file).resolve())
        self.spec = dict(spec or {})
        self.batch = batch
        self.describe = describe
        self.started = time.perf_counter() if started is None else started
        self.results = Results()

    def log(self, message: str) -> None:
        """Writes a progress line, with the seconds since the start, to stderr."""
        elapsed = time.perf_counter() - self.started
        print(f"[{elapsed:6.0f} s] {message}", file=sys.stderr, flush=True)

    def run(self, jobs: list[dict]) -> Results:
        """Runs `jobs` (one process each, or all in one with `batch`); returns all results."""
        groups = [jobs] if self.batch else [[job] for job in jobs]
        for group in groups:
            if group:
                self.run_group(group)
        return self.results

    def run_group(self, group: list[dict]) -> None:
        """Runs `group` in one child process and records a result for every job in it."""
        self.log("running " + ", ".join(job.get("label", job["id"]) for job in group))
        environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
        # The children import tf_nst from this checkout even when it is not installed.
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(REPOSITORY), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        process = subprocess.run(
            [sys.executable, str(pathlib.Path(__file__).resolve()), self.job_file],
            input=json.dumps({"spec": self.spec, "jobs": group}),
            capture_output=True,
            text=True,
            env=environment,
            check=False,
        )
        for result in parse_results(process.stdout):
            self.results[result["id"]] = result
            summary = self.describe(result) if result["ok"] else f"FAILED: {result['error']}"
            self.log(f"  {result['id']}: {summary}")
        tail = " | ".join(process.stderr.strip().splitlines()[-STDERR_TAIL_LINES:])
        for job in group:
            if job["id"] not in self.results:
                error = f"worker exited with {process.returncode}: {tail}"[:ERROR_LENGTH]
                self.results[job["id"]] = {"ok": False, "error": error}
                self.log(f"  {job['id']}: FAILED ({error})")


# --- the machine's practical peak ---------------------------------------------------------------


def matmul_gflops(size: int, repeats: int) -> dict[str, float]:
    """Best-of-`repeats` GFLOP/s of a `size` x `size` matmul in float32 ("fp32") and bfloat16."""
    import tensorflow as tf

    result = {}
    for name, dtype in (("fp32", tf.float32), ("bf16", tf.bfloat16)):
        a = tf.cast(tf.random.normal((size, size), seed=1), dtype)
        b = tf.cast(tf.random.normal((size, size), seed=2), dtype)

        @tf.function
        def product(a, b):
            # A small slice of the product crosses to the host: the wait, not a copy, is timed.
            return tf.reduce_sum(tf.cast(tf.matmul(a, b)[:, :8], tf.float32))

        float(product(a, b))
        best = math.inf
        for _ in range(repeats):
            started = time.perf_counter()
            float(product(a, b))
            best = min(best, time.perf_counter() - started)
        result[name] = 2.0 * size**3 / best / 1e9
    return result


def matmul_job(job: dict) -> dict:
    """The job form of `matmul_gflops`: job "n" and "repeats"; the result keeps "n"."""
    return {"n": job["n"], **matmul_gflops(job["n"], job["repeats"])}


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
