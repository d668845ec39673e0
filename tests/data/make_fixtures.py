"""Regenerate the small real fixtures in tests/data from the shared data snapshot.

Run once by hand (``python tests/data/make_fixtures.py /path/to/shared/data``); the tests
themselves read only the files written here. Sources are listed in tests/data/README.md.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).parent
KIRCHER_ELEMENTS = {"F9": 30, "HBB": 30, "MYCrs11986220": 15}  # element -> leading positions kept
CRISPR_GENES = ("FADS3", "CAB39")
CHR1_LEN = 30_000


def kircher(shared: Path) -> None:
    """A few hundred rows of elements.tsv.gz (both releases) and the matching FASTA records."""
    src = shared / "kircher2019_satmut"
    df = pd.read_csv(src / "elements.tsv.gz", sep="\t", dtype=str, keep_default_na=False)
    keep = []
    for element, n_pos in KIRCHER_ELEMENTS.items():
        for release in ("GRCh37", "GRCh38"):
            rows = df[(df["Element"] == element) & (df["Release"] == release)]
            pos = pd.to_numeric(rows["Pos"], errors="coerce")
            first = sorted(pos.dropna().unique())
            wanted = set(first[:n_pos]) | set(first[-2:])  # the element's first and last bases
            keep.append(rows[pos.isin(wanted) | pos.isna()])
    out = pd.concat(keep)
    with gzip.open(HERE / "kircher2019_elements_subset.tsv.gz", "wt") as handle:
        out.to_csv(handle, sep="\t", index=False)
    lines, write = [], False
    for line in (src / "DERIVED_element_reference_sequences_GRCh38.fa").read_text().splitlines():
        if line.startswith(">"):
            write = line[1:].split()[0] in KIRCHER_ELEMENTS
        if write:
            lines.append(line)
    (HERE / "kircher2019_elements_subset_GRCh38.fa").write_text("\n".join(lines) + "\n")


def engreitz(shared: Path) -> None:
    """The FADS3 / CAB39 pairs (inside the bundled windows) and a few pairs outside them."""
    path = shared / "engreitz_crispr" / "EPCrisprBenchmark_combined_data.training_K562.GRCh38.tsv.gz"
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    inside = df[df["measuredGeneSymbol"].isin(CRISPR_GENES)]
    outside = pd.concat([
        df[(df["Dataset"] == name) & ~df["measuredGeneSymbol"].isin(CRISPR_GENES)].head(2)
        for name in ("Gasperini2019", "Nasser2021", "Schraivogel2020")
    ])
    with gzip.open(HERE / "engreitz_K562_subset.GRCh38.tsv.gz", "wt") as handle:
        pd.concat([outside.iloc[:3], inside, outside.iloc[3:]]).to_csv(handle, sep="\t", index=False)


def chr1(shared: Path) -> None:
    """hg38 chr1:1-30,000 as plain FASTA (header ``chr1``, so coordinates stay real)."""
    import pyfaidx

    fasta = pyfaidx.Fasta(str(shared / "genome" / "hg38_1m.fa.gz"), as_raw=True)
    seq = fasta["chr1"][:CHR1_LEN]
    body = "\n".join(seq[i : i + 60] for i in range(0, len(seq), 60))
    (HERE / "hg38_chr1_1-30000.fa").write_text(f">chr1\n{body}\n")


if __name__ == "__main__":
    shared = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data")
    kircher(shared)
    engreitz(shared)
    chr1(shared)
