"""Faults: signals, kill -9 at random moments, a full disk. Whatever happens, a file on disk is the
old one or the new one, never broken; a checkpoint and the metrics log beside it come from the same
run; and no temporary file stays behind (a killed writer's is swept by the next write)."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mgpt.models

from mgpt.train import load
from mgpt.train.files import atomic_write, staged, sweep_leftovers



def argv(command: str, *args: str) -> list[str]:
    """argv running an mgpt command through this interpreter (the venv's console scripts may be elsewhere)."""
    module, function = {"train": ("mgpt.train.cli", "train_command"),
                        "export": ("mgpt.export.cli", "export_command")}[command]
    return [sys.executable, "-c", f"from {module} import {function} as c; c(prog_name='mgpt-{command}')", *args]


SHIPPED_CKPT = Path(mgpt.models.__file__).with_name("names.npz")


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def run_of(folder: Path, stem: str = "ckpt") -> tuple[str | None, str | None]:
    """(the checkpoint's run id, the metrics log's run id), None where a file is absent; the
    checkpoint must load and every log line must name one run."""
    ckpt, log = folder / f"{stem}.npz", folder / f"{stem}.metrics.jsonl"
    ckpt_run = load(ckpt).training["run"] if ckpt.exists() else None
    log_run = None
    if log.exists():
        runs = {json.loads(line)["run"] for line in log.read_text().splitlines()}
        assert len(runs) == 1, runs
        log_run = runs.pop()
    return ckpt_run, log_run


def test_sigterm_saves_and_exits_143_like_ctrl_c(tmp_path):
    proc = subprocess.Popen(argv("train", "--steps", "10000000", "-q", "--out", "ckpt.npz"), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "ckpt.metrics.jsonl"
    deadline = time.time() + 60
    while not any(p.name.startswith(".ckpt.metrics.jsonl.") for p in tmp_path.iterdir()):  # training has begun
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "interrupted after" in err and "Traceback" not in err
    ckpt_run, log_run = run_of(tmp_path)
    assert ckpt_run == log_run is not None
    steps = load(tmp_path / "ckpt.npz").training["steps"]
    assert steps == json.loads(log.read_text().splitlines()[-1])["step"] > 0  # the log ends with the last step
    assert leftovers(tmp_path) == []


def test_kill_9_at_random_moments_of_training_keeps_checkpoint_and_log_of_one_run(tmp_path):
    subprocess.run(argv("train", "--steps", "5", "-q", "--out", "ckpt.npz"), cwd=tmp_path, check=True)
    rng = random.Random(8)
    for _ in range(5):
        proc = subprocess.Popen(argv("train", "--steps", "1500", "-q", "--out", "ckpt.npz"), cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 1.2))
        proc.kill()
        proc.wait()
        ckpt_run, log_run = run_of(tmp_path)  # loads the checkpoint: never broken
        assert ckpt_run is not None
        assert log_run in (ckpt_run, None)  # never another run's log
    # the next write sweeps what killed writers left
    subprocess.run(argv("train", "--steps", "2", "-q", "--out", "ckpt.npz"), cwd=tmp_path, check=True)
    assert leftovers(tmp_path) == []
    ckpt_run, log_run = run_of(tmp_path)
    assert ckpt_run == log_run is not None


def test_kill_9_at_random_moments_of_export_leaves_old_or_new(tmp_path):
    import onnx

    names_checkpoint = Path(mgpt.models.__file__).with_name("names.npz")

    out = tmp_path / "model.onnx"
    out.write_bytes(b"old")
    rng = random.Random(9)
    for _ in range(3):
        proc = subprocess.Popen(argv("export", str(out), "--checkpoint", str(names_checkpoint)),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 1.5))
        proc.kill()
        proc.wait()
        data = out.read_bytes()
        if data != b"old":
            onnx.checker.check_model(onnx.load_from_string(data))
    subprocess.run(argv("export", str(out), "--checkpoint", str(names_checkpoint)), check=True,
                   stdout=subprocess.DEVNULL)
    assert leftovers(tmp_path) == []


