"""End-to-end check that a finished run shows up in a real TensorBoard.

Starts the `tensorboard` program on a free loopback port against the log directory of a finished
run and asks its HTTP data API (the same one the dashboards use) for every piece the product
promises: the run, its loss scalars with descriptions, its pictures, its command line, and its
hparams with types, resolved values, the `loss/best` and `loss/total` metrics and the run's
status. Only 127.0.0.1 is ever contacted.

The run is a real, small two-scale `tf-nst stylize` on the bundled example with the shared VGG16
weights.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from conftest import run_cli

from tf_nst.config import StyleConfig

pytestmark = pytest.mark.slow

COMMAND_LINE_TAG = "run/command_line"
IMAGE_TAGS = ("pictures/current", "pictures/content", "pictures/style", "pictures/final")
STEPS = 8

_STARTUP_TIMEOUT_SECONDS = 60.0
_REQUEST_TIMEOUT_SECONDS = 10.0
_SHUTDOWN_TIMEOUT_SECONDS = 10.0
_PORT_ATTEMPTS = 3

# Proxies are bypassed so a proxy set in the environment can never see (or break) loopback traffic.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, vgg16_weights) -> tuple[pathlib.Path, str]:
    """Runs a real, small `tf-nst stylize` and returns `(logdir, run_name)`."""
    directory = tmp_path_factory.mktemp("tensorboard_run")
    logdir = directory / "logs"
    completed = run_cli(
        "stylize", "--example", "-o", directory / "out.png", "--backbone", "vgg16",
        "--weights", vgg16_weights, "--size", 64, "--scales", 2, "--steps", STEPS,
        "--image-every", 2, "--optimizer", "adam",
        "--logdir", logdir, "--run-name", "stylize-e2e", "--quiet",
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    return logdir, "stylize-e2e"


class _TensorBoard:
    """HTTP client for a TensorBoard listening on 127.0.0.1."""

    def __init__(self, port: int):
        self.base_url = f"http://127.0.0.1:{port}"

    def get_json(self, path: str, **params):
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        return json.loads(self.get_bytes(f"{path}{query}"))

    def get_bytes(self, path_and_query: str) -> bytes:
        url = self.base_url + path_and_query
        with _OPENER.open(url, timeout=_REQUEST_TIMEOUT_SECONDS) as reply:
            return reply.read()

    def post_json(self, path: str, body: dict):
        request = urllib.request.Request(
            self.base_url + path,
            data=json.dumps(body).encode(),
            # Without this header werkzeug parses the body as a form, and the hparams plugin sees
            # an empty request and answers 400.
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with _OPENER.open(request, timeout=_REQUEST_TIMEOUT_SECONDS) as reply:
            return json.loads(reply.read())


@pytest.fixture(scope="module")
def tensorboard(finished_run, tmp_path_factory):
    """Runs `tensorboard` on the finished run's logdir; yields a `_TensorBoard` client."""
    logdir, run_name = finished_run
    work_directory = tmp_path_factory.mktemp("tensorboard_process")
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        stderr_path = work_directory / f"stderr-{attempt}.txt"
        port = _free_loopback_port()
        with _tensorboard_process(logdir, port, work_directory, stderr_path) as process:
            client = _TensorBoard(port)
            outcome = _wait_until_serving(client, process, run_name)
            if outcome == "ready":
                yield client
                return
        stderr = stderr_path.read_text(errors="replace")
        # Another process may grab the port between our probe and TensorBoard's bind.
        if "already in use" not in stderr:
            break
    pytest.fail(f"TensorBoard did not serve {run_name!r} ({outcome}); its stderr:\n{stderr}")


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def _tensorboard_process(logdir, port, work_directory, stderr_path):
    environment = {
        name: value for name, value in os.environ.items() if not name.lower().endswith("_proxy")
    }
    environment.update(
        {
            # Anything that tried to leave the machine through a proxy-aware client fails at once
            # on this closed loopback port instead of reaching the internet.
            "http_proxy": "http://127.0.0.1:9",
            "https_proxy": "http://127.0.0.1:9",
            "no_proxy": "127.0.0.1,localhost",
            "TF_CPP_MIN_LOG_LEVEL": "3",
        }
    )
    command = [
        sys.executable,
        "-m",
        "tensorboard.main",
        "--logdir",
        str(logdir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        # The pure-Python loader: the Rust data server is a separate binary we need not depend on.
        "--load_fast=false",
        # Load the finished run once, before serving, so the first answer already has all data.
        "--reload_interval=0",
        "--reload_task=blocking",
    ]
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(
            command,
            cwd=work_directory,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=_SHUTDOWN_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_serving(client: _TensorBoard, process: subprocess.Popen, run_name: str) -> str:
    deadline = time.monotonic() + _STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"exited with status {process.returncode}"
        try:
            if run_name in client.get_json("/data/runs"):
                return "ready"
        except (OSError, ValueError):
            pass  # not listening yet, or answered before it was fully up
        time.sleep(0.2)
    return f"not ready after {_STARTUP_TIMEOUT_SECONDS:.0f} s"


# ---- the dashboards' data ----------------------------------------------------------------------


def test_dashboards_for_every_kind_of_data_are_enabled(tensorboard):
    plugins = tensorboard.get_json("/data/plugins_listing")

    for plugin in ("scalars", "images", "text", "hparams"):
        assert plugins[plugin]["enabled"], plugin


def test_run_is_listed(tensorboard, finished_run):
    _, run_name = finished_run

    assert run_name in tensorboard.get_json("/data/runs")


def test_loss_scalar_tags_are_listed_once_each_with_descriptions(tensorboard, finished_run):
    _, run_name = finished_run

    tags = tensorboard.get_json("/data/plugin/scalars/tags")[run_name]

    assert {"loss/total", "loss/best", "loss/working_long_side", "loss/style"} <= set(tags)
    assert any(tag.startswith("loss/style/") for tag in tags), sorted(tags)
    assert "loss/content/block4_conv2" in tags
    # No chart duplicates another: one content layer means no separate content total, and the
    # final loss is the last point of loss/total, not a chart of its own.
    assert "loss/content" not in tags and "loss/final" not in tags
    for tag in ("loss/total", "loss/best", "loss/working_long_side", "time/step_seconds"):
        assert tags[tag]["description"], tag
    # The Time Series dashboard sorts groups alphabetically: the losses come first.
    groups = sorted({tag.split("/")[0] for tag in tags} | {tag.split("/")[0] for tag in IMAGE_TAGS})
    assert groups[0] == "loss", groups


def test_total_loss_has_numeric_values(tensorboard, finished_run):
    _, run_name = finished_run

    series = tensorboard.get_json("/data/plugin/scalars/scalars", run=run_name, tag="loss/total")

    # Each point is [wall_time, step, value].
    assert [step for _, step, _ in series] == list(range(1, STEPS + 1))
    for _, _, value in series:
        assert isinstance(value, (int, float)) and math.isfinite(value), series


def test_best_loss_starts_at_the_final_scale_and_never_rises(tensorboard, finished_run):
    _, run_name = finished_run

    def series(tag):
        points = tensorboard.get_json("/data/plugin/scalars/scalars", run=run_name, tag=tag)
        return {step: value for _, step, value in points}

    sizes, best = series("loss/working_long_side"), series("loss/best")
    assert sorted(set(sizes.values())) == [32, 64]
    final_scale_steps = [step for step, size in sizes.items() if size == 64]
    assert sorted(best) == final_scale_steps
    values = [best[step] for step in sorted(best)]
    assert all(later <= earlier for earlier, later in zip(values, values[1:], strict=False))


def test_image_tags_are_listed(tensorboard, finished_run):
    _, run_name = finished_run

    tags = tensorboard.get_json("/data/plugin/images/tags")[run_name]

    assert set(IMAGE_TAGS) <= set(tags), sorted(tags)


def test_last_current_picture_is_not_a_copy_of_the_final_one(tensorboard, finished_run):
    _, run_name = finished_run

    def steps(tag):
        entries = tensorboard.get_json(
            "/data/plugin/images/images", run=run_name, tag=tag, sample=0
        )
        return [entry["step"] for entry in entries]

    assert steps("pictures/current") == list(range(2, STEPS, 2))
    assert steps("pictures/final") == [STEPS]


def test_final_image_is_served_as_png(tensorboard, finished_run):
    _, run_name = finished_run

    entries = tensorboard.get_json(
        "/data/plugin/images/images", run=run_name, tag="pictures/final", sample=0
    )
    png = tensorboard.get_bytes(f"/data/plugin/images/individualImage?{entries[-1]['query']}")

    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_command_line_is_shown_as_code(tensorboard, finished_run):
    _, run_name = finished_run

    assert COMMAND_LINE_TAG in tensorboard.get_json("/data/plugin/text/tags")[run_name]
    entries = tensorboard.get_json("/data/plugin/text/text", run=run_name, tag=COMMAND_LINE_TAG)
    # The text plugin serves markdown rendered to HTML; a fenced block becomes <pre><code>.
    assert entries and "<code>" in entries[0]["text"] and "stylize" in entries[0]["text"]


def test_hparams_have_types_domains_and_the_key_settings_first(tensorboard):
    experiment = tensorboard.post_json("/data/plugin/hparams/experiment", {"experimentName": ""})

    infos = {info["name"]: info for info in experiment["hparamInfos"]}
    assert set(StyleConfig().hparams()) <= set(infos)
    assert all(info.get("type", "DATA_TYPE_UNSET") != "DATA_TYPE_UNSET" for info in infos.values())
    assert infos["optimizer"]["domainDiscrete"] == ["adam", "lbfgs"]
    assert infos["jit"]["type"] == "DATA_TYPE_BOOL"
    assert infos["size"]["type"] == "DATA_TYPE_FLOAT64"
    # The dashboard shows the first columns by default: the key settings lead.
    names = [info["name"] for info in experiment["hparamInfos"]]
    assert set(names[:4]) == {"style_weight", "size", "steps", "optimizer"}
    metric_tags = {info["name"]["tag"] for info in experiment["metricInfos"]}
    assert metric_tags == {"loss/best", "loss/total"}


def test_hparams_session_records_resolved_values_metrics_and_success(tensorboard, finished_run):
    _, run_name = finished_run

    reply = tensorboard.post_json(
        "/data/plugin/hparams/session_groups",
        {
            "experimentName": "",
            "allowedStatuses": [
                "STATUS_UNKNOWN",
                "STATUS_SUCCESS",
                "STATUS_FAILURE",
                "STATUS_RUNNING",
            ],
            "colParams": [],
            "startIndex": 0,
            "sliceSize": 100,
        },
    )

    groups = [
        group
        for group in reply["sessionGroups"]
        if any(session["name"] == run_name for session in group["sessions"])
    ]
    assert len(groups) == 1, reply
    [group] = groups
    values = group["hparams"]
    assert set(StyleConfig().hparams()) <= set(values)
    # What "auto" and "none" resolved to, so the run can be repeated from the dashboard.
    assert values["scales"] == 2
    assert values["precision"] in ("fp32", "bf16")
    assert isinstance(values["seed"], (int, float)) and values["seed"] >= 0
    [session] = group["sessions"]
    assert session["status"] == "STATUS_SUCCESS"
    metrics = {value["name"]["tag"]: value["value"] for value in group["metricValues"]}
    assert set(metrics) == {"loss/best", "loss/total"}
    assert all(math.isfinite(value) for value in metrics.values()), metrics
