"""Sampling controls end to end (docs/sampling-controls.md): the k-th sample is the same for any
batch size and thread count; samples obey their shape controls; novel samples are never training
documents; on a tiny model whose every string is enumerated, sampled frequencies match the
distributions the page states (chi-square); traces are the samples they trace."""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import runtime_models
from mgpt.runtime import Generator, SamplingError, constraints, novelty, sampling, tracing
from mgpt.runtime.cli import generate_command
from mgpt.train import Checkpoint, GPTConfig, default_data_path, read_documents
from mgpt.runtime.vocab import Vocab
from mgpt.train.model import init_params, views

TABLE = json.loads((Path(__file__).parent / "sampling_patterns.json").read_text(encoding="utf-8"))
NAMES = set(read_documents(default_data_path()))


@pytest.fixture(scope="module")
def names():
    return Generator("names")


@pytest.fixture(scope="module")
def names_two_threads():
    return Generator("names", threads=2)


CONTROLS = [
    {},
    {"pattern": "[a-z]{4,6}(a|ie)"},
    {"suffix": "yn", "min_length": 5},
    {"contains": "ar", "prefix": "m"},
    {"pattern": "(ka|ja|ma)[^aeiou]*[aeiou]+", "max_length": 7},
    {"novel": True},
    {"unique": True, "temperature": 0.3},
    {"exclude": ["emma", "ava", "mia", "liam"], "temperature": 0.2},
    {"novel": True, "unique": True, "pattern": "[a-z]*(a|ie)", "temperature": 1.0},
    {"novel": True, "unique": True, "top_k": 5, "top_p": 0.9, "temperature": 1.0},
    {"unique": True, "temperature": 0, "max_attempts": 40, "pattern": "[a-z]{3}"},  # greedy: one sample, then the cap
]


def run(generator, n, batch_size, options):
    options = dict(options)
    try:
        return generator.generate(n, seed=options.pop("seed", 11), batch_size=batch_size, **options)
    except SamplingError as e:
        return e.samples + ["<cap>"]


@pytest.mark.parametrize("options", CONTROLS, ids=str)
@pytest.mark.parametrize("seed", [11, 2**70 + 3])
def test_kth_sample_is_the_same_for_any_batch_size_and_thread_count(names, names_two_threads, options, seed):
    options = {**options, "seed": seed}
    reference = run(names, 600, 4096, options)
    for generator, batch_size in [(names, 1), (names, 3), (names_two_threads, 4096), (names_two_threads, 300)]:
        assert run(generator, 600, batch_size, options) == reference, (batch_size, generator.threads)
    if reference[-1] != "<cap>":
        assert run(names, 37, 4096, options) == reference[:37]  # and whatever the number asked for
        assert list(names.samples(600, seed=seed, batch_size=256, **{k: v for k, v in options.items()
                                                                    if k != "seed"})) == reference


def test_unconstrained_samples_are_unchanged_and_an_all_allowing_mask_changes_nothing(names):
    plain = names.generate(3000, temperature=1.0, seed=5)
    assert names.generate(3000, temperature=1.0, seed=5, pattern=".*", min_length=0) == plain
    assert names.generate(300, temperature=1.0, seed=5, pattern=".*", batch_size=1) == plain[:300]
    # a set control that rejects nothing: attempt k is sample k
    assert names.generate(3000, temperature=1.0, seed=5, exclude=["#"]) == plain


def test_shape_controls_hold_on_every_sample(names):
    for options in CONTROLS[1:5]:
        o = {k: v for k, v in options.items() if k in ("pattern", "suffix", "min_length", "contains", "prefix",
                                                         "max_length")}
        for text in names.generate(2000, temperature=1.5, seed=3, **o):
            assert re.fullmatch(o.get("pattern", ".*"), text) and text.endswith(o.get("suffix", ""))
            assert o.get("contains", "") in text and text.startswith(o.get("prefix", ""))
            assert o.get("min_length", 0) <= len(text) <= o.get("max_length", 8)


def test_every_sample_of_the_table_patterns_fullmatches(names):
    tried = 0
    for case in TABLE["accepted"]:
        try:
            constraints.compile(names.vocab, names.block_size, pattern=case["pattern"])
        except ValueError:  # e.g. a pattern of characters the names model lacks
            continue
        tried += 1
        for batch_size in (1, 4096):
            for text in names.generate(200, temperature=1.5, seed=tried, pattern=case["pattern"],
                                       batch_size=batch_size):
                assert re.fullmatch(case["pattern"], text), (case["pattern"], text)
    assert tried >= 15


def test_no_novel_sample_is_a_training_document(names):
    samples = names.generate(100_000, temperature=1.0, seed=2, novel=True)
    assert len(samples) == 100_000 and not NAMES.intersection(samples)
    plain = names.generate(10_000, temperature=1.0, seed=2)
    assert len(NAMES.intersection(plain)) > 1000  # the test is not vacuous: plain samples replay names


