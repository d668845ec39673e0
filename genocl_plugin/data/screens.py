"""Perturbation screens as AnnData (.h5ad): the layout, its validation and converters.

Two assays, told apart by ``uns["assay"]``; every row (obs) is one perturbation and its
measured effect. The layouts are documented in ``docs/screen_format.md``.

``assay="mpra"`` (saturation mutagenesis / MPRA)
    obs: ``element`` (str), ``pos`` (0-based position in the element), ``ref``, ``alt``
    (``"-"`` = deletion of ``ref``), ``effect`` (measured log2 variant effect, alt vs ref);
    optional ``pvalue``, ``chrom``, ``genomic_pos``, ``barcodes``.
    uns: ``element_sequences`` (element name -> reference sequence); optional ``source``,
    ``genome``, ``group``.

``assay="crispri"`` (CRISPRi enhancer screens)
    obs: ``gene``, ``tss_chrom``, ``tss_pos`` (0-based), ``tss_strand`` (``+``/``-``/``.``),
    ``elements`` (``chr:start-end`` 0-based half-open, several joined by ``;`` for a
    combinatorial perturbation), ``effect`` (measured log2 fold change of expression);
    optional ``effect_se``, ``pvalue``, ``significant``, ``dataset``.
    uns: ``sequence_source``: ``"bundled"`` (genocl's bundled hg38 windows) or a FASTA path.

``assay="activity"`` (libraries of sequences with a measured activity: lentiMPRA, STARR-seq,
promoter libraries)
    obs: ``sequence`` (A/C/G/T/N, one sequence per row, lengths may differ), ``activity``
    (measured, e.g. log2 RNA/DNA); optional ``group`` (the hold-out unit; default each row its
    own) and ``split`` (``train`` / ``valid`` / ``test``, the user's split).
    uns: optional ``source``.

``personal`` and ``tracks`` screens are described in ``genocl_plugin.data.personal`` / ``genocl_plugin.data.tracks``.
"""

from __future__ import annotations

import gzip
import math
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from genocl_plugin.data.fileio import atomic_path
from genocl_plugin.errors import GenoclInputError, input_error

ASSAYS = ("mpra", "crispri", "personal", "tracks", "activity")
MPRA_COLUMNS = ("element", "pos", "ref", "alt", "effect")
CRISPRI_COLUMNS = ("gene", "tss_chrom", "tss_pos", "tss_strand", "elements", "effect")
ACTIVITY_COLUMNS = ("sequence", "activity")
ACTIVITY_SPLITS = ("train", "valid", "test")

# Kircher et al. 2019 element groups used for the bundled screens. One experiment per
# underlying sequence (LDLR not LDLR.2, PKLR-24h not -48h, TERT-HEK only, SORT1 only,
# ZRSh-13 not h2) so that holding out an element cannot leak its replicate into training.
KIRCHER_ENHANCERS = (
    "BCL11A", "IRF4", "IRF6", "MYCrs6983267", "MYCrs11986220", "RET",
    "SORT1", "TCF7L2", "UC88", "ZFAND3", "ZRSh-13",
)
KIRCHER_PROMOTERS = (
    "F9", "FOXE1", "GP1BA", "HBB", "HBG1", "HNF4A", "LDLR", "MSMB", "PKLR-24h", "TERT-HEK",
)
_INTERVAL = re.compile(r"^(?P<chrom>[^:\s]+):(?P<start>\d+)-(?P<end>\d+)$")


def parse_interval(text: str) -> tuple[str, int, int]:
    """Parse ``chr:start-end`` (0-based, half-open) into ``(chrom, start, end)``."""
    match = _INTERVAL.match(text.strip())
    if match is None:
        raise ValueError(f"not an interval chr:start-end: {text!r}")
    start, end = int(match["start"]), int(match["end"])
    if end <= start:
        raise ValueError(f"empty interval: {text!r}")
    return match["chrom"], start, end


def read_screen(path: str | os.PathLike):
    """Read and validate a screen file.

    Parameters
    ----------
    path
        An ``.h5ad`` file in genocl's screen layout.

    Returns
    -------
    anndata.AnnData
        The validated screen.

    Raises
    ------
    GenoclInputError
        Missing file, unreadable file, or a layout problem (names the field and the fix).
    """
    path = Path(path)
    if not path.exists():
        raise input_error(path, "file", "not found", "pass the path of an existing .h5ad screen")
    if path.is_dir():
        raise input_error(path, "file", "is a directory", "pass the path of a .h5ad screen file")
    import anndata
    try:
        adata = anndata.read_h5ad(path)
    except Exception as err:  # h5py/anndata raise many types for a corrupt file
        raise input_error(
            path, "file", f"not a readable .h5ad ({type(err).__name__})",
            "write it with anndata or a `genocl screen` converter",
        ) from None
    validate_screen(adata, path)
    return adata


def validate_screen(adata, path: str | os.PathLike = "<screen>") -> None:
    """Check a screen against the layout of its assay.

    Parameters
    ----------
    adata
        The screen.
    path
        Its file name, used in error messages.

    Raises
    ------
    GenoclInputError
        The first problem found, naming the field and the fix.
    """
    assay = adata.uns.get("assay")
    if not isinstance(assay, str) or assay not in ASSAYS:
        shown = f"a {type(assay).__name__}, not a string" if not isinstance(assay, str | None) else repr(assay)
        raise input_error(
            path, "uns['assay']", f"is {shown}",
            f"set it to one of {', '.join(ASSAYS)} (see docs/screen_format.md)",
        )
    if adata.n_obs == 0:
        raise input_error(path, "obs", "has no rows", "the screen needs at least one perturbation")
    if assay == "personal":  # one row per (individual, gene): expression, not an effect
        return _validate_personal(adata, path)
    if assay == "tracks":  # one row per genomic window: sequence and coverage (genocl_plugin.data.tracks)
        from genocl_plugin.data.tracks import validate_tracks

        return validate_tracks(adata, path)
    if assay == "activity":  # one row per sequence with its measured activity (no pairs)
        return _validate_activity(adata, path)
    required = MPRA_COLUMNS if assay == "mpra" else CRISPRI_COLUMNS
    for column in required:
        if column not in adata.obs.columns:
            raise input_error(
                path, f"obs['{column}']", f"missing (assay={assay})",
                f"add the column; required: {', '.join(required)}",
            )
    validate_numeric(adata.obs, "effect", path)
    if assay == "mpra":
        _validate_mpra(adata, path)
        validate_unique_rows(adata.obs, ("element", "pos", "ref", "alt"), path)
        validate_alleles_differ(adata.obs, path)
    else:
        _validate_crispri(adata, path)
        validate_unique_rows(adata.obs, ("gene", "elements"), path)


