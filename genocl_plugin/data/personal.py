"""Personal genomes: individuals' haplotypes paired with their gene expression.

``assay="personal"`` screens (layout in ``docs/screen_format.md``) hold one row per
(individual, gene) with the measured expression, plus a variant table and per-row haplotype
codes, never full sequences: the model input of a row is the reference window around the
gene's TSS with that individual's SNVs applied, built on the fly (objectives.personal_dataset).

Haplotype codes (``obsm["haplotypes"]``, sparse uint8, rows x variants): bit 0 = the ALT
allele is on haplotype 1, bit 1 = on haplotype 2 (0 ref/ref, 1 or 2 heterozygous, 3 alt/alt).

Genotypes come from a phased VCF/BCF (read with cyvcf2; ``0|1`` puts ALT on haplotype 2) or
from a dosage table (0/1/2, unphased, eQTL-Catalogue ``*.dose.tsv.gz`` layout). Dosages carry
no phase, so they become two haplotypes by a fixed rule: dosage 1 -> ALT on haplotype 1 only,
2 -> on both. This ignores phase: every heterozygous ALT of a person lands on haplotype 1
(all in cis). It matters only where the model's readout is not additive over variants.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from genocl_plugin.data import reference
from genocl_plugin.errors import input_error

GENE_ID_COLUMNS = ("phenotype_id", "gene_id", "id", "gene")
CHROM_COLUMNS = ("chrom", "chromosome", "chr", "seqname")
TSS_COLUMNS = ("tss", "phenotype_pos", "tss_pos")
OBS_COLUMNS = ("gene_id", "chrom", "tss", "strand", "individual", "expression")
_VERSION = re.compile(r"\.\d+$")


def strip_version(gene_id: str) -> str:
    """``ENSG00000151353.10`` -> ``ENSG00000151353`` (Ensembl version suffix dropped)."""
    return _VERSION.sub("", str(gene_id))


def window(tss: int, input_length: int) -> tuple[int, int]:
    """0-based half-open model input ``[start, end)`` centred on a 0-based TSS."""
    start = int(tss) - input_length // 2
    return start, start + input_length


def dosage_to_haplotypes(dosage: np.ndarray) -> np.ndarray:
    """Haplotype codes from unphased ALT dosages (0/1/2).

    Dosage 1 -> ALT on haplotype 1 only (code 1); 2 -> on both (code 3); 0 -> code 0. Phase is
    unknown, so all heterozygous ALT alleles of a person are put in cis on haplotype 1.
    """
    d = np.asarray(dosage)
    return np.where(d >= 2, 3, np.where(d >= 1, 1, 0)).astype(np.uint8)


def apply_haplotypes(ref_codes: np.ndarray, offsets: np.ndarray, alt_codes: np.ndarray,
                     hap_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two haplotype sequences of one person (uint8 codes).

    Parameters
    ----------
    ref_codes
        (L,) reference codes of the input window.
    offsets
        (k,) 0-based positions of the person's variants inside the window.
    alt_codes
        (k,) ALT base codes (0-3).
    hap_codes
        (k,) haplotype codes (bit 0: haplotype 1 carries ALT; bit 1: haplotype 2).

    Returns
    -------
    tuple of np.ndarray
        ``(haplotype_1, haplotype_2)``, each (L,) uint8.
    """
    h1, h2 = ref_codes.copy(), ref_codes.copy()
    hap_codes = np.asarray(hap_codes, dtype=np.uint8)
    on1, on2 = (hap_codes & 1).astype(bool), (hap_codes & 2).astype(bool)
    h1[offsets[on1]] = alt_codes[on1]
    h2[offsets[on2]] = alt_codes[on2]
    return h1, h2


def _pick(columns, candidates, path, what) -> str:
    lower = {c.lower(): c for c in columns}
    for name in candidates:
        if name in lower:
            return lower[name]
    raise input_error(path, what, f"no column among {', '.join(candidates)}",
                      f"name the {what} column one of: {', '.join(candidates)}")


