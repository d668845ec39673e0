"""Metrics, the forgetting report and its plot.

Two sides of forgetting, both on real data:

- the new task: Pearson / Spearman of predicted vs measured perturbation effects on
  held-out elements, before and after the update;
- retention: on the held-out reference windows, Pearson of predictions vs the real tracks,
  before and after, and the drift of the updated model's predictions from the base model's.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from genocl_plugin.data import reference
from genocl_plugin.progress import StageLog, progress_iter


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two vectors (NaN when either is constant)."""
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def format_epoch_selection(selection: dict) -> str:
    """One line: the validation Pearson per epoch and the epoch the update kept."""
    scores = ", ".join("nan" if v is None else f"{v:.3f}" for v in selection["validation_pearson"])
    kept = ("the parent's weights (no epoch beat them)" if selection["best_epoch"] == 0
            else f"epoch {selection['best_epoch']} of {selection['epochs_run']}")
    return (f"epoch selection: validation effect Pearson ({selection['n_validation']} held-out-block rows), "
            f"parent first: {scores} -> kept {kept}")


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    from scipy.stats import rankdata

    return pearson(rankdata(np.asarray(x).ravel()), rankdata(np.asarray(y).ravel()))


def pearson_per_track(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Pearson per track over all examples and positions; inputs (n, tracks, length)."""
    return np.array([pearson(pred[:, t], target[:, t]) for t in range(pred.shape[1])])


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
    :func:`reference_retention`, which streams instead of holding every prediction.

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


def effect_metrics(predicted: np.ndarray, measured: np.ndarray) -> dict:
    """Agreement of predicted and measured perturbation effects."""
    predicted, measured = np.asarray(predicted, float), np.asarray(measured, float)
    return {
        "pearson": pearson(predicted, measured),
        "spearman": spearman(predicted, measured),
        "mse": float(np.mean((predicted - measured) ** 2)) if len(measured) else float("nan"),
        "n": int(len(measured)),
    }


def tracks_metrics(predicted: np.ndarray | None, target: np.ndarray) -> dict:
    """Agreement of predicted and real coverage on held-out crops of a tracks screen.

    ``pearson``: mean over tracks of the Pearson over all crops and bins (as for the reference
    tracks); NaN when the model does not predict the tracks (``predicted`` is None).
    """
    nan = float("nan")
    if predicted is None or len(target) == 0:
        return {"pearson": nan, "pearson_log1p": nan, "spearman": nan, "mse": nan, "n": int(len(target))}
    return {"pearson": float(np.nanmean(pearson_per_track(predicted, target))),
            "pearson_log1p": float(np.nanmean(pearson_per_track(np.log1p(predicted), np.log1p(target)))),
            "spearman": nan, "mse": float(np.mean((np.log1p(predicted) - np.log1p(target)) ** 2)),
            "n": int(len(target))}


def forgetting_report(before: dict, after: dict, retention_metrics: dict) -> dict:
    """Combine the new-task and retention numbers into one report dict."""
    return {
        "new_task": {"before": before, "after": after,
                     "pearson_gain": _sub(after.get("pearson"), before.get("pearson"))},
        "retention": retention_metrics,
    }


def _sub(a, b):
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)) or (isinstance(b, float) and math.isnan(b)):
        return float("nan")
    return a - b


def format_table(report: dict) -> str:
    """The before/after table printed by ``genocl update`` (n/a where a number does not apply)."""
    nt, rt = report["new_task"], report["retention"]
    nan = float("nan")
    rows = [
        ("new task: effect Pearson (held-out elements)", nt["before"]["pearson"], nt["after"]["pearson"]),
        ("new task: effect Spearman (held-out elements)", nt["before"]["spearman"], nt["after"]["spearman"]),
        ("new task: effect Pearson (training elements)", nt.get("train_before", {}).get("pearson", nan),
         nt.get("train_after", {}).get("pearson", nan)),
    ]
    if "in_distribution" in nt:
        rows.append(("new task: effect Pearson (held-out blocks, in distribution)",
                     nt["in_distribution"]["before"]["pearson"], nt["in_distribution"]["after"]["pearson"]))
    rows += [
        ("retention: track Pearson vs real tracks (test windows)", rt["pearson_before"], rt["pearson_after"]),
        (DRIFT_POOLED, 1.0, rt["drift_pearson"]),
    ]
    if nt.get("kind") == "tracks":  # coverage tracks: held-out windows, not perturbations
        rows[0] = ("new task: track Pearson (held-out windows)", *rows[0][1:])
        rows[1] = ("new task: track Pearson, log1p (held-out windows)", nt["before"].get("pearson_log1p", nan),
                   nt["after"].get("pearson_log1p", nan))
        rows[2] = ("new task: track Pearson (training windows)", *rows[2][1:])
    xind = nt.get("cross_individual")
    if xind:  # personal genomes: correlation across individuals within each held-out gene
        unit = f"held-out {'genes' if xind.get('holdout_by', 'gene') == 'gene' else 'individuals'}"
        rows[0] = ("new task: expression Pearson (all held-out rows, between genes)", *rows[0][1:])
        rows[1] = ("new task: expression Spearman (all held-out rows, between genes)", *rows[1][1:])
        rows[2] = ("new task: expression Pearson (training rows)", *rows[2][1:])
        rows[2:2] = [(f"cross-individual {m} per gene, {agg} ({unit})", xind["before"][f"{agg}_{m.lower()}"],
                      xind["after"][f"{agg}_{m.lower()}"])
                     for m in ("Pearson", "Spearman") for agg in ("mean", "median")]
    cage = rt.get("real_cage")
    if cage:  # Puffin-type outputs: their CAGE outputs against the bundled windows' real CAGE
        rows.append((f"retention: FANTOM CAGE outputs vs real CAGE ({cage['n_windows']} windows, "
                     f"{cage['bin_size']}-bp bins)", cage["pearson_before"], cage["pearson_after"]))
    per_group = False
    for group, values in (rt.get("groups") or {}).items():
        if len(rt["groups"]) > 1 or group != "other":
            per_group = True
            rows.append((f"  drift Pearson, {group} tracks ({values['n_tracks']}), mean of per-track Pearson (log1p)",
                         1.0, values["drift_pearson"]))
    width = max(len(r[0]) for r in rows)

    def cell(value) -> str:
        return f"{value:>8.4f}" if value is not None and math.isfinite(value) else f"{'n/a':>8}"

    lines = [f"{'metric':<{width}}  {'before':>8}  {'after':>8}", "-" * (width + 20)]
    lines += [f"{name:<{width}}  {cell(b)}  {cell(a)}" for name, b, a in rows]
    if per_group and math.isfinite(rt.get("drift_pearson", float("nan"))):
        lines.append(DRIFT_NOTE)
    budget = format_budget(report)
    if budget:
        lines.append(budget)
    return "\n".join(lines)


# What the two drift figures pool (issue 31: a pooled 0.23 beside a per-track 0.94 for the same tracks).
DRIFT_POOLED = "drift from base: Pearson of predictions, all tracks x positions pooled (log1p)"
DRIFT_NOTE = ("pooled drift: one Pearson over every output track and position (it falls also when tracks' levels\n"
              "  move against each other); per-track drift: each track's Pearson over windows x positions, averaged")
BUDGET_METRICS = {"retention_ratio": "retention ratio", "drift_pearson": "drift Pearson"}


def format_budget(report: dict) -> str | None:
    """The ``--max-drift`` line: whether the update stayed within its forgetting budget (None without one).

    ``within budget: yes/no (n checks, lowest <metric> X vs bound Y)`` and what was checked: the
    retention ratio (the update's track Pearson vs the real tracks over the parent's) when the
    parent has skill on the valid windows, else the drift Pearson (pooled over tracks x positions,
    log1p), on the reference set's ``valid`` windows (strategies/drift.py).
    """
    budget = (report.get("strategies") or {}).get("DriftBudgetCallback")
    if not budget:
        return None
    bound = budget["max_drift"]
    head = f"forgetting budget (--max-drift {bound:g}): "
    checks = budget.get("checks") or []
    if not checks:
        return head + "not checked (no training step ran)"
    metric = checks[-1]["metric"]
    values = [c["value"] for c in checks]
    lowest = min(values, key=lambda v: -math.inf if v is None or not math.isfinite(v) else v)
    shown = f"{lowest:.4f}" if lowest is not None and math.isfinite(lowest) else "n/a"
    within = not budget.get("violated")
    n_checks = f"{len(checks)} check{'s' if len(checks) != 1 else ''}"
    text = (head + f"within budget: {'yes' if within else 'no'} ({n_checks}, lowest "
            f"{BUDGET_METRICS.get(metric, metric)} {shown} vs bound {bound:g})")
    events = budget.get("events") or []
    if events:
        first = events[0]
        text += (f"; first violated at step {first['step']}: the weights of step {first['restored_step']} were "
                 f"restored and " + ("the update stopped" if budget.get("stopped") else "the learning rate halved"))
    what = ("the update's track Pearson vs the real tracks / the parent's" if metric == "retention_ratio"
            else "Pearson of the update's predictions with the parent's, all tracks x positions pooled (log1p)")
    every = budget.get("every_n_steps")
    when = f"every {every} optimiser steps and at the end" if every else "during training"
    text += (f"\n  checked {when} on {budget.get('crops')} {budget.get('split')} reference windows: "
             f"{BUDGET_METRICS.get(metric, metric)} = {what}")
    return text


def plot_report(report: dict, scatter: dict, path: str | Path) -> Path:
    """PNG: predicted vs measured effects (before/after) and the retention bars.

    Parameters
    ----------
    report
        From :func:`forgetting_report`.
    scatter
        ``measured``, ``pred_before``, ``pred_after`` arrays on held-out perturbations.
    path
        Output PNG.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xind = report["new_task"].get("cross_individual")
    fig, axes = plt.subplots(1, 4 if xind else 3, figsize=(17 if xind else 13, 4))
    for ax, key, title in [(axes[0], "pred_before", "before"), (axes[1], "pred_after", "after")]:
        ax.scatter(scatter["measured"], scatter[key], s=6, alpha=0.5)
        r = report["new_task"][title]["pearson"]
        ax.set_title(f"held-out effects, {title} (r = {r:.3f})")
        ax.set_xlabel("measured effect (log2)")
        ax.set_ylabel("predicted effect (log2)")
    if report["new_task"].get("kind") == "tracks":  # coverage bins of held-out windows
        for ax, title in zip(axes[:2], ("before", "after"), strict=True):
            ax.set_title(f"held-out coverage, {title} (track r = {report['new_task'][title]['pearson']:.3f})")
            ax.set_xlabel("measured coverage (log1p)")
            ax.set_ylabel("predicted coverage (log1p)")
    if xind:  # personal genomes: rows are people x genes with measured expression
        for ax, title in zip(axes[:2], ("before", "after"), strict=True):
            ax.set_title(f"held-out expression, {title} (r = {report['new_task'][title]['pearson']:.3f})")
            ax.set_xlabel("measured expression")
            ax.set_ylabel("predicted log2 expression")
    rt = report["retention"]
    axes[2].bar(["before", "after"], [rt["pearson_before"], rt["pearson_after"]], color=["grey", "tab:blue"])
    axes[2].set_title(f"retention on test windows (drift r = {rt['drift_pearson']:.3f})")
    axes[2].set_ylabel("mean track Pearson vs real tracks")
    if xind:
        genes = sorted(xind["after"]["per_gene"])
        x = np.arange(len(genes))
        for k, (key, color) in enumerate((("before", "grey"), ("after", "tab:blue"))):
            ax_vals = [xind[key]["per_gene"][g]["pearson"] for g in genes]
            axes[3].bar(x + (k - 0.5) * 0.4, np.nan_to_num(ax_vals), width=0.4, color=color, label=key)
        axes[3].set_xticks(x, genes, rotation=45, ha="right", fontsize=7)
        axes[3].axhline(0, color="k", lw=0.5)
        for k, gene in enumerate(genes):
            if not np.isfinite(xind["after"]["per_gene"][gene]["pearson"]):
                axes[3].text(k, 0, "n/a:\nconstant", ha="center", va="top", fontsize=7)
        axes[3].set_title(f"cross-individual r per gene\n(mean after {xind['after']['mean_pearson']:.3f})")
        axes[3].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def write_json(data: dict, path: str | Path, sealed: bool = False) -> Path:
    """Write JSON with NaN as null; ``sealed`` adds the ``config_sha256`` checked on read (:func:`read_run_metrics`)."""
    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, np.generic):
            return clean(v.item())
        return v
    data = clean(data)
    if sealed:
        from genocl_plugin.data.fileio import seal

        data = seal(data)
    Path(path).write_text(json.dumps(data, indent=2))
    return Path(path)