def validate_numeric(obs: pd.DataFrame, column: str, path, dtype=np.float32) -> np.ndarray:
    """Check that ``obs[column]`` holds numbers (not booleans or text) finite in ``dtype``.

    Training runs in float32, where a value such as 1e39 is infinite although it is finite in
    float64; such a value would turn every weight into NaN.

    Returns
    -------
    np.ndarray
        The column as float64.

    Raises
    ------
    GenoclInputError
        Booleans, non-numeric values, or values that are NaN / infinite in ``dtype``.
    """
    field = f"obs['{column}']"
    raw = obs[column]
    if pd.api.types.is_bool_dtype(raw) or any(isinstance(v, bool | np.bool_) for v in raw.head(1000)):
        raise input_error(path, field, "holds booleans, not measured numbers",
                          "store the measured values as floats")
    values = pd.to_numeric(raw, errors="coerce")
    text = values.isna().to_numpy() & raw.notna().to_numpy()
    if text.any():
        first = obs.index[int(np.argmax(text))]
        raise input_error(path, field, f"{int(text.sum())} non-numeric values (first: row {first}, "
                          f"{raw.iloc[int(np.argmax(text))]!r})", "store numbers only")
    values = values.to_numpy(dtype=float)
    with np.errstate(over="ignore", invalid="ignore"):
        bad = ~np.isfinite(values.astype(dtype))
    if bad.any():
        first = obs.index[int(np.argmax(bad))]
        raise input_error(
            path, field, f"{int(bad.sum())} non-finite values (first: row {first}) - "
            f"{float(values[int(np.argmax(bad))])!r} is NaN, infinite or beyond the {np.dtype(dtype).name} range",
            "drop those rows or fill in the measured value",
        )
    return values


def validate_unique_rows(obs: pd.DataFrame, key: tuple[str, ...], path) -> None:
    """Refuse rows that repeat the same perturbation (they would be weighted twice)."""
    present = [c for c in key if c in obs.columns]
    duplicated = obs.duplicated(subset=present).to_numpy() if present else np.zeros(len(obs), bool)
    if duplicated.any():
        first = obs.index[int(np.argmax(duplicated))]
        raise input_error(
            path, "obs", f"{int(duplicated.sum())} duplicated rows with the same "
            f"{'/'.join(present)} (first: row {first})",
            "keep one row per perturbation (drop or average the replicates)",
        )


def validate_alleles_differ(obs: pd.DataFrame, path) -> None:
    """Refuse rows whose alt allele equals the ref allele (no perturbation at all)."""
    same = (obs["ref"].astype(str).str.upper() == obs["alt"].astype(str).str.upper()).to_numpy()
    if same.any():
        first = obs.index[int(np.argmax(same))]
        raise input_error(path, "obs['alt']", f"{int(same.sum())} rows with alt == ref (first: row {first})",
                          "drop those rows; a variant must change the sequence")


def validate_sequence(seq: object, path, field: str) -> str:
    """A DNA sequence of ASCII A/C/G/T/N letters (any case); other letters would silently become N."""
    if not isinstance(seq, str) or not seq:
        raise input_error(path, field, f"is {type(seq).__name__ if not isinstance(seq, str) else 'empty'}",
                          "store the reference sequence as a non-empty string")
    match = re.search(r"[^ACGTNacgtn]", seq)
    if match is not None:
        raise input_error(path, field, f"letter {match.group()!r} at position {match.start()} is not "
                          "A/C/G/T/N", "store the plain reference sequence (ASCII A, C, G, T or N)")
    return seq


def _validate_mpra(adata, path) -> None:
    sequences = adata.uns.get("element_sequences")
    if not isinstance(sequences, dict) or not sequences:
        raise input_error(
            path, "uns['element_sequences']", "missing or empty",
            "store a dict element name -> reference sequence",
        )
    for name, seq in sequences.items():
        validate_sequence(seq, path, f"uns['element_sequences'][{name!r}]")
    obs = adata.obs
    for element in obs["element"].astype(str).unique():
        if element not in sequences:
            raise input_error(
                path, "obs['element']", f"element {element!r} has no sequence",
                "add it to uns['element_sequences']",
            )
    pos = validate_numeric(obs, "pos", path, dtype=np.float64)
    if not (pos == np.round(pos)).all():
        raise input_error(path, "obs['pos']", "non-integer positions", "give 0-based integers")
    for i, (element, p, ref, alt) in enumerate(
        zip(obs["element"].astype(str), pos.astype(int), obs["ref"].astype(str),
            obs["alt"].astype(str), strict=True)
    ):
        seq = sequences[element]
        if p < 0 or p + len(ref) > len(seq):
            raise input_error(
                path, "obs['pos']",
                f"row {obs.index[i]}: position {p} is outside element {element} "
                f"(length {len(seq)})",
                "positions are 0-based within the element sequence",
            )
        if seq[p : p + len(ref)].upper() != ref.upper():
            raise input_error(
                path, "obs['ref']",
                f"row {obs.index[i]}: ref {ref!r} != element {element} sequence "
                f"{seq[p:p + len(ref)]!r} at pos {p}",
                "check that pos is 0-based and the element sequence is the reference",
            )
        if alt != "-" and not re.fullmatch(r"[ACGTNacgtn]+", alt):
            raise input_error(
                path, "obs['alt']", f"row {obs.index[i]}: alt {alt!r} is not a DNA allele",
                "use A/C/G/T letters, or '-' for a deletion",
            )


def _validate_crispri(adata, path) -> None:
    from genocl_plugin.data import reference

    source = adata.uns.get("sequence_source")
    if source is not None and not isinstance(source, str):
        raise input_error(path, "uns['sequence_source']", f"is a {type(source).__name__}, not a string",
                          "set it to 'bundled' or the path of an indexed hg38 FASTA")
    if not source:
        raise input_error(
            path, "uns['sequence_source']", "missing",
            "set it to 'bundled' or the path of an indexed hg38 FASTA",
        )
    obs = adata.obs
    strands = set(obs["tss_strand"].astype(str))
    if not strands <= {"+", "-", "."}:
        raise input_error(path, "obs['tss_strand']", f"values {sorted(strands)}", "use +, - or .")
    tss_pos = validate_numeric(obs, "tss_pos", path, dtype=np.float64)
    if not (tss_pos == np.round(tss_pos)).all():
        raise input_error(path, "obs['tss_pos']", "non-integer positions", "give 0-based integers")
    if (tss_pos < 0).any():
        first = obs.index[int(np.argmax(tss_pos < 0))]
        raise input_error(path, "obs['tss_pos']", f"negative position (first: row {first})",
                          "give 0-based TSS positions >= 0")
    genome = None
    if source != "bundled":
        genome = reference.open_fasta(source, field="uns['sequence_source']")
    for i, (chrom, tss, elements) in enumerate(
        zip(obs["tss_chrom"].astype(str), tss_pos.astype(int), obs["elements"].astype(str),
            strict=True)
    ):
        try:
            intervals = [parse_interval(x) for x in elements.split(";")]
        except ValueError as err:
            raise input_error(
                path, "obs['elements']", f"row {obs.index[i]}: {err}",
                "write elements as chr:start-end, several joined by ';'",
            ) from None
        for e_chrom, _, _ in intervals:
            if e_chrom != chrom:
                raise input_error(
                    path, "obs['elements']",
                    f"row {obs.index[i]}: element on {e_chrom} but TSS on {chrom}",
                    "silenced elements must be on the TSS's chromosome",
                )
        lo = min([tss] + [s for _, s, _ in intervals])
        hi = max([tss + 1] + [e for _, _, e in intervals])
        if genome is None:
            if reference.find_window(chrom, lo, hi) is None:
                raise input_error(
                    path, "obs['elements']",
                    f"row {obs.index[i]}: {chrom}:{lo}-{hi} is outside the bundled hg38 windows",
                    "set uns['sequence_source'] to your hg38 FASTA",
                )
        else:
            if chrom not in genome:
                raise input_error(
                    path, "obs['tss_chrom']",
                    f"row {obs.index[i]}: {chrom!r} is not a contig of {source}",
                    "use a FASTA that contains it, or rename contigs to match",
                )
            if hi > len(genome[chrom]):
                raise input_error(
                    path, "obs['elements']",
                    f"row {obs.index[i]}: {chrom}:{lo}-{hi} runs past the contig end",
                    "check the coordinates' genome build",
                )


