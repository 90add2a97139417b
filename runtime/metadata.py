"""What an mgpt ``.onnx`` file says about itself: its input/output names and ``metadata_props``.

One home for these names: the exporter writes them, the runtime (and any app) reads them.
Every value in ``metadata_props`` is a string; structured values are JSON.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

from .vocab import Vocab, VocabError

FORMAT = "mgpt-step"  # the "format" property of every mgpt step graph
FORMAT_VERSION = 1
LABELED_VERSION = 2  # a model with label tokens (docs/labels.md): key "labels"; older runtimes refuse it

TOKEN, POSITION, LOGITS = "token", "position", "logits"


def past_names(layer: int) -> tuple[str, str]:
    return f"past_key_values.{layer}.key", f"past_key_values.{layer}.value"


def present_names(layer: int) -> tuple[str, str]:
    return f"present.{layer}.key", f"present.{layer}.value"


class MetadataError(ValueError):
    """metadata_props that do not describe an mgpt step graph."""


_SHOWN = 60  # characters of a file's text quoted in a message: a hostile file's may be megabytes


def shown(text: str) -> str:
    """``text`` from a file as a message quotes it: its repr, cut to _SHOWN characters."""
    return repr(text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…")


_INTS = ("bos", "vocab_size", "block_size", "n_layer", "n_head", "head_dim", "n_embd")
_DIGITS = re.compile(r"[0-9]{1,12}")  # plain decimal: int() would also take " 8", "8_0" or Arabic digits


# how both runtimes refuse NaN, Infinity or -Infinity in metadata (metadata.js says it too)
NOT_STANDARD_JSON = "not standard JSON; re-export the model with this mgpt, which writes it as null"


def strict_json(text: str):
    """json.loads that refuses duplicate keys (which would silently keep the last) and NaN or
    Infinity, which Python writes by default but standard JSON (and so JavaScript) does not take."""
    def pairs(items):
        keys = [k for k, _ in items]
        if len(set(keys)) != len(keys):
            raise ValueError(f"a JSON object repeats a key ({shown(sorted(k for k in keys if keys.count(k) > 1)[0])})")
        return dict(items)

    def constant(name: str):
        raise ValueError(f"{name} is {NOT_STANDARD_JSON}")

    return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)


def finite_json(value):
    """``value`` (JSON-like: dicts, lists, numbers, strings) with every NaN or infinity made None.
    Python's json writes them as NaN and Infinity, which are not JSON: a JavaScript app reading the
    record would fail on them (a run of 0 steps has no train loss). The checkpoint's meta uses it too."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def _varint(data: memoryview, i: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if i >= len(data) or shift > 63:
            raise MetadataError("the file is not a well-formed ONNX protobuf (a truncated number)")
        byte = data[i]
        value |= (byte & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if byte < 0x80:
            return value, i


def _fields(data: memoryview):
    """(field number, value) of a protobuf message's fields: an int for varints and fixed-size
    numbers, a memoryview for length-delimited ones (strings, sub-messages)."""
    i = 0
    while i < len(data):
        tag, i = _varint(data, i)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, i = int.from_bytes(data[i : i + size], "little"), i + size
        elif wire == 2:
            size, i = _varint(data, i)
            if i + size > len(data):
                raise MetadataError("the file is not a well-formed ONNX protobuf (a field runs past its end)")
            value, i = data[i : i + size], i + size
        else:
            raise MetadataError(f"the file is not a well-formed ONNX protobuf (wire type {wire})")
        yield field, value


def read_props(model_bytes: bytes) -> dict[str, str]:
    """``metadata_props`` read from the ModelProto's own bytes (field 14, key 1 and value 2 of
    each entry), refusing a repeated key and text that is not UTF-8: onnxruntime's map keeps one
    of two values silently, and its decoding error is a bare UnicodeDecodeError."""
    props: dict[str, str] = {}
    for field, value in _fields(memoryview(model_bytes)):
        if field != 14 or not isinstance(value, memoryview):
            continue
        entry = {1: "", 2: ""}
        for key, text in _fields(value):
            if key in entry and isinstance(text, memoryview):
                try:
                    entry[key] = bytes(text).decode("utf-8")
                except UnicodeDecodeError:
                    raise MetadataError("its metadata holds text that is not UTF-8") from None
        if entry[1] in props:
            raise MetadataError(f"its metadata repeats the key {shown(entry[1])}")
        props[entry[1]] = entry[2]
    return props


def _line_character(c: str) -> bool:
    """Whether ``c`` can be a token: a character that a line of text can hold (no line break,
    which training data cannot contain, and no lone surrogate, which no text can be written with)."""
    return not 0xD800 <= ord(c) < 0xE000 and len(f"a{c}a".splitlines()) == 1


@dataclass(frozen=True)
class ModelInfo:
    vocab: Vocab
    block_size: int
    n_layer: int
    n_head: int
    head_dim: int
    training: dict = field(default_factory=dict)  # the checkpoint's training record
    producer: str = ""  # e.g. "mgpt 0.1.0"
    novelty: str | None = None  # the "novelty" key's JSON text (docs/sampling-controls.md), read when used

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
        labeled = {"labels": json.dumps([list(g) for g in self.vocab.labels], ensure_ascii=False)} if self.vocab.labels else {}
        return {"format": FORMAT, "format_version": str(LABELED_VERSION if labeled else FORMAT_VERSION), **ints,
                "vocab": json.dumps(list(self.vocab.chars), ensure_ascii=False), **labeled,
                "training": json.dumps(finite_json(self.training), ensure_ascii=False, allow_nan=False),
                "producer": self.producer, **({} if self.novelty is None else {"novelty": self.novelty})}

    @classmethod
    def from_props(cls, props: dict[str, str]) -> "ModelInfo":
        if props.get("format") != FORMAT:
            raise MetadataError(f"its metadata has no format {FORMAT!r}, so it was not written by mgpt-export")
        version = props.get("format_version")
        if version not in (str(FORMAT_VERSION), str(LABELED_VERSION)):
            raise MetadataError(f"its format version is {'missing' if version is None else shown(version)}; this "
                                f"mgpt reads versions {FORMAT_VERSION} and {LABELED_VERSION}: re-export it with this mgpt")
        if (version == str(LABELED_VERSION)) != ("labels" in props):
            raise MetadataError(f"its metadata is malformed: format version {version} "
                                f"{'needs' if version == str(LABELED_VERSION) else 'cannot have'} a labels entry")
        try:
            raw = {name: props[name] for name in _INTS}
            bad = [name for name, text in raw.items() if not _DIGITS.fullmatch(text)]
            if bad:
                raise ValueError(f"{bad[0]} is {shown(raw[bad[0]])}, not a plain positive integer")
            ints = {name: int(text) for name, text in raw.items()}
            chars = strict_json(props["vocab"])
            if not isinstance(chars, list):
                raise ValueError("vocab is not a JSON list")
            groups = strict_json(props.get("labels", "[]"))
            if not isinstance(groups, list) or not all(isinstance(g, list) for g in groups) \
                    or version == str(LABELED_VERSION) and not groups:
                raise ValueError("labels is not a non-empty JSON list of lists")
            vocab = Vocab(tuple(chars), tuple(tuple(g) for g in groups))
            training = strict_json(props.get("training") or "{}")
        except (KeyError, ValueError, TypeError, VocabError, RecursionError) as e:
            raise MetadataError(f"its metadata is incomplete or malformed ({type(e).__name__}: {e})") from None
        if not all(_line_character(c) for c in vocab.chars):
            raise MetadataError("its vocabulary holds a line break or a lone surrogate, which no document can")
        info = cls(vocab, ints["block_size"], ints["n_layer"], ints["n_head"], ints["head_dim"],
                   training if isinstance(training, dict) else {}, props.get("producer", ""), props.get("novelty"))
        if (ints["bos"], ints["vocab_size"], ints["n_embd"]) != (info.bos, info.vocab_size, info.n_embd):
            raise MetadataError("its metadata disagrees with itself (bos, vocab_size or n_embd vs the vocabulary "
                                "and heads)")
        if min(ints.values()) < 1:
            raise MetadataError("its metadata has a non-positive size")
        return info

    def check_sizes(self, file_size: int) -> None:
        """Sizes a file of ``file_size`` bytes can hold: its float32 tables (the embeddings, the
        positions and lm_head) and each layer's weights, so a 23 kB file cannot declare 10**9
        positions or layers and make the loading check run or allocate for ever."""
        C, V = self.n_embd, self.vocab_size
        floats = (2 * V + self.block_size) * C + self.n_layer * 12 * C * C
        if 4 * floats > file_size:
            raise MetadataError(f"its metadata declares sizes (block_size {self.block_size:,}, n_layer "
                                f"{self.n_layer:,}, n_embd {C:,}, vocab_size {V:,}) whose weights need "
                                f"{4 * floats:,} bytes, more than the file's {file_size:,}")
