"""The training loop: microgpt's recipe (Adam with linear decay, documents in a seeded order),
vectorized over a batch of padded documents, in float64."""

from __future__ import annotations

import ctypes
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from mgpt.runtime.vocab import Vocab

from . import arguments, model, packing
from .config import GPTConfig
from .data import Encoded, Split, encode
from .memory import available_memory, size_text
from .threads import BlasThreads, requested_threads


class TrainingError(ValueError):
    """Options that cannot be trained with."""


DTYPES = ("float64", "float32")


@dataclass(frozen=True)
class TrainOptions:
    steps: int | None = 500  # optimizer steps; None: as many as time_limit allows
    batch_size: int = 1  # documents per step
    lr: float = 0.01  # peak learning rate, decayed linearly to 0
    beta1: float = 0.85
    beta2: float = 0.99
    eps: float = 1e-8
    seed: int = 42  # initial weights, document order and dropout masks: any int, taken mod 2^64
    shuffle: bool = True  # shuffle the training documents once with the seed
    eval_every: int = 100  # held-out loss every this many steps (and after the last)
    # Beyond microgpt's recipe; the defaults leave it unchanged.
    weight_decay: float = 0.0  # AdamW's decoupled decay, of every matrix but the embeddings wte, wpe
    warmup: int = 0  # steps over which the learning rate rises linearly, multiplying the decay; below steps
    dropout: float = 0.0  # probability of zeroing a unit of each residual branch, in training only
    dtype: str = "float64"  # of the weights, activations and optimizer (checkpoints stay float64)
    time_limit: float | None = None  # seconds of training (evaluations included; at least one step); the schedule follows it
    keep_best: bool = True  # with held-out documents, return the weights of the best held-out loss
    threads: int | None = None  # BLAS threads; None: OPENBLAS_NUM_THREADS if set, else one or two where measured faster (threads.py)
    pack: bool = False  # lay each batch's documents end to end in rows of block_size (packing.py)
    ema: float = 0.0  # decay of a moving average of the weights, evaluated, kept and returned (average_into); 0: off

    def __post_init__(self):
        # normalized in place (NumPy scalars become Python numbers), each refused by name:
        # a TypeError for a wrong type, a TrainingError (a ValueError) for a bad value
        if self.steps is None and self.time_limit is None:
            raise TrainingError("steps may be left out only with a time-limit; give one or the other")
        checked = {name: arguments.integer(name, getattr(self, name), 1, TrainingError)
                   for name in ("steps", "batch_size", "eval_every") if getattr(self, name) is not None}
        checked["lr"] = arguments.real("lr", self.lr, 0, low_open=True, error=TrainingError)
        for name in ("beta1", "beta2"):
            checked[name] = arguments.real(name, getattr(self, name), 0, 1, high_open=True, error=TrainingError)
        checked["eps"] = arguments.real("eps", self.eps, 0, low_open=True, error=TrainingError)
        checked["seed"] = arguments.integer("seed", self.seed)
        checked["shuffle"] = arguments.boolean("shuffle", self.shuffle)
        checked["weight_decay"] = arguments.real("weight_decay", self.weight_decay, 0, error=TrainingError)
        checked["warmup"] = arguments.integer("warmup", self.warmup, 0, TrainingError)
        if checked.get("steps") is not None and checked["warmup"] >= checked["steps"]:
            raise TrainingError(f"warmup {checked['warmup']} must be less than steps {checked['steps']} (the learning "
                                f"rate would never reach its peak); lower warmup or raise steps")
        checked["dropout"] = arguments.real("dropout", self.dropout, 0, 1, high_open=True, error=TrainingError)
        if not isinstance(self.dtype, str):
            raise TypeError(f"dtype must be a string, one of {', '.join(DTYPES)}; got {self.dtype!r}")
        if self.dtype not in DTYPES:
            raise TrainingError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.time_limit is not None:
            checked["time_limit"] = arguments.real("time_limit", self.time_limit, 0, low_open=True, error=TrainingError)
        checked["keep_best"] = arguments.boolean("keep_best", self.keep_best)
        if self.threads is not None:
            checked["threads"] = arguments.integer("threads", self.threads, 1, TrainingError)
        checked["pack"] = arguments.boolean("pack", self.pack)
        checked["ema"] = arguments.real("ema", self.ema, 0, 1, high_open=True, error=TrainingError)
        for name, value in checked.items():
            object.__setattr__(self, name, value)


