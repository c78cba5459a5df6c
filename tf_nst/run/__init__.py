"""One long job with files: the machinery that `stylize` and `train` share.

A job (`tf_nst.optimize.job`) is a generator of step results plus a few hooks: how to checkpoint and
restore it, how to save its best result, what to log. `run_job` drives it and owns everything
around it:

- the TensorBoard run directory and writer (`tf_nst.run.summaries`);
- checkpoints, through `tf.train.CheckpointManager`, in `OUTPUT.checkpoint/` beside the output;
- SIGINT, SIGTERM and SIGHUP: the first saves the best result and a checkpoint, a second stops at
  once without leaving a partial file;
- progress on stderr, the time limit (the job's own), and atomic outputs.

Its promises:

- A failing side output (TensorBoard, an intermediate, a checkpoint) warns once and the run goes
  on; the best result is always written to the output. If the output itself cannot be written,
  a checkpoint is kept so that `--resume` can write it later.
- A closed terminal or pipe does not stop the run: progress is dropped, the result is saved.
- It never overwrites or deletes a file that it did not create: `check_outputs` refuses, before
  the job starts, names that would collide; clean-up deletes only what this run wrote.

Everything a user can get wrong is checked by `check_outputs` before TensorFlow is imported.
"""

from tf_nst.run.checkpoints import Checkpoints
from tf_nst.run.console import Console, SecondSignalError, SignalHandler, command_line
from tf_nst.run.job import Job, LoopJob
from tf_nst.run.loop import Outcome, run_job
from tf_nst.run.outputs import (
    OutputPlan,
    ResumeKey,
    check_no_checkpoint,
    check_outputs,
    checkpoint_directory_for,
    intermediate_name,
    read_resume_state,
    start_over,
)

__all__ = [
    "Checkpoints",
    "Console",
    "Job",
    "LoopJob",
    "Outcome",
    "OutputPlan",
    "ResumeKey",
    "SecondSignalError",
    "SignalHandler",
    "check_no_checkpoint",
    "check_outputs",
    "checkpoint_directory_for",
    "command_line",
    "intermediate_name",
    "read_resume_state",
    "run_job",
    "start_over",
]
