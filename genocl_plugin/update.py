"""``genocl update``: update a model on a screen and measure what it learned and forgot.

screen -> objective -> pytorch_lightning training (gReLU LightningModel + strategy
callbacks) -> checkpoint -> evaluation -> run directory.
"""

from __future__ import annotations

import copy
import datetime
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from genocl_plugin import evaluate, objectives, screens
from genocl_plugin.errors import input_error
from genocl_plugin.fileio import atomic_dir, sha256sum
from genocl_plugin.models import load_model, read_config, resolve_model_dir, save_model
from genocl_plugin.stats import load_auto_strategy

BUNDLED_SCREENS = {
    "enformer": Path(__file__).parent / "bundled" / "mpra_enhancers.h5ad",
    "procapnet": Path(__file__).parent / "bundled" / "mpra_promoters.h5ad",
}
# What ``--strategy auto`` (the default) means for each base architecture: fine-tuning, unless
# benchmarks/forgetting.py found a strategy whose retention advantage over fine-tuning has a 95%
# interval above zero while its in-distribution gain stays within 5% of fine-tuning's
# (stats.choose_auto_strategy; the benchmark writes bundled/auto_strategy.json; docs/results.md).
AUTO_STRATEGY = {"enformer": "finetune", "procapnet": "finetune", **load_auto_strategy()}

# Subsampling of the bundled screens so the default update finishes in < 3 min on 2 cores.
BUNDLED_MAX_TRAIN = 256
BUNDLED_MAX_EVAL = 192
TRAIN_FIT_ROWS = 64


@dataclass
class UpdateConfig:
    """Everything an update needs; stored with the run as its hyperparameters."""

    model: str = "enformer"
    data: str | None = None
    strategy: str = "auto"
    epochs: int = 1
    batch_size: int = 16
    lr: float = 1e-4
    max_train: int | None = None
    max_eval: int | None = None
    holdout: float = 0.25
    silencing: str = "shuffle"
    retention_crops: int = 96
    seed: int = 0
    # In-distribution check: fraction of each training element's 50-bp position blocks held out
    # (screens.split_by_position_blocks); 0 turns it off.
    id_holdout: float = 0.2
    strategy_params: dict = field(default_factory=dict)


def resolve_auto_strategy(strategy: str, model) -> str:
    """``auto`` -> the benchmarked strategy for the model's architecture; other specs unchanged."""
    if strategy.strip() != "auto":
        return strategy
    return AUTO_STRATEGY.get(model.data_params.get("arch", ""), "finetune")


def default_screen(model) -> Path:
    """The bundled screen that goes with a model's architecture."""
    return BUNDLED_SCREENS.get(model.data_params.get("arch", "enformer"), BUNDLED_SCREENS["enformer"])


def prepare_screen(config: UpdateConfig, model, in_distribution: bool = False):
    """Read, split (by element, then by position blocks) and subsample the screen.

    Returns
    -------
    tuple
        ``(path, train, test)`` AnnData screens (``test``: held-out elements, the
        out-of-distribution check), and with ``in_distribution`` also ``test_id``: held-out
        position blocks of the training elements (``config.id_holdout``).
    """
    path = Path(config.data) if config.data else default_screen(model)
    screen = screens.read_screen(path)
    train, test = screens.split_by_element(screen, test_fraction=config.holdout, seed=config.seed)
    train, test_id = screens.split_by_position_blocks(train, config.id_holdout, seed=config.seed)
    bundled = config.data is None
    max_train = config.max_train or (BUNDLED_MAX_TRAIN if bundled else None)
    max_eval = config.max_eval or (BUNDLED_MAX_EVAL if bundled else None)
    train = _subsample(train, max_train, config.seed)
    test = _subsample(test, max_eval, config.seed + 1)
    test_id = _subsample(test_id, max_eval, config.seed + 2)
    if train.n_obs == 0:
        raise input_error(path, "obs", "no training rows after the element hold-out",
                          "use a screen with more elements or --holdout 0")
    return (path, train, test, test_id) if in_distribution else (path, train, test)


def _subsample(adata, n: int | None, seed: int):
    if not n or adata.n_obs <= n:
        return adata
    idx = np.sort(np.random.default_rng(seed).choice(adata.n_obs, n, replace=False))
    return adata[idx].copy()


