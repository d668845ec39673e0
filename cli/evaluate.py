"""``genocl evaluate``: accuracy matrix, transfer and forgetting over sequential updates."""

from __future__ import annotations

import click

from genocl_cli import params as P
from genocl_cli.main import trust_checkpoint_option, user_errors


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", default=None, type=click.Path(),
              help="Directory for evaluation.json and the PNG plots (default: print only).")
@click.option("--max-crops",
              type=P.non_negative_int("pass a number of crops >= 1, or 0 for all"),
              default=96, show_default=True,
              help="Reference test-window crops scored per model (0: all).")
@click.option("--label", "labels", multiple=True,
              help="Label of each RUN in the plots (repeat once per RUN; default: its strategies).")
@trust_checkpoint_option
@user_errors
def evaluate(runs, out, max_crops, labels, trust_checkpoint) -> None:
    """Score every model of each RUN's lineage on every task and report forgetting.

    Tasks are the base model's reference tracks (T0) and each update's screen (T1, T2, ...),
    scored on held-out elements. Prints the accuracy matrix R[i][j] (model after task i on
    task j), backward / forward transfer, forgetting and drift from the base model.

    \b
    Example:
      genocl update --model procapnet --data half1.h5ad --strategy replay --out runs/s1
      genocl update --model runs/s1 --data half2.h5ad --strategy replay --out runs/s2
      genocl evaluate runs/s2 --out runs/eval
    """
    from pathlib import Path

    from genocl_plugin.errors import input_error
    from genocl_plugin.evaluation import evaluate as ev
    from genocl_plugin.models import trusted_checkpoints

    if labels and len(labels) != len(runs):
        raise input_error("--label", str(len(labels)), f"given {len(labels)} times for {len(runs)} runs",
                          "give one --label per RUN or none")
    with trusted_checkpoints(trust_checkpoint):
        result = ev.evaluate_runs(list(runs), max_crops=max_crops or None,
                                  progress=lambda msg: click.echo(msg, err=True))
    click.echo(ev.format_evaluation(result))
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        ev.write_json(result, Path(out) / "evaluation.json")
        ev.plot_evaluation(result, out, labels=list(labels) or None)
        click.echo(f"\nwrote {out}/ (evaluation.json, accuracy_matrix.png, tradeoff.png, per_track_retention.png)")
