"""The forgetting study on real pretrained bases: does an update LEARN the screen and KEEP what the model knew?

Scenarios (the bundled-mini scenarios a-c live in benchmarks/forgetting.py):

- (d) Puffin (Dudnyk et al. 2024, the released weights) -> Kircher 2019 promoter saturation mutagenesis;
- (e) Puffin -> lentiMPRA activity in WTC11 (a new readout: sequence -> activity; trained on
  WTC11_valid, tested on WTC11_test);
- (f) a BPNet trained on K562 CTCF ChIP-seq (bpnet-lite's example model, ProCapNet's geometry) -> the same
  promoter screen;
- (g) a chain on Puffin: promoters -> lentiMPRA -> enhancers, with accuracy matrices, BWT, FWT and
  forgetting per task (scenario (d)'s picks).

For each scenario, in this order:

1. **probe** (what a head could learn from the base's own features): a ridge on the change
   (alt - ref) of the base's outputs summed over the element and of its trunk features (Puffin's 104
   motif activations; BPNet's 64 trunk channels) over the element, fitted on training position
   blocks of every element and scored on held-out 50-bp blocks, 5 block splits; beside it the
   zero-shot Pearson on the same blocks.
2. **validation grid** (seeds 100-102 only): the readout tracks (Puffin; at the larger learning
   rate), then the learning rate of fine-tuning for that readout, each picked by the mean
   in-distribution Pearson after the update; then L2-SP's alpha
   and replay's ratio, picked by the valid-split retention among values whose in-distribution gain
   stays within 5% of fine-tuning's (as forgetting.py does). Test seeds and test windows are never
   used to choose.
3. **test seeds 0-4**: every strategy with the picks; each run is scored on
   - the screen: in-distribution gain (512 held-out position-block rows) and held-out elements;
   - retention on real measurements: Puffin's FANTOM CAGE outputs vs the 24 real FANTOM5 CAGE
     tracks of the bundled hg38 test windows (summed per strand, 32-bp bins); peaks vs matched flanks
     (AUROC; K562 PRO-cap peaks for Puffin, the CTCF peaks with their signalValue for the BPNet) in
     every hg38 sequence here (chr1:1-1 Mb, chr2:1-2.33 Mb and the 65 bundled windows);
   - drift from the parent (per-track Pearson of log predictions on the test windows; counts and
     profile drift on the peak windows).
4. summary: mean [95% CI] over seeds and paired differences from fine-tuning; the auto rule
   (``genocl_plugin.evaluation.stats.choose_auto_strategy``) per architecture.

Usage::

    python benchmarks/real_bases.py                       # (d) and (f), then render (~60 min on 2 cores)
    python benchmarks/real_bases.py --scenario d --threads 1   # one scenario (run d and f side by side)
    python benchmarks/real_bases.py --render-only         # tables, summary.json, auto_strategy.json

Needs the real data (``--shared`` or ``GENOCL_SHARED``, default ``../shared/data``); the weights are
read there and never copied into the project.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.provenance import git_commit  # noqa: E402

RESULTS = ROOT / "docs" / "results" / "real_bases"
SHARED_DIR = ROOT.parent / "shared" / "data"  # set by run_scenario from --shared
BUNDLED = ROOT / "genocl_plugin" / "bundled"

BASES = {
    "puffin": {"name": "Puffin (released weights)", "file": "pretrained/puffin/puffin.pth",
               "peaks": "tracks_peaks/clipnet_k562_procap_pints_autosomes.hg38.bed.gz",
               "peaks_name": "K562 PRO-cap peaks (PINTS)", "input": 1400},
    "ctcf_bpnet": {"name": "BPNet, K562 CTCF ChIP-seq (bpnet-lite example)",
                   "file": "pretrained/bpnet_ctcf_k562/example.final.torch",
                   "peaks": "tracks_peaks/bpnetlite_ENCSR000AKO.narrowPeak.gz",
                   "peaks_name": "K562 CTCF ChIP-seq peaks (ENCSR000AKO)", "input": 2114},
}
SCENARIOS = {
    "d": {"key": "d_puffin_promoter_mpra", "base": "puffin", "screen": "mpra_promoters.h5ad", "arch": "puffin",
          # readout candidates, picked on the validation seeds (None: genocl's default, the CAGE outputs)
          "readouts": {"CAGE": None, "PRO-cap": "PRO-cap*", "all": "re:."}},
    # BPNet at 2,114 bp costs ~4x Puffin at 1,400 bp per step on this CPU: half the data, one epoch, two
    # validation seeds, 200 variants per element in the probe (2026-12-06: the d-sized run took ~3.5 min per update)
    "f": {"key": "f_ctcf_bpnet_promoter_mpra", "base": "ctcf_bpnet", "screen": "mpra_promoters.h5ad",
          "arch": "procapnet", "readouts": {"both strands": None},
          # four strategies (2026-12-06: ~3 min per run on the shared CPU; LoRA and the new head left out)
          "labels": ["finetune", "replay", "l2sp", "head only"],
          "settings": {"max_train": 512, "max_eval": 512, "epochs": 1, "validation_seeds": [100, 101],
                       "probe_per_element": 200}},
    # a new readout: lentiMPRA activity in WTC11 (200-nt elements); trained on WTC11_valid, tested on
    # WTC11_test (the screen's split column); validation seeds hold out 30% of WTC11_valid's elements.
    # auto's pick for Puffin on activity screens ("puffin:activity"; genocl_plugin.training.update.auto_key)
    "e": {"key": "e_puffin_lentimpra_activity", "base": "puffin", "screen": "lentimpra", "arch": "puffin:activity",
          "screen_label": "lentiMPRA activity, WTC11 (held-out sequences: the in-distribution and held-out columns "
                          "are the same figure)",
          "readouts": {"all": "re:."}, "input": 1000, "labels": ["finetune", "l2sp", "lora", "head only", "new head"],
          "grid": {"l2sp": {"l2sp_alpha": [0.01, 1.0]}}},
}
# (g) one Puffin learns three tasks in turn; each model of each chain is scored on every task.
CHAIN = {"key": "g_puffin_promoters_then_lentimpra_then_enhancers", "base": "puffin",
         "tasks": [("promoter MPRA", "mpra_promoters.h5ad", 1400), ("lentiMPRA activity", "lentimpra", 1000),
                   ("enhancer MPRA", "mpra_enhancers.h5ad", 1400)],
         # two strategies: on Puffin "head only" trains ~99% of the weights (its effect layer), so it is
         # fine-tuning in all but name; the chain compares fine-tuning with the regulariser
         "labels": ["finetune", "l2sp"], "seeds": [0, 1, 2, 3, 4],
         "max_train": 512, "max_eval": 512, "epochs": 1}
# label -> --strategy; "head only" freezes the trunk (Puffin: trains only its effect layer), "new head"
# adds a 1x1 head on the trunk features and freezes the old heads.
LABELS = {"finetune": "finetune", "replay": "replay", "l2sp": "l2sp", "lora": "lora", "head only": "freeze",
          "new head": "multihead"}
FIXED = {"head only": {"freeze": "trunk"}, "lora": {"lora_rank": 8}}
GRID = {"l2sp": {"l2sp_alpha": [0.01, 1.0]}, "replay": {"replay_ratio": [0.25, 0.5]}}
SETTINGS = {
    "full": {"seeds": [0, 1, 2, 3, 4], "validation_seeds": [100, 101, 102], "lrs": [1e-4, 1e-3],
             "max_train": 1024, "max_eval": 1024, "max_eval_id": 512, "epochs": 2, "batch_size": 16, "holdout": 0.3,
             "eval_windows": 160, "probe_per_element": 400, "probe_splits": 5},
    "quick": {"seeds": [0, 1], "validation_seeds": [100], "lrs": [1e-3], "max_train": 64, "max_eval": 128,
              "max_eval_id": 64, "epochs": 1, "batch_size": 16, "holdout": 0.3, "eval_windows": 16,
              "probe_per_element": 40, "probe_splits": 2},
}


def shared_dir(arg: str | None) -> Path:
    """The real data: ``--shared``, else ``$GENOCL_SHARED``, else ``../shared/data`` beside the checkout."""
    from benchmarks.provenance import shared_dir as default_shared_dir

    return default_shared_dir(arg)


def log(message: str) -> None:
    print(f"[{datetime.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


# --- one update -------------------------------------------------------------------------------------


def screen_path(name: str, shared: Path, work: Path, validation: bool = False) -> Path:
    """A bundled screen, or the lentiMPRA activity screen built from the shared WTC11 tables.

    ``lentimpra``: WTC11_valid rows train and WTC11_test rows test (the screen's ``split``);
    with ``validation`` only WTC11_valid, for ``--holdout`` to split (the test file is never seen).
    Strands of one element share a group, and the 15-nt adapters are trimmed.
    """
    if name != "lentimpra":
        return BUNDLED / name
    import pandas as pd

    from genocl_plugin.data import screens

    out = work / ("lentimpra_valid.h5ad" if validation else "lentimpra.h5ad")
    if out.exists():
        return out
    parts = []
    for file, split in (("WTC11_valid.tsv.gz", "train"), ("WTC11_test.tsv.gz", "test")):
        if validation and split == "test":
            continue
        table = pd.read_csv(shared / "lentimpra_wtc11" / file, sep="\t")
        table["split"] = split
        parts.append(table)
    work.mkdir(parents=True, exist_ok=True)
    tsv = work / (out.stem + ".tsv")
    pd.concat(parts).to_csv(tsv, sep="\t", index=False)
    screen, _ = screens.from_activity(tsv, sequence_column="seq", activity_column="mean_value",
                                      source="lentiMPRA WTC11 (Agarwal et al. 2025; autosome-ru/human_legnet)",
                                      trim_adapters=(15, 15), split_column=None if validation else "split")
    screens.write_screen(screen, out, force=True)
    return out



def run(base_file: Path, scenario: dict, label: str, seed: int, settings: dict, out: Path, lr: float,
        readout: str | None, params: dict | None = None, data: Path | None = None) -> dict:
    """One ``genocl update`` (the library call the CLI makes); returns its metrics.json and wall time.

    Screens without position blocks (activity) have no in-distribution split: their held-out
    rows are the new task, and ``gain_id`` is that gain (WTC11_test is a random element split of
    the same library as WTC11_valid, so it is in distribution).
    """
    from genocl_plugin.training.update import UpdateConfig, run_update

    config = UpdateConfig(
        model=str(base_file), data=str(data or BUNDLED / scenario["screen"]), strategy=LABELS[label], seed=seed,
        epochs=settings["epochs"], lr=lr, batch_size=settings["batch_size"], max_train=settings["max_train"],
        max_eval=settings["max_eval"], max_eval_id=settings["max_eval_id"], holdout=settings["holdout"],
        retention_crops=8,
        strategy_params={**FIXED.get(label, {}), **(params or {})}, readout_tracks=readout,
        mpra_input_length=scenario.get("input") or BASES[scenario["base"]]["input"])
    start = time.perf_counter()
    run_update(config, out, force=True)
    metrics = json.loads((out / "metrics.json").read_text())
    nt = metrics["new_task"]
    ind = nt.get("in_distribution") or {"before": nt["before"], "after": nt["after"],
                                        "pearson_gain": nt["pearson_gain"]}
    return {"seconds": time.perf_counter() - start,
            "id_before": ind.get("before", {}).get("pearson"), "id_after": ind.get("after", {}).get("pearson"),
            "gain_id": ind.get("pearson_gain"), "ood_before": nt["before"]["pearson"],
            "ood_after": nt["after"]["pearson"], "gain_ood": nt["pearson_gain"],
            "train_after": nt.get("train_after", {}).get("pearson")}


# --- retention on real measurements -----------------------------------------------------------------


class Windows:
    """The bundled hg38 windows at a model's geometry: inputs and, for Puffin, the real CAGE per strand."""

    def __init__(self, model, split: str, n: int, seed: int = 0) -> None:
        from genocl_plugin.data import reference
        from genocl_plugin.evaluation.evaluate import bundled_cage_by_strand

        ref = reference.bundled_reference_set(model)
        self.idx = ref.subset(split, n, seed)
        self.x = ref.one_hot(split, self.idx)
        self.cage = bundled_cage_by_strand(ref, split, self.idx)  # (windows, 2 strands, bins of 32 bp)
        self.n_bins = self.cage.shape[-1]

    def predict(self, model) -> np.ndarray:
        """(windows, tracks, positions) log predictions of the reference outputs."""
        import torch

        n_ref = len([n for n in model.task_names if not str(n).startswith("screen:")])
        out = []
        with torch.no_grad():
            model.eval()
            for start in range(0, len(self.x), 32):
                out.append(model(self.x[start:start + 32], logits=True)[:, :n_ref].float().numpy())
        return np.concatenate(out)


def cage_pearson(log_pred: np.ndarray, names: list[str], windows: Windows) -> dict:
    """Puffin's FANTOM CAGE outputs (+, -) vs the real FANTOM5 CAGE tracks summed per strand, 32-bp bins."""
    from genocl_plugin.evaluation.evaluate import strand_cage_outputs, strand_cage_scores

    n = windows.n_bins * 32
    pred = np.exp(log_pred[:, strand_cage_outputs(names), :n]).reshape(len(log_pred), 2, windows.n_bins, 32).sum(-1)
    return {f"cage_{key}": value for key, value in strand_cage_scores(pred, windows.cage).items()}


def drift(parent_log: np.ndarray, new_log: np.ndarray) -> float:
    """Mean over tracks of the Pearson of updated vs parent log1p predictions (1 = unchanged)."""
    from genocl_plugin.evaluation.evaluate import pearson_per_track

    return float(np.nanmean(pearson_per_track(np.log1p(np.exp(parent_log)), np.log1p(np.exp(new_log)))))


def peak_sets(model, shared: Path, base: dict) -> list:
    """The base's peaks in every hg38 sequence here: the chr1 / chr2 pieces and the bundled windows."""
    from genocl_plugin.evaluation import peaks

    table = peaks.read_peaks(shared / base["peaks"])
    sets = []
    for fasta in (shared / "genome" / "hg38_1m.fa.gz", shared / "genome" / "chr2_1-2333275.fa.gz", None):
        try:
            sets.append(peaks.peak_set_for(model, table, fasta=fasta, max_peaks=None))
        except Exception as err:  # a source with no usable peak
            log(f"peaks: {fasta or 'bundled windows'} skipped ({' '.join(str(err).split())[:160]})")
    return sets


def peak_metrics(parent, model, sets: list) -> dict:
    """AUROC (peaks vs flanks), signal Pearson and drift over all the peak sets, pooled."""
    import pandas as pd

    from genocl_plugin.evaluation import peaks

    tables = [peaks.peak_retention(parent, model, s, batch_size=32, progress=False)["per_window"] for s in sets]
    table = pd.concat(tables).drop_duplicates(subset=["chrom", "start", "kind"])
    table = table[np.isfinite(table["pred_before"]) & np.isfinite(table["pred_after"])]
    is_peak = (table["kind"] == "peak").to_numpy()
    out = {"n_peaks": int(is_peak.sum()), "n_flanks": int((~is_peak).sum())}
    for when in ("before", "after"):
        pred = table[f"pred_{when}"].to_numpy()
        out[f"auroc_{when}"] = peaks.auroc(pred[is_peak], pred[~is_peak])
        signal = table["signal_value"].to_numpy(float)
        ok = is_peak & np.isfinite(signal) & (signal > 0)
        out[f"signal_pearson_{when}"] = (float(np.corrcoef(pred[ok], np.log(signal[ok]))[0, 1])
                                         if ok.sum() > 2 else None)
    out["drift_counts"] = float(np.corrcoef(table["pred_before"], table["pred_after"])[0, 1])
    if "profile_drift_pearson" in table:
        out["drift_profile"] = float(np.nanmean(table["profile_drift_pearson"]))
    return out


def score_model(parent, model, windows: Windows, parent_log: np.ndarray, sets: list) -> dict:
    """Retention and drift of one updated model (real CAGE for Puffin, peaks for both)."""
    new_log = windows.predict(model)
    names = list(model.task_names)
    out = {"drift": drift(parent_log, new_log)}
    if "CAGE:FANTOM5 +" in names:
        out.update(cage_pearson(new_log, names, windows))
    out.update({f"peaks_{k}": v for k, v in peak_metrics(parent, model, sets).items()})
    return out


def retention_of(row: dict) -> float | None:
    """The retention figure the auto rule compares: real CAGE Pearson (Puffin), else peak AUROC."""
    return row.get("cage_pearson", row.get("peaks_auroc_after"))


# --- the probe (what a head could learn) ---------------------------------------------------------------


def probe(model, screen, settings: dict, input_length: int, readout: str | None) -> dict:
    """Ridge on the change of the base's outputs and trunk features over the element (see the module doc)."""
    import torch

    from genocl_plugin import objectives
    from genocl_plugin.data import screens
    from genocl_plugin.strategies.multihead import feature_module

    screen = screens.subsample_per_element(screen, settings["probe_per_element"], seed=0)
    data = objectives.mpra_dataset(screen, model, readout=readout, seq_len=input_length)
    captured = {}
    hook = feature_module(model.model).register_forward_pre_hook(lambda m, a: captured.__setitem__("f", a[0]))

    def features(codes: list[np.ndarray], lo, hi) -> np.ndarray:
        from genocl_plugin.data.reference import codes_to_one_hot

        rows = []
        with torch.no_grad():
            for start in range(0, len(codes), 64):
                x = torch.from_numpy(codes_to_one_hot(np.stack(codes[start:start + 64])))
                out = model(x, logits=True).float()
                feats = captured["f"].float()
                if feats.ndim == 3 and feats.shape[1] > feats.shape[2]:  # (batch, length, channels)
                    feats = feats.transpose(1, 2)
                shift = (feats.shape[-1] - out.shape[-1]) // 2
                for k in range(len(out)):
                    a, b = int(lo[start + k]), int(hi[start + k])
                    track = torch.logsumexp(out[k, :, a:b], -1)
                    trunk = feats[k, :, a + shift:b + shift].mean(-1)
                    rows.append(torch.cat([track, trunk]).numpy())
        return np.stack(rows)

    ref_feats = features([data.refs[i] for i in data.ref_index], data.lo, data.hi)
    alt_feats = features(list(data.alts), data.lo, data.hi)
    hook.remove()
    delta = alt_feats - ref_feats
    zero_shot = objectives.predict_screen_effects(model, data, batch_size=32)
    effect = screen.obs["effect"].to_numpy(float)
    rows = []
    for split in range(settings["probe_splits"]):
        train, test = screens.split_by_position_blocks(screen, test_fraction=0.2, seed=split)
        tr = screen.obs.index.get_indexer(train.obs.index)
        te = screen.obs.index.get_indexer(test.obs.index)
        pred = ridge_fit_predict(delta[tr], effect[tr], delta[te])
        rows.append({"split": split, "probe": float(np.corrcoef(pred, effect[te])[0, 1]),
                     "zero_shot": float(np.corrcoef(zero_shot[te], effect[te])[0, 1]),
                     "n_train": int(len(tr)), "n_test": int(len(te))})
    return {"rows": rows, "n_features": int(delta.shape[1]), "n_variants": int(len(effect))}


def ridge_fit_predict(x: np.ndarray, y: np.ndarray, x_new: np.ndarray) -> np.ndarray:
    """Ridge on standardised features; the penalty picked by 5-fold CV on the training rows only."""
    mu, sd = x.mean(0), x.std(0) + 1e-8
    z, z_new = (x - mu) / sd, (x_new - mu) / sd
    folds = np.arange(len(y)) % 5
    np.random.default_rng(0).shuffle(folds)

    def fit(a, b, lam):
        b0 = b.mean()
        w = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ (b - b0))
        return w, b0

    best, best_r = 1.0, -np.inf
    for lam in (1.0, 10.0, 100.0, 1000.0, 10000.0):
        preds = np.empty(len(y))
        for f in range(5):
            w, b0 = fit(z[folds != f], y[folds != f], lam)
            preds[folds == f] = z[folds == f] @ w + b0
        r = np.corrcoef(preds, y)[0, 1]
        if r > best_r:
            best, best_r = lam, r
    w, b0 = fit(z, y, best)
    return z_new @ w + b0