def _validate_activity(adata, path) -> None:
    """``assay="activity"``: sequences (A/C/G/T/N), finite activities, optional group and split."""
    obs = adata.obs
    for column in ACTIVITY_COLUMNS:
        if column not in obs.columns:
            raise input_error(path, f"obs['{column}']", "missing (assay=activity)",
                              f"add the column; required: {', '.join(ACTIVITY_COLUMNS)}")
    raw = obs["sequence"]
    not_text = ~raw.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    if not_text.any():
        i = int(np.argmax(not_text))
        raise input_error(path, "obs['sequence']", f"row {obs.index[i]}: is a {type(raw.iloc[i]).__name__}, "
                          f"not a string ({int(not_text.sum())} such rows)", "store each sequence as a DNA string")
    seqs = raw.astype(str)
    empty = (seqs.str.len() == 0).to_numpy()
    if empty.any():
        raise input_error(path, "obs['sequence']", f"row {obs.index[int(np.argmax(empty))]}: empty sequence "
                          f"({int(empty.sum())} such rows)", "drop the rows without a sequence")
    bad = seqs.str.contains(r"[^ACGTNacgtn]", regex=True).to_numpy(dtype=bool)
    if bad.any():
        i = int(np.argmax(bad))
        match = re.search(r"[^ACGTNacgtn]", seqs.iloc[i])
        raise input_error(path, "obs['sequence']", f"row {obs.index[i]}: letter {match.group()!r} at position "
                          f"{match.start()} is not A/C/G/T/N ({int(bad.sum())} such rows)",
                          "store plain DNA (ASCII A, C, G, T or N)")
    validate_numeric(obs, "activity", path)
    duplicated = seqs.str.upper().duplicated().to_numpy()
    if duplicated.any():
        raise input_error(path, "obs['sequence']", f"{int(duplicated.sum())} repeated sequences (first: row "
                          f"{obs.index[int(np.argmax(duplicated))]})",
                          "keep one row per sequence (average the replicates' activities)")
    if "group" in obs.columns:
        missing = obs["group"].isna().to_numpy() | (obs["group"].astype(str).str.len() == 0).to_numpy()
        if missing.any():
            raise input_error(path, "obs['group']", f"row {obs.index[int(np.argmax(missing))]}: no group",
                              "give every row a group name, or drop the column (each row its own group)")
    if "split" in obs.columns:
        values = obs["split"].astype(str)
        odd = sorted(set(values) - set(ACTIVITY_SPLITS))
        if odd:
            raise input_error(path, "obs['split']", f"unknown value {odd[0]!r}", f"use {', '.join(ACTIVITY_SPLITS)}")
        if "group" in obs.columns:
            mixed = obs.groupby(obs["group"].astype(str), observed=True)["split"].nunique()
            if (mixed > 1).any():
                raise input_error(path, "obs['split']", f"group {mixed.index[int(np.argmax(mixed > 1))]!r} has rows "
                                  "in more than one split", "put all rows of a group in one split")


def _validate_personal(adata, path) -> None:
    """``assay="personal"``: rows, variant table, haplotype codes and sequence source."""
    from genocl_plugin.data import personal, reference

    obs = adata.obs
    for column in personal.OBS_COLUMNS:
        if column not in obs.columns:
            raise input_error(path, f"obs['{column}']", "missing (assay=personal)",
                              f"add the column; required: {', '.join(personal.OBS_COLUMNS)}")
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


def write_screen(adata, path: str | os.PathLike, force: bool = False) -> Path:
    """Validate and write a screen atomically (temporary file, then rename).

    Parameters
    ----------
    adata
        The screen.
    path
        Destination ``.h5ad``.
    force
        Replace an existing file.

    Returns
    -------
    Path
        The written path.
    """
    validate_screen(adata, path)
    with atomic_path(path, force=force) as tmp:
        adata.write_h5ad(tmp, compression="gzip")
    return Path(path)


def split_by_element(adata, test_fraction: float = 0.25, seed: int = 0, test_elements=None):
    """Split a screen into train and held-out rows by element, so no element leaks.

    Parameters
    ----------
    adata
        The screen.
    test_fraction
        Fraction of elements held out (at least one), when ``test_elements`` is None.
    seed
        Seed of the element shuffle.
    test_elements
        Explicit held-out elements (overrides ``test_fraction``).

    Returns
    -------
    tuple of anndata.AnnData
        ``(train, test)``, each a copy.
    """
    key = "element" if adata.uns["assay"] == "mpra" else "elements"
    groups = np.array(sorted(adata.obs[key].astype(str).unique()))
    if test_elements is None:
        if len(groups) < 2:
            return adata.copy(), adata[:0].copy()
        rng = np.random.default_rng(seed)
        n_test = max(1, int(round(test_fraction * len(groups))))
        test_elements = rng.permutation(groups)[:n_test]
    is_test = adata.obs[key].astype(str).isin(set(test_elements)).to_numpy()
    return adata[~is_test].copy(), adata[is_test].copy()


