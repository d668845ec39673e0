"""Forgetting budget (``--max-drift``): bound how much an update may forget.

Every ``every_n_steps`` optimizer steps (and when training ends) the callback predicts a
few ``valid`` windows of the reference set (the user's held-out regions, or the bundled
windows) and computes retention against the predictions of the model the update started
from (``evaluate.retention``):

- ``retention_ratio`` (track Pearson vs the real tracks, after / before) when the starting
  model has skill on them (Pearson >= ``MIN_SKILL``);
- otherwise (no real tracks, or no skill on them) ``drift_pearson`` (Pearson of the new vs
  the starting predictions, log1p, one Pearson over all tracks x positions pooled): the update
  is bounded in how far its predictions move.

When retention falls below ``max_drift`` the weights of the last check inside the budget
are restored and the update either stops (``action="stop"``, the default) or continues
with half the learning rate (``action="reweight"``, at most ``max_reweights`` times, then
it stops). Each violation is printed and the log is recorded in ``metrics.json``.
"""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch

from genocl_plugin.errors import input_error
from genocl_plugin.evaluation import evaluate
from genocl_plugin.strategies.base import resolve_reference

MIN_SKILL = 0.1


class DriftBudgetCallback(pl.Callback):
    """Stop (or re-weight) an update whose retention falls below a bound.

    Parameters
    ----------
    max_drift
        Minimum retention (0-1] on the reference crops.
    every_n_steps
        Check interval in optimizer steps.
    crops
        Number of ``split`` reference crops predicted per check.
    split
        Reference windows used (``valid``: never the ``test`` windows the report uses).
    action
        ``stop`` or ``reweight``.
    max_reweights
        Halvings of the learning rate before a ``reweight`` update stops.
    reference
        The :class:`~genocl_plugin.data.reference.ReferenceSet` (default: the bundled windows).
    """

    def __init__(self, max_drift: float, every_n_steps: int = 4, crops: int = 8, split: str = "valid",
                 action: str = "stop", max_reweights: int = 3, reference=None) -> None:
        if not 0 < float(max_drift) <= 1:
            raise input_error("--max-drift", max_drift, "must be in (0, 1]", "e.g. --max-drift 0.9")
        if action not in ("stop", "reweight"):
            raise input_error("--drift-action", action, "unknown action", "use stop or reweight")
        self.max_drift, self.every, self.crops, self.split = float(max_drift), int(every_n_steps), crops, split
        self.action, self.max_reweights, self.reference = action, max_reweights, reference
        self.checks: list[dict] = []
        self.events: list[dict] = []
        self.stopped = False
        self._base = None
        self._good = None
        self._good_step = 0

    def on_fit_start(self, trainer, pl_module) -> None:
        self.reference = resolve_reference(self.reference, pl_module, who="--max-drift")
        if self._base is not None:  # --resume: the parent's predictions came with the checkpoint
            return
        self._base = self._predict(pl_module)
        self._good = _snapshot(pl_module)

    def state_dict(self) -> dict:
        """The parent's predictions, the last in-budget weights and the checks so far (for ``--resume``)."""
        if self._base is None:
            return {}
        pred, target = self._base
        return {"base_pred": torch.from_numpy(np.ascontiguousarray(pred)),
                "base_target": None if target is None else torch.from_numpy(np.ascontiguousarray(target)),
                "good": self._good, "good_step": self._good_step, "checks": self.checks, "events": self.events,
                "stopped": self.stopped}

    def load_state_dict(self, state_dict: dict) -> None:
        if not state_dict:
            return
        target = state_dict["base_target"]
        self._base = (state_dict["base_pred"].numpy(), None if target is None else target.numpy())
        self._good, self._good_step = state_dict["good"], state_dict["good_step"]
        self.checks, self.events, self.stopped = state_dict["checks"], state_dict["events"], state_dict["stopped"]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if trainer.global_step % self.every == 0:
            self._check(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if not self.checks or self.checks[-1]["step"] != trainer.global_step:
            self._check(trainer, pl_module, final=True)

    def _predict(self, pl_module):
        was_training = pl_module.training
        pred, target = evaluate.reference_predictions(pl_module, self.split, max_crops=self.crops,
                                                     reference_set=self.reference)
        # evaluate.predict leaves the module in eval mode; training resumes in train mode
        # (freeze/LoRA callbacks re-apply BatchNorm eval before the next batch).
        pl_module.train(was_training)
        return pred, target

    def _check(self, trainer, pl_module, final: bool = False) -> None:
        pred, _ = self._predict(pl_module)
        base_pred, target = self._base
        retained = evaluate.retention(base_pred, pred, target)
        skilled = retained["pearson_before"] >= MIN_SKILL
        metric = "retention_ratio" if skilled else "drift_pearson"
        value = float(retained[metric])
        ok = value >= self.max_drift
        # Ranks hold identical weights, so they agree; the reduction makes that explicit.
        violated = trainer.strategy.reduce_boolean_decision(not ok, all=False)
        step = trainer.global_step
        self.checks.append({"step": step, "metric": metric, "value": value, "within_budget": not violated})
        if not violated:
            self._good, self._good_step = _snapshot(pl_module), step
            return
        pl_module.model.load_state_dict(self._good)
        reweights = sum(e["action"] == "reweight" for e in self.events)
        action = "reweight" if self.action == "reweight" and reweights < self.max_reweights and not final else "stop"
        if action == "reweight":
            for optimizer in trainer.optimizers:
                for group in optimizer.param_groups:
                    group["lr"] *= 0.5
        else:
            trainer.should_stop = True
            self.stopped = True
        event = {"step": step, "metric": metric, "value": value, "bound": self.max_drift, "action": action,
                 "restored_step": self._good_step}
        self.events.append(event)
        if trainer.is_global_zero:
            print(f"genocl: forgetting budget violated at step {step}: {metric} {value:.4f} < {self.max_drift}; "
                  f"restored the weights of step {self._good_step} and "
                  + ("halved the learning rate" if action == "reweight" else "stopped the update"), flush=True)

    def summary(self) -> dict:
        """The budget, every check and every violation (recorded in metrics.json)."""
        return {"max_drift": self.max_drift, "split": self.split, "crops": self.crops, "action": self.action,
                "every_n_steps": self.every,
                "reference": self.reference.name if self.reference is not None else None,
                "violated": bool(self.events), "stopped": self.stopped, "events": self.events,
                "checks": self.checks}


def _snapshot(pl_module) -> dict:
    return {k: v.detach().clone() for k, v in pl_module.model.state_dict().items()}


def drift_callbacks(max_drift: float | None = None, drift_every: int = 4, drift_crops: int = 8,
                    drift_action: str = "stop", reference=None, **_params) -> list:
    """The forgetting-budget callback (``--max-drift 0.9``); none without a bound."""
    if max_drift is None:
        return []
    return [DriftBudgetCallback(max_drift, every_n_steps=drift_every, crops=drift_crops, action=drift_action,
                                reference=reference)]
