"""Activity libraries (``assay="activity"``): sequences with a measured activity, their converter and split.

:func:`from_activity` converts a table of sequences and activities (lentiMPRA, STARR-seq,
promoter libraries), pairing a sequence with its reverse complement (:func:`reverse_complement`)
into one hold-out group; :func:`split_activity` holds out groups or follows the table's own
split. The layout and its checks are in :mod:`genocl_plugin.data.layout`.
"""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from genocl_plugin.data.layout import ACTIVITY_SPLITS, validate_screen
from genocl_plugin.errors import input_error

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
