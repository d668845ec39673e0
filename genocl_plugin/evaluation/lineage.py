"""Evaluation of run lineages (``genocl evaluate``): each run directory's chain of parents back to
the base model, every model of the chain scored on every task (the accuracy matrix), and the
printed table and plots of the result.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from genocl_plugin.data import reference
from genocl_plugin.evaluation.continual import continual_metrics
from genocl_plugin.evaluation.metrics import (
    CROSS_INDIVIDUAL_SUMMARY,
    cross_individual_metrics,
    pearson,
    tracks_metrics,
)
from genocl_plugin.evaluation.predict import reference_predictions
from genocl_plugin.evaluation.retention import reference_scores, retention
from genocl_plugin.progress import StageLog


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
        (Pearson: tracks for task 0, effects for screens), ``metrics``
        (:func:`~genocl_plugin.evaluation.continual.continual_metrics`),
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
