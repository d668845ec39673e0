"""Retention of the reference task after an update, on the held-out reference windows.

- :class:`RetentionStats` and :func:`reference_retention`: Pearson against the real tracks before and
  after, and the drift of the updated model's predictions from its parent's, streamed in batches;
- :func:`retention`: the same numbers from whole prediction arrays;
- the per-strand FANTOM CAGE functions and :func:`real_cage_retention`: a Puffin-type model's CAGE
  outputs against the bundled windows' real CAGE tracks;
- :func:`reference_scores`: one model's scores on the reference task (``genocl evaluate``).
"""

from __future__ import annotations

import numpy as np

from genocl_plugin.data import reference
from genocl_plugin.evaluation.metrics import js_divergence, pearson, pearson_per_track
from genocl_plugin.evaluation.predict import predict
from genocl_plugin.progress import progress_iter


class RetentionStats:
    """Streaming retention statistics: per-track sums, so no prediction array is ever held whole.

    :meth:`add` takes one batch of base and updated predictions (and the real tracks, if any)
    at the comparison resolution; :meth:`result` gives what :func:`retention` gives plus the
    drift of each track and its summary per assay group.
    """

    def __init__(self) -> None:
        self.n = 0
        self.sums: dict[str, np.ndarray] = {}

    def _acc(self, key: str, x: np.ndarray, y: np.ndarray) -> None:
        # x, y: (k, tracks, bins) -> per-track sums over windows and bins (float64). einsum forms
        # the products without a full-size temporary each (a Borzoi window is 47 M values).
        x, y = x.astype(np.float64, copy=False), y.astype(np.float64, copy=False)
        stats = np.stack([np.full(x.shape[1], x.shape[0] * x.shape[2], dtype=np.float64),
                          x.sum((0, 2)), y.sum((0, 2)), np.einsum("ktb,ktb->t", x, x),
                          np.einsum("ktb,ktb->t", y, y), np.einsum("ktb,ktb->t", x, y)])
        self.sums[key] = self.sums.get(key, 0) + stats

    def add(self, base_pred: np.ndarray, new_pred: np.ndarray, target: np.ndarray | None = None) -> None:
        """Accumulate one batch (k, tracks, bins)."""
        lb, ln = np.log1p(base_pred, dtype=np.float64), np.log1p(new_pred, dtype=np.float64)
        self._acc("drift", lb, ln)
        # The squared difference is summed directly (in place), not as sxx + syy - 2 sxy, which
        # cancels catastrophically when the update barely moved a track.
        ln -= lb
        self.sums["sq_diff"] = self.sums.get("sq_diff", 0) + np.einsum("ktb,ktb->t", ln, ln)
        if target is not None:
            self._acc("before", base_pred, target)
            self._acc("after", new_pred, target)
        self.n += len(base_pred)

    @staticmethod
    def _pearson(stats: np.ndarray) -> np.ndarray:
        n, sx, sy, sxx, syy, sxy = stats
        with np.errstate(invalid="ignore", divide="ignore"):
            cov = sxy - sx * sy / n
            vx, vy = sxx - sx * sx / n, syy - sy * sy / n
            r = cov / np.sqrt(vx * vy)
        return np.where((vx > 1e-12 * np.maximum(sxx, 1)) & (vy > 1e-12 * np.maximum(syy, 1)), r, np.nan)

    def result(self, track_names: list[str] | None = None) -> dict:
        """``pearson_before`` / ``pearson_after`` / ``retention_ratio`` (NaN without real tracks),
        ``drift_pearson`` / ``drift_rel_l2`` (log1p space, all tracks), per-track drift and per-group summaries."""
        nan = float("nan")
        per_track = {"drift_pearson": self._pearson(self.sums["drift"]),
                     "drift_rel_l2": np.sqrt(self.sums["sq_diff"] / np.maximum(self.sums["drift"][3], 1e-24))}
        before = after = nan
        if "before" in self.sums:
            per_track["pearson_before"] = self._pearson(self.sums["before"])
            per_track["pearson_after"] = self._pearson(self.sums["after"])
            before = float(np.nanmean(per_track["pearson_before"]))
            after = float(np.nanmean(per_track["pearson_after"]))
        # global log1p drift (n, sum b, sum n, sum b^2, sum n^2, sum b*n): the per-track sums, summed
        flat = self.sums["drift"].sum(1).reshape(6, 1)
        out = {
            "pearson_before": before, "pearson_after": after,
            "retention_ratio": after / before if before and np.isfinite(before) else nan,
            "drift_pearson": float(self._pearson(flat)[0]),
            "drift_rel_l2": float(np.sqrt(self.sums["sq_diff"].sum() / max(flat[3, 0], 1e-24))),
            "n_windows": int(self.n),
        }
        names = track_names or [f"track_{i}" for i in range(len(per_track["drift_pearson"]))]
        groups = [reference.assay_group(n) for n in names]
        out["groups"] = {
            group: {key: float(np.nanmean(values[[i for i, g in enumerate(groups) if g == group]]))
                    for key, values in per_track.items()} | {"n_tracks": groups.count(group)}
            for group in dict.fromkeys(groups)}
        out["per_track"] = {key: values.tolist() for key, values in per_track.items()}
        return out


