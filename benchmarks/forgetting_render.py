"""Rendering the forgetting study (``benchmarks/forgetting.py``) as markdown: ``docs/results.md``.

Every table and sentence of results.md comes from the saved report and its summary (the main table,
assay groups, scenario (c), the hyperparameter grid, the per-strategy detail, the generated findings
and the recommendation), so the text cannot drift from the numbers. The PNG plots are drawn where
the runs are scored (``forgetting_runs``, ``forgetting_summary.base_report``); this module only links them.
"""

from __future__ import annotations

import numpy as np

from benchmarks.forgetting_settings import CHAIN_SCENARIO, VALIDATION_SEED, param_text
from benchmarks.forgetting_summary import mean_sd


def fmt(values, digits: int = 3) -> str:
    """``mean ± sd`` of a list."""
    m, s = mean_sd(values)
    return "n/a" if not np.isfinite(m) else f"{m:.{digits}f} ± {s:.{digits}f}"


def render_chain(c: dict, seconds: float | None = None) -> list[str]:
    """The scenario (c) section of results.md, from its summary."""
    t = c["tasks"]
    lines = [f"### {CHAIN_SCENARIO}: {c['model']} learns {', then '.join(t[1:])}", "",
             "Tasks: " + "; ".join(f"T{j} = {name}" for j, name in enumerate(t)) + ". Scores: T0 and T1 mean "
             "track Pearson on held-out windows (human test windows; mouse test windows), T2/T3 effect Pearson on "
             "held-out elements. BWT = mean_{j<T}(R[T,j] − R[j,j]); FWT = mean_{j≥1}(R[j−1,j] − R[0,j]) over tasks "
             "the base model can be scored on (it has no mouse tracks); forgetting of task j = "
             "max_{i<T}(R[i,j]) − R[T,j]. Mean [95% CI] over seeds; Δ: paired difference from fine-tuning."
             + (f" Wall time {seconds / 60:.1f} min." if seconds else ""), "",
             *([f"Command: `{c['command']}` (commit `{c.get('commit')}`)"
                + "".join(f"; {', '.join(r['labels'])}"
                          + (f" seeds {', '.join(map(str, r['seeds']))}" if r.get("seeds") else "")
                          + f" run by `{r['command']}` (commit `{r['commit']}`, {r['seconds'] / 60:.1f} min)"
                          for r in c.get("reruns", [])) + ".", ""]
               if c.get("command") else []),
             "| strategy | final T0 (human) | final T1 (mouse) | final T2 | final T3 | BWT | FWT | "
             "Δ BWT vs FT | Δ final T0 vs FT | Δ final T1 vs FT |", "|---|---|---|---|---|---|---|---|---|---|"]
    for label, v in c["strategies"].items():
        lines.append(f"| {label} | {_ci(v['retention'])} | {_ci(v.get('final_T1'))} | {_ci(v.get('final_T2'))} | "
                     f"{_ci(v.get('final_T3'))} | {_ci(v['bwt'])} | {_ci(v['fwt'])} | "
                     f"{_ci(v.get('bwt_vs_finetune'))} | {_ci(v.get('retention_vs_finetune'))} | "
                     f"{_ci(v.get('final_T1_vs_finetune'))} |")
    lines += ["", "Learning and forgetting per task (mean [95% CI]):", "",
              "| strategy | " + " | ".join(f"gain T{j}" for j in range(1, len(t))) + " | "
              + " | ".join(f"forgetting T{j}" for j in range(len(t) - 1)) + " |",
              "|---|" + "---|" * (2 * (len(t) - 1))]
    for label, v in c["strategies"].items():
        lines.append(f"| {label} | " + " | ".join(_ci(v.get(f"gain_T{j}")) for j in range(1, len(t))) + " | "
                     + " | ".join(_ci(v.get(f"forgetting_T{j}")) for j in range(len(t) - 1)) + " |")
    lines += ["", "Mean accuracy matrices (row i: the model after task i; column j: task j):", ""]
    for label, v in c["strategies"].items():
        m = np.asarray(v["matrix_mean"], dtype=float)
        lines += [f"*{label}*" + (f" ({param_text(v['params'])})" if v.get("params") else ""), "",
                  "| | " + " | ".join(f"T{j}" for j in range(len(m))) + " |", "|---|" + "---|" * len(m)]
        for i, row in enumerate(m):
            lines.append(f"| {'base' if i == 0 else f'after T{i}'} | "
                         + " | ".join("—" if not np.isfinite(x) else f"{x:.3f}" for x in row) + " |")
        lines.append("")
    lines += ["![accuracy matrices](results/chain/accuracy_matrix.png)", ""]
    return lines


