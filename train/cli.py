"""``mgpt-train`` and ``mgpt-eval``: thin click commands over mgpt.train."""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import signal
import sys
import threading
from pathlib import Path

import click

from .threads import load_numpy

load_numpy()  # before the imports below load NumPy: OpenBLAS starts on one thread unless the user says

import numpy as np  # noqa: E402

from mgpt.runtime import Generator, ModelError, __version__
from mgpt.runtime.command import CONTEXT_SETTINGS, Command, FiniteRange, OptionError
from mgpt.runtime import novelty
from mgpt.runtime.novelty import NoveltyError
from mgpt.runtime.paths import PathError, check_input, check_paths
from mgpt.runtime.vocab import Vocab

from . import checkpoint as ckpt_io
from . import model
from .checkpoint import Checkpoint, CheckpointError
from .config import ConfigError, GPTConfig
from .data import VAL_MAX, DataError, Split, default_data_path, iter_documents, read_corpus, stream_corpus
from .labels import label_tokens
from .files import check_space, check_writable, replace_together, staged
from .progress import MetricsLog, Progress, Reading
from .memory import available_memory, size_text
from .trainer import (DTYPES, TrainingError, TrainOptions, check_memory, keep_freed_memory, memory_needed, nll_total,
                      train_split)

EVAL_ROWS = 65536  # mgpt-eval frames this many documents at a time (mean_nll takes them 512 at a time)
USER_ERRORS = (CheckpointError, ConfigError, DataError, NoveltyError, PathError, TrainingError)


def metrics_path_for(out: Path) -> Path:
    """mgpt-checkpoint.npz -> mgpt-checkpoint.metrics.jsonl, beside it."""
    return out.with_name(out.stem + ".metrics.jsonl")


def diverged_path_for(path: Path) -> Path:
    """Where a diverged run keeps what it would have written at ``path``, beside it:
    mgpt-checkpoint.npz -> mgpt-checkpoint.diverged.npz, run.metrics.jsonl -> run.diverged.metrics.jsonl."""
    stem, dot, suffix = path.name.partition(".")
    return path.with_name(f"{stem}.diverged{dot}{suffix}" if dot else f"{stem}.diverged")


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _stop_between_steps():
    """Turn the first Ctrl-C or SIGTERM into a flag (a list that receives the signal's number)
    checked after each step; a second one acts at once, as usual."""
    flag: list[int] = []
    if threading.current_thread() is not threading.main_thread():  # signals belong to the main thread
        yield flag
        return

    def handler(signum, frame):
        flag.append(signum)
        for s in STOP_SIGNALS:
            signal.signal(s, previous[s])

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield flag
    finally:
        for s in STOP_SIGNALS:
            signal.signal(s, previous[s])


SEED_SHAPE = {"n_layer": 1, "n_embd": 16, "n_head": 4, "block_size": 8}  # microgpt's model


def _shape_option(name: str, help: str):
    default = SEED_SHAPE[name[2:].replace("-", "_")]
    return click.option(name, type=click.IntRange(min=1), default=None,
                        help=f"{help} [default: {default}, or the --init-from checkpoint's]")


@click.command(cls=Command, context_settings=CONTEXT_SETTINGS)
@click.option("--data", type=click.Path(dir_okay=True, path_type=Path), default=None,
              help="UTF-8 text file, one document per line. [default: the shipped US baby names of 2017]")
@click.option("--labeled", is_flag=True,
              help="Each line is LABEL[,LABEL...]<TAB>TEXT (e.g. F,1950s<TAB>linda): learn the text given its "
                   "labels, one per group by place (docs/labels.md). Without it a tab is a character.")
@click.option("--out", type=click.Path(path_type=Path), default=Path(ckpt_io.DEFAULT_PATH), show_default=True,
              help="Checkpoint to write (.npz); mgpt-export reads this path by default.")
@click.option("--metrics", type=click.Path(path_type=Path), default=None,
              help="Metrics log, JSON lines (see --metrics-every). [default: OUT with .metrics.jsonl]")
@click.option("--metrics-every", type=click.IntRange(min=1), default=10, show_default=True,
              help="Log a line every N steps (its loss the mean since the previous line), plus every "
                   "evaluation and the last step; 1 logs every step.")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Optimizer steps. [default: 500; with --time-limit, as many as fit]")
@click.option("--time-limit", type=FiniteRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Train for this many seconds (evaluations included; with --steps, whichever ends first); "
                   "the learning rate decays with the fraction of the time spent. The time is first checked "
                   "when the first step ends: a run always does at least one.")
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True, help="Documents per step.")
@click.option("--lr", type=FiniteRange(min=0, min_open=True), default=0.01, show_default=True,
              help="Peak learning rate of Adam, decayed linearly to 0.")
