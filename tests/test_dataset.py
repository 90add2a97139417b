"""The shipped default data set, train/names.txt (made by scripts/make_names.py)."""

import hashlib
import re
from pathlib import Path

NAMES = Path(__file__).resolve().parents[1] / "train" / "names.txt"

# Pinned because the default model and the anchors are measured on this exact file.
SHA256 = "91691165b471c338ee35387260590f0fdc23fcb50509b9ccfe1c879c7ac39a1e"

N_LINES = 32469
N_GIRLS = 18309  # SSA 2017: girls' names come first, then boys'


def lines():
    return NAMES.read_bytes().decode("utf-8").split("\n")


def test_sha256_is_pinned():
    assert hashlib.sha256(NAMES.read_bytes()).hexdigest() == SHA256


def test_one_lowercase_name_per_line_with_trailing_newline():
    *names, last = lines()
    assert last == ""  # the file ends with '\n'
    assert len(names) == N_LINES
    assert "\r" not in NAMES.read_text(encoding="utf-8")
    assert all(re.fullmatch(r"[a-z]+", name) for name in names)


def test_ssa_order_girls_then_boys_by_count():
    names = lines()
    assert names[:5] == ["emma", "olivia", "ava", "isabella", "sophia"]
    assert names[N_GIRLS - 1] == "zyonn"  # last girl: fewest births, last alphabetically
    assert names[N_GIRLS:N_GIRLS + 3] == ["liam", "noah", "william"]
    assert names[N_LINES - 1] == "zyrie"