# --- one scenario --------------------------------------------------------------------------------------


def run_scenario(letter: str, shared: Path, settings: dict, work: Path, mode: str, results_dir: Path = RESULTS) -> dict:
    """Probe, validation grid and test seeds of one scenario; writes ``<results_dir>/<key>.json``."""
    import anndata

    from genocl_plugin.models import load_model

    global SHARED_DIR
    SHARED_DIR = shared
    scenario = SCENARIOS[letter]
    if mode == "full":
        settings = {**settings, **scenario.get("settings", {})}
    base = BASES[scenario["base"]]
    base_file = shared / base["file"]
    parent = load_model(base_file)
    started = time.perf_counter()
    result = {"scenario": scenario["key"], "base": base["name"], "base_file": base["file"],
              "screen": scenario["screen"], "mode": mode, "settings": settings, "commit": git_commit(),
              "date": datetime.date.today().isoformat(), "machine": f"{platform.machine()} {os.cpu_count()} cores"}
    data = screen_path(scenario["screen"], shared, work)
    valid_data = screen_path(scenario["screen"], shared, work, validation=True)
    screen = anndata.read_h5ad(data)
    saved = results_dir / f"{scenario['key']}.json"
    previous = json.loads(saved.read_text()) if saved.exists() else {}
    if previous.get("chosen", {}).get("params") is not None and previous.get("mode") == mode:
        # a study stopped during its test seeds resumes there: the probe, the grid and its picks
        # and every finished (seed, strategy) run are kept; only the rest runs
        log(f"{letter}: resuming {saved.name} ({len(previous.get('rows', []))} runs kept)")
        return run_test_seeds(letter, scenario, base, base_file, parent, settings, work, results_dir,
                              {**result, **{k: previous[k] for k in ("probe", "grid_finetune", "grid_strategies",
                                                                     "chosen", "commit", "date") if k in previous},
                               "resumed_at": git_commit()}, previous.get("rows", []),
                              started - previous.get("seconds_so_far", 0.0))
    if screen.uns["assay"] == "mpra":
        log(f"{letter}: probe of {base['name']}'s features")
        result["probe"] = {name: probe(parent, screen, settings, base["input"], spec)
                           for name, spec in scenario["readouts"].items()}

    log(f"{letter}: validation grid (readout x lr, fine-tuning; seeds {settings['validation_seeds']})")
    valid_windows = Windows(parent, "valid", settings["eval_windows"])
    valid_parent = valid_windows.predict(parent)
    grid = []

    def grid_point(readout_name: str, lr: float) -> dict:
        per_seed = []
        for seed in settings["validation_seeds"]:
            out = work / letter / f"grid_ft_{readout_name}_{lr:g}_{seed}".replace(" ", "_")
            per_seed.append(run(base_file, scenario, "finetune", seed, settings, out, lr,
                                scenario["readouts"][readout_name], data=valid_data))
            shutil.rmtree(out, ignore_errors=True)
        point = {"readout": readout_name, "lr": lr, "per_seed": per_seed,
                 "id_after": float(np.mean([r["id_after"] for r in per_seed])),
                 "gain_id": float(np.mean([r["gain_id"] for r in per_seed]))}
        log(f"  readout {readout_name}, lr {lr:g}: in-distribution after {point['id_after']:+.3f}, "
            f"gain {point['gain_id']:+.3f}")
        return point

    # the readout at the largest learning rate first, then the learning rate for that readout
    first_lr = max(settings["lrs"])
    grid += [grid_point(name, first_lr) for name in scenario["readouts"]]
    best_readout = max(grid, key=lambda g: g["id_after"])["readout"]
    grid += [grid_point(best_readout, lr) for lr in settings["lrs"] if lr != first_lr]
    pick = max(grid, key=lambda g: g["id_after"])
    readout, lr = scenario["readouts"][pick["readout"]], pick["lr"]
    result["grid_finetune"] = grid
    result["chosen"] = {"readout": pick["readout"], "readout_spec": readout, "lr": lr}
    ft_gain = pick["gain_id"]

    strategy_grid, params = [], {}
    for label, options in scenario.get("grid", GRID).items():
        for key, values in options.items():
            rows = []
            for value in values:
                per_seed = []
                for seed in settings["validation_seeds"]:
                    out = work / letter / f"grid_{label}_{value:g}_{seed}"
                    row = run(base_file, scenario, label, seed, settings, out, lr, readout, {key: value},
                              data=valid_data)
                    model = load_model(out)
                    new = valid_windows.predict(model)
                    row["retention_valid"] = (cage_pearson(new, list(model.task_names), valid_windows)["cage_pearson"]
                                              if scenario["base"] == "puffin" else drift(valid_parent, new))
                    shutil.rmtree(out, ignore_errors=True)
                    per_seed.append(row)
                rows.append({"label": label, "params": {key: value}, "per_seed": per_seed,
                             "gain_id": float(np.mean([r["gain_id"] for r in per_seed])),
                             "retention_valid": float(np.mean([r["retention_valid"] for r in per_seed]))})
                log(f"  {label} {key}={value:g}: gain {rows[-1]['gain_id']:+.3f}, "
                    f"valid retention {rows[-1]['retention_valid']:.3f}")
            ok = [r for r in rows if r["gain_id"] >= ft_gain - 0.05 * abs(ft_gain)]
            chosen = max(ok, key=lambda r: r["retention_valid"]) if ok else max(rows, key=lambda r: r["gain_id"])
            params[label] = chosen["params"]
            strategy_grid += rows
    result["grid_strategies"] = strategy_grid
    result["chosen"]["params"] = params
    return run_test_seeds(letter, scenario, base, base_file, parent, settings, work, results_dir, result, [],
                          started)


