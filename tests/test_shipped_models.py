"""The models shipped in mgpt.models: each .onnx is its .npz exported, each records the held-out loss
it really has, and each can be picked by name (Generator("names-large"), mgpt-generate --model)."""

import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner

import mgpt.models
from mgpt.runtime import Generator, ModelError, shipped_model_path
from mgpt.runtime.cli import generate_command
from mgpt.train import checkpoint as ckpt_io
from mgpt.train import default_data_path, evaluate, read_documents
from mgpt.train.data import held_out, read_corpus, split
from mgpt.train.trainer import mean_nll


def shipped(name):
    onnx_path = shipped_model_path(name)
    ckpt_path = onnx_path.with_suffix(".npz")
    if not (onnx_path.exists() and ckpt_path.exists()):
        pytest.skip(f"the {name} model is not in this tree ({onnx_path.parent}); the release ships it")
    return onnx_path, ckpt_path


@pytest.mark.parametrize("name", mgpt.models.NAMES)
def test_each_shipped_checkpoint_re_exports_to_its_shipped_onnx(name):
    onnx_path, ckpt_path = shipped(name)
    from mgpt.export import build_model

    rebuilt = ort.InferenceSession(build_model(ckpt_io.load(ckpt_path)).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    model = Generator(name)
    assert model.path == onnx_path
    rng = np.random.default_rng(0)
    B, H, D = 16, model.info.n_head, model.info.head_dim
    for past in (0, 3, model.block_size - 1):
        feed = {"token": rng.integers(0, model.vocab.size, B), "position": np.array(past, np.int64)}
        for i in range(model.info.n_layer):
            for key in (f"past_key_values.{i}.key", f"past_key_values.{i}.value"):
                feed[key] = rng.normal(size=(B, H, past, D)).astype(np.float32)
        ours = rebuilt.run(["logits"], feed)[0]
        theirs = model._runner.session.run(["logits"], feed)[0]
        # float32 kernels of two sessions: a few ulps of the largest logit (another model is off by ~1)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6 * max(1.0, np.abs(theirs).max()))


@pytest.mark.parametrize("name", mgpt.models.NAMES)
def test_each_shipped_model_has_the_held_out_loss_it_records(name):
    _, ckpt_path = shipped(name)
    ckpt = ckpt_io.load(ckpt_path)
    if ckpt.vocab.labels:  # names-era: its labeled data, in the repository (scripts/make_names_era.py)
        data = Path(__file__).resolve().parents[1] / ckpt.training["data"]
        corpus = read_corpus(data, labeled=True)
        held = held_out(len(corpus), ckpt.training["val_fraction"], ckpt.training["val_max"])
        assert len(held) == ckpt.training["held_out"] == 3000
        nll = mean_nll(ckpt.params, ckpt.config, corpus.frame(held, ckpt.vocab, ckpt.config.block_size))
    else:
        _, held = split(read_documents(default_data_path()), ckpt.training["val_fraction"])
        assert len(held) == ckpt.training["held_out"] == 974
        nll = evaluate(ckpt.params, ckpt.config, ckpt.vocab, held)
    # recorded during training, in that run's arithmetic (float32: within its documented 1e-5)
    assert nll == pytest.approx(ckpt.training["val_loss"], abs=1e-5 if ckpt.training.get("dtype") == "float32" else 1e-9)


def test_the_large_model_is_bigger_and_better_than_the_default():
    small, large = (ckpt_io.load(shipped(name)[1]) for name in ("names", "names-large"))
    assert small.config.num_params() == 4064  # microgpt's shape
    assert large.config.num_params() <= 250_000
    assert large.training["val_loss"] < small.training["val_loss"]


def test_a_file_of_that_name_wins_over_the_shipped_model(tmp_path, monkeypatch):
    onnx_path, _ = shipped("names")
    monkeypatch.chdir(tmp_path)
    shutil.copy(onnx_path, tmp_path / "names-large")  # a file here, named like a shipped model
    assert Generator("names-large").path.name == "names-large"
    with pytest.raises(ModelError, match="no shipped model named 'names-huge'"):
        shipped_model_path("names-huge")


def test_names_era_takes_a_sex_and_a_decade_and_follows_them():
    """names-era's labels are F | M and the decades 1880s..2010s; its samples under F are mostly
    names given to girls (bench_labels.py measures it on SSA counts; here a check on the
    model's own data: of the samples that are names given to one sex only in names-era.txt, the
    share of girls' names under F and under M)."""
    shipped("names-era")
    era = Generator("names-era")
    assert era.vocab.labels == (("F", "M"), tuple(f"{d}s" for d in range(1880, 2020, 10)))
    assert era.block_size - len(era.vocab.labels) >= 15  # every SSA name fits (the longest has 15 letters)
    result = CliRunner().invoke(generate_command, ["--model", "names-era", "--label", "F", "--label", "1950s",
                                                   "-n", "3", "--seed", "1", "--format", "names"])
    assert result.exit_code == 0 and result.output.splitlines() == era.generate(3, seed=1, labels=["F", "1950s"])
    named = {"F": set(), "M": set()}
    for line in (Path(__file__).resolve().parents[1] / "train" / "names-era.txt").read_text().splitlines():
        labels, name = line.split("\t")
        named[labels[0]].add(name)
    girls = {}  # the share of girls' names among the samples that are names given to one sex only
    for sex in ("F", "M"):
        texts = [t for t in era.generate(400, temperature=1.0, seed=2, labels=[sex, "1950s"])
                 if t in named["F"] ^ named["M"]]
        assert len(texts) >= 50
        girls[sex] = sum(t in named["F"] for t in texts) / len(texts)
    # measured 111/126 under F and 26/84 under M (names-large, unlabeled: 84/110 and 84/110)
    assert girls["F"] >= 0.8 and girls["M"] <= 0.4 and girls["F"] - girls["M"] >= 0.4


def test_mgpt_generate_picks_a_shipped_model_by_name():
    shipped("names-large")
    result = CliRunner().invoke(generate_command, ["--model", "names-large", "-n", "3", "--seed", "1"])
    assert result.exit_code == 0 and len(result.output.splitlines()) == 3, result.output
    missing = CliRunner().invoke(generate_command, ["--model", "names-huge"])
    assert missing.exit_code == 1 and "names-huge" in missing.output and "Traceback" not in missing.output
