"""``mgpt-generate``: a thin click command over mgpt.runtime.Generator.

Start-up time is part of the command's speed (20 samples take a millisecond; Python and onnxruntime
take the rest), so this module imports only click and the runtime.
"""

from __future__ import annotations

import json
import sys
from typing import Iterator
from json.encoder import encode_basestring

import click

from .command import CONTEXT_SETTINGS, Command, FiniteRange, OptionError
from .generator import DEFAULT_BATCH_SIZE, Generator
from .modelfile import ModelError
from .paths import PathError, read_lines
from .rejection import SamplingError
from . import rejection, sampling
from .tracing import MAX_TRACES

# --format: how a run of samples, the first numbered `start` (counted from 1), is printed. The
# output is written a batch at a time, one string per batch: with -n 1000000 a write per line
# cost more than drawing the samples.
FORMATS = {
    "lines": lambda start, texts: "".join(f"sample {i:2d}: {text}\n" for i, text in enumerate(texts, start)),  # the seed's
    "names": lambda start, texts: "\n".join(texts) + "\n",
    # what json.dumps({"sample": i, "text": text}, ensure_ascii=False) prints, at a tenth of its cost
    "jsonl": lambda start, texts: "".join(f'{{"sample": {i}, "text": {encode_basestring(text)}}}\n'
                                          for i, text in enumerate(texts, start)),
}
CHUNK = 4096  # samples per write
MAX_EXCLUDE_BYTES = 64 << 20
EXCLUDE_HINT = "pass a UTF-8 text file with one string per line to --exclude"


@click.command(cls=Command, context_settings=CONTEXT_SETTINGS)
@click.option("--model", "model_path", default=None,
              help="An mgpt .onnx file, or a shipped model by name: names (the default), names-large or names-era "
                   "(labeled: give --label).")
@click.option("-n", "--num-samples", type=click.IntRange(min=0), default=20, show_default=True,
              help="Samples to draw.")
@click.option("-t", "--temperature", type=FiniteRange(min=0), default=0.5, show_default=True,
              help="Softmax temperature; 0 is greedy (always the most likely character).")
@click.option("--top-k", type=click.IntRange(min=1), default=None, help="Draw among the K most likely tokens only.")
@click.option("--top-p", type=FiniteRange(min=0, max=1, min_open=True), default=None,
              help="Draw among the most likely tokens that together reach probability P only.")
@click.option("--seed", type=int, default=None,
              help="Make the output reproducible: sample i is the same whatever -n and --batch-size. "
                   "[default: a fresh seed every run]")
@click.option("--prefix", default="", help="Begin every sample with these characters.")
@click.option("--max-length", type=click.IntRange(min=1), default=None,
              help="Longest sample in characters, the prefix included. [default: the model's block size]")
@click.option("--label", "labels", multiple=True, metavar="LABEL",
              help="A labeled model's label, one from each of its groups: --label F --label 1950s "
                   "(docs/labels.md).")
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT_BATCH_SIZE, show_default=True,
              help="Samples in flight at once: bounds memory; any -n streams out in batches.")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default="lines", show_default=True,
              help="lines: the seed's 'sample  1: kaya'; names: one bare sample per line; jsonl: JSON lines.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Threads that share large batches (256 rows each at least). [default: the usable CPUs]")
@click.option("--min-length", type=click.IntRange(min=0), default=None,
              help="Shortest sample in characters, the prefix included.")
@click.option("--suffix", default="", help="End every sample with these characters.")
@click.option("--contains", default="", help="Every sample contains these characters (the prefix included).")
@click.option("--pattern", default=None,
              help="A regular expression the whole sample matches, e.g. '[a-z]{4,6}(a|ie)' (a subset: see "
                   "docs/sampling-controls.md).")
@click.option("--novel", is_flag=True, help="Never a document of the model's training data (held-out included).")
@click.option("--unique", is_flag=True, help="No two samples of the run are equal.")
@click.option("--exclude", "exclude_path", default=None, metavar="FILE",
              help="Never one of the strings of FILE (UTF-8, one per line).")
@click.option("--max-attempts", type=click.IntRange(min=1), default=None,
              help="Most samples drawn to find -n accepted ones with --novel, --unique or --exclude. "
                   "[default: max(1000, 50 x -n)]")
