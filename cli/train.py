"""``genocl pretrain`` and ``genocl update``."""

from __future__ import annotations

import click

from genocl_cli import params as P
from genocl_cli.main import head_option, trust_checkpoint_option, user_errors
from genocl_plugin.config import BATCHNORM_STATS, strategy_flags

HARDWARE_OPTIONS = [
    click.option("--accelerator", type=click.Choice(["auto", "cpu", "gpu", "cuda", "mps"]), default="auto",
                 show_default=True, help="Where to train (Lightning accelerator)."),
    click.option("--precision", type=click.Choice(["32", "32-true", "bf16-mixed", "16-mixed", "bf16-true"]),
                 default="32", show_default=True,
                 help="Numeric precision (bf16-mixed: about half the activation memory; 16-mixed: GPU only)."),
    click.option("--accumulate-grad-batches", type=P.positive_int("pass a number of batches >= 1, e.g. 4"),
                 default=1, show_default=True,
                 help="Sum gradients over this many batches per optimiser step (a larger effective batch)."),
    click.option("--gradient-checkpointing", is_flag=True,
                 help="Recompute activations in backward instead of storing them (less memory, ~1.3x time)."),
    click.option("--num-workers", type=P.non_negative_int("pass a number of workers >= 0"), default=0,
                 show_default=True, help="DataLoader worker processes."),
]


def hardware_options(func):
    """The shared hardware options of ``update`` and ``pretrain``."""
    for option in reversed(HARDWARE_OPTIONS):
        func = option(func)
    return func


@click.command()
@click.option("--model", "arch", type=click.Choice(["enformer", "procapnet"]), required=True)
@click.option("--out", required=True, type=click.Path(), help="Output model directory.")
@click.option("--max-epochs", type=P.positive_int("pass a number of epochs >= 1"), default=None,
              help="Default: the recipe's (enformer 6, procapnet 5).")
@click.option("--batch-size", type=P.positive_int("pass a batch size >= 1, e.g. 16"), default=None,
              help="Default: the recipe's (enformer 8, procapnet 16).")
@click.option("--lr", type=P.positive_float("pass a finite learning rate > 0, e.g. 1e-3"), default=None,
              help="Peak learning rate (default: 1e-3).")
@click.option("--seq-len", type=P.positive_int("pass an input length in bp, e.g. 4096"), default=None,
              help="Input length in bp (default: enformer 4096, procapnet 2176).")
@click.option("--loss", type=click.Choice(["poisson", "poisson_multinomial", "procapnet"]), default=None,
              help="Default: poisson (enformer), procapnet (procapnet).")
@click.option("--patience", type=P.positive_int("pass a number of epochs >= 1"), default=3, show_default=True,
              help="Early stopping on the selection quantity (see --select).")
@click.option("--init", default=None, type=click.Path(exists=True, file_okay=False),
              help="Start from this genocl model directory's weights (same architecture).")
@click.option("--limit-val-batches",
              type=P.positive_float("pass a fraction in (0, 1] or a whole number of batches"), default=1.0,
              show_default=True, help="Fraction (<=1) or number (>1) of valid batches per epoch.")
@click.option("--select", type=click.Choice(["score", "loss"]), default="score", show_default=True,
              help="Keep the epoch with the best valid Pearson (score) or the lowest valid loss.")
@click.option("--log", "log_path", default=None, type=click.Path(), help="Append per-epoch JSON lines here.")
@click.option("--limit-train-batches",
              type=P.positive_float("pass a fraction in (0, 1] or a whole number of batches"),
              default=1.0, show_default=True,
              help="Fraction (<=1) or number (>1) of training batches per epoch.")
@click.option("--seed", type=P.non_negative_int("pass a seed >= 0"), default=0, show_default=True)
@click.option("--calibrate-output", is_flag=True,
              help="Before training, set each track's output offset to its Poisson optimum on training crops "
                   "(enformer only).")