# --- Continual-learning metrics over a sequence of tasks (genocl evaluate) -------------------
#
# Tasks are numbered 0..T: task 0 is the base model's own task (the reference tracks it was
# pretrained on), task k >= 1 the k-th screen. Model 0 is the base model, model k the model
# after the k-th update. R[i, j] is the score (a Pearson correlation: higher is better) of
# model i on the held-out data of task j. Adapted to regression from Lopez-Paz & Ranzato
# (2017) and Chaudhry et al. (2018):
#
#   BWT          = mean_{j < T} (R[T, j] - R[j, j])        (< 0: later tasks hurt earlier ones)
#   FWT          = mean_{1 <= j <= T} (R[j-1, j] - b_j)     (b_j = base model's score on task j,
#                                                          so FWT is 0 with a single screen and
#                                                          measures zero-shot transfer from
#                                                          earlier screens to later ones)
#   forgetting_j = max_{l < T} R[l, j] - R[T, j]            (j < T; the best score task j ever
#                                                          had minus its final score)


def accuracy_matrix(scores) -> np.ndarray:
    """Validate per-model, per-task scores as a square accuracy matrix.

    Parameters
    ----------
    scores
        ``scores[i][j]``: score of the model after task ``i`` on task ``j`` (nested lists or
        an array; NaN allowed where a score cannot be computed).

    Returns
    -------
    np.ndarray
        (T + 1, T + 1) float matrix.

    Raises
    ------
    ValueError
        The scores are not square.
    """
    matrix = np.asarray(scores, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"accuracy matrix must be square, got shape {matrix.shape}")
    return matrix