@dataclass
class TrainResult:
    flat: np.ndarray  # all parameters, float64, in microgpt's order (model.views names them)
    config: GPTConfig
    vocab: Vocab
    steps_done: int
    train_loss: float | None  # mean step loss over the last min(50, steps_done) steps; None after 0 steps
    val_loss: float | None  # mean NLL per predicted held-out token of the weights returned
    seconds: float  # time in the optimization loop, held-out evaluations (and the one after a stop) included
    eval_seconds: float  # of which evaluating the held-out loss
    truncated: int  # training documents longer than the block
    stopped: str  # "done" (all steps, or the time limit), "interrupted" (Ctrl-C, SIGTERM) or "diverged" (blown_up)
    diverged_step: int | None = None
    best_step: int | None = None  # the step whose weights are returned (the last one done, or the best)
    threads: tuple[int, ...] = (1,)  # the BLAS thread counts used, in the order they were taken
    averaged: bool = False  # the weights returned are options.ema's moving average (not after a divergence)

    @property
    def params(self) -> dict[str, np.ndarray]:
        return model.views(self.flat, self.config)


def keep_freed_memory() -> None:
    """Ask glibc to keep freed memory for reuse instead of returning it to the OS.

    A training step makes and frees the same few MB of arrays every time; with glibc's default
    (dynamic) thresholds the freed heap top is trimmed and blocks over ~1 MB are unmapped, so the next
    step page-faults them in again: ~1,500 faults and 3.4 of 8.4 ms of a batch-256 step, measured.
    Process-wide, so ``train()`` leaves it to its caller: mgpt-train and the benchmark call it, an
    app that trains in its own process may (a no-op where there is no glibc mallopt).
    """
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols: glibc's mallopt on Linux
        libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD: keep up to 256 MB of free heap top
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: heap, not mmap, for blocks under 32 MB
    except (OSError, AttributeError, TypeError):
        pass


# Training rows are framed this many at a time (whole steps of them), so that a step of one small
# batch (microgpt's recipe: one name) does not pay for a framing's dozen NumPy calls of its own.
BATCH_ROWS = 4096

# A loss this many times a uniform guess's (ln vocab_size) has blown up even while finite: --lr 1e6
# reaches 1e19 without a NaN. Treated as divergence, like a non-finite loss.
BLOWN_UP = 100.0


def blown_up(loss: float, vocab_size: int) -> bool:
    return not (np.isfinite(loss) and loss <= BLOWN_UP * np.log(vocab_size))


def memory_needed(config: GPTConfig, batch_size: int, documents: int, held: int | None = None) -> dict[str, int]:
    """Bytes a training run needs besides its data, estimated in closed form before anything is
    allocated: parameters (weights, gradient, Adam's two moments, the last good copy, the best one,
    the moving average and a temporary: 8 float64 copies), the batch's activations kept for the
    backward pass (per layer and position about 20 n_embd + 2 n_head x block values, plus the logits
    and their gradient), and the documents: the shuffled order of the ``documents`` training ones
    (8 bytes each at most), the framed rows of a block of steps (BATCH_ROWS, a token and a weight
    per position) and the ``held`` held-out ones framed (all of ``documents`` when not given, as
    mgpt-eval scores). Keyed by what to lower."""
    V, C, H, T, L = config.vocab_size, config.n_embd, config.n_head, config.block_size, config.n_layer
    params = config.num_params()
    rows = max(batch_size, 512) * T  # a training batch, or an evaluation chunk of 512 documents
    framed = documents if held is None else held + max(BATCH_ROWS, batch_size)
    return {"parameters": 8 * 8 * params,
            "activations": 8 * rows * (L * (22 * C + 2 * H * T) + 3 * V + 4 * C),
            "documents": (0 if held is None else 8 * documents) + 16 * framed * (T + 1)}


