"""The character vocabulary: one home for tokenization, shared by training, export and runtime.

Id ``i`` is ``chars[i]`` (the sorted set of characters of the training data) and ``bos = len(chars)``
marks both the start and the end of a document, so ``size = len(chars) + 1``.
Pure Python on purpose: the runtime imports it and must stay light.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence


class VocabError(ValueError):
    """Text that the vocabulary cannot encode, or a malformed vocabulary."""


@dataclass(frozen=True)
class Vocab:
    chars: tuple[str, ...]  # sorted, distinct, one code point each

    def __post_init__(self):
        chars = tuple(self.chars)
        object.__setattr__(self, "chars", chars)
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
        return len(self.chars) + 1

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
