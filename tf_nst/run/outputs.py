"""The paths a long job writes, checked before anything is written, and the resume check.

Everything here runs before TensorFlow is imported, except reading a checkpoint's index on
`--resume`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import secrets
from collections.abc import Mapping
from typing import Any

from tf_nst.config import OutputOptions
from tf_nst.errors import StyleTransferError
from tf_nst.image.writing import check_name_length
from tf_nst.text import one_line, printable

CHECKPOINT_SUFFIX = ".checkpoint"
RUN_STATE = "run.json"
CHECKPOINT_PREFIX = "ckpt"
STATE_FORMAT = "tf_nst-checkpoint/2"
# The longest file name most file systems allow (NAME_MAX).
NAME_MAX = 255


@dataclasses.dataclass(frozen=True)
class ResumeKey:
    """What a checkpoint must match to be resumed: the job's kind, settings and input digests."""

    kind: str
    settings: Mapping[str, Any]
    inputs: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class OutputPlan:
    """The paths a run will write, checked up front by `check_outputs`."""

    output: pathlib.Path
    checkpoint_directory: pathlib.Path
    logdir: pathlib.Path
    run_name: str | None
    resume_state: dict | None
    # The run's identity: a random token, the same across its resumes (`run_job` hands it to the
    # job, whose output may record it so that a resume replaces only what its own run wrote).
    run_id: str


def checkpoint_directory_for(output: str | os.PathLike) -> pathlib.Path:
    """Returns `OUT.png.checkpoint/` beside `OUT.png`.

    The whole name, suffix included, so that `res.png` and `res.jpg` never share a checkpoint.
    """
    output = pathlib.Path(os.path.abspath(output))
    return output.with_name(output.name + CHECKPOINT_SUFFIX)


def intermediate_name(output: pathlib.Path, step: int) -> pathlib.Path:
    """`OUT_00050.png` beside `OUT.png`: where `save_every` writes the result of step 50."""
    return output.with_name(f"{output.stem}_{step:05d}{output.suffix}")


def check_outputs(
    options: OutputOptions, resume_key: ResumeKey, total_steps: int | None = None
) -> OutputPlan:
    """Checks every path a run will write, before anything is written.

    The output itself is checked by the job's kind (`writing.check_output_path` for an image);
    this checks the rest: the checkpoint directory, the numbered intermediates, the log
    directory and the run name, for name lengths and for files or folders in the way.

    Args:
        options: The output settings.
        resume_key: The job's settings and inputs, compared with a checkpoint on `--resume`.
        total_steps: The steps the job will run, which name the numbered intermediates that
            `options.save_every` would write; None when it writes none.

    Returns:
        The resolved paths, and on `--resume` the checkpoint's state.

    Raises:
        StyleTransferError: If a path is too long, blocked by a file or folder this run did not
            make, or (on `--resume`) the checkpoint is missing or belongs to other settings.
    """
    output = pathlib.Path(os.path.abspath(options.output))
    checkpoint_directory = checkpoint_directory_for(output)
    _check_name_length(checkpoint_directory.name, 0, "checkpoint directory")
    resume_state = None
    if options.resume:
        resume_state = read_resume_state(checkpoint_directory, resume_key)
    else:
        check_no_checkpoint(output)
    first_step = int(resume_state["step"]) if resume_state else 0
    steps = range(options.save_every, (total_steps or 0) + 1, options.save_every or 1)
    for path in (intermediate_name(output, step) for step in steps if options.save_every):
        check_name_length(path, what="--save-every intermediate")
        step = _step_of(path)
        if step is not None and step <= first_step:
            continue
        if os.path.lexists(path):
            raise StyleTransferError(
                f"--save-every would write {printable(str(path))}, which exists already: move it, "
                "choose another output name, or drop --save-every"
            )
    logdir = pathlib.Path(os.path.abspath(options.logdir))
    _check_directory_path(logdir, "--logdir")
    run_name = options.run_name
    if resume_state is not None:
        run_name = resume_state["run_name"]
    if run_name is not None:
        check_run_name(run_name)
        run_directory = logdir / run_name
        if os.path.lexists(run_directory) and not run_directory.is_dir():
            raise StyleTransferError(
                f"the TensorBoard run {printable(str(run_directory))} is blocked by a file: "
                "move it, or pass another --run-name"
            )
    run_id = (resume_state or {}).get("run_id") or secrets.token_hex(8)
    return OutputPlan(output, checkpoint_directory, logdir, run_name, resume_state, run_id)


