"""How closely each ONNX engine follows mgpt on the shipped models (issue 17; docs/engines.md).

    python benchmarks/bench_engines.py [--samples 10000] [--rollouts 50]

For each shipped model and each engine (onnxruntime, onnx.reference, OpenVINO on the CPU in
float32, tract; the adapters of tests/engines.py):

- the largest |engine - NumPy reference| over the logits, and over every present key and value, in
  ``--rollouts`` full rollouts of random tokens at batch 7 and as many at batch 1 (each side feeding
  back its own cache; the reference is ``mgpt.train.model.step`` in float64), and the largest
  difference as a multiple of the tests' tolerance (1e-5 plus 1e-6 of the tensor's largest value);
- sample agreement: ``--samples`` seeded samples (seed 1) at temperatures 0.5 and 1.0, drawn with
  mgpt's rule (``mgpt.runtime.sampling``) over the engine's logits by the loop of tests/engines.py,
  against ``mgpt.runtime.Generator``'s samples of the same seed.

Prints a Markdown table. Accuracy, not speed: the timings only say what the run cost.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import engines as E  # noqa: E402
import mgpt.models  # noqa: E402
from mgpt.runtime import Generator, shipped_model_path  # noqa: E402
from mgpt.train import checkpoint as ckpt_io  # noqa: E402

TEMPERATURES = (0.5, 1.0)
SEED = 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000, help="seeded samples per engine, model and temperature")
    parser.add_argument("--rollouts", type=int, default=50, help="random rollouts per batch size (1 and 7)")
    args = parser.parse_args()

    rows = []
    for name in E.unlabeled(mgpt.models.NAMES):
        path = shipped_model_path(name)
        model, ckpt = onnx.load(str(path)), ckpt_io.load(path.with_suffix(".npz"))
        info = E.model_info(model)
        want = {t: list(Generator(name).samples(args.samples, t, seed=SEED)) for t in TEMPERATURES}
        for engine in E.ENGINES.values():
            reason = engine.missing()
            if reason:
                rows.append((name, engine.name, "-", reason, "", "", "", "", ""))
                continue
            t0 = time.perf_counter()
            step = engine.load(model)
            errors = [E.rollout_errors(step, ckpt, info, batch, seed)
                      for batch in (1, 7) for seed in range(args.rollouts)]
            logits, presents, ratio = (max(getattr(e, k) for e in errors) for k in ("logits", "presents", "ratio"))
            agree = []
            for t in TEMPERATURES:
                got = E.samples(step, info, args.samples, t, SEED)
                same = sum(a == b for a, b in zip(got, want[t]))
                agree.append(f"{same:,} / {len(want[t]):,}")
            rows.append((name, engine.name, engine.version(), f"{logits:.3g}", f"{presents:.3g}", f"{ratio:.2f}", *agree,
                         f"{time.perf_counter() - t0:.0f} s"))
            print(f"{name} {engine.name}: done", file=sys.stderr, flush=True)

    print(f"{args.rollouts} rollouts of random tokens at batch 1 and as many at batch 7 per model; "
          f"{args.samples:,} samples of seed {SEED} per temperature\n")
    print("| model | engine | version | largest logit difference | largest cache difference | "
          "largest difference / tolerance | samples equal to mgpt's, T 0.5 | samples equal, T 1.0 | run time |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
