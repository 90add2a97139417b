"""Path checks shared by every command: one home for "can this be read" and "may this be written".

Inputs must be regular files (a FIFO with no writer would block, ``/dev/zero`` never ends, a
directory is no file), found before anything is read. Outputs must never destroy something: an
existing output that is not a regular file (``/dev/null``, a FIFO, a socket, a directory) is
refused rather than replaced, and an output that is the same file as an input, or as another
output, is refused before any work. Files are compared by identity (``os.stat``'s device and
inode, through symlinks and hard links), not by their names. Pure ``os``: the runtime imports it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class PathError(ValueError):
    """A path that cannot serve as the input or output it was given for."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def check_input(path: str | Path, what: str, hint: str) -> os.stat_result:
    """The stat of ``path`` if it is an existing regular file; else a PathError naming ``what``
    (e.g. "data file") and ending with ``hint`` (what to pass instead)."""
    name = str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise PathError(f"{what} {name!r} does not exist; {hint}") from None
    except (OSError, ValueError) as e:  # permission, a name too long, a NUL in the name
        raise PathError(f"cannot use {what} {name!r} ({getattr(e, 'strerror', None) or e}); {hint}") from None
    if not stat.S_ISREG(st.st_mode):
        raise PathError(f"{what} {name!r} is {_kind(st.st_mode)}, not a regular file; {hint}")
    return st


def read_input(path: str | Path, what: str, hint: str, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes. Opened without blocking and checked
    on the open descriptor, so a file swapped for a FIFO after ``check_input`` cannot hang us."""
    check_input(path, what, hint)
    name = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise PathError(f"cannot read {what} {name!r} ({e.strerror}); {hint}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PathError(f"{what} {name!r} is {_kind(st.st_mode)}, not a regular file; {hint}")
        if st.st_size > limit:
            raise PathError(f"{what} {name!r} is {st.st_size:,} bytes, more than the {limit:,} this accepts; {hint}")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise PathError(f"cannot read {what} {name!r} ({e.strerror}); {hint}") from None
    finally:
        os.close(fd)
    if size > limit:  # it grew while we read it
        raise PathError(f"{what} {name!r} is more than the {limit:,} bytes this accepts; {hint}")
    return b"".join(chunks)


def _identity(path: Path) -> tuple:
    """What names one file: (device, inode) if it exists, else (the directory's identity, name)."""
    try:
        st = os.stat(path)
        return (st.st_dev, st.st_ino)
    except OSError:
        try:
            st = os.stat(path.parent if str(path.parent) else ".")
        except OSError:
            return ("missing", str(path.absolute()))
        return (st.st_dev, st.st_ino, path.name)


def check_output(path: str | Path, flag: str) -> Path:
    """Fail early, before any work, when ``path`` cannot receive a file written beside it and
    moved into place; ``flag`` names the option in the message."""
    path = Path(path)
    name = str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except (OSError, ValueError) as e:
        raise PathError(f"{flag} {name!r} cannot be used ({getattr(e, 'strerror', None) or e}); choose another path") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise PathError(f"{flag} {name!r} is {_kind(st.st_mode)}; it is never replaced: give a path for a regular file")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise PathError(f"{flag} directory {str(parent)!r} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PathError(f"{flag} directory {str(parent)!r} is not writable; choose another path")
    if st is not None and not os.access(path, os.W_OK):
        raise PathError(f"{flag} {name!r} is not writable; choose another path")
    return path


def check_paths(inputs: dict[str, str | Path | None], outputs: dict[str, str | Path]) -> None:
    """Refuse an output that is the same file as an input or as another output. Keys are the
    options' names (``--data``, ``--out``); inputs that are None are not used."""
    seen: dict[tuple, str] = {}
    for flag, path in inputs.items():
        if path is not None:
            seen.setdefault(_identity(Path(path)), flag)
    for flag, path in outputs.items():
        key = _identity(Path(path))
        if key in seen:
            other = seen[key]
            role = "an input" if other in inputs else "another output"
            raise PathError(f"{flag} {str(path)!r} is the same file as {other} ({role}); "
                            f"writing it would destroy that file: give {flag} another path")
        seen[key] = flag


def read_lines(path: str | Path, what: str, hint: str, limit: int) -> list[str]:
    """The non-empty lines of a UTF-8 text file of at most ``limit`` bytes (ending \\n, \\r\\n or
    \\r; a byte-order mark is dropped); PathError for a file that cannot serve or is not UTF-8."""
    raw = read_input(path, what, hint, limit)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise PathError(f"{what} {str(path)!r} is not UTF-8 (bad byte at offset {e.start}); {hint}") from None
    return [line for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if line]
