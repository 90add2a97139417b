"""The BLAS thread rule, driven by made-up step times: small models stay on one thread, big ones
take two only while two are measured faster, and the count is always given back."""

import pytest

from mgpt.train import threads
from mgpt.train.threads import BlasThreads


class Limits:
    """A stand-in for threadpoolctl: records every count set and every restore."""

    def __init__(self):
        self.set, self.restored = [], 0

    def __call__(self, n):
        self.set.append(n)

        def restore():
            self.restored += 1
        return restore


def run(step_time, steps, limits, cpus=2, threads_given=None):
    """Tick ``steps`` steps whose duration is step_time(threads in use, step); returns the rule."""
    now = 0.0
    rule = BlasThreads(threads_given, now, limit=limits, cpus=cpus)
    for step in range(steps):
        now += step_time(rule.current, step)
        rule.tick(now)
    return rule


def test_a_small_model_stays_on_one_thread():
    limits = Limits()
    rule = run(lambda n, s: 0.0003, 5000, limits)
    assert rule.choices == [1] and limits.set == [1]  # set once: NumPy may have been loaded with more


def test_a_big_model_takes_two_threads_when_they_are_faster():
    limits = Limits()
    rule = run(lambda n, s: 0.010 if n == 1 else 0.006, 400, limits)
    assert rule.current == 2 and rule.choices == [1, 2, 1, 2]  # probe 2, probe 1, keep 2
    rule.close()
    assert limits.restored == len(limits.set)  # every change undone: the process is as it was


def test_two_threads_are_dropped_when_the_other_core_gets_busy():
    limits = Limits()
    busy_after = 1500  # steps: ~10 s of idle machine, then another process takes the second core
    rule = run(lambda n, s: (0.006 if n == 2 else 0.010) if s < busy_after else (0.024 if n == 2 else 0.010),
               6000, limits)
    assert rule.current == 1 and 2 in rule.choices
    # the busy probes cost little: about PROBE_SECONDS of two slow threads every RECHECK seconds
    assert threads.PROBE_SECONDS / threads.RECHECK < 0.02


def test_not_clearly_faster_is_not_enough():
    rule = run(lambda n, s: 0.010 if n == 1 else 0.0095, 400, Limits())
    assert rule.current == 1


@pytest.mark.parametrize("given,cpus,expected", [(3, 2, [3]), (None, 1, [])])  # one CPU: nothing to choose
def test_a_fixed_count_is_set_once_and_one_cpu_never_probes(given, cpus, expected):
    limits = Limits()
    rule = run(lambda n, s: 0.010, 3000, limits, cpus=cpus, threads_given=given)
    assert limits.set == expected and rule.choices == [given or 1]


def test_the_real_limiter_changes_and_restores_numpys_blas():
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads():
        return [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]

    before = blas_threads()
    restore = threads.blas_limiter(2)
    assert set(blas_threads()) == {2}
    restore()
    assert blas_threads() == before
