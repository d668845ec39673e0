"""Running the forgetting study (``benchmarks/forgetting.py``): updates, their scoring and the scenarios.

One ``genocl update`` run (``update``), the re-scoring of a seed's runs with ``genocl evaluate``,
the hyperparameter grid on the validation seeds, scenario (c)'s task chain (and merging a rerun of
some chains into a finished study), the two-screen sequential scenario's scoring, the Kircher VCF
check, and waiting for a bundled base model that is still being trained. What they measure comes back
as plain dicts, which ``forgetting_summary`` aggregates.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.forgetting_settings import GRID, MOUSE, VALIDATION_SEED, param_text, params_for


def available_strategies(labels: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Split strategies into those that resolve in this checkout and those that do not (with why)."""
    from genocl_plugin.strategies import resolve_strategies

    ok, skipped = {}, {}
    for label, spec in labels.items():
        try:
            resolve_strategies(spec)
            ok[label] = spec
        except Exception as err:  # a strategy still being written must not stop the study
            skipped[label] = f"{type(err).__name__}: {err}"
    return ok, skipped


def split_screen(path: Path, out_dir: Path) -> list[Path]:
    """Write the two halves (by sorted element name) of an MPRA screen."""
    import anndata

    from genocl_plugin.data import screens

    screen = anndata.read_h5ad(path)
    elements = sorted(screen.obs["element"].astype(str).unique())
    halves = [elements[: len(elements) // 2], elements[len(elements) // 2:]]
    paths = []
    for k, half in enumerate(halves, 1):
        part = screen[screen.obs["element"].astype(str).isin(half).to_numpy()].copy()
        for key in ("element_sequences", "element_coordinates"):
            part.uns[key] = {e: part.uns[key][e] for e in half}
        paths.append(screens.write_screen(part, out_dir / f"{path.stem}_half{k}.h5ad", force=True))
    return paths


# The parents' predictions on each held-out split, shared by the strategies updating one parent on
# one split (keyed by weights digest and dataset content, so nothing else can hit).
PARENT_PREDICTIONS: dict = {}


def update(model: str, data: Path, strategy: str, seed: int, out: Path, settings: dict,
           params: dict | None = None) -> dict:
    """One ``genocl update`` run; returns its wall time and metrics.json.

    ``params``: strategy hyperparameters (``UpdateConfig.strategy_params``), from the grid.
    """
    from genocl_plugin.training.update import UpdateConfig, run_update

    config = UpdateConfig(model=model, data=str(data), strategy=strategy, seed=seed, epochs=settings["epochs"],
                          lr=settings["lr"], batch_size=settings["batch_size"], max_train=settings["max_train"],
                          max_eval=settings["max_eval"], max_eval_id=settings.get("max_eval_id"),
                          holdout=settings["holdout"],
                          retention_crops=settings["retention_crops"], strategy_params=dict(params or {}),
                          head_lr=settings.get("head_lr"), mpra_input_length=settings.get("mpra_input_length"))
    start = time.perf_counter()
    run_update(config, out, force=True, parent_predictions=PARENT_PREDICTIONS)
    return {"seconds": time.perf_counter() - start, "metrics": json.loads((out / "metrics.json").read_text())}


def group_means(per_track, names: list[str] | None) -> dict[str, float] | None:
    """Mean track Pearson per assay group (``reference.assay_group``: CAGE, DNASE, RNA, ...)."""
    from genocl_plugin.data.reference import assay_group

    if not names or per_track is None or len(per_track) != len(names):
        return None
    values = np.asarray(per_track, dtype=float)
    groups = np.asarray([assay_group(n) for n in names])
    return {g: float(np.nanmean(values[groups == g])) for g in dict.fromkeys(groups)}


def run_track_names(run: str) -> list[str] | None:
    """The reference track names of a run's model (gReLU ``data_params.tasks.name``), if stored."""
    from genocl_plugin.models import read_config

    tasks = read_config(Path(run) / "model").get("data_params", {}).get("tasks", {})
    return list(tasks.get("name") or []) or None


def score_seed(seed_rows: list[dict], crops: int) -> list[dict]:
    """Re-score one seed's runs (same reference crops for all) and add the numbers to their rows."""
    from genocl_plugin.evaluation import evaluate as ev

    evaluation = ev.evaluate_runs([r["run"] for r in seed_rows], max_crops=crops)
    for row, run in zip(seed_rows, evaluation["runs"], strict=True):
        # Retention per assay group: a mean over tracks can hide that an update kept the tracks it
        # does not read out and lost the ones it does (head-only updates).
        names = run_track_names(row["run"])
        before = group_means(run["reference"][0]["per_track"], names)
        after = group_means(run["reference"][-1]["per_track"], names)
        if before and after:
            row["retention_groups_before"], row["retention_groups"] = before, after
        mat = run["matrix"]
        row.update({"new_before": mat[0][1], "new_after": mat[1][1], "gain": run["new_task_gain"],
                    "retention_before": mat[0][0], "retention_after": mat[1][0],
                    "bwt": run["metrics"]["bwt"], "drift_pearson": run["drift"].get("drift_pearson"),
                    "drift_rel_l2": run["drift"].get("drift_rel_l2"),
                    "retention_ratio": run["drift"].get("retention_ratio")})
        if "jsd" in run["reference"][-1]:
            row["jsd_before"], row["jsd_after"] = run["reference"][0]["jsd"], run["reference"][-1]["jsd"]
            row["counts_before"] = run["reference"][0]["counts_pearson"]
            row["counts_after"] = run["reference"][-1]["counts_pearson"]
    return evaluation["runs"]


def grid_score(run: Path, crops: int) -> dict:
    """Validation numbers of one grid run: in-distribution and OOD gain, valid-window retention."""
    from genocl_plugin.evaluation import evaluate as ev
    from genocl_plugin.models import load_model

    metrics = json.loads((run / "metrics.json").read_text())
    nt = metrics["new_task"]
    model = load_model(run / "model")
    retention = ev.reference_metrics(model, "valid", max_crops=crops)["valid_pearson_mean"]
    return {"gain_id": nt.get("in_distribution", {}).get("pearson_gain"),
            "gain_ood": nt["after"]["pearson"] - nt["before"]["pearson"], "retention_valid": retention}


def choose_from_grid(results: dict[str, list[dict]]) -> dict[str, dict]:
    """Per strategy: the grid value with the best valid retention among those whose validation
    in-distribution gain is within 5% of fine-tuning's (else the best in-distribution gain)."""
    ft = results.get("finetune", [{}])[0].get("gain_id")
    chosen = {}
    for label, rows in results.items():
        if label == "finetune":
            continue
        ok = [r for r in rows if ft is None or (r["gain_id"] is not None and r["gain_id"] >= ft - 0.05 * abs(ft))]
        pick = (max(ok, key=lambda r: r["retention_valid"]) if ok
                else max(rows, key=lambda r: r["gain_id"] if r["gain_id"] is not None else -np.inf))
        chosen[label] = pick["params"]
    return chosen


def grid_row(params: dict, per_seed: list[dict]) -> dict:
    """One grid value: its scores per validation seed and their means, which the pick compares.

    One validation run is not enough: CPU runs are not bit-reproducible, and a single run of
    L2-SP's alpha 1 gained -0.141 in distribution once and -0.026 in a rerun of the same command
    (2026-12-01), which flipped the pick.
    """
    def mean(key):
        values = [r[key] for r in per_seed if r.get(key) is not None]
        return float(np.mean(values)) if values else None

    return {"params": params, "seconds": float(sum(r["seconds"] for r in per_seed)), "gain_id": mean("gain_id"),
            "gain_ood": mean("gain_ood"), "retention_valid": mean("retention_valid"), "per_seed": per_seed}


def run_grid(base: str, model: str, screen: Path, strategies: dict[str, str], settings: dict, work: Path,
             log) -> dict:
    """Tune each strategy of ``GRID`` on the validation seeds; returns the grid table and the picks."""
    results: dict[str, list[dict]] = {}
    seeds = settings.get("validation_seeds", [VALIDATION_SEED])
    todo = [("finetune", {})] + [(label, {key: value}) for label in GRID if label in strategies
                                 for key, values in GRID[label].items() for value in values]
    for label, params in todo:
        tag = "_".join([label] + [param_text({k: v}, "") for k, v in params.items()])
        per_seed = []
        for seed in seeds:
            out = work / f"grid_{base}" / f"{tag}_seed{seed}"
            log(f"grid {base}: {label} {params or ''} (validation seed {seed})")
            res = update(model, screen, strategies.get(label, label), seed, out, settings, params)
            per_seed.append({"seed": seed, "seconds": res["seconds"], **grid_score(out, settings["eval_crops"])})
            shutil.rmtree(out, ignore_errors=True)
        results.setdefault(label, []).append(grid_row(params, per_seed))
    return {"results": results, "chosen": choose_from_grid(results), "seeds": list(seeds)}


def mouse_tracks_screen(shared: Path, work: Path) -> Path | None:
    """The 32 mm10 tracks of the baskerville mouse windows as a tracks screen (None without ../shared)."""
    from genocl_plugin.data import screens, tracks

    src = shared / MOUSE
    if not (src / f"DERIVED_{MOUSE}.npz").exists():
        return None
    adata = tracks.from_basenji_arrays(src / f"DERIVED_{MOUSE}.npz", src / "targets.txt", prefix="mm10 ",
                                       genome="mm10")
    return screens.write_screen(adata, work / "mm10_tracks.h5ad", force=True)


def run_chain(model: str, strategies: dict[str, str], chosen: dict[str, dict], settings: dict, work: Path,
              shared: Path, plots: Path, log) -> dict:
    """Scenario (c): one model learns three real tasks in turn with each strategy.

    T1: the mouse tracks as a new head on the human-trained trunk (as Enformer's mouse head);
    T2: the Kircher enhancer MPRA; T3: the Kircher promoter MPRA. Each strategy runs the whole
    sequence (its state carried from update to update); ``evaluate_runs`` then scores every
    model of every chain on every task (T0: the human reference tracks).
    """
    from genocl_plugin.data import reference
    from genocl_plugin.evaluation import evaluate as ev

    cs = settings["chain"]
    mouse = mouse_tracks_screen(shared, work)
    if mouse is None:
        return {"skipped": f"{shared / MOUSE} not found (the mouse tracks come from ../shared/data)"}
    # --mpra-input-length applies to the MPRA tasks only (a tracks screen refuses it)
    tasks = [("mouse tracks (new head)", mouse, {**settings, **cs["tracks"], "mpra_input_length": None}),
             ("enhancer MPRA", reference.BUNDLED / "mpra_enhancers.h5ad", {**settings, **cs["mpra"]}),
             ("promoter MPRA", reference.BUNDLED / "mpra_promoters.h5ad", {**settings, **cs["mpra"]})]
    started = time.perf_counter()
    finals, labels, seeds = [], [], []
    for seed in cs["seeds"]:
        for label in [lab for lab in cs["labels"] if lab in strategies]:
            spec, parent = strategies[label], model
            for k, (task, path, task_settings) in enumerate(tasks, 1):
                out = work / "chain" / label.replace(" ", "_").replace("+", "_") / f"seed{seed}_T{k}"
                log(f"chain: {label} seed {seed}, T{k} {task}")
                update(parent, path, spec, seed, out, task_settings, params_for(spec, chosen))
                parent = str(out)
            finals.append(out)
            labels.append(label)
            seeds.append(seed)
    log(f"chain: scoring {len(finals)} chains x {len(tasks) + 1} models x {len(tasks) + 1} tasks")
    evaluation = ev.evaluate_runs(finals, max_crops=settings["eval_crops"])
    ev.plot_evaluation(evaluation, plots / "chain", labels=[f"{lab} (seed {sd})" for lab, sd in
                                                           zip(labels, seeds, strict=True)])
    return {"tasks": ["human reference tracks (test windows)"] + [t[0] for t in tasks], "labels": labels,
            "seeds": seeds, "runs": evaluation["runs"], "settings": cs,
            "params": {lab: params_for(strategies[lab], chosen) for lab in dict.fromkeys(labels)},
            "seconds": time.perf_counter() - started}


def merge_chains(old: dict, new: dict, cs: dict) -> dict:
    """Merge a rerun of some scenario-(c) chains into a finished study's chains.

    The old chains of the other (label, seed) pairs are kept (they are scored on the same crops);
    the rerun's pairs replace or add to them. Runs are ordered by seed, then by ``cs["labels"]``.
    The study's command and commit stay; the rerun is recorded under ``reruns``.
    """
    kept = [(lab, sd, run) for lab, sd, run in zip(old["labels"], old["seeds"], old["runs"], strict=True)
            if not (lab in cs["labels"] and sd in cs["seeds"])]
    merged = sorted(kept + list(zip(new["labels"], new["seeds"], new["runs"], strict=True)),
                    key=lambda m: (m[1], cs["labels"].index(m[0]) if m[0] in cs["labels"] else -1))
    return {**new, "labels": [m[0] for m in merged], "seeds": [m[1] for m in merged],
            "runs": [m[2] for m in merged], "params": {**old.get("params", {}), **new["params"]},
            "settings": {**cs, "labels": list(dict.fromkeys(m[0] for m in merged)),
                         "seeds": sorted({m[1] for m in merged})},
            "seconds": old.get("seconds", 0) + new["seconds"],
            "reruns": [*old.get("reruns", []), {"labels": cs["labels"], "seeds": cs["seeds"],
                                                 "command": new["command"], "commit": new["commit"],
                                                 "seconds": new["seconds"]}],
            "command": old.get("command"), "commit": old.get("commit")}


def score_sequential(finals: list, labels: list[str], crops: int, plot_dir: Path) -> list[dict]:
    """Evaluate the sequential scenario's final runs (3x3 matrices) and plot them."""
    from genocl_plugin.evaluation import evaluate as ev

    evaluation = ev.evaluate_runs(finals, max_crops=crops)
    ev.plot_evaluation(evaluation, plot_dir, labels=labels)
    return evaluation["runs"]


def add_ood(report: dict, work: Path, shared: Path, settings: dict, log) -> None:
    """Run the Kircher VCF check into ``report`` (``ood_vcf``, ``ood_seconds``)."""
    started = time.perf_counter()
    report["ood_vcf"] = ood_vcf_check(report, work, shared, settings["kircher_sites"], log)
    report["ood_seconds"] = time.perf_counter() - started


def ood_vcf_check(report: dict, work: Path, shared: Path, sites_per_element: int, log) -> dict | None:
    """Score the real Kircher 2019 VCF with the base, fine-tuned and recommended models (seed 0).

    Uses ``benchmarks/score_vcf.py``'s Kircher section (``genocl score-vcf`` on the VCF against
    the element sequences at their GRCh38 coordinates). Returns, per model, the median over
    elements of the per-element Spearman (predicted log2FC vs measured COEF), split by whether
    the element was in the update's training screen, held out, or not in the screen at all.
    """
    if not sites_per_element or not (shared / "kircher2019_satmut").exists():
        log("Kircher VCF check skipped" + (" (kircher_sites 0)" if not sites_per_element
                                           else f" (no {shared / 'kircher2019_satmut'})"))
        return None
    sys.path.insert(0, str(Path(__file__).parent))
    import score_vcf as score_bench

    models, splits = {}, {}
    for base, b in report["bases"].items():
        picks = dict.fromkeys(["finetune", b["recommended"]])
        runs = {r["label"]: r["run"] for r in b["rows"] if r["seed"] == b["seeds_done"][0] and r["label"] in picks}
        models[base] = [("base", base)] + [(label, runs[label]) for label in picks if label in runs]
        split = json.loads((Path(runs["finetune"]) / "metrics.json").read_text())["split"]
        splits[base] = (set(split["train_elements"]), set(split["test_elements"]))
    log(f"Kircher VCF check: {sites_per_element} sites per element, models {models}")
    (work / "ood_vcf").mkdir(parents=True, exist_ok=True)
    table, runs = score_bench.kircher(models, sites_per_element, 64, work / "ood_vcf", shared)
    out = {"sites_per_element": sites_per_element, "n_snvs": int(table["n"].sum()), "models": {}}
    for base, specs in models.items():
        train, held = splits[base]
        group = np.array(["train" if e in train else "held-out" if e in held else "unseen" for e in table["element"]])
        for label, _ in specs:
            col = table[f"{base} {label}"]
            out["models"][f"{base} {label}"] = {
                "median_all": float(col.median()),
                **{f"median_{g}": float(col[group == g].median()) if (group == g).any() else None
                   for g in ("train", "held-out", "unseen")},
                "n_elements": {g: int((group == g).sum()) for g in ("train", "held-out", "unseen")},
            }
    out["per_element"] = table.to_dict(orient="records")
    return out


def _wait_for(spec: str, minutes: float, log) -> None:
    """Wait (up to ``minutes``) for a bundled model directory that ``genocl pretrain`` is still writing."""
    from genocl_plugin.models import BUNDLED_MODELS

    path = BUNDLED_MODELS.get(spec)
    deadline = time.time() + 60 * minutes
    if path is not None and not (path / "model.safetensors").exists():
        log(f"waiting up to {minutes:.0f} min for {path}")
        while not (path / "model.safetensors").exists() and time.time() < deadline:
            time.sleep(20)
