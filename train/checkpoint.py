"""The checkpoint: an ``.npz`` of float64 arrays under microgpt's names plus a JSON ``meta`` entry.

meta = {"format": "mgpt-checkpoint", "version": 1, "config": {...GPTConfig...},
        "vocab": [characters], "bos": int, "training": {...record...}}
A labeled model's (docs/labels.md) is version 2 and adds "labels": [[group 0's labels], ...]; a
model without labels is written as version 1, exactly as before.
Anyone can build one by hand; ``load`` checks every part so later steps can trust it.
"""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from mgpt.runtime.metadata import finite_json
from mgpt.runtime.novelty import NoveltyError, NoveltyFilter
from mgpt.runtime.paths import PathError, read_input
from mgpt.runtime.vocab import Vocab, VocabError

from .config import ConfigError, GPTConfig
from .files import Staged, replace_together, staged
from .memory import available_memory

FORMAT = "mgpt-checkpoint"
VERSION = 1
LABELED_VERSION = 2  # a checkpoint with label tokens: older mgpt refuses it by its version
DEFAULT_PATH = "mgpt-checkpoint.npz"  # where mgpt-train writes and mgpt-export reads by default
NOVELTY = "novelty"  # the array member holding the novelty filter's bytes


class CheckpointError(ValueError):
    """A checkpoint file that is missing, corrupt, or not consistent with itself."""


@dataclass
class Checkpoint:
    config: GPTConfig
    vocab: Vocab
    params: dict[str, np.ndarray]  # name -> (out, in) float64
    training: dict = field(default_factory=dict)  # data, seed, steps, batch_size, losses, ...
    novelty: NoveltyFilter | None = None  # the data's documents (docs/sampling-controls.md); None: left out

    def meta(self) -> dict:
        meta = {"format": FORMAT, "version": LABELED_VERSION if self.vocab.labels else VERSION,
                "config": self.config.to_dict(), "vocab": list(self.vocab.chars), "bos": self.vocab.bos,
                "training": self.training}
        if self.vocab.labels:
            meta["labels"] = [list(group) for group in self.vocab.labels]
        if self.novelty is not None:  # its sizes here, its bytes in the array member "novelty"
            meta["novelty"] = self.novelty.sizes()
        return meta


def _arrays(ckpt: Checkpoint) -> dict[str, np.ndarray]:
    arrays = {name: np.asarray(a, dtype=np.float64) for name, a in ckpt.params.items()}
    if ckpt.novelty is not None:
        arrays[NOVELTY] = ckpt.novelty.data
    arrays["meta"] = np.array(json.dumps(finite_json(ckpt.meta()), ensure_ascii=False, allow_nan=False))
    return arrays


@contextlib.contextmanager
def staged_save(path: str | Path, ckpt: Checkpoint) -> Iterator[Staged]:
    """The checkpoint written beside ``path`` and fsynced, for the caller to move into place with
    ``files.replace_together`` (with its metrics log, say); removed if the block does not."""
    with staged(path) as (f, pending):
        np.savez(f, **_arrays(ckpt))
    try:
        yield pending
    finally:
        pending.discard()  # nothing left when it was moved into place


def save(path: str | Path, ckpt: Checkpoint) -> None:
    with staged_save(path, ckpt) as pending:
        replace_together(pending)


# A deflate stream expands at most ~1032 times; a member that declares more is a bomb.
MAX_DEFLATE_RATIO = 1100
MAX_CHECKPOINT_BYTES = 1 << 31  # 2 GB: 250 M float64 parameters