@click.option("--force", is_flag=True, help="Replace an existing --out.")
@click.option("--devices", default="1", show_default=True, help="Device count, auto, or GPU indices (0,1).")
@hardware_options
@user_errors
def pretrain(arch, out, max_epochs, batch_size, lr, seq_len, loss, patience, init, limit_val_batches, select, log_path,
             limit_train_batches, seed, calibrate_output, force, devices, accelerator, precision,
             accumulate_grad_batches, gradient_checkpointing, num_workers) -> None:
    """Train a mini base model on the bundled real hg38 windows (reproduces the shipped ones).

    \b
    Example:
      genocl pretrain --model enformer --out genocl_plugin/bundled/enformer_mini --force
    """
    from pathlib import Path

    from genocl_plugin.data.fileio import claim
    from genocl_plugin.errors import input_error
    from genocl_plugin.training.hardware import trainer_settings

    if Path(out).exists() and not force:
        raise input_error(out, "--out", "already exists", "choose a new directory or pass --force")
    if Path(out).exists() and not Path(out).is_dir():
        raise input_error(out, "--out", "is a file, not a directory", "choose a directory path")
    if limit_train_batches > 1 and not float(limit_train_batches).is_integer():
        raise input_error("--limit-train-batches", str(limit_train_batches), "above 1 it counts batches",
                          "pass a fraction in (0, 1] or a whole number of batches")
    if calibrate_output and arch != "enformer":
        raise input_error("--calibrate-output", arch, "calibrates per-track exp outputs; procapnet-mini's profile "
                          "is a softmax", "leave out --calibrate-output for procapnet")
    settings = trainer_settings(accelerator, devices, precision, accumulate_grad_batches)
    # torch / Lightning / gReLU (several seconds) only after every option was checked
    from genocl_plugin.training.pretrain import RECIPES, write_pretrained
    from genocl_plugin.training.pretrain import pretrain as run

    with claim(out):  # a second pretrain into the same --out fails at once
        limit = int(limit_train_batches) if limit_train_batches > 1 else limit_train_batches
        limit_val = int(limit_val_batches) if limit_val_batches > 1 else limit_val_batches
        init_lineage = []
        if init:
            from genocl_plugin.data.fileio import sha256sum
            from genocl_plugin.models import read_config

            parent = read_config(init)
            init_lineage = [*parent.get("lineage", []), {
                "step": "init", "from": str(init), "weights_sha256": sha256sum(Path(init) / "model.safetensors"),
                "command": parent.get("command"), "test_metrics": parent.get("test_metrics")}]
        model, metrics = run(arch, max_epochs=max_epochs, batch_size=batch_size, lr=lr, seed=seed,
                             limit_train_batches=limit, seq_len=seq_len, loss=loss, patience=patience,
                             log_path=log_path, init=init, limit_val_batches=limit_val,
                             select=select, trainer_kwargs=settings,
                             gradient_checkpointing=gradient_checkpointing, num_workers=num_workers,
                             calibrate_output=calibrate_output)
        recipe = RECIPES[arch]
        command = (f"genocl pretrain --model {arch} --out {out} --max-epochs {max_epochs or recipe['max_epochs']} "
                   f"--batch-size {batch_size or recipe['batch_size']} --lr {lr or recipe['lr']} "
                   f"--seq-len {model.seq_len} --loss {loss or recipe['loss']} --patience {patience} "
                   f"--limit-train-batches {limit_train_batches} --limit-val-batches {limit_val_batches} "
                   f"--select {select} --seed {seed}"
                   + (f" --init {init}" if init else "") + (" --calibrate-output" if calibrate_output else ""))
        write_pretrained(model, metrics, out, force=force, command=command, init_lineage=init_lineage)
        click.echo(f"wrote {out}")
        for key, value in metrics.items():
            if key == "history":
                continue
            click.echo(f"  {key}: {value:.4f}" if isinstance(value, float) else f"  {key}: {value}")


@click.command()
@click.option("--model", "model_spec", default="enformer", show_default=True,
              help="enformer | procapnet (bundled minis), a run dir, a genocl model dir, "
                   "a gReLU .ckpt, an enformer-pytorch or borzoi-pytorch dir or a bpnet-lite .pt/.torch.")
