"""Sampling speed of mgpt.runtime beside a plain Python loop over onnxruntime, measured in the same run.

    python benchmarks/bench_generate.py [--model names.onnx] [--repeats 5] [--baseline old.onnx]

Prints a Markdown table. A "token" is one drawn token: a sample's characters plus its ending BOS
(a sample that reaches the block size draws no BOS). Both sides count the same way, use the same
model and onnxruntime options (one intra-op thread), and alternate, so that load from other
processes hits both alike; the ratio is the number to read. Each figure is the median of
``--repeats`` runs.

The reference is what one writes first: ``InferenceSession.run`` with a fresh feed dict, a NumPy
softmax, then ``rng.choice`` at batch 1 or a vectorized inverse CDF for a batch (``rng.choice``
takes one distribution), stopping when every row has drawn BOS, over the general step graph of the
same checkpoint (see ``reference_model``). The columns "per CPU s" divide by the CPU time of the
process (all its threads) instead of the wall clock: on a machine shared with other work they say
how much work a token takes when the wall clock cannot.

``--baseline`` measures mgpt's sampling over another file of the same model too (the graph before a
change, say), alternating with the rest, and prints a second table: the change's effect, in the
same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from mgpt.runtime import Generator, default_model_path
from mgpt.train import default_data_path, read_documents
from mgpt.runtime.metadata import LOGITS, POSITION, TOKEN, ModelInfo, past_names

TEMPERATURE = 0.5  # the seed's


# ----------------------------------------------------------------------------- the reference loop

def reference_model(path: str) -> str | bytes:
    """The plain loop's model: the checkpoint beside ``path`` (the shipped .npz) exported with the
    general builders, the graph a plain exporter writes (the small-model graph makes a plain loop
    twice as fast too, so it would hide what it gains); ``path`` itself without a checkpoint."""
    checkpoint = Path(path).with_suffix(".npz")
    if not checkpoint.exists():
        return path
    from mgpt.export import build_model
    from mgpt.train.checkpoint import load

    return build_model(load(checkpoint), general=True).SerializeToString()


def plain_session(path: str | bytes) -> tuple[ort.InferenceSession, ModelInfo]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return session, ModelInfo.from_props(session.get_modelmeta().custom_metadata_map)


def plain_loop(session, info: ModelInfo, num_samples: int, batch: int, seed: int = 0) -> int:
    """Samples ``num_samples`` names ``batch`` at a time; returns the tokens drawn."""
    if batch == 1:
        return plain_loop_one(session, info, num_samples, seed)
    rng = np.random.default_rng(seed)
    V, bos, shape = info.vocab_size, info.bos, (batch, info.n_head, 0, info.head_dim)
    names = [n for i in range(info.n_layer) for n in past_names(i)]
    drawn = 0
    for _ in range(0, num_samples, batch):
        feed = {TOKEN: np.full(batch, bos, dtype=np.int64), **{n: np.zeros(shape, np.float32) for n in names}}
        done = np.zeros(batch, dtype=bool)
        for pos in range(info.block_size):
            feed[POSITION] = np.array(pos, dtype=np.int64)
            logits, *present = session.run(None, feed)
            probs = softmax(logits / TEMPERATURE)
            token = np.minimum((probs.cumsum(axis=1) < rng.random((batch, 1))).sum(axis=1), V - 1)
            drawn += int(np.count_nonzero(~done))
            done |= token == bos
            if done.all():
                break
            feed = {TOKEN: token, POSITION: None, **dict(zip(names, present))}
    return drawn


def plain_loop_one(session, info: ModelInfo, num_samples: int, seed: int = 0) -> int:
    """The seed's loop, one sample at a time."""
    rng = np.random.default_rng(seed)
    V, bos, shape = info.vocab_size, info.bos, (1, info.n_head, 0, info.head_dim)
    names = [n for i in range(info.n_layer) for n in past_names(i)]
    drawn = 0
    for _ in range(num_samples):
        cache = [np.zeros(shape, np.float32) for _ in names]
        token = bos
        for pos in range(info.block_size):
            feed = {TOKEN: np.array([token], dtype=np.int64), POSITION: np.array(pos, dtype=np.int64),
                    **dict(zip(names, cache))}
            logits, *cache = session.run(None, feed)
            token = int(rng.choice(V, p=softmax(logits[0] / TEMPERATURE)))
            drawn += 1
            if token == bos:
                break
    return drawn


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ----------------------------------------------------------------------------- mgpt's loop

def mgpt_loop(generator: Generator, num_samples: int, batch: int, seed: int = 0) -> int:
    samples = generator.samples(num_samples, TEMPERATURE, seed=seed, batch_size=batch)
    return sum(min(len(s) + 1, generator.block_size) for s in samples)


def mgpt_score(generator: Generator, texts: list[str], tokens: int) -> int:
    generator.score(texts)
    return tokens


def predicted_tokens(texts: list[str], block_size: int) -> int:
    """Tokens that scoring predicts: a document's characters and its ending BOS, within the block."""
    return sum(min(len(t) + 1, block_size) for t in texts)


def rate(fn, *args) -> tuple[float, float]:
    """Tokens per wall-clock second and per CPU second of the process (all its threads): on a
    machine shared with other work the second still says how much work a token takes."""
    t0, c0 = time.perf_counter(), time.process_time()
    tokens = fn(*args)
    return tokens / (time.perf_counter() - t0), tokens / (time.process_time() - c0)