def split_by_position_blocks(adata, test_fraction: float = 0.2, block_bp: int = 50, gap_bp: int = 10,
                             seed: int = 0):
    """In-distribution split of an MPRA screen: hold out blocks of positions within each element.

    Each element's positions are cut into contiguous ``block_bp`` blocks and a ``test_fraction``
    of the blocks is held out, so the test variants sit in elements the model trains on but
    not next to a training variant: training rows closer than ``gap_bp`` to a held-out
    position of the same element are dropped. Screens without per-element positions (CRISPRi)
    have no such split and return an empty test set.

    Parameters
    ----------
    adata
        The (training) screen.
    test_fraction
        Fraction of each element's blocks held out (at least one block when the element has two).
    block_bp
        Block length in bp.
    gap_bp
        Guard band between held-out and training positions.
    seed
        Seed of the block draw.

    Returns
    -------
    tuple of anndata.AnnData
        ``(train, test)``, each a copy.
    """
    if adata.uns.get("assay") != "mpra" or "pos" not in adata.obs or test_fraction <= 0:
        return adata.copy(), adata[:0].copy()
    rng = np.random.default_rng(seed)
    elements = adata.obs["element"].astype(str).to_numpy()
    pos = adata.obs["pos"].to_numpy().astype(int)
    blocks = pos // block_bp
    is_test, drop = np.zeros(len(pos), bool), np.zeros(len(pos), bool)
    for element in sorted(set(elements)):
        mask = elements == element
        ids = np.unique(blocks[mask])
        if len(ids) < 2:
            continue
        n_test = min(max(int(round(test_fraction * len(ids))), 1), len(ids) - 1)
        held = mask & np.isin(blocks, rng.choice(ids, n_test, replace=False))
        is_test |= held
        test_pos = np.unique(pos[held])
        nearest = np.abs(pos[mask & ~held][:, None] - test_pos[None, :]).min(1)
        drop[np.flatnonzero(mask & ~held)[nearest < gap_bp]] = True
    return adata[~is_test & ~drop].copy(), adata[is_test].copy()


def subsample_per_element(adata, max_per_element: int | None, seed: int = 0):
    """Keep at most ``max_per_element`` rows of each element (random, seeded)."""
    if not max_per_element:
        return adata
    key = "element" if adata.uns["assay"] == "mpra" else "elements"
    rng = np.random.default_rng(seed)
    keep = []
    for _, idx in adata.obs.groupby(adata.obs[key].astype(str), observed=True).indices.items():
        idx = np.asarray(idx)
        keep.extend(rng.choice(idx, size=min(len(idx), max_per_element), replace=False))
    return adata[np.sort(np.array(keep, dtype=int))].copy()


def read_fasta_records(path: str | os.PathLike) -> dict[str, tuple[str, str]]:
    """Read a small (optionally gzipped) FASTA into ``{name: (header, sequence)}``.

    Raises
    ------
    GenoclInputError
        Missing file, a directory, a binary or non-ASCII file, or a file without FASTA records.
    """
    path = Path(path)
    if not path.is_file():
        raise input_error(path, "--fasta", "not found" if not path.exists() else "is a directory",
                          "pass an existing FASTA file")
    opener = gzip.open if str(path).endswith(".gz") else open
    records: dict[str, tuple[str, str]] = {}
    name, header, chunks = None, "", []
    try:
        with opener(path, "rt", encoding="ascii") as handle:
            for line in handle:
                line = line.strip()
                if line.startswith(">"):
                    if name is not None:
                        records[name] = (header, "".join(chunks))
                    header = line[1:]
                    if not header.split():
                        raise input_error(path, "header", "a '>' line without a name", "write >NAME chr:start-end")
                    name, chunks = header.split()[0], []
                elif line:
                    if name is None:
                        raise input_error(path, "--fasta", "sequence before the first '>' header",
                                          "pass a FASTA file (records start with >NAME)")
                    chunks.append(line)
    except (UnicodeDecodeError, OSError, EOFError) as err:
        raise input_error(path, "--fasta", f"not a text FASTA ({type(err).__name__})",
                          "pass a plain or gzipped FASTA file") from None
    if name is not None:
        records[name] = (header, "".join(chunks))
    if not records:
        raise input_error(path, "--fasta", "no FASTA records", "pass a FASTA file (records start with >NAME)")
    for rec_name, (_, seq) in records.items():
        validate_sequence(seq, path, f"sequence {rec_name!r}")
    return records


def from_satmut(
    table: str | os.PathLike,
    fasta: str | os.PathLike,
    elements: list[str] | tuple[str, ...] | None = None,
    release: str = "GRCh38",
    max_per_element: int | None = None,
    seed: int = 0,
):
    """Convert the Kircher et al. 2019 saturation-mutagenesis table to an MPRA screen.

    Parameters
    ----------
    table
        ``elements.tsv.gz`` (columns Chrom Pos Ref Alt Barcodes DNA RNA Coefficient pValue
        Element Release).
    fasta
        Element reference sequences; headers ``NAME chrom:start-end ...`` with 1-based,
        inclusive coordinates (``DERIVED_element_reference_sequences_GRCh38.fa``).
    elements
        Element names to keep (default: all in the FASTA).
    release
        Genome release rows to keep.
    max_per_element
        Subsample each element to at most this many variants.
    seed
        Subsampling seed.

    Returns
    -------
    anndata.AnnData
        A validated ``assay="mpra"`` screen.
    """
    import anndata

    records = read_fasta_records(fasta)
    coords = {}
    for name, (header, _seq) in records.items():
        fields = header.split()
        if len(fields) < 2 or parse_interval_1based(fields[1]) is None:
            raise input_error(
                fasta, "header", f"{header!r} has no chrom:start-end", "use NAME chr:start-end"
            )
        coords[name] = parse_interval_1based(fields[1])
    wanted = list(elements) if elements else list(records)
    for name in wanted:
        if name not in records:
            raise input_error(
                fasta, "element", f"{name!r} not in the FASTA", f"choose from {sorted(records)}"
            )
        builds = [f for f in records[name][0].split()[2:] if f.startswith(("GRCh", "hg"))]
        if builds and release not in builds:
            raise input_error(
                fasta, "header", f"element {name} coordinates are {builds[0]}, not {release}",
                f"pass --release {builds[0]}, or a FASTA with {release} coordinates",
            )
    try:
        df = pd.read_csv(table, sep="\t", dtype={"Chrom": str, "Ref": str, "Alt": str})
    except Exception as err:
        raise input_error(
            table, "file", f"unreadable TSV ({type(err).__name__})", "pass elements.tsv.gz"
        ) from None
    needed = ["Chrom", "Pos", "Ref", "Alt", "Coefficient", "pValue", "Element", "Release"]
    for column in needed:
        if column not in df.columns:
            raise input_error(
                table, column, "column missing", f"the table needs {', '.join(needed)}"
            )
    df = df[(df["Release"] == release) & df["Element"].isin(wanted)]
    df = df.dropna(subset=["Pos", "Ref", "Alt", "Coefficient"]).copy()
    _numeric_columns(df, ["Pos", "Coefficient", "pValue", "Barcodes"], table, integer=["Pos"])
    rows = []
    for element, chrom_pos, ref, alt, coef, pval, barcodes in zip(
        df["Element"], df["Pos"].astype(int), df["Ref"], df["Alt"], df["Coefficient"],
        df["pValue"], df.get("Barcodes", pd.Series(np.nan, index=df.index)), strict=True,
    ):
        chrom, start1, _ = coords[element]
        rows.append({
            "element": element, "pos": chrom_pos - start1, "ref": ref, "alt": alt,
            "effect": float(coef), "pvalue": float(pval), "chrom": chrom,
            "genomic_pos": int(chrom_pos), "barcodes": float(barcodes),
        })
    if not rows:
        raise input_error(
            table, "Element", f"no {release} rows for {wanted}", "check element names and release"
        )
    obs = pd.DataFrame(rows)
    obs.index = [f"{r.element}:{r.genomic_pos}:{r.ref}>{r.alt}" for r in obs.itertuples()]
    obs = obs[~obs.index.duplicated()]
    obs["element"] = obs["element"].astype("category")
    adata = anndata.AnnData(obs=obs)
    adata.uns["assay"] = "mpra"
    adata.uns["genome"] = release
    adata.uns["element_sequences"] = {name: records[name][1].upper() for name in wanted}
    adata.uns["element_coordinates"] = {
        name: f"{coords[name][0]}:{coords[name][1] - 1}-{coords[name][2]}" for name in wanted
    }
    adata.uns["source"] = (
        f"Kircher et al. 2019 saturation mutagenesis MPRA ({Path(table).name}, {release}); "
        f"converted by `genocl screen from-satmut`"
    )
    adata = subsample_per_element(adata, max_per_element, seed=seed)
    validate_screen(adata, table)
    return adata