def run_test_seeds(letter: str, scenario: dict, base: dict, base_file: Path, parent, settings: dict, work: Path,
                   results_dir: Path, result: dict, rows: list[dict], started: float) -> dict:
    """The test seeds of one scenario with its picks; ``rows``: runs already done (kept, not rerun)."""
    from genocl_plugin.models import load_model

    lr, readout = result["chosen"]["lr"], result["chosen"]["readout_spec"]
    params = result["chosen"]["params"]
    data = screen_path(scenario["screen"], SHARED_DIR, work)
    log(f"{letter}: test seeds {settings['seeds']} (readout {result['chosen']['readout']}, lr {lr:g}, {params})")
    windows = Windows(parent, "test", settings["eval_windows"])
    parent_log = windows.predict(parent)
    sets = peak_sets(parent, SHARED_DIR, base)
    parent_scores = {"drift": 1.0, **({} if scenario["base"] != "puffin" else cage_pearson(
        parent_log, list(parent.task_names), windows))}
    parent_scores.update({f"peaks_{k}": v for k, v in peak_metrics(parent, parent, sets).items()})
    result["parent"] = parent_scores
    done = {(r["seed"], r["label"]) for r in rows}
    for seed in settings["seeds"]:
        for label in scenario.get("labels", LABELS):
            if (seed, label) in done:
                continue
            out = work / letter / f"{label.replace(' ', '_')}_seed{seed}"
            row = {"label": label, "seed": seed,
                   **run(base_file, scenario, label, seed, settings, out, lr, readout, params.get(label), data=data)}
            row.update(score_model(parent, load_model(out), windows, parent_log, sets))
            shutil.rmtree(out, ignore_errors=True)
            rows.append(row)
            log(f"  seed {seed} {label}: gain id {row['gain_id']:+.3f} ood {row['gain_ood']:+.3f}, "
                f"retention {retention_of(row):.3f}, drift {row['drift']:.3f} ({row['seconds']:.0f} s)")
            results_dir.mkdir(parents=True, exist_ok=True)
            result["rows"] = rows
            result["seconds_so_far"] = time.perf_counter() - started
            (results_dir / f"{scenario['key']}.json").write_text(json.dumps(result, indent=1, default=float))
    result["seconds"] = time.perf_counter() - started
    (results_dir / f"{scenario['key']}.json").write_text(json.dumps(result, indent=1, default=float))
    return result


