"""CRISPRi enhancer screens (``assay="crispri"``): each pair at the model's geometry, and the converter.

:func:`crispri_window_start` places one element-gene pair in an input window of the model's
input length; :func:`crispri_fit` / :func:`drop_unfit_crispri` keep the pairs a model can hold.
:func:`from_crispri` converts an EngreitzLab CRISPRi benchmark TSV; :func:`record_cell_type`
and :func:`format_cell_types` record and report its cell types. The layout and its checks are
in :mod:`genocl_plugin.data.layout`.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from genocl_plugin.data.checks import _numeric_columns
from genocl_plugin.data.intervals import parse_interval
from genocl_plugin.data.layout import validate_screen
from genocl_plugin.errors import GenoclInputError, input_error

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