@click.option("--trace", is_flag=True,
              help=f"Print each sample's steps: the model's predictions, the random pick (at most {MAX_TRACES} "
                   f"samples; --format jsonl prints them as JSON).")
@click.version_option(package_name="mgpt", prog_name="mgpt")
def generate_command(model_path, num_samples, temperature, top_k, top_p, seed, prefix, max_length, labels,
                     batch_size, fmt, threads, min_length, suffix, contains, pattern, novel, unique, exclude_path,
                     max_attempts, trace):
    """Sample names (or whatever the model learned) from an mgpt ONNX model."""
    if trace and fmt == "names":
        raise OptionError("--trace prints steps, which --format names has no room for; use --format lines or jsonl")
    if trace and num_samples > MAX_TRACES:
        raise OptionError(f"--trace prints about ten lines per character: at most {MAX_TRACES} samples, "
                          f"not {num_samples:,}; lower -n")
    try:
        exclude = None if exclude_path is None else read_lines(exclude_path, "exclude file", EXCLUDE_HINT,
                                                                 MAX_EXCLUDE_BYTES)
    except PathError as e:
        raise click.ClickException(str(e)) from e
    controls = dict(min_length=min_length, suffix=suffix, contains=contains, pattern=pattern, novel=novel,
                    unique=unique, exclude=exclude, max_attempts=max_attempts)
    try:
        generator = Generator(model_path, threads=threads)
        if trace:
            seed = sampling.new_seed() if seed is None else seed  # every sample's trace from the same call
            samples = _traces(generator, num_samples, fmt, dict(temperature=temperature, top_k=top_k, top_p=top_p,
                                                                seed=seed, prefix=prefix, max_length=max_length,
                                                                labels=list(labels), **controls))
        else:
            samples = generator.samples(num_samples, temperature, top_k, top_p, seed, prefix, max_length,
                                        batch_size, labels=list(labels), **controls)
    except ModelError as e:
        raise click.ClickException(str(e)) from e
    except ValueError as e:  # an option the model cannot take: a prefix outside its vocabulary or block
        hint = _hint(str(e))
        raise OptionError(f"Invalid value for {hint}: {e}" if hint else str(e)) from e
    # stdout is guarded by Command: a closed, full or broken one is one line or a quiet exit
    show, write = (lambda start, texts: "".join(texts)) if trace else FORMATS[fmt], sys.stdout.write
    start, chunk, buffer, capped = 1, 1 if trace else CHUNK, [], None  # a trace is written as soon as it is made
    try:
        for text in samples:
            buffer.append(text)
            if len(buffer) == chunk:
                write(show(start, buffer))
                start, buffer = start + len(buffer), []
    except SamplingError as e:  # the cap: what was found is printed, then the error
        capped = e
    except ModelError as e:  # a model that fails only at some later step, or gives NaN logits
        raise click.ClickException(str(e)) from e
    if buffer:
        write(show(start, buffer))
    if capped is not None:
        raise click.ClickException(rejection.cap_message(capped.found, num_samples, capped.attempts,
                                                         "--max-attempts")) from capped

def _traces(generator: Generator, n: int, fmt: str, options: dict) -> Iterator[str]:
    """Each sample's trace, as text or as a JSON line; options are checked before the first."""
    from .tracing import render

    generator.plan(**{k: options[k] for k in ("temperature", "top_k", "top_p", "seed", "prefix", "max_length",
                                               "labels", "min_length", "suffix", "contains", "pattern")})
    if n and options["novel"]:
        generator.novelty()
    for index in range(n):
        data = generator.trace(index=index, **options)
        yield (json.dumps(data, ensure_ascii=False) + "\n") if fmt == "jsonl" else render(data, index + 1)


def _hint(message: str) -> str | None:
    """The option a Generator's ValueError is about: its messages start with the argument's name."""
    first = message.split(" ", 1)[0]
    if first in {"labels", "unknown", "this"}:  # Vocab.label_ids's messages
        return "--label"
    return f"--{first.replace('_', '-')}" if first in {"prefix", "max_length", "temperature", "top_k", "top_p",
                                                        "min_length", "suffix", "contains", "pattern"} else None


if __name__ == "__main__":
    generate_command()
