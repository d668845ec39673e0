"""Agreement of predictions with measurements, on arrays: Pearson, Spearman, per-track Pearson,
Jensen-Shannon divergence, the new-task scores of an update (perturbation effects or coverage
tracks) and, for personal genomes, the per-gene correlation across individuals.

Plain NumPy functions; nothing here runs a model.
"""

from __future__ import annotations

import numpy as np


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