def _numeric_columns(df: pd.DataFrame, columns: list[str], table, integer: list[str] = ()) -> None:
    """Convert ``df[columns]`` to numbers in place; a non-numeric or non-integer cell is an input error."""
    for column in columns:
        if column not in df.columns:
            continue
        raw = df[column]
        values = pd.to_numeric(raw, errors="coerce")
        bad = values.isna().to_numpy() & raw.notna().to_numpy()
        with np.errstate(over="ignore", invalid="ignore"):
            finite32 = np.isfinite(values.to_numpy(dtype=float).astype(np.float32)) | values.isna().to_numpy()
        bad |= ~finite32
        if column in integer:
            whole = values.isna().to_numpy() | (values.to_numpy(dtype=float) == np.round(values.to_numpy(dtype=float)))
            bad |= ~whole
        if bad.any():
            i = int(np.argmax(bad))
            kind = "whole number" if column in integer else "finite number"
            value = raw.iloc[i]
            shown = repr(value) if isinstance(value, str) else f"{float(value):g}"
            raise input_error(table, column, f"row {i + 1}: {shown} is not a {kind} ({int(bad.sum())} bad rows)",
                              f"the column must hold {kind}s (in float32 range)")
        df[column] = values


def parse_interval_1based(text: str) -> tuple[str, int, int] | None:
    """Parse ``chr:start-end`` with 1-based inclusive coordinates; None if malformed."""
    match = _INTERVAL.match(text.strip())
    if match is None:
        return None
    return match["chrom"], int(match["start"]), int(match["end"])


# --- CRISPRi at the model's geometry ------------------------------------------------------
#
# Each element-gene pair is read through its own input window of the model's input length
# (never a longer one: the model was trained at that length). The window holds the element(s)
# and the TSS, and the TSS's readout (+-half bp) lies inside the model's output; it is centred
# between element and TSS when that is possible, else shifted just enough. Pairs no window can
# hold are skipped and counted, never read as N or NaN.


def readout_half_width(model, tss_bins: int = 1) -> int:
    """bp read on each side of the TSS: ``tss_bins`` output bins (at least 32 bp)."""
    return max(1, int(tss_bins)) * max(int(model.bin_size), 32)


def _output_span(model) -> tuple[int, int]:
    """(offset, length) in bp of the model's output inside a ``model.seq_len`` input."""
    seq_len = int(model.seq_len)
    span = int(model.output_length(seq_len)) * int(model.bin_size)
    return (seq_len - span) // 2, span


def crispri_window_start(model, tss: int, intervals, half: int) -> int | None:
    """Start of the ``model.seq_len`` input window of one pair, or None if none can hold it.

    Parameters
    ----------
    model
        The model (``seq_len``, ``bin_size``, ``output_length``).
    tss
        0-based TSS position.
    intervals
        The silenced elements, ``(chrom, start, end)`` 0-based half-open.
    half
        Readout half-width in bp (:func:`readout_half_width`).

    Returns
    -------
    int or None
        The 0-based genome position of the window start (may be negative: N-padded), placed
        so that the elements lie inside the input and ``[tss - half, tss + half)`` inside the
        output, as close to centred between elements and TSS as that allows.
    """
    seq_len = int(model.seq_len)
    offset, out_span = _output_span(model)
    left = min([tss] + [s for _, s, _ in intervals])
    right = max([tss + 1] + [e for _, _, e in intervals])
    lowest = max(right - seq_len, tss + half - offset - out_span)
    highest = min(left, tss - half - offset)
    if lowest > highest:
        return None
    centred = (left + right) // 2 - seq_len // 2
    return min(max(centred, lowest), highest)


def crispri_fit(screen, model, tss_bins: int = 1) -> tuple[np.ndarray, str]:
    """Which CRISPRi rows a model's geometry can hold, and the one-line count.

    Returns
    -------
    tuple
        ``(fits, message)``: a bool per row and ``"kept N pairs; skipped M: element-TSS span >
        what a <seq_len>-bp input with <output> output can hold (...)"``.
    """
    half = readout_half_width(model, tss_bins)
    fits = np.array([
        crispri_window_start(model, int(tss), [parse_interval(x) for x in str(elements).split(";")], half)
        is not None
        for tss, elements in zip(screen.obs["tss_pos"].astype(int), screen.obs["elements"].astype(str),
                                 strict=True)
    ], dtype=bool)
    return fits, _fit_message(model, half, int(fits.sum()), int((~fits).sum()))


def _fit_message(model, half: int, kept: int, skipped: int) -> str:
    seq_len = int(model.seq_len)
    offset, out_span = _output_span(model)
    n_out, bin_size = int(model.output_length(seq_len)), int(model.bin_size)
    output = f"{n_out:,} x {bin_size}-bp" if bin_size > 1 else f"{n_out:,}-bp"
    # Largest span: TSS readout at one output edge, element at the far input edge.
    most = seq_len - offset - half
    return (f"kept {kept} pairs; skipped {skipped}: element-TSS span > what a {seq_len:,}-bp input "
            f"with {output} output can hold (an element at most ~{most:,} bp from the TSS, the TSS +-{half} bp "
            "inside the output)")


def drop_unfit_crispri(screen, model, path: str | os.PathLike = "<screen>", tss_bins: int = 1,
                       field: str = "obs['elements']"):
    """Keep the CRISPRi rows the model's geometry can hold (``field`` is named in the error).

    Returns
    -------
    tuple
        ``(screen, message)``: the kept rows (a copy when rows were dropped) and the count line.

    Raises
    ------
    GenoclInputError
        The screen has rows and none fits.
    """
    fits, message = crispri_fit(screen, model, tss_bins)
    if len(fits) and not fits.any():  # (an empty split is not an error here)
        raise input_error(path, field, f"no element-TSS pair fits the model: {message}",
                          "use a model with a longer input, or pairs whose element lies closer to the TSS")
    return (screen if fits.all() else screen[fits].copy()), message