# --- (g) the chain -------------------------------------------------------------------------------------


def run_chain(shared: Path, work: Path, mode: str, results_dir: Path = RESULTS) -> dict:
    """Scenario (g): Puffin learns the promoter MPRA, then lentiMPRA activity, then the enhancer MPRA.

    Each strategy carries its model from update to update with scenario (d)'s learning rate,
    readout and strategy strengths (picked on validation seeds there; the defaults without it);
    ``genocl_plugin.evaluation.evaluate.evaluate_runs`` scores every model of every chain on every task
    (task 0: agreement with Puffin's own predictions on the reference windows, as Puffin's outputs
    have no bundled tracks by name); the real-CAGE retention of the final models is added.
    """
    from genocl_plugin.evaluation import evaluate as ev
    from genocl_plugin.models import load_model

    chosen_file = results_dir / f"{SCENARIOS['d']['key']}.json"
    chosen = json.loads(chosen_file.read_text())["chosen"] if chosen_file.exists() else {}
    lr, readout, params = chosen.get("lr", 1e-3), chosen.get("readout_spec"), chosen.get("params", {})
    quick = mode == "quick"
    settings = {"epochs": CHAIN["epochs"], "batch_size": 16, "max_train": 32 if quick else CHAIN["max_train"],
                "max_eval": 32 if quick else CHAIN["max_eval"], "max_eval_id": None, "holdout": 0.3}
    seeds = CHAIN["seeds"][:2] if quick else CHAIN["seeds"]
    base_file = shared / BASES["puffin"]["file"]
    started = time.perf_counter()
    finals, labels, run_seeds = [], [], []
    for seed in seeds:
        for label in CHAIN["labels"]:
            parent = base_file
            for k, (task, screen, length) in enumerate(CHAIN["tasks"], 1):
                out = work / "g" / label.replace(" ", "_") / f"seed{seed}_T{k}"
                log(f"g: {label} seed {seed}, T{k} {task}")
                run(parent, {"base": "puffin", "input": length}, label, seed, settings, out, lr, readout,
                    params.get(label), data=screen_path(screen, shared, work))
                parent = out
            finals.append(out)
            labels.append(label)
            run_seeds.append(seed)
    log(f"g: scoring {len(finals)} chains x {len(CHAIN['tasks']) + 1} models x {len(CHAIN['tasks']) + 1} tasks")
    evaluation = ev.evaluate_runs(finals, max_crops=16 if quick else 96)
    windows = Windows(load_model(base_file), "test", 16 if quick else 160)
    names = list(load_model(base_file).task_names)
    cage = [cage_pearson(windows.predict(load_model(f)), names, windows)["cage_pearson"] for f in finals]
    tasks = ["Puffin's own predictions (reference windows)"] + [t[0] for t in CHAIN["tasks"]]
    result = {"key": CHAIN["key"], "tasks": tasks,
              "labels": labels, "seeds": run_seeds, "runs": evaluation["runs"], "cage_final": cage,
              "cage_parent": cage_pearson(windows.predict(load_model(base_file)), names, windows)["cage_pearson"],
              "settings": {**settings, "lr": lr, "readout": readout, "labels": CHAIN["labels"], "seeds": seeds},
              "params": {lab: {**FIXED.get(lab, {}), **params.get(lab, {})} for lab in CHAIN["labels"]},
              "seconds": time.perf_counter() - started, "mode": mode, "commit": git_commit(),
              "command": "python benchmarks/real_bases.py --scenario g", "date": datetime.date.today().isoformat()}
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{CHAIN['key']}.json").write_text(json.dumps(result, indent=1, default=float))
    return result


