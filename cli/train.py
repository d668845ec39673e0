"""``genocl pretrain`` and ``genocl update``."""

from __future__ import annotations

import click

from genocl_cli.main import user_errors


@click.command()
@click.option("--model", "arch", type=click.Choice(["enformer", "procapnet"]), required=True)
@click.option("--out", required=True, type=click.Path(), help="Output model directory.")
@click.option("--max-epochs", type=int, default=None, help="Default: the recipe's (enformer 6, procapnet 5).")
@click.option("--batch-size", type=int, default=None, help="Default: the recipe's (enformer 8, procapnet 16).")
@click.option("--lr", type=float, default=None, help="Peak learning rate (default: 1e-3).")
@click.option("--seq-len", type=int, default=None, help="Input length in bp (default: enformer 4096, procapnet 2176).")
@click.option("--loss", type=click.Choice(["poisson", "poisson_multinomial", "procapnet"]), default=None,
              help="Default: poisson (enformer), procapnet (procapnet).")
@click.option("--patience", type=int, default=3, show_default=True, help="Early stopping on valid loss.")
@click.option("--init", default=None, type=click.Path(exists=True, file_okay=False),
              help="Start from this genocl model directory's weights (same architecture).")
@click.option("--limit-val-batches", type=float, default=1.0, show_default=True,
              help="Fraction (<=1) or number (>1) of valid batches per epoch.")
@click.option("--select", type=click.Choice(["score", "loss"]), default="score", show_default=True,
              help="Keep the epoch with the best valid Pearson (score) or the lowest valid loss.")
@click.option("--log", "log_path", default=None, type=click.Path(), help="Append per-epoch JSON lines here.")
@click.option("--limit-train-batches", type=float, default=1.0, show_default=True,
              help="Fraction (<=1) or number (>1) of training batches per epoch.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Replace an existing --out.")
@user_errors
def pretrain(arch, out, max_epochs, batch_size, lr, seq_len, loss, patience, init, limit_val_batches, select, log_path,
             limit_train_batches, seed, force) -> None:
    """Train a mini base model on the bundled real hg38 windows (reproduces the shipped ones).

    \b
    Example:
      genocl pretrain --model enformer --out genocl_plugin/bundled/enformer_mini --force
    """
    from pathlib import Path

    from genocl_plugin.errors import input_error
    from genocl_plugin.pretrain import RECIPES, write_pretrained
    from genocl_plugin.pretrain import pretrain as run

    if Path(out).exists() and not force:
        raise input_error(out, "--out", "already exists", "choose a new directory or pass --force")
    limit = int(limit_train_batches) if limit_train_batches > 1 else limit_train_batches
    limit_val = int(limit_val_batches) if limit_val_batches > 1 else limit_val_batches
    init_lineage = []
    if init:
        from genocl_plugin.fileio import sha256sum
        from genocl_plugin.models import read_config

        parent = read_config(init)
        init_lineage = [*parent.get("lineage", []), {
            "step": "init", "from": str(init), "weights_sha256": sha256sum(Path(init) / "model.safetensors"),
            "command": parent.get("command"), "test_metrics": parent.get("test_metrics")}]
    model, metrics = run(arch, max_epochs=max_epochs, batch_size=batch_size, lr=lr, seed=seed,
                         limit_train_batches=limit, seq_len=seq_len, loss=loss, patience=patience,
                         log_path=log_path, init=init, limit_val_batches=limit_val,
                         select=select)
    recipe = RECIPES[arch]
    command = (f"genocl pretrain --model {arch} --out {out} --max-epochs {max_epochs or recipe['max_epochs']} "
               f"--batch-size {batch_size or recipe['batch_size']} --lr {lr or recipe['lr']} "
               f"--seq-len {model.seq_len} --loss {loss or recipe['loss']} --patience {patience} "
               f"--limit-train-batches {limit_train_batches} --limit-val-batches {limit_val_batches} "
               f"--select {select} --seed {seed}"
               + (f" --init {init}" if init else ""))
    write_pretrained(model, metrics, out, force=force, command=command, init_lineage=init_lineage)
    click.echo(f"wrote {out}")
    for key, value in metrics.items():
        if key == "history":
            continue
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
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--lr", type=float, default=1e-4, show_default=True)
@click.option("--max-train", type=int, default=None,
              help="Subsample training perturbations to this many (default: 256 on the bundled screen).")
@click.option("--max-eval", type=int, default=None,
              help="Subsample held-out perturbations to this many (default: 192 on the bundled screen).")
@click.option("--holdout", type=float, default=0.25, show_default=True,
              help="Fraction of elements held out for evaluation.")
@click.option("--id-holdout", type=float, default=0.2, show_default=True,
              help="Fraction of each training element's 50-bp position blocks held out "
                   "(in-distribution check; 0: off).")
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
@click.option("--devices", default="1", show_default=True, help="Lightning devices (e.g. 2).")
@click.option("--num-nodes", type=int, default=1, show_default=True)
@click.option("--ddp", is_flag=True, help="Distributed data parallel (Lightning strategy 'ddp').")
@click.option("--publish", "publish_name", default=None,
              help="Also publish the result to the zoo under this name (see genocl publish).")
@click.option("--zoo", default="model_zoo", show_default=True, type=click.Path(), help="Zoo for --publish.")
@click.option("--force", is_flag=True, help="Replace an existing --out.")
@user_errors
def update(model_spec, data, strategy, out, epochs, batch_size, lr, max_train, max_eval, holdout, id_holdout,
           silencing, retention_crops, seed, ewc_lambda, ewc_decay, si_c, mas_lambda, l2sp_alpha,
           replay_ratio, replay_budget_mb, replay_policy, distill_weight, lora_rank, freeze,
           max_drift, devices, num_nodes, ddp, publish_name, zoo, force) -> None:
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
    from genocl_plugin.update import UpdateConfig, run_update

    strategy_params = {
        key: value for key, value in {
            "ewc_lambda": ewc_lambda, "ewc_decay": ewc_decay, "si_c": si_c, "mas_lambda": mas_lambda,
            "l2sp_alpha": l2sp_alpha, "replay_ratio": replay_ratio, "replay_budget_mb": replay_budget_mb,
            "replay_policy": replay_policy, "distill_weight": distill_weight, "lora_rank": lora_rank,
            "freeze": freeze, "max_drift": max_drift,
        }.items() if value is not None
    }
    config = UpdateConfig(
        model=model_spec, data=data, strategy=strategy, epochs=epochs, batch_size=batch_size,
        lr=lr, max_train=max_train, max_eval=max_eval, holdout=holdout, id_holdout=id_holdout,
        silencing=silencing,
        retention_crops=retention_crops, seed=seed, strategy_params=strategy_params,
    )
    trainer_kwargs = {"devices": int(devices) if str(devices).isdigit() else devices, "num_nodes": num_nodes}
    if ddp:
        trainer_kwargs["strategy"] = "ddp"
    result = run_update(config, out, force=force, trainer_kwargs=trainer_kwargs)
    if strategy.strip() == "auto":
        click.echo(f"strategy auto -> {result['strategy']} (benchmarked default for this architecture)")
    click.echo(evaluate.format_table(result["report"]))
    click.echo(f"\nwrote {out}/ (model/, metrics.json, report.png)")
    if publish_name:
        from genocl_plugin.zoo import publish

        entry = publish(out, zoo, publish_name)
        click.echo(f"published {entry}")