def check_no_checkpoint(output: str | os.PathLike) -> None:
    """Refuses a fresh run when something has the name of its checkpoint folder.

    An interrupted run's checkpoint is never deleted by a fresh run: the message says to add
    `--resume`, or how to start over.

    Raises:
        StyleTransferError: If `OUTPUT.checkpoint` exists.
    """
    checkpoint_directory = checkpoint_directory_for(output)
    if not os.path.lexists(checkpoint_directory):
        return
    label = printable(str(checkpoint_directory))
    if checkpoint_directory.is_dir() and (checkpoint_directory / RUN_STATE).is_file():
        raise StyleTransferError(
            f"{label} holds the checkpoint of an interrupted run: add --resume to continue it; "
            + start_over(checkpoint_directory, resuming=False)
        )
    raise StyleTransferError(
        f"{label} is in the way of this run's checkpoint and is not ours: move it, or choose "
        "another output name"
    )


def start_over(checkpoint_directory: str | os.PathLike, resuming: bool = True) -> str:
    """The advice to start afresh instead of resuming the checkpoint in `checkpoint_directory`.

    A fresh run deletes no earlier run's files, so the advice names what is in its way: the
    checkpoint folder, and an output folder (a model) that a fresh run would not replace.

    Args:
        checkpoint_directory: `OUTPUT.checkpoint`, or any folder a caller restores from.
        resuming: Whether the command was given `--resume` (which starting over drops).
    """
    directory = pathlib.Path(os.path.abspath(checkpoint_directory))
    if not directory.name.endswith(CHECKPOINT_SUFFIX):
        return "to start over, do not restore it"
    output = directory.with_name(directory.name.removesuffix(CHECKPOINT_SUFFIX))
    move = f" and move {printable(str(output))} away" if os.path.isdir(output) else ""
    without = ", and run without --resume" if resuming else ""
    return (
        f"to start over, delete {printable(str(directory))}{move} or choose another "
        f"-o/--output{without}"
    )


def _check_name_length(name: str, extra: int, what: str) -> None:
    if len(os.fsencode(name)) + extra > NAME_MAX:
        raise StyleTransferError(
            f"the {what} name {printable(name[:40])}... is {len(os.fsencode(name))} bytes long; "
            f"with what this run adds it must stay under {NAME_MAX - extra + 1}: "
            "choose a shorter name"
        )


def check_run_name(run_name: str) -> None:
    """Refuses a run name that is not one plain directory name, or too long to extend.

    Raises:
        StyleTransferError: Saying what is wrong with the name.
    """
    separators = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
    if (
        not run_name
        or run_name in (".", "..")
        or any(separator in run_name for separator in separators)
        or not run_name.isprintable()
    ):
        raise StyleTransferError(
            f"--run-name {printable(run_name)!r} is not a plain directory name: use a name "
            "without '/', '\\' or control characters"
        )
    # "-2", "-3", ... may be added when the name is taken.
    _check_name_length(run_name, len("-999"), "--run-name")


def _check_directory_path(directory: pathlib.Path, option: str) -> None:
    """Refuses a directory path that is a file, lies under a file, or cannot be created."""
    for part_name in directory.parts:
        _check_name_length(part_name, 0, option)
    existing = next(part for part in (directory, *directory.parents) if os.path.lexists(part))
    if not existing.is_dir():
        blocker = "is a file" if existing == directory else f"is under the file {existing}"
        raise StyleTransferError(
            f"{option} {printable(str(directory))} {blocker}: pass a directory"
        )
    if existing != directory and not os.access(existing, os.W_OK | os.X_OK):
        raise StyleTransferError(
            f"{option} {printable(str(directory))} cannot be created in "
            f"{printable(str(existing))} (not writable): pass a writable directory"
        )


