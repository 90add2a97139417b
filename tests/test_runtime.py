"""mgpt.runtime against its spec: the sampling distribution (chi-square), top-k/top-p supports,
greedy decoding, prefixes, reproducibility across batch sizes and threads, scoring parity with the
NumPy evaluation, and the checks on model files.

Statistical tests use fixed seeds (so they are deterministic) and a stated significance: a
chi-square statistic must stay below the upper 0.1% point of its distribution.
"""

from __future__ import annotations

import math
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnx
import pytest

import js_reference
import runtime_models
from mgpt.runtime import Generator, ModelError, default_model_path, sampling, scoring, single
from mgpt.train.data import encode
from mgpt.train.trainer import mean_nll

ALPHA_Z = 3.0902  # upper 0.1% point of N(0, 1): the chi-square tests' significance is 0.001


@pytest.fixture(scope="session")
def ckpt():
    return runtime_models.small_checkpoint()


@pytest.fixture(scope="session")
def model_path(ckpt, tmp_path_factory):
    return runtime_models.export_to(ckpt, tmp_path_factory.mktemp("runtime") / "small.onnx")


@pytest.fixture(scope="session")
def gen(model_path):
    return Generator(model_path)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def chi_square_ok(counts: np.ndarray, probs: np.ndarray) -> tuple[bool, float, float]:
    """Pearson's test of ``counts`` against ``probs`` at significance 0.001. Bins expecting fewer
    than 5 are pooled; the critical value is Wilson and Hilferty's approximation of the chi-square
    quantile. Returns (passes, statistic, critical value)."""
    expected = probs * counts.sum()
    small = expected < 5
    assert np.all(counts[expected == 0] == 0), "a token of probability 0 was drawn"
    obs = np.append(counts[~small], counts[small].sum())
    exp = np.append(expected[~small], expected[small].sum())
    obs, exp = obs[exp > 0], exp[exp > 0]
    stat = float(np.sum((obs - exp) ** 2 / exp))
    df = len(exp) - 1
    if df == 0:  # one bin holds all the mass: nothing to test beyond the line above
        return True, stat, 0.0
    critical = df * (1 - 2 / (9 * df) + ALPHA_Z * math.sqrt(2 / (9 * df))) ** 3
    return stat < critical, stat, critical


def next_token_counts(gen: Generator, prefix: str, n: int, **options) -> np.ndarray:
    """How often each token follows BOS + prefix in ``n`` samples (BOS counted at index bos)."""
    samples = gen.generate(n, prefix=prefix, max_length=len(prefix) + 1, **options)
    assert all(s.startswith(prefix) and len(s) <= len(prefix) + 1 for s in samples)
    ids = [gen.vocab.encode(s[len(prefix):])[0] if len(s) > len(prefix) else gen.vocab.bos for s in samples]
    return np.bincount(ids, minlength=gen.vocab.size)


# ----------------------------------------------------------------------------- the library's surface