@click.option("--data", default=None, type=click.Path(),
              help="Screen .h5ad (default: the bundled Kircher MPRA screen for the model).")
@click.option("--strategy", default="auto", show_default=True,
              help="Continual-learning strategy, or a comma-separated combination (replay,ewc). 'auto': the one "
                   "the forgetting benchmark recommends for the model's architecture (docs/results.md).")
@click.option("--out", required=True, type=click.Path(), help="Run directory to create.")
@click.option("--epochs", type=P.positive_int("pass a number of epochs >= 1"), default=1, show_default=True)
@click.option("--batch-size", type=P.positive_int("pass a batch size >= 1, e.g. 16"), default=None,
              help="Screen examples per batch (default: from the model's size and input length; 16 for the minis).")
@click.option("--lr", type=P.positive_float("pass a finite learning rate > 0, e.g. 1e-4"), default=1e-4,
              show_default=True)
@click.option("--head-lr", type=P.positive_float("pass a finite learning rate > 0, e.g. 1e-3"), default=None,
              help="Learning rate of new multihead heads (a new head starts from random weights; default: --lr).")
@click.option("--max-train", type=P.positive_int("pass a number of perturbations >= 1, or leave it out"), default=None,
              help="Subsample training perturbations (tracks screens: crops) to this many "
                   "(default: 256 on the bundled screen).")
@click.option("--max-eval", type=P.positive_int("pass a number of perturbations >= 1, or leave it out"), default=None,
              help="Subsample held-out perturbations (tracks screens: crops) to this many "
                   "(default: 192 on the bundled screen).")
@click.option("--max-eval-id", type=P.positive_int("pass a number of perturbations >= 1, or leave it out"),
              default=None, help="Subsample the held-out position-block rows (in-distribution check) to this many "
                                 "(default: --max-eval).")
@click.option("--holdout",
              type=P.Fraction("pass a fraction of elements strictly between 0 and 1, e.g. 0.25"),
              default=0.25, show_default=True,
              help="Fraction of elements held out for evaluation.")
@click.option("--id-holdout", type=P.Number(float, low=0, high=1, high_open=True,
                                            fix="pass a fraction in [0, 1), e.g. 0.2 (0: off)"),
              default=0.2, show_default=True,
              help="Fraction of each training element's 50-bp position blocks held out "
                   "(in-distribution check; 0: off).")
@click.option("--val-holdout", type=P.Number(float, low=0, high=1, high_open=True,
                                             fix="pass a fraction in [0, 1), e.g. 0.2 (0: off)"),
              default=0.0, show_default=True,
              help="MPRA: hold out this fraction of the training elements' remaining position blocks as a "
                   "validation set; after each epoch score effect Pearson there and keep the best epoch "
                   "(the parent's weights count as epoch 0). 0: keep the last epoch.")
@click.option("--patience", type=P.positive_int("pass a number of epochs >= 1"), default=2, show_default=True,
              help="With --val-holdout: stop after this many epochs without a better validation Pearson.")
@click.option("--silencing", type=click.Choice(["shuffle", "mask"]), default="shuffle", show_default=True,
              help="CRISPRi: how silenced elements are replaced.")
@click.option("--retention-crops",
              type=P.positive_int("pass a number of crops >= 1, e.g. 96"),
              default=96, show_default=True,
              help="Reference test-window crops used to measure retention.")
@click.option("--seed", type=P.non_negative_int("pass a seed >= 0"), default=0, show_default=True)
@click.option("--ewc-lambda",
              type=P.non_negative_float("pass a penalty weight >= 0"),
              default=None, help="EWC penalty weight.")
@click.option("--ewc-decay",
              type=P.Number(float, low=0, high=1, fix="pass a decay between 0 and 1"),
              default=None, help="Online EWC: decay of the old Fisher (0-1).")
