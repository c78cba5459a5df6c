"""scipy's L-BFGS-B turned inside out, so that our loop can yield after every evaluation.

scipy owns its loop, but the optimisation loop must yield after every evaluation (keep-best,
progress, TensorBoard, interrupts, the time limit). `LbfgsDriver` runs scipy in a worker thread
that only proposes points: it hands each `x` to the caller's thread and waits for the loss and
gradient, which the caller computes with TensorFlow. Closing the driver makes the worker's next
wait raise, which ends scipy's loop. Only numpy and scipy are used here, and scipy only once a
driver starts, so the constants import cheaply.
"""

from __future__ import annotations

import contextlib
import queue
import threading

import numpy as np

# Correction pairs kept by L-BFGS (scipy's default `maxcor`). `memory` counts them too.
LBFGS_HISTORY = 10


class LbfgsDriver:
    """Runs scipy's L-BFGS-B in a worker thread, one function evaluation at a time.

    The problem is left unbounded, as in the classic L-BFGS style-transfer implementations: with
    box bounds, L-BFGS-B's Cauchy-point search visits every pixel at every evaluation and cost
    more than the network's forward and backward pass (benchmarks/README.md, "L-BFGS bounds").
    The image is clipped to [0, 1] when it is shown or saved.

    Args:
        initial: The starting point, any shape; points are handed back in that shape, float32.
        max_evaluations: scipy's `maxiter` and `maxfun`.
        history: Correction pairs kept (`maxcor`).
    """

    class _StopRequestedError(Exception):
        pass

    def __init__(self, initial: np.ndarray, max_evaluations: int, history: int = LBFGS_HISTORY):
        self._shape = initial.shape
        self._requests: queue.Queue = queue.Queue(maxsize=1)
        self._answers: queue.Queue = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run,
            args=(initial.astype(np.float64).ravel(), max_evaluations, history),
            daemon=True,
        )
        self._thread.start()

    def _run(self, initial, max_evaluations, history):
        try:
            from scipy import optimize  # here, so that `memory` can read LBFGS_HISTORY cheaply

            optimize.minimize(
                self._evaluate,
                initial,
                jac=True,
                method="L-BFGS-B",
                options={
                    "maxiter": max_evaluations,
                    "maxfun": max_evaluations,
                    "maxcor": history,
                    "ftol": 0.0,
                    "gtol": 0.0,
                },
            )
        except self._StopRequestedError:
            pass
        except BaseException as error:  # handed to the caller's thread by next_point
            self._error = error
        finally:
            self._requests.put(None)

    def _evaluate(self, point):
        self._requests.put(point.reshape(self._shape).astype(np.float32))
        answer = self._answers.get()
        if answer is None:
            raise self._StopRequestedError
        loss, gradient = answer
        return loss, gradient.astype(np.float64).ravel()

    def next_point(self) -> np.ndarray | None:
        """Returns the next point to evaluate, or None when scipy has finished.

        Raises:
            BaseException: Whatever scipy raised in the worker (a MemoryError, say).
        """
        while True:
            try:
                point = self._requests.get(timeout=0.1)
            except queue.Empty:  # a short timeout keeps the caller's thread responsive to signals
                continue
            if point is None and self._error is not None:
                raise self._error
            return point

    def answer(self, loss: float, gradient: np.ndarray) -> None:
        """Gives scipy the loss and gradient at the last point."""
        self._answers.put((loss, gradient))

    def close(self) -> None:
        """Stops the worker and waits for it."""
        while self._thread.is_alive():
            with contextlib.suppress(queue.Full):
                self._answers.put_nowait(None)
            with contextlib.suppress(queue.Empty):
                self._requests.get(timeout=0.1)
        self._thread.join()
