"""``genocl update``: update a model on a screen and measure what it learned and forgot.

screen -> objective -> pytorch_lightning training (gReLU LightningModel + strategy
callbacks) -> checkpoint -> evaluation -> run directory.
"""

from __future__ import annotations

import copy
import datetime
import os
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

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
from genocl_plugin.evaluation.stats import load_auto_params, load_auto_strategy
from genocl_plugin.models import load_model, read_config, resolve_model_dir, save_model
from genocl_plugin.objectives import predict_screen_effects
from genocl_plugin.progress import StageLog
from genocl_plugin.training import hardware, resume

# Re-exported: the update's settings, its screen split and effect predictions live below the
# command so that evaluate (metrics) does not import it.
__all__ = ["UpdateConfig", "prepare_screen", "predict_screen_effects", "default_screen", "run_update",
           "BUNDLED_SCREENS", "BUNDLED_MAX_TRAIN", "BUNDLED_MAX_EVAL"]

# What ``--strategy auto`` (the default) means for each base architecture: fine-tuning, unless
# benchmarks/forgetting.py found a strategy whose retention advantage over fine-tuning has a 95%
# interval above zero while its in-distribution gain stays within 5% of fine-tuning's
# (stats.choose_auto_strategy; the benchmark writes bundled/auto_strategy.json; docs/results.md).
# With the strategy, its hyperparameters as the study ran them (e.g. {"freeze": "trunk"}).
# Puffin's and the BPNet's (``procapnet``) entries come from the study on real pretrained bases
# (benchmarks/real_bases.py); Enformer's from the bundled-mini study.
AUTO_STRATEGY = {"enformer": "finetune", "procapnet": "finetune", "puffin": "finetune", **load_auto_strategy()}
AUTO_PARAMS = load_auto_params()

TRAIN_FIT_ROWS = 64
# The [stage i/n] lines run_update prints (genocl_plugin/progress.py): model, reference set, screen,
# effects before, training (with the strategies' set-up inside it), effects after, retention, saving.
UPDATE_STAGES = 8


def auto_key(model, assay: str | None = None) -> str:
    """Which ``auto`` entry applies: the architecture's pick for this kind of screen when a study
    measured one (e.g. ``puffin:activity``, benchmarks/real_bases.py scenario e), else the
    architecture's own (``puffin``: measured on perturbation screens)."""
    arch = str(model.data_params.get("arch", ""))
    key = f"{arch}:{assay}"
    return key if assay and key in AUTO_STRATEGY else arch


def resolve_auto_strategy(strategy: str, model, assay: str | None = None) -> str:
    """``auto`` -> the benchmarked strategy for the model's architecture (and screen kind); other specs unchanged."""
    if strategy.strip() != "auto":
        return strategy
    return AUTO_STRATEGY.get(auto_key(model, assay), "finetune")


def resolve_auto(config: UpdateConfig, model, assay: str | None = None) -> UpdateConfig:
    """``auto`` -> the benchmarked strategy and its hyperparameters; the user's own flags win."""
    if config.strategy.strip() != "auto":
        return config
    params = AUTO_PARAMS.get(auto_key(model, assay), {})
    return replace(config, strategy=resolve_auto_strategy(config.strategy, model, assay),
                   strategy_params={**params, **config.strategy_params})