def test_a_dead_writers_temporary_file_is_swept_by_the_next_write(tmp_path):
    target = tmp_path / "a.npz"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".a.npz.{dead.pid}.0123abcd.tmp"
    stale.write_bytes(b"half")
    alive = tmp_path / f".a.npz.{os.getppid()}.0123abcd.tmp"  # a live writer's: not touched
    alive.write_bytes(b"busy")
    other = tmp_path / f".b.npz.{dead.pid}.0123abcd.tmp"  # another target's: not ours to sweep
    other.write_bytes(b"x")
    with atomic_write(target) as f:
        f.write(b"new")
    assert target.read_bytes() == b"new"
    assert not stale.exists() and alive.exists() and other.exists()
    assert sweep_leftovers(tmp_path / "b.npz") == 1


def test_a_failed_block_leaves_the_old_file_and_no_temporary_file(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with staged(target, "w") as (f, _):
            f.write("new")
            raise RuntimeError("boom")
    assert target.read_text() == "old" and leftovers(tmp_path) == []


@pytest.fixture
def tiny_fs(tmp_path):
    """A 64 kB tmpfs, where mounting is allowed (root, or a namespace that permits it)."""
    mount = tmp_path / "full"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root); the full-disk test needs one")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_disk_too_full_for_the_checkpoint_is_found_before_training(tiny_fs):
    (tiny_fs / "ckpt.npz").write_bytes(b"old checkpoint")
    (tiny_fs / "filler").write_bytes(b"\0" * 40_000)
    result = subprocess.run(argv("train", "--steps", "3", "-q", "--out", "ckpt.npz"),
                            cwd=tiny_fs, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "its filesystem has" in result.stderr, result.stderr
    assert (tiny_fs / "ckpt.npz").read_bytes() == b"old checkpoint" and leftovers(tiny_fs) == []
    assert not (tiny_fs / "ckpt.metrics.jsonl").exists()


def test_disk_full_while_writing_is_one_error_and_the_old_file_is_intact(tiny_fs):
    from mgpt.train.files import OutputError

    target = tiny_fs / "model.onnx"
    target.write_bytes(b"old model")
    with pytest.raises(OutputError, match=r"could not write .*model\.onnx' \(No space left on device\); it was left"):
        with atomic_write(target) as f:
            f.write(b"\1" * 200_000)  # more than the 64 kB there is
    assert target.read_bytes() == b"old model" and leftovers(tiny_fs) == []


STREAM_COMMANDS = {
    "generate": "mgpt-generate -n 5 --seed 1",
    "export": "mgpt-export m.onnx --checkpoint {ckpt}",
    "eval": "mgpt-eval {ckpt}",
}


def shell(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """``command`` (an mgpt command line, then shell redirections) through bash, with the commands
    run by this interpreter's console scripts."""
    bin_dir = Path(sys.executable).parent
    return subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})


@pytest.mark.parametrize("name", STREAM_COMMANDS)
@pytest.mark.parametrize("redirect, words", [("> /dev/full", "No space left on device"),
                                             (">&-", "standard output is closed")])
def test_a_full_or_closed_stdout_is_one_error_line(tmp_path, name, redirect, words):
    if not Path(sys.executable).with_name(f"mgpt-{name}").exists():
        pytest.skip("the console scripts are not installed beside this interpreter")
    command = STREAM_COMMANDS[name].format(ckpt=SHIPPED_CKPT)
    result = shell(f"{command} {redirect}", tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: ") and words in result.stderr
    assert leftovers(tmp_path) == []


def test_a_broken_pipe_ends_quietly(tmp_path):
    if not Path(sys.executable).with_name("mgpt-generate").exists():
        pytest.skip("the console scripts are not installed beside this interpreter")
    result = shell("mgpt-generate -n 300000 --seed 1 | head -n 2; echo status=${PIPESTATUS[0]}", tmp_path)
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and lines[0].startswith("sample  1: ") and lines[2] == "status=0", result.stdout
    assert result.stderr == ""


def test_a_file_name_of_the_longest_length_can_be_written(tmp_path):
    """Its temporary file's name, which adds a pid and a random part, must fit too."""
    target = tmp_path / ("\u00e9" * 125 + ".npz")  # 254 bytes of UTF-8
    with atomic_write(target) as f:
        f.write(b"x")
    assert target.read_bytes() == b"x" and leftovers(tmp_path) == []
