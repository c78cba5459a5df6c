"""The benchmarks' shared harness and their tables, on known inputs.

No timing is asserted: the machine is shared and noisy. The fast tests run in-process on made-up
results; the slow ones start the harness's child processes on a trivial job module, or run the
benchmark's jobs on tiny images with the real weights.
"""

from __future__ import annotations

import math
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

REPOSITORY = pathlib.Path(__file__).resolve().parent.parent
BENCHMARKS = REPOSITORY / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import apply_benchmark  # noqa: E402
import benchmark  # noqa: E402
import benchmark_jobs  # noqa: E402
import benchmark_plan  # noqa: E402
import benchmark_report  # noqa: E402
import harness  # noqa: E402

MB = harness.MB


def cells(line: str) -> list[str]:
    """The stripped cells of one markdown table line."""
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def table_rows(lines: list[str], header_start: str) -> list[list[str]]:
    """The cells of every row of the table whose header line starts with `header_start`."""
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(cells(line))
    return rows


# --- tables and formatting ----------------------------------------------------------------------


def test_markdown_table_pads_every_column_to_its_widest_cell():
    lines = harness.markdown_table(["a", "long header"], [["1", 2], ["333", "4"]])
    assert lines == [
        "| a   | long header |",
        "| --- | ----------- |",
        "| 1   | 2           |",
        "| 333 | 4           |",
    ]


def test_table_header_and_rows_printed_one_by_one_are_unpadded():
    assert harness.table_header(["size", "s"]) == ["| size | s |", "| --- | --- |"]
    assert harness.table_row([256, "fp32", "1.50"]) == "| 256 | fp32 | 1.50 |"


def test_format_value_says_failed_for_what_was_not_measured():
    assert harness.format_value(1.23456) == "1.235"
    assert harness.format_value(2.0, "{:.2f}x") == "2.00x"
    assert harness.format_value(None) == "failed"
    assert harness.format_value(math.inf) == "failed"
    assert harness.format_value(math.nan, missing="") == ""


def test_describe_cpu_reads_the_model_and_the_bfloat16_features():
    cpuinfo = textwrap.dedent(
        """\
        processor\t: 0
        model name\t: Example CPU 9000
        flags\t\t: fpu sse2 avx512f avx512_bf16 avx2
        processor\t: 1
        model name\t: Example CPU 9000
        """
    )
    assert harness.describe_cpu(cpuinfo) == "Example CPU 9000 (avx512f, avx512_bf16)"
    assert harness.describe_cpu("flags : sse2 avx2\n") == "unknown CPU (no AVX-512)"


def test_a_job_that_did_not_run_reads_as_failed():
    results = harness.Results({"ran": {"ok": True}})
    assert results["ran"] == {"ok": True}
    assert results["missing"] == {"ok": False, "error": "not run"}
    assert "missing" not in results


# --- the worker protocol, in-process ------------------------------------------------------------


def _add(job):
    return {"sum": job["a"] + job["b"]}


def _fail(job):
    raise ValueError("bad input")


def test_run_jobs_prints_one_result_per_job_and_reports_failures(capsys):
    request = {
        "spec": {"a": 1},
        "jobs": [
            {"id": "one", "kind": "add", "b": 2},
            {"id": "two", "kind": "fail"},
            {"id": "three", "kind": "add", "a": 10, "b": 5},
            {"id": "four", "kind": "unknown"},
        ],
    }
    harness.run_jobs({"add": _add, "fail": _fail}, request)
    printed = capsys.readouterr().out
    results = {result["id"]: result for result in harness.parse_results(printed)}
    assert list(results) == ["one", "two", "three", "four"]
    assert results["one"]["ok"] and results["one"]["sum"] == 3  # the spec's "a"
    assert results["three"]["sum"] == 15  # the job's own fields win over the spec
    assert results["two"]["ok"] is False and results["two"]["error"] == "ValueError: bad input"
    assert not results["four"]["ok"] and results["four"]["error"].startswith("KeyError")
    for result in results.values():
        assert result["peak_rss"] > MB and result["job_seconds"] >= 0


def test_parse_results_ignores_everything_but_the_result_lines():
    stdout = f'noise\n{harness.RESULT_MARK}{{"id": "x", "ok": true}}\nmore noise\n'
    assert harness.parse_results(stdout) == [{"id": "x", "ok": True}]


# --- the worker protocol, in child processes ----------------------------------------------------

