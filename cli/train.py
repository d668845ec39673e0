"""``genocl pretrain`` and ``genocl update``."""

from __future__ import annotations

import click

from genocl_cli.main import head_option, trust_checkpoint_option, user_errors

HARDWARE_OPTIONS = [
    click.option("--accelerator", type=click.Choice(["auto", "cpu", "gpu", "cuda", "mps"]), default="auto",
                 show_default=True, help="Where to train (Lightning accelerator)."),
    click.option("--precision", type=click.Choice(["32", "32-true", "bf16-mixed", "16-mixed", "bf16-true"]),
                 default="32", show_default=True,
                 help="Numeric precision (bf16-mixed: about half the activation memory; 16-mixed: GPU only)."),
    click.option("--accumulate-grad-batches", type=int, default=1, show_default=True,
                 help="Sum gradients over this many batches per optimiser step (a larger effective batch)."),
    click.option("--gradient-checkpointing", is_flag=True,
                 help="Recompute activations in backward instead of storing them (less memory, ~1.3x time)."),
    click.option("--num-workers", type=int, default=0, show_default=True, help="DataLoader worker processes."),
]


def hardware_options(func):
    """The shared hardware options of ``update`` and ``pretrain``."""
    for option in reversed(HARDWARE_OPTIONS):
        func = option(func)
    return func


@click.command()
@click.option("--model", "arch", type=click.Choice(["enformer", "procapnet"]), required=True)
@click.option("--out", required=True, type=click.Path(), help="Output model directory.")
@click.option("--max-epochs", type=int, default=4, show_default=True)
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--lr", type=float, default=5e-4, show_default=True)
@click.option("--limit-train-batches", type=float, default=1.0, show_default=True,
              help="Fraction (<=1) or number (>1) of training batches per epoch.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Replace an existing --out.")
@click.option("--devices", default="1", show_default=True, help="Device count, auto, or GPU indices (0,1).")
@hardware_options
@user_errors
def pretrain(arch, out, max_epochs, batch_size, lr, limit_train_batches, seed, force, devices, accelerator,
             precision, accumulate_grad_batches, gradient_checkpointing, num_workers) -> None:
    """Train a mini base model on the bundled real hg38 windows (reproduces the shipped ones).

    \b
    Example:
      genocl pretrain --model enformer --out genocl_plugin/bundled/enformer_mini --force
    """
    from pathlib import Path

    from genocl_plugin.errors import input_error
    from genocl_plugin.hardware import trainer_settings
    from genocl_plugin.pretrain import pretrain as run
    from genocl_plugin.pretrain import write_pretrained

    if Path(out).exists() and not force:
        raise input_error(out, "--out", "already exists", "choose a new directory or pass --force")
    if num_workers < 0:
        raise input_error(num_workers, "--num-workers", "must be >= 0", "e.g. --num-workers 4")
    settings = trainer_settings(accelerator, devices, precision, accumulate_grad_batches)
    limit = int(limit_train_batches) if limit_train_batches > 1 else limit_train_batches
    model, metrics = run(arch, max_epochs=max_epochs, batch_size=batch_size, lr=lr, seed=seed,
                         limit_train_batches=limit, trainer_kwargs=settings,
                         gradient_checkpointing=gradient_checkpointing, num_workers=num_workers)
    command = (f"genocl pretrain --model {arch} --out {out} --max-epochs {max_epochs} --batch-size {batch_size} "
               f"--lr {lr} --limit-train-batches {limit_train_batches} --seed {seed}")
    write_pretrained(model, metrics, out, force=force, command=command)
    click.echo(f"wrote {out}")
    for key, value in metrics.items():
        click.echo(f"  {key}: {value:.4f}" if isinstance(value, float) else f"  {key}: {value}")


@click.command()
@click.option("--model", "model_spec", default="enformer", show_default=True,
              help="enformer | procapnet (bundled minis), a run dir, a genocl model dir, "
                   "a gReLU .ckpt, an enformer-pytorch dir or a bpnet-lite .pt/.torch.")
@click.option("--data", default=None, type=click.Path(),
              help="Screen .h5ad (default: the bundled Kircher MPRA screen for the model).")
@click.option("--strategy", default="auto", show_default=True,
              help="Continual-learning strategy, or a comma-separated combination (replay,ewc). 'auto': the one "
                   "the forgetting benchmark recommends for the model's architecture (docs/results.md).")
@click.option("--out", required=True, type=click.Path(), help="Run directory to create.")
@click.option("--epochs", type=int, default=1, show_default=True)
@click.option("--batch-size", type=int, default=None,
              help="Screen examples per batch (default: from the model's size and input length; 16 for the minis).")
@click.option("--lr", type=float, default=1e-4, show_default=True)
@click.option("--max-train", type=int, default=None,
              help="Subsample training perturbations to this many (default: 256 on the bundled screen).")
@click.option("--max-eval", type=int, default=None,
              help="Subsample held-out perturbations to this many (default: 192 on the bundled screen).")
@click.option("--holdout", type=float, default=0.25, show_default=True,
              help="Fraction of elements held out for evaluation.")
@click.option("--silencing", type=click.Choice(["shuffle", "mask"]), default="shuffle", show_default=True,
              help="CRISPRi: how silenced elements are replaced.")
@click.option("--retention-crops", type=int, default=96, show_default=True,
              help="Reference test-window crops used to measure retention.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--ewc-lambda", type=float, default=None, help="EWC penalty weight.")
