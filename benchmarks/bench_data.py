"""Training from big data files: how fast a file is read (checked and encoded), how much memory
training and scoring take, and what one held-out evaluation costs, against the shipped names.

    flock /work/helpers/bench.lock python benchmarks/bench_data.py [--sizes 19,96,1000] [--workdir DIR]
                                                                 [--eval-sizes 19,96] [--keep]

The data files are made here, deterministically (the shipped names with a random number of 0-999
after each, one per line, about 10 bytes a line as in the issue's files), in --workdir (default: a
new temporary folder, removed at the end unless --keep). Never commit them.

For the shipped names and each size (MB), each in its own process:
- read: ``data.read_corpus`` alone: seconds, MB/s of the file, the process's peak RSS;
- train: ``mgpt-train --steps 200 --batch-size 32`` with the default options otherwise (so the
  novelty filter too, and a held-out evaluation at steps 100 and 200): wall time, peak RSS (the
  child's ru_maxrss from os.wait4), and one held-out evaluation's seconds (the summary's total over
  its two evaluations, halved); --no-novelty again, for the filter's share;
- eval (--eval-sizes): ``mgpt-eval`` of the checkpoint just trained, over the whole file: wall
  time, peak RSS.
Peak RSS above the shipped names' run of the same command is the figure the issue's target is on.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mgpt.train.data import default_data_path

TRAIN = ["--steps", "200", "--batch-size", "32", "-q"]


def make_file(path: Path, megabytes: float, seed: int = 0) -> None:
    """Names with a random number 0-999 after each, one per line, until ``megabytes`` MB (1e6 bytes),
    made a block of lines at a time with NumPy (deterministic for a seed)."""
    names = default_data_path().read_bytes().split()
    pool = np.frombuffer(b"".join(names), dtype=np.uint8)
    name_len = np.array([len(n) for n in names], dtype=np.int64)
    name_start = np.cumsum(name_len) - name_len
    rng = np.random.default_rng(seed)
    target, written = int(megabytes * 1e6), 0
    with open(path, "wb") as f:
        while written < target:
            k = 1 << 20
            pick, number = rng.integers(0, len(names), k), rng.integers(0, 1000, k)
            digits = 1 + (number >= 10) + (number >= 100)
            length = name_len[pick] + digits + 1  # name, number, \n
            end = np.cumsum(length)
            start = end - length
            out = np.empty(int(end[-1]), dtype=np.uint8)
            # the names' letters: a ragged arange of each line's name positions
            offset = np.arange(int(name_len[pick].sum())) - np.repeat(np.cumsum(name_len[pick]) - name_len[pick],
                                                                      name_len[pick])
            out[np.repeat(start, name_len[pick]) + offset] = pool[np.repeat(name_start[pick], name_len[pick]) + offset]
            for d in range(3):  # digit d of the number, where it has one
                has = digits > d
                out[(start + name_len[pick] + d)[has]] = 48 + (number[has] // 10 ** (digits[has] - 1 - d)) % 10
            out[end - 1] = 10
            block = out.tobytes()
            if written + len(block) > target:  # the last block: cut after a whole line
                block = block[: block.rfind(b"\n", 0, target - written) + 1]
                target = written + len(block)
            f.write(block)
            written += len(block)


def run(args: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in GB, output) of a child process."""
    start = time.perf_counter()
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({child.returncode}): {output.strip()[-500:]}")
    return seconds, usage.ru_maxrss * 1024 / 1e9, output


READ = """
import sys, time
from mgpt.train.data import read_corpus
t = time.perf_counter(); corpus = read_corpus(sys.argv[1]); t = time.perf_counter() - t
print(t, len(corpus), corpus.codes.dtype)
"""


def measure(path: Path, workdir: Path, with_eval: bool) -> dict:
    size = path.stat().st_size
    row = {"file": path.name, "MB": size / 1e6}
    _, row["read_rss"], out = run([sys.executable, "-c", READ, str(path)])
    seconds, documents, _ = out.split()
    row["read_s"], row["documents"] = float(seconds), int(documents)
    row["MB/s"] = size / 1e6 / row["read_s"]
    out_path = workdir / f"{path.stem}.npz"
    train = [sys.executable, "-c", "from mgpt.train.cli import train_command; train_command()",
             "--data", str(path), "--out", str(out_path), *TRAIN]
    row["train_s"], row["train_rss"], out = run(train)
    evaluating = re.search(r"\+ ([0-9.]+) s of held-out evaluation", out)
    row["eval_s"] = float(evaluating.group(1)) / 2 if evaluating else float("nan")
    row["held_out"] = int(re.search(r"on ([0-9,]+) documents\n", out).group(1).replace(",", ""))
    row["plain_s"], row["plain_rss"], _ = run(train + ["--no-novelty"])
    if with_eval:
        row["score_s"], row["score_rss"], out = run([sys.executable, "-c",
                                                     "from mgpt.train.cli import eval_command; eval_command()",
                                                     str(out_path), "--data", str(path)])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="19,96,1000", help="data file sizes in MB (1e6 bytes), comma-separated")
    parser.add_argument("--eval-sizes", default="19,96", help="sizes also scored with mgpt-eval")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the data files")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mgpt-bench-data-"))
    workdir.mkdir(parents=True, exist_ok=True)
    sizes = [float(s) for s in args.sizes.split(",") if s]
    eval_sizes = {float(s) for s in args.eval_sizes.split(",") if s}
    try:
        files = [default_data_path()]
        for mb in sizes:
            path = workdir / f"data-{mb:g}MB.txt"
            if not path.exists() or path.stat().st_size > mb * 1e6:
                t = time.perf_counter()
                make_file(path, mb)
                print(f"made {path.name} ({path.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - t:.1f} s",
                      file=sys.stderr)
            files.append(path)
        rows = []
        for i, path in enumerate(files):
            rows.append(measure(path, workdir, with_eval=i > 0 and sizes[i - 1] in eval_sizes))
            print(rows[-1], file=sys.stderr)
        base = rows[0]
        print("| data file | documents | held out | read + check + encode | read MB/s | read peak RSS | "
              "train wall (200 x 32) | train peak RSS | above names | without the novelty filter | "
              "one held-out evaluation | mgpt-eval wall | mgpt-eval peak RSS |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            scored = (f"{r['score_s']:.1f} s | {r['score_rss']:.2f} GB" if "score_s" in r else "|")
            print(f"| {r['file']} ({r['MB']:,.1f} MB) | {r['documents']:,} | {r['held_out']:,} | {r['read_s']:.2f} s | "
                  f"{r['MB/s']:,.0f} | {r['read_rss']:.2f} GB | {r['train_s']:.1f} s | {r['train_rss']:.2f} GB | "
                  f"{r['train_rss'] - base['train_rss']:+.2f} GB | {r['plain_s']:.1f} s, {r['plain_rss']:.2f} GB | "
                  f"{r['eval_s'] * 1000:.0f} ms | {scored} |")
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