@torch.no_grad()
def predict_screen_effects(model, dataset: objectives.PerturbationDataset, batch_size: int = 16) -> np.ndarray:
    """Predicted log2 effects for every row of a perturbation dataset."""
    if len(dataset) == 0:
        return np.zeros(0)
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=objectives.collate_perturbations)
    return np.concatenate([objectives.predicted_effects(model, b).cpu().numpy() for b in loader])


def train_on_screen(model, dataset: objectives.PerturbationDataset, config: UpdateConfig,
                    callbacks: list, trainer_kwargs: dict | None = None):
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

    Returns
    -------
    pytorch_lightning.Trainer
    """
    import pytorch_lightning as pl

    pl.seed_everything(config.seed, workers=True)
    model.train_params["lr"] = config.lr
    model.train_params["logger"] = None
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True,
                        collate_fn=objectives.collate_perturbations)
    settings = {"accelerator": "cpu", "devices": 1, **(trainer_kwargs or {})}
    trainer = pl.Trainer(
        max_epochs=config.epochs, logger=False, enable_checkpointing=False,
        enable_model_summary=False, num_sanity_val_steps=0, callbacks=list(callbacks), **settings,
    )
    # Under DDP Lightning swaps the shuffling sampler for a DistributedSampler: each rank
    # trains on its own shard of the screen and gradients are averaged across ranks.
    # load_model returns eval-mode models; Lightning keeps the mode it finds, so switch to
    # train mode here (strategies that freeze BatchNorm put those layers back in eval per batch).
    model.train()
    trainer.fit(model, train_dataloaders=loader)
    model.eval()
    if trainer.world_size > 1 and not trainer.is_global_zero and _launched_by_lightning():
        # Lightning's DDP launcher re-runs the whole command on ranks > 0; their work ends
        # with training (the ranks hold identical weights). Evaluation and writing the run
        # directory belong to rank 0 alone, or every rank would write the same run.
        raise SystemExit(0)
    return trainer


def _launched_by_lightning() -> bool:
    """Whether this process is a rank > 0 started by Lightning's subprocess DDP launcher."""
    return os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0"


