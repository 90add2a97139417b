"""What the sampling controls cost (docs/sampling-controls.md), each beside unconstrained sampling
measured in the same run:

    python benchmarks/bench_controls.py [--repeats 5] [--skip-memory] [--skip-cold]

1. Shape controls: time per drawn token with a pattern, and with a suffix and a minimum length,
   against no control, at batch 1 and batch 4096 (the names model, temperature 0.5). A drawn token
   is a sample's drawn characters plus its ending BOS (none when it fills the block): constrained
   samples have other lengths, so the cost is per token, not per sample.
2. Novel + unique: accepted names per second against unconstrained names per second, both shipped
   models at temperature 0.5 and 1.0 (20,000 names, batch 4096), with the share of attempts
   accepted: the rejected ones are the model replaying its data (its cost, not the runtime's).
3. The check itself: the time the judge (novelty filter + unique set) takes per token of the
   attempts it judges, against the time drawing them took.
4. Cold: 20 novel unique names from names-large through mgpt-generate in a fresh process, against
   20 plain ones, the two commands alternated (process start to exit: Python, onnxruntime and the
   model's load included).
5. Memory: the peak resident size of a process drawing a million samples with --unique (names,
   temperature 1.0, streamed and discarded) against one without.

Medians of --repeats runs, A and B alternated; the ratios are the numbers to read.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from mgpt.runtime import Generator
from mgpt.runtime.rejection import Judge

SHAPES = {"pattern .* (the same samples: the mask's own cost)": {"pattern": ".*"},
          "pattern [a-z]{4,6}(a|ie)": {"pattern": "[a-z]{4,6}(a|ie)"},
          "suffix yn, min_length 5": {"suffix": "yn", "min_length": 5}}


def drawn_tokens(samples: list[str], prefix: str, block: int) -> int:
    return sum(len(s) - len(prefix) + (len(s) < block) for s in samples)


def timed(call) -> tuple[float, object]:
    start = time.perf_counter()
    out = call()
    return time.perf_counter() - start, out


def shape_costs(repeats: int) -> list[str]:
    gen = Generator("names", threads=1)
    rows = ["| batch | control | unconstrained us/token | controlled us/token | ratio |", "|---|---|---|---|---|"]
    for batch, n in ((1, 4000), (4096, 49152)):
        for name, controls in SHAPES.items():
            plain, shaped = [], []
            gen.generate(200, seed=0, batch_size=batch, **controls)  # compile and warm up
            for r in range(repeats):
                for opts, out in (({}, plain), (controls, shaped)):
                    dt, s = timed(lambda: gen.generate(n, temperature=0.5, seed=r, batch_size=batch, **opts))
                    out.append(dt / drawn_tokens(s, "", gen.block_size) * 1e6)
            a, b = statistics.median(plain), statistics.median(shaped)
            rows.append(f"| {batch} | {name} | {a:.2f} | {b:.2f} | {b / a:.2f}x |")
    return rows


def novel_unique_rates(repeats: int) -> tuple[list[str], list[str]]:
    rows = ["| model | T | unconstrained names/s | novel+unique names/s | ratio | attempts accepted |",
            "|---|---|---|---|---|---|"]
    checks = ["| model | T | draw us/token | check us/token | check / draw |", "|---|---|---|---|---|"]
    n = 20000
    for model in ("names", "names-large"):
        gen = Generator(model)
        for t in (0.5, 1.0):
            plain, controlled = [], []
            for r in range(repeats):
                dt, _ = timed(lambda: gen.generate(n, temperature=t, seed=r))
                plain.append(n / dt)
                dt, _ = timed(lambda: gen.generate(n, temperature=t, seed=r, novel=True, unique=True))
                controlled.append(n / dt)
            # the acceptance rate and the judge's own cost, on the attempts a call of n makes
            attempts = gen.generate(3 * n, temperature=t, seed=0)
            draws, judged = [], []
            for _ in range(repeats):
                draws.append(timed(lambda: gen.generate(3 * n, temperature=t, seed=0))[0])
                judge = Judge(gen.vocab, gen.novelty(), frozenset(), True)
                dt, verdicts = timed(lambda: [v for first in range(0, len(attempts), 1024)
                                              for v in judge.accept(attempts[first:first + 1024])])
                judged.append(dt)
            draw_dt, check_dt = statistics.median(draws), statistics.median(judged)
            tokens = drawn_tokens(attempts, "", gen.block_size)
            a, b = statistics.median(plain), statistics.median(controlled)
            rows.append(f"| {model} | {t} | {a:,.0f} | {b:,.0f} | {b / a:.2f}x | {sum(verdicts) / len(verdicts):.1%} |")
            checks.append(f"| {model} | {t} | {draw_dt / tokens * 1e6:.3f} | {check_dt / tokens * 1e6:.3f} | "
                          f"{check_dt / draw_dt:.1%} |")
    return rows, checks


def cold(repeats: int) -> list[str]:
    command = shutil.which("mgpt-generate") or str(Path(sys.executable).with_name("mgpt-generate"))
    base = [command, "--model", "names-large", "-n", "20", "--seed", "1"]
    plain, controlled = [], []
    for _ in range(repeats + 1):  # the first pair warms the file cache and is not counted
        for cmd, out in ((base, plain), (base + ["--novel", "--unique"], controlled)):
            dt, done = timed(lambda: subprocess.run(cmd, capture_output=True, check=True))
            out.append(dt)
    a, b = statistics.median(plain[1:]), statistics.median(controlled[1:])
    return ["| command (names-large, -n 20) | median s |", "|---|---|",
            f"| plain | {a:.3f} |", f"| --novel --unique | {b:.3f} |", f"| ratio | {b / a:.2f}x |"]


# the process's own peak (VmHWM: getrusage's maxrss would carry the parent's over fork and exec)
MEMORY = """
import sys
from mgpt.runtime import Generator
g = Generator("names")
for _ in g.samples(1_000_000, temperature=1.0, seed=1, unique=sys.argv[1] == "1", max_attempts=10**8):
    pass
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""


def memory() -> list[str]:
    peak = {}
    for unique in ("0", "1"):
        out = subprocess.run([sys.executable, "-c", MEMORY, unique], capture_output=True, text=True, check=True)
        peak[unique] = int(out.stdout.split()[-1]) / 1024  # KiB -> MiB
    return ["| 1,000,000 samples (names, T 1.0, streamed) | peak RSS MiB |", "|---|---|",
            f"| plain | {peak['0']:.0f} |", f"| --unique | {peak['1']:.0f} |",
            f"| what --unique adds | {peak['1'] - peak['0']:.0f} ({(peak['1'] - peak['0']) * 2**20 / 1e6:.0f} bytes a "
            f"sample) |"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-cold", action="store_true")
    args = parser.parse_args()
    print("Shape controls, per drawn token (names, T 0.5, 1 thread):\n")
    print("\n".join(shape_costs(args.repeats)), flush=True)
    rates, checks = novel_unique_rates(args.repeats)
    print("\nNovel + unique, 20,000 names (batch 4096):\n")
    print("\n".join(rates))
    print("\nThe check itself (novelty filter + unique set), per token of the attempts judged:\n")
    print("\n".join(checks), flush=True)
    if not args.skip_cold:
        print("\nCold, whole process:\n")
        print("\n".join(cold(args.repeats)), flush=True)
    if not args.skip_memory:
        print("\nMemory:\n")
        print("\n".join(memory()))


if __name__ == "__main__":
    main()
