"""One file, every ONNX engine (issue 17): the step graph loads and runs in onnxruntime, OpenVINO
(CPU, float32), tract and onnx's ReferenceEvaluator, with logits and every present key and value
within 1e-5 (plus 1e-6 of the tensor's largest value: ``engines.ATOL``, ``RTOL``) of the NumPy
reference step over a full rollout (every position, each engine feeding back its own cache) at
batch 1 and batch 7; and mgpt's sampling rule driven over each engine's logits gives
``mgpt.runtime``'s seeded samples.

The models: the shipped files themselves, and fresh exports of untrained checkpoints in both graph
forms (the small-model graph and the general one), a non-ASCII vocabulary, 1 and 2 layers, 1, 2
and 4 heads, blocks of 8 and 32, at the default opset, and the default shape at every opset the
exporter accepts. The engines come with the test extra; an engine is skipped only where it
publishes no wheel for the platform (``engines.Engine.missing``).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import onnx
import pytest

import engines as E
import mgpt.models
from mgpt.export import DEFAULT_OPSET, build_model, small, supported_opsets
from mgpt.runtime import Generator, shipped_model_path
from mgpt.train import checkpoint as ckpt_io
from mgpt.train.checkpoint import Checkpoint

BATCHES = (1, 7)


def shipped(name: str) -> tuple[Path, Path]:
    onnx_path = shipped_model_path(name)
    if not (onnx_path.exists() and onnx_path.with_suffix(".npz").exists()):
        pytest.skip(f"the {name} model is not in this tree ({onnx_path.parent}); the release ships it")
    return onnx_path, onnx_path.with_suffix(".npz")


def cases() -> list:
    """(model id, how to make it): every file the matrix runs."""
    out = [pytest.param(("shipped", name, False, None), id=f"shipped-{name}") for name in mgpt.models.NAMES]
    for name in E.FRESH:
        forms = [True] + ([False] if small.is_small(E.fresh_checkpoint(name).config) else [])
        out += [pytest.param(("fresh", name, general, DEFAULT_OPSET), id=f"{name}-{'general' if general else 'small'}")
                for general in forms]
    out += [pytest.param(("fresh", "default", general, opset), id=f"default-{'general' if general else 'small'}-opset{opset}")
            for opset in supported_opsets() if opset != DEFAULT_OPSET for general in (False, True)]
    return out


@functools.cache
def model_and_checkpoint(case: tuple) -> tuple[onnx.ModelProto, Checkpoint]:
    kind, name, general, opset = case
    if kind == "shipped":
        onnx_path, ckpt_path = shipped(name)
        return onnx.load(str(onnx_path)), ckpt_io.load(ckpt_path)
    ckpt = E.fresh_checkpoint(name)
    model = build_model(ckpt, opset, general=general)
    assert any("/table" in n.name for n in model.graph.node) == (not general)  # the form asked for
    return model, ckpt


@pytest.fixture(params=list(E.ENGINES))
def engine(request) -> E.Engine:
    engine = E.ENGINES[request.param]
    reason = engine.missing()
    if reason:
        pytest.skip(reason)
    return engine


@pytest.mark.parametrize("case", cases())
def test_every_engine_matches_the_numpy_step_over_a_full_rollout(engine, case):
    model, ckpt = model_and_checkpoint(case)
    step = engine.load(model)
    info = E.model_info(model)
    for batch in BATCHES:
        error = E.rollout_errors(step, ckpt, info, batch)
        assert error.ratio <= 1, f"{engine.name} at batch {batch}: {error} from the NumPy step"


@pytest.mark.parametrize("output", ["logits", "present.0.value"])
def test_the_rollout_comparison_can_fail(output):
    # an engine 5e-5 off in one output is out of tolerance (1e-5 + 1e-6 x the largest value, ~1e-5 here)
    model, ckpt = model_and_checkpoint(("shipped", "names", False, None))
    step = E.ENGINES["onnxruntime"].load(model)

    def off(feed):
        out = step(feed)
        out[output] = out[output] + np.float32(5e-5)
        return out

    assert E.rollout_errors(step, ckpt, E.model_info(model), 7).ratio <= 1
    assert E.rollout_errors(off, ckpt, E.model_info(model), 7).ratio > 2


def test_the_matrix_covers_both_forms_every_opset_and_the_shipped_models():
    ids = {p.id for p in cases()}
    assert {"shipped-names", "shipped-names-large", "non-ascii-small", "non-ascii-general"} <= ids
    assert {f"default-small-opset{o}" for o in supported_opsets() if o != DEFAULT_OPSET} <= ids
    assert len(supported_opsets()) >= 10  # 11 .. 28 with onnx 1.23 and onnxruntime 1.32


# ----------------------------------------------------------------------------- sampling

SAMPLES = 500  # per engine and model here; benchmarks/bench_engines.py draws 10,000 and more


@functools.cache
def generator_samples(name: str, temperature: float, seed: int) -> list[str]:
    return list(Generator(name).samples(SAMPLES, temperature, seed=seed))


@pytest.mark.parametrize("name", E.unlabeled(mgpt.models.NAMES))
def test_mgpts_sampling_rule_over_each_engines_logits_gives_mgpts_samples(engine, name):
    onnx_path, _ = shipped(name)
    model = onnx.load(str(onnx_path))
    want = generator_samples(name, 1.0, 7)
    got = E.samples(engine.load(model), E.model_info(model), SAMPLES, 1.0, seed=7)
    differ = [(i, a, b) for i, (a, b) in enumerate(zip(got, want)) if a != b]
    assert len(got) == len(want) == SAMPLES and not differ, f"{engine.name}: {len(differ)} of {SAMPLES} differ: {differ[:5]}"


def test_the_sampling_loop_can_tell_engines_apart():
    # the comparison above is not vacuous: logits changed by 1e-2 change some of 500 samples, not most
    onnx_path, _ = shipped("names")
    model = onnx.load(str(onnx_path))
    step = E.ENGINES["onnxruntime"].load(model)

    def nudged(feed):
        out = step(feed)
        out["logits"] = out["logits"] + np.float32(1e-2) * (np.arange(out["logits"].shape[1]) % 2)
        return out

    got = E.samples(nudged, E.model_info(model), SAMPLES, 1.0, seed=7)
    assert 0 < sum(a != b for a, b in zip(got, generator_samples("names", 1.0, 7))) < SAMPLES // 5


# ----------------------------------------------------------------------------- docs/engines.md

DOC = Path(__file__).resolve().parents[1] / "docs" / "engines.md"


def doc_blocks() -> dict[str, str]:
    """The page's Python blocks, by the engine its heading names ("the loop" for the shared one)."""
    blocks, heading = {}, None
    for part in re.split(r"^(#+ .*)$", DOC.read_text(encoding="utf-8"), flags=re.M):
        if part.startswith("#"):
            heading = part.lstrip("# ").strip()
        else:
            for code in re.findall(r"```python\n(.*?)```", part, flags=re.S):
                blocks[heading] = blocks.get(heading, "") + code
    return blocks


ENGINE_HEADINGS = {"onnxruntime": "onnxruntime", "onnx.reference": "onnx.reference", "openvino": "OpenVINO",
                   "tract": "tract"}


def test_the_page_has_the_loop_and_an_example_for_every_engine():
    blocks = doc_blocks()
    assert "The loop" in blocks and set(ENGINE_HEADINGS.values()) <= set(blocks), list(blocks)
    for heading in ENGINE_HEADINGS.values():
        assert len(blocks[heading].strip().splitlines()) <= 10, heading  # a ten-line example


def test_each_engines_example_on_the_page_runs_and_draws_mgpts_samples(engine, capsys):
    blocks = doc_blocks()
    namespace: dict = {}
    exec(compile(blocks["The loop"], f"{DOC}: the loop", "exec"), namespace)
    exec(compile(blocks[ENGINE_HEADINGS[engine.name]], f"{DOC}: {engine.name}", "exec"), namespace)
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1] == str(list(Generator("names").samples(5, 0.5, seed=1)))