def train_on_screen(model, dataset: objectives.PerturbationDataset, config: UpdateConfig,
                    callbacks: list, trainer_kwargs: dict | None = None, checkpoint_dir: Path | None = None,
                    checkpoint_every: int | None = None, resume_from: Path | None = None):
    """Fit the model on the perturbation objective with a pytorch_lightning Trainer.

    Parameters
    ----------
    model
        A GenoclLightningModel (its ``training_step`` handles perturbation batches and adds
        the strategy callbacks' loss terms).
    dataset
        Training perturbations.
    config
        Epochs, batch size, learning rate, seed.
    callbacks
        Strategy callbacks.
    trainer_kwargs
        Extra ``pytorch_lightning.Trainer`` arguments (devices, strategy, num_nodes, ...).
    checkpoint_dir, checkpoint_every
        Save the Trainer state there every N steps (resumable; see genocl_plugin.training.resume).
    resume_from
        A checkpoint of an interrupted run to continue from.

    Returns
    -------
    pytorch_lightning.Trainer
    """
    import pytorch_lightning as pl

    from genocl_plugin.strategies.freeze import FrozenBatchNormStats
    from genocl_plugin.training.hardware import enable_gradient_checkpointing
    from genocl_plugin.workarounds import quiet_lightning

    quiet_lightning()  # Lightning noise a genocl user cannot act on; see workarounds.py

    pl.seed_everything(config.seed, workers=True)
    model.train_params["lr"] = config.lr
    model.train_params["head_lr"] = config.head_lr
    model.train_params["logger"] = None
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(model.model)
    callbacks = list(callbacks)
    if config.batchnorm_stats == "frozen":
        callbacks.append(FrozenBatchNormStats())
    if isinstance(dataset, objectives.PersonalDataset):  # one gene per batch: same-gene pairs exist
        kw = trainer_kwargs or {}
        if kw.get("strategy") == "ddp" or kw.get("num_nodes", 1) > 1 or kw.get("devices", 1) not in (1, "1"):
            # Lightning cannot shard a custom batch sampler (it injects a DistributedSampler).
            raise input_error("--ddp/--devices", "personal screen", "gene-grouped batches are not sharded across "
                              "devices yet", "train personal screens on one device (drop --ddp/--devices)")
        if checkpoint_dir is not None or resume_from is not None:
            raise input_error("--checkpoint-every/--resume", "personal screen", "gene-grouped batches are not "
                              "resumable yet", "drop --checkpoint-every / --resume for personal screens")
        loader = DataLoader(dataset, collate_fn=objectives.collate_personal, batch_sampler=objectives.GeneBatchSampler(
            dataset.groups, config.batch_size, seed=config.seed), num_workers=config.num_workers)
    else:
        order = {"shuffle": True}
        if checkpoint_dir is not None or resume_from is not None:
            # A resumable run shuffles by (seed, epoch) and restores RNG states (genocl_plugin.training.resume).
            sampler = resume.EpochSeededSampler(len(dataset), config.seed, config.batch_size)
            order = {"sampler": sampler}
            callbacks.append(resume.ResumeState(sampler))
            if checkpoint_dir is not None and checkpoint_every:
                callbacks.append(resume.checkpoint_callback(checkpoint_dir, checkpoint_every))
        loader = DataLoader(dataset, batch_size=config.batch_size, **order,
                            collate_fn=objectives.collate_for(dataset), num_workers=config.num_workers,
                            persistent_workers=config.num_workers > 0)
    # Lightning places the model (accelerator / devices), runs mixed precision and
    # accumulates gradients; hardware.trainer_settings checked the user's choices.
    settings = {"accelerator": "auto", "devices": 1, "precision": _lightning_precision(config.precision),
                "accumulate_grad_batches": config.accumulate_grad_batches, **(trainer_kwargs or {})}
    trainer = pl.Trainer(
        max_epochs=config.epochs, logger=False,
        enable_checkpointing=any(isinstance(cb, pl.callbacks.ModelCheckpoint) for cb in callbacks),
        enable_model_summary=False, num_sanity_val_steps=0, callbacks=callbacks, **settings,
    )
    # Under DDP Lightning swaps the shuffling sampler for a DistributedSampler: each rank
    # trains on its own shard of the screen and gradients are averaged across ranks.
    # load_model returns eval-mode models; Lightning keeps the mode it finds, so switch to
    # train mode here (strategies that freeze BatchNorm put those layers back in eval per batch).
    model.train()
    trainer.fit(model, train_dataloaders=loader, ckpt_path=str(resume_from) if resume_from else None)
    model.eval()
    if trainer.world_size > 1 and not trainer.is_global_zero and _launched_by_lightning():
        # Lightning's DDP launcher re-runs the whole command on ranks > 0; their work ends
        # with training (the ranks hold identical weights). Evaluation and writing the run
        # directory belong to rank 0 alone, or every rank would write the same run.
        raise SystemExit(0)
    return trainer


def _lightning_precision(precision: str) -> str:
    return "32-true" if str(precision) == "32" else str(precision)


