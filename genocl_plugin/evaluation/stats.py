"""Confidence intervals over seeds and the evidence rule behind ``--strategy auto``.

The forgetting benchmark (``benchmarks/forgetting.py``) reports every quantity as a mean over
seeds with a 95% t-interval, and each strategy's difference from fine-tuning as a paired
difference (same seed = same screen split, same training order) with its own interval.
``choose_auto_strategy`` turns that summary into the default strategy per architecture.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from genocl_plugin.config import strategy_flags

AUTO_FILE = Path(__file__).resolve().parents[1] / "bundled" / "auto_strategy.json"
GAIN_TOLERANCE = 0.05  # a strategy is eligible when its gain is within 5% of fine-tuning's


def mean_ci(values, level: float = 0.95) -> dict:
    """Mean with a two-sided Student-t confidence interval (NaN / None values dropped).

    Returns
    -------
    dict
        ``mean``, ``ci_low``, ``ci_high``, ``sd`` and ``n`` (interval NaN for n < 2).
    """
    from scipy.stats import t

    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    n = len(v)
    if n == 0:
        return {"mean": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "sd": float("nan"), "n": 0}
    mean = float(v.mean())
    if n < 2:
        return {"mean": mean, "ci_low": float("nan"), "ci_high": float("nan"), "sd": float("nan"), "n": 1}
    sd = float(v.std(ddof=1))
    half = float(t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "sd": sd, "n": int(n)}


def paired_diff_ci(a: dict, b: dict, level: float = 0.95) -> dict:
    """Mean and interval of ``a[seed] - b[seed]`` over the seeds both have (paired by seed)."""
    seeds = sorted(set(a) & set(b))
    return mean_ci([a[s] - b[s] for s in seeds if a[s] is not None and b[s] is not None], level)


def excludes_zero(ci: dict) -> bool:
    """Whether a finite interval lies entirely on one side of zero."""
    lo, hi = ci.get("ci_low"), ci.get("ci_high")
    return lo is not None and hi is not None and np.isfinite(lo) and np.isfinite(hi) and (lo > 0 or hi < 0)


def choose_auto_strategy(strategies: dict) -> tuple[str, str]:
    """The evidence rule for ``--strategy auto`` on one architecture.

    Among the strategies whose mean in-distribution gain is within 5% of fine-tuning's, take
    the one with the best mean retention; keep it only if its retention advantage over
    fine-tuning (paired by seed) has a 95% interval entirely above zero. Otherwise: fine-tuning.

    When fine-tuning's own gain has an interval that includes zero, there is no measured gain to
    stay within 5% of, and comparing means near zero would let seed noise decide (stated
    2026-12-01, before the study that first applies it). Then every strategy is eligible except
    one whose paired gain difference from fine-tuning lies entirely below zero.

    Ties (stated 2026-12-01, before the study that first applies it): the strategies that also
    beat fine-tuning that way and whose retention differs from the best one's by less than its
    noise (their paired difference's interval includes zero) tie with it. Among them, auto takes
    the one that loses least in its worst assay group (``retention_by_group``: group retention
    minus the parent's): a mean over tracks can hide that an update gave up the tracks it reads
    out, which are the ones a user who runs it cares about. Without per-seed retention or groups
    for every tied strategy, the best mean stands.

    Parameters
    ----------
    strategies
        ``{strategy spec: {"gain_in_distribution": ci, "retention": ci,
        "retention_vs_finetune": paired ci, "retention_by_seed": {seed: value},
        "retention_by_group": {group: {"parent", "retention": ci}}}}`` (``benchmarks/forgetting.py``'s
        summary), with a ``finetune`` entry; the last two are optional.

    Returns
    -------
    tuple
        ``(strategy spec, reason)``.
    """
    if "finetune" not in strategies:
        return "finetune", "fine-tuning was not benchmarked: no evidence for anything else"
    ft_gain = strategies["finetune"]["gain_in_distribution"]["mean"]
    if not np.isfinite(ft_gain):
        return "finetune", "no in-distribution gain measured"
    threshold = ft_gain - GAIN_TOLERANCE * abs(ft_gain)
    ft_ci = strategies["finetune"]["gain_in_distribution"]
    # without an interval (one seed) the 5% rule stands
    learned = _above_zero(ft_ci) or not np.isfinite(ft_ci.get("ci_low") or np.nan)
    others = {k: v for k, v in strategies.items() if k != "finetune" and np.isfinite(v["gain_in_distribution"]["mean"])}
    if learned:
        eligible = {k: v for k, v in others.items() if v["gain_in_distribution"]["mean"] >= threshold}
        gain_clause = "with gain within 5%"
    else:
        eligible = {k: v for k, v in others.items() if not _below_zero(v.get("gain_in_distribution_vs_finetune"))}
        gain_clause = (f"fine-tuning's own in-distribution gain {ft_gain:+.3f} [{ft_ci['ci_low']:+.3f}, "
                       f"{ft_ci['ci_high']:+.3f}] includes zero, so gain only excludes strategies measurably below it")
    if not eligible:
        return "finetune", (f"no strategy keeps in-distribution gain within 5% of fine-tuning's "
                            f"({ft_gain:+.3f}; threshold {threshold:+.3f})" if learned else
                            "every strategy's in-distribution gain is measurably below fine-tuning's")
    best = max(eligible, key=lambda k: eligible[k]["retention"]["mean"])
    diff = eligible[best].get("retention_vs_finetune", {})
    if not _above_zero(diff):
        return "finetune", (f"best eligible strategy {best} retains {diff.get('mean', float('nan')):+.3f} more "
                            f"than fine-tuning but its 95% CI [{diff.get('ci_low', float('nan')):+.3f}, "
                            f"{diff.get('ci_high', float('nan')):+.3f}] does not exclude zero")
    pick, tie = _break_tie(best, eligible)
    d = eligible[pick]["retention_vs_finetune"]
    return pick, (f"{pick}: retention {d['mean']:+.3f} vs fine-tuning, 95% CI "
                  f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] above zero, {gain_clause}{tie}")


def _above_zero(ci: dict | None) -> bool:
    """Whether a finite interval lies entirely above zero."""
    return bool(ci) and excludes_zero(ci) and ci["ci_low"] > 0


def _below_zero(ci: dict | None) -> bool:
    """Whether a finite interval lies entirely below zero."""
    return bool(ci) and excludes_zero(ci) and ci["ci_high"] < 0


def worst_group_loss(entry: dict) -> tuple[str, float] | None:
    """The assay group an update lost most in: ``(group, retention - parent)`` (None without groups)."""
    groups = entry.get("retention_by_group") or {}
    changes = {g: v["retention"]["mean"] - v["parent"] for g, v in groups.items()
               if v.get("parent") is not None and np.isfinite(v["retention"]["mean"])}
    if not changes:
        return None
    group = min(changes, key=changes.get)
    return group, float(changes[group])


def _break_tie(best: str, eligible: dict) -> tuple[str, str]:
    """``choose_auto_strategy``'s tie-break; returns the pick and a clause for the reason."""
    tied = {best: None}
    seeds_best = eligible[best].get("retention_by_seed")
    for k, v in eligible.items():
        if k == best or not seeds_best or not v.get("retention_by_seed"):
            continue
        if not _above_zero(v.get("retention_vs_finetune")):
            continue
        vs_best = paired_diff_ci(v["retention_by_seed"], seeds_best)
        if vs_best["n"] >= 2 and not excludes_zero(vs_best):
            tied[k] = vs_best
    worst = {k: worst_group_loss(eligible[k]) for k in tied}
    if len(tied) == 1 or any(w is None for w in worst.values()):
        return best, ""
    pick = max(tied, key=lambda k: worst[k][1])
    names = " and ".join(tied)
    diffs = ", ".join(f"{k} - {best} {tied[k]['mean']:+.3f} [{tied[k]['ci_low']:+.3f}, {tied[k]['ci_high']:+.3f}]"
                      for k in tied if k != best)
    losses = ", ".join(f"{k} {worst[k][0]} {worst[k][1]:+.3f}" for k in tied)
    return pick, (f"; {names} tie on retention ({diffs}), so auto takes the smallest loss in the worst assay "
                  f"group vs the parent ({losses})")


def load_auto_strategy(path: str | Path = AUTO_FILE) -> dict[str, str]:
    """``{architecture: strategy}`` as last written by the forgetting benchmark (empty if none)."""
    path = Path(path)
    if not path.exists():
        return {}
    return {arch: entry["strategy"] for arch, entry in json.loads(path.read_text()).items()}


def load_auto_params(path: str | Path = AUTO_FILE) -> dict[str, dict]:
    """``{architecture: strategy hyperparameters}`` of auto's picks (e.g. ``{"freeze": "trunk"}``
    for head-only updates), as the study ran them; empty where none were recorded."""
    path = Path(path)
    if not path.exists():
        return {}
    return {arch: dict(entry.get("params") or {}) for arch, entry in json.loads(path.read_text()).items()}


def auto_evidence(arch: str, path: str | Path | None = None) -> dict | None:
    """The forgetting study's numbers behind ``auto`` for one architecture (None if not recorded).

    ``{"reason", "mode", "commit", "n_seeds", "finetune": {...}, "strategies": {label: {"strategy",
    "params", "gain_in_distribution_vs_finetune", "retention_vs_finetune", "drift_vs_finetune"}}}``
    as ``benchmarks/forgetting.py`` writes it to ``auto_strategy.json``.
    """
    path = Path(path or AUTO_FILE)
    if not path.exists():
        return None
    entry = json.loads(path.read_text()).get(arch) or {}
    if not entry.get("evidence"):
        return None
    return {**entry["evidence"], "auto": entry.get("strategy"), "auto_params": entry.get("params") or {},
            "reason": entry.get("reason"), "mode": entry.get("mode"), "commit": entry.get("commit")}


def format_ci(c: dict | None, digits: int = 3) -> str:
    """``mean [low, high]`` of a :func:`mean_ci` dict (``n/a`` without a mean; the mean alone
    without a finite interval)."""
    if not c or c.get("mean") is None or not np.isfinite(c["mean"]):
        return "n/a"
    if not np.isfinite(c.get("ci_low", float("nan"))):
        return f"{c['mean']:+.{digits}f}"
    return f"{c['mean']:+.{digits}f} [{c['ci_low']:+.{digits}f}, {c['ci_high']:+.{digits}f}]"


def format_evidence(evidence: dict, drift_pearson: float | None = None, strategy: str = "finetune") -> list[str]:
    """Lines saying what this update forgot and what the study measured for fine-tuning and the others.

    Parameters
    ----------
    evidence
        :func:`auto_evidence`.
    drift_pearson
        This run's Pearson of updated vs parent predictions on the reference windows.
    strategy
        What this run ran, as ``strategy_flags`` (``finetune``, or auto's pick such as
        ``freeze --freeze trunk``).
    """
    lines = []
    who = "fine-tuning" if strategy == "finetune" else f"--strategy {strategy}"
    if drift_pearson is not None and np.isfinite(drift_pearson):
        lines.append(f"what {who} forgot: its predictions on the reference windows now follow the parent's "
                     f"at r {drift_pearson:.2f} (drift 1 - r = {1 - drift_pearson:.2f}).")
    ft = evidence.get("finetune") or {}
    lines.append(f"what the forgetting study measured ({evidence.get('n_seeds', '?')} seeds, "
                 f"{evidence.get('model', 'the bundled model')}, mean [95% CI]; docs/results.md):")
    if ft:
        parts = [f"{name} {format_ci(ft[key], 2)}" for name, key in (
            ("drift", "drift"), ("retention", "retention"), ("in-distribution gain", "gain_in_distribution"))
            if ft.get(key)]
        lines.append("  --strategy finetune: " + ", ".join(parts))
    lines.append("  the others, paired with fine-tuning (difference from it):")
    for label, item in evidence.get("strategies", {}).items():
        parts = [f"{name} {format_ci(item[key], 2)}" for name, key in (
            ("drift", "drift_vs_finetune"), ("retention", "retention_vs_finetune"),
            ("in-distribution gain", "gain_in_distribution_vs_finetune")) if item.get(key)]
        lines.append(f"  --strategy {strategy_flags(item.get('strategy', label), item.get('params'))}: "
                     + ", ".join(parts))
    if evidence.get("reason"):
        auto = strategy_flags(evidence.get("auto") or "finetune", evidence.get("auto_params"))
        lines.append(f"  --strategy auto runs {auto}: {evidence['reason']}.")
    return lines
