"""A watchdog that ends the whole job when a rank stops making progress (a peer died or hangs).

A rank that waits in a blocking collective for a peer that was killed is normally released by
``mpirun``, which kills the job when one of its processes dies. Nothing releases it when the peer
is alive but stuck (stopped, deadlocked, its host frozen, a launcher that does not watch its
processes): every other rank would wait forever. The training loop calls :meth:`Watchdog.beat`
at each step (every layer's exchange, backward, all-reduce, evaluation, checkpoint); a daemon
thread checks the time since the last beat and, past ``timeout_s``, prints one line and aborts
the job (``MPI_Abort``, which makes the launcher kill every rank).

The first epoch (numba compiles, first-touch page faults, cache building) may take much longer
than later ones, and a rank may legitimately compute for a long time between beats on a big
graph: until the first epoch completes the limit is ``first_epoch_factor`` x ``timeout_s``, and
after each epoch (:meth:`epoch_done`) it is ``timeout_s`` or 3x the slowest epoch so far,
whichever is larger.

Ranks fire a little apart (a quarter second per rank, capped at 5 s) so that usually only the
lowest waiting rank prints before the abort takes the others down.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from typing import Callable, Optional


def mpi_abort(code: int) -> None:
    """Abort every rank of ``MPI.COMM_WORLD`` with ``code`` (exit the process without MPI)."""
    try:
        from mpi4py import MPI

        MPI.COMM_WORLD.Abort(code)
    finally:
        os._exit(code)


class Watchdog:
    """Aborts the job when :meth:`beat` is not called for ``timeout_s`` seconds while armed.

    Args:
        timeout_s: seconds without a beat before the job is aborted; 0 disables the watchdog.
        rank: this rank (names it in the message, staggers the firing).
        abort: called with the exit code (1) when the watchdog fires; default :func:`mpi_abort`.
        poll_s: how often the thread looks at the clock.
        first_epoch_factor: the limit before the first :meth:`epoch_done` is this many times
            ``timeout_s``.

    Use as a context manager around the work: armed on enter, stopped on exit.
    """

    def __init__(self, timeout_s: float, rank: int = 0,
                 abort: Optional[Callable[[int], None]] = None, poll_s: float = 1.0,
                 first_epoch_factor: float = 5.0) -> None:
        self.timeout_s = float(timeout_s)
        self.limit_s = self.timeout_s * max(1.0, first_epoch_factor)
        self._slowest_epoch = 0.0
        self.rank = rank
        self._abort = abort or mpi_abort
        self._poll_s = min(poll_s, max(0.05, self.timeout_s / 4)) if self.timeout_s else poll_s
        self._grace = min(5.0, 0.25 * rank)
        self._last = time.monotonic()
        self._where = "start"
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.fired = False

    def beat(self, where: str) -> None:
        """Record progress: the rank is now at ``where`` (named in the message if it stalls)."""
        self._last = time.monotonic()
        self._where = where

    def epoch_done(self, epoch_s: float) -> None:
        """An epoch took ``epoch_s`` seconds: wait at most ``max(timeout_s, 3 x slowest)``."""
        self._slowest_epoch = max(self._slowest_epoch, float(epoch_s))
        self.limit_s = max(self.timeout_s, 3.0 * self._slowest_epoch)

    def start(self) -> "Watchdog":
        """Arm the watchdog (start its daemon thread); returns self. No-op when disabled."""
        if self.timeout_s > 0 and self._thread is None:
            self.beat("start")
            self._thread = threading.Thread(target=self._watch, name="gnnsys-watchdog",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Disarm the watchdog and wait for its thread to end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> "Watchdog":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _watch(self) -> None:
        while not self._stop.wait(self._poll_s):
            idle = time.monotonic() - self._last
            if idle > self.limit_s + self._grace:
                self.fired = True
                print(f"gnnsys train: failed (rank {self.rank}): no progress for {idle:.0f} s "
                      f"after {self._where} (a peer rank died or hangs; --timeout "
                      f"{self.timeout_s:g}, limit now {self.limit_s:g} s); aborting the job", file=sys.stderr, flush=True)
                self._abort(1)
                return
