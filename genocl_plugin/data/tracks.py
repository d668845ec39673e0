"""Coverage tracks as a task (``assay="tracks"``): new tracks a model learns, e.g. as a new head.

Enformer learned its mouse tracks as a second head on the trunk it shares with the human
ones; a lab adds its own bigWigs the same way. A tracks screen holds genomic windows with
their sequence and binned coverage; ``genocl update`` tiles each window into crops of the
model's input length, reads the screen's tracks from the model (a new ``multihead`` head when
the model does not predict them yet) and trains them with a Poisson loss on log coverage, the
loss of the minis and of Basenji/Enformer.

Layout (one row per window; ``docs/screen_format.md``)
    obs: ``chrom``, ``start``, ``end`` (the region the coverage covers, 0-based half-open),
    optional ``split`` (``train`` / ``valid`` / ``test``).
    obsm: ``sequence`` (uint8 codes A0 C1 G2 T3 N4, ``(windows, length)``) and ``coverage``
    (float, ``(windows, bins, tracks)``).
    uns: ``assay="tracks"``, ``track_names``, ``bin_size`` (bp per coverage bin),
    ``coverage_offset`` (bp from the sequence start to the first coverage bin); optional
    ``source``, ``genome``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from genocl_plugin.data import reference
from genocl_plugin.errors import input_error

SPLITS = ("train", "valid", "test")


# --- Layout and validation -------------------------------------------------------------------


def validate_tracks(adata, path: str | os.PathLike = "<screen>") -> None:
    """Check an ``assay="tracks"`` screen (called by :func:`genocl_plugin.data.screens.validate_screen`)."""
    for key in ("sequence", "coverage"):
        if key not in adata.obsm:
            raise input_error(path, f"obsm['{key}']", "missing (assay=tracks)",
                              "write the screen with `genocl screen from-tracks`")
    names = adata.uns.get("track_names")
    if names is None or len(names) == 0:
        raise input_error(path, "uns['track_names']", "missing or empty", "name each coverage track")
    names = [str(n) for n in names]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise input_error(path, "uns['track_names']", f"repeats {dup!r}", "give every track a unique name")
    seq, cov = adata.obsm["sequence"], adata.obsm["coverage"]
    if np.asarray(seq).ndim != 2 or np.asarray(seq).dtype != np.uint8:
        raise input_error(path, "obsm['sequence']", f"is {np.asarray(seq).dtype} with {np.asarray(seq).ndim} "
                          "dimensions", "store uint8 codes (A0 C1 G2 T3 N4) of shape (windows, length)")
    if int(np.asarray(seq).max(initial=0)) > 4:
        raise input_error(path, "obsm['sequence']", "holds codes above 4", "use A0 C1 G2 T3 N4")
    cov = np.asarray(cov)
    if cov.ndim != 3 or cov.shape[2] != len(names):
        raise input_error(path, "obsm['coverage']", f"has shape {cov.shape}",
                          f"store (windows, bins, {len(names)}) - one column per uns['track_names'] entry")
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(cov.astype(np.float32)) | (cov < 0)
    if bad.any():
        window = adata.obs_names[int(np.argwhere(bad)[0, 0])]
        raise input_error(path, "obsm['coverage']", f"{int(bad.sum())} negative or non-finite values "
                          f"(first in window {window})", "store coverage >= 0 (fill gaps with 0)")
    for key in ("bin_size", "coverage_offset"):
        if key not in adata.uns:
            raise input_error(path, f"uns['{key}']", "missing", "write the screen with `genocl screen from-tracks`")
    bin_size, offset = int(adata.uns["bin_size"]), int(adata.uns["coverage_offset"])
    if bin_size < 1 or offset < 0 or offset + cov.shape[1] * bin_size > seq.shape[1]:
        raise input_error(path, "uns['coverage_offset']", f"{cov.shape[1]} bins of {bin_size} bp from {offset} bp "
                          f"do not fit in {seq.shape[1]}-bp sequences", "store the sequence around the coverage")
    if "split" in adata.obs:
        odd = sorted(set(adata.obs["split"].astype(str)) - set(SPLITS))
        if odd:
            raise input_error(path, "obs['split']", f"unknown value {odd[0]!r}", f"use {', '.join(SPLITS)}")


def tracks_screen(sequences: np.ndarray, coverage: np.ndarray, track_names: list[str], bin_size: int,
                  coverage_offset: int, coords: list[tuple[str, int, int]], splits=None, source: str = "",
                  genome: str = ""):
    """Build a tracks screen (AnnData) from arrays."""
    import anndata

    obs = pd.DataFrame({"chrom": [c[0] for c in coords], "start": [int(c[1]) for c in coords],
                        "end": [int(c[2]) for c in coords]},
                       index=[f"{c}:{s}-{e}" for c, s, e in coords])
    if splits is not None:
        obs["split"] = [str(s) for s in splits]
    if obs.index.duplicated().any():
        obs.index = [f"{name}#{i}" for i, name in enumerate(obs.index)]
    adata = anndata.AnnData(obs=obs)
    adata.obsm["sequence"] = np.ascontiguousarray(sequences, dtype=np.uint8)
    adata.obsm["coverage"] = np.ascontiguousarray(coverage, dtype=np.float32)
    adata.uns.update({"assay": "tracks", "track_names": list(map(str, track_names)), "bin_size": int(bin_size),
                      "coverage_offset": int(coverage_offset), "source": source, "genome": genome})
    return adata


# --- Converters --------------------------------------------------------------------------------


def read_basenji_targets(path: str | os.PathLike) -> list[str]:
    """Track names of a Basenji/Borzoi ``targets.txt``: ``description [identifier]``."""
    table = pd.read_csv(path, sep="\t", index_col=0)
    for column in ("identifier", "description"):
        if column not in table.columns:
            raise input_error(path, column, "missing column", "pass the targets.txt written with the data")
    return [f"{d} [{i}]" for d, i in zip(table["description"], table["identifier"], strict=True)]


def from_basenji_arrays(npz: str | os.PathLike, targets: str | os.PathLike, prefix: str = "",
                        genome: str = "") -> object:
    """Basenji-style window arrays -> tracks screen.

    Parameters
    ----------
    npz
        ``{split}_seq`` (windows x length uint8 codes), ``{split}_targets`` (windows x bins x
        tracks) and ``{split}_coords`` (``chr:start-end`` of the target region) for the splits
        train / valid / test, as decoded from Basenji TFRecords.
    targets
        The data's ``targets.txt`` (track names).
    prefix
        Prepended to every track name (e.g. ``"mm10 "``), so they differ from the model's.
    """
    from genocl_plugin.data.intervals import parse_interval

    names = [prefix + n for n in read_basenji_targets(targets)]
    try:
        data = np.load(npz)
    except (OSError, ValueError) as err:
        raise input_error(npz, "file", f"not a readable .npz ({type(err).__name__})",
                          "pass the window arrays") from None
    seqs, covs, coords, splits = [], [], [], []
    for split in SPLITS:
        if f"{split}_seq" not in data:
            continue
        seqs.append(data[f"{split}_seq"])
        covs.append(data[f"{split}_targets"])
        coords += [parse_interval(str(c)) for c in data[f"{split}_coords"]]
        splits += [split] * len(data[f"{split}_seq"])
    if not seqs:
        raise input_error(npz, "train_seq", "missing", "store {train,valid,test}_seq/_targets/_coords arrays")
    seq, cov = np.concatenate(seqs), np.concatenate(covs)
    if cov.shape[2] != len(names):
        raise input_error(targets, "rows", f"{len(names)} tracks but the arrays hold {cov.shape[2]}",
                          "pass the targets.txt of the same data")
    region = coords[0][2] - coords[0][1]
    bin_size = region // cov.shape[1]
    offset = (seq.shape[1] - region) // 2  # Basenji crops the targets symmetrically
    return tracks_screen(seq, cov, names, bin_size, offset, coords, splits, source=str(npz), genome=genome)


def from_bigwigs(bigwigs: list[str], fasta: str, regions: str, bin_size: int = 32, context: int = 0,
                 names: list[str] | None = None, genome: str = "") -> object:
    """bigWig coverage over BED regions, with the FASTA sequence around them -> tracks screen.

    Parameters
    ----------
    bigwigs
        One bigWig per track.
    fasta
        The genome the bigWigs are on (indexed FASTA), or ``"bundled"`` for genocl's bundled
        hg38 windows (N outside them).
    regions
        BED file: ``chrom start end [split]``; every region the same length, a multiple of
        ``bin_size``. A 4th column holding only ``train`` / ``valid`` / ``test`` is the split
        (any other 4th column, e.g. BED6 names, is ignored).
    bin_size
        bp per coverage bin (the model's output resolution, or a divisor of it).
    context
        bp of sequence kept on each side of a region (the model's input reaches past its
        output: ``genocl screen from-tracks --model`` sets it).
    names
        Track names (default: the bigWig file stems).
    """
    import pyBigWig

    table = pd.read_csv(regions, sep="\t", header=None, comment="#")
    if table.shape[1] < 3:
        raise input_error(regions, "columns", "fewer than 3", "write BED: chrom start end [split]")
    lengths = (table[2] - table[1]).unique()
    if len(lengths) != 1 or lengths[0] <= 0 or lengths[0] % bin_size:
        raise input_error(regions, "end - start", f"lengths {sorted(lengths)[:3]}",
                          f"use regions of one length, a multiple of --bin-size {bin_size}")
    # A 4th column is the split only when it holds split names (BED6 has a feature name there).
    splits = table[3].astype(str).tolist() if table.shape[1] > 3 and set(table[3].astype(str)) <= set(SPLITS) \
        else None
    names = names or [Path(b).name.rsplit(".", 1)[0] for b in bigwigs]
    genome_fa = None if fasta in (None, "bundled") else reference.open_fasta(fasta)
    n_bins = int(lengths[0]) // bin_size
    cov = np.zeros((len(table), n_bins, len(bigwigs)), np.float32)
    seqs = []
    for t, path in enumerate(bigwigs):
        if not Path(path).exists():
            raise input_error(path, "--bigwig", "not found", "pass existing bigWig files")
        handle = pyBigWig.open(str(path))
        if handle is None or not handle.isBigWig():
            raise input_error(path, "--bigwig", "not a bigWig", "pass bigWig coverage files")
        sizes = handle.chroms()
        for w, (chrom, start, end) in enumerate(zip(table[0].astype(str), table[1], table[2], strict=True)):
            if chrom not in sizes:
                continue  # no coverage on this contig: zeros
            lo, hi = max(int(start), 0), min(int(end), sizes[chrom])
            if hi > lo:
                values = np.nan_to_num(np.asarray(handle.values(chrom, lo, hi, numpy=True), np.float32))
                full = np.zeros(int(end) - int(start), np.float32)
                full[lo - int(start) : hi - int(start)] = values
                cov[w, :, t] = full.reshape(n_bins, bin_size).sum(1)
        handle.close()
    for chrom, start, end in zip(table[0].astype(str), table[1], table[2], strict=True):
        seqs.append(reference.fetch_codes(chrom, int(start) - context, int(end) + context, fasta=genome_fa))
    coords = list(zip(table[0].astype(str), table[1].astype(int), table[2].astype(int), strict=True))
    return tracks_screen(np.stack(seqs), cov, names, bin_size, context, coords, splits, source=str(regions),
                         genome=genome)


def split_tracks(adata, test_fraction: float = 0.25, seed: int = 0):
    """Train and held-out windows: ``obs['split']`` (train vs test; valid windows are kept out of
    both), else a seeded random ``test_fraction`` of the windows."""
    if "split" in adata.obs:
        split = adata.obs["split"].astype(str).to_numpy()
        return adata[split == "train"].copy(), adata[split == "test"].copy()
    n_test = round(adata.n_obs * test_fraction) if test_fraction > 0 else 0
    test = np.zeros(adata.n_obs, bool)
    test[np.random.default_rng(seed).choice(adata.n_obs, n_test, replace=False)] = True
    return adata[~test].copy(), adata[test].copy()


# --- Objective ---------------------------------------------------------------------------------


class TracksDataset(Dataset):
    """Crops of a tracks screen at the model's input length with their binned coverage.

    Every window's coverage is tiled by the model's output span; each crop's input is centred
    on its output (N outside the stored sequence). ``groups`` names the window of each crop.
    Build it with :func:`tracks_dataset`.
    """

    kind = "tracks"

    def __init__(self, sequences: np.ndarray, coverage: np.ndarray, crops: np.ndarray, seq_len: int,
                 out_bins: int, pool: int, track_names: list[str], windows: list[str]) -> None:
        self.sequences, self.coverage, self.crops = sequences, coverage, np.asarray(crops, dtype=np.int64)
        self.seq_len, self.out_bins, self.pool = int(seq_len), int(out_bins), int(pool)
        self.track_names = tuple(track_names)
        self.groups = [windows[w] for w in self.crops[:, 0]]

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, i: int) -> dict:
        w, start, first_bin = (int(v) for v in self.crops[i])
        seq = self.sequences[w]
        codes = np.full(self.seq_len, 4, np.uint8)
        lo, hi = max(start, 0), min(start + self.seq_len, len(seq))
        codes[lo - start : hi - start] = seq[lo:hi]
        cov = self.coverage[w, first_bin : first_bin + self.out_bins * self.pool].astype(np.float32)
        target = cov.reshape(self.out_bins, self.pool, -1).sum(1).T  # (tracks, bins)
        return {"seq": codes, "target": target}


def collate_tracks(items: list[dict], track_names: tuple[str, ...] = ()) -> dict:
    """Collate crops; ``kind="tracks"`` routes the batch to :func:`tracks_loss`."""
    return {"kind": "tracks", "seqs": torch.from_numpy(reference.codes_to_one_hot(np.stack([i["seq"] for i in items]))),
            "target": torch.from_numpy(np.stack([i["target"] for i in items])), "track_names": track_names}


def tracks_dataset(screen, model, path: str = "<screen>", max_crops: int | None = None,
                   seed: int = 0) -> TracksDataset:
    """Tile a tracks screen's windows into crops for a model.

    Raises
    ------
    GenoclInputError
        The model's bins are not a multiple of the coverage bins, or its output span is
        longer than a window's coverage.
    """
    cov_bin, offset = int(screen.uns["bin_size"]), int(screen.uns["coverage_offset"])
    coverage = np.asarray(screen.obsm["coverage"])
    sequences = np.asarray(screen.obsm["sequence"])
    bin_size = max(model.bin_size, 1)
    if bin_size % cov_bin:
        raise input_error(path, "uns['bin_size']", f"{cov_bin}-bp coverage bins do not add up to the model's "
                          f"{bin_size}-bp bins", f"write the screen with --bin-size {bin_size} (or a divisor)")
    pool = bin_size // cov_bin
    out_bins = model.output_length(model.seq_len)
    span = out_bins * bin_size
    if span > coverage.shape[1] * cov_bin:
        raise input_error(path, "obsm['coverage']", f"windows cover {coverage.shape[1] * cov_bin:,} bp but the model's "
                          f"output spans {span:,} bp", f"use regions of >= {span:,} bp "
                          f"(`genocl screen from-tracks --model` sizes the sequence context)")
    in_offset = model.output_offset()
    crops = []
    for w in range(coverage.shape[0]):
        for k in range(coverage.shape[1] * cov_bin // span):
            out_start = offset + k * span
            crops.append((w, out_start - in_offset, k * span // cov_bin))
    crops = np.array(crops, dtype=np.int64).reshape(-1, 3)
    if max_crops and len(crops) > max_crops:
        crops = crops[np.sort(np.random.default_rng(seed).choice(len(crops), max_crops, replace=False))]
    return TracksDataset(sequences, coverage, crops, model.seq_len, out_bins, pool,
                         [str(n) for n in screen.uns["track_names"]], list(map(str, screen.obs_names)))


def track_index(model, names) -> list[int] | None:
    """Output index of each track name in the model, or None if it predicts some of them not."""
    own = {n: i for i, n in enumerate(model.task_names)}
    if not all(n in own for n in names):
        return None
    return [own[n] for n in names]


def predicted_log_coverage(model, batch: dict) -> torch.Tensor:
    """The model's log coverage of the screen's tracks (batch, tracks, bins)."""
    idx = track_index(model, batch["track_names"])
    if idx is None:
        raise input_error("--data", "uns['track_names']", "the model predicts none or only some of these tracks",
                          "update with --strategy multihead (a new head for them)")
    out = model(batch["seqs"], logits=True)
    return out[:, idx]


def tracks_loss(model, batch: dict) -> torch.Tensor:
    """Poisson negative log-likelihood of the coverage given the predicted log coverage."""
    return torch.nn.functional.poisson_nll_loss(predicted_log_coverage(model, batch), batch["target"],
                                                log_input=True, full=False)


@torch.no_grad()
def predict_tracks(model, dataset, batch_size: int = 8) -> np.ndarray | None:
    """Predicted coverage (crops, tracks, bins) of a TracksDataset (or a Subset of one), or None
    when the model does not predict the screen's tracks."""
    base = getattr(dataset, "dataset", dataset)
    if track_index(model, base.track_names) is None:
        return None
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collate_for_tracks(base))
    out = []
    for batch in loader:
        batch["seqs"] = batch["seqs"].to(model.device)
        out.append(torch.exp(predicted_log_coverage(model, batch)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(base.track_names), base.out_bins), np.float32)


def dataset_targets(dataset) -> np.ndarray:
    """The coverage of every crop of a TracksDataset (or a Subset of one): (crops, tracks, bins)."""
    base = getattr(dataset, "dataset", dataset)
    if len(dataset) == 0:
        return np.zeros((0, len(base.track_names), base.out_bins), np.float32)
    return np.stack([dataset[i]["target"] for i in range(len(dataset))])


def collate_for_tracks(dataset):
    """A picklable collate function carrying the dataset's track names."""
    import functools

    base = getattr(dataset, "dataset", dataset)
    return functools.partial(collate_tracks, track_names=base.track_names)



def scatter_sample(target: np.ndarray, before: np.ndarray | None, after: np.ndarray | None, n: int = 4000,
                   seed: int = 0) -> dict:
    """A seeded sample of held-out bins in log1p space for the report's scatter plots."""
    flat = np.log1p(target.reshape(-1))
    idx = np.random.default_rng(seed).choice(len(flat), min(n, len(flat)), replace=False) if len(flat) else []

    def pick(pred):
        return np.full(len(idx), np.nan) if pred is None else np.log1p(pred.reshape(-1))[idx]

    return {"measured": flat[idx], "pred_before": pick(before), "pred_after": pick(after)}

