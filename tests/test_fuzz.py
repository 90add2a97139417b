"""Fuzzing the two file formats: a few hundred byte-mutated and structurally mutated model files and
checkpoints (fixed seed), each opened in a worker process with a memory cap and the whole run under
a time cap. Every file must be refused with the documented error (ModelError, CheckpointError) or
load and run correctly; no other exception, no crash, no hang, no memory blow-up."""

from __future__ import annotations

import io
import json
import multiprocessing
import random
import resource
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

import mgpt.models

SHIPPED = Path(mgpt.models.__file__).parent
SEED = 8
MEMORY_CAP = 3 << 30  # address space per worker: onnxruntime reserves some; a blow-up would exceed it
TIME_CAP = 60.0  # seconds for the whole run: a hang fails the test instead of blocking it


# ----------------------------------------------------------------------------- mutations

def byte_mutations(data: bytes, rng: random.Random, count: int) -> list[bytes]:
    """Flipped, overwritten, inserted and deleted bytes, and truncations."""
    out = []
    for _ in range(count):
        b = bytearray(data)
        kind = rng.choice(["flip", "overwrite", "insert", "delete", "truncate"])
        for _ in range(rng.randint(1, 6)):
            i = rng.randrange(len(b))
            if kind == "flip":
                b[i] ^= 1 << rng.randrange(8)
            elif kind == "overwrite":
                b[i] = rng.randrange(256)
            elif kind == "insert":
                b[i:i] = bytes([rng.randrange(256)])
            elif kind == "delete":
                del b[i]
        if kind == "truncate":
            del b[rng.randrange(len(b)):]
        out.append(bytes(b))
    return out


WEIRD_VALUES = ["", "0", "-1", "1e9", str(10**9), "8.5", "NaN", "[]", "{}", "null", '["a"]', '["b", "a"]',
                "\u00e9", "[" * 50, '{"a": 1, "a": 2}', "28", "2", "1", "65536"]


def model_mutations(data: bytes, rng: random.Random, count: int) -> list[bytes]:
    """Metadata values replaced or removed, initializers resized or poisoned, node inputs rewired."""
    out = []
    for _ in range(count):
        model = onnx.load_from_string(data)
        kind = rng.choice(["prop", "prop", "drop-prop", "weights", "shape", "rewire", "op"])
        if kind in ("prop", "drop-prop"):
            i = rng.randrange(len(model.metadata_props))
            if kind == "prop":
                model.metadata_props[i].value = rng.choice(WEIRD_VALUES)
            else:
                del model.metadata_props[i]
        elif kind in ("weights", "shape"):
            i = rng.randrange(len(model.graph.initializer))
            t = model.graph.initializer[i]
            a = numpy_helper.to_array(t).copy()
            if kind == "weights" and a.size and a.dtype.kind == "f":
                a.flat[rng.randrange(a.size)] = rng.choice([np.nan, np.inf, -np.inf, 1e30, 0.0])
            elif a.ndim:
                a = np.resize(a, tuple(max(1, d + rng.choice([-1, 1, 5])) for d in a.shape))
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(a, t.name))
        elif kind == "rewire":
            node = rng.choice(model.graph.node)
            if node.input:
                other = rng.choice(model.graph.node)
                node.input[rng.randrange(len(node.input))] = rng.choice(list(other.output) + list(other.input))
        else:
            node = rng.choice(model.graph.node)
            node.op_type = rng.choice(["Add", "Mul", "Identity", "Relu", "Sub"])
        out.append(model.SerializeToString())
    return out


