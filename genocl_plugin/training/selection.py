"""Epoch selection for an update: keep the epoch that scores best on held-out position blocks.

An update that runs several epochs on a few hundred perturbations memorises them: on the
bundled enhancer screen, 12 epochs took enformer-mini's training-variant Pearson from about 0.1
to 0.45-0.71 while its held-out blocks did not improve and its reference-window Pearson fell
from 0.255 to 0.06-0.15 (docs/results/pilot_enformer_epochs_2026-12-01.jsonl). Lightning's
answer is ``EarlyStopping`` plus ``ModelCheckpoint`` on a validation metric; here the metric is
the effect Pearson on a validation split of the training elements (position blocks, so no
validation variant sits next to a training one), and the parent's weights count as epoch 0, so
an update that never beats the parent on validation returns the parent unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytorch_lightning as pl
import torch

from genocl_plugin.evaluation.evaluate import pearson


class BestEpochCallback(pl.Callback):
    """Score validation perturbations after every epoch; restore the best weights at the end.

    Parameters
    ----------
    dataset
        Validation perturbations (an objectives dataset with ``effect``).
    predict
        ``predict(model, dataset, batch_size) -> np.ndarray`` of predicted effects.
    batch_size
        Prediction batch size.
    patience
        Stop after this many epochs without a better validation Pearson.

    Attributes
    ----------
    scores : list of float
        Validation Pearson per epoch, index 0 the parent.
    best_epoch : int
        The epoch whose weights the model holds after training (0: the parent's).
    """

    def __init__(self, dataset, predict: Callable, batch_size: int = 16, patience: int = 2) -> None:
        if patience < 1:
            raise ValueError("patience must be at least 1")
        self.dataset, self.predict, self.batch_size, self.patience = dataset, predict, batch_size, patience
        self.scores: list[float] = []
        self.best_epoch = 0
        self._best_state: dict | None = None

    def _score(self, pl_module) -> float:
        was_training = pl_module.training
        with torch.no_grad():
            predicted = self.predict(pl_module, self.dataset, self.batch_size)
        pl_module.train(was_training)  # strategies that freeze BatchNorm re-freeze it per batch
        value = pearson(np.asarray(predicted), np.asarray(self.dataset.effect))
        return float(value) if np.isfinite(value) else float("-inf")

    def _keep(self, pl_module) -> None:
        # a copy on the CPU: the best weights must not follow later optimiser steps
        self._best_state = {k: v.detach().to("cpu", copy=True) for k, v in pl_module.state_dict().items()}

    def on_train_start(self, trainer, pl_module) -> None:
        self.scores = [self._score(pl_module)]
        self.best_epoch = 0
        self._keep(pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.scores.append(self._score(pl_module))
        epoch = len(self.scores) - 1
        if self.scores[-1] > self.scores[self.best_epoch]:
            self.best_epoch = epoch
            self._keep(pl_module)
        elif epoch - self.best_epoch >= self.patience:
            trainer.should_stop = True

    def on_train_end(self, trainer, pl_module) -> None:
        if self._best_state is not None and self.best_epoch != len(self.scores) - 1:
            pl_module.load_state_dict(self._best_state)
        self._best_state = None

    def summary(self) -> dict:
        """What the selection saw and chose (for ``metrics.json``)."""
        finite = [s if np.isfinite(s) else None for s in self.scores]
        return {"validation_pearson": finite, "best_epoch": self.best_epoch,
                "epochs_run": len(self.scores) - 1, "n_validation": len(self.dataset),
                "patience": self.patience}