def chain_section(chain: dict) -> tuple[dict, list[str]]:
    """The chain's summary (``forgetting.chain_summary``'s schema) and its markdown."""
    from benchmarks.forgetting import chain_summary
    from genocl_plugin.evaluation.stats import format_ci, mean_ci

    summary = chain_summary(chain)
    summary["model"] = "Puffin (released weights)"
    t = chain["tasks"]
    by_label = {}
    for value, label in zip(chain["cage_final"], chain["labels"], strict=True):
        by_label.setdefault(label, []).append(value)
    lines = [f"## (g) {summary['model']} learns " + ", then ".join(t[1:]), "",
             "Tasks: " + "; ".join(f"T{j} = {name}" for j, name in enumerate(t)) + ". T1/T3: effect Pearson on "
             "held-out elements; T2: activity Pearson on WTC11_test; T0: agreement with Puffin's own predictions on "
             "the reference windows (1 for the parent). BWT = mean_{j<T}(R[T,j] - R[j,j]); FWT = "
             "mean_{j>=1}(R[j-1,j] - R[0,j]); forgetting of task j = max_{i<T}(R[i,j]) - R[T,j]. "
             f"Mean [95% CI] over seeds {chain['settings']['seeds']}; lr {chain['settings']['lr']:g}, "
             f"{chain['settings']['max_train']} training rows x {chain['settings']['epochs']} epoch per task; "
             f"{chain['seconds'] / 60:.1f} min; commit {chain['commit'][:12]}.", "",
             "| strategy | final T1 | final T2 | final T3 | BWT | FWT | forgetting T1 | forgetting T2 | "
             "real CAGE, final (parent " + f"{chain['cage_parent']:.3f}) |", "|---|---|---|---|---|---|---|---|---|"]
    for label, v in summary["strategies"].items():
        lines.append(f"| {label} | {format_ci(v.get('final_T1'))} | {format_ci(v.get('final_T2'))} | "
                     f"{format_ci(v.get('final_T3'))} | {format_ci(v['bwt'])} | {format_ci(v['fwt'])} | "
                     f"{format_ci(v.get('forgetting_T1'))} | {format_ci(v.get('forgetting_T2'))} | "
                     f"{format_ci(mean_ci(by_label.get(label, [])))} |")
    lines += ["", "| strategy | " + " | ".join(f"gain T{j}" for j in range(1, len(t))) + " | BWT vs ft |",
              "|---|" + "---|" * len(t)]
    for label, v in summary["strategies"].items():
        lines.append(f"| {label} | " + " | ".join(format_ci(v.get(f"gain_T{j}")) for j in range(1, len(t)))
                     + f" | {format_ci(v.get('bwt_vs_finetune'))} |")
    lines.append("")
    return summary, lines


