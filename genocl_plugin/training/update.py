"""``genocl update``: update a model on a screen and measure what it learned and forgot.

screen -> objective -> pytorch_lightning training (gReLU LightningModel + strategy
callbacks) -> checkpoint -> evaluation -> run directory. :func:`run_update` calls one function
per stage, top to bottom; ``--strategy auto`` is :mod:`~genocl_plugin.training.auto`, the
Trainer :mod:`~genocl_plugin.training.trainer`, the strategies' saved state
:mod:`~genocl_plugin.training.strategy_state`.
"""

from __future__ import annotations

import copy
import datetime
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from genocl_plugin import objectives
from genocl_plugin.config import BATCHNORM_STATS, UpdateConfig
from genocl_plugin.data import reference, screens, tracks
from genocl_plugin.data.fileio import atomic_dir, sha256sum
from genocl_plugin.data.screens import (
    BUNDLED_MAX_EVAL,
    BUNDLED_MAX_TRAIN,
    BUNDLED_SCREENS,
    default_screen,
    prepare_screen,
)
from genocl_plugin.errors import input_error
from genocl_plugin.evaluation import evaluate, peaks
from genocl_plugin.models import load_model, read_config, resolve_model_dir, save_model
from genocl_plugin.objectives import predict_screen_effects
from genocl_plugin.progress import StageLog
from genocl_plugin.training import hardware, memory, resume
from genocl_plugin.training.auto import AUTO_PARAMS, AUTO_STRATEGY, auto_key, resolve_auto, resolve_auto_strategy
from genocl_plugin.training.strategy_state import load_strategy_state, save_strategy_state
from genocl_plugin.training.trainer import train_on_screen

# Re-exported: the update's settings, its screen split and effect predictions live below the
# command so that evaluate (metrics) does not import it.
__all__ = ["UpdateConfig", "prepare_screen", "predict_screen_effects", "default_screen", "run_update",
           "BUNDLED_SCREENS", "BUNDLED_MAX_TRAIN", "BUNDLED_MAX_EVAL",
           # the update's parts that live in their own modules, importable from here as before
           "AUTO_PARAMS", "AUTO_STRATEGY", "auto_key", "resolve_auto", "resolve_auto_strategy",
           "load_strategy_state", "save_strategy_state", "train_on_screen"]

TRAIN_FIT_ROWS = 64
# The [stage i/n] lines run_update prints (genocl_plugin/progress.py): model, reference set, screen,
# effects before, training (with the strategies' set-up inside it), effects after, retention, saving.
UPDATE_STAGES = 8


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-1 of a model's parameters and buffers (names, shapes, values)."""
    import hashlib

    digest = hashlib.sha1()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                      if tensor.numel() else b"")
    return digest.hexdigest()


@dataclass
class UpdateRun:
    """What the stages of one update hand on to each other, filled in stage by stage."""

    config: UpdateConfig
    out: Path
    trainer_kwargs: dict | None
    callbacks: list | None = None  # None until ``auto`` is resolved (it needs the model's architecture)
    assay: str | None = None
    resume_from: Path | None = None
    model: object = None  # the model being updated
    base: object = None  # a frozen copy of the parent: every "before" and retention compares with it
    device: object = None
    eval_batch: int = 16
    parent_dir: Path | None = None
    parent_config: dict = field(default_factory=dict)
    ref: object = None
    ref_problem: str | None = None
    screen_path: Path | None = None
    train: object = None  # the training part of the screen (AnnData)
    val: object = None
    train_set: object = None
    test_set: object = None
    id_set: object = None
    fit_idx: np.ndarray | None = None
    fit_set: object = None
    selector: object = None

    @property
    def is_tracks(self) -> bool:
        return getattr(self.train_set, "kind", None) == "tracks"

    def predict(self, model, dataset):
        """Screen predictions (effects, expression, activity or track crops) of ``model``."""
        predict = tracks.predict_tracks if self.is_tracks else predict_screen_effects
        return predict(model, dataset, self.eval_batch)