def checkpoint_mutations(data: bytes, rng: random.Random, count: int) -> list[bytes]:
    """Arrays reshaped, retyped or poisoned, and meta fields replaced, in a well-formed .npz."""
    with np.load(io.BytesIO(data)) as npz:
        base = {k: npz[k] for k in npz.files}
    out = []
    for _ in range(count):
        arrays = dict(base)
        meta = json.loads(str(arrays["meta"]))
        kind = rng.choice(["meta", "config", "shape", "dtype", "poison", "drop"])
        name = rng.choice([k for k in arrays if k not in ("meta", "novelty")])  # the weights (2-D floats)
        if kind == "meta":
            meta[rng.choice(list(meta))] = json.loads(rng.choice(["0", "null", "[]", "{}", '"x"', "2", "-5"]))
        elif kind == "config":
            meta["config"][rng.choice(list(meta["config"]))] = rng.choice([0, -1, 2, 10**9, 1.5, True, "8", None])
        elif kind == "shape":
            arrays[name] = np.resize(arrays[name], (arrays[name].shape[0] + rng.choice([-1, 1]), arrays[name].shape[1]))
        elif kind == "dtype":
            arrays[name] = arrays[name].astype(rng.choice([np.float32, np.int32, np.complex64, np.bool_]))
        elif kind == "poison":
            a = arrays[name].copy()
            a.flat[rng.randrange(a.size)] = rng.choice([np.nan, np.inf, 1e30, 1e300])
            arrays[name] = a
        else:
            del arrays[name]
        arrays["meta"] = np.array(json.dumps(meta))
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        out.append(buffer.getvalue())
    return out


# ----------------------------------------------------------------------------- the workers

def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def _open_model(path: str) -> str:
    """'refused' (ModelError), 'ok' (loaded, and it samples and scores as a model must), or what
    else happened."""
    from mgpt.runtime import Generator, ModelError

    try:
        g = Generator(path, threads=1)
    except ModelError:
        return "refused"
    except BaseException as e:  # anything else is what the test reports
        return f"load raised {type(e).__name__}: {e}"
    try:
        samples = g.generate(8, temperature=1.0, seed=1)
        assert all(isinstance(s, str) and len(s) <= g.block_size and not g.vocab.missing(s) for s in samples)
        return "ok"
    except ModelError:  # onnxruntime failing later, on a token or position the check did not take
        return "refused"
    except BaseException as e:
        return f"sampling raised {type(e).__name__}: {e}"


def _open_checkpoint(path: str) -> str:
    from mgpt.export import ExportError, build_model, verify
    from mgpt.export.exporter import check_weights
    from mgpt.train import CheckpointError, load

    try:
        ckpt = load(path)
        check_weights(ckpt, path)
        verify(build_model(ckpt), ckpt, batch=2)
        return "ok"
    except (CheckpointError, ExportError):
        return "refused"
    except BaseException as e:
        return f"raised {type(e).__name__}: {e}"


def _run_many(job: tuple[str, list[str]]) -> list[tuple[str, str]]:
    opener = _open_model if job[0] == "model" else _open_checkpoint
    return [(path, opener(path)) for path in job[1]]


def test_mutated_files_are_refused_or_run(tmp_path):
    rng = random.Random(SEED)
    model, ckpt = (SHIPPED / "names.onnx").read_bytes(), (SHIPPED / "names.npz").read_bytes()
    files = {"model": byte_mutations(model, rng, 200) + model_mutations(model, rng, 150),
             "checkpoint": byte_mutations(ckpt, rng, 80) + checkpoint_mutations(ckpt, rng, 80)}
    jobs = []
    for kind, blobs in files.items():
        paths = []
        for i, blob in enumerate(blobs):
            path = tmp_path / f"{kind}-{i}"
            path.write_bytes(blob)
            paths.append(str(path))
        jobs += [(kind, paths[i : i + 15]) for i in range(0, len(paths), 15)]
    # forkserver, not fork: this process may hold onnxruntime's threads, whose locks a fork would copy
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("forkserver"), initializer=_cap_memory) as pool:
        results = [r for batch in pool.map(_run_many, jobs, timeout=TIME_CAP) for r in batch]
    outcomes = {}
    for path, outcome in results:
        outcomes.setdefault(outcome, []).append(Path(path).name)
    assert set(outcomes) <= {"ok", "refused"}, {k: v[:3] for k, v in outcomes.items() if k not in ("ok", "refused")}
    assert len(results) == sum(len(b) for b in files.values()) >= 500
    assert len(outcomes.get("refused", [])) > 100 and len(outcomes.get("ok", [])) > 10  # both kinds were reached
