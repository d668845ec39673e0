"""Track names: Basenji-style ``targets.txt`` files, assay groups and track selection by name.

- :func:`read_targets_file`: a Basenji/Borzoi/Enformer ``targets.txt`` (index, identifier,
  file, description, optional scale);
- :func:`names_from_targets`: track names as genocl writes them (``description [identifier]``);
- :func:`assay_group`: the assay of a track name (CAGE, DNASE, ATAC, CHIP, RNA, strand, other);
- :func:`match_tracks`: the tracks a ``--readout-tracks`` spec selects.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from genocl_plugin.errors import input_error


def read_targets_file(path: str | os.PathLike, field: str = "--targets"):
    """Read a Basenji/Borzoi/Enformer ``targets.txt`` (tab-separated: index, identifier, file, description, ...).

    Returns
    -------
    pandas.DataFrame
        One row per model output, in output order, with at least ``identifier`` and ``description``.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise input_error(path, field, "file not found", "pass a tab-separated targets file (Basenji targets.txt)")
    try:
        table = pd.read_csv(path, sep="\t", index_col=0)
    except Exception as err:
        raise input_error(path, field, f"not a tab-separated table ({type(err).__name__})",
                          "use the Basenji targets.txt layout: index, identifier, file, description") from None
    missing = [c for c in ("identifier", "description") if c not in table.columns]
    if missing:
        raise input_error(path, f"column {missing[0]}", "missing",
                          "use the Basenji targets.txt layout: index, identifier, file, description")
    if "scale" in table.columns:  # multiplies each track's coverage (bigwig_reader), as in Basenji
        scale = pd.to_numeric(table["scale"], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(scale)
        if bad.any():
            row = int(np.argmax(bad))
            raise input_error(path, "column scale", f"row {table.index[row]}: {table['scale'].iloc[row]!r} is not a "
                              "finite number", "give each track's scale as a number (1.0: unscaled) or drop the column")
    return table


def names_from_targets(table) -> list[str]:
    """Track names as genocl writes them: ``description [identifier]`` (as the bundled tracks)."""
    return [f"{d} [{i}]" for d, i in zip(table["description"].astype(str), table["identifier"].astype(str),
                                         strict=True)]


def assay_group(name: str) -> str:
    """Assay group of a track name: CAGE, DNASE, ATAC, CHIP, RNA, strand or other.

    Basenji/Enformer ``targets.txt`` descriptions start with the assay (``CAGE:...``,
    ``DNASE:...``, ``CHIP:H3K27ac:...``); ProCapNet-style outputs are one track per strand.
    """
    text = str(name).strip()
    head = re.split(r"[:\s_/.\-]", text.upper(), maxsplit=1)[0]
    for group in ("CAGE", "DNASE", "ATAC", "CHIP", "RNA"):
        if head.startswith(group):
            return "DNASE" if group == "DNASE" else group
    if head in ("PLUS", "MINUS", "+", "-") or re.search(r"\b(plus|minus) strand\b", text, re.IGNORECASE):
        return "strand"
    return "other"


# --- track-name matching (readouts) ----------------------------------------------------------


def match_tracks(names: list[str], spec: str, field: str = "--readout-tracks") -> list[int]:
    """Indices of the tracks selected by ``spec``: comma-separated indices, exact names, globs or ``re:`` regexes.

    Raises
    ------
    GenoclInputError
        A part of ``spec`` matches no track (the message lists a few names).
    """
    import fnmatch

    chosen: list[int] = []
    for part in [p.strip() for p in str(spec).split(",") if p.strip()]:
        if part.isdigit():
            hits = [int(part)] if int(part) < len(names) else []
        elif part.startswith("re:"):
            try:
                pattern = re.compile(part[3:], re.IGNORECASE)
            except re.error as err:
                raise input_error(field, part, f"not a valid regular expression ({err})", "fix the pattern") from None
            hits = [i for i, n in enumerate(names) if pattern.search(str(n))]
        else:
            hits = [i for i, n in enumerate(names) if str(n) == part or
                    fnmatch.fnmatchcase(str(n).lower(), part.lower())]
        if not hits:
            examples = "; ".join(str(n) for n in names[:3])
            raise input_error(field, part, f"matches none of the model's {len(names)} tracks (e.g. {examples})",
                              "give indices, exact names, a glob such as 'CAGE:*K562*' or 're:<regex>'")
        chosen += [h for h in hits if h not in chosen]
    if not chosen:
        raise input_error(field, str(spec), "empty", "name at least one track")
    return chosen