def run_update(config: UpdateConfig, out: str | os.PathLike, force: bool = False,
               trainer_kwargs: dict | None = None, checkpoint_every: int | None = None,
               resume_run: bool = False, parent_predictions: dict | None = None) -> dict:
    """Update a model on a screen; write ``model/``, ``metrics.json``, ``report.png``.

    The stages, each a function below, print one ``[stage i/8]`` line (genocl_plugin/progress.py):
    loading the model, reference set, screen, effects before the update, training (with the
    strategies' set-up inside it), effects after the update, retention, saving.

    Parameters
    ----------
    config
        The update settings.
    out
        The run directory (written atomically; an existing one needs ``force``).
    force
        Replace an existing run directory.
    trainer_kwargs
        Extra Trainer arguments.
    checkpoint_every
        Save the training state every N optimiser steps in ``.<out>.partial/`` (resumable).
    resume_run
        Continue the interrupted run whose state is in ``.<out>.partial/``.
    parent_predictions
        A dict shared by several updates of one parent (a benchmark running each strategy on the
        same split): the parent's predictions on the held-out and fit sets are stored in it and
        reused, keyed by a digest of the parent's weights and each dataset's content
        (:func:`~genocl_plugin.objectives.dataset_fingerprint`), so a different parent or split
        never hits. None: no sharing.

    Returns
    -------
    dict
        ``report`` (the forgetting report), ``run`` (the run directory), ``strategy`` (as resolved)
        and ``stages`` (``{name, seconds}`` of each stage, also in ``metrics.json``).
    """
    stages = StageLog(total=UPDATE_STAGES)
    run = check_update(config, Path(out), force, trainer_kwargs, checkpoint_every, resume_run)
    with stages.stage("loading the model", Path(str(config.model)).name) as stage:
        stage.note = load_parent(run)
    source = Path(config.reference_regions).name if config.reference_regions else "bundled hg38 windows"
    with stages.stage("reference set", source) as stage:
        stage.note = attach_reference_set(run)
    run.base = copy.deepcopy(run.model).eval()
    with stages.stage("screen", Path(str(config.data)).name if config.data else "bundled screen") as stage:
        stage.note = read_screen_splits(run)
    rows = effect_rows(run)
    with stages.stage("effects before the update", rows):
        before = predict_before(run, parent_predictions)
    run.selector = epoch_selector(run)
    # own line: the strategies' set-up (pseudo-targets, importance estimates) are stages inside this
    # one, and Lightning prints its progress bar
    with stages.stage("training", training_detail(run.config, len(run.train_set), run.selector is not None),
                      own_line=True):
        train_update(run, checkpoint_every)
    with stages.stage("effects after the update", rows):
        run.model.to(run.device)  # Lightning's teardown leaves it on the CPU
        after = {key: run.predict(run.model, dataset) if dataset is not None else None
                 for key, dataset in (("test", run.test_set), ("train", run.fit_set), ("id", run.id_set))}
    if run.ref is not None:
        n_retention = len(run.ref.subset("test", run.config.retention_crops, 0))
        with stages.stage("retention", f"{n_retention:,} held-out reference windows, parent and update"):
            retained = measure_retention(run)
    else:
        retained = dict.fromkeys(("pearson_before", "pearson_after", "retention_ratio",
                                  "drift_pearson", "drift_rel_l2"), float("nan"))
        retained["not_measured"] = run.ref_problem
    per_track = retained.pop("per_track", None)
    report = build_report(run, before, after, retained)
    with stages.stage("saving", str(run.out)), atomic_dir(run.out, force=force) as tmp:
        save_run(run, report, before, after, per_track, tmp, stages)
    resume.remove_partial(run.out)
    return {"report": report, "run": run.out, "strategy": run.config.strategy,
            "strategy_params": run.config.strategy_params, "arch": run.model.data_params.get("arch"),
            "auto_key": auto_key(run.model, run.assay), "stages": stages.finished()}


# ---------------------------------------------------------------------------------------------
# The stages, in the order run_update calls them
# ---------------------------------------------------------------------------------------------


