"""`run_job`: one long job with files, start to end, as `tf-nst stylize` and `tf-nst train` run it.

It checks the output paths, builds the job with signals already handled, restores it on
`--resume`, drives its steps with TensorBoard, checkpoints and progress, and saves its best
result, whatever ends the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import pathlib
from collections.abc import Callable

from tf_nst.config import OutputOptions
from tf_nst.errors import StyleTransferError
from tf_nst.run.checkpoints import Checkpoints
from tf_nst.run.console import Console, SecondSignalError, SignalHandler, StopNowError
from tf_nst.run.job import Job
from tf_nst.run.outputs import OutputPlan, ResumeKey, check_outputs, intermediate_name
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
    job: Job | Callable[[], Job],
    options: OutputOptions,
    key: ResumeKey | None = None,
    *,
    plan: OutputPlan | None = None,
    console: Console | None = None,
) -> Outcome:
    """Runs one long job with files and saves its best result, whatever ends the run.

    This is what `tf-nst stylize` and `tf-nst train` do with their files, for any Python
    caller: the paths are checked first (`check_outputs`), SIGINT, SIGTERM and SIGHUP are
    handled from before the job is built (while it is built and restored there is nothing to
    save, and a signal stops at once; then the first saves the best result and a checkpoint, a
    second stops at once without a partial file), a `--resume` restores the checkpoint beside
    the output, and the final line is printed (a success only when `options.quiet` is off). An
    error that stops the steps keeps a checkpoint too, beside the best result.

    Example:
        >>> job = OptimizationJob(content, [style], StyleConfig(size=256, steps=100))
        >>> outcome = run_job(job, OutputOptions(output="out.png", checkpoint_every=20))
        >>> outcome.status
        0

    Args:
        job: The job, or a function without arguments that builds it; a builder runs after the
            checks and with the signals handled, so building it may be slow.
        options: Where the run writes and how often.
        key: What a checkpoint records and `--resume` compares; the job's own `resume_key()`
            when None (which needs a built job).
        plan: The paths, if the caller checked them already with `check_outputs` (the CLI does,
            before TensorFlow loads); checked here when None.
        console: Where progress and messages go; stderr, quiet as `options.quiet`, when None.

    Returns:
        The exit status and the final line.

    Raises:
        StyleTransferError: For outputs in the way, a checkpoint that does not fit, or a job
            that writes no intermediates given `save_every`; nothing has been written then.
    """
    if key is None:
        if callable(job) and not hasattr(job, "steps"):
            raise StyleTransferError("a job builder needs its resume key: pass `key`")
        key = job.resume_key()
    if options.save_every and not hasattr(job, "save_intermediate") and hasattr(job, "steps"):
        raise StyleTransferError("`save_every`: this job writes no intermediates; set it to 0")
    if plan is None:
        total_steps = getattr(job, "total_steps", None)
        plan = check_outputs(options, key, total_steps)
    if console is None:
        time_limit = getattr(getattr(job, "config", None), "time_limit", None)
        console = Console(quiet=options.quiet, time_limit=time_limit)
    # Until the job is built and restored there is nothing to save: a signal stops at once.
    with SignalHandler(at_once=True) as interrupts:
        try:
            if not hasattr(job, "steps"):
                job = job()
            job.run_id = plan.run_id
            if plan.resume_state:
                job.restore(plan.resume_state["checkpoint"])
            interrupts.at_once = False
            outcome = _drive(_Run(job, plan, options, key, console, interrupts))
        except StopNowError:
            outcome = _nothing_saved(interrupts, "before the first step")
        except SecondSignalError:
            outcome = Outcome(
                interrupts.exit_status,
                "tf-nst: stopped at once by a second signal before the first step; nothing was "
                "saved",
            )
    console.report(outcome)
    return outcome


@dataclasses.dataclass
class _Run:
    """Everything one run of a job works with, so that its phases take one argument."""

    job: Job
    plan: OutputPlan
    options: OutputOptions
    key: ResumeKey
    console: Console
    interrupts: SignalHandler
    log: _LazyLog | None = None
    checkpoints: Checkpoints | None = None
    tensorboard: SideOutput | None = None
    checkpoint_warned: bool = False
    saved: bool = False  # whether this run wrote its result to the output
    failed: bool = False  # an error stopped the steps: keep a checkpoint to resume from


def _drive(run: _Run) -> Outcome:
    """Runs the job to the end, a time limit, a non-finite loss or a signal; saves its result.

    An exception that escapes was raised after the best result was saved; a `SecondSignalError`
    leaves no partial file behind.
    """
    job, plan, options, console, interrupts = (
        run.job, run.plan, run.options, run.console, run.interrupts
    )  # fmt: skip
    fresh = plan.resume_state is None
    log = run.log = _LazyLog(plan.logdir, plan.run_name, resumed=not fresh)
    try:
        if interrupts.signal_name:
            return _nothing_saved(interrupts, "before the first step")
        tensorboard = run.tensorboard = SideOutput(
            f"TensorBoard logging under {plan.logdir}", console
        )
        tensorboard(log.open)
        run_name = log.run_directory.name if log.run_directory else plan.run_name
        checkpoints = run.checkpoints = Checkpoints(
            plan.checkpoint_directory, run.key, run_name, resumed=not fresh, run_id=plan.run_id
        )
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
                    path = intermediate_name(plan.output, step)
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
        run.checkpoint_warned = periodic.failed
        run.failed = failure is not None
        outcome = _finish(run)
        if failure is not None:
            if job.has_result() and outcome.status in (0, 1):
                resume = "fix the error below, then continue with the same command plus --resume"
                if run.checkpoints.kept_step == job.step:
                    kept = f" and a checkpoint to {run.checkpoints.directory}: {resume}"
                else:
                    older = _kept_checkpoint(run)
                    kept = f"; {older}: {resume}" if older else ""
                console.final(
                    f"tf-nst: an error stopped the run after {job.step} steps; its best result "
                    f"so far was saved to {plan.output}{kept}"
                )
            raise failure
        return outcome
    except SecondSignalError:
        if run.checkpoints is not None:
            run.checkpoints.discard_unfinished()
        if fresh and job.step == 0:
            log.remove_if_unused()
        return Outcome(interrupts.exit_status, _second_signal_message(run))
    finally:
        log.close()
        if fresh and job.step == 0:
            log.remove_if_unused()


def _finish(run: _Run) -> Outcome:
    """Saves the best result (and, when it matters, a checkpoint) and says how the run ended.

    A checkpoint is kept when a signal stopped the run or the result could not be saved. For a
    job whose result takes long to save (`checkpoint_first`: a network's export), it is written
    before the result and removed once the result is saved, so that a second signal during the
    export still leaves something to resume. A checkpoint failure that `--checkpoint-every`
    already warned about is not warned about again; the final line says which checkpoint, if
    any, is kept.
    """
    job, console, interrupts, checkpoints = run.job, run.console, run.interrupts, run.checkpoints
    tensorboard, log = run.tensorboard, run.log
    output = run.plan.output
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
    diverged = job.stop_reason is not None and job.stop_reason != "time limit"
    checkpoint_errors = []

    def checkpoint() -> None:
        if not diverged and not checkpoint_errors:  # a diverged state is not worth resuming
            try:
                checkpoints.save(job)  # once per step: a second call is free
            except StyleTransferError as error:
                checkpoint_errors.append(error)

    if getattr(job, "checkpoint_first", False):
        checkpoint()
    try:
        job.save_result(output)
        run.saved = True
    except StyleTransferError as error:
        console.warn(one_line(error))
    tensorboard(lambda: job.log_end(log.open()))
    status = interrupts.signal_name or ("success" if not diverged else job.stop_reason)
    tensorboard(lambda: log.open().end(status, job.step))
    tensorboard(lambda: log.open().flush())
    interrupted = interrupts.signal_name is not None
    if run.saved and not interrupted and not run.failed:
        checkpoints.remove()  # the result is saved: nothing is left to resume
    else:
        checkpoint()
        if checkpoint_errors and not run.checkpoint_warned:
            console.warn(one_line(checkpoint_errors[0]))
    kept = _kept_checkpoint(run)
    if not run.saved:
        where = (
            f"{kept}: fix that and run the same command plus --resume to "
            + ("write it" if checkpoints.kept_step == job.step else "continue from there")
            if kept
            else "and no checkpoint could be kept either"
        )
        return Outcome(1, f"tf-nst: the result could not be saved to {output} {steps}; {where}")
    best = _best_loss(job)
    if diverged:
        return Outcome(
            1,
            f"tf-nst: stopped: {job.stop_reason}; saved the best finite result ({best}, {steps}) "
            f"to {output}: lower --learning-rate or the loss weights",
        )
    if interrupted:
        if kept and checkpoints.kept_step == job.step:
            checkpoint_note = (
                f" and a checkpoint to {checkpoints.directory}; continue with the same command "
                "plus --resume"
            )
        elif kept:
            checkpoint_note = (
                f"; the checkpoint could not be updated, {kept}: continue from there with the "
                "same command plus --resume"
            )
        else:
            checkpoint_note = "; no checkpoint could be written"
        return Outcome(
            interrupts.exit_status,
            f"tf-nst: {interrupts.signal_name} received: saved the best result ({best}, {steps}) "
            f"to {output}{checkpoint_note}",
        )
    reason = " (time limit reached)" if job.stop_reason == "time limit" else ""
    return Outcome(0, f"tf-nst: saved {output}{reason}: {best} {steps}", note=True)


def _kept_checkpoint(run: _Run) -> str:
    """Says which checkpoint is kept: "a checkpoint is kept in DIR" (of the step reached).

    Or "the checkpoint of step N is kept in DIR" for an older one, or "" for none.
    """
    checkpoints = run.checkpoints
    kept = None if checkpoints is None else checkpoints.kept_step
    if kept is None:
        return ""
    which = "a checkpoint" if kept == run.job.step else f"the checkpoint of step {kept}"
    return f"{which} is kept in {checkpoints.directory}"


def _second_signal_message(run: _Run) -> str:
    """What a second signal left: the result, a checkpoint to resume, both or neither."""
    kept = _kept_checkpoint(run)
    resume = f"{kept}: continue with the same command plus --resume" if kept else ""
    if run.saved:
        left = f"the best result was saved to {run.plan.output}" + (
            f" and {resume}" if kept else ", but no checkpoint was kept"
        )
    else:
        left = resume or "no result and no checkpoint were saved"
    return f"tf-nst: stopped at once by a second signal; no partial file was left; {left}"


def _best_loss(job) -> str:
    # A training without validation photos, or stopped before its first validation, has none.
    if math.isfinite(job.best_loss):
        return f"best loss {job.best_loss:.4g}"
    return "no validation loss"


def _nothing_saved(interrupts: SignalHandler, when: str) -> Outcome:
    message = f"tf-nst: {interrupts.signal_name} received {when}; nothing was saved"
    return Outcome(interrupts.exit_status, message)