def backward_transfer(matrix) -> float:
    """BWT = mean over earlier tasks j < T of ``R[T, j] - R[j, j]`` (NaN with one task)."""
    r = accuracy_matrix(matrix)
    last = len(r) - 1
    if last < 1:
        return float("nan")
    return float(np.nanmean([r[last, j] - r[j, j] for j in range(last)]))


def forward_transfer(matrix, baseline=None) -> float:
    """FWT = mean over tasks j >= 1 of ``R[j-1, j] - b_j``.

    Parameters
    ----------
    matrix
        The accuracy matrix.
    baseline
        ``b_j`` per task; default the base model's row ``R[0]`` (the score before any update).
    """
    r = accuracy_matrix(matrix)
    b = r[0] if baseline is None else np.asarray(baseline, dtype=np.float64)
    if len(r) < 2:
        return float("nan")
    return float(np.nanmean([r[j - 1, j] - b[j] for j in range(1, len(r))]))


def forgetting(matrix) -> np.ndarray:
    """Per-task forgetting ``max_{l < T} R[l, j] - R[T, j]`` for tasks j < T."""
    r = accuracy_matrix(matrix)
    last = len(r) - 1
    return np.array([np.nanmax(r[:last, j]) - r[last, j] for j in range(last)], dtype=np.float64)


