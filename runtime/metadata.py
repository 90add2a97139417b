"""What an mgpt ``.onnx`` file says about itself: its input/output names and ``metadata_props``.

One home for these names: the exporter writes them, the runtime (and any app) reads them.
Every value in ``metadata_props`` is a string; structured values are JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .vocab import Vocab, VocabError

FORMAT = "mgpt-step"  # the "format" property of every mgpt step graph
FORMAT_VERSION = 1

TOKEN, POSITION, LOGITS = "token", "position", "logits"


def past_names(layer: int) -> tuple[str, str]:
    return f"past_key_values.{layer}.key", f"past_key_values.{layer}.value"


def present_names(layer: int) -> tuple[str, str]:
    return f"present.{layer}.key", f"present.{layer}.value"


class MetadataError(ValueError):
    """metadata_props that do not describe an mgpt step graph."""


_INTS = ("bos", "vocab_size", "block_size", "n_layer", "n_head", "head_dim", "n_embd")


@dataclass(frozen=True)
class ModelInfo:
    vocab: Vocab
    block_size: int
    n_layer: int
    n_head: int
    head_dim: int
    training: dict = field(default_factory=dict)  # the checkpoint's training record
    producer: str = ""  # e.g. "mgpt 0.1.0"

    @property
    def n_embd(self) -> int:
        return self.n_head * self.head_dim

    @property
    def bos(self) -> int:
        return self.vocab.bos

    @property
    def vocab_size(self) -> int:
        return self.vocab.size

    def to_props(self) -> dict[str, str]:
        ints = {name: str(getattr(self, name)) for name in _INTS}
        return {"format": FORMAT, "format_version": str(FORMAT_VERSION), **ints,
                "vocab": json.dumps(list(self.vocab.chars), ensure_ascii=False),
                "training": json.dumps(self.training, ensure_ascii=False), "producer": self.producer}

    @classmethod
    def from_props(cls, props: dict[str, str]) -> "ModelInfo":
        if props.get("format") != FORMAT:
            raise MetadataError(f"its metadata has no format {FORMAT!r}, so it was not written by mgpt-export")
        if props.get("format_version") != str(FORMAT_VERSION):
            raise MetadataError(f"its format version is {props.get('format_version')!r}; this mgpt reads "
                                f"version {FORMAT_VERSION}: re-export it with this mgpt")
        try:
            ints = {name: int(props[name]) for name in _INTS}
            vocab = Vocab(tuple(json.loads(props["vocab"])))
            training = json.loads(props.get("training") or "{}")
        except (KeyError, ValueError, TypeError, VocabError) as e:
            raise MetadataError(f"its metadata is incomplete or malformed ({type(e).__name__}: {e})") from None
        info = cls(vocab, ints["block_size"], ints["n_layer"], ints["n_head"], ints["head_dim"],
                   training if isinstance(training, dict) else {}, props.get("producer", ""))
        if (ints["bos"], ints["vocab_size"], ints["n_embd"]) != (info.bos, info.vocab_size, info.n_embd):
            raise MetadataError("its metadata disagrees with itself (bos, vocab_size or n_embd vs the vocabulary "
                                "and heads)")
        if min(ints.values()) < 1:
            raise MetadataError("its metadata has a non-positive size")
        return info