def check_memory(config: GPTConfig, batch_size: int, documents: int, held: int | None = None) -> None:
    """A TrainingError naming the size and the option to change when the run cannot fit in memory."""
    need = memory_needed(config, batch_size, documents, held)
    total, have = sum(need.values()), available_memory()
    if total <= have:
        return
    part = max(need, key=need.get)
    fix = {"parameters": "--n-layer or --n-embd", "activations": "--batch-size, --block-size or --n-layer",
           "documents": "--block-size, --val-max (or use less data)"}[part]
    raise TrainingError(f"this run needs about {size_text(total)} of memory ({part}: {size_text(need[part])}) but "
                        f"{size_text(have)} is available; lower {fix}")


def nll_total(params, config: GPTConfig, data: Encoded, chunk: int = 512) -> tuple[float, float]:
    """(summed negative log-likelihood in nats, predicted tokens) over all documents of ``data``."""
    total, count = 0.0, 0.0
    for start in range(0, len(data), chunk):
        tokens = data.tokens[start : start + chunk]
        weights = data.weights[start : start + chunk]
        T = int(weights.sum(axis=1).max())
        total += model.nll_sum(params, config, tokens[:, :T], tokens[:, 1 : T + 1], weights[:, :T])
        count += float(weights[:, :T].sum())
    return total, count


def mean_nll(params, config: GPTConfig, data: Encoded, chunk: int = 512) -> float:
    """Mean negative log-likelihood (nats) per predicted token over all documents of ``data``."""
    total, count = nll_total(params, config, data, chunk)
    return total / count


def evaluate(params, config: GPTConfig, vocab: Vocab, documents: list[str]) -> float:
    """Mean NLL per predicted token (nats) of ``documents``, framed as in training; a DataError names
    characters outside the vocabulary."""
    return mean_nll(params, config, encode(documents, vocab, config.block_size))


def learning_rate(options: TrainOptions, step: int, spent: float) -> float:
    """The rate of step ``step`` (from 0) when the fraction ``spent`` of the run is done: the peak
    decayed linearly to 0 over the run, times a linear rise over the first ``warmup`` steps."""
    lr = options.lr * (1 - spent)
    if step < options.warmup:
        lr *= (step + 1) / options.warmup
    return lr


def average_into(average: np.ndarray, flat: np.ndarray, decay: float, step: int) -> None:
    """Fold the weights after step ``step`` (from 1) into their moving average, in place:
    average = sum_s decay^(step-s) w_s / sum_s decay^(step-s) over the steps s = 1..step done, the
    bias-corrected exponential average (Adam's correction of its moments), as the update
    average += (1 - decay) / (1 - decay^step) * (w_step - average). At step 1 that factor is 1: the
    average starts at the first step's weights, whatever it held, and stays a convex combination
    of weights (a step counted twice or missed by a Ctrl-C moves it a little, never off the path)."""
    average += (1 - decay) / (1 - decay**step) * (flat - average)


def _decayed(config: GPTConfig) -> slice:
    """The part of the flat buffer that weight decay shrinks: every matrix after wte and wpe (which
    come first). The embeddings are looked up, not multiplied: a rare character's or a late
    position's row gets a gradient only when it occurs, but would be decayed at every step."""
    shapes = config.param_shapes()
    return slice(sum(r * c for name, (r, c) in shapes.items() if name in ("wte", "wpe")), None)


def _batch(tokens: np.ndarray, weights: np.ndarray, lengths: np.ndarray, config: GPTConfig, pack: bool):
    """A step's (inputs, targets, weights, packed) from its documents' rows of data.encode: one
    document a row cut to the longest (packed None), or several a row (see packing.pack)."""
    if pack:
        inputs, targets, w, positions, mask = packing.pack(tokens, lengths, config.block_size, weights)
        return inputs, targets, w, (positions, mask)
    T = int(lengths.max())
    return tokens[:, :T], tokens[:, 1 : T + 1], weights[:, :T], None