def check_update(config: UpdateConfig, out: Path, force: bool, trainer_kwargs: dict | None,
                 checkpoint_every: int | None, resume_run: bool) -> UpdateRun:
    """Every check that needs no model, before the slow load: options, the partial run, an
    explicit strategy, the screen's assay, the peak file."""
    from genocl_plugin.strategies import resolve_strategies

    if out.exists() and not force:
        raise input_error(out, "--out", "already exists", "choose a new directory or pass --force")
    if checkpoint_every is not None and checkpoint_every < 1:
        raise input_error(checkpoint_every, "--checkpoint-every", "must be at least 1", "e.g. --checkpoint-every 100")
    if config.batchnorm_stats not in BATCHNORM_STATS:  # the CLI's Choice checks it; the Python API lands here
        raise input_error(config.batchnorm_stats, "batchnorm_stats", "unknown value",
                          f"pass one of {', '.join(BATCHNORM_STATS)}")
    if not 0 <= config.id_holdout < 1:  # the CLI's type checks it (NaN fails here too); the Python API lands here
        raise input_error(config.id_holdout, "--id-holdout", "must be a fraction in [0, 1)", "e.g. --id-holdout 0.2")
    if not 0 <= config.val_holdout < 1:  # the CLI's type checks it; the Python API lands here
        raise input_error(config.val_holdout, "--val-holdout", "must be a fraction in [0, 1)", "e.g. --val-holdout 0.2")
    if config.val_holdout and (checkpoint_every or resume_run):
        # a resumed run would score its restored weights as "epoch 0" and could return them as the parent's
        raise input_error(config.val_holdout, "--val-holdout", "cannot be combined with --checkpoint-every/--resume",
                          "leave out --val-holdout, or the checkpointing options")
    run = UpdateRun(config=config, out=out, trainer_kwargs=trainer_kwargs)
    run.resume_from = resume.check_partial(out, resume_run)
    # The run's seed also seeds the strategies' sampling (replay draws, Fisher / MAS windows).
    # An explicit strategy is resolved before the (slow) model load so bad flags fail fast;
    # ``auto`` needs the model's architecture first.
    run.callbacks = (None if config.strategy.strip() == "auto"
                     else resolve_strategies(config.strategy, seed=config.seed, **config.strategy_params))
    if config.data:
        run.assay = screens.read_screen(config.data).uns["assay"]
        if config.mpra_input_length is not None:  # before the slow model load
            objectives.check_mpra_assay(run.assay, config.data)
    peaks.check_peaks_option(config.reference_peaks, config.reference_fasta, config.reference_holdout_chroms)
    return run


def load_parent(run: UpdateRun) -> str:
    """Load the parent, resolve ``auto``, fit the batch size to memory, restore the strategies'
    state from the parent run; returns the stage's note."""
    from genocl_plugin.strategies import resolve_strategies

    model = load_model(run.config.model)
    if run.callbacks is None:
        run.config = resolve_auto(run.config, model, run.assay)
        run.callbacks = resolve_strategies(run.config.strategy, seed=run.config.seed, **run.config.strategy_params)
    # The passes outside the Trainer (effects before/after, retention) run where it trains.
    run.device = hardware.inference_device(run.trainer_kwargs)
    # one meta-device pass measures the activations both the training and the evaluation batch use
    saved = memory.saved_activation_bytes(model.model, model.seq_len)
    batch_size, memory_note = preflight_memory(run.config, model, run.assay, run.device, saved)
    run.config = replace(run.config, batch_size=batch_size)
    run.eval_batch = hardware.default_batch_size(model.model, model.seq_len, training=False, cap=16,
                                                 device_type=run.device.type, saved_bytes=saved)
    model.to(run.device)
    run.parent_dir = resolve_model_dir(run.config.model)
    run.parent_config = read_config(run.parent_dir) if run.parent_dir is not None else {}
    load_strategy_state(run.parent_dir, run.parent_config, run.config.strategy, run.callbacks)
    if run.config.targets:
        name_outputs(model, run.config.targets)
    run.model = model
    return (f"{sum(p.numel() for p in model.parameters()):,} parameters, {model.seq_len:,}-bp input"
            + (f"; {memory_note}" if memory_note else ""))


def attach_reference_set(run: UpdateRun) -> str:
    """Build the reference set and hand it to the strategies that draw on it."""
    run.ref, run.ref_problem = build_reference_set(run.config, run.model, batch_size=run.eval_batch)
    for cb in run.callbacks:
        if hasattr(cb, "reference") and cb.reference is None:
            if run.ref is None:
                raise input_error("--strategy", run.config.strategy, f"needs reference windows: {run.ref_problem}",
                                  "pass --reference-fasta GENOME.fa --reference-regions REGIONS.bed")
            cb.reference = run.ref
    ref = run.ref
    return (f"{sum(ref.size(s) for s in reference.SPLITS):,} windows ({ref.size('test'):,} test) "
            f"of {ref.geometry.seq_len:,} bp, {ref.describe()['tracks']} targets"
            if ref is not None else f"not available: {run.ref_problem}")


