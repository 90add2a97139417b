"""Training speed: mgpt's NumPy trainer beside a pure-Python scalar-autograd microgpt, one run.

    python benchmarks/bench_train.py [--reference-steps 20] [--repeats 3]

The reference is the tests' microgpt-style scalar autograd (tests/scalar_gpt.py) with microgpt's
Adam, timed for a few steps of the default recipe and projected to 500. mgpt runs the default
recipe (500 steps, one name per step) and batches of 32 and 256. Then a big model (4 layers, n_embd
64, block 16, batch 32, one BLAS thread) in float64 and float32, timed without evaluations.
Medians of --repeats runs; the machine is shared, so the ratios measured in the same run are what
count.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np  # noqa: E402

import scalar_gpt  # noqa: E402
from mgpt.train import GPTConfig, TrainOptions, default_data_path, read_documents, train  # noqa: E402
from mgpt.train import model  # noqa: E402
from mgpt.train.data import split  # noqa: E402
from mgpt.train.trainer import keep_freed_memory  # noqa: E402
from mgpt.runtime.vocab import Vocab  # noqa: E402


def reference_seconds_per_step(docs: list[str], steps: int) -> float:
    """Pure Python: one name per step through the scalar autograd, then Adam on every scalar."""
    vocab = Vocab.from_documents(docs)
    config = GPTConfig(vocab.size)
    params = scalar_gpt.to_values(model.views(model.init_params(config, 0), config))
    flat = [v for matrix in params.values() for row in matrix for v in row]
    m, v = [0.0] * len(flat), [0.0] * len(flat)
    lr, b1, b2, eps = 0.01, 0.85, 0.99, 1e-8
    start = time.perf_counter()
    for step in range(steps):
        loss = scalar_gpt.batch_loss(params, 1, 4, 8, [vocab.encode_document(docs[step])])
        loss.backward()
        lr_t = lr * (1 - step / 500)
        for i, p in enumerate(flat):
            m[i] = b1 * m[i] + (1 - b1) * p.grad
            v[i] = b2 * v[i] + (1 - b2) * p.grad**2
            p.data -= lr_t * (m[i] / (1 - b1 ** (step + 1))) / ((v[i] / (1 - b2 ** (step + 1))) ** 0.5 + eps)
            p.grad = 0.0
    return (time.perf_counter() - start) / steps


def mgpt_seconds(train_docs, val_docs, steps: int, batch_size: int) -> tuple[float, float, float | None]:
    """(seconds optimizing, seconds evaluating the held-out loss, final held-out loss)."""
    result = train(train_docs, val_docs, GPTConfig(1), TrainOptions(steps=steps, batch_size=batch_size))
    return result.seconds - result.eval_seconds, result.eval_seconds, result.val_loss


BIG = GPTConfig(1, n_layer=4, n_embd=64, n_head=4, block_size=16)


def big_model_ms_per_step(train_docs, steps: int, **options) -> float:
    result = train(train_docs, [], BIG, TrainOptions(steps=steps, batch_size=32, lr=0.004, threads=1, **options))
    return result.seconds / steps * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--big-steps", type=int, default=200)
    args = parser.parse_args()
    keep_freed_memory()  # as mgpt-train does

    docs = read_documents(default_data_path())
    train_docs, val_docs = split(docs, 0.03)
    shuffled = [docs[i] for i in np.random.default_rng(0).permutation(len(docs))]

    ref = statistics.median(reference_seconds_per_step(shuffled, args.reference_steps) for _ in range(args.repeats))
    rows = [("pure-Python microgpt (scalar autograd), batch 1", 500, 1, ref * 500, None, None)]
    for steps, batch in [(500, 1), (500, 32), (200, 256)]:
        runs = [mgpt_seconds(train_docs, val_docs, steps, batch) for _ in range(args.repeats)]
        seconds = statistics.median(s for s, _, _ in runs)
        rows.append((f"mgpt NumPy, batch {batch}", steps, batch, seconds, statistics.median(e for _, e, _ in runs),
                     runs[0][2]))

    print(f"training on {len(train_docs):,} names, 4,064 parameters; held-out NLL on {len(val_docs)} names, "
          f"evaluated every 100 steps and timed apart; medians of {args.repeats} runs\n")
    print("| trainer | steps | training time | + held-out evals | ms/step | steps/s | names/s "
          "| speed-up per name | held-out NLL |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, steps, batch, seconds, eval_seconds, val in rows:
        per_name = seconds / (steps * batch)
        if eval_seconds is None:
            time_text, eval_text = f"{seconds:.1f} s (from {args.reference_steps} steps)", ""
        else:
            time_text, eval_text = f"{seconds:.3f} s", f"{eval_seconds:.3f} s"
        print(f"| {name} | {steps} | {time_text} | {eval_text} | {seconds / steps * 1e3:.2f} | {steps / seconds:,.0f} | "
              f"{steps * batch / seconds:,.0f} | {ref / per_name:,.0f}× | {'' if val is None else f'{val:.3f}'} |")

    variants = [("float64", {}), ("float32", {"dtype": "float32"})]
    times = {name: [] for name, _ in variants}
    for _ in range(args.repeats):  # interleaved, so that a busy moment hits every variant alike
        for name, options in variants:
            times[name].append(big_model_ms_per_step(train_docs, args.big_steps, **options))
    base = statistics.median(times["float64"])
    print(f"\n4 layers, n_embd 64, block 16 ({dataclasses.replace(BIG, vocab_size=27).num_params():,} parameters on the names), "
          f"batch 32, {args.big_steps} steps, one BLAS thread, medians of {args.repeats}\n")
    print("| arithmetic | ms/step | of float64's step time |")
    print("|---|---:|---:|")
    for name, _ in variants:
        ms = statistics.median(times[name])
        print(f"| {name} | {ms:.2f} | {ms / base:.0%} |")


if __name__ == "__main__":
    main()