JOB_MODULE = """
import os
import sys

import numpy as np


def add(job):
    return {"sum": job["a"] + job["b"]}


def fail(job):
    raise ValueError("bad input")


def die(job):
    print("the worker dies", file=sys.stderr, flush=True)
    os._exit(3)


def allocate(job):
    array = np.ones(job["megabytes"] * 2**20, np.uint8)  # np.ones writes, so every page is resident
    return {"total": int(array.sum())}


JOBS = {"add": add, "fail": fail, "die": die, "allocate": allocate}
"""


@pytest.fixture()
def job_file(tmp_path) -> pathlib.Path:
    path = tmp_path / "trivial_jobs.py"
    path.write_text(JOB_MODULE, encoding="utf-8")
    return path


@pytest.mark.slow
def test_runner_returns_each_jobs_values_and_reports_a_failing_job(job_file):
    runner = harness.Runner(job_file, spec={"a": 1}, batch=True)
    results = runner.run(
        [
            {"id": "one", "kind": "add", "b": 2},
            {"id": "two", "kind": "fail"},
            {"id": "three", "kind": "add", "a": 10, "b": 5},
        ]
    )
    assert results["one"]["ok"] and results["one"]["sum"] == 3
    assert results["two"]["ok"] is False and results["two"]["error"] == "ValueError: bad input"
    assert results["three"]["ok"] and results["three"]["sum"] == 15


@pytest.mark.slow
def test_runner_reports_every_job_of_a_process_that_died(job_file):
    runner = harness.Runner(job_file, spec={"a": 1}, batch=True)
    results = runner.run(
        [
            {"id": "before", "kind": "add", "b": 1},
            {"id": "dies", "kind": "die"},
            {"id": "after", "kind": "add", "b": 1},
        ]
    )
    assert results["before"]["ok"] and results["before"]["sum"] == 2
    for job_id in ("dies", "after"):
        assert results[job_id]["ok"] is False
        assert results[job_id]["error"].startswith("worker exited with 3")
        assert "the worker dies" in results[job_id]["error"]


@pytest.mark.slow
def test_peak_memory_is_each_processs_own_and_grows_with_an_allocation(job_file):
    megabytes = 256
    runner = harness.Runner(job_file, batch=False)
    results = runner.run(
        [
            {"id": "small", "kind": "allocate", "megabytes": 0},
            {"id": "large", "kind": "allocate", "megabytes": megabytes},
        ]
    )
    small, large = results["small"], results["large"]
    assert small["ok"] and large["ok"] and large["total"] == megabytes * MB
    # A Python interpreter with numpy: more than a few MB, far less than the allocation.
    assert 5 * MB < small["peak_rss"] < megabytes * MB
    assert large["peak_rss"] - small["peak_rss"] > 0.9 * megabytes * MB


