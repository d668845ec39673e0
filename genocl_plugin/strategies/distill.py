"""Distillation (LwF / DER-style): match the parent model's outputs on reference windows.

The student's log coverage on buffered reference windows is pulled towards the teacher's
(the parent model; its predictions are computed once and memory-mapped by the
:class:`~genocl_plugin.data.reference.ReferenceSet`) with losses made for count tracks, not softmax-KL
over classes: ``poisson`` (Poisson deviance of exp(student) vs teacher coverage), ``mse``
(MSE of log total counts) and ``multinomial`` (profile cross-entropy minus the teacher's
entropy, as in BPNet's profile loss). ``auto``: ProCapNet-style models get multinomial profile +
weighted log-count MSE (their own loss's shape), other models Poisson.
"""

from __future__ import annotations

import numpy as np
import torch

from genocl_plugin.data import reference
from genocl_plugin.strategies.base import LossTermCallback, resolve_reference, rng_state, set_rng_state
from genocl_plugin.training.replay import fill_reference_buffer


def poisson_distill(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean Poisson deviance / 2 between rates exp(student) and exp(teacher); 0 iff equal."""
    rate = teacher.exp()
    return torch.mean(student.exp() - rate * student - (rate - rate * teacher))


def log_counts_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """MSE of the log total counts (logsumexp over tracks and positions)."""
    return torch.mean((torch.logsumexp(student.flatten(1), -1) - torch.logsumexp(teacher.flatten(1), -1)) ** 2)


def multinomial_distill(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Profile cross-entropy of the teacher's profile under the student's, minus its entropy."""
    p_log = torch.log_softmax(teacher.flatten(1), -1)
    q_log = torch.log_softmax(student.flatten(1), -1)
    return torch.mean(torch.sum(p_log.exp() * (p_log - q_log), -1))


class DistillationCallback(LossTermCallback):
    """Output distillation on reference windows as a pytorch_lightning callback.

    Parameters
    ----------
    weight
        Weight of the distillation loss.
    loss
        ``auto``, ``poisson``, ``mse`` or ``multinomial``.
    n_per_step
        Reference crops per training step.
    budget_mb
        Memory budget of the window buffer + cached teacher rows (None: 2 MB, clamped to
        between one window and all of them).
    count_weight
        Weight of the log-count term in ``auto`` mode for profile models.
    reference
        The :class:`~genocl_plugin.data.reference.ReferenceSet` (default: the bundled windows).
    """

    state_name = "distill"

    def __init__(self, weight: float = 1.0, loss: str = "auto", n_per_step: int = 4, budget_mb: float | None = None,
                 policy: str = "reservoir", count_weight: float = 1.0, seq_len: int | None = None,
                 reference=None, seed: int = 0) -> None:
        self.weight, self.loss, self.n_per_step, self.budget_mb = weight, loss, n_per_step, budget_mb
        self.policy, self.count_weight, self.seq_len, self.reference = policy, count_weight, seq_len, reference
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.codes = self.teacher = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self.codes is None:
            ref = self.reference = resolve_reference(self.reference, pl_module, self.seq_len, "distill")
            _, keys = fill_reference_buffer(ref, self.budget_mb, self.policy, self.seed)
            self.codes = ref.codes("train", keys)
            self.teacher = ref.teacher_logits("train", keys, pl_module)

    def summary(self) -> dict:
        """What was distilled (recorded in metrics.json)."""
        return {"reference": self.reference.name if self.reference is not None else None,
                "windows": 0 if self.codes is None else int(len(self.codes)), "loss": self.loss,
                "weight": self.weight, "windows_per_step": self.n_per_step}

    def state_dict(self) -> dict:
        """Where the window draws are (for ``--resume``)."""
        return {"rng": rng_state(self.rng)}

    def load_state_dict(self, state_dict: dict) -> None:
        set_rng_state(self.rng, state_dict["rng"])

    def distill_loss(self, pl_module, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        kind = self.loss
        if kind == "auto":
            kind = "profile" if pl_module.train_params.get("loss") == "procapnet" else "poisson"
        if kind == "profile":
            return multinomial_distill(student, teacher) + self.count_weight * log_counts_mse(student, teacher)
        return {"poisson": poisson_distill, "mse": log_counts_mse, "multinomial": multinomial_distill}[kind](
            student, teacher)

    def loss_term(self, pl_module, batch) -> torch.Tensor | None:
        idx = np.sort(self.rng.choice(len(self.codes), min(self.n_per_step, len(self.codes)), replace=False))
        x = torch.from_numpy(reference.codes_to_one_hot(self.codes[idx])).to(pl_module.device)
        teacher = torch.from_numpy(self.teacher[idx]).to(pl_module.device)
        student = pl_module(x, logits=True)[:, : teacher.shape[1]]
        return self.weight * self.distill_loss(pl_module, student, teacher)


def distill_callbacks(distill_weight: float | None = None, replay_budget_mb: float | None = None,
                      replay_policy: str | None = None, seed: int = 0, reference=None, **_params) -> list:
    """The CLI's ``distill`` strategy."""
    return [DistillationCallback(weight=1.0 if distill_weight is None else distill_weight,
                                 budget_mb=replay_budget_mb,
                                 policy=replay_policy or "reservoir", seed=seed, reference=reference)]
