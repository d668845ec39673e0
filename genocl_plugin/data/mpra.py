"""MPRA / saturation-mutagenesis screens (``assay="mpra"``): the Kircher et al. 2019 converter.

:func:`from_satmut` turns the Kircher et al. 2019 ``elements.tsv.gz`` table and its element
FASTA (read by :func:`read_fasta_records`) into a validated screen. The layout and its checks are
in :mod:`genocl_plugin.data.layout`.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pandas as pd

from genocl_plugin.data.checks import _numeric_columns, validate_sequence
from genocl_plugin.data.intervals import parse_interval_1based
from genocl_plugin.data.layout import validate_screen
from genocl_plugin.data.splits import subsample_per_element
from genocl_plugin.errors import input_error


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