def continual_metrics(matrix, baseline=None) -> dict:
    """BWT, FWT, per-task and mean forgetting, and the final average score of a matrix."""
    r = accuracy_matrix(matrix)
    per_task = forgetting(r)
    return {
        "bwt": backward_transfer(r),
        "fwt": forward_transfer(r, baseline),
        "forgetting": per_task.tolist(),
        "mean_forgetting": float(np.nanmean(per_task)) if len(per_task) else float("nan"),
        "final_mean_score": float(np.nanmean(r[-1])),
    }


def js_divergence(p, q, axis: int = -1) -> np.ndarray:
    """Jensen-Shannon divergence (base 2, in [0, 1]) between profiles normalised along ``axis``.

    Profiles are non-negative signals (predicted or measured coverage); each is divided by its
    sum so only the shape is compared. An all-zero profile is treated as uniform, because a
    profile with no signal says nothing about where the signal is.
    """
    p = np.clip(np.asarray(p, dtype=np.float64), 0, None)
    q = np.clip(np.asarray(q, dtype=np.float64), 0, None)

    def normalise(x):
        total = x.sum(axis=axis, keepdims=True)
        uniform = np.full_like(x, 1.0 / x.shape[axis])
        return np.where(total > 0, x / np.where(total > 0, total, 1.0), uniform)

    p, q = normalise(p), normalise(q)
    m = 0.5 * (p + q)

    def kl(a, b):
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(a > 0, a * np.log2(a / b), 0.0)
        return terms.sum(axis=axis)

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


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


def _resolve_parent(spec: str, child: Path) -> str:
    """A lineage ``parent`` as a loadable spec: bundled names as-is, paths tried as written
    (relative to the working directory of the update) and then beside the child run."""
    from genocl_plugin.models import BUNDLED_MODELS

    if spec in BUNDLED_MODELS or Path(spec).exists():
        return spec
    beside = child.parent / Path(spec).name
    if beside.exists():
        return str(beside)
    from genocl_plugin.errors import input_error

    raise input_error(child, "lineage", f"parent {spec} not found",
                      "keep the parent runs next to their children or run evaluate from the update's directory")


def read_run_metrics(run_dir: str | Path) -> dict:
    """A run's ``metrics.json`` (one-line error when it is not JSON or lacks ``config.model``)."""
    from genocl_plugin.data.fileio import check_seal, read_json_object, recover_replaced
    from genocl_plugin.errors import input_error

    path = recover_replaced(Path(run_dir)) / "metrics.json"
    metrics = check_seal(read_json_object(path, "metrics.json"), path)
    if not isinstance(metrics.get("config"), dict) or not isinstance(metrics["config"].get("model"), str):
        raise input_error(path, "config", "missing or without its 'model' entry",
                          "pass a run directory written by genocl update (or restore its metrics.json)")
    return metrics


