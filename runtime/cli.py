"""``mgpt-generate``: a thin click command over mgpt.runtime.Generator.

Start-up time is part of the command's speed (20 samples take a millisecond; Python and onnxruntime
take the rest), so this module imports only click and the runtime.
"""

from __future__ import annotations

import sys
from itertools import islice
from json.encoder import encode_basestring

import click

from .command import CONTEXT_SETTINGS, Command, FiniteRange, OptionError
from .generator import DEFAULT_BATCH_SIZE, Generator
from .modelfile import ModelError

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


@click.command(cls=Command, context_settings=CONTEXT_SETTINGS)
@click.option("--model", "model_path", default=None,
              help="An mgpt .onnx file, or a shipped model by name: names (the default) or names-large.")
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
@click.version_option(package_name="mgpt", prog_name="mgpt")
def generate_command(model_path, num_samples, temperature, top_k, top_p, seed, prefix, max_length, labels,
                     batch_size, fmt, threads):
    """Sample names (or whatever the model learned) from an mgpt ONNX model."""
    try:
        generator = Generator(model_path, threads=threads)
        samples = generator.samples(num_samples, temperature, top_k, top_p, seed, prefix, max_length, batch_size,
                                    labels=list(labels))
    except ModelError as e:
        raise click.ClickException(str(e)) from e
    except ValueError as e:  # an option the model cannot take: a prefix outside its vocabulary or block
        hint = _hint(str(e))
        raise OptionError(f"Invalid value for {hint}: {e}" if hint else str(e)) from e
    # stdout is guarded by Command: a closed, full or broken one is one line or a quiet exit
    show, write = FORMATS[fmt], sys.stdout.write
    try:
        start = 1
        while texts := list(islice(samples, CHUNK)):
            write(show(start, texts))
            start += len(texts)
    except ModelError as e:  # a model that fails only at some later step, or gives NaN logits
        raise click.ClickException(str(e)) from e


def _hint(message: str) -> str | None:
    """The option a Generator's ValueError is about: its messages start with the argument's name."""
    first = message.split(" ", 1)[0]
    if first in {"labels", "unknown", "this"}:  # Vocab.label_ids's messages
        return "--label"
    return f"--{first.replace('_', '-')}" if first in {"prefix", "max_length", "temperature", "top_k", "top_p"} else None


if __name__ == "__main__":
    generate_command()