def test_unique_samples_are_distinct_and_greedy_hits_the_cap(names):
    assert len(set(names.generate(3000, temperature=0.5, seed=1, unique=True))) == 3000
    with pytest.raises(SamplingError) as e:
        names.generate(3, temperature=0, unique=True, max_attempts=10)
    assert e.value.samples == names.generate(1, temperature=0) and e.value.found == 1 and e.value.attempts == 10
    assert str(e.value).startswith("found 1 of 3 samples in 10 attempts (max_attempts)")


def test_a_masked_token_is_never_drawn_even_at_the_edge_of_the_uniforms():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(9, 64)).astype(np.float32) * 4
    allowed = rng.random((9, 64)) < 0.4
    allowed[4] = True  # every row has an allowed token
    allowed[[0, 8]] = False  # masked tokens at both ends of the vocabulary
    masked = np.where(allowed, logits, -np.inf).astype(np.float32)
    edges = [0.0, 2.0**-53, 0.5, 1 - 2.0**-53]
    for u in edges:
        for options in [(1.0, None, None), (0.7, 3, None), (1.3, None, 0.5), (2.0, 2, 0.9), (0.0, None, None)]:
            tokens = sampling.draw(masked, np.full(64, u), *options)
            assert allowed[tokens, np.arange(64)].all()
            one = [sampling.draw_one(masked[:, j].tolist(), u, *options) for j in range(64)]
            assert one == tokens.tolist()


# ---------------------------------------------------------------------------------- the tiny model

