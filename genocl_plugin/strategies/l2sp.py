"""L2-SP (Li et al. 2018): pull the weights towards the starting point, ``alpha / 2 * ||theta - theta0||**2``.

``theta0`` is the pretrained base model: across sequential updates it is carried in the run's
``strategy_state.safetensors``, so every update is anchored to the same base, not to the parent.
A head added by this update (``multihead``) has no pretrained starting point and is left out, as
the new layers in Li et al.; from the next update on it is anchored to its trained weights.
"""

from __future__ import annotations

import torch

from genocl_plugin.strategies.base import QuadraticPenalty, trainable_parameters


class L2SPCallback(QuadraticPenalty):
    """L2-SP as a pytorch_lightning callback.

    Parameters
    ----------
    alpha
        Penalty weight.
    """

    state_name = "l2sp"

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__(alpha)
        self.loaded: dict[str, torch.Tensor] = {}

    def on_fit_start(self, trainer, pl_module) -> None:
        if self.resumed:  # anchor restored from the resume checkpoint (QuadraticPenalty.state_dict)
            return
        new_heads = tuple(getattr(pl_module, "new_head_prefixes", ()))
        params = {n: p for n, p in trainable_parameters(pl_module).items()
                  if not (new_heads and n.startswith(new_heads))}
        self.anchor = {n: p.detach().clone() for n, p in params.items()}
        for name, start in self.loaded.items():
            if name in self.anchor and start.shape == self.anchor[name].shape:
                self.anchor[name] = start.to(self.anchor[name].device)
        self.importance = {n: torch.ones_like(p) for n, p in self.anchor.items()}

    def state_dict_for_run(self) -> dict[str, torch.Tensor]:
        return {f"anchor.{n}": t.detach().cpu().contiguous() for n, t in self.anchor.items()}

    def load_state_from_run(self, state: dict[str, torch.Tensor]) -> None:
        self.loaded = {k[len("anchor."):]: v for k, v in state.items() if k.startswith("anchor.")}


def l2sp_callbacks(l2sp_alpha: float | None = None, **_params) -> list:
    """The CLI's ``l2sp`` strategy."""
    return [L2SPCallback(alpha=0.01 if l2sp_alpha is None else l2sp_alpha)]