def from_crispri(
    table: str | os.PathLike,
    sequence_source: str = "bundled",
    datasets: list[str] | None = None,
):
    """Convert an EngreitzLab CRISPRi benchmark TSV to a CRISPRi screen.

    Keeps the element-gene pairs whose element and TSS both lie inside the sequence source.
    ``EffectSize`` (fractional change of expression) becomes ``effect = log2(1 + EffectSize)``.

    Parameters
    ----------
    table
        ``EPCrisprBenchmark_*.tsv.gz`` (columns chrom chromStart chromEnd EffectSize chrTSS
        startTSS endTSS measuredGeneSymbol ...).
    sequence_source
        ``"bundled"`` (genocl's 65 hg38 windows) or the path of an hg38 FASTA.
    datasets
        Keep only these values of the ``Dataset`` column.

    Returns
    -------
    anndata.AnnData
        A validated ``assay="crispri"`` screen.
    """
    import anndata

    from genocl_plugin.data import reference

    try:
        df = pd.read_csv(table, sep="\t")
    except Exception as err:
        raise input_error(
            table, "file", f"unreadable TSV ({type(err).__name__})", "pass an EPCrisprBenchmark TSV"
        ) from None
    needed = [
        "chrom", "chromStart", "chromEnd", "EffectSize", "chrTSS", "startTSS", "measuredGeneSymbol",
    ]
    for column in needed:
        if column not in df.columns:
            raise input_error(
                table, column, "column missing", f"the table needs {', '.join(needed)}"
            )
    if datasets:
        if "Dataset" not in df.columns:
            raise input_error(
                table, "Dataset", "column missing", "drop --dataset or add the column"
            )
        present = set(df["Dataset"].dropna().astype(str))
        unknown = [d for d in datasets if d not in present]
        if unknown:
            raise input_error(table, "--dataset", f"{unknown[0]!r} is not a Dataset value of the table",
                              f"choose from {', '.join(sorted(present)[:10]) or '(none)'}")
        df = df[df["Dataset"].isin(datasets)]
    df = df.dropna(subset=["EffectSize", "chromStart", "chromEnd", "startTSS"]).copy()
    _numeric_columns(df, ["chromStart", "chromEnd", "startTSS", "EffectSize"], table,
                     integer=["chromStart", "chromEnd", "startTSS"])
    df = df.astype({"chromStart": "int64", "chromEnd": "int64", "startTSS": "int64"})
    if (df[["chromStart", "startTSS"]] < 0).any().any():
        column = "chromStart" if (df["chromStart"] < 0).any() else "startTSS"
        raise input_error(table, column, "negative coordinate", "give 0-based coordinates >= 0")
    df = df[df["EffectSize"] > -1]  # log2(1 + x) needs x > -1
    genome = None
    if sequence_source != "bundled":
        genome = reference.open_fasta(sequence_source, field="--fasta")
    keep = []
    for idx, row in df.iterrows():
        if row["chrom"] != row["chrTSS"]:
            continue
        lo = min(int(row["chromStart"]), int(row["startTSS"]))
        hi = max(int(row["chromEnd"]), int(row["startTSS"]) + 1)
        if genome is None:
            inside = reference.find_window(row["chrom"], lo, hi) is not None
        else:
            inside = row["chrom"] in genome and hi <= len(genome[row["chrom"]])
        if inside:
            keep.append(idx)
    if not keep:
        raise GenoclInputError(
            f"{table}: no element-gene pair lies inside {sequence_source!r}; fix: pass --fasta "
            "with an hg38 FASTA covering the pairs (the bundled windows cover only a few)"
        )
    df = df.loc[keep]
    obs = pd.DataFrame({
        "gene": df["measuredGeneSymbol"].astype(str).to_numpy(),
        "tss_chrom": df["chrTSS"].astype(str).to_numpy(),
        "tss_pos": df["startTSS"].astype(int).to_numpy(),
        "tss_strand": ".",
        "elements": [
            f"{c}:{int(s)}-{int(e)}"
            for c, s, e in zip(df["chrom"], df["chromStart"], df["chromEnd"], strict=True)
        ],
        "effect": [math.log2(1.0 + x) for x in df["EffectSize"]],
        "effect_size_raw": df["EffectSize"].astype(float).to_numpy(),
    })
    optional = [("pValueAdjusted", "pvalue"), ("Significant", "significant"),
                ("Dataset", "dataset"), ("name", "pair"), ("CellType", "cell_type")]
    for src, dst in optional:
        if src in df.columns:
            kind = float if dst == "pvalue" else str
            obs[dst] = df[src].astype(kind).to_numpy()
    obs.index = [f"{g}|{e}" for g, e in zip(obs["gene"], obs["elements"], strict=True)]
    adata = anndata.AnnData(obs=obs)
    adata.uns["assay"] = "crispri"
    adata.uns["genome"] = "GRCh38"
    record_cell_type(adata)
    # An absolute path, so the screen validates from any working directory.
    adata.uns["sequence_source"] = (
        "bundled" if sequence_source == "bundled" else str(Path(sequence_source).resolve())
    )
    adata.uns["source"] = (
        f"EngreitzLab CRISPR_comparison benchmark ({Path(table).name}); "
        "effect = log2(1 + EffectSize); converted by `genocl screen from-crispri`"
    )
    validate_screen(adata, table)
    return adata


def record_cell_type(adata) -> dict[str, int]:
    """Set ``uns["cell_type"]`` from the rows' ``obs["cell_type"]`` (the table's ``CellType``).

    With one cell type it is that one; with several, the most common (the objective's default
    readout prefers that cell type's tracks, :func:`~genocl_plugin.objectives.readout_tracks`).

    Returns
    -------
    dict
        Rows per cell type, most common first (empty, and ``uns`` unchanged, without the column).
    """
    if "cell_type" not in adata.obs:
        return {}
    values = [str(v).strip() for v in adata.obs["cell_type"] if pd.notna(v) and str(v).strip() not in ("", "nan")]
    counts = dict(Counter(values).most_common())
    if counts:
        adata.uns["cell_type"] = next(iter(counts))
    return counts


def format_cell_types(counts: dict[str, int]) -> str | None:
    """The converter's cell-type line: ``cell type: K562`` or, with several, which one was stored."""
    if not counts:
        return None
    first, n = next(iter(counts.items()))
    if len(counts) == 1:
        return f"cell type: {first} (uns['cell_type'])"
    others = ", ".join(f"{name} {k}" for name, k in list(counts.items())[1:])
    return (f"cell type: {len(counts)} among the pairs; uns['cell_type'] is the most common, {first} ({n} of "
            f"{sum(counts.values())} pairs; also {others}): `genocl update` reads its tracks unless --readout-tracks")


# --- activity libraries (assay="activity") ----------------------------------------------------

_COMPLEMENT = str.maketrans("ACGTNacgtn", "TGCANtgcan")


def reverse_complement(seq: str) -> str:
    """Reverse complement of an A/C/G/T/N sequence (either case).

    Not gReLU's ``grelu.sequence.utils.reverse_complement``: it raises KeyError on lower-case
    bases (soft-masked sequence) and importing it costs ~1.2 s in a converter that otherwise needs
    none of gReLU.
    """
    return seq.translate(_COMPLEMENT)[::-1]


