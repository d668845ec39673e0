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


PIECE_LEN = 60_000
BUNDLED_TRACKS = (0, 30, 60)  # one CAGE, one DNase, one RNA track of the bundled windows
BUNDLED_WINDOWS = (("test", 0), ("test", 1), ("train", 0))
HG38_SIZES = {"chr3": 198_295_559, "chr9": 138_394_717, "chrX": 156_040_895}  # UCSC hg38.chrom.sizes


def hg38_pieces(shared: Path) -> None:
    """hg38 chr1:1-60,000 and chr2:1-60,000 as one plain FASTA (real coordinates) + a reference BED."""
    import pyfaidx

    records = []
    for chrom, path in (("chr1", "hg38_1m.fa.gz"), ("chr2", "chr2_1-2333275.fa.gz")):
        seq = pyfaidx.Fasta(str(shared / "genome" / path), as_raw=True)[chrom][:PIECE_LEN]
        records.append(f">{chrom}\n" + "\n".join(seq[i : i + 60] for i in range(0, len(seq), 60)))
    (HERE / "hg38_chr1_chr2_1-60000.fa").write_text("\n".join(records) + "\n")
    # Regions past the 10-kb telomere gap: chr1 for training, chr2 held out (valid / test),
    # plus one region on a contig the FASTA lacks (skipped and counted).
    rows = [("chr1", s, s + 1000, "train") for s in range(14_000, 52_000, 4_000)]
    rows += [("chr2", s, s + 1000, split) for s, split in zip(range(20_000, 52_000, 4_000), ["valid", "test"] * 4,
                                                                       strict=True)]
    rows.append(("chr3", 20_000, 21_000, "train"))
    (HERE / "reference_regions_hg38.bed").write_text("".join(f"{c}\t{s}\t{e}\t{t}\n" for c, s, e, t in rows))


def bundled_bigwigs() -> None:
    """bigWigs of 3 bundled tracks over 3 bundled windows (real hg38 coordinates), a targets file
    naming them, and a BED of the 2,048-bp crops the bundled reference set cuts for a 2,048-bp model."""
    import pyBigWig

    from genocl_plugin import reference

    out = HERE / "bundled_tracks"
    out.mkdir(exist_ok=True)
    data = reference.load_windows()
    names = reference.track_names()
    table = {t: [] for t in BUNDLED_TRACKS}
    bed = []
    chroms = {}
    for split, w in BUNDLED_WINDOWS:
        chrom, rest = str(data[f"{split}_coords"][w]).split(":")
        w_start = int(rest.split("-")[0])
        chroms[chrom] = HG38_SIZES[chrom]
        first = w_start + reference.TARGET_CROP
        for t in BUNDLED_TRACKS:
            # one entry per 32-bp bin; the per-base value is the bin sum / 32, so summing bases
            # over a bin gives back the bundled value exactly (powers of two)
            values = data[f"{split}_targets"][w][:, t].astype("float32") / reference.BIN_SIZE
            table[t].append((chrom, first, values))
        for k in range(reference.N_BINS // 64):
            bed.append((chrom, first + k * 2048, first + (k + 1) * 2048, split))
    header = sorted(chroms.items())
    rows = ["\tidentifier\tfile\tclip\tscale\tsum_stat\tdescription"]
    for k, t in enumerate(BUNDLED_TRACKS):
        path = out / f"track{t}.bw"
        handle = pyBigWig.open(str(path), "w")
        handle.addHeader(header)
        for chrom, first, values in sorted(table[t], key=lambda r: (r[0], r[1])):
            handle.addEntries(chrom, first, values=[float(v) for v in values], span=reference.BIN_SIZE,
                              step=reference.BIN_SIZE)
        handle.close()
        desc, ident = names[t].rsplit(" [", 1)
        rows.append(f"{k}\t{ident[:-1]}\t{path.name}\t384\t1.0\tsum\t{desc}")
    (out / "targets.txt").write_text("\n".join(rows) + "\n")
    (out / "crops.bed").write_text("".join(f"{c}\t{s}\t{e}\t{t}\n" for c, s, e, t in bed))


if __name__ == "__main__":
    shared = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data")
    kircher(shared)
    engreitz(shared)
    chr1(shared)
    hg38_pieces(shared)
    bundled_bigwigs()
