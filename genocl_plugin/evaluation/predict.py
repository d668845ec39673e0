"""Predictions of a model: in batches on one-hot sequences, and on the reference windows of one
split (with their Pearson against the real tracks).

The lowest module of the package that runs a model: retention, lineage evaluation and the peak
evaluation (:mod:`~genocl_plugin.evaluation.peaks`) predict through it.
"""

from __future__ import annotations

import numpy as np
import torch

from genocl_plugin.data import reference
from genocl_plugin.evaluation.metrics import pearson, pearson_per_track
from genocl_plugin.progress import progress_iter


@torch.no_grad()
def predict(model, one_hot: np.ndarray | torch.Tensor, batch_size: int = 32, logits: bool = False,
            progress: bool = False) -> np.ndarray:
    """Predict on a batch of one-hot sequences (n, 4, L) in chunks.

    Returns
    -------
    np.ndarray
        (n, tracks, positions) predicted coverage (or its log with ``logits=True``).
    """
    model.eval()
    x = torch.as_tensor(one_hot, dtype=torch.float32)
    chunks = []
    starts = progress_iter(range(0, len(x), batch_size), total=len(x), description="predicting", unit="sequence",
                           count=lambda start: min(batch_size, len(x) - start), enabled=progress)
    for start in starts:
        chunks.append(model(x[start : start + batch_size].to(model.device), logits=logits).cpu().numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0,))


def reference_predictions(model, split: str = "test", max_crops: int | None = None, seed: int = 0,
                          reference_set=None) -> tuple[np.ndarray, np.ndarray | None]:
    """Predictions (and real tracks) on the reference windows of one split.

    Predictions are pooled to the real tracks' bins when the set has tracks. For large models use
    :func:`~genocl_plugin.evaluation.retention.reference_retention`, which streams instead of
    holding every prediction.

    Parameters
    ----------
    model
        The model.
    split
        ``train``, ``valid`` or ``test``.
    max_crops
        A seeded subset of this many windows (None: all).
    seed
        Seed of the subset.
    reference_set
        A :class:`~genocl_plugin.data.reference.ReferenceSet` (default: the bundled windows).

    Returns
    -------
    tuple of np.ndarray
        ``(pred, target)``, each (n_windows, tracks, bins); ``target`` is None without real tracks.
    """
    ref = reference_set or reference.bundled_reference_set(model)
    idx = ref.subset(split, max_crops, seed)
    n_ref = len(ref.track_names)
    pred = predict(model, ref.one_hot(split, idx))[:, :n_ref]
    if not ref.has_tracks:
        return pred, None
    return ref.to_track_bins(pred), ref.tracks(split, idx)


def reference_metrics(model, split: str = "test", max_crops: int | None = None, reference_set=None) -> dict:
    """Pearson of predictions vs the real tracks on reference windows (mean over tracks and per assay group).

    For profile (ProCapNet-style) models the counts Pearson (log total per window) is added.
    """
    ref = reference_set or reference.bundled_reference_set(model)
    pred, target = reference_predictions(model, split, max_crops=max_crops, reference_set=ref)
    if target is None:
        raise ValueError(f"{ref.name} has no real tracks to score against")
    per_track = pearson_per_track(pred, target)
    out = {
        f"{split}_pearson_mean": float(np.nanmean(per_track)),
        f"{split}_pearson_log1p_mean": float(np.nanmean(pearson_per_track(np.log1p(pred), np.log1p(target)))),
        "n_crops": int(len(pred)),
    }
    if model.data_params.get("arch") == "procapnet":
        out[f"{split}_counts_pearson"] = pearson(np.log1p(pred.sum((1, 2))), np.log1p(target.sum((1, 2))))
    else:
        groups = [reference.assay_group(n) for n in ref.track_names]
        for group in dict.fromkeys(groups):
            idx = [i for i, g in enumerate(groups) if g == group]
            out[f"{split}_pearson_{group.lower()}"] = float(np.nanmean(per_track[idx]))
    return out