@click.option("--warmup", type=click.IntRange(min=0), default=0, show_default=True,
              help="Steps over which the learning rate rises linearly to its peak; fewer than --steps. With "
                   "--time-limit alone it still counts steps, not time: a longer warmup than the run's steps "
                   "never reaches the peak.")
@click.option("--weight-decay", type=FiniteRange(min=0), default=0.0, show_default=True,
              help="AdamW's decoupled weight decay of the attention, MLP and lm_head matrices (not the embeddings).")
@click.option("--dropout", type=FiniteRange(min=0, max=1, max_open=True), default=0.0, show_default=True,
              help="Drop this fraction of each block's attention and MLP outputs in training (never in evaluation).")
@click.option("--ema", type=FiniteRange(min=0, max=1, max_open=True), default=0.0, show_default=True,
              metavar="DECAY", help="Average the weights over the run (an exponential moving average with this decay "
                                    "per step, e.g. 0.9995) and evaluate, keep and write the average; 0 is off.")
@click.option("--dtype", type=click.Choice(DTYPES), default="float64", show_default=True,
              help="Training arithmetic: float64 is exact against microgpt; float32 is about twice as fast.")
@_shape_option("--n-layer", "Transformer blocks.")
@_shape_option("--n-embd", "Embedding width.")
@_shape_option("--n-head", "Attention heads (must divide --n-embd).")
@_shape_option("--block-size", "Longest context, in tokens.")
@click.option("--seed", type=int, default=42, show_default=True,
              help="Seed of the initial weights and the data order (any integer, taken mod 2^64).")
@click.option("--init-from", type=click.Path(path_type=Path), default=None,
              help="Start from this checkpoint's weights and vocabulary (fine-tuning, fresh optimizer).")
@click.option("--shuffle/--no-shuffle", default=True, show_default=True, help="Shuffle the training documents once.")
@click.option("--val-fraction", type=FiniteRange(min=0, max=1, max_open=True), default=0.03, show_default=True,
              help="Fraction of documents held out (a fixed choice, independent of --seed).")
@click.option("--val-max", type=click.IntRange(min=1), default=VAL_MAX, show_default=True,
              help="Hold out at most this many documents (so an evaluation costs the same for any data size).")
@click.option("--eval-every", type=click.IntRange(min=1), default=100, show_default=True,
              help="Evaluate the held-out loss every this many steps.")
@click.option("--pack/--no-pack", default=False, show_default=True,
              help="Lay each batch's documents end to end in rows of the block size: the same loss and "
                   "gradients with less padding to compute (measured: 0.73x the step time of 3 layers x 64 at "
                   "batch 32).")
@click.option("--blas-threads", type=click.IntRange(min=1), default=None,
              help="BLAS threads for the matrix products. [default: OPENBLAS_NUM_THREADS if set; else one, "
                   "two for big models while measured faster]")
@click.option("--keep-best/--keep-last", default=True, show_default=True,
              help="Write the weights of the best held-out evaluation, or of the last step.")
@click.option("--novelty/--no-novelty", default=True, show_default=True,
              help="Record a Bloom filter of the data's documents (held-out included) for sampling with --novel; "
                   "it lets anyone with the model test whether a guessed string was a document.")
@click.option("--novelty-bits", type=FiniteRange(min=1), default=novelty.DEFAULT_BITS_PER_DOCUMENT,
              show_default=True, help="The filter's bits per document (10: ~0.8% false positives; 16 with "
                                      "--novelty-hashes 11: ~0.05%).")
@click.option("--novelty-hashes", type=click.IntRange(min=1, max=novelty.MAX_HASHES),
              default=novelty.DEFAULT_HASHES, show_default=True, help="The filter's probes per document.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines; the summary only.")