def lineage_chain(run_dir: str | Path) -> list[str]:
    """Model specs from the base model to ``run_dir``: ``[base, run_1, ..., run_dir]``.

    Follows each run's ``metrics.json`` config ``model`` (its parent) back to a model that is
    not a genocl run (the base model).
    """
    from genocl_plugin.errors import input_error

    chain = [str(run_dir)]
    current = Path(run_dir)
    while True:
        metrics_path = current / "metrics.json"
        if not metrics_path.exists():
            if len(chain) == 1:
                raise input_error(current, "metrics.json", "missing: not a genocl run directory",
                                  "pass directories written by genocl update")
            return chain[::-1]
        parent = read_run_metrics(current)["config"]["model"]
        parent = _resolve_parent(str(parent), current)
        chain.append(parent)
        if not (Path(parent) / "metrics.json").exists():
            return chain[::-1]
        current = Path(parent)
        if len(chain) > 100:
            raise input_error(run_dir, "lineage", "longer than 100 steps (a cycle?)", "check the run directories")


def screen_task(run_dir: str | Path, model):
    """The held-out perturbations a run was evaluated on, reproduced from its stored config.

    Uses the same element split and subsampling as :func:`genocl_plugin.data.screens.prepare_screen`
    and checks the held-out elements against the run's ``metrics.json``.

    Returns
    -------
    objectives.PerturbationDataset
    """
    from genocl_plugin import objectives
    from genocl_plugin.config import UpdateConfig
    from genocl_plugin.data.screens import prepare_screen
    from genocl_plugin.errors import input_error

    metrics = read_run_metrics(run_dir)
    fields = UpdateConfig.__dataclass_fields__
    config = UpdateConfig(**{k: v for k, v in metrics["config"].items() if k in fields})
    path, _, test = prepare_screen(config, model)
    dataset = objectives.screen_dataset(test, model, config.silencing, config.seed, path=str(path),
                                        readout=config.readout_tracks, pairwise_alpha=config.pairwise_alpha,
                                        max_items=config.max_eval, mpra_seq_len=config.mpra_input_length)
    stored = metrics.get("split", {}).get("test_elements")
    if stored is not None and sorted(set(dataset.groups)) != sorted(stored):
        raise input_error(path, "elements", f"held-out elements differ from {run_dir}/metrics.json",
                          "the screen file changed since the run; evaluate with the original screen")
    return dataset


def run_reference_set(run_dir: str | Path, model):
    """The reference set a run was measured on (its ``--reference-*`` settings), or None if none fits."""
    config = read_run_metrics(run_dir).get("config", {})
    # --reference-peaks without --reference-regions: the FASTA and held-out chromosomes were the peaks'
    shared = config.get("reference_regions") is not None or not config.get("reference_peaks")
    try:
        return reference.reference_set_for(
            model, fasta=config.get("reference_fasta") if shared else None, regions=config.get("reference_regions"),
            tracks=config.get("reference_tracks"),
            holdout_chroms=config.get("reference_holdout_chroms") if shared else None)
    except reference.ReferenceUnavailable:
        return None


# The run settings that define its reference set (``run_reference_set``).
REFERENCE_FIELDS = ("reference_fasta", "reference_regions", "reference_tracks", "reference_holdout_chroms",
                    "reference_peaks")


def run_peak_source(chain) -> dict | None:
    """The peak source (``peaks.source`` of metrics.json) of the latest run of a chain that has one."""
    for run in reversed(chain[1:]):
        source = (read_run_metrics(run).get("peaks") or {}).get("source")
        if source:
            return source
    return None


