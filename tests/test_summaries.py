"""Fast tests of `tf_nst.run.summaries`: run directories and what `RunLog` puts in event files."""

from __future__ import annotations

import datetime
import io
import types

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.util import tensor_util

from tf_nst.config import StyleConfig
from tf_nst.errors import StyleTransferError
from tf_nst.run import summaries
from tf_nst.run.summaries import RunLog, make_run_directory, markdown_code_block


def _load(run_directory) -> event_accumulator.EventAccumulator:
    # Size guidance 0 keeps every record, so no step is dropped by reservoir sampling.
    accumulator = event_accumulator.EventAccumulator(
        str(run_directory), size_guidance={event_accumulator.TENSORS: 0}
    )
    accumulator.Reload()
    return accumulator


def _values(accumulator, tag) -> list[tuple[int, object]]:
    return [
        (event.step, tensor_util.make_ndarray(event.tensor_proto))
        for event in accumulator.Tensors(tag)
    ]


class _FrozenClock:
    """Stands in for `datetime.datetime` so every call happens in the same second."""

    @staticmethod
    def now():
        return datetime.datetime(2026, 11, 28, 21, 34, 55)


# ---- make_run_directory -------------------------------------------------------------------------


def test_run_name_is_used_and_made_unique(tmp_path):
    first = make_run_directory(tmp_path, "starry")
    second = make_run_directory(tmp_path, "starry")
    third = make_run_directory(tmp_path, "starry")

    assert [first.name, second.name, third.name] == ["starry", "starry-2", "starry-3"]
    assert all(path.is_dir() and path.parent == tmp_path for path in (first, second, third))


def test_timestamped_runs_in_the_same_second_do_not_clash(tmp_path, monkeypatch):
    monkeypatch.setattr(summaries, "datetime", types.SimpleNamespace(datetime=_FrozenClock))

    first = make_run_directory(tmp_path)
    second = make_run_directory(tmp_path)

    assert first.name == "20261128-213455"
    assert second.name == "20261128-213455-2"


def test_default_name_is_a_timestamp(tmp_path):
    run_directory = make_run_directory(tmp_path)

    datetime.datetime.strptime(run_directory.name, "%Y%m%d-%H%M%S")


def test_missing_logdir_is_created(tmp_path):
    logdir = tmp_path / "deep" / "logs"

    run_directory = make_run_directory(str(logdir), "run")

    assert run_directory == logdir / "run"
    assert run_directory.is_dir()


def test_existing_file_named_like_the_run_is_skipped(tmp_path):
    (tmp_path / "run").write_text("not a directory")

    assert make_run_directory(tmp_path, "run").name == "run-2"


@pytest.mark.parametrize("run_name", ["../x", "..", "a/b", "a\\b", "/abs", "", "."])
def test_unsafe_run_names_are_rejected(tmp_path, run_name):
    with pytest.raises(StyleTransferError, match="run-name") as raised:
        make_run_directory(tmp_path / "logs", run_name)

    assert "\n" not in str(raised.value)
    assert not (tmp_path / "x").exists()


def test_logdir_that_is_a_file_is_a_user_error(tmp_path):
    logdir = tmp_path / "logs"
    logdir.write_text("oops")

    with pytest.raises(StyleTransferError, match="--logdir"):
        make_run_directory(logdir, "run")


# ---- RunLog -------------------------------------------------------------------------------------


def test_scalars_are_written_with_tags_steps_and_values(tmp_path):
    with RunLog(tmp_path) as run_log:
        run_log.scalars(0, {"loss/total": 3.0, "loss/style/block1_conv1": 2.0})
        run_log.scalars(1, {"loss/total": np.float32(1.5), "time/step_seconds": 0.25})

    accumulator = _load(tmp_path)
    assert _values(accumulator, "loss/total") == [(0, 3.0), (1, 1.5)]
    assert _values(accumulator, "loss/style/block1_conv1") == [(0, 2.0)]
    assert _values(accumulator, "time/step_seconds") == [(1, 0.25)]
    assert accumulator.SummaryMetadata("loss/total").plugin_data.plugin_name == "scalars"


