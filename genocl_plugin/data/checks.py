"""Field checks shared by the assays: numbers, repeated rows, alleles, DNA letters.

The ``validate_*`` functions check a screen's fields (they raise :class:`GenoclInputError` naming
the field and the fix); :func:`_numeric_columns` checks the numeric columns of a converter's
input table.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from genocl_plugin.errors import input_error


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