@pytest.mark.slow
def test_every_benchmark_module_imports_without_starting_tensorflow():
    # quality.py is the one benchmark that imports tf_nst's model code at the top; the others
    # load TensorFlow only in the jobs that need it.
    script = textwrap.dedent(
        """
        import importlib, pathlib, sys
        sys.path.insert(0, "benchmarks")
        names = sorted(path.stem for path in pathlib.Path("benchmarks").glob("*.py"))
        for name in names:
            if name != "quality":
                importlib.import_module(name)
        assert "tensorflow" not in sys.modules, "a benchmark imported TensorFlow at import time"
        importlib.import_module("quality")
        print(len(names))
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert int(completed.stdout.split()[-1]) >= 11


# --- benchmark.py's plan and tables, on made-up results -----------------------------------------


def quick_arguments(*extra):
    return benchmark.parse_args(["--quick", *extra])


def made_up_results() -> harness.Results:
    """Results of a --quick run (48 and 64 px) in which bf16 at 64 px and the L-BFGS race failed."""
    results = harness.Results()
    results["matmul"] = {"ok": True, "n": 512, "fp32": 40.0, "bf16": 80.0, "peak_rss": 600 * MB}
    for size, shape, seconds in ((48, [36, 48], 0.2), (64, [48, 64], 0.4)):
        results[f"baseline/{size}"] = {
            "ok": True,
            "shape": shape,
            "seconds_per_step": seconds,
            "peak_rss": 700 * MB,
        }
    results["baseline/48"].update(total_seconds=10.0, objective=5e7, initial_objective=8e7)
    for job_id, seconds in (
        ("tf_nst/48/fp32", 0.1),
        ("tf_nst/48/bf16", 0.08),
        ("tf_nst/64/fp32", 0.2),
        ("tf_nst/64/fp32+XLA", 0.25),
        ("tf_nst/64/bf16+XLA", 0.3),
    ):
        size = int(job_id.split("/")[1])
        results[job_id] = {
            "ok": True,
            "shape": [size * 3 // 4, size],
            "step_times": [1.0, seconds, seconds],
            "seconds_per_step": seconds,
            "precision": job_id.split("/")[2].split("+")[0],
            "peak_rss": 900 * MB,
            "estimate": 1000 * MB,
            "activation_bytes": 10 * MB,
            "fixed_bytes": 50 * MB,
            "activation_copies": 3.5,
            "base_bytes": 800 * MB,
        }
    results["tf_nst/64/bf16"] = {"ok": False, "error": "RuntimeError: out of memory"}
    results["race/adam"] = {
        "ok": True,
        "reached": True,
        "steps": 30,
        "seconds": 2.5,
        "best_objective": 4.9e7,
        "peak_rss": 1000 * MB,
    }
    results["race/lbfgs"] = {"ok": False, "error": "ValueError: no"}
    return results


def test_best_configurations_picks_the_fastest_candidate_that_ran():
    args = quick_arguments()
    best = benchmark_plan.best_configurations(args, made_up_results())
    assert best == {48: ("bf16", False), 64: ("fp32", False)}
    assert benchmark_plan.best_configurations(args, harness.Results()) == {
        48: ("fp32", False),
        64: ("fp32", False),
    }


def test_the_second_stage_races_against_the_baselines_objective():
    args = quick_arguments("--race-cap", "0.5")
    results = made_up_results()
    best = benchmark_plan.best_configurations(args, results)
    jobs = {job["id"]: job for job in benchmark_plan.second_stage(args, results, best)}
    assert set(jobs) == {"race/lbfgs", "race/adam", "memory/48", "memory/64"}
    race = jobs["race/adam"]
    assert (race["target"], race["cap_seconds"]) == (5e7, 5.0)
    assert (race["precision"], race["jit"], race["size"]) == ("bf16", False, 48)
    assert (jobs["memory/64"]["precision"], jobs["memory/64"]["steps"]) == ("fp32", 1)


def test_the_speed_table_divides_the_baselines_step_by_tf_nsts():
    args = quick_arguments()
    best = {48: ("bf16", False), 64: ("bf16", False)}  # bf16 failed at 64 px
    lines = benchmark_report.speed_table(args, made_up_results(), best)
    assert lines[0] == "## Seconds per step (median of 2 steps after 1 warm-up)"
    assert table_rows(lines, "| size") == [
        ["48 px (48x36)", "0.200", "bf16", "0.080", "2.50x", "700", "900"],
        ["64 px (64x48)", "0.400", "bf16", "failed", "failed", "700", "failed"],
    ]


def test_the_candidates_table_counts_the_conv_flops_against_the_matmul_peak():
    args = quick_arguments()
    results = made_up_results()
    best = benchmark_plan.best_configurations(args, results)
    rows = table_rows(benchmark_report.candidates_table(args, results, best), "| size")
    assert [row[1] for row in rows] == [
        "fp32",
        "bf16 (best)",
        "fp32 (best)",
        "fp32+XLA",
        "bf16",
        "bf16+XLA",
    ]
    gflops = 2 * benchmark_report.conv_flops(36, 48) / 0.08 / 1e9
    assert rows[1] == [
        "48 px",
        "bf16 (best)",
        "0.080",
        "0.080",
        "2.50x",
        "900",
        "1000",
        f"{gflops:.0f}",
        f"{100 * gflops / 80:.0f}%",
    ]
    assert rows[4] == ["64 px", "bf16", "failed"] + [""] * 6


def test_the_race_table_gives_each_optimizers_share_of_the_baselines_time():
    args = quick_arguments()
    results = made_up_results()
    best = benchmark_plan.best_configurations(args, results)
    lines = benchmark_report.race_table(args, results, best)
    assert table_rows(lines, "| tf_nst config") == [
        ["bf16 lbfgs", "failed", "", "", "", "", ""],
        ["bf16 adam", "yes", "30", "2.5", "0.250", "4.9e+07", "1000"],
    ]
    targets = benchmark_report.targets(args, results, best)
    assert "- >= 4x steps/s at 64 px: NOT MET (2.00x, fp32)" in targets
    assert (
        "- baseline's 12-step objective in <= 1/3 of its time at 48 px: MET (0.250, bf16 adam)"
        in targets
    )


def test_the_memory_table_fits_the_peaks_against_the_pixels():
    args = quick_arguments()
    results = made_up_results()
    for size, peak in ((48, 900), (64, 1000)):
        results[f"memory/{size}"] = {
            **results[f"tf_nst/{size}/fp32"],
            "peak_rss": peak * MB,
            "activation_bytes": size * MB,
        }
    best = benchmark_plan.best_configurations(args, results)
    lines = benchmark_report.memory_table(args, results, best)
    assert table_rows(lines, "| size") == [
        ["48 px (48x36)", "0.002", "900", "1000", "0.90"],
        ["64 px (64x48)", "0.003", "1000", "1000", "1.00"],
    ]
    # Two points fit exactly: peak - fixed = base + copies * activation bytes, slope 100 / 16.
    assert any("ACTIVATION_COPIES = 6.25" in line and "R^2 = 1.0000" in line for line in lines)
    assert lines[-1].startswith("(--quick: one process for all memory points")


def test_the_report_has_every_table_in_order():
    args = quick_arguments("--profile")
    results = made_up_results()
    results["profile"] = {
        "ok": True,
        "method": "made up",
        "wall_seconds_per_step": 0.2,
        "groups": [["conv forward (+bias+ReLU)", 0.15], ["pooling forward", 0.05]],
        "top_ops": [["block1_conv1:Conv2D", 0.01]],
    }
    best = benchmark_plan.best_configurations(args, results)
    lines = benchmark_report.report(args, results, best, "images note", "weights note")
    titles = [line for line in lines if line.startswith("#")]
    assert [title.split(" (")[0] for title in titles] == [
        "# tf_nst benchmark",
        "## Seconds per step",
        "## tf_nst candidates",
        "## Time to the baseline's objective at 48 px",
        "## Peak memory of one tf_nst step",
        "## Targets",
        "## Profile of one tf_nst step at 64 px",
    ]
    assert "- weights note" in lines
    assert table_rows(lines, "| part of the step") == [
        ["conv forward (+bias+ReLU)", "0.150", "75.0%"],
        ["pooling forward", "0.050", "25.0%"],
    ]


def test_conv_flops_count_each_convolution_at_its_blocks_resolution():
    # Block 1 at 4x4: 3 -> 64 -> 64 channels; block 2 after one pooling, at 2x2: 64 -> 128.
    block1 = 2 * 4 * 4 * (3 * 64 + 64 * 64) * 9
    assert benchmark_report.conv_flops(4, 4, "block1_conv1") == 2 * 4 * 4 * 3 * 64 * 9
    assert benchmark_report.conv_flops(4, 4, "block2_conv1") == block1 + 2 * 2 * 2 * 64 * 128 * 9


def test_linear_fit_recovers_a_line():
    intercept, slope, r2 = benchmark_report.linear_fit([0.0, 1.0, 2.0], [1.0, 3.0, 5.0])
    assert (intercept, slope, r2) == pytest.approx((1.0, 2.0, 1.0))


def test_the_memory_estimates_parts_add_up_to_it():
    from tf_nst.optimize import memory

    copies = memory.ACTIVATION_COPIES
    parts = benchmark_jobs.memory_estimate(384, 512, "bf16")
    assert copies == memory.ACTIVATION_COPIES  # restored after reading the parts off
    assert parts["activation_bytes"] > 0 and parts["fixed_bytes"] > 0
    rebuilt = parts["base_bytes"] + parts["fixed_bytes"] + copies * parts["activation_bytes"]
    assert abs(rebuilt - parts["estimate"]) <= 2  # each estimate is rounded to whole bytes


# --- apply_benchmark.py's tables ----------------------------------------------------------------


def test_the_apply_tables_show_each_configuration_and_its_failures():
    args = apply_benchmark.parse_args(["--quick"])
    results = {
        (16, "fp32"): {
            "ok": True,
            "per_image": {"256": {"ms": 12.4, "gflops": 20.0}, "512": {"ms": 50.0, "gflops": 18.0}},
            "batched_images_per_second": 18.5,
            "peak_rss": 1200 * MB,
            "estimate": 1500 * MB,
        },
        (16, "bf16"): {"ok": False, "error": "worker exited with 1: boom"},
    }
    matmul = {"ok": True, "fp32": 40.0, "bf16": 80.0}
    optimization = {
        "ok": True,
        "seconds": 100.0,
        "shape": [384, 512],
        "precision": "bf16",
        "peak_rss": 1300 * MB,
    }
    text = apply_benchmark.report(results, matmul, optimization, args).splitlines()
    assert table_rows(text, "| size") == [["256", "12", "failed"], ["512", "50", "failed"]]
    assert table_rows(text, "| width") == [
        ["16", "fp32", "18.50", "20.00", "1200 MiB", "1500 MiB"],
        ["16", "bf16", "failed", "", "", ""],
    ]
    throughput = text.index("## Achieved GFLOP/s (convolutions counted analytically)")
    assert table_rows(text[throughput:], "| size") == [
        ["256", "20 (50%)", "failed"],
        ["512", "18 (45%)", "failed"],
    ]
    assert table_rows(text, "| network") == [["w16 fp32", "50 ms", "2000x"]]


# --- the benchmark's jobs, on tiny images with the real weights ---------------------------------


@pytest.mark.slow
@pytest.mark.real_weights
def test_the_tf_nst_job_times_its_steps(vgg16_weights, shared_images):
    job = {
        "content": str(shared_images / "tubingen.jpg"),
        "style": str(shared_images / "starry_night.jpg"),
        "weights": str(vgg16_weights),
        "size": 48,
        "precision": "fp32",
        "jit": False,
        "steps": 1,
        "warmup": 1,
    }
    result = benchmark_jobs.tf_nst_job(job)
    assert result["shape"] == [36, 48]
    assert len(result["step_times"]) == len(result["losses"]) == 2
    assert result["seconds_per_step"] > 0 and result["precision"] == "fp32"
    assert all(math.isfinite(loss) for loss in result["losses"])
    assert result["estimate"] > result["base_bytes"]


@pytest.mark.slow
@pytest.mark.real_weights
def test_the_baseline_job_times_its_steps_and_measures_the_objective(vgg16_weights, shared_images):
    job = {
        "content": str(shared_images / "tubingen.jpg"),
        "style": str(shared_images / "starry_night.jpg"),
        "weights": str(vgg16_weights),
        "size": 48,
        "steps": 3,
        "warmup": 1,
        "objective": True,
    }
    result = benchmark_jobs.baseline_job(job)
    assert result["shape"] == [36, 48] and len(result["step_times"]) == 3
    assert result["total_seconds"] >= sum(result["step_times"][1:])
    # The style term rises before it falls when the image starts as the content: no direction.
    assert math.isfinite(result["objective"]) and result["objective"] > 0
    assert result["initial_objective"] == result["losses"][0]


# --- benchmark.py's inputs ----------------------------------------------------------------------


def test_missing_weights_fall_back_to_a_random_vgg16_written_by_the_first_job(tmp_path):
    args = quick_arguments("--weights", str(tmp_path / "absent.weights.h5"))
    weights, note, jobs = benchmark.choose_weights(args, str(tmp_path))
    assert weights == str(tmp_path / "random_vgg16.weights.h5")
    assert note.startswith("RANDOM VGG16 weights (") and "absent.weights.h5 not found" in note
    assert [(job["id"], job["kind"], job["path"]) for job in jobs] == [
        ("weights", "random_weights", weights)
    ]


def test_weights_that_exist_are_used_unless_random_ones_are_asked_for(tmp_path):
    present = tmp_path / "vgg16.weights.h5"
    present.write_bytes(b"")
    args = quick_arguments("--weights", str(present))
    assert benchmark.choose_weights(args, str(tmp_path)) == (
        str(present),
        f"VGG16 weights {present}",
        [],
    )
    args = quick_arguments("--weights", str(present), "--random-weights")
    weights, note, jobs = benchmark.choose_weights(args, str(tmp_path))
    assert weights != str(present) and "(--random-weights)" in note and len(jobs) == 1


def test_missing_images_fall_back_to_tf_nsts_examples(tmp_path):
    args = quick_arguments("--content", str(tmp_path / "absent.jpg"))
    content, style, note = benchmark.choose_images(args)
    assert pathlib.Path(content).is_file() and pathlib.Path(style).is_file()
    assert note.startswith("shared images not found; using tf_nst's example images")


def test_a_result_that_is_not_json_is_reported_and_the_next_job_still_runs(capsys):
    jobs = {"bad": lambda job: {"value": object()}, "add": _add}
    request = {
        "jobs": [{"id": "bad", "kind": "bad"}, {"id": "next", "kind": "add", "a": 1, "b": 1}]
    }
    harness.run_jobs(jobs, request)
    results = {result["id"]: result for result in harness.parse_results(capsys.readouterr().out)}
    assert results["bad"]["ok"] is False and results["bad"]["error"].startswith("result is not")
    assert results["next"]["sum"] == 2
