"""Screen comparisons train with dropout off: which batches are comparisons, and switching it off."""

from __future__ import annotations

import torch


def disable_dropout(model: torch.nn.Module) -> list:
    """Put the model's dropout layers that are training in eval mode; returns them (to restore).

    A screen measures a difference between two predictions (perturbed vs reference; one person
    vs another). In train mode each sequence gets its own dropout mask, and that noise swamps
    the difference: on the bundled enformer-mini (transformer dropout 0.4), two train-mode
    passes over the same 32 Kircher variants give effects that differ by sd 0.114, while the
    effects themselves have sd 0.028 (measured 2026-11-30), so fine-tuning fitted dropout noise.
    ``GenoclLightningModel.on_train_batch_start`` calls this for every screen batch, so the whole
    step (strategy terms included) runs in one mode, which gradient checkpointing needs: its
    backward recomputes each block in the mode the block is in then. BatchNorm is untouched (the
    sequences of a comparison share one forward, hence one set of batch statistics).
    """
    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd) and m.training]
    for layer in layers:
        layer.eval()
    return layers


def is_comparison(batch) -> bool:
    """Whether a training batch is a screen comparison (perturbation or personal genomes).

    Track crops and activity libraries are not: an activity batch scores different sequences
    whose measured activities spread widely (WTC11 lentiMPRA: sd 1.1 log2), so it keeps its
    dropout as ordinary training on tracks does (see :func:`activity_loss`).
    """
    return isinstance(batch, dict) and batch.get("kind") not in ("tracks", "activity")
