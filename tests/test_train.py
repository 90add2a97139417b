"""The training loop: DESIGN.md's Adam, schedule and data order; determinism; stopping."""

import numpy as np
import pytest

from mgpt.runtime.vocab import Vocab
from mgpt.train import model
from mgpt.train.config import GPTConfig
from mgpt.train.data import DataError, default_data_path, encode, read_documents, split
from mgpt.train.trainer import TrainOptions, TrainingError, mean_nll, train

DOCS = ["kaya", "jo", "alexandrina", "emma", "b", "olivia", "liam"]
SHAPE = GPTConfig(vocab_size=1)  # vocab_size is replaced by the data's


def test_training_is_bit_identical_for_a_seed_and_differs_across_seeds():
    opts = TrainOptions(steps=30, batch_size=3, seed=7)
    a = train(DOCS, [], SHAPE, opts)
    b = train(DOCS, [], SHAPE, opts)
    c = train(DOCS, [], SHAPE, TrainOptions(steps=30, batch_size=3, seed=8))
    assert a.flat.tobytes() == b.flat.tobytes()
    assert not np.array_equal(a.flat, c.flat)


@pytest.mark.parametrize("batch_size,shuffle,weight_decay,warmup", [
    (1, True, 0.0, 0), (3, False, 0.0, 0), (4, True, 0.0, 0),
    (3, True, 0.5, 0), (2, False, 0.0, 4), (4, True, 0.1, 3),  # AdamW's decay and the warmup
])
def test_the_loop_is_designs_adam_schedule_and_data_order(batch_size, shuffle, weight_decay, warmup):
    # the recipe written out plainly from DESIGN.md, step by step, against the vectorized loop; with
    # weight decay it is AdamW (p *= 1 - lr_t * wd before the Adam step) on all but wte and wpe
    steps, lr, b1, b2, eps, seed = 9, 0.01, 0.85, 0.99, 1e-8, 5
    got = train(DOCS, [], SHAPE, TrainOptions(steps=steps, batch_size=batch_size, seed=seed, shuffle=shuffle,
                                              weight_decay=weight_decay, warmup=warmup))

    vocab = Vocab.from_documents(DOCS)
    config = GPTConfig(vocab.size)
    p = model.init_params(config, seed)
    order = np.random.default_rng(seed).permutation(len(DOCS)) if shuffle else np.arange(len(DOCS))
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t in range(steps):
        docs = [DOCS[order[(t * batch_size + j) % len(DOCS)]] for j in range(batch_size)]
        data = encode(docs, vocab, config.block_size)
        g = np.zeros_like(p)
        model.loss_and_grads(model.views(p, config), model.views(g, config), config,
                             data.tokens[:, :-1], data.tokens[:, 1:], data.weights)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        lr_t = lr * (1 - t / steps) * min(1.0, (t + 1) / warmup if warmup else 1.0)
        decay = np.ones_like(p)
        for name, view in model.views(decay, config).items():
            if name not in ("wte", "wpe"):
                view[...] = 1 - lr_t * weight_decay
        p = p * decay
        p = p - lr_t * (m / (1 - b1 ** (t + 1))) / (np.sqrt(v / (1 - b2 ** (t + 1))) + eps)
    np.testing.assert_allclose(got.flat, p, rtol=0, atol=1e-12)


def test_default_recipe_learns_names():
    # 500 steps, one name per step: held-out NLL well below uniform (ln 27 = 3.30); microgpt gets 2.53
    docs = read_documents(default_data_path())
    train_docs, val_docs = split(docs, 0.03)
    result = train(train_docs, val_docs, SHAPE, TrainOptions())
    assert result.config.num_params() == 4064
    assert result.steps_done == 500 and result.stopped == "done"
    assert result.val_loss < 2.6


def test_ctrl_c_keeps_the_completed_steps():
    def interrupt(record):
        if record["step"] == 5:
            raise KeyboardInterrupt

    result = train(DOCS, DOCS[:2], SHAPE, TrainOptions(steps=50), on_step=interrupt)
    assert result.stopped == "interrupted"
    assert result.steps_done == 5
    assert np.all(np.isfinite(result.flat)) and np.isfinite(result.val_loss)