@click.version_option(__version__, prog_name="mgpt")
def train_command(data, labeled, out, metrics, metrics_every, steps, time_limit, batch_size, lr, warmup, weight_decay,
                  dropout, ema, dtype, n_layer, n_embd, n_head, block_size, seed, init_from, shuffle, val_fraction,
                  val_max, eval_every, pack, blas_threads, keep_best, novelty, novelty_bits, novelty_hashes, quiet):
    """Train microgpt's GPT on a text file and write a checkpoint."""
    given_steps = steps is not None
    if not given_steps and time_limit is None:
        steps = 500
    if steps is not None and warmup >= steps:  # TrainOptions refuses it too, in the library's words
        raise OptionError(f"--warmup {warmup} must be less than --steps {steps}{'' if given_steps else ' (the default)'}"
                          f": the learning rate would never reach its peak; lower --warmup or raise --steps")
    try:
        options = TrainOptions(steps=steps, batch_size=batch_size, lr=lr, seed=seed, shuffle=shuffle,
                               eval_every=eval_every, weight_decay=weight_decay, warmup=warmup, dropout=dropout,
                               dtype=dtype, time_limit=time_limit, keep_best=keep_best, threads=blas_threads,
                               pack=pack, ema=ema)
        _train(data, out, metrics, metrics_every, options, n_layer, n_embd, n_head, block_size, init_from,
               val_fraction, val_max, quiet, (novelty_bits, novelty_hashes) if novelty else None, labeled)
    except USER_ERRORS as e:
        raise click.ClickException(str(e)) from e


