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
    import numpy  # noqa: F401  (loads the BLAS library; importing mgpt.train does not)

    def blas_threads():
        return [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]

    before = blas_threads()
    restore = threads.blas_limiter(2)
    assert set(blas_threads()) == {2}
    restore()
    assert blas_threads() == before


@pytest.mark.parametrize("given,environ,expected", [
    (None, {}, None),  # the rule
    (None, {"OPENBLAS_NUM_THREADS": "2"}, 2),  # the user's setting pins the count
    (3, {"OPENBLAS_NUM_THREADS": "2"}, 3),  # --blas-threads wins
    (None, {"OPENBLAS_NUM_THREADS": " 4\n"}, 4),
    (None, {"OPENBLAS_NUM_THREADS": "0"}, None),  # what OpenBLAS ignores, we ignore
    (None, {"OPENBLAS_NUM_THREADS": "-2"}, None),
    (None, {"OPENBLAS_NUM_THREADS": "two"}, None),
    (None, {"OPENBLAS_NUM_THREADS": ""}, None),
])
def test_blas_threads_win_then_the_users_environment_then_the_rule(given, environ, expected):
    assert threads.requested_threads(given, environ) == expected


def test_a_users_openblas_num_threads_is_the_count_a_run_takes(monkeypatch, tmp_path):
    pytest.importorskip("threadpoolctl")
    from click.testing import CliRunner

    from mgpt.train import checkpoint
    from mgpt.train.cli import train_command

    (tmp_path / "names.txt").write_text("emma\nava\nmia\n")
    args = ["--data", tmp_path / "names.txt", "--out", tmp_path / "m.npz", "--steps", 3, "-q"]
    for env, extra, taken in [({"OPENBLAS_NUM_THREADS": "2"}, [], [2]), ({"OPENBLAS_NUM_THREADS": "2"},
                              ["--blas-threads", 1], [1]), ({"OPENBLAS_NUM_THREADS": None}, [], [1])]:
        result = CliRunner(env=env).invoke(train_command, [str(a) for a in args + extra])
        assert result.exit_code == 0, result.output
        assert checkpoint.load(tmp_path / "m.npz").training["blas_threads"] == taken, (env, extra)


def blas_in_a_new_process(code, **environ):
    """(OPENBLAS_NUM_THREADS as the code leaves it, NumPy's BLAS thread counts) after ``code``."""
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != threads.ENV} | environ
    probe = (f"{code}; import json, os, threadpoolctl; print(json.dumps([os.environ.get({threads.ENV!r}), "
             "[p['num_threads'] for p in threadpoolctl.threadpool_info() if p['user_api'] == 'blas']]))")
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    return tuple(json.loads(done.stdout))


def test_importing_the_library_leaves_the_environment_and_blas_alone():
    pytest.importorskip("threadpoolctl")
    plain = blas_in_a_new_process("import numpy")
    assert blas_in_a_new_process("import mgpt.train; from mgpt.train import train, load") == plain
    assert plain[0] is None


@pytest.mark.parametrize("environ,expected", [({}, (None, [1])), ({threads.ENV: "2"}, ("2", [2]))])
def test_the_commands_start_openblas_on_one_thread_unless_the_user_says(environ, expected):
    pytest.importorskip("threadpoolctl")
    assert blas_in_a_new_process("import mgpt.train.cli", **environ) == expected