# --- summary ---------------------------------------------------------------------------------------------


METRICS = {"gain_in_distribution": "gain_id", "gain_ood": "gain_ood", "drift": "drift",
           "peaks_auroc": "peaks_auroc_after", "peaks_signal_pearson": "peaks_signal_pearson_after",
           "peaks_drift_counts": "peaks_drift_counts", "peaks_drift_profile": "peaks_drift_profile",
           "cage_pearson": "cage_pearson"}


def metric_value(row: dict, key: str | None) -> float | None:
    """One figure of a run: the retention (key None), drift as ``1 - r`` (the project's convention:
    0 = unchanged), else the row's value."""
    if key is None:
        return retention_of(row)
    value = row.get(key)
    if key in ("drift", "peaks_drift_counts", "peaks_drift_profile") and value is not None:
        return 1.0 - value
    return value


def summarise(result: dict) -> dict:
    """Per strategy: mean [95% CI] of each figure and its paired difference from fine-tuning (summary.json schema)."""
    from genocl_plugin.evaluation.stats import mean_ci, paired_diff_ci

    rows = result["rows"]
    by = {}
    for row in rows:
        by.setdefault(row["label"], {})[row["seed"]] = row
    ft = by.get("finetune", {})
    out = {}
    for label, seeds in by.items():
        entry = {"strategy": LABELS[label], "params": {**FIXED.get(label, {}),
                                                        **result["chosen"]["params"].get(label, {})},
                 "n_seeds": len(seeds)}
        for name, key in [("retention", None), *METRICS.items()]:
            values = {s: metric_value(r, key) for s, r in seeds.items()}
            if all(v is None for v in values.values()):
                continue
            entry[name] = mean_ci(list(values.values()))
            if label != "finetune":
                ref = {s: metric_value(r, key) for s, r in ft.items()}
                entry[f"{name}_vs_finetune"] = paired_diff_ci(values, ref)
            if name == "retention":
                entry["retention_by_seed"] = {str(s): v for s, v in values.items()}
        entry["retention_base"] = retention_of(result["parent"])
        out[label] = entry
    return out


