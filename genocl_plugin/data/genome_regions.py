"""A user's genome regions: a BED of reference regions, their splits, and bigWig tracks over them.

- :func:`read_bed_regions`: a BED (chrom, start, end[, split]), plain or gzipped;
- :func:`assign_splits`: train / valid / test from the BED's 4th column or held-out chromosomes;
- :func:`bigwig_reader`: real tracks from one bigWig per model output, named by a ``targets.txt``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from genocl_plugin.data.bundled_windows import SPLITS
from genocl_plugin.data.fileio import open_text
from genocl_plugin.data.targets import read_targets_file
from genocl_plugin.errors import input_error


def read_bed_regions(path: str | os.PathLike, field: str = "--reference-regions"):
    """Read a BED (chrom, start, end[, split]) into a DataFrame; the 4th column is kept as ``split``."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise input_error(path, field, "file not found", "pass a BED file of regions (chrom, start, end[, split])")
    rows = []
    with open_text(path, field, "not a text BED file", "pass a plain or gzipped BED file") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 3:
                raise input_error(path, f"line {number}", "fewer than 3 tab-separated columns",
                                  "write chrom<TAB>start<TAB>end[<TAB>train|valid|test]")
            try:
                start, end = int(fields[1]), int(fields[2])
            except ValueError:
                raise input_error(path, f"line {number}", f"start/end {fields[1]!r} {fields[2]!r} are not integers",
                                  "write 0-based integer BED coordinates") from None
            if end <= start or start < 0:
                raise input_error(path, f"line {number}", f"empty or negative region {start}-{end}",
                                  "write regions with 0 <= start < end")
            rows.append((fields[0], start, end, fields[3].strip().lower() if len(fields) > 3 else ""))
    if not rows:
        raise input_error(path, field, "no regions", "the BED needs at least one region per split")
    return pd.DataFrame(rows, columns=["chrom", "start", "end", "split"])


def assign_splits(regions, holdout_chroms: list[str] | None, path) -> None:
    """Set ``regions["split"]``: the BED's own train/valid/test column, else held-out chromosomes.

    Held-out chromosomes give the ``test`` split, and every other held-out region goes to
    ``valid`` (the forgetting budget's checks) so ``test`` stays untouched by training decisions.
    """
    if holdout_chroms:
        held = regions["chrom"].isin(holdout_chroms).to_numpy()
        if not held.any():
            raise input_error("--reference-holdout-chroms", ",".join(holdout_chroms),
                              f"no region of {path} lies on these chromosomes",
                              "name chromosomes present in the BED")
        split = np.where(held, "test", "train").astype(object)
        held_idx = np.flatnonzero(held)
        if len(held_idx) > 1:
            split[held_idx[::2]] = "valid"
        else:
            split[held_idx] = "test"
        regions["split"] = split
        if len(held_idx) == 1:
            regions.loc[regions.index[held_idx[0]], "split"] = "test"
        return
    values = set(regions["split"])
    if not values <= set(SPLITS) or "train" not in values or "test" not in values:
        raise input_error(path, "column 4 (split)",
                          "needs train / valid / test labels (at least train and test)",
                          "add a 4th column or pass --reference-holdout-chroms chr8,chr9")


def bigwig_reader(targets_path: str | os.PathLike, names: list[str], bin_size: int, windows: dict):
    """A ``read_tracks(chrom, out_start, n_bins)`` over one bigWig per model output (pyBigWig).

    The targets file's ``file`` column names the bigWigs (relative paths are relative to the
    targets file); a ``scale`` column, when present, multiplies each track as in Basenji.

    Raises
    ------
    GenoclInputError
        Row count differs from the model's outputs, a bigWig is missing or unreadable, or lacks
        a chromosome of the reference windows.
    """
    import pyBigWig

    targets_path = Path(targets_path)
    table = read_targets_file(targets_path, field="--reference-tracks")
    if "file" not in table.columns:
        raise input_error(targets_path, "column file", "missing", "name one bigWig per model output in a 'file' column")
    if len(table) != len(names):
        raise input_error(targets_path, "rows", f"{len(table)} tracks but the model has {len(names)} reference outputs",
                          "list exactly one bigWig per model output, in output order")
    files = [Path(f) if Path(f).is_absolute() else targets_path.parent / f for f in table["file"].astype(str)]
    scale = table["scale"].to_numpy(float) if "scale" in table.columns else np.ones(len(files))
    chroms = sorted({c for frame in windows.values() for c in frame["chrom"]})
    lengths = []
    for file in files:
        if not file.is_file():
            raise input_error(targets_path, f"file {file}", "bigWig not found", "fix the path in the targets file")
        try:
            handle = pyBigWig.open(str(file))
            header = handle.chroms() if handle is not None else None
        except (RuntimeError, OSError):
            header = None
        if not header or not handle.isBigWig():
            raise input_error(file, "bigWig", "not a readable bigWig", "pass bigWig files (e.g. bedGraphToBigWig)")
        missing = [c for c in chroms if c not in header]
        handle.close()
        if missing:
            raise input_error(file, f"chromosome {missing[0]}", "not in this bigWig",
                              "use bigWigs of the same genome as --reference-fasta, or drop those regions")
        lengths.append(header)

    def read(chrom: str, out_start: int, n_bins: int) -> np.ndarray:
        out = np.zeros((len(files), n_bins * bin_size), dtype=np.float32)
        for t, file in enumerate(files):
            lo, hi = max(out_start, 0), min(out_start + n_bins * bin_size, lengths[t][chrom])
            if hi > lo:
                with contextlib.closing(pyBigWig.open(str(file))) as handle:
                    values = np.asarray(handle.values(chrom, lo, hi, numpy=True), dtype=np.float32)
                out[t, lo - out_start : hi - out_start] = np.nan_to_num(values) * scale[t]
        return out.reshape(len(files), n_bins, bin_size).sum(-1)

    return read
