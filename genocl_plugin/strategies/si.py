"""Synaptic Intelligence (Zenke et al. 2017): importance = each weight's contribution to the loss drop.

While training, ``omega += -g * delta_theta`` at every optimiser step (the path integral of the
gradient along the trajectory). At the end of the update
``Omega += relu(omega) / ((theta_end - theta_start)**2 + xi)`` and the next update's penalty is
``c / 2 * sum Omega * (theta - theta*)**2`` around its parent. The base model was not trained
with SI, so when no earlier ``Omega`` exists it is estimated from a short SGD path on the
reference windows (weights restored afterwards).
"""

from __future__ import annotations

import torch

from genocl_plugin.strategies.base import QuadraticPenalty, normalized, reference_samples, trainable_parameters


def si_importance(omega: dict, start: dict, end: dict, xi: float) -> dict[str, torch.Tensor]:
    """``relu(omega) / ((end - start)**2 + xi)`` per parameter."""
    return {n: omega[n].clamp_min(0) / ((end[n] - start[n]) ** 2 + xi) for n in omega}


def reference_path_importance(pl_module, samples, lr: float, xi: float) -> dict[str, torch.Tensor]:
    """SI importance of a few plain SGD steps on ``samples``; the weights are restored."""
    from genocl_plugin.progress import progress

    params = trainable_parameters(pl_module)
    start = {n: p.detach().clone() for n, p in params.items()}
    omega = {n: torch.zeros_like(p) for n, p in params.items()}
    for x, y in progress(samples, description="SGD steps", unit="step"):
        grads = torch.autograd.grad(pl_module.loss(pl_module(x, logits=True)[:, : y.shape[1]], y),
                                    list(params.values()),
                                    allow_unused=True)
        with torch.no_grad():
            for (name, p), g in zip(params.items(), grads, strict=True):
                if g is not None:
                    p -= lr * g
                    omega[name] += lr * g**2  # -g * delta_theta for an SGD step
    end = {n: p.detach().clone() for n, p in params.items()}
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(start[name])
    return si_importance(omega, start, end, xi)


class SICallback(QuadraticPenalty):
    """Synaptic Intelligence as a pytorch_lightning callback.

    Parameters
    ----------
    c
        Penalty weight.
    xi
        Damping of the importance denominator.
    base_steps, base_lr
        SGD steps / learning rate on reference windows estimating the base model's importance.
    reference
        The :class:`~genocl_plugin.data.reference.ReferenceSet` (default: the bundled windows).
    """

    state_name = "si"

    def __init__(self, c: float = 1.0, xi: float = 1e-3, base_steps: int = 8, base_lr: float = 1e-4,
                 seed: int = 0, reference=None) -> None:
        super().__init__(c)
        self.xi, self.base_steps, self.base_lr, self.seed = xi, base_steps, base_lr, seed
        self.reference = reference
        self.loaded: dict[str, torch.Tensor] = {}
        self.total: dict[str, torch.Tensor] = {}

    def on_fit_start(self, trainer, pl_module) -> None:
        if self.resumed:  # importance, anchor and path integral restored (state_dict below)
            return
        if self.loaded:
            self.importance = {n: t.to(pl_module.device) for n, t in self.loaded.items()}
        elif self.base_steps and self.strength:
            from genocl_plugin.progress import stage

            samples = reference_samples(pl_module, self.base_steps, self.seed, reference_set=self.reference)
            with stage("importance estimation", f"SI: {len(samples):,} SGD steps on reference samples"):
                self.importance = reference_path_importance(pl_module, samples, self.base_lr, self.xi)
        # mean 1, as for EWC and MAS, so c means the same for every model and loss
        self.importance = normalized(self.importance) if self.importance else {}
        self.set_anchor(pl_module)

    def state_dict(self) -> dict:
        state = super().state_dict()
        if hasattr(self, "omega"):
            state["start"] = {n: t.detach().cpu() for n, t in self.start.items()}
            state["omega"] = {n: t.detach().cpu() for n, t in self.omega.items()}
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        if "omega" in state_dict:
            self.start, self.omega = dict(state_dict["start"]), dict(state_dict["omega"])

    def on_train_start(self, trainer, pl_module) -> None:
        if self.resumed and hasattr(self, "omega"):
            device = pl_module.device
            self.start = {n: t.to(device) for n, t in self.start.items()}
            self.omega = {n: t.to(device) for n, t in self.omega.items()}
            return
        params = trainable_parameters(pl_module)
        self.start = {n: p.detach().clone() for n, p in params.items()}
        self.omega = {n: torch.zeros_like(p) for n, p in params.items()}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        params = trainable_parameters(pl_module)
        self.grads = {n: p.grad.detach().clone() for n, p in params.items() if p.grad is not None}
        self.before = {n: p.detach().clone() for n, p in params.items()}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        for name, p in trainable_parameters(pl_module).items():
            if name in getattr(self, "grads", {}):
                self.omega[name] -= self.grads[name] * (p.detach() - self.before[name])
        self.grads = {}

    def on_train_end(self, trainer, pl_module) -> None:
        end = {n: p.detach().clone() for n, p in trainable_parameters(pl_module).items()}
        new = si_importance(self.omega, self.start, end, self.xi)
        self.total = {n: self.importance.get(n, torch.zeros_like(t)) + t for n, t in new.items()}

    def state_dict_for_run(self) -> dict[str, torch.Tensor]:
        return {f"importance.{n}": t.detach().cpu().contiguous() for n, t in self.total.items()}


def si_callbacks(si_c: float | None = None, seed: int = 0, reference=None, **_params) -> list:
    """The CLI's ``si`` strategy."""
    return [SICallback(c=1.0 if si_c is None else si_c, seed=seed, reference=reference)]
