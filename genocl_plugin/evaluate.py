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

from genocl_plugin import reference


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two vectors (NaN when either is constant)."""
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


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
    starts = range(0, len(x), batch_size)
    if progress:
        from rich.progress import track

        starts = track(starts, description="predicting", transient=True)
    for start in starts:
        chunks.append(model(x[start : start + batch_size], logits=logits).cpu().numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0,))


def reference_predictions(model, split: str = "test", max_crops: int | None = None,
                          seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and real tracks on the bundled reference windows of one split.

    Predictions are pooled to the tracks' 32-bp bins. Only the bundled 74-track layout (or
    ProCapNet's 2 CAGE strands) can be compared with the real tracks.

    Returns
    -------
    tuple of np.ndarray
        ``(pred, target)``, each (n_crops, tracks, bins).
    """
    from genocl_plugin.pretrain import output_bins, pool_to_bins, reference_targets

    arch = model.data_params.get("arch", "enformer")
    bins = output_bins(model)
    codes, targets = reference.window_crops(split, model.seq_len, n_bins=bins)
    if max_crops and len(codes) > max_crops:
        idx = np.sort(np.random.default_rng(seed).choice(len(codes), max_crops, replace=False))
        codes, targets = codes[idx], targets[idx]
    pred = predict(model, reference.codes_to_one_hot(codes))
    if model.bin_size < reference.BIN_SIZE:
        pred = pool_to_bins(torch.from_numpy(pred), reference.BIN_SIZE // model.bin_size).numpy()
    target = reference_targets(arch, targets)
    # Multi-head models append screen-head tracks after the reference tracks.
    return pred[:, : target.shape[1]], target


def reference_metrics(model, split: str = "test", max_crops: int | None = None) -> dict:
    """Pearson of predictions vs the real tracks on reference windows (mean over tracks).

    For ProCapNet-style models the counts Pearson (log total per crop) is added.
    """
    pred, target = reference_predictions(model, split, max_crops=max_crops)
    per_track = pearson_per_track(pred, target)
    out = {
        f"{split}_pearson_mean": float(np.nanmean(per_track)),
        f"{split}_pearson_log1p_mean": float(np.nanmean(pearson_per_track(np.log1p(pred), np.log1p(target)))),
        "n_crops": int(len(pred)),
    }
    if model.data_params.get("arch") == "procapnet":
        out[f"{split}_counts_pearson"] = pearson(np.log1p(pred.sum((1, 2))), np.log1p(target.sum((1, 2))))
    else:
        names = reference.track_names()
        for prefix in ("CAGE", "DNASE", "RNA"):
            idx = [i for i, n in enumerate(names) if n.split(":")[0] == prefix]
            out[f"{split}_pearson_{prefix.lower()}"] = float(np.nanmean(per_track[idx]))
    return out


def retention(base_pred: np.ndarray, new_pred: np.ndarray, target: np.ndarray) -> dict:
    """Retention of the reference task after an update.

    Parameters
    ----------
    base_pred, new_pred
        Base and updated model predictions on the same reference crops (n, tracks, bins).
    target
        The real tracks.

    Returns
    -------
    dict
        ``pearson_before`` / ``pearson_after`` (mean over tracks), ``retention_ratio``
        (after / before), ``drift_pearson`` (Pearson of updated vs base predictions, log1p
        space) and ``drift_rel_l2`` (||new - base|| / ||base|| in log1p space).
    """
    before = float(np.nanmean(pearson_per_track(base_pred, target)))
    after = float(np.nanmean(pearson_per_track(new_pred, target)))
    lb, ln = np.log1p(base_pred), np.log1p(new_pred)
    return {
        "pearson_before": before,
        "pearson_after": after,
        "retention_ratio": after / before if before else float("nan"),
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
    """The before/after table printed by ``genocl update``."""
    nt, rt = report["new_task"], report["retention"]
    rows = [
        ("new task: effect Pearson (held-out elements)", nt["before"]["pearson"], nt["after"]["pearson"]),
        ("new task: effect Spearman (held-out elements)", nt["before"]["spearman"], nt["after"]["spearman"]),
        ("new task: effect Pearson (training elements)", nt.get("train_before", {}).get("pearson", float("nan")),
         nt.get("train_after", {}).get("pearson", float("nan"))),
        ("retention: track Pearson (test windows)", rt["pearson_before"], rt["pearson_after"]),
        ("drift from base: Pearson of predictions", 1.0, rt["drift_pearson"]),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{'metric':<{width}}  {'before':>8}  {'after':>8}", "-" * (width + 20)]
    lines += [f"{name:<{width}}  {b:>8.4f}  {a:>8.4f}" for name, b, a in rows]
    return "\n".join(lines)


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

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, key, title in [(axes[0], "pred_before", "before"), (axes[1], "pred_after", "after")]:
        ax.scatter(scatter["measured"], scatter[key], s=6, alpha=0.5)
        r = report["new_task"][title]["pearson"]
        ax.set_title(f"held-out effects, {title} (r = {r:.3f})")
        ax.set_xlabel("measured effect (log2)")
        ax.set_ylabel("predicted effect (log2)")
    rt = report["retention"]
    axes[2].bar(["before", "after"], [rt["pearson_before"], rt["pearson_after"]], color=["grey", "tab:blue"])
    axes[2].set_title(f"retention on test windows (drift r = {rt['drift_pearson']:.3f})")
    axes[2].set_ylabel("mean track Pearson vs real tracks")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def write_json(data: dict, path: str | Path) -> Path:
    """Write JSON with NaN as null."""
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
    Path(path).write_text(json.dumps(clean(data), indent=2))
    return Path(path)
