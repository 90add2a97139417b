"""mgpt-export (issue 3): the ONNX step graph against the NumPy reference step, its I/O and metadata
contract (DESIGN.md, "The ONNX step graph"), its readability, and the command's handling of bad input.

Checkpoints are made here from random weights (fixed seeds); tolerances are absolute, 1e-4.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner

from mgpt.export import DEFAULT_OPSET, MIN_OPSET, ExportError, build_model, export, supported_opsets, verify
from mgpt.export import exporter, small
from mgpt.export.verification import session_options
from mgpt.export.cli import export_command
from mgpt.runtime import __version__
from mgpt.runtime.metadata import LOGITS, POSITION, TOKEN, ModelInfo, past_names, present_names
from mgpt.runtime.vocab import Vocab
from mgpt.train import checkpoint as ckpt_io
from mgpt.train.checkpoint import Checkpoint
from mgpt.train.config import GPTConfig
from mgpt.train.files import atomic_write
from mgpt.train.model import init_params, views

LETTERS = "abcdefghijklmnopqrstuvwxyz"
NON_ASCII = "".join(sorted("éßøΩж語日本🙂\u200b'-"))  # accents, CJK, an emoji beyond the BMP, a zero-width space
TRAINING = {"data": "names.txt", "seed": 7, "steps": 500, "val_loss": 2.31, "note": "ünïcode"}

# name -> (characters, GPTConfig fields other than vocab_size): the configurations of the issue
CONFIGS = {
    "default": (LETTERS, {}),
    "2-layers": (LETTERS, {"n_layer": 2}),
    "embd32-8-heads": (LETTERS, {"n_embd": 32, "n_head": 8}),
    "block16": (LETTERS, {"block_size": 16}),
    "non-ascii": (NON_ASCII, {"n_head": 2}),
}
LEVELS = list(ort.GraphOptimizationLevel.__members__.values())
TOLERANCE = 1e-4


def make_checkpoint(name: str = "default", seed: int = 0) -> Checkpoint:
    chars, shape = CONFIGS[name]
    config = GPTConfig(len(chars) + 1, **shape)
    return Checkpoint(config, Vocab(tuple(chars)), views(init_params(config, seed), config), dict(TRAINING))


@functools.cache
def model_for(name: str, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    return build_model(make_checkpoint(name), opset)


# ----------------------------------------------------------------------------- the computation

@pytest.mark.parametrize("level", LEVELS, ids=lambda level: level.name)
@pytest.mark.parametrize("name", CONFIGS)
def test_matches_the_numpy_step_over_a_full_rollout(name, level):
    error = verify(model_for(name), make_checkpoint(name), batch=3, level=level)
    assert error <= TOLERANCE


@pytest.mark.parametrize("batch", [0, 1, 2, 64])
def test_any_batch_size(batch):
    assert verify(model_for("default"), make_checkpoint(), batch=batch) <= TOLERANCE


@pytest.mark.parametrize("shape", [dict(n_embd=1, n_head=1, block_size=1), dict(n_embd=8, n_head=8),
                                   dict(n_layer=3, n_embd=48, n_head=3, block_size=32)], ids=str)
def test_other_shapes_the_trainer_accepts(shape):
    config = GPTConfig(3, **shape)
    ckpt = Checkpoint(config, Vocab(("a", "b")), views(init_params(config, 1), config))
    assert verify(build_model(ckpt), ckpt) <= TOLERANCE


def test_a_graph_for_another_config_is_an_export_error():
    with pytest.raises(ExportError, match="cannot run the graph"):
        verify(model_for("default"), make_checkpoint("2-layers"))


def test_supported_opsets_span_onnx_and_onnxruntime():
    supported = supported_opsets()
    assert supported.start == MIN_OPSET == 11
    assert DEFAULT_OPSET in supported
    assert supported.stop - 1 <= onnx.defs.onnx_opset_version()


@pytest.mark.parametrize("opset", sorted({MIN_OPSET, 12, 13, 17, 18, supported_opsets()[-1]}))
def test_every_kind_of_opset(opset):
    # 11-12: axes as attributes; 13-17: ReduceSum/Unsqueeze take them as inputs; 18+: ReduceMean too
    model = model_for("2-layers", opset)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", opset)]
    assert verify(model, make_checkpoint("2-layers")) <= TOLERANCE


def test_a_wrong_graph_fails_verification():
    model = model_for("default").__deepcopy__()
    lm_head = next(t for t in model.graph.initializer if t.name == "lm_head")
    lm_head.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(lm_head) * 1.01, "lm_head"))
    with pytest.raises(ExportError, match="verification failed"):
        verify(model, make_checkpoint())


# ----------------------------------------------------------------------------- the contract

@pytest.mark.parametrize("name", CONFIGS)
def test_full_check_passes(name):
    onnx.checker.check_model(model_for(name), full_check=True)


def _io(values) -> list[tuple[str, int, list]]:
    return [(v.name, v.type.tensor_type.elem_type, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim])
            for v in values]


@pytest.mark.parametrize("name", ["default", "2-layers"])
def test_inputs_and_outputs_as_design_states(name):
    model, config = model_for(name), make_checkpoint(name).config
    H, D = config.n_head, config.head_dim
    inputs, outputs = [(TOKEN, onnx.TensorProto.INT64, ["batch"]), (POSITION, onnx.TensorProto.INT64, [])], \
        [(LOGITS, onnx.TensorProto.FLOAT, ["batch", config.vocab_size])]
    for i in range(config.n_layer):
        inputs += [(n, onnx.TensorProto.FLOAT, ["batch", H, "past_len", D]) for n in past_names(i)]
        outputs += [(n, onnx.TensorProto.FLOAT, ["batch", H, "past_len + 1", D]) for n in present_names(i)]
    assert _io(model.graph.input) == inputs
    assert _io(model.graph.output) == outputs
    assert model.graph.input[1].type.tensor_type.HasField("shape")  # a scalar, not an unknown shape


@pytest.mark.parametrize("name", CONFIGS)
def test_weights_are_float32_initializers_under_the_checkpoint_names(name):
    ckpt, model = make_checkpoint(name), model_for(name)
    found = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    for key, array in ckpt.params.items():
        assert found[key].dtype == np.float32 and found[key].shape == array.shape  # (out, in), untransposed
        np.testing.assert_array_equal(found[key], array.astype(np.float32))


@pytest.mark.parametrize("name", ["default", "non-ascii"])
def test_metadata_round_trips_and_describes_the_model(name):
    ckpt, model = make_checkpoint(name), model_for(name)
    props = {p.key: p.value for p in model.metadata_props}
    info = ModelInfo.from_props(props)
    config = ckpt.config
    assert info.vocab == ckpt.vocab and info.bos == len(CONFIGS[name][0])
    assert (info.block_size, info.n_layer, info.n_head, info.head_dim, info.n_embd) == \
        (config.block_size, config.n_layer, config.n_head, config.head_dim, config.n_embd)
    assert info.training == TRAINING
    assert props == ModelInfo(ckpt.vocab, config.block_size, config.n_layer, config.n_head, config.head_dim,
                              TRAINING, f"mgpt {__version__}").to_props()
    assert (model.producer_name, model.producer_version) == ("mgpt", __version__)
    assert TOKEN in model.doc_string and "past_key_values" in model.doc_string


def test_a_record_that_is_not_finite_is_written_as_standard_json():
    """Python's json writes NaN and Infinity, which JSON.parse (so the JavaScript runtime) refuses:
    a run of 0 steps has a loss of NaN, and its model must load in both."""
    nan, inf = float("nan"), float("inf")
    ckpt = make_checkpoint()
    record = {"steps": 0, "train_loss": nan, "history": [inf, 1.5, (-inf, 2)], "eval": {"val_loss": nan}}
    model = build_model(Checkpoint(ckpt.config, ckpt.vocab, ckpt.params, record))
    text = {p.key: p.value for p in model.metadata_props}["training"]
    standard = {"steps": 0, "train_loss": None, "history": [None, 1.5, [None, 2]], "eval": {"val_loss": None}}

    def refuse(constant):
        raise AssertionError(f"{constant} written in {text}")

    assert json.loads(text, parse_constant=refuse) == standard
    assert ModelInfo.from_props({p.key: p.value for p in model.metadata_props}).training == standard


# ----------------------------------------------------------------------------- readability

@pytest.mark.parametrize("name", ["default", "2-layers"])
def test_node_names_are_hierarchical_and_unique(name):
    model = model_for(name)
    names = [n.name for n in model.graph.node]
    assert len(set(names)) == len(names)
    graph_outputs = {o.name for o in model.graph.output}
    for n in model.graph.node:
        assert n.name.startswith("/") and n.name.endswith("/" + n.op_type), n.name
        assert list(n.output) in ([f"{n.name}/output_0"], [o for o in n.output if o in graph_outputs]), n.name
    assert "/layers.0/attn/o_proj/Gemm" in names and "/lm_head/Gemm" in names


@pytest.mark.parametrize("name", ["default", "2-layers"])
def test_no_dead_nodes_and_no_unused_initializers(name):
    model = model_for(name)
    producer = {o: n for n in model.graph.node for o in n.output}
    live, todo = set(), [o.name for o in model.graph.output]
    while todo:
        n = producer.get(todo.pop())
        if n is not None and n.name not in live:
            live.add(n.name)
            todo += list(n.input)
    assert live == {n.name for n in model.graph.node}
    used = {i for n in model.graph.node for i in n.input}
    assert {t.name for t in model.graph.initializer} <= used
    assert {i.name for i in model.graph.input} <= used


def test_no_duplicated_constants():
    model = model_for("2-layers")
    tensors = [onnx.numpy_helper.to_array(t) for t in model.graph.initializer]
    keys = Counter((a.dtype.str, a.shape, a.tobytes()) for a in tensors)
    assert max(keys.values()) == 1
    assert not any(n.op_type == "Constant" for n in model.graph.node)


def test_default_model_is_small_and_runs_few_kernels(tmp_path):
    # onnxruntime folds the graph's constant parts (the (position, token) table, repeated weights)
    # at load: what a step runs is what a batch-1 step pays for, ~0.6 us a kernel
    model = model_for("default")
    assert len(model.SerializeToString()) < 50_000
    options = session_options()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    ops = Counter(n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node)
    # the general graph's: 24; the cut to the cache's length, read from its shape, takes two
    assert sum(ops.values()) <= 26, ops
    assert ops["Transpose"] == ops["Expand"] == 0, ops  # no weight is reshaped at run time


@pytest.mark.parametrize("name", ["default", "2-layers"])
def test_the_general_builders_match_the_numpy_step_too(name):
    # the graph takes the small-model builders for these shapes; larger models take the general ones
    assert small.is_small(make_checkpoint(name).config)
    model = build_model(make_checkpoint(name), general=True)
    assert not any("/table" in n.name for n in model.graph.node)
    assert verify(model, make_checkpoint(name), batch=3) <= TOLERANCE


# ----------------------------------------------------------------------------- export() and mgpt-export

@pytest.fixture
def ckpt_path(tmp_path) -> Path:
    path = tmp_path / "ckpt.npz"
    ckpt_io.save(path, make_checkpoint())
    return path


def run(*args):
    result = CliRunner().invoke(export_command, [str(a) for a in args])
    return result, result.output


def test_export_writes_a_model_onnxruntime_runs(ckpt_path, tmp_path):
    out = tmp_path / "model.onnx"
    summary = export(ckpt_path, out)
    assert summary.max_error is not None and summary.max_error <= TOLERANCE
    assert summary.file_size == out.stat().st_size < 50_000
    model = onnx.load(out)
    assert (summary.opset, summary.num_params, summary.num_nodes) == (DEFAULT_OPSET, 4064, len(model.graph.node))
    assert ModelInfo.from_props({p.key: p.value for p in model.metadata_props}).vocab.chars == tuple(LETTERS)
    assert verify(model, ckpt_io.load(ckpt_path)) <= TOLERANCE


def test_the_command_reads_the_trainers_default_checkpoint_and_prints_a_summary(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ckpt_io.save(ckpt_io.DEFAULT_PATH, make_checkpoint())
    result, output = run("model.onnx")
    assert result.exit_code == 0, output
    assert "wrote model.onnx" in output and "opset 17" in output and "4,064 parameters" in output
    assert "past_key_values.0.key" in output and "[batch, 4, past_len + 1, 4]" in output
    assert "verification: passed" in output
    assert (tmp_path / "model.onnx").stat().st_size < 50_000


def test_no_verify_skips_verification(ckpt_path, tmp_path, monkeypatch):
    monkeypatch.setattr(exporter, "verify_model", lambda *a: pytest.fail("verified anyway"))
    result, output = run(tmp_path / "m.onnx", "--checkpoint", ckpt_path, "--no-verify", "--opset", MIN_OPSET)
    assert result.exit_code == 0 and "verification: skipped" in output


def _truncated(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _not_mgpt(path: Path) -> Path:
    np.savez(path, wte=np.zeros((3, 4)))
    return path


def _disagreeing(path: Path) -> Path:
    ckpt = make_checkpoint()
    ckpt.params["layer0.mlp_fc1"] = np.zeros((8, 16))  # the config says (64, 16)
    ckpt_io.save(path, ckpt)
    return path


BAD_CHECKPOINTS = {
    "missing": (lambda p: p.with_name("nothere.npz"), "does not exist"),
    "truncated": (_truncated, "not a readable .npz"),
    "text": (lambda p: (p.write_text("hello"), p)[1], "not a readable .npz"),
    "not-mgpt": (_not_mgpt, "not an mgpt checkpoint"),
    "disagreeing": (_disagreeing, "mlp_fc1 has shape (8, 16)"),
}


def assert_one_line_error(result, output, says: str):
    assert result.exit_code != 0
    assert "Traceback" not in output
    assert output.count("\n") == 1 and output.startswith("Error: "), output
    assert says in output


@pytest.mark.parametrize("case", BAD_CHECKPOINTS)
def test_bad_checkpoints(case, ckpt_path, tmp_path):
    make, says = BAD_CHECKPOINTS[case]
    result, output = run(tmp_path / "m.onnx", "--checkpoint", make(ckpt_path))
    assert_one_line_error(result, output, says)
    assert not (tmp_path / "m.onnx").exists()


def test_bad_outputs(ckpt_path, tmp_path, monkeypatch):
    result, output = run(tmp_path / "nodir" / "m.onnx", "--checkpoint", ckpt_path)
    assert_one_line_error(result, output, "does not exist")
    result, output = run(tmp_path, "--checkpoint", ckpt_path)
    assert_one_line_error(result, output, "is a directory")

    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    access = os.access  # root may write anywhere, so the lock is also simulated
    monkeypatch.setattr(os, "access", lambda p, mode: access(p, mode) and Path(p) != locked)
    result, output = run(locked / "m.onnx", "--checkpoint", ckpt_path)
    assert_one_line_error(result, output, "is not writable")
    assert not list(locked.iterdir())


@pytest.mark.parametrize("opset", [1, MIN_OPSET - 1, onnx.defs.onnx_opset_version() + 1, 999])
def test_unsupported_opsets(opset, ckpt_path, tmp_path):
    result, output = run(tmp_path / "m.onnx", "--checkpoint", ckpt_path, "--opset", opset)
    assert_one_line_error(result, output, f"choose one from {MIN_OPSET} to {supported_opsets()[-1]}")


def _wrong_graph(checkpoint, opset):
    model = build_model(checkpoint, opset)
    for t in model.graph.initializer:
        if t.name == "wpe":
            t.CopyFrom(onnx.numpy_helper.from_array(np.zeros_like(onnx.numpy_helper.to_array(t)), "wpe"))
    return model


@pytest.mark.parametrize("failure", ["verification", "opset", "checkpoint", "write"])
def test_a_failed_export_leaves_a_good_file_untouched(failure, ckpt_path, tmp_path, monkeypatch):
    out = tmp_path / "model.onnx"
    assert run(out, "--checkpoint", ckpt_path)[0].exit_code == 0
    good = out.read_bytes()
    args = [out, "--checkpoint", ckpt_path]
    if failure == "verification":
        monkeypatch.setattr(exporter, "build_model", _wrong_graph)
    elif failure == "opset":
        args += ["--opset", 999]
    elif failure == "checkpoint":
        _truncated(ckpt_path)
    else:
        monkeypatch.setattr(exporter, "atomic_write", _disk_full_write)
    result, output = run(*args)
    assert_one_line_error(result, output, {"verification": "verification failed", "opset": "not supported",
                                           "checkpoint": "not a readable", "write": "No space left"}[failure])
    assert out.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz", "model.onnx"]  # no temporary left


@contextlib.contextmanager
def _disk_full_write(path, mode="wb"):
    """atomic_write whose write fails half-way, as on a full disk."""
    class Full:
        def write(self, data):
            f.write(data[: len(data) // 2])
            raise OSError(28, "No space left on device")

    with atomic_write(path, mode) as f:
        yield Full()