def command_seconds(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=COMMAND_ENV)
    return time.perf_counter() - t0


# Start-up is measured as installed: with bytecode caches (pip writes them at install; a shell that
# sets PYTHONDONTWRITEBYTECODE would otherwise make every run recompile mgpt's modules).
COMMAND_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="an mgpt .onnx file [default: the shipped names model]")
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure (the median is shown)")
    parser.add_argument("--baseline", default=None, help="another .onnx file to sample beside --model, alternating")
    args = parser.parse_args()
    path = str(args.model or default_model_path())
    session, info = plain_session(reference_model(path))
    one_thread, two_threads = Generator(path, threads=1), Generator(path, threads=2)
    names = read_documents(default_data_path())  # the shipped names, scored
    names_tokens = predicted_tokens(names, info.block_size)

    # (label, reference call, mgpt call, target)
    cases = [
        ("batch 1, tokens/s", (plain_loop, session, info, 2000, 1), (mgpt_loop, one_thread, 2000, 1), "≥ 50 K"),
        ("batch 1024, one thread, tokens/s", (plain_loop, session, info, 8192, 1024),
         (mgpt_loop, one_thread, 16384, 1024), "≥ 1.1 M"),
        ("batch 8192 on two threads (plain: 1024, one), tokens/s", (plain_loop, session, info, 16384, 1024),
         (mgpt_loop, two_threads, 65536, 8192), "≥ 2 M, ≥ 3.5×"),
        (f"score the {len(names):,} shipped names on two threads (plain: sample at 1024), tokens/s",
         (plain_loop, session, info, 16384, 1024), (mgpt_score, two_threads, names, names_tokens), "≥ 2 M"),
    ]
    baselines = {1: Generator(args.baseline, threads=1), 2: Generator(args.baseline, threads=2)} if args.baseline else {}
    rows, baseline_rows = [], []
    for label, ref, ours, target in cases:
        ref_rates, our_rates, base_rates = [], [], []
        # the same call on the baseline's Generator of as many threads (sampling only)
        base = (ours[0], baselines[ours[1].threads], *ours[2:]) if baselines and ours[0] is mgpt_loop else None
        rate(*ref), rate(*ours), base and rate(*base)  # warm-up: first runs allocate arenas
        for _ in range(args.repeats):
            ref_rates.append(rate(*ref))
            our_rates.append(rate(*ours))
            if base:
                base_rates.append(rate(*base))
        if base:
            (b, bc), (o, oc) = (tuple(map(statistics.median, zip(*rates))) for rates in (base_rates, our_rates))
            baseline_rows.append((label, f"{b:,.0f}", f"{o:,.0f}", f"{o / b:.3f}×", f"{bc:,.0f}", f"{oc:,.0f}",
                                  f"{oc / bc:.3f}×"))
        (r, rc), (o, oc) = (tuple(map(statistics.median, zip(*rates))) for rates in (ref_rates, our_rates))
        rows.append((label, f"{r:,.0f}", f"{o:,.0f}", f"{o / r:.2f}×", f"{rc:,.0f}", f"{oc:,.0f}", f"{oc / rc:.2f}×",
                     target))

    # a million names through the command, formatting and output included, against a plain loop
    # drawing as many at batch 1024 (with no output): once each, these take seconds
    script = Path(sys.executable).with_name("mgpt-generate")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "mgpt.runtime.cli"]
    command += ["--model", path] if args.model else []  # the shipped model by default
    million = command + ["-n", "1000000", "--format", "names", "--seed", "1"]
    t0 = time.perf_counter()
    plain_loop(session, info, 1_000_000, 1024)
    plain_s = time.perf_counter() - t0
    command_s = command_seconds(million)
    rows.append(("`mgpt-generate -n 1000000 --format names > /dev/null` (plain: sample 1 M at 1024), s",
                 f"{plain_s:.2f}", f"{command_s:.2f}", f"{plain_s / command_s:.2f}× faster", "", "", "", "≤ 5.5 s"))

    # start-up: the whole command for 20 samples against importing onnxruntime alone
    command += ["--seed", "1"]
    bare = [sys.executable, "-c", "import onnxruntime"]
    command_seconds(command), command_seconds(bare)  # warm-up: bytecode caches, file cache
    bare_s, command_s = [], []
    for _ in range(max(args.repeats, 11)):
        bare_s.append(command_seconds(bare))
        command_s.append(command_seconds(command))
    b, c = statistics.median(bare_s), statistics.median(command_s)
    rows.append(("`mgpt-generate` (20 samples) vs `python -c \"import onnxruntime\"`, ms", f"{b * 1e3:.0f}",
                 f"{c * 1e3:.0f}", f"{c / b:.2f}×", "", "", "", "≤ 1.3×"))

    print(f"model {path}: {info.vocab_size} tokens, block {info.block_size}, temperature {TEMPERATURE}, "
          f"median of {args.repeats}; onnxruntime {ort.__version__}, numpy {np.__version__}\n")
    print("| work | plain loop | mgpt | mgpt / plain | plain, per CPU s | mgpt, per CPU s | mgpt / plain, CPU | target |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if baseline_rows:
        print(f"\nmgpt on {path} against mgpt on {args.baseline} (--baseline), alternating:\n")
        print("| work | baseline | mgpt | mgpt / baseline | baseline, per CPU s | mgpt, per CPU s | mgpt / baseline, CPU |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for row in baseline_rows:
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