def test_a_diverging_loss_stops_with_the_last_finite_weights():
    records = []
    result = train(DOCS, [], SHAPE, TrainOptions(steps=50, lr=1e200), on_step=records.append)
    assert result.stopped == "diverged"
    assert result.diverged_step == len(records)  # the failing step was not logged
    assert np.all(np.isfinite(result.flat))


def test_ema_returns_the_decay_weighted_average_of_every_steps_weights(monkeypatch):
    # the raw weights after each step s = 1..N (those step s+1 computes its loss on, then the last),
    # averaged with weights decay^(N-s) normalized to sum 1, against what the run returns
    steps, decay, val = 12, 0.7, ["liam", "mia"]
    seen = []
    loss_and_grads = model.loss_and_grads
    monkeypatch.setattr(model, "loss_and_grads", lambda params, *a, **k: (
        seen.append(np.concatenate([p.ravel() for p in params.values()])), loss_and_grads(params, *a, **k))[1])
    opts = dict(steps=steps, batch_size=2, lr=0.05, eval_every=5, keep_best=False)
    raw = train(DOCS, val, SHAPE, TrainOptions(**opts))
    records = []
    averaged = train(DOCS, val, SHAPE, TrainOptions(**opts, ema=decay), on_step=records.append)
    assert np.array_equal(np.array(seen[:steps]), np.array(seen[steps:]))  # the average leaves training alone
    path = np.array(seen[1:steps] + [raw.flat])  # (N, parameters)
    weights = decay ** np.arange(steps - 1, -1, -1.0)
    want = weights @ path / weights.sum()
    assert averaged.averaged and not raw.averaged
    np.testing.assert_allclose(averaged.flat, want, rtol=0, atol=1e-12)
    assert np.max(np.abs(averaged.flat - raw.flat)) > 1e-3  # a different set of weights
    # evaluated on the average: the last record's held-out loss is the returned weights'
    held = encode(val, averaged.vocab, 8)
    assert records[-1]["val_loss"] == averaged.val_loss == pytest.approx(
        mean_nll(averaged.params, averaged.config, held), abs=1e-12)
    assert averaged.val_loss != pytest.approx(raw.val_loss, abs=1e-6)


def test_ema_keeps_the_best_average_and_a_diverged_run_its_last_sane_raw_weights():
    opts = dict(steps=300, lr=0.05, eval_every=10, seed=1, ema=0.9)  # overfits, as in the keep-best test
    records = []
    best = train(DOCS[:6], ["liam", "mia", "ava"], SHAPE, TrainOptions(**opts), on_step=records.append)
    evaluated = {r["step"]: r["val_loss"] for r in records if "val_loss" in r}
    step = min(evaluated, key=evaluated.get)
    assert step < 300 and best.best_step == step and best.val_loss == evaluated[step] and best.averaged
    held = encode(["liam", "mia", "ava"], best.vocab, 8)
    assert mean_nll(best.params, best.config, held) == pytest.approx(evaluated[step], abs=1e-12)
    diverged = train(DOCS, [], SHAPE, TrainOptions(steps=50, lr=1e200, ema=0.9))
    assert diverged.stopped == "diverged" and not diverged.averaged and np.all(np.isfinite(diverged.flat))


def test_held_out_split_is_fixed_whatever_the_seed_and_disjoint():
    docs = [f"name{i}" for i in range(1000)]
    train_docs, val_docs = split(docs, 0.1)
    assert len(val_docs) == 100 and len(train_docs) == 900
    assert set(train_docs).isdisjoint(val_docs)
    assert split(docs, 0.1) == (train_docs, val_docs)
    with pytest.raises(DataError):
        split(docs[:3], 0.9)