def read_screen_splits(run: UpdateRun) -> str:
    """Split the screen (training, held-out elements, held-out blocks, validation) and build the
    objective's datasets; a tracks screen gets its head."""
    config, model = run.config, run.model
    run.screen_path, run.train, test, test_id, run.val = prepare_screen(config, model, in_distribution=True,
                                                                       validation=True)
    if run.train.uns.get("crispri_fit"):  # CRISPRi pairs the model's geometry cannot hold were skipped
        print(f"{run.screen_path}: {run.train.uns['crispri_fit']}", flush=True)
    limits = {"train": config.max_train, "test": config.max_eval, "id": config.max_eval_id or config.max_eval}
    datasets = {key: objectives.screen_dataset(part, model, config.silencing, config.seed, path=str(run.screen_path),
                                               readout=config.readout_tracks, pairwise_alpha=config.pairwise_alpha,
                                               max_items=limits[key], mpra_seq_len=config.mpra_input_length)
                for key, part in (("train", run.train), ("test", test), ("id", test_id))
                if key != "id" or part.n_obs}
    run.train_set, run.test_set, run.id_set = datasets["train"], datasets["test"], datasets.get("id")
    if run.is_tracks:
        run.callbacks, run.config = track_head(run.train_set.track_names, model, run.callbacks, config,
                                               run.screen_path)
    # The fit on training elements is a sanity check, so a fixed subset keeps it cheap.
    run.fit_idx = np.sort(np.random.default_rng(config.seed).choice(
        len(run.train_set), min(len(run.train_set), TRAIN_FIT_ROWS), replace=False))
    run.fit_set = torch.utils.data.Subset(run.train_set, run.fit_idx)
    return (f"{len(run.train_set):,} training, {len(run.test_set):,} held-out"
            + (f", {len(run.id_set):,} in-distribution" if run.id_set is not None else "") + " rows")


def effect_rows(run: UpdateRun) -> str:
    """The effects stages' counts: ``16 held-out + 16 training + 16 in-distribution rows``."""
    return (f"{len(run.test_set):,} held-out + {len(run.fit_set):,} training"
            + (f" + {len(run.id_set):,} in-distribution" if run.id_set is not None else "") + " rows")


def predict_before(run: UpdateRun, parent_predictions: dict | None) -> dict:
    """The parent's predictions on the held-out, training-fit and in-distribution rows (shared
    through ``parent_predictions`` between updates of one parent on one split)."""
    weights = weights_digest(run.base) if parent_predictions is not None else None

    def predict_parent(dataset):
        fingerprint = objectives.dataset_fingerprint(dataset) if weights else None
        if fingerprint is None:
            return run.predict(run.base, dataset)
        if (weights, fingerprint) not in parent_predictions:
            parent_predictions[weights, fingerprint] = run.predict(run.base, dataset)
        return parent_predictions[weights, fingerprint].copy()

    return {"test": predict_parent(run.test_set), "train": predict_parent(run.fit_set),
            "id": predict_parent(run.id_set) if run.id_set is not None else None}


def epoch_selector(run: UpdateRun):
    """``--val-holdout``: the callback that keeps the best epoch on the validation blocks, or None."""
    if not run.val.n_obs:
        return None
    from genocl_plugin.training.selection import BestEpochCallback

    config = run.config
    val_set = objectives.screen_dataset(run.val, run.model, config.silencing, config.seed, path=str(run.screen_path),
                                        readout=config.readout_tracks, mpra_seq_len=config.mpra_input_length)
    return BestEpochCallback(val_set, predict_screen_effects, run.eval_batch, config.patience)


def train_update(run: UpdateRun, checkpoint_every: int | None) -> None:
    """Lightning training with the strategy callbacks (and the epoch selector), resumable."""
    partial = resume.partial_dir(run.out) if (checkpoint_every or run.resume_from) else None
    train_on_screen(run.model, run.train_set, run.config, run.callbacks + ([run.selector] if run.selector else []),
                    run.trainer_kwargs, checkpoint_dir=partial, checkpoint_every=checkpoint_every,
                    resume_from=run.resume_from)


