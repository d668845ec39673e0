"""Building the reference set of a model: its geometry, its windows, real tracks or pseudo-targets.

- :func:`bundled_reference_set`: crops of the bundled windows, the default of the bundled minis.
  A model's outputs get real tracks when their names are bundled track names.
- :func:`bed_reference_set`: windows of the model's input length centred on the regions of a
  BED file (e.g. Basenji's ``sequences_human.bed``) in the user's genome FASTA, split into
  train / valid / test by the BED's 4th column or by held-out chromosomes, with optional real
  tracks from one bigWig per model output (the Basenji/Borzoi ``targets.txt`` convention).
- :func:`reference_set_for`: the reference set of an update (the user's BED if given, else the
  bundled windows).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from genocl_plugin.data.bundled_windows import (
    BIN_SIZE,
    SPLITS,
    TARGET_CROP,
    WINDOW_LEN,
    bundled_track_map,
    fetch_codes,
    find_window,
    load_windows,
)
from genocl_plugin.data.genome_regions import assign_splits, bigwig_reader, read_bed_regions
from genocl_plugin.data.geometry import Geometry, reference_output_names
from genocl_plugin.data.reference_set import ReferenceSet, ReferenceUnavailable
from genocl_plugin.data.sequence import open_fasta
from genocl_plugin.errors import input_error


def bundled_reference_set(model, seq_len: int | None = None, cache_dir=None, batch_size: int = 16) -> ReferenceSet:
    """Crops of the bundled hg38 windows at the model's geometry (the bundled minis' default).

    Each window's 65,536-bp target region is tiled by the model's output span; real tracks are
    used for outputs whose names are bundled track names (aggregated to the model's bins when
    those are coarser than 32 bp), else pseudo-targets.

    Raises
    ------
    ReferenceUnavailable
        The model's input or output does not fit in the bundled windows.
    """
    import pandas as pd

    geometry = Geometry.of(model, seq_len)
    names = reference_output_names(model)
    track_bin = max(BIN_SIZE, geometry.bin_size)
    stride = max(geometry.out_span // BIN_SIZE * BIN_SIZE, BIN_SIZE)
    target_end = WINDOW_LEN - TARGET_CROP
    if (geometry.seq_len > WINDOW_LEN or geometry.out_span > target_end - TARGET_CROP
            or track_bin % geometry.bin_size or track_bin % BIN_SIZE):
        raise ReferenceUnavailable(
            f"the bundled reference windows are {WINDOW_LEN:,} bp with tracks over the central "
            f"{WINDOW_LEN - 2 * TARGET_CROP:,} bp; this model takes {geometry.seq_len:,} bp in and "
            f"{geometry.out_span:,} bp out: pass --reference-fasta and --reference-regions")
    data = load_windows()
    windows, codes, tracks = {}, {}, {}
    track_map = bundled_track_map(names)
    for split in SPLITS:
        rows = []
        for w, coord in enumerate(data[f"{split}_coords"]):
            chrom, rest = str(coord).split(":")
            w_start = int(rest.split("-")[0])
            for out_start in range(TARGET_CROP, target_end - geometry.out_span + 1, stride):
                in_start = out_start - geometry.offset
                if in_start >= 0 and in_start + geometry.seq_len <= WINDOW_LEN:
                    rows.append((chrom, w_start + in_start, w, w, in_start, out_start))
        table = pd.DataFrame(rows, columns=["chrom", "start", "group", "window", "in_window", "out_window"])
        windows[split] = table
        seqs = data[f"{split}_seq"]
        codes[split] = (np.stack([seqs[w][s : s + geometry.seq_len] for w, s in
                                  zip(table["window"], table["in_window"], strict=True)])
                        if len(table) else np.zeros((0, geometry.seq_len), np.uint8))
        if track_map is not None:
            per_bin = track_bin // BIN_SIZE
            n_bins = geometry.out_span // track_bin
            targets = data[f"{split}_targets"]
            out = np.empty((len(table), len(names), n_bins), dtype=np.float32)
            for row, (w, o) in enumerate(zip(table["window"], table["out_window"], strict=True)):
                b0 = (o - TARGET_CROP) // BIN_SIZE
                raw = targets[w][b0 : b0 + n_bins * per_bin].astype(np.float32)  # (bins, 74)
                mapped = np.stack([raw[:, idx].sum(-1) if len(idx) > 1 else raw[:, idx[0]] for idx in track_map])
                out[row] = mapped.reshape(len(names), n_bins, per_bin).sum(-1) if per_bin > 1 else mapped
            tracks[split] = out
    if not len(windows["train"]):
        raise ReferenceUnavailable("no crop of the bundled windows fits this model: pass --reference-fasta "
                                   "and --reference-regions")
    return ReferenceSet(
        "bundled hg38 windows (calico/baskerville tiny hg38)", geometry, windows, read_codes=None,
        track_names=names, track_bin=track_bin if track_map is not None else None, cache_dir=cache_dir,
        summary={"regions": {s: int(len(data[f"{s}_seq"])) for s in SPLITS}}, batch_size=batch_size,
        arrays={"codes": codes, "tracks": tracks})


def bed_reference_set(model, regions: str | os.PathLike, fasta: str | os.PathLike | None = None,
                      tracks: str | os.PathLike | None = None, holdout_chroms: list[str] | None = None,
                      seq_len: int | None = None, cache_dir=None, batch_size: int = 16) -> ReferenceSet:
    """Windows of the model's input length centred on BED regions of the user's genome.

    Parameters
    ----------
    model
        The parent model (its geometry and reference output names).
    regions
        BED of regions the parent knows (e.g. Basenji's ``sequences_human.bed``).
    fasta
        Indexed genome FASTA; ``None`` or ``"bundled"`` reads the bundled hg38 windows.
    tracks
        Optional targets file naming one bigWig per reference output.
    holdout_chroms
        Chromosomes held out for valid/test when the BED has no split column.
    seq_len, cache_dir, batch_size
        Input length override, pseudo-target cache directory, teacher batch size.

    Windows are N-padded where they run past a contig end (as gReLU and kipoiseq pad);
    regions on contigs missing from the FASTA, or mostly outside their contig, are skipped
    and counted. A split left empty is an error.
    """
    import pandas as pd

    geometry = Geometry.of(model, seq_len)
    names = reference_output_names(model)
    table = read_bed_regions(regions)
    assign_splits(table, holdout_chroms, regions)
    genome = None if fasta in (None, "bundled") else open_fasta(fasta, field="--reference-fasta")
    lengths = ({k: len(genome[k]) for k in genome.keys()} if genome is not None else None)
    skipped = {"contig_not_in_fasta": 0, "mostly_off_contig": 0, "outside_bundled_windows": 0}
    padded = 0
    windows = {s: [] for s in SPLITS}
    for number, row in enumerate(table.itertuples(index=False)):
        centre = (row.start + row.end) // 2
        start = centre - geometry.seq_len // 2
        end = start + geometry.seq_len
        if genome is None:
            if find_window(row.chrom, start, end) is None:
                skipped["outside_bundled_windows"] += 1
                continue
        else:
            if row.chrom not in lengths:
                skipped["contig_not_in_fasta"] += 1
                continue
            inside = min(end, lengths[row.chrom]) - max(start, 0)
            if inside < geometry.seq_len // 2:
                skipped["mostly_off_contig"] += 1
                continue
            padded += inside < geometry.seq_len
        windows[row.split].append((row.chrom, start, number))
    frames = {s: pd.DataFrame(rows, columns=["chrom", "start", "group"]) for s, rows in windows.items()}
    for split in ("train", "test"):
        if not len(frames[split]):
            reasons = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in skipped.items() if v) or "none in the BED"
            raise input_error(regions, f"{split} regions", f"no usable {split} window of {geometry.seq_len:,} bp "
                              f"(skipped: {reasons})",
                              "use regions on contigs of --reference-fasta, away from contig ends")
    if not len(frames["valid"]):
        frames["valid"] = frames["test"]
    read_tracks, track_bin = None, None
    if tracks is not None:
        read_tracks = bigwig_reader(tracks, names, geometry.bin_size, frames)
        track_bin = geometry.bin_size
    read_codes = functools.partial(fetch_codes, fasta=genome)
    where = "bundled hg38 windows" if genome is None else Path(str(fasta)).name
    return ReferenceSet(f"{Path(str(regions)).name} on {where}", geometry, frames, read_codes, names,
                        read_tracks=read_tracks, track_bin=track_bin, cache_dir=cache_dir,
                        summary={"skipped": {k: v for k, v in skipped.items() if v}, "n_padded": int(padded)},
                        batch_size=batch_size)


def reference_set_for(model, fasta=None, regions=None, tracks=None, holdout_chroms=None, cache_dir=None,
                      batch_size: int = 16) -> ReferenceSet:
    """The reference set of an update: the user's BED + FASTA if given, else the bundled windows.

    Raises
    ------
    ReferenceUnavailable
        No regions were given and the bundled windows do not fit the model.
    GenoclInputError
        Bad reference files or flags.
    """
    if regions is None:
        if fasta is not None or tracks is not None or holdout_chroms:
            flag = "--reference-fasta" if fasta is not None else (
                "--reference-tracks" if tracks is not None else "--reference-holdout-chroms")
            raise input_error(flag, str(fasta or tracks or holdout_chroms), "given without --reference-regions",
                              "pass --reference-regions REGIONS.bed (the windows to cut)")
        return bundled_reference_set(model, cache_dir=cache_dir, batch_size=batch_size)
    return bed_reference_set(model, regions, fasta=fasta, tracks=tracks, holdout_chroms=holdout_chroms,
                             cache_dir=cache_dir, batch_size=batch_size)
