"""Set controls (novel, exclude, unique) by rejection: attempts drawn as the samples of an
uncontrolled call, judged in order, the accepted ones returned, at most ``max_attempts`` of them.

Attempt i is sample i of the same call without set controls, so which attempts are accepted, and
therefore sample k, cannot depend on how the attempts were batched or threaded: rounds of attempts
are drawn in order, and those drawn past the last one needed are discarded. docs/sampling-controls.md
is the reference.
"""

from __future__ import annotations

from itertools import islice
from math import ceil
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

import numpy as np

from .plan import check_count
from .vocab import Vocab

if TYPE_CHECKING:
    from .novelty import NoveltyFilter


JUDGED = 1024  # attempts judged at once (the novelty filter asked with NumPy for all of them)


class SamplingError(ValueError):
    """The attempt cap was reached before enough samples were accepted: ``found`` samples were,
    in ``attempts`` attempts. ``samples`` holds them for ``Generator.generate``; ``Generator.samples``
    has yielded them already and keeps none (its memory stays bounded), so there it is empty."""

    def __init__(self, message: str, found: int, attempts: int, samples: list[str] | None = None):
        super().__init__(message)
        self.found, self.attempts, self.samples = found, attempts, [] if samples is None else samples


def default_max_attempts(num_samples: int) -> int:
    return max(1000, 50 * num_samples)


def cap_message(found: int, wanted: int, attempts: int, option: str = "max_attempts") -> str:
    """The cap's one line (the CLI passes its flag's name as ``option``)."""
    return (f"found {found:,} of {wanted:,} samples in {attempts:,} attempts ({option}); the controls reject almost "
            f"every sample: loosen them or raise {option}")


class Judge:
    """Which attempts, taken in order, are accepted: those not in the novelty filter (if given),
    not excluded, and (if ``unique``) not equal to an earlier accepted one."""

    def __init__(self, vocab: Vocab, novelty: NoveltyFilter | None, exclude: frozenset[str], unique: bool):
        self.vocab, self.novelty, self.exclude = vocab, novelty, exclude
        self.seen: set[str] | None = set() if unique else None

    def accept(self, texts: list[str]) -> list[bool]:
        """The verdicts on consecutive attempts; the novelty filter asked for all of them at once."""
        if self.novelty is not None:
            from .novelty import encode_texts

            known = self.novelty.contains_many(*encode_texts(texts, self.vocab.chars)).tolist()
        else:
            known = [False] * len(texts)
        exclude, seen, verdicts = self.exclude, self.seen, []
        for text, member in zip(texts, known):
            ok = not member and text not in exclude and (seen is None or text not in seen)
            if ok and seen is not None:
                seen.add(text)
            verdicts.append(ok)
        return verdicts


def check_set_options(novel, unique, exclude, max_attempts) -> tuple[bool, bool, frozenset[str], int | None]:
    """The set controls' options after checking: TypeError for a wrong type, ValueError for a bad value."""
    for name, value in (("novel", novel), ("unique", unique)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    if exclude is None:
        strings = frozenset()
    else:
        if isinstance(exclude, (str, bytes)) or not isinstance(exclude, Iterable):
            raise TypeError(f"exclude must be a list of strings, got {type(exclude).__name__} "
                            f"{str(exclude)[:60]!r}")
        strings = frozenset(exclude)
        bad = next((s for s in strings if not isinstance(s, str)), None)
        if bad is not None:
            raise TypeError(f"exclude must hold strings only, got {type(bad).__name__} {bad!r}")
    if max_attempts is not None:
        max_attempts = check_count("max_attempts", max_attempts, 1)
    return bool(novel), bool(unique), strings, max_attempts


def accepted(attempts: Callable[[range], Iterator[str]], judge: Judge, wanted: int,
             max_attempts: int) -> Iterator[tuple[int, str]]:
    """(attempt, text) of the first ``wanted`` accepted attempts, in order. ``attempts(r)`` draws
    the attempts of range ``r`` in order; rounds are sized by the acceptance rate seen so far, so a
    call that accepts most attempts draws few extra. SamplingError at the cap."""
    found = tried = 0
    while found < wanted:
        if tried >= max_attempts:
            raise SamplingError(cap_message(found, wanted, tried), found, tried)
        need = wanted - found
        rate = max(found / tried, 1 / 64) if tried else 1.0
        size = min(max_attempts - tried, max(need, ceil(need / rate * 1.2)))
        stream = attempts(range(tried, tried + size))
        try:
            while texts := list(islice(stream, JUDGED)):
                for i, (text, ok) in enumerate(zip(texts, judge.accept(texts)), tried):
                    if ok:
                        found += 1
                        yield i, text
                        if found == wanted:
                            return
                tried += len(texts)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:  # stop the round's batches that are not needed
                close()
