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
    ]
    if "in_distribution" in nt:
        rows.append(("new task: effect Pearson (held-out blocks, in distribution)",
                     nt["in_distribution"]["before"]["pearson"], nt["in_distribution"]["after"]["pearson"]))
    rows += [
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
        parent = json.loads(metrics_path.read_text())["config"]["model"]
        parent = _resolve_parent(str(parent), current)
        chain.append(parent)
        if not (Path(parent) / "metrics.json").exists():
            return chain[::-1]
        current = Path(parent)
        if len(chain) > 100:
            raise input_error(run_dir, "lineage", "longer than 100 steps (a cycle?)", "check the run directories")


def screen_task(run_dir: str | Path, model):
    """The held-out perturbations a run was evaluated on, reproduced from its stored config.

    Uses the same element split and subsampling as :func:`genocl_plugin.update.prepare_screen`
    and checks the held-out elements against the run's ``metrics.json``.

    Returns
    -------
    objectives.PerturbationDataset
    """
    from genocl_plugin import objectives
    from genocl_plugin.errors import input_error
    from genocl_plugin.update import UpdateConfig, prepare_screen

    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    fields = UpdateConfig.__dataclass_fields__
    config = UpdateConfig(**{k: v for k, v in metrics["config"].items() if k in fields})
    path, _, test = prepare_screen(config, model)
    dataset = objectives.screen_dataset(test, model, config.silencing, config.seed, path=str(path))
    stored = metrics.get("split", {}).get("test_elements")
    if stored is not None and sorted(set(dataset.groups)) != sorted(stored):
        raise input_error(path, "elements", f"held-out elements differ from {run_dir}/metrics.json",
                          "the screen file changed since the run; evaluate with the original screen")
    return dataset


def has_reference_tracks(model) -> bool:
    """Whether a model's leading tracks are the bundled reference layout.

    Like ``update._has_reference_tracks`` but ignoring screen-head tracks (``screen:<name>``)
    that the multi-head strategy appends after the reference tracks, so new-head models are
    scored on the reference task too.
    """
    arch = model.data_params.get("arch")
    n = len([t for t in model.task_names if not str(t).startswith("screen:")])
    return (arch == "enformer" and n == 74 and model.bin_size == 32) or (arch == "procapnet" and n == 2)


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
        ``retention``.
    """
    from genocl_plugin.models import load_model
    from genocl_plugin.update import predict_screen_effects

    say = progress or (lambda _msg: None)
    models: dict[str, object] = {}
    ref_cache: dict[str, tuple] = {}
    screen_cache: dict[tuple[str, str], float] = {}

    def get_model(spec):
        if spec not in models:
            models.clear()  # keep one model in memory at a time
            models[spec] = load_model(spec)
        return models[spec]

    def reference(spec):
        if spec not in ref_cache:
            model = get_model(spec)
            if not has_reference_tracks(model):
                ref_cache[spec] = (None, None, {"pearson": float("nan"), "per_track": []})
            else:
                pred, target = reference_predictions(model, "test", max_crops=max_crops)
                profile = model.data_params.get("arch") == "procapnet"
                ref_cache[spec] = (pred, target, reference_scores(pred, target, profile=profile))
        return ref_cache[spec]

    def screen(spec, run):
        key = (spec, str(run))
        if key not in screen_cache:
            model = get_model(spec)
            dataset = screen_task(run, model)
            screen_cache[key] = pearson(predict_screen_effects(model, dataset), dataset.effect)
        return screen_cache[key]

    results = []
    for run_dir in run_dirs:
        chain = lineage_chain(run_dir)
        say(f"evaluating {run_dir}: {len(chain)} models x {len(chain)} tasks")
        size = len(chain)
        matrix = np.full((size, size), np.nan)
        for i, spec in enumerate(chain):
            matrix[i, 0] = reference(spec)[2]["pearson"]
            for j in range(1, size):
                matrix[i, j] = screen(spec, chain[j])
        base_pred, target, _ = reference(chain[0])
        final_pred = reference(chain[-1])[0]
        drift = (retention(base_pred, final_pred, target) if base_pred is not None and final_pred is not None
                 else {})
        configs = [json.loads((Path(r) / "metrics.json").read_text())["config"] for r in chain[1:]]
        strategies = [c["strategy"] for c in configs]
        screens = [f"{Path(c['data']).stem if c.get('data') else 'bundled screen'} (held-out elements)"
                   for c in configs]
        results.append({
            "run": str(run_dir), "chain": chain, "strategies": strategies,
            "tasks": ["reference tracks (test windows)"] + screens,
            "matrix": matrix.tolist(),
            "metrics": continual_metrics(matrix),
            "reference": [{k: v for k, v in reference(spec)[2].items()} for spec in chain],
            "drift": {k: drift[k] for k in ("drift_pearson", "drift_rel_l2", "retention_ratio") if k in drift},
            "new_task_gain": float(np.nanmean([matrix[j, j] - matrix[0, j] for j in range(1, size)])),
            "retention": float(matrix[-1, 0]),
        })
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
                     f"new-task gain {run['new_task_gain']:+.4f}   drift Pearson "
                     f"{run['drift'].get('drift_pearson', float('nan')):.4f}")
        final_ref = run["reference"][-1]
        if "jsd" in final_ref:
            lines.append(f"  profile: JSD base {run['reference'][0]['jsd']:.4f} -> final {final_ref['jsd']:.4f};"
                         f" counts Pearson base {run['reference'][0]['counts_pearson']:.4f}"
                         f" -> final {final_ref['counts_pearson']:.4f}")
        lines.append("")
    return "\n".join(lines).rstrip()


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
