"""Atomic file writes: a reader sees the old file or the new one, never a half-written mix.

A file is written to a temporary file beside it, flushed to disk, and only then renamed over the
target, so a failure at any moment (an exception, disk full, ``kill -9``, a power cut) leaves the
old file intact. Temporary files are named ``.{target}.{pid}.{random}.tmp``: a failure that Python
sees removes its own at once, and the ones a killed writer could not remove are swept by the next
write to the same target, which removes every such file whose writer's process no longer exists
(so they never accumulate). An I/O error while writing (disk full, a quota) is an OutputError with
one line that names the file; the old file is untouched and no temporary file is left.

Files that belong together (a checkpoint and its metrics log) are staged and then moved in one
``replace_together``: the old companions are removed first, so that however the sequence is cut
short, the files present never come from two different runs.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path
from typing import IO, Iterator

from mgpt.runtime.paths import PathError, check_output


class OutputError(PathError):
    """An output path that cannot be written."""


def check_writable(path: str | Path, flag: str = "output") -> Path:
    """Fail early, before any work, when ``path`` cannot receive a file (see mgpt.runtime.paths)."""
    try:
        return check_output(path, flag)
    except OutputError:
        raise
    except PathError as e:
        raise OutputError(str(e)) from None


def check_space(path: str | Path, need: int, flag: str = "output") -> None:
    """An OutputError, before any work, when the filesystem that would hold ``path`` has fewer than
    ``need`` bytes free (a full disk found after an hour of training loses the hour)."""
    path = Path(path)
    try:
        st = os.statvfs(path.parent if str(path.parent) else ".")
    except (OSError, AttributeError):  # not on POSIX, or not ours to know: the write will tell
        return
    free = st.f_bavail * st.f_frsize
    if free < need:
        raise OutputError(f"{flag} {str(path)!r} needs about {need:,} bytes but its filesystem has {free:,} free; "
                          f"free some space or choose another path")


def _temp_prefix(path: Path) -> str:
    """``.{name}.``, the name cut to 50 characters (200 bytes of UTF-8 at most): with the pid, the
    random part and ``.tmp`` a temporary name stays within the 255 bytes a file name may have."""
    return f".{path.name[:50]}."


def _temp_pattern(path: Path) -> re.Pattern:
    return re.compile(re.escape(_temp_prefix(path)) + r"(\d+)\.[0-9a-f]+\.tmp")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):  # someone else's live process, or not ours to judge
        return True
    return True


def sweep_leftovers(path: str | Path) -> int:
    """Remove the temporary files of writers of ``path`` that died without cleaning up (their
    process is gone); returns how many were removed."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    pattern, removed = _temp_pattern(path), 0
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        match = pattern.fullmatch(name)
        if match and not _alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                os.unlink(folder / name)
                removed += 1
    return removed


class Staged:
    """A file written beside ``path`` and fsynced, waiting to be moved into place (``replace``)
    or removed (``discard``)."""

    def __init__(self, path: Path, temp: Path):
        self.path, self.temp = path, temp

    def replace(self) -> None:
        os.replace(self.temp, self.path)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.temp)


def _write_error(path: Path, e: OSError) -> OutputError:
    reason = e.strerror or type(e).__name__
    hint = "free some space or choose another path" if e.errno in (28, 122) else "choose another path"
    return OutputError(f"could not write {str(path)!r} ({reason}); it was left as it was: {hint}")


@contextlib.contextmanager
def staged(path: str | Path, mode: str = "wb") -> Iterator[tuple[IO, Staged]]:
    """Yield (file, Staged): the file is a new temporary file beside ``path``; when the block ends
    normally it is flushed and fsynced, and the caller moves it into place. When the block fails
    the temporary file is removed. OSErrors of the writing become an OutputError."""
    path = Path(path)
    sweep_leftovers(path)
    folder = path.parent if str(path.parent) else Path(".")
    temp = folder / f"{_temp_prefix(path)}{os.getpid()}.{secrets.token_hex(4)}.tmp"
    result = Staged(path, temp)
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as e:
        raise _write_error(path, e) from None
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f, result
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, 0o644)
    except OSError as e:
        result.discard()
        raise _write_error(path, e) from None
    except BaseException:
        result.discard()
        raise


def replace_together(*files: Staged) -> None:
    """Move staged files into place so that their targets never come from two different writes:
    first remove the old targets of all but the first, then move the first, then the others.
    Cut short anywhere, what remains is old-first-alone, new-first-alone or all new."""
    try:
        for f in files[1:]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f.path)
        for f in files:
            f.replace()
    except OSError as e:
        for f in files:
            f.discard()
        raise _write_error(files[0].path, e) from None


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Write to a temporary file beside ``path`` and move it into place only if the block succeeds."""
    with staged(path, mode) as (f, pending):
        yield f
    try:
        pending.replace()
    except OSError as e:
        pending.discard()
        raise _write_error(Path(path), e) from None