def evaluate_runs(run_dirs, max_crops: int | None = 96, progress=None) -> dict:
    """Accuracy matrices, transfer, forgetting and drift for one or more run sequences.

    Each run directory is the last step of a sequence; its lineage (parent runs back to the
    base model) defines the tasks: the reference tracks (task 0) and each run's screen, scored
    on that screen's held-out elements. Every model of the chain is reloaded and scored on
    every task; scores are cached, so runs sharing parents cost little more.

    Parameters
    ----------
    run_dirs
        ``genocl update`` run directories.
    max_crops
        Reference test-window crops (same seeded subset for every model; None: all).
    progress
        Optional ``callable(str)`` for progress messages.

    Returns
    -------
    dict
        ``runs``: one entry per run with ``chain``, ``strategies``, ``tasks``, ``matrix``
        (Pearson: tracks for task 0, effects for screens), ``metrics`` (:func:`continual_metrics`),
        ``reference`` (per model: Pearson, per-track Pearson, JSD and counts Pearson for profile
        models), ``drift`` (final vs base model on the reference windows), ``new_task_gain`` and
        ``retention``. Task 0 is scored against the real tracks when the reference set has them,
        else as agreement with the base model's predictions (drift Pearson; 1 for the base).
        Runs updated with ``--reference-peaks`` also get ``peaks``: per model of the chain, the
        peak-vs-flank AUROC, signal Pearson and counts drift from the base on the run's peak set
        (:mod:`genocl_plugin.evaluation.peaks`).
    """
    from genocl_plugin.models import load_model
    from genocl_plugin.objectives import dataset_fingerprint, predict_screen_effects

    say = progress or (lambda _msg: None)
    models: dict[str, object] = {}
    ref_cache: dict[str, tuple] = {}
    screen_cache: dict[tuple[str, str], float] = {}
    xind_cache: dict[tuple[str, str], dict | None] = {}

    def get_model(spec):
        if spec not in models:
            models.clear()  # keep one model in memory at a time
            models[spec] = load_model(spec)
        return models[spec]

    ref_sets: dict[tuple, object] = {}

    def reference_key(chain) -> tuple:
        # runs of one base with the same --reference-* settings share the reference set, so the
        # base's predictions on it are computed once (several strategies from one parent)
        if len(chain) < 2:
            return (chain[0], "")
        config = read_run_metrics(chain[1]).get("config", {})
        return (chain[0], json.dumps([config.get(k) for k in REFERENCE_FIELDS]))

    def ref_scores(spec, chain):
        ref_key = reference_key(chain)
        key = (spec, *ref_key)
        if key not in ref_cache:
            if ref_key not in ref_sets:
                ref_sets[ref_key] = (run_reference_set(chain[1], get_model(chain[0])) if len(chain) > 1 else None)
            ref_set = ref_sets[ref_key]
            model = get_model(spec)
            if ref_set is None:
                ref_cache[key] = (None, None, {"pearson": float("nan"), "per_track": []})
            else:
                pred, target = reference_predictions(model, "test", max_crops=max_crops, reference_set=ref_set)
                if target is None:
                    base_pred = pred if spec == chain[0] else ref_scores(chain[0], chain)[0]
                    scores = {"pearson": retention(base_pred, pred, None)["drift_pearson"], "per_track": [],
                              "scored_against": "base model predictions (no real tracks)"}
                else:
                    profile = model.data_params.get("arch") == "procapnet"
                    scores = reference_scores(pred, target, profile=profile)
                ref_cache[key] = (pred, target, scores)
        return ref_cache[key]

    by_content: dict[tuple[str, str], tuple] = {}

    def screen(spec, run):
        key = (spec, str(run))
        if key not in screen_cache:
            model = get_model(spec)
            dataset = screen_task(run, model)
            if getattr(dataset, "kind", None) == "tracks":  # coverage tracks: mean track Pearson
                from genocl_plugin.data.tracks import dataset_targets, predict_tracks

                screen_cache[key] = tracks_metrics(predict_tracks(model, dataset), dataset_targets(dataset))["pearson"]
                xind_cache[key] = None
                return screen_cache[key]
            # runs holding out the same perturbations (several strategies on one split) share
            # a model's score on them
            content = (spec, dataset_fingerprint(dataset), tuple(np.asarray(dataset.effect, dtype=float).round(9)))
            if content[1] is not None and content in by_content:
                screen_cache[key], xind_cache[key] = by_content[content]
                return screen_cache[key]
            predicted = predict_screen_effects(model, dataset)
            screen_cache[key] = pearson(predicted, dataset.effect)
            # personal-genome screens: also the per-gene correlation across individuals
            xind_cache[key] = (cross_individual_metrics(predicted, dataset.effect, dataset.groups)
                               if hasattr(dataset, "individuals") else None)
            by_content[content] = (screen_cache[key], xind_cache[key])
        return screen_cache[key]

    peak_sets: dict[str, object] = {}
    peak_cache: dict[tuple[str, str], np.ndarray] = {}

    def peak_evaluation(chain, source) -> dict:
        # every model of the chain on the run's peak set; per-window signals cached per (model, source)
        from genocl_plugin.evaluation import peaks

        key = json.dumps(source, sort_keys=True)
        if key not in peak_sets:
            peak_sets[key] = peaks.peak_set_from_source(get_model(chain[0]), source)
        peak_set = peak_sets[key]
        if "not_measured" in peak_set.summary:
            return {"source": source, "not_measured": peak_set.summary["not_measured"]}
        for spec in chain:
            if (spec, key) not in peak_cache:
                say(f"scoring {spec} on {len(peak_set)} peak and flank windows")
                peak_cache[spec, key] = peaks.peak_predictions(get_model(spec), peak_set)
        base_signal = peak_cache[chain[0], key]
        return {"source": source, "name": peak_set.name,
                "models": [peaks.peak_scores(peak_cache[spec, key], peak_set, parent=base_signal) for spec in chain]}

    stages = StageLog(total=len(run_dirs))  # one stderr line per run (genocl_plugin/progress.py)
    results = []
    for run_dir in run_dirs:
        chain = lineage_chain(run_dir)
        with stages.stage(f"evaluating {run_dir}", f"{len(chain)} models x {len(chain)} tasks, "
                                                   f"{max_crops or 'all'} reference windows"):
            size = len(chain)
            matrix = np.full((size, size), np.nan)
            for i, spec in enumerate(chain):
                with stages.stage(f"model {i + 1} of {size}", f"{spec} on {size} tasks"):
                    matrix[i, 0] = ref_scores(spec, chain)[2]["pearson"]
                    for j in range(1, size):
                        matrix[i, j] = screen(spec, chain[j])
            base_pred, target, _ = ref_scores(chain[0], chain)
            final_pred = ref_scores(chain[-1], chain)[0]
            drift = (retention(base_pred, final_pred, target) if base_pred is not None and final_pred is not None
                     else {})
            run_metrics = [read_run_metrics(r) for r in chain[1:]]
            configs = [m["config"] for m in run_metrics]
            strategies = [c["strategy"] for c in configs]
            screens = [f"{Path(c['data']).stem if c.get('data') else 'bundled screen'} "
                       f"(held-out {'windows' if m.get('new_task', {}).get('kind') == 'tracks' else 'elements'})"
                       for c, m in zip(configs, run_metrics, strict=True)]
            results.append({
                "run": str(run_dir), "chain": chain, "strategies": strategies,
                "tasks": ["reference tracks (test windows)"] + screens,
                "matrix": matrix.tolist(),
                "metrics": continual_metrics(matrix),
                "reference": [dict(ref_scores(spec, chain)[2]) for spec in chain],
                "drift": {k: drift[k] for k in ("drift_pearson", "drift_rel_l2", "retention_ratio") if k in drift},
                "new_task_gain": float(np.nanmean([matrix[j, j] - matrix[0, j] for j in range(1, size)])),
                "retention": float(matrix[-1, 0]),
                "cross_individual": {
                    f"T{j}": [{k: xind_cache[(spec, str(chain[j]))][k] for k in CROSS_INDIVIDUAL_SUMMARY}
                              for spec in chain]
                    for j in range(1, size) if xind_cache.get((chain[0], str(chain[j]))) is not None},
            })
            peak_source = run_peak_source(chain)
            if peak_source is not None:
                results[-1]["peaks"] = peak_evaluation(chain, peak_source)
    return {"runs": results, "max_crops": max_crops}


