"""The terminal side of every command: signals, progress and lines that survive a closed stream."""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator

SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class SecondSignalError(BaseException):
    """Raised in the main thread by a second signal: stop now.

    A BaseException, like KeyboardInterrupt, so that no `except Exception` on the way (Keras
    loading weights, say) can swallow it.
    """


class StopNowError(BaseException):
    """Raised in the main thread by the first signal while there is nothing to save: stop now.

    A BaseException for the same reason as `SecondSignalError`.
    """


class SignalHandler:
    """Turns the first SIGINT/SIGTERM/SIGHUP into a request to stop, the second into exit.

    The first signal only sets `signal_name`; the loop stops after the current step and the
    caller saves. The second raises `SecondSignalError` wherever the main thread is, and from
    then on further signals are ignored so that the clean-up cannot itself be cut short.
    While `at_once` is true (before a run has anything to save: walking the photos, building the
    networks), the first signal sets `signal_name` and raises `StopNowError` at once instead, so
    that no phase of any length keeps a signal waiting.
    Outside the main thread (where Python cannot install handlers) it does nothing.

    Args:
        at_once: The initial `at_once`.
    """

    def __init__(self, at_once: bool = False):
        self.signal_name: str | None = None
        self.exit_status = 0
        self.at_once = at_once
        self._previous = {}

    def __enter__(self) -> SignalHandler:
        if threading.current_thread() is threading.main_thread():
            for number in SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def _handle(self, number, frame) -> None:
        del frame
        if self.signal_name:
            for other in self._previous:
                signal.signal(other, signal.SIG_IGN)
            raise SecondSignalError
        self.exit_status = 128 + number
        self.signal_name = signal.Signals(number).name
        if self.at_once:
            raise StopNowError


@contextlib.contextmanager
def call_on_signal(callback: Callable[[], None]) -> Iterator[None]:
    """Calls `callback()` from a thread as soon as a signal arrives, even mid-TensorFlow.

    The signal's own handler then runs as usual, once the main thread is back in Python.

    Python runs a signal's handler in the main thread only, between two bytecodes: while the
    main thread waits inside TensorFlow (`next(iterator)` on a `tf.data` pipeline, say), no
    handler can run, whatever it would do. The C-level handler, though, writes the signal's
    number to the wakeup file descriptor at once (`signal.set_wakeup_fd`); a thread reading it
    calls `callback`, which must make the native wait end (the photo loader raises inside the
    pipeline, so `next` returns with an error), and the main thread then runs the handler.

    Only signals that have a Python handler are seen (SIGINT by default; SIGTERM and SIGHUP under
    `SignalHandler`). A wakeup descriptor set before (asyncio's) still gets every signal, and is
    restored afterwards. Outside the main thread it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)  # the C handler must never block
    previous = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)

    def watch() -> None:
        while True:
            try:
                numbers = os.read(read_end, 64)
            except OSError:
                return
            if not numbers:  # the write end was closed: done
                return
            if previous != -1:
                with contextlib.suppress(OSError):
                    os.write(previous, numbers)
            callback()

    watcher = threading.Thread(target=watch, name="tf-nst signal watcher", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.set_wakeup_fd(previous)
            os.close(write_end)
            watcher.join(timeout=5)
            if not watcher.is_alive():
                os.close(read_end)
        # Else (a generator finished in another thread) the descriptor cannot be restored from
        # here, so the pipe and its watcher stay: closing them could hand the number on.


class Console:
    """The run's lines on stderr: progress, notes, warnings.

    A closed pipe or terminal stops the lines, never the run.

    Keras' `Progbar` was tried and is not used: it writes to stdout, its ETA assumes every step
    costs the same (a coarse-to-fine step costs a quarter of the next scale's) and ignores the
    time limit, and a closed pipe makes it raise.
    """

    BAR_WIDTH = 24
    # Without a terminal, a progress line at most this often (seconds), so logs stay readable.
    PLAIN_INTERVAL = 10.0

    def __init__(self, stream=None, quiet: bool = False, time_limit: float | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.time_limit = time_limit
        self._broken = False
        try:
            self.terminal = self.stream.isatty()
        except (OSError, ValueError):
            self.terminal = False
        self._last_plain = 0.0
        self._bar_open = False

    def note(self, message: str) -> None:
        """A `tf-nst: ...` line, unless quiet."""
        if not self.quiet:
            self._line(f"tf-nst: {message}")

    def warn(self, message: str) -> None:
        """A `tf-nst: warning: ...` line, even when quiet."""
        self._line(f"tf-nst: warning: {message}")

    def final(self, message: str) -> None:
        """The run's last line, even when quiet."""
        self._line(message)

    def report(self, outcome) -> int:
        """Prints a run's last line (a success only when not quiet); returns its exit status."""
        if outcome.note:
            self.note(outcome.message.removeprefix("tf-nst: "))
        else:
            self.final(outcome.message)
        return outcome.status

    def progress(self, result, note: str = "") -> None:
        """Shows one step's progress: a bar on a terminal, a plain line every few seconds."""
        if self.quiet:
            return
        now = time.monotonic()
        done = result.step >= result.total_steps
        if not self.terminal and not done and now - self._last_plain < self.PLAIN_INTERVAL:
            return
        self._last_plain = now
        filled = int(self.BAR_WIDTH * min(1.0, result.progress))
        bar = "#" * filled + "." * (self.BAR_WIDTH - filled)
        eta = result.elapsed_seconds * (1 - result.progress) / max(result.progress, 1e-9)
        if self.time_limit is not None:
            eta = min(eta, max(0.0, self.time_limit - result.elapsed_seconds))
        line = (
            f"[{bar}] {result.progress:4.0%} step {result.step}/{result.total_steps}"
            f"{' ' + note if note else ''} loss {result.loss:.4g} best {_number(result.best_loss)} "
            f"ETA {clock(eta)}"
        )
        if self.terminal:
            self._write("\r" + line + "\033[K")
            self._bar_open = True
        else:
            self._write(line + "\n")

    def _line(self, text: str) -> None:
        if self._bar_open:
            self._write("\n")
            self._bar_open = False
        self._write(text + "\n")

    def _write(self, text: str) -> None:
        if not self._broken:
            self._broken = not write_text(text, self.stream)


def write_text(text: str, stream=None) -> bool:
    """Writes `text` to `stream` (stderr by default) and flushes; returns whether it could.

    A closed pipe or terminal (`| head`, a closed window) loses the text, never the caller's work.
    The descriptor is then pointed at /dev/null, so that Python's own flush at exit cannot fail
    ("Exception ignored ... BrokenPipeError") either; the exit status still tells.
    """
    stream = stream if stream is not None else sys.stderr
    try:
        stream.write(text)
        stream.flush()
        return True
    except (OSError, ValueError, AttributeError):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
        return False


def print_line(line: str, stream=None) -> None:
    """Prints one line to stderr (or `stream`); see `write_text`."""
    write_text(line + "\n", stream)


def _number(value: float) -> str:
    # A training has no best loss before its first validation.
    return f"{value:.4g}" if math.isfinite(value) else "-"


def clock(seconds: float) -> str:
    """Seconds as M:SS or H:MM:SS."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def command_line() -> str:
    """The command line of this process, as a shell would take it."""
    return shlex.join([os.path.basename(sys.argv[0]), *sys.argv[1:]])
