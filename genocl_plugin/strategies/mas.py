"""Memory Aware Synapses (Aljundi et al. 2018): importance from the output's sensitivity, no labels.

``Omega = mean over reference windows of |d ||f(x)||**2 / d theta|`` with ``f`` the model's log
output; penalty ``lambda / 2 * sum Omega * (theta - theta*)**2`` around the parent's weights.
Across updates ``Omega = decay * Omega_old + Omega_new``.
"""

from __future__ import annotations

import torch

from genocl_plugin.strategies.base import QuadraticPenalty, normalized, reference_samples, trainable_parameters


def mas_importance(pl_module, inputs) -> dict[str, torch.Tensor]:
    """Mean over inputs of ``|grad of ||pl_module(x, logits=True)||**2|`` (one input = one sample)."""
    params = trainable_parameters(pl_module)
    omega = {n: torch.zeros_like(p) for n, p in params.items()}
    for x in inputs:
        out = pl_module(x, logits=True)
        grads = torch.autograd.grad((out**2).sum(), list(params.values()), allow_unused=True)
        for (name, _), g in zip(params.items(), grads, strict=True):
            if g is not None:
                omega[name] += g.detach().abs()
    return {n: o / max(len(inputs), 1) for n, o in omega.items()}


class MASCallback(QuadraticPenalty):
    """MAS as a pytorch_lightning callback.

    Parameters
    ----------
    lambda_
        Penalty weight.
    decay
        Weight of the importance carried over from earlier updates.
    n_samples
        Reference windows used for the importance.
    normalize
        Scale the new importance to mean 1 (see :func:`~genocl_plugin.strategies.base.normalized`).
    """

    state_name = "mas"

    def __init__(self, lambda_: float = 1.0, decay: float = 0.9, n_samples: int = 32, data=None,
                 seq_len: int | None = None, seed: int = 0, normalize: bool = True) -> None:
        super().__init__(lambda_)
        self.normalize = normalize
        self.decay, self.n_samples, self.data, self.seq_len, self.seed = decay, n_samples, data, seq_len, seed
        self.loaded: dict[str, torch.Tensor] = {}

    def on_fit_start(self, trainer, pl_module) -> None:
        was_training = pl_module.training
        pl_module.eval()
        samples = reference_samples(pl_module, self.n_samples, self.seed, self.seq_len, self.data)
        omega = mas_importance(pl_module, [x for x, _ in samples])
        pl_module.train(was_training)
        omega = normalized(omega) if self.normalize else omega
        for name, old in self.loaded.items():
            if name in omega and old.shape == omega[name].shape:
                omega[name] = self.decay * old.to(omega[name].device) + omega[name]
        self.importance = omega
        self.set_anchor(pl_module)


def mas_callbacks(mas_lambda: float | None = None, **_params) -> list:
    """The CLI's ``mas`` strategy."""
    return [MASCallback(lambda_=1.0 if mas_lambda is None else mas_lambda)]