@click.option("--ewc-decay", type=float, default=None, help="Online EWC: decay of the old Fisher (0-1).")
@click.option("--si-c", type=float, default=None, help="Synaptic Intelligence penalty weight.")
@click.option("--mas-lambda", type=float, default=None, help="MAS penalty weight.")
@click.option("--l2sp-alpha", type=float, default=None, help="L2-SP penalty weight.")
@click.option("--replay-ratio", type=float, default=None, help="Replay windows per screen example.")
@click.option("--replay-budget-mb", type=float, default=None, help="Replay buffer memory budget (MB).")
@click.option("--replay-policy", type=click.Choice(["reservoir", "balanced"]), default=None)
@click.option("--distill-weight", type=float, default=None, help="Distillation loss weight.")
@click.option("--lora-rank", type=int, default=None, help="LoRA rank.")
@click.option("--freeze", default=None, help="Parts to freeze: embedding,conv,batchnorm.")
@click.option("--max-drift", type=float, default=None,
              help="Forgetting budget: minimum retention ratio on reference windows (e.g. 0.9).")
@click.option("--devices", default="1", show_default=True,
              help="Device count (e.g. 2), auto, or GPU indices (0,1); see --accelerator.")
@click.option("--num-nodes", type=int, default=1, show_default=True)
@click.option("--ddp", is_flag=True, help="Distributed data parallel (Lightning strategy 'ddp').")
@click.option("--publish", "publish_name", default=None,
              help="Also publish the result to the zoo under this name (see genocl publish).")
@click.option("--zoo", default="model_zoo", show_default=True, type=click.Path(), help="Zoo for --publish.")
@click.option("--force", is_flag=True, help="Replace an existing --out.")
@trust_checkpoint_option
@head_option
@hardware_options
@click.option("--checkpoint-every", type=int, default=None,
              help="Save the training state every N optimiser steps in .<out>.partial/ (resumable with --resume).")
@click.option("--resume", "resume_run", is_flag=True,
              help="Continue an interrupted run of this --out from its .<out>.partial/ checkpoints "
                   "(same options and seed: the result equals an uninterrupted run).")
@user_errors
def update(model_spec, data, strategy, out, epochs, batch_size, lr, max_train, max_eval, holdout,
           silencing, retention_crops, seed, ewc_lambda, ewc_decay, si_c, mas_lambda, l2sp_alpha,
           replay_ratio, replay_budget_mb, replay_policy, distill_weight, lora_rank, freeze,
           max_drift, devices, num_nodes, ddp, publish_name, zoo, force, trust_checkpoint, head, accelerator,
           precision, accumulate_grad_batches, gradient_checkpointing, num_workers, checkpoint_every,
           resume_run) -> None:
    """Update a model on a perturbation screen and report what it learned and forgot.

    \b
    Example:
      genocl update --model enformer --data screen.h5ad --strategy finetune --out runs/screen1
      genocl update --model procapnet --out runs/promoters
    """
    from pathlib import Path

    from genocl_plugin.errors import input_error

    if Path(out).exists() and not force:
        raise input_error(out, "--out", "already exists", "choose a new directory or pass --force")
    from genocl_plugin import evaluate
    from genocl_plugin.hardware import trainer_settings
    from genocl_plugin.models import enformer_head, trusted_checkpoints
    from genocl_plugin.update import UpdateConfig, run_update

    strategy_params = {
        key: value for key, value in {
            "ewc_lambda": ewc_lambda, "ewc_decay": ewc_decay, "si_c": si_c, "mas_lambda": mas_lambda,
            "l2sp_alpha": l2sp_alpha, "replay_ratio": replay_ratio, "replay_budget_mb": replay_budget_mb,
            "replay_policy": replay_policy, "distill_weight": distill_weight, "lora_rank": lora_rank,
            "freeze": freeze, "max_drift": max_drift,
        }.items() if value is not None
    }
    settings = trainer_settings(accelerator, devices, precision, accumulate_grad_batches, num_nodes, ddp)
    if batch_size is not None and batch_size < 1:
        raise input_error(batch_size, "--batch-size", "must be at least 1", "e.g. --batch-size 1")
    if num_workers < 0:
        raise input_error(num_workers, "--num-workers", "must be >= 0", "e.g. --num-workers 4")
    config = UpdateConfig(
        model=model_spec, data=data, strategy=strategy, epochs=epochs, batch_size=batch_size,
        lr=lr, max_train=max_train, max_eval=max_eval, holdout=holdout, silencing=silencing,
        retention_crops=retention_crops, seed=seed, strategy_params=strategy_params,
        precision=settings.pop("precision"), accumulate_grad_batches=settings.pop("accumulate_grad_batches"),
        gradient_checkpointing=gradient_checkpointing, num_workers=num_workers,
    )
    trainer_kwargs = settings
    with trusted_checkpoints(trust_checkpoint), enformer_head(head):
        result = run_update(config, out, force=force, trainer_kwargs=trainer_kwargs,
                            checkpoint_every=checkpoint_every, resume_run=resume_run)
    if strategy.strip() == "auto":
        click.echo(f"strategy auto -> {result['strategy']} (benchmarked default for this architecture)")
    click.echo(evaluate.format_table(result["report"]))
    click.echo(f"\nwrote {out}/ (model/, metrics.json, report.png)")
    if publish_name:
        from genocl_plugin.zoo import publish

        entry = publish(out, zoo, publish_name)
        click.echo(f"published {entry}")