def _read_table(table, what: str) -> pd.DataFrame:
    """A TSV or CSV (plain or gzipped; the separator is read from the header line) as text columns."""
    path = Path(table)
    if not path.is_file():
        raise input_error(table, "file", "not found" if not path.exists() else "is a directory",
                          f"pass the path of {what}")
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            header = handle.readline()
    except (UnicodeDecodeError, OSError, EOFError) as err:
        raise input_error(table, "file", f"not a text table ({type(err).__name__})",
                          f"pass {what} as a plain or gzipped TSV/CSV") from None
    if not header.strip():
        raise input_error(table, "file", "is empty", f"pass {what} with a header line")
    sep = "\t" if "\t" in header else "," if "," in header else "\t"
    try:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""])
    except Exception as err:  # pandas raises many types for a malformed table
        raise input_error(table, "file", f"unreadable table ({type(err).__name__}: {str(err).splitlines()[0][:80]})",
                          f"pass {what} as a TSV/CSV with a header line") from None


def from_activity(
    table: str | os.PathLike,
    sequence_column: str = "sequence",
    activity_column: str = "activity",
    source: str | None = None,
    trim_adapters: tuple[int, int] = (0, 0),
    group_column: str | None = None,
    split_column: str | None = None,
    pair_strands: bool = True,
):
    """Convert a table of sequences and measured activities to an ``assay="activity"`` screen.

    Parameters
    ----------
    table
        TSV or CSV, plain or gzipped, with a header line (e.g. lentiMPRA ``seq`` / ``mean_value``).
    sequence_column, activity_column
        The columns holding each sequence and its measured activity (e.g. log2 RNA/DNA).
    source
        Provenance stored in ``uns["source"]`` (default: the file and columns).
    trim_adapters
        ``(n5, n3)``: bases cut from the 5' and 3' end of every sequence (constant adapters).
    group_column
        A column naming each row's hold-out group (default: see ``pair_strands``).
    split_column
        A column with ``train`` / ``valid`` / ``test`` per row (the user's split).
    pair_strands
        Without ``group_column``: a sequence and its reverse complement (both orientations of
        one element, as in lentiMPRA libraries) get one group, so a hold-out never trains on
        one orientation of an element it tests on the other.

    Returns
    -------
    tuple
        ``(screen, summary)``: the validated screen and a dict of counts (rows, groups, pairs,
        the adapters trimmed).
    """
    import anndata

    df = _read_table(table, "a table of sequences and activities")
    wanted = {"--sequence-column": sequence_column, "--activity-column": activity_column,
              "--group-column": group_column, "--split-column": split_column}
    for option, column in wanted.items():
        if column is not None and column not in df.columns:
            shown = ", ".join(map(str, df.columns[:8])) + (", ..." if len(df.columns) > 8 else "")
            raise input_error(table, option, f"column {column!r} not in the table (columns: {shown})",
                              f"pass {option} with one of the table's column names")
    if len(df) == 0:
        raise input_error(table, "rows", "the table has a header but no rows", "pass a table with measurements")
    seqs = df[sequence_column]
    missing = seqs.isna().to_numpy()
    if missing.any():
        raise input_error(table, sequence_column, f"row {int(np.argmax(missing)) + 1}: no sequence "
                          f"({int(missing.sum())} such rows)", "drop the rows without a sequence")
    seqs = seqs.astype(str).str.strip()
    bad = seqs.str.contains(r"[^ACGTNacgtn]", regex=True).to_numpy(dtype=bool)
    if bad.any():
        i = int(np.argmax(bad))
        match = re.search(r"[^ACGTNacgtn]", seqs.iloc[i])
        raise input_error(table, sequence_column, f"row {i + 1}: letter {match.group()!r} at position {match.start()} "
                          f"is not A/C/G/T/N ({int(bad.sum())} such rows)", "store plain DNA sequences")
    n5, n3 = (int(x) for x in trim_adapters)
    if n5 < 0 or n3 < 0:
        raise input_error(table, "--trim-adapters", f"{n5} {n3}: negative", "pass two lengths >= 0, e.g. 15 15")
    lengths = seqs.str.len().to_numpy()
    short = lengths <= n5 + n3
    if short.any():
        i = int(np.argmax(short))
        raise input_error(table, "--trim-adapters", f"row {i + 1}: a {lengths[i]}-nt sequence has nothing left after "
                          f"trimming {n5} + {n3} nt ({int(short.sum())} such rows)",
                          "pass adapter lengths shorter than the sequences (or leave --trim-adapters out)")
    # the distinct trimmed ends (one each when the library's adapters are constant, as they should be)
    adapters = (sorted(set(seqs.str[:n5].str.upper())) if n5 else [],
                sorted(set(seqs.str[-n3:].str.upper())) if n3 else [])
    inserts = seqs.str.slice(n5, None if n3 == 0 else -n3).str.upper()
    activity = pd.to_numeric(df[activity_column], errors="coerce").to_numpy(dtype=float)
    with np.errstate(over="ignore", invalid="ignore"):
        bad = ~np.isfinite(activity.astype(np.float32))
    if bad.any():
        i = int(np.argmax(bad))
        value = df[activity_column].iloc[i]
        raise input_error(table, activity_column, f"row {i + 1}: {value!r} is not a finite number "
                          f"({int(bad.sum())} such rows)", "drop rows without a measured activity (or fill them in)")
    repeated = inserts.duplicated().to_numpy()
    if repeated.any():
        i = int(np.argmax(repeated))
        first = int(np.flatnonzero((inserts == inserts.iloc[i]).to_numpy())[0])
        raise input_error(table, sequence_column, f"row {i + 1} repeats the sequence of row {first + 1} "
                          f"({int(repeated.sum())} repeats{' after trimming' if n5 or n3 else ''})",
                          "keep one row per sequence (average the replicates' activities)")
    names = [f"seq{i}" for i in range(len(df))]
    obs = pd.DataFrame({"sequence": inserts.to_numpy(), "activity": activity}, index=names)
    n_pairs = 0
    if group_column is not None:
        groups = df[group_column]
        if groups.isna().any():
            i = int(np.argmax(groups.isna().to_numpy()))
            raise input_error(table, group_column, f"row {i + 1}: no group", "give every row a group name")
        obs["group"] = groups.astype(str).to_numpy()
    elif pair_strands:
        # both orientations of an element share a group, named after the first row holding either
        index = {s: k for k, s in enumerate(inserts)}
        group = []
        for k, s in enumerate(inserts):
            mate = index.get(reverse_complement(s))
            if mate is not None and mate != k:
                n_pairs += mate > k
            group.append(names[min(k, mate) if mate is not None else k])
        obs["group"] = group
    if split_column is not None:
        split = df[split_column].fillna("").astype(str).str.strip().str.lower()
        odd = sorted(set(split) - set(ACTIVITY_SPLITS))
        if odd:
            raise input_error(table, split_column, f"unknown value {odd[0]!r}",
                              f"use {', '.join(ACTIVITY_SPLITS)} (valid rows are used by neither)")
        obs["split"] = split.to_numpy()
    adata = anndata.AnnData(obs=obs)
    adata.uns["assay"] = "activity"
    trimmed = f"; {n5} + {n3} nt adapters trimmed" if n5 or n3 else ""
    adata.uns["source"] = source or (f"{Path(table).name}: sequence {sequence_column!r}, activity {activity_column!r}"
                                     f"{trimmed}; converted by `genocl screen from-activity`")
    validate_screen(adata, table)
    summary = {"rows": adata.n_obs, "groups": int(obs["group"].nunique()) if "group" in obs else adata.n_obs,
               "strand_pairs": int(n_pairs), "lengths": (int(inserts.str.len().min()), int(inserts.str.len().max())),
               "adapters": adapters, "split": obs["split"].value_counts().to_dict() if "split" in obs else {}}
    return adata, summary


