"""How many BLAS threads a training run uses: a fixed number, or chosen by measuring as it runs.

The rule ("auto"): small models stay on one thread (their products are too small to share, and a
second OpenBLAS thread made them many times slower whenever the other core was busy). A model
whose steps take longer than ``BIG_STEP`` seconds tries two threads against one for a few steps
each, keeps the faster (two only if clearly faster), and tries again every ``RECHECK`` seconds, so
a run that starts on an idle machine gives the core back when another process starts, and the
other way round. threadpoolctl changes the count of the BLAS library that NumPy loaded, at run time.
"""

from __future__ import annotations

import os
import statistics
import sys
from typing import Callable, Mapping

BIG_STEP = 0.002  # seconds: below this a step stays on one thread for good
WARM_STEPS = 20  # steps timed on one thread before deciding whether threads are worth trying
PROBE_SECONDS = 0.25  # each setting is timed for about this long (at least PROBE_STEPS steps)
PROBE_STEPS = 8
RECHECK = 20.0  # seconds between probes
MARGIN = 0.9  # two threads must take at most 90% of one thread's step time


ENV = "OPENBLAS_NUM_THREADS"  # read by OpenBLAS once, when NumPy loads it


def load_numpy() -> None:
    """Import NumPy with OpenBLAS started on one thread, unless the user set ENV, and leave the
    environment as it was. For the commands' entry (cli.py), before anything else imports NumPy:
    OpenBLAS started with a thread per core costs ~40 ms more to load (45 against 85 ms for
    ``import numpy`` here), and mgpt-eval's products then run on one thread. Training sets its
    own count anyway (BlasThreads). Once NumPy is loaded this changes nothing."""
    if "numpy" in sys.modules or ENV in os.environ:
        return  # loaded already, or loads with the user's count
    os.environ[ENV] = "1"
    try:
        import numpy  # noqa: F401
    finally:
        del os.environ[ENV]  # the choice is the user's again: ``requested_threads`` reads it


def requested_threads(threads: int | None, environ: Mapping[str, str] = os.environ) -> int | None:
    """The fixed BLAS thread count a run takes: ``threads`` if given (--blas-threads), else the
    user's OPENBLAS_NUM_THREADS if it is a positive integer, else None (the rule above)."""
    if threads is not None:
        return threads
    try:
        count = int(environ.get(ENV, "").strip())
    except ValueError:  # unset or not a number: OpenBLAS ignores it too
        return None
    return count if count >= 1 else None


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def blas_limiter(threads: int) -> Callable[[], None]:
    """Set the BLAS threads of every BLAS library loaded; returns a function that restores them."""
    from threadpoolctl import threadpool_limits

    limits = threadpool_limits(limits=threads, user_api="blas")
    return limits.restore_original_limits


class BlasThreads:
    """Call ``tick(now)`` after every step (``now``: time.perf_counter()); ``close()`` at the end.

    ``threads``: a fixed count, or None for the rule above. ``limit`` sets the count and returns a
    function that undoes it (a parameter so that tests can watch the choices)."""

    def __init__(self, threads: int | None, now: float, limit=blas_limiter, cpus: int | None = None):
        self.limit, self.restore, self.current = limit, None, threads or 1
        self.auto = threads is None and min(2, cpus or usable_cpus()) > 1
        self.last, self.times = now, []  # step times at the current setting since the last decision
        self.phase = "warm" if self.auto else "fixed"
        self.probed: dict[int, float] = {}
        self.decided_at = now
        self.choices = [self.current]  # every setting taken, in order (for the training record)
        # Even "auto" starts by setting one thread: NumPy loaded anywhere but mgpt's commands
        # (load_numpy) has a thread per core (25x slower steps measured here with the other core
        # busy). One call, ~8 ms the first time (threadpoolctl's import).
        if threads is not None or min(2, cpus or usable_cpus()) > 1:
            self._set(self.current)

    def _set(self, threads: int) -> None:
        if self.restore is not None:
            self.restore()
        self.restore, self.current = self.limit(threads), threads
        if self.choices[-1] != threads:
            self.choices.append(threads)

    def tick(self, now: float) -> None:
        if self.phase == "fixed":
            return
        self.times.append(now - self.last)
        self.last = now
        if self.phase == "warm":
            if len(self.times) >= WARM_STEPS:
                if statistics.median(self.times) < BIG_STEP:
                    self.phase = "fixed"  # a small model: one thread for good
                else:
                    self._probe(now)
        elif self.phase == "probe":
            if len(self.times) >= PROBE_STEPS and sum(self.times) >= PROBE_SECONDS:
                self.probed[self.current] = statistics.median(self.times)  # median: an evaluation is an outlier
                if len(self.probed) < 2:
                    self._switch(1 if self.current == 2 else 2)
                else:
                    self._switch(2 if self.probed[2] <= MARGIN * self.probed[1] else 1)
                    self.phase, self.decided_at = "hold", now
        elif now - self.decided_at >= RECHECK:  # hold: time to measure again
            self._probe(now)

    def _probe(self, now: float) -> None:
        self.phase, self.probed = "probe", {}
        self._switch(2 if self.current == 1 else 1)  # the setting in use is timed second

    def _switch(self, threads: int) -> None:
        self.times = []
        if threads != self.current:
            self._set(threads)

    def close(self) -> None:
        if self.restore is not None:
            self.restore()
            self.restore = None