def _read_tsv(path, option: str) -> pd.DataFrame:
    if not Path(path).exists():
        raise input_error(path, option, "file not found", "pass an existing tab-separated file")
    try:
        return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_values=["", "NA", "NaN", "nan"])
    except Exception as err:
        raise input_error(path, option, f"unreadable table ({type(err).__name__})",
                          "pass a tab-separated file with a header line") from None


def read_genes(path) -> pd.DataFrame:
    """Genes table -> DataFrame ``gene_id, chrom, tss (0-based), strand``.

    Accepts ``gene_id``/``phenotype_id``, ``chrom``/``chromosome``, ``tss``/``phenotype_pos``
    (1-based, as in GTF files and eQTL-Catalogue phenotype metadata) and ``strand``
    (``+``/``-``/``.`` or ``1``/``-1``).
    """
    df = _read_tsv(path, "--genes")
    gid = _pick(df.columns, GENE_ID_COLUMNS, path, "gene id")
    chrom = _pick(df.columns, CHROM_COLUMNS, path, "chromosome")
    tss = _pick(df.columns, TSS_COLUMNS, path, "TSS")
    pos = pd.to_numeric(df[tss], errors="coerce")
    if pos.isna().any() or (pos < 1).any():
        bad = df[gid][pos.isna() | (pos < 1)].iloc[0]
        raise input_error(path, tss, f"gene {bad}: not a 1-based position", "give integer TSS positions (1-based)")
    strand = df["strand"].astype(str) if "strand" in df.columns else pd.Series(".", index=df.index)
    strand = strand.replace({"1": "+", "-1": "-", "+1": "+"})
    if not set(strand) <= {"+", "-", "."}:
        raise input_error(path, "strand", f"values {sorted(set(strand))}", "use +, -, . (or 1 / -1)")
    return pd.DataFrame({"gene_id": df[gid].astype(str).to_numpy(), "chrom": df[chrom].astype(str).to_numpy(),
                         "tss": pos.astype(int).to_numpy() - 1, "strand": strand.to_numpy()})


def read_expression(path, samples_as_rows: bool = False, sample_map=None) -> pd.DataFrame:
    """Expression table -> DataFrame genes (index, version-less ids) x individuals (columns).

    Parameters
    ----------
    path
        Genes x samples (first column the gene id: GEUVADIS / eQTL-Catalogue), or samples x
        genes with ``samples_as_rows``.
    samples_as_rows
        The table is samples x genes.
    sample_map
        Optional TSV with ``sample_id`` and ``genotype_id`` columns (eQTL-Catalogue
        ``*_sample_metadata.tsv``) renaming expression samples to genotype sample IDs.
    """
    df = _read_tsv(path, "--expression")
    if df.shape[1] < 2:
        raise input_error(path, "--expression", "fewer than 2 columns", "first column ids, then values")
    df = df.set_index(df.columns[0])
    if samples_as_rows:
        df = df.T
    values = df.apply(pd.to_numeric, errors="coerce")
    bad = values.isna() & df.notna()
    if bad.any().any():
        gene, sample = bad.stack().loc[lambda s: s].index[0]
        raise input_error(path, "--expression",
                          f"gene {gene}, sample {sample}: {df.loc[gene, sample]!r} is not a number",
                          "give numeric expression values")
    values.index = [strip_version(g) for g in values.index]
    values = values[~values.index.duplicated()]
    if sample_map is not None:
        meta = _read_tsv(sample_map, "--sample-map")
        values.columns = [str(c) for c in values.columns]
        rename = _sample_renames(meta, sample_map, values.columns)
        values.columns = [rename.get(c, c) for c in values.columns]
    values.columns = [str(c) for c in values.columns]
    return values


