"""The Lightning side of an update: a ``pytorch_lightning.Trainer`` fitting the model on the
screen's objective with the strategy callbacks (placement, precision, accumulation, DDP,
resumable checkpoints are Lightning's; :mod:`genocl_plugin.training.hardware` checked them)."""

from __future__ import annotations

import os
from pathlib import Path

from torch.utils.data import DataLoader

from genocl_plugin import objectives
from genocl_plugin.config import UpdateConfig
from genocl_plugin.errors import input_error
from genocl_plugin.training import resume


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
