"""Forgetting benchmark: every continual-learning strategy on the bundled real screens.

For each bundled base model (enformer-mini with the Kircher 2019 enhancer MPRA screen,
procapnet-mini with the Kircher 2019 promoter screen) and each seed, ``genocl update`` runs
with every strategy that resolves in this checkout (fine-tuning, replay, distillation, EWC,
SI, L2-SP, new head, LoRA and combinations), holding out whole elements. Then:

- ``genocl_plugin.evaluation.evaluate.evaluate_runs`` re-scores base and updated models on the reference
  test windows (retention) and on the held-out elements (new task);
- scenario (c), one enformer-mini learning three real tasks in turn: the mm10 tracks of the
  baskerville mouse windows as a new head on the human-trained trunk (as Enformer's mouse head),
  then the enhancer MPRA, then the promoter MPRA: 4x4 accuracy matrices, BWT, FWT and
  forgetting per task with intervals over seeds (``--chain-only`` adds it to a finished study);
- a two-screen sequential scenario (the screen's elements split in two halves, one update per
  half) gives 3x3 accuracy matrices, backward transfer and forgetting;
- a CRISPRi smoke check (the 3 bundled real pairs) checks that the CRISPRi path runs;
- out of distribution: held-out elements vs training elements (the generalisation gap), and
  the real Kircher 2019 VCF scored with ``genocl score-vcf`` by the base, fine-tuned and
  recommended models (Spearman of predicted vs measured effect per element; needs
  ``../shared/data``, skipped without it).

Writes ``docs/results.md`` (tables as mean ± sd over seeds, the plots, the exact command, the
commit), ``docs/results/*.png`` and ``docs/results/forgetting.json`` (every number).

This file is the entry point (the options and ``main``); the study lives in ``forgetting_settings``
(scenarios, constants, grids), ``forgetting_runs`` (updates, scoring, scenarios),
``forgetting_summary`` (means, intervals, summary.json) and ``forgetting_render`` (results.md). Their
names are importable from here as well.

Usage::

    python benchmarks/forgetting.py            # full study (grid, (a), (c)): 53 min on 2 cores
    python benchmarks/forgetting.py --quick    # CI-sized run
    python benchmarks/forgetting.py --ood-only # redo only the VCF check on a finished study
    python benchmarks/forgetting.py --reevaluate  # re-score a finished study's runs (eval_crops), then the VCF check
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: benchmarks.*

from benchmarks.forgetting_render import (  # noqa: E402
    fmt,
    render,
    render_chain,
    render_grid,
    render_groups,
    render_summary,
)
from benchmarks.forgetting_runs import (  # noqa: E402
    PARENT_PREDICTIONS,
    _wait_for,
    add_ood,
    available_strategies,
    choose_from_grid,
    grid_row,
    grid_score,
    group_means,
    merge_chains,
    mouse_tracks_screen,
    ood_vcf_check,
    run_chain,
    run_grid,
    run_track_names,
    score_seed,
    score_sequential,
    split_screen,
    update,
)
from benchmarks.forgetting_settings import (  # noqa: E402
    BASES,
    CHAIN,
    CHAIN_SCENARIO,
    COMBOS,
    FIXED_PARAMS,
    GRID,
    MOUSE,
    RESCORE_KEYS,
    ROOT,
    SCENARIOS,
    SEQUENTIAL,
    SETTINGS,
    SHARED,
    SINGLE,
    VALIDATION_SEED,
    base_settings,
    param_text,
    params_for,
)
from benchmarks.forgetting_summary import (  # noqa: E402
    auto_evidence,
    base_report,
    build_summary,
    chain_summary,
    group_retention,
    mean_sd,
    recommend,
    summarise,
    write_auto_strategy,
    write_summary,
)
from benchmarks.provenance import git_commit  # noqa: E402

# The study's names, importable from here as before the split (benchmarks/real_bases.py and the tests do).
__all__ = [
    "ROOT", "SHARED", "SINGLE", "FIXED_PARAMS", "COMBOS", "SEQUENTIAL", "CHAIN", "SETTINGS", "BASES", "base_settings",
    "GRID", "VALIDATION_SEED", "RESCORE_KEYS", "param_text", "params_for", "SCENARIOS", "CHAIN_SCENARIO", "MOUSE",
    "available_strategies", "split_screen", "PARENT_PREDICTIONS", "update", "group_means", "run_track_names",
    "score_seed", "grid_score", "choose_from_grid", "grid_row", "run_grid", "mouse_tracks_screen", "run_chain",
    "merge_chains", "score_sequential", "add_ood", "ood_vcf_check", "mean_sd", "summarise", "recommend",
    "base_report", "chain_summary", "build_summary", "group_retention", "auto_evidence", "write_summary",
    "write_auto_strategy", "fmt", "render_chain", "render_groups", "render_summary", "render", "render_grid", "main",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized settings (2 seeds, small subsamples).")
    parser.add_argument("--workdir", default="/tmp/genocl_forgetting", help="Where the runs are written.")
    parser.add_argument("--results", default=str(ROOT / "docs"), help="Where results.md and results/ go.")
    parser.add_argument("--enformer", default="enformer", help="Base model for the enhancer screen.")
    parser.add_argument("--procapnet", default="procapnet", help="Base model for the promoter screen.")
    parser.add_argument("--bases", default=None, help="Which bases to run (default: the mode's).")
    parser.add_argument("--seeds", type=int, default=None, help="Override the number of seeds.")
    parser.add_argument("--only", default=None, help="Comma-separated strategy labels to run (default: all).")
    parser.add_argument("--shared", default=str(SHARED), help="The shared real-data folder (for the VCF check).")
    parser.add_argument("--ood-only", action="store_true",
                        help="Only (re)run the Kircher VCF check on the runs of a finished study in --workdir.")
    parser.add_argument("--render-only", action="store_true",
                        help="Only rewrite docs/results.md, summary.json and auto's evidence from the saved JSON "
                             "(no computation).")
    parser.add_argument("--note", action="append", default=[],
                        help="With --render-only: add this note (e.g. a later fix the runs predate) to the saved "
                             "JSON's notes, shown under the commit in results.md.")
    parser.add_argument("--reevaluate", action="store_true",
                        help="Re-score the runs of a finished study in --workdir with the current settings' "
                             "eval_crops (no training), then run the VCF check.")
    parser.add_argument("--chain-only", action="store_true",
                        help="Only (re)run scenario (c) (mouse tracks -> enhancers -> promoters) and add it to the "
                             "finished study's JSON, summary.json and results.md.")
    parser.add_argument("--chain-labels", default=None,
                        help="With --chain-only: rerun only these strategy labels (comma-separated) and keep the "
                             "other strategies' chains of the saved study.")
    parser.add_argument("--chain-seeds", default=None,
                        help="With --chain-only: run only these seeds (comma-separated), added to (or replacing) "
                             "the saved study's chains of those seeds.")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 on a shared machine).")
    parser.add_argument("--lr", type=float, default=None, help="Override the update learning rate.")
    parser.add_argument("--epochs", type=int, default=None, help="Override the update epochs.")
    parser.add_argument("--wait", type=float, default=0,
                        help="Minutes to wait for a bundled base model that is still being trained.")
    args = parser.parse_args()

    import torch

    from genocl_plugin.data import reference
    from genocl_plugin.evaluation import evaluate as ev

    torch.set_num_threads(args.threads)
    mode = "quick" if args.quick else "full"
    settings = dict(SETTINGS[mode])
    if args.seeds:
        settings["seeds"] = list(range(args.seeds))
    for key in ("lr", "epochs"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    work = Path(args.workdir)
    results_dir = Path(args.results)
    plots = results_dir / "results"
    plots.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    log = lambda msg: print(f"[{time.perf_counter() - started:7.1f}s] {msg}", flush=True)  # noqa: E731
    if args.note and not args.render_only:
        parser.error("--note goes with --render-only (a study's own notes are written after it has run)")
    if args.render_only:
        report = json.loads((plots / f"forgetting_{mode}.json").read_text())
        if args.note:
            report["notes"] = [*report.get("notes", []), *args.note]
        write_summary(report, {"enformer": args.enformer, "procapnet": args.procapnet}, plots, results_dir)
        (results_dir / "results.md").write_text(render(report))
        log(f"wrote {results_dir / 'results.md'}")
        return
    if args.chain_only:
        report = json.loads((plots / f"forgetting_{mode}.json").read_text())
        work.mkdir(parents=True, exist_ok=True)
        singles, _ = available_strategies(SINGLE)
        chosen_e = (report.get("grid") or {}).get("enformer", {}).get("chosen", {})
        cs = dict(settings.get("chain", CHAIN))
        if args.chain_labels:
            cs["labels"] = args.chain_labels.split(",")
        if args.chain_seeds:
            cs["seeds"] = [int(x) for x in args.chain_seeds.split(",")]
        old = report.get("chain") or {}
        new = run_chain(args.enformer, singles, chosen_e, {**settings, "chain": cs}, work, Path(args.shared),
                        plots, log)
        new.update(command=" ".join(["python", "benchmarks/forgetting.py", *sys.argv[1:]]), commit=git_commit())
        if (args.chain_labels or args.chain_seeds) and old.get("runs"):
            new = merge_chains(old, new, cs)
            names = [f"{lab} (seed {sd})" for lab, sd in zip(new["labels"], new["seeds"], strict=True)]
            ev.plot_evaluation({"runs": new["runs"]}, plots / "chain", labels=names)
        report["chain"] = new
        report["summary"] = build_summary(report, {"enformer": args.enformer, "procapnet": args.procapnet})
        ev.write_json(report, plots / f"forgetting_{mode}.json")
        ev.write_json(report["summary"], plots / "summary.json")
        (results_dir / "results.md").write_text(render(report))
        log(f"wrote {results_dir / 'results.md'}")
        return
    if args.ood_only or args.reevaluate:
        report = json.loads((plots / f"forgetting_{mode}.json").read_text())
        command = " ".join(["python", "benchmarks/forgetting.py", *sys.argv[1:]])
        if args.reevaluate:
            for base, b in report["bases"].items():
                rows, evaluated, labels = [], [], []
                for seed in b["seeds_done"]:
                    seed_rows = [{k: r[k] for k in RESCORE_KEYS if k in r} for r in b["rows"] if r["seed"] == seed]
                    log(f"{b['name']}: re-scoring the {len(seed_rows)} runs of seed {seed} on "
                        f"{settings['eval_crops']} crops")
                    evaluated += score_seed(seed_rows, settings["eval_crops"])
                    rows += seed_rows
                    labels += [r["label"] for r in seed_rows]
                report["bases"][base] = base_report(base, rows, evaluated, labels, plots)
            for base, seq in report["sequential"].items():
                log(f"sequential {seq['name']}: re-scoring {len(seq['runs'])} runs")
                seq["runs"] = score_sequential([r["run"] for r in seq["runs"]], seq["labels"], settings["eval_crops"],
                                               plots / f"sequential_{base}")
            report["settings"]["eval_crops"] = settings["eval_crops"]
            report["reevaluation"] = {"command": f"{command} (commit {git_commit()})",
                                      "seconds": time.perf_counter() - started}
            write_summary(report, {"enformer": args.enformer, "procapnet": args.procapnet}, plots, results_dir)
        add_ood(report, work, Path(args.shared), settings, log)
        report["ood_command"] = f"{command} (commit {git_commit()})"
        ev.write_json(report, plots / f"forgetting_{mode}.json")
        (results_dir / "results.md").write_text(render(report))
        log(f"wrote {results_dir / 'results.md'}")
        return
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)

    singles, skipped = available_strategies(SINGLE)
    combos, skipped_combos = available_strategies({k: COMBOS[k] for k in settings["combos"]})
    skipped.update(skipped_combos)
    strategies = {**singles, **combos}
    only = args.only.split(",") if args.only else settings.get("only")
    if only:
        strategies = {k: v for k, v in strategies.items() if k in only}
    log(f"strategies: {', '.join(strategies)}; skipped: {', '.join(skipped) or 'none'}")
    bases = [b for b in (args.bases or settings.get("bases", "enformer,procapnet")).split(",") if b]
    model_spec = {"enformer": args.enformer, "procapnet": args.procapnet}

    # strategies_seeded: the run seed reaches replay / distillation draws and EWC / MAS windows
    # (before that fix every run drew them with seed 0).
    # The commit of the code that runs, read once: a commit made while the study runs is not it.
    commit = git_commit()
    report: dict = {"mode": mode, "settings": settings, "skipped": skipped, "bases": {}, "sequential": {},
                    "crispri": None, "strategies_seeded": True}

    def flush(final: bool = False) -> None:
        # Written after every stage, so an interrupted study still leaves its finished parts.
        report["seconds"] = time.perf_counter() - started
        report["complete"] = final
        report["command"] = " ".join(["python", "benchmarks/forgetting.py", *sys.argv[1:]])
        report["commit"] = commit
        report["platform"] = f"{platform.platform()}, torch {torch.__version__}, {torch.get_num_threads()} threads"
        report["date"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        report["summary"] = build_summary(report, model_spec)
        ev.write_json(report, plots / f"forgetting_{mode}.json")
        ev.write_json(report["summary"], plots / "summary.json")
        if final and results_dir.resolve() == (ROOT / "docs").resolve():
            write_auto_strategy(report["summary"])  # only a study written to docs/ sets the defaults
        (results_dir / "results.md").write_text(render(report))

    def extras() -> None:
        """The sequential scenario and the CRISPRi smoke check (run once, after the first seed)."""
        # Two-screen sequential scenario: half of the elements, then the other half.
        for base in [b for b in settings["sequential_bases"] if b in bases]:
            name, screen_file = BASES[base]
            halves = split_screen(reference.BUNDLED / screen_file, work)
            finals, labels = [], []
            for seed in settings["sequential_seeds"]:
                for label in [s for s in SEQUENTIAL if s in strategies]:
                    spec = strategies[label]
                    tag = label.replace(" ", "_").replace("+", "_")
                    first, second = (work / f"seq_{base}" / tag / f"seed{seed}_{k}" for k in (1, 2))
                    log(f"sequential {name}: {label} seed {seed}")
                    update(model_spec[base], halves[0], spec, seed, first, settings)
                    update(str(first), halves[1], spec, seed, second, settings)
                    finals.append(second)
                    labels.append(label)
            report["sequential"][base] = {"name": name, "halves": [p.name for p in halves], "labels": labels,
                                          "runs": score_sequential(finals, labels, settings["eval_crops"],
                                                                   plots / f"sequential_{base}")}
            flush()

        # CRISPRi smoke check: only 3 real pairs fit the bundled windows.
        if "procapnet" in bases:
            from genocl_plugin.errors import GenoclInputError

            log("CRISPRi smoke check")
            settings_c = {**settings, "holdout": 0.34}
            try:
                res = update(model_spec["procapnet"], reference.BUNDLED / "crispri_example.h5ad", "finetune", 0,
                             work / "crispri", settings_c)
            except GenoclInputError as err:
                # Each pair is read at the model's own input length; procapnet-mini's 2,176 bp
                # cannot hold the bundled pairs' 21-54 kb element-TSS spans.
                res = None
                report["crispri"] = {"skipped": str(err)}
        if "procapnet" in bases and res is not None:
            m = res["metrics"]
            report["crispri"] = {"n_train": m["split"]["n_train"], "n_test": m["split"]["n_test"],
                                 "train_mse_before": m["new_task"]["train_before"]["mse"],
                                 "train_mse_after": m["new_task"]["train_after"]["mse"],
                                 "retention_before": m["retention"]["pearson_before"],
                                 "retention_after": m["retention"]["pearson_after"], "seconds": res["seconds"]}


    state = {base: ([], [], []) for base in bases}
    report["grid"] = {}
    chosen: dict[str, dict] = {base: {} for base in bases}
    if settings.get("grid"):
        for base in bases:
            _wait_for(model_spec[base], args.wait, log)
            report["grid"][base] = run_grid(base, model_spec[base], reference.BUNDLED / BASES[base][1], strategies,
                                            base_settings(settings, base), work, log)
            chosen[base] = report["grid"][base]["chosen"]
            flush()
    # Seeds outermost: a study stopped early still has every base at the finished seeds.
    for seed in settings["seeds"]:
        for base in bases:
            name, screen_file = BASES[base]
            screen = reference.BUNDLED / screen_file
            _wait_for(model_spec[base], args.wait, log)
            rows, evaluated, labels = state[base]
            seed_rows, seed_dirs = [], []
            for label, spec in strategies.items():
                out = work / base / label.replace(" ", "_").replace("+", "_") / f"seed{seed}"
                log(f"{name}: {label} seed {seed}")
                params = params_for(spec, chosen[base])
                res = update(model_spec[base], screen, spec, seed, out, base_settings(settings, base), params)
                m = res["metrics"]
                seed_rows.append({"label": label, "spec": spec, "seed": seed, "run": str(out), "params": params,
                                  "seconds": res["seconds"], "train_after": m["new_task"]["train_after"]["pearson"],
                                  "gain_id": m["new_task"].get("in_distribution", {}).get("pearson_gain")})
                seed_dirs.append(out)
            # Evaluated (and written) seed by seed, so a stopped study keeps its finished seeds.
            log(f"{name}: evaluating the {len(seed_dirs)} runs of seed {seed}")
            evaluated += score_seed(seed_rows, settings["eval_crops"])
            rows += seed_rows
            labels += [r["label"] for r in seed_rows]
            report["bases"][base] = base_report(base, rows, evaluated, labels, plots)
            flush()
        if seed == settings["seeds"][0]:
            extras()

    if settings.get("chain") and "enformer" in bases:
        report["chain"] = run_chain(model_spec["enformer"], strategies, chosen.get("enformer", {}), settings, work,
                                    Path(args.shared), plots, log)
        report["chain"].update(command=report.get("command"), commit=commit)
        flush()
    add_ood(report, work, Path(args.shared), settings, log)
    flush(final=True)
    log(f"wrote {results_dir / 'results.md'}")


if __name__ == "__main__":
    main()