@click.option("--si-c",
              type=P.non_negative_float("pass a penalty weight >= 0"),
              default=None, help="Synaptic Intelligence penalty weight.")
@click.option("--mas-lambda",
              type=P.non_negative_float("pass a penalty weight >= 0"),
              default=None, help="MAS penalty weight.")
@click.option("--l2sp-alpha",
              type=P.non_negative_float("pass a penalty weight >= 0"),
              default=None, help="L2-SP penalty weight.")
@click.option("--replay-ratio",
              type=P.positive_float("pass a ratio > 0, e.g. 1.0"),
              default=None, help="Replay windows per screen example.")
@click.option("--replay-budget-mb",
              type=P.positive_float("pass a memory budget in MB > 0"),
              default=None,
              help="Replay buffer memory budget (MB; default 2, but at least one reference window and at most all).")
@click.option("--replay-policy", type=click.Choice(["reservoir", "balanced"]), default=None)
@click.option("--distill-weight",
              type=P.non_negative_float("pass a loss weight >= 0"),
              default=None, help="Distillation loss weight.")
@click.option("--lora-rank", type=P.positive_int("pass a LoRA rank >= 1, e.g. 8"), default=None, help="LoRA rank.")
@click.option("--freeze", default=None, help="Parts to freeze: embedding,conv,batchnorm.")
@click.option("--max-drift",
              type=P.Number(float, low=0, high=1, low_open=True,
                            fix="pass a bound in (0, 1], e.g. 0.9"),
              default=None,
              help="Forgetting budget (e.g. 0.9), checked every 4 optimiser steps and at the end on 8 'valid' "
                   "reference windows: the retention ratio (the update's track Pearson vs the real tracks / the "
                   "parent's) when the parent has skill there (Pearson >= 0.1), else the drift Pearson (the "
                   "update's predictions vs the parent's, all tracks x positions pooled, log1p). Below the bound "
                   "the last weights within it are restored and the update stops; the report says whether it "
                   "stayed within budget.")
@click.option("--devices", default="1", show_default=True,
              help="Device count (e.g. 2), auto, or GPU indices (0,1); see --accelerator.")
@click.option("--num-nodes", type=P.positive_int("pass a number of nodes >= 1"), default=1, show_default=True)
@click.option("--ddp", is_flag=True, help="Distributed data parallel (Lightning strategy 'ddp').")
@click.option("--publish", "publish_name", default=None,
              help="Also publish the result to the zoo under this name (see genocl publish).")
@click.option("--zoo", default="model_zoo", show_default=True, type=click.Path(), help="Zoo for --publish.")
@click.option("--reference-fasta", default=None, type=click.Path(),
              help="Genome FASTA of the reference windows (replay, EWC/SI/MAS, distillation, --max-drift, "
                   "retention). Default: the bundled hg38 windows.")
@click.option("--reference-regions", default=None, type=click.Path(),
              help="BED of regions the parent model knows (e.g. Basenji sequences_human.bed; 4th column "
                   "train/valid/test); windows are cut at the model's input length, centred on each region.")
@click.option("--reference-tracks", default=None, type=click.Path(),
              help="targets file (Basenji targets.txt: index, identifier, file, description) naming one bigWig "
                   "per model output; without it the targets are the parent model's predictions.")
@click.option("--reference-holdout-chroms", default=None,
              help="Comma-separated chromosomes held out for retention (when the BED has no split column).")
@click.option("--reference-peaks", default=None, type=click.Path(),
              help="narrowPeak or BED (plain or gzipped) of what the parent was trained to predict: reports "
                   "peak-vs-flank AUROC, Pearson with signalValue and drift before/after, on the peaks of "
                   "--reference-holdout-chroms if given, read from --reference-fasta (default: the bundled hg38 "
                   "windows).")
@click.option("--readout-tracks", default=None,
              help="Tracks the perturbation objective reads: indices, exact names, globs ('CAGE:*K562*') or "
                   "'re:<regex>'. Default: the assay's CAGE(+DNase) tracks, the screen's cell type's if it has one.")