def test_mean_nll_weights_every_predicted_token_equally():
    vocab = Vocab.from_documents(DOCS)
    config = GPTConfig(vocab.size)
    params = model.views(model.init_params(config, 0), config)
    data = encode(DOCS, vocab, config.block_size)
    per_doc = [(mean_nll(params, config, encode([d], vocab, 8)), len(d) + 1) for d in DOCS]
    counts = [min(n, 8) for _, n in per_doc]
    expected = sum(l * n for (l, _), n in zip(per_doc, counts)) / sum(counts)
    assert mean_nll(params, config, data, chunk=2) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("options", [dict(steps=0), dict(batch_size=0), dict(lr=0.0), dict(lr=-1.0),
                                     dict(eval_every=0), dict(steps=None), dict(weight_decay=-0.1),
                                     dict(weight_decay=float("nan")), dict(warmup=-1), dict(dropout=1.0),
                                     dict(dropout=-0.1), dict(dtype="float16"), dict(time_limit=0),
                                     dict(time_limit=float("inf")), dict(ema=1.0), dict(ema=-0.1),
                                     dict(ema=float("nan"))])
def test_options_reject_non_positive_values(options):
    with pytest.raises(TrainingError):
        TrainOptions(**options)


def test_warmup_must_end_within_a_fixed_step_count_but_not_a_time_limit():
    with pytest.raises(TrainingError, match="warmup 5 must be less than steps 5"):
        TrainOptions(steps=5, warmup=5)
    assert TrainOptions(steps=6, warmup=5).warmup == 5
    # with a time limit alone the steps are not known: a long warmup is the caller's choice (docs/commands.md, --warmup)
    assert TrainOptions(steps=None, time_limit=1.0, warmup=10**6).warmup == 10**6


def test_evaluate_frames_documents_like_training():
    vocab = Vocab.from_documents(DOCS)
    config = GPTConfig(vocab.size)
    params = model.views(model.init_params(config, 0), config)
    from mgpt.train import evaluate

    assert evaluate(params, config, vocab, DOCS) == mean_nll(params, config, encode(DOCS, vocab, 8))
    with pytest.raises(DataError, match="not in the vocabulary"):
        evaluate(params, config, vocab, ["zoë"])


def test_float32_training_ends_where_float64_does():
    # the documented float32 tolerance: the default recipe's held-out loss to 1e-4 (measured 1e-8)
    docs = read_documents(default_data_path())
    train_docs, val_docs = split(docs, 0.03)
    a = train(train_docs, val_docs, SHAPE, TrainOptions(steps=200, batch_size=8))
    b = train(train_docs, val_docs, SHAPE, TrainOptions(steps=200, batch_size=8, dtype="float32"))
    assert b.flat.dtype == np.float64  # what is saved is float64 either way
    assert abs(a.val_loss - b.val_loss) < 1e-4
    assert np.max(np.abs(a.flat - b.flat)) < 1e-3


def test_dropout_trains_differently_and_never_touches_evaluation():
    docs = read_documents(default_data_path())[:2000]
    train_docs, val_docs = split(docs, 0.05)
    plain = train(train_docs, val_docs, SHAPE, TrainOptions(steps=50, batch_size=8))
    dropped = train(train_docs, val_docs, SHAPE, TrainOptions(steps=50, batch_size=8, dropout=0.2))
    again = train(train_docs, val_docs, SHAPE, TrainOptions(steps=50, batch_size=8, dropout=0.2))
    assert not np.array_equal(plain.flat, dropped.flat)
    assert dropped.flat.tobytes() == again.flat.tobytes()  # the masks come from the seed
    # the held-out loss reported is the deterministic forward of the weights returned
    held = encode(val_docs, dropped.vocab, dropped.config.block_size)
    assert mean_nll(dropped.params, dropped.config, held) == pytest.approx(dropped.val_loss, abs=1e-12)


def test_keep_best_returns_the_weights_of_the_best_held_out_evaluation():
    # a big learning rate on six names overfits: the held-out loss falls, then rises
    records = []
    opts = dict(steps=300, lr=0.05, eval_every=10, seed=1)
    best = train(DOCS[:6], ["liam", "mia", "ava"], SHAPE, TrainOptions(**opts), on_step=records.append)
    last = train(DOCS[:6], ["liam", "mia", "ava"], SHAPE, TrainOptions(**opts, keep_best=False))
    evaluated = {r["step"]: r["val_loss"] for r in records if "val_loss" in r}
    step = min(evaluated, key=evaluated.get)
    assert step < 300 and evaluated[300] > evaluated[step]  # this run really has a best point before its end
    assert best.best_step == step and best.val_loss == evaluated[step]
    held = encode(["liam", "mia", "ava"], best.vocab, 8)
    assert mean_nll(best.params, best.config, held) == pytest.approx(evaluated[step], abs=1e-12)
    assert last.best_step == 300 and last.val_loss == pytest.approx(evaluated[300], abs=1e-12)


