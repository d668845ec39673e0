"""The forgetting report of one update (``genocl update``): its dict, printed table, plot and JSON.

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


def format_epoch_selection(selection: dict) -> str:
    """One line: the validation Pearson per epoch and the epoch the update kept."""
    scores = ", ".join("nan" if v is None else f"{v:.3f}" for v in selection["validation_pearson"])
    kept = ("the parent's weights (no epoch beat them)" if selection["best_epoch"] == 0
            else f"epoch {selection['best_epoch']} of {selection['epochs_run']}")
    return (f"epoch selection: validation effect Pearson ({selection['n_validation']} held-out-block rows), "
            f"parent first: {scores} -> kept {kept}")


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
    """Write JSON with NaN as null; ``sealed`` adds the ``config_sha256`` checked on read
    (:func:`~genocl_plugin.evaluation.lineage.read_run_metrics`)."""
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
