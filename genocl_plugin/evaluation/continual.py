"""Continual-learning metrics over a sequence of tasks: the accuracy matrix, backward and forward
transfer, and forgetting (``genocl evaluate``)."""

from __future__ import annotations

import numpy as np

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