def test_importing_the_runtime_loads_neither_onnx_click_training_code_nor_the_server():
    code = ("import sys, mgpt.runtime; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('onnx', 'click', 'uvicorn', 'prometheus_client') "
            "or m.startswith(('mgpt.train', 'mgpt.export', 'mgpt.serve'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_generator_describes_its_model(gen, ckpt):
    assert gen.vocab == ckpt.vocab
    assert gen.block_size == ckpt.config.block_size == 8
    assert gen.info.n_layer == 1 and gen.info.training == {"steps": 60, "seed": 0}


def test_default_model_is_looked_up_in_the_models_package():
    assert default_model_path().name == "names.onnx" and default_model_path().parent.name == "models"


# ----------------------------------------------------------------------------- the sampling distribution

@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("prefix", ["", "ma"])
def test_next_token_frequencies_match_softmax_of_logits_over_t(gen, ckpt, temperature, prefix):
    probs = softmax(runtime_models.reference_logits(ckpt, [ckpt.vocab.bos, *ckpt.vocab.encode(prefix)]) / temperature)
    counts = next_token_counts(gen, prefix, 20_000, temperature=temperature, seed=11)
    ok, stat, critical = chi_square_ok(counts, probs)
    assert ok, f"chi-square {stat:.1f} >= {critical:.1f}"


@pytest.mark.parametrize("top_k", [1, 3, 10])
def test_top_k_draws_from_the_k_most_likely_in_proportion(gen, ckpt, top_k):
    logits = runtime_models.reference_logits(ckpt, [ckpt.vocab.bos])
    keep = np.argsort(-logits)[:top_k]
    probs = np.zeros_like(logits)
    probs[keep] = softmax(logits[keep])
    counts = next_token_counts(gen, "", 5_000, temperature=1.0, top_k=top_k, seed=3)
    assert set(np.flatnonzero(counts)) == set(keep)
    assert chi_square_ok(counts, probs)[0]


@pytest.mark.parametrize("size", [1, 2, 5])
def test_top_p_draws_from_the_smallest_set_reaching_p(gen, ckpt, size):
    probs = softmax(runtime_models.reference_logits(ckpt, [ckpt.vocab.bos]) / 2.0)
    order = np.argsort(-probs)
    mass = np.cumsum(probs[order])
    # p halfway between the mass of the top size-1 and top size tokens: the nucleus is the top `size`
    top_p = float((mass[size - 2] if size > 1 else 0.0) + mass[size - 1]) / 2
    counts = next_token_counts(gen, "", 5_000, temperature=2.0, top_p=top_p, seed=4)
    assert set(np.flatnonzero(counts)) == set(order[:size])
    nucleus = np.zeros_like(probs)
    nucleus[order[:size]] = probs[order[:size]] / probs[order[:size]].sum()
    assert chi_square_ok(counts, nucleus)[0]


def test_top_p_one_and_top_k_vocab_change_nothing(gen):
    base = gen.generate(300, temperature=1.0, seed=9)
    assert gen.generate(300, temperature=1.0, seed=9, top_p=1.0) == base
    assert gen.generate(300, temperature=1.0, seed=9, top_k=gen.vocab.size) == base


def test_greedy_is_the_reference_argmax_chain(gen, ckpt):
    ids = [ckpt.vocab.bos]
    while len(ids) <= ckpt.config.block_size:
        t = int(np.argmax(runtime_models.reference_logits(ckpt, ids)))
        if t == ckpt.vocab.bos:
            break
        ids.append(t)
    expected = ckpt.vocab.decode(ids)
    assert gen.generate(5, temperature=0) == [expected] * 5
    assert gen.generate(3, temperature=0, seed=1, batch_size=1) == [expected] * 3


def test_samples_end_at_bos_or_the_block_and_use_the_vocabulary(gen):
    samples = gen.generate(2_000, temperature=2.0, seed=5)
    assert max(map(len, samples)) == gen.block_size  # at T=2 some samples run to the block's end
    assert all(not gen.vocab.missing(s) for s in samples)
    assert all(len(s) <= 3 for s in gen.generate(200, temperature=2.0, seed=5, max_length=3))


def test_a_prefix_begins_every_sample_and_conditions_the_rest(gen):
    samples = gen.generate(500, temperature=1.0, prefix="ka", seed=6)
    assert all(s.startswith("ka") for s in samples)
    assert len(set(samples)) > 50
    near_limit = gen.generate(50, temperature=2.0, prefix="abcdef", max_length=7, seed=1)
    assert {len(s) for s in near_limit} == {6, 7} and all(s.startswith("abcdef") for s in near_limit)
    longest = gen.generate(50, temperature=2.0, prefix="abcdefg", seed=1)  # block 8: one drawn character at most
    assert {len(s) for s in longest} == {7, 8} and all(s.startswith("abcdefg") for s in longest)


@pytest.mark.parametrize("prefix, max_length", [("", 1), ("abc", 4), ("abcdefg", None)])
def test_a_sample_with_one_draw_left_is_the_same_one_by_one_and_batched(gen, prefix, max_length):
    # every sample's first draw comes from logits the call computes once: here it is also its last
    options = dict(temperature=2.0, seed=1, prefix=prefix, max_length=max_length)
    batched = gen.generate(60, **options)
    assert {len(s) for s in batched} <= {len(prefix), len(prefix) + 1} and all(s.startswith(prefix) for s in batched)
    assert len(set(batched)) > 5  # drawn, not a constant
    assert gen.generate(60, batch_size=1, **options) == batched
    assert ["".join(gen.characters(index=i, **options)) for i in range(5)] == batched[:5]


@pytest.mark.parametrize("chars", ["abcé中😀 ", "ab\0c"])  # any code points; NUL takes a slower decoding path
def test_any_vocabulary_decodes_alike_in_batches_and_one_by_one(tmp_path, chars):
    gen = Generator(runtime_models.export_to(runtime_models.random_checkpoint(chars), tmp_path / "v.onnx"))
    batched = gen.generate(300, temperature=1.0, seed=4)
    assert batched == gen.generate(300, temperature=1.0, seed=4, batch_size=1)
    assert set("".join(batched)) == set(chars)
    assert gen.score(batched[:50]) > 0


# ----------------------------------------------------------------------------- reproducibility

def test_sample_i_is_the_same_for_any_batch_size_count_or_thread_split(gen, model_path):
    base = gen.generate(600, temperature=1.0, seed=123)
    assert gen.generate(600, temperature=1.0, seed=123, batch_size=7) == base
    assert gen.generate(600, temperature=1.0, seed=123, batch_size=600) == base
    assert gen.generate(40, temperature=1.0, seed=123, batch_size=1) == base[:40]
    assert gen.generate(1000, temperature=1.0, seed=123)[:600] == base
    split = Generator(model_path, threads=2).generate(600, temperature=1.0, seed=123, batch_size=600)
    assert split == base  # 600 rows are split across two threads
    assert ["".join(gen.characters(temperature=1.0, seed=123, index=i)) for i in range(20)] == base[:20]


def test_prefix_and_top_k_samples_are_reproducible_across_batch_sizes(gen):
    options = dict(temperature=1.5, top_k=5, top_p=0.9, prefix="jo", seed=77)
    assert gen.generate(300, **options) == gen.generate(300, batch_size=1, **options)


def test_seeds_differ_and_no_seed_differs_every_call(gen):
    assert gen.generate(50, temperature=1.0, seed=1) != gen.generate(50, temperature=1.0, seed=2)
    assert gen.generate(50, temperature=1.0) != gen.generate(50, temperature=1.0)


def test_fresh_seeds_are_64_bit_and_never_repeat_across_threads_or_a_fork():
    with ThreadPoolExecutor(4) as pool:
        seeds = [s for chunk in pool.map(lambda _: [sampling.new_seed() for _ in range(5000)], range(8))
                 for s in chunk]
    assert len(set(seeds)) == len(seeds) == 40_000 and all(0 <= s < 2**64 for s in seeds)
    assert sum(s >> 63 for s in seeds) in range(19_000, 21_000)  # the top bit is set about half the time
    child = subprocess.run([sys.executable, "-c", "import os\nfrom mgpt.runtime import sampling\n"
                            "sampling.new_seed()\npid = os.fork()\nos.write(1, f'{sampling.new_seed()}\\n'.encode())\n"
                            "os._exit(0) if pid == 0 else os.waitpid(pid, 0)"],
                           capture_output=True, text=True, check=True)
    parent_and_child = child.stdout.split()
    assert len(parent_and_child) == 2 and parent_and_child[0] != parent_and_child[1]


def test_characters_stream_one_at_a_time_prefix_first(gen):
    chars = list(gen.characters(temperature=1.0, seed=8, prefix="an"))
    assert chars[:2] == ["a", "n"] and all(len(c) == 1 for c in chars)
    assert "".join(chars) == gen.generate(1, temperature=1.0, seed=8, prefix="an")[0]


def test_batch_one_streams_consumed_in_turn_keep_their_own_buffers(gen):
    # each iterator binds its own onnxruntime buffers: taking one step of each in turn mixes nothing
    def streams():
        return [gen.characters(temperature=1.0, seed=3, index=0), gen.characters(temperature=1.0, seed=3, prefix="an"),
                gen.samples(6, temperature=1.0, seed=3, batch_size=1), gen.characters(temperature=0, index=1)]

    alone = [list(s) for s in streams()]
    turns, live = [[] for _ in alone], dict(enumerate(streams()))
    while live:
        for k, s in list(live.items()):
            item = next(s, None)
            if item is None:
                del live[k]
            else:
                turns[k].append(item)
    assert turns == alone and len(alone[2]) == 6


def test_batch_one_steps_are_reused_and_take_each_calls_prefix(model_path):
    gen = Generator(model_path)
    for prefix in ("an", "jo", "an"):  # one key of the spare steps: the same context and sample lengths
        expected = gen.generate(5, temperature=1.0, seed=2, prefix=prefix, batch_size=5)  # the batched path
        assert ["".join(gen.characters(temperature=1.0, seed=2, prefix=prefix, index=i)) for i in range(5)] == expected
        assert gen.generate(5, temperature=1.0, seed=2, prefix=prefix, batch_size=1) == expected
    assert [key for key, _ in gen._spare.spare] == [(2, 8)]


def test_batch_one_falls_back_to_the_public_iobinding(model_path):
    expected = Generator(model_path).generate(30, temperature=1.0, seed=5, batch_size=1)
    gen = Generator(model_path)

    class Public:  # a session whose internals are not where the fast path looks for them
        def __init__(self, session):
            self.io_binding, self.run_with_iobinding = session.io_binding, session.run_with_iobinding

    gen._runner.session = Public(gen._runner.session)
    assert gen.generate(30, temperature=1.0, seed=5, batch_size=1) == expected
    steps = single.Steps(gen._runner, gen._plan(1.0, None, None, 5, "", None))
    assert steps.run == gen._runner.session.run_with_iobinding


def test_samples_stream_lazily_in_bounded_batches(gen, model_path):
    stream = gen.samples(10**12, temperature=1.0, seed=2, batch_size=16)  # would never finish if eager
    first = [next(stream) for _ in range(20)]
    stream.close()
    assert first == gen.generate(20, temperature=1.0, seed=2)
    threaded = Generator(model_path, threads=2).samples(10**12, temperature=1.0, seed=2, batch_size=1024)
    assert [next(threaded) for _ in range(20)] == first
    threaded.close()  # cancels the queued work and waits only for the running half-batches


# ----------------------------------------------------------------------------- sampling arithmetic

@pytest.mark.parametrize("temperature, top_k, top_p", [(1.0, None, None), (0.5, None, None), (2.0, 4, None),
                                                        (0.7, None, 0.8), (1.3, 10, 0.5), (0.0, None, None)])
@pytest.mark.parametrize("V", [27, 300])  # 300: past a byte's count of rows below the draw
def test_draw_is_bit_identical_for_one_row_and_any_batch(temperature, top_k, top_p, V):
    rng = np.random.default_rng(0)
    logits = (rng.normal(size=(600, V)) * 3).astype(np.float32)
    u = rng.random(600)
    one = [sampling.draw_one(logits[r].tolist(), u[r], temperature, top_k, top_p) for r in range(600)]
    assert sampling.draw(logits.T, u, temperature, top_k, top_p).tolist() == one  # wide: row-by-row sums
    narrow = [sampling.draw(logits[r : r + 7].T, u[r : r + 7], temperature, top_k, top_p) for r in range(0, 600, 7)]
    assert np.concatenate(narrow).tolist() == one  # narrow: NumPy's accumulate


def test_weights_keep_ties_at_the_top_k_edge_and_always_the_top_token():
    logits = np.array([3.0, 1.0, 2.0, 2.0, 0.0], np.float32)
    assert np.flatnonzero(sampling.weights(logits[:, None], 1.0, top_k=2)).tolist() == [0, 2, 3]
    assert np.flatnonzero(sampling.weights(logits[:, None], 1.0, top_p=1e-9)).tolist() == [0]
    draws = {sampling.draw_one(logits.tolist(), u, 1.0, top_k=2) for u in np.linspace(0, 0.999, 50)}
    assert draws == {0, 2, 3}


def test_uniform_streams_are_uniform_and_the_scalar_path_matches():
    u = sampling.uniforms(2024, np.arange(5_000), 20)
    assert 0 <= u.min() and u.max() < 1
    ok, stat, critical = chi_square_ok(np.bincount((u * 20).astype(int).ravel(), minlength=20), np.full(20, 0.05))
    assert ok, f"chi-square {stat:.1f} >= {critical:.1f}"
    for seed in (0, 2**64 - 1, -3, 10**30):
        assert all(sampling.sample_uniforms(seed, i, 9) == sampling.uniforms(seed, np.arange(40), 9)[i].tolist()
                   for i in (0, 1, 39))


# ----------------------------------------------------------------------------- scoring

def test_score_agrees_with_the_numpy_evaluation(gen, ckpt):
    docs = ["emma", "olivia", "christopher", "a", "zz", "maximiliano", "kaya"]  # two longer than the block
    expected = mean_nll(ckpt.params, ckpt.config, encode(docs, ckpt.vocab, ckpt.config.block_size))
    assert abs(gen.score(docs) - expected) < 1e-4
    assert abs(gen.score(docs, batch_size=2) - expected) < 1e-4
    with pytest.raises(ValueError, match="not in the vocabulary"):
        gen.score(["Emma"])
    with pytest.raises(ValueError, match="nothing to score"):
        gen.score([])


def test_score_split_across_threads_agrees_with_one_thread(gen, model_path):
    docs = gen.generate(3000, temperature=1.0, seed=8)
    one, two = Generator(model_path, threads=1).score(docs), Generator(model_path, threads=2).score(docs)
    assert abs(one - two) < 1e-9 and abs(one - gen.score(docs, batch_size=700)) < 1e-9


# ----------------------------------------------------------------------------- threads

def test_one_generator_shared_by_threads_gives_the_sequential_results(model_path):
    gen = Generator(model_path, threads=2)
    jobs = [(seed, n, batch) for seed in range(6) for n, batch in ((200, 4096), (700, 700), (5, 1))]
    docs = ["emma", "noah", "liam", "ava"]
    expected = [gen.generate(n, temperature=1.0, seed=seed, batch_size=batch) for seed, n, batch in jobs]
    expected_score = gen.score(docs)

    def work(job):
        seed, n, batch = job
        return gen.generate(n, temperature=1.0, seed=seed, batch_size=batch), gen.score(docs)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, jobs * 2))
    assert [r[0] for r in results] == expected * 2
    assert all(r[1] == expected_score for r in results)