def reference_retention(base_model, new_model, reference_set, split: str = "test", max_windows: int | None = 96,
                        seed: int = 0, batch_size: int | None = None, progress: bool = True) -> dict:
    """Retention of an update on the held-out reference windows, streamed in batches.

    Always the drift of the updated model from its parent (Pearson and relative L2 per track,
    summarised per assay group); Pearson against the real tracks when the set has them.

    Returns
    -------
    dict
        As :meth:`RetentionStats.result`, plus ``reference`` (:meth:`ReferenceSet.describe`).
    """
    ref = reference_set
    idx = ref.subset(split, max_windows, seed)
    n_ref = len(ref.track_names)
    size = batch_size or ref.batch_size
    stats = RetentionStats()
    starts = progress_iter(range(0, len(idx), size), total=len(idx), unit="window",
                           description=f"retention on {split} reference windows",
                           count=lambda start: min(size, len(idx) - start), enabled=progress)
    for start in starts:
        part = idx[start : start + size]
        x = ref.one_hot(split, part)
        base = predict(base_model, x, batch_size=size)[:, :n_ref]
        new = predict(new_model, x, batch_size=size)[:, :n_ref]
        if ref.has_tracks:
            stats.add(ref.to_track_bins(base), ref.to_track_bins(new), ref.tracks(split, part))
        else:
            stats.add(base, new)
    out = stats.result(ref.track_names)
    out["reference"] = ref.describe()
    return out


STRAND_CAGE_OUTPUTS = ("CAGE:FANTOM5 +", "CAGE:FANTOM5 -")  # Puffin's FANTOM CAGE outputs


def strand_cage_outputs(names: list[str]) -> list[int] | None:
    """Indices of a model's per-strand FANTOM CAGE outputs (+, -), or None if it has none (Puffin has them)."""
    names = [str(n) for n in names]
    if not all(n in names for n in STRAND_CAGE_OUTPUTS):
        return None
    return [names.index(n) for n in STRAND_CAGE_OUTPUTS]


def bundled_cage_by_strand(ref, split: str, idx) -> np.ndarray:
    """(windows, 2, bins) real FANTOM5 CAGE of bundled reference windows, summed per strand (+, -), 32-bp bins.

    ``ref`` is a :func:`~genocl_plugin.data.reference.bundled_reference_set`; ``idx`` indexes its split.
    Bins cover the model's output span (a trailing remainder under 32 bp is dropped).
    """
    table = ref.windows[split].iloc[np.atleast_1d(idx)]
    n_bins = ref.geometry.out_span // reference.BIN_SIZE
    data = reference.load_windows()
    plus, minus = reference.cage_strand_indices()
    target = []
    for w, o in zip(table["window"], table["out_window"], strict=True):
        b0 = (o - reference.TARGET_CROP) // reference.BIN_SIZE
        raw = data[f"{split}_targets"][w][b0:b0 + n_bins].astype(np.float32)
        target.append(np.stack([raw[:, plus].sum(-1), raw[:, minus].sum(-1)]))
    return np.stack(target)


