"""Aggregating the forgetting study's results (``benchmarks/forgetting.py``): the numbers, not their text.

Means and sds over seeds per strategy and the point-estimate recommendation per base model; the
machine-readable ``summary.json`` (mean and 95% interval over seeds, paired differences from
fine-tuning, per assay group, scenario (c)'s accuracy matrices, BWT, FWT and forgetting) and the
evidence rule's picks that ``--strategy auto`` reads (``auto_strategy.json``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from benchmarks.forgetting_settings import BASES, CHAIN_SCENARIO, ROOT, SCENARIOS


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample sd (NaN-aware; sd 0 for one value)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if not len(v):
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def summarise(rows: list[dict]) -> dict[str, dict]:
    """Per strategy: lists over seeds of every reported quantity."""
    out: dict[str, dict] = {}
    for row in rows:
        s = out.setdefault(row["label"], {k: [] for k in row if k not in ("label", "seed", "run", "spec", "params")})
        for key in s:
            s[key].append(row[key])
    return out


def recommend(summary: dict[str, dict]) -> tuple[str | None, str]:
    """Best retention among strategies whose new-task gain is >= 95% of fine-tuning's.

    When fine-tuning's mean gain is not positive the 95% rule has no meaning; the threshold is
    then fine-tuning's gain minus 5% of its magnitude (as good as fine-tuning, within 5%).
    """
    if "finetune" not in summary:
        return None, "fine-tuning did not run"
    ft_gain = mean_sd(summary["finetune"]["gain"])[0]
    threshold = ft_gain - 0.05 * abs(ft_gain)
    eligible = {k: v for k, v in summary.items() if mean_sd(v["gain"])[0] >= threshold}
    best = max(eligible, key=lambda k: mean_sd(eligible[k]["retention_after"])[0])
    return best, (f"fine-tuning gain {ft_gain:+.3f}; threshold {threshold:+.3f}; eligible: "
                  + ", ".join(sorted(eligible)))


def base_report(base: str, rows: list[dict], evaluated: list[dict], labels: list[str], plots: Path) -> dict:
    """Summary, recommendation, per-track changes and plots of one base model's runs."""
    from genocl_plugin.evaluation import evaluate as ev

    name, screen_file = BASES[base]
    ev.plot_evaluation({"runs": evaluated}, plots / base, labels=labels)
    summary = summarise(rows)
    best, why = recommend(summary)
    changes = [np.asarray(r["reference"][-1]["per_track"]) - np.asarray(r["reference"][0]["per_track"])
               for r in evaluated]
    per_track = {lab: np.mean([c for c, lab2 in zip(changes, labels, strict=True) if lab2 == lab], axis=0)
                 for lab in dict.fromkeys(labels)}
    return {"name": name, "screen": screen_file, "rows": rows, "summary": summary, "recommended": best,
            "why": why, "seeds_done": sorted({r["seed"] for r in rows}),
            "per_track_change": {k: v.tolist() for k, v in per_track.items()}}