@pytest.mark.parametrize("as_tensor", [False, True])
def test_image_is_written_as_clipped_png(tmp_path, as_tensor):
    pixels = np.zeros((6, 10, 3), dtype=np.float32)
    pixels[..., 0] = 2.0  # out of range: must be clipped to full red, not wrap around
    pixels[..., 2] = -1.0
    image = tf.constant(pixels) if as_tensor else pixels

    with RunLog(tmp_path) as run_log:
        run_log.image("images/current", 7, image)

    accumulator = _load(tmp_path)
    [(step, encoded)] = _values(accumulator, "images/current")
    assert step == 7
    assert accumulator.SummaryMetadata("images/current").plugin_data.plugin_name == "images"
    # The images plugin stores [width, height, png...]; one PNG because max_outputs=1.
    width, height, png = encoded
    assert (int(width), int(height)) == (10, 6)
    decoded = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert decoded.shape == (6, 10, 3)
    assert (decoded[..., 0] == 255).all() and (decoded[..., 2] == 0).all()


def test_text_is_written(tmp_path):
    command_line = markdown_code_block("tf-nst stylize content.png style.png --steps 5")

    with RunLog(tmp_path) as run_log:
        run_log.text("run/command_line", 0, command_line)

    accumulator = _load(tmp_path)
    [(step, text)] = _values(accumulator, "run/command_line")
    assert step == 0
    assert text.item().decode() == command_line
    assert accumulator.SummaryMetadata("run/command_line").plugin_data.plugin_name == "text"


def test_markdown_code_block_fences_text_verbatim():
    assert markdown_code_block("tf-nst --x *y*") == "```\ntf-nst --x *y*\n```"
    # Backticks inside must not end the block early.
    assert markdown_code_block("echo ```x```").startswith("````\n")


def test_hparams_plugin_data_lists_settings_and_metrics(tmp_path):
    settings = StyleConfig(seed=3).hparams()

    with RunLog(tmp_path) as run_log:
        run_log.hparams(settings, trial_id="trial-1")

    content = _load(tmp_path).PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    assert set(content) == {
        hparams_metadata.EXPERIMENT_TAG,  # "_hparams_/experiment"
        hparams_metadata.SESSION_START_INFO_TAG,  # "_hparams_/session_start_info"
    }
    experiment = hparams_metadata.parse_experiment_plugin_data(
        content[hparams_metadata.EXPERIMENT_TAG]
    )
    assert {info.name for info in experiment.hparam_infos} == set(settings)
    assert [info.name.tag for info in experiment.metric_infos] == ["loss/best", "loss/total"]

    start_info = hparams_metadata.parse_session_start_info_plugin_data(
        content[hparams_metadata.SESSION_START_INFO_TAG]
    )
    assert start_info.group_name == "trial-1"
    assert start_info.hparams["size"].number_value == settings["size"]
    assert start_info.hparams["backbone"].string_value == settings["backbone"]
    assert start_info.hparams["jit"].bool_value is settings["jit"]
    assert start_info.hparams["style_layers"].string_value == ",".join(settings["style_layers"])


def test_hparams_values_tensorboard_cannot_store_become_strings(tmp_path):
    with RunLog(tmp_path) as run_log:
        run_log.hparams(
            {"scales": None, "layers": ("a", "b"), "blend": [0.5, 0.5], "count": np.int64(4)},
            trial_id="trial",
        )

    content = _load(tmp_path).PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    values = hparams_metadata.parse_session_start_info_plugin_data(
        content[hparams_metadata.SESSION_START_INFO_TAG]
    ).hparams
    assert values["scales"].string_value == "none"
    assert values["layers"].string_value == "a,b"
    assert values["blend"].string_value == "0.5,0.5"
    assert values["count"].number_value == 4


def test_close_is_idempotent_and_flush_after_close_is_harmless(tmp_path):
    run_log = RunLog(tmp_path)
    run_log.scalars(0, {"loss/total": 1.0})
    run_log.flush()
    run_log.close()
    run_log.close()
    run_log.flush()

    assert _values(_load(tmp_path), "loss/total") == [(0, 1.0)]


def test_run_logs_do_not_share_or_leave_a_default_writer(tmp_path):
    with RunLog(tmp_path / "a") as first, RunLog(tmp_path / "b") as second:
        first.scalars(0, {"loss/first": 1.0})
        second.scalars(0, {"loss/second": 2.0})
        first.scalars(1, {"loss/first": 3.0})

        # Without a default writer, a stray tf.summary call records nothing anywhere.
        assert tf.summary.scalar("stray", 1.0, step=0).numpy() == np.False_

    assert _load(tmp_path / "a").Tags()["tensors"] == ["loss/first"]
    assert _load(tmp_path / "b").Tags()["tensors"] == ["loss/second"]
    assert _values(_load(tmp_path / "a"), "loss/first") == [(0, 1.0), (1, 3.0)]