def train(
    train_docs: list[str],
    val_docs: list[str],
    config: GPTConfig | None,
    options: TrainOptions,
    init: tuple[GPTConfig, Vocab, np.ndarray] | None = None,
    on_step: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train on lists of documents: ``train_split`` of the training ones followed by the held-out ones."""
    return train_split(Split.of_lists(train_docs, val_docs), config, options, init, on_step)


def train_split(
    data: Split,
    config: GPTConfig | None,
    options: TrainOptions,
    init: tuple[GPTConfig, Vocab, np.ndarray] | None = None,
    on_step: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train from scratch (``config``, whose vocab_size is set from the data) or from ``init``
    (config, vocab, flat weights: fine-tuning with a fresh optimizer and schedule) on the training
    documents of ``data`` (a data.Split: a corpus and its held-out documents).

    ``on_step`` receives {"step", "lr", "loss", "seconds"} after every step, plus "val_loss" where
    evaluated and "last": True on the last step (decided when the step ends: the steps are done or
    the time limit is spent), which is always evaluated when documents are held out. At least one
    step is done whatever the time limit. Ctrl-C ends the loop after the last completed step; a loss that is non-finite or
    has blown up (``blown_up``) ends it and the weights are those of the last step whose loss was
    sane; a run that cannot fit in memory is a TrainingError before anything is allocated. With held-out documents and
    ``keep_best``, the weights returned are those of the evaluation with the lowest held-out loss.
    With ``options.ema``, the weights evaluated, kept as the best and returned are the moving
    average of every step's weights (``average_into``); training itself follows the raw weights.
    """
    dtype = np.dtype(options.dtype)
    seed = options.seed % 2**64  # any int, as mgpt-generate's seeds
    corpus, n_train = data.corpus, data.n_train
    if n_train < 1:
        raise TrainingError("there are no training documents; give at least one")
    if init is not None:
        config, vocab = init[0], init[1]
    else:
        vocab = Vocab(corpus.chars, corpus.groups)  # a labeled corpus's label groups too (docs/labels.md)
        config = GPTConfig(vocab.size, config.n_layer, config.n_embd, config.n_head, config.block_size)
    check_memory(config, options.batch_size, n_train, len(data.held))
    flat = (np.array(init[2], dtype=dtype) if init is not None
            else model.init_params(config, seed).astype(dtype, copy=False))
    corpus.table(vocab)  # a DataError now if the vocabulary lacks a character of the data
    held = corpus.frame(data.held, vocab, config.block_size) if len(data.held) else None
    truncated = corpus.count_longer(config.block_size, skip=data.held)

    rng = np.random.default_rng(seed)
    order = None  # the training documents in file order, or shuffled once with the seed
    if options.shuffle:
        order = np.arange(n_train, dtype=np.int32 if n_train < 1 << 31 else np.int64)
        rng.shuffle(order)  # Generator.permutation(n_train)'s order, in 4 bytes a document
    drop_rng = np.random.default_rng([seed, 1])  # its own stream: dropout leaves the order alone

    params = model.views(flat, config)
    grad = np.zeros_like(flat)
    grads = model.views(grad, config)
    m, v = np.zeros_like(flat), np.zeros_like(flat)
    last_good = flat.copy()
    best, best_loss, best_step = None, float("inf"), None
    # with options.ema, the moving average (a copy of the initial weights until the first step's
    # replaces them) is what is evaluated and returned
    average = flat.copy() if options.ema else None
    kept = flat if average is None else average
    decayed = _decayed(config)
    B, b1, b2, limit = options.batch_size, options.beta1, options.beta2, options.time_limit
    steps = options.steps if options.steps is not None else float("inf")
    steps_per_block = max(1, BATCH_ROWS // B)
    block, block_start = None, None  # the framed rows of steps block_start .. block_start + steps_per_block - 1
    losses, val_loss, stopped, bad_step, eval_seconds = [], None, "done", None, 0.0
    blas = BlasThreads(requested_threads(options.threads), time.perf_counter())
    t0 = time.perf_counter()
    step, record, last = 0, {}, False
    try:
        with np.errstate(all="ignore"):  # overflow shows up as a non-finite loss, handled below
            while not last:
                # 1) how much of the run is spent: by steps, or by the clock with a time limit. The
                #    first step is at 0 whatever the clock (and "last" is decided only when a step
                #    ends): every run completes at least one step, at the peak rate.
                spent = step / steps
                if limit is not None and step:
                    spent = max(spent, min(1.0, (time.perf_counter() - t0) / limit))
                # 2) the batch: documents step*B .. step*B+B-1 of the order, wrapping around (framed
                #    for a block of steps at once)
                if block is None or step >= block_start + steps_per_block:
                    block_start = step
                    k = (step * B + np.arange(steps_per_block * B)) % n_train
                    block = corpus.frame(data.train_rows(k if order is None else order[k]), vocab,
                                         config.block_size, dtype)
                rows = slice((step - block_start) * B, (step - block_start + 1) * B)
                inputs, targets, w, packed = _batch(block.tokens[rows], block.weights[rows], block.lengths[rows],
                                                    config, options.pack)
                masks = (model.dropout_masks(drop_rng, config, inputs.size, options.dropout, dtype)
                         if options.dropout else None)
                loss = model.loss_and_grads(params, grads, config, inputs, targets, w, masks, packed)
                if blown_up(loss + grad @ grad * 0.0, config.vocab_size):  # a nan or inf anywhere, or a blow-up
                    flat[:] = last_good
                    stopped, bad_step = "diverged", step
                    break
                last_good[:] = flat
                # 3) AdamW with bias correction (plain Adam without weight decay)
                lr_t = learning_rate(options, step, spent)
                if options.weight_decay:
                    flat[decayed] *= 1 - lr_t * options.weight_decay
                m *= b1
                m += (1 - b1) * grad
                v *= b2
                v += (1 - b2) * grad * grad
                flat -= lr_t * (m / (1 - b1 ** (step + 1))) / (np.sqrt(v / (1 - b2 ** (step + 1))) + options.eps)
                losses.append(loss)
                step += 1
                if average is not None:
                    average_into(average, flat, options.ema, step)
                # 4) whether this step is the last (all steps done, or the time spent) is decided once,
                #    here, and the loop obeys it: time that passes in on_step can delay the end by a
                #    step but never skip the last step's evaluation nor its record's "last" flag
                now = time.perf_counter()
                last = step == steps or (limit is not None and now - t0 >= limit)
                record = {"step": step, "lr": lr_t, "loss": loss}
                if held is not None and (step % options.eval_every == 0 or last):
                    val_loss = mean_nll(model.views(kept, config), config, held)
                    eval_seconds += time.perf_counter() - now
                    record["val_loss"] = val_loss
                    if options.keep_best and val_loss < best_loss:
                        best = np.empty_like(flat) if best is None else best
                        best[:], best_loss, best_step = kept, val_loss, step
                    now = time.perf_counter()
                record["seconds"] = now - t0
                if last:
                    record["last"] = True
                blas.tick(now)
                if on_step is not None:
                    on_step(record)
    except KeyboardInterrupt:
        stopped = "interrupted"
        if not np.all(np.isfinite(flat)):  # interrupted inside the update: take the step back
            flat[:] = last_good
    finally:
        blas.close()
    steps_done = len(losses)
    if stopped == "diverged":  # the average has taken in the weights that blew up: the last sane ones instead
        kept = flat
    if held is not None and (stopped == "diverged" or "val_loss" not in record):
        t_eval = time.perf_counter()  # the weights of the last step done (a stop before the last step)
        val_loss = mean_nll(model.views(kept, config), config, held)
        eval_seconds += time.perf_counter() - t_eval
    seconds = time.perf_counter() - t0
    if best is not None and best_loss < val_loss:
        kept, val_loss = best, best_loss
    else:
        best_step = steps_done
    tail = losses[-50:]
    return TrainResult(kept.astype(np.float64, copy=False), config, vocab, steps_done,
                       float(np.mean(tail)) if tail else None, val_loss, seconds, eval_seconds,
                       truncated, stopped, bad_step, best_step, tuple(blas.choices),
                       averaged=average is not None and kept is not flat)


def options_record(options: TrainOptions) -> dict:
    return asdict(options)