def _sample_renames(meta: pd.DataFrame, sample_map, samples) -> dict[str, str]:
    """``sample_id -> genotype_id`` of a sample map, refusing anything that could mix individuals.

    Among the map's rows for the expression table's ``samples``, a sample listed twice, or two
    samples mapped to one genotype id, would put one person's expression on another person's
    genome; both are refused, as is a blank genotype id. Rows of samples the table does not
    hold (e.g. another tissue's in eQTL-Catalogue metadata) are not used and not checked. A
    genotype id that is also an expression sample the map does not rename is refused too.
    """
    for column in ("sample_id", "genotype_id"):
        if column not in meta.columns:
            raise input_error(sample_map, column, "column missing",
                              "the sample map needs sample_id and genotype_id columns")
    used = meta[meta["sample_id"].notna() & meta["sample_id"].astype(str).isin(set(samples))]
    blank = used["genotype_id"].isna().to_numpy()
    if blank.any():
        raise input_error(sample_map, "genotype_id", f"sample {used['sample_id'].iloc[int(np.argmax(blank))]!r}: empty",
                          "give every sample_id its genotype_id")
    for column in ("sample_id", "genotype_id"):
        ids = used[column].astype(str)
        counts = Counter(ids)
        dup = next((v for v in ids if counts[v] > 1), None)
        if dup is not None:
            what = ("one expression sample mapped twice" if column == "sample_id"
                    else "two expression samples mapped to one individual")
            raise input_error(sample_map, column, f"{dup!r} appears {counts[dup]} times ({what})",
                              "list each expression sample once, each mapped to its own genotype_id")
    rename = dict(zip(used["sample_id"].astype(str), used["genotype_id"].astype(str), strict=True))
    # A genotype id that is also the name of an expression sample the map leaves alone would put
    # two people's values under one individual, as a duplicated genotype_id would.
    kept = {str(s) for s in samples} - set(rename)
    clash = next((new for new in rename.values() if new in kept), None)
    if clash is not None:
        raise input_error(sample_map, "genotype_id",
                          f"{clash!r} is also an expression sample the map does not rename (two people "
                          "would become one individual)",
                          "map every expression sample to its own genotype id")
    return rename


class _Sequence:
    """Reference sequence access (a FASTA or the bundled windows) with contig-name matching."""

    def __init__(self, fasta: str | os.PathLike) -> None:
        self.bundled = str(fasta) == "bundled"
        self.path = "bundled" if self.bundled else str(Path(fasta).resolve())
        self.fasta = None if self.bundled else reference.open_fasta(fasta, field="--fasta")

    def contig(self, chrom: str) -> str | None:
        """The sequence's name for ``chrom`` (``7`` <-> ``chr7``), or None if absent."""
        chrom = str(chrom)
        bare = chrom.removeprefix("chr")
        if self.bundled:
            name = f"chr{bare}"
            return name if any(w[1] == name for w in reference.window_table()) else None
        for name in (chrom, f"chr{bare}", bare):
            if name in self.fasta:
                return name
        return None

    def covers(self, contig: str, tss: int) -> bool:
        """Whether the TSS base is real sequence of the source."""
        if self.bundled:
            return reference.find_window(contig, tss, tss + 1) is not None
        return 0 <= tss < len(self.fasta[contig])

    def codes(self, contig: str, start: int, end: int) -> np.ndarray:
        return reference.fetch_codes(contig, start, end, fasta=self.fasta)


def _gene_windows(genes: pd.DataFrame, input_length: int) -> dict[str, list[tuple[int, int, int]]]:
    """contig -> [(start, end, gene row index)] of the model input windows."""
    out: dict[str, list] = {}
    for i, (contig, tss) in enumerate(zip(genes["contig"], genes["tss"], strict=True)):
        start, end = window(tss, input_length)
        out.setdefault(contig, []).append((start, end, i))
    return out


def _in_windows(windows, pos0: int) -> bool:
    return any(s <= pos0 < e for s, e, _ in windows)


