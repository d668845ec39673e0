"""What the strategy callbacks share: the loss-term hook, quadratic penalties, reference samples.

Protocol
--------
- ``loss_term(pl_module, batch) -> Tensor | None``: an extra loss added to the training loss.
  :class:`~genocl_plugin.models.GenoclLightningModel` calls it inside ``training_step``; on
  gReLU's own ``LightningModel`` (whose ``training_step`` has no hook) :class:`LossTermCallback`
  back-propagates it after the main backward, which adds the same gradient.
- ``state_dict_for_run() -> dict[str, Tensor]`` / ``load_state_from_run(dict)``: importance
  estimates or buffer state stored with the checkpoint so the next update continues them;
  ``state_name`` is the strategy name that prefixes the keys.
- Lightning's ``state_dict()`` / ``load_state_dict()``: what a resumed run (``--resume``)
  needs to continue *this* update exactly: importances and anchors of the parent (Lightning
  restores the partly trained weights before ``on_fit_start``, so they must not be estimated
  again), the position of random draws. Plain tensors and numbers only, so resume checkpoints
  load with ``weights_only=True``.
"""

from __future__ import annotations

import numpy as np
import torch
from pytorch_lightning import Callback


def trainable_parameters(pl_module) -> dict[str, torch.nn.Parameter]:
    """The network's trainable parameters by name (frozen / LoRA-base weights are skipped)."""
    return {n: p for n, p in pl_module.model.named_parameters() if p.requires_grad}


def _calls_loss_terms(pl_module) -> bool:
    from genocl_plugin.models import GenoclLightningModel

    return isinstance(pl_module, GenoclLightningModel)


class LossTermCallback(Callback):
    """A callback contributing ``loss_term``; works with genocl's and gReLU's LightningModel."""

    state_name = "strategy"

    def loss_term(self, pl_module, batch) -> torch.Tensor | None:
        raise NotImplementedError

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self._batch = batch

    def on_after_backward(self, trainer, pl_module) -> None:
        if _calls_loss_terms(pl_module):
            return
        # gReLU's training_step returns only its own loss: add this term's gradient to it.
        term = self.loss_term(pl_module, self._batch)
        if term is not None and term.requires_grad:
            term.backward()


class QuadraticPenalty(LossTermCallback):
    """``strength / 2 * sum_i importance_i * (theta_i - anchor_i)**2`` over trainable parameters."""

    def __init__(self, strength: float) -> None:
        self.strength = float(strength)
        self.importance: dict[str, torch.Tensor] = {}
        self.anchor: dict[str, torch.Tensor] = {}

    def penalty(self, pl_module) -> torch.Tensor:
        params = trainable_parameters(pl_module)
        total = torch.zeros((), device=pl_module.device)
        for name, imp in self.importance.items():
            if name in params:
                diff = params[name] - self.anchor[name].to(params[name].device)
                total = total + (imp.to(diff.device) * diff**2).sum()
        return 0.5 * self.strength * total

    def loss_term(self, pl_module, batch) -> torch.Tensor | None:
        if not self.importance or self.strength == 0:
            return None
        return self.penalty(pl_module)

    def set_anchor(self, pl_module) -> None:
        """Anchor at the current weights (the parent model, before training on the screen)."""
        self.anchor = {n: p.detach().clone() for n, p in trainable_parameters(pl_module).items()}

    # Resumable updates: the importances and anchor of the parent go into the Lightning checkpoint.
    resumed = False

    def state_dict(self) -> dict:
        return {"importance": {n: t.detach().cpu() for n, t in self.importance.items()},
                "anchor": {n: t.detach().cpu() for n, t in self.anchor.items()}}

    def load_state_dict(self, state_dict: dict) -> None:
        self.importance, self.anchor = dict(state_dict["importance"]), dict(state_dict["anchor"])
        self.resumed = True  # on_fit_start keeps these instead of re-estimating on trained weights

    def state_dict_for_run(self) -> dict[str, torch.Tensor]:
        return {f"importance.{n}": t.detach().cpu().contiguous() for n, t in self.importance.items()}

    def load_state_from_run(self, state: dict[str, torch.Tensor]) -> None:
        self.loaded = {k[len("importance."):]: v for k, v in state.items() if k.startswith("importance.")}


