"""``genocl pretrain`` and ``genocl update``."""

from __future__ import annotations

import click

from genocl_cli.main import user_errors


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
@user_errors
def pretrain(arch, out, max_epochs, batch_size, lr, limit_train_batches, seed, force) -> None:
    """Train a mini base model on the bundled real hg38 windows (reproduces the shipped ones).

    \b
    Example:
      genocl pretrain --model enformer --out genocl_plugin/bundled/enformer_mini --force
    """
    from pathlib import Path

    from genocl_plugin.errors import input_error
    from genocl_plugin.pretrain import pretrain as run, write_pretrained

    if Path(out).exists() and not force:
        raise input_error(out, "--out", "already exists", "choose a new directory or pass --force")
    limit = int(limit_train_batches) if limit_train_batches > 1 else limit_train_batches
    model, metrics = run(arch, max_epochs=max_epochs, batch_size=batch_size, lr=lr, seed=seed,
                         limit_train_batches=limit)
    write_pretrained(model, metrics, out, force=force)
    click.echo(f"wrote {out}")
    for key, value in metrics.items():
        click.echo(f"  {key}: {value:.4f}" if isinstance(value, float) else f"  {key}: {value}")


@click.command()
@click.option("--model", "model_spec", default="enformer", show_default=True,
              help="enformer | procapnet (bundled minis), a run dir, a genocl model dir, "
                   "a gReLU .ckpt, an enformer-pytorch dir or a bpnet-lite .pt/.torch.")
@click.option("--data", default=None, type=click.Path(),
              help="Screen .h5ad (default: the bundled Kircher MPRA screen for the model).")
@click.option("--strategy", default="finetune", show_default=True, help="Continual-learning strategy.")
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
@click.option("--silencing", type=click.Choice(["shuffle", "mask"]), default="shuffle", show_default=True,
              help="CRISPRi: how silenced elements are replaced.")
@click.option("--retention-crops", type=int, default=96, show_default=True,
              help="Reference test-window crops used to measure retention.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Replace an existing --out.")
@user_errors
def update(model_spec, data, strategy, out, epochs, batch_size, lr, max_train, max_eval, holdout,
           silencing, retention_crops, seed, force) -> None:
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

    config = UpdateConfig(
        model=model_spec, data=data, strategy=strategy, epochs=epochs, batch_size=batch_size,
        lr=lr, max_train=max_train, max_eval=max_eval, holdout=holdout, silencing=silencing,
        retention_crops=retention_crops, seed=seed,
    )
    result = run_update(config, out, force=force)
    click.echo(evaluate.format_table(result["report"]))
    click.echo(f"\nwrote {out}/ (model/, metrics.json, report.png)")