def _ci(c: dict | None, digits: int = 3) -> str:
    """``mean [low, high]`` of a mean_ci dict."""
    from genocl_plugin.evaluation.stats import format_ci

    return format_ci(c, digits)


def render_groups(strategies: dict) -> list[str]:
    """Retention per assay group: mean [95% CI] over seeds, and the paired difference from fine-tuning."""
    with_groups = {k: v["retention_by_group"] for k, v in strategies.items() if v.get("retention_by_group")}
    if not with_groups:
        return []
    parent = next(iter(with_groups.values()))  # every strategy scores the same parent on the same crops
    groups = list(parent)
    lines = ["Retention per assay group (mean track Pearson of the group on the same test crops; parent in the "
             "heading; below each value its paired difference from fine-tuning):", "",
             "| strategy | " + " | ".join(f"{g} (parent {parent[g]['parent']:.3f})" for g in groups) + " |",
             "|---" * (len(groups) + 1) + "|"]
    for label, g in with_groups.items():
        cells = [_ci(g[k]["retention"]) + (f"<br>Δ {_ci(g[k]['vs_finetune'])}" if g[k].get("vs_finetune") else "")
                 for k in groups]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines + [""]


def render_summary(summary: dict) -> list[str]:
    """The main tables of results.md, from summary.json only."""
    from genocl_plugin.config import strategy_flags

    lines = ["## Base models (held-out test windows)", "",
             "| model | DNase Pearson, 128 bp | CAGE Pearson, 128 bp | counts Pearson |", "|---|---|---|---|"]
    for name, m in summary["base_models"].items():
        tp = m["test_pearson"]
        lines.append(f"| {name} | " + " | ".join(f"{tp[k]:.3f}" if k in tp else "—"
                                                 for k in ("dnase_128bp", "cage_128bp", "counts")) + " |")
    lines += ["", "## Main table: mean [95% CI] over seeds", "",
              f"Seeds: {summary['seeds']}. Gains are effect-Pearson after − before the update; *in distribution*: "
              "held-out 50-bp position blocks of the training elements; *OOD*: held-out elements. Retention: "
              "track Pearson on the test windows (the parent's value is in each heading). Drift: "
              "1 − Pearson of updated vs parent predictions there. Scale drift: ‖log1p(updated) − log1p(parent)‖ / "
              "‖log1p(parent)‖ there, which sees what Pearson cannot — outputs shrinking or growing as a whole "
              "(1.0: as far from the parent as predicting zero). Δ columns: paired difference from fine-tuning "
              "(same seeds). Intervals: Student t over seeds.", ""]
    for key, sc in summary["scenarios"].items():
        if key == CHAIN_SCENARIO:
            lines += render_chain(sc, sc.get("seconds"))
            continue
        strategies = sc["strategies"]
        base_ret = next((v["retention_base"] for v in strategies.values() if v.get("retention_base") is not None),
                        float("nan"))
        lines += [f"### {key}: {sc['model']} on `{sc['screen']}` (parent retention {base_ret:.3f})", "",
                  "| strategy | gain, in distribution | gain, OOD | retention | drift | scale drift | "
                  "Δ gain in distr. vs FT | Δ retention vs FT | Δ drift vs FT |", "|---" * 9 + "|"]
        for label, v in strategies.items():
            lines.append(f"| {label} | {_ci(v['gain_in_distribution'])} | {_ci(v['gain_ood'])} | "
                         f"{_ci(v['retention'])} | {_ci(v['drift'])} | {_ci(v.get('drift_rel_l2'))} | "
                         f"{_ci(v.get('gain_in_distribution_vs_finetune'))} | "
                         f"{_ci(v.get('retention_vs_finetune'))} | {_ci(v.get('drift_vs_finetune'))} |")
        lines.append("")
        lines += render_groups(strategies)
    lines += ["## `--strategy auto` from this summary", "",
              "Rule (`genocl_plugin.evaluation.stats.choose_auto_strategy`): among strategies whose mean "
              "in-distribution gain is within 5% of fine-tuning's, the best mean retention — only if its retention "
              "advantage over fine-tuning has a 95% interval above zero; otherwise fine-tuning. When "
              "fine-tuning's own gain has an interval that includes zero, the gain only rules out strategies "
              "measurably below it (paired interval below zero). Strategies that also beat "
              "fine-tuning so and whose paired retention difference from the best includes zero tie with it; the "
              "tie goes to the smallest loss in the worst assay group vs the parent. The benchmark writes the picks "
              "to `genocl_plugin/bundled/auto_strategy.json`, which `genocl update --strategy auto` reads.", ""]
    for arch, a in summary["auto"].items():
        lines.append(f"- {arch}: **{strategy_flags(a['strategy'], a.get('params'))}** — {a['reason']}")
    lines.append("")
    return lines