def _vcf_records(path, samples: list[str], windows: dict, seq: _Sequence, require_phased: bool):
    """Yield ``(contig, pos0, ref, alts, codes per sample)`` of VCF records inside the windows."""
    import cyvcf2

    try:
        vcf = cyvcf2.VCF(str(path), samples=samples, lazy=True)
    except Exception as err:
        raise input_error(path, "--vcf", f"unreadable VCF/BCF ({type(err).__name__})",
                          "pass a VCF/BCF (bgzipped + indexed for speed)") from None
    if not vcf.contains("GT"):  # e.g. imputed dosages only (FORMAT DS); reading records would fail later
        fields = [h.info().get("ID") for h in vcf.header_iter() if h.type == "FORMAT"]
        raise input_error(path, "FORMAT/GT", f"no GT genotypes (FORMAT fields: {', '.join(fields) or 'none'}), and "
                          "--vcf reads phased GT", "pass a VCF with phased GT, or the dosages as --dosages (a table "
                          "CHROM POS REF ALT then one column per sample)")
    order = [vcf.samples.index(s) for s in samples]
    indexed = any(Path(f"{path}{ext}").exists() for ext in (".tbi", ".csi"))
    if indexed:
        names = set(vcf.seqnames)

        def records():
            for contig, wins in windows.items():
                bare = contig.removeprefix("chr")
                name = next((n for n in (contig, bare, f"chr{bare}") if n in names), None)
                if name is None:
                    continue
                lo, hi = min(w[0] for w in wins), max(w[1] for w in wins)
                yield from vcf(f"{name}:{max(lo, 0) + 1}-{hi}")
        source = records()
    else:
        source = iter(vcf)
    seen = set()
    for rec in source:
        contig = seq.contig(rec.CHROM)
        pos0 = rec.POS - 1
        if contig is None or contig not in windows or not _in_windows(windows[contig], pos0):
            continue
        if (contig, pos0, rec.REF, tuple(rec.ALT)) in seen:  # overlapping region queries
            continue
        seen.add((contig, pos0, rec.REF, tuple(rec.ALT)))
        try:  # a record without GT: cyvcf2 raises a bare "error parsing genotypes"
            gts = rec.genotypes
        except Exception as err:
            raise input_error(path, "FORMAT/GT", f"{rec.CHROM}:{rec.POS}: no readable GT genotypes ({err})",
                              "give every record phased GT values (e.g. 0|1, 1|1, .|.)") from None
        codes = np.zeros(len(samples), dtype=np.uint8)
        missing = 0
        for k, j in enumerate(order):
            gt = gts[j]
            alleles, phased = gt[:-1], bool(gt[-1])
            if any(a < 0 for a in alleles):
                missing += 1
                continue
            if len(alleles) == 1:  # haploid call: one allele on both haplotypes
                alleles = [alleles[0], alleles[0]]
            if require_phased and not phased and alleles[0] != alleles[1]:
                raise input_error(path, "FORMAT/GT",
                                  f"{rec.CHROM}:{rec.POS} sample {samples[k]}: unphased heterozygous genotype "
                                  f"{alleles[0]}/{alleles[1]}",
                                  "phase the VCF (SHAPEIT, Beagle, Eagle) or pass the genotypes as --dosages "
                                  "(phase is then ignored, see docs/screen_format.md)")
            codes[k] = (alleles[0] > 0) | ((alleles[1] > 0) << 1)
        yield contig, pos0, rec.REF, list(rec.ALT), codes, missing


def _dosage_records(path, samples: list[str], windows: dict, seq: _Sequence):
    """Yield records of an eQTL-Catalogue dosage table (CHROM POS REF ALT samples...)."""
    df = _read_tsv(path, "--dosages")
    for column in ("CHROM", "POS", "REF", "ALT"):
        if column not in df.columns:
            raise input_error(path, column, "column missing",
                              "a dosage table has columns CHROM POS REF ALT then one column per sample")
    missing_samples = [s for s in samples if s not in df.columns]
    if missing_samples:
        raise input_error(path, "samples", f"{missing_samples[0]} not a column", "check the sample IDs")
    pos = pd.to_numeric(df["POS"], errors="coerce")
    for i, (chrom, p, ref, alt) in enumerate(zip(df["CHROM"], pos, df["REF"], df["ALT"], strict=True)):
        contig = seq.contig(chrom)
        if contig is None or contig not in windows or not np.isfinite(p):
            continue
        if not _in_windows(windows[contig], int(p) - 1):
            continue
        dose = pd.to_numeric(df.iloc[i][samples], errors="coerce").to_numpy(dtype=float)
        missing = int(np.isnan(dose).sum())
        dose = np.rint(np.nan_to_num(dose, nan=0.0))
        yield contig, int(p) - 1, str(ref), [str(alt)], dosage_to_haplotypes(dose), missing