BLOCK = 4
STRINGS = ["".join(t) for n in range(BLOCK + 1) for t in itertools.product("ab", repeat=n)]  # all 31
DOCUMENTS = ["a", "ab", "ba", "aaa", "abab"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Block 4, vocabulary 3 ('a', 'b', BOS): random weights scaled up so the distributions are far
    from uniform, and a novelty filter of DOCUMENTS."""
    chars = ("a", "b")
    config = GPTConfig(3, n_layer=1, n_embd=8, n_head=2, block_size=BLOCK)
    params = views(init_params(config, 7) * 2, config)
    ckpt = Checkpoint(config, Vocab(chars), params, {},
                      novelty.from_texts(DOCUMENTS, chars, 4, 2))
    return Generator(runtime_models.export_to(ckpt, tmp_path_factory.mktemp("tiny") / "tiny.onnx"))


def next_probs(gen: Generator, text: str) -> np.ndarray:
    """(3,) the model's softmax (float64 from the float32 logits, as the draw computes it) after text."""
    ids = (gen.vocab.bos, *gen.vocab.encode(text))
    logits = gen._runner.prefill(ids)[1].astype(np.float64)
    w = np.exp(logits - logits.max())
    return w / w.sum()


def exact(gen: Generator, allowed=None) -> dict[str, float]:
    """Every string's probability under the sampler at temperature 1, with the mask of the strings
    ``allowed`` (None: no mask), computed by brute force: at each prefix, allowed characters are those
    with an allowed completion, BOS is allowed where the prefix itself is allowed."""
    good = set(STRINGS) if allowed is None else {s for s in STRINGS if allowed(s)}
    out = {}
    for s in STRINGS:
        if s not in good:
            out[s] = 0.0
            continue
        p = 1.0
        for j in range(len(s) + (len(s) < BLOCK)):
            w = next_probs(gen, s[:j])
            ok = np.array([any(g.startswith(s[:j] + c) for g in good) for c in "ab"] + [s[:j] in good])
            w = np.where(ok, w, 0.0)
            p *= (w[gen.vocab.encode(s[j])[0]] if j < len(s) else w[2]) / w.sum()
        out[s] = p
    return out


def chi_square_critical(dof: int, z: float = 3.0902) -> float:
    """The chi-square critical value at significance 0.001 (z its normal quantile), Wilson-Hilferty."""
    return dof * (1 - 2 / (9 * dof) + z * math.sqrt(2 / (9 * dof))) ** 3


def check_frequencies(samples: list[str], expected: dict[str, float]) -> None:
    counts = {s: 0 for s in STRINGS}
    for s in samples:
        counts[s] += 1  # a string outside STRINGS is a KeyError: it cannot exist
    assert sum(expected.values()) == pytest.approx(1.0, abs=1e-9)
    n = len(samples)
    cells = [s for s in STRINGS if expected[s] > 0]
    assert all(counts[s] == 0 for s in STRINGS if expected[s] == 0)  # impossible strings never appear
    statistic = sum((counts[s] - n * expected[s]) ** 2 / (n * expected[s]) for s in cells)
    assert statistic < chi_square_critical(len(cells) - 1), (statistic, len(cells) - 1)


def test_tiny_model_plain_sampling_matches_the_exact_distribution(tiny):
    check_frequencies(tiny.generate(100_000, temperature=1.0, seed=1), exact(tiny))


@pytest.mark.parametrize("controls,allowed", [
    ({"min_length": 2, "suffix": "a"}, lambda s: len(s) >= 2 and s.endswith("a")),
    ({"pattern": "a*b?a*"}, lambda s: re.fullmatch("a*b?a*", s) is not None),
    ({"contains": "bb", "max_length": 3}, lambda s: "bb" in s and len(s) <= 3),
])
def test_tiny_model_shape_controls_sample_the_masked_renormalized_distribution(tiny, controls, allowed):
    expected = exact(tiny, allowed)
    limit = controls.get("max_length", BLOCK)
    expected = {s: p if len(s) <= limit else 0.0 for s, p in expected.items()}
    check_frequencies(tiny.generate(100_000, temperature=1.0, seed=2, **controls), expected)
    if "suffix" in controls:  # masking is not conditioning: here the two differ (as the page says)
        plain = exact(tiny)
        mass = sum(plain[s] for s in STRINGS if allowed(s))
        conditioned = {s: plain[s] / mass if allowed(s) else 0.0 for s in STRINGS}
        assert max(abs(conditioned[s] - expected[s]) for s in STRINGS) > 0.01


@pytest.mark.parametrize("controls", [{"novel": True}, {"exclude": ["", "b", "aa"]},
                                      {"novel": True, "exclude": ["bb"], "pattern": "[ab]+"}])
def test_tiny_model_set_controls_sample_the_conditional_distribution(tiny, controls):
    shape = {k: v for k, v in controls.items() if k == "pattern"}
    base = exact(tiny, (lambda s: re.fullmatch(shape["pattern"], s) is not None) if shape else None)
    filt = tiny.novelty()
    assert all(tiny.vocab.encode(d) in filt for d in DOCUMENTS)  # no false negatives
    rejected = {s for s in STRINGS if (controls.get("novel") and tiny.vocab.encode(s) in filt)
                or s in controls.get("exclude", [])}
    kept = 1 - sum(base[s] for s in rejected)
    expected = {s: 0.0 if s in rejected else base[s] / kept for s in STRINGS}
    samples = tiny.generate(60_000, temperature=1.0, seed=3, **controls)
    check_frequencies(samples, expected)


def test_tiny_model_unique_first_sample_is_the_plain_distribution(tiny):
    # sample 0 of a unique call has no earlier sample to differ from: over many seeds, the plain law
    firsts = [tiny.generate(1, temperature=1.0, seed=s, unique=True)[0] for s in range(4000)]
    check_frequencies(firsts, exact(tiny))


@pytest.mark.parametrize("controls", [{}, {"min_length": 2, "suffix": "a"}, {"novel": True, "unique": True}])
def test_tiny_model_trace_is_the_sample_and_its_probabilities_are_the_distribution(tiny, controls):
    samples = tiny.generate(15, temperature=1.0, seed=9, **controls)  # 20 strings are novel: 15 unique exist
    allowed = None
    if controls.get("suffix"):
        allowed = lambda s: len(s) >= 2 and s.endswith("a")  # noqa: E731
    good = set(STRINGS) if allowed is None else {s for s in STRINGS if allowed(s)}
    for k in range(15):
        t = tiny.trace(temperature=1.0, seed=9, index=k, **controls)
        assert t["text"] == samples[k] and t["index"] == k
        for step in t["steps"]:
            before = step["sample"][:-1] if step["pick"]["char"] is not None else step["sample"]
            w = next_probs(tiny, before)
            ok = np.array([any(g.startswith(before + c) for g in good) for c in "ab"] + [before in good])
            w = np.where(ok, w, 0.0) / np.where(ok, w, 0.0).sum()
            for entry in step["top"]:
                assert entry["p"] == pytest.approx(w[entry["token"]], rel=1e-5)
            assert len(step["top"]) == int((w > 0).sum()) and not step["more"]


def test_trace_of_the_names_model_in_every_form(names):
    options = dict(temperature=0.5, seed=4, prefix="ma", pattern="ma[a-z]*(a|n)", unique=True)
    samples = names.generate(12, **options)
    for k in (0, 5, 11):
        t = names.trace(index=k, **options)
        assert t["text"] == samples[k] and t["prefix"] == "ma" and t["steps"][0]["position"] == 2
        assert t["steps"][0]["input"] == {"token": names.vocab.encode("a")[0], "char": "a"}
        for step in t["steps"]:
            ps = [e["p"] for e in step["top"]]
            assert ps == sorted(ps, reverse=True) and 0 <= step["uniform"] < 1 and len(ps) <= 5
        assert t["stopped"] == (len(t["text"]) < names.block_size or t["steps"][-1]["pick"]["char"] is None)
    greedy = names.trace(temperature=0)
    assert all(s["uniform"] is None and s["top"] == [{**s["pick"], "p": 1.0}] for s in greedy["steps"])
    assert greedy["text"] == names.generate(1, temperature=0)[0]
    # the CLI prints the same, in the seed's format
    result = CliRunner().invoke(generate_command, ["--trace", "-n", "2", "--seed", "4", "--prefix", "ma",
                                                   "--pattern", "ma[a-z]*(a|n)", "--unique"])
    assert result.exit_code == 0, result.output
    first = names.trace(index=0, **options)
    assert result.output.startswith(tracing.render(first, 1))
    assert f'Output: "{samples[1]}"' in result.output and "Step 1: Input 'a'" in result.output
    lines = CliRunner().invoke(generate_command, ["--trace", "-n", "3", "--seed", "4", "--format", "jsonl",
                                                  "--novel"]).output.splitlines()
    assert [json.loads(line)["text"] for line in lines] == names.generate(3, temperature=0.5, seed=4, novel=True)


def test_trace_text_format():
    data = {"text": "ka", "index": 0, "attempt": 3, "prefix": "", "stopped": False, "steps": [
        {"step": 1, "position": 0, "input": {"token": 2, "char": None},
         "top": [{"token": 0, "char": "k", "p": 0.625}, {"token": 2, "char": None, "p": 0.004999}],
         "more": True, "uniform": 0.5, "pick": {"token": 0, "char": "k"}, "sample": "k"},
        {"step": 2, "position": 1, "input": {"token": 0, "char": "k"},
         "top": [{"token": 1, "char": "'", "p": 0.5}, {"token": 3, "char": "\t", "p": 0.005}],
         "more": False, "uniform": None, "pick": {"token": 1, "char": "'"}, "sample": "k'"}]}
    assert tracing.render(data, 2) == (
        "Sample 2 (attempt 3)\n"
        "Step 1: Input BOS\n"
        "        Model predicts: 'k'(63%), BOS(<1%), ...\n"
        "        Random pick: 'k' (token 0)\n"
        "        sample = ['k']\n"
        "\n"
        "Step 2: Input 'k'\n"
        "        Model predicts: '\\''(50%), '\\t'(1%)\n"
        "        Greedy pick: '\\'' (token 1)\n"
        "        sample = ['k', '\\'']\n"
        "        END! (the block is full)\n"
        "\n"
        'Output: "ka"\n'
        "\n")


def test_characters_streams_the_constrained_sample(names):
    options = dict(temperature=1.0, seed=8, pattern="[a-z]{3,5}(a|ie)", prefix="j")
    samples = names.generate(20, **options)
    assert ["".join(names.characters(index=k, **options)) for k in range(20)] == samples


def test_shape_controls_count_a_labeled_models_characters_only(tmp_path):
    # label tokens are fed after BOS: the mask's n must not count them (min_length 6 of a block of 8
    # with 2 label tokens would otherwise end samples 2 characters early or never)
    ckpt = runtime_models.labeled_checkpoint()
    gen = Generator(runtime_models.export_to(ckpt, tmp_path / "labeled.onnx"))
    labels = [group[0] for group in ckpt.vocab.labels]
    for batch_size in (1, 4096):
        samples = gen.generate(300, temperature=1.5, seed=1, labels=labels, min_length=5, suffix="a",
                               pattern="[aeilnos]*", batch_size=batch_size)
        assert all(len(s) >= 5 and s.endswith("a") for s in samples)
        assert samples == gen.generate(300, temperature=1.5, seed=1, labels=labels, min_length=5, suffix="a",
                                       pattern="[aeilnos]*")
    t = gen.trace(temperature=1.5, seed=1, labels=labels, min_length=5, suffix="a", index=7)
    assert t["text"] == samples[7] and t["steps"][0]["input"] == {
        "token": ckpt.vocab.label_ids(labels)[-1], "char": None, "label": labels[-1]}
    assert f"Step 1: Input label '{labels[-1]}'" in tracing.render(t, 1)


def test_an_oversized_exclude_file_is_one_error_line(tmp_path, monkeypatch):
    from mgpt.runtime import cli

    (tmp_path / "ex.txt").write_text("emma\nava\n")
    monkeypatch.setattr(cli, "MAX_EXCLUDE_BYTES", 8)
    result = CliRunner().invoke(generate_command, ["--exclude", str(tmp_path / "ex.txt")])
    assert result.exit_code == 1 and result.output.count("Error:") == 1 and "more than the 8" in result.output
