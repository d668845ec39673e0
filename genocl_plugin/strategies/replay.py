"""Experience replay of reference-genome windows, mixed into every training batch.

A buffer (``reservoir`` or ``balanced`` per window) of crops of the bundled real hg38 windows —
the base model's training distribution — is filled once within a memory budget. Every step,
``ratio * batch_size`` buffered crops are drawn and the model's own training loss
(``pl_module.loss``) on them is added to the screen loss. Targets are the real tracks when the
model's outputs are the bundled ones, otherwise the parent model's predictions (pseudo-replay),
computed once into a memory-mapped :class:`~genocl_plugin.replay.TeacherCache`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from genocl_plugin import reference
from genocl_plugin.replay import TeacherCache, fill_buffer, reference_windows
from genocl_plugin.strategies.base import LossTermCallback


def batch_size_of(batch) -> int:
    """Examples in a screen batch (dict perturbation batch or ``(x, y)`` tuple)."""
    return int(batch["effect"].shape[0]) if isinstance(batch, dict) else int(batch[0].shape[0])


class ReplayCallback(LossTermCallback):
    """Replay of reference windows as a pytorch_lightning callback.

    Parameters
    ----------
    ratio
        Replayed windows per screen example in each batch (at least one window per step).
    budget_mb
        Memory budget of the buffer (sequences + targets or cached teacher rows), MB.
    policy
        ``reservoir`` or ``balanced`` (equal share per reference window).
    pseudo
        Force pseudo-replay (True) or real tracks (False); default: real tracks when they fit.
    weight
        Weight of the replay loss.
    seq_len
        Input length (default: the model's).
    cache_dir
        Where the teacher's memory-mapped predictions go (default: a temporary directory).
    normalize
        Divide the replay loss by the parent's loss on the buffer (unit-free ``weight``).
    """

    state_name = "replay"

    def __init__(self, ratio: float = 0.25, budget_mb: float = 2.0, policy: str = "reservoir",
                 pseudo: bool | None = None, weight: float = 1.0, seq_len: int | None = None,
                 cache_dir: str | None = None, seed: int = 0, normalize: bool = True) -> None:
        self.normalize = normalize
        self.ratio, self.budget_mb, self.policy, self.pseudo = ratio, budget_mb, policy, pseudo
        self.weight, self.seq_len, self.cache_dir, self.seed = weight, seq_len, cache_dir, seed
        self.rng = np.random.default_rng(seed)
        self.codes = self.targets = self.teacher = self.buffer = None
        self.keys: list[int] | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self.codes is None:
            self.prepare(pl_module)
        # Under DDP every rank fills the same buffer (same seed, same windows); each replays
        # only its own shard, so the ranks together replay distinct windows, not copies.
        world, rank = trainer.world_size, trainer.global_rank
        self.shard = np.arange(rank, len(self.codes), world) if len(self.codes) >= world else np.arange(len(self.codes))

    def prepare(self, pl_module) -> None:
        """Fill the buffer (and the teacher cache for pseudo-replay) from the parent model."""
        codes, targets, groups = reference_windows(pl_module, "train", self.seq_len)
        pseudo = targets is None if self.pseudo is None else self.pseudo
        row = 0
        if pseudo:
            # the teacher's cached rows count against the budget too
            with torch.no_grad():
                x0 = torch.from_numpy(reference.codes_to_one_hot(codes[:1])).to(pl_module.device)
                row = pl_module(x0, logits=True)[0].numel() * 4
            targets = None
        self.buffer = fill_buffer(codes, targets, groups, self.budget_mb, self.policy, self.seed, self.keys,
                                  extra_item_nbytes=row)
        self.codes = np.stack([item[0] for item in self.buffer.items])
        self.targets = None if pseudo else np.stack([item[1] for item in self.buffer.items])
        self.teacher = TeacherCache(pl_module, self.codes, self.cache_dir) if pseudo else None
        self.scale = 1.0
        if self.normalize:
            # The parent's own loss on the buffer: replay then reads 1.0 at the parent's level, so
            # its weight means the same whatever the loss's units (ProCapNet's is in the hundreds).
            with torch.no_grad():
                self.scale = 1.0 / max(float(self._replay_loss(pl_module, np.arange(min(32, len(self.codes))))), 1e-8)

    def _replay_loss(self, pl_module, idx: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(reference.codes_to_one_hot(self.codes[idx])).to(pl_module.device)
        if self.teacher is not None:
            y = pl_module.activation(self.teacher[idx].to(pl_module.device))
        else:
            y = torch.from_numpy(self.targets[idx]).to(pl_module.device)
        return pl_module.loss(pl_module(x, logits=True), y)

    def loss_term(self, pl_module, batch) -> torch.Tensor | None:
        shard = getattr(self, "shard", None)
        shard = np.arange(len(self.codes)) if shard is None else shard
        n = min(len(shard), max(1, math.ceil(self.ratio * batch_size_of(batch))))
        idx = np.sort(self.rng.choice(shard, n, replace=False))
        return self.weight * self.scale * self._replay_loss(pl_module, idx)

    def state_dict_for_run(self) -> dict[str, torch.Tensor]:
        """The buffered crops' indices and the number of crops the buffer has seen."""
        return {"keys": torch.tensor(self.buffer.keys, dtype=torch.int64),
                "n_seen": torch.tensor([self.buffer.n_seen], dtype=torch.int64)}

    def load_state_from_run(self, state: dict[str, torch.Tensor]) -> None:
        if "keys" in state:
            self.keys = [int(k) for k in state["keys"]]


def replay_callbacks(replay_ratio: float | None = None, replay_budget_mb: float | None = None,
                     replay_policy: str | None = None, seed: int = 0, **_params) -> list:
    """The CLI's ``replay`` strategy."""
    return [ReplayCallback(ratio=0.25 if replay_ratio is None else replay_ratio,
                           budget_mb=2.0 if replay_budget_mb is None else replay_budget_mb,
                           policy=replay_policy or "reservoir", seed=seed)]
