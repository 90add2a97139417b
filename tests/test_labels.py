"""Labels (docs/labels.md): the vocabulary layout, the files that list them, and sampling given them.

A labeled model here has random weights whose label rows of lm_head are made large, so that its
logits favour label tokens: every runtime must still draw characters and BOS only.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

import runtime_models
from mgpt.runtime import Generator
from mgpt.runtime.metadata import MetadataError, ModelInfo
from mgpt.runtime.vocab import Vocab, VocabError
from mgpt.train.checkpoint import CheckpointError, load, save

GROUPS = runtime_models.LABEL_GROUPS
labeled_checkpoint = runtime_models.labeled_checkpoint


@pytest.fixture(scope="module")
def labeled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("labels")
    ckpt = labeled_checkpoint()
    save(folder / "labeled.npz", ckpt)
    return ckpt, runtime_models.export_to(ckpt, folder / "labeled.onnx")


def test_label_ids_follow_bos_group_by_group_in_any_order_given():
    vocab = Vocab(tuple("abc"), GROUPS)
    assert (vocab.bos, vocab.drawable, vocab.size) == (3, 4, 9)
    assert vocab.label_ids(["x y", "M"]) == vocab.label_ids(("M", "x y")) == (5, 8)
    assert Vocab(tuple("abc")).size == 4 and Vocab(tuple("abc")).label_ids(None) == ()


@pytest.mark.parametrize("labels, error, words", [
    (["F"], ValueError, "none given from 1950s | 2010s | x y"),
    (None, ValueError, "needs one label from each group"),
    (["F", "M"], ValueError, "'F' and 'M' are of one group"),
    (["F", "1990s"], ValueError, "unknown label '1990s'; this model's labels are F | M; 1950s | 2010s | x y"),
    ("F", TypeError, "labels must be a list of strings"),
    (["F", 3], TypeError, "labels must be strings"),
])
def test_wrong_labels_are_one_error_listing_the_labels(labels, error, words):
    with pytest.raises(error, match=words):
        Vocab(tuple("abc"), GROUPS).label_ids(labels)


@pytest.mark.parametrize("groups", [(("b", "a"),), (("a",), ("a",)), ((),), (("a,b",),), (("",),), ((" a",),),
                                    (("a\tb",),), (("a\nb",),)])
def test_a_bad_label_set_is_refused(groups):
    with pytest.raises(VocabError):
        Vocab(tuple("abc"), groups)


def test_labels_given_to_a_model_without_labels_are_refused():
    with pytest.raises(ValueError, match="this model has no labels"):
        Vocab(tuple("abc")).label_ids(["F"])


def test_the_checkpoint_lists_the_labels_and_an_unlabeled_one_stays_version_1(tmp_path):
    ckpt = labeled_checkpoint()
    save(tmp_path / "l.npz", ckpt)
    back = load(tmp_path / "l.npz")
    assert back.vocab == ckpt.vocab and back.vocab.labels == GROUPS
    assert back.meta()["version"] == 2 and back.meta()["labels"] == [list(g) for g in GROUPS]
    plain = runtime_models.random_checkpoint("abc")
    assert plain.meta()["version"] == 1 and "labels" not in plain.meta()


@pytest.mark.parametrize("change, words", [
    (lambda m: m.pop("labels"), "version 2 needs a 'labels' list"),
    (lambda m: m.update(version=1), "version 1 cannot have a 'labels' list"),
    (lambda m: m.update(labels=[]), "'labels' must be a non-empty list"),
    (lambda m: m.update(labels=[["M", "F"]]), "sorted"),
    (lambda m: m.update(version=3), "this mgpt reads versions 1 and 2"),
])
def test_a_checkpoint_with_bad_labels_is_refused(tmp_path, change, words):
    ckpt = labeled_checkpoint()
    save(tmp_path / "l.npz", ckpt)
    with np.load(tmp_path / "l.npz") as f:
        arrays = dict(f)
    meta = json.loads(str(arrays["meta"]))
    change(meta)
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(CheckpointError, match=words):
        load(tmp_path / "bad.npz")


def test_the_onnx_file_lists_the_labels_at_format_version_2(labeled):
    ckpt, path = labeled
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["format_version"] == "2" and json.loads(props["labels"]) == [list(g) for g in GROUPS]
    assert props["vocab_size"] == str(len("aeilnos") + 1 + 5) and props["bos"] == "7"
    plain = {p.key: p.value for p in onnx.load(str(runtime_models.export_to(
        runtime_models.random_checkpoint("abc"), path.parent / "plain.onnx"))).metadata_props}
    assert plain["format_version"] == "1" and "labels" not in plain


@pytest.mark.parametrize("change, words", [
    (lambda p: p.pop("labels"), "format version 2 needs a labels entry"),
    (lambda p: p.update(format_version="1"), "format version 1 cannot have a labels entry"),
    (lambda p: p.update(labels='[["M", "F"]]'), "sorted"),
    (lambda p: p.update(labels='["F"]'), "labels is not a non-empty JSON list of lists"),
    (lambda p: p.update(format_version="3"), "this mgpt reads versions 1 and 2"),
])
def test_metadata_with_bad_labels_is_refused(change, words):
    ckpt = labeled_checkpoint()
    props = runtime_models.mgpt_props(ckpt)
    change(props)
    with pytest.raises(MetadataError, match=words):
        ModelInfo.from_props(props)


def test_samples_never_hold_label_tokens_though_their_logits_are_largest(labeled):
    ckpt, path = labeled
    vocab = ckpt.vocab
    context = [vocab.bos, *vocab.label_ids(["F", "1950s"])]
    logits = runtime_models.reference_logits(ckpt, context)
    assert np.argmax(logits) >= vocab.drawable  # unmasked, greedy would pick a label token
    gen = Generator(path)
    greedy = gen.generate(1, temperature=0, labels=["F", "1950s"])[0]
    assert greedy[0] == vocab.chars[int(np.argmax(logits[: vocab.drawable]))]
    for text in gen.generate(300, temperature=2.0, seed=3, labels=["M", "x y"]):
        assert set(text) <= set(vocab.chars) and len(text) <= 8 - 2


def test_labels_condition_the_samples_and_seeded_samples_match_in_any_batch(labeled):
    _, path = labeled
    gen = Generator(path)
    runs = {labels: gen.generate(64, seed=11, labels=list(labels)) for labels in
            [("F", "1950s"), ("M", "2010s"), ("x y", "M")]}
    assert runs[("F", "1950s")] != runs[("M", "2010s")]  # the labels reach the model
    for labels, texts in runs.items():
        assert gen.generate(64, seed=11, labels=list(reversed(labels)), batch_size=5) == texts
        assert gen.generate(3, seed=11, labels=list(labels), batch_size=1) == texts[:3]
        assert "".join(gen.characters(seed=11, labels=list(labels), index=7)) == texts[7]
    with_prefix = gen.generate(20, seed=11, labels=["F", "1950s"], prefix="a", max_length=4)
    assert all(t.startswith("a") and len(t) <= 4 for t in with_prefix)
    with pytest.raises(ValueError, match="max_length 7 exceeds the model's block size 8 less its 2 label tokens"):
        gen.generate(1, labels=["F", "1950s"], max_length=7)
    with pytest.raises(ValueError, match="unknown label 'X'; this model's labels are F | M"):
        gen.generate(1, labels=["X", "F"])


def test_score_is_the_nll_of_the_text_given_its_labels_over_characters_and_bos(labeled):
    ckpt, path = labeled
    vocab, gen = ckpt.vocab, Generator(path)
    texts = ["ana", "lonelines", "", "ele"]  # "lonelines" is cut to the block less the two labels
    labels = ["M", "x y"]
    total, count = 0.0, 0
    for text in texts:
        tokens = [vocab.bos, *vocab.label_ids(labels), *vocab.encode(text), vocab.bos][: 8 + 1]
        for p in range(2, len(tokens) - 1):  # the predictions after the last label token
            z = runtime_models.reference_logits(ckpt, tokens[: p + 1])[: vocab.drawable]
            total += float(np.log(np.sum(np.exp(z - z.max()))) + z.max() - z[tokens[p + 1]])
            count += 1
    expected = total / count
    assert gen.score(texts, labels=labels) == pytest.approx(expected, rel=1e-5)
    assert gen.score(texts, labels=labels, batch_size=1) == pytest.approx(expected, rel=1e-5)
    assert gen.score(texts, labels=["F", "x y"]) != pytest.approx(expected, rel=1e-3)
    with pytest.raises(ValueError, match="needs one label from each group"):
        gen.score(texts)


# --- training on labeled data (a file made here: runtime_models.ending_lines)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trained")
    ckpt, val_loss = runtime_models.trained_labeled_checkpoint(folder)
    save(folder / "endings.npz", ckpt)
    return ckpt, val_loss, runtime_models.export_to(ckpt, folder / "endings.onnx"), folder


def test_labeled_lines_become_label_groups_by_place(trained):
    ckpt, _, path, _ = trained
    assert ckpt.vocab.labels == (("A", "O"), ("L", "S")) and ckpt.vocab.chars == tuple(sorted(set("".join(
        runtime_models.STEMS) + "ieonltao")))
    assert load(path.with_suffix(".npz")).vocab == ckpt.vocab == Generator(path).vocab


def test_samples_follow_their_labels(trained):
    """Under A every sample should end in 'a', under O in 'o' (the data never does otherwise). We ask
    400 samples per label at temperature 1 to end so in at least 95%: a model that follows its label
    99% of the time falls below with probability < 1e-9 (binomial), one blind to it (50%) with
    probability ~1e-68 of passing."""
    _, _, path, _ = trained
    gen = Generator(path)
    for end in ("A", "O"):
        for size in ("S", "L"):
            texts = gen.generate(400, temperature=1.0, seed=5, labels=[size, end])
            assert sum(t.endswith(end.lower()) for t in texts) >= 380, (end, size)
    short = gen.generate(400, temperature=1.0, seed=6, labels=["A", "S"])
    long = gen.generate(400, temperature=1.0, seed=6, labels=["A", "L"])
    assert np.mean([len(t) for t in long]) > np.mean([len(t) for t in short]) + 1.0  # S: stem + 1, L: stem + 2..3


def test_labels_lower_the_held_out_nll_of_the_same_texts(trained):
    """The same texts, split alike (the same count of documents), trained alike without labels: the
    labels tell the last letter and the length, so their NLL per token is lower (measured 0.736
    against 0.873 nats)."""
    _, labeled_loss, _, folder = trained
    (folder / "plain").mkdir()
    _, plain_loss = runtime_models.trained_labeled_checkpoint(folder / "plain", labeled=False)
    assert labeled_loss < plain_loss - 0.05


def test_eval_scores_texts_given_labels_alike_for_checkpoint_and_onnx(trained):
    from click.testing import CliRunner

    from mgpt.train.cli import eval_command

    _, _, path, folder = trained
    runner = CliRunner()
    scores = []
    for model in (path.with_suffix(".npz"), path):
        result = runner.invoke(eval_command, [str(model), "--data", str(folder / "endings.txt"), "--labeled"])
        assert result.exit_code == 0, result.output
        scores.append(float(result.output.split()[0]))
    assert scores[0] == pytest.approx(scores[1], abs=2e-4)  # the full softmax vs characters and BOS only
    texts = [line.split("\t")[1] for line in runtime_models.ending_lines().splitlines() if line.startswith("A,S")]
    assert 0 < Generator(path).score(texts, labels=["S", "A"]) < scores[1]  # the easiest kind


def test_mgpt_train_labeled_end_to_end(tmp_path):
    from click.testing import CliRunner

    from mgpt.runtime.cli import generate_command
    from mgpt.train.cli import train_command

    data = tmp_path / "e.txt"
    data.write_text(runtime_models.ending_lines(800))
    runner = CliRunner()
    out = tmp_path / "e.npz"
    result = runner.invoke(train_command, ["--data", str(data), "--labeled", "--out", str(out), "--steps", "50",
                                           "--block-size", "10", "-q"])
    assert result.exit_code == 0, result.output
    from mgpt.export import export

    export(out, tmp_path / "e.onnx")
    result = runner.invoke(generate_command, ["--model", str(tmp_path / "e.onnx"), "--label", "O", "--label", "L",
                                              "-n", "5", "--seed", "1", "--format", "names"])
    assert result.exit_code == 0 and len(result.output.splitlines()) == 5
    assert Generator(tmp_path / "e.onnx").generate(5, seed=1, labels=["L", "O"]) == result.output.splitlines()


def test_a_packed_labeled_batch_has_the_padded_batchs_loss():
    from mgpt.train import model
    from mgpt.train.data import Corpus
    from mgpt.train.labels import with_labels
    from mgpt.train.packing import pack

    vocab = Vocab(tuple("aeilnos"), runtime_models.LABEL_GROUPS)
    texts = ["ana", "lonesol", "e", "ilse", "no", "sal"]
    framed = Corpus.from_documents(texts).frame(np.arange(6), Vocab(vocab.chars), 8 - 2)
    data = with_labels(framed, np.array([vocab.label_ids(["F", "x y"]), vocab.label_ids(["M", "1950s"])] * 3))
    ckpt = runtime_models.labeled_checkpoint()
    T = int(data.lengths.max())
    padded = model.loss_and_grads(ckpt.params, model.views(np.zeros(ckpt.config.num_params()), ckpt.config),
                                  ckpt.config, data.tokens[:, :T], data.tokens[:, 1:T + 1], data.weights[:, :T])
    inputs, targets, weights, positions, mask = pack(data.tokens, data.lengths, 8, data.weights)
    assert weights.sum() == data.weights.sum() == sum(min(len(t) + 1, 6) for t in texts)
    packed = model.loss_and_grads(ckpt.params, model.views(np.zeros(ckpt.config.num_params()), ckpt.config),
                                  ckpt.config, inputs, targets, weights, packed=(positions, mask))
    assert packed == pytest.approx(padded, abs=1e-12)
