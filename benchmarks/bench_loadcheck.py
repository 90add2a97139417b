"""What the check at load costs: opening a model with ``mgpt.runtime.Generator`` with and without
the one-row rollout that every model file must pass (docs/reliability.md).

    python benchmarks/bench_loadcheck.py [--model names.onnx] [--repeats 200]

Both sides open the same file, alternating, so that load from other processes hits both alike;
each figure is the best of ``--repeats`` openings, and the ratio is the number to read.
"""

from __future__ import annotations

import argparse
import time

from mgpt.runtime import Generator, modelfile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="an mgpt .onnx file [default: the shipped model]")
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    rollout = modelfile._rollout_problem

    def open_once(check: bool) -> float:
        modelfile._rollout_problem = rollout if check else (lambda session, info: None)
        start = time.perf_counter()
        Generator(args.model)
        return time.perf_counter() - start

    Generator(args.model)  # warm the file cache and onnxruntime
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.repeats):
        for check in (True, False):
            times[check].append(open_once(check))
    modelfile._rollout_problem = rollout
    with_check, without = min(times[True]), min(times[False])
    print(f"| opening the model | with the check at load | without | ratio |\n|---|---:|---:|---:|\n"
          f"| best of {args.repeats} | {with_check * 1e3:.2f} ms | {without * 1e3:.2f} ms | {with_check / without:.2f}× |")


if __name__ == "__main__":
    main()