def chain_summary(chain: dict) -> dict:
    """Per strategy: mean accuracy matrix and, as mean [95% CI] over seeds, BWT, FWT, forgetting
    and final score per task, retention and drift, with paired differences from fine-tuning."""
    from genocl_plugin.evaluation.stats import mean_ci, paired_diff_ci

    per: dict[str, dict] = {}
    for label, seed, run in zip(chain["labels"], chain["seeds"], chain["runs"], strict=True):
        m = np.asarray(run["matrix"], dtype=float)
        metrics = run["metrics"]
        per.setdefault(label, {})[seed] = {
            "matrix": m, "bwt": metrics["bwt"], "fwt": metrics["fwt"],
            "retention": m[-1, 0], "drift": None if run["drift"].get("drift_pearson") is None
            else 1.0 - run["drift"]["drift_pearson"],
            **{f"final_T{j}": m[-1, j] for j in range(1, len(m))},
            **{f"forgetting_T{j}": metrics["forgetting"][j] for j in range(len(metrics["forgetting"]))},
            **{f"gain_T{j}": m[j, j] - m[j - 1, j] for j in range(1, len(m))}}
    ft = per.get("finetune", {})
    out = {"model": "enformer-mini", "tasks": chain["tasks"], "strategies": {}, "seconds": chain.get("seconds"),
           "command": chain.get("command"), "commit": chain.get("commit"), "reruns": chain.get("reruns", [])}
    for label, by_seed in per.items():
        keys = [k for k in next(iter(by_seed.values())) if k != "matrix"]
        stacked = np.array([v["matrix"] for v in by_seed.values()])
        mean = np.full(stacked.shape[1:], np.nan)
        seen = np.isfinite(stacked).any(0)  # the base row has no score on new tracks
        mean[seen] = np.nanmean(stacked[:, seen], axis=0)
        item = {"n_seeds": len(by_seed), "params": chain.get("params", {}).get(label, {}), "matrix_mean": mean.tolist()}
        for key in keys:
            item[key] = mean_ci([v[key] for v in by_seed.values()])
            if label != "finetune" and ft:
                item[f"{key}_vs_finetune"] = paired_diff_ci({sd: v[key] for sd, v in by_seed.items()},
                                                            {sd: v[key] for sd, v in ft.items()})
        item["retention_base"] = float(np.nanmean([v["matrix"][0, 0] for v in by_seed.values()]))
        out["strategies"][label] = item
    return out


def build_summary(report: dict, model_spec: dict | None = None) -> dict:
    """The machine-readable summary (``docs/results/summary.json``) of a (possibly partial) study.

    Per scenario and strategy: mean and 95% t-interval over seeds of the in-distribution gain
    (held-out position blocks of training elements), the OOD gain (held-out elements), retention
    (track Pearson on the test windows) and drift (1 - Pearson of updated vs parent predictions),
    the parent's retention, and each quantity's paired difference from fine-tuning. Per base
    model: its held-out test-window Pearson. ``auto``: the evidence rule's pick per architecture.
    """
    from genocl_plugin.evaluation.stats import choose_auto_strategy, mean_ci, paired_diff_ci
    from genocl_plugin.models import BUNDLED_MODELS, read_config, resolve_model_dir

    out = {"mode": report["mode"], "command": report.get("command"), "commit": report.get("commit"),
           "date": report.get("date"), "seeds": report["settings"]["seeds"], "base_models": {}, "scenarios": {},
           "auto": {}}
    for base, b in report["bases"].items():
        spec = (model_spec or {}).get(base, base)
        model_dir = BUNDLED_MODELS.get(spec) or resolve_model_dir(spec)
        tm = read_config(model_dir).get("test_metrics", {}) if model_dir else {}
        keys = {"dnase_128bp": "test_pearson_dnase_128bp", "cage_128bp": "test_pearson_cage_128bp",
                "counts": "test_counts_pearson"}
        out["base_models"][b["name"]] = {"test_pearson": {k: tm[v] for k, v in keys.items() if v in tm}}
        per = {}
        for row in b["rows"]:
            entry = per.setdefault(row["label"], {"spec": row.get("spec", row["label"]), "by_seed": {}})
            entry["by_seed"][row["seed"]] = {
                "gain_in_distribution": row.get("gain_id"), "gain_ood": row.get("gain"),
                "retention": row.get("retention_after"), "retention_base": row.get("retention_before"),
                "drift": None if row.get("drift_pearson") is None else 1.0 - row["drift_pearson"],
                "drift_rel_l2": row.get("drift_rel_l2")}
        ft = per.get("finetune", {}).get("by_seed", {})
        strategies = {}
        for label, entry in per.items():
            seeds = entry["by_seed"]
            item = {"strategy": entry["spec"], "n_seeds": len(seeds)}
            for key in ("gain_in_distribution", "gain_ood", "retention", "drift", "drift_rel_l2"):
                if key == "drift_rel_l2" and any(v[key] is None for v in seeds.values()):
                    continue  # studies scored before 2026-12-01 did not keep it
                item[key] = mean_ci([v[key] for v in seeds.values()])
                if label != "finetune" and ft:
                    item[f"{key}_vs_finetune"] = paired_diff_ci(
                        {sd: v[key] for sd, v in seeds.items()}, {sd: v[key] for sd, v in ft.items()})
            # per seed, for auto's tie-break (a paired comparison between two strategies)
            item["retention_by_seed"] = {sd: v["retention"] for sd, v in seeds.items() if v["retention"] is not None}
            base_ret = [v["retention_base"] for v in seeds.values() if v["retention_base"] is not None]
            item["retention_base"] = float(np.mean(base_ret)) if base_ret else None
            groups = group_retention(b["rows"], label)
            if groups:
                item["retention_by_group"] = groups
            strategies[label] = item
        out["scenarios"][SCENARIOS.get(base, base)] = {"model": b["name"], "screen": b["screen"],
                                                       "strategies": strategies}
        # Picked by label: one --strategy value can run with different parameters (freeze --freeze trunk).
        pick, why = choose_auto_strategy(strategies)
        evidence = auto_evidence(b, strategies)
        out["auto"][base] = {"strategy": strategies.get(pick, {}).get("strategy", pick),
                             "params": (evidence["strategies"].get(pick) or {}).get("params", {}), "label": pick,
                             "reason": why, "mode": report["mode"], "commit": report.get("commit"),
                             "evidence": evidence}
    if (report.get("chain") or {}).get("runs"):
        out["scenarios"][CHAIN_SCENARIO] = chain_summary(report["chain"])
    return out


