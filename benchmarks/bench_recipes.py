"""Training recipes on the shipped names: what each reaches on the 974 held-out names, and in how long.

    python benchmarks/bench_recipes.py [--only NAME ...] [--keep DIR]
    python benchmarks/bench_recipes.py --shipped

Each recipe is an mgpt-train command line, run as the user would run it (one process each, the
progress quiet), then exported and sampled; the table gives the shape, parameters, options,
training time (the optimization loop with its evaluations, from the training record), steps,
held-out NLL (of the weights kept) and five samples at temperature 0.5, seed 1. Time-limited recipes
depend on the machine: run this alone (docs/models.md's figures were measured under a lock that kept
the team's other benchmarks off the machine, on its 2 cores).

--shipped describes the models in mgpt.models instead: size, held-out NLL, and sampling speed
(tokens/s at batch 1, and 20,000 samples in batches of 4,096 on the usable CPUs), medians of 3.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mgpt.models
from mgpt.export import export
from mgpt.runtime import Generator, shipped_model_path
from mgpt.train import load

# name -> (what it shows, mgpt-train arguments). The shipped models' own commands are in docs/models.md.
RECIPES = {
    "microgpt": ("microgpt's recipe, mgpt-train's defaults", []),
    # a step count that takes ~25 s here rather than --time-limit 30: more steps did not help this
    # model (docs/models.md), and a clock-driven schedule does not repeat
    "seed-30s": ("the seed's model at block 16, 5,000 steps of 512 (target <= 2.08 within 30 s)",
                 ["--block-size", "16", "--batch-size", "512", "--lr", "0.03", "--warmup", "100",
                  "--dtype", "float32", "--pack", "--eval-every", "1000", "--steps", "5000", "--blas-threads", "1"]),
    "large-120s": ("3 layers, n_embd 64, 120 s budget (target <= 1.93 with <= 250 K parameters)",
                   ["--n-layer", "3", "--n-embd", "64", "--block-size", "16", "--batch-size", "96",
                    "--lr", "0.008", "--warmup", "400", "--weight-decay", "0.1", "--dropout", "0.1",
                    "--ema", "0.999", "--dtype", "float32", "--pack", "--eval-every", "2000",
                    "--time-limit", "120"]),
}


def run(name: str, args: list[str], workdir: Path) -> dict:
    out = workdir / f"{name}.npz"
    done = subprocess.run([sys.executable, "-c", "from mgpt.train.cli import train_command; train_command()",
                           *args, "--out", str(out), "-q"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{name}: mgpt-train failed: {done.stderr.strip() or done.stdout.strip()}")
    ckpt = load(out)
    export(out, workdir / f"{name}.onnx")
    samples = Generator(workdir / f"{name}.onnx").generate(5, temperature=0.5, seed=1)
    return {"ckpt": ckpt, "samples": samples}


def tokens_per_second(generator: Generator, samples: int, batch_size: int, repeats: int = 3, labels=None) -> float:
    """Drawn tokens (characters and each sample's ending) per second, median of ``repeats``."""
    rates = []
    for seed in range(repeats):
        start = time.perf_counter()
        texts = generator.generate(samples, seed=seed, batch_size=batch_size, labels=labels)
        rates.append((sum(map(len, texts)) + samples) / (time.perf_counter() - start))
    return statistics.median(rates)


def shipped() -> None:
    print("| model | shape | parameters | .onnx | .npz | held-out NLL | steps | tokens/s, batch 1 "
          "| tokens/s, batch 4096 | samples |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name in mgpt.models.NAMES:
        path = shipped_model_path(name)
        ckpt = load(path.with_suffix(".npz"))
        c, t = ckpt.config, ckpt.training
        generator = Generator(name)
        labels = [group[0] for group in generator.vocab.labels] or None  # a labeled model: each group's first
        one = tokens_per_second(generator, 2_000, 1, labels=labels)
        many = tokens_per_second(generator, 20_000, 4096, labels=labels)
        print(f"| `{name}` | {c.n_layer}×{c.n_embd}, {c.n_head} heads, block {c.block_size} | {c.num_params():,} "
              f"| {path.stat().st_size / 1e3:,.0f} kB | {path.with_suffix('.npz').stat().st_size / 1e3:,.0f} kB "
              f"| {t['val_loss']:.3f} | {t['steps']:,} | {one:,.0f} | {many:,.0f} "
              f"| {', '.join(generator.generate(5, seed=1, labels=labels))}{f' ({chr(44).join(labels)})' if labels else ''} |",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(RECIPES), help="run these recipes only")
    parser.add_argument("--keep", type=Path, help="keep the checkpoints and .onnx files in this directory")
    parser.add_argument("--shipped", action="store_true", help="describe the shipped models instead")
    args = parser.parse_args()
    if args.shipped:
        return shipped()
    names = args.only or list(RECIPES)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or Path(tmp)
        print("| recipe | shape | parameters | options | training time | steps | held-out NLL | samples |")
        print("|---|---|---:|---|---:|---:|---:|---|")
        for name in names:
            what, recipe = RECIPES[name]
            result = run(name, recipe, workdir)
            c, t = result["ckpt"].config, result["ckpt"].training
            kept = f" (best at {t['best_step']:,})" if t.get("best_step") not in (None, t["steps"]) else ""
            print(f"| {name}: {what} | {c.n_layer}×{c.n_embd}, {c.n_head} heads, block {c.block_size} "
                  f"| {c.num_params():,} | `{' '.join(recipe) or '(none)'}` | {t['seconds']:.1f} s | "
                  f"{t['steps']:,}{kept} | {t['val_loss']:.3f} | {', '.join(result['samples'])} |", flush=True)


if __name__ == "__main__":
    main()