def _launched_by_lightning() -> bool:
    """Whether this process is a rank > 0 started by Lightning's subprocess DDP launcher."""
    return os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0"


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


def run_update(config: UpdateConfig, out: str | os.PathLike, force: bool = False,
               trainer_kwargs: dict | None = None, checkpoint_every: int | None = None,
               resume_run: bool = False, parent_predictions: dict | None = None) -> dict:
    """Update a model on a screen; write ``model/``, ``metrics.json``, ``report.png``.

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
    from genocl_plugin.strategies import resolve_strategies

    stages = StageLog(total=UPDATE_STAGES)  # one stderr line per stage (genocl_plugin/progress.py)

    out = Path(out)
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
    resume_from = resume.check_partial(out, resume_run)
    # The run's seed also seeds the strategies' sampling (replay draws, Fisher / MAS windows).
    # An explicit strategy is resolved before the (slow) model load so bad flags fail fast;
    # ``auto`` needs the model's architecture first.
    callbacks = (None if config.strategy.strip() == "auto"
                 else resolve_strategies(config.strategy, seed=config.seed, **config.strategy_params))
    assay = None
    if config.data:
        assay = screens.read_screen(config.data).uns["assay"]
        if config.mpra_input_length is not None:  # before the slow model load
            objectives.check_mpra_assay(assay, config.data)
    peaks.check_peaks_option(config.reference_peaks, config.reference_fasta, config.reference_holdout_chroms)
    with stages.stage("loading the model", Path(str(config.model)).name) as loading:
        model = load_model(config.model)
        if callbacks is None:
            config = resolve_auto(config, model, assay)
            callbacks = resolve_strategies(config.strategy, seed=config.seed, **config.strategy_params)
        # The passes outside the Trainer (effects before/after, retention) run where it trains.
        device = hardware.inference_device(trainer_kwargs)
        batch_size, memory_note = preflight_memory(config, model, assay, device)
        config = replace(config, batch_size=batch_size)
        eval_batch = hardware.default_batch_size(model.model, model.seq_len, training=False, cap=16,
                                                 device_type=device.type)
        model.to(device)
        parent_dir = resolve_model_dir(config.model)
        parent_config = read_config(parent_dir) if parent_dir is not None else {}
        load_strategy_state(parent_dir, parent_config, config.strategy, callbacks)
        if config.targets:
            name_outputs(model, config.targets)
        loading.note = (f"{sum(p.numel() for p in model.parameters()):,} parameters, {model.seq_len:,}-bp input"
                        + (f"; {memory_note}" if memory_note else ""))
    source = Path(config.reference_regions).name if config.reference_regions else "bundled hg38 windows"
    with stages.stage("reference set", source) as referencing:
        ref, ref_problem = build_reference_set(config, model, batch_size=eval_batch)
        for cb in callbacks:
            if hasattr(cb, "reference") and cb.reference is None:
                if ref is None:
                    raise input_error("--strategy", config.strategy, f"needs reference windows: {ref_problem}",
                                      "pass --reference-fasta GENOME.fa --reference-regions REGIONS.bed")
                cb.reference = ref
        referencing.note = (f"{sum(ref.size(s) for s in reference.SPLITS):,} windows ({ref.size('test'):,} test) "
                            f"of {ref.geometry.seq_len:,} bp, {ref.describe()['tracks']} targets"
                            if ref is not None else f"not available: {ref_problem}")
    base = copy.deepcopy(model).eval()

    with stages.stage("screen", Path(str(config.data)).name if config.data else "bundled screen") as screening:
        screen_path, train, test, test_id, val = prepare_screen(config, model, in_distribution=True, validation=True)
        if train.uns.get("crispri_fit"):  # CRISPRi pairs the model's geometry cannot hold were skipped
            print(f"{screen_path}: {train.uns['crispri_fit']}", flush=True)
        limits = {"train": config.max_train, "test": config.max_eval, "id": config.max_eval_id or config.max_eval}
        datasets = {key: objectives.screen_dataset(part, model, config.silencing, config.seed, path=str(screen_path),
                                                   readout=config.readout_tracks, pairwise_alpha=config.pairwise_alpha,
                                                   max_items=limits[key], mpra_seq_len=config.mpra_input_length)
                    for key, part in (("train", train), ("test", test), ("id", test_id)) if key != "id" or part.n_obs}
        train_set, test_set, id_set = datasets["train"], datasets["test"], datasets.get("id")
        is_tracks = getattr(train_set, "kind", None) == "tracks"
        if is_tracks:
            callbacks, config = track_head(train_set.track_names, model, callbacks, config, screen_path)
        screening.note = (f"{len(train_set):,} training, {len(test_set):,} held-out"
                          + (f", {len(id_set):,} in-distribution" if id_set is not None else "") + " rows")

    # The fit on training elements is a sanity check, so a fixed subset keeps it cheap.
    fit_idx = np.sort(np.random.default_rng(config.seed).choice(
        len(train_set), min(len(train_set), TRAIN_FIT_ROWS), replace=False))
    fit_set = torch.utils.data.Subset(train_set, fit_idx)
    predict = tracks.predict_tracks if is_tracks else predict_screen_effects
    weights = weights_digest(base) if parent_predictions is not None else None

    def predict_parent(dataset):
        fingerprint = objectives.dataset_fingerprint(dataset) if weights else None
        if fingerprint is None:
            return predict(base, dataset, eval_batch)
        if (weights, fingerprint) not in parent_predictions:
            parent_predictions[weights, fingerprint] = predict(base, dataset, eval_batch)
        return parent_predictions[weights, fingerprint].copy()

    effect_rows = (f"{len(test_set):,} held-out + {len(fit_set):,} training"
                   + (f" + {len(id_set):,} in-distribution" if id_set is not None else "")
                   + " rows")
    with stages.stage("effects before the update", effect_rows):
        before_test = predict_parent(test_set)
        before_train = predict_parent(fit_set)
        before_id = predict_parent(id_set) if id_set is not None else None

    selector = None
    if val.n_obs:
        from genocl_plugin.training.selection import BestEpochCallback

        val_set = objectives.screen_dataset(val, model, config.silencing, config.seed, path=str(screen_path),
                                            readout=config.readout_tracks, mpra_seq_len=config.mpra_input_length)
        selector = BestEpochCallback(val_set, predict_screen_effects, eval_batch, config.patience)
    partial = resume.partial_dir(out) if (checkpoint_every or resume_from) else None
    # own line: the strategies' set-up (pseudo-targets, importance estimates) are stages inside this
    # one, and Lightning prints its progress bar
    with stages.stage("training", training_detail(config, len(train_set), selector is not None), own_line=True):
        train_on_screen(model, train_set, config, callbacks + ([selector] if selector else []), trainer_kwargs,
                        checkpoint_dir=partial, checkpoint_every=checkpoint_every, resume_from=resume_from)

    with stages.stage("effects after the update", effect_rows):
        model.to(device)  # Lightning's teardown leaves it on the CPU
        after_test = predict(model, test_set, eval_batch)
        after_train = predict(model, fit_set, eval_batch)
        after_id = predict(model, id_set, eval_batch) if id_set is not None else None
    if is_tracks:
        measured_test, measured_train = tracks.dataset_targets(test_set), tracks.dataset_targets(fit_set)
        metrics_of = evaluate.tracks_metrics
    else:
        measured_test, measured_train = test_set.effect, train_set.effect[fit_idx]
        metrics_of = evaluate.effect_metrics
    if ref is not None:
        n_retention = len(ref.subset("test", config.retention_crops, 0))
        with stages.stage("retention", f"{n_retention:,} held-out reference windows, parent and update"):
            retained = evaluate.reference_retention(base, model, ref, "test", max_windows=config.retention_crops)
            if not ref.has_tracks and ref.name.startswith("bundled"):
                # outputs without bundled track names may still include per-strand CAGE (Puffin)
                cage = evaluate.real_cage_retention(base, model, "test", max_windows=config.retention_crops)
                if cage is not None:
                    retained["real_cage"] = cage
    else:
        retained = dict.fromkeys(("pearson_before", "pearson_after", "retention_ratio",
                                  "drift_pearson", "drift_rel_l2"), float("nan"))
        retained["not_measured"] = ref_problem
    per_track = retained.pop("per_track", None)
    report = evaluate.forgetting_report(metrics_of(before_test, measured_test), metrics_of(after_test, measured_test),
                                        retained)
    report["new_task"]["train_before"] = metrics_of(before_train, measured_train)
    report["new_task"]["train_after"] = metrics_of(after_train, measured_train)
    if is_tracks:
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
            "before": evaluate.cross_individual_metrics(before_test, measured_test, test_set.groups),
            "after": evaluate.cross_individual_metrics(after_test, measured_test, test_set.groups),
            "holdout_by": config.holdout_by, "pairwise_alpha": config.pairwise_alpha}
    if id_set is not None:
        # in distribution: held-out position blocks of the training elements
        id_before, id_after = (evaluate.effect_metrics(p, id_set.effect) for p in (before_id, after_id))
        report["new_task"]["in_distribution"] = {
            "before": id_before, "after": id_after,
            "pearson_gain": evaluate._sub(id_after["pearson"], id_before["pearson"])}
    if selector is not None:
        report["epoch_selection"] = {"val_holdout": config.val_holdout, **selector.summary()}
    # What each strategy did (frozen parts, heads, adapters, forgetting-budget checks).
    report["strategies"] = {type(cb).__name__: cb.summary() for cb in callbacks if hasattr(cb, "summary")}
    report["split"] = {
        "train_elements": sorted(set(train_set.groups)), "test_elements": sorted(set(test_set.groups)),
        "n_train": len(train_set), "n_test": len(test_set),
        "n_test_in_distribution": len(id_set) if id_set is not None else 0,
    }
    if train.uns.get("crispri_fit"):
        report["split"]["crispri_fit"] = str(train.uns["crispri_fit"])

    screen_hash = sha256sum(screen_path)
    lineage = list(parent_config.get("lineage", []))
    lineage.append({
        "step": "update", "parent": str(config.model), "screen": str(screen_path),
        "screen_sha256": screen_hash, "strategy": config.strategy,
        "hyperparameters": asdict(config),
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "metrics": {"new_task_pearson_after": report["new_task"]["after"]["pearson"],
                    "retention_pearson_after": retained["pearson_after"]},
    })
    screens_seen = list(parent_config.get("screens_seen", [])) + [
        {"path": str(screen_path), "sha256": screen_hash, "assay": train.uns["assay"]}]
    base_name = parent_config.get("name", str(config.model))
    with stages.stage("saving", str(out)), atomic_dir(out, force=force) as tmp:
        if config.reference_peaks:  # peak-vs-flank AUROC, signal Pearson, drift (peaks.png, peaks_windows.tsv)
            report["peaks"] = peaks.update_report(config, base, model, tmp, batch_size=eval_batch)
        save_model(model, tmp / "model", extra={
            "name": f"{base_name}+{Path(screen_path).stem}", "lineage": lineage,
            "screens_seen": screens_seen, "strategy": config.strategy, "strategy_params": config.strategy_params,
            "metrics": report,
            "test_metrics": parent_config.get("test_metrics", {}),
            "strategy_state": sorted({cb.state_name for cb in callbacks if hasattr(cb, "state_dict_for_run")}),
        })
        save_strategy_state(callbacks, tmp / "model")
        # the stages that ended before this file was written (all but saving)
        evaluate.write_json({"config": asdict(config), **report, "lineage": lineage, "stages": stages.finished()},
                            tmp / "metrics.json", sealed=True)
        if is_tracks:
            scatter = tracks.scatter_sample(measured_test, before_test, after_test, seed=config.seed)
            evaluate.plot_report(report, scatter, tmp / "report.png")
            _write_heldout_tracks(tmp / "tracks_heldout.tsv", train_set.track_names, measured_test,
                                  before_test, after_test)
        else:
            evaluate.plot_report(report, {"measured": measured_test, "pred_before": before_test,
                                          "pred_after": after_test}, tmp / "report.png")
            _write_effects(tmp / "effects_heldout.tsv", test_set, before_test, after_test)
        if per_track is not None:
            _write_per_track(tmp / "retention_per_track.tsv", ref.track_names, per_track)
    resume.remove_partial(out)
    return {"report": report, "run": out, "strategy": config.strategy, "strategy_params": config.strategy_params,
            "arch": model.data_params.get("arch"), "auto_key": auto_key(model, assay),
            "stages": stages.finished()}


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


def preflight_memory(config: UpdateConfig, model, assay: str | None, device) -> tuple[int, str | None]:
    """The batch size of the update and a note on its memory, or a refusal before anything slow.

    ``--batch-size`` when given (refused when one step cannot fit, unless ``--no-memory-check``),
    else the largest power of two up to 16 that fits (genocl_plugin/training/memory.py).
    """
    from genocl_plugin.strategies import parse_strategies
    from genocl_plugin.training import memory

    names = tuple(parse_strategies(config.strategy))
    replay_ratio = config.strategy_params.get("replay_ratio", 0.25) if "replay" in names else None
    return memory.check_training_step(
        model.model, model.seq_len, config.batch_size, precision=config.precision,
        checkpointing=config.gradient_checkpointing, sequences_per_example=1.0 if assay == "tracks" else 2.0,
        replay_ratio=replay_ratio, strategies=names, device_type=device.type, device_index=device.index or 0,
        resident=device.type == "cpu", refuse=config.memory_check)


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


STATE_FILE = "strategy_state.safetensors"
STATE_DIGEST_KEY = "genocl_sha256"


def tensors_digest(state: dict) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of a dict of tensors (sorted by name)."""
    import hashlib

    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_strategy_state(callbacks: list, model_dir: Path) -> Path | None:
    """Write the callbacks' ``state_dict_for_run()`` to ``model_dir/strategy_state.safetensors``.

    Keys are ``<strategy>/<key>`` (e.g. ``ewc/importance.conv.weight``) so one file holds every
    strategy's importance estimates and buffer state.
    """
    from safetensors.torch import save_file

    state = {}
    for cb in callbacks:
        if hasattr(cb, "state_dict_for_run"):
            for key, value in cb.state_dict_for_run().items():
                state[f"{cb.state_name}/{key}"] = value.detach().cpu().contiguous()
    if not state:
        return None
    # The digest of the tensors goes into the file's own metadata, so load_strategy_state can
    # refuse a damaged file instead of training on corrupted importances.
    save_file(state, str(model_dir / STATE_FILE), metadata={STATE_DIGEST_KEY: tensors_digest(state)})
    return model_dir / STATE_FILE


