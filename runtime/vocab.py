"""The character vocabulary: one home for tokenization, shared by training, export and runtime.

Id ``i`` is ``chars[i]`` (the sorted set of characters of the training data) and ``bos = len(chars)``
marks both the start and the end of a document, so ``size = len(chars) + 1``. A labeled model's
label tokens follow BOS, group by group (docs/labels.md): ``size`` counts them too, and ``drawable``
(characters and BOS, the only tokens ever drawn or predicted) does not.
Pure Python on purpose: the runtime imports it and must stay light.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence


class VocabError(ValueError):
    """Text that the vocabulary cannot encode, or a malformed vocabulary."""


def label_problem(label) -> str | None:
    """Why ``label`` cannot be a label (None if it can): one home for the rule that training data,
    checkpoints, metadata and the runtimes' arguments share."""
    if not isinstance(label, str) or not label:
        return "a label must be a non-empty string"
    if any(c in ",\t" or len(f"a{c}a".splitlines()) != 1 or 0xD800 <= ord(c) < 0xE000 for c in label):
        return f"label {label!r} holds a comma, a tab, a line break or a lone surrogate"
    if label.strip() != label:
        return f"label {label!r} begins or ends with a space"
    return None


@dataclass(frozen=True)
class Vocab:
    chars: tuple[str, ...]  # sorted, distinct, one code point each
    # a labeled model's label groups (e.g. sex, then decade), each sorted: their ids follow BOS in
    # this order; () for a model without labels
    labels: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self):
        chars = tuple(self.chars)
        object.__setattr__(self, "chars", chars)
        groups = tuple(tuple(group) for group in self.labels)
        object.__setattr__(self, "labels", groups)
        flat = [label for group in groups for label in group]
        for label in flat:
            problem = label_problem(label)
            if problem:
                raise VocabError(problem)
        if any(not group or list(group) != sorted(group) for group in groups) or len(set(flat)) != len(flat):
            raise VocabError("every label group must be non-empty and sorted, and no label may appear twice")
        object.__setattr__(self, "_label_ids", {label: len(chars) + 1 + i for i, label in enumerate(flat)})
        object.__setattr__(self, "_label_group", {label: g for g, group in enumerate(groups) for label in group})
        if not chars:
            raise VocabError("the vocabulary is empty")
        if any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise VocabError("every vocabulary entry must be a single character")
        if list(chars) != sorted(set(chars)):
            raise VocabError("the vocabulary must be sorted and free of duplicates")
        object.__setattr__(self, "_ids", {c: i for i, c in enumerate(chars)})

    @classmethod
    def from_documents(cls, documents: Iterable[str]) -> "Vocab":
        return cls(tuple(sorted(set("".join(documents)))))

    @property
    def bos(self) -> int:
        return len(self.chars)

    @property
    def size(self) -> int:
        """Tokens the model embeds (its vocab_size): characters, BOS and label tokens."""
        return len(self.chars) + 1 + len(self._label_ids)

    @property
    def drawable(self) -> int:
        """Tokens the model predicts (characters and BOS, ids 0..bos): logits past these are label
        tokens', never drawn nor scored."""
        return len(self.chars) + 1

    def label_ids(self, labels) -> tuple[int, ...]:
        """The token ids of ``labels`` (one per group, in any order) in the groups' order: what a
        labeled document's context holds after BOS. TypeError unless a list or tuple of strings;
        ValueError for an unknown label, two of one group, or a group left out (one line that
        lists the model's labels)."""
        if not self.labels:
            if labels:
                raise ValueError(f"labels {list(labels)!r} were given but this model has no labels")
            return ()
        if labels is None:
            labels = []  # a labeled model samples only given its labels: "needs one from each group"
        if isinstance(labels, str) or not isinstance(labels, (list, tuple)):
            raise TypeError(f"labels must be a list of strings, one per group ({self.describe_labels()}), "
                            f"got {type(labels).__name__} {labels!r}")
        if not all(isinstance(label, str) for label in labels):
            raise TypeError(f"labels must be strings, got {[type(x).__name__ for x in labels]}")
        unknown = [label for label in labels if label not in self._label_ids]
        if unknown:
            raise ValueError(f"unknown label {unknown[0]!r}; this model's labels are {self.describe_labels()}")
        chosen: dict[int, str] = {}
        for label in labels:
            group = self._label_group[label]
            if group in chosen:
                raise ValueError(f"labels {chosen[group]!r} and {label!r} are of one group; give one label from "
                                 f"each group: {self.describe_labels()}")
            chosen[group] = label
        if len(chosen) < len(self.labels):
            missing = [g for g in range(len(self.labels)) if g not in chosen]
            raise ValueError(f"this model needs one label from each group; none given from "
                             f"{' | '.join(self.labels[missing[0]])} (its labels are {self.describe_labels()})")
        return tuple(self._label_ids[chosen[g]] for g in range(len(self.labels)))

    def describe_labels(self) -> str:
        """The label groups as one line, e.g. ``F | M; 1880s | 1890s``."""
        return "; ".join(" | ".join(group) for group in self.labels) if self.labels else "none"

    def missing(self, text: str) -> list[str]:
        """The distinct characters of ``text`` that have no id, in order of appearance."""
        return list(dict.fromkeys(c for c in text if c not in self._ids))

    def encode(self, text: str) -> list[int]:
        """Character ids of ``text`` (no BOS added)."""
        unknown = self.missing(text)
        if unknown:
            shown = "".join(unknown[:10])
            raise VocabError(f"characters not in the vocabulary: {shown!r}")
        return [self._ids[c] for c in text]

    def encode_document(self, text: str) -> list[int]:
        """``[BOS] + ids + [BOS]``: how a document is framed for training and scoring."""
        return [self.bos, *self.encode(text), self.bos]

    def decode(self, ids: Sequence[int]) -> str:
        """Characters of ``ids``, skipping BOS."""
        return "".join(self.chars[i] for i in ids if i != self.bos)