# ----------------------------------------------------------------------------- bad arguments and files

@pytest.mark.parametrize("options, message", [
    ({"temperature": -0.1}, "temperature must be"),
    ({"temperature": float("nan")}, "temperature must be"),
    ({"top_k": 0}, "top_k must be"),
    ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
    ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
    ({"prefix": "Zoe"}, "not in the vocabulary: 'Z'"),
    ({"prefix": "abcdefgh"}, "must be shorter than the block size 8"),
    ({"prefix": "abc", "max_length": 3}, "must be shorter than max_length 3"),
    ({"max_length": 9}, "exceeds the model's block size 8"),
    ({"num_samples": -1}, "num_samples must be an integer >= 0"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ({"top_p": float("nan")}, r"top_p must be in \(0, 1\]"),
])
def test_bad_arguments_raise_value_error_at_the_call(gen, options, message):
    with pytest.raises(ValueError, match=message):
        gen.samples(**options)  # raised before the first sample is asked for


@pytest.mark.parametrize("options, message", [
    ({"seed": 1.5}, "seed must be an integer, got float 1.5"),
    ({"seed": "7"}, "seed must be an integer, got str '7'"),
    ({"seed": True}, "seed must be an integer, got bool True"),
    ({"prefix": 3}, "prefix must be a string, got int 3"),
    ({"num_samples": True}, "num_samples must be an integer >= 0, got bool True"),
    ({"num_samples": 2.0}, "num_samples must be an integer >= 0, got float 2.0"),
    ({"batch_size": "8"}, "batch_size must be an integer >= 1, got str '8'"),
    ({"max_length": 4.0}, "max_length must be an integer >= 1, got float 4.0"),
    ({"temperature": "hot"}, "temperature must be a number, got str 'hot'"),
    ({"temperature": True}, "temperature must be a number, got bool True"),
    ({"top_k": 2.0}, "top_k must be an integer >= 1 or None, got float 2.0"),
    ({"top_p": "0.9"}, r"top_p must be a number in \(0, 1\] or None, got str '0.9'"),
])
def test_arguments_of_the_wrong_type_raise_type_error_at_the_call(gen, options, message):
    with pytest.raises(TypeError, match=message):
        gen.samples(**options)


def test_numpy_scalars_are_accepted_where_python_numbers_are(gen):
    plain = gen.generate(5, temperature=0.7, top_k=5, top_p=0.9, seed=3, max_length=6, batch_size=2)
    numpy = gen.generate(np.int64(5), temperature=np.float64(0.7), top_k=np.int32(5), top_p=np.float64(0.9),
                         seed=np.uint64(3), max_length=np.int16(6), batch_size=np.int8(2))
    assert numpy == plain  # the same values, so the same draws (int8's own arithmetic would overflow)
    assert len(gen.generate(3, temperature=np.float32(0.5), top_p=np.float32(0.5), seed=1)) == 3


def test_bad_files_raise_model_error_naming_the_problem(tmp_path, ckpt, model_path):
    (tmp_path / "text.onnx").write_text("not a model")
    no_props = onnx.load(str(model_path))
    del no_props.metadata_props[:]
    onnx.save(no_props, str(tmp_path / "bare.onnx"))
    cases = {
        tmp_path / "missing.onnx": "does not exist",
        tmp_path: "is a directory",
        tmp_path / "text.onnx": "not an ONNX model that onnxruntime can load",
        runtime_models.identity_model(tmp_path / "identity.onnx"): "not an mgpt step graph: its metadata has no format",
        tmp_path / "bare.onnx": "not an mgpt step graph",
        runtime_models.identity_model(tmp_path / "fake.onnx", runtime_models.mgpt_props(ckpt)):
            r"not a usable mgpt step graph: its inputs should be \['token', 'position'",
        runtime_models.hollow_model(tmp_path / "hollow.onnx", ckpt):
            r"its step at position 0 returns logits of shape \(1, 3\), expected \(1, 27\)",
    }
    for path, message in cases.items():
        with pytest.raises(ModelError, match=message):
            Generator(path)


# ----------------------------------------------------------------------------- failures at run time

@pytest.fixture(scope="session")
def late_nan(ckpt, tmp_path_factory):
    path, trigger = runtime_models.late_failing_model(tmp_path_factory.mktemp("late") / "nan.onnx", ckpt, "nan")
    return Generator(path), trigger


@pytest.fixture(scope="session")
def late_error(ckpt, tmp_path_factory):
    path, trigger = runtime_models.late_failing_model(tmp_path_factory.mktemp("late") / "error.onnx", ckpt, "error")
    return Generator(path), trigger


CALLS = {  # every loop of the Generator; the prefix's character is fed at position 1
    "batched": lambda gen, prefix: gen.generate(300, temperature=1.0, seed=1, prefix=prefix),
    "batched, greedy": lambda gen, prefix: gen.generate(300, temperature=0, prefix=prefix),
    "batched, top-k and top-p": lambda gen, prefix: gen.generate(300, 1.0, top_k=5, top_p=0.9, seed=1, prefix=prefix),
    "two threads": lambda gen, prefix: Generator(gen.path, threads=2).generate(600, 1.0, seed=1, prefix=prefix),
    "batch 1": lambda gen, prefix: gen.generate(3, temperature=1.0, seed=1, prefix=prefix, batch_size=1),
    "batch 1, greedy": lambda gen, prefix: gen.generate(3, temperature=0, prefix=prefix, batch_size=1),
    "characters": lambda gen, prefix: list(gen.characters(temperature=1.0, prefix=prefix)),
    "score": lambda gen, prefix: gen.score([prefix + "abc"] * 5),
}


@pytest.mark.parametrize("call", CALLS)
def test_nan_logits_at_a_later_step_are_a_model_error_naming_file_and_position(late_nan, call):
    gen, trigger = late_nan
    with pytest.raises(ModelError, match=r"nan\.onnx' gave logits that are not finite .* at position 1;"):
        CALLS[call](gen, trigger)


@pytest.mark.parametrize("call", CALLS)
def test_an_onnxruntime_failure_at_a_later_step_is_a_model_error(late_error, call):
    gen, trigger = late_error
    with pytest.raises(ModelError, match=r"error\.onnx' failed in onnxruntime at position 1 \(.*Gather"):
        CALLS[call](gen, trigger)


@pytest.mark.parametrize("row", [[0.5, np.nan, 1.0], [np.inf, 0.0, 1.0], [np.nan, 0.0, np.inf], [-np.inf] * 3])
@pytest.mark.parametrize("options", [dict(temperature=1.0), dict(temperature=0.0), dict(temperature=0.7, top_k=2),
                                     dict(temperature=0.7, top_p=0.5)], ids=str)
def test_both_draws_refuse_nan_or_infinite_rows_and_accept_some_minus_infinity(row, options):
    good = np.array([[0.5, -np.inf, 1.0], [2.0, 0.0, 1.0]], np.float32)
    bad = np.vstack([good, np.array([row], np.float32)])
    with pytest.raises(sampling.LogitsError):
        sampling.draw(bad.T, np.full(3, 0.5), **options)
    with pytest.raises(sampling.LogitsError):
        sampling.draw_one(bad[2].tolist(), 0.5, **options)
    assert sampling.draw(good.T, np.full(2, 0.5), **options).tolist() == \
        [sampling.draw_one(r.tolist(), 0.5, **options) for r in good]


# ----------------------------------------------------------------------------- bounded memory

@pytest.mark.parametrize("block", [3, 8])
def test_score_frames_a_batch_as_each_text_alone(gen, block, monkeypatch):
    """The vectorized framing of a batch equals [BOS] + ids + [BOS] cut to block_size + 1, text by
    text, in a stable longest-first order (so sums run in the same order as one text at a time)."""
    from dataclasses import replace

    info = replace(gen.info, block_size=block)
    texts = gen.generate(300, temperature=1.5, seed=5) + ["", "a", "z" * 20]
    framed = sorted((scoring._encode(info, t) for t in texts), key=len, reverse=True)
    tokens, predicts = scoring._encode_batch(info, texts)
    assert tokens.shape == (len(texts), len(framed[0]))
    assert [list(row[: len(doc)]) for row, doc in zip(tokens, framed)] == framed
    assert all((row[len(doc):] == info.bos).all() for row, doc in zip(tokens, framed))  # BOS pads
    assert list(predicts) == [len(doc) - 1 for doc in framed]


def test_score_streams_any_iterable_reading_one_batch_ahead_at_most(gen, monkeypatch):
    docs = gen.generate(1000, temperature=1.0, seed=3)
    expected = gen.score(docs)
    produced, seen = [0], []

    def texts():
        for d in docs:
            produced[0] += 1
            yield d

    original = scoring._score_batch

    def watched(runner, tokens, predicts, skip=0):
        seen.append((produced[0], len(tokens)))
        return original(runner, tokens, predicts, skip)

    monkeypatch.setattr(scoring, "_score_batch", watched)
    assert abs(gen.score(texts(), batch_size=64) - expected) < 1e-9
    assert sum(n for _, n in seen) == 1000
    done = 0
    for count, n in seen:  # never more than one batch read beyond what was scored
        done += n
        assert count <= done
    assert abs(gen.score(iter(docs[:1]), batch_size=64) - gen.score(docs[:1])) < 1e-12


def test_abandoned_single_sample_streams_leave_a_bounded_pool(model_path):
    gen = Generator(model_path)
    streams = [gen.characters(temperature=1.0, seed=i, max_length=8 - i % 3) for i in range(200)]
    for s in streams:
        next(s, None)  # each holds its own steps while it is open (unless its sample was empty)
    del s
    streams.clear()  # abandoned: their steps go back to the pool, which keeps only the newest
    assert len(gen._spare.spare) == single.SPARE_STEPS
    assert "".join(gen.characters(temperature=1.0, seed=5, prefix="ab")) == gen.generate(1, 1.0, seed=5, prefix="ab")[0]


# ----------------------------------------------------------------------------- argument types

@pytest.mark.parametrize("options, error, message", [
    ({"threads": 0}, ValueError, "threads must be an integer >= 1, got 0"),
    ({"threads": -2}, ValueError, "threads must be an integer >= 1"),
    ({"threads": 1.5}, TypeError, "threads must be an integer >= 1, got float 1.5"),
    ({"threads": "2"}, TypeError, "threads must be an integer >= 1, got str '2'"),
    ({"threads": True}, TypeError, "threads must be an integer >= 1, got bool True"),
    ({"session_threads": 0}, ValueError, "session_threads must be an integer >= 1, got 0"),
    ({"session_threads": None}, TypeError, "session_threads must be an integer >= 1, got NoneType"),
    ({"session_threads": np.float64(2)}, TypeError, "session_threads must be an integer >= 1, got float64"),
])
def test_thread_counts_must_be_integers_of_at_least_one(model_path, options, error, message):
    with pytest.raises(error, match=message):
        Generator(model_path, **options)


def test_numpy_integers_are_thread_counts_too(model_path):
    gen = Generator(model_path, threads=np.int64(2), session_threads=np.int32(1))
    assert gen.threads == 2 and type(gen.threads) is int


@pytest.mark.parametrize("texts, message", [([1, 2], "texts must be strings, got int 1"),
                                            (["ab", b"ab"], "texts must be strings, got bytes b'ab'"),
                                            (["ab", None], "texts must be strings, got NoneType None"),
                                            (5, "texts must be a string or an iterable of strings, got int")])
def test_score_of_non_strings_is_a_type_error_naming_what_it_got(gen, texts, message):
    with pytest.raises(TypeError, match=message):
        gen.score(texts)



@pytest.mark.parametrize("message", js_reference.ONNXRUNTIME_MESSAGES)
def test_onnxruntime_messages_are_reduced_to_their_reason(message):
    from mgpt.runtime.modelfile import onnxruntime_reason
    assert onnxruntime_reason(RuntimeError(message)) == js_reference.ONNXRUNTIME_MESSAGES[message]