def load_strategy_state(parent_dir: Path | None, parent_config: dict, strategy: str, callbacks: list) -> None:
    """Give each stateful callback the state its strategy left in the parent run.

    A parent trained with a stateful strategy must still hold that strategy's state: silently
    restarting the importance estimates would change what the strategy protects.

    Raises
    ------
    GenoclInputError
        The parent's state file is missing, unreadable or lacks a chosen strategy's state.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    stateful = [cb for cb in callbacks if hasattr(cb, "load_state_from_run")]
    if parent_dir is None or not stateful:
        return
    parent_names = {n.strip() for n in str(parent_config.get("strategy", "")).split(",")}
    needed = [cb for cb in stateful if cb.state_name in parent_names and
              cb.state_name in parent_config.get("strategy_state", [cb.state_name])]
    path = Path(parent_dir) / STATE_FILE
    if not path.exists():
        if needed:
            raise input_error(path, STATE_FILE, f"missing, but the parent was trained with {needed[0].state_name}",
                              "restore the file from the parent run, or start that strategy afresh "
                              "from a model without it")
        return
    try:
        state = load_file(str(path))
        with safe_open(str(path), framework="pt") as handle:
            expected = (handle.metadata() or {}).get(STATE_DIGEST_KEY)
    except Exception as err:
        raise input_error(path, STATE_FILE, f"corrupted ({type(err).__name__})",
                          "restore the file from the parent run") from None
    if expected is not None and tensors_digest(state) != expected:
        raise input_error(path, STATE_DIGEST_KEY, "checksum mismatch: the strategy state was modified or damaged",
                          "restore the file from the parent run")
    for cb in stateful:
        prefix = f"{cb.state_name}/"
        part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if not part and cb in needed:
            raise input_error(path, cb.state_name, "no state for this strategy in the parent's file",
                              "restore the file from the parent run")
        if part:
            cb.load_state_from_run(part)


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