@click.option("--mpra-input-length", type=P.positive_int("pass an input length in bp, e.g. 2048"), default=None,
              help="MPRA: centre each element in an input of this many bp instead of the model's full input "
                   "(constructs are episomal, the rest is N padding; shorter is faster). Default: the model's input.")
@click.option("--targets", "targets_file", default=None, type=click.Path(),
              help="targets file naming the model's outputs (e.g. Enformer's targets_human.txt); stored with "
                   "the updated model.")
@click.option("--force", is_flag=True, help="Replace an existing --out.")
@trust_checkpoint_option
@head_option
@hardware_options
@click.option("--checkpoint-every", type=P.positive_int("pass a number of steps >= 1"), default=None,
              help="Save the training state every N optimiser steps in .<out>.partial/ (resumable with --resume).")
@click.option("--resume", "resume_run", is_flag=True,
              help="Continue an interrupted run of this --out from its .<out>.partial/ checkpoints "
                   "(same options and seed: the result equals an uninterrupted run).")
@click.option("--pairwise-alpha", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Personal genomes: loss = a*MSE + (1-a)*same-gene pairwise-difference loss (1 = MSE).")
@click.option("--holdout-by", type=click.Choice(["gene", "individual"]), default="gene", show_default=True,
              help="Personal genomes: hold out whole genes or whole individuals.")
@click.option("--memory-check/--no-memory-check", default=True, show_default=True,
              help="Before the first step, estimate its peak memory and refuse a --batch-size that cannot fit "
                   "(docs/performance.md); --no-memory-check prints the estimate and tries anyway.")
@click.option("--batchnorm-stats", type=click.Choice(BATCHNORM_STATS), default="frozen", show_default=True,
              help="BatchNorm running statistics: keep the parent's (its affine weights still train) or let the "
                   "screen's batches overwrite them.")
@user_errors
def update(model_spec, data, strategy, out, epochs, batch_size, lr, head_lr, max_train, max_eval, max_eval_id, holdout,
           id_holdout, val_holdout, patience, silencing, retention_crops, seed, ewc_lambda, ewc_decay, si_c,
           mas_lambda, l2sp_alpha,
           replay_ratio, replay_budget_mb, replay_policy, distill_weight, lora_rank, freeze,
           max_drift, devices, num_nodes, ddp, publish_name, zoo, reference_fasta, reference_regions,
           reference_tracks, reference_holdout_chroms, reference_peaks, readout_tracks, mpra_input_length, targets_file,
           force, pairwise_alpha, holdout_by, trust_checkpoint, head, accelerator, precision, accumulate_grad_batches,
           gradient_checkpointing, num_workers, checkpoint_every, resume_run, memory_check, batchnorm_stats) -> None:
    """Update a model on a perturbation screen and report what it learned and forgot.

    \b
    Example:
      genocl update --model enformer --data screen.h5ad --strategy finetune --out runs/screen1
      genocl update --model procapnet --out runs/promoters
      genocl update --model enformer_dir --data k562_crispri.h5ad --strategy replay,ewc \\
        --reference-fasta hg38.fa --reference-regions sequences_human.bed \\
        --targets targets_human.txt --readout-tracks 'CAGE:*K562*' --out runs/k562
    """
    from pathlib import Path

    from genocl_plugin.errors import input_error

    if Path(out).exists() and not force:
        raise input_error(out, "--out", "already exists", "choose a new directory or pass --force")
    if Path(out).exists() and not Path(out).is_dir():
        raise input_error(out, "--out", "is a file, not a directory", "choose a directory path")
    if publish_name is not None:  # `--publish ''` is refused, not taken as "do not publish"
        from genocl_plugin.zoo import validate_entry_name

        validate_entry_name(publish_name, "--publish")
        if Path(zoo).exists() and not Path(zoo).is_dir():
            raise input_error(zoo, "--zoo", "is a file, not a directory", "pass the zoo root directory")
    from genocl_plugin.training.hardware import trainer_settings

    # --devices / --accelerator / --precision before torch, Lightning and gReLU are imported
    # (a GPU asked for on a machine without one is refused in well under a second)
    settings = trainer_settings(accelerator, devices, precision, accumulate_grad_batches, num_nodes, ddp)
    holdout_chroms = ([c.strip() for c in reference_holdout_chroms.split(",") if c.strip()]
                      if reference_holdout_chroms else None)
    if reference_peaks:  # a bad peak file fails here, before the model loads
        from genocl_plugin.evaluation.peaks import check_peaks_option

        check_peaks_option(reference_peaks, reference_fasta, holdout_chroms)
    from genocl_plugin.data.fileio import claim

    # Claimed before the slow part: a second update into the same --out fails now, not after training.
    with claim(out):
        from genocl_plugin.evaluation import evaluate
        from genocl_plugin.models import enformer_head, trusted_checkpoints
        from genocl_plugin.training.update import UpdateConfig, run_update

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
            lr=lr, head_lr=head_lr, max_train=max_train, max_eval=max_eval,
            max_eval_id=max_eval_id, holdout=holdout, id_holdout=id_holdout, val_holdout=val_holdout,
            patience=patience,
            silencing=silencing, retention_crops=retention_crops, seed=seed, strategy_params=strategy_params,
            reference_fasta=reference_fasta, reference_regions=reference_regions, reference_tracks=reference_tracks,
            reference_holdout_chroms=holdout_chroms, reference_peaks=reference_peaks,
            readout_tracks=readout_tracks, mpra_input_length=mpra_input_length, targets=targets_file,
            pairwise_alpha=pairwise_alpha, holdout_by=holdout_by,
            precision=settings.pop("precision"), accumulate_grad_batches=settings.pop("accumulate_grad_batches"),
            gradient_checkpointing=gradient_checkpointing, num_workers=num_workers, batchnorm_stats=batchnorm_stats,
            memory_check=memory_check,
        )
        with trusted_checkpoints(trust_checkpoint), enformer_head(head):
            result = run_update(config, out, force=force, trainer_kwargs=settings,
                                checkpoint_every=checkpoint_every, resume_run=resume_run)
        ran = strategy_flags(result["strategy"], result.get("strategy_params"))
        if strategy.strip() == "auto":
            click.echo(f"strategy auto -> {ran} (benchmarked default for this architecture)")
        click.echo(evaluate.format_table(result["report"]))
        chosen = result["report"].get("epoch_selection")
        if chosen:
            click.echo(evaluate.format_epoch_selection(chosen))
        retained = result["report"]["retention"]
        if retained.get("not_measured"):
            click.echo(f"note: retention not measured: {retained['not_measured']}")
        elif "reference" in retained:
            ref = retained["reference"]
            click.echo(f"reference set: {ref['name']} (retention on {retained.get('n_windows', ref['n_test'])} of "
                       f"{ref['n_test']} held-out windows of {ref['seq_len']:,} bp; targets: {ref['tracks']})")
        if result["report"].get("peaks"):
            from genocl_plugin.evaluation.peaks import format_peaks

            click.echo("\n".join(format_peaks(result["report"]["peaks"])))
        told = result["strategy"].strip() == "finetune" or strategy.strip() == "auto"
        if told and not retained.get("not_measured"):
            from genocl_plugin.evaluation.stats import auto_evidence, format_evidence

            evidence = auto_evidence(result.get("auto_key") or result.get("arch") or "")
            if evidence:  # what fine-tuning / the other strategies did in the benchmark
                click.echo("\n" + "\n".join(format_evidence(evidence, retained.get("drift_pearson"), ran)))
        wrote_peaks = ", peaks.png" if (result["report"].get("peaks") or {}).get("n_peaks") is not None else ""
        click.echo(f"\nwrote {out}/ (model/, metrics.json, report.png{wrote_peaks})")
        if publish_name is not None:
            from genocl_plugin.zoo import publish

            entry = publish(out, zoo, publish_name)
            click.echo(f"published {entry}")