def render(report: dict) -> str:
    """docs/results.md from the report (every number comes from the report)."""
    from genocl_plugin.config import strategy_flags

    mode = report["mode"]
    s = report["settings"]
    mpra_note = (f" (MPRA elements centred in {s['mpra_input_length']:,}-bp inputs)"
                 if s.get("mpra_input_length") else "")
    lines = [
        "# Forgetting benchmark results",
        "",
        "The bundled minis (scenarios a-c). The study on real pretrained bases (Puffin, the K562 CTCF BPNet; "
        "scenarios d-g) is [results/real_bases.md](results/real_bases.md) (`python benchmarks/real_bases.py`).",
        "",
        f"**Mode: `{mode}`**" + (" — CI-sized settings, not the full study: small subsamples, "
                                 f"{len(s['seeds'])} seed(s). Treat the numbers as a smoke-level comparison."
                                 if mode == "quick" else ""),
        "",
        *([] if report.get("complete") else ["**Incomplete: the run was still going (or was stopped) when this was "
                                            "written; only the finished stages are shown.**", ""]),
        f"- command: `{report['command']}`",
        f"- commit: `{report['commit']}`",
        *[f"- **note:** {note}" for note in report.get("notes", [])],
        f"- date: {report['date']}; wall time {report['seconds'] / 60:.1f} min; {report['platform']}",
        f"- settings: seeds {s['seeds']}, {s['max_train']} training / {s['max_eval']} held-out-element"
        + (f" / {s['max_eval_id']} held-out-block" if s.get("max_eval_id") else "")
        + f" perturbations per update{mpra_note}, "
        f"{s['epochs']} epochs, lr {s['lr']}, batch {s['batch_size']}, {s['holdout']:.0%} of elements held "
        f"out, {s.get('eval_crops', s['retention_crops'])} reference test-window crops (the same for every model); "
        + ("strategy hyperparameters chosen on a validation split (grid below)." if report.get("grid") else
           "strategy hyperparameters are the defaults of `genocl_plugin.strategies` (no tuning)."),
        *[f"- {base} overrides: " + ", ".join(f"{k} {v}" for k, v in o.items())
          for base, o in s.get("per_base", {}).items()],
        *([f"- re-scored after training (no retraining) by `{report['reevaluation']['command']}` in "
           f"{report['reevaluation']['seconds'] / 60:.1f} min"] if report.get("reevaluation") else []),
        "- skipped strategies (did not resolve in this checkout): "
        + (", ".join(f"{k} ({v})" for k, v in report["skipped"].items()) or "none"),
        "",
        "All numbers are written by `benchmarks/forgetting.py`; none is edited by hand. Raw numbers: "
        f"`docs/results/forgetting_{mode}.json`.",
        "",
        "## Metrics",
        "",
        "- **new task**: Pearson of predicted vs measured variant effects (log2) on held-out elements "
        "(whole elements never seen in training); *gain* = after − base.",
        "- **retention**: mean over tracks of the Pearson between predicted and real tracks on the held-out "
        "reference test windows; *drift r*: Pearson of updated vs base predictions there (log1p).",
        "- **train elements**: effect Pearson on the training elements after the update; the gap to the held-out "
        "number is the out-of-distribution check.",
        "- Accuracy matrix `R[i][j]` = score of the model after task i on task j (task 0 = reference tracks). "
        "BWT = mean_{j<T}(R[T,j] − R[j,j]); FWT = mean_{j≥1}(R[j−1,j] − b_j) with b_j the base model's score; "
        "forgetting_j = max_{l<T} R[l,j] − R[T,j] (Lopez-Paz & Ranzato 2017; Chaudhry et al. 2018, with "
        "Pearson in place of accuracy).",
        "",
    ]
    if report.get("summary"):
        lines += render_summary(report["summary"])
    lines += render_grid(report.get("grid") or {})
    if report.get("summary"):
        lines += ["## Per-strategy detail (mean ± sd over seeds)", ""]
    for base, b in report["bases"].items():
        summary = b["summary"]
        lines += [f"## {b['name']} on `{b['screen']}`", "", f"Seeds: {b.get('seeds_done')}.", "",
                  "| strategy | new task (held-out) | gain | train elements | retention | retention ratio | "
                  "BWT | drift r | s / update |",
                  "|---|---|---|---|---|---|---|---|---|"]
        ft = summary.get("finetune")
        base_line = (f"base model: new task {fmt(ft['new_before'])}, retention {fmt(ft['retention_before'])}"
                     if ft else "")
        for label, v in summary.items():
            lines.append(f"| {label} | {fmt(v['new_after'])} | {fmt(v['gain'])} | {fmt(v['train_after'])} | "
                         f"{fmt(v['retention_after'])} | {fmt(v['retention_ratio'])} | {fmt(v['bwt'])} | "
                         f"{fmt(v['drift_pearson'])} | {fmt(v['seconds'], 0)} |")
        lines += ["", base_line, ""]
        if "jsd_after" in next(iter(summary.values())):
            lines += ["Profile metrics on the reference test windows (JSD: lower is better):", "",
                      "| strategy | JSD before | JSD after | counts Pearson before | counts Pearson after |",
                      "|---|---|---|---|---|"]
            for label, v in summary.items():
                lines.append(f"| {label} | {fmt(v['jsd_before'])} | {fmt(v['jsd_after'])} | "
                             f"{fmt(v['counts_before'])} | {fmt(v['counts_after'])} |")
            lines.append("")
        auto = (report.get("summary") or {}).get("auto", {}).get(base)
        lines += [(f"`--strategy auto` for {b['name']} (evidence rule, see above): "
                   f"**{strategy_flags(auto['strategy'], auto.get('params'))}**."
                   if auto else f"Point-estimate pick for {b['name']}: **{b['recommended']}** ({b['why']})."), "",
                  f"![trade-off]({'results/' + base + '/tradeoff.png'})",
                  f"![per-track retention]({'results/' + base + '/per_track_retention.png'})", ""]
    for base, seq in report["sequential"].items():
        lines += [f"## Sequential: {seq['name']}, {seq['halves'][0]} then {seq['halves'][1]}", "",
                  "Tasks: T0 reference tracks, T1 first half (held-out elements), T2 second half.", "",
                  "| strategy | R[2,0] retention | R[2,1] old screen | R[2,2] new screen | BWT | FWT | "
                  "mean forgetting |", "|---|---|---|---|---|---|---|"]
        for label in dict.fromkeys(seq["labels"]):
            runs = [r for r, lab in zip(seq["runs"], seq["labels"], strict=True) if lab == label]
            mats = [np.asarray(r["matrix"]) for r in runs]
            lines.append(f"| {label} | {fmt([m[2, 0] for m in mats])} | {fmt([m[2, 1] for m in mats])} | "
                         f"{fmt([m[2, 2] for m in mats])} | {fmt([r['metrics']['bwt'] for r in runs])} | "
                         f"{fmt([r['metrics']['fwt'] for r in runs])} | "
                         f"{fmt([r['metrics']['mean_forgetting'] for r in runs])} |")
        lines += ["", f"![accuracy matrices](results/sequential_{base}/accuracy_matrix.png)", ""]
    if report["crispri"] and "skipped" in report["crispri"]:
        lines += ["## CRISPRi smoke check", "", f"Not run: {report['crispri']['skipped']}", ""]
    elif report["crispri"]:
        c = report["crispri"]
        lines += ["## CRISPRi smoke check", "",
                  f"procapnet-mini fine-tuned on the {c['n_train'] + c['n_test']} bundled real CRISPRi pairs "
                  f"({c['n_train']} train, {c['n_test']} held out): training MSE {c['train_mse_before']:.4f} → "
                  f"{c['train_mse_after']:.4f}, retention {c['retention_before']:.4f} → {c['retention_after']:.4f}, "
                  f"{c['seconds']:.0f} s. With one held-out pair no correlation can be computed: this only shows "
                  "the CRISPRi path runs end to end.", ""]
    if report.get("ood_vcf"):
        o = report["ood_vcf"]
        lines += ["## Out of distribution: the Kircher 2019 VCF through `genocl score-vcf`", "",
                  f"{o['n_snvs']} real SNVs ({o['sites_per_element']} random sites per element, all their alleles "
                  "and experiments) of `kircher2019_satmut/DERIVED_satmut_GRCh38.vcf.gz`, scored by the base model and "
                  "the seed-0 runs of fine-tuning and the recommended strategy. Each element sits alone in N context "
                  "at its GRCh38 coordinates (no genomic flank is available offline). Median over elements of the "
                  "per-element Spearman of predicted log2FC (summed CAGE for Enformer, both strands for ProCapNet) "
                  "vs measured effect (INFO COEF); elements are split by their role in the update's screen "
                  f"(time: {report.get('ood_seconds', float('nan')) / 60:.1f} min"
                  + (f"; run separately: `{report['ood_command']}`" if report.get("ood_command") else "") + ").", "",
                  "| model | all elements | train elements | held-out elements | not in the screen |",
                  "|---|---|---|---|---|"]
        for name, m in o["models"].items():
            cells = [f"{m[k]:+.3f} (n={m['n_elements'][k.split('_', 1)[1]]})" if m[k] is not None else "n/a"
                     for k in ("median_train", "median_held-out", "median_unseen")]
            lines.append(f"| {name} | {m['median_all']:+.3f} | " + " | ".join(cells) + " |")
        lines += ["", "With ~15 SNVs per element, |rho| below ~0.5 is within chance for a single element; the medians "
                  "are the summary to read.", ""]
    lines += ["## Caveats", "",
              "- Retention is the mean over tracks of the Pearson between predicted and real coverage over all "
              "crops and bins. Sparse CAGE signal makes it sensitive to a few peaks; the same metric on a handful "
              "of crops can change sign. Compare strategies on the same crops (as here) and read the per-track "
              "plots and, for procapnet-mini, JSD and counts Pearson alongside it.",
              f"- Each update sees {s['max_train']} perturbations for {s['epochs']} epochs; read a difference only "
              "where its 95% interval (main table) excludes zero.",
              *([] if report.get("strategies_seeded") else [
                  "- This study ran before `--seed` reached the strategies' own sampling: replay and distillation "
                  "drew their windows, and EWC its Fisher windows, with seed 0 in every run. Their sd across seeds "
                  "reflects only the screen split and training order, so it is understated."]),
              "", "## What the data shows", "", *_findings(report), "", "## Recommendation", "",
              _recommendation_text(report), ""]
    return "\n".join(lines)