def _train(data, out, metrics, metrics_every, options, n_layer, n_embd, n_head, block_size, init_from,
           val_fraction, val_max, quiet, novelty_sizes=None, labeled=False):
    # 1) everything that can be wrong with the input is found before any work
    out = check_writable(out, "--out")
    metrics = check_writable(metrics or metrics_path_for(out), "--metrics")
    data_path = Path(data) if data is not None else default_data_path()
    check_paths({"--data": data_path, "--init-from": init_from},
                {"--out": out, "--metrics": metrics, "--out's diverged copy": diverged_path_for(out),
                 "--metrics's diverged copy": diverged_path_for(metrics)})
    shape = {"n_layer": n_layer, "n_embd": n_embd, "n_head": n_head, "block_size": block_size}
    init = None
    if init_from is not None:  # before the data: a broken checkpoint is found before a long read
        start = ckpt_io.load(init_from)
        given = {k: v for k, v in shape.items() if v is not None and v != getattr(start.config, k)}
        if given:
            k = next(iter(given))
            raise TrainingError(f"--{k.replace('_', '-')} {given[k]} differs from the --init-from checkpoint's "
                                f"{getattr(start.config, k)}; drop it (fine-tuning keeps the checkpoint's shape)")
    reading = Reading(lambda text, nl: click.echo(text, nl=nl, err=True), sys.stderr.isatty() and not quiet,
                      data_path.name)
    try:
        corpus = read_corpus(data_path, reading, labeled)
    finally:
        reading.end()
    if init_from is not None:
        unknown = [c for c in corpus.chars if c not in start.vocab.chars]
        if unknown:
            raise DataError(f"the --init-from checkpoint's vocabulary lacks {len(unknown)} characters of the data "
                            f"({''.join(unknown[:10])!r}); train from scratch or clean the data")
        if labeled != bool(start.vocab.labels):
            raise DataError(f"the --init-from checkpoint {'has' if start.vocab.labels else 'has no'} labels; "
                            f"{'pass' if start.vocab.labels else 'drop'} --labeled (docs/labels.md)")
        corpus.frame(np.arange(min(len(corpus), 1)), start.vocab, start.config.block_size)  # labels it lacks
        config, init = start.config, (start.config, start.vocab, model.flatten(start.params, start.config))
    else:
        config = GPTConfig(1, **{k: v if v is not None else SEED_SHAPE[k] for k, v in shape.items()})
    split = Split.of(corpus, val_fraction, val_max)
    # the novelty filter of every document, held-out ones included, made before the training so a
    # filter that cannot be made stops the run before it starts (~1 s per million documents), from
    # the corpus a million documents at a time
    novelty_filter = None
    if novelty_sizes is not None:
        novelty_filter = novelty.NoveltyFilter.empty(len(corpus), *novelty_sizes)
        for ids, lengths in corpus.id_chunks(init[1] if init else Vocab(corpus.chars), novelty.CHUNK_DOCUMENTS):
            novelty_filter.add(ids, lengths)
    # what cannot fit in memory, then on disk, is found now rather than after the training
    sized = dataclasses.replace(config, vocab_size=config.vocab_size if init else Vocab(corpus.chars, corpus.groups).size)
    if labeled and sized.block_size <= len(corpus.groups):
        raise TrainingError(f"--block-size {sized.block_size} leaves no position for text after the "
                            f"{len(corpus.groups)} label tokens; raise it")
    check_memory(sized, options.batch_size, split.n_train, len(split.held))
    check_space(out, 8 * sized.num_params() + 65536 + (novelty_filter.data.size if novelty_filter else 0),
                "--out")  # the float64 weights, the meta and the novelty filter

    # 2) train, logging to a staged metrics file. Ctrl-C and SIGTERM are taken between steps, after
    #    a step is recorded; the log always ends with the last step done.
    progress = Progress(lambda text, nl: click.echo(text, nl=nl, err=True), sys.stderr.isatty(),
                        options.steps, options.time_limit, options.eval_every)
    keep_freed_memory()  # this process is ours: steps reuse freed memory instead of faulting it back in
    run_id = secrets.token_hex(8)  # in the checkpoint's record and on every line of its log
    with staged(metrics, "w") as (file, staged_log), _stop_between_steps() as stop:
        log = MetricsLog(file, metrics_every, run=run_id)

        def on_step(record):
            log(record)
            if not quiet:
                progress(record)
            if stop:
                raise KeyboardInterrupt
        result = train_split(split, config, options, init=init, on_step=on_step)
        log.flush()
    progress.end()

    # 3) the checkpoint, with the record of how it was made; it and the log are moved into place
    #    together (the old log removed first), so they never describe two different runs. A run
    #    that diverged leaves --out and its log as they were and keeps its last sane weights beside
    #    them, under .diverged names.
    n_train, n_held = split.n_train, len(split.held)
    record = {
        "data": data_path.name if data is None else str(data), "documents": n_train,
        "held_out": n_held, "val_fraction": val_fraction, "val_max": val_max, "truncated": result.truncated,
        **{k: getattr(options, k) for k in ("seed", "batch_size", "lr", "beta1", "beta2", "eps", "shuffle",
                                             "warmup", "weight_decay", "dropout", "dtype", "time_limit",
                                             "pack", "ema")},
        "steps": result.steps_done, "steps_planned": options.steps, "train_loss": result.train_loss,
        "val_loss": result.val_loss, "best_step": result.best_step,
        "weights": "moving average" if result.averaged else "step", "blas_threads": list(result.threads),
        "init_from": str(init_from) if init_from else None,
        "stopped": result.stopped, "seconds": round(result.seconds, 4), "mgpt": __version__, "run": run_id,
    }
    diverged = result.stopped == "diverged"
    target = diverged_path_for(out) if diverged else out
    if diverged:
        staged_log.path = diverged_path_for(metrics)  # the same folder as the staged log: a rename
    try:
        ckpt = Checkpoint(result.config, result.vocab, result.params, record, novelty_filter)
        with ckpt_io.staged_save(target, ckpt) as staged_ckpt:
            replace_together(staged_ckpt, staged_log)
    except BaseException:
        staged_log.discard()
        raise

    if diverged:
        raise TrainingError(
            f"the loss diverged (became non-finite or blew up) at step {result.diverged_step + 1}; {out} was left as it "
            f"was; the weights of step {result.diverged_step} are in {target} (its log {staged_log.path}); try a lower "
            f"--lr (now {options.lr:g})")
    c = result.config
    echo = click.echo
    if result.stopped == "interrupted":
        planned = f" of {options.steps}" if options.steps else ""
        echo(f"interrupted after {result.steps_done}{planned} steps; saved that progress", err=True)
    echo(f"trained {c.num_params():,} parameters ({c.n_layer} layer{'s' * (c.n_layer > 1)}, n_embd {c.n_embd}, "
         f"{c.n_head} heads, block {c.block_size}, vocabulary {c.vocab_size}) on {n_train:,} documents"
         + (f" ({result.truncated:,} longer than the block, truncated)" if result.truncated else ""))
    optimizing = max(result.seconds - result.eval_seconds, 1e-9)
    rate = result.steps_done / optimizing
    losses = ([f"loss {result.train_loss:.4f}"] if result.train_loss is not None else [])  # None: no step done
    if result.val_loss is not None:
        losses.append(f"held-out {result.val_loss:.4f} on {n_held:,} documents")
    evaluating = f" + {result.eval_seconds:.2f} s of held-out evaluation" if n_held else ""
    echo(f"{result.steps_done} step{'s' * (result.steps_done != 1)} in {optimizing:.2f} s ({rate:,.0f} steps/s, "
         f"{rate * options.batch_size:,.0f} documents/s){evaluating}" + (f"; {', '.join(losses)}" if losses else ""))
    if result.best_step != result.steps_done:
        echo(f"kept the weights of step {result.best_step}, the best held-out evaluation (--keep-last keeps the last)")
    echo(f"wrote {out} and {metrics}")
    if result.stopped == "interrupted":  # the shell's code for the signal, so `mgpt-train && ...` does not go on
        raise SystemExit(128 + (stop[0] if stop else signal.SIGINT))


