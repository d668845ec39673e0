"""The screen layout: the assays and their fields, checking a screen against them, reading and writing.

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

import os
import re
from pathlib import Path

import numpy as np

from genocl_plugin.data.checks import (
    validate_alleles_differ,
    validate_numeric,
    validate_sequence,
    validate_unique_rows,
)
from genocl_plugin.data.fileio import atomic_path
from genocl_plugin.data.intervals import parse_interval
from genocl_plugin.errors import input_error

ASSAYS = ("mpra", "crispri", "personal", "tracks", "activity")
MPRA_COLUMNS = ("element", "pos", "ref", "alt", "effect")
CRISPRI_COLUMNS = ("gene", "tss_chrom", "tss_pos", "tss_strand", "elements", "effect")
ACTIVITY_COLUMNS = ("sequence", "activity")
ACTIVITY_SPLITS = ("train", "valid", "test")


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
        from genocl_plugin.data.personal import _validate_personal

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