def render_grid(grid: dict) -> list[str]:
    """The hyperparameter grid (validation seeds) and the values the test seeds then used."""
    if not grid:
        return []
    lines = ["## Hyperparameter grid (validation split)", ""]
    for base, g in grid.items():
        seeds = g.get("seeds", [VALIDATION_SEED])
        runs = f"one update per value and seed {seeds[0]}" if len(seeds) == 1 else \
            f"one update per value and validation seed ({', '.join(map(str, seeds))}), means over them ± sd"
        lines += [f"### {base}", "",
                  f"{runs.capitalize()}; each seed has its own element split and none is a test seed. Scored on "
                  "held-out position blocks (*gain ID*), held-out elements (*gain OOD*) and the reference **valid** "
                  "windows (*retention*). Pick: the best valid retention among values whose in-distribution gain is "
                  "within 5% of fine-tuning's (else the best in-distribution gain). The test seeds use the picks.",
                  "", "| strategy | value | gain ID | gain OOD | retention (valid) | picked |",
                  "|---|---|---|---|---|---|"]
        for label, rows in g["results"].items():
            for r in rows:
                value = param_text(r["params"], "=") or "—"
                picked = "yes" if label in g["chosen"] and g["chosen"][label] == r["params"] else ""
                cells = [_grid_cell(r, key, digits) for key, digits in
                         (("gain_id", "+.3f"), ("gain_ood", "+.3f"), ("retention_valid", ".3f"))]
                lines.append(f"| {label} | {value} | {' | '.join(cells)} | {picked} |")
        lines.append("")
    return lines


