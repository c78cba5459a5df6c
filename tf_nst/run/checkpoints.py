"""A run's checkpoints beside its output, through `tf.train.CheckpointManager`."""

from __future__ import annotations

import contextlib
import json
import pathlib
import re
import shutil

from tf_nst.errors import StyleTransferError
from tf_nst.run.outputs import (
    CHECKPOINT_PREFIX,
    RUN_STATE,
    STATE_FORMAT,
    ResumeKey,
    latest_checkpoint,
)
from tf_nst.text import one_line, printable

# The files `tf.train.CheckpointManager` writes for one save: `ckpt-STEP.index` and its shards.
_CHECKPOINT_FILE = re.compile(rf"^({CHECKPOINT_PREFIX}-\d+)\.(index|data-\d{{5}}-of-\d{{5}})$")


class Checkpoints:
    """This run's checkpoints in `OUTPUT.checkpoint/`, through `tf.train.CheckpointManager`.

    The directory holds `run.json` (the settings and inputs a resume must match, and the run's
    identity, written first) and the manager's `checkpoint` index and `ckpt-STEP.*` files. The
    manager writes each save completely before its index names it, and keeps one. A save cut
    short by a second signal is removed by `discard_unfinished`. Only this run's directory, made
    by it or by the run it resumes, is ever written to or cleaned.
    """

    def __init__(
        self,
        directory: pathlib.Path,
        key: ResumeKey,
        run_name: str | None,
        resumed: bool,
        run_id: str | None = None,
    ):
        self.directory = directory
        self._key = key
        self._run_name = run_name
        self._run_id = run_id
        self._ours = resumed  # a resumed run's directory was made by the run it continues
        self._state_written = False
        self._saved_step: int | None = None
        self._writing: str | None = None
        self._written: set[str] = set()  # the `ckpt-STEP` saves this run completed

    def save(self, job) -> None:
        """Checkpoints `job` unless this step is saved already.

        Raises:
            StyleTransferError: If the checkpoint cannot be written.
        """
        if job.step == self._saved_step:
            return
        import tensorflow as tf

        from tf_nst.image.writing import atomic_write_bytes

        # Set first: a second signal anywhere below must find what to clean up.
        self._writing = f"{CHECKPOINT_PREFIX}-{job.step}"
        try:
            if not self._ours or not self.directory.is_dir():
                # Not `exist_ok`: a file or folder that appeared here since `check_outputs`
                # belongs to someone else, and this run must not write into it.
                self.directory.mkdir()
                self._ours = True
            if not self._state_written:
                # Also on a resume: the same settings and inputs, and the run's identity if the
                # state was written before runs had one.
                state = {
                    "format": STATE_FORMAT,
                    "kind": self._key.kind,
                    "run_name": self._run_name,
                    "run_id": self._run_id,
                    "settings": dict(self._key.settings),
                    "inputs": dict(self._key.inputs),
                }
                atomic_write_bytes(json.dumps(state, indent=2).encode(), self.directory / RUN_STATE)
                self._state_written = True
            manager = tf.train.CheckpointManager(
                job.checkpoint(), str(self.directory), max_to_keep=1,
                checkpoint_name=CHECKPOINT_PREFIX,
            )  # fmt: skip
            manager.save(checkpoint_number=job.step)
        except (OSError, tf.errors.OpError, StyleTransferError) as error:
            self.discard_unfinished()
            raise StyleTransferError(
                f"cannot write a checkpoint in {printable(str(self.directory))} "
                f"({one_line(error)}): check the directory is writable and has space"
            ) from None
        self._written.add(self._writing)
        self._writing = None
        self._saved_step = job.step

    @property
    def saved_step(self) -> int | None:
        """The step of this run's last complete checkpoint, if it wrote one."""
        return self._saved_step

    @property
    def kept_step(self) -> int | None:
        """The step of the complete checkpoint in this run's folder, if there is one.

        This run's own, or (on a resume, or when this run's last save failed) an earlier one.
        """
        if not self._ours or not self.directory.is_dir():
            return None
        latest = latest_checkpoint(self.directory)
        return None if latest is None else int(latest.rsplit("-", 1)[-1])

    def discard_unfinished(self) -> None:
        """Removes the files of a save that was cut short, before the index named them.

        If that leaves no complete checkpoint in a folder this run made, the folder goes too.
        """
        writing, self._writing = self._writing, None
        # Not ours: the folder appeared since `check_outputs` and this run wrote nothing in it.
        if writing is None or not self._ours or not self.directory.is_dir():
            return
        latest = latest_checkpoint(self.directory)
        if latest is not None and pathlib.Path(latest).name == writing:
            return  # the index names it: the save is complete
        for entry in self.directory.iterdir():
            if entry.name.startswith((f"{writing}.", f"{writing}_temp")):
                _remove(entry)
        if latest is None:
            self.remove()

    def remove(self) -> None:
        """Deletes this run's checkpoint directory once the result is saved: only our files."""
        if not self._ours or not self.directory.is_dir():
            return
        # Ours: the saves this run wrote, and the one the manager's index names (on --resume,
        # the interrupted run's; the manager keeps one). Any other `ckpt-*` entry is not ours.
        ours = set(self._written)
        latest = latest_checkpoint(self.directory)
        if latest is not None:
            ours.add(pathlib.Path(latest).name)
        for entry in self.directory.iterdir():
            match = _CHECKPOINT_FILE.match(entry.name)
            if entry.name in (RUN_STATE, "checkpoint") or (
                match and match.group(1) in ours and not entry.is_dir()
            ):
                _remove(entry)
        with contextlib.suppress(OSError):
            self.directory.rmdir()  # only if nothing else is in it


def _remove(entry: pathlib.Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            entry.unlink()
