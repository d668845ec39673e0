"""The settings of one update (``genocl update``), stored with each run as its hyperparameters.

A plain dataclass below every command, so ``evaluate`` can rebuild a run's screen split from its
``metrics.json`` without importing the training command.
"""

from __future__ import annotations

from dataclasses import dataclass, field

BATCHNORM_STATS = ("frozen", "update")  # the values of UpdateConfig.batchnorm_stats / --batchnorm-stats


def param_value(value) -> str:
    """A strategy hyperparameter as text: numbers with ``:g`` (``0.01``, ``8``), anything else as is."""
    return f"{value:g}" if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def strategy_flags(strategy: str, params: dict | None = None) -> str:
    """A strategy with its hyperparameters as ``genocl update`` flags.

    ``strategy_flags("freeze", {"freeze": "trunk"})`` -> ``"freeze --freeze trunk"``: each key of
    ``UpdateConfig.strategy_params`` is the option of the same name (``l2sp_alpha`` ->
    ``--l2sp-alpha``), so the text can be pasted after ``--strategy``.
    """
    flags = [f"--{key.replace('_', '-')} {param_value(value)}" for key, value in (params or {}).items()]
    return " ".join([strategy, *flags])


@dataclass
class UpdateConfig:
    """Everything an update needs; stored with the run as its hyperparameters."""

    model: str = "enformer"
    data: str | None = None
    strategy: str = "auto"
    epochs: int = 1
    batch_size: int | None = 16  # None: the largest power of two up to 16 whose step fits (memory.py)
    lr: float = 1e-4
    head_lr: float | None = None  # new multihead heads' learning rate (default: lr)
    max_train: int | None = None
    max_eval: int | None = None
    # rows of the in-distribution check (held-out position blocks); None: max_eval. Its gain is the
    # small number the study has to resolve, so it may need more rows than the element check.
    max_eval_id: int | None = None
    holdout: float = 0.25
    silencing: str = "shuffle"
    retention_crops: int = 96
    seed: int = 0
    # In-distribution check: fraction of each training element's 50-bp position blocks held out
    # (screens.split_by_position_blocks); 0 turns it off.
    id_holdout: float = 0.2
    # Epoch selection: fraction of the training elements' remaining position blocks held out as
    # a validation set (screens.prepare_screen(validation=True)); after each epoch the update
    # scores effect Pearson there and keeps the best epoch, the parent's weights counting as
    # epoch 0 (genocl_plugin.training.selection). 0: off, the last epoch is kept.
    val_holdout: float = 0.0
    patience: int = 2  # epochs without a better validation Pearson before training stops
    strategy_params: dict = field(default_factory=dict)
    # The reference set (what the model already knows): the user's genome + regions [+ tracks],
    # else the bundled hg38 windows. See genocl_plugin/data/reference.py.
    reference_fasta: str | None = None
    reference_regions: str | None = None
    reference_tracks: str | None = None
    reference_holdout_chroms: list[str] | None = None
    # A narrowPeak / BED of what the parent was trained to predict: peak-vs-flank AUROC, signal
    # Pearson and drift on held-out peaks (genocl_plugin/evaluation/peaks.py). Uses reference_fasta (else the
    # bundled windows) and reference_holdout_chroms.
    reference_peaks: str | None = None
    # Which tracks the perturbation objective reads (indices, names, globs, re:regex); None:
    # the assay's default (the screen's cell type's CAGE tracks when uns["cell_type"] is set).
    readout_tracks: str | None = None
    # MPRA: centre each element in an input of this many bp instead of the model's full input
    # (objectives.mpra_dataset); None: the model's input length.
    mpra_input_length: int | None = None
    # A Basenji-style targets file naming the model's outputs (stored with the updated model).
    targets: str | None = None
    pairwise_alpha: float = 0.5  # personal genomes: MSE weight of the pairwise loss (1 = MSE)
    holdout_by: str = "gene"  # personal genomes: hold out whole genes or whole individuals
    precision: str = "32"
    accumulate_grad_batches: int = 1
    gradient_checkpointing: bool = False
    # Estimate one step's peak memory before training (genocl_plugin/training/memory.py) and refuse a
    # --batch-size that cannot fit; False (--no-memory-check) reports the estimate and tries anyway.
    memory_check: bool = True
    # BatchNorm running statistics during the update: "frozen" keeps the parent's (BatchNorm in
    # eval mode, its affine weights still trained), "update" lets screen batches overwrite them.
    # Frozen by default: an MPRA batch (a 600-bp element in N padding) or a small GPU batch is
    # nothing like the genome the statistics were measured on, and overwriting them alone -- at
    # learning rate ~0 -- took enformer-mini's reference-window Pearson from 0.255 to 0.016
    # (docs/results/batchnorm_probe_2026-12-01.jsonl).
    batchnorm_stats: str = "frozen"
    num_workers: int = 0