def measure_retention(run: UpdateRun) -> dict:
    """Retention and drift on the held-out reference windows, parent vs update (and a Puffin's
    strand CAGE outputs against the bundled windows' real CAGE tracks)."""
    config = run.config
    retained = evaluate.reference_retention(run.base, run.model, run.ref, "test", max_windows=config.retention_crops)
    if not run.ref.has_tracks and run.ref.name.startswith("bundled"):
        # outputs without bundled track names may still include per-strand CAGE (Puffin)
        cage = evaluate.real_cage_retention(run.base, run.model, "test", max_windows=config.retention_crops)
        if cage is not None:
            retained["real_cage"] = cage
    return retained


def measured_values(run: UpdateRun) -> tuple:
    """The measured values of the held-out and training-fit rows, and the metrics that compare them."""
    if run.is_tracks:
        return tracks.dataset_targets(run.test_set), tracks.dataset_targets(run.fit_set), evaluate.tracks_metrics
    return run.test_set.effect, run.train_set.effect[run.fit_idx], evaluate.effect_metrics


def build_report(run: UpdateRun, before: dict, after: dict, retained: dict) -> dict:
    """The forgetting report: the new task before/after (held out, training fit, in distribution,
    across individuals), retention, epoch selection, what each strategy did, the split."""
    config, model, train_set, test_set, id_set = run.config, run.model, run.train_set, run.test_set, run.id_set
    measured_test, measured_train, metrics_of = measured_values(run)
    report = evaluate.forgetting_report(metrics_of(before["test"], measured_test),
                                        metrics_of(after["test"], measured_test), retained)
    report["new_task"]["train_before"] = metrics_of(before["train"], measured_train)
    report["new_task"]["train_after"] = metrics_of(after["train"], measured_train)
    if run.is_tracks:
        report["new_task"]["kind"] = "tracks"
        report["new_task"]["readout_tracks"] = list(train_set.track_names)[:50]
    else:
        report["new_task"]["readout_tracks"] = [model.task_names[i]
                                                for i in np.flatnonzero(train_set.track_mask)][:50]
        if getattr(train_set, "kind", None) == "activity":
            # Pearson/Spearman of predicted vs measured log2 activity; mse compares the model's own
            # scale with the measured one (the loss is scale-free) and is not calibrated
            report["new_task"]["kind"] = "activity"
        if getattr(model, "screen_tracks", None):  # multihead: after training the objective read its screen head
            report["new_task"]["readout_head"] = [model.task_names[i] for i in model.screen_tracks]
    if isinstance(test_set, objectives.PersonalDataset):  # the field's metric: across people, per gene
        report["new_task"]["cross_individual"] = {
            "before": evaluate.cross_individual_metrics(before["test"], measured_test, test_set.groups),
            "after": evaluate.cross_individual_metrics(after["test"], measured_test, test_set.groups),
            "holdout_by": config.holdout_by, "pairwise_alpha": config.pairwise_alpha}
    if id_set is not None:
        # in distribution: held-out position blocks of the training elements
        id_before, id_after = (evaluate.effect_metrics(p, id_set.effect) for p in (before["id"], after["id"]))
        report["new_task"]["in_distribution"] = {
            "before": id_before, "after": id_after,
            "pearson_gain": evaluate._sub(id_after["pearson"], id_before["pearson"])}
    if run.selector is not None:
        report["epoch_selection"] = {"val_holdout": config.val_holdout, **run.selector.summary()}
    # What each strategy did (frozen parts, heads, adapters, forgetting-budget checks).
    report["strategies"] = {type(cb).__name__: cb.summary() for cb in run.callbacks if hasattr(cb, "summary")}
    report["split"] = {
        "train_elements": sorted(set(train_set.groups)), "test_elements": sorted(set(test_set.groups)),
        "n_train": len(train_set), "n_test": len(test_set),
        "n_test_in_distribution": len(id_set) if id_set is not None else 0,
    }
    if run.train.uns.get("crispri_fit"):
        report["split"]["crispri_fit"] = str(run.train.uns["crispri_fit"])
    return report