def _headers(raw: bytes, name: str) -> tuple[zipfile.ZipFile, dict[str, tuple[zipfile.ZipInfo, tuple, np.dtype]]]:
    """The archive in ``raw`` and each member's (zip entry, declared shape, dtype), after checking
    every size the archive declares (zip members and .npy headers) against what the file holds and
    the memory there is, reading nothing but the headers: a member that claims 10**12 elements or
    a deflate bomb is refused before it is allocated."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as e:
        raise _unreadable(name, f"not a zip archive: {e}") from None
    names = [m.filename for m in members]
    if len(set(names)) != len(names):
        raise _unreadable(name, "a member name appears twice")
    budget = min(available_memory() // 2, 8 * MAX_CHECKPOINT_BYTES)
    if sum(m.file_size for m in members) > budget:
        raise _unreadable(name, f"its members declare {sum(m.file_size for m in members):,} bytes, more than the "
                                f"{budget:,} that can be loaded")
    headers = {}
    for m in members:
        if not m.filename.endswith(".npy") or m.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _unreadable(name, f"member {m.filename!r} is not a stored or deflated .npy array")
        if m.file_size > MAX_DEFLATE_RATIO * max(m.compress_size, 1) + 1024:
            raise _unreadable(name, f"member {m.filename!r} declares {m.file_size:,} bytes from {m.compress_size:,} "
                                    f"(a zip bomb?)")
        try:
            with archive.open(m) as f:
                version = np.lib.format.read_magic(f)
                read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                               (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                if read_header is None:
                    raise ValueError(f".npy format version {version} is not read here")
                shape, fortran, dtype = read_header(f)
                header = f.tell() if hasattr(f, "tell") else None
                count = int(np.prod(shape, dtype=object))
                if dtype.hasobject:
                    raise ValueError("it holds Python objects")
                if header is None or count * dtype.itemsize != m.file_size - header:
                    raise ValueError(f"its header declares {count:,} elements of {dtype.itemsize} bytes, "
                                     f"the member holds {m.file_size - (header or 0):,} bytes")
        except (OSError, ValueError, TypeError, EOFError, zipfile.BadZipFile, SyntaxError) as e:
            raise _unreadable(name, f"member {m.filename!r}: {e}") from None
        headers[m.filename[:-4]] = (m, tuple(shape), dtype)
    return archive, headers


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, name: str) -> np.ndarray:
    try:
        with archive.open(member) as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    except (OSError, ValueError, TypeError, EOFError, zipfile.BadZipFile, SyntaxError) as e:
        raise _unreadable(name, f"member {member.filename!r}: {e}") from None


def _bad_novelty(name: str, e: NoveltyError) -> CheckpointError:
    return CheckpointError(f"checkpoint {name!r} has a bad novelty filter ({e}); train it again, or "
                           f"rebuild the filter with scripts/add_novelty.py")


def _unreadable(name: str, why: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {name!r} is not a readable .npz file ({why}); re-create it with mgpt-train")


def load(path: str | Path) -> Checkpoint:
    path = Path(path)
    name = str(path)
    try:
        raw = read_input(path, "checkpoint", "train one with mgpt-train or pass the .npz file",
                         MAX_CHECKPOINT_BYTES)
    except PathError as e:
        raise CheckpointError(str(e)) from None
    if not raw.startswith(b"PK"):  # np.load would try other formats and blame pickles
        raise CheckpointError(f"checkpoint {name!r} is not a readable .npz file (not a zip archive); re-create it "
                              f"with mgpt-train")
    archive, headers = _headers(raw, name)
    if "meta" not in headers:
        raise CheckpointError(f"{name!r} is not an mgpt checkpoint (no 'meta' entry)")
    try:
        if headers["meta"][1] != () or headers["meta"][2].kind != "U":
            raise ValueError("not a string")
        meta = finite_json(json.loads(str(_read_member(archive, headers["meta"][0], name))))  # a hand-made NaN becomes null
    except (ValueError, RecursionError):
        raise CheckpointError(f"checkpoint {name!r} has a 'meta' entry that is not JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{name!r} is not an mgpt checkpoint (meta format is not {FORMAT!r})")
    version = meta.get("version")
    if version not in (VERSION, LABELED_VERSION) or isinstance(version, bool):
        raise CheckpointError(f"checkpoint {name!r} has format version {version!r}; this mgpt reads versions "
                              f"{VERSION} and {LABELED_VERSION}")
    if (version == LABELED_VERSION) != ("labels" in meta):
        raise CheckpointError(f"checkpoint {name!r} has a bad meta entry: version {version} "
                              f"{'needs' if version == LABELED_VERSION else 'cannot have'} a 'labels' list")
    try:
        config = GPTConfig.from_dict(meta.get("config"))
        groups = meta.get("labels", [])
        if not isinstance(groups, list) or not groups and version == LABELED_VERSION \
                or not all(isinstance(group, list) for group in groups):
            raise VocabError("'labels' must be a non-empty list of lists of labels")
        vocab = Vocab(tuple(meta.get("vocab") or ()), tuple(tuple(group) for group in groups))
    except (ConfigError, VocabError, TypeError) as e:
        raise CheckpointError(f"checkpoint {name!r} has a bad meta entry: {e}") from None
    if meta.get("bos") != vocab.bos or config.vocab_size != vocab.size:
        raise CheckpointError(
            f"checkpoint {name!r} disagrees with itself: {len(vocab.chars)} characters"
            f"{f' and {vocab.size - vocab.drawable} labels' if vocab.labels else ''} need bos "
            f"{vocab.bos} and vocab_size {vocab.size}, meta says bos {meta.get('bos')!r} and "
            f"vocab_size {config.vocab_size}"
        )
    arrays = {key: header for key, header in headers.items() if key != "meta"}
    novelty_member = None
    if "novelty" in meta:  # docs/sampling-controls.md: sizes in meta, the bytes in an array
        try:
            if NOVELTY not in arrays:
                raise NoveltyError(f"meta describes one but there is no {NOVELTY!r} array")
            novelty_member, declared, dtype = arrays.pop(NOVELTY)
            bits = meta["novelty"].get("bits") if isinstance(meta["novelty"], dict) else None
            if dtype != np.uint8 or len(declared) != 1:  # from its header, before its bytes are read
                raise NoveltyError("the novelty array is not one row of bytes (uint8)")
            if isinstance(bits, int) and not isinstance(bits, bool) and declared[0] != -(-bits // 8):
                raise NoveltyError(f"the novelty entry's data holds {declared[0]:,} bytes; {bits:,} bits need "
                                   f"{-(-bits // 8):,}")
        except NoveltyError as e:
            raise _bad_novelty(name, e) from None
    if config.n_layer > len(arrays):  # before listing the config's shapes: n_layer may say 10**9
        raise CheckpointError(f"checkpoint {name!r} arrays do not match its config: n_layer {config.n_layer:,} "
                              f"needs {6 * config.n_layer + 3:,} arrays, the file holds {len(arrays)}")
    shapes = config.param_shapes()
    if set(arrays) != set(shapes):
        missing, extra = sorted(set(shapes) - set(arrays)), sorted(set(arrays) - set(shapes))
        raise CheckpointError(f"checkpoint {name!r} arrays do not match its config (missing {missing}, unexpected {extra})")
    # every member's declared shape and type against the config, from the headers, before any
    # weight is read: a member that declares 375,000,000 float64 is refused, not allocated
    for key, shape in shapes.items():
        _, declared, dtype = arrays[key]
        if declared != shape:
            raise CheckpointError(f"checkpoint {name!r}: {key} has shape {declared}, its config needs {shape}")
        if not np.issubdtype(dtype, np.floating):
            raise CheckpointError(f"checkpoint {name!r}: {key} must hold finite floating-point numbers")
    novelty = None
    if novelty_member is not None:
        try:
            novelty = NoveltyFilter.from_json(meta["novelty"], _read_member(archive, novelty_member, name))
        except NoveltyError as e:
            raise _bad_novelty(name, e) from None
    params = {}
    for key in shapes:
        a = _read_member(archive, arrays[key][0], name)
        if not np.all(np.isfinite(a)):
            raise CheckpointError(f"checkpoint {name!r}: {key} must hold finite floating-point numbers")
        params[key] = a.astype(np.float64)
    training = meta.get("training") if isinstance(meta.get("training"), dict) else {}
    return Checkpoint(config, vocab, params, training, novelty)
