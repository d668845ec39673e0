"""Memory Aware Synapses (Aljundi et al. 2018): importance from the output's sensitivity, no labels.

``Omega = mean over reference windows of |d ||f(x)||**2 / d theta|`` with ``f`` the model's log
output; penalty ``lambda / 2 * sum Omega * (theta - theta*)**2`` around the parent's weights.
Across updates ``Omega = decay * Omega_old + Omega_new``.
"""

from __future__ import annotations

import torch

from genocl_plugin.strategies.base import ReferenceImportancePenalty, trainable_parameters


def mas_importance(pl_module, inputs) -> dict[str, torch.Tensor]:
    """Mean over inputs of ``|grad of ||pl_module(x, logits=True)||**2|`` (one input = one sample)."""
    from genocl_plugin.progress import progress

    params = trainable_parameters(pl_module)
    omega = {n: torch.zeros_like(p) for n, p in params.items()}
    for x in progress(inputs, description="output sensitivity", unit="sample"):
        out = pl_module(x, logits=True)
        grads = torch.autograd.grad((out**2).sum(), list(params.values()), allow_unused=True)
        for (name, _), g in zip(params.items(), grads, strict=True):
            if g is not None:
                omega[name] += g.detach().abs()
    return {n: o / max(len(inputs), 1) for n, o in omega.items()}


class MASCallback(ReferenceImportancePenalty):
    """MAS as a pytorch_lightning callback.

    Parameters are those of :class:`~genocl_plugin.strategies.base.ReferenceImportancePenalty`.
    """

    state_name = "mas"

    def estimate(self, pl_module, samples) -> dict[str, torch.Tensor]:
        return mas_importance(pl_module, [x for x, _ in samples])


def mas_callbacks(mas_lambda: float | None = None, seed: int = 0, reference=None, **_params) -> list:
    """The CLI's ``mas`` strategy."""
    return [MASCallback(lambda_=1.0 if mas_lambda is None else mas_lambda, seed=seed, reference=reference)]