def split_activity(adata, test_fraction: float = 0.25, seed: int = 0):
    """``(train, test)`` of an activity screen: its ``split`` column, else held-out groups.

    With ``obs["split"]``: ``train`` rows train, ``test`` rows are held out (``valid`` rows are
    used by neither). Without it a ``test_fraction`` of the groups (``obs["group"]``; default
    each row its own) is held out, at least one when there are two or more.
    """
    if "split" in adata.obs.columns:
        split = adata.obs["split"].astype(str).to_numpy()
        return adata[split == "train"].copy(), adata[split == "test"].copy()
    keys = (adata.obs["group"].astype(str) if "group" in adata.obs.columns
            else pd.Series(adata.obs_names, index=adata.obs_names)).to_numpy()
    groups = np.array(sorted(set(keys)))
    if len(groups) < 2:
        return adata.copy(), adata[:0].copy()
    n_test = max(1, int(round(test_fraction * len(groups))))
    held = set(np.random.default_rng(seed).permutation(groups)[:n_test])
    is_test = np.array([k in held for k in keys], dtype=bool)
    return adata[~is_test].copy(), adata[is_test].copy()


# --- the screen split of an update -----------------------------------------------------------

BUNDLED_SCREENS = {
    "enformer": Path(__file__).resolve().parents[1] / "bundled" / "mpra_enhancers.h5ad",
    "procapnet": Path(__file__).resolve().parents[1] / "bundled" / "mpra_promoters.h5ad",
}
# Subsampling of the bundled screens so the default update finishes in < 3 min on 2 cores.
BUNDLED_MAX_TRAIN = 256
BUNDLED_MAX_EVAL = 192


def default_screen(model) -> Path:
    """The bundled screen that goes with a model's architecture."""
    return BUNDLED_SCREENS.get(model.data_params.get("arch", "enformer"), BUNDLED_SCREENS["enformer"])


def prepare_screen(config, model, in_distribution: bool = False, validation: bool = False):
    """Read, split (by element, then by position blocks) and subsample the screen.

    Activity screens hold out sequences (their ``group``), or follow their ``split`` column
    (:func:`split_activity`); like CRISPRi and personal screens they have no position blocks,
    so ``test_id`` is empty.

    Returns
    -------
    tuple
        ``(path, train, test)`` AnnData screens (``test``: held-out elements, the
        out-of-distribution check), and with ``in_distribution`` also ``test_id``: held-out
        position blocks of the training elements (``config.id_holdout``). With ``validation``
        a last item ``val``: a further ``config.val_holdout`` of the training elements' blocks,
        drawn before ``max_train`` subsamples the rest (so the update's training rows are
        ``max_train`` either way) and capped like the in-distribution check; empty when
        ``val_holdout`` is 0 or the screen has no position blocks.
    """
    path = Path(config.data) if config.data else default_screen(model)
    screen = read_screen(path)
    if screen.uns["assay"] == "crispri":
        # before the split, so the held-out elements are ones the model can be scored on
        screen, message = drop_unfit_crispri(screen, model, path)
        screen.uns["crispri_fit"] = message
    if screen.uns["assay"] == "tracks":
        # Windows, not perturbations: held-out windows are the test; the crops are subsampled
        # when the dataset is built (objectives.screen_dataset max_items).
        from genocl_plugin.data.tracks import split_tracks

        train, test = split_tracks(screen, config.holdout, config.seed)
        if train.n_obs == 0:
            raise input_error(path, "obs['split']", "no training windows", "mark some windows split=train")
        parts = (path, train, test, train[:0].copy()) if in_distribution else (path, train, test)
        return (*parts, _validation_split(train, config, path)[1]) if validation else parts
    if screen.uns["assay"] == "personal":
        from genocl_plugin.data.personal import split_personal

        train, test = split_personal(screen, config.holdout_by, config.holdout, config.seed)
        test_id = train[:0].copy()  # personal screens hold out genes or people, not position blocks
    elif screen.uns["assay"] == "activity":
        # held-out sequences (groups), or the screen's own split; no position blocks (no in-distribution check)
        train, test = split_activity(screen, test_fraction=config.holdout, seed=config.seed)
        test_id = train[:0].copy()
        if train.n_obs == 0:
            raise input_error(path, "obs['split']", "no training rows", "mark some rows split=train")
    else:
        train, test = split_by_element(screen, test_fraction=config.holdout, seed=config.seed)
        train, test_id = split_by_position_blocks(train, config.id_holdout, seed=config.seed)
    train, val = _validation_split(train, config, path) if validation else (train, train[:0].copy())
    bundled = config.data is None
    max_train = config.max_train or (BUNDLED_MAX_TRAIN if bundled else None)
    max_eval = config.max_eval or (BUNDLED_MAX_EVAL if bundled else None)
    train = _subsample(train, max_train, config.seed)
    test = _subsample(test, max_eval, config.seed + 1)
    test_id = _subsample(test_id, config.max_eval_id or max_eval, config.seed + 2)
    val = _subsample(val, config.max_eval_id or max_eval, config.seed + 4)
    if train.n_obs == 0:
        raise input_error(path, "obs", "no training rows after the element hold-out",
                          "use a screen with more elements or --holdout 0")
    parts = (path, train, test, test_id) if in_distribution else (path, train, test)
    return (*parts, val) if validation else parts


def _validation_split(train, config, path):
    """``(train, val)``: ``config.val_holdout`` of the training elements' position blocks set aside.

    Empty ``val`` when ``val_holdout`` is 0; a screen without per-element positions (CRISPRi,
    personal genomes, tracks) is refused then, because it has no blocks to hold out.
    """
    if config.val_holdout <= 0:
        return train, train[:0].copy()
    train, val = split_by_position_blocks(train, config.val_holdout, seed=config.seed + 3)
    if val.n_obs == 0:
        raise input_error(path, "--val-holdout", "this screen has no per-element positions to hold out "
                          "(epoch selection needs an MPRA screen with obs['pos'])", "leave out --val-holdout")
    return train, val


def _subsample(adata, n: int | None, seed: int):
    if not n or adata.n_obs <= n:
        return adata
    idx = np.sort(np.random.default_rng(seed).choice(adata.n_obs, n, replace=False))
    return adata[idx].copy()