def real_cage_retention(base_model, new_model, split: str = "test", max_windows: int | None = 96,
                        seed: int = 0, batch_size: int = 32) -> dict | None:
    """Per-strand FANTOM CAGE outputs vs the bundled windows' 24 real FANTOM5 CAGE tracks, before and after.

    For a model whose outputs are not the bundled track names but include per-strand FANTOM CAGE
    (Puffin), the bundled reference set has no real targets for its outputs as a whole; its CAGE
    outputs still have real measurements: the 12 plus-strand and 12 minus-strand CAGE tracks of the
    bundled hg38 windows, summed per strand. Predictions are summed to the tracks' 32-bp bins and
    compared per strand (Pearson over windows x bins), both as they are and in log1p.

    Returns
    -------
    dict or None
        ``pearson_before`` / ``pearson_after`` (mean of the two strands), ``pearson_log1p_before`` /
        ``_after``, per-strand values, ``n_windows``, ``bin_size``; None when the model has no such
        outputs or the bundled windows do not fit it.
    """
    outputs = strand_cage_outputs(getattr(base_model, "task_names", []))
    if outputs is None:
        return None
    try:
        ref = reference.bundled_reference_set(base_model)
    except reference.ReferenceUnavailable:
        return None
    idx = ref.subset(split, max_windows, seed)
    target = bundled_cage_by_strand(ref, split, idx)
    span = target.shape[-1] * reference.BIN_SIZE // ref.geometry.bin_size
    out = {"n_windows": int(len(idx)), "bin_size": reference.BIN_SIZE, "tracks": list(STRAND_CAGE_OUTPUTS),
           "reference": "24 FANTOM5 CAGE tracks of the bundled hg38 windows, summed per strand"}
    for when, model in (("before", base_model), ("after", new_model)):
        pred = predict(model, ref.one_hot(split, idx), batch_size=batch_size)[:, outputs, :span]
        pred = reference.pool_to_bins(pred, reference.BIN_SIZE // ref.geometry.bin_size)
        out.update({f"{key}_{when}": value for key, value in strand_cage_scores(pred, target).items()})
    return out


def strand_cage_scores(coverage: np.ndarray, target: np.ndarray) -> dict:
    """Pearson of predicted vs real per-strand CAGE, (windows, 2 strands, bins) each, per strand over
    windows x bins: ``pearson`` (mean of the strands), ``pearson_log1p``, ``pearson_plus``, ``pearson_minus``."""
    raw = [pearson(coverage[:, k], target[:, k]) for k in range(2)]
    logged = [pearson(np.log1p(coverage[:, k]), np.log1p(target[:, k])) for k in range(2)]
    return {"pearson": float(np.mean(raw)), "pearson_log1p": float(np.mean(logged)),
            "pearson_plus": raw[0], "pearson_minus": raw[1]}


def retention(base_pred: np.ndarray, new_pred: np.ndarray, target: np.ndarray | None) -> dict:
    """Retention of the reference task after an update.

    Parameters
    ----------
    base_pred, new_pred
        Base and updated model predictions on the same reference crops (n, tracks, bins).
    target
        The real tracks, or None (drift only).

    Returns
    -------
    dict
        ``pearson_before`` / ``pearson_after`` (mean over tracks; NaN without tracks),
        ``retention_ratio`` (after / before), ``drift_pearson`` (Pearson of updated vs base
        predictions, log1p space) and ``drift_rel_l2`` (||new - base|| / ||base|| in log1p space).
    """
    nan = float("nan")
    before = float(np.nanmean(pearson_per_track(base_pred, target))) if target is not None else nan
    after = float(np.nanmean(pearson_per_track(new_pred, target))) if target is not None else nan
    lb, ln = np.log1p(base_pred), np.log1p(new_pred)
    return {
        "pearson_before": before,
        "pearson_after": after,
        "retention_ratio": after / before if before and np.isfinite(before) else nan,
        "drift_pearson": pearson(lb, ln),
        "drift_rel_l2": float(np.linalg.norm(ln - lb) / max(np.linalg.norm(lb), 1e-12)),
    }


def reference_scores(pred: np.ndarray, target: np.ndarray, profile: bool = False) -> dict:
    """Scores of predictions on the reference task (n, tracks, bins).

    Returns
    -------
    dict
        ``pearson`` (mean over tracks), ``per_track`` and, for profile models, ``jsd`` (mean
        over crops and strands; lower is better) and ``counts_pearson`` (log1p total per crop).
    """
    per_track = pearson_per_track(pred, target)
    out = {"pearson": float(np.nanmean(per_track)), "per_track": per_track.tolist()}
    if profile:
        out["jsd"] = float(np.mean(js_divergence(pred, target)))
        out["counts_pearson"] = pearson(np.log1p(pred.sum((1, 2))), np.log1p(target.sum((1, 2))))
    return out
