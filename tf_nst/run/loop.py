"""`run_job`: drives one job's steps with TensorBoard, checkpoints, signals and progress."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
from collections.abc import Callable

from tf_nst.config import OutputOptions
from tf_nst.errors import StyleTransferError
from tf_nst.run.checkpoints import Checkpoints
from tf_nst.run.console import Console, SecondSignalError, SignalHandler
from tf_nst.run.job import Job
from tf_nst.run.outputs import OutputPlan, ResumeKey
from tf_nst.text import one_line, printable


@dataclasses.dataclass
class Outcome:
    """How a run ended: its exit status and the one line that says so."""

    status: int
    message: str
    note: bool = False  # a success, which `--quiet` does not print


class SideOutput:
    """Calls a side output (TensorBoard, intermediates, checkpoints), surviving its failure.

    The first failure warns once and turns that side output off; the run goes on.
    """

    def __init__(self, what: str, console: Console):
        self.what = what
        self.console = console
        self.failed = False

    def __call__(self, write: Callable[[], None]) -> None:
        """Runs `write` unless an earlier call failed."""
        if self.failed:
            return
        try:
            write()
        except SecondSignalError:
            raise
        except Exception as error:  # noqa: BLE001 - any failure of a side output is survivable
            self.failed = True
            self.console.warn(
                f"{self.what} failed and is off for the rest of the run ({one_line(error)}); "
                "the run goes on and its result will be saved"
            )


class _LazyLog:
    """The TensorBoard writer, opened at the first write.

    A run that never takes a step thus leaves no empty directory behind.
    """

    def __init__(self, logdir: pathlib.Path, run_name: str | None, resumed: bool):
        self._logdir = logdir
        self._run_name = run_name
        self._resumed = resumed
        self._log = None
        self.run_directory: pathlib.Path | None = None
        self.created: list[pathlib.Path] = []

    def open(self):
        """Returns the `RunLog`, creating the directories on first use."""
        if self._log is None:
            from tf_nst.run.summaries import RunLog

            self.run_directory = self._make_directory()
            self._log = RunLog(self.run_directory)
        return self._log

    def _make_directory(self) -> pathlib.Path:
        missing = [
            part for part in (self._logdir, *self._logdir.parents) if not os.path.lexists(part)
        ]
        try:
            self._logdir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StyleTransferError(
                f"cannot create --logdir {printable(str(self._logdir))} ({one_line(error)})"
            ) from None
        self.created.extend(reversed(missing))
        if self._resumed and self._run_name:
            directory = self._logdir / self._run_name
            with contextlib.suppress(FileExistsError):
                directory.mkdir()
                self.created.append(directory)
            return directory
        from tf_nst.run.summaries import make_run_directory

        directory = make_run_directory(self._logdir, self._run_name)
        self.created.append(directory)
        return directory

    @property
    def opened(self) -> bool:
        """Whether the run directory exists (was made or reopened by this run)."""
        return self._log is not None

    def close(self) -> None:
        """Flushes and closes the writer; a failure here was already warned about, or is moot."""
        if self._log is not None:
            with contextlib.suppress(Exception):
                self._log.close()

    def remove_if_unused(self) -> None:
        """Deletes the directories this run made, deepest first, if they are still empty."""
        self.close()
        for directory in reversed(self.created):
            with contextlib.suppress(OSError):
                for entry in directory.iterdir():
                    if entry.name.startswith("events.out.tfevents."):
                        entry.unlink()
                directory.rmdir()


def run_job(
    job: Job,
    plan: OutputPlan,
    options: OutputOptions,
    key: ResumeKey,
    console: Console,
    interrupts: SignalHandler,
) -> Outcome:
    """Runs `job` to the end, a time limit, a non-finite loss or a signal; saves its best result.

    The caller enters `interrupts` before building the job (so that a signal during the build is
    seen) and maps an exception that escapes to an exit status; the best result is saved before
    any exception leaves, and a `SecondSignalError` leaves no partial file behind.

    Args:
        job: The job, already built (and restored, on `--resume`).
        plan: The checked paths, from `check_outputs`.
        options: The output settings.
        key: The settings and inputs a checkpoint records.
        console: Where progress and messages go.
        interrupts: The entered signal handler.

    Returns:
        The exit status and the final line.
    """
    fresh = plan.resume_state is None
    log = _LazyLog(plan.logdir, plan.run_name, resumed=not fresh)
    checkpoints = None
    try:
        if interrupts.signal_name:
            return _nothing_saved(interrupts, "before the first step")
        tensorboard = SideOutput(f"TensorBoard logging under {plan.logdir}", console)
        tensorboard(log.open)
        run_name = log.run_directory.name if log.run_directory else plan.run_name
        checkpoints = Checkpoints(plan.checkpoint_directory, key, run_name, resumed=not fresh)
        if log.run_directory:
            console.note(f"TensorBoard run {log.run_directory}")
        intermediates = SideOutput("saving intermediates (--save-every)", console)
        periodic = SideOutput("checkpointing (--checkpoint-every)", console)
        if fresh:
            tensorboard(lambda: job.log_start(log.open()))
        failure = None
        try:
            for result in job.steps():
                step = result.step
                with_images = bool(options.image_every) and (
                    step % options.image_every == 0 and step < result.total_steps
                )
                tensorboard(lambda r=result, w=with_images: job.log_step(log.open(), r, w))
                if options.save_every and step % options.save_every == 0:
                    path = job.intermediate_name(plan.output, step)
                    intermediates(lambda r=result, p=path: job.save_intermediate(r, p))
                if (
                    options.checkpoint_every
                    and step % options.checkpoint_every == 0
                    and not job.stop_reason  # a diverged state is not worth resuming
                ):
                    periodic(lambda: checkpoints.save(job))
                console.progress(result, job.progress_note(result))
                if interrupts.signal_name:
                    break
        except (SecondSignalError, KeyboardInterrupt):
            raise
        except Exception as error:  # noqa: BLE001 - saved below, then re-raised
            failure = error
        outcome = _finish(
            job, plan, console, interrupts, checkpoints, log, tensorboard, periodic.failed
        )
        if failure is not None:
            if job.has_result() and outcome.status in (0, 1):
                console.final(
                    f"tf-nst: an error stopped the run after {job.step} steps; its best result "
                    f"so far was saved to {plan.output}"
                )
            raise failure
        return outcome
    except SecondSignalError:
        if checkpoints is not None:
            checkpoints.discard_unfinished()
        if fresh and job.step == 0:
            log.remove_if_unused()
        return Outcome(
            interrupts.exit_status,
            "tf-nst: stopped at once by a second signal; files already written are complete "
            "and no partial file was left",
        )
    finally:
        log.close()
        if fresh and job.step == 0:
            log.remove_if_unused()


def build_and_run(
    build: Callable[[], Job],
    plan: OutputPlan,
    options: OutputOptions,
    key: ResumeKey,
    console: Console,
    interrupts: SignalHandler,
) -> Outcome:
    """Builds a job (restoring it on `--resume`) and runs it with `run_job`.

    A second signal while the job is built stops at once: nothing was written yet.
    """
    try:
        job = build()
        if plan.resume_state:
            job.restore(plan.resume_state["checkpoint"])
        return run_job(job, plan, options, key, console, interrupts)
    except SecondSignalError:
        return Outcome(
            interrupts.exit_status,
            "tf-nst: stopped at once by a second signal before the first step; nothing was saved",
        )


def _finish(
    job, plan, console, interrupts, checkpoints, log, tensorboard, checkpoint_warned=False
) -> Outcome:
    """Saves the best result (and, when it matters, a checkpoint) and says how the run ended.

    A checkpoint failure that `--checkpoint-every` already warned about is not warned about
    again: the final line says that no checkpoint could be written.
    """
    output = plan.output
    steps = f"after {job.step} step{'' if job.step == 1 else 's'}"
    if not job.has_result():
        tensorboard(lambda: log.open().end(interrupts.signal_name or "no finite step", job.step))
        if interrupts.signal_name:
            return _nothing_saved(interrupts, "before the first step")
        return Outcome(
            1,
            f"tf-nst: stopped: {job.stop_reason}; no step had a finite loss, so nothing was "
            "saved: lower --learning-rate or the loss weights",
        )
    try:
        job.save_result(output)
        saved = True
    except StyleTransferError as error:
        saved = False
        console.warn(one_line(error))
    tensorboard(lambda: job.log_end(log.open()))
    status = interrupts.signal_name or (
        "success" if not job.stop_reason or job.stop_reason == "time limit" else job.stop_reason
    )
    tensorboard(lambda: log.open().end(status, job.step))
    tensorboard(lambda: log.open().flush())
    interrupted = interrupts.signal_name is not None
    keep_checkpoint = (interrupted or not saved) and not job.stop_reason
    if keep_checkpoint:
        try:
            checkpoints.save(job)
        except StyleTransferError as error:
            if not checkpoint_warned:
                console.warn(one_line(error))
            keep_checkpoint = False
    if not saved:
        where = (
            f"a checkpoint is kept in {checkpoints.directory}: fix that and run the same command "
            "plus --resume to write it"
            if keep_checkpoint
            else "and no checkpoint could be kept either"
        )
        return Outcome(1, f"tf-nst: the result could not be saved to {output} {steps}; {where}")
    if not interrupted:
        checkpoints.remove()  # the result is saved: nothing is left to resume
    best = f"best loss {job.best_loss:.4g}"
    if job.stop_reason and job.stop_reason != "time limit":
        return Outcome(
            1,
            f"tf-nst: stopped: {job.stop_reason}; saved the best finite result ({best}, {steps}) "
            f"to {output}: lower --learning-rate or the loss weights",
        )
    if interrupted:
        checkpoint_note = (
            f" and a checkpoint to {checkpoints.directory}; continue with the same command plus "
            "--resume"
            if keep_checkpoint
            else "; no checkpoint could be written"
        )
        return Outcome(
            interrupts.exit_status,
            f"tf-nst: {interrupts.signal_name} received: saved the best result ({best}, {steps}) "
            f"to {output}{checkpoint_note}",
        )
    reason = " (time limit reached)" if job.stop_reason == "time limit" else ""
    return Outcome(0, f"tf-nst: saved {output}{reason}: {best} {steps}", note=True)


def _nothing_saved(interrupts: SignalHandler, when: str) -> Outcome:
    message = f"tf-nst: {interrupts.signal_name} received {when}; nothing was saved"
    return Outcome(interrupts.exit_status, message)