def format_evaluation(result: dict) -> str:
    """Printed table: each run's accuracy matrix, then BWT / FWT / forgetting / drift."""
    lines = []
    for run in result["runs"]:
        size = len(run["matrix"])
        lines.append(f"run {run['run']}  (strategies: {' -> '.join(run['strategies'])})")
        header = "model \\ task".ljust(16) + "".join(f"{'T' + str(j):>9}" for j in range(size))
        lines.append(header)
        names = ["base"] + [f"after T{i}" for i in range(1, size)]
        for name, row in zip(names, run["matrix"], strict=True):
            lines.append(name.ljust(16) + "".join(f"{v:>9.4f}" for v in row))
        for j, task in enumerate(run["tasks"]):
            lines.append(f"  T{j} = {task}")
        m = run["metrics"]
        lines.append(f"  BWT {m['bwt']:+.4f}   FWT {m['fwt']:+.4f}   mean forgetting {m['mean_forgetting']:+.4f}   "
                     f"new-task gain {run['new_task_gain']:+.4f}   drift Pearson (pooled, log1p) "
                     f"{run['drift'].get('drift_pearson', float('nan')):.4f}")
        for task, per_model in run.get("cross_individual", {}).items():
            values = "  ".join(f"{name} {m['mean_pearson']:.4f}/{m['median_pearson']:.4f}"
                               for name, m in zip(names, per_model, strict=True))
            lines.append(f"  {task} cross-individual Pearson per gene (mean/median over held-out genes): {values}")
        final_ref = run["reference"][-1]
        if "jsd" in final_ref:
            lines.append(f"  profile: JSD base {run['reference'][0]['jsd']:.4f} -> final {final_ref['jsd']:.4f};"
                         f" counts Pearson base {run['reference'][0]['counts_pearson']:.4f}"
                         f" -> final {final_ref['counts_pearson']:.4f}")
        lines += format_peak_evaluation(run.get("peaks"))
        lines.append("")
    return "\n".join(lines).rstrip()


def format_peak_evaluation(entry: dict | None) -> list[str]:
    """Lines for a run's ``peaks`` entry of :func:`evaluate_runs` (none without one)."""
    if not entry:
        return []
    if entry.get("not_measured"):
        return [f"  peaks: not measured: {entry['not_measured']}"]

    def num(value) -> str:
        return f"{value:.4f}" if value is not None and math.isfinite(value) else "n/a"

    base, final = entry["models"][0], entry["models"][-1]
    return [f"  peaks ({entry['name']}; {final['n_peaks']} peaks, {final['n_flanks']} flanks): "
            f"AUROC base {num(base['auroc'])} -> final {num(final['auroc'])}; signal Pearson base "
            f"{num(base['signal_pearson'])} -> final {num(final['signal_pearson'])}; counts drift "
            f"{num(final.get('drift_counts_pearson'))}"]