def claims(strategies: dict) -> list[str]:
    """The issue's three questions, answered from the intervals."""
    from genocl_plugin.evaluation.stats import excludes_zero, format_ci

    ft = strategies["finetune"]
    lines = []
    g = ft["gain_in_distribution"]
    learned = excludes_zero(g) and g["ci_low"] > 0
    lines.append(f"fine-tuning's in-distribution gain {format_ci(g)}: "
                 + ("excludes zero (it learns the screen)" if learned else "includes zero (no measured learning)"))
    r, base = ft["retention"], ft["retention_base"]
    lost = r["ci_high"] < base
    lines.append(f"fine-tuning's retention {format_ci(r)} vs the parent's {base:.3f}: "
                 + ("below the parent's (it forgets, on real measurements)" if lost
                    else "the parent's value lies inside the interval (no measured forgetting)"))
    keepers = []
    for label, e in strategies.items():
        if label == "finetune" or "retention" not in e:
            continue
        keeps = e["retention"]["mean"] >= 0.97 * base
        gains = (e["gain_in_distribution"]["mean"] >= 0.95 * g["mean"]) if g["mean"] > 0 else (
            e["gain_in_distribution"]["mean"] >= g["mean"])
        if keeps and gains:
            keepers.append(label)
    lines.append("strategies keeping >= 97% of the parent's retention at >= 95% of fine-tuning's mean gain: "
                 + (", ".join(keepers) if keepers else "none"))
    return lines


def render(results: dict[str, dict], chain: dict | None = None) -> str:
    """docs/results/real_bases.md."""
    from genocl_plugin.evaluation.stats import format_ci

    lines = ["# The forgetting study on real pretrained bases", "",
             "Generated by `python benchmarks/real_bases.py` (numbers: `docs/results/real_bases/*.json`). "
             "Mean [95% CI] over the test seeds; `vs ft` is the paired difference from fine-tuning. "
             "Hyperparameters were picked on the validation seeds 100-102 only.", ""]
    for letter, result in results.items():
        s = summarise(result)
        base = BASES[SCENARIOS[letter]["base"]]
        screen_label = SCENARIOS[letter].get("screen_label", result["screen"])
        lines += [f"## ({letter}) {result['base']} -> {screen_label}", "",
                  f"Commit {result['commit'][:12]}, {result['date']}, mode {result['mode']}, "
                  f"{result.get('seconds', 0) / 60:.1f} min on {result['machine']}; "
                  f"{len(result['settings']['seeds'])} test seeds; readout **{result['chosen']['readout']}**, "
                  f"lr {result['chosen']['lr']:g}, {result['chosen']['params']}.", ""]
        from genocl_plugin.evaluation.stats import mean_ci

        if result.get("probe"):
            lines += ["### What a head could learn (probe)", "",
                      "| readout | probe Pearson (held-out blocks) | zero-shot Pearson (same blocks) |",
                      "|---|---|---|"]
        for name, p in (result.get("probe") or {}).items():
            lines.append(f"| {name} | {format_ci(mean_ci([r['probe'] for r in p['rows']]))} | "
                         f"{format_ci(mean_ci([r['zero_shot'] for r in p['rows']]))} |")
        first = next(iter((result.get("probe") or {"": None}).values()))
        if first is not None:
            lines += ["", f"{first['n_features']} features (the change of each output summed over the element "
                      f"and of each trunk feature averaged over it), {first['n_variants']} variants, "
                      f"{len(first['rows'])} block splits (50-bp blocks, 20% held out). The probe's features do "
                      "not depend on the readout; only the zero-shot column does.", ""]
        lines += ["### Validation grid", "", "| readout | lr | in-distribution after | gain |", "|---|---|---|---|"]
        for g in result["grid_finetune"]:
            lines.append(f"| {g['readout']} | {g['lr']:g} | {g['id_after']:+.3f} | {g['gain_id']:+.3f} |")
        lines += ["", "| strategy | value | gain | valid retention |", "|---|---|---|---|"]
        for g in result["grid_strategies"]:
            lines.append(f"| {g['label']} | {g['params']} | {g['gain_id']:+.3f} | {g['retention_valid']:.3f} |")
        parent = result["parent"]
        ret_name = "real CAGE Pearson (test windows)" if "cage_pearson" in parent else f"AUROC, {base['peaks_name']}"
        lines += ["", "### Test seeds", "",
                  f"Parent: retention ({ret_name}) {retention_of(parent):.3f}"
                  + (f"; peak AUROC {parent['peaks_auroc_after']:.3f} ({parent['peaks_n_peaks']} peaks, "
                     f"{parent['peaks_n_flanks']} flanks)" if "peaks_auroc_after" in parent else "")
                  + (f"; peak signal Pearson {parent['peaks_signal_pearson_after']:.3f}"
                     if parent.get("peaks_signal_pearson_after") is not None else "") + ".", "",
                  "| strategy | gain, in distribution | vs ft | gain, held-out elements | retention | vs ft | "
                  "peak AUROC | drift, 1 - r (0 = unchanged) |", "|---|---|---|---|---|---|---|---|"]
        for label, e in s.items():
            lines.append(f"| {label} | {format_ci(e['gain_in_distribution'])} | "
                         f"{format_ci(e.get('gain_in_distribution_vs_finetune'))} | {format_ci(e['gain_ood'])} | "
                         f"{format_ci(e['retention'])} | {format_ci(e.get('retention_vs_finetune'))} | "
                         f"{format_ci(e.get('peaks_auroc'))} | {format_ci(e['drift'])} |")
        lines += ["", "On the peak and flank windows (what the base was trained on): the peaks' predicted signal "
                  "vs their signalValue, and the drift from the parent, 1 - r, of the counts (log signal per "
                  "window) and, for 1-bp two-strand models, of the profile (mean per-window Pearson):", "",
                  "| strategy | peak signal Pearson | counts drift | profile drift |", "|---|---|---|---|"]
        for label, e in s.items():
            lines.append(f"| {label} | {format_ci(e.get('peaks_signal_pearson'))} | "
                         f"{format_ci(e.get('peaks_drift_counts'))} | {format_ci(e.get('peaks_drift_profile'))} |")
        lines += ["", "Claims:", ""] + [f"- {c}" for c in claims(s)] + [""]
    if chain:
        lines += chain_section(chain)[1]
    return "\n".join(lines) + "\n"