def save_run(run: UpdateRun, report: dict, before: dict, after: dict, per_track: dict | None, tmp: Path,
             stages: StageLog) -> None:
    """Write the run directory (into ``tmp``, renamed into place by the caller): ``model/`` with
    its lineage and strategy state, ``metrics.json``, ``report.png`` and the per-row tables."""
    config, model = run.config, run.model
    screen_hash = sha256sum(run.screen_path)
    lineage = list(run.parent_config.get("lineage", []))
    lineage.append({
        "step": "update", "parent": str(config.model), "screen": str(run.screen_path),
        "screen_sha256": screen_hash, "strategy": config.strategy,
        "hyperparameters": asdict(config),
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "metrics": {"new_task_pearson_after": report["new_task"]["after"]["pearson"],
                    "retention_pearson_after": report["retention"]["pearson_after"]},
    })
    screens_seen = list(run.parent_config.get("screens_seen", [])) + [
        {"path": str(run.screen_path), "sha256": screen_hash, "assay": run.train.uns["assay"]}]
    base_name = run.parent_config.get("name", str(config.model))
    if config.reference_peaks:  # peak-vs-flank AUROC, signal Pearson, drift (peaks.png, peaks_windows.tsv)
        report["peaks"] = peaks.update_report(config, run.base, model, tmp, batch_size=run.eval_batch)
    save_model(model, tmp / "model", extra={
        "name": f"{base_name}+{Path(run.screen_path).stem}", "lineage": lineage,
        "screens_seen": screens_seen, "strategy": config.strategy, "strategy_params": config.strategy_params,
        "metrics": report,
        "test_metrics": run.parent_config.get("test_metrics", {}),
        "strategy_state": sorted({cb.state_name for cb in run.callbacks if hasattr(cb, "state_dict_for_run")}),
    })
    save_strategy_state(run.callbacks, tmp / "model")
    # the stages that ended before this file was written (all but saving)
    evaluate.write_json({"config": asdict(config), **report, "lineage": lineage, "stages": stages.finished()},
                        tmp / "metrics.json", sealed=True)
    measured_test, _, _ = measured_values(run)
    if run.is_tracks:
        scatter = tracks.scatter_sample(measured_test, before["test"], after["test"], seed=config.seed)
        evaluate.plot_report(report, scatter, tmp / "report.png")
        _write_heldout_tracks(tmp / "tracks_heldout.tsv", run.train_set.track_names, measured_test,
                              before["test"], after["test"])
    else:
        evaluate.plot_report(report, {"measured": measured_test, "pred_before": before["test"],
                                      "pred_after": after["test"]}, tmp / "report.png")
        _write_effects(tmp / "effects_heldout.tsv", run.test_set, before["test"], after["test"])
    if per_track is not None:
        _write_per_track(tmp / "retention_per_track.tsv", run.ref.track_names, per_track)


# ---------------------------------------------------------------------------------------------
# What the stages use
# ---------------------------------------------------------------------------------------------


def training_detail(config: UpdateConfig, n_train: int, selection: bool = False) -> str:
    """The training stage's counts: ``1 epoch x 2 batches of 8`` (and optimiser steps when accumulating)."""
    import math

    batches = math.ceil(n_train / max(config.batch_size or 1, 1))
    epochs = f"{'up to ' if selection else ''}{config.epochs} epoch{'s' if config.epochs != 1 else ''}"
    text = f"{epochs} x {batches:,} batch{'es' if batches != 1 else ''} of {config.batch_size}"
    if config.accumulate_grad_batches > 1:
        steps = math.ceil(batches / config.accumulate_grad_batches)
        text += f" = {steps:,} optimiser step{'s' if steps != 1 else ''} per epoch"
    return text


def track_head(names, model, callbacks: list, config: UpdateConfig, path) -> tuple[list, UpdateConfig]:
    """Give a tracks screen's tracks an output: the model's own, or a new ``multihead`` head.

    Tracks the model already predicts are trained in place. Tracks it does not predict need a
    head; ``multihead`` is added to the strategy when missing (recorded in the run's
    strategy), as Enformer's mouse head was added beside its human one.
    """
    from genocl_plugin.strategies.multihead import MultiHeadCallback

    heads = [cb for cb in callbacks if isinstance(cb, MultiHeadCallback)]
    own = set(model.task_names)
    present = [n for n in names if n in own]
    if present and len(present) < len(names):
        raise input_error(path, "uns['track_names']", f"{len(present)} of {len(names)} tracks are outputs of the "
                          f"model already (e.g. {present[0]!r})", "put the new tracks and the known ones in "
                          "separate screens")
    if present:
        if heads:
            raise input_error("--strategy", "multihead", "the model predicts these tracks already",
                              "drop multihead: the tracks are trained in place")
        return callbacks, config
    if not heads:
        heads = [MultiHeadCallback()]
        callbacks = heads + list(callbacks)
        strategy = "multihead" if config.strategy.strip() == "finetune" else f"multihead,{config.strategy}"
        print(f"{path}: {len(names)} new tracks: adding a head for them (--strategy {strategy})", flush=True)
        config = replace(config, strategy=strategy)
    heads[0].task_names = list(names)
    return callbacks, config