def _validate_personal(adata, path) -> None:
    """``assay="personal"``: rows, variant table, haplotype codes and sequence source."""
    obs = adata.obs
    for column in OBS_COLUMNS:
        if column not in obs.columns:
            raise input_error(path, f"obs['{column}']", "missing (assay=personal)",
                              f"add the column; required: {', '.join(OBS_COLUMNS)}")
    expression = pd.to_numeric(obs["expression"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(expression)
    if bad.any():
        raise input_error(path, "obs['expression']",
                          f"{int(bad.sum())} non-finite values (first: row {obs.index[int(np.argmax(bad))]})",
                          "drop those rows or fill in the measured expression")
    strands = set(obs["strand"].astype(str))
    if not strands <= {"+", "-", "."}:
        raise input_error(path, "obs['strand']", f"values {sorted(strands)}", "use +, - or .")
    tss = pd.to_numeric(obs["tss"], errors="coerce").to_numpy(dtype=float)
    if not (np.isfinite(tss) & (tss == np.round(tss)) & (tss >= 0)).all():
        raise input_error(path, "obs['tss']", "non-integer or negative positions", "give 0-based integers")
    length = adata.uns.get("input_length")
    if not isinstance(length, int | np.integer) or int(length) < 2:
        raise input_error(path, "uns['input_length']", f"is {length!r}",
                          "store the model input length (bp) the variants were selected for")
    variants = adata.uns.get("variants")
    keys = ("chrom", "pos", "ref", "alt")
    if not isinstance(variants, dict) or any(k not in variants for k in keys):
        raise input_error(path, "uns['variants']", "missing or lacks chrom/pos/ref/alt",
                          "store a dict of equal-length arrays chrom, pos (0-based), ref, alt")
    n_var = len(variants["pos"])
    if any(len(variants[k]) != n_var for k in keys):
        raise input_error(path, "uns['variants']", "arrays of different lengths", "give one entry per variant")
    for key in ("ref", "alt"):
        alleles = {str(a).upper() for a in variants[key]}
        if not alleles <= set("ACGT"):
            raise input_error(path, f"uns['variants']['{key}']", f"non-SNV alleles {sorted(alleles - set('ACGT'))[:3]}",
                              "keep single-base A/C/G/T alleles (indels are skipped by the converter)")
    haps = adata.obsm.get("haplotypes") if "haplotypes" in adata.obsm else None
    if haps is None or haps.shape != (adata.n_obs, n_var):
        raise input_error(path, "obsm['haplotypes']",
                          f"missing or shape {None if haps is None else haps.shape} != ({adata.n_obs}, {n_var})",
                          "store a (rows x variants) uint8 matrix of haplotype codes 0-3")
    import scipy.sparse as sp

    coo = sp.coo_matrix(haps)
    if coo.nnz and (coo.data.min() < 0 or coo.data.max() > 3):
        raise input_error(path, "obsm['haplotypes']", "codes outside 0-3",
                          "bit 0 = ALT on haplotype 1, bit 1 = ALT on haplotype 2")
    v_chrom = np.asarray(variants["chrom"]).astype(str)
    v_pos = np.asarray(variants["pos"]).astype(np.int64)
    r_chrom = obs["chrom"].astype(str).to_numpy()
    start = tss.astype(np.int64) - int(length) // 2
    outside = (v_chrom[coo.col] != r_chrom[coo.row]) | (v_pos[coo.col] < start[coo.row]) | \
        (v_pos[coo.col] >= start[coo.row] + int(length))
    if outside.any():
        raise input_error(path, "obsm['haplotypes']",
                          f"row {obs.index[coo.row[np.argmax(outside)]]} carries a variant outside its input window",
                          "re-run `genocl screen from-personal` with the same --input-length")
    source = adata.uns.get("sequence_source")
    if not source:
        raise input_error(path, "uns['sequence_source']", "missing",
                          "set it to 'bundled' or the path of an indexed hg38 FASTA")
    genome = None if source == "bundled" else reference.open_fasta(source, field="uns['sequence_source']")
    for (chrom, pos), name in zip(zip(r_chrom, tss.astype(int), strict=True), obs.index, strict=True):
        if genome is None:
            ok = reference.find_window(chrom, pos, pos + 1) is not None
        else:
            ok = chrom in genome and pos < len(genome[chrom])
        if not ok:
            raise input_error(path, "obs['tss']", f"row {name}: {chrom}:{pos} is not on {source}",
                              "set uns['sequence_source'] to a genome containing the gene (hg38)")


def from_personal(
    expression: str | os.PathLike,
    genes: str | os.PathLike,
    fasta: str | os.PathLike,
    input_length: int,
    vcf: str | os.PathLike | None = None,
    dosages: str | os.PathLike | None = None,
    samples_as_rows: bool = False,
    sample_map: str | os.PathLike | None = None,
    log2p1: bool = False,
):
    """Build an ``assay="personal"`` screen from genotypes, expression and gene TSSs.

    Parameters
    ----------
    expression
        Genes x samples table (or samples x genes with ``samples_as_rows``).
    genes
        Gene id, chromosome, TSS (1-based) and strand (see :func:`read_genes`).
    fasta
        hg38 FASTA (indexed or indexable), or ``"bundled"`` for genocl's hg38 windows.
    input_length
        Model input length (bp); only variants inside ``[TSS - L/2, TSS + L/2)`` are kept.
    vcf, dosages
        Exactly one: a phased VCF/BCF, or an unphased dosage table.
    samples_as_rows
        The expression table is samples x genes.
    sample_map
        TSV ``sample_id -> genotype_id`` (eQTL-Catalogue sample metadata).
    log2p1
        Store ``log2(1 + expression)`` (for linear-scale values such as RPKM/TPM).

    Returns
    -------
    tuple
        ``(adata, summary)``: the validated screen and a dict of counts (samples, genes,
        variants read / skipped by reason / kept, rows).
    """
    import anndata
    import scipy.sparse as sp

    if (vcf is None) == (dosages is None):
        raise input_error("--vcf/--dosages", "genotypes", "give exactly one of them",
                          "pass --vcf phased.vcf.gz or --dosages dose.tsv.gz")
    if input_length < 2:
        raise input_error("--input-length", "input_length", f"{input_length}", "give the model input length in bp")
    geno_path = vcf if vcf is not None else dosages
    if not Path(geno_path).exists():
        raise input_error(geno_path, "--vcf" if vcf else "--dosages", "file not found", "pass an existing file")
    expr = read_expression(expression, samples_as_rows, sample_map)
    table = read_genes(genes)
    seq = _Sequence(fasta)
    summary: Counter = Counter()

    if vcf is not None:
        import cyvcf2

        try:
            geno_samples = list(cyvcf2.VCF(str(vcf)).samples)
        except Exception as err:
            raise input_error(vcf, "--vcf", f"unreadable VCF/BCF ({type(err).__name__})", "pass a VCF/BCF") from None
    else:
        try:
            geno_samples = [str(c) for c in pd.read_csv(dosages, sep="\t", nrows=0).columns[4:]]
        except Exception as err:
            raise input_error(dosages, "--dosages", f"unreadable table ({type(err).__name__})",
                              "pass a tab-separated CHROM POS REF ALT <samples> table") from None
    samples = [s for s in expr.columns if s in set(geno_samples)]
    summary.update(samples_expression=expr.shape[1], samples_genotypes=len(geno_samples), samples_both=len(samples))
    if not samples:
        raise input_error(expression, "samples", f"none of the {expr.shape[1]} expression samples is among the "
                          f"{len(geno_samples)} genotype samples of {geno_path} (e.g. {list(expr.columns[:2])} vs "
                          f"{geno_samples[:2]})",
                          "use matching IDs, or --sample-map with sample_id and genotype_id columns")

    table["key"] = [strip_version(g) for g in table["gene_id"]]
    table = table.drop_duplicates("key")
    summary["genes_expression"] = expr.shape[0]
    table = table[table["key"].isin(set(expr.index))]
    summary["genes_with_coordinates"] = len(table)
    if table.empty:
        raise input_error(genes, "gene_id", f"no gene of {expression} is in the genes table",
                          "use the same gene IDs (Ensembl versions are ignored)")
    table["contig"] = [seq.contig(c) for c in table["chrom"]]
    on = np.array([c is not None and seq.covers(c, t) for c, t in zip(table["contig"], table["tss"], strict=True)])
    summary["genes_off_sequence"] = int((~on).sum())
    if not on.any():
        first = table.iloc[0]
        raise input_error(genes, "tss", f"no gene's TSS lies on {seq.path} (e.g. {first['gene_id']} at "
                          f"{first['chrom']}:{first['tss'] + 1})",
                          "pass --fasta with a genome that contains the genes (same build, hg38)")
    table = table[on].reset_index(drop=True)
    windows = _gene_windows(table, input_length)

    records = (_vcf_records(vcf, samples, windows, seq, require_phased=True) if vcf is not None
               else _dosage_records(dosages, samples, windows, seq))
    raw = list(records)
    positions = Counter((c, p) for c, p, *_ in raw)
    var_chrom, var_pos, var_ref, var_alt, var_codes = [], [], [], [], []
    for contig, pos0, ref, alts, codes, missing in raw:
        summary["variants_in_windows"] += 1
        if len(alts) > 1 or positions[(contig, pos0)] > 1:
            summary["skipped_multiallelic"] += 1
            continue
        alt = alts[0] if alts else "."
        if len(ref) != 1 or len(alt) != 1 or ref.upper() not in "ACGT" or alt.upper() not in "ACGT":
            summary["skipped_indel_or_symbolic"] += 1
            continue
        base = int(seq.codes(contig, pos0, pos0 + 1)[0])
        if base == 4:
            summary["skipped_outside_sequence"] += 1
            continue
        if base != int(reference.seq_to_codes(ref.upper())[0]):
            summary["skipped_ref_mismatch"] += 1
            continue
        summary["missing_genotypes_set_to_ref"] += missing
        var_chrom.append(contig)
        var_pos.append(pos0)
        var_ref.append(ref.upper())
        var_alt.append(alt.upper())
        var_codes.append(codes)
    summary["variants_kept"] = len(var_pos)

    var_pos_arr = np.array(var_pos, dtype=np.int64)
    var_chrom_arr = np.array(var_chrom, dtype=object)
    codes_mat = np.stack(var_codes, axis=1) if var_codes else np.zeros((len(samples), 0), np.uint8)
    obs_rows, rows, cols, vals = [], [], [], []
    for g in table.itertuples():
        start, end = window(g.tss, input_length)
        in_win = np.flatnonzero((var_chrom_arr == g.contig) & (var_pos_arr >= start) & (var_pos_arr < end))
        values = expr.loc[g.key, samples].to_numpy(dtype=float)
        if log2p1:
            values = np.log2(1.0 + values)
        bad = ~np.isfinite(values)
        if bad.any():
            raise input_error(expression, "expression", f"gene {g.gene_id}, sample {samples[int(np.argmax(bad))]}: "
                              f"{int(bad.sum())} missing or non-finite values",
                              "drop or impute those values before converting"
                              + (" (log2p1 needs values > -1)" if log2p1 else ""))
        for k, sample in enumerate(samples):
            r = len(obs_rows)
            obs_rows.append({"gene_id": g.gene_id, "chrom": g.contig, "tss": int(g.tss), "strand": g.strand,
                             "individual": sample, "expression": float(values[k])})
            nz = in_win[codes_mat[k, in_win] > 0]
            rows.extend([r] * len(nz))
            cols.extend(nz.tolist())
            vals.extend(codes_mat[k, nz].tolist())
    obs = pd.DataFrame(obs_rows)
    obs.index = [f"{g}|{s}" for g, s in zip(obs["gene_id"], obs["individual"], strict=True)]
    adata = anndata.AnnData(obs=obs)
    adata.obsm["haplotypes"] = sp.csr_matrix((np.array(vals, dtype=np.uint8), (rows, cols)),
                                             shape=(len(obs), len(var_pos)), dtype=np.uint8)
    adata.uns["assay"] = "personal"
    adata.uns["genome"] = "GRCh38"
    adata.uns["sequence_source"] = seq.path
    adata.uns["input_length"] = int(input_length)
    adata.uns["variants"] = {"chrom": np.array(var_chrom, dtype=str), "pos": var_pos_arr,
                             "ref": np.array(var_ref, dtype=str), "alt": np.array(var_alt, dtype=str)}
    adata.uns["genotypes"] = ("phased VCF (haplotype 1 = first GT allele)" if vcf is not None else
                              "unphased dosages: 1 -> ALT on haplotype 1 only, 2 -> both (phase ignored)")
    adata.uns["expression_scale"] = (f"log2(1 + values of {Path(expression).name})" if log2p1
                                     else f"as given in {Path(expression).name}")
    adata.uns["source"] = (f"genotypes {Path(geno_path).name}, expression {Path(expression).name}, genes "
                           f"{Path(genes).name}; converted by `genocl screen from-personal`")
    summary["genes_kept"] = int(obs["gene_id"].nunique())
    summary["rows"] = len(obs)
    # what validate_screen does with this screen (assay "personal", at least one row); calling
    # validate_screen here would make an import circle: the screen layout dispatches to this module
    _validate_personal(adata, expression)
    return adata, dict(summary)


def format_summary(summary: dict) -> str:
    """The converter's printed summary (samples, genes, variants by fate, rows)."""
    s = {k: summary.get(k, 0) for k in (
        "samples_expression", "samples_genotypes", "samples_both", "genes_expression", "genes_with_coordinates",
        "genes_off_sequence", "genes_kept", "variants_in_windows", "skipped_multiallelic",
        "skipped_indel_or_symbolic", "skipped_ref_mismatch", "skipped_outside_sequence", "variants_kept",
        "missing_genotypes_set_to_ref", "rows")}
    return "\n".join([
        f"samples: {s['samples_expression']} with expression, {s['samples_genotypes']} genotyped, "
        f"{s['samples_both']} in both (kept)",
        f"genes: {s['genes_expression']} with expression, {s['genes_with_coordinates']} in the genes table, "
        f"{s['genes_off_sequence']} off the sequence, {s['genes_kept']} kept",
        f"variants in the input windows: {s['variants_in_windows']}; skipped: {s['skipped_multiallelic']} "
        f"multi-allelic, {s['skipped_indel_or_symbolic']} indel/symbolic, {s['skipped_ref_mismatch']} REF mismatch, "
        f"{s['skipped_outside_sequence']} outside the sequence; kept: {s['variants_kept']} SNVs",
        f"missing genotype calls set to reference: {s['missing_genotypes_set_to_ref']}",
        f"rows (individual x gene): {s['rows']}",
    ])


def split_personal(adata, by: str = "gene", test_fraction: float = 0.25, seed: int = 0):
    """Split a personal screen into train / held-out rows by gene (default) or by individual.

    Returns
    -------
    tuple of anndata.AnnData
        ``(train, test)`` copies; with fewer than 2 groups everything is training data.
    """
    if by not in ("gene", "individual"):
        raise input_error("--holdout-by", "holdout_by", f"{by!r}", "use gene or individual")
    key = "gene_id" if by == "gene" else "individual"
    groups = np.array(sorted(adata.obs[key].astype(str).unique()))
    if len(groups) < 2 or test_fraction <= 0:
        return adata.copy(), adata[:0].copy()
    rng = np.random.default_rng(seed)
    n_test = max(1, int(round(test_fraction * len(groups))))
    test = set(rng.permutation(groups)[:n_test])
    is_test = adata.obs[key].astype(str).isin(test).to_numpy()
    return adata[~is_test].copy(), adata[is_test].copy()