def _grid_cell(row: dict, key: str, digits: str) -> str:
    """A grid mean, with its sd over validation seeds when there were several."""
    if row.get(key) is None:
        return "n/a"
    values = [r[key] for r in row.get("per_seed", []) if r.get(key) is not None]
    spread = f" ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else ""
    return f"{row[key]:{digits}}{spread}"


def _findings(report: dict) -> list[str]:
    """Plain statements derived from the numbers (generated, so they cannot drift from them)."""
    out = []
    for b in report["bases"].values():
        summary = b["summary"]
        ft = summary.get("finetune")
        if not ft:
            continue
        gain, gain_sd = mean_sd(ft["gain"])
        ret_ft = mean_sd(ft["retention_after"])[0]
        ret_base = mean_sd(ft["retention_before"])[0]
        out.append(f"- {b['name']}: fine-tuning changes held-out effect Pearson by {gain:+.3f} (sd {gain_sd:.3f}) "
                   f"and reference track Pearson from {ret_base:.3f} to {ret_ft:.3f}.")
        if abs(gain) <= gain_sd:
            out.append("  The new-task gain is within one sd of zero across seeds: on held-out elements the update "
                       "does not reliably help.")
        gap = mean_sd(ft["train_after"])[0] - mean_sd(ft["new_after"])[0]
        out.append(f"  Out of distribution: training-element Pearson exceeds held-out-element Pearson by {gap:.3f} "
                   "after fine-tuning.")
        better = [k for k, v in summary.items() if k != "finetune" and mean_sd(v["retention_after"])[0] > ret_ft]
        keeps = [k for k in better if mean_sd(summary[k]["gain"])[0] >= gain - 0.05 * abs(gain)]
        out.append("  Retain more than fine-tuning (point estimates; the intervals below decide): "
                   f"{', '.join(better) or 'none'}; of these, keep >= 95% of its "
                   f"new-task gain: {', '.join(keeps) or 'none'}.")
        worse = [k for k, v in summary.items() if k != "finetune" and mean_sd(v["retention_after"])[0] <= ret_ft]
        if worse:
            out.append(f"  Continual learning does not help retention here for: {', '.join(worse)}.")
    for key, sc in (report.get("summary") or {}).get("scenarios", {}).items():
        if key == CHAIN_SCENARIO:
            found = [f"  {label} vs fine-tuning, {q[:-len('_vs_finetune')]}: {_ci(d)} (paired, 95% interval "
                     "excludes zero)." for label, v in sc["strategies"].items() for q, d in v.items()
                     if q.endswith("_vs_finetune") and d and d.get("ci_low") is not None and np.isfinite(d["ci_low"])
                     and (d["ci_low"] > 0 or d["ci_high"] < 0)]
            n = {v["n_seeds"] for v in sc["strategies"].values()}
            out.append(f"- {key} ({'/'.join(map(str, sorted(n)))} seeds): "
                       + ("paired differences from fine-tuning whose 95% interval excludes zero:" if found else
                          "no paired difference from fine-tuning (BWT, FWT, final score on any task, forgetting, "
                          "retention, drift) has a 95% interval that excludes zero: with these seeds the task "
                          "sequence shows no strategy forgetting less than fine-tuning."))
            out += found
            continue
        ft = sc["strategies"].get("finetune", {})
        gid = ft.get("gain_in_distribution") or {}
        if gid.get("mean") is not None:
            above = gid.get("ci_low") is not None and gid["ci_low"] > 0
            out.append(f"- {key}: fine-tuning's in-distribution gain is {_ci(gid)}; "
                       + ("its 95% interval is above zero." if above else
                          "its 95% interval includes zero, so this study does not show the update learning the "
                          "held-out positions of the screen."))
        for label, v in sc["strategies"].items():
            for q, name in (("gain_in_distribution", "in-distribution gain"), ("gain_ood", "OOD gain"),
                            ("retention", "retention"), ("drift", "drift"), ("drift_rel_l2", "scale drift")):
                d = v.get(f"{q}_vs_finetune") or {}
                if d.get("ci_low") is not None and np.isfinite(d["ci_low"]) and (d["ci_low"] > 0 or d["ci_high"] < 0):
                    out.append(f"  {label} vs fine-tuning, {name}: {_ci(d)} (paired, 95% interval excludes zero).")
    for seq in report["sequential"].values():
        bwt = {lab: mean_sd([r["metrics"]["bwt"] for r, l2 in zip(seq["runs"], seq["labels"], strict=True)
                             if l2 == lab])[0] for lab in dict.fromkeys(seq["labels"])}
        if "finetune" in bwt:
            above = [k for k, v in bwt.items() if k != "finetune" and v > bwt["finetune"]]
            out.append(f"- Sequential {seq['name']}: fine-tuning BWT {bwt['finetune']:+.3f}; higher BWT (less "
                       f"forgetting) with: {', '.join(above) or 'none'}.")
    return out


def _recommendation_text(report: dict) -> str:
    """What ``--strategy auto`` runs, from the summary's evidence rule (never from point estimates)."""
    from genocl_plugin.config import strategy_flags

    summary = report.get("summary") or {}
    lines = ["`genocl update --strategy auto` (the default) runs, per architecture, the pick of the evidence "
             "rule above (`genocl_plugin/bundled/auto_strategy.json`, written by this benchmark):"]
    for arch, a in summary.get("auto", {}).items():
        lines.append(f"- {arch}: `--strategy {strategy_flags(a['strategy'], a.get('params'))}` ({a['reason']})")
    lines.append("\nWhere no strategy's retention advantage has an interval above zero, auto is plain "
                 "fine-tuning: this study does not show that continual learning helps there.")
    return "\n".join(lines)
