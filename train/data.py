"""Documents: a one-document-per-line text file read in chunks into a compact ``Corpus`` (every
document's code points end to end, plus where each starts), the held-out split, and the framing of
documents as ``[BOS] + ids + [BOS]`` padded to the block, a batch at a time.

A file is never held whole: it is read ``CHUNK_BYTES`` at a time, checked (UTF-8, line length) in
a first pass that keeps nothing, then reduced to its documents' characters in a second, stored in
the smallest integer type that holds the largest code point (one byte a character for ASCII and
Latin-1 text) with a 4-byte start per document. docs/data.md has the format and the figures.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from mgpt.runtime.paths import PathError, check_input
from mgpt.runtime.vocab import Vocab

from . import arguments
from .memory import available_memory, size_text

if TYPE_CHECKING:
    from .labels import LabelSets

# The shipped dataset: 32,469 US baby names of 2017 (see scripts/make_names.py).
DEFAULT_DATA = "names.txt"
CHUNK_BYTES = 8 << 20  # read and checked this much at a time
MAX_LINE_BYTES = 1 << 20  # the longest line (document) accepted: 1 MiB
# Held-out documents: round(val_fraction x N), at most this many by default (makemore's cap): an
# evaluation then costs the same at 30 K and 100 M documents. The shipped names hold out 974.
VAL_MAX = 1000
SPLIT_SEED = 20171231  # the held-out choice's own seed: independent of --seed

# What str.splitlines() splits at (\r\n counts once) and what str.isspace() calls a space: a line
# that is empty or only spaces is no document. Code points, sorted.
LINE_BREAKS = np.array([0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029])
SPACES = np.array([0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x85, 0xA0, 0x1680,
                   *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000])
_UNICODE_SPACE = re.compile("[" + "".join(chr(c) for c in SPACES if c > 0x7F) + "]")


class DataError(ValueError):
    """A data file that cannot be used."""


def default_data_path() -> Path:
    return Path(str(resources.files("mgpt.train") / DEFAULT_DATA))


@dataclass
class Encoded:
    """Documents framed and padded to ``block_size + 1`` tokens.

    tokens[j, :n+1] is document j's first n+1 tokens, n = min(block_size, len(doc) + 1) predictions;
    inputs are tokens[:, :-1], targets tokens[:, 1:], weights 1 on the n real predictions, else 0.
    """

    tokens: np.ndarray  # (N, block_size + 1) int64, BOS-padded
    weights: np.ndarray  # (N, block_size) float64 (or the dtype asked for)
    truncated: int  # documents longer than the block: their tail (and end BOS) is not trained on
    lengths: np.ndarray | None = None  # (N,) int64 predictions per document (the weights' row sums)

    def __len__(self) -> int:
        return self.tokens.shape[0]


@dataclass
class Corpus:
    """Documents as code points end to end: document j is ``codes[starts[j]:starts[j + 1]]``."""

    codes: np.ndarray  # (total,) uint8, uint16 or uint32: the smallest that holds every code point
    starts: np.ndarray  # (N + 1,) uint32 (or int64 past 4 G characters), starts[0] = 0
    chars: tuple[str, ...]  # the sorted distinct characters: the vocabulary trained from scratch
    _tables: dict = field(default_factory=dict, repr=False)
    # labeled documents (--labeled, docs/labels.md): the distinct label lists, one label per group,
    # and each document's list number (N,); a corpus without labels has () and None
    label_lists: tuple[tuple[str, ...], ...] = ()
    label_of: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.starts) - 1

    @property
    def groups(self) -> tuple[tuple[str, ...], ...]:
        """The label groups (each place's labels, sorted): the vocabulary's labels trained from scratch."""
        width = len(self.label_lists[0]) if self.label_lists else 0
        return tuple(tuple(sorted({labels[g] for labels in self.label_lists})) for g in range(width))

    @classmethod
    def from_documents(cls, documents: list[str]) -> "Corpus":
        if not isinstance(documents, list) or not all(isinstance(d, str) for d in documents):
            raise TypeError("documents must be a list of strings")
        codes = np.frombuffer("".join(documents).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        starts = np.zeros(len(documents) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, documents), np.int64, len(documents)), out=starts[1:])
        chars = tuple(sorted(set("".join(documents))))
        return cls(codes.astype(_code_dtype(max(map(ord, chars), default=0))), starts, chars)

    def lengths(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows),) int64 characters of documents ``rows``."""
        rows = np.asarray(rows, dtype=np.int64)
        return self.starts[rows + 1].astype(np.int64) - self.starts[rows]

    def document(self, j: int) -> str:
        return _text(self.codes[int(self.starts[j]) : int(self.starts[j + 1])])

    def documents(self, rows: np.ndarray | None = None, chunk: int = 65536) -> Iterator[str]:
        """The documents (all, or ``rows``) as strings, decoded ``chunk`` at a time: a second pass
        over the data in bounded memory."""
        n = len(self) if rows is None else len(rows)
        for lo in range(0, n, chunk):
            part = np.arange(lo, min(n, lo + chunk)) if rows is None else np.asarray(rows[lo : lo + chunk])
            a, b = int(self.starts[part[0]]), int(self.starts[part[-1] + 1])
            if rows is None or np.all(np.diff(part) == 1):  # consecutive: one decode, then cut
                text = _text(self.codes[a:b])
                cuts = (self.starts[part[0] : part[-1] + 2].astype(np.int64) - a).tolist()
                yield from (text[i:j] for i, j in zip(cuts[:-1], cuts[1:]))
            else:
                yield from (self.document(j) for j in part.tolist())

    def id_chunks(self, vocab: Vocab, chunk: int = 1 << 20) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every document, ``chunk`` at a time, as (their ids in ``vocab`` end to end, (n,) int64
        lengths): a second pass over the data in bounded memory (the novelty filter's)."""
        table = self.table(vocab)
        for lo in range(0, len(self), chunk):
            hi = min(lo + chunk, len(self))
            yield (table[self.codes[int(self.starts[lo]) : int(self.starts[hi])]],
                   np.diff(self.starts[lo : hi + 1].astype(np.int64)))

    def table(self, vocab: Vocab) -> np.ndarray:
        """Code point -> id in ``vocab`` for every character of the corpus; a DataError names the
        characters ``vocab`` lacks."""
        key = vocab.chars
        if key not in self._tables:
            missing = [c for c in self.chars if c not in vocab._ids]
            if missing:
                raise DataError(f"{len(missing)} characters of the data are not in the vocabulary "
                                f"({''.join(missing[:10])!r}); train from scratch or use a checkpoint "
                                f"trained on such text")
            table = np.zeros(max(map(ord, self.chars), default=0) + 1, dtype=np.int64)
            table[[ord(c) for c in self.chars]] = [vocab._ids[c] for c in self.chars]
            self._tables = {key: table}  # one vocabulary at a time
        return self._tables[key]

    def frame(self, rows: np.ndarray, vocab: Vocab, block_size: int, dtype=np.float64) -> Encoded:
        """Documents ``rows`` framed and padded (``Encoded``), looked up in ``vocab``: the one home
        of the framing, for a training batch, the held-out set and ``encode``. Labeled documents
        are ``[BOS] + labels + ids + [BOS]``, the label tokens' predictions weighing 0 (labels.py)."""
        if bool(self.label_lists) != bool(vocab.labels):
            raise DataError("labeled data needs a labeled model and unlabeled data an unlabeled one (--labeled "
                            "reads LABELS<TAB>TEXT lines; a model's checkpoint says whether it has labels)")
        if self.label_lists:
            from .labels import label_tokens, with_labels

            width = len(vocab.labels)
            framed = self._frame(rows, vocab, block_size - width, dtype)
            tokens = label_tokens(self.label_lists, vocab)[self.label_of[np.asarray(rows, dtype=np.int64)]]
            return with_labels(framed, tokens)
        return self._frame(rows, vocab, block_size, dtype)

    def _frame(self, rows: np.ndarray, vocab: Vocab, block_size: int, dtype=np.float64) -> Encoded:
        table = self.table(vocab)
        rows = np.asarray(rows, dtype=np.int64)
        start, length = self.starts[rows].astype(np.int64), self.lengths(rows)
        # 1) tokens: BOS, then the first min(len, block_size) characters, then BOS padding (which
        #    supplies each short document's closing BOS)
        tokens = np.full((len(rows), block_size + 1), vocab.bos, dtype=np.int64)
        pos = np.arange(block_size)
        inside = pos < length[:, None]  # (N, block_size)
        tokens[:, 1:][inside] = table[self.codes[(start[:, None] + pos)[inside]]]
        # 2) n = min(block_size, len + 1) predictions per document
        predicts = np.minimum(length + 1, block_size)
        weights = (pos < predicts[:, None]).astype(dtype)
        return Encoded(tokens, weights, int(np.sum(length + 1 > block_size)), predicts)

    def count_longer(self, block_size: int, skip: np.ndarray | None = None, chunk: int = 1 << 20) -> int:
        """How many documents (but those in ``skip``) are longer than the block (len + 1 > block_size;
        a labeled document's labels take positions of the block)."""
        block_size -= len(self.label_lists[0]) if self.label_lists else 0
        count = 0
        for lo in range(0, len(self), chunk):
            count += int(np.sum(np.diff(self.starts[lo : lo + chunk + 1].astype(np.int64)) + 1 > block_size))
        if skip is not None and len(skip):
            count -= int(np.sum(self.lengths(skip) + 1 > block_size))
        return count


def _code_dtype(largest: int) -> np.dtype:
    return np.dtype(np.uint8 if largest < 1 << 8 else np.uint16 if largest < 1 << 16 else np.uint32)


def encode(documents: list[str], vocab: Vocab, block_size: int) -> Encoded:
    """Frame and pad every document of a list at once (``Corpus.frame``)."""
    corpus = Corpus.from_documents(documents)
    return corpus.frame(np.arange(len(corpus)), vocab, block_size)


# --- reading a file in chunks


@dataclass
class _Chunk:
    """A chunk's documents: their characters end to end, and each one's length."""

    codes: np.ndarray  # uint8 (ASCII) or uint32 code points
    lengths: np.ndarray  # int64 characters per document


class _Reader:
    """A data file read CHUNK_BYTES at a time, each chunk cut after its last line break, checked
    and reduced to its documents; errors name the line (counted by \\n, as an editor does)."""

    def __init__(self, path: str | Path, progress: Callable[[int, int], None] | None = None):
        self.path, self.name, self.progress = Path(path), str(path), progress
        try:
            check_input(self.path, "data file", "pass a text file to --data")
            self.fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except PathError as e:
            raise DataError(str(e)) from None
        except OSError as e:
            raise DataError(f"cannot read data file {self.name!r} ({e.strerror}); pass a text file to --data") from None
        st = os.fstat(self.fd)
        if not stat.S_ISREG(st.st_mode):  # swapped for a FIFO since the check: never block on it
            os.close(self.fd)
            raise DataError(f"data file {self.name!r} is not a regular file; pass a text file to --data")
        self.size = st.st_size
        self.offset = 0  # where in the file the buffer being looked at begins
        self.done = 0  # bytes read, over every pass
        self.passes = 1  # of the file, for the progress

    def close(self) -> None:
        os.close(self.fd)

    def _read(self) -> bytes:
        try:
            block = os.read(self.fd, CHUNK_BYTES)
        except OSError as e:
            raise DataError(f"cannot read data file {self.name!r} ({e.strerror}); pass a text file to --data") from None
        self.done += len(block)
        if self.progress is not None:
            self.progress(self.done, max(self.passes * self.size, self.done))
        return block

    def _buffers(self) -> Iterator[bytes]:
        """The file from its start in buffers of whole lines (each cut after its last \n, or a \r
        that is not its last byte: it may be a \r\n's), self.offset at each one's first byte."""
        os.lseek(self.fd, 0, os.SEEK_SET)
        carry, first, start = b"", True, 0
        while True:
            block = self._read()
            end = not block
            if first:
                if end:
                    raise DataError(f"data file {self.name!r} is empty; it needs one document per line")
                if block.startswith(b"\xef\xbb\xbf"):  # a byte-order mark, tolerated
                    block, start = block[3:], 3
                first = False
            buffer = carry + block if carry else block
            if end:  # the last line needs no line break
                if buffer:
                    self.offset = start
                    yield buffer
                return
            cut = max(buffer.rfind(b"\n"), buffer.rfind(b"\r", 0, len(buffer) - 1))
            if cut < 0:
                if len(buffer) > MAX_LINE_BYTES:
                    self._too_long(start, len(buffer))
                carry = buffer
                continue
            carry = buffer[cut + 1 :]
            self.offset = start
            yield buffer[: cut + 1]
            start += cut + 1

    def check(self) -> None:
        """A first pass that only checks (UTF-8, line lengths), at several times the speed of
        ``chunks``: bad data anywhere is found before anything is kept."""
        half = MAX_LINE_BYTES // 2
        for buffer in self._buffers():
            if not buffer.isascii():
                self._decode(buffer)
            # a line longer than MAX_LINE_BYTES holds a whole window of half that with no break
            if any(buffer.find(b"\n", k, k + half) < 0 and buffer.find(b"\r", k, k + half) < 0
                   for k in range(0, len(buffer) - half + 1, half)):
                self._chunk(buffer)  # the exact check, which raises for a line too long

    def chunks(self) -> Iterator[_Chunk]:
        """The file's documents, a buffer at a time."""
        for buffer in self._buffers():
            yield self._chunk(buffer)

    def _line_at(self, offset: int) -> tuple[int, int]:
        """(line, byte of the line), from 1, of the file's byte ``offset``: counted again from the
        start (only for an error message), lines ending at \n as an editor counts them."""
        line, last, at = 1, -1, 0
        while at < offset:
            block = os.pread(self.fd, min(CHUNK_BYTES, offset - at), at)
            if not block:
                break
            line += block.count(b"\n")
            if b"\n" in block:
                last = at + block.rfind(b"\n")
            at += len(block)
        return line, offset - last

    def document_line(self, j: int) -> int:
        """The line (from 1, counted by \n) of document ``j`` (from 0: the j-th non-blank line):
        found again from the start, only for an error message about that document."""
        seen = 0
        for buffer in self._buffers():
            n = len(self._chunk(buffer).lengths)
            if seen + n > j:
                offset, k = 0, j - seen
                for line in buffer.decode("utf-8").splitlines(keepends=True):
                    if line.strip():
                        if not k:
                            return self._line_at(self.offset + offset)[0]
                        k -= 1
                    offset += len(line.encode("utf-8"))
            seen += n
        raise AssertionError(f"document {j} is not in the file")  # not reached: j came from this file

    def labels(self) -> "LabelSets":
        """An empty set of label lists for this file's labeled documents, whose errors name lines."""
        from .labels import LabelSets

        return LabelSets(self.name, lambda j: f"line {self.document_line(j):,}")

    def _too_long(self, start: int, seen: int) -> None:
        """The line at ``start`` has no break in its first ``seen`` bytes: read on to its end
        (without keeping it) for its size, and raise."""
        size = seen
        while block := self._read():
            end = block.find(b"\n")
            if end >= 0:
                size += end
                break
            size += len(block)
        self._long_line(start, size)

    def _long_line(self, offset: int, size: int) -> None:
        line, _ = self._line_at(offset)
        raise DataError(f"data file {self.name!r}: line {line:,} is {size:,} bytes long, more than a document "
                        f"may be ({MAX_LINE_BYTES:,} bytes); put one document per line")

    def _decode(self, buffer: bytes) -> str:
        try:
            return buffer.decode("utf-8")
        except UnicodeDecodeError as e:
            line, column = self._line_at(self.offset + e.start)
            raise DataError(f"data file {self.name!r} is not UTF-8: line {line:,}, byte {column:,} of the line "
                            f"(0x{buffer[e.start]:02x}, byte {self.offset + e.start:,} of the file; {e.reason}); "
                            f"re-encode it as UTF-8") from None

    def _chunk(self, buffer: bytes) -> _Chunk:
        if buffer.isascii():
            text, codes = None, np.frombuffer(buffer, dtype=np.uint8)
        else:
            text = self._decode(buffer)
            codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        returns = buffer.count(b"\r") if b"\r" in buffer else 0
        if returns and buffer.count(b"\r\n") == returns:  # \r\n line ends: the \r goes
            codes = codes[codes != 0x0D]
        is_break = codes == 0x0A
        breaks = np.flatnonzero(is_break)
        # only \n (or \r\n) breaks and no other spaces: lines split at \n alone, blank only when
        # empty, which numpy finds quickly; anything else goes the general way
        plain = np.count_nonzero(codes < 0x21) == len(breaks) and not (text and _UNICODE_SPACE.search(text))
        if plain:
            ends = breaks if len(codes) and codes[-1] == 0x0A else np.append(breaks, len(codes))
            lengths = np.diff(ends, prepend=-1) - 1
            self._check_long(buffer, text, codes, ends - lengths, lengths)
            kept, lengths = codes[~is_break] if len(breaks) else codes, lengths[lengths > 0]
        else:
            kept, lengths = self._general(buffer, text, codes)
        return _Chunk(kept, lengths)

    def _general(self, buffer: bytes, text: str | None, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Any breaks and spaces, as str.splitlines() and str.strip() see them: (the kept
        documents' characters, their lengths). A \\r\\n makes an empty line between its two
        breaks, dropped as every blank line is."""
        is_break = np.isin(codes, LINE_BREAKS)
        breaks = np.flatnonzero(is_break)
        starts, ends = np.concatenate([[0], breaks + 1]), np.append(breaks, len(codes))
        lengths = ends - starts
        self._check_long(buffer, text, codes, starts, lengths)
        solid = np.concatenate([[0], np.cumsum(~np.isin(codes, SPACES), dtype=np.int64)])  # non-spaces before i
        keep = solid[ends] > solid[starts]  # the line has a character that is not a space
        segment = np.cumsum(is_break) - is_break  # each position's line (a break: the line it ends)
        return codes[keep[segment] & ~is_break], lengths[keep]

    def _check_long(self, buffer: bytes, text: str | None, codes: np.ndarray, starts: np.ndarray,
                    lengths: np.ndarray) -> None:
        """A line (document) of more than MAX_LINE_BYTES bytes of UTF-8 is an error naming it."""
        if not len(lengths) or lengths.max() * 4 <= MAX_LINE_BYTES:  # 4 bytes a character at most
            return
        for j in np.flatnonzero(lengths * 4 > MAX_LINE_BYTES).tolist():
            piece = codes[int(starts[j]) : int(starts[j] + lengths[j])]
            size = len(piece) + int(np.sum(piece >= 0x80) + np.sum(piece >= 0x800) + np.sum(piece >= 0x10000))
            if size > MAX_LINE_BYTES:
                # the document's first byte in the buffer: codes may lack the \r of each \r\n before it
                first = int(starts[j])
                if len(codes) < (len(buffer) if text is None else len(text)):
                    first += int(np.count_nonzero(codes[:first] == 0x0A))
                if text is not None:
                    first = len(text[:first].encode("utf-8"))
                self._long_line(self.offset + first, size)


def _text(codes: np.ndarray) -> str:
    """Code points as a string."""
    if codes.dtype == np.uint8:
        return codes.tobytes().decode("latin-1")
    return codes.astype("<u4").tobytes().decode("utf-32-le")


def _learn_chars(codes: np.ndarray, seen: set[int]) -> None:
    """Add the code points of ``codes`` to ``seen``: for ASCII, what is left once the known ones
    are removed (usually nothing, at memory speed); else each distinct one."""
    if codes.dtype == np.uint8 and (not len(codes) or codes.max() < 0x80):
        rest = codes.tobytes().translate(None, bytes(sorted(c for c in seen if c < 0x80)))
        while rest:  # the new characters of a sample, then what is left without them: a few rounds
            new = set(rest[:4096])
            seen.update(new)
            rest = rest.translate(None, bytes(sorted(new)))
    else:
        seen.update(np.unique(codes).tolist())


def read_corpus(path: str | Path, progress: Callable[[int, int], None] | None = None,
                labeled: bool = False) -> Corpus:
    """The documents (non-blank lines, without their line breaks: \\n, \\r\\n, \\r or any
    break str.splitlines() knows) of a UTF-8 text file, read in chunks, twice: a first pass checks
    it (bad UTF-8 or a line over MAX_LINE_BYTES is a DataError naming the line, found before
    anything is kept), a second keeps its documents' characters.
    ``progress(bytes_read, bytes_total)`` is called after each chunk. A file larger than the
    memory available is refused before it is read. ``labeled``: each document is a line
    ``LABELS<TAB>TEXT`` (docs/labels.md), kept as its text and label list (a bad one is a DataError
    naming the line)."""
    with contextlib.closing(_Reader(path, progress)) as reader:
        return _read_corpus(reader, str(path), labeled)


def _read_corpus(reader: "_Reader", name: str, labeled: bool = False) -> Corpus:
    size = reader.size
    if size > available_memory():
        raise DataError(f"data file {name!r} is {size_text(size)}, more than the {size_text(available_memory())} "
                        f"of memory available to hold it; use less data")
    reader.passes = 2
    reader.check()  # 1) the whole file checked, keeping nothing; 2) its documents kept
    codes = np.empty(max(size, 1), dtype=np.uint8)  # characters <= bytes; untouched pages cost nothing
    starts = np.empty(size // 2 + 2, dtype=np.uint32 if size < 1 << 32 else np.int64)  # a document takes >= 2 bytes
    starts[0] = 0
    n_chars, n_docs, seen = 0, 0, set()
    sets, label_of = (reader.labels(), np.empty(len(starts) - 1, dtype=np.int32)) if labeled else (None, None)
    for chunk in reader.chunks():
        if not len(chunk.lengths):
            continue
        if labeled:
            chunk, numbers = _split_labels(chunk, sets, n_docs)
            label_of[n_docs : n_docs + len(numbers)] = numbers
        wide = _code_dtype(int(chunk.codes.max()))
        if wide.itemsize > codes.dtype.itemsize:  # a wider character than any before: widen the array
            wider = np.empty(max(size, 1), dtype=wide)
            wider[:n_chars] = codes[:n_chars]
            codes = wider
        codes[n_chars : n_chars + len(chunk.codes)] = chunk.codes
        _learn_chars(chunk.codes, seen)
        ends = n_chars + np.cumsum(chunk.lengths)
        starts[n_docs + 1 : n_docs + 1 + len(ends)] = ends
        n_chars, n_docs = n_chars + len(chunk.codes), n_docs + len(ends)
    if not n_docs:
        raise DataError(f"data file {name!r} has no documents, only blank lines; put one document per line")
    return Corpus(codes[:n_chars], starts[: n_docs + 1], tuple(chr(c) for c in sorted(seen)),
                  label_lists=tuple(sets.lists) if labeled else (),
                  label_of=label_of[:n_docs].copy() if labeled else None)


def _split_labels(chunk: "_Chunk", sets: "LabelSets", first: int) -> tuple["_Chunk", np.ndarray]:
    """A chunk of labeled documents as its texts, and each one's label list number."""
    from .labels import split_chunk

    codes, lengths, numbers = split_chunk(chunk.codes, chunk.lengths, sets, first)
    return _Chunk(codes, lengths), numbers


def stream_corpus(path: str | Path, progress: Callable[[int, int], None] | None = None,
                  labeled: bool = False) -> Iterator[Corpus]:
    """The documents of a data file as a Corpus a chunk at a time (about CHUNK_BYTES of text each),
    read and checked as by read_corpus, in one pass: any size in bounded memory. Each chunk's
    ``chars`` are its own; with ``labeled``, its ``label_lists`` are every list seen so far."""
    with contextlib.closing(_Reader(path, progress)) as reader:
        yield from _corpora(reader, labeled)


def _corpora(reader: "_Reader", labeled: bool = False) -> Iterator[Corpus]:
    found, sets, n_docs = False, reader.labels() if labeled else None, 0
    for chunk in reader.chunks():
        if len(chunk.lengths):
            found = True
            numbers = None
            if labeled:
                chunk, numbers = _split_labels(chunk, sets, n_docs)
            n_docs += len(chunk.lengths)
            seen: set[int] = set()
            _learn_chars(chunk.codes, seen)
            starts = np.zeros(len(chunk.lengths) + 1, dtype=np.int64)
            np.cumsum(chunk.lengths, out=starts[1:])
            yield Corpus(chunk.codes, starts, tuple(chr(c) for c in sorted(seen)),
                         label_lists=tuple(sets.lists) if labeled else (), label_of=numbers)
    if not found:
        raise DataError(f"data file {reader.name!r} has no documents, only blank lines; put one document per line")


def iter_documents(path: str | Path, progress: Callable[[int, int], None] | None = None) -> Iterator[str]:
    """The documents of a data file, one string at a time, read in chunks (bounded memory): the
    same documents as read_corpus, checked as they come."""
    for corpus in stream_corpus(path, progress):
        yield from corpus.documents()


def read_documents(path: str | Path) -> list[str]:
    """The documents of a data file as a list of strings, for small files (read_corpus keeps a
    large one compact, iter_documents streams it); the whole file is checked before the list is made."""
    with contextlib.closing(_Reader(path)) as reader:
        reader.check()
        return [document for corpus in _corpora(reader) for document in corpus.documents()]


def held_out(n: int, val_fraction: float, val_max: int | None = VAL_MAX) -> np.ndarray:
    """The sorted indices of the held-out documents among ``n``: round(val_fraction x n) (at least
    one when val_fraction > 0), a fixed pseudo-random choice that does not depend on the training
    seed. While that is at most ``val_max`` it is the first ones of a fixed permutation of all n
    (mgpt's split before the cap, so small data is split as it always was); above, ``val_max``
    documents drawn without replacement (in memory proportional to val_max, not n)."""
    n = arguments.integer("n", n, 1, DataError)
    val_fraction = arguments.real("val_fraction", val_fraction, 0, 1, high_open=True, error=DataError)
    if val_max is not None:
        val_max = arguments.integer("val_max", val_max, 1, DataError)
    n_val = int(round(val_fraction * n))
    if val_fraction > 0 and n_val == 0:
        n_val = 1
    if n_val >= n:
        raise DataError(f"--val-fraction {val_fraction} leaves no training documents out of {n}; lower it")
    rng = np.random.default_rng(SPLIT_SEED)
    if val_max is None or n_val <= val_max:
        order = np.arange(n, dtype=np.int32 if n < 1 << 31 else np.int64)
        rng.shuffle(order)  # Generator.permutation(n)'s order, in 4 bytes an index
        return np.sort(order[:n_val]).astype(np.int64)
    return np.sort(rng.choice(n, size=val_max, replace=False))


def split(documents: list[str], val_fraction: float, val_max: int | None = VAL_MAX) -> tuple[list[str], list[str]]:
    """(train, held-out) of a list (``held_out``'s choice); both parts keep the list's order."""
    if not isinstance(documents, list) or not all(isinstance(d, str) for d in documents):
        raise TypeError("documents must be a list of strings")
    if not documents:
        raise DataError("documents is empty; there is nothing to split")
    held = np.zeros(len(documents), dtype=bool)
    held[held_out(len(documents), val_fraction, val_max)] = True
    return ([d for d, h in zip(documents, held) if not h], [d for d, h in zip(documents, held) if h])


@dataclass
class Split:
    """A corpus and its held-out documents; the training documents are all the others, in order."""

    corpus: Corpus
    held: np.ndarray  # (n_held,) int64 sorted indices of the held-out documents

    @classmethod
    def of(cls, corpus: Corpus, val_fraction: float, val_max: int | None = VAL_MAX) -> "Split":
        return cls(corpus, held_out(len(corpus), val_fraction, val_max))

    @classmethod
    def of_lists(cls, train_docs: list[str], val_docs: list[str]) -> "Split":
        """Training documents first, then the held-out ones."""
        corpus = Corpus.from_documents(list(train_docs) + list(val_docs))
        return cls(corpus, np.arange(len(train_docs), len(corpus), dtype=np.int64))

    @property
    def n_train(self) -> int:
        return len(self.corpus) - len(self.held)

    def train_rows(self, k: np.ndarray) -> np.ndarray:
        """The corpus indices of training documents ``k`` (0 .. n_train - 1): k plus the number of
        held-out documents before it."""
        k = np.asarray(k, dtype=np.int64)
        if not len(self.held):
            return k
        return k + np.searchsorted(self.held - np.arange(len(self.held)), k, side="right")