def group_retention(rows: list[dict], label: str) -> dict | None:
    """Per assay group: the parent's mean retention, the strategy's mean [95% CI] over seeds and its
    paired difference from fine-tuning (None for studies scored before groups were kept)."""
    from genocl_plugin.evaluation.stats import mean_ci, paired_diff_ci

    mine = {r["seed"]: r for r in rows if r["label"] == label and r.get("retention_groups")}
    if not mine:
        return None
    ft = {r["seed"]: r["retention_groups"] for r in rows if r["label"] == "finetune" and r.get("retention_groups")}
    out = {}
    for group in next(iter(mine.values()))["retention_groups"]:
        item = {"parent": float(np.mean([r["retention_groups_before"][group] for r in mine.values()])),
                "retention": mean_ci([r["retention_groups"][group] for r in mine.values()])}
        if label != "finetune" and ft:
            item["vs_finetune"] = paired_diff_ci({sd: r["retention_groups"][group] for sd, r in mine.items()},
                                                 {sd: v[group] for sd, v in ft.items()})
        out[group] = item
    return out


def auto_evidence(base_report: dict, strategies: dict) -> dict:
    """What ``genocl update`` prints after fine-tuning: each strategy's paired differences from it."""
    params = {}
    for row in base_report["rows"]:
        params.setdefault(row["label"], row.get("params") or {})
    keys = ("gain_in_distribution_vs_finetune", "retention_vs_finetune", "drift_vs_finetune")
    ft = strategies.get("finetune", {})
    return {"model": base_report["name"], "n_seeds": ft.get("n_seeds"),
            "finetune": {k: ft.get(k) for k in ("gain_in_distribution", "retention", "drift")},
            "strategies": {label: {"strategy": item["strategy"], "params": params.get(label, {}),
                                   **{k: item[k] for k in keys if k in item}}
                           for label, item in strategies.items() if label != "finetune"}}


def write_summary(report: dict, model_spec: dict, plots: Path, results_dir: Path) -> None:
    """Rebuild summary.json (and auto's evidence, for a finished study in docs/) from the report alone."""
    from genocl_plugin.evaluation import evaluate as ev

    report["summary"] = build_summary(report, model_spec)
    ev.write_json(report, plots / f"forgetting_{report['mode']}.json")
    ev.write_json(report["summary"], plots / "summary.json")
    if report.get("complete") and results_dir.resolve() == (ROOT / "docs").resolve():
        write_auto_strategy(report["summary"])


def write_auto_strategy(summary: dict, path: Path | None = None) -> Path:
    """Write the evidence rule's picks to ``genocl_plugin/bundled/auto_strategy.json`` (what auto runs)."""
    from genocl_plugin.evaluation.stats import AUTO_FILE

    path = Path(path or AUTO_FILE)
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update(summary["auto"])
    path.write_text(json.dumps(current, indent=1) + "\n")
    return path