@click.command(cls=Command, context_settings=CONTEXT_SETTINGS)
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path), default=Path(ckpt_io.DEFAULT_PATH))
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="UTF-8 text file, one document per line. [default: the shipped names]")
@click.option("--labeled", is_flag=True,
              help="Each line is LABEL[,LABEL...]<TAB>TEXT: score each text given its labels (a labeled model's).")
@click.version_option(__version__, prog_name="mgpt")
def eval_command(model_path, data, labeled):
    """Mean negative log-likelihood per predicted token (nats) of MODEL (a checkpoint .npz or an
    exported .onnx, told apart by their content; default: mgpt-checkpoint.npz, where mgpt-train
    writes) on a data file; with --labeled, of each text given its labels."""
    path = data if data is not None else default_data_path()
    try:
        exported = not is_checkpoint(model_path)  # scored by onnxruntime, through the runtime's Generator
        if exported:
            generator = Generator(model_path)
            vocab, block_size = generator.vocab, generator.block_size
        else:
            ckpt = ckpt_io.load(model_path)
            vocab, block_size = ckpt.vocab, ckpt.config.block_size
            need = sum(memory_needed(ckpt.config, 1, EVAL_ROWS).values())
            if need > available_memory():
                raise DataError(f"scoring with block size {block_size:,} needs about {size_text(need)} of memory, "
                                f"{size_text(available_memory())} is available")
        # 1) a first pass checks the whole file (UTF-8, line lengths, the model's characters) and
        #    counts, before any scoring; 2) a second scores it. Both stream: any size in bounded memory.
        if labeled != bool(vocab.labels):
            raise DataError(f"the model {'has' if vocab.labels else 'has no'} labels; "
                            f"{'pass' if vocab.labels else 'drop'} --labeled (docs/labels.md)")
        chars, documents, tokens, truncated = set(), 0, 0, 0
        text_block = block_size - len(vocab.labels)  # the label tokens take positions of the block
        for part in stream_corpus(path, labeled=labeled):
            chars.update(part.chars)
            lengths = part.lengths(np.arange(len(part)))
            documents += len(part)
            tokens += int(np.minimum(lengths + 1, text_block).sum())
            truncated += int(np.sum(lengths + 1 > text_block))
            if labeled:
                label_tokens(part.label_lists, vocab)  # a DataError for a label the model lacks
        unknown = sorted(chars - set(vocab.chars))
        if unknown:
            raise DataError(f"{len(unknown)} characters of the data are not in the model's vocabulary "
                            f"({''.join(unknown[:10])!r}); score text made of the model's characters")
        if exported and not labeled:
            nll = generator.score(iter_documents(path))
        elif exported:  # each label list's texts scored given it: the sum of the lists' mean x tokens
            total = 0.0
            for part in stream_corpus(path, labeled=True):
                for number, labels in enumerate(part.label_lists):
                    rows = np.flatnonzero(part.label_of == number)
                    if len(rows):
                        n = int(np.minimum(part.lengths(rows) + 1, text_block).sum())
                        total += n * generator.score(part.documents(rows), labels=list(labels))
            nll = total / tokens
        else:
            total = 0.0
            for part in stream_corpus(path, labeled=labeled):
                for lo in range(0, len(part), EVAL_ROWS):
                    framed = part.frame(np.arange(lo, min(lo + EVAL_ROWS, len(part))), vocab, block_size)
                    total += nll_total(ckpt.params, ckpt.config, framed)[0]
            nll = total / tokens
    except (*USER_ERRORS, ModelError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"{nll:.4f} nats/token over {tokens:,} predicted tokens of {documents:,} documents"
               f" (block {block_size}; {truncated:,} truncated)")


def is_checkpoint(path: Path) -> bool:
    """Whether ``path`` holds a checkpoint (a zip archive, as .npz files are) rather than an ONNX
    model: told by the first bytes (a zip's "PK", or an ONNX ModelProto's first field, its IR
    version), not by the name or the case of its suffix. Only a file that is neither (or cannot be
    read) goes by its suffix, for the right loader's message."""
    try:
        check_input(path, "model", "")
        with open(path, "rb") as f:
            head = f.read(4)
        if head == b"PK\x03\x04":
            return True
        if head[:1] == b"\x08":  # field 1 (ir_version), a varint: how every ONNX file begins
            return False
    except (PathError, OSError):
        pass
    return path.suffix.lower() == ".npz"
