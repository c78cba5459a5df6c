"""The CLI's terminal: lines that survive a closed pipe, and TensorFlow imported without its log."""

from __future__ import annotations

import contextlib
import os
import sys


def print_line(line: str, stream=None) -> None:
    """Prints a line to stderr (or `stream`); a closed pipe or terminal loses only the line."""
    stream = stream if stream is not None else sys.stderr
    try:
        print(line, file=stream, flush=True)
    except (OSError, ValueError, AttributeError):
        # Point the descriptor at /dev/null, so that Python's own flush at exit cannot fail
        # ("Exception ignored ... BrokenPipeError") either; the exit status tells.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)


def import_tensorflow(verbose: bool) -> None:
    """Imports TensorFlow and probes its devices with its native start-up log hidden.

    TensorFlow writes start-up lines (absl, oneDNN, CUDA probing) straight to file descriptor 2,
    ignoring TF_CPP_MIN_LOG_LEVEL, so they would bury the CLI's one-line messages. They go to a
    temporary file instead, which is shown only if the import fails.
    """
    if verbose or "tensorflow" in sys.modules:
        return
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