def _step_of(path: pathlib.Path) -> int | None:
    digits = path.stem.rsplit("_", 1)[-1]
    return int(digits) if digits.isdigit() else None


def read_resume_state(directory: pathlib.Path, key: ResumeKey) -> dict:
    """Reads the checkpoint state in `directory` and checks that it belongs to `key`.

    Returns:
        The state: `step`, `run_name`, `run_id` (None in a state written before runs had one),
        and `checkpoint`, the path of the latest checkpoint.

    Raises:
        StyleTransferError: If there is nothing to resume, the state is unreadable, or the
            settings or inputs differ from the interrupted run's.
    """
    state_path = directory / RUN_STATE
    label = printable(str(directory))
    if not state_path.is_file():
        raise StyleTransferError(
            f"nothing to resume: no checkpoint in {label}; run without --resume (or give the "
            "-o/--output of the interrupted run)"
        )
    try:
        state = json.loads(state_path.read_text())
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ValueError("not a tf_nst checkpoint state, or one of an older version")
        for name, kind in (("settings", dict), ("inputs", dict), ("kind", str)):
            if not isinstance(state.get(name), kind):
                raise ValueError(f"{name} is missing")
        if not isinstance(state.get("run_name"), (str, type(None))):
            raise ValueError("run_name is malformed")
        if not isinstance(state.get("run_id"), (str, type(None))):
            raise ValueError("run_id is malformed")
    except (OSError, ValueError) as error:
        raise StyleTransferError(
            f"checkpoint state {printable(str(state_path))} is unreadable ({one_line(error)}): "
            + start_over(directory)
        ) from None
    if state["kind"] != key.kind:
        raise StyleTransferError(
            f"{label} is the checkpoint of a {printable(state['kind'])} run, not of {key.kind}: "
            "choose another -o/--output"
        )
    latest = latest_checkpoint(directory)
    if latest is None:
        raise StyleTransferError(
            f"the checkpoint in {label} is incomplete (no finished save): " + start_over(directory)
        )
    changed = [
        f"--{name.replace('_', '-')} (was {state['settings'].get(name)}, now {value})"
        for name, value in key.settings.items()
        if str(state["settings"].get(name)) != str(value)
    ]
    changed += [
        # A training's photos are a folder, which changes by its photos rather than being
        # replaced by another file.
        "the photos folder changed (photos were added, removed or replaced)"
        if name == "photos"
        else f"{name.upper()} (a different file)"
        for name, digest in key.inputs.items()
        if state["inputs"].get(name) != digest
    ]
    if changed:
        raise StyleTransferError(
            "--resume needs the settings and inputs of the interrupted run, but these differ: "
            + ", ".join(changed)
            + "; use the old ones, or "
            + start_over(directory)
        )
    return {**state, "checkpoint": latest, "step": _checkpoint_step(latest)}


def latest_checkpoint(directory: pathlib.Path) -> str | None:
    """The last complete save that CheckpointManager's index (`checkpoint`) names, if any.

    The index is a one-field text proto, read here without TensorFlow so that a resume is
    checked before TensorFlow loads.
    """
    try:
        index = (directory / "checkpoint").read_text()
    except (OSError, UnicodeDecodeError):
        return None
    # Only a name this package writes, `ckpt-STEP`: the step is read from it.
    match = re.search(rf'^model_checkpoint_path: "({CHECKPOINT_PREFIX}-\d+)"$', index, re.MULTILINE)
    if match is None:
        return None
    latest = directory / match.group(1)
    if latest.parent != directory or not pathlib.Path(f"{latest}.index").is_file():
        return None
    return str(latest)


def _checkpoint_step(path: str) -> int:
    return int(path.rsplit("-", 1)[-1])