def run_update(config: UpdateConfig, out: str | os.PathLike, force: bool = False,
               trainer_kwargs: dict | None = None) -> dict:
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

    Returns
    -------
    dict
        ``report`` (the forgetting report), ``run`` (the run directory) and ``strategy`` (as resolved).
    """
    from genocl_plugin.strategies import resolve_strategies

    out = Path(out)
    if out.exists() and not force:
        raise input_error(out, "--out", "already exists", "choose a new directory or pass --force")
    # The run's seed also seeds the strategies' sampling (replay draws, Fisher / MAS windows).
    # An explicit strategy is resolved before the (slow) model load so bad flags fail fast;
    # ``auto`` needs the model's architecture first.
    callbacks = (None if config.strategy.strip() == "auto"
                 else resolve_strategies(config.strategy, seed=config.seed, **config.strategy_params))
    if config.data:
        screens.read_screen(config.data)
    model = load_model(config.model)
    if callbacks is None:
        config = replace(config, strategy=resolve_auto_strategy(config.strategy, model))
        callbacks = resolve_strategies(config.strategy, seed=config.seed, **config.strategy_params)
    parent_dir = resolve_model_dir(config.model)
    parent_config = read_config(parent_dir) if parent_dir is not None else {}
    load_strategy_state(parent_dir, parent_config, config.strategy, callbacks)
    base = copy.deepcopy(model).eval()

    screen_path, train, test, test_id = prepare_screen(config, model, in_distribution=True)
    train_set = objectives.screen_dataset(train, model, config.silencing, config.seed, path=str(screen_path))
    test_set = objectives.screen_dataset(test, model, config.silencing, config.seed, path=str(screen_path))
    id_set = (objectives.screen_dataset(test_id, model, config.silencing, config.seed, path=str(screen_path))
              if test_id.n_obs else None)
    can_retain = _has_reference_tracks(model)

    # The fit on training elements is a sanity check, so a fixed subset keeps it cheap.
    fit_idx = np.sort(np.random.default_rng(config.seed).choice(
        len(train_set), min(len(train_set), TRAIN_FIT_ROWS), replace=False))
    fit_set = torch.utils.data.Subset(train_set, fit_idx)
    before_test = predict_screen_effects(base, test_set)
    before_train = predict_screen_effects(base, fit_set)
    before_id = predict_screen_effects(base, id_set) if id_set is not None else None
    ref_base = evaluate.reference_predictions(base, "test", max_crops=config.retention_crops) if can_retain else None

    train_on_screen(model, train_set, config, callbacks, trainer_kwargs)

    after_test = predict_screen_effects(model, test_set)
    after_train = predict_screen_effects(model, fit_set)
    after_id = predict_screen_effects(model, id_set) if id_set is not None else None
    measured_test, measured_train = test_set.effect, train_set.effect[fit_idx]
    if can_retain:
        ref_new, target = evaluate.reference_predictions(model, "test", max_crops=config.retention_crops)
        retained = evaluate.retention(ref_base[0], ref_new, target)
    else:
        retained = dict.fromkeys(("pearson_before", "pearson_after", "retention_ratio",
                                  "drift_pearson", "drift_rel_l2"), float("nan"))
    report = evaluate.forgetting_report(
        evaluate.effect_metrics(before_test, measured_test),
        evaluate.effect_metrics(after_test, measured_test), retained,
    )
    report["new_task"]["train_before"] = evaluate.effect_metrics(before_train, measured_train)
    report["new_task"]["train_after"] = evaluate.effect_metrics(after_train, measured_train)
    if id_set is not None:
        # in distribution: held-out position blocks of the training elements
        id_before, id_after = (evaluate.effect_metrics(p, id_set.effect) for p in (before_id, after_id))
        report["new_task"]["in_distribution"] = {
            "before": id_before, "after": id_after,
            "pearson_gain": evaluate._sub(id_after["pearson"], id_before["pearson"])}
    # What each strategy did (frozen parts, heads, adapters, forgetting-budget checks).
    report["strategies"] = {type(cb).__name__: cb.summary() for cb in callbacks if hasattr(cb, "summary")}
    report["split"] = {
        "train_elements": sorted(set(train_set.groups)), "test_elements": sorted(set(test_set.groups)),
        "n_train": len(train_set), "n_test": len(test_set),
        "n_test_in_distribution": len(id_set) if id_set is not None else 0,
    }

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
    with atomic_dir(out, force=force) as tmp:
        save_model(model, tmp / "model", extra={
            "name": f"{base_name}+{Path(screen_path).stem}", "lineage": lineage,
            "screens_seen": screens_seen, "strategy": config.strategy, "metrics": report,
            "test_metrics": parent_config.get("test_metrics", {}),
            "strategy_state": sorted({cb.state_name for cb in callbacks if hasattr(cb, "state_dict_for_run")}),
        })
        save_strategy_state(callbacks, tmp / "model")
        evaluate.write_json({"config": asdict(config), **report, "lineage": lineage}, tmp / "metrics.json")
        evaluate.plot_report(report, {"measured": measured_test, "pred_before": before_test,
                                      "pred_after": after_test}, tmp / "report.png")
        _write_effects(tmp / "effects_heldout.tsv", test_set, before_test, after_test)
    return {"report": report, "run": out, "strategy": config.strategy}


STATE_FILE = "strategy_state.safetensors"


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
    save_file(state, str(model_dir / STATE_FILE))
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
    except Exception as err:
        raise input_error(path, STATE_FILE, f"corrupted ({type(err).__name__})",
                          "restore the file from the parent run") from None
    for cb in stateful:
        prefix = f"{cb.state_name}/"
        part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if not part and cb in needed:
            raise input_error(path, cb.state_name, "no state for this strategy in the parent's file",
                              "restore the file from the parent run")
        if part:
            cb.load_state_from_run(part)


def _has_reference_tracks(model) -> bool:
    arch = model.data_params.get("arch")
    # screen-readout heads added by `multihead` are not reference tracks
    n = len([name for name in model.task_names if not str(name).startswith("screen:")])
    return (arch == "enformer" and n == 74 and model.bin_size == 32) or (arch == "procapnet" and n == 2)


def _write_effects(path: Path, dataset, before: np.ndarray, after: np.ndarray) -> None:
    lines = ["id\telement\tmeasured\tpredicted_before\tpredicted_after"]
    for name, group, m, b, a in zip(dataset.names, dataset.groups, dataset.effect, before, after, strict=True):
        lines.append(f"{name}\t{group}\t{m:.5f}\t{b:.5f}\t{a:.5f}")
    path.write_text("\n".join(lines) + "\n")