def test_a_time_limit_ends_the_run_and_drives_the_schedule():
    limit, lr = 0.5, 0.01
    records = []
    result = train(DOCS, DOCS[:2], SHAPE, TrainOptions(steps=None, time_limit=limit, lr=lr, eval_every=50),
                   on_step=records.append)
    # (step counts depend on the machine's load: a stalled machine may fit only one step)
    assert result.stopped == "done" and result.steps_done == len(records) >= 1
    assert [r.get("last", False) for r in records] == [False] * (len(records) - 1) + [True]
    assert records[-1]["seconds"] >= limit  # the first step past it
    # a record's time is taken after its evaluation, which may end past the limit: the step after
    # it is then the last one, so only records without an evaluation must be inside the limit
    assert all(r["seconds"] < limit for r in records[:-1] if "val_loss" not in r)
    assert "val_loss" in records[-1]  # and evaluates there
    # each step's rate is the peak times the fraction of the time left when the step began: between
    # the end of the step before and the end of this one
    previous = 0.0
    for r in records:
        spent = 1 - r["lr"] / lr
        assert previous / limit - 1e-12 <= spent <= r["seconds"] / limit + 1e-12
        previous = r["seconds"]
    capped = train(DOCS, [], SHAPE, TrainOptions(steps=20, time_limit=60))  # whichever ends first
    assert capped.steps_done == 20


class SlowClock:
    """A stand-in for the trainer's ``time`` module: time passes only when ``sleep`` is called, so
    a run's timing is the same on any machine."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_the_last_step_is_evaluated_and_flagged_even_when_on_step_spends_the_time(monkeypatch):
    # on_step takes 40 ms of a 100 ms budget: the third step's record is shown at 80 ms, its on_step
    # ends at 120 ms. That step was not the last (the time was not spent when it ended); the next
    # one is, and its record, the last passed to on_step, carries its evaluation.
    from mgpt.train import trainer

    clock = SlowClock()
    monkeypatch.setattr(trainer, "time", clock)
    records = []
    result = train(DOCS, DOCS[:2], SHAPE, TrainOptions(steps=None, time_limit=0.1, eval_every=1000),
                   on_step=lambda r: (records.append(r), clock.sleep(0.04)))
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert [r.get("last", False) for r in records] == [False, False, False, True]
    assert [r["seconds"] for r in records] == pytest.approx([0.0, 0.04, 0.08, 0.12])
    assert [("val_loss" in r) for r in records] == [False, False, False, True]
    assert result.steps_done == 4 and result.val_loss == records[-1]["val_loss"]
    assert records[-1]["lr"] == 0.0  # its step began with the time spent: the schedule is at its end


def test_a_time_limit_shorter_than_a_step_still_trains_one_step():
    records = []
    result = train(DOCS, DOCS[:2], SHAPE, TrainOptions(steps=None, time_limit=1e-9, lr=0.01), on_step=records.append)
    assert result.steps_done == 1 and len(records) == 1 and records[0]["last"]
    assert records[0]["lr"] == 0.01  # the first step starts the clock: it trains at the peak rate
    assert np.isfinite(result.train_loss) and "val_loss" in records[0]
    assert not np.array_equal(result.flat, model.init_params(result.config, 42))


def test_a_run_stopped_before_its_first_step_has_no_train_loss(monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(model, "loss_and_grads", interrupted)
    result = train(DOCS, DOCS[:2], SHAPE, TrainOptions(steps=10))
    assert (result.stopped, result.steps_done, result.train_loss) == ("interrupted", 0, None)
    assert np.array_equal(result.flat, model.init_params(result.config, 42))
    assert np.isfinite(result.val_loss)  # of the initial weights, which are what is returned