class ReferenceImportancePenalty(QuadraticPenalty):
    """A quadratic penalty whose importance is estimated on reference samples at fit start.

    Subclasses define :meth:`estimate`; the importance is normalised (optional) and added to
    ``decay`` times the importance carried over from the parent run (online accumulation).

    Parameters
    ----------
    lambda_
        Penalty weight.
    decay
        Weight of the importance carried over from earlier updates (1: plain sum).
    n_samples
        Reference windows used for the estimate (one gradient each).
    data
        Optional ``(x, y)`` dataset to use instead of reference windows.
    seq_len
        Input length for reference windows (default: the model's).
    reference
        The :class:`~genocl_plugin.data.reference.ReferenceSet` (default: the bundled windows).
    seed
        Seed of the sample draw.
    normalize
        Scale the new importance to mean 1 (see :func:`normalized`).
    """

    def __init__(self, lambda_: float = 1.0, decay: float = 0.9, n_samples: int = 32, data=None,
                 seq_len: int | None = None, seed: int = 0, normalize: bool = True, reference=None) -> None:
        super().__init__(lambda_)
        self.normalize, self.reference = normalize, reference
        self.decay, self.n_samples, self.data, self.seq_len, self.seed = decay, n_samples, data, seq_len, seed
        self.loaded: dict[str, torch.Tensor] = {}

    def estimate(self, pl_module, samples) -> dict[str, torch.Tensor]:
        """Importance per trainable parameter from ``samples`` ((x, y) pairs of batch size one)."""
        raise NotImplementedError

    def on_fit_start(self, trainer, pl_module) -> None:
        if self.resumed:
            return
        from genocl_plugin.progress import stage

        was_training = pl_module.training
        pl_module.eval()  # no dropout in the estimate
        # the samples' targets may be pseudo-targets: a stage of their own, before this one
        samples = reference_samples(pl_module, self.n_samples, self.seed, self.seq_len, self.data, self.reference)
        with stage("importance estimation", f"{self.state_name.upper()}: {len(samples):,} samples, one gradient each"):
            importance = self.estimate(pl_module, samples)
        pl_module.train(was_training)
        importance = normalized(importance) if self.normalize else importance
        for name, old in self.loaded.items():
            if name in importance and old.shape == importance[name].shape:
                importance[name] = self.decay * old.to(importance[name].device) + importance[name]
        self.importance = importance
        self.set_anchor(pl_module)


def rng_state(rng: np.random.Generator) -> dict:
    """A numpy Generator's state as plain Python values (fits a ``weights_only`` checkpoint)."""
    return rng.bit_generator.state


def set_rng_state(rng: np.random.Generator, state: dict) -> None:
    """Continue a Generator from :func:`rng_state` (a resumed run draws what the killed one would have)."""
    rng.bit_generator.state = state


def normalized(importance: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Scale importances to mean 1 over all parameters.

    Fisher / MAS values scale with the loss (ProCapNet's counts term is weighted 100x), so raw
    values would make the same lambda mean different things for different models; at mean 1
    the penalty is ``lambda / 2`` times an importance-weighted squared distance.
    """
    total = sum(float(t.sum()) for t in importance.values())
    count = sum(t.numel() for t in importance.values())
    scale = count / total if total > 0 else 1.0
    return {n: t * scale for n, t in importance.items()}


def resolve_reference(reference_set, pl_module, seq_len: int | None = None, who: str = "strategy"):
    """The reference set a strategy draws from: the one given, else the bundled windows.

    Raises
    ------
    GenoclInputError
        No reference set was given and the bundled windows do not fit the model.
    """
    if reference_set is not None:
        return reference_set
    from genocl_plugin.data import reference
    from genocl_plugin.errors import input_error

    try:
        return reference.bundled_reference_set(pl_module, seq_len=seq_len)
    except reference.ReferenceUnavailable as err:
        raise input_error("--strategy", who, f"needs reference windows: {err}",
                          "pass --reference-fasta GENOME.fa --reference-regions REGIONS.bed") from None


def reference_samples(pl_module, n: int, seed: int = 0, seq_len: int | None = None, data=None,
                      reference_set=None):
    """``n`` (x, y) pairs for importance estimates: ``data`` if given, else reference windows.

    Reference windows use the real tracks when they fit the model, else the model's own
    predictions (the Fisher's expectation under the model, no labels needed).
    """
    if data is not None:
        idx = np.random.default_rng(seed).choice(len(data), min(n, len(data)), replace=False)
        return [tuple(torch.as_tensor(t)[None] for t in data[int(i)][:2]) for i in idx]
    ref = resolve_reference(reference_set, pl_module, seq_len, "importance estimate")
    return ref.samples(n, seed, pl_module)