def readme_table(results: dict[str, dict]) -> str:
    """The compact table docs/study.md shows (generated here, so no number is typed by hand)."""
    from genocl_plugin.evaluation.stats import choose_auto_strategy, format_ci

    lines = ["| base -> new data | retention measured as | parent | fine-tuning: gain | fine-tuning: retention | "
             "best kept (gain; retention) | auto |", "|---|---|---|---|---|---|---|"]
    for letter, result in results.items():
        s = summarise(result)
        ft = s["finetune"]
        others = {k: v for k, v in s.items() if k != "finetune"}
        best = max(others, key=lambda k: others[k]["retention"]["mean"]) if others else None
        what = "real CAGE Pearson" if "cage_pearson" in result["parent"] else "CTCF peak AUROC"
        strategy, _ = choose_auto_strategy({LABELS[k] if k == "finetune" else k: v for k, v in s.items()})
        lines.append(f"| ({letter}) {result['base'].split(' (')[0].split(',')[0]} -> {result['screen']} | {what} | "
                     f"{ft['retention_base']:.3f} | {format_ci(ft['gain_in_distribution'])} | "
                     f"{format_ci(ft['retention'])} | "
                     + (f"{best}: {format_ci(others[best]['gain_in_distribution'])}; "
                        f"{format_ci(others[best]['retention'])}" if best else "-")
                     + f" | {strategy if SCENARIOS[letter]['arch'] else '- (no arch pick)'} |")
    return "\n".join(lines) + "\n"


def write_outputs(results: dict[str, dict], chain: dict | None = None) -> None:
    """docs/results/real_bases.md, the scenarios in summary.json, auto_strategy.json per architecture."""
    from genocl_plugin.evaluation.stats import choose_auto_strategy

    (ROOT / "docs" / "results" / "real_bases.md").write_text(render(results, chain))
    (RESULTS / "readme_table.md").write_text(readme_table(results))
    summary_path = ROOT / "docs" / "results" / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {"scenarios": {}}
    auto_path = BUNDLED / "auto_strategy.json"
    auto = json.loads(auto_path.read_text()) if auto_path.exists() else {}
    for letter, result in results.items():
        s = summarise(result)
        scenario = SCENARIOS[letter]
        summary.setdefault("scenarios", {})[scenario["key"]] = {
            "model": result["base"], "screen": result["screen"], "strategies": s,
            "command": "python benchmarks/real_bases.py", "commit": result["commit"], "mode": result["mode"],
            "chosen": result["chosen"], "parent": result["parent"]}
        summary.setdefault("base_models", {})[result["base"]] = {"retention_parent": result["parent"]}
        if not scenario["arch"]:
            continue
        strategy, reason = choose_auto_strategy({LABELS[k] if k == "finetune" else k: v for k, v in s.items()})
        label = next((k for k in s if k == strategy or LABELS[k] == strategy), "finetune")
        auto[scenario["arch"]] = {
            "strategy": LABELS[label], "params": s[label]["params"], "label": label, "reason": reason,
            "mode": result["mode"], "commit": result["commit"], "scenario": scenario["key"],
            "evidence": {"model": result["base"], "n_seeds": s["finetune"]["n_seeds"],
                         "finetune": {k: s["finetune"][k] for k in ("gain_in_distribution", "retention", "drift")},
                         "strategies": {k: {"strategy": v["strategy"], "params": v["params"],
                                            **{m: v.get(m) for m in ("gain_in_distribution_vs_finetune",
                                                                     "retention_vs_finetune", "drift_vs_finetune")}}
                                        for k, v in s.items() if k != "finetune"}}}
    if chain:
        summary["scenarios"][CHAIN["key"]] = {**chain_section(chain)[0], "command": chain["command"],
                                              "commit": chain["commit"], "mode": chain["mode"]}
    summary_path.write_text(json.dumps(summary, indent=1, default=float))
    auto_path.write_text(json.dumps(auto, indent=1, default=float))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", choices=[*sorted(SCENARIOS), "g"], action="append",
                        help="run only these scenarios (default: all; g, the chain, after d)")
    parser.add_argument("--quick", action="store_true", help="a small smoke-sized run (not for the record)")
    parser.add_argument("--shared", default=None, help="the real data (default $GENOCL_SHARED or ../shared/data)")
    parser.add_argument("--workdir", default=None, help="where the runs go (default a temporary directory)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--render-only", action="store_true", help="re-render from docs/results/real_bases/*.json")
    args = parser.parse_args()
    shared = shared_dir(args.shared)
    if not args.render_only:
        if not (shared / BASES["puffin"]["file"]).exists():
            sys.exit(f"error: {shared}: the real pretrained weights are not there; pass --shared DIR")
        import tempfile

        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        mode = "quick" if args.quick else "full"
        work = Path(args.workdir or tempfile.mkdtemp(prefix="genocl-real-bases-"))
        # a quick run is a smoke test: its numbers stay in the work directory, never in docs/
        results_dir = RESULTS if mode == "full" else work / "results"
        for letter in args.scenario or [*sorted(SCENARIOS, key=["d", "f", "e"].index), "g"]:
            if letter == "g":
                chain = run_chain(shared, work, mode, results_dir)
                if mode == "quick":
                    print(render({}, chain))
                continue
            result = run_scenario(letter, shared, SETTINGS[mode], work, mode, results_dir)
            if mode == "quick":
                print(render({letter: result}))
        if mode == "quick":
            return
    results = {}
    for letter, scenario in SCENARIOS.items():
        path = RESULTS / f"{scenario['key']}.json"
        if path.exists():
            data = json.loads(path.read_text())
            if data.get("rows") and "seconds" in data:
                results[letter] = data
    chain_file = RESULTS / f"{CHAIN['key']}.json"
    chain = json.loads(chain_file.read_text()) if chain_file.exists() else None
    if results:
        write_outputs(results, chain)
        print((ROOT / "docs" / "results" / "real_bases.md").read_text())


if __name__ == "__main__":
    main()