def preflight_memory(config: UpdateConfig, model, assay: str | None, device,
                     saved_bytes: int | None = None) -> tuple[int, str | None]:
    """The batch size of the update and a note on its memory, or a refusal before anything slow.

    ``--batch-size`` when given (refused when one step cannot fit, unless ``--no-memory-check``),
    else the largest power of two up to 16 that fits (genocl_plugin/training/memory.py).
    """
    from genocl_plugin.strategies import parse_strategies

    names = tuple(parse_strategies(config.strategy))
    replay_ratio = config.strategy_params.get("replay_ratio", 0.25) if "replay" in names else None
    return memory.check_training_step(
        model.model, model.seq_len, config.batch_size, precision=config.precision,
        checkpointing=config.gradient_checkpointing, sequences_per_example=1.0 if assay == "tracks" else 2.0,
        replay_ratio=replay_ratio, strategies=names, device_type=device.type, device_index=device.index or 0,
        resident=device.type == "cpu", refuse=config.memory_check, saved_bytes=saved_bytes)


def build_reference_set(config: UpdateConfig, model, batch_size: int = 16):
    """The update's reference set, or ``(None, reason)`` when no reference windows fit the model.

    Bad reference files are input errors; a model the bundled windows cannot serve, with no
    ``--reference-regions``, is not (plain fine-tuning still runs; the report says why retention
    was not measured and strategies that need reference data refuse with the fix).
    """
    # --reference-peaks alone: --reference-fasta / --reference-holdout-chroms are the peaks' (the
    # reference windows stay the bundled ones); with --reference-regions they serve both.
    shared = config.reference_regions is not None or not config.reference_peaks
    try:
        return reference.reference_set_for(
            model, fasta=config.reference_fasta if shared else None, regions=config.reference_regions,
            tracks=config.reference_tracks, holdout_chroms=config.reference_holdout_chroms if shared else None,
            batch_size=batch_size), None
    except reference.ReferenceUnavailable as err:
        return None, str(err)


def name_outputs(model, targets_path: str) -> None:
    """Name a model's reference outputs from a Basenji-style targets file (kept with the model)."""
    table = reference.read_targets_file(targets_path)
    outputs = reference.reference_output_names(model)
    if len(table) != len(outputs):
        raise input_error(targets_path, "rows", f"{len(table)} targets but the model has {len(outputs)} outputs",
                          "pass the targets file of this model's head (e.g. targets_human.txt for 5,313 tracks)")
    names = reference.names_from_targets(table)
    extra = model.task_names[len(outputs):]  # screen heads keep their names
    model.data_params.setdefault("tasks", {})["name"] = names + list(extra)


def _write_per_track(path: Path, names: list[str], per_track: dict) -> None:
    keys = list(per_track)
    lines = ["track\tgroup\t" + "\t".join(keys)]
    for i, name in enumerate(names):
        values = "\t".join(f"{per_track[k][i]:.5f}" for k in keys)
        lines.append(f"{name}\t{reference.assay_group(name)}\t{values}")
    path.write_text("\n".join(lines) + "\n")


def _write_effects(path: Path, dataset, before: np.ndarray, after: np.ndarray) -> None:
    lines = ["id\telement\tmeasured\tpredicted_before\tpredicted_after"]
    for name, group, m, b, a in zip(dataset.names, dataset.groups, dataset.effect, before, after, strict=True):
        lines.append(f"{name}\t{group}\t{m:.5f}\t{b:.5f}\t{a:.5f}")
    path.write_text("\n".join(lines) + "\n")


def _write_heldout_tracks(path: Path, names, target: np.ndarray, before, after) -> None:
    """Per-track Pearson on the held-out windows of a tracks screen, before and after (TSV)."""
    nan = np.full(len(names), np.nan)
    with open(path, "w") as handle:
        handle.write("track\tpearson_before\tpearson_after\n")
        rows = zip(names, nan if before is None else evaluate.pearson_per_track(before, target),
                   nan if after is None else evaluate.pearson_per_track(after, target), strict=True)
        for name, b, a in rows:
            handle.write(f"{name}\t{b:.5g}\t{a:.5g}\n")
