"""Elastic Weight Consolidation (Kirkpatrick et al. 2017), online (Schwarz et al. 2018).

Before training on a screen, the diagonal Fisher of the parent model is estimated on the base
data (reference hg38 windows) with the model's own loss, and the penalty
``lambda / 2 * sum F * (theta - theta*)**2`` keeps the weights near the parent's
(``theta*``). Across sequential updates the Fisher is online: ``F = decay * F_old + F_new``,
``F_old`` read from the parent's ``strategy_state.safetensors``.
"""

from __future__ import annotations

import torch

from genocl_plugin.strategies.base import ReferenceImportancePenalty, trainable_parameters


def diagonal_fisher(pl_module, samples, loss_fn=None) -> dict[str, torch.Tensor]:
    """Empirical diagonal Fisher: the mean over samples of the squared loss gradient.

    Parameters
    ----------
    pl_module
        The model (``pl_module.model`` holds the parameters, ``pl_module(x, logits=True)`` the output).
    samples
        (x, y) pairs; one pair = one sample (use batches of one for a per-example Fisher).
    loss_fn
        ``loss_fn(pl_module, x, y)``; default the model's own training loss on log outputs.

    Returns
    -------
    dict
        Parameter name -> Fisher diagonal (same shape as the parameter).
    """
    from genocl_plugin.progress import progress

    # outputs beyond the reference targets (a new screen head) carry no old knowledge
    loss_fn = loss_fn or (lambda m, x, y: m.loss(m(x, logits=True)[:, : y.shape[1]], y))
    params = trainable_parameters(pl_module)
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    for x, y in progress(samples, description="Fisher information", unit="sample"):
        grads = torch.autograd.grad(loss_fn(pl_module, x, y), list(params.values()), allow_unused=True)
        for (name, _), g in zip(params.items(), grads, strict=True):
            if g is not None:
                fisher[name] += g.detach() ** 2
    return {n: f / max(len(samples), 1) for n, f in fisher.items()}


class EWCCallback(ReferenceImportancePenalty):
    """EWC / online EWC as a pytorch_lightning callback.

    Parameters are those of :class:`~genocl_plugin.strategies.base.ReferenceImportancePenalty`.
    """

    state_name = "ewc"

    def estimate(self, pl_module, samples) -> dict[str, torch.Tensor]:
        return diagonal_fisher(pl_module, samples)


def ewc_callbacks(ewc_lambda: float | None = None, ewc_decay: float | None = None, seed: int = 0,
                  reference=None, **_params) -> list:
    """The CLI's ``ewc`` strategy."""
    return [EWCCallback(lambda_=1.0 if ewc_lambda is None else ewc_lambda,
                        decay=0.9 if ewc_decay is None else ewc_decay, seed=seed,
                        reference=reference)]