def plot_evaluation(result: dict, out_dir: str | Path, labels: list[str] | None = None) -> list[Path]:
    """PNGs: accuracy matrix heatmaps, retention vs new-task trade-off, per-track retention.

    Parameters
    ----------
    result
        From :func:`evaluate_runs`.
    out_dir
        Directory for ``accuracy_matrix.png``, ``tradeoff.png`` and ``per_track_retention.png``.
    labels
        One label per run (default: its strategies joined by ``->``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = result["runs"]
    labels = labels or [" -> ".join(r["strategies"]) for r in runs]
    paths = []

    ncol = min(4, len(runs))
    nrow = -(-len(runs) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.2 * nrow), squeeze=False)
    for ax, run, label in zip(axes.flat, runs, labels, strict=False):
        m = np.asarray(run["matrix"], dtype=float)
        im = ax.imshow(m, cmap="viridis", vmin=np.nanmin([np.nanmin(m), 0]), vmax=1)
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w", fontsize=8)
        ax.set_xticks(range(len(m)), [f"T{j}" for j in range(len(m))])
        ax.set_yticks(range(len(m)), ["base"] + [f"after T{i}" for i in range(1, len(m))])
        ax.set_title(f"{label}\nBWT {run['metrics']['bwt']:+.3f}", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046)
    for ax in list(axes.flat)[len(runs):]:
        ax.axis("off")
    fig.tight_layout()
    paths.append(out_dir / "accuracy_matrix.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label in dict.fromkeys(labels):
        pts = [(r["new_task_gain"], r["retention"]) for r, lab in zip(runs, labels, strict=True) if lab == label]
        ax.scatter(*zip(*pts, strict=True), label=label, s=30)
    ax.set_xlabel("new-task gain (held-out effect Pearson, after - base)")
    ax.set_ylabel("retention (reference track Pearson, final model)")
    ax.axhline(runs[0]["matrix"][0][0], color="grey", ls="--", lw=0.8, label="base model")
    ax.legend(fontsize=7)
    ax.set_title("retention vs new-task trade-off")
    fig.tight_layout()
    paths.append(out_dir / "tradeoff.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4))
    for run, label in zip(runs, labels, strict=True):
        base, final = run["reference"][0]["per_track"], run["reference"][-1]["per_track"]
        if base and final:
            ax.plot(np.asarray(final) - np.asarray(base), marker=".", lw=0.8, label=label)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("reference track")
    ax.set_ylabel("track Pearson change (final - base)")
    ax.set_title("per-track retention")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(out_dir / "per_track_retention.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


# --- Personal genomes: correlation across individuals, per gene ------------------------------

CROSS_INDIVIDUAL_SUMMARY = ("mean_pearson", "median_pearson", "mean_spearman", "median_spearman", "n_genes")


def cross_individual_metrics(predicted, measured, genes) -> dict:
    """Per-gene Pearson / Spearman across individuals, and their mean / median over genes.

    The standard metric of personal-genome expression prediction (Sasse et al. 2023, Huang
    et al. 2023): for each gene, correlate predicted and measured expression across people.
    Genes whose predictions (or measurements) do not vary across people have no correlation
    (NaN, e.g. no variant in the input window) and are left out of the mean / median;
    ``n_genes`` counts the genes that have one.

    Returns
    -------
    dict
        ``per_gene`` ({gene: {pearson, spearman, n}}), ``mean_pearson``, ``median_pearson``,
        ``mean_spearman``, ``median_spearman``, ``n_genes``.
    """
    predicted, measured, genes = np.asarray(predicted, float), np.asarray(measured, float), np.asarray(genes)
    per_gene = {}
    for gene in dict.fromkeys(genes.tolist()):
        idx = genes == gene
        p = predicted[idx]
        # Identical haplotypes predicted in different batches differ by float32 round-off
        # (~1e-7); a correlation with that "variation" would be noise, so it counts as constant.
        if len(p) and np.ptp(p) <= 1e-5 * max(1.0, float(np.abs(p).max())):
            per_gene[str(gene)] = {"pearson": float("nan"), "spearman": float("nan"), "n": int(idx.sum())}
            continue
        per_gene[str(gene)] = {"pearson": pearson(p, measured[idx]),
                               "spearman": spearman(p, measured[idx]), "n": int(idx.sum())}
    out = {"per_gene": per_gene}
    for metric in ("pearson", "spearman"):
        vals = np.array([v[metric] for v in per_gene.values()], dtype=float)
        vals = vals[np.isfinite(vals)]
        out[f"mean_{metric}"] = float(vals.mean()) if len(vals) else float("nan")
        out[f"median_{metric}"] = float(np.median(vals)) if len(vals) else float("nan")
    out["n_genes"] = int(sum(np.isfinite(v["pearson"]) for v in per_gene.values()))
    return out
