"""Regenerate the small real fixtures in tests/data from the shared data snapshot.

Run once by hand (``python tests/data/make_fixtures.py /path/to/shared/data``); the tests
themselves read only the files written here. Sources are listed in tests/data/README.md.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np
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


def hg38_1mb(shared: Path) -> None:
    """hg38 chr1:1-1,000,000 (bgzip + index), copied unchanged: full-geometry reference windows."""
    import shutil

    for suffix in ("", ".fai", ".gzi"):
        shutil.copyfile(shared / f"genome/hg38_1m.fa.gz{suffix}", HERE / f"hg38_chr1_1-1000000.fa.gz{suffix}")


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

    from genocl_plugin.data import reference

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


# Personal genomes (tests/test_personal.py). 5 GEUVADIS people, hg38 chr2: the VCF covers
# chr2:10k-500k, so FAM110C's TSS (chr2:46,588, minus strand) has phased variants around it;
# TMEM18's TSS (chr2:677,406) lies in the FASTA piece but beyond the VCF (no variant: its
# haplotypes are the reference). Gene spans: Ensembl GRCh38 (TSS = gene end on the minus strand).
PERSONAL_GENES = (("ENSG00000184731", "chr2", 46588, "-"), ("ENSG00000151353", "chr2", 677406, "-"))
PERSONAL_VCF_END = 70_000  # keep chr2 variants at POS <= this (1-based)
PERSONAL_FASTA_SLICES = ((0, 70_000), (660_000, 700_000))  # 0-based half-open; N elsewhere
QTLMAP_GENES = ("ENSG00000234520", "ENSG00000137821")
QTLMAP_FLANK = 70_000  # dosage rows within this many bp of either TSS


def personal_chr2(shared: Path) -> None:
    """5 GEUVADIS people: chr2 VCF rows, the two genes' expression, an N-padded hg38 chr2."""
    import pyfaidx
    import pysam

    src = shared / "personal" / "geuvadis_5indiv_chr2"
    header, body = [], []
    with gzip.open(src / "test1.vcf.gz", "rt") as handle:
        for line in handle:
            if line.startswith("#"):
                header.append(line)
            elif line.split("\t", 2)[0] == "2" and int(line.split("\t", 2)[1]) <= PERSONAL_VCF_END:
                body.append(line)
    plain = HERE / "geuvadis_5indiv_chr2_1-70000.vcf"
    plain.write_text("".join(header + body))
    pysam.tabix_index(str(plain), preset="vcf", force=True)  # bgzip + .tbi, removes the plain file
    ids = {g[0] for g in PERSONAL_GENES}
    lines = (src / "pheno.tsv").read_text().splitlines()
    kept = [lines[0]] + [x for x in lines[1:] if x.split("\t")[0].split(".")[0] in ids]
    (HERE / "geuvadis_5indiv_pheno.tsv").write_text("\n".join(kept) + "\n")
    genes = ["gene_id\tchrom\ttss\tstrand"] + ["\t".join(map(str, g)) for g in PERSONAL_GENES]
    (HERE / "geuvadis_5indiv_genes.tsv").write_text("\n".join(genes) + "\n")
    fasta = pyfaidx.Fasta(str(shared / "genome" / "chr2_1-2333275.fa.gz"), as_raw=True)
    seq = ["N"] * PERSONAL_FASTA_SLICES[-1][1]
    for start, end in PERSONAL_FASTA_SLICES:
        seq[start:end] = fasta["chr2"][start:end]
    seq = "".join(seq)
    out = HERE / "hg38_chr2_personal.fa"
    out.write_text(">chr2\n" + "\n".join(seq[i : i + 60] for i in range(0, len(seq), 60)) + "\n")
    pysam.tabix_compress(str(out), str(out) + ".gz", force=True)
    out.unlink()
    pysam.faidx(str(out) + ".gz")


def personal_qtlmap(shared: Path) -> None:
    """eQTL-Catalogue GEUVADIS test data restricted to the two genes inside the bundled windows."""
    src = shared / "personal" / "geuvadis_qtlmap"
    meta = pd.read_csv(src / "GEUVADIS_phenotype_metadata.tsv", sep="\t", dtype=str)
    meta = meta[meta["phenotype_id"].isin(QTLMAP_GENES)]
    meta.to_csv(HERE / "geuvadis_qtlmap_phenotype_metadata.tsv", sep="\t", index=False)
    expr = pd.read_csv(src / "GEUVADIS_cqn.tsv", sep="\t", dtype=str)
    expr[expr["phenotype_id"].isin(QTLMAP_GENES)].to_csv(
        HERE / "geuvadis_qtlmap_cqn.tsv", sep="\t", index=False)
    (HERE / "geuvadis_qtlmap_sample_metadata.tsv").write_bytes(
        (src / "GEUVADIS_sample_metadata.tsv").read_bytes())
    dose = pd.read_csv(src / "LCL.dose.tsv.gz", sep="\t", dtype=str)
    pos = dose["POS"].astype(int)
    keep = pd.Series(False, index=dose.index)
    for chrom, tss in zip(meta["chromosome"], meta["phenotype_pos"].astype(int), strict=True):
        keep |= (dose["CHROM"] == chrom) & ((pos - tss).abs() <= QTLMAP_FLANK)
    with gzip.open(HERE / "geuvadis_qtlmap_LCL.dose.tsv.gz", "wt") as handle:
        dose[keep].to_csv(handle, sep="\t", index=False)


MOUSE_TRACKS = (0, 1, 14, 16)  # CAGE heart E11 +/-, DNase kidney P0, RNA liver E18 (targets.txt rows)
MOUSE_WINDOWS = (("train", 0), ("valid", 0), ("test", 0))
MOUSE_SEQ_BP, MOUSE_COV_BINS = 16_384, 256  # central sequence and coverage bins kept per window


def mouse_subset(shared: Path) -> None:
    """3 mm10 windows of basenji_tiny_mm10 (one per split), cut to their central 16,384 bp with the
    central 256 coverage bins, and 4 of the 32 tracks; the matching rows of targets.txt."""
    src = shared / "basenji_tiny_mm10"
    data = np.load(src / "DERIVED_basenji_tiny_mm10.npz")
    out = {}
    for split, w in MOUSE_WINDOWS:
        seq, cov = data[f"{split}_seq"][w], data[f"{split}_targets"][w]
        s0 = (len(seq) - MOUSE_SEQ_BP) // 2
        b0 = (cov.shape[0] - MOUSE_COV_BINS) // 2
        chrom, rest = str(data[f"{split}_coords"][w]).split(":")
        start = int(rest.split("-")[0]) + b0 * 32
        out[f"{split}_seq"] = seq[None, s0 : s0 + MOUSE_SEQ_BP]
        out[f"{split}_targets"] = cov[None, b0 : b0 + MOUSE_COV_BINS][..., list(MOUSE_TRACKS)]
        out[f"{split}_coords"] = np.array([f"{chrom}:{start}-{start + MOUSE_COV_BINS * 32}"])
    np.savez_compressed(HERE / "basenji_tiny_mm10_subset.npz", **out)
    lines = (src / "targets.txt").read_text().splitlines()
    rows = [lines[0]] + [lines[1 + t] for t in MOUSE_TRACKS]
    (HERE / "basenji_tiny_mm10_subset_targets.txt").write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    shared = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data")
    kircher(shared)
    engreitz(shared)
    chr1(shared)
    hg38_1mb(shared)
    hg38_pieces(shared)
    bundled_bigwigs()
    personal_chr2(shared)
    personal_qtlmap(shared)
    mouse_subset(shared)
